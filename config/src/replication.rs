//! `[replication]`: publishing status to Redis for stateless responders.

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// `[replication]`: where the primary publishes what status readers need
/// (precomputed OCSP responses, certificate status, CRLs, CA files), and
/// what a responder reads. Empty `redis`: no replication.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// Redis URLs (`redis://host:port`, `rediss://` for TLS). One URL: a
    /// single server; several, or `redis_cluster = true`: seed nodes of a
    /// Redis Cluster.
    pub redis: Vec<String>,
    /// Whether `redis` names a Redis Cluster (implied by several URLs).
    pub redis_cluster: bool,
    /// Prefix of every key, so that several CAs can share one Redis.
    pub key_prefix: String,
    /// Seconds a published response outlives its nextUpdate in Redis (a
    /// responder never serves it past nextUpdate; the grace only keeps the
    /// key while a refresh is on its way).
    pub grace_secs: u64,
    /// Serials published per Redis round trip.
    pub batch: usize,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            redis: Vec::new(),
            redis_cluster: false,
            key_prefix: "custos".into(),
            grace_secs: 3600,
            batch: 500,
        }
    }
}

impl ReplicationConfig {
    /// Whether the primary publishes to Redis.
    pub fn enabled(&self) -> bool {
        !self.redis.is_empty()
    }

    /// The checks serde cannot make.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        for url in &self.redis {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                bail!("configuration error: replication.redis: {url:?} must start with redis:// or rediss://");
            }
        }
        if !custos_model::is_plain_name(&self.key_prefix) {
            bail!("configuration error: replication.key_prefix may hold only letters, digits, '-' and '_'");
        }
        if self.batch == 0 || self.batch > 10_000 {
            bail!("configuration error: replication.batch must be between 1 and 10000");
        }
        Ok(())
    }
}
