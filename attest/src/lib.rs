//! Device attestation: proof, signed by a device maker's hardware, of which
//! device is asking and that its key lives in that hardware.
//!
//! Only verification lives here; whether the device may have a certificate
//! is the inventory's and policy's job (the main crate). Like the other
//! protocol crates this one knows no storage, no HTTP server and no other
//! protocol crate, so it can be fuzzed and tested alone.
//!
//! - [`statement`]: what every format shares (the attestation object, x5c
//!   verified to trust anchors, errors, what was proved).
//! - [`apple`]: Apple Managed Device Attestation (`device-attest-01`, `fmt`
//!   "apple").
//! - [`tpm`]: TPM 2.0 key attestation (`fmt` "tpm", WebAuthn §8.3).

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apple;
pub mod statement;
pub mod tpm;
