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

/// One audit log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number (ascending).
    #[serde(default)]
    pub seq: u64,
    /// When (Unix seconds).
    pub time: u64,
    /// `event` or `revocation` or `device`.
    pub kind: String,
    /// What, in words and ids.
    pub detail: serde_json::Value,
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
            &[AuditEntry {
                seq: 0,
                time: stored.received_at,
                kind: "event".into(),
                detail: serde_json::to_value(&stored.event).unwrap_or_default(),
            }],
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
        device: Option<(&str, crate::devices::DeviceStatus, Option<bool>)>,
        now: u64,
    ) -> Result<(), LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_EVENTS);
        let key = event_key(source, id);
        let Some(old) = self.db.get_pinned_cf(cf, &key)? else {
            return Ok(());
        };
        let mut stored: StoredEvent = super::decode(&old, "webhook event")?;
        stored.state = "done".into();
        stored.outcome = Some(outcome.to_string());
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, super::encode(&stored));
        batch.delete_cf(cf, pending_key(source, id));
        self.push_audit(&mut batch, audits)?;
        if let Some((dev, status, compliant)) = device {
            self.put_device_status(&mut batch, dev, status, compliant, now)?;
        }
        self.db.write(batch)?;
        Ok(())
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
        for entry in entries {
            seq += 1;
            let mut e = entry.clone();
            e.seq = seq;
            batch.put_cf(
                cf,
                [AUDIT_PREFIX, &seq.to_be_bytes()].concat(),
                super::encode(&e),
            );
        }
        batch.put_cf(cf, META_AUDIT_SEQ, seq.to_be_bytes());
        Ok(())
    }

    /// Appends one audit entry (synced).
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<(), LedgerError> {
        let _guard = self.lock();
        let mut batch = WriteBatch::default();
        self.push_audit(&mut batch, std::slice::from_ref(entry))?;
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// Audit entries after `after`, oldest first, at most `limit`.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, LedgerError> {
        let start = [AUDIT_PREFIX, &(after + 1).to_be_bytes()].concat();
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_EVENTS),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(AUDIT_PREFIX) || out.len() >= limit {
                break;
            }
            out.push(super::decode(&value, "audit entry")?);
        }
        Ok(out)
    }
}
