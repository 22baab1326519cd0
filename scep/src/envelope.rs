//! The `pkcsPKIEnvelope` (RFC 8894 §3.2.2): a CMS EnvelopedData whose
//! content-encryption key is wrapped with RSA for one recipient. Requests
//! are opened with the RA's key ([`open`]); replies are sealed to the
//! requester's certificate ([`seal`]).
//!
//! Accepted content encryption: AES-128/192/256-CBC and DES-EDE3-CBC; key
//! transport: rsaEncryption (PKCS#1 v1.5), the only one SCEP clients use.
//! Anything else is refused with `badAlg`.
//!
//! Reading is lenient in one place DER is not: Go's PKCS#7 library (used by
//! micromdm's scepclient and many MDMs) sends `encryptedContent` as a
//! constructed `[0]` holding OCTET STRING segments, which is valid BER. The
//! rest of the structure is decoded with the `cms` types.

use crate::{FailInfo, Refusal};
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use der::asn1::{Any, OctetString, OctetStringRef, SetOfVec};
use der::oid::ObjectIdentifier as Oid;
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use spki::AlgorithmIdentifierOwned;

/// rsaEncryption: RSAES-PKCS1-v1_5 key transport.
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const AES_128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
const AES_192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
const AES_256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");
const DES_CBC: Oid = Oid::new_unwrap("1.3.14.3.2.7");

/// Largest envelope content accepted (a CSR or a short query).
pub const MAX_CONTENT: usize = 64 * 1024;

/// A content-encryption algorithm custos accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentCipher {
    /// AES-128-CBC (what `AES` in GetCACaps promises).
    Aes128Cbc,
    /// AES-192-CBC.
    Aes192Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
    /// DES-EDE3-CBC (`DES3`), for old clients.
    DesEde3Cbc,
}

impl ContentCipher {
    /// The cipher an algorithm OID names; `badAlg` for anything else.
    pub fn from_oid(oid: Oid) -> Result<ContentCipher, Refusal> {
        Ok(match oid {
            o if o == AES_128_CBC => ContentCipher::Aes128Cbc,
            o if o == AES_192_CBC => ContentCipher::Aes192Cbc,
            o if o == AES_256_CBC => ContentCipher::Aes256Cbc,
            o if o == DES_EDE3_CBC => ContentCipher::DesEde3Cbc,
            o if o == DES_CBC => {
                return Err(Refusal::new(
                    FailInfo::BadAlg,
                    "single DES content encryption (desCBC) is refused; use AES or DES3",
                ))
            }
            o => {
                return Err(Refusal::new(
                    FailInfo::BadAlg,
                    format!("content encryption {o} is not accepted; use AES or DES3"),
                ))
            }
        })
    }

    /// The algorithm's OID.
    pub fn oid(self) -> Oid {
        match self {
            ContentCipher::Aes128Cbc => AES_128_CBC,
            ContentCipher::Aes192Cbc => AES_192_CBC,
            ContentCipher::Aes256Cbc => AES_256_CBC,
            ContentCipher::DesEde3Cbc => DES_EDE3_CBC,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::Aes128Cbc => 16,
            ContentCipher::Aes192Cbc | ContentCipher::DesEde3Cbc => 24,
            ContentCipher::Aes256Cbc => 32,
        }
    }

    /// Block (and IV) length in bytes.
    pub fn iv_len(self) -> usize {
        match self {
            ContentCipher::DesEde3Cbc => 8,
            _ => 16,
        }
    }

    fn decrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        use cbc::cipher::block_padding::Pkcs7;
        fn run<C: BlockDecryptMut + aes::cipher::KeyIvInit>(
            key: &[u8],
            iv: &[u8],
            data: &[u8],
        ) -> Option<Vec<u8>> {
            C::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded_vec_mut::<Pkcs7>(data)
                .ok()
        }
        match self {
            ContentCipher::Aes128Cbc => run::<cbc::Decryptor<aes::Aes128>>(key, iv, data),
            ContentCipher::Aes192Cbc => run::<cbc::Decryptor<aes::Aes192>>(key, iv, data),
            ContentCipher::Aes256Cbc => run::<cbc::Decryptor<aes::Aes256>>(key, iv, data),
            ContentCipher::DesEde3Cbc => run::<cbc::Decryptor<des::TdesEde3>>(key, iv, data),
        }
    }

    fn encrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        use cbc::cipher::block_padding::Pkcs7;
        fn run<C: BlockEncryptMut + KeyIvInit>(
            key: &[u8],
            iv: &[u8],
            data: &[u8],
        ) -> Option<Vec<u8>> {
            Some(
                C::new_from_slices(key, iv)
                    .ok()?
                    .encrypt_padded_vec_mut::<Pkcs7>(data),
            )
        }
        match self {
            ContentCipher::Aes128Cbc => run::<cbc::Encryptor<aes::Aes128>>(key, iv, data),
            ContentCipher::Aes192Cbc => run::<cbc::Encryptor<aes::Aes192>>(key, iv, data),
            ContentCipher::Aes256Cbc => run::<cbc::Encryptor<aes::Aes256>>(key, iv, data),
            ContentCipher::DesEde3Cbc => run::<cbc::Encryptor<des::TdesEde3>>(key, iv, data),
        }
    }
}

/// What the caller holding the RA's private key does for this crate.
pub trait RaKey {
    /// The RA certificate (DER): requests are encrypted to it, replies
    /// carry and are signed under it.
    fn cert_der(&self) -> &[u8];
    /// RSAES-PKCS1-v1_5 decryption of a wrapped content-encryption key;
    /// `None` when it does not decrypt.
    fn unwrap_key(&self, wrapped: &[u8]) -> Option<Vec<u8>>;
    /// An RSASSA-PKCS1-v1_5 SHA-256 signature of `message`.
    fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, String>;
}

/// EnvelopedData as read: the `cms` types but for `encryptedContent`,
/// which may be BER-constructed (see the module documentation).
#[derive(der::Sequence)]
struct LenientEnvelopedData {
    version: CmsVersion,
    recip_infos: RecipientInfos,
    encrypted_content: LenientEncryptedContentInfo,
    #[allow(dead_code)]
    unprotected_attrs: Option<Any>,
}

#[derive(der::Sequence)]
struct LenientEncryptedContentInfo {
    content_type: Oid,
    content_enc_alg: AlgorithmIdentifierOwned,
    encrypted_content: Option<Any>,
}

fn bad(why: impl Into<String>) -> Refusal {
    Refusal::new(FailInfo::BadMessageCheck, why)
}

/// The bytes of `[0] IMPLICIT OCTET STRING`, primitive or constructed.
fn content_bytes(any: &Any) -> Result<Vec<u8>, Refusal> {
    let tag = any.tag();
    if !matches!(tag, Tag::ContextSpecific { number, .. } if number.value() == 0) {
        return Err(bad("encryptedContent is not tagged [0]"));
    }
    if !tag.is_constructed() {
        return Ok(any.value().to_vec());
    }
    let mut out = Vec::new();
    let mut reader =
        SliceReader::new(any.value()).map_err(|e| bad(format!("encryptedContent: {e}")))?;
    while !reader.is_finished() {
        let segment = OctetStringRef::decode(&mut reader)
            .map_err(|e| bad(format!("encryptedContent segment: {e}")))?;
        out.extend_from_slice(segment.as_bytes());
        if out.len() > MAX_CONTENT + 32 {
            return Err(bad("encrypted content too large"));
        }
    }
    Ok(out)
}

fn issuer_and_serial(cert_der: &[u8]) -> Result<IssuerAndSerialNumber, der::Error> {
    let cert = x509_cert::Certificate::from_der(cert_der)?;
    Ok(IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer,
        serial_number: cert.tbs_certificate.serial_number,
    })
}

/// An opened envelope: its content and the cipher the client chose (the
/// reply is sealed with the same one).
#[derive(Debug)]
pub struct Opened {
    /// The decrypted content (a CSR, or a query's DER).
    pub content: Vec<u8>,
    /// The content-encryption algorithm used.
    pub cipher: ContentCipher,
}

/// Opens the DER of a ContentInfo holding an EnvelopedData addressed to
/// the RA certificate. `badAlg` for an algorithm not accepted,
/// `badMessageCheck` for anything that does not decrypt.
pub fn open(envelope: &[u8], ra: &dyn RaKey) -> Result<Opened, Refusal> {
    let info = ContentInfo::from_der(envelope).map_err(|e| bad(format!("envelope: {e}")))?;
    if info.content_type != crate::oid::ENVELOPED_DATA {
        return Err(bad("the signed content is not a CMS EnvelopedData"));
    }
    let env: LenientEnvelopedData = info
        .content
        .decode_as()
        .map_err(|e| bad(format!("EnvelopedData: {e}")))?;
    let eci = &env.encrypted_content;
    if eci.content_type != crate::oid::DATA {
        return Err(bad("enveloped content is not id-data"));
    }
    // Read before judging the algorithm, so a refusal says badAlg only for
    // an envelope that was otherwise readable.
    let data = content_bytes(
        eci.encrypted_content
            .as_ref()
            .ok_or_else(|| bad("no encrypted content"))?,
    )?;
    if data.is_empty() || data.len() > MAX_CONTENT + 32 {
        return Err(bad("encrypted content empty or too large"));
    }
    let cipher = ContentCipher::from_oid(eci.content_enc_alg.oid)?;
    let iv = eci
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or_else(|| bad("content encryption without an IV"))?
        .decode_as::<OctetString>()
        .map_err(|e| bad(format!("IV: {e}")))?
        .into_bytes();
    if iv.len() != cipher.iv_len() {
        return Err(bad("IV of the wrong length"));
    }
    let ours = issuer_and_serial(ra.cert_der()).map_err(|e| bad(format!("RA certificate: {e}")))?;
    let ktri = env
        .recip_infos
        .0
        .iter()
        .find_map(|ri| match ri {
            RecipientInfo::Ktri(k) => match &k.rid {
                RecipientIdentifier::IssuerAndSerialNumber(isn) if *isn == ours => Some(k),
                _ => None,
            },
            _ => None,
        })
        .ok_or_else(|| {
            bad("the request is not encrypted to the RA certificate (fetch it with GetCACert)")
        })?;
    if ktri.key_enc_alg.oid != RSA_ENCRYPTION {
        return Err(Refusal::new(
            FailInfo::BadAlg,
            format!(
                "key transport {} is not accepted; use rsaEncryption",
                ktri.key_enc_alg.oid
            ),
        ));
    }
    // A key that does not unwrap, or has the wrong length, goes on as a
    // random key, so a padding failure and a bad key look alike to the
    // client (no PKCS#1 v1.5 padding oracle).
    let key = match ra.unwrap_key(ktri.enc_key.as_bytes()) {
        Some(k) if k.len() == cipher.key_len() => k,
        _ => {
            let mut k = vec![0u8; cipher.key_len()];
            aws_lc_rs::rand::fill(&mut k).map_err(|_| bad("no randomness"))?;
            k
        }
    };
    let content = cipher
        .decrypt(&key, &iv, &data)
        .ok_or_else(|| bad("the envelope does not decrypt with the RA key"))?;
    Ok(Opened { content, cipher })
}

/// Why an envelope could not be sealed (our fault or the recipient's key).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The recipient's certificate or key is not usable for RSA key transport.
    #[error("cannot encrypt to the requester's certificate: {0}")]
    Recipient(String),
    /// Encoding or randomness failed.
    #[error("cannot build the envelope: {0}")]
    Internal(String),
}

/// Encrypts `content` to the RSA key of `recipient_cert` (DER) with
/// `cipher`; returns the DER of a ContentInfo holding the EnvelopedData.
pub fn seal(
    content: &[u8],
    recipient_cert: &[u8],
    cipher: ContentCipher,
) -> Result<Vec<u8>, SealError> {
    use aws_lc_rs::rsa::{Pkcs1PublicEncryptingKey, PublicEncryptingKey};
    let internal = |e: &dyn std::fmt::Display| SealError::Internal(e.to_string());
    let cert = x509_cert::Certificate::from_der(recipient_cert)
        .map_err(|e| SealError::Recipient(e.to_string()))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(SealError::Recipient("not an RSA key".into()));
    }
    let spki_der = spki.to_der().map_err(|e| internal(&e))?;
    let public = PublicEncryptingKey::from_der(&spki_der)
        .map_err(|e| SealError::Recipient(e.to_string()))?;
    let public = Pkcs1PublicEncryptingKey::new(public)
        .map_err(|_| SealError::Recipient("RSA key not usable for encryption".into()))?;
    let mut key = vec![0u8; cipher.key_len()];
    let mut iv = vec![0u8; cipher.iv_len()];
    aws_lc_rs::rand::fill(&mut key).map_err(|e| internal(&e))?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|e| internal(&e))?;
    let mut wrapped = vec![0u8; public.ciphertext_size()];
    let wrapped_len = public
        .encrypt(&key, &mut wrapped)
        .map_err(|e| internal(&e))?
        .len();
    wrapped.truncate(wrapped_len);
    let data = cipher
        .encrypt(&key, &iv, content)
        .ok_or_else(|| SealError::Internal("content encryption failed".into()))?;
    let ktri = KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        enc_key: OctetString::new(wrapped).map_err(|e| internal(&e))?,
    };
    let env = EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(
            SetOfVec::try_from(vec![RecipientInfo::Ktri(ktri)]).map_err(|e| internal(&e))?,
        ),
        encrypted_content: EncryptedContentInfo {
            content_type: crate::oid::DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: cipher.oid(),
                parameters: Some(
                    Any::encode_from(&OctetString::new(iv).map_err(|e| internal(&e))?)
                        .map_err(|e| internal(&e))?,
                ),
            },
            encrypted_content: Some(OctetString::new(data).map_err(|e| internal(&e))?),
        },
        unprotected_attrs: None,
    };
    let info = ContentInfo {
        content_type: crate::oid::ENVELOPED_DATA,
        content: Any::encode_from(&env).map_err(|e| internal(&e))?,
    };
    info.to_der().map_err(|e| internal(&e))
}
