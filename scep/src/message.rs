//! Reading a `PKIOperation` request (RFC 8894 §3): the outer CMS
//! SignedData, its SCEP attributes, the signer's certificate and the
//! enveloped payload. Nothing here checks a signature or decrypts: the
//! caller, which holds the keys, does that with what this returns.

use crate::{oid, FailInfo, MessageType, Refusal, ScepError};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{OctetString, PrintableStringRef};
use der::oid::ObjectIdentifier as Oid;
use der::{Decode, Encode};
use sha2::Digest;

/// Longest transaction ID accepted (clients send a hash in hex or base64).
pub const MAX_TRANSACTION_ID: usize = 128;

/// A `PKIOperation` request as read, before any check of its signature.
#[derive(Clone, Debug)]
pub struct PkiMessage {
    /// What it asks.
    pub message_type: MessageType,
    /// The client's transaction ID (echoed in the reply).
    pub transaction_id: String,
    /// The client's nonce (echoed as recipientNonce in the reply).
    pub sender_nonce: Vec<u8>,
    /// The signer's certificate, DER (self-signed for a first enrolment).
    pub signer_cert: Vec<u8>,
    /// The DER of the signed attributes as a SET OF: what the signature
    /// covers.
    pub signed_attrs_der: Vec<u8>,
    /// The signature algorithm's OID.
    pub signature_alg: der::oid::ObjectIdentifier,
    /// The digest algorithm's OID.
    pub digest_alg: der::oid::ObjectIdentifier,
    /// The signature.
    pub signature: Vec<u8>,
    /// The signed content: the DER of a ContentInfo holding the
    /// EnvelopedData (`pkcsPKIEnvelope`).
    pub envelope: Vec<u8>,
    /// The `messageDigest` signed attribute: the digest of `envelope`.
    pub message_digest: Vec<u8>,
    /// The `signingTime` signed attribute (Unix seconds), when present.
    pub signing_time: Option<u64>,
}

fn malformed(why: &str) -> ScepError {
    ScepError::Malformed(why.to_string())
}

/// The certificate the signer identifier names, DER.
fn signer_certificate(signed: &SignedData, sid: &SignerIdentifier) -> Result<Vec<u8>, ScepError> {
    let SignerIdentifier::IssuerAndSerialNumber(sid) = sid else {
        return Err(malformed("signer named by key identifier"));
    };
    Ok(signed
        .certificates
        .as_ref()
        .and_then(|set| {
            set.0.iter().find_map(|c| match c {
                CertificateChoices::Certificate(cert)
                    if cert.tbs_certificate.serial_number == sid.serial_number
                        && cert.tbs_certificate.issuer == sid.issuer =>
                {
                    Some(cert)
                }
                _ => None,
            })
        })
        .ok_or_else(|| malformed("the signer's certificate is not in the message"))?
        .to_der()?)
}

impl PkiMessage {
    /// Reads a request. Refuses anything but one signer with signed
    /// attributes, a known message type, a transaction ID and a nonce.
    pub fn parse(der: &[u8]) -> Result<PkiMessage, ScepError> {
        let info = ContentInfo::from_der(der)?;
        if info.content_type != oid::SIGNED_DATA {
            return Err(malformed("not a CMS SignedData"));
        }
        let signed: SignedData = info.content.decode_as()?;
        let [signer] = signed.signer_infos.0.as_slice() else {
            return Err(malformed("a SCEP message has exactly one signer"));
        };
        let attrs = signer
            .signed_attrs
            .as_ref()
            .ok_or_else(|| malformed("no signed attributes"))?;
        let value = |id: der::oid::ObjectIdentifier| {
            attrs
                .iter()
                .find(|a| a.oid == id)
                .and_then(|a| a.values.iter().next())
        };
        let text = |id, what: &str| -> Result<String, ScepError> {
            let v = value(id).ok_or_else(|| malformed(&format!("no {what}")))?;
            Ok(v.decode_as::<PrintableStringRef<'_>>()?
                .as_str()
                .to_string())
        };
        let message_type = MessageType::from_text(&text(oid::MESSAGE_TYPE, "messageType")?)
            .ok_or_else(|| malformed("unknown messageType"))?;
        let transaction_id = text(oid::TRANSACTION_ID, "transactionID")?;
        if transaction_id.is_empty() || transaction_id.len() > MAX_TRANSACTION_ID {
            return Err(malformed("transactionID empty or too long"));
        }
        let sender_nonce = value(oid::SENDER_NONCE)
            .ok_or_else(|| malformed("no senderNonce"))?
            .decode_as::<OctetString>()?
            .into_bytes();
        if !(8..=64).contains(&sender_nonce.len()) {
            return Err(malformed("senderNonce of an unusual length"));
        }
        let signer_cert = signer_certificate(&signed, &signer.sid)?;
        let envelope = signed
            .encap_content_info
            .econtent
            .as_ref()
            .ok_or_else(|| malformed("no signed content"))?
            .decode_as::<OctetString>()?
            .into_bytes();
        let message_digest = value(oid::MESSAGE_DIGEST)
            .ok_or_else(|| malformed("no messageDigest"))?
            .decode_as::<OctetString>()?
            .into_bytes();
        let signing_time = match value(oid::SIGNING_TIME) {
            Some(v) => Some(
                x509_cert::time::Time::from_der(&v.to_der()?)?
                    .to_unix_duration()
                    .as_secs(),
            ),
            None => None,
        };
        Ok(PkiMessage {
            message_digest,
            signing_time,
            message_type,
            transaction_id,
            sender_nonce,
            signer_cert,
            signed_attrs_der: attrs.to_der()?,
            signature_alg: signer.signature_algorithm.oid,
            digest_alg: signer.digest_alg.oid,
            signature: signer.signature.as_bytes().to_vec(),
            envelope,
        })
    }
}

/// SHA-1 (`id-sha1`).
const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
/// SHA-256 (`id-sha256`).
const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
/// SHA-384 and SHA-512.
const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");

impl PkiMessage {
    /// Checks that the signer's key signed the attributes and that
    /// `messageDigest` is the digest of the enveloped content: SHA-1 or
    /// SHA-2 with RSA (`badAlg` for anything else), `badMessageCheck`
    /// when either does not match. Who the signer is, is the caller's to
    /// judge.
    pub fn verify(&self) -> Result<(), Refusal> {
        use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
        let rsa = crate::envelope::RSA_ENCRYPTION;
        let digest = match self.digest_alg {
            d if d == SHA1 => sha1::Sha1::digest(&self.envelope).to_vec(),
            d if d == SHA256 => sha2::Sha256::digest(&self.envelope).to_vec(),
            d if d == SHA384 => sha2::Sha384::digest(&self.envelope).to_vec(),
            d if d == SHA512 => sha2::Sha512::digest(&self.envelope).to_vec(),
            d => {
                return Err(Refusal::new(
                    FailInfo::BadAlg,
                    format!(
                    "digest algorithm {d} is not accepted; use SHA-256, SHA-384, SHA-512 or SHA-1"
                ),
                ))
            }
        };
        if digest != self.message_digest {
            return Err(Refusal::new(
                FailInfo::BadMessageCheck,
                "messageDigest does not match the signed content",
            ));
        }
        let (s, d) = (self.signature_alg, self.digest_alg);
        let alg: &'static dyn VerificationAlgorithm = if d == SHA1
            && (s == SHA1_WITH_RSA || s == rsa)
        {
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        } else if d == SHA256 && (s == SHA256_WITH_RSA || s == rsa) {
            &signature::RSA_PKCS1_2048_8192_SHA256
        } else if d == SHA384 && (s == SHA384_WITH_RSA || s == rsa) {
            &signature::RSA_PKCS1_2048_8192_SHA384
        } else if d == SHA512 && (s == SHA512_WITH_RSA || s == rsa) {
            &signature::RSA_PKCS1_2048_8192_SHA512
        } else {
            return Err(Refusal::new(
                FailInfo::BadAlg,
                format!("signature algorithm {s} with digest {d} is not accepted; use RSA with SHA-256, SHA-384, SHA-512 or SHA-1"),
            ));
        };
        let cert = x509_cert::Certificate::from_der(&self.signer_cert).map_err(|e| {
            Refusal::new(
                FailInfo::BadMessageCheck,
                format!("signer certificate: {e}"),
            )
        })?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid != rsa {
            return Err(Refusal::new(
                FailInfo::BadAlg,
                "the signer's key is not RSA (SCEP signs with RSA)",
            ));
        }
        UnparsedPublicKey::new(alg, spki.subject_public_key.raw_bytes())
            .verify(&self.signed_attrs_der, &self.signature)
            .map_err(|_| {
                Refusal::new(
                    FailInfo::BadMessageCheck,
                    "the signature does not verify with the signer's certificate",
                )
            })
    }
}

/// The content of a `CertPoll` (`GetCertInitial`): the CA's and the
/// requester's names (RFC 8894 §3.3.3).
#[derive(Clone, Debug, der::Sequence)]
pub struct IssuerAndSubject {
    /// The issuer's name.
    pub issuer: x509_cert::name::Name,
    /// The subject of the pending request.
    pub subject: x509_cert::name::Name,
}
