//! The certificate ledger: every certificate custos issued, its status, and
//! the indexes that status readers and device events need, in RocksDB.
//!
//! Column families:
//! - `certs`: serial → [`CertRecord`] (JSON); `cert_der`: serial → DER.
//! - `by_device`: `DEVICE-ID \0 serial` → (); `by_account`: `account \0 serial` → ().
//! - `by_expiry`: `notAfter (u64 BE) ‖ serial` → ().
//! - `revoked_by_shard`: `shard (u32 BE) ‖ serial` → [`Revocation`]: what a CRL shard lists.
//! - `revocations`: `seq (u64 BE)` → [`RevocationEvent`]: the log OCSP and CRL builders follow.
//! - `meta`: schema version, counters, CRL numbers.
//! - `events`: MDM webhook events, the audit log and the notification outbox
//!   (see `events.rs`, `outbox.rs`).
//! - `ocsp`: `tag ‖ serial` → [`Precomputed`] header + signed OCSP response;
//!   `ocsp_due`: `refresh-at (u64 BE) ‖ serial` → () — what the refresher walks.
//!
//! Every write is one `WriteBatch` synced to the WAL before the call returns,
//! so an acknowledged issuance or revocation survives `kill -9`. Request paths
//! only do point reads and prefix scans; nothing here scans the whole ledger
//! except [`Ledger::list`], which pages. This module knows nothing of HTTP,
//! certificates' contents or policy.

mod acme;
mod crls;
mod devices;
mod events;
mod hot;
mod outbox;
mod record;

pub use crls::{RevokedEntry, StoredCrl};
pub use events::{AuditEntry, AuditFilter, Recorded, StoredEvent};
pub use outbox::{OutboxEntry, OutboxState};
pub use record::{
    normalize_device_id, CertRecord, CertStatus, DeviceIds, Revocation, RevocationEvent,
};

use crate::revocation::Reason;
use crate::serial::Serial;
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const CF_CERTS: &str = "certs";
const CF_CERT_DER: &str = "cert_der";
const CF_BY_DEVICE: &str = "by_device";
const CF_BY_ACCOUNT: &str = "by_account";
const CF_BY_EXPIRY: &str = "by_expiry";
const CF_REVOKED_BY_SHARD: &str = "revoked_by_shard";
const CF_REVOCATIONS: &str = "revocations";
const CF_META: &str = "meta";
const CF_OCSP: &str = "ocsp";
const CF_OCSP_DUE: &str = "ocsp_due";
const CF_CRLS: &str = "crls";
const CF_ACME: &str = "acme";
const CF_DEVICES: &str = "devices";
const CF_EVENTS: &str = "events";
const ALL_CFS: [&str; 14] = [
    CF_CERTS,
    CF_CERT_DER,
    CF_BY_DEVICE,
    CF_BY_ACCOUNT,
    CF_BY_EXPIRY,
    CF_REVOKED_BY_SHARD,
    CF_REVOCATIONS,
    CF_META,
    CF_OCSP,
    CF_OCSP_DUE,
    CF_CRLS,
    CF_ACME,
    CF_DEVICES,
    CF_EVENTS,
];

const META_SCHEMA: &[u8] = b"schema_version";
const META_NEXT_SEQ: &[u8] = b"next_revocation_seq";
const META_CERT_COUNT: &[u8] = b"certificate_count";
const SCHEMA_VERSION: u64 = 1;

/// Ledger failures, split by whose problem they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Another process has the ledger open (a running `custos serve`).
    #[error("{0}: the ledger is in use by another custos process")]
    Locked(PathBuf),
    /// No certificate with this serial.
    #[error("no certificate with serial {0}")]
    NotFound(Serial),
    /// The serial is already taken (caller should pick another).
    #[error("serial {0} is already in the ledger")]
    DuplicateSerial(Serial),
    /// Stored data that does not parse: the ledger is damaged.
    #[error("ledger data is corrupt: {0}")]
    Corrupt(String),
    /// Making the status responses for a change failed; nothing was written.
    #[error("status responses could not be made: {0}")]
    Status(String),
    /// RocksDB reported an error.
    #[error("ledger storage error: {0}")]
    Storage(#[from] rocksdb::Error),
}

/// What a revocation call did (`revoked`, `reason_upgraded` or
/// `unchanged` in JSON and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeChange {
    /// The certificate was good and is now revoked.
    Revoked,
    /// It was revoked for another reason and is now keyCompromise.
    ReasonUpgraded,
    /// It was already revoked; nothing changed.
    Unchanged,
}

impl RevokeChange {
    /// The name used in JSON and logs.
    pub fn name(self) -> &'static str {
        match self {
            RevokeChange::Revoked => "revoked",
            RevokeChange::ReasonUpgraded => "reason_upgraded",
            RevokeChange::Unchanged => "unchanged",
        }
    }
}

impl std::fmt::Display for RevokeChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Result of [`Ledger::revoke`].
#[derive(Clone, Debug)]
pub struct RevokeOutcome {
    /// The record after the call.
    pub record: CertRecord,
    /// What changed.
    pub change: RevokeChange,
}

/// Tuning for [`Ledger::open_with`].
#[derive(Clone, Debug)]
pub struct LedgerOptions {
    /// Bytes of memory for precomputed OCSP responses, whatever the
    /// ledger's size: three quarters for the in-memory hot cache, one
    /// quarter for RocksDB's block cache (shared by every column family,
    /// index and filter blocks included). Memtables take a further fixed
    /// 32 MiB at most.
    pub ocsp_cache_bytes: usize,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            ocsp_cache_bytes: 64 << 20,
        }
    }
}

/// A set of precomputed status responses for one certificate (one per
/// CertID hash algorithm), all made at the same time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrecomputedSet {
    /// thisUpdate (Unix seconds).
    pub this_update: u64,
    /// nextUpdate (Unix seconds).
    pub next_update: u64,
    /// When the refresher should re-make them (Unix seconds).
    pub refresh_at: u64,
    /// Status they state: 0 good, 1 revoked, 2 unknown.
    pub status: u8,
    /// `(algorithm tag, signed response DER)`.
    pub responses: Vec<(u8, Vec<u8>)>,
}

/// One stored precomputed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Precomputed {
    /// thisUpdate (Unix seconds).
    pub this_update: u64,
    /// nextUpdate (Unix seconds).
    pub next_update: u64,
    /// When it is due for refresh.
    pub refresh_at: u64,
    /// Strong validator for HTTP caching (first 8 bytes of SHA-256 of `der`).
    pub etag: [u8; 8],
    /// Status it states: 0 good, 1 revoked, 2 unknown.
    pub status: u8,
    /// The DER OCSPResponse (shared, not copied, when served).
    pub der: bytes::Bytes,
}

const PRECOMPUTED_HEADER: usize = 33;

impl Precomputed {
    fn encode(set: &PrecomputedSet, der: &[u8]) -> Vec<u8> {
        let (this_update, next_update, refresh_at) =
            (set.this_update, set.next_update, set.refresh_at);
        use sha2::Digest;
        let hash = sha2::Sha256::digest(der);
        let mut v = Vec::with_capacity(PRECOMPUTED_HEADER + der.len());
        v.extend_from_slice(&this_update.to_be_bytes());
        v.extend_from_slice(&next_update.to_be_bytes());
        v.extend_from_slice(&refresh_at.to_be_bytes());
        v.extend_from_slice(&hash[..8]);
        v.push(set.status);
        v.extend_from_slice(der);
        v
    }

    fn decode(bytes: &[u8]) -> Result<Precomputed, LedgerError> {
        if bytes.len() < PRECOMPUTED_HEADER {
            return Err(LedgerError::Corrupt(
                "precomputed response too short".into(),
            ));
        }
        let word = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        Ok(Precomputed {
            this_update: word(0),
            next_update: word(8),
            refresh_at: word(16),
            etag: bytes[24..32].try_into().expect("8 bytes"),
            status: bytes[32],
            der: bytes::Bytes::copy_from_slice(&bytes[PRECOMPUTED_HEADER..]),
        })
    }
}

fn ocsp_key(tag: u8, serial: &Serial) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + serial.as_bytes().len());
    k.push(tag);
    k.extend_from_slice(serial.as_bytes());
    k
}

fn due_key(at: u64, serial: &Serial) -> Vec<u8> {
    let mut k = at.to_be_bytes().to_vec();
    k.extend_from_slice(serial.as_bytes());
    k
}

/// The ledger handle; cheap to share behind an `Arc`.
pub struct Ledger {
    db: DB,
    path: PathBuf,
    /// Serialises writers that read-modify-write (serial uniqueness, the
    /// revocation sequence, the certificate count). Readers never take it.
    /// A std mutex: it is never held across an await.
    write_lock: Mutex<()>,
    /// Precomputed OCSP responses recently served.
    hot: hot::HotCache,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ledger({})", self.path.display())
    }
}

fn sync_opts() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

fn index_key(prefix: &str, serial: &Serial) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 1 + serial.as_bytes().len());
    k.extend_from_slice(prefix.as_bytes());
    k.push(0);
    k.extend_from_slice(serial.as_bytes());
    k
}

fn expiry_key(not_after: u64, serial: &Serial) -> Vec<u8> {
    let mut k = not_after.to_be_bytes().to_vec();
    k.extend_from_slice(serial.as_bytes());
    k
}

fn shard_key(shard: u32, serial: &Serial) -> Vec<u8> {
    let mut k = shard.to_be_bytes().to_vec();
    k.extend_from_slice(serial.as_bytes());
    k
}

fn u64_value(v: Option<impl AsRef<[u8]>>) -> Result<u64, LedgerError> {
    match v {
        None => Ok(0),
        Some(b) => {
            let arr: [u8; 8] = b
                .as_ref()
                .try_into()
                .map_err(|_| LedgerError::Corrupt("counter is not 8 bytes".into()))?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, LedgerError> {
    serde_json::from_slice(bytes).map_err(|e| LedgerError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our record types contain only strings, numbers and enums: serialising
    // them to JSON cannot fail.
    serde_json::to_vec(value).expect("ledger records serialise")
}

/// Table files RocksDB keeps open at once (its table cache evicts the
/// least recently used past this).
const MAX_OPEN_FILES: i32 = 512;

/// What all memtables together may hold before RocksDB flushes one.
const MEMTABLE_BUDGET: usize = 32 << 20;

impl Ledger {
    /// Opens (or creates) the ledger at `path` with default options.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        Self::open_with(path, &LedgerOptions::default())
    }

    /// Opens (or creates) the ledger at `path`.
    pub fn open_with(path: &Path, options: &LedgerOptions) -> Result<Ledger, LedgerError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        opts.set_keep_log_file_num(4);
        // RocksDB keeps every table file open by default, so a ledger that
        // grows (many small files until compaction merges them) can take
        // more file descriptors than a service is allowed; cap them.
        opts.set_max_open_files(MAX_OPEN_FILES);
        // Memory is bounded by configuration, not by the ledger's size: all
        // memtables together share one budget, and every column family reads
        // through one LRU block cache that also holds index and filter blocks
        // (RocksDB otherwise keeps those outside any cache, growing with the
        // number of table files).
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        let block_cache =
            rocksdb::Cache::new_lru_cache((options.ocsp_cache_bytes / 4).max(1 << 20));
        let table_options = |bloom: bool| {
            let mut table = BlockBasedOptions::default();
            if bloom {
                table.set_bloom_filter(10.0, false);
            }
            table.set_block_cache(&block_cache);
            // Index and filters in small partitions that live in the cache,
            // with only their top level pinned: a read that misses loads
            // one partition, not a whole file's index, so a ledger far
            // larger than the cache does not thrash it.
            table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
            table.set_partition_filters(bloom);
            table.set_metadata_block_size(4096);
            table.set_cache_index_and_filter_blocks(true);
            table.set_cache_index_and_filter_blocks_with_high_priority(true);
            table.set_pin_top_level_index_and_filter(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            table
        };
        let cf_options = |bloom: bool| {
            let mut cf = Options::default();
            cf.set_write_buffer_size(MEMTABLE_BUDGET / 4);
            cf.set_block_based_table_factory(&table_options(bloom));
            cf
        };
        let cfs = ALL_CFS.iter().map(|name| {
            let point_lookups = matches!(*name, CF_CERTS | CF_CERT_DER | CF_OCSP);
            ColumnFamilyDescriptor::new(*name, cf_options(point_lookups))
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| {
            let text = e.to_string();
            if text.contains("lock") || text.contains("LOCK") {
                LedgerError::Locked(path.to_path_buf())
            } else {
                LedgerError::Storage(e)
            }
        })?;
        let ledger = Ledger {
            db,
            path: path.to_path_buf(),
            write_lock: Mutex::new(()),
            hot: hot::HotCache::new(options.ocsp_cache_bytes - options.ocsp_cache_bytes / 4),
        };
        ledger.check_schema()?;
        ledger.index_acme()?;
        Ok(ledger)
    }

    fn check_schema(&self) -> Result<(), LedgerError> {
        let meta = self.cf(CF_META);
        match self.db.get_cf(meta, META_SCHEMA)? {
            None => {
                self.db.put_cf_opt(
                    meta,
                    META_SCHEMA,
                    SCHEMA_VERSION.to_be_bytes(),
                    &sync_opts(),
                )?;
                Ok(())
            }
            Some(v) if u64_value(Some(&v))? == SCHEMA_VERSION => Ok(()),
            Some(v) => Err(LedgerError::Corrupt(format!(
                "schema version {} is not supported by this custos (expects {SCHEMA_VERSION})",
                u64_value(Some(&v))?
            ))),
        }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every CF in ALL_CFS is opened in `open`.
        self.db.cf_handle(name).expect("column family opened")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the ledger lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a serial is taken.
    pub fn contains(&self, serial: &Serial) -> Result<bool, LedgerError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_CERTS), serial.as_bytes())?
            .is_some())
    }

    /// Records a newly issued certificate. Fails if the serial exists.
    pub fn insert(&self, record: &CertRecord, der: &[u8]) -> Result<(), LedgerError> {
        let _guard = self.lock();
        let serial = &record.serial;
        if self.contains(serial)? {
            return Err(LedgerError::DuplicateSerial(serial.clone()));
        }
        let count = u64_value(self.db.get_cf(self.cf(CF_META), META_CERT_COUNT)?)?;
        let mut batch = WriteBatch::default();
        self.put_record(&mut batch, record, der);
        batch.put_cf(self.cf(CF_META), META_CERT_COUNT, (count + 1).to_be_bytes());
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// Records many certificates in one synced batch (bulk import). Fails,
    /// writing nothing, if any serial is already taken or repeated.
    pub fn insert_batch(&self, items: &[(CertRecord, Vec<u8>)]) -> Result<(), LedgerError> {
        let _guard = self.lock();
        let mut seen = std::collections::HashSet::new();
        for (record, _) in items {
            if !seen.insert(&record.serial) || self.contains(&record.serial)? {
                return Err(LedgerError::DuplicateSerial(record.serial.clone()));
            }
        }
        let count = u64_value(self.db.get_cf(self.cf(CF_META), META_CERT_COUNT)?)?;
        let mut batch = WriteBatch::default();
        for (record, der) in items {
            self.put_record(&mut batch, record, der);
        }
        batch.put_cf(
            self.cf(CF_META),
            META_CERT_COUNT,
            (count + items.len() as u64).to_be_bytes(),
        );
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    fn put_record(&self, batch: &mut WriteBatch, record: &CertRecord, der: &[u8]) {
        let serial = &record.serial;
        batch.put_cf(self.cf(CF_CERTS), serial.as_bytes(), encode(record));
        batch.put_cf(self.cf(CF_CERT_DER), serial.as_bytes(), der);
        for id in record.device.index_keys() {
            batch.put_cf(self.cf(CF_BY_DEVICE), index_key(&id, serial), b"");
        }
        if let Some(account) = &record.acme_account {
            batch.put_cf(self.cf(CF_BY_ACCOUNT), index_key(account, serial), b"");
        }
        batch.put_cf(
            self.cf(CF_BY_EXPIRY),
            expiry_key(record.not_after, serial),
            b"",
        );
        if let Some(rev) = &record.revocation {
            batch.put_cf(
                self.cf(CF_REVOKED_BY_SHARD),
                shard_key(record.crl_shard, serial),
                RevokedEntry::encode(record, rev),
            );
        }
    }

    /// The record for a serial.
    pub fn get(&self, serial: &Serial) -> Result<Option<CertRecord>, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_CERTS), serial.as_bytes())?
        {
            None => Ok(None),
            Some(bytes) => decode(&bytes, "certificate record").map(Some),
        }
    }

    /// The DER certificate for a serial.
    pub fn get_der(&self, serial: &Serial) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_CERT_DER), serial.as_bytes())?
            .map(|b| b.to_vec()))
    }

    /// Number of certificates ever recorded.
    pub fn count(&self) -> Result<u64, LedgerError> {
        u64_value(self.db.get_cf(self.cf(CF_META), META_CERT_COUNT)?)
    }

    /// Sequence number the next revocation event will get (= events so far).
    pub fn next_revocation_seq(&self) -> Result<u64, LedgerError> {
        u64_value(self.db.get_cf(self.cf(CF_META), META_NEXT_SEQ)?)
    }

    fn prefix_serials(&self, cf: &str, prefix: &str) -> Result<Vec<Serial>, LedgerError> {
        let mut start = prefix.as_bytes().to_vec();
        start.push(0);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(&start, Direction::Forward))
        {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(start.as_slice()) else {
                break;
            };
            out.push(
                Serial::from_bytes(rest)
                    .map_err(|e| LedgerError::Corrupt(format!("index key: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Serials of every certificate linked to a device identifier (serial
    /// number, UDID or permanent identifier; case-insensitive).
    pub fn serials_by_device(&self, device_id: &str) -> Result<Vec<Serial>, LedgerError> {
        self.prefix_serials(CF_BY_DEVICE, &normalize_device_id(device_id))
    }

    /// Serials of every certificate ordered by an ACME account.
    pub fn serials_by_account(&self, account: &str) -> Result<Vec<Serial>, LedgerError> {
        self.prefix_serials(CF_BY_ACCOUNT, account)
    }

    /// Serials whose notAfter lies in `[from, to)`, in expiry order.
    pub fn serials_expiring(&self, from: u64, to: u64) -> Result<Vec<(u64, Serial)>, LedgerError> {
        let mut out = Vec::new();
        let start = from.to_be_bytes();
        for item in self.db.iterator_cf(
            self.cf(CF_BY_EXPIRY),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, _) = item?;
            if key.len() < 9 {
                return Err(LedgerError::Corrupt("expiry index key too short".into()));
            }
            let (time, serial) = key.split_at(8);
            let time = u64_value(Some(time))?;
            if time >= to {
                break;
            }
            out.push((
                time,
                Serial::from_bytes(serial).map_err(|e| LedgerError::Corrupt(e.to_string()))?,
            ));
        }
        Ok(out)
    }

    /// Up to `limit` records in serial order, starting after `after`.
    pub fn list(
        &self,
        after: Option<&Serial>,
        limit: usize,
    ) -> Result<Vec<CertRecord>, LedgerError> {
        let mode = match after {
            Some(s) => IteratorMode::From(s.as_bytes(), Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_CERTS), mode) {
            let (key, value) = item?;
            if after.is_some_and(|s| s.as_bytes() == &*key) {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            out.push(decode(&value, "certificate record")?);
        }
        Ok(out)
    }

    /// Revokes a certificate: one synced batch updating the record, the CRL
    /// shard index and the event log. Idempotent: a second call keeps the
    /// first time and reason, except that keyCompromise replaces any other
    /// reason (RFC 5280 §5.3.1, CA/B Baseline Requirements).
    pub fn revoke(
        &self,
        serial: &Serial,
        reason: Reason,
        time: u64,
    ) -> Result<RevokeOutcome, LedgerError> {
        self.revoke_with(serial, reason, time, |_| Ok(None))
    }

    /// Like [`Ledger::revoke`], and `status` makes the precomputed responses
    /// for the revoked record, written in the same synced batch: no reader
    /// can see the revocation without them, or them without it.
    pub fn revoke_with(
        &self,
        serial: &Serial,
        reason: Reason,
        time: u64,
        status: impl Fn(&CertRecord) -> Result<Option<PrecomputedSet>, String>,
    ) -> Result<RevokeOutcome, LedgerError> {
        let mut out = self.revoke_many_with(std::slice::from_ref(serial), reason, time, status)?;
        Ok(out.remove(0))
    }

    /// [`Ledger::revoke_with`] for several certificates in one synced batch
    /// (all or none), outcomes in the order given. Serials must differ.
    pub fn revoke_many_with(
        &self,
        serials: &[Serial],
        reason: Reason,
        time: u64,
        status: impl Fn(&CertRecord) -> Result<Option<PrecomputedSet>, String>,
    ) -> Result<Vec<RevokeOutcome>, LedgerError> {
        let _guard = self.lock();
        let mut seq = self.next_revocation_seq()?;
        let mut batch = WriteBatch::default();
        let mut outcomes = Vec::with_capacity(serials.len());
        let mut sets = Vec::new();
        for serial in serials {
            let mut record = self
                .get(serial)?
                .ok_or_else(|| LedgerError::NotFound(serial.clone()))?;
            let (revocation, change) = match record.revocation {
                None => (Revocation { time, reason, seq }, RevokeChange::Revoked),
                Some(prev)
                    if reason == Reason::KeyCompromise && prev.reason != Reason::KeyCompromise =>
                {
                    (
                        Revocation {
                            time: prev.time,
                            reason,
                            seq,
                        },
                        RevokeChange::ReasonUpgraded,
                    )
                }
                Some(_) => {
                    outcomes.push(RevokeOutcome {
                        record,
                        change: RevokeChange::Unchanged,
                    });
                    continue;
                }
            };
            record.revocation = Some(revocation);
            let event = RevocationEvent {
                seq,
                serial: serial.clone(),
                crl_shard: record.crl_shard,
                revocation,
            };
            batch.put_cf(self.cf(CF_CERTS), serial.as_bytes(), encode(&record));
            batch.put_cf(
                self.cf(CF_REVOKED_BY_SHARD),
                shard_key(record.crl_shard, serial),
                RevokedEntry::encode(&record, &revocation),
            );
            batch.put_cf(self.cf(CF_REVOCATIONS), seq.to_be_bytes(), encode(&event));
            seq += 1;
            if let Some(set) = status(&record).map_err(LedgerError::Status)? {
                self.put_precomputed(&mut batch, serial, &set)?;
                sets.push((serial.clone(), set));
            }
            outcomes.push(RevokeOutcome { record, change });
        }
        if batch.is_empty() {
            return Ok(outcomes);
        }
        batch.put_cf(self.cf(CF_META), META_NEXT_SEQ, seq.to_be_bytes());
        self.db.write_opt(batch, &sync_opts())?;
        for (serial, set) in &sets {
            self.invalidate_hot(serial, set.responses.iter().map(|(t, _)| *t));
        }
        Ok(outcomes)
    }

    /// Revocation events with `seq >= from`, at most `limit` of them.
    pub fn revocations_since(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RevocationEvent>, LedgerError> {
        let start = from.to_be_bytes();
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_REVOCATIONS),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            if out.len() >= limit {
                break;
            }
            let (_, value) = item?;
            out.push(decode(&value, "revocation event")?);
        }
        Ok(out)
    }

    fn put_precomputed(
        &self,
        batch: &mut WriteBatch,
        serial: &Serial,
        set: &PrecomputedSet,
    ) -> Result<(), LedgerError> {
        let mut old_due = Vec::new();
        for (tag, _) in &set.responses {
            if let Some(old) = self.get_precomputed(*tag, serial)? {
                old_due.push(old.refresh_at);
            }
        }
        for at in old_due {
            batch.delete_cf(self.cf(CF_OCSP_DUE), due_key(at, serial));
        }
        for (tag, der) in &set.responses {
            batch.put_cf(
                self.cf(CF_OCSP),
                ocsp_key(*tag, serial),
                Precomputed::encode(set, der),
            );
        }
        batch.put_cf(self.cf(CF_OCSP_DUE), due_key(set.refresh_at, serial), b"");
        Ok(())
    }

    /// Stores precomputed responses for a certificate, replacing older ones,
    /// but only if the certificate's revocation state is still
    /// `made_from` (what the responses were signed from). The check and the
    /// write happen under the write lock every revocation takes, so a
    /// refresh that signed `good` just before a revocation landed cannot
    /// overwrite the revocation's responses. Returns whether it stored.
    ///
    /// Not synced: they can always be re-made from the record (revocations
    /// use [`Ledger::revoke_with`], which is).
    pub fn store_precomputed(
        &self,
        serial: &Serial,
        made_from: Option<&Revocation>,
        set: &PrecomputedSet,
    ) -> Result<bool, LedgerError> {
        let _guard = self.lock();
        match self.get(serial)? {
            Some(rec) if rec.revocation.as_ref() == made_from => {}
            _ => return Ok(false),
        }
        let mut batch = WriteBatch::default();
        self.put_precomputed(&mut batch, serial, set)?;
        self.db.write(batch)?;
        self.invalidate_hot(serial, set.responses.iter().map(|(t, _)| *t));
        Ok(true)
    }

    fn invalidate_hot(&self, serial: &Serial, tags: impl Iterator<Item = u8>) {
        let keys: Vec<Vec<u8>> = tags.map(|t| ocsp_key(t, serial)).collect();
        self.hot.invalidate(keys.iter().map(|k| &k[..]));
    }

    /// Bytes of precomputed responses held in memory by the hot cache.
    pub fn hot_cache_bytes(&self) -> u64 {
        self.hot.weight()
    }

    /// A precomputed response by algorithm tag and serial: the OCSP hot path.
    pub fn get_precomputed(
        &self,
        tag: u8,
        serial: &Serial,
    ) -> Result<Option<Arc<Precomputed>>, LedgerError> {
        let key = ocsp_key(tag, serial);
        if let Some(hit) = self.hot.get(&key) {
            return Ok(Some(hit));
        }
        let epoch = self.hot.epoch();
        match self.db.get_pinned_cf(self.cf(CF_OCSP), &key)? {
            None => Ok(None),
            Some(bytes) => {
                let value = Arc::new(Precomputed::decode(&bytes)?);
                self.hot.fill(key, value.clone(), epoch);
                Ok(Some(value))
            }
        }
    }

    /// Removes a certificate's precomputed responses.
    pub fn delete_precomputed(&self, serial: &Serial, tags: &[u8]) -> Result<(), LedgerError> {
        let _guard = self.lock();
        let mut batch = WriteBatch::default();
        for tag in tags {
            if let Some(old) = self.get_precomputed(*tag, serial)? {
                batch.delete_cf(self.cf(CF_OCSP_DUE), due_key(old.refresh_at, serial));
            }
            batch.delete_cf(self.cf(CF_OCSP), ocsp_key(*tag, serial));
        }
        self.db.write(batch)?;
        self.invalidate_hot(serial, tags.iter().copied());
        Ok(())
    }

    /// Serials whose precomputed responses are due for refresh at `now`,
    /// oldest first, with their due time; at most `limit`.
    pub fn precomputed_due(
        &self,
        now: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Serial)>, LedgerError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_OCSP_DUE), IteratorMode::Start)
        {
            let (key, _) = item?;
            if key.len() < 9 {
                return Err(LedgerError::Corrupt("ocsp_due key too short".into()));
            }
            let at = u64_value(Some(&key[..8]))?;
            if at > now || out.len() >= limit {
                break;
            }
            let serial =
                Serial::from_bytes(&key[8..]).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            out.push((at, serial));
        }
        Ok(out)
    }

    /// Checks that every index agrees with the records: each certificate
    /// has its expiry entry, its device and account entries and (when
    /// revoked) its CRL-shard entry; no index entry names a certificate
    /// that is missing or does not match; the certificate count is right.
    /// Returns the disagreements found, one line each, and how many
    /// records were read.
    pub fn check_indexes(&self) -> Result<(u64, Vec<String>), LedgerError> {
        let mut problems = Vec::new();
        let mut records = 0u64;
        let has = |cf: &str, key: &[u8]| -> Result<bool, LedgerError> {
            Ok(self.db.get_pinned_cf(self.cf(cf), key)?.is_some())
        };
        for item in self.db.iterator_cf(self.cf(CF_CERTS), IteratorMode::Start) {
            let (key, value) = item?;
            records += 1;
            let record: CertRecord = match decode(&value, "certificate record") {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("{}: {e}", hex::encode_upper(&key)));
                    continue;
                }
            };
            let serial = &record.serial;
            if serial.as_bytes() != &*key {
                problems.push(format!("{serial}: stored under another key"));
            }
            if !has(CF_CERT_DER, serial.as_bytes())? {
                problems.push(format!("{serial}: certificate DER missing"));
            }
            if !has(CF_BY_EXPIRY, &expiry_key(record.not_after, serial))? {
                problems.push(format!("{serial}: missing from the expiry index"));
            }
            for id in record.device.index_keys() {
                if !has(CF_BY_DEVICE, &index_key(&id, serial))? {
                    problems.push(format!("{serial}: missing from the device index ({id})"));
                }
            }
            if let Some(account) = &record.acme_account {
                if !has(CF_BY_ACCOUNT, &index_key(account, serial))? {
                    problems.push(format!("{serial}: missing from the account index"));
                }
            }
            let in_shard = has(CF_REVOKED_BY_SHARD, &shard_key(record.crl_shard, serial))?;
            match (&record.revocation, in_shard) {
                (Some(_), false) => problems.push(format!(
                    "{serial}: revoked but missing from its CRL shard index"
                )),
                (None, true) => {
                    problems.push(format!("{serial}: in its CRL shard index but not revoked"))
                }
                _ => {}
            }
        }
        // Index entries must name records that carry them.
        for item in self
            .db
            .iterator_cf(self.cf(CF_REVOKED_BY_SHARD), IteratorMode::Start)
        {
            let (key, _) = item?;
            let Some(serial) = key.get(4..).and_then(|s| Serial::from_bytes(s).ok()) else {
                problems.push("malformed CRL shard index key".into());
                continue;
            };
            match self.get(&serial)? {
                Some(r) if r.revocation.is_some() && key[..4] == r.crl_shard.to_be_bytes() => {}
                _ => problems.push(format!(
                    "{serial}: CRL shard index names no matching revoked certificate"
                )),
            }
        }
        for item in self
            .db
            .iterator_cf(self.cf(CF_BY_DEVICE), IteratorMode::Start)
        {
            let (key, _) = item?;
            let Some(pos) = key.iter().position(|b| *b == 0) else {
                problems.push("malformed device index key".into());
                continue;
            };
            let id = String::from_utf8_lossy(&key[..pos]).into_owned();
            let Ok(serial) = Serial::from_bytes(&key[pos + 1..]) else {
                problems.push(format!("device index entry for {id} holds a bad serial"));
                continue;
            };
            match self.get(&serial)? {
                Some(r) if r.device.index_keys().contains(&id) => {}
                _ => problems.push(format!(
                    "{serial}: device index entry {id} names no matching certificate"
                )),
            }
        }
        let count = self.count()?;
        if count != records {
            problems.push(format!(
                "certificate count says {count}, the ledger holds {records}"
            ));
        }
        Ok((records, problems))
    }

    /// A consistent copy of the ledger, taken while it serves: a RocksDB
    /// checkpoint (hard links where the file system allows) in `dir`, which
    /// must not exist yet.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), LedgerError> {
        // Everything acknowledged is in the WAL; the checkpoint includes it.
        self.db.flush_wal(true)?;
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db)?;
        cp.create_checkpoint(dir)?;
        Ok(())
    }

    /// Flushes memtables and the WAL to disk (used at shutdown).
    pub fn flush(&self) -> Result<(), LedgerError> {
        self.db.flush_wal(true)?;
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }
}
