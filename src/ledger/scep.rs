//! The ledger's side of SCEP: one-time enrolment challenges and the
//! transactions that used them, in the `devices` column family, every
//! write synced.
//!
//! Keys: `scepch/<SHA-256 of the challenge, hex>` → [`ScepChallengeRecord`]
//! (the challenge itself is never stored); `sceptx/<SHA-256 of the
//! transactionID, hex>` → [`ScepTransaction`] (what a transaction was
//! issued, so a re-sent request or a `CertPoll` gets the same certificate);
//! `scepexp/<expires at, 16 hex>/<challenge hash>` → empty, so expired
//! challenges are found without reading every one.

use super::{sync_opts, Ledger, LedgerError, CF_DEVICES};
use rocksdb::{Direction, IteratorMode, WriteBatch};

/// A challenge as the ledger remembers it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScepChallengeRecord {
    /// A short public name of the challenge (the first 16 hex digits of
    /// its hash), for the audit log and the operator.
    pub id: String,
    /// The device (inventory serial) it is bound to; `None` for a challenge
    /// an MDM fetched without naming a device (NDES page, a Jamf webhook
    /// without an identifier): the CSR's subject then names the device.
    pub device: Option<String>,
    /// Made at (Unix seconds).
    pub created_at: u64,
    /// Refused from (Unix seconds).
    pub expires_at: u64,
    /// The request that used it, once used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<ScepChallengeUse>,
}

/// The request that used a challenge.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScepChallengeUse {
    /// The SCEP transactionID.
    pub transaction_id: String,
    /// SHA-256 of the requested public key (SPKI DER), hex.
    pub key_sha256: String,
    /// When (Unix seconds).
    pub at: u64,
}

/// What a SCEP transaction was issued.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScepTransaction {
    /// The device.
    pub device: String,
    /// SHA-256 of the certified public key, hex.
    pub key_sha256: String,
    /// SHA-256 of the CSR, hex: a re-sent request carries the same one.
    #[serde(default)]
    pub csr_sha256: String,
    /// The certificate's serial, hex.
    pub certificate: String,
    /// When (Unix seconds).
    pub at: u64,
}

/// The outcome of claiming a challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChallengeClaim {
    /// No such challenge.
    Unknown,
    /// It expired.
    Expired(ScepChallengeRecord),
    /// Used before, by this request (transaction and key).
    Used(ScepChallengeRecord),
    /// Now used by the caller.
    Claimed(ScepChallengeRecord),
}

fn challenge_key(hash_hex: &str) -> Vec<u8> {
    format!("scepch/{hash_hex}").into_bytes()
}

fn expiry_key(expires_at: u64, hash_hex: &str) -> Vec<u8> {
    format!("scepexp/{expires_at:016x}/{hash_hex}").into_bytes()
}

fn transaction_key(tid_hash_hex: &str) -> Vec<u8> {
    format!("sceptx/{tid_hash_hex}").into_bytes()
}

/// How long a used or expired challenge is kept (for the operator, and so
/// that a re-sent request is recognised) before it is purged.
pub const SCEP_KEEP_SECS: u64 = 7 * 86_400;

impl Ledger {
    /// Stores a new challenge under the hash of its value.
    pub fn put_scep_challenge(
        &self,
        hash_hex: &str,
        record: &ScepChallengeRecord,
    ) -> Result<(), LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_DEVICES);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, challenge_key(hash_hex), super::encode(record));
        batch.put_cf(cf, expiry_key(record.expires_at, hash_hex), b"");
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// The challenge with this hash, if any.
    pub fn scep_challenge(
        &self,
        hash_hex: &str,
    ) -> Result<Option<ScepChallengeRecord>, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_DEVICES), challenge_key(hash_hex))?
        {
            Some(v) => Ok(Some(super::decode(&v, "SCEP challenge")?)),
            None => Ok(None),
        }
    }

    /// Claims the challenge with this hash for a request: atomically marks
    /// an unused, unexpired challenge used by `by`. A challenge already
    /// used by the same transaction and key counts as [`ChallengeClaim::Used`]
    /// (a re-sent request), any other use is refused by the caller.
    pub fn claim_scep_challenge(
        &self,
        hash_hex: &str,
        by: ScepChallengeUse,
    ) -> Result<ChallengeClaim, LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_DEVICES);
        let Some(v) = self.db.get_pinned_cf(cf, challenge_key(hash_hex))? else {
            return Ok(ChallengeClaim::Unknown);
        };
        let mut record: ScepChallengeRecord = super::decode(&v, "SCEP challenge")?;
        drop(v);
        if record.used.is_some() {
            return Ok(ChallengeClaim::Used(record));
        }
        if record.expires_at <= by.at {
            return Ok(ChallengeClaim::Expired(record));
        }
        record.used = Some(by);
        self.db.put_cf_opt(
            cf,
            challenge_key(hash_hex),
            super::encode(&record),
            &sync_opts(),
        )?;
        Ok(ChallengeClaim::Claimed(record))
    }

    /// Remembers what a transaction was issued.
    pub fn put_scep_transaction(
        &self,
        tid_hash_hex: &str,
        tx: &ScepTransaction,
    ) -> Result<(), LedgerError> {
        self.db.put_cf_opt(
            self.cf(CF_DEVICES),
            transaction_key(tid_hash_hex),
            super::encode(tx),
            &sync_opts(),
        )?;
        Ok(())
    }

    /// What a transaction was issued, if anything.
    pub fn scep_transaction(
        &self,
        tid_hash_hex: &str,
    ) -> Result<Option<ScepTransaction>, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_DEVICES), transaction_key(tid_hash_hex))?
        {
            Some(v) => Ok(Some(super::decode(&v, "SCEP transaction")?)),
            None => Ok(None),
        }
    }

    /// How many challenges are unused and unexpired at `now`, counting at
    /// most `max` (through the expiry index, from `now` on).
    pub fn count_open_scep_challenges(&self, now: u64, max: u64) -> Result<u64, LedgerError> {
        let cf = self.cf(CF_DEVICES);
        let start = format!("scepexp/{now:016x}/");
        let mut open = 0;
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(start.as_bytes(), Direction::Forward))
        {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(b"scepexp/") else {
                break;
            };
            if open >= max {
                break;
            }
            let text = String::from_utf8_lossy(rest);
            let Some((_, hash)) = text.split_once('/') else {
                continue;
            };
            if self.scep_challenge(hash)?.is_some_and(|c| c.used.is_none()) {
                open += 1;
            }
        }
        Ok(open)
    }

    /// Deletes challenges that expired more than [`SCEP_KEEP_SECS`] before
    /// `now`; how many.
    pub fn purge_scep_challenges(&self, now: u64) -> Result<usize, LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_DEVICES);
        let cutoff = now.saturating_sub(SCEP_KEEP_SECS);
        let mut batch = WriteBatch::default();
        let mut n = 0;
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(b"scepexp/", Direction::Forward))
        {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(b"scepexp/") else {
                break;
            };
            let text = String::from_utf8_lossy(rest);
            let Some((at, hash)) = text.split_once('/') else {
                continue;
            };
            if u64::from_str_radix(at, 16).unwrap_or(u64::MAX) > cutoff {
                break;
            }
            batch.delete_cf(cf, &key);
            batch.delete_cf(cf, challenge_key(hash));
            n += 1;
        }
        if n > 0 {
            self.db.write_opt(batch, &sync_opts())?;
        }
        Ok(n)
    }
}
