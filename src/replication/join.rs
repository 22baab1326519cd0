//! A responder's own key (the responder's side of enrolment): made at first
//! start with a join token, kept in the responder's data dir, renewed
//! before it expires. See `enroll` for the primary's side.
//!
//! Files in the data dir: `responder.key` (PKCS#8, 0600), `responder.pem`
//! (its delegated OCSP responder certificate), `responder.renewal` (the
//! renewal secret, 0600) and `responder.json` (name, primary URL, root
//! fingerprint).

use super::enroll::{EnrollAnswer, EnrollRequest, JoinToken};
use crate::ca::key::{KeyAlgorithm, SigningKey};
use crate::support::files::{read_named, write_atomic, Visibility};
use anyhow::{anyhow, bail, Context};
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The key and certificate fresh responses are signed with.
pub struct Identity {
    /// The responder's key.
    pub key: SigningKey,
    /// Its delegated responder certificate (DER).
    pub cert_der: Vec<u8>,
    /// notBefore (Unix seconds).
    pub not_before: u64,
    /// notAfter (Unix seconds).
    pub not_after: u64,
    /// Its serial.
    pub serial: crate::serial::Serial,
    /// The data dir its files are in.
    pub dir: PathBuf,
}

impl Identity {
    /// Deletes the key and certificate files of a revoked identity, so that
    /// a restart does not sign with them again (`responder.json` stays, to
    /// say what it was enrolled as).
    pub fn retire(&self) {
        let [key, cert, renewal, _] = paths(&self.dir);
        for path in [key, cert, renewal] {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!(path = %path.display(), error = %e, "could not delete a revoked responder file");
                }
            }
        }
    }

    /// Whether less than a third of its life is left at `now`.
    pub fn renewal_due(&self, now: u64) -> bool {
        let life = self.not_after.saturating_sub(self.not_before);
        now + life / 3 >= self.not_after
    }
}

/// The signer view of an [`Identity`] for one response.
pub struct Signer<'a> {
    identity: &'a Identity,
    certs: [&'a [u8]; 1],
}

impl<'a> Signer<'a> {
    /// Signs with `identity`, including its certificate.
    pub fn new(identity: &'a Identity) -> Signer<'a> {
        Signer {
            identity,
            certs: [&identity.cert_der],
        }
    }
}

impl custos_ocsp::response::ResponseSigner for Signer<'_> {
    fn signature_algorithm(&self) -> spki::AlgorithmIdentifierOwned {
        self.identity.key.signature_algorithm()
    }
    fn key_hash(&self) -> [u8; 20] {
        self.identity.key.key_id()
    }
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, custos_ocsp::BoxError> {
        Ok(self.identity.key.sign(tbs)?)
    }
    fn certs_der(&self) -> &[&[u8]] {
        &self.certs
    }
}

/// The primary refused a renewal because this responder was revoked.
#[derive(Debug, thiserror::Error)]
#[error("the primary refuses to renew this responder: {0}")]
pub struct RevokedByPrimary(pub String);

/// Where the responder keeps what enrolment gave it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Enrolment {
    name: String,
    url: String,
    root: String,
}

fn paths(dir: &Path) -> [PathBuf; 4] {
    [
        dir.join("responder.key"),
        dir.join("responder.pem"),
        dir.join("responder.renewal"),
        dir.join("responder.json"),
    ]
}

/// notBefore, notAfter and serial of a certificate.
fn validity(cert_der: &[u8]) -> anyhow::Result<(u64, u64, crate::serial::Serial)> {
    let cert = x509_cert::Certificate::from_der(cert_der)?;
    let v = &cert.tbs_certificate.validity;
    let serial = crate::serial::Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes())
        .map_err(|e| anyhow!("responder certificate serial: {e}"))?;
    Ok((
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
        serial,
    ))
}

/// The identity kept in `dir`, if any.
pub fn load(dir: &Path) -> anyhow::Result<Option<Identity>> {
    let [key_path, cert_path, ..] = paths(dir);
    if !cert_path.exists() {
        return Ok(None);
    }
    let key = SigningKey::from_pem(&read_named(&key_path, "responder key")?)
        .map_err(|e| anyhow!("{}: {e}", key_path.display()))?;
    let pem = read_named(&cert_path, "responder certificate")?;
    let (_, cert_der) =
        der::pem::decode_vec(&pem).map_err(|e| anyhow!("{}: {e}", cert_path.display()))?;
    let (not_before, not_after, serial) = validity(&cert_der)?;
    Ok(Some(Identity {
        key,
        cert_der,
        not_before,
        not_after,
        serial,
        dir: dir.to_path_buf(),
    }))
}

/// A PEM CSR for `key` (subject CN = `name`).
fn csr_pem(key: &SigningKey, name: &str) -> anyhow::Result<String> {
    use x509_cert::request::{CertReq, CertReqInfo};
    let subject: x509_cert::name::Name = format!("CN={name}")
        .parse()
        .map_err(|e| anyhow!("responder name: {e}"))?;
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject,
        public_key: key.spki(),
        attributes: Default::default(),
    };
    let signature = key.sign_bitstring(&info.to_der()?)?;
    let req = CertReq {
        info,
        algorithm: key.signature_algorithm(),
        signature,
    };
    Ok(crate::ca::build::der_to_csr_pem(&req.to_der()?))
}

/// An HTTPS client trusting only `root_der`.
fn client(root_der: &[u8]) -> anyhow::Result<reqwest::Client> {
    let root = reqwest::Certificate::from_der(root_der).context("the root certificate")?;
    Ok(reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Sends a new key's CSR with `secret`; writes what comes back to `dir`.
async fn request(
    dir: &Path,
    enrolment: &Enrolment,
    root_der: &[u8],
    secret: &str,
) -> anyhow::Result<Identity> {
    let key = SigningKey::generate(KeyAlgorithm::P256)?;
    let body = EnrollRequest {
        name: enrolment.name.clone(),
        secret: secret.to_string(),
        csr: csr_pem(&key, &format!("custos responder {}", enrolment.name))?,
    };
    let url = format!("{}/responder/enroll", enrolment.url);
    let resp = client(root_der)?
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach the primary at {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if status == reqwest::StatusCode::FORBIDDEN {
        return Err(RevokedByPrimary(text).into());
    }
    if !status.is_success() {
        bail!("the primary refused the enrolment ({status}): {text}");
    }
    let answer: EnrollAnswer =
        serde_json::from_str(&text).context("unexpected answer from the primary")?;
    let (_, cert_der) = der::pem::decode_vec(answer.certificate.as_bytes())
        .map_err(|e| anyhow!("the primary's certificate: {e}"))?;
    let [key_path, cert_path, renewal_path, json_path] = paths(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    // Key first, then the certificate that names it.
    write_atomic(
        &key_path,
        key.to_pkcs8_pem()?.as_bytes(),
        Visibility::Secret,
    )?;
    write_atomic(
        &cert_path,
        answer.certificate.as_bytes(),
        Visibility::Public,
    )?;
    write_atomic(
        &renewal_path,
        answer.renewal_secret.as_bytes(),
        Visibility::Secret,
    )?;
    write_atomic(
        &json_path,
        &serde_json::to_vec_pretty(enrolment)?,
        Visibility::Public,
    )?;
    let (not_before, not_after, serial) = validity(&cert_der)?;
    Ok(Identity {
        key,
        cert_der,
        not_before,
        not_after,
        serial,
        dir: dir.to_path_buf(),
    })
}

/// First enrolment with a join token. `root_der` is the root the primary
/// published; it must have the token's fingerprint.
pub async fn join(dir: &Path, token: &str, root_der: &[u8]) -> anyhow::Result<Identity> {
    let token = JoinToken::decode(token).map_err(anyhow::Error::msg)?;
    let seen = crate::model::sha256_hex(root_der);
    if !seen.eq_ignore_ascii_case(&token.root) {
        bail!(
            "the root certificate in Redis (SHA-256 {seen}) is not the one the join token pins ({}); refusing to enrol",
            token.root
        );
    }
    let enrolment = Enrolment {
        name: token.name.clone(),
        url: token.url.clone(),
        root: token.root.clone(),
    };
    request(dir, &enrolment, root_der, &token.secret).await
}

/// Renews with the kept renewal secret (a new key each time).
pub async fn renew(dir: &Path, root_der: &[u8]) -> anyhow::Result<Identity> {
    let [_, _, renewal_path, json_path] = paths(dir);
    let enrolment: Enrolment = serde_json::from_slice(&read_named(&json_path, "responder.json")?)
        .context("responder.json")?;
    if !crate::model::sha256_hex(root_der).eq_ignore_ascii_case(&enrolment.root) {
        bail!("the root certificate in Redis changed since enrolment; refusing to renew");
    }
    let secret = String::from_utf8(read_named(&renewal_path, "renewal secret")?)
        .context("responder.renewal")?;
    request(dir, &enrolment, root_der, secret.trim()).await
}
