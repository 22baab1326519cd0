//! custos-crl: building and signing X.509 v2 CRLs (RFC 5280 §5) from an
//! iterator of revoked entries, without storage knowledge.
//!
//! Filled by the CRL issue; for now it fixes the media type of published CRLs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Media type of DER CRLs.
pub const MEDIA_TYPE: &str = "application/pkix-crl";
