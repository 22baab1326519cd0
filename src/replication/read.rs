//! The responder's side (`custos serve --role responder`): OCSP answers,
//! CRLs and CA files from Redis, with no ledger and no CA key.
//!
//! A single-certificate request without a nonce is answered with the
//! response the primary signed and published (bytes identical to the
//! primary's). A request with a nonce, or for several certificates, is
//! signed here with the responder's own delegated key (see `join`), from
//! the status records in Redis, on a bounded pool of signing threads
//! (`tryLater` past `ocsp.max_concurrent_signing`); without a key of its
//! own the responder answers a nonce request with the published response
//! (which does not echo the nonce). A known certificate whose response is
//! not in Redis yet gets `tryLater`; a serial Redis has no status for gets
//! `unauthorized`, never `good`.
//!
//! A small cache (bounded by `ocsp.cache_mb`) sits in front of Redis. It is
//! used only while the subscription to the revocation channel is up (every
//! revocation announced there drops the certificate's entries, and a new
//! subscription clears the cache, since announcements may have been missed
//! meanwhile); without it every request reads Redis. When Redis cannot be
//! reached, the cache still answers until each response's nextUpdate and
//! anything else is `tryLater`; `/healthz` then says `degraded`.

use super::join::{Identity, Signer};
use super::read_metrics::ReadMetrics;
use super::Conn;
use super::{Keys, StoredCrl, StoredResponse};
use crate::serial::Serial;
use crate::status::responder::{Answer, AnswerKind};
use crate::status::signing_pool::{PoolError, SigningPool};
use custos_ocsp::issuer::{HashAlg, IssuerHashes};
use custos_ocsp::request::ParsedRequest;
use custos_ocsp::request::{parse_request, parse_simple};
use custos_ocsp::response::{build_response, SingleAnswer, Status};
use custos_ocsp::InternalError;
use custos_ocsp::OcspError;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Longest nonce accepted (as the primary).
const MAX_NONCE: usize = 32;

#[derive(Clone, Copy, Debug)]
struct ByBytes;

impl Weighter<(u8, Serial), Arc<StoredResponse>> for ByBytes {
    fn weight(&self, key: &(u8, Serial), value: &Arc<StoredResponse>) -> u64 {
        (key.1.as_bytes().len() + value.der.len() + 96) as u64
    }
}

/// How fresh responses are made (from `[ocsp]`).
#[derive(Clone, Copy, Debug)]
pub struct FreshSettings {
    /// thisUpdate → nextUpdate, seconds.
    pub validity_secs: u64,
    /// thisUpdate set this far in the past.
    pub backdate_secs: u64,
    /// Signatures admitted at once.
    pub max_concurrent_signing: usize,
}

/// Status read from Redis.
pub struct RedisStatus {
    /// The responder's own key, once enrolled.
    identity: std::sync::RwLock<Option<Arc<Identity>>>,
    fresh: FreshSettings,
    pool: SigningPool,
    permits: Arc<Semaphore>,
    keys: Keys,
    urls: Vec<String>,
    conn: Conn,
    hashes: IssuerHashes,
    cache: Cache<(u8, Serial), Arc<StoredResponse>, ByBytes>,
    /// Bumped by every invalidation; a fill that saw it move is undone.
    epoch: AtomicU64,
    /// Subscribed to the revocation channel: the cache may answer.
    subscribed: AtomicBool,
    /// The last Redis read succeeded.
    redis_up: AtomicBool,
    metrics: ReadMetrics,
}

impl std::fmt::Debug for RedisStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisStatus({:?})", self.keys)
    }
}

/// Why the responder could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Redis could not be reached or refused.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis holds no published CA (the primary has not published yet).
    #[error("Redis holds no custos status under the prefix {0:?}: start the primary with [replication] redis set, or run `custos replication resync` on it")]
    Empty(String),
    /// The published issuer certificate does not parse.
    #[error("the issuer certificate in Redis is damaged: {0}")]
    Issuer(String),
}

impl RedisStatus {
    /// Connects to `urls` (a cluster when `cluster` or several), finds the
    /// issuer the primary publishes under `prefix`, and sizes the cache to
    /// `cache_bytes`.
    pub async fn connect(
        urls: &[String],
        cluster: bool,
        prefix: &str,
        cache_bytes: u64,
        fresh: FreshSettings,
        registry: &prometheus::Registry,
    ) -> Result<RedisStatus, StartError> {
        use der::Decode;
        let mut conn = Conn::open(
            urls,
            cluster,
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .await?;
        let issuer: Option<String> = redis::cmd("GET")
            .arg(Keys::current_issuer(prefix))
            .query_async(&mut conn)
            .await?;
        let issuer = issuer.ok_or_else(|| StartError::Empty(prefix.to_string()))?;
        let keys = Keys::new(prefix, &issuer);
        let der: Option<Vec<u8>> = redis::cmd("GET")
            .arg(keys.ca_file(&format!("{issuer}.crt")))
            .query_async(&mut conn)
            .await?;
        let der = der.ok_or_else(|| StartError::Empty(prefix.to_string()))?;
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| StartError::Issuer(e.to_string()))?;
        let hashes = IssuerHashes::new(&cert).map_err(|e| StartError::Issuer(e.to_string()))?;
        let estimated = (cache_bytes / 600).max(16) as usize;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let admitted = fresh.max_concurrent_signing.max(1);
        Ok(RedisStatus {
            identity: std::sync::RwLock::new(None),
            pool: SigningPool::new(threads, admitted)
                .map_err(|e| StartError::Issuer(format!("signing threads: {e}")))?,
            permits: Arc::new(Semaphore::new(admitted)),
            fresh,
            keys,
            urls: urls.to_vec(),
            conn,
            hashes,
            cache: Cache::with_weighter(estimated, cache_bytes.max(1), ByBytes),
            epoch: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
            redis_up: AtomicBool::new(true),
            metrics: ReadMetrics::new(registry),
        })
    }

    /// Signs fresh responses with `identity` from now on.
    pub fn set_identity(&self, identity: Identity) {
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(identity));
    }

    /// Stops signing with the current identity and deletes its files: its
    /// certificate was revoked (`why` is logged).
    pub fn retire_identity(&self, why: &str) {
        let old = self
            .identity
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(old) = old {
            tracing::error!(serial = %old.serial, why, "this responder's certificate was revoked: no longer signing; nonce requests get the published response (enrol again with a new join token)");
            old.retire();
        }
    }

    /// Whether Redis says the identity's certificate is revoked.
    pub async fn identity_revoked(&self) -> bool {
        let Some(id) = self.identity() else {
            return false;
        };
        matches!(
            self.status_record(&id.serial).await,
            Ok(Status::Revoked { .. })
        )
    }

    /// The responder's own key, if enrolled.
    pub fn identity(&self) -> Option<Arc<Identity>> {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The issuer id served.
    pub fn issuer_id(&self) -> &str {
        self.keys.issuer()
    }

    /// Whether Redis answers and revocations are heard.
    pub fn healthy(&self) -> bool {
        self.redis_up.load(Ordering::SeqCst) && self.subscribed.load(Ordering::SeqCst)
    }

    /// Answers a DER OCSP request at `now`.
    pub async fn answer(&self, der: &[u8], now: u64) -> Answer {
        let result = self.try_answer(der, now).await;
        let answer = match result {
            Ok(a) => a,
            Err(e) => error_answer(&e),
        };
        match answer.status {
            "good" => self.metrics.good.inc(),
            "revoked" => self.metrics.revoked.inc(),
            other => self.metrics.answers.with_label_values(&[other]).inc(),
        }
        answer
    }

    /// The answer to a request that could not be decoded, counted.
    pub fn refuse(&self, e: OcspError) -> Answer {
        let answer = error_answer(&e);
        self.metrics
            .answers
            .with_label_values(&[answer.status])
            .inc();
        answer
    }

    async fn try_answer(&self, der: &[u8], now: u64) -> Result<Answer, OcspError> {
        // The common request (one certificate, no nonce) read without
        // allocating; anything else is parsed whole.
        if let Some(q) = parse_simple(der) {
            let alg = q.alg.ok_or(OcspError::Unauthorized)?;
            if !self.hashes.matches(alg, q.name_hash, q.key_hash) {
                return Err(OcspError::Unauthorized);
            }
            let serial = Serial::from_bytes(q.serial).map_err(|_| OcspError::Unauthorized)?;
            return Ok(published(&*self.response(alg, &serial, now).await?));
        }
        let parsed = parse_request(der, MAX_NONCE)?;
        let fresh = parsed.nonce.is_some() || parsed.queries.len() > 1;
        if let (true, Some(identity)) = (fresh, self.identity()) {
            return self.answer_fresh(parsed, identity, now).await;
        }
        // Several certificates need a key of our own to sign for them.
        let [query] = parsed.queries.as_slice() else {
            return Err(OcspError::TryLater);
        };
        let alg = query.alg.ok_or(OcspError::Unauthorized)?;
        if !self
            .hashes
            .matches(alg, query.name_hash(), query.key_hash())
        {
            return Err(OcspError::Unauthorized);
        }
        let serial = Serial::from_bytes(&query.serial).map_err(|_| OcspError::Unauthorized)?;
        Ok(published(&*self.response(alg, &serial, now).await?))
    }

    /// Signs an answer here: each certificate's status from its current
    /// published response when that says good, else from its record in
    /// Redis (a certificate Redis does not know makes the request
    /// `unauthorized`), on the signing pool, at most
    /// `max_concurrent_signing` at once.
    async fn answer_fresh(
        &self,
        parsed: ParsedRequest,
        identity: Arc<Identity>,
        now: u64,
    ) -> Result<Answer, OcspError> {
        let mut answers = Vec::with_capacity(parsed.queries.len());
        for q in &parsed.queries {
            let alg = q.alg.ok_or(OcspError::Unauthorized)?;
            if !self.hashes.matches(alg, q.name_hash(), q.key_hash()) {
                return Err(OcspError::Unauthorized);
            }
            let serial = Serial::from_bytes(&q.serial).map_err(|_| OcspError::Unauthorized)?;
            // A current published response saying good settles it (from
            // the cache while subscribed, since a revocation's announcement
            // drops the entry); anything else is read from the record.
            let status = match self.response(alg, &serial, now).await {
                Ok(r) if r.status == 0 => Status::Good,
                _ => self.status_record(&serial).await?,
            };
            answers.push(SingleAnswer {
                cert_id: q.cert_id.clone(),
                status,
                this_update: now.saturating_sub(self.fresh.backdate_secs),
                next_update: now + self.fresh.validity_secs,
            });
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Err(OcspError::TryLater);
        };
        let label = match (answers.len(), answers[0].status) {
            (1, Status::Good) => "good",
            (1, Status::Revoked { .. }) => "revoked",
            (1, Status::Unknown) => "unknown",
            _ => "mixed",
        };
        let nonce = parsed.nonce;
        let signed = self
            .pool
            .run(move || {
                let der = build_response(&answers, nonce.as_ref(), now, &Signer::new(&identity));
                drop(permit);
                der
            })
            .await;
        let der = match signed {
            Ok(der) => der?,
            Err(PoolError::Full) => return Err(OcspError::TryLater),
            Err(PoolError::Lost) => {
                return Err(InternalError::Signing(PoolError::Lost.into()).into())
            }
        };
        Ok(Answer {
            der: der.into(),
            kind: AnswerKind::Fresh,
            status: label,
        })
    }

    /// A certificate's status from its record in Redis.
    async fn status_record(&self, serial: &Serial) -> Result<Status, OcspError> {
        let mut conn = self.conn.clone();
        let value: Result<Option<String>, _> = redis::cmd("GET")
            .arg(self.keys.status(serial))
            .query_async(&mut conn)
            .await;
        self.note(value.as_ref().err());
        let text = value
            .map_err(|_| OcspError::TryLater)?
            .ok_or(OcspError::Unauthorized)?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        match fields.as_slice() {
            ["good", _] => Ok(Status::Good),
            ["revoked", time, reason, _] => {
                let time = time.parse().map_err(|_| OcspError::TryLater)?;
                let reason: u8 = reason.parse().map_err(|_| OcspError::TryLater)?;
                Ok(Status::Revoked {
                    time,
                    reason: (reason != 0).then_some(reason),
                })
            }
            _ => Err(OcspError::TryLater),
        }
    }

    /// The current response for a certificate: the cache while subscribed,
    /// else Redis, else (Redis down) the cache until nextUpdate.
    async fn response(
        &self,
        alg: HashAlg,
        serial: &Serial,
        now: u64,
    ) -> Result<Arc<StoredResponse>, OcspError> {
        let key = (alg.tag(), serial.clone());
        let cached = self.cache.get(&key).filter(|r| r.next_update > now);
        if let (Some(r), true) = (&cached, self.subscribed.load(Ordering::SeqCst)) {
            self.metrics.cache_hits.inc();
            return Ok(r.clone());
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        match self.read_redis(alg, serial).await {
            Ok(Some(r)) if r.next_update > now => {
                let r = Arc::new(r);
                self.cache.insert(key.clone(), r.clone());
                if self.epoch.load(Ordering::SeqCst) != epoch {
                    // An invalidation came in while we read: what we read
                    // may predate it, so it must not stay behind.
                    self.cache.remove(&key);
                }
                Ok(r)
            }
            Ok(_) => {
                // No current response: a certificate Redis knows is still
                // being published; one it does not know is not ours.
                match self.known(serial).await {
                    Ok(true) => Err(OcspError::TryLater),
                    Ok(false) => Err(OcspError::Unauthorized),
                    Err(()) => Err(OcspError::TryLater),
                }
            }
            Err(()) => cached.ok_or(OcspError::TryLater),
        }
    }

    async fn read_redis(
        &self,
        alg: HashAlg,
        serial: &Serial,
    ) -> Result<Option<StoredResponse>, ()> {
        let mut conn = self.conn.clone();
        let value: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
            .arg(self.keys.ocsp(alg.tag(), serial))
            .query_async(&mut conn)
            .await;
        self.note(value.as_ref().err());
        Ok(value
            .map_err(|_| ())?
            .and_then(|v| StoredResponse::decode(&v)))
    }

    async fn known(&self, serial: &Serial) -> Result<bool, ()> {
        let mut conn = self.conn.clone();
        let exists: Result<bool, _> = redis::cmd("EXISTS")
            .arg(self.keys.status(serial))
            .query_async(&mut conn)
            .await;
        self.note(exists.as_ref().err());
        exists.map_err(|_| ())
    }

    fn note(&self, error: Option<&redis::RedisError>) {
        match error {
            None => {
                self.redis_up.store(true, Ordering::SeqCst);
                self.metrics.redis_up.set(1);
            }
            Some(e) => {
                self.redis_up.store(false, Ordering::SeqCst);
                self.metrics.redis_up.set(0);
                self.metrics.redis_errors.inc();
                tracing::warn!(error = %e, "Redis read failed");
            }
        }
    }

    /// A CRL shard as published.
    pub async fn crl(&self, shard: u32) -> Result<Option<StoredCrl>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let value: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
            .arg(self.keys.crl(shard))
            .query_async(&mut conn)
            .await;
        self.note(value.as_ref().err());
        Ok(value?.and_then(|v| StoredCrl::decode(&v)))
    }

    /// A CA file as published.
    pub async fn ca_file(&self, file: &str) -> Result<Option<Vec<u8>>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let value = redis::cmd("GET")
            .arg(self.keys.ca_file(file))
            .query_async(&mut conn)
            .await;
        self.note(value.as_ref().err());
        value
    }

    /// Drops a certificate's cached responses.
    fn invalidate(&self, serial: &Serial) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for alg in [HashAlg::Sha1, HashAlg::Sha256] {
            self.cache.remove(&(alg.tag(), serial.clone()));
        }
        if self.identity().is_some_and(|id| &id.serial == serial) {
            self.retire_identity("announced on the revocation channel");
        }
    }

    /// Listens to the revocation channel until `shutdown`, resubscribing
    /// after any failure (and clearing the cache each time it does).
    pub async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        use futures_util::StreamExt;
        // Pub/sub messages reach every node of a cluster: any one will do,
        // the next one after a failure.
        let mut node = 0usize;
        loop {
            let url = self.urls[node % self.urls.len().max(1)].clone();
            node += 1;
            let subscribed = async {
                let client = redis::Client::open(url.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(self.keys.revoked_channel()).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = tokio::select! {
                _ = shutdown.cancelled() => return,
                p = subscribed => p,
            };
            match pubsub {
                Ok(pubsub) => {
                    // Announcements may have been missed while we were not
                    // listening: nothing cached before now can be trusted.
                    self.epoch.fetch_add(1, Ordering::SeqCst);
                    self.cache.clear();
                    self.subscribed.store(true, Ordering::SeqCst);
                    self.metrics.subscribed.set(1);
                    let mut messages = pubsub.into_on_message();
                    loop {
                        let message = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            m = messages.next() => m,
                        };
                        let Some(message) = message else { break };
                        let text: String = message.get_payload().unwrap_or_default();
                        match text.parse::<Serial>() {
                            Ok(serial) => self.invalidate(&serial),
                            // `resync` (the primary refilled Redis, and
                            // revocations it did not announce one by one
                            // may be among it), or anything unknown.
                            Err(_) => {
                                self.epoch.fetch_add(1, Ordering::SeqCst);
                                self.cache.clear();
                            }
                        }
                    }
                    tracing::warn!("revocation channel closed; resubscribing");
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to the revocation channel"),
            }
            self.subscribed.store(false, Ordering::SeqCst);
            self.metrics.subscribed.set(0);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// The answer a published response gives.
fn published(stored: &StoredResponse) -> Answer {
    Answer {
        kind: AnswerKind::Precomputed {
            this_update: stored.this_update,
            next_update: stored.next_update,
            etag: stored.etag,
        },
        status: if stored.status == 0 {
            "good"
        } else {
            "revoked"
        },
        der: stored.der.clone(),
    }
}

/// An unsuccessful answer (the same bytes the primary sends).
fn error_answer(e: &OcspError) -> Answer {
    let label = match e {
        OcspError::Malformed(_) => "malformedRequest",
        OcspError::Unauthorized => "unauthorized",
        OcspError::TryLater => "tryLater",
        _ => "internalError",
    };
    Answer {
        der: e.to_der().to_vec().into(),
        kind: AnswerKind::Error(label),
        status: label,
    }
}
