//! The ledger on a real RocksDB in a temp dir.

use custos::ledger::{CertRecord, DeviceIds, Ledger, LedgerError, RevokeChange};
use custos::revocation::Reason;
use custos::serial::Serial;

fn record(serial: &Serial, device: Option<&str>, not_after: u64, shard: u32) -> CertRecord {
    CertRecord {
        serial: serial.clone(),
        issuer_id: "test".into(),
        subject: "CN=test".into(),
        not_before: 1_000,
        not_after,
        issued_at: 1_000,
        dns_names: vec!["a.example".into()],
        ip_addresses: vec![],
        device: DeviceIds {
            serial_number: device.map(str::to_string),
            udid: device.map(|d| format!("udid-{d}")),
            permanent_id: None,
        },
        acme_account: Some("acct-1".into()),
        profile: "default".into(),
        crl_shard: shard,
        revocation: None,
    }
}

#[test]
fn round_trip_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let a = Serial::random();
    let b = Serial::random();
    ledger
        .insert(&record(&a, Some("C02XYZ"), 5_000, 0), b"der-a")
        .unwrap();
    ledger
        .insert(&record(&b, Some("OTHER"), 3_000, 1), b"der-b")
        .unwrap();

    assert_eq!(
        ledger.get(&a).unwrap().unwrap(),
        record(&a, Some("C02XYZ"), 5_000, 0)
    );
    assert_eq!(ledger.get_der(&b).unwrap().unwrap(), b"der-b");
    assert_eq!(ledger.count().unwrap(), 2);
    assert!(ledger.get(&Serial::random()).unwrap().is_none());

    // Device lookups are case-insensitive and cover serial number and UDID.
    assert_eq!(ledger.serials_by_device("c02xyz").unwrap(), vec![a.clone()]);
    assert_eq!(
        ledger.serials_by_device("UDID-C02XYZ").unwrap(),
        vec![a.clone()]
    );
    assert!(
        ledger.serials_by_device("C02XY").unwrap().is_empty(),
        "prefix must not match"
    );
    let mut by_account = ledger.serials_by_account("acct-1").unwrap();
    by_account.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(by_account, both);

    let expiring = ledger.serials_expiring(0, 4_000).unwrap();
    assert_eq!(expiring, vec![(3_000, b.clone())]);
    // Counting by notAfter (the console's expired count): b at 3,000, a at
    // 5,000; `to` is exclusive, and the bound is reported.
    assert_eq!(ledger.count_expiring(0, 3_000, 10).unwrap(), (0, true));
    assert_eq!(ledger.count_expiring(0, 3_001, 10).unwrap(), (1, true));
    assert_eq!(ledger.count_expiring(3_001, 6_000, 10).unwrap(), (1, true));
    assert_eq!(ledger.count_expiring(0, 6_000, 1).unwrap(), (1, false));

    // Listing pages in serial order.
    let first = ledger.list(None, 1).unwrap();
    let second = ledger.list(Some(&first[0].serial), 10).unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(first[0].serial, second[0].serial);
}

#[test]
fn duplicate_serial_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let a = Serial::random();
    ledger.insert(&record(&a, None, 5_000, 0), b"one").unwrap();
    let err = ledger
        .insert(&record(&a, Some("X"), 9_000, 0), b"two")
        .unwrap_err();
    assert!(matches!(err, LedgerError::DuplicateSerial(_)));
    assert_eq!(ledger.get_der(&a).unwrap().unwrap(), b"one");
    assert_eq!(ledger.count().unwrap(), 1);
    assert!(ledger.serials_by_device("X").unwrap().is_empty());
}

#[test]
fn revocation_is_idempotent_and_key_compromise_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let a = Serial::random();
    ledger.insert(&record(&a, None, 5_000, 2), b"der").unwrap();

    let first = ledger.revoke(&a, Reason::Superseded, 100).unwrap();
    assert_eq!(first.change, RevokeChange::Revoked);
    let again = ledger
        .revoke(&a, Reason::CessationOfOperation, 200)
        .unwrap();
    assert_eq!(again.change, RevokeChange::Unchanged);
    let rev = ledger.get(&a).unwrap().unwrap().revocation.unwrap();
    assert_eq!((rev.time, rev.reason), (100, Reason::Superseded));

    let upgraded = ledger.revoke(&a, Reason::KeyCompromise, 300).unwrap();
    assert_eq!(upgraded.change, RevokeChange::ReasonUpgraded);
    let rev = ledger.get(&a).unwrap().unwrap().revocation.unwrap();
    assert_eq!(
        (rev.time, rev.reason),
        (100, Reason::KeyCompromise),
        "first time kept"
    );
    let once_more = ledger.revoke(&a, Reason::KeyCompromise, 400).unwrap();
    assert_eq!(once_more.change, RevokeChange::Unchanged);

    // The event log has exactly the two changes, in order.
    let events = ledger.revocations_since(0, 10).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].seq, 0);
    assert_eq!(events[1].seq, 1);
    assert_eq!(events[1].revocation.reason, Reason::KeyCompromise);
    assert_eq!(ledger.revocations_since(1, 10).unwrap().len(), 1);

    // The CRL shard index lists it once, in its shard only.
    let mut in_shard = Vec::new();
    ledger
        .for_each_revoked_in_shard(2, |s, r| {
            in_shard.push((s.to_vec(), r.revocation.reason, r.not_after));
            Ok(())
        })
        .unwrap();
    let not_after = ledger.get(&a).unwrap().unwrap().not_after;
    assert_eq!(
        in_shard,
        vec![(a.as_bytes().to_vec(), Reason::KeyCompromise, not_after)]
    );
    let mut other = 0;
    ledger
        .for_each_revoked_in_shard(1, |_, _| {
            other += 1;
            Ok(())
        })
        .unwrap();
    ledger
        .for_each_revoked_in_shard(3, |_, _| {
            other += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(other, 0);
}

#[test]
fn unknown_serial_cannot_be_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let err = ledger
        .revoke(&Serial::random(), Reason::KeyCompromise, 1)
        .unwrap_err();
    assert!(matches!(err, LedgerError::NotFound(_)));
    assert_eq!(ledger.next_revocation_seq().unwrap(), 0);
}

#[test]
fn data_survives_reopen_and_a_second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Serial::random();
    {
        let ledger = Ledger::open(dir.path()).unwrap();
        ledger
            .insert(&record(&a, Some("DEV"), 5_000, 0), b"der")
            .unwrap();
        ledger.revoke(&a, Reason::KeyCompromise, 42).unwrap();
        let second = Ledger::open(dir.path());
        assert!(matches!(second, Err(LedgerError::Locked(_))), "{second:?}");
    }
    let ledger = Ledger::open(dir.path()).unwrap();
    let rec = ledger.get(&a).unwrap().unwrap();
    assert_eq!(rec.revocation.unwrap().time, 42);
    assert_eq!(ledger.count().unwrap(), 1);
    assert_eq!(ledger.next_revocation_seq().unwrap(), 1);
    assert_eq!(ledger.serials_by_device("dev").unwrap(), vec![a]);
}

#[test]
fn several_revocations_in_one_write_get_consecutive_log_entries() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let serials: Vec<Serial> = (0..3).map(|_| Serial::random()).collect();
    for (i, s) in serials.iter().enumerate() {
        ledger
            .insert(&record(s, Some("PHONE"), 5_000, i as u32), b"der")
            .unwrap();
    }
    ledger
        .revoke(&serials[1], Reason::Superseded, 1_500)
        .unwrap();
    let start = ledger.next_revocation_seq().unwrap();
    let out = ledger
        .revoke_many_with(&serials, Reason::CessationOfOperation, 2_000, |_| Ok(None))
        .unwrap();
    let changes: Vec<RevokeChange> = out.iter().map(|o| o.change).collect();
    assert_eq!(
        changes,
        [
            RevokeChange::Revoked,
            RevokeChange::Unchanged,
            RevokeChange::Revoked
        ]
    );
    let log = ledger.revocations_since(start, 10).unwrap();
    let logged: Vec<(u64, Serial)> = log.iter().map(|e| (e.seq, e.serial.clone())).collect();
    assert_eq!(
        logged,
        [(start, serials[0].clone()), (start + 1, serials[2].clone())]
    );
    assert_eq!(ledger.next_revocation_seq().unwrap(), start + 2);
    // The one revoked before keeps its reason and time.
    let kept = ledger
        .get(&serials[1])
        .unwrap()
        .unwrap()
        .revocation
        .unwrap();
    assert_eq!((kept.reason, kept.time), (Reason::Superseded, 1_500));
    // A serial we never issued: nothing written.
    let err = ledger
        .revoke_many_with(&[Serial::random()], Reason::KeyCompromise, 3_000, |_| {
            Ok(None)
        })
        .unwrap_err();
    assert!(matches!(err, LedgerError::NotFound(_)));
    assert_eq!(ledger.next_revocation_seq().unwrap(), start + 2);
}
