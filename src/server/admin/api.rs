//! The admin API's request and answer bodies (JSON), shared with the CLI's
//! client.

use crate::app::App;
use crate::ra::{CertView, RevokeResult};
use serde::{Deserialize, Serialize};

/// `POST /admin/certificates`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// PEM CSR.
    pub csr: String,
    /// Profile name (default profile when absent).
    #[serde(default)]
    pub profile: Option<String>,
    /// Inventory device (serial number or UDID) to link the certificate to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// `POST /admin/revoke`: exactly one of `serial` and `device`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// Serial (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Device identifier (serial number, UDID or permanent identifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// RFC 5280 reason name (default unspecified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Answer of `POST /admin/revoke`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RevokeAnswer {
    /// One entry per certificate considered.
    pub revoked: Vec<RevokeResult>,
}

/// Answer of `GET /admin/certificates`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListAnswer {
    /// The page.
    pub certificates: Vec<CertView>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Answer of `POST /admin/ocsp/refresh`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RefreshAnswer {
    /// Certificates whose responses were re-signed.
    pub refreshed: u64,
}

/// One shard's current CRL, as `GET /admin/crl` and `custos crl show` list it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrlInfo {
    /// Shard.
    pub shard: u32,
    /// CRL Number.
    pub number: u64,
    /// thisUpdate (RFC 3339).
    pub this_update: String,
    /// nextUpdate (RFC 3339).
    pub next_update: String,
    /// Revoked entries listed.
    pub entries: u64,
    /// DER size.
    pub bytes: u64,
    /// Where it is served.
    pub url: String,
}

impl CrlInfo {
    /// The listing of a published CRL.
    pub fn new(app: &App, c: &crate::status::crl_publisher::PublishedCrl) -> CrlInfo {
        CrlInfo {
            shard: c.shard,
            number: c.number,
            this_update: crate::model::time::rfc3339(c.this_update),
            next_update: crate::model::time::rfc3339(c.next_update),
            entries: c.entries,
            bytes: c.der.len() as u64,
            url: app.ca.crl_url(c.shard),
        }
    }
}

/// Answer of `GET /admin/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusAnswer {
    /// Certificates in the ledger.
    pub certificates: u64,
    /// Revocation events so far.
    pub revocation_events: u64,
    /// Issuer id.
    pub issuer_id: String,
    /// Root SHA-256 fingerprint.
    pub root_fingerprint: String,
    /// OCSP responder certificate expiry (RFC 3339).
    pub ocsp_signer_not_after: String,
}
