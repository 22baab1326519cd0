//! One `PKIOperation`: read and check the request, do what it asks, answer
//! with a `CertRep` signed by the RA.
//!
//! - `PKCSReq`: the CSR's challengePassword must be a one-time challenge
//!   (or the legacy `scep.static_challenge`); the certificate is issued
//!   for, and linked to, the challenge's device. A CSR whose subject names
//!   a different inventory device is refused.
//! - `RenewalReq`: signed with a certificate this CA issued over SCEP or
//!   ACME, still good; issued for that certificate's device after the same
//!   inventory checks.
//! - `CertPoll`/`GetCertInitial`: the certificate a transaction was issued
//!   (custos never leaves a request pending).
//! - `GetCert`, `GetCRL`: a certificate, or the CRL covering it, by issuer
//!   and serial.
//!
//! A request re-sent with the same transactionID and key gets the same
//! certificate, not a second one. Every refusal is a `CertRep` with a
//! failInfo code; the reason goes to the log, not to the client.

pub use super::context::ScepContext;
use super::context::{refused, Fail};
use super::enrolling::{challenge_device, named_device, scep_allowed};
use crate::ca::ScepRa;
use crate::ledger::ScepTransaction;
use crate::model::sha256_hex;
use crate::ra::issuance::IssueError;
use crate::ra::AdminError;
use crate::serial::Serial;
use custos_scep::envelope::{open, Opened};
use custos_scep::{cert_rep, FailInfo, MessageType, Outcome, PkiMessage};
use der::{Decode, Encode};

/// How long a re-sent request gets the certificate already issued for it.
const RESEND_WINDOW_SECS: u64 = 600;

/// The HTTP-level outcome of a `PKIOperation`.
#[derive(Debug)]
pub enum Answer {
    /// A `CertRep` (success or a SCEP failure): 200.
    Reply(Vec<u8>),
    /// Not a SCEP message at all: 400 with this reason.
    Malformed(String),
    /// Our fault: 500 (details logged).
    Internal,
}

/// Handles one `PKIOperation` message (the POST body, or the GET
/// `message` decoded).
pub fn pki_operation(cx: &ScepContext<'_>, body: &[u8], now: u64) -> Answer {
    let msg = match PkiMessage::parse(body) {
        Ok(m) => m,
        Err(e) => return Answer::Malformed(e.to_string()),
    };
    let ra = match cx.ca.scep_ra(cx.config.ra_key_bits) {
        Ok(ra) => ra,
        Err(e) => {
            tracing::error!(error = %e, "SCEP: the RA is not available");
            return Answer::Internal;
        }
    };
    let outcome = match handle(cx, &ra, &msg, now) {
        Ok(outcome) => outcome,
        Err(Fail::Refused(r)) => {
            tracing::warn!(
                transaction = %msg.transaction_id,
                message_type = ?msg.message_type,
                fail_info = ?r.fail_info,
                reason = %r.reason,
                "SCEP request refused"
            );
            Outcome::Failure(r.fail_info)
        }
        Err(Fail::Internal(e)) => {
            tracing::error!(transaction = %msg.transaction_id, error = %e, "SCEP request failed");
            return Answer::Internal;
        }
    };
    match cert_rep(&msg, &outcome, &*ra) {
        Ok(der) => Answer::Reply(der),
        Err(e) => {
            tracing::error!(transaction = %msg.transaction_id, error = %e, "SCEP reply could not be built");
            Answer::Internal
        }
    }
}

fn handle(cx: &ScepContext<'_>, ra: &ScepRa, msg: &PkiMessage, now: u64) -> Result<Outcome, Fail> {
    msg.verify()?;
    if let Some(t) = msg.signing_time {
        if t.abs_diff(now) > cx.config.max_clock_skew_secs {
            return Err(refused(
                FailInfo::BadTime,
                format!("signingTime is {} s from our clock", t.abs_diff(now)),
            ));
        }
    }
    match msg.message_type {
        MessageType::PkcsReq => enrol(cx, ra, msg, now, None),
        MessageType::RenewalReq => {
            let device = renewing_device(cx, msg, now)?;
            enrol(cx, ra, msg, now, Some(device))
        }
        MessageType::CertPoll => poll(cx, ra, msg),
        MessageType::GetCert => get_cert(cx, ra, msg),
        MessageType::GetCrl => get_crl(cx, ra, msg, now),
        MessageType::CertRep => Err(refused(
            FailInfo::BadRequest,
            "CertRep is the CA's message, not a request",
        )),
    }
}

fn opened(msg: &PkiMessage, ra: &ScepRa) -> Result<Opened, Fail> {
    Ok(open(&msg.envelope, ra)?)
}

/// The device a `RenewalReq` renews for: the signer's certificate must be
/// one this CA issued (byte for byte), good now, linked to a device.
fn renewing_device(cx: &ScepContext<'_>, msg: &PkiMessage, now: u64) -> Result<String, Fail> {
    let cert = x509_cert::Certificate::from_der(&msg.signer_cert)
        .map_err(|e| refused(FailInfo::BadCertId, format!("signer certificate: {e}")))?;
    let serial = Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes())
        .map_err(|e| refused(FailInfo::BadCertId, format!("signer serial: {e}")))?;
    let not_ours = || {
        refused(
            FailInfo::BadCertId,
            "a RenewalReq must be signed with a certificate this CA issued",
        )
    };
    if cx.ledger.get_der(&serial)?.as_deref() != Some(msg.signer_cert.as_slice()) {
        return Err(not_ours());
    }
    let record = cx.ledger.get(&serial)?.ok_or_else(not_ours)?;
    if record.revocation.is_some() {
        return Err(refused(
            FailInfo::BadRequest,
            format!(
                "certificate {} is revoked; enrol again with a new challenge",
                serial.to_hex()
            ),
        ));
    }
    if record.not_after <= now {
        return Err(refused(
            FailInfo::BadRequest,
            format!(
                "certificate {} has expired; enrol again with a new challenge",
                serial.to_hex()
            ),
        ));
    }
    record.device.serial_number.clone().ok_or_else(|| {
        refused(
            FailInfo::BadRequest,
            format!(
                "certificate {} is not linked to an inventory device",
                serial.to_hex()
            ),
        )
    })
}

/// SCEP device certificates name the device, not a host: DNS and IP
/// subjectAltNames are refused.
fn refuse_network_names(csr: &crate::csr::VerifiedCsr) -> Result<(), Fail> {
    use x509_cert::ext::pkix::name::GeneralName;
    match csr
        .requested_sans
        .iter()
        .find(|s| matches!(s, GeneralName::DnsName(_) | GeneralName::IpAddress(_)))
    {
        Some(san) => Err(refused(
            FailInfo::BadRequest,
            format!("SCEP device certificates carry no DNS or IP names; the CSR asks for {san:?}"),
        )),
        None => Ok(()),
    }
}

/// A request re-sent soon (the client lost our answer) gets the same
/// certificate again, while it is good. Later, or once that certificate
/// is revoked, the same key and transactionID (strongSwan derives it from
/// the key) make a new request that needs its own challenge.
fn resent(
    cx: &ScepContext<'_>,
    tid_hash: &str,
    key_sha256: &str,
    csr_sha256: &str,
    now: u64,
) -> Result<Option<ScepTransaction>, Fail> {
    let Some(tx) = cx.ledger.scep_transaction(tid_hash)? else {
        return Ok(None);
    };
    if tx.key_sha256 != key_sha256
        || tx.csr_sha256 != csr_sha256
        || now.saturating_sub(tx.at) > RESEND_WINDOW_SECS
    {
        return Ok(None);
    }
    let Ok(serial) = tx.certificate.parse::<Serial>() else {
        return Ok(None);
    };
    Ok(match cx.ledger.get(&serial)? {
        Some(r) if r.revocation.is_none() && r.not_after > now => Some(tx),
        _ => None,
    })
}

/// `PKCSReq` (device `None`: from the challenge) and `RenewalReq` (device
/// given).
fn enrol(
    cx: &ScepContext<'_>,
    ra: &ScepRa,
    msg: &PkiMessage,
    now: u64,
    renewal_device: Option<String>,
) -> Result<Outcome, Fail> {
    let Opened {
        content: csr_der,
        cipher,
    } = opened(msg, ra)?;
    let csr = crate::csr::verify_csr(&csr_der)
        .map_err(|e| refused(FailInfo::BadRequest, format!("CSR: {e}")))?;
    refuse_network_names(&csr)?;
    let key_sha256 = sha256_hex(&csr.spki_der);
    let tid_hash = sha256_hex(msg.transaction_id.as_bytes());
    let csr_sha256 = sha256_hex(&csr_der);
    if let Some(tx) = resent(cx, &tid_hash, &key_sha256, &csr_sha256, now)? {
        return certificate_reply(cx, &tx.certificate, msg, cipher);
    }
    let named = named_device(cx.ledger, &csr.subject)?;
    let device = match renewal_device {
        Some(d) => {
            if let Some(found) = cx.ledger.device(&d)? {
                scep_allowed(cx, &found)?;
            }
            d
        }
        None => challenge_device(cx, msg, &csr_der, &key_sha256, named.as_deref(), now)?,
    };
    if let Some(named) = &named {
        if *named != device {
            return Err(refused(
                FailInfo::BadRequest,
                format!("the request names device {named:?}, but it may enrol only {device:?}"),
            ));
        }
    }
    let issued = cx
        .authority
        .issue_csr_for_device_via(
            &csr_der,
            Some(&cx.config.profile),
            Some(&device),
            "scep",
            crate::model::device::Enrolment::Scep,
            now,
        )
        .map_err(|e| match e {
            AdminError::Issue(IssueError::Csr(e)) => refused(FailInfo::BadRequest, e.to_string()),
            AdminError::Issue(IssueError::Refused(why)) => refused(FailInfo::BadRequest, why),
            other => Fail::Internal(other.into()),
        })?;
    cx.ledger.put_scep_transaction(
        &tid_hash,
        &ScepTransaction {
            device: device.clone(),
            key_sha256,
            csr_sha256,
            certificate: issued.record.serial.to_hex(),
            at: now,
        },
    )?;
    tracing::info!(
        serial = %issued.record.serial,
        device = %device,
        transaction = %msg.transaction_id,
        renewal = msg.message_type == MessageType::RenewalReq,
        "SCEP certificate issued"
    );
    Outcome::certificates(&[&issued.der, cx.ca.issuer_der()], msg, cipher)
        .map_err(|e| Fail::Internal(e.into()))
}

/// A success carrying the certificate with this serial (hex) and the
/// issuing CA.
fn certificate_reply(
    cx: &ScepContext<'_>,
    serial_hex: &str,
    msg: &PkiMessage,
    cipher: custos_scep::ContentCipher,
) -> Result<Outcome, Fail> {
    let serial = serial_hex
        .parse::<Serial>()
        .map_err(|e| Fail::Internal(anyhow::anyhow!("{e}")))?;
    let der = cx
        .ledger
        .get_der(&serial)?
        .ok_or_else(|| refused(FailInfo::BadCertId, format!("no certificate {serial_hex}")))?;
    Outcome::certificates(&[&der, cx.ca.issuer_der()], msg, cipher)
        .map_err(|e| Fail::Internal(e.into()))
}

/// `CertPoll`: what the transaction was issued.
fn poll(cx: &ScepContext<'_>, ra: &ScepRa, msg: &PkiMessage) -> Result<Outcome, Fail> {
    let Opened { content, cipher } = opened(msg, ra)?;
    custos_scep::IssuerAndSubject::from_der(&content)
        .map_err(|e| refused(FailInfo::BadRequest, format!("CertPoll content: {e}")))?;
    match cx
        .ledger
        .scep_transaction(&sha256_hex(msg.transaction_id.as_bytes()))?
    {
        Some(tx) => certificate_reply(cx, &tx.certificate, msg, cipher),
        None => Err(refused(
            FailInfo::BadCertId,
            "no request with this transactionID",
        )),
    }
}

/// The serial of an IssuerAndSerialNumber naming our issuing CA.
fn our_serial(cx: &ScepContext<'_>, content: &[u8]) -> Result<Serial, Fail> {
    let isn = custos_scep::IssuerAndSerialNumber::from_der(content)
        .map_err(|e| refused(FailInfo::BadRequest, format!("IssuerAndSerialNumber: {e}")))?;
    let issuer = &cx.ca.issuer_cert().tbs_certificate.subject;
    if isn.issuer.to_der().ok() != issuer.to_der().ok() {
        return Err(refused(FailInfo::BadCertId, "not this CA's issuer"));
    }
    Serial::from_bytes(isn.serial_number.as_bytes())
        .map_err(|e| refused(FailInfo::BadCertId, format!("serial: {e}")))
}

/// `GetCert`: a certificate by issuer and serial.
fn get_cert(cx: &ScepContext<'_>, ra: &ScepRa, msg: &PkiMessage) -> Result<Outcome, Fail> {
    let Opened { content, cipher } = opened(msg, ra)?;
    let serial = our_serial(cx, &content)?;
    certificate_reply(cx, &serial.to_hex(), msg, cipher)
}

/// `GetCRL`: the CRL shard covering a certificate.
fn get_crl(
    cx: &ScepContext<'_>,
    ra: &ScepRa,
    msg: &PkiMessage,
    _now: u64,
) -> Result<Outcome, Fail> {
    let Opened { content, cipher } = opened(msg, ra)?;
    let serial = our_serial(cx, &content)?;
    let record = cx.ledger.get(&serial)?.ok_or_else(|| {
        refused(
            FailInfo::BadCertId,
            format!("no certificate {}", serial.to_hex()),
        )
    })?;
    let crl = cx.crl.current_settled(record.crl_shard).ok_or_else(|| {
        Fail::Internal(anyhow::anyhow!(
            "CRL shard {} is being re-signed",
            record.crl_shard
        ))
    })?;
    Outcome::crl(&crl.der, msg, cipher).map_err(|e| Fail::Internal(e.into()))
}
