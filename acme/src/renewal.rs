//! ACME Renewal Information (RFC 9773): `GET /acme/renewal-info/<certID>`
//! answers when a certificate should be renewed, and newOrder's `replaces`
//! names the certificate an order renews.
//!
//! A good certificate's window is the second-to-last sixth of its lifetime
//! (from 2/3 to 5/6), so renewals spread out and finish well before expiry;
//! a revoked one's window lies in the past: renew now, unless a renewal
//! would be refused (its device lost or non-compliant), when it starts a
//! retry interval ahead, so clients wait, and moves to now once the device
//! may renew again.

use crate::jws::b64u_decode;
use crate::order::rfc3339;
use crate::problem::Problem;
use crate::server::{not_found, AcmeServer, Domain, Response, Store};

/// How long clients should wait before asking again (seconds).
pub const RETRY_AFTER_SECS: u64 = 6 * 3600;

pub use crate::ports::RenewalFacts;

/// The AKI keyIdentifier and serial bytes of a certID
/// (`base64url(keyIdentifier) "." base64url(serial)`).
pub fn parse_cert_id(cert_id: &str) -> Result<(Vec<u8>, Vec<u8>), Problem> {
    let (aki, serial) = cert_id
        .split_once('.')
        .filter(|(_, s)| !s.contains('.'))
        .ok_or_else(|| {
            Problem::malformed("certID must be base64url(AKI keyIdentifier).base64url(serial)")
        })?;
    let aki = b64u_decode(aki, "certID key identifier")?;
    let serial = b64u_decode(serial, "certID serial")?;
    if aki.is_empty() || serial.is_empty() {
        return Err(Problem::malformed("certID has an empty part"));
    }
    Ok((aki, serial))
}

/// The suggested window `(start, end)` at `now`.
pub fn suggested_window(facts: &RenewalFacts, now: u64) -> (u64, u64) {
    if facts.revoked && facts.renewal_refused {
        return (now + RETRY_AFTER_SECS, now + 2 * RETRY_AFTER_SECS);
    }
    if facts.revoked {
        return (now.saturating_sub(7200), now.saturating_sub(3600));
    }
    let life = facts.not_after.saturating_sub(facts.not_before);
    (
        facts.not_before + life * 2 / 3,
        facts.not_before + life * 5 / 6,
    )
}

impl<S: Store, D: Domain> AcmeServer<S, D> {
    pub(crate) fn renewal_info(&self, cert_id: &str, now: u64) -> Result<Response, Problem> {
        let (aki, serial) = parse_cert_id(cert_id)?;
        let facts = self
            .domain
            .renewal_facts(&aki, &serial)?
            .ok_or_else(not_found)?;
        let (start, end) = suggested_window(&facts, now);
        let mut r = Response::json(
            200,
            &serde_json::json!({
                "suggestedWindow": { "start": rfc3339(start), "end": rfc3339(end) }
            }),
        );
        r.retry_after = Some(RETRY_AFTER_SECS);
        Ok(r)
    }

    /// Checks newOrder's `replaces`: a certificate of this CA that the
    /// ordering account holds.
    pub(crate) fn check_replaces(&self, cert_id: &str, account_id: &str) -> Result<(), Problem> {
        let (aki, serial) = parse_cert_id(cert_id)?;
        let facts = self
            .domain
            .renewal_facts(&aki, &serial)?
            .ok_or_else(|| Problem::malformed("replaces names no certificate of this CA"))?;
        if facts.account_id.as_deref() != Some(account_id) {
            return Err(Problem::unauthorized(
                "replaces names a certificate of another account",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_fall_late_in_life_or_in_the_past_when_revoked() {
        let mut f = RenewalFacts {
            not_before: 0,
            not_after: 600,
            revoked: false,
            renewal_refused: false,
            account_id: None,
        };
        assert_eq!(suggested_window(&f, 10), (400, 500));
        f.revoked = true;
        let (s, e) = suggested_window(&f, 10_000);
        assert!(s < e && e < 10_000);
        // Revoked, and its device may not renew yet: wait.
        f.renewal_refused = true;
        let (s, e) = suggested_window(&f, 10_000);
        assert!(10_000 < s && s < e);
        assert!(parse_cert_id("aGk.AQ").is_ok());
        assert!(parse_cert_id("aGk").is_err());
        assert!(parse_cert_id("aGk.AQ.AQ").is_err());
        assert!(parse_cert_id(".AQ").is_err());
    }
}
