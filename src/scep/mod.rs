//! SCEP enrolment (RFC 8894) in the domain: one-time challenges bound to an
//! inventory device ([`create_challenge`]), and what a `PKIOperation` does
//! ([`operation::pki_operation`]): checks the request, issues through the
//! same registration authority as ACME (linked to the device, so `custos
//! revoke --device` and the MDM webhooks reach it), and answers with a
//! `CertRep`. The protocol (CMS, envelopes, attributes) is crate
//! `custos-scep`; the HTTP front is `server::scep`.

pub mod context;
mod enrolling;
pub mod operation;

use crate::ledger::{Ledger, ScepChallengeRecord};
use crate::model::sha256_hex;
use anyhow::{anyhow, bail};

/// A challenge just made: the value is shown once, to the caller.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NewChallenge {
    /// The challenge password to put in the device's SCEP profile.
    pub challenge: String,
    /// Its public name (for the audit log and support).
    pub id: String,
    /// The device (inventory serial) it is bound to; `None`: the device
    /// the CSR names.
    pub device: Option<String>,
    /// Refused from (Unix seconds).
    pub expires_at: u64,
}

/// Makes a one-time challenge for an inventory device (or, `None`, for
/// the device the CSR will name), valid `ttl_secs` (1 s to 30 days). The
/// device must be known; its status is checked at enrolment, not here (a
/// challenge for a device the MDM is about to enrol is normal).
pub fn create_challenge(
    ledger: &Ledger,
    device: Option<&str>,
    ttl_secs: u64,
    now: u64,
) -> anyhow::Result<NewChallenge> {
    if !(1..=crate::config::MAX_CHALLENGE_TTL_SECS).contains(&ttl_secs) {
        bail!(
            "--ttl must be between 1s and {}d",
            crate::config::MAX_CHALLENGE_TTL_SECS / 86_400
        );
    }
    let device = match device {
        Some(device) => Some(
            ledger
                .device(device)?
                .ok_or_else(|| {
                    anyhow!(
                        "device {device:?} is not in the inventory (add it with `custos devices add --serial {device}`)"
                    )
                })?
                .serial,
        ),
        None => None,
    };
    // 128 random bits in hex: a PrintableString every SCEP client can carry.
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow!("no randomness"))?;
    let challenge = hex::encode(raw);
    let hash = sha256_hex(challenge.as_bytes());
    let record = ScepChallengeRecord {
        id: hash[..16].to_string(),
        device,
        created_at: now,
        expires_at: now + ttl_secs,
        used: None,
    };
    ledger.put_scep_challenge(&hash, &record)?;
    Ok(NewChallenge {
        challenge,
        id: record.id,
        device: record.device,
        expires_at: record.expires_at,
    })
}

/// The audit entry of a new challenge: its id, device and expiry, never
/// the value.
pub fn audit_create(
    authority: &crate::ra::Authority,
    actor: &str,
    challenge: &NewChallenge,
    now: u64,
) {
    authority.audit(
        actor,
        "scep.challenge",
        serde_json::json!({
            "challenge": challenge.id,
            "device": challenge.device,
            "expires_at": challenge.expires_at,
            "outcome": "created",
        }),
        now,
    );
}

/// Parses a duration such as `90s`, `15m`, `1h`, `7d` (a bare number is
/// seconds).
pub fn parse_ttl(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow!("--ttl {text:?}: expected a number and s, m, h or d (e.g. 1h)"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--ttl {text:?}: the unit must be s, m, h or d"),
    };
    n.checked_mul(scale)
        .ok_or_else(|| anyhow!("--ttl {text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_with_units() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("15m").unwrap(), 900);
        assert_eq!(parse_ttl("1h").unwrap(), 3600);
        assert_eq!(parse_ttl("7d").unwrap(), 604_800);
        for bad in ["", "h", "1w", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }
}
