//! The `CertRep` reply (RFC 8894 §3.3.2): a CMS SignedData signed by the
//! RA with SHA-256, carrying the SCEP attributes (messageType 3, pkiStatus,
//! failInfo, transactionID, a fresh senderNonce and the request's nonce
//! as recipientNonce) and, on success, an envelope sealed to the
//! requester holding a certificates-only (or CRL-only) PKCS#7.

use crate::envelope::{seal, ContentCipher, RaKey, SealError};
use crate::{oid, FailInfo, MessageType, PkiMessage, PkiStatus, ScepError};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::revocation::{RevocationInfoChoice, RevocationInfoChoices};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, OctetString, PrintableStringRef, SetOfVec};
use der::oid::ObjectIdentifier as Oid;
use der::{Decode, Encode};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");

/// What a `CertRep` reports.
#[derive(Debug)]
pub enum Outcome {
    /// Success: the sealed envelope (see [`Outcome::certificates`],
    /// [`Outcome::crl`]).
    Success(Vec<u8>),
    /// Refused with this code.
    Failure(FailInfo),
    /// Waiting for approval; the client polls with `CertPoll`.
    Pending,
}

impl Outcome {
    /// Success carrying `certs` (DER, the issued certificate first), sealed
    /// to the request's signer with the cipher the request used.
    pub fn certificates(
        certs: &[&[u8]],
        request: &PkiMessage,
        cipher: ContentCipher,
    ) -> Result<Outcome, ReplyError> {
        let inner = crate::certs_only(certs)?;
        Ok(Outcome::Success(seal(
            &inner,
            &request.signer_cert,
            cipher,
        )?))
    }

    /// Success carrying a CRL (DER), for `GetCRL`.
    pub fn crl(
        crl: &[u8],
        request: &PkiMessage,
        cipher: ContentCipher,
    ) -> Result<Outcome, ReplyError> {
        let crl = x509_cert::crl::CertificateList::from_der(crl).map_err(ScepError::from)?;
        let crls = RevocationInfoChoices(
            SetOfVec::try_from(vec![RevocationInfoChoice::Crl(crl)]).map_err(ScepError::from)?,
        );
        let inner = crate::degenerate(None, Some(crls))?;
        Ok(Outcome::Success(seal(
            &inner,
            &request.signer_cert,
            cipher,
        )?))
    }
}

/// Why a reply could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// Encoding failed.
    #[error(transparent)]
    Scep(#[from] ScepError),
    /// Sealing the envelope failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The RA key did not sign.
    #[error("the RA key could not sign: {0}")]
    Sign(String),
}

fn attribute(oid: Oid, value: Any) -> Result<Attribute, ScepError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

fn printable(text: &str) -> Result<Any, ScepError> {
    Ok(Any::encode_from(&PrintableStringRef::new(text)?)?)
}

fn octets(bytes: &[u8]) -> Result<Any, ScepError> {
    Ok(Any::encode_from(&OctetString::new(bytes)?)?)
}

/// The signed attributes of a `CertRep`.
fn signed_attributes(
    request: &PkiMessage,
    outcome: &Outcome,
    status: PkiStatus,
    envelope: Option<&[u8]>,
) -> Result<SetOfVec<Attribute>, ReplyError> {
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|e| ReplyError::Sign(e.to_string()))?;
    let digest = sha2::Sha256::digest(envelope.unwrap_or_default());
    let mut attrs = vec![
        attribute(
            oid::CONTENT_TYPE,
            Any::encode_from(&oid::DATA).map_err(ScepError::from)?,
        )?,
        attribute(oid::MESSAGE_DIGEST, octets(&digest)?)?,
        attribute(
            oid::MESSAGE_TYPE,
            printable(&MessageType::CertRep.code().to_string())?,
        )?,
        attribute(oid::PKI_STATUS, printable(&status.code().to_string())?)?,
        attribute(oid::TRANSACTION_ID, printable(&request.transaction_id)?)?,
        attribute(oid::SENDER_NONCE, octets(&nonce)?)?,
        attribute(oid::RECIPIENT_NONCE, octets(&request.sender_nonce)?)?,
    ];
    if let Outcome::Failure(info) = outcome {
        attrs.push(attribute(
            oid::FAIL_INFO,
            printable(&info.code().to_string())?,
        )?);
    }
    Ok(SetOfVec::try_from(attrs).map_err(ScepError::from)?)
}

/// The DER of a `CertRep` answering `request` (a ContentInfo holding the
/// SignedData), signed by the RA.
pub fn cert_rep(
    request: &PkiMessage,
    outcome: &Outcome,
    ra: &dyn RaKey,
) -> Result<Vec<u8>, ReplyError> {
    let status = match outcome {
        Outcome::Success(_) => PkiStatus::Success,
        Outcome::Failure(_) => PkiStatus::Failure,
        Outcome::Pending => PkiStatus::Pending,
    };
    let envelope = match outcome {
        Outcome::Success(env) => Some(env.as_slice()),
        _ => None,
    };
    let signed_attrs = signed_attributes(request, outcome, status, envelope)?;
    let signature = ra
        .sign_sha256(&signed_attrs.to_der().map_err(ScepError::from)?)
        .map_err(ReplyError::Sign)?;
    let ra_cert = x509_cert::Certificate::from_der(ra.cert_der()).map_err(ScepError::from)?;
    let sha256 = AlgorithmIdentifierOwned {
        oid: SHA256,
        parameters: None,
    };
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: ra_cert.tbs_certificate.issuer.clone(),
            serial_number: ra_cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        // rsaEncryption, as PKCS#7 names the "digest encryption": what
        // every SCEP client reads (strongSwan accepts nothing else).
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: crate::envelope::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(ScepError::from)?,
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(ScepError::from)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::DATA,
            econtent: match envelope {
                Some(env) => Some(octets(env)?),
                None => None,
            },
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(ra_cert)])
                .map_err(ScepError::from)?,
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).map_err(ScepError::from)?),
    };
    Ok(ContentInfo {
        content_type: oid::SIGNED_DATA,
        content: Any::encode_from(&signed).map_err(ScepError::from)?,
    }
    .to_der()
    .map_err(ScepError::from)?)
}
