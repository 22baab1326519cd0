//! The certificate authority: its key material on disk and the certificates
//! it signs (root, issuing intermediate, delegated OCSP responder, leaves).
//!
//! Layout under `<data-dir>/ca/`: `root.pem` (+ `root.key` when created
//! here), `intermediate.pem` + `intermediate.key`, `chain.pem` (intermediate
//! then root), `ocsp.pem` + `ocsp.key`. Keys are PKCS#8 PEM written 0600.
//! This module signs what it is told to; deciding *whether* to issue is the
//! issuance module's job, and remembering what was issued is the ledger's.

pub mod build;
pub mod key;
mod ocsp_signer;
pub mod profile;
mod scep_ra;

pub use ocsp_signer::OcspSigner;
use ocsp_signer::{issue_ocsp_signer, load_ocsp_signer, write_ocsp_signer};
pub use scep_ra::ScepRa;

use crate::model::time::unix_now;
use crate::serial::Serial;
use crate::support::files::{read_named, write_atomic, Visibility};
use anyhow::{anyhow, bail, Context};
use build::{
    authority_info_access, authority_key_id, basic_constraints, crl_distribution_point, extension,
    ocsp_nocheck, organization, sign_certificate, subject_key_id, CertParts,
};
use der::oid::ObjectIdentifier;
use der::{Decode, DecodePem, Encode};
use key::{KeyAlgorithm, SigningKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::Certificate;

/// id-kp-OCSPSigning.
pub const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// Where the CA's files live.
#[derive(Clone, Debug)]
pub struct CaPaths {
    dir: PathBuf,
}

impl CaPaths {
    /// The CA directory inside a data dir.
    pub fn new(data_dir: &Path) -> Self {
        CaPaths {
            dir: data_dir.join("ca"),
        }
    }
    /// `<data-dir>/ca/root.pem`: the trust anchor users install.
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("root.pem")
    }
    /// The root's private key (absent for an imported CA).
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root.key")
    }
    /// The issuing intermediate's certificate.
    pub fn issuer_cert(&self) -> PathBuf {
        self.dir.join("intermediate.pem")
    }
    /// The issuing intermediate's private key.
    pub fn issuer_key(&self) -> PathBuf {
        self.dir.join("intermediate.key")
    }
    /// `<data-dir>/ca/chain.pem`: issuing CA then root.
    pub fn chain(&self) -> PathBuf {
        self.dir.join("chain.pem")
    }
    /// The delegated OCSP responder certificate.
    pub fn ocsp_cert(&self) -> PathBuf {
        self.dir.join("ocsp.pem")
    }
    /// The delegated OCSP responder key.
    pub fn ocsp_key(&self) -> PathBuf {
        self.dir.join("ocsp.key")
    }
    /// The SCEP RA certificate (RSA, issued by the issuing CA).
    pub fn scep_ra_cert(&self) -> PathBuf {
        self.dir.join("scep-ra.pem")
    }
    /// The SCEP RA's RSA key (PKCS#8, 0600).
    pub fn scep_ra_key(&self) -> PathBuf {
        self.dir.join("scep-ra.key")
    }
}

/// Names and lifetimes for a CA created by `custos init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Organisation (O=) in every CA name.
    pub organization: String,
    /// Root common name.
    pub root_cn: String,
    /// Issuing intermediate common name.
    pub intermediate_cn: String,
    /// Root lifetime in days.
    pub root_days: u32,
    /// Intermediate lifetime in days.
    pub intermediate_days: u32,
    /// OCSP responder key curve.
    pub ocsp_key: KeyAlgorithm,
    /// OCSP responder certificate lifetime in days.
    pub ocsp_days: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            organization: "custos".into(),
            root_cn: "custos Development Root CA".into(),
            intermediate_cn: "custos Development Issuing CA".into(),
            root_days: 3650,
            intermediate_days: 1825,
            ocsp_key: KeyAlgorithm::P256,
            ocsp_days: 14,
        }
    }
}

/// Public URLs written into certificates.
#[derive(Clone, Debug)]
pub struct CaUrls {
    /// Base of the plain-HTTP listener, without a trailing slash.
    pub http_base: String,
}

/// What a leaf certificate says; decided by the issuance module.
pub struct LeafSpec {
    /// Serial number (already checked unique).
    pub serial: Serial,
    /// Subject name.
    pub subject: Name,
    /// Subject public key.
    pub spki: spki::SubjectPublicKeyInfoOwned,
    /// notBefore (Unix seconds).
    pub not_before: u64,
    /// notAfter (Unix seconds).
    pub not_after: u64,
    /// keyUsage bits.
    pub key_usage: KeyUsage,
    /// extendedKeyUsage purposes (none: extension omitted).
    pub ext_key_usage: Vec<ObjectIdentifier>,
    /// subjectAltName entries (none: extension omitted).
    pub sans: Vec<GeneralName>,
    /// CRL shard written into the CDP URL.
    pub crl_shard: u32,
}

/// A loaded CA, ready to sign.
pub struct Ca {
    paths: CaPaths,
    root: Certificate,
    root_der: Vec<u8>,
    issuer: Certificate,
    issuer_der: Vec<u8>,
    issuer_key: SigningKey,
    issuer_id: String,
    ocsp: RwLock<Arc<OcspSigner>>,
    /// The SCEP RA, made at its first use.
    scep_ra: std::sync::Mutex<Option<Arc<ScepRa>>>,
    urls: CaUrls,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ca(issuer-id {})", self.issuer_id)
    }
}

fn name(cn: &str, org: &str) -> anyhow::Result<Name> {
    let escape = |s: &str| {
        s.replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace('+', "\\+")
    };
    Name::from_str(&format!("CN={},O={}", escape(cn), escape(org)))
        .map_err(|e| anyhow!("invalid name {cn:?}/{org:?}: {e}"))
}

fn days(n: u32) -> u64 {
    u64::from(n) * 86_400
}

fn cert_pem(der: &[u8]) -> anyhow::Result<String> {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der)
        .map_err(|e| anyhow!("PEM encoding failed: {e}"))
}

/// All certificates in a PEM bundle, in order.
pub fn parse_pem_bundle(pem: &[u8]) -> anyhow::Result<Vec<Certificate>> {
    let certs =
        Certificate::load_pem_chain(pem).map_err(|e| anyhow!("not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        bail!("no certificate found");
    }
    Ok(certs)
}

fn load_cert(path: &Path, what: &str) -> anyhow::Result<Certificate> {
    let pem = read_named(path, what)?;
    Certificate::from_pem(&pem)
        .map_err(|e| anyhow!("{}: {what} is not a PEM certificate: {e}", path.display()))
}

fn load_key(path: &Path, what: &str) -> anyhow::Result<SigningKey> {
    let pem = zeroize::Zeroizing::new(read_named(path, what)?);
    SigningKey::from_pem(&pem).map_err(|e| anyhow!("{}: {what}: {e}", path.display()))
}

fn validity_secs(cert: &Certificate) -> (u64, u64) {
    let v = &cert.tbs_certificate.validity;
    (
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    )
}

fn key_matches(cert: &Certificate, key: &SigningKey) -> bool {
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map(|d| d == key.spki_der())
        .unwrap_or(false)
}

impl Ca {
    /// Whether a CA exists in this data dir.
    pub fn exists(data_dir: &Path) -> bool {
        CaPaths::new(data_dir).chain().exists()
    }

    /// Creates a root, an issuing intermediate and an OCSP responder.
    pub fn init(data_dir: &Path, opts: &InitOptions, urls: CaUrls) -> anyhow::Result<Ca> {
        let paths = CaPaths::new(data_dir);
        if paths.chain().exists() || paths.root_cert().exists() {
            bail!(
                "{}: a CA already exists in this data dir; refusing to overwrite it",
                paths.chain().display()
            );
        }
        let now = unix_now();
        let backdate = 3600;

        let root_key = SigningKey::generate(KeyAlgorithm::P384)?;
        let root_name = name(&opts.root_cn, &opts.organization)?;
        let ca_usage = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
        let (_, root_der) = sign_certificate(
            CertParts {
                serial: Serial::random(),
                subject: root_name.clone(),
                spki: root_key.spki(),
                not_before: now - backdate,
                not_after: now + days(opts.root_days),
                extensions: vec![
                    basic_constraints(true, None)?,
                    extension(true, &ca_usage)?,
                    subject_key_id(&root_key.key_id())?,
                ],
            },
            &root_name,
            &root_key,
        )?;

        let issuer_key = SigningKey::generate(KeyAlgorithm::P384)?;
        let issuer_name = name(&opts.intermediate_cn, &opts.organization)?;
        let issuer_usage =
            KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature);
        let (_, issuer_der) = sign_certificate(
            CertParts {
                serial: Serial::random(),
                subject: issuer_name,
                spki: issuer_key.spki(),
                not_before: now - backdate,
                not_after: (now + days(opts.intermediate_days)).min(now + days(opts.root_days)),
                extensions: vec![
                    basic_constraints(true, Some(0))?,
                    extension(true, &issuer_usage)?,
                    subject_key_id(&issuer_key.key_id())?,
                    authority_key_id(&root_key.key_id())?,
                ],
            },
            &root_name,
            &root_key,
        )?;

        write_atomic(
            &paths.root_key(),
            root_key.to_pkcs8_pem()?.as_bytes(),
            Visibility::Secret,
        )?;
        write_atomic(
            &paths.issuer_key(),
            issuer_key.to_pkcs8_pem()?.as_bytes(),
            Visibility::Secret,
        )?;
        write_atomic(
            &paths.root_cert(),
            cert_pem(&root_der)?.as_bytes(),
            Visibility::Public,
        )?;
        write_atomic(
            &paths.issuer_cert(),
            cert_pem(&issuer_der)?.as_bytes(),
            Visibility::Public,
        )?;
        let chain = format!("{}{}", cert_pem(&issuer_der)?, cert_pem(&root_der)?);
        Self::finish_setup(&paths, &issuer_key, &issuer_der, opts, chain, urls)
    }

    /// Takes an existing issuing CA: `bundle` holds its certificate first and
    /// then its chain up to a self-signed root; `key_pem` is its private key.
    pub fn import(
        data_dir: &Path,
        bundle: &[u8],
        key_pem: &[u8],
        opts: &InitOptions,
        urls: CaUrls,
    ) -> anyhow::Result<Ca> {
        let paths = CaPaths::new(data_dir);
        if paths.chain().exists() {
            bail!(
                "{}: a CA already exists in this data dir; refusing to overwrite it",
                paths.chain().display()
            );
        }
        let certs = parse_pem_bundle(bundle)?;
        let issuer_key = SigningKey::from_pem(key_pem)?;
        let issuer = &certs[0];
        if !key_matches(issuer, &issuer_key) {
            bail!("the key does not belong to the first certificate of the bundle");
        }
        let root = certs
            .iter()
            .find(|c| c.tbs_certificate.subject == c.tbs_certificate.issuer)
            .ok_or_else(|| anyhow!("the bundle must include the chain up to a self-signed root"))?;
        let issuer_der = issuer.to_der()?;
        let root_der = root.to_der()?;
        let mut chain = String::new();
        for c in &certs {
            chain.push_str(&cert_pem(&c.to_der()?)?);
        }
        write_atomic(
            &paths.issuer_key(),
            issuer_key.to_pkcs8_pem()?.as_bytes(),
            Visibility::Secret,
        )?;
        write_atomic(
            &paths.root_cert(),
            cert_pem(&root_der)?.as_bytes(),
            Visibility::Public,
        )?;
        write_atomic(
            &paths.issuer_cert(),
            cert_pem(&issuer_der)?.as_bytes(),
            Visibility::Public,
        )?;
        Self::finish_setup(&paths, &issuer_key, &issuer_der, opts, chain, urls)
    }

    fn finish_setup(
        paths: &CaPaths,
        issuer_key: &SigningKey,
        issuer_der: &[u8],
        opts: &InitOptions,
        chain: String,
        urls: CaUrls,
    ) -> anyhow::Result<Ca> {
        let issuer = Certificate::from_der(issuer_der)?;
        let signer = issue_ocsp_signer(&issuer, issuer_key, opts.ocsp_key, opts.ocsp_days)?;
        write_ocsp_signer(paths, &signer)?;
        // chain.pem last: its presence marks a complete CA.
        write_atomic(&paths.chain(), chain.as_bytes(), Visibility::Public)?;
        Self::load_from(paths.clone(), urls)
    }

    /// Loads the CA from a data dir; every error names the file at fault.
    pub fn load(data_dir: &Path, urls: CaUrls) -> anyhow::Result<Ca> {
        Self::load_from(CaPaths::new(data_dir), urls)
    }

    fn load_from(paths: CaPaths, urls: CaUrls) -> anyhow::Result<Ca> {
        let root = load_cert(&paths.root_cert(), "root certificate")?;
        let issuer = load_cert(&paths.issuer_cert(), "issuing CA certificate")?;
        let issuer_key = load_key(&paths.issuer_key(), "issuing CA key")?;
        if !key_matches(&issuer, &issuer_key) {
            bail!(
                "{}: this key does not match {}",
                paths.issuer_key().display(),
                paths.issuer_cert().display()
            );
        }
        let signer = match load_ocsp_signer(&paths) {
            Ok(signer) => signer,
            Err(e) => {
                // A crash between writing the responder's key and its
                // certificate, or a deleted file: the issuing CA can always
                // make a new responder, so do that rather than refuse to start.
                tracing::warn!(error = %e, "OCSP responder files unusable; issuing a new responder certificate");
                let signer = issue_ocsp_signer(&issuer, &issuer_key, KeyAlgorithm::P256, 14)?;
                write_ocsp_signer(&paths, &signer)?;
                signer
            }
        };
        let issuer_id = hex::encode(&issuer_key.key_id()[..8]);
        Ok(Ca {
            root_der: root.to_der()?,
            root,
            issuer_der: issuer.to_der()?,
            issuer,
            issuer_key,
            issuer_id,
            ocsp: RwLock::new(Arc::new(signer)),
            scep_ra: std::sync::Mutex::new(None),
            urls,
            paths,
        })
    }

    /// File locations.
    pub fn paths(&self) -> &CaPaths {
        &self.paths
    }

    /// Short stable id of the issuing CA used in URLs (`/crl/<issuer-id>/…`).
    pub fn issuer_id(&self) -> &str {
        &self.issuer_id
    }

    /// The issuing CA certificate.
    pub fn issuer_cert(&self) -> &Certificate {
        &self.issuer
    }

    /// The issuing CA certificate, DER.
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer_der
    }

    /// The issuing CA's key identifier, as leaves and CRLs name it in their
    /// Authority Key Identifier: the certificate's own SKI when it has one
    /// (an imported CA may use another method than ours), else ours.
    pub fn issuer_key_id(&self) -> Vec<u8> {
        self.issuer
            .tbs_certificate
            .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .map(|(_, ski)| ski.0.as_bytes().to_vec())
            .unwrap_or_else(|| self.issuer_key.key_id().to_vec())
    }

    /// The issuing CA's key.
    pub fn issuer_key(&self) -> &SigningKey {
        &self.issuer_key
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The root certificate.
    pub fn root_cert(&self) -> &Certificate {
        &self.root
    }

    /// SHA-256 fingerprint of the root, as `AB:CD:…`.
    pub fn root_fingerprint(&self) -> String {
        fingerprint(&self.root_der)
    }

    /// The current OCSP responder.
    pub fn ocsp_signer(&self) -> Arc<OcspSigner> {
        self.ocsp.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `spki_der` is one of the CA's own public keys.
    pub fn is_ca_key(&self, spki_der: &[u8]) -> bool {
        let root_spki = self
            .root
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .ok();
        spki_der == self.issuer_key.spki_der()
            || spki_der == self.ocsp_signer().key.spki_der()
            || root_spki.as_deref() == Some(spki_der)
    }

    /// The OCSP URL put in AIA.
    pub fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.urls.http_base)
    }

    /// The CA issuers URL put in AIA (the issuing CA's DER certificate).
    pub fn ca_issuers_url(&self) -> String {
        format!("{}/ca/{}.crt", self.urls.http_base, self.issuer_id)
    }

    /// The CRL URL of a shard.
    pub fn crl_url(&self, shard: u32) -> String {
        format!(
            "{}/crl/{}/{}.crl",
            self.urls.http_base, self.issuer_id, shard
        )
    }

    /// Signs a leaf certificate as specified, adding the extensions every
    /// leaf carries: basicConstraints, SKI/AKI, AIA and the CDP.
    pub fn sign_leaf(&self, spec: LeafSpec) -> anyhow::Result<(Certificate, Vec<u8>)> {
        let spki_bits = spec.spki.subject_public_key.raw_bytes().to_vec();
        let ski: [u8; 20] = sha1::Sha1::digest(&spki_bits).into();
        let mut extensions = vec![
            basic_constraints(false, None)?,
            extension(true, &spec.key_usage)?,
        ];
        if !spec.ext_key_usage.is_empty() {
            extensions.push(extension(false, &ExtendedKeyUsage(spec.ext_key_usage))?);
        }
        if !spec.sans.is_empty() {
            // RFC 5280 §4.2.1.6: critical when the subject is empty.
            let critical = spec.subject.0.is_empty();
            extensions.push(extension(critical, &SubjectAltName(spec.sans))?);
        }
        extensions.push(subject_key_id(&ski)?);
        extensions.push(authority_key_id(&self.issuer_key_id())?);
        extensions.push(authority_info_access(
            &self.ocsp_url(),
            &self.ca_issuers_url(),
        )?);
        extensions.push(crl_distribution_point(&self.crl_url(spec.crl_shard))?);
        Ok(sign_certificate(
            CertParts {
                serial: spec.serial,
                subject: spec.subject,
                spki: spec.spki,
                not_before: spec.not_before,
                not_after: spec.not_after,
                extensions,
            },
            &self.issuer.tbs_certificate.subject,
            &self.issuer_key,
        )?)
    }

    /// Replaces the OCSP responder certificate when less than `renew_before_days`
    /// of its life is left. Returns whether it was renewed.
    pub fn renew_ocsp_signer_if_due(
        &self,
        validity_days: u32,
        renew_before_days: u32,
    ) -> anyhow::Result<bool> {
        let current = self.ocsp_signer();
        if current.not_after > unix_now() + days(renew_before_days) {
            return Ok(false);
        }
        let signer = issue_ocsp_signer(
            &self.issuer,
            &self.issuer_key,
            current.key.algorithm(),
            validity_days,
        )?;
        write_ocsp_signer(&self.paths, &signer)?;
        *self.ocsp.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(signer);
        Ok(true)
    }

    /// PEM of the issuing chain (intermediate then root).
    pub fn chain_pem(&self) -> anyhow::Result<String> {
        let path = self.paths.chain();
        String::from_utf8(read_named(&path, "chain")?).context("chain.pem is not UTF-8")
    }
}

/// SHA-256 fingerprint as colon-separated uppercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// PEM-encodes one DER certificate.
pub fn to_pem(der: &[u8]) -> String {
    cert_pem(der).unwrap_or_default()
}
