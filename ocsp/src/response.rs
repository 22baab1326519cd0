//! Building and signing OCSP responses; the fixed error responses.
//!
//! Signing goes through [`ResponseSigner`], so this module never holds a
//! key. Times are Unix seconds passed in by the caller.

use crate::issuer::{HashAlg, IssuerHashes};
use crate::{InternalError, OcspError};
use der::asn1::{AnyRef, BitString, GeneralizedTime, Null, OctetString};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use std::time::Duration;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    CertId, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus, ResponderId,
    ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
};

/// id-pkix-ocsp-basic.
pub const ID_PKIX_OCSP_BASIC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

/// Status of one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not revoked.
    Good,
    /// Revoked at `time` (Unix seconds) with an RFC 5280 reason code
    /// (`None` leaves the reason out, as for unspecified).
    Revoked {
        /// Revocation time.
        time: u64,
        /// Reason code.
        reason: Option<u8>,
    },
    /// Not known to us.
    Unknown,
}

/// One SingleResponse to produce.
#[derive(Clone, Debug)]
pub struct SingleAnswer {
    /// The CertID to answer for (echo the request's).
    pub cert_id: CertId,
    /// The status.
    pub status: Status,
    /// thisUpdate (Unix seconds).
    pub this_update: u64,
    /// nextUpdate (Unix seconds).
    pub next_update: u64,
}

/// BasicOCSPResponse (RFC 6960 §4.2.1) put together from DER already made:
/// the signed ResponseData and the responder's certificates are copied,
/// never decoded and re-encoded.
#[derive(der::Sequence)]
struct EncodedBasicResponse<'a> {
    tbs_response_data: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    certs: Option<Vec<AnyRef<'a>>>,
}

/// What signs responses: the delegated responder or the CA.
pub trait ResponseSigner {
    /// signatureAlgorithm for the BasicOCSPResponse.
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned;
    /// SHA-1 of the responder's public key bits (ResponderID byKey).
    fn key_hash(&self) -> [u8; 20];
    /// Signs the DER ResponseData; returns the DER signature value.
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, crate::BoxError>;
    /// DER certificates to include (the delegated responder's), if any.
    /// Passed as DER so that no response re-encodes a certificate.
    fn certs_der(&self) -> &[&[u8]];
}

/// The CertID for our issuer and a serial under an algorithm (for
/// precomputed responses, which must match what clients send).
pub fn cert_id_for(
    hashes: &IssuerHashes,
    alg: HashAlg,
    serial: &[u8],
) -> Result<CertId, OcspError> {
    let (name, key) = hashes.get(alg);
    let internal = |e: der::Error| OcspError::from(InternalError::from(e));
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: alg.oid(),
            // RFC 5019 clients send SHA-1 with NULL parameters.
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(name).map_err(internal)?,
        issuer_key_hash: OctetString::new(key).map_err(internal)?,
        serial_number: SerialNumber::new(serial).map_err(internal)?,
    })
}

fn time(secs: u64) -> Result<OcspGeneralizedTime, OcspError> {
    GeneralizedTime::from_unix_duration(Duration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(|e| InternalError::Encoding(e).into())
}

fn crl_reason(code: u8) -> Option<CrlReason> {
    Some(match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => return None,
    })
}

/// Builds and signs a successful response. `nonce` is the request's nonce
/// extension, echoed unchanged.
pub fn build_response(
    answers: &[SingleAnswer],
    nonce: Option<&Extension>,
    produced_at: u64,
    signer: &dyn ResponseSigner,
) -> Result<Vec<u8>, OcspError> {
    let internal = |e: der::Error| OcspError::from(InternalError::from(e));
    let mut responses = Vec::with_capacity(answers.len());
    for a in answers {
        let cert_status = match a.status {
            Status::Good => CertStatus::good(),
            Status::Unknown => CertStatus::unknown(),
            Status::Revoked { time: t, reason } => CertStatus::revoked(RevokedInfo {
                revocation_time: time(t)?,
                revocation_reason: reason.and_then(crl_reason),
            }),
        };
        responses.push(SingleResponse {
            cert_id: a.cert_id.clone(),
            cert_status,
            this_update: time(a.this_update)?,
            next_update: Some(time(a.next_update)?),
            single_extensions: None,
        });
    }
    let tbs = ResponseData {
        version: Default::default(),
        responder_id: ResponderId::ByKey(OctetString::new(signer.key_hash()).map_err(internal)?),
        produced_at: time(produced_at)?,
        responses,
        response_extensions: nonce.map(|n| vec![n.clone()]),
    };
    let tbs_der = tbs.to_der().map_err(internal)?;
    let signature = signer
        .sign(&tbs_der)
        .map_err(|e| OcspError::from(InternalError::Signing(e)))?;
    let certs = signer
        .certs_der()
        .iter()
        .map(|c| AnyRef::from_der(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(internal)?;
    let basic = EncodedBasicResponse {
        tbs_response_data: AnyRef::from_der(&tbs_der).map_err(internal)?,
        signature_algorithm: signer.signature_algorithm(),
        signature: BitString::from_bytes(&signature).map_err(internal)?,
        certs: (!certs.is_empty()).then_some(certs),
    };
    let response = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ID_PKIX_OCSP_BASIC,
            response: OctetString::new(basic.to_der().map_err(internal)?).map_err(internal)?,
        }),
    };
    response.to_der().map_err(internal)
}

/// The DER of an unsuccessful `OCSPResponse` (status only).
pub fn error_response(status: OcspResponseStatus) -> &'static [u8] {
    // SEQUENCE { ENUMERATED status }
    match status {
        OcspResponseStatus::Successful => &[0x30, 0x03, 0x0a, 0x01, 0x00],
        OcspResponseStatus::MalformedRequest => &[0x30, 0x03, 0x0a, 0x01, 0x01],
        OcspResponseStatus::InternalError => &[0x30, 0x03, 0x0a, 0x01, 0x02],
        OcspResponseStatus::TryLater => &[0x30, 0x03, 0x0a, 0x01, 0x03],
        OcspResponseStatus::SigRequired => &[0x30, 0x03, 0x0a, 0x01, 0x05],
        OcspResponseStatus::Unauthorized => &[0x30, 0x03, 0x0a, 0x01, 0x06],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    #[test]
    fn error_responses_decode_to_their_status() {
        for s in [
            OcspResponseStatus::MalformedRequest,
            OcspResponseStatus::InternalError,
            OcspResponseStatus::TryLater,
            OcspResponseStatus::SigRequired,
            OcspResponseStatus::Unauthorized,
        ] {
            let r = OcspResponse::from_der(error_response(s)).unwrap();
            assert_eq!(r.response_status, s);
            assert!(r.response_bytes.is_none());
        }
    }
}
