//! The CRL publisher against a real ledger, without HTTP: expiry grace,
//! shard counts that only grow, and CRL Numbers across reopenings.

use custos::app::{open_ledger, App};
use custos::config::{Config, Overrides};
use custos::ledger::{CertRecord, DeviceIds, Revocation};
use custos::revocation::Reason;
use custos::serial::Serial;
use der::Decode;
use std::path::Path;
use x509_cert::crl::CertificateList;

fn app(data_dir: &Path, shards: u32) -> App {
    let mut config = Config::load(
        None,
        &Overrides {
            data_dir: Some(data_dir.to_path_buf()),
            ..Overrides::default()
        },
    )
    .unwrap();
    config.crl.shards = shards;
    let ledger = open_ledger(&config).unwrap();
    App::build(config, ledger, None, true).unwrap()
}

fn revoked(shard: u32, not_after: u64) -> CertRecord {
    CertRecord {
        serial: Serial::random(),
        issuer_id: "t".into(),
        subject: "CN=t".into(),
        not_before: 0,
        not_after,
        issued_at: 0,
        dns_names: vec![],
        ip_addresses: vec![],
        device: DeviceIds::default(),
        acme_account: None,
        profile: "default".into(),
        crl_shard: shard,
        revocation: Some(Revocation {
            time: 1_700_000_000,
            reason: Reason::Superseded,
            seq: 0,
        }),
    }
}

fn listed(der: &[u8]) -> usize {
    CertificateList::from_der(der)
        .unwrap()
        .tbs_cert_list
        .revoked_certificates
        .map_or(0, |r| r.len())
}

#[test]
fn expired_certificates_leave_after_the_grace_and_shards_never_shrink() {
    let dir = tempfile::tempdir().unwrap();
    let now = custos::model::time::unix_now();
    let grace = 24 * 3600;
    {
        let app = app(dir.path(), 4);
        assert_eq!(app.crl.shard_count(), 4);
        let still = revoked(3, now + 3600);
        let in_grace = revoked(3, now - grace / 2);
        let gone = revoked(3, now - grace - 60);
        for r in [&still, &in_grace, &gone] {
            app.ledger.insert(r, b"0").unwrap();
        }
        let crl = app.crl.generate(3, now).unwrap();
        assert_eq!(crl.entries, 2);
        assert_eq!(listed(&crl.der), 2);
        let empty = app.crl.generate(0, now).unwrap();
        assert_eq!(listed(&empty.der), 0);
        assert!(crl.number < empty.number);
        assert!(app.crl.generate(4, now).is_err());
    }
    // Fewer shards configured later: shard 3 is still published, from the
    // stored CRL, and numbers keep growing.
    let app = app(dir.path(), 1);
    assert_eq!(app.crl.shard_count(), 4);
    let stored = app.crl.current(3).unwrap();
    assert_eq!(stored.entries, 2);
    assert_eq!(listed(&stored.der), 2);
    let again = app.crl.generate(3, now + 1).unwrap();
    assert!(again.number > stored.number);
    assert_eq!(again.entries, 2);
    // Start-up catch-up: nothing is stale right after generation.
    app.crl.generate_all(now + 1).unwrap();
    assert_eq!(app.crl.ensure_current(now + 2).unwrap(), 0);
    // Past half the validity, every shard is re-made.
    assert_eq!(app.crl.ensure_current(now + 13 * 3600).unwrap(), 4);
}

#[test]
fn large_crls_are_stored_in_chunks_and_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(
        None,
        &Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Overrides::default()
        },
    )
    .unwrap();
    let ledger = open_ledger(&config).unwrap();
    let crl = |number: u64, len: usize| custos::ledger::StoredCrl {
        shard: 2,
        number,
        this_update: 1,
        next_update: 2,
        entries: 0,
        covers_seq: 0,
        bytes: len as u64,
        der: (0..len).map(|i| (i % 251) as u8 ^ number as u8).collect(),
    };
    let big = crl(5, (5 << 20) / 2 + 17);
    ledger.store_crl(&big).unwrap();
    assert_eq!(ledger.get_crl(2).unwrap().unwrap(), big);
    let small = crl(6, 1000);
    ledger.store_crl(&small).unwrap();
    assert_eq!(ledger.get_crl(2).unwrap().unwrap(), small);
    assert!(ledger.get_crl(1).unwrap().is_none());
}
