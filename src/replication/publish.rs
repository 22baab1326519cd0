//! The primary's side: follows the ledger's replication log and writes what
//! each entry names to Redis, then moves the log's cursor.
//!
//! A revocation returns once it is durable in the ledger (its log entry is
//! in the same synced batch); the publisher, which looks at the log every
//! [`POLL`], then has it in Redis and announced within milliseconds. While
//! Redis is unreachable the log grows (`custos_replication_backlog`) and
//! nothing is lost: the cursor only moves past what Redis acknowledged.
//!
//! A Redis that is empty, or was filled from another ledger (its generation
//! key differs from the ledger's replication id), is filled again from the
//! whole ledger first ([`Publisher::resync`]); a restart of the primary does
//! not republish what Redis already holds. The generation is checked again
//! every [`GENERATION_CHECK`] while connected, since a connection can outlive
//! a restart (the clients reconnect by themselves). On a Redis Cluster every
//! master also holds a marker copy of it (a key whose hash tag falls in that
//! master's slots), so one node restarted empty is noticed and refilled too.

use super::Conn;
use super::{status_value, Keys, StoredCrl, StoredResponse};
use crate::ca::Ca;
use crate::config::ReplicationConfig;
use crate::ledger::{CertRecord, Ledger};
use crate::model::time::unix_now;
use crate::serial::Serial;
use crate::status::crl_publisher::CrlPublisher;
use crate::support::metrics::Metrics;
use custos_ocsp::issuer::HashAlg;
use prometheus::{IntCounter, IntGauge};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often an idle publisher looks at the log.
pub const POLL: Duration = Duration::from_millis(50);

/// How often a connected publisher checks that Redis (every node of a
/// cluster) still holds this ledger's generation.
pub const GENERATION_CHECK: Duration = Duration::from_secs(2);

/// Where a cluster keeps the generation: the slot layout it was worked out
/// for, and one marker key per master.
struct Markers {
    layout: Vec<SlotRange>,
    keys: Vec<String>,
}

/// A range of hash slots and the master serving it (`host:port`).
#[derive(Debug, PartialEq, Eq)]
struct SlotRange {
    start: i64,
    end: i64,
    master: String,
}

/// Why a round of publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Redis refused or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The CA files could not be read.
    #[error("CA files: {0}")]
    Ca(String),
}

/// The replication metrics.
#[derive(Clone)]
struct ReplicationMetrics {
    backlog: IntGauge,
    published: IntCounter,
    errors: IntCounter,
    connected: IntGauge,
    resyncs: IntCounter,
}

impl ReplicationMetrics {
    fn new(metrics: &Metrics) -> ReplicationMetrics {
        let r = metrics.registry();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            let _ = r.register(Box::new(g.clone()));
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            let _ = r.register(Box::new(c.clone()));
            c
        };
        ReplicationMetrics {
            backlog: gauge(
                "custos_replication_backlog",
                "Replication log entries not yet published to Redis",
            ),
            published: counter(
                "custos_replication_published_total",
                "Certificates whose status was published to Redis",
            ),
            errors: counter(
                "custos_replication_errors_total",
                "Failed rounds of publishing to Redis (retried)",
            ),
            connected: gauge(
                "custos_replication_redis_up",
                "1 while the last Redis round trip succeeded",
            ),
            resyncs: counter(
                "custos_replication_resyncs_total",
                "Full republications of the ledger to Redis",
            ),
        }
    }
}

/// Publishes the ledger's status to Redis.
pub struct Publisher {
    ledger: Arc<Ledger>,
    ca: Arc<Ca>,
    crl: Arc<CrlPublisher>,
    keys: Keys,
    prefix: String,
    urls: Vec<String>,
    cluster: bool,
    grace: u64,
    batch: usize,
    metrics: ReplicationMetrics,
    /// The CRL number last published per shard.
    crl_numbers: Mutex<Vec<u64>>,
    /// One writer at a time: a resync reads a page and writes it, and a
    /// round writing a newer state (a revocation) in between would be
    /// overwritten by the older one.
    writing: tokio::sync::Mutex<()>,
    /// The cluster's generation markers, worked out again when its slot
    /// layout changes.
    markers: tokio::sync::Mutex<Option<Markers>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Publisher({:?})", self.keys)
    }
}

impl Publisher {
    /// A publisher for `[replication]` (which must be enabled).
    pub fn new(
        config: &ReplicationConfig,
        ledger: Arc<Ledger>,
        ca: Arc<Ca>,
        crl: Arc<CrlPublisher>,
        metrics: &Metrics,
    ) -> Publisher {
        let shards = crl.shard_count() as usize;
        Publisher {
            keys: Keys::new(&config.key_prefix, ca.issuer_id()),
            prefix: config.key_prefix.clone(),
            urls: config.redis.clone(),
            cluster: config.redis_cluster,
            grace: config.grace_secs,
            batch: config.batch.max(1),
            metrics: ReplicationMetrics::new(metrics),
            crl_numbers: Mutex::new(vec![0; shards]),
            writing: tokio::sync::Mutex::new(()),
            markers: tokio::sync::Mutex::new(None),
            ledger,
            ca,
            crl,
        }
    }

    /// A Redis connection that reconnects by itself after a failure.
    pub async fn connect(&self) -> Result<Conn, PublishError> {
        Ok(Conn::open(
            &self.urls,
            self.cluster,
            Duration::from_secs(5),
            Duration::from_secs(10),
        )
        .await?)
    }

    /// Runs until `shutdown`: connects, resyncs Redis when it holds another
    /// generation, then publishes the log as it grows.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.session(&shutdown) => r,
            };
            if let Err(e) = result {
                self.metrics.errors.inc();
                self.metrics.connected.set(0);
                tracing::warn!(error = %e, retry_in = ?backoff, "replication to Redis interrupted; the ledger keeps what is not yet published");
            }
            // While Redis is away the backlog still shows what waits.
            let until = tokio::time::Instant::now() + backoff;
            while tokio::time::Instant::now() < until {
                if let Ok(n) = self.ledger.replication_backlog() {
                    self.metrics.backlog.set(n as i64);
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// One connection's life: generation check, then rounds until an
    /// error, with the generation checked again every [`GENERATION_CHECK`].
    async fn session(&self, shutdown: &CancellationToken) -> Result<(), PublishError> {
        let mut conn = self.connect().await?;
        self.publish_ca(&mut conn).await?;
        self.ensure_generation(&mut conn).await?;
        self.metrics.connected.set(1);
        let mut checked = tokio::time::Instant::now();
        loop {
            let published = self.round(&mut conn).await?;
            self.metrics
                .backlog
                .set(self.ledger.replication_backlog()? as i64);
            if checked.elapsed() >= GENERATION_CHECK {
                self.ensure_generation(&mut conn).await?;
                checked = tokio::time::Instant::now();
            }
            if published == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }

    /// Resyncs when Redis (or one node of a cluster) does not hold this
    /// ledger's generation.
    async fn ensure_generation(&self, conn: &mut Conn) -> Result<(), PublishError> {
        let id = self.ledger.replication_id()?;
        for key in self.generation_keys(conn).await? {
            let held: Option<String> = redis::cmd("GET").arg(&key).query_async(conn).await?;
            if held.as_deref() != Some(id.as_str()) {
                tracing::info!(
                    key,
                    redis = ?held,
                    ledger = %id,
                    "Redis does not hold this ledger's status: publishing everything"
                );
                self.resync(conn, |_| {}).await?;
                break;
            }
        }
        Ok(())
    }

    /// The keys holding the generation: the generation key, and on a
    /// cluster one marker per master.
    async fn generation_keys(&self, conn: &mut Conn) -> Result<Vec<String>, PublishError> {
        let mut keys = vec![self.keys.generation()];
        if !matches!(conn, Conn::Cluster(_)) {
            return Ok(keys);
        }
        let layout = cluster_layout(conn).await?;
        let mut markers = self.markers.lock().await;
        if markers.as_ref().is_none_or(|m| m.layout != layout) {
            let tags = marker_tags(conn, &layout).await?;
            *markers = Some(Markers {
                keys: tags
                    .iter()
                    .map(|t| self.keys.generation_marker(t))
                    .collect(),
                layout,
            });
        }
        keys.extend(markers.iter().flat_map(|m| m.keys.iter().cloned()));
        Ok(keys)
    }

    /// Publishes the whole ledger (every unexpired certificate's status and
    /// responses, every CRL), then marks Redis as holding this ledger's
    /// generation. Changes made meanwhile are in the log and follow.
    /// Returns how many certificates were published.
    pub async fn resync(
        &self,
        conn: &mut Conn,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, PublishError> {
        let _writing = self.writing.lock().await;
        self.metrics.resyncs.inc();
        // Skip the log first: what changes during the scan is logged after
        // this point and published by the next rounds.
        self.ledger.skip_replication_log()?;
        if let Ok(mut numbers) = self.crl_numbers.lock() {
            numbers.iter_mut().for_each(|n| *n = 0);
        }
        let now = unix_now();
        let mut after: Option<Serial> = None;
        let mut done = 0u64;
        loop {
            let page = self.ledger.list(after.as_ref(), self.batch)?;
            let Some(last) = page.last() else { break };
            after = Some(last.serial.clone());
            let live: Vec<&CertRecord> = page.iter().filter(|r| r.not_after >= now).collect();
            self.publish_records(conn, &live, now, false).await?;
            done += live.len() as u64;
            progress(done);
        }
        self.publish_crls(conn).await?;
        self.publish_ca(conn).await?;
        let id = self.ledger.replication_id()?;
        for key in self.generation_keys(conn).await? {
            redis::cmd("SET")
                .arg(key)
                .arg(&id)
                .query_async::<()>(conn)
                .await?;
        }
        // Revocations written by the scan are not announced one by one (the
        // log they were in was skipped): responders drop their whole cache.
        redis::cmd("PUBLISH")
            .arg(self.keys.revoked_channel())
            .arg("resync")
            .query_async::<()>(conn)
            .await?;
        Ok(done)
    }

    /// Publishes up to `batch` log entries and any newer CRL; returns how
    /// many certificates were published.
    pub async fn round(&self, conn: &mut Conn) -> Result<usize, PublishError> {
        let _writing = self.writing.lock().await;
        self.publish_crls(conn).await?;
        let pending = self.ledger.replication_pending(self.batch)?;
        let Some(&(last, _)) = pending.last() else {
            return Ok(0);
        };
        let serials: BTreeSet<Serial> = pending.into_iter().map(|(_, s)| s).collect();
        let mut records = Vec::with_capacity(serials.len());
        for s in &serials {
            if let Some(r) = self.ledger.get(s)? {
                records.push(r);
            }
        }
        let refs: Vec<&CertRecord> = records.iter().collect();
        self.publish_records(conn, &refs, unix_now(), true).await?;
        self.ledger.advance_replication(last + 1)?;
        Ok(refs.len())
    }

    /// One pipelined round trip: each record's status and responses, and
    /// (when `announce`) its revocation on the channel.
    async fn publish_records(
        &self,
        conn: &mut Conn,
        records: &[&CertRecord],
        now: u64,
        announce: bool,
    ) -> Result<(), PublishError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for r in records {
            let revocation = r.revocation.map(|v| (v.time, v.reason.code()));
            let keep = r.not_after.saturating_sub(now) + self.grace;
            pipe.set_ex(
                self.keys.status(&r.serial),
                status_value(r.not_after, revocation),
                keep.max(1),
            )
            .ignore();
            for alg in [HashAlg::Sha1, HashAlg::Sha256] {
                let Some(p) = self.ledger.get_precomputed_stored(alg.tag(), &r.serial)? else {
                    continue;
                };
                if p.next_update <= now {
                    continue;
                }
                let value = StoredResponse {
                    this_update: p.this_update,
                    next_update: p.next_update,
                    etag: p.etag,
                    status: p.status,
                    der: p.der.clone(),
                };
                pipe.set_ex(
                    self.keys.ocsp(alg.tag(), &r.serial),
                    value.encode(),
                    p.next_update - now + self.grace,
                )
                .ignore();
            }
            if announce && r.revocation.is_some() {
                pipe.publish(self.keys.revoked_channel(), r.serial.to_hex())
                    .ignore();
            }
        }
        conn.run(&pipe).await?;
        self.metrics.published.inc_by(records.len() as u64);
        Ok(())
    }

    /// Writes every shard's CRL that is newer than what was published.
    async fn publish_crls(&self, conn: &mut Conn) -> Result<(), PublishError> {
        let mut newer = Vec::new();
        {
            let numbers = self.crl_numbers.lock().unwrap_or_else(|e| e.into_inner());
            for (shard, published) in numbers.iter().enumerate() {
                if let Some(c) = self.crl.current_settled(shard as u32) {
                    if c.number > *published {
                        newer.push(c);
                    }
                }
            }
        }
        if newer.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for c in &newer {
            let stored = StoredCrl {
                this_update: c.this_update,
                next_update: c.next_update,
                number: c.number,
                der: c.der.clone(),
            };
            pipe.set(self.keys.crl(c.shard), stored.encode()).ignore();
        }
        conn.run(&pipe).await?;
        let mut numbers = self.crl_numbers.lock().unwrap_or_else(|e| e.into_inner());
        for c in newer {
            if let Some(n) = numbers.get_mut(c.shard as usize) {
                *n = (*n).max(c.number);
            }
        }
        Ok(())
    }

    /// The CA files `/ca/…` serves, and which issuer is current.
    async fn publish_ca(&self, conn: &mut Conn) -> Result<(), PublishError> {
        let chain = self
            .ca
            .chain_pem()
            .map_err(|e| PublishError::Ca(e.to_string()))?;
        let issuer_file = format!("{}.crt", self.ca.issuer_id());
        let mut pipe = redis::pipe();
        pipe.set(self.keys.ca_file(&issuer_file), self.ca.issuer_der())
            .ignore()
            .set(self.keys.ca_file("root.crt"), self.ca.root_der())
            .ignore()
            .set(
                self.keys.ca_file("root.pem"),
                crate::ca::to_pem(self.ca.root_der()),
            )
            .ignore()
            .set(self.keys.ca_file("chain.pem"), chain)
            .ignore()
            .set(Keys::current_issuer(&self.prefix), self.ca.issuer_id())
            .ignore();
        conn.run(&pipe).await?;
        Ok(())
    }
}

/// Each slot range of a cluster and its master, from `CLUSTER SLOTS`.
async fn cluster_layout(conn: &mut Conn) -> Result<Vec<SlotRange>, PublishError> {
    use redis::Value;
    let ranges: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let mut layout = Vec::new();
    for range in &ranges {
        // [start, end, [host, port, id, …], replicas…]
        let Value::Array(items) = range else { continue };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (items.first(), items.get(1), items.get(2))
        else {
            continue;
        };
        let (Some(host), Some(Value::Int(port))) = (master.first().and_then(text), master.get(1))
        else {
            continue;
        };
        layout.push(SlotRange {
            start: *start,
            end: *end,
            master: format!("{host}:{port}"),
        });
    }
    layout.sort_by_key(|r| r.start);
    Ok(layout)
}

/// A hash tag per master whose slot that master serves: candidates `g0`,
/// `g1`, … are placed by the cluster itself (`CLUSTER KEYSLOT`) until every
/// master has one.
async fn marker_tags(conn: &mut Conn, layout: &[SlotRange]) -> Result<Vec<String>, PublishError> {
    let masters: BTreeSet<&str> = layout.iter().map(|r| r.master.as_str()).collect();
    let mut found: std::collections::BTreeMap<&str, String> = Default::default();
    for i in 0..16_384u32 {
        if found.len() == masters.len() {
            break;
        }
        let tag = format!("g{i}");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&tag)
            .query_async(conn)
            .await?;
        if let Some(r) = layout.iter().find(|r| r.start <= slot && slot <= r.end) {
            found.entry(r.master.as_str()).or_insert(tag);
        }
    }
    Ok(found.into_values().collect())
}
