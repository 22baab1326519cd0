//! The ledger's side of outbound revocation notifications: a persisted
//! outbox in the `events` column family. Each subscriber has a cursor into
//! the revocation log (`outcur/<subscriber>`); moving it writes one entry per
//! new revocation (`out/<subscriber>/<seq>`) in the same batch, so nothing
//! is skipped or enqueued twice across crashes. Delivered entries are
//! deleted; entries that ran out of attempts move to `dead/<subscriber>/<seq>`.
//! Nothing here sends anything.

use super::{sync_opts, Ledger, LedgerError, RevocationEvent, CF_EVENTS};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

/// State of an outbox entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting for (another) delivery attempt.
    Pending,
    /// Gave up: out of attempts, or the subscriber answered 410 Gone.
    Dead,
}

/// One notification for one subscriber.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Subscriber name (`[notify.subscribers.<name>]`).
    pub subscriber: String,
    /// The revocation log sequence number it reports.
    pub seq: u64,
    /// The revocation.
    pub revocation: RevocationEvent,
    /// Pending or dead.
    pub state: OutboxState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Earliest next attempt (Unix seconds).
    pub next_attempt_at: u64,
    /// When it was enqueued (Unix seconds).
    pub created_at: u64,
    /// What the last attempt got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl OutboxEntry {
    /// The Standard Webhooks `webhook-id`: the same on every retry.
    pub fn message_id(&self) -> String {
        format!("msg_custos_rev_{}", self.seq)
    }
}

fn cursor_key(subscriber: &str) -> Vec<u8> {
    format!("outcur/{subscriber}").into_bytes()
}

fn entry_key(state: OutboxState, subscriber: &str, seq: u64) -> Vec<u8> {
    let prefix = match state {
        OutboxState::Pending => "out",
        OutboxState::Dead => "dead",
    };
    [
        format!("{prefix}/{subscriber}/").as_bytes(),
        &seq.to_be_bytes(),
    ]
    .concat()
}

fn state_prefix(state: OutboxState) -> &'static [u8] {
    match state {
        OutboxState::Pending => b"out/",
        OutboxState::Dead => b"dead/",
    }
}

impl Ledger {
    /// Moves each subscriber's cursor over up to `limit` new revocations,
    /// writing an outbox entry for each. A subscriber seen for the first
    /// time starts at the end of the log (it gets revocations from now on).
    /// Returns how many entries were written.
    pub fn enqueue_notifications(
        &self,
        subscribers: &[String],
        now: u64,
        limit: usize,
    ) -> Result<usize, LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_EVENTS);
        let end = self.next_revocation_seq()?;
        let mut batch = WriteBatch::default();
        let mut written = 0;
        for sub in subscribers {
            let cursor = match self.db.get_cf(cf, cursor_key(sub))? {
                Some(v) => super::u64_value(Some(v))?,
                None => {
                    batch.put_cf(cf, cursor_key(sub), end.to_be_bytes());
                    continue;
                }
            };
            if cursor >= end {
                continue;
            }
            let events = self.revocations_since(cursor, limit)?;
            let mut next = cursor;
            for revocation in events {
                next = revocation.seq + 1;
                let entry = OutboxEntry {
                    subscriber: sub.clone(),
                    seq: revocation.seq,
                    revocation,
                    state: OutboxState::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    created_at: now,
                    last_error: None,
                };
                batch.put_cf(
                    cf,
                    entry_key(OutboxState::Pending, sub, entry.seq),
                    super::encode(&entry),
                );
                written += 1;
            }
            batch.put_cf(cf, cursor_key(sub), next.to_be_bytes());
        }
        if !batch.is_empty() {
            self.db.write_opt(batch, &sync_opts())?;
        }
        Ok(written)
    }

    /// Entries in `state`, oldest first per subscriber, at most `limit`.
    pub fn outbox(
        &self,
        state: OutboxState,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, LedgerError> {
        self.outbox_prefix(state_prefix(state), limit)
    }

    /// One subscriber's entries in `state`, oldest first, at most `limit`.
    pub fn outbox_of(
        &self,
        subscriber: &str,
        state: OutboxState,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, LedgerError> {
        let prefix = [state_prefix(state), subscriber.as_bytes(), b"/"].concat();
        self.outbox_prefix(&prefix, limit)
    }

    /// How many entries are in `state` (walks them: not for every request).
    pub fn outbox_count(&self, state: OutboxState) -> Result<usize, LedgerError> {
        let prefix = state_prefix(state);
        let mut n = 0;
        for item in self.db.iterator_cf(
            self.cf(CF_EVENTS),
            IteratorMode::From(prefix, Direction::Forward),
        ) {
            let (key, _) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    fn outbox_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<OutboxEntry>, LedgerError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_EVENTS),
            IteratorMode::From(prefix, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push(super::decode(&value, "outbox entry")?);
        }
        Ok(out)
    }

    /// Records an attempt's result: `None` deletes the entry (delivered);
    /// otherwise the entry replaces the stored one (moved to `dead/` when
    /// its state says so).
    pub fn update_outbox(
        &self,
        subscriber: &str,
        seq: u64,
        after: Option<&OutboxEntry>,
    ) -> Result<(), LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_EVENTS);
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf, entry_key(OutboxState::Pending, subscriber, seq));
        if let Some(e) = after {
            batch.delete_cf(cf, entry_key(OutboxState::Dead, subscriber, seq));
            batch.put_cf(cf, entry_key(e.state, subscriber, seq), super::encode(e));
        }
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// Puts every dead entry back in the queue, due at `now`, with its
    /// attempts reset. Returns how many.
    pub fn retry_dead_notifications(&self, now: u64) -> Result<usize, LedgerError> {
        let dead = self.outbox(OutboxState::Dead, usize::MAX)?;
        let _guard = self.lock();
        let cf = self.cf(CF_EVENTS);
        let mut batch = WriteBatch::default();
        for mut e in dead.iter().cloned() {
            batch.delete_cf(cf, entry_key(OutboxState::Dead, &e.subscriber, e.seq));
            e.state = OutboxState::Pending;
            e.attempts = 0;
            e.next_attempt_at = now;
            batch.put_cf(
                cf,
                entry_key(OutboxState::Pending, &e.subscriber, e.seq),
                super::encode(&e),
            );
        }
        self.db.write_opt(batch, &sync_opts())?;
        Ok(dead.len())
    }
}
