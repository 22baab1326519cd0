//! `custos ocsp check`: asks an OCSP responder about one certificate the
//! way a relying party would (POST with a nonce), verifies the answer's
//! signature chain up to our issuing CA, and reports the status.
//!
//! It is a client: it never touches the ledger.

use crate::csr::verify_signature;
use anyhow::{anyhow, bail, Context};
use custos_ocsp::issuer::{HashAlg, IssuerHashes};
use custos_ocsp::request::{nonce_extension, ID_PKIX_OCSP_NONCE};
use custos_ocsp::response::{cert_id_for, ID_PKIX_OCSP_BASIC};
use custos_ocsp::x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};
use der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::Certificate;

/// What the responder said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// good | revoked | unknown.
    pub status: String,
    /// Revocation time and reason, when revoked.
    pub revoked: Option<(String, Option<String>)>,
    /// thisUpdate (RFC 3339).
    pub this_update: String,
    /// nextUpdate (RFC 3339), when present.
    pub next_update: Option<String>,
    /// Revocation time (Unix seconds) and reason code, when revoked.
    pub revoked_unix: Option<(u64, Option<u8>)>,
}

fn nonce_ext(nonce: &[u8]) -> anyhow::Result<Extension> {
    Ok(nonce_extension(nonce)?)
}

/// Builds the DER request for `cert` (issued by `issuer`) with `nonce`.
pub fn build_request(
    issuer: &Certificate,
    cert: &Certificate,
    nonce: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let hashes = IssuerHashes::new(issuer)?;
    let serial = cert.tbs_certificate.serial_number.as_bytes();
    let serial = &serial[serial.iter().position(|b| *b != 0).unwrap_or(0)..];
    let cert_id = cert_id_for(&hashes, HashAlg::Sha1, serial).map_err(|e| anyhow!("{e}"))?;
    Ok(custos_ocsp::request::build_request(cert_id, Some(nonce))?)
}

fn verify_cert_signed_by(cert: &Certificate, issuer: &Certificate) -> anyhow::Result<()> {
    let tbs = cert.tbs_certificate.to_der()?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| anyhow!("bad signature bits"))?;
    verify_signature(
        &issuer.tbs_certificate.subject_public_key_info,
        cert.signature_algorithm.oid,
        &tbs,
        sig,
    )
    .map_err(|e| anyhow!("responder certificate not signed by the issuing CA: {e}"))
}

fn time_text(t: &custos_ocsp::x509_ocsp::OcspGeneralizedTime) -> String {
    crate::model::time::rfc3339(t.0.to_unix_duration().as_secs())
}

/// Checks a response against the request's nonce and the issuer; returns the status.
pub fn read_response(
    der: &[u8],
    issuer: &Certificate,
    nonce: &[u8],
) -> anyhow::Result<CheckResult> {
    read_verified(der, issuer, Some(nonce))
}

/// Checks a response's signature (by the issuer, or by a responder
/// certificate the issuer signed) and, when `nonce` is given, that it
/// echoes it; returns the status of its first certificate.
pub fn read_verified(
    der: &[u8],
    issuer: &Certificate,
    nonce: Option<&[u8]>,
) -> anyhow::Result<CheckResult> {
    let resp = OcspResponse::from_der(der).context("the answer is not an OCSP response")?;
    if resp.response_status != OcspResponseStatus::Successful {
        bail!("responder answered {:?}", resp.response_status);
    }
    let bytes = resp
        .response_bytes
        .ok_or_else(|| anyhow!("successful answer without a body"))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        bail!("unsupported response type {}", bytes.response_type);
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())?;
    let tbs = basic.tbs_response_data.to_der()?;
    let sig = basic
        .signature
        .as_bytes()
        .ok_or_else(|| anyhow!("bad signature bits"))?;
    let signer = match basic.certs.as_ref().and_then(|c| c.first()) {
        Some(responder) => {
            verify_cert_signed_by(responder, issuer)?;
            responder
        }
        None => issuer,
    };
    verify_signature(
        &signer.tbs_certificate.subject_public_key_info,
        basic.signature_algorithm.oid,
        &tbs,
        sig,
    )
    .map_err(|e| anyhow!("response signature does not verify: {e}"))?;
    let echoed = basic
        .tbs_response_data
        .response_extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == ID_PKIX_OCSP_NONCE));
    if let Some(nonce) = nonce {
        if echoed != Some(&nonce_ext(nonce)?) {
            bail!("the response does not echo our nonce");
        }
    }
    let single = basic
        .tbs_response_data
        .responses
        .first()
        .ok_or_else(|| anyhow!("response holds no status"))?;
    let (status, revoked) = match &single.cert_status {
        CertStatus::Good(_) => ("good", None),
        CertStatus::Unknown(_) => ("unknown", None),
        CertStatus::Revoked(info) => (
            "revoked",
            Some((
                time_text(&info.revocation_time),
                info.revocation_reason.map(|r| {
                    crate::revocation::Reason::from_code(r as u8)
                        .map(|r| r.name().to_string())
                        .unwrap_or_else(|_| format!("reason code {}", r as u8))
                }),
            )),
        ),
    };
    let revoked_unix = match &single.cert_status {
        CertStatus::Revoked(info) => Some((
            info.revocation_time.0.to_unix_duration().as_secs(),
            info.revocation_reason.map(|r| r as u8),
        )),
        _ => None,
    };
    Ok(CheckResult {
        status: status.into(),
        revoked,
        revoked_unix,
        this_update: time_text(&single.this_update),
        next_update: single.next_update.as_ref().map(time_text),
    })
}

/// The OCSP URL a certificate names in its Authority Information Access
/// extension, if any.
pub fn aia_ocsp_url(cert: &Certificate) -> Option<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::AuthorityInfoAccessSyntax;
    const ID_PE_AIA: der::oid::ObjectIdentifier =
        der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
    const ID_AD_OCSP: der::oid::ObjectIdentifier =
        der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
    let ext = cert
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == ID_PE_AIA)?;
    let aia = AuthorityInfoAccessSyntax::from_der(ext.extn_value.as_bytes()).ok()?;
    aia.0.iter().find_map(|a| match &a.access_location {
        GeneralName::UniformResourceIdentifier(u) if a.access_method == ID_AD_OCSP => {
            Some(u.to_string())
        }
        _ => None,
    })
}

/// Sends the request and reads the answer.
pub async fn check(
    url: &str,
    issuer: &Certificate,
    cert: &Certificate,
) -> anyhow::Result<CheckResult> {
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow!("CSPRNG unavailable"))?;
    let body = build_request(issuer, cert, &nonce)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| anyhow!("HTTP client: {e}"))?;
    let resp = client
        .post(url)
        .header("content-type", custos_ocsp::REQUEST_MEDIA_TYPE)
        .body(body)
        .send()
        .await
        .map_err(|e| anyhow!("cannot reach the OCSP responder at {url}: {e}"))?;
    if !resp.status().is_success() {
        bail!("OCSP responder at {url} answered HTTP {}", resp.status());
    }
    let der = resp
        .bytes()
        .await
        .map_err(|e| anyhow!("OCSP responder at {url}: reading the answer: {e}"))?;
    read_response(&der, issuer, &nonce).map_err(|e| anyhow!("OCSP responder at {url}: {e}"))
}
