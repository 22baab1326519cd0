//! The replication log: when replication is on, every write of a
//! certificate's precomputed responses (issuance, refresh, revocation)
//! appends the certificate's serial here, in the same write batch. The Redis
//! publisher (`status::replication`) follows the log from a cursor kept in
//! `meta` and moves the cursor only after Redis has what the entries name,
//! so a restart, a crash or a Redis outage skips nothing; at worst an entry
//! is published twice, which is harmless (the newest state is written).
//!
//! Sequence numbers are handed out under the ledger's write lock, in the
//! order the batches are written, so the log never holds a later entry
//! before an earlier one that is still to come.

use super::{u64_value, Ledger, LedgerError, CF_META, CF_REPLICATION};
use crate::serial::Serial;
use rocksdb::{IteratorMode, WriteBatch};
use std::sync::atomic::Ordering;

const META_CURSOR: &[u8] = b"replication_cursor";
const META_ID: &[u8] = b"replication_id";

impl Ledger {
    /// Appends `serial` to the replication log in `batch` (nothing when
    /// replication is off). The caller holds the write lock.
    pub(super) fn log_replication(&self, batch: &mut WriteBatch, serial: &Serial) {
        if !self.replicate {
            return;
        }
        let seq = self.replication_next.fetch_add(1, Ordering::SeqCst);
        batch.put_cf(
            self.cf(CF_REPLICATION),
            seq.to_be_bytes(),
            serial.as_bytes(),
        );
    }

    /// The first sequence number after the log's last entry.
    pub(super) fn replication_end(&self) -> Result<u64, LedgerError> {
        let mut it = self
            .db
            .iterator_cf(self.cf(CF_REPLICATION), IteratorMode::End);
        Ok(match it.next().transpose()? {
            Some((key, _)) => u64_value(Some(&key))? + 1,
            None => self.replication_cursor()?,
        })
    }

    /// Where the publisher is: every entry before it is in Redis.
    pub fn replication_cursor(&self) -> Result<u64, LedgerError> {
        u64_value(self.db.get_cf(self.cf(CF_META), META_CURSOR)?.as_deref())
    }

    /// Up to `limit` entries from the cursor on, oldest first.
    pub fn replication_pending(&self, limit: usize) -> Result<Vec<(u64, Serial)>, LedgerError> {
        let from = self.replication_cursor()?.to_be_bytes();
        let mode = IteratorMode::From(&from, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_REPLICATION), mode) {
            let (key, value) = item?;
            let seq = u64_value(Some(&key))?;
            let serial = Serial::from_bytes(&value)
                .map_err(|e| LedgerError::Corrupt(format!("replication log: {e}")))?;
            out.push((seq, serial));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Marks every entry before `to` as published and drops it.
    pub fn advance_replication(&self, to: u64) -> Result<(), LedgerError> {
        let mut batch = WriteBatch::default();
        let from = self.replication_cursor()?;
        if to <= from {
            return Ok(());
        }
        batch.delete_range_cf(
            self.cf(CF_REPLICATION),
            from.to_be_bytes(),
            to.to_be_bytes(),
        );
        batch.put_cf(self.cf(CF_META), META_CURSOR, to.to_be_bytes());
        self.db.write(batch)?;
        Ok(())
    }

    /// Entries not yet published (an upper bound).
    pub fn replication_backlog(&self) -> Result<u64, LedgerError> {
        Ok(self
            .replication_next
            .load(Ordering::SeqCst)
            .saturating_sub(self.replication_cursor()?))
    }

    /// Drops every pending entry (a full resync is about to publish
    /// everything): the log restarts at its end.
    pub fn skip_replication_log(&self) -> Result<u64, LedgerError> {
        let _guard = self.lock();
        let end = self.replication_next.load(Ordering::SeqCst);
        self.advance_replication(end)?;
        Ok(end)
    }

    /// This ledger's replication identity: a random id made once, which
    /// Redis keeps as the generation it holds (an empty Redis, or one
    /// filled from another ledger, has a different one and is resynced).
    pub fn replication_id(&self) -> Result<String, LedgerError> {
        let _guard = self.lock();
        let meta = self.cf(CF_META);
        if let Some(v) = self.db.get_cf(meta, META_ID)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let id = Serial::random().to_hex();
        self.db
            .put_cf_opt(meta, META_ID, id.as_bytes(), &super::sync_opts())?;
        Ok(id)
    }
}
