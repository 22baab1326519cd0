//! custos-crl: building and signing X.509 v2 CRLs (RFC 5280 §5) without
//! storage, clocks or keys.
//!
//! [`CrlBuilder`] takes the CRL's fixed fields ([`CrlParams`]), then the
//! revoked entries one at a time as the caller streams them from wherever
//! it keeps them, then a [`CrlSigner`]. Entries are encoded straight into
//! the buffer that becomes the CRL, so building needs memory in proportion
//! to the CRL's size and nothing more. Times are Unix seconds passed in.

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;

pub use builder::{CrlBuilder, CrlParams, CrlSigner, Entry};

/// Media type of DER CRLs.
pub const MEDIA_TYPE: &str = "application/pkix-crl";

/// Why a CRL could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// A field could not be encoded (a bug or a value out of range).
    #[error("cannot encode the CRL")]
    Encoding(#[from] der::Error),
    /// The signer refused or failed.
    #[error("cannot sign the CRL")]
    Signing(#[source] BoxError),
}

/// What a [`CrlSigner`] reports when it fails, kept as the source of
/// [`CrlError::Signing`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
