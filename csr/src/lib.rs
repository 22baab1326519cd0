//! Parsing and verifying PKCS#10 certificate signing requests.
//!
//! A [`VerifiedCsr`] can only be made by checking the request's
//! self-signature and its key type, so code that holds one knows both were
//! checked. What may be *issued* for it is not decided here.

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::UintRef;
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, Sequence};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::CertReq;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
const ID_CE_SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// Smallest RSA modulus we accept.
pub const MIN_RSA_BITS: usize = 2048;

/// The kind of key a CSR carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum KeyKind {
    /// ECDSA on P-256.
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// RSA with this many modulus bits.
    Rsa(usize),
    /// Ed25519.
    Ed25519,
}

/// Why a CSR was refused. Every variant is the requester's fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsrError {
    /// Not PEM/DER PKCS#10.
    #[error("CSR is not a valid PKCS#10 request: {0}")]
    Malformed(String),
    /// The self-signature does not verify.
    #[error("CSR self-signature does not verify")]
    BadSignature,
    /// A key type we do not issue for.
    #[error("unsupported CSR key: {0}; accepted: EC P-256, EC P-384, RSA >= 2048 bits, Ed25519")]
    UnsupportedKey(String),
    /// A signature algorithm we do not verify.
    #[error("unsupported CSR signature algorithm {0}")]
    UnsupportedSignatureAlgorithm(String),
    /// The key is one of the CA's own.
    #[error("CSR key is one of this CA's own keys")]
    CaKey,
}

/// A CSR whose signature and key type have been checked.
#[derive(Clone, Debug)]
pub struct VerifiedCsr {
    /// Requested subject.
    pub subject: Name,
    /// The key to certify.
    pub spki: SubjectPublicKeyInfoOwned,
    /// DER of `spki`.
    pub spki_der: Vec<u8>,
    /// Key type.
    pub key_kind: KeyKind,
    /// subjectAltName entries the CSR asks for.
    pub requested_sans: Vec<GeneralName>,
}

/// The outer CSR SEQUENCE with its parts kept as raw TLVs, so the signature
/// is checked over the exact bytes the requester signed.
#[derive(Sequence)]
struct RawCsr<'a> {
    info: der::asn1::AnyRef<'a>,
    #[allow(dead_code)]
    algorithm: der::asn1::AnyRef<'a>,
    #[allow(dead_code)]
    signature: der::asn1::AnyRef<'a>,
}

#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    #[allow(dead_code)]
    public_exponent: UintRef<'a>,
}

/// Accepts PEM ("CERTIFICATE REQUEST" / "NEW CERTIFICATE REQUEST") or DER.
pub fn decode_csr_bytes(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let (label, der) =
            der::pem::decode_vec(trimmed).map_err(|e| CsrError::Malformed(e.to_string()))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::Malformed(format!(
                "PEM block is {label:?}, not a CERTIFICATE REQUEST"
            )));
        }
        Ok(der)
    } else {
        Ok(input.to_vec())
    }
}

fn key_kind(spki: &SubjectPublicKeyInfoOwned) -> Result<KeyKind, CsrError> {
    let alg = spki.algorithm.oid;
    if alg == ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or_else(|| CsrError::UnsupportedKey("EC key without a named curve".into()))?;
        match curve {
            c if c == SECP256R1 => Ok(KeyKind::EcP256),
            c if c == SECP384R1 => Ok(KeyKind::EcP384),
            c => Err(CsrError::UnsupportedKey(format!("EC curve {c}"))),
        }
    } else if alg == RSA_ENCRYPTION {
        let bits = spki.subject_public_key.raw_bytes();
        let key = RsaPublicKey::from_der(bits)
            .map_err(|e| CsrError::UnsupportedKey(format!("bad RSA public key: {e}")))?;
        let modulus = key.modulus.as_bytes();
        let len = modulus.len() * 8 - modulus.first().map_or(8, |b| b.leading_zeros() as usize);
        if len < MIN_RSA_BITS {
            return Err(CsrError::UnsupportedKey(format!("RSA key of {len} bits")));
        }
        Ok(KeyKind::Rsa(len))
    } else if alg == ID_ED25519 {
        Ok(KeyKind::Ed25519)
    } else {
        Err(CsrError::UnsupportedKey(format!("key algorithm {alg}")))
    }
}

fn verification_algorithm(
    sig_alg: ObjectIdentifier,
    kind: KeyKind,
) -> Result<&'static dyn VerificationAlgorithm, CsrError> {
    use KeyKind::*;
    Ok(match (kind, sig_alg) {
        (EcP256, a) if a == ECDSA_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
        (EcP256, a) if a == ECDSA_SHA384 => &signature::ECDSA_P256_SHA384_ASN1,
        (EcP256, a) if a == ECDSA_SHA512 => &signature::ECDSA_P256_SHA512_ASN1,
        (EcP384, a) if a == ECDSA_SHA256 => &signature::ECDSA_P384_SHA256_ASN1,
        (EcP384, a) if a == ECDSA_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
        (EcP384, a) if a == ECDSA_SHA512 => &signature::ECDSA_P384_SHA512_ASN1,
        (Rsa(_), a) if a == RSA_SHA256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        (Rsa(_), a) if a == RSA_SHA384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        (Rsa(_), a) if a == RSA_SHA512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        (Ed25519, a) if a == ID_ED25519 => &signature::ED25519,
        (_, a) => return Err(CsrError::UnsupportedSignatureAlgorithm(a.to_string())),
    })
}

fn requested_sans(req: &CertReq) -> Result<Vec<GeneralName>, CsrError> {
    let mut sans = Vec::new();
    for attr in req
        .info
        .attributes
        .iter()
        .filter(|a| a.oid == EXTENSION_REQUEST)
    {
        for value in attr.values.iter() {
            let exts: Vec<Extension> = value
                .decode_as()
                .map_err(|e| CsrError::Malformed(format!("bad extensionRequest: {e}")))?;
            for ext in exts.iter().filter(|e| e.extn_id == ID_CE_SUBJECT_ALT_NAME) {
                let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| CsrError::Malformed(format!("bad subjectAltName: {e}")))?;
                sans.extend(san.0);
            }
        }
    }
    Ok(sans)
}

/// Parses `input` (PEM or DER), checks the key type and the self-signature.
pub fn verify_csr(input: &[u8]) -> Result<VerifiedCsr, CsrError> {
    let der = decode_csr_bytes(input)?;
    let req = CertReq::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    // Everything is parsed before the signature is checked (a malformed
    // request is malformed whoever signed it, and a fuzzer reaches it all).
    let requested_sans = requested_sans(&req)?;
    let kind = key_kind(&req.info.public_key)?;
    let alg = verification_algorithm(req.algorithm.oid, kind)?;
    let info_der = RawCsr::from_der(&der)
        .and_then(|raw| raw.info.to_der())
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    let signature = req
        .signature
        .as_bytes()
        .ok_or_else(|| CsrError::Malformed("signature has unused bits".into()))?;
    UnparsedPublicKey::new(alg, req.info.public_key.subject_public_key.raw_bytes())
        .verify(&info_der, signature)
        .map_err(|_| CsrError::BadSignature)?;
    let spki_der = req
        .info
        .public_key
        .to_der()
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    Ok(VerifiedCsr {
        subject: req.info.subject,
        spki: req.info.public_key,
        spki_der,
        key_kind: kind,
        requested_sans,
    })
}

impl VerifiedCsr {
    /// A request for a key custos generated itself (the HTTPS listener's):
    /// proof of possession is given, since we hold the private key.
    pub fn for_own_key(spki_der: &[u8]) -> Result<VerifiedCsr, CsrError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(spki_der)
            .map_err(|e| CsrError::Malformed(e.to_string()))?;
        let key_kind = key_kind(&spki)?;
        Ok(VerifiedCsr {
            subject: Name::default(),
            spki,
            spki_der: spki_der.to_vec(),
            key_kind,
            requested_sans: Vec::new(),
        })
    }
}

/// Verifies `signature` over `message` with a public key and a signature
/// algorithm OID, for the key types custos accepts. Used to check OCSP
/// responses and certificate chains in the CLI.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    signature_alg: ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CsrError> {
    let kind = key_kind(spki)?;
    let alg = verification_algorithm(signature_alg, kind)?;
    UnparsedPublicKey::new(alg, spki.subject_public_key.raw_bytes())
        .verify(message, signature)
        .map_err(|_| CsrError::BadSignature)
}
