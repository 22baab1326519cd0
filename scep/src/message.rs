//! Reading a `PKIOperation` request (RFC 8894 §3): the outer CMS
//! SignedData, its SCEP attributes, the signer's certificate and the
//! enveloped payload. Nothing here checks a signature or decrypts: the
//! caller, which holds the keys, does that with what this returns.

use crate::{oid, MessageType, ScepError};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{OctetString, PrintableStringRef};
use der::{Decode, Encode};

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
}

fn malformed(why: &str) -> ScepError {
    ScepError::Malformed(why.to_string())
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
        let SignerIdentifier::IssuerAndSerialNumber(sid) = &signer.sid else {
            return Err(malformed("signer named by key identifier"));
        };
        let signer_cert = signed
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
            .to_der()?;
        let envelope = signed
            .encap_content_info
            .econtent
            .as_ref()
            .ok_or_else(|| malformed("no signed content"))?
            .decode_as::<OctetString>()?
            .into_bytes();
        Ok(PkiMessage {
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
