//! custos-ocsp: OCSP (RFC 6960, RFC 5019) without I/O.
//!
//! Bytes in, bytes out: [`get`] turns a GET path into DER, [`request`] parses
//! and checks a request (nonce rules included), [`response`] builds and signs
//! responses through the [`response::ResponseSigner`] trait, and
//! [`issuer::IssuerHashes`] matches CertIDs to the issuer we serve. Nothing
//! here knows about RocksDB, HTTP, clocks (time is an argument) or keys
//! (signing is a trait).

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod get;
pub mod issuer;
pub mod request;
pub mod response;

/// Media type of OCSP requests.
pub const REQUEST_MEDIA_TYPE: &str = "application/ocsp-request";
/// Media type of OCSP responses.
pub const RESPONSE_MEDIA_TYPE: &str = "application/ocsp-response";

/// Why a request could not be answered with a signed response, mapped to
/// the wire by [`OcspError::response_status`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OcspError {
    /// The client sent something that is not a valid OCSP request.
    #[error("malformed OCSP request: {0}")]
    Malformed(String),
    /// We are not authoritative (unknown issuer or serial).
    #[error("not authoritative for this certificate")]
    Unauthorized,
    /// Overloaded: come back later.
    #[error("overloaded, try later")]
    TryLater,
    /// Our own failure (signing, storage, encoding).
    #[error("internal error: {0}")]
    Internal(#[from] InternalError),
}

/// Any error, boxed: what a [`response::ResponseSigner`] or a status source
/// reports, kept as the `source` of an [`InternalError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why we could not make a response: our fault, never the client's. The
/// client only sees `internalError`; the chain of sources is for the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InternalError {
    /// A value did not encode (a time out of range, an oversized field).
    #[error("the response could not be encoded")]
    Encoding(#[from] der::Error),
    /// The signer failed, or its job was lost.
    #[error("the response could not be signed")]
    Signing(#[source] BoxError),
    /// The certificate's status could not be read or stored.
    #[error("the certificate status could not be read or stored")]
    Status(#[source] BoxError),
}

impl OcspError {
    /// The OCSPResponseStatus that reports this error.
    pub fn response_status(&self) -> x509_ocsp::OcspResponseStatus {
        use x509_ocsp::OcspResponseStatus as S;
        match self {
            OcspError::Malformed(_) => S::MalformedRequest,
            OcspError::Unauthorized => S::Unauthorized,
            OcspError::TryLater => S::TryLater,
            OcspError::Internal(_) => S::InternalError,
        }
    }

    /// The complete DER `OCSPResponse` for this error (no responseBytes).
    pub fn to_der(&self) -> &'static [u8] {
        response::error_response(self.response_status())
    }
}

/// The x509-ocsp types this crate speaks in, re-exported for callers.
pub use x509_ocsp;
