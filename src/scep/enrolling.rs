//! Who may enrol over SCEP: the CSR's challenge (one-time, bound to a
//! device, or the legacy shared one), the device the CSR's subject names,
//! and downgrade protection. Everything is checked before a challenge is
//! used, so a refused request leaves it as it was.

use super::context::{refused, Fail, ScepContext};
use crate::ledger::{ChallengeClaim, Ledger, ScepChallengeUse};
use crate::model::sha256_hex;
use custos_scep::{FailInfo, PkiMessage};
use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use der::Decode;
use x509_cert::name::Name;

/// The challengePassword of a CSR, if it has one.
fn challenge_password(csr_der: &[u8]) -> Result<Option<String>, Fail> {
    let req = x509_cert::request::CertReq::from_der(csr_der)
        .map_err(|e| refused(FailInfo::BadRequest, format!("CSR: {e}")))?;
    let Some(attr) = req
        .info
        .attributes
        .iter()
        .find(|a| a.oid == custos_scep::oid::CHALLENGE_PASSWORD)
    else {
        return Ok(None);
    };
    let value = attr
        .values
        .iter()
        .next()
        .ok_or_else(|| refused(FailInfo::BadRequest, "empty challengePassword"))?;
    directory_string(value)
        .map(Some)
        .ok_or_else(|| refused(FailInfo::BadRequest, "challengePassword is not a string"))
}

/// The text of a DirectoryString (or IA5String) value.
fn directory_string(value: &der::asn1::Any) -> Option<String> {
    value
        .decode_as::<PrintableStringRef<'_>>()
        .map(|s| s.to_string())
        .or_else(|_| {
            value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.to_string())
        })
        .or_else(|_| value.decode_as::<Ia5StringRef<'_>>().map(|s| s.to_string()))
        .or_else(|_| {
            value
                .decode_as::<TeletexStringRef<'_>>()
                .map(|s| s.to_string())
        })
        .ok()
}

/// The device identifiers a subject names: its serialNumber attributes,
/// and its CNs.
fn subject_ids(subject: &Name) -> (Vec<String>, Vec<String>) {
    const SERIAL_NUMBER: der::oid::ObjectIdentifier =
        der::oid::ObjectIdentifier::new_unwrap("2.5.4.5");
    const CN: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("2.5.4.3");
    let (mut serials, mut cns) = (Vec::new(), Vec::new());
    for rdn in subject.0.iter() {
        for atv in rdn.0.iter() {
            if let Some(text) = directory_string(&atv.value) {
                if atv.oid == SERIAL_NUMBER {
                    serials.push(text);
                } else if atv.oid == CN {
                    cns.push(text);
                }
            }
        }
    }
    (serials, cns)
}

/// The inventory device a subject names, if any: a serialNumber attribute
/// always claims one (known or not); a CN only when it is a known device's
/// serial or UDID.
pub(super) fn named_device(ledger: &Ledger, subject: &Name) -> Result<Option<String>, Fail> {
    let (serials, cns) = subject_ids(subject);
    if let Some(s) = serials.first() {
        return Ok(Some(
            ledger
                .device(s)?
                .map(|d| d.serial)
                .unwrap_or_else(|| s.clone()),
        ));
    }
    for cn in cns {
        if let Some(d) = ledger.device(&cn)? {
            return Ok(Some(d.serial));
        }
    }
    Ok(None)
}

/// The device a `PKCSReq`'s challenge allows, claiming a one-time
/// challenge for this transaction and key.
pub(super) fn challenge_device(
    cx: &ScepContext<'_>,
    msg: &PkiMessage,
    csr_der: &[u8],
    key_sha256: &str,
    named: Option<&str>,
    now: u64,
) -> Result<String, Fail> {
    let challenge = challenge_password(csr_der)?.ok_or_else(|| {
        refused(
            FailInfo::BadRequest,
            "the CSR carries no challengePassword (make one: custos scep challenge --device SERIAL)",
        )
    })?;
    if let Some(shared) = &cx.config.static_challenge {
        use subtle::ConstantTimeEq;
        if bool::from(shared.as_bytes().ct_eq(challenge.as_bytes())) {
            return named.map(str::to_string).ok_or_else(|| {
                refused(
                    FailInfo::BadRequest,
                    "with the shared scep.static_challenge the CSR subject must name an inventory device (serialNumber or CN)",
                )
            });
        }
    }
    let hash = sha256_hex(challenge.as_bytes());
    let by = ScepChallengeUse {
        transaction_id: msg.transaction_id.clone(),
        key_sha256: key_sha256.to_string(),
        at: now,
    };
    // Everything is checked before the challenge is used: a refused
    // request leaves it as it was.
    let record = cx
        .ledger
        .scep_challenge(&hash)?
        .ok_or_else(|| refused(FailInfo::BadRequest, "unknown challenge"))?;
    let (device, again) = challenge_usable(cx, &record, &by, named, now)?;
    if again {
        return Ok(device);
    }
    match cx.ledger.claim_scep_challenge(&hash, by)? {
        ChallengeClaim::Claimed(_) => Ok(device),
        ChallengeClaim::Used(r) => Err(refused(
            FailInfo::BadRequest,
            format!("challenge {} was already used", r.id),
        )),
        ChallengeClaim::Expired(r) => Err(refused(
            FailInfo::BadRequest,
            format!("challenge {} expired", r.id),
        )),
        ChallengeClaim::Unknown => Err(refused(FailInfo::BadRequest, "unknown challenge")),
    }
}

/// Whether a challenge may be used by this request, and for which
/// device: `true` beside it when this very request used it already
/// (re-sent after a failure between the claim and the issuance), `false`
/// when it is free to claim.
fn challenge_usable(
    cx: &ScepContext<'_>,
    record: &crate::ledger::ScepChallengeRecord,
    by: &ScepChallengeUse,
    named: Option<&str>,
    now: u64,
) -> Result<(String, bool), Fail> {
    let device = match (&record.device, named) {
        (Some(bound), Some(named)) if bound != named => {
            return Err(refused(
                FailInfo::BadRequest,
                format!(
                    "challenge {} is bound to device {bound:?}, but the request names {named:?}",
                    record.id
                ),
            ))
        }
        (Some(bound), _) => bound.clone(),
        (None, Some(named)) => named.to_string(),
        (None, None) => {
            return Err(refused(
                FailInfo::BadRequest,
                format!(
                    "challenge {} is bound to no device, so the CSR subject must name one (serialNumber or CN)",
                    record.id
                ),
            ))
        }
    };
    if let Some(used) = &record.used {
        if used.transaction_id == by.transaction_id && used.key_sha256 == by.key_sha256 {
            return Ok((device, true));
        }
        return Err(refused(
            FailInfo::BadRequest,
            format!("challenge {} was already used", record.id),
        ));
    }
    if record.expires_at <= now {
        return Err(refused(
            FailInfo::BadRequest,
            format!("challenge {} expired", record.id),
        ));
    }
    match cx.ledger.device(&device)? {
        None => Err(refused(
            FailInfo::BadRequest,
            format!("device {device:?} is not in the inventory"),
        )),
        Some(d) => match d.refusal() {
            Some(why) => Err(refused(FailInfo::BadRequest, why)),
            None => scep_allowed(cx, &d).map(|()| (d.serial, false)),
        },
    }
}

/// Downgrade protection: SCEP is refused for a device that ever held a
/// hardware-attested certificate, unless an administrator allowed it
/// (`custos devices set-scep DEVICE allow`); refused always with `deny`.
pub(super) fn scep_allowed(
    cx: &ScepContext<'_>,
    device: &crate::model::device::Device,
) -> Result<(), Fail> {
    use crate::model::device::{Enrolment, ScepPolicy};
    let serial = &device.serial;
    match device.scep {
        ScepPolicy::Allow => return Ok(()),
        ScepPolicy::Deny => {
            return Err(refused(
                FailInfo::BadRequest,
                format!(
                    "SCEP is denied for device {serial} (custos devices set-scep {serial} allow)"
                ),
            ))
        }
        ScepPolicy::Auto => {}
    }
    let mut attested = device.enrolment == Some(Enrolment::AcmeAttested);
    if !attested {
        for s in cx.ledger.serials_by_device(serial)? {
            if cx
                .ledger
                .get(&s)?
                .is_some_and(|r| r.device.permanent_id.is_some())
            {
                attested = true;
                break;
            }
        }
    }
    if attested {
        return Err(refused(
            FailInfo::BadRequest,
            format!(
                "device {serial} has enrolled with hardware attestation; SCEP would be a downgrade \
                 (an administrator may allow it: custos devices set-scep {serial} allow)"
            ),
        ));
    }
    Ok(())
}
