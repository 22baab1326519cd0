//! Credentials of sources that cannot sign Standard Webhooks: NanoMDM's
//! `X-Hmac-Signature` (base64 HMAC-SHA256 of the body), Jamf's HTTP Basic
//! or configured header value, and MicroMDM/Fleet bearer or query tokens.
//! Every comparison runs in constant time.

use aws_lc_rs::{constant_time, hmac};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// True when `presented` equals `expected`, in constant time.
pub fn same_secret(presented: &str, expected: &str) -> bool {
    constant_time::verify_slices_are_equal(presented.as_bytes(), expected.as_bytes()).is_ok()
}

/// NanoMDM: `X-Hmac-Signature` = base64(HMAC-SHA256(key, body)).
pub fn nanomdm_hmac(key: &[u8], header: Option<&str>, body: &[u8]) -> bool {
    let Some(tag) = header.and_then(|h| STANDARD.decode(h.trim()).ok()) else {
        return false;
    };
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), body, &tag).is_ok()
}

/// HTTP Basic `Authorization` for `user:password`.
pub fn basic(header: Option<&str>, user: &str, password: &str) -> bool {
    let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    header.is_some_and(|h| same_secret(h.trim(), &expected))
}

/// A bearer token in `Authorization` or a `token` query parameter.
pub fn token(authorization: Option<&str>, query_token: Option<&str>, expected: &str) -> bool {
    let bearer = authorization.and_then(|h| h.trim().strip_prefix("Bearer "));
    bearer.is_some_and(|t| same_secret(t.trim(), expected))
        || query_token.is_some_and(|t| same_secret(t, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_match_only_exactly() {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"k"), b"body");
        let header = STANDARD.encode(tag.as_ref());
        assert!(nanomdm_hmac(b"k", Some(&header), b"body"));
        assert!(!nanomdm_hmac(b"k", Some(&header), b"body2"));
        assert!(!nanomdm_hmac(b"k", None, b"body"));
        assert!(basic(Some("Basic amFtZjpzM2NyZXQ="), "jamf", "s3cret"));
        assert!(!basic(Some("Basic amFtZjpvdGhlcg=="), "jamf", "s3cret"));
        assert!(token(Some("Bearer abc"), None, "abc"));
        assert!(token(None, Some("abc"), "abc"));
        assert!(!token(Some("Bearer abd"), Some("ab"), "abc"));
    }
}
