//! Matching a request's CertID to the issuer we serve: the hashes of the
//! issuer's name and key under each algorithm clients use.

use der::oid::ObjectIdentifier;
use der::Encode;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use x509_cert::Certificate;

/// id-sha1.
pub const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-sha256.
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// CertID hash algorithms we answer for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1: what most clients send (RFC 5019).
    Sha1,
    /// SHA-256: `openssl ocsp -sha256`, RFC 9919.
    Sha256,
}

impl HashAlg {
    /// Both algorithms, for precomputing.
    pub const ALL: [HashAlg; 2] = [HashAlg::Sha1, HashAlg::Sha256];

    /// From a CertID hashAlgorithm OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<HashAlg> {
        if *oid == ID_SHA1 {
            Some(HashAlg::Sha1)
        } else if *oid == ID_SHA256 {
            Some(HashAlg::Sha256)
        } else {
            None
        }
    }

    /// The OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            HashAlg::Sha1 => ID_SHA1,
            HashAlg::Sha256 => ID_SHA256,
        }
    }

    /// One-byte tag for storage keys.
    pub fn tag(self) -> u8 {
        match self {
            HashAlg::Sha1 => 1,
            HashAlg::Sha256 => 2,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => Sha256::digest(data).to_vec(),
        }
    }
}

/// The issuer's name and key hashes under each algorithm.
#[derive(Clone, Debug)]
pub struct IssuerHashes {
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

impl IssuerHashes {
    /// Computes the hashes of an issuer certificate: of its subject name DER
    /// and of its subjectPublicKey BIT STRING contents (not the SKI).
    pub fn new(issuer: &Certificate) -> Result<IssuerHashes, der::Error> {
        let name = issuer.tbs_certificate.subject.to_der()?;
        let key = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let pair = |alg: HashAlg| (alg.digest(&name), alg.digest(key));
        Ok(IssuerHashes {
            sha1: pair(HashAlg::Sha1),
            sha256: pair(HashAlg::Sha256),
        })
    }

    /// (name hash, key hash) under an algorithm.
    pub fn get(&self, alg: HashAlg) -> (&[u8], &[u8]) {
        let (n, k) = match alg {
            HashAlg::Sha1 => &self.sha1,
            HashAlg::Sha256 => &self.sha256,
        };
        (n, k)
    }

    /// Whether a CertID's hashes name this issuer.
    pub fn matches(&self, alg: HashAlg, name_hash: &[u8], key_hash: &[u8]) -> bool {
        let (n, k) = self.get(alg);
        n == name_hash && k == key_hash
    }
}
