//! The ledger's side of MDM webhooks: each accepted device event under
//! `evt/<source>/<event id>` (its idempotency key) with the body's hash and
//! its state (pending until processed), and the append-only audit log
//! (`audit/<seq>`), in the `events` column family, every write synced.

use super::{sync_opts, Ledger, LedgerError, CF_EVENTS};
use custos_webhooks::DeviceEvent;
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

/// An accepted event as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event.
    pub event: DeviceEvent,
    /// SHA-256 of the delivery's body (hex): a replayed id must carry it.
    pub body_sha256: String,
    /// When it was accepted (Unix seconds).
    pub received_at: u64,
    /// `pending` until processed, then `done`.
    pub state: String,
    /// What processing did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// What recording an event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// New: stored pending.
    New,
    /// The same delivery again: nothing changed.
    Duplicate,
    /// The id was used by a different body: refused, nothing changed.
    Conflict,
}

/// One audit log entry. Entries form a hash chain: each carries the hash
/// of the one before it (`prev`) and its own (`hash`, SHA-256 over its
/// sequence number, time, kind, actor, detail and `prev`), and the ledger
/// keeps the newest hash, so an entry deleted, edited or cut off the end is
/// found by [`Ledger::verify_audit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number (ascending, from 1, without gaps).
    #[serde(default)]
    pub seq: u64,
    /// When (Unix seconds).
    pub time: u64,
    /// What changed: `event`, `revocation`, `issuance`, `device`, `eab`,
    /// `ocsp.refresh`, `crl.generate`, `outbox.retry`, `backup`.
    pub kind: String,
    /// Who: `admin-token`, `cli:<user>`, `acme:<account>`,
    /// `webhook:<source>`, `job:<name>`, `serve`.
    #[serde(default)]
    pub actor: String,
    /// What, in words and ids, and the outcome.
    pub detail: serde_json::Value,
    /// Hash of the previous entry (hex; empty for the first).
    #[serde(default)]
    pub prev: String,
    /// This entry's hash (hex).
    #[serde(default)]
    pub hash: String,
}

impl AuditEntry {
    /// A new entry (sequence number and hashes are set when appended).
    pub fn new(time: u64, kind: &str, actor: &str, detail: serde_json::Value) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time,
            kind: kind.to_string(),
            actor: actor.to_string(),
            detail,
            prev: String::new(),
            hash: String::new(),
        }
    }

    /// The hash this entry must carry.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let canonical = serde_json::to_vec(&(
            self.seq,
            self.time,
            &self.kind,
            &self.actor,
            &self.detail,
            &self.prev,
        ))
        .unwrap_or_default();
        hex::encode(sha2::Sha256::digest(&canonical))
    }

    /// Whether the entry names `id` (case-insensitive) under one of `keys`
    /// of its detail.
    pub fn names(&self, keys: &[&str], id: &str) -> bool {
        keys.iter().any(|k| {
            self.detail
                .get(*k)
                .and_then(|v| v.as_str())
                .is_some_and(|v| v.eq_ignore_ascii_case(id.trim()))
        })
    }
}

/// What [`Ledger::audit_hourly`] counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditHourly {
    /// Per kind asked for, per hour (oldest first).
    pub counts: Vec<Vec<u64>>,
    /// The newest sequence number read (0: the log is empty).
    pub newest: u64,
    /// Whether the whole span was read.
    pub complete: bool,
}

/// The parts of an audit entry that counting needs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AuditHead {
    /// Sequence number.
    #[serde(default)]
    pub seq: u64,
    /// When (Unix seconds).
    pub time: u64,
    /// What changed.
    pub kind: String,
}

/// Which audit entries to list.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only this kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only entries naming this device (serial number or UDID).
    #[serde(default)]
    pub device: Option<String>,
    /// Only entries naming this certificate serial.
    #[serde(default)]
    pub serial: Option<String>,
    /// Only entries at or after this time (Unix seconds).
    #[serde(default)]
    pub since: Option<u64>,
    /// Only entries before this time (Unix seconds).
    #[serde(default)]
    pub until: Option<u64>,
}

impl AuditFilter {
    /// Whether `e` passes.
    pub fn accepts(&self, e: &AuditEntry) -> bool {
        self.kind
            .as_ref()
            .is_none_or(|k| e.kind.eq_ignore_ascii_case(k))
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
            && self.device.as_ref().is_none_or(|d| {
                e.names(&["device", "udid"], d) || (e.kind == "event" && e.names(&["serial"], d))
            })
            && self.serial.as_ref().is_none_or(|s| {
                let s = s.replace(':', "");
                e.names(&["certificate"], &s)
                    || (e.kind == "revocation" && e.names(&["serial"], &s))
            })
    }
}

fn event_key(source: &str, id: &str) -> Vec<u8> {
    format!("evt/{source}/{id}").into_bytes()
}

/// Index of the events still to process: `pend/<source>/<id>` → ().
fn pending_key(source: &str, id: &str) -> Vec<u8> {
    format!("pend/{source}/{id}").into_bytes()
}

const PENDING_PREFIX: &[u8] = b"pend/";

const AUDIT_PREFIX: &[u8] = b"audit/";
const META_AUDIT_SEQ: &[u8] = b"audit_seq";
const META_AUDIT_HEAD: &[u8] = b"audit_head";

impl Ledger {
    /// Stores an accepted event (synced) unless its id is known.
    pub fn record_event(&self, stored: &StoredEvent) -> Result<Recorded, LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_EVENTS);
        let key = event_key(&stored.event.source, &stored.event.event_id);
        if let Some(old) = self.db.get_pinned_cf(cf, &key)? {
            let old: StoredEvent = super::decode(&old, "webhook event")?;
            return Ok(if old.body_sha256 == stored.body_sha256 {
                Recorded::Duplicate
            } else {
                Recorded::Conflict
            });
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, super::encode(stored));
        batch.put_cf(
            cf,
            pending_key(&stored.event.source, &stored.event.event_id),
            b"",
        );
        self.push_audit(
            &mut batch,
            &[AuditEntry::new(
                stored.received_at,
                "event",
                &event_actor(&stored.event.source),
                serde_json::to_value(&stored.event).unwrap_or_default(),
            )],
        )?;
        self.db.write_opt(batch, &sync_opts())?;
        Ok(Recorded::New)
    }

    /// Marks an event processed, with what it did, in one write: the audit
    /// entries of its revocations and the device's new status go with it.
    ///
    /// Not synced: the revocations themselves were (each in its own synced
    /// batch). If a crash loses this write, the event is still pending and
    /// is processed again at start, which writes all of it again.
    pub fn finish_event(
        &self,
        source: &str,
        id: &str,
        outcome: &str,
        audits: &[AuditEntry],
        device: Option<(&str, crate::model::device::DeviceStatus, Option<bool>)>,
        now: u64,
    ) -> Result<bool, LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_EVENTS);
        let key = event_key(source, id);
        let Some(old) = self.db.get_pinned_cf(cf, &key)? else {
            return Ok(false);
        };
        let mut stored: StoredEvent = super::decode(&old, "webhook event")?;
        if stored.state == "done" {
            // Finished already (by another delivery path): nothing twice.
            return Ok(false);
        }
        let occurred_at = stored.event.occurred_at;
        stored.state = "done".into();
        stored.outcome = Some(outcome.to_string());
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, super::encode(&stored));
        batch.delete_cf(cf, pending_key(source, id));
        self.push_audit(&mut batch, audits)?;
        if let Some((dev, status, compliant)) = device {
            self.put_device_status(&mut batch, dev, status, compliant, occurred_at, now)?;
        }
        self.db.write(batch)?;
        Ok(true)
    }

    /// Whether an event is still waiting to be processed.
    pub fn event_pending(&self, source: &str, id: &str) -> Result<bool, LedgerError> {
        let cf = self.cf(CF_EVENTS);
        match self.db.get_pinned_cf(cf, event_key(source, id))? {
            None => Ok(false),
            Some(v) => {
                let stored: StoredEvent = super::decode(&v, "webhook event")?;
                Ok(stored.state == "pending")
            }
        }
    }

    /// Events accepted but not processed (a crash in between, or a failure
    /// to retry), found through the pending index.
    pub fn pending_events(&self) -> Result<Vec<StoredEvent>, LedgerError> {
        let cf = self.cf(CF_EVENTS);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(PENDING_PREFIX, Direction::Forward))
        {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(PENDING_PREFIX) else {
                break;
            };
            let evt = [b"evt/".as_slice(), rest].concat();
            if let Some(value) = self.db.get_pinned_cf(cf, &evt)? {
                let stored: StoredEvent = super::decode(&value, "webhook event")?;
                if stored.state == "pending" {
                    out.push(stored);
                }
            }
        }
        Ok(out)
    }

    fn push_audit(
        &self,
        batch: &mut WriteBatch,
        entries: &[AuditEntry],
    ) -> Result<(), LedgerError> {
        if entries.is_empty() {
            return Ok(());
        }
        let cf = self.cf(CF_EVENTS);
        let mut seq = super::u64_value(self.db.get_cf(cf, META_AUDIT_SEQ)?)?;
        let mut head = self
            .db
            .get_cf(cf, META_AUDIT_HEAD)?
            .map(|h| String::from_utf8_lossy(&h).into_owned())
            .unwrap_or_default();
        for entry in entries {
            seq += 1;
            let mut e = entry.clone();
            e.seq = seq;
            e.prev = head;
            e.hash = e.digest();
            head = e.hash.clone();
            batch.put_cf(
                cf,
                [AUDIT_PREFIX, &seq.to_be_bytes()].concat(),
                super::encode(&e),
            );
        }
        batch.put_cf(cf, META_AUDIT_SEQ, seq.to_be_bytes());
        batch.put_cf(cf, META_AUDIT_HEAD, head.as_bytes());
        Ok(())
    }

    /// Walks the whole audit log and checks the hash chain: consecutive
    /// sequence numbers, each entry's hash, each link to the entry before,
    /// and that the last entry is the one the ledger recorded as newest.
    /// Entries written before the chain existed (no hash) may only come
    /// first. Returns how many entries were read and what is wrong.
    pub fn verify_audit(&self) -> Result<(u64, Vec<String>), LedgerError> {
        let cf = self.cf(CF_EVENTS);
        let mut problems = Vec::new();
        let mut count = 0u64;
        let mut last_seq = 0u64;
        let mut last_hash = String::new();
        let mut chained = false;
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(AUDIT_PREFIX, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(AUDIT_PREFIX) {
                break;
            }
            count += 1;
            let e: AuditEntry = match super::decode(&value, "audit entry") {
                Ok(e) => e,
                Err(err) => {
                    problems.push(format!("entry after {last_seq}: {err}"));
                    continue;
                }
            };
            let key_seq = key
                .get(AUDIT_PREFIX.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            if key_seq != Some(e.seq) {
                problems.push(format!(
                    "entry {}: stored under another sequence number",
                    e.seq
                ));
            }
            if e.seq != last_seq + 1 {
                problems.push(format!(
                    "entry {}: follows entry {last_seq} (entries missing)",
                    e.seq
                ));
            }
            if e.hash.is_empty() {
                if chained {
                    problems.push(format!("entry {}: carries no hash", e.seq));
                }
            } else {
                chained = true;
                if e.prev != last_hash {
                    problems.push(format!(
                        "entry {}: does not link to entry {last_seq} (an entry was removed or changed)",
                        e.seq
                    ));
                }
                if e.digest() != e.hash {
                    problems.push(format!("entry {}: changed after it was written", e.seq));
                }
            }
            last_seq = e.seq;
            last_hash = e.hash;
        }
        let seq = super::u64_value(self.db.get_cf(cf, META_AUDIT_SEQ)?)?;
        let head = self
            .db
            .get_cf(cf, META_AUDIT_HEAD)?
            .map(|h| String::from_utf8_lossy(&h).into_owned())
            .unwrap_or_default();
        if seq != last_seq || (chained && head != last_hash) {
            problems.push(format!(
                "the log ends at entry {last_seq} but entry {seq} was written (entries cut off the end)"
            ));
        }
        Ok((count, problems))
    }

    /// Audit entries after `after` that pass `filter`, oldest first, at
    /// most `limit`.
    pub fn audit_filtered(
        &self,
        after: u64,
        limit: usize,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, LedgerError> {
        self.audit_forward(after, limit, |e| filter.accepts(e))
    }

    /// The sequence number, time and kind of up to `limit` audit entries
    /// after `after`, oldest first.
    pub fn audit_heads_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditHead>, LedgerError> {
        self.audit_forward(after, limit, |_| true)
    }

    /// Up to `limit` audit entries after `after` read as `T`, oldest
    /// first, those that `keep` accepts.
    fn audit_forward<T: serde::de::DeserializeOwned>(
        &self,
        after: u64,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>, LedgerError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let start = [AUDIT_PREFIX, &first.to_be_bytes()].concat();
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_EVENTS),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(AUDIT_PREFIX) || out.len() >= limit {
                break;
            }
            let e: T = super::decode(&value, "audit entry")?;
            if keep(&e) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// One page of the audit log, newest first: entries before sequence
    /// number `before` (`None`: from the newest) that pass `filter`, at most
    /// `limit`, reading at most `max_scan` entries. Also returns where the
    /// next (older) page starts, if anything older is left.
    pub fn audit_page_back(
        &self,
        before: Option<u64>,
        limit: usize,
        max_scan: usize,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, Option<u64>), LedgerError> {
        let end = match before {
            Some(0) => return Ok((Vec::new(), None)),
            Some(b) => [AUDIT_PREFIX, &(b - 1).to_be_bytes()].concat(),
            None => [AUDIT_PREFIX, &u64::MAX.to_be_bytes()].concat(),
        };
        let mut out = Vec::new();
        let mut scanned = 0usize;
        for item in self.db.iterator_cf(
            self.cf(CF_EVENTS),
            IteratorMode::From(&end, Direction::Reverse),
        ) {
            let (key, value) = item?;
            if !key.starts_with(AUDIT_PREFIX) {
                break;
            }
            let e: AuditEntry = super::decode(&value, "audit entry")?;
            if filter.since.is_some_and(|t| e.time < t) {
                // Entries are appended in time order: nothing older passes.
                return Ok((out, None));
            }
            scanned += 1;
            let seq = e.seq;
            if filter.accepts(&e) {
                out.push(e);
            }
            if out.len() >= limit || scanned >= max_scan {
                return Ok((out, (seq > 1).then_some(seq)));
            }
        }
        Ok((out, None))
    }

    /// How many audit entries of each of `kinds` were written in each of
    /// the `hours` hours before `end` (index 0: the oldest hour; an entry
    /// stamped at or after `end` counts in the last), reading the log
    /// backwards and at most `max_scan` entries. Also returns the newest
    /// sequence number read and whether the whole span was read.
    pub fn audit_hourly(
        &self,
        end: u64,
        hours: usize,
        kinds: &[&str],
        max_scan: usize,
    ) -> Result<AuditHourly, LedgerError> {
        let mut out = AuditHourly {
            counts: vec![vec![0u64; hours]; kinds.len()],
            newest: 0,
            complete: true,
        };
        if hours == 0 {
            return Ok(out);
        }
        let start = end.saturating_sub(hours as u64 * 3600);
        let last = [AUDIT_PREFIX, &u64::MAX.to_be_bytes()].concat();
        for (scanned, item) in self
            .db
            .iterator_cf(
                self.cf(CF_EVENTS),
                IteratorMode::From(&last, Direction::Reverse),
            )
            .enumerate()
        {
            let (key, value) = item?;
            if !key.starts_with(AUDIT_PREFIX) {
                break;
            }
            if scanned >= max_scan {
                out.complete = false;
                break;
            }
            let Ok(head) = serde_json::from_slice::<AuditHead>(&value) else {
                continue;
            };
            out.newest = out.newest.max(head.seq);
            if head.time < start {
                break;
            }
            let hour = (((head.time - start) / 3600) as usize).min(hours - 1);
            if let Some(k) = kinds.iter().position(|k| *k == head.kind) {
                out.counts[k][hour] += 1;
            }
        }
        Ok(out)
    }

    /// Appends one audit entry (synced).
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<(), LedgerError> {
        self.append_audits(std::slice::from_ref(entry))
    }

    /// Appends audit entries in one synced write.
    pub fn append_audits(&self, entries: &[AuditEntry]) -> Result<(), LedgerError> {
        let _guard = self.lock();
        let mut batch = WriteBatch::default();
        self.push_audit(&mut batch, entries)?;
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// Audit entries after `after`, oldest first, at most `limit`.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, LedgerError> {
        self.audit_filtered(after, limit, &AuditFilter::default())
    }
}

/// Who the audit log names for an event's source: `sync:<name>` for an
/// inventory sync (its source is already spelt so), `webhook:<name>` for a
/// webhook.
pub fn event_actor(source: &str) -> String {
    if source.starts_with("sync:") {
        source.to_string()
    } else {
        format!("webhook:{source}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages go backwards without overlap, honour the filter and `since`,
    /// and the hourly counts put entries in their hour.
    #[test]
    fn audit_pages_back_and_counts_by_hour() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
        let now = 100_000;
        for i in 0..10u64 {
            let kind = if i % 2 == 0 { "issuance" } else { "revocation" };
            let e = AuditEntry::new(now - 36_000 + i * 3_600, kind, "t", serde_json::json!({}));
            ledger.append_audit(&e).unwrap();
        }
        let all = AuditFilter::default();
        let (first, next) = ledger.audit_page_back(None, 4, 1000, &all).unwrap();
        let seqs: Vec<u64> = first.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [10, 9, 8, 7]);
        let (second, next) = ledger.audit_page_back(next, 4, 1000, &all).unwrap();
        assert_eq!(
            second.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [6, 5, 4, 3]
        );
        let (third, next) = ledger.audit_page_back(next, 4, 1000, &all).unwrap();
        assert_eq!(third.len(), 2);
        assert_eq!(next, None);
        let revocations = AuditFilter {
            kind: Some("revocation".into()),
            since: Some(now - 36_000 + 5 * 3_600),
            ..Default::default()
        };
        let (found, next) = ledger
            .audit_page_back(None, 100, 1000, &revocations)
            .unwrap();
        assert_eq!(found.iter().map(|e| e.seq).collect::<Vec<_>>(), [10, 8, 6]);
        assert_eq!(next, None);
        // A scan bound short of the page still says where to go on.
        let (found, next) = ledger.audit_page_back(None, 100, 3, &revocations).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(next, Some(8));

        let h = ledger
            .audit_hourly(now, 6, &["issuance", "revocation"], 1000)
            .unwrap();
        assert!(h.complete);
        assert_eq!(h.newest, 10);
        let counts = h.counts;
        // Entries 5..=10 fall in the last six hours; the last at now - 3,600.
        assert_eq!(counts[0], [1, 0, 1, 0, 1, 0]);
        assert_eq!(counts[1], [0, 1, 0, 1, 0, 1]);
        assert!(
            !ledger
                .audit_hourly(now, 24, &["issuance"], 5)
                .unwrap()
                .complete
        );
        let heads = ledger.audit_heads_after(8, 10).unwrap();
        assert_eq!(heads.iter().map(|h| h.seq).collect::<Vec<_>>(), [9, 10]);
        assert_eq!(heads[1].kind, "revocation");
    }
}
