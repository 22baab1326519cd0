//! CRL publishing: builds each shard's CRL from the ledger's revoked-by-shard
//! index with `custos-crl`, signs it with the issuing CA, stores it in the
//! ledger (so it survives a restart), optionally writes it to a publish
//! directory, and keeps the current one in memory for the HTTP front.
//!
//! Regeneration happens on a schedule (`jobs`), at start-up when a stored CRL
//! is missing, stale or older than the newest revocation, and within
//! `crl.debounce_ms` of a revocation ([`CrlPublisher::request`] →
//! [`CrlPublisher::run_triggered`]). A failed build keeps the previous CRL in
//! service: nothing half-made is ever stored or served.
//!
//! A server accepts requests before its start-up regeneration is done, so
//! the shards whose stored CRL is older than the newest revocation (one made
//! while the server was down) are *held* ([`CrlPublisher::hold_outdated`]):
//! [`CrlPublisher::serving`] waits for their next publication rather than
//! hand out a CRL that misses a revocation.
//!
//! This module does not decide who is revoked (the ledger does) and does not
//! speak HTTP (`server::crl` does).

use crate::ca::Ca;
use crate::ledger::{Ledger, LedgerError, StoredCrl};
use crate::support::files::{write_atomic, Visibility};
use bytes::Bytes;
use custos_crl::{CrlBuilder, CrlParams, CrlSigner, Entry};
use der::Encode;
use prometheus::{IntCounter, IntGaugeVec, Opts, Registry};
use spki::AlgorithmIdentifierOwned;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// Publisher settings, from `[crl]`.
#[derive(Clone, Debug)]
pub struct CrlSettings {
    /// Shards new certificates are spread over (the configured count).
    pub shards: u32,
    /// thisUpdate → nextUpdate, seconds.
    pub validity_secs: u64,
    /// Listed this long past notAfter, seconds.
    pub expired_grace_secs: u64,
    /// Revocations within this window share one regeneration.
    pub debounce: Duration,
    /// thisUpdate is this many seconds before the signing time (relying
    /// parties' clock skew).
    pub backdate_secs: u64,
    /// Where CRL files are also written, if anywhere.
    pub publish_dir: Option<PathBuf>,
    /// The regeneration job's cron expression (for HTTP freshness).
    pub refresh_schedule: String,
}

pub use crate::model::time::parse_schedule;

/// A shard's current CRL, ready to serve.
#[derive(Debug)]
pub struct PublishedCrl {
    /// Shard.
    pub shard: u32,
    /// CRL Number.
    pub number: u64,
    /// thisUpdate (Unix seconds).
    pub this_update: u64,
    /// nextUpdate (Unix seconds).
    pub next_update: u64,
    /// Revoked entries listed.
    pub entries: u64,
    /// Every revocation with a sequence number below this is included.
    pub covers_seq: u64,
    /// DER.
    pub der: Bytes,
    /// PEM, made on first request (most consumers fetch DER).
    pem: std::sync::OnceLock<Bytes>,
    /// Strong validator: quoted hex of the first 8 bytes of SHA-256(DER).
    pub etag: String,
}

impl PublishedCrl {
    fn from_stored(s: StoredCrl) -> PublishedCrl {
        use sha2::Digest;
        let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&s.der)[..8]));
        PublishedCrl {
            shard: s.shard,
            number: s.number,
            this_update: s.this_update,
            next_update: s.next_update,
            entries: s.entries,
            covers_seq: s.covers_seq,
            der: Bytes::from(s.der),
            pem: std::sync::OnceLock::new(),
            etag,
        }
    }

    /// The CRL in PEM.
    pub fn pem(&self) -> Bytes {
        self.pem
            .get_or_init(|| Bytes::from(pem_of(&self.der)))
            .clone()
    }
}

/// A DER CRL in PEM (`X509 CRL`, 64-column lines).
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN X509 CRL-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END X509 CRL-----\n");
    out
}

/// Why a CRL was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Building or signing failed.
    #[error(transparent)]
    Crl(#[from] custos_crl::CrlError),
    /// A shard we do not publish.
    #[error("no CRL shard {0}")]
    UnknownShard(u32),
    /// The CA's name could not be encoded.
    #[error("issuer name: {0}")]
    Issuer(String),
}

struct IssuerSigner<'a>(&'a crate::ca::key::SigningKey);

impl CrlSigner for IssuerSigner<'_> {
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        self.0.signature_algorithm()
    }
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, custos_crl::BoxError> {
        Ok(self.0.sign(tbs)?)
    }
}

#[derive(Clone)]
struct CrlMetrics {
    generated_at: IntGaugeVec,
    entries: IntGaugeVec,
    bytes: IntGaugeVec,
    number: IntGaugeVec,
    failures: IntCounter,
}

impl CrlMetrics {
    fn new(registry: &Registry) -> CrlMetrics {
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["shard"]).expect("valid metric")
        };
        let m = CrlMetrics {
            generated_at: gauge(
                "custos_crl_last_generated_timestamp_seconds",
                "When each shard's current CRL was signed",
            ),
            entries: gauge("custos_crl_entries", "Revoked entries in each shard's CRL"),
            bytes: gauge("custos_crl_bytes", "DER size of each shard's CRL"),
            number: gauge("custos_crl_number", "CRL Number of each shard's CRL"),
            failures: IntCounter::new(
                "custos_crl_generation_failures_total",
                "CRL generations that failed (the previous CRL stays in service)",
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(m.generated_at.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.entries.clone()),
            Box::new(m.bytes.clone()),
            Box::new(m.number.clone()),
            Box::new(m.failures.clone()),
        ] {
            let _ = registry.register(c);
        }
        m
    }

    fn observe(&self, c: &PublishedCrl) {
        let shard = c.shard.to_string();
        let l = [shard.as_str()];
        self.generated_at
            .with_label_values(&l)
            .set(c.this_update as i64);
        self.entries.with_label_values(&l).set(c.entries as i64);
        self.bytes.with_label_values(&l).set(c.der.len() as i64);
        self.number.with_label_values(&l).set(c.number as i64);
    }
}

/// The CRL publisher.
pub struct CrlPublisher {
    ledger: Arc<Ledger>,
    ca: Arc<Ca>,
    settings: CrlSettings,
    schedule: Option<croner::Cron>,
    /// Shards published: every shard any certificate was ever given.
    shard_count: u32,
    current: RwLock<HashMap<u32, Arc<PublishedCrl>>>,
    /// One generation at a time: CRL Numbers are stored in the order taken.
    generating: Mutex<()>,
    pending: Mutex<BTreeSet<u32>>,
    wake: Notify,
    /// Shards whose stored CRL may miss a revocation, until their next
    /// publication.
    held: watch::Sender<BTreeSet<u32>>,
    metrics: CrlMetrics,
}

/// A held shard was not brought up to date within the wait.
#[derive(Debug, thiserror::Error)]
#[error("CRL shard {0} is being brought up to date after a revocation made while the server was down; retry shortly")]
pub struct StillHeld(pub u32);

impl std::fmt::Debug for CrlPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CrlPublisher({} shards)", self.shard_count)
    }
}

impl CrlPublisher {
    /// A publisher serving the CRLs stored in the ledger (call
    /// [`CrlPublisher::ensure_current`] to make the missing or stale ones).
    pub fn new(
        ledger: Arc<Ledger>,
        ca: Arc<Ca>,
        settings: CrlSettings,
        registry: &Registry,
    ) -> Result<CrlPublisher, PublishError> {
        let shard_count = ledger.note_crl_shards(settings.shards)?;
        let metrics = CrlMetrics::new(registry);
        let mut current = HashMap::new();
        for shard in 0..shard_count {
            if let Some(stored) = ledger.get_crl(shard)? {
                let published = PublishedCrl::from_stored(stored);
                metrics.observe(&published);
                current.insert(shard, Arc::new(published));
            }
        }
        let schedule = parse_schedule(&settings.refresh_schedule).ok();
        Ok(CrlPublisher {
            ledger,
            ca,
            settings,
            schedule,
            shard_count,
            current: RwLock::new(current),
            generating: Mutex::new(()),
            pending: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
            held: watch::Sender::new(BTreeSet::new()),
            metrics,
        })
    }

    /// When a published CRL was signed: its thisUpdate is set back by
    /// `crl.backdate_secs` for relying parties whose clocks run behind.
    pub fn signed_at(&self, crl: &PublishedCrl) -> u64 {
        crl.this_update.saturating_add(self.settings.backdate_secs)
    }

    /// How many shards are held (waiting for a CRL that covers every
    /// revocation).
    pub fn held_count(&self) -> usize {
        self.held.borrow().len()
    }

    /// Shards published (0 to this, exclusive).
    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// The issuer id in CRL URLs.
    pub fn issuer_id(&self) -> &str {
        self.ca.issuer_id()
    }

    /// A shard's current CRL.
    pub fn current(&self, shard: u32) -> Option<Arc<PublishedCrl>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&shard)
            .cloned()
    }

    /// Holds every shard whose stored CRL is missing or older than the
    /// newest revocation until its next publication (call before accepting
    /// requests, then [`CrlPublisher::ensure_current`]). Returns them.
    pub fn hold_outdated(&self) -> Result<Vec<u32>, PublishError> {
        let newest = self.ledger.next_revocation_seq()?;
        let outdated: Vec<u32> = (0..self.shard_count)
            .filter(|s| self.current(*s).is_none_or(|c| c.covers_seq < newest))
            .collect();
        self.held
            .send_modify(|held| held.extend(outdated.iter().copied()));
        Ok(outdated)
    }

    /// A shard's current CRL unless it is held (what may leave the process:
    /// a held CRL could miss a revocation).
    pub fn current_settled(&self, shard: u32) -> Option<Arc<PublishedCrl>> {
        if self.held.borrow().contains(&shard) {
            return None;
        }
        self.current(shard)
    }

    /// A shard's current CRL to serve: `None` for a shard never published;
    /// for a held shard, waits up to `wait` for its next publication.
    pub async fn serving(
        &self,
        shard: u32,
        wait: Duration,
    ) -> Result<Option<Arc<PublishedCrl>>, StillHeld> {
        let mut held = self.held.subscribe();
        if held.borrow().contains(&shard) {
            let released = held.wait_for(|h| !h.contains(&shard));
            match tokio::time::timeout(wait, released).await {
                Ok(Ok(_)) => {}
                _ => return Err(StillHeld(shard)),
            }
        }
        Ok(self.current(shard))
    }

    /// When the scheduled job next regenerates every shard (Unix seconds).
    pub fn next_scheduled(&self, now: u64) -> Option<u64> {
        let schedule = self.schedule.as_ref()?;
        let now = chrono::DateTime::<chrono::Utc>::from_timestamp(now as i64, 0)?;
        schedule
            .find_next_occurrence(&now, false)
            .ok()
            .map(|t| t.timestamp().max(0) as u64)
    }

    /// Builds, signs, stores and publishes one shard's CRL at `now`. On
    /// failure the previous CRL stays in service and the failure is counted.
    pub fn generate(&self, shard: u32, now: u64) -> Result<Arc<PublishedCrl>, PublishError> {
        if shard >= self.shard_count {
            return Err(PublishError::UnknownShard(shard));
        }
        let result = self.try_generate(shard, now);
        if let Err(e) = &result {
            self.metrics.failures.inc();
            tracing::error!(shard, error = %crate::support::error_chain(e), "CRL generation failed; the previous CRL stays in service");
        }
        result
    }

    fn try_generate(&self, shard: u32, now: u64) -> Result<Arc<PublishedCrl>, PublishError> {
        let _one_at_a_time = self.generating.lock().unwrap_or_else(|e| e.into_inner());
        // Taken under the lock: a generation that waited for another must
        // not publish a higher CRL number with an older thisUpdate.
        let backdate = self.settings.backdate_secs;
        let now = match self.current(shard) {
            Some(prev) => now.max(prev.this_update.saturating_add(backdate)),
            None => now,
        };
        let this_update = now.saturating_sub(backdate);
        // Read before streaming: every revocation below it is in the index.
        let covers_seq = self.ledger.next_revocation_seq()?;
        let issuer_name = self
            .ca
            .issuer_cert()
            .tbs_certificate
            .subject
            .to_der()
            .map_err(|e| PublishError::Issuer(e.to_string()))?;
        let key_id = self.ca.issuer_key_id();
        let url = self.ca.crl_url(shard);
        let number = self.ledger.take_crl_number()?;
        let params = CrlParams {
            issuer_name_der: &issuer_name,
            authority_key_id: &key_id,
            this_update,
            next_update: now + self.settings.validity_secs,
            crl_number: number,
            distribution_point: Some(&url),
        };
        let key = self.ca.issuer_key();
        let previous = self.current(shard).map_or(0, |c| c.entries as usize);
        let mut builder = CrlBuilder::new(&params, key.signature_algorithm(), previous)?;
        let keep_after = now.saturating_sub(self.settings.expired_grace_secs);
        let mut build_error = None;
        self.ledger
            .for_each_revoked_in_shard(shard, |serial, entry| {
                if entry.not_after < keep_after {
                    return Ok(());
                }
                let e = Entry {
                    serial,
                    revoked_at: entry.revocation.time,
                    reason: Some(entry.revocation.reason.code()),
                    invalidity_date: None,
                };
                if let Err(e) = builder.push(&e) {
                    build_error = Some(e);
                    return Err(LedgerError::Status("CRL entry".into()));
                }
                Ok(())
            })
            .map_err(|e| match build_error.take() {
                Some(b) => PublishError::Crl(b),
                None => PublishError::Ledger(e),
            })?;
        let entries = builder.len() as u64;
        let der = builder.finish(&IssuerSigner(key))?;
        let stored = StoredCrl {
            shard,
            number,
            this_update,
            next_update: params.next_update,
            entries,
            covers_seq,
            bytes: der.len() as u64,
            der,
        };
        self.publish(stored)
    }

    /// Stores a freshly signed CRL, writes its files, counts it and makes it
    /// the shard's current one.
    fn publish(&self, stored: StoredCrl) -> Result<Arc<PublishedCrl>, PublishError> {
        let (shard, number, entries) = (stored.shard, stored.number, stored.entries);
        self.ledger.store_crl(&stored)?;
        let published = Arc::new(PublishedCrl::from_stored(stored));
        self.write_files(&published);
        self.metrics.observe(&published);
        self.current
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shard, published.clone());
        // Made after the hold was taken: it covers every revocation then.
        self.held.send_if_modified(|held| held.remove(&shard));
        tracing::debug!(
            shard,
            number,
            entries,
            bytes = published.der.len(),
            "published CRL"
        );
        Ok(published)
    }

    fn write_files(&self, crl: &PublishedCrl) {
        let Some(dir) = &self.settings.publish_dir else {
            return;
        };
        let dir = dir.join(self.ca.issuer_id());
        let result = std::fs::create_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|_| {
                write_atomic(
                    &dir.join(format!("{}.crl", crl.shard)),
                    &crl.der,
                    Visibility::Public,
                )?;
                write_atomic(
                    &dir.join(format!("{}.pem", crl.shard)),
                    &crl.pem(),
                    Visibility::Public,
                )?;
                Ok(())
            });
        if let Err(e) = result {
            self.metrics.failures.inc();
            tracing::error!(dir = %dir.display(), error = %e, "cannot write CRL files");
        }
    }

    /// Regenerates every shard now. Returns the CRLs made; stops at the
    /// first failure.
    pub fn generate_all(&self, now: u64) -> Result<Vec<Arc<PublishedCrl>>, PublishError> {
        (0..self.shard_count)
            .map(|s| self.generate(s, now))
            .collect()
    }

    /// Regenerates the shards whose CRL is missing, past half its validity,
    /// or older than the newest revocation (one made while the server was
    /// down, by the offline CLI). Returns how many were made.
    pub fn ensure_current(&self, now: u64) -> Result<usize, PublishError> {
        let newest = self.ledger.next_revocation_seq()?;
        let mut made = 0;
        for shard in 0..self.shard_count {
            let stale = match self.current(shard) {
                None => true,
                Some(c) => {
                    c.covers_seq < newest
                        || now >= c.this_update + (c.next_update - c.this_update) / 2
                }
            };
            if stale {
                self.generate(shard, now)?;
                made += 1;
            }
        }
        Ok(made)
    }

    /// Asks for `shard` to be regenerated soon (after a revocation).
    pub fn request(&self, shard: u32) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shard);
        self.wake.notify_one();
    }

    /// Serves [`CrlPublisher::request`]s until `shutdown`: waits for one,
    /// lets the debounce window collect more, then regenerates each
    /// requested shard once.
    pub async fn run_triggered(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
            }
            tokio::time::sleep(self.settings.debounce).await;
            let shards: Vec<u32> =
                std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
                    .into_iter()
                    .collect();
            if shards.is_empty() {
                continue;
            }
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let now = crate::model::time::unix_now();
                for shard in shards {
                    // Failures are logged and counted in generate().
                    let _ = me.generate(shard, now);
                }
            })
            .await;
        }
    }
}
