//! The registration authority: the operations administrators (admin API and
//! the offline CLI) perform on the CA and ledger, in one place so both paths
//! behave identically.
//!
//! It decides nothing about HTTP. Later, protocol front ends (ACME, webhooks)
//! call the same functions; OCSP and CRL refreshes hang off revocations here.

pub mod issuance;

use crate::ca::profile::Profiles;
use crate::csr::verify_csr;
use crate::ledger::{BoxError, CertRecord, CertStatus, LedgerError, RevokeChange, RevokeOutcome};
use crate::model::time::rfc3339;
use crate::ra::issuance::{Identity, IssueError, Issued, Issuer};
use crate::revocation::Reason;
use crate::serial::Serial;
use crate::status::crl_publisher::CrlPublisher;
use crate::status::responder::Responder;
use crate::support::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Administrative operations.
#[derive(Clone, Debug)]
pub struct Authority {
    issuer: Issuer,
    profiles: Profiles,
    metrics: Metrics,
    responder: Arc<Responder>,
    crl: Arc<CrlPublisher>,
}

/// A certificate as the admin API and CLI show it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertView {
    /// Uppercase hex serial.
    pub serial: String,
    /// Subject DN.
    pub subject: String,
    /// good | revoked | expired.
    pub status: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// RFC 3339.
    pub issued_at: String,
    /// Profile name.
    pub profile: String,
    /// CRL shard.
    pub crl_shard: u32,
    /// SAN DNS names.
    pub dns_names: Vec<String>,
    /// SAN IP addresses.
    pub ip_addresses: Vec<String>,
    /// Device identifiers.
    pub device: crate::ledger::DeviceIds,
    /// ACME account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_account: Option<String>,
    /// Revocation time (RFC 3339), if revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Revocation reason, if revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
    /// PEM certificate (show and issue only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
}

impl CertView {
    /// The view of a record at `now`, with the PEM when given.
    pub fn new(record: &CertRecord, now: u64, der: Option<&[u8]>) -> CertView {
        CertView {
            serial: record.serial.to_hex(),
            subject: record.subject.clone(),
            status: match record.status(now) {
                CertStatus::Good => "good",
                CertStatus::Revoked => "revoked",
                CertStatus::Expired => "expired",
            }
            .into(),
            not_before: rfc3339(record.not_before),
            not_after: rfc3339(record.not_after),
            issued_at: rfc3339(record.issued_at),
            profile: record.profile.clone(),
            crl_shard: record.crl_shard,
            dns_names: record.dns_names.clone(),
            ip_addresses: record.ip_addresses.clone(),
            device: record.device.clone(),
            acme_account: record.acme_account.clone(),
            revoked_at: record.revocation.map(|r| rfc3339(r.time)),
            revocation_reason: record.revocation.map(|r| r.reason.name().to_string()),
            certificate_pem: der.map(crate::ca::to_pem),
        }
    }
}

/// One certificate's result in a revocation call.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevokeResult {
    /// Serial.
    pub serial: String,
    /// What the call changed.
    pub change: RevokeChange,
    /// Reason now recorded.
    pub reason: String,
    /// Revocation time now recorded (RFC 3339).
    pub revoked_at: String,
}

impl RevokeResult {
    fn from_outcome(o: &RevokeOutcome) -> RevokeResult {
        let rev = o
            .record
            .revocation
            .expect("a revoke outcome always carries a revocation");
        RevokeResult {
            serial: o.record.serial.to_hex(),
            change: o.change,
            reason: rev.reason.name().into(),
            revoked_at: rfc3339(rev.time),
        }
    }
}

/// Errors of admin operations.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Issuance failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// Ledger failure or unknown serial.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Unknown profile.
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    /// No certificate is linked to the device.
    #[error("no certificates are linked to device {0:?}")]
    UnknownDevice(String),
}

impl Authority {
    /// An authority over an issuer.
    pub fn new(
        issuer: Issuer,
        profiles: Profiles,
        metrics: Metrics,
        responder: Arc<Responder>,
        crl: Arc<CrlPublisher>,
    ) -> Authority {
        Authority {
            issuer,
            profiles,
            metrics,
            responder,
            crl,
        }
    }

    fn revoke_one(
        &self,
        serial: &Serial,
        reason: Reason,
        now: u64,
    ) -> Result<RevokeOutcome, LedgerError> {
        // The OCSP responses are re-signed inside the revocation's synced
        // batch: once this returns, every OCSP answer says revoked.
        self.issuer
            .ledger()
            .revoke_with(serial, reason, now, |record| {
                self.responder
                    .precompute(record, now)
                    .map(Some)
                    .map_err(BoxError::from)
            })
    }

    /// The issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The profiles.
    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// Issues for a CSR the administrator vouches for (audited as done by
    /// the library's caller).
    pub fn issue_csr(
        &self,
        csr: &[u8],
        profile: Option<&str>,
        now: u64,
    ) -> Result<Issued, AdminError> {
        self.issue_csr_for_device(csr, profile, None, "library", now)
    }

    /// Appends one audit entry; a failure is logged, not returned: the
    /// change it records is already durable and acknowledged.
    pub fn audit(&self, actor: &str, kind: &str, detail: serde_json::Value, now: u64) {
        let entry = crate::ledger::AuditEntry::new(now, kind, actor, detail);
        if let Err(e) = self.issuer.ledger().append_audit(&entry) {
            tracing::error!(error = %e, kind, actor, "could not write the audit entry");
        }
    }

    /// Issues for a CSR the administrator vouches for, linked to an
    /// inventory device (serial number or UDID) when `device` is given, so
    /// that `revoke --device` and the MDM webhooks reach it. The device
    /// must be known, active and compliant, as for ACME device orders.
    pub fn issue_csr_for_device(
        &self,
        csr: &[u8],
        profile: Option<&str>,
        device: Option<&str>,
        actor: &str,
        now: u64,
    ) -> Result<Issued, AdminError> {
        let admin = crate::model::device::Enrolment::Admin;
        self.issue_csr_for_device_via(csr, profile, device, actor, admin, now)
    }

    /// [`Authority::issue_csr_for_device`] for a front end that enrols
    /// devices itself (SCEP): the device's enrolment method is `via`.
    pub fn issue_csr_for_device_via(
        &self,
        csr: &[u8],
        profile: Option<&str>,
        device: Option<&str>,
        actor: &str,
        via: crate::model::device::Enrolment,
        now: u64,
    ) -> Result<Issued, AdminError> {
        let profile = self
            .profiles
            .get(profile)
            .ok_or_else(|| AdminError::UnknownProfile(profile.unwrap_or_default().to_string()))?;
        let csr = verify_csr(csr).map_err(IssueError::from)?;
        let mut identity = Identity::vouched_from_csr(&csr)?;
        identity.enrolment = Some(via);
        let mut _device_guard = None;
        if let Some(id) = device {
            if let Some(d) = self.issuer.ledger().device(id)? {
                // Checked and issued under the device's lock: a `lost`
                // event processed meanwhile waits, then revokes this one.
                _device_guard = Some(crate::devices::device_lock(&d.serial));
            }
            let found = self.issuer.ledger().device(id)?.ok_or_else(|| {
                IssueError::Refused(format!(
                    "device {id:?} is not in the inventory (add it with `custos devices add --serial {id}`)"
                ))
            })?;
            if let Some(why) = found.refusal() {
                return Err(IssueError::Refused(why).into());
            }
            identity.device = crate::ledger::DeviceIds {
                serial_number: Some(found.serial.clone()),
                udid: found.udid.clone(),
                permanent_id: None,
            };
        }
        self.issue_verified(&csr, profile, &identity, actor, now)
    }

    /// Issues for a verified CSR to an identity the caller has proven (ACME
    /// authorizations), with the profile's template.
    pub fn issue_verified(
        &self,
        csr: &crate::csr::VerifiedCsr,
        profile: &crate::ca::profile::Profile,
        identity: &Identity,
        actor: &str,
        now: u64,
    ) -> Result<Issued, AdminError> {
        let issued = self.issuer.issue(csr, profile, identity, now)?;
        self.metrics.issued.inc();
        if let Some(device) = &identity.device.serial_number {
            // How the device last enrolled, for the inventory (a migration
            // from SCEP to ACME is watched there) and SCEP's downgrade
            // check. Not fatal: the certificate is issued and recorded.
            if let Err(e) =
                self.issuer
                    .ledger()
                    .set_device_enrolment(device, identity.enrolment(), now)
            {
                tracing::warn!(device = %device, error = %e, "could not record how the device enrolled");
            }
        }
        let r = &issued.record;
        self.audit(
            actor,
            "issuance",
            serde_json::json!({
                "certificate": r.serial.to_hex(),
                "subject": r.subject,
                "profile": profile.name,
                "device": r.device.serial_number,
                "udid": r.device.udid,
                "not_after": r.not_after,
                "outcome": "issued",
            }),
            now,
        );
        if let Err(e) = self.responder.on_issued(&issued.record, now) {
            // Not fatal: the responder signs on demand when nothing is stored.
            tracing::warn!(serial = %issued.record.serial, error = %e, "could not precompute OCSP responses");
        }
        tracing::info!(serial = %issued.record.serial, profile = %profile.name, subject = %issued.record.subject, "certificate issued");
        Ok(issued)
    }

    /// Records a certificate the CA signed outside the profiles (see
    /// [`Issuer::record_signed`]), audits it and presigns its responses.
    pub fn record_signed(
        &self,
        der: &[u8],
        profile: &str,
        actor: &str,
        now: u64,
    ) -> Result<CertRecord, AdminError> {
        let record = self.issuer.record_signed(der, profile, now)?;
        self.metrics.issued.inc();
        self.audit(
            actor,
            "issuance",
            serde_json::json!({
                "certificate": record.serial.to_hex(),
                "subject": record.subject,
                "profile": profile,
                "not_after": record.not_after,
                "outcome": "issued",
            }),
            now,
        );
        if let Err(e) = self.responder.on_issued(&record, now) {
            tracing::warn!(serial = %record.serial, error = %e, "could not precompute OCSP responses");
        }
        Ok(record)
    }

    /// Revokes one certificate.
    pub fn revoke_serial(
        &self,
        serial: &Serial,
        reason: Reason,
        actor: Option<&str>,
        now: u64,
    ) -> Result<RevokeResult, AdminError> {
        let outcome = self.revoke_one(serial, reason, now)?;
        self.after_revoke(&outcome, actor, now);
        Ok(RevokeResult::from_outcome(&outcome))
    }

    /// Revokes every unexpired certificate linked to a device identifier.
    pub fn revoke_device(
        &self,
        device: &str,
        reason: Reason,
        actor: Option<&str>,
        now: u64,
    ) -> Result<Vec<RevokeResult>, AdminError> {
        let ledger = self.issuer.ledger();
        let serials = ledger.serials_by_device(device)?;
        if serials.is_empty() {
            return Err(AdminError::UnknownDevice(device.to_string()));
        }
        let mut live = Vec::new();
        for serial in serials {
            let Some(record) = ledger.get(&serial)? else {
                continue;
            };
            if record.status(now) != CertStatus::Expired {
                live.push(serial);
            }
        }
        // One synced write for all of the device's certificates, their
        // OCSP responses re-signed inside it.
        let outcomes = ledger.revoke_many_with(&live, reason, now, |record| {
            self.responder
                .precompute(record, now)
                .map(Some)
                .map_err(BoxError::from)
        })?;
        let mut results = Vec::new();
        for outcome in &outcomes {
            self.after_revoke(outcome, actor, now);
            results.push(RevokeResult::from_outcome(outcome));
        }
        Ok(results)
    }

    /// Metrics, the CRL trigger and (when `actor` is given: callers that
    /// do not audit the revocation themselves) one audit entry.
    fn after_revoke(&self, outcome: &RevokeOutcome, actor: Option<&str>, now: u64) {
        if let (Some(actor), true) = (actor, outcome.change != RevokeChange::Unchanged) {
            let r = RevokeResult::from_outcome(outcome);
            self.audit(
                actor,
                "revocation",
                serde_json::json!({
                    "certificate": r.serial,
                    "device": outcome.record.device.serial_number,
                    "udid": outcome.record.device.udid,
                    "reason": r.reason,
                    "outcome": r.change,
                }),
                now,
            );
        }
        if outcome.change != RevokeChange::Unchanged {
            // The shard's CRL is re-signed within crl.debounce_ms (when a
            // server runs; the offline CLI's revocations are published at
            // the server's next start).
            self.crl.request(outcome.record.crl_shard);
            let rev = outcome.record.revocation.expect("revoked record");
            self.metrics
                .revoked
                .with_label_values(&[rev.reason.name()])
                .inc();
            tracing::info!(serial = %outcome.record.serial, reason = %rev.reason, change = ?outcome.change, "certificate revoked");
        }
    }

    /// One certificate with its PEM.
    pub fn show(&self, serial: &Serial, now: u64) -> Result<CertView, AdminError> {
        let ledger = self.issuer.ledger();
        let record = ledger
            .get(serial)?
            .ok_or_else(|| LedgerError::NotFound(serial.clone()))?;
        let der = ledger.get_der(serial)?;
        Ok(CertView::new(&record, now, der.as_deref()))
    }

    /// A page of certificates.
    pub fn list(
        &self,
        after: Option<&Serial>,
        limit: usize,
        now: u64,
    ) -> Result<Vec<CertView>, AdminError> {
        Ok(self
            .issuer
            .ledger()
            .list(after, limit)?
            .iter()
            .map(|r| CertView::new(r, now, None))
            .collect())
    }
}
