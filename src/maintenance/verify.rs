//! `custos ledger verify`: reads the whole ledger and checks that what the
//! status readers serve agrees with the records, read-only:
//!
//! - every unexpired certificate's stored OCSP responses verify up to the
//!   issuing CA and state the record's status (and, when revoked, its time
//!   and reason); a missing or expired response is not an error (the
//!   responder signs one from the record on the next request) but is
//!   counted;
//! - every revoked certificate still within the CRL grace period is listed
//!   in its shard's current CRL (whose signature verifies), unless the
//!   revocation came after that CRL was made (a regeneration is pending);
//! - every unexpired certificate linked to a lost or unenrolled device is
//!   revoked;
//! - every index agrees with the records ([`crate::ledger::Ledger::check_indexes`]).

use crate::ca::Ca;
use crate::devices::DeviceStatus;
use crate::ledger::CertRecord;
use crate::ledger::Ledger;
use crate::serial::Serial;
use crate::status::crl_publisher::CrlPublisher;
use custos_ocsp::issuer::HashAlg;
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a verification found.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyReport {
    /// Certificate records read.
    pub certificates: u64,
    /// Unexpired certificates whose stored responses were checked.
    pub responses_checked: u64,
    /// Unexpired certificates with no current stored response (signed on
    /// the next request).
    pub responses_missing: u64,
    /// Revoked certificates checked against their shard's CRL.
    pub crl_entries_checked: u64,
    /// Revocations newer than their shard's current CRL.
    pub crl_regeneration_pending: u64,
    /// Devices checked (all of the inventory).
    pub devices_checked: u64,
    /// Everything that disagrees, one line each.
    pub mismatches: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing disagrees.
    pub fn clean(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// The serials a CRL lists, after checking its signature by the issuer.
fn crl_serials(der: &[u8], issuer: &x509_cert::Certificate) -> anyhow::Result<BTreeSet<Vec<u8>>> {
    let crl = x509_cert::crl::CertificateList::from_der(der)?;
    let tbs = crl.tbs_cert_list.to_der()?;
    let sig = crl
        .signature
        .as_bytes()
        .ok_or_else(|| anyhow::anyhow!("CRL signature has unused bits"))?;
    crate::csr::verify_signature(
        &issuer.tbs_certificate.subject_public_key_info,
        crl.signature_algorithm.oid,
        &tbs,
        sig,
    )
    .map_err(|e| anyhow::anyhow!("CRL signature does not verify: {e}"))?;
    Ok(crl
        .tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let b = r.serial_number.as_bytes();
            b[b.iter().position(|x| *x != 0).unwrap_or(b.len())..].to_vec()
        })
        .collect())
}

fn check_responses(app: Sources<'_>, rec: &CertRecord, now: u64, report: &mut VerifyReport) {
    let issuer = app.ca.issuer_cert();
    let mut current = 0;
    for alg in HashAlg::ALL {
        let stored = match app.ledger.get_precomputed(alg.tag(), &rec.serial) {
            Ok(Some(p)) if p.next_update > now => p,
            Ok(_) => continue,
            Err(e) => {
                report
                    .mismatches
                    .push(format!("{}: stored response unreadable: {e}", rec.serial));
                continue;
            }
        };
        current += 1;
        let answer = match crate::status::ocsp_check::read_verified(&stored.der, issuer, None) {
            Ok(a) => a,
            Err(e) => {
                report
                    .mismatches
                    .push(format!("{}: stored {alg:?} response: {e}", rec.serial));
                continue;
            }
        };
        let expected = match &rec.revocation {
            None => "good",
            Some(_) => "revoked",
        };
        if answer.status != expected {
            report.mismatches.push(format!(
                "{}: stored {alg:?} response says {} but the record says {expected}",
                rec.serial, answer.status
            ));
            continue;
        }
        if let (Some(rev), Some((time, reason))) = (&rec.revocation, answer.revoked_unix) {
            let code = rev.reason.code();
            let want_reason = (code != 0).then_some(code);
            if time != rev.time || reason != want_reason {
                report.mismatches.push(format!(
                    "{}: stored {alg:?} response says revoked at {time} ({reason:?}), the record at {} ({})",
                    rec.serial,
                    rev.time,
                    rev.reason.name()
                ));
            }
        }
    }
    if current == 0 {
        report.responses_missing += 1;
    } else {
        report.responses_checked += 1;
    }
}

/// What `custos ledger verify` reads: the ledger, the CA the responses must
/// verify to, the CRL publisher's shards, and how long expired revoked
/// certificates stay on CRLs.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    /// The ledger.
    pub ledger: &'a Ledger,
    /// The CA.
    pub ca: &'a Ca,
    /// The CRL publisher.
    pub crl: &'a CrlPublisher,
    /// `crl.expired_grace_hours`.
    pub expired_grace_hours: u32,
}

/// Verifies the ledger at `now`; `progress` is called with the number of
/// certificates read so far.
pub fn verify(
    app: Sources<'_>,
    now: u64,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let grace = u64::from(app.expired_grace_hours) * 3600;

    let crls = current_crls(app, &mut report)?;
    let mut after: Option<Serial> = None;
    loop {
        let page = app.ledger.list(after.as_ref(), 1000)?;
        let Some(last) = page.last() else { break };
        after = Some(last.serial.clone());
        for rec in &page {
            report.certificates += 1;
            if rec.not_after >= now {
                check_responses(app, rec, now, &mut report);
            }
            if let Some(rev) = &rec.revocation {
                if rec.not_after.saturating_add(grace) < now {
                    continue;
                }
                report.crl_entries_checked += 1;
                match crls.get(&rec.crl_shard) {
                    Some((covers, serials)) if rev.seq < *covers => {
                        if !serials.contains(rec.serial.as_bytes()) {
                            report.mismatches.push(format!(
                                "{}: revoked (sequence {}) but not in shard {}'s current CRL",
                                rec.serial, rev.seq, rec.crl_shard
                            ));
                        }
                    }
                    _ => report.crl_regeneration_pending += 1,
                }
            }
        }
        progress(report.certificates);
    }

    check_devices(app, now, &mut report)?;
    let (_, problems) = app.ledger.check_indexes()?;
    report.mismatches.extend(problems);
    Ok(report)
}

/// Per shard: the revocation sequence its current CRL covers, and the
/// serials it lists.
type ShardCrls = BTreeMap<u32, (u64, BTreeSet<Vec<u8>>)>;

/// The current CRL of every shard: what it covers (revocation sequence) and
/// the serials it lists. An unreadable CRL is a mismatch.
fn current_crls(app: Sources<'_>, report: &mut VerifyReport) -> anyhow::Result<ShardCrls> {
    let mut crls = ShardCrls::new();
    for shard in 0..app.crl.shard_count() {
        match app.ledger.get_crl(shard)? {
            None => {}
            Some(c) => match crl_serials(&c.der, app.ca.issuer_cert()) {
                Ok(serials) => {
                    crls.insert(shard, (c.covers_seq, serials));
                }
                Err(e) => report
                    .mismatches
                    .push(format!("CRL shard {shard} (number {}): {e}", c.number)),
            },
        }
    }

    Ok(crls)
}

/// Devices that must not hold a working certificate: every unexpired
/// certificate of a lost or unenrolled device must be revoked.
fn check_devices(app: Sources<'_>, now: u64, report: &mut VerifyReport) -> anyhow::Result<()> {
    let mut device_after: Option<String> = None;
    loop {
        let page = app.ledger.list_devices(device_after.as_deref(), 1000)?;
        let Some(last) = page.last() else { break };
        device_after = Some(last.serial.clone());
        for d in &page {
            report.devices_checked += 1;
            if !matches!(d.status, DeviceStatus::Lost | DeviceStatus::Unenrolled) {
                continue;
            }
            let mut serials = BTreeSet::new();
            for id in std::iter::once(&d.serial).chain(d.udid.iter()) {
                serials.extend(app.ledger.serials_by_device(id)?);
            }
            for s in serials {
                if let Some(rec) = app.ledger.get(&s)? {
                    if rec.not_after >= now && rec.revocation.is_none() {
                        report.mismatches.push(format!(
                            "{s}: device {} is {} but its certificate is not revoked",
                            d.serial,
                            d.status.name()
                        ));
                    }
                }
            }
        }
    }

    Ok(())
}
