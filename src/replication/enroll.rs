//! Enrolling stateless responders (the primary's side).
//!
//! `custos responder token create --name NAME` makes a one-time join secret
//! (valid for a day) and prints a join token carrying the primary's HTTPS
//! URL, the root certificate's SHA-256 fingerprint and the secret. A
//! responder started with it makes its own P-256 key, pins the root by that
//! fingerprint and sends a CSR with the secret to `POST /responder/enroll`;
//! the primary answers a delegated OCSP responder certificate for that key
//! (EKU OCSPSigning, ocsp-nocheck, `ocsp.signer_validity_days` long) and a
//! renewal secret, which the responder presents (with a new CSR) to renew.
//! Only SHA-256 hashes of the secrets are kept; the CA key never leaves the
//! primary. Responder certificates are recorded in the ledger like any
//! other (profile `ocsp-responder`), so they have OCSP answers, reach the
//! CRL and Redis when revoked, and `custos responder revoke --name NAME`
//! (or `custos revoke --serial` of its certificate) cuts a responder off:
//! the primary refuses its renewals, and a responder that hears its own
//! certificate revoked stops signing with that key.

use crate::ca::Ca;
use crate::ledger::{Ledger, LedgerError, ResponderRecord};
use crate::model::sha256_hex;
use crate::ra::Authority;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How long a join secret works.
pub const JOIN_VALIDITY_SECS: u64 = 24 * 3600;
/// The join token's prefix.
pub const TOKEN_PREFIX: &str = "custos-join.";

/// What a join token carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// The primary's HTTPS base URL.
    pub url: String,
    /// SHA-256 fingerprint (hex) of the root certificate to trust.
    pub root: String,
    /// The responder's name.
    pub name: String,
    /// The one-time secret.
    pub secret: String,
}

impl JoinToken {
    /// The printable token.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Reads a printed token.
    pub fn decode(text: &str) -> Result<JoinToken, String> {
        let body = text
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| format!("a join token starts with {TOKEN_PREFIX}"))?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| "the join token is damaged (not base64url)".to_string())?;
        serde_json::from_slice(&json).map_err(|_| "the join token is damaged".to_string())
    }
}

/// `POST /responder/enroll`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The responder's name.
    pub name: String,
    /// The join secret (first enrolment) or the renewal secret.
    pub secret: String,
    /// PEM CSR for the responder's key.
    pub csr: String,
}

/// The answer to an enrolment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollAnswer {
    /// The delegated OCSP responder certificate (PEM).
    pub certificate: String,
    /// The secret the next renewal must present.
    pub renewal_secret: String,
}

/// Why an enrolment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The name is not usable.
    #[error("responder names hold 1 to 64 letters, digits, '-' or '_'")]
    BadName,
    /// Unknown name, wrong, used or expired secret (one answer for all).
    #[error("unknown responder, or a wrong, used or expired secret")]
    Refused,
    /// The responder, or its current certificate, was revoked.
    #[error("responder {0:?} was revoked; create a new join token to enrol it again")]
    Revoked(String),
    /// `responder revoke` for a name never enrolled.
    #[error("no responder is named {0:?}")]
    Unknown(String),
    /// The CSR did not verify.
    #[error("CSR: {0}")]
    Csr(String),
    /// Our failure.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Our failure.
    #[error("issuing the responder certificate failed: {0}")]
    Issue(String),
}

fn check_name(name: &str) -> Result<(), EnrollError> {
    let ok = name.len() <= 64 && crate::model::is_plain_name(name);
    ok.then_some(()).ok_or(EnrollError::BadName)
}

fn new_secret() -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut raw = [0u8; 32];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Makes a join token for `name` (replacing any earlier enrolment of that
/// name: its renewal secret stops working).
pub fn create_token(
    ledger: &Ledger,
    ca: &Ca,
    authority: &Authority,
    https_base: &str,
    name: &str,
    actor: &str,
    now: u64,
) -> Result<JoinToken, EnrollError> {
    check_name(name)?;
    let secret = new_secret();
    ledger.update_responder(name, |_| {
        Ok::<_, EnrollError>(ResponderRecord {
            name: name.to_string(),
            join_sha256: Some(sha256_hex(secret.as_bytes())),
            join_expires_at: now + JOIN_VALIDITY_SECS,
            ..ResponderRecord::default()
        })
    })?;
    authority.audit(
        actor,
        "responder.token",
        serde_json::json!({"name": name, "expires_at": now + JOIN_VALIDITY_SECS, "outcome": "created"}),
        now,
    );
    Ok(JoinToken {
        url: https_base.trim_end_matches('/').to_string(),
        root: ca.root_fingerprint().replace(':', "").to_ascii_lowercase(),
        name: name.to_string(),
        secret,
    })
}

/// Enrols (or renews) a responder: checks its secret, issues a responder
/// certificate for its CSR's key, rotates the renewal secret.
pub fn enroll(
    ledger: &Ledger,
    ca: &Ca,
    authority: &Authority,
    validity_days: u32,
    req: &EnrollRequest,
    now: u64,
) -> Result<EnrollAnswer, EnrollError> {
    check_name(&req.name)?;
    let csr =
        crate::csr::verify_csr(req.csr.as_bytes()).map_err(|e| EnrollError::Csr(e.to_string()))?;
    let presented = sha256_hex(req.secret.as_bytes());
    let renewal = new_secret();
    let mut issued = None;
    let mut renewing = false;
    let mut asked_again = false;
    ledger.update_responder(&req.name, |current| {
        let Some(mut rec) = current else {
            return Err(EnrollError::Refused);
        };
        let same = |h: &Option<String>| {
            h.as_deref()
                .is_some_and(|h| custos_webhooks::auth::same_secret(h, &presented))
        };
        let by_join = same(&rec.join_sha256) && now < rec.join_expires_at;
        // The secret presented last, again: its answer was lost.
        let again = same(&rec.previous_sha256) && now < rec.previous_until;
        renewing = same(&rec.renewal_sha256);
        if !by_join && !renewing && !again {
            return Err(EnrollError::Refused);
        }
        asked_again = again && !renewing && !by_join;
        renewing |= asked_again;
        if renewing && (rec.revoked_at.is_some() || current_revoked(ledger, &rec)?) {
            return Err(EnrollError::Revoked(req.name.clone()));
        }
        let (_, der) = ca
            .issue_responder_cert(csr.spki.clone(), &req.name, validity_days)
            .map_err(|e| EnrollError::Issue(e.to_string()))?;
        if !asked_again {
            rec.previous_sha256 = Some(presented.clone());
            rec.previous_until = if by_join {
                rec.join_expires_at
            } else {
                u64::MAX
            };
        }
        rec.join_sha256 = None;
        rec.renewal_sha256 = Some(sha256_hex(renewal.as_bytes()));
        rec.certificate = Some(serial_of(&der));
        rec.enrolled_at = Some(now);
        issued = Some(der);
        Ok(rec)
    })?;
    let der = issued.ok_or_else(|| EnrollError::Issue("no certificate".into()))?;
    let actor = format!("responder:{}", req.name);
    authority
        .record_signed(&der, RESPONDER_PROFILE, &actor, now)
        .map_err(|e| EnrollError::Issue(e.to_string()))?;
    authority.audit(
        &actor,
        "responder.enroll",
        serde_json::json!({"name": req.name, "certificate": serial_of(&der), "outcome": if asked_again { "issued again" } else if renewing { "renewed" } else { "enrolled" }}),
        now,
    );
    Ok(EnrollAnswer {
        certificate: crate::ca::to_pem(&der),
        renewal_secret: renewal,
    })
}

/// Whether the certificate last issued to `rec` is revoked in the ledger.
fn current_revoked(ledger: &Ledger, rec: &ResponderRecord) -> Result<bool, LedgerError> {
    let Some(serial) = rec.certificate.as_deref() else {
        return Ok(false);
    };
    let Ok(serial) = serial.parse::<crate::serial::Serial>() else {
        return Ok(false);
    };
    Ok(ledger.get(&serial)?.is_some_and(|r| r.revocation.is_some()))
}

/// What `responder revoke` did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokedResponder {
    /// The responder's name.
    pub name: String,
    /// The serial (hex) of the certificate revoked, if it had one.
    pub certificate: Option<String>,
}

/// Cuts a responder off: its join and renewal secrets stop working, and
/// the certificate last issued to it is revoked with `reason` (published
/// to OCSP, the CRL and Redis like any revocation).
pub fn revoke(
    authority: &Authority,
    name: &str,
    reason: crate::revocation::Reason,
    actor: &str,
    now: u64,
) -> Result<RevokedResponder, EnrollError> {
    check_name(name)?;
    let ledger = authority.issuer().ledger();
    let rec = ledger.update_responder(name, |current| {
        let mut rec = current.ok_or_else(|| EnrollError::Unknown(name.to_string()))?;
        rec.join_sha256 = None;
        rec.renewal_sha256 = None;
        rec.previous_sha256 = None;
        rec.revoked_at = Some(now);
        Ok::<_, EnrollError>(rec)
    })?;
    let serial = rec
        .certificate
        .as_deref()
        .and_then(|s| s.parse::<crate::serial::Serial>().ok());
    if let Some(serial) = &serial {
        match authority.revoke_serial(serial, reason, Some(actor), now) {
            Ok(_) => {}
            // Enrolled before responder certificates were recorded.
            Err(crate::ra::AdminError::Ledger(LedgerError::NotFound(_))) => {}
            Err(e) => return Err(EnrollError::Issue(e.to_string())),
        }
    }
    authority.audit(
        actor,
        "responder.revoke",
        serde_json::json!({"name": name, "certificate": rec.certificate, "reason": reason.name(), "outcome": "revoked"}),
        now,
    );
    Ok(RevokedResponder {
        name: name.to_string(),
        certificate: rec.certificate,
    })
}

/// The profile name responder certificates are recorded under.
pub const RESPONDER_PROFILE: &str = "ocsp-responder";

fn serial_of(der: &[u8]) -> String {
    use der::Decode;
    x509_cert::Certificate::from_der(der)
        .ok()
        .and_then(|c| {
            crate::serial::Serial::from_bytes(c.tbs_certificate.serial_number.as_bytes()).ok()
        })
        .map(|s| s.to_hex())
        .unwrap_or_default()
}
