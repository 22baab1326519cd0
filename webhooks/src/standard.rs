//! Standard Webhooks v1: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature` = space-separated `v1,<base64 HMAC-SHA256(secret,
//! "{id}.{timestamp}.{body}")>`, secret `whsec_<base64>`, timestamps within
//! ±300 s. Used to check inbound deliveries and to sign outbound ones.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Allowed distance between a delivery's timestamp and now (seconds).
pub const TOLERANCE_SECS: u64 = 300;

/// Why a delivery was not accepted as signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A required header is missing or not text.
    #[error("missing or unreadable {0} header")]
    MissingHeader(&'static str),
    /// The timestamp is not a number or too far from now.
    #[error("webhook-timestamp is missing, malformed or more than 300 s from now")]
    Timestamp,
    /// No signature matches.
    #[error("no webhook-signature matches")]
    Mismatch,
}

/// A `whsec_…` secret, decoded.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads `whsec_<base64>` (the prefix is optional).
    pub fn parse(text: &str) -> Result<Secret, String> {
        let b64 = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let key = STANDARD
            .decode(b64)
            .map_err(|_| "webhook secret is not whsec_<base64>".to_string())?;
        if key.len() < 16 {
            return Err("webhook secret must be at least 16 bytes".into());
        }
        Ok(Secret(key))
    }

    fn tag(&self, id: &str, timestamp: &str, body: &[u8]) -> hmac::Tag {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.as_bytes());
        ctx.update(b".");
        ctx.update(body);
        ctx.sign()
    }

    /// The `webhook-signature` value for an outbound delivery.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.tag(id, &timestamp.to_string(), body))
        )
    }
}

/// Checks a delivery against any of `secrets` (rotation) at `now`.
pub fn verify(
    secrets: &[Secret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), SignatureError> {
    let id = id.ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let ts_text = timestamp.ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let signature = signature.ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    let ts: u64 = ts_text
        .trim()
        .parse()
        .map_err(|_| SignatureError::Timestamp)?;
    if ts.abs_diff(now) > TOLERANCE_SECS {
        return Err(SignatureError::Timestamp);
    }
    for secret in secrets {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret.0);
        let message = [id.as_bytes(), b".", ts_text.trim().as_bytes(), b".", body].concat();
        for candidate in signature.split_whitespace() {
            let Some(b64) = candidate.strip_prefix("v1,") else {
                continue;
            };
            let Ok(tag) = STANDARD.decode(b64) else {
                continue;
            };
            // hmac::verify compares in constant time.
            if hmac::verify(&key, &message, &tag).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_rotation_and_refuse_stale_or_forged() {
        let old = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let new = Secret::parse("whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==").unwrap();
        let body = br#"{"type":"device.lost"}"#;
        let sig = new.sign("msg_1", 1_000, body);
        let both = [old.clone(), new.clone()];
        assert_eq!(
            verify(
                &both,
                Some("msg_1"),
                Some("1000"),
                Some(&format!("v1,AAAA {sig}")),
                body,
                1_100
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                std::slice::from_ref(&old),
                Some("msg_1"),
                Some("1000"),
                Some(&sig),
                body,
                1_100
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&both, Some("msg_1"), Some("1000"), Some(&sig), b"{}", 1_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&both, Some("msg_1"), Some("1000"), Some(&sig), body, 1_301),
            Err(SignatureError::Timestamp)
        );
        assert_eq!(
            verify(&both, Some("msg_2"), Some("1000"), Some(&sig), body, 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&both, None, Some("1000"), Some(&sig), body, 1_000),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
        assert!(Secret::parse("whsec_c2hvcnQ=").is_err());
    }
}
