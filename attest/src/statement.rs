//! What every attestation format shares: the attestation object (CBOR
//! `fmt` and `attStmt`), its `x5c` chain verified to configured roots, the
//! errors, and what a verified attestation proves ([`AttestedDevice`]).

use ciborium::value::Value as Cbor;
use rustls_pki_types::{CertificateDer, UnixTime};

/// Most certificates accepted in x5c.
pub const MAX_X5C: usize = 5;
/// Largest certificate accepted in x5c.
pub const MAX_CERT_BYTES: usize = 16 * 1024;

/// Why an attestation was refused (all the device's or MDM's fault).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestationError {
    /// Not a CBOR attestation object of the expected shape.
    #[error("attestation object: {0}")]
    Malformed(String),
    /// `fmt` is not one we accept.
    #[error("attestation format {0:?} is not accepted (\"apple\" or \"tpm\")")]
    Format(String),
    /// The chain does not verify to a trust anchor now.
    #[error("attestation certificate chain does not verify to the configured roots: {0}")]
    Chain(String),
    /// What the attestation says does not hold (signature, TPM structures,
    /// nonce, attested key).
    #[error("attestation statement: {0}")]
    Statement(String),
    /// The freshness code is missing or is not SHA-256(token).
    #[error("attestation freshness code {0}")]
    Freshness(&'static str),
}

/// Why a set of trust anchors was refused (the operator's configuration).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RootsError {
    /// A PEM block could not be read.
    #[error("attestation root: {0}")]
    Pem(String),
    /// The certificate cannot serve as a trust anchor.
    #[error("attestation root is not a usable anchor: {0}")]
    Anchor(String),
    /// No certificate at all.
    #[error("no attestation roots configured")]
    Empty,
}

/// What a verified attestation says about the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttestedDevice {
    /// Hardware serial number.
    pub serial: Option<String>,
    /// UDID.
    pub udid: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
    /// sepOS version.
    pub sepos_version: Option<String>,
    /// LLB version.
    pub llb_version: Option<String>,
    /// System Integrity Protection status, as attested.
    pub sip: Option<String>,
    /// Secure Boot status, as attested (e.g. "Full Security").
    pub secure_boot: Option<String>,
    /// Third-party kernel extensions allowed, as attested.
    pub kexts_allowed: Option<String>,
    /// The attested key: the leaf's subjectPublicKey BIT STRING content.
    #[serde(with = "hex_bytes")]
    pub public_key: Vec<u8>,
    /// The freshness code (raw), if present.
    #[serde(skip)]
    pub freshness: Option<Vec<u8>>,
    /// The attestation format, when not "apple".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// TPM attestations: the TPM's manufacturer, model and firmware
    /// version as the AK certificate names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmInfo>,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

/// The `fmt` of an attestation object.
pub fn format_of(att_obj: &[u8]) -> Result<String, AttestationError> {
    let value: Cbor = ciborium::de::from_reader(att_obj)
        .map_err(|e| AttestationError::Malformed(format!("not CBOR: {e}")))?;
    let map = value
        .as_map()
        .ok_or_else(|| AttestationError::Malformed("not a CBOR map".into()))?;
    map.iter()
        .find(|(k, _)| k.as_text() == Some("fmt"))
        .and_then(|(_, v)| v.as_text().map(str::to_string))
        .ok_or_else(|| AttestationError::Malformed("no fmt".into()))
}

/// The `attStmt` map of an attestation object whose `fmt` is `format`.
pub(crate) fn statement(
    att_obj: &[u8],
    format: &str,
) -> Result<Vec<(Cbor, Cbor)>, AttestationError> {
    let bad = |m: &str| AttestationError::Malformed(m.to_string());
    let value: Cbor = ciborium::de::from_reader(att_obj)
        .map_err(|e| AttestationError::Malformed(format!("not CBOR: {e}")))?;
    let map = value.as_map().ok_or_else(|| bad("not a CBOR map"))?;
    let get = |m: &[(Cbor, Cbor)], key: &str| {
        m.iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v.clone())
    };
    let fmt = get(map, "fmt")
        .and_then(|v| v.as_text().map(str::to_string))
        .ok_or_else(|| bad("no fmt"))?;
    if fmt != format {
        return Err(AttestationError::Format(fmt));
    }
    let stmt = get(map, "attStmt").ok_or_else(|| bad("no attStmt"))?;
    stmt.into_map().map_err(|_| bad("attStmt is not a map"))
}

/// The value of `key` in a CBOR map.
pub(crate) fn field<'a>(map: &'a [(Cbor, Cbor)], key: &str) -> Option<&'a Cbor> {
    map.iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

/// The `x5c` certificates of a statement (1 to 5, each at most 16 KiB).
pub(crate) fn x5c(stmt: &[(Cbor, Cbor)]) -> Result<Vec<Vec<u8>>, AttestationError> {
    let bad = |m: &str| AttestationError::Malformed(m.to_string());
    let x5c = field(stmt, "x5c").ok_or_else(|| bad("no x5c"))?;
    let x5c = x5c.as_array().ok_or_else(|| bad("x5c is not an array"))?;
    if x5c.is_empty() || x5c.len() > MAX_X5C {
        return Err(bad("x5c must hold 1 to 5 certificates"));
    }
    x5c.iter()
        .map(|c| match c.as_bytes() {
            Some(b) if !b.is_empty() && b.len() <= MAX_CERT_BYTES => Ok(b.clone()),
            _ => Err(bad("x5c entry is not a certificate of at most 16 KiB")),
        })
        .collect()
}

/// Trust anchors from PEM texts.
pub(crate) fn load_anchors(pems: &[String]) -> Result<Vec<CertificateDer<'static>>, RootsError> {
    use rustls_pki_types::pem::PemObject;
    let mut anchors = Vec::new();
    for pem in pems {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| RootsError::Pem(e.to_string()))?;
            webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| RootsError::Anchor(e.to_string()))?;
            anchors.push(cert.into_owned());
        }
    }
    if anchors.is_empty() {
        return Err(RootsError::Empty);
    }
    Ok(anchors)
}

/// Verifies `chain` (leaf first) to `anchors` at `now`, requiring the
/// extended key usage `eku` (DER OID content) when given.
pub(crate) fn verify_chain(
    anchors: &[CertificateDer<'static>],
    chain: &[Vec<u8>],
    now: u64,
    eku: Option<&'static [u8]>,
) -> Result<(), AttestationError> {
    let leaf_der = CertificateDer::from(chain[0].as_slice());
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let anchors: Vec<rustls_pki_types::TrustAnchor<'_>> = anchors
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .collect();
    let leaf = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| AttestationError::Chain(format!("leaf: {e}")))?;
    let usage = match eku {
        Some(oid) => webpki::KeyUsage::required(oid),
        None => webpki::KeyUsage::required_if_present(&[]),
    };
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(now)),
        usage,
        None,
        None,
    )
    .map_err(|e| AttestationError::Chain(format!("{e:?}")))?;
    Ok(())
}

/// What the AK certificate says of the TPM.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TpmInfo {
    /// TPM manufacturer (e.g. `id:414D4400`).
    pub manufacturer: String,
    /// TPM model.
    pub model: Option<String>,
    /// TPM firmware version.
    pub version: Option<String>,
    /// SHA-256 of the AK certificate's SubjectPublicKeyInfo, hex: what the
    /// inventory's `tpm_ak` column maps to a device.
    pub ak_sha256: String,
}
