//! ECDSA signing keys held by the CA (root, issuing intermediate, OCSP
//! responder), backed by aws-lc-rs for speed and an optional FIPS mode.
//!
//! The key material never leaves this type except as PKCS#8 PEM for the 0600
//! key file; `Debug` prints only the curve. Encoding of certificates, CRLs and
//! OCSP responses stays with the RustCrypto types; this module only signs.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P384_SHA384_ASN1_SIGNING,
};
use der::asn1::BitString;
use der::oid::ObjectIdentifier;
use der::Decode;
use sha1::{Digest, Sha1};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::fmt;
use std::str::FromStr;

/// ecdsa-with-SHA256 (RFC 5758).
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384 (RFC 5758).
pub const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// The curves custos signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    /// NIST P-256 with SHA-256: the fast choice for the OCSP responder.
    P256,
    /// NIST P-384 with SHA-384: the CA keys.
    P384,
}

impl KeyAlgorithm {
    fn signing(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            KeyAlgorithm::P256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
            KeyAlgorithm::P384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
        }
    }

    fn signature_oid(self) -> ObjectIdentifier {
        match self {
            KeyAlgorithm::P256 => ECDSA_WITH_SHA256,
            KeyAlgorithm::P384 => ECDSA_WITH_SHA384,
        }
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "p256" | "ecp256" | "prime256v1" | "secp256r1" => Ok(KeyAlgorithm::P256),
            "p384" | "ecp384" | "secp384r1" => Ok(KeyAlgorithm::P384),
            _ => Err(format!("unsupported key type {s:?}: use p256 or p384")),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::P256 => "p256",
            KeyAlgorithm::P384 => "p384",
        })
    }
}

/// Why a key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file is not PEM or not a private key.
    #[error("not a PEM private key ({0})")]
    NotPem(String),
    /// The key is not an EC P-256 or P-384 key.
    #[error("unsupported private key: only EC P-256 and P-384 keys (PKCS#8 or SEC1) are accepted")]
    Unsupported,
    /// The crypto library refused to sign.
    #[error("signing failed")]
    SignFailed,
}

/// An ECDSA private key that signs with the hash matching its curve.
pub struct SigningKey {
    algorithm: KeyAlgorithm,
    pair: EcdsaKeyPair,
    spki_der: Vec<u8>,
    key_id: [u8; 20],
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <secret>)", self.algorithm)
    }
}

impl SigningKey {
    /// Generates a new key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm.signing(), &SystemRandom::new())
            .map_err(|_| KeyError::SignFailed)?;
        Self::from_der(algorithm, pkcs8.as_ref())
    }

    fn from_der(algorithm: KeyAlgorithm, der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_private_key_der(algorithm.signing(), der)
            .map_err(|_| KeyError::Unsupported)?;
        let spki_der = pair
            .public_key()
            .as_der()
            .map_err(|_| KeyError::Unsupported)?
            .as_ref()
            .to_vec();
        let key_id = Sha1::digest(pair.public_key().as_ref()).into();
        Ok(SigningKey {
            algorithm,
            pair,
            spki_der,
            key_id,
            rng: SystemRandom::new(),
        })
    }

    /// Loads a PKCS#8 or SEC1 ("EC PRIVATE KEY") PEM key of either curve.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let (label, der) =
            der::pem::decode_vec(pem).map_err(|e| KeyError::NotPem(e.to_string()))?;
        // The private key's bytes are wiped when this copy goes.
        let der = zeroize::Zeroizing::new(der);
        if label != "PRIVATE KEY" && label != "EC PRIVATE KEY" {
            return Err(KeyError::NotPem(format!("found a {label:?} block")));
        }
        Self::from_der(KeyAlgorithm::P384, &der)
            .or_else(|_| Self::from_der(KeyAlgorithm::P256, &der))
    }

    /// PKCS#8 PEM of the private key, for the 0600 key file.
    /// The text is wiped from memory when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>, KeyError> {
        let doc = self.pair.to_pkcs8v1().map_err(|_| KeyError::SignFailed)?;
        let der = zeroize::Zeroizing::new(doc.as_ref().to_vec());
        der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &der)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| KeyError::SignFailed)
    }

    /// The curve.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SubjectPublicKeyInfo as an x509-cert value.
    pub fn spki(&self) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned::from_der(&self.spki_der)
            .expect("aws-lc produces a valid SubjectPublicKeyInfo")
    }

    /// The subjectPublicKey BIT STRING contents (uncompressed EC point).
    pub fn public_key_bits(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// SHA-1 of the public key bits: RFC 5280 §4.2.1.2 method 1, used for the
    /// SKI/AKI and for the OCSP ResponderID byKey.
    pub fn key_id(&self) -> [u8; 20] {
        self.key_id
    }

    /// The signatureAlgorithm to put next to signatures made by this key.
    pub fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.algorithm.signature_oid(),
            parameters: None,
        }
    }

    /// Signs `message`, returning a DER `Ecdsa-Sig-Value`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyError::SignFailed)
    }

    /// Signs `message` and wraps the signature as a BIT STRING.
    pub fn sign_bitstring(&self, message: &[u8]) -> Result<BitString, KeyError> {
        let sig = self.sign(message)?;
        BitString::from_bytes(&sig).map_err(|_| KeyError::SignFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_key() {
        for alg in [KeyAlgorithm::P256, KeyAlgorithm::P384] {
            let key = SigningKey::generate(alg).unwrap();
            let pem = key.to_pkcs8_pem().unwrap();
            let back = SigningKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(back.algorithm(), alg);
            assert_eq!(back.spki_der(), key.spki_der());
            assert!(!format!("{key:?}").contains(pem.as_str()));
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            SigningKey::from_pem(b"hello"),
            Err(KeyError::NotPem(_))
        ));
        let pem = der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &[0x30, 0x00])
            .unwrap();
        assert!(matches!(
            SigningKey::from_pem(pem.as_bytes()),
            Err(KeyError::Unsupported)
        ));
    }
}
