//! Status on Redis, so that OCSP and CRL answers scale past one machine.
//!
//! The primary ([`publish`]) writes to Redis what status readers need, from
//! the ledger's replication log: each certificate's precomputed responses
//! (expiring a grace period after their nextUpdate), its status record
//! (which tells a known certificate from an unknown one), every shard's
//! current CRL and the CA files; a revocation is also announced on a
//! channel so responders drop what they cached. Responders
//! (`custos serve --role responder`, [`read`]) hold no ledger and no CA key
//! and answer from Redis.
//!
//! This module fixes the key layout and the value encodings both sides use.

pub mod enroll;
pub mod join;
pub mod publish;
pub mod read;
mod read_metrics;

use crate::serial::Serial;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use std::time::Duration;

/// A connection to the status store: one Redis server (reconnecting by
/// itself), or a Redis Cluster (routing each key to its node).
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A cluster.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects to `urls`: a cluster when there are several or `cluster`
    /// is set, else the one server.
    pub async fn open(
        urls: &[String],
        cluster: bool,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> redis::RedisResult<Conn> {
        if cluster || urls.len() > 1 {
            let client = redis::cluster::ClusterClient::builder(urls.to_vec())
                .connection_timeout(connect_timeout)
                .response_timeout(response_timeout)
                .build()?;
            return Ok(Conn::Cluster(client.get_async_connection().await?));
        }
        let url = urls.first().map(String::as_str).unwrap_or_default();
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout));
        Ok(Conn::Single(
            ConnectionManager::new_with_config(client, config).await?,
        ))
    }

    /// Runs every command of `pipe`, results ignored: as one pipeline on a
    /// single server; on a cluster each on its own (a pipeline's keys live on
    /// different nodes), at most 64 at a time.
    pub async fn run(&mut self, pipe: &redis::Pipeline) -> redis::RedisResult<()> {
        match self {
            Conn::Single(c) => pipe.query_async::<()>(c).await,
            Conn::Cluster(c) => {
                let jobs: Vec<(redis::Cmd, ClusterConnection)> = pipe
                    .cmd_iter()
                    .map(|cmd| (cmd.clone(), c.clone()))
                    .collect();
                let mut results = futures_util::stream::iter(jobs)
                    .map(|(cmd, mut conn)| async move {
                        cmd.query_async::<redis::Value>(&mut conn).await
                    })
                    .buffer_unordered(64);
                while let Some(r) = results.next().await {
                    r?;
                }
                Ok(())
            }
        }
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Redis keys of one issuing CA under a prefix (`replication.key_prefix`).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    issuer: String,
}

impl Keys {
    /// Keys of `issuer` (the CA's issuer id) under `prefix`.
    pub fn new(prefix: &str, issuer: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            issuer: issuer.to_string(),
        }
    }

    /// The issuer id responders serve: `<prefix>:issuer`.
    pub fn current_issuer(prefix: &str) -> String {
        format!("{prefix}:issuer")
    }

    /// The issuer id these keys are for.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Which ledger filled Redis (its replication id).
    pub fn generation(&self) -> String {
        format!("{}:{}:generation", self.prefix, self.issuer)
    }

    /// A copy of the generation on the cluster node that serves hash tag
    /// `tag`'s slot (`<prefix>:<issuer>:generation:{<tag>}`).
    pub fn generation_marker(&self, tag: &str) -> String {
        format!("{}:{}:generation:{{{tag}}}", self.prefix, self.issuer)
    }

    /// A precomputed response by hash algorithm tag and serial.
    pub fn ocsp(&self, tag: u8, serial: &Serial) -> String {
        format!(
            "{}:{}:ocsp:{tag}:{}",
            self.prefix,
            self.issuer,
            serial.to_hex()
        )
    }

    /// A certificate's status record.
    pub fn status(&self, serial: &Serial) -> String {
        format!("{}:{}:status:{}", self.prefix, self.issuer, serial.to_hex())
    }

    /// A CRL shard.
    pub fn crl(&self, shard: u32) -> String {
        format!("{}:{}:crl:{shard}", self.prefix, self.issuer)
    }

    /// A CA file as `/ca/<file>` serves it.
    pub fn ca_file(&self, file: &str) -> String {
        format!("{}:{}:ca:{file}", self.prefix, self.issuer)
    }

    /// The channel revoked serials are announced on.
    pub fn revoked_channel(&self) -> String {
        format!("{}:{}:revoked", self.prefix, self.issuer)
    }
}

/// Length of the header before a response's or a CRL's DER.
const HEADER: usize = 25;

/// A precomputed response as stored in Redis: thisUpdate, nextUpdate, the
/// ETag validator, the status code (0 good, 1 revoked) and the DER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// thisUpdate (Unix seconds).
    pub this_update: u64,
    /// nextUpdate (Unix seconds).
    pub next_update: u64,
    /// Strong validator.
    pub etag: [u8; 8],
    /// 0 good, 1 revoked.
    pub status: u8,
    /// The DER OCSPResponse.
    pub der: bytes::Bytes,
}

impl StoredResponse {
    /// The bytes stored.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + self.der.len());
        v.extend_from_slice(&self.this_update.to_be_bytes());
        v.extend_from_slice(&self.next_update.to_be_bytes());
        v.extend_from_slice(&self.etag);
        v.push(self.status);
        v.extend_from_slice(&self.der);
        v
    }

    /// Reads what [`StoredResponse::encode`] wrote; `None` if damaged.
    pub fn decode(bytes: &[u8]) -> Option<StoredResponse> {
        if bytes.len() <= HEADER {
            return None;
        }
        let word = |i: usize| bytes[i..i + 8].try_into().ok().map(u64::from_be_bytes);
        Some(StoredResponse {
            this_update: word(0)?,
            next_update: word(8)?,
            etag: bytes[16..24].try_into().ok()?,
            status: bytes[24],
            der: bytes::Bytes::copy_from_slice(&bytes[HEADER..]),
        })
    }
}

/// A CRL as stored in Redis: thisUpdate, nextUpdate, CRL number and DER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCrl {
    /// thisUpdate (Unix seconds).
    pub this_update: u64,
    /// nextUpdate (Unix seconds).
    pub next_update: u64,
    /// CRL Number.
    pub number: u64,
    /// The DER CertificateList.
    pub der: bytes::Bytes,
}

impl StoredCrl {
    /// The bytes stored.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24 + self.der.len());
        v.extend_from_slice(&self.this_update.to_be_bytes());
        v.extend_from_slice(&self.next_update.to_be_bytes());
        v.extend_from_slice(&self.number.to_be_bytes());
        v.extend_from_slice(&self.der);
        v
    }

    /// Reads what [`StoredCrl::encode`] wrote; `None` if damaged.
    pub fn decode(bytes: &[u8]) -> Option<StoredCrl> {
        if bytes.len() <= 24 {
            return None;
        }
        let word = |i: usize| bytes[i..i + 8].try_into().ok().map(u64::from_be_bytes);
        Some(StoredCrl {
            this_update: word(0)?,
            next_update: word(8)?,
            number: word(16)?,
            der: bytes::Bytes::copy_from_slice(&bytes[24..]),
        })
    }
}

/// A certificate's status record: `good <notAfter>` or
/// `revoked <time> <reason code> <notAfter>`.
pub fn status_value(not_after: u64, revocation: Option<(u64, u8)>) -> String {
    match revocation {
        None => format!("good {not_after}"),
        Some((time, reason)) => format!("revoked {time} {reason} {not_after}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_and_refuse_short_values() {
        let r = StoredResponse {
            this_update: 1,
            next_update: 2,
            etag: [3; 8],
            status: 1,
            der: bytes::Bytes::from_static(b"\x30\x03\x0a\x01\x00"),
        };
        assert_eq!(StoredResponse::decode(&r.encode()), Some(r));
        assert_eq!(StoredResponse::decode(&[0; 25]), None);
        let c = StoredCrl {
            this_update: 5,
            next_update: 6,
            number: 7,
            der: bytes::Bytes::from_static(b"\x30\x00"),
        };
        assert_eq!(StoredCrl::decode(&c.encode()), Some(c));
        assert_eq!(StoredCrl::decode(b"short"), None);
    }
}
