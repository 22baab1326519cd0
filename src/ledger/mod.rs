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
mod acme_lists;
mod check;
mod crls;
mod devices;
mod events;
mod hot;
mod mdm;
mod outbox;
mod record;
mod replication;
mod responders;
mod revocation;
mod scep;
mod status;

pub use acme::EabRecord;
pub use acme_lists::OrderView;
pub use crls::{RevokedEntry, StoredCrl};
pub use events::{
    event_actor, AuditEntry, AuditFilter, AuditHead, AuditHourly, Recorded, StoredEvent,
};
pub use outbox::{OutboxEntry, OutboxState};
pub use record::{
    normalize_device_id, CertRecord, CertStatus, DeviceIds, Revocation, RevocationEvent,
};
pub use responders::ResponderRecord;
pub use revocation::{RevokeChange, RevokeOutcome};
pub use scep::{ChallengeClaim, ScepChallengeRecord, ScepChallengeUse, ScepTransaction};
pub use status::{Precomputed, PrecomputedSet};

use crate::revocation::Reason;
use crate::serial::Serial;
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions,
    WriteBatch, WriteOptions, DB,
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
const CF_REPLICATION: &str = "replication";
const ALL_CFS: [&str; 15] = [
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
    CF_REPLICATION,
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
    /// Making the status responses for a change failed (or a scan's
    /// visitor stopped it); nothing was written.
    #[error("status responses could not be made")]
    Status(#[source] BoxError),
    /// RocksDB reported an error.
    #[error("ledger storage error: {0}")]
    Storage(#[from] rocksdb::Error),
}

/// Any error, boxed: what a caller's callback (the status responses of a
/// revocation, a scan's visitor) reports, kept as a [`LedgerError::Status`]
/// source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Tuning for [`Ledger::open_with`].
#[derive(Clone, Debug)]
pub struct LedgerOptions {
    /// Bytes of memory for precomputed OCSP responses, whatever the
    /// ledger's size: three quarters for the in-memory hot cache, one
    /// quarter for RocksDB's block cache (shared by every column family,
    /// index and filter blocks included). Memtables take a further fixed
    /// 32 MiB at most.
    pub ocsp_cache_bytes: usize,
    /// Keep the replication log (`[replication]` is on).
    pub replication_log: bool,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            ocsp_cache_bytes: 64 << 20,
            replication_log: false,
        }
    }
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
    /// Whether precomputed writes are logged for replication.
    replicate: bool,
    /// The next replication log sequence number (taken under `write_lock`).
    replication_next: std::sync::atomic::AtomicU64,
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
            replicate: options.replication_log,
            replication_next: std::sync::atomic::AtomicU64::new(0),
        };
        ledger.check_schema()?;
        ledger.replication_next.store(
            ledger.replication_end()?,
            std::sync::atomic::Ordering::SeqCst,
        );
        ledger.index_acme()?;
        ledger.index_acme_lists()?;
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

    /// How many certificates have their notAfter in `[from, to)`,
    /// counting at most `max` (the flag says whether all were counted).
    pub fn count_expiring(&self, from: u64, to: u64, max: u64) -> Result<(u64, bool), LedgerError> {
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        opts.set_iterate_upper_bound(to.to_be_bytes().to_vec());
        let mut count = 0u64;
        let start = from.to_be_bytes();
        for item in self.db.iterator_cf_opt(
            self.cf(CF_BY_EXPIRY),
            opts,
            IteratorMode::From(&start, Direction::Forward),
        ) {
            item?;
            if count >= max {
                return Ok((count, false));
            }
            count += 1;
        }
        Ok((count, true))
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

    /// Compacts every column family fully (after a bulk import, so that a
    /// server opened on it does not start with a compaction backlog).
    pub fn compact(&self) -> Result<(), LedgerError> {
        self.flush()?;
        for name in ALL_CFS {
            self.db
                .compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
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
