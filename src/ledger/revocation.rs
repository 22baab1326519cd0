//! Revocation in the ledger: one synced batch per call updates the
//! records, the CRL shard index, the revocation log and (through the
//! caller's signer) the precomputed OCSP responses, so no reader sees one
//! without the others.

use super::*;

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

impl Ledger {
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
        status: impl Fn(&CertRecord) -> Result<Option<PrecomputedSet>, BoxError>,
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
        status: impl Fn(&CertRecord) -> Result<Option<PrecomputedSet>, BoxError>,
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
}
