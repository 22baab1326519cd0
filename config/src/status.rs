//! `[ocsp]` and `[crl]`: the status services.

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Who signs OCSP responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OcspSignWith {
    /// The delegated responder certificate (included in responses).
    Responder,
    /// The issuing CA's key directly.
    Issuer,
}

/// `[ocsp]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspConfig {
    /// Lifetime of the delegated OCSP responder certificate, in days.
    pub signer_validity_days: u32,
    /// Renew the responder certificate when fewer days than this are left.
    pub signer_renew_before_days: u32,
    /// thisUpdate to nextUpdate of every response, in hours.
    pub response_validity_hours: u32,
    /// Fraction of the validity after which a precomputed response is re-signed.
    pub refresh_fraction: f64,
    /// How far thisUpdate is set in the past, for relying parties' clock skew.
    pub backdate_secs: u64,
    /// Cron expression (with seconds) of the refresh job.
    pub refresh_schedule: String,
    /// Answer requests that carry a nonce with a freshly signed response echoing it.
    pub fresh_signing: bool,
    /// Fresh signatures under way at once; past this, `tryLater`.
    pub max_concurrent_signing: usize,
    /// Longest nonce accepted, in bytes (RFC 8954: 32; RFC 9654 allows 128).
    pub max_nonce_len: usize,
    /// `responder` (delegated certificate) or `issuer` (the issuing CA's key).
    pub sign_with: OcspSignWith,
    /// Cap on the HTTP `max-age` of precomputed answers, in seconds.
    pub max_age_secs: u64,
    /// Memory for precomputed responses (RocksDB block cache), in MiB.
    pub cache_mb: usize,
}

impl Default for OcspConfig {
    fn default() -> Self {
        OcspConfig {
            signer_validity_days: 14,
            signer_renew_before_days: 5,
            response_validity_hours: 24,
            refresh_fraction: 0.5,
            backdate_secs: 300,
            refresh_schedule: "0 * * * * *".into(),
            fresh_signing: true,
            max_concurrent_signing: 256,
            max_nonce_len: 32,
            sign_with: OcspSignWith::Responder,
            max_age_secs: 60,
            cache_mb: 64,
        }
    }
}

/// `[crl]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrlConfig {
    /// Number of CRL shards new certificates are spread over.
    pub shards: u32,
    /// thisUpdate to nextUpdate of every CRL, in hours.
    pub validity_hours: u32,
    /// Cron expression (with seconds) of the job that re-signs every shard.
    pub refresh_schedule: String,
    /// Revoked certificates stay listed this many hours past their notAfter.
    pub expired_grace_hours: u32,
    /// Revocations arriving within this many milliseconds are published
    /// in one regeneration of their shard.
    pub debounce_ms: u64,
    /// How far thisUpdate is set before the signing time, for relying
    /// parties' clock skew.
    pub backdate_secs: u64,
    /// Also write every CRL (`<issuer-id>/<shard>.crl` and `.pem`) here,
    /// atomically, for a web server or CDN to serve.
    pub publish_dir: Option<PathBuf>,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            shards: 1,
            validity_hours: 24,
            refresh_schedule: "0 0 * * * *".into(),
            expired_grace_hours: 24,
            debounce_ms: 200,
            backdate_secs: 300,
            publish_dir: None,
        }
    }
}

impl CrlConfig {
    /// The checks serde cannot make (ranges, relations between keys).
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if self.shards == 0 || self.shards > 4096 {
            bail!("configuration error: crl.shards must be between 1 and 4096");
        }
        if self.validity_hours == 0 || self.validity_hours > 24 * 10 {
            bail!("configuration error: crl.validity_hours must be between 1 and 240");
        }
        if self.backdate_secs >= u64::from(self.validity_hours) * 3600 {
            bail!("configuration error: crl.backdate_secs must be shorter than crl.validity_hours");
        }
        if self.debounce_ms > 1000 {
            bail!("configuration error: crl.debounce_ms must be at most 1000 (revocations are published within a second)");
        }
        custos_model::time::parse_schedule(&self.refresh_schedule).map_err(|e| {
            anyhow!(
                "configuration error: crl.refresh_schedule {:?}: {e}",
                self.refresh_schedule
            )
        })?;
        Ok(())
    }
}

impl OcspConfig {
    /// The checks serde cannot make (ranges, relations between keys).
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if self.response_validity_hours == 0 || self.response_validity_hours > 24 * 7 {
            bail!("configuration error: ocsp.response_validity_hours must be between 1 and 168");
        }
        if !(0.1..=0.9).contains(&self.refresh_fraction) {
            bail!("configuration error: ocsp.refresh_fraction must be between 0.1 and 0.9");
        }
        if self.max_nonce_len < 1 || self.max_nonce_len > 128 {
            bail!("configuration error: ocsp.max_nonce_len must be between 1 and 128");
        }
        if self.max_concurrent_signing == 0 {
            bail!("configuration error: ocsp.max_concurrent_signing must be at least 1");
        }
        if self.backdate_secs >= u64::from(self.response_validity_hours) * 3600 {
            bail!("configuration error: ocsp.backdate_secs must be shorter than the response validity");
        }
        if self.signer_renew_before_days >= self.signer_validity_days {
            bail!("configuration error: ocsp.signer_renew_before_days must be less than ocsp.signer_validity_days");
        }
        Ok(())
    }
}
