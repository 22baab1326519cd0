//! Apple Managed Device Attestation (draft-ietf-acme-device-attest, `fmt`
//! "apple"): decode the CBOR attestation object, verify its x5c chain to the
//! configured anchors at the current time (rustls-webpki), require the
//! freshness code to equal SHA-256(challenge token) (constant time), and
//! read what the leaf attests: serial number, UDID, OS/sepOS/LLB versions,
//! boot-security flags, and the hardware-bound public key.
//!
//! Only verification: deciding whether the device may have a certificate is
//! the inventory's and policy's job.

pub use crate::statement::{
    format_of, AttestationError, AttestedDevice, RootsError, MAX_CERT_BYTES, MAX_X5C,
};
use crate::statement::{load_anchors, statement, verify_chain, x5c};
use der::Decode;
use rustls_pki_types::CertificateDer;
use x509_cert::Certificate;

/// The Apple Enterprise Attestation Root CA (valid to 2047), the default
/// trust anchor.
pub const APPLE_ROOT_PEM: &str = include_str!("apple_enterprise_attestation_root.pem");

/// Attested serial number (extension OID).
pub const OID_SERIAL: &str = "1.2.840.113635.100.8.9.1";
/// Attested UDID.
pub const OID_UDID: &str = "1.2.840.113635.100.8.9.2";
/// Attested OS version.
pub const OID_OS_VERSION: &str = "1.2.840.113635.100.8.10.1";
const OID_SEPOS_VERSION: &str = "1.2.840.113635.100.8.10.2";
const OID_LLB_VERSION: &str = "1.2.840.113635.100.8.10.3";
/// Freshness code: SHA-256 of the challenge token.
pub const OID_FRESHNESS: &str = "1.2.840.113635.100.8.11.1";
const OID_SIP: &str = "1.2.840.113635.100.8.13.1";
/// Secure Boot status.
pub const OID_SECURE_BOOT: &str = "1.2.840.113635.100.8.13.2";
const OID_KEXTS: &str = "1.2.840.113635.100.8.13.3";

/// An attested value as text: a DER INTEGER as its number, else the bytes
/// as UTF-8.
fn attested_text(value: &[u8]) -> String {
    if let Ok(n) = der::asn1::Int::from_der(value) {
        let bytes = n.as_bytes();
        if bytes.len() <= 8 {
            let mut v = 0i128;
            for b in bytes {
                v = (v << 8) | i128::from(*b);
            }
            return v.to_string();
        }
    }
    String::from_utf8_lossy(value).trim().to_string()
}

/// Reads the Apple extensions and key of a leaf (no verification).
pub fn read_leaf(der: &[u8]) -> Result<AttestedDevice, AttestationError> {
    let cert = Certificate::from_der(der)
        .map_err(|e| AttestationError::Malformed(format!("leaf certificate: {e}")))?;
    let mut device = AttestedDevice {
        public_key: cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec(),
        ..AttestedDevice::default()
    };
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        let text = || Some(attested_text(value));
        match ext.extn_id.to_string().as_str() {
            OID_SERIAL => device.serial = text(),
            OID_UDID => device.udid = text(),
            OID_OS_VERSION => device.os_version = text(),
            OID_SEPOS_VERSION => device.sepos_version = text(),
            OID_LLB_VERSION => device.llb_version = text(),
            OID_SIP => device.sip = text(),
            OID_SECURE_BOOT => device.secure_boot = text(),
            OID_KEXTS => device.kexts_allowed = text(),
            OID_FRESHNESS => device.freshness = Some(value.to_vec()),
            _ => {}
        }
    }
    Ok(device)
}

/// The x5c chain (leaf first) of an "apple" attestation object.
pub fn decode_att_obj(att_obj: &[u8]) -> Result<Vec<Vec<u8>>, AttestationError> {
    let stmt = statement(att_obj, "apple")?;
    x5c(&stmt)
}

/// Verifies Apple attestations against a set of trust anchors.
#[derive(Clone, Debug)]
pub struct AppleVerifier {
    anchors: Vec<CertificateDer<'static>>,
}

impl AppleVerifier {
    /// A verifier trusting these PEM roots (Apple's compiled-in root when
    /// `roots` is empty).
    pub fn new(roots: &[String]) -> Result<AppleVerifier, RootsError> {
        let pems: Vec<String> = if roots.is_empty() {
            vec![APPLE_ROOT_PEM.to_string()]
        } else {
            roots.to_vec()
        };
        Ok(AppleVerifier {
            anchors: load_anchors(&pems)?,
        })
    }

    /// Verifies `att_obj` for the challenge `token` at `now` (Unix seconds).
    pub fn verify(
        &self,
        att_obj: &[u8],
        token: &str,
        now: u64,
    ) -> Result<AttestedDevice, AttestationError> {
        let chain = decode_att_obj(att_obj)?;
        verify_chain(&self.anchors, &chain, now, None)?;
        let device = read_leaf(&chain[0])?;
        let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        match &device.freshness {
            None => return Err(AttestationError::Freshness("is missing")),
            Some(code) => {
                if aws_lc_rs::constant_time::verify_slices_are_equal(code, expected.as_ref())
                    .is_err()
                {
                    return Err(AttestationError::Freshness(
                        "does not match this challenge's token",
                    ));
                }
            }
        }
        Ok(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL_LEAF: &str = include_str!("../../tests/data/real-apple-attestation-leaf-2025.pem");

    fn pem_der(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    #[test]
    fn the_real_apple_leaf_decodes_and_is_refused() {
        let der = pem_der(REAL_LEAF);
        let d = read_leaf(&der).unwrap();
        assert_eq!(d.serial.as_deref(), Some("TMWFWWWP67"));
        assert_eq!(d.udid.as_deref(), Some("00006030-000651690A84001C"));
        assert_eq!(d.os_version.as_deref(), Some("15.5"));
        assert_eq!(d.secure_boot.as_deref(), Some("Full Security"));
        assert_eq!(d.freshness.as_ref().map(Vec::len), Some(32));
        assert_eq!(d.public_key.len(), 97, "P-384 uncompressed point");
        // Alone (no intermediate), under Apple's root: refused.
        let obj = ciborium::value::Value::Map(vec![
            ("fmt".into(), "apple".into()),
            (
                "attStmt".into(),
                ciborium::value::Value::Map(vec![(
                    "x5c".into(),
                    ciborium::value::Value::Array(vec![ciborium::value::Value::Bytes(der)]),
                )]),
            ),
        ]);
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&obj, &mut bytes).unwrap();
        let v = AppleVerifier::new(&[]).unwrap();
        assert!(matches!(
            v.verify(&bytes, "token", now()),
            Err(AttestationError::Chain(_))
        ));
    }
}
