//! custos-scep: the Simple Certificate Enrolment Protocol (RFC 8894) without
//! storage, sockets, clocks or keys.
//!
//! This first part holds the protocol's vocabulary and the answers that need
//! no key: the capabilities a `GetCACaps` request gets ([`ca_caps`]), the
//! message types, statuses and failure codes a `PKIOperation` carries
//! ([`MessageType`], [`PkiStatus`], [`FailInfo`]) with the OIDs of the
//! attributes that carry them ([`oid`]), and the certificates-only CMS
//! SignedData ("degenerate PKCS#7") that `GetCACert` answers with
//! ([`certs_only`]); and a `PKIOperation` request read into its parts
//! ([`PkiMessage`]), for the caller to check and decrypt.

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod envelope;
mod message;
mod reply;

pub use cms::cert::IssuerAndSerialNumber;
pub use envelope::{ContentCipher, RaKey};
pub use message::{IssuerAndSubject, PkiMessage, MAX_TRANSACTION_ID};
pub use reply::{cert_rep, Outcome};

/// A request refused with a `CertRep` failure: the `failInfo` to send and
/// the reason, for the log and the audit (clients see only the code).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{fail_info:?}: {reason}")]
pub struct Refusal {
    /// The code sent to the client.
    pub fail_info: FailInfo,
    /// Why, in words an operator can act on.
    pub reason: String,
}

impl Refusal {
    /// A refusal with this code and reason.
    pub fn new(fail_info: FailInfo, reason: impl Into<String>) -> Refusal {
        Refusal {
            fail_info,
            reason: reason.into(),
        }
    }
}

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::SetOfVec;
use der::{Any, Decode, Encode};

/// Media type of a `GetCACert` answer holding the RA certificate and the CA
/// chain (RFC 8894 §4.2.1.2).
pub const CA_RA_CERT_MEDIA_TYPE: &str = "application/x-x509-ca-ra-cert";

/// Media type of a `PKIOperation` request and answer (RFC 8894 §4.3).
pub const PKI_MESSAGE_MEDIA_TYPE: &str = "application/x-pki-message";

/// The OIDs of SCEP's signed attributes (RFC 8894 §3.2.1) and of CMS.
pub mod oid {
    use der::oid::ObjectIdentifier as Oid;

    /// `messageType` (PrintableString of the decimal [`super::MessageType`]).
    pub const MESSAGE_TYPE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.2");
    /// `pkiStatus` (PrintableString of the decimal [`super::PkiStatus`]).
    pub const PKI_STATUS: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.3");
    /// `failInfo` (PrintableString of the decimal [`super::FailInfo`]).
    pub const FAIL_INFO: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.4");
    /// `senderNonce` (OCTET STRING, 16 bytes).
    pub const SENDER_NONCE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.5");
    /// `recipientNonce` (OCTET STRING, the request's senderNonce echoed).
    pub const RECIPIENT_NONCE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.6");
    /// `transactionID` (PrintableString).
    pub const TRANSACTION_ID: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.7");
    /// CMS `contentType` attribute.
    pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
    /// CMS `messageDigest` attribute.
    pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
    /// CMS `signingTime` attribute.
    pub const SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
    /// PKCS#9 `challengePassword` (a CSR attribute).
    pub const CHALLENGE_PASSWORD: Oid = Oid::new_unwrap("1.2.840.113549.1.9.7");
    /// CMS `id-data`.
    pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    /// CMS `id-signedData`.
    pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    /// CMS `id-envelopedData`.
    pub const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
}

/// What a SCEP message asks or answers (the `messageType` attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// 3: the CA's answer to any request.
    CertRep,
    /// 17: renewal of an existing certificate, signed with it.
    RenewalReq,
    /// 19: a first enrolment.
    PkcsReq,
    /// 20: polling for a pending request (`GetCertInitial` in older drafts).
    CertPoll,
    /// 21: a certificate by issuer and serial.
    GetCert,
    /// 22: the CRL for a certificate's issuer and serial.
    GetCrl,
}

impl MessageType {
    /// The decimal code carried in the attribute.
    pub fn code(self) -> u8 {
        match self {
            MessageType::CertRep => 3,
            MessageType::RenewalReq => 17,
            MessageType::PkcsReq => 19,
            MessageType::CertPoll => 20,
            MessageType::GetCert => 21,
            MessageType::GetCrl => 22,
        }
    }

    /// The type a PrintableString names: digits only, no sign, no spaces.
    pub fn from_text(text: &str) -> Option<MessageType> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 3 {
            return None;
        }
        match text.parse::<u8>().ok()? {
            3 => Some(MessageType::CertRep),
            17 => Some(MessageType::RenewalReq),
            19 => Some(MessageType::PkcsReq),
            20 => Some(MessageType::CertPoll),
            21 => Some(MessageType::GetCert),
            22 => Some(MessageType::GetCrl),
            _ => None,
        }
    }
}

/// The outcome a `CertRep` reports (the `pkiStatus` attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkiStatus {
    /// 0: the certificate is in the reply.
    Success,
    /// 2: refused; `failInfo` says why.
    Failure,
    /// 3: waiting for approval; poll with `CertPoll`.
    Pending,
}

impl PkiStatus {
    /// The decimal code carried in the attribute.
    pub fn code(self) -> u8 {
        match self {
            PkiStatus::Success => 0,
            PkiStatus::Failure => 2,
            PkiStatus::Pending => 3,
        }
    }
}

/// Why a request was refused (the `failInfo` attribute, RFC 8894 §3.2.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailInfo {
    /// 0: an algorithm we do not accept.
    BadAlg,
    /// 1: integrity check (signature) failed.
    BadMessageCheck,
    /// 2: not permitted or not supported (also: a bad challenge).
    BadRequest,
    /// 3: the signing time is too far from ours.
    BadTime,
    /// 4: no certificate matches the identification given.
    BadCertId,
}

impl FailInfo {
    /// The decimal code carried in the attribute.
    pub fn code(self) -> u8 {
        match self {
            FailInfo::BadAlg => 0,
            FailInfo::BadMessageCheck => 1,
            FailInfo::BadRequest => 2,
            FailInfo::BadTime => 3,
            FailInfo::BadCertId => 4,
        }
    }
}

/// The `GetCACaps` answer: one capability per line. `renewal` adds
/// `Renewal` (RenewalReq accepted).
pub fn ca_caps(renewal: bool) -> String {
    // Every digest we verify is listed. SHA-384 also matters to strongSwan
    // 5.9's `pki --scep`: it tests its capability bits with the bit's index
    // as a mask, so it finds "AES" (and "SCEPStandard") only when the
    // fourth name of its table, SHA-384, is listed, and "SHA-256" only when
    // DES3 is.
    let mut caps = vec![
        "POSTPKIOperation",
        "SHA-256",
        "SHA-384",
        "SHA-512",
        "SHA-1",
        "AES",
        "DES3",
        "SCEPStandard",
    ];
    if renewal {
        caps.push("Renewal");
    }
    let mut text = caps.join("\n");
    text.push('\n');
    text
}

/// Why a message could not be built or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScepError {
    /// DER that does not decode, or a value that does not encode.
    #[error("malformed SCEP message: {0}")]
    Der(#[from] der::Error),
    /// Well-formed DER that is not the SCEP message it should be.
    #[error("malformed SCEP message: {0}")]
    Malformed(String),
    /// A certificates-only message needs at least one certificate.
    #[error("no certificate to send")]
    NoCertificate,
}

/// A CMS SignedData with no content and no signer, carrying `certs` (DER
/// certificates; DER sorts a SET OF, so clients tell the RA certificate by
/// its key usage, not its place) inside a ContentInfo: what
/// `GetCACert` answers with when it sends the RA certificate and the CA
/// chain, and what a `CertRep` envelopes the issued certificate in.
pub fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, ScepError> {
    if certs.is_empty() {
        return Err(ScepError::NoCertificate);
    }
    let mut set = Vec::with_capacity(certs.len());
    for der in certs {
        set.push(CertificateChoices::Certificate(
            x509_cert::Certificate::from_der(der)?,
        ));
    }
    degenerate(Some(CertificateSet(SetOfVec::try_from(set)?)), None)
}

/// A ContentInfo holding a SignedData with no content and no signer: only
/// certificates, or only CRLs.
pub(crate) fn degenerate(
    certificates: Option<CertificateSet>,
    crls: Option<cms::revocation::RevocationInfoChoices>,
) -> Result<Vec<u8>, ScepError> {
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::DATA,
            econtent: None,
        },
        certificates,
        crls,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let info = ContentInfo {
        content_type: oid::SIGNED_DATA,
        content: Any::encode_from(&signed)?,
    };
    Ok(info.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_read_only_their_codes() {
        for t in [
            MessageType::CertRep,
            MessageType::RenewalReq,
            MessageType::PkcsReq,
            MessageType::CertPoll,
            MessageType::GetCert,
            MessageType::GetCrl,
        ] {
            assert_eq!(MessageType::from_text(&t.code().to_string()), Some(t));
        }
        for bad in ["", "18", "+19", " 19", "019x", "1900", "-3", "３"] {
            assert_eq!(MessageType::from_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_and_fail_codes_are_rfc_8894s() {
        assert_eq!(
            [
                PkiStatus::Success.code(),
                PkiStatus::Failure.code(),
                PkiStatus::Pending.code()
            ],
            [0, 2, 3]
        );
        assert_eq!(
            [
                FailInfo::BadAlg,
                FailInfo::BadMessageCheck,
                FailInfo::BadRequest,
                FailInfo::BadTime,
                FailInfo::BadCertId
            ]
            .map(FailInfo::code),
            [0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn caps_list_one_per_line() {
        let caps = ca_caps(true);
        assert!(caps.lines().any(|l| l == "POSTPKIOperation"));
        assert!(caps.lines().any(|l| l == "SCEPStandard"));
        assert!(caps.lines().any(|l| l == "Renewal"));
        assert!(!ca_caps(false).lines().any(|l| l == "Renewal"));
    }

    #[test]
    fn certs_only_refuses_nothing_and_garbage() {
        assert!(matches!(certs_only(&[]), Err(ScepError::NoCertificate)));
        assert!(matches!(
            certs_only(&[b"not a certificate"]),
            Err(ScepError::Der(_))
        ));
    }
}
