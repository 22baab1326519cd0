//! Stored OCSP status: the precomputed responses of every certificate
//! (`ocsp` column family, fronted by the hot cache) and their refresh
//! schedule (`ocsp_due`). A write is conditional on the revocation state it
//! was signed from, so a refresh can never undo a revocation.

use super::*;

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

impl Ledger {
    pub(super) fn put_precomputed(
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
        self.log_replication(batch, serial);
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

    /// [`Ledger::store_precomputed`] for many certificates in one write
    /// (a refresh's page): each set is stored only if its record's
    /// revocation state is still the one it was signed from. Returns how
    /// many were stored.
    pub fn store_precomputed_many(
        &self,
        items: &[(CertRecord, PrecomputedSet)],
    ) -> Result<usize, LedgerError> {
        let _guard = self.lock();
        let mut batch = WriteBatch::default();
        let mut stored = Vec::with_capacity(items.len());
        for (made_from, set) in items {
            let serial = &made_from.serial;
            match self.get(serial)? {
                Some(rec) if rec.revocation == made_from.revocation => {}
                _ => continue,
            }
            self.put_precomputed(&mut batch, serial, set)?;
            stored.push((serial, set));
        }
        self.db.write(batch)?;
        for (serial, set) in &stored {
            self.invalidate_hot(serial, set.responses.iter().map(|(t, _)| *t));
        }
        Ok(stored.len())
    }

    pub(super) fn invalidate_hot(&self, serial: &Serial, tags: impl Iterator<Item = u8>) {
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

    /// A precomputed response as stored, never from the hot cache: the
    /// replication publisher reads a certificate right after its log entry
    /// became visible, which is before the writer has dropped the cached
    /// copy it replaced.
    pub fn get_precomputed_stored(
        &self,
        tag: u8,
        serial: &Serial,
    ) -> Result<Option<Precomputed>, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_OCSP), ocsp_key(tag, serial))?
        {
            None => Ok(None),
            Some(bytes) => Ok(Some(Precomputed::decode(&bytes)?)),
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
}
