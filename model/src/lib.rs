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
