//! custos-ocsp: OCSP (RFC 6960, RFC 5019) request parsing and response
//! building without I/O.
//!
//! The responder asks a trait for certificate status and precomputed bytes;
//! it knows nothing of RocksDB or HTTP. Filled by the OCSP issue; for now it
//! fixes the media types the HTTP front end uses.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Media type of OCSP requests.
pub const REQUEST_MEDIA_TYPE: &str = "application/ocsp-request";
/// Media type of OCSP responses.
pub const RESPONSE_MEDIA_TYPE: &str = "application/ocsp-response";
