//! TPM 2.0 key attestation (`device-attest-01`, `fmt` "tpm", as
//! draft-ietf-acme-device-attest takes it from WebAuthn §8.3): an
//! attestation key (AK) certified by the organisation's attestation CA
//! signs a `TPM2_Certify` of the key the device wants a certificate for.
//!
//! What is checked, in order:
//! 1. `ver` is "2.0"; `alg` is ES256, ES384 or RS256/384/512.
//! 2. `x5c` (AK certificate first) verifies to the configured roots now,
//!    with the AK certificate's profile: extended key usage
//!    tcg-kp-AIKCertificate (2.23.133.8.3), an empty subject, a
//!    subjectAltName naming the TPM's manufacturer, model and version.
//! 3. `sig` verifies over `certInfo` with the AK's key and `alg` (DER
//!    ECDSA, or RSASSA-PKCS1-v1_5).
//! 4. `certInfo` is a TPMS_ATTEST from the TPM (magic TPM_GENERATED, type
//!    ATTEST_CERTIFY) whose `extraData` is SHA-256(key authorization) and
//!    whose certified name is nameAlg ‖ H(pubArea).
//! 5. `pubArea` is a TPMT_PUBLIC for an ECC (P-256/P-384) or RSA signing
//!    key that is fixedTPM and sensitiveDataOrigin: made in this TPM and
//!    unable to leave it. Its public key is what the CSR must carry.
//!
//! Which device this is comes from the AK certificate's
//! PermanentIdentifier (RFC 4043), or from the inventory mapping the AK to
//! a device; that is the caller's to check.
//!
//! TPM structures are big-endian with 16-bit length prefixes (TPM 2.0
//! Part 2); the few read here are parsed with a bounds-checked cursor.

pub use crate::statement::TpmInfo;
use crate::statement::{field, load_anchors, statement, verify_chain, x5c};
use crate::statement::{AttestationError, AttestedDevice, RootsError};
use ciborium::value::Value as Cbor;
use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Encode};
use rustls_pki_types::CertificateDer;
use x509_cert::Certificate;

/// tcg-kp-AIKCertificate, DER content of the OID 2.23.133.8.3.
const TCG_KP_AIK_CERTIFICATE: &[u8] = &[0x67, 0x81, 0x05, 0x08, 0x03];
const OID_TPM_MANUFACTURER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.1");
const OID_TPM_MODEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.2");
const OID_TPM_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.3");
/// id-on-permanentIdentifier (RFC 4043).
const OID_PERMANENT_IDENTIFIER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.8.3");
const OID_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_SHA256: u16 = 0x000b;
const TPM_ALG_SHA384: u16 = 0x000c;
const TPM_ALG_SHA512: u16 = 0x000d;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ALG_ECC: u16 = 0x0023;
const TPM_ECC_NIST_P256: u16 = 0x0003;
const TPM_ECC_NIST_P384: u16 = 0x0004;
/// TPMA_OBJECT bits.
const FIXED_TPM: u32 = 1 << 1;
const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
const SIGN_ENCRYPT: u32 = 1 << 18;

/// Largest `certInfo`, `pubArea` or `sig` accepted.
const MAX_TPM_BLOB: usize = 2048;

fn bad(why: impl Into<String>) -> AttestationError {
    AttestationError::Statement(why.into())
}

/// A bounds-checked big-endian reader over a TPM structure.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], AttestationError> {
        if self.0.len() < n {
            return Err(bad(format!("{what}: truncated")));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self, what: &str) -> Result<u16, AttestationError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, AttestationError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A TPM2B: 16-bit size, then that many bytes.
    fn sized(&mut self, what: &str) -> Result<&'a [u8], AttestationError> {
        let n = self.u16(what)? as usize;
        self.take(n, what)
    }
    fn end(&self, what: &str) -> Result<(), AttestationError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad(format!("{what}: trailing bytes")))
        }
    }
}

/// The certified key as a TPMT_PUBLIC describes it.
struct PubArea {
    name_alg: u16,
    /// The key as an SPKI's subjectPublicKey holds it.
    public_key: Vec<u8>,
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// Reads TPMT_SYM_DEF_OBJECT or a scheme with one hash: an algorithm and,
/// unless NULL, `extra` more 16-bit fields.
fn alg_with(c: &mut Cursor<'_>, extra: usize, what: &str) -> Result<u16, AttestationError> {
    let alg = c.u16(what)?;
    if alg != TPM_ALG_NULL {
        for _ in 0..extra {
            c.u16(what)?;
        }
    }
    Ok(alg)
}

fn read_pub_area(bytes: &[u8]) -> Result<PubArea, AttestationError> {
    let mut c = Cursor(bytes);
    let kind = c.u16("pubArea type")?;
    let name_alg = c.u16("pubArea nameAlg")?;
    let attributes = c.u32("pubArea objectAttributes")?;
    c.sized("pubArea authPolicy")?;
    if attributes & FIXED_TPM == 0 || attributes & SENSITIVE_DATA_ORIGIN == 0 {
        return Err(bad(
            "the certified key was not made in the TPM or can leave it (fixedTPM and sensitiveDataOrigin required)",
        ));
    }
    if attributes & SIGN_ENCRYPT == 0 {
        return Err(bad("the certified key is not a signing key"));
    }
    let public_key = match kind {
        TPM_ALG_ECC => {
            alg_with(&mut c, 2, "pubArea symmetric")?;
            alg_with(&mut c, 1, "pubArea scheme")?;
            let size = match c.u16("pubArea curveID")? {
                TPM_ECC_NIST_P256 => 32,
                TPM_ECC_NIST_P384 => 48,
                other => {
                    return Err(bad(format!(
                        "ECC curve 0x{other:04x} is not P-256 or P-384"
                    )))
                }
            };
            alg_with(&mut c, 1, "pubArea kdf")?;
            let (x, y) = (c.sized("pubArea x")?, c.sized("pubArea y")?);
            if x.len() > size || y.len() > size {
                return Err(bad("ECC point larger than its curve"));
            }
            let mut point = vec![0x04];
            for coord in [x, y] {
                point.extend(std::iter::repeat_n(0, size - coord.len()));
                point.extend_from_slice(coord);
            }
            point
        }
        TPM_ALG_RSA => {
            alg_with(&mut c, 2, "pubArea symmetric")?;
            alg_with(&mut c, 1, "pubArea scheme")?;
            c.u16("pubArea keyBits")?;
            let exponent = match c.u32("pubArea exponent")? {
                0 => 65537,
                e => e,
            };
            let modulus = c.sized("pubArea modulus")?;
            let e = exponent.to_be_bytes();
            let start = e.iter().position(|b| *b != 0).unwrap_or(3);
            RsaPublicKey {
                modulus: UintRef::new(modulus).map_err(|e| bad(format!("RSA modulus: {e}")))?,
                public_exponent: UintRef::new(&e[start..])
                    .map_err(|e| bad(format!("RSA exponent: {e}")))?,
            }
            .to_der()
            .map_err(|e| bad(format!("RSA key: {e}")))?
        }
        other => return Err(bad(format!("key type 0x{other:04x} is not ECC or RSA"))),
    };
    c.end("pubArea")?;
    Ok(PubArea {
        name_alg,
        public_key,
    })
}

fn digest(alg: u16, data: &[u8]) -> Result<Vec<u8>, AttestationError> {
    use aws_lc_rs::digest;
    let a = match alg {
        TPM_ALG_SHA256 => &digest::SHA256,
        TPM_ALG_SHA384 => &digest::SHA384,
        TPM_ALG_SHA512 => &digest::SHA512,
        other => return Err(bad(format!("name algorithm 0x{other:04x} is not SHA-2"))),
    };
    Ok(digest::digest(a, data).as_ref().to_vec())
}

/// Checks a TPMS_ATTEST: generated by the TPM, a certification, of the key
/// whose TPMT_PUBLIC is `pub_area`, for this nonce (`extra_data`).
fn check_cert_info(
    cert_info: &[u8],
    pub_area: &[u8],
    name_alg: u16,
    extra_data: &[u8],
) -> Result<(), AttestationError> {
    let mut c = Cursor(cert_info);
    if c.u32("certInfo magic")? != TPM_GENERATED_VALUE {
        return Err(bad("certInfo was not generated by a TPM (magic)"));
    }
    if c.u16("certInfo type")? != TPM_ST_ATTEST_CERTIFY {
        return Err(bad("certInfo is not a TPM2_Certify attestation"));
    }
    c.sized("certInfo qualifiedSigner")?;
    let nonce = c.sized("certInfo extraData")?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(nonce, extra_data).is_err() {
        return Err(bad(
            "certInfo extraData is not SHA-256 of this challenge's key authorization",
        ));
    }
    c.take(8 + 4 + 4 + 1, "certInfo clockInfo")?;
    c.take(8, "certInfo firmwareVersion")?;
    let name = c.sized("certInfo attested name")?;
    c.sized("certInfo attested qualifiedName")?;
    c.end("certInfo")?;
    let mut expected = name_alg.to_be_bytes().to_vec();
    expected.extend(digest(name_alg, pub_area)?);
    if name != expected.as_slice() {
        return Err(bad("certInfo certifies another key than pubArea"));
    }
    Ok(())
}

#[derive(der::Sequence)]
struct PermanentIdentifier<'a> {
    #[asn1(optional = "true")]
    identifier_value: Option<der::asn1::Utf8StringRef<'a>>,
}

/// The AK certificate's profile (WebAuthn §8.3.1): empty subject, a
/// subjectAltName naming the TPM; what it names, and the permanent
/// identifier if it carries one.
fn read_ak_cert(der: &[u8]) -> Result<(TpmInfo, Option<String>), AttestationError> {
    use x509_cert::ext::pkix::name::GeneralName;
    let cert = Certificate::from_der(der)
        .map_err(|e| AttestationError::Malformed(format!("AK certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    if tbs.version != x509_cert::Version::V3 || !tbs.subject.0.is_empty() {
        return Err(bad(
            "the AK certificate must be version 3 with an empty subject",
        ));
    }
    let san = tbs
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == OID_SAN)
        .ok_or_else(|| bad("the AK certificate has no subjectAltName"))?;
    let names = x509_cert::ext::pkix::SubjectAltName::from_der(san.extn_value.as_bytes())
        .map_err(|e| bad(format!("AK subjectAltName: {e}")))?;
    let text = |v: &der::asn1::Any| {
        v.decode_as::<der::asn1::Utf8StringRef<'_>>()
            .map(|s| s.to_string())
            .or_else(|_| {
                v.decode_as::<der::asn1::PrintableStringRef<'_>>()
                    .map(|s| s.to_string())
            })
            .ok()
    };
    let mut info = TpmInfo {
        ak_sha256: hex::encode(digest(
            TPM_ALG_SHA256,
            &tbs.subject_public_key_info
                .to_der()
                .map_err(|e| bad(format!("AK key: {e}")))?,
        )?),
        ..TpmInfo::default()
    };
    let mut permanent = None;
    for name in &names.0 {
        match name {
            GeneralName::DirectoryName(dn) => {
                for atv in dn.0.iter().flat_map(|rdn| rdn.0.iter()) {
                    let value = text(&atv.value);
                    match atv.oid {
                        o if o == OID_TPM_MANUFACTURER => {
                            info.manufacturer = value.unwrap_or_default()
                        }
                        o if o == OID_TPM_MODEL => info.model = value,
                        o if o == OID_TPM_VERSION => info.version = value,
                        _ => {}
                    }
                }
            }
            GeneralName::OtherName(other) if other.type_id == OID_PERMANENT_IDENTIFIER => {
                let id: PermanentIdentifier<'_> = other
                    .value
                    .decode_as()
                    .map_err(|e| bad(format!("PermanentIdentifier: {e}")))?;
                permanent = id.identifier_value.map(|s| s.to_string());
            }
            _ => {}
        }
    }
    if info.manufacturer.is_empty() {
        return Err(bad("the AK certificate does not name the TPM manufacturer"));
    }
    Ok((info, permanent))
}

/// Verifies `sig` over `message` with the AK certificate's key.
fn check_signature(
    ak_der: &[u8],
    alg: i64,
    message: &[u8],
    sig: &[u8],
) -> Result<(), AttestationError> {
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    let verifier: &'static dyn VerificationAlgorithm = match alg {
        -7 => &signature::ECDSA_P256_SHA256_ASN1,
        -35 => &signature::ECDSA_P384_SHA384_ASN1,
        -257 => &signature::RSA_PKCS1_2048_8192_SHA256,
        -258 => &signature::RSA_PKCS1_2048_8192_SHA384,
        -259 => &signature::RSA_PKCS1_2048_8192_SHA512,
        other => {
            return Err(bad(format!(
                "alg {other} is not ES256, ES384 or RS256/384/512"
            )))
        }
    };
    let cert = Certificate::from_der(ak_der)
        .map_err(|e| AttestationError::Malformed(format!("AK certificate: {e}")))?;
    UnparsedPublicKey::new(
        verifier,
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .verify(message, sig)
    .map_err(|_| bad("sig does not verify over certInfo with the AK certificate's key"))
}

fn blob(stmt: &[(Cbor, Cbor)], key: &str) -> Result<Vec<u8>, AttestationError> {
    match field(stmt, key).and_then(Cbor::as_bytes) {
        Some(b) if !b.is_empty() && b.len() <= MAX_TPM_BLOB => Ok(b.clone()),
        _ => Err(AttestationError::Malformed(format!(
            "{key} missing or not bytes of at most {MAX_TPM_BLOB}"
        ))),
    }
}

/// The key a TPMT_PUBLIC describes, as an SPKI's subjectPublicKey holds it
/// (the checks of step 5 included).
pub fn certified_key(pub_area: &[u8]) -> Result<Vec<u8>, AttestationError> {
    Ok(read_pub_area(pub_area)?.public_key)
}

/// Steps 4 and 5 without the signature: `cert_info` certifies the key of
/// `pub_area` for the nonce `extra_data`.
pub fn check_certify(
    cert_info: &[u8],
    pub_area: &[u8],
    extra_data: &[u8],
) -> Result<(), AttestationError> {
    let key = read_pub_area(pub_area)?;
    check_cert_info(cert_info, pub_area, key.name_alg, extra_data)
}

/// Verifies TPM attestations against the organisation's attestation CA.
#[derive(Clone, Debug)]
pub struct TpmVerifier {
    anchors: Vec<CertificateDer<'static>>,
}

impl TpmVerifier {
    /// A verifier trusting these PEM roots (at least one).
    pub fn new(roots: &[String]) -> Result<TpmVerifier, RootsError> {
        Ok(TpmVerifier {
            anchors: load_anchors(roots)?,
        })
    }

    /// Verifies `att_obj` for a challenge whose key authorization is
    /// `key_authorization`, at `now` (Unix seconds). The result's
    /// `public_key` is the certified key, `serial` the AK certificate's
    /// permanent identifier (if any), `tpm` what it says of the TPM.
    pub fn verify(
        &self,
        att_obj: &[u8],
        key_authorization: &str,
        now: u64,
    ) -> Result<AttestedDevice, AttestationError> {
        let stmt = statement(att_obj, "tpm")?;
        if field(&stmt, "ver").and_then(Cbor::as_text) != Some("2.0") {
            return Err(AttestationError::Malformed("ver is not \"2.0\"".into()));
        }
        let alg = field(&stmt, "alg")
            .and_then(Cbor::as_integer)
            .and_then(|i| i64::try_from(i).ok())
            .ok_or_else(|| AttestationError::Malformed("alg is not an integer".into()))?;
        let chain = x5c(&stmt)?;
        let (sig, cert_info, pub_area) = (
            blob(&stmt, "sig")?,
            blob(&stmt, "certInfo")?,
            blob(&stmt, "pubArea")?,
        );
        verify_chain(&self.anchors, &chain, now, Some(TCG_KP_AIK_CERTIFICATE))?;
        let (info, permanent) = read_ak_cert(&chain[0])?;
        check_signature(&chain[0], alg, &cert_info, &sig)?;
        let key = read_pub_area(&pub_area)?;
        let nonce = digest(TPM_ALG_SHA256, key_authorization.as_bytes())?;
        check_cert_info(&cert_info, &pub_area, key.name_alg, &nonce)?;
        Ok(AttestedDevice {
            serial: permanent,
            public_key: key.public_key,
            format: Some("tpm".into()),
            tpm: Some(info),
            ..AttestedDevice::default()
        })
    }
}
