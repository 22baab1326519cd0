//! The vocabulary every other module uses, importing nothing of custos:
//! serial numbers, revocation reasons, devices, time, digests.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub mod device;
pub mod revocation;
pub mod serial;
pub mod time;

/// Lower-case hex of SHA-256(`bytes`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// Whether `s` is a plain name, as tables and responders are named: one or
/// more ASCII letters, digits, `-` or `_`.
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
