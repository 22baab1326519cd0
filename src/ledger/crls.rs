//! The ledger's side of CRL publishing: the revoked-by-shard index the CRL
//! builder streams, the persisted CRL Number, the shard count ever used, and
//! the current signed CRL of each shard (so CRLs survive a restart).
//!
//! Nothing here builds or signs a CRL; that is `custos-crl`, driven by
//! `crate::status::crl_publisher`.

use super::{
    sync_opts, u64_value, CertRecord, Ledger, LedgerError, Revocation, CF_CRLS, CF_META,
    CF_REVOKED_BY_SHARD,
};
use crate::revocation::Reason;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

const META_NEXT_CRL_NUMBER: &[u8] = b"next_crl_number";
const META_CRL_SHARDS: &[u8] = b"crl_shards";
const ENTRY_LEN: usize = 25;

/// One revoked certificate as the CRL needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The revocation.
    pub revocation: Revocation,
    /// The certificate's notAfter (Unix seconds): it leaves the CRL some
    /// time after this.
    pub not_after: u64,
}

impl RevokedEntry {
    /// Index value: time, reason, seq, notAfter (fixed 25 bytes).
    pub(super) fn encode(record: &CertRecord, revocation: &Revocation) -> Vec<u8> {
        let mut v = Vec::with_capacity(ENTRY_LEN);
        v.extend_from_slice(&revocation.time.to_be_bytes());
        v.push(revocation.reason.code());
        v.extend_from_slice(&revocation.seq.to_be_bytes());
        v.extend_from_slice(&record.not_after.to_be_bytes());
        v
    }

    fn decode(bytes: &[u8]) -> Result<RevokedEntry, LedgerError> {
        if bytes.len() != ENTRY_LEN {
            // Written before notAfter was indexed: JSON, kept until expiry.
            let revocation: Revocation = super::decode(bytes, "revocation")?;
            return Ok(RevokedEntry {
                revocation,
                not_after: u64::MAX,
            });
        }
        let word = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let reason = Reason::from_code(bytes[8])
            .map_err(|e| LedgerError::Corrupt(format!("revocation reason: {e}")))?;
        Ok(RevokedEntry {
            revocation: Revocation {
                time: word(0),
                reason,
                seq: word(9),
            },
            not_after: word(17),
        })
    }
}

/// A signed CRL as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCrl {
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
    /// The ledger's next revocation sequence number when it was built:
    /// every revocation before it is included.
    pub covers_seq: u64,
    /// DER size.
    pub bytes: u64,
    /// The DER CertificateList (stored in chunks beside the metadata).
    #[serde(skip)]
    pub der: Vec<u8>,
}

/// Key of a shard's metadata: `shard ‖ 0`.
fn meta_key(shard: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[..4].copy_from_slice(&shard.to_be_bytes());
    k
}

/// Key of one chunk of a shard's DER: `shard ‖ 1 ‖ number ‖ chunk`.
fn chunk_key(shard: u32, number: u64, chunk: u32) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..4].copy_from_slice(&shard.to_be_bytes());
    k[4] = 1;
    k[5..13].copy_from_slice(&number.to_be_bytes());
    k[13..].copy_from_slice(&chunk.to_be_bytes());
    k
}

/// The DER is stored in chunks of this size (values stay reasonable for
/// RocksDB's blocks and reads).
const CHUNK: usize = 1 << 20;

impl Ledger {
    /// Calls `f` with the serial bytes and entry of every revoked
    /// certificate in `shard`, in serial order, streaming from the index
    /// (nothing is collected in memory).
    pub fn for_each_revoked_in_shard(
        &self,
        shard: u32,
        mut f: impl FnMut(&[u8], RevokedEntry) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let prefix = shard.to_be_bytes();
        let mut opts = ReadOptions::default();
        // A one-off scan: do not push the hot OCSP blocks out of the cache.
        opts.fill_cache(false);
        if let Some(next) = shard.checked_add(1) {
            opts.set_iterate_upper_bound(next.to_be_bytes().to_vec());
        }
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_REVOKED_BY_SHARD),
            opts,
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            let Some(serial) = key.strip_prefix(&prefix[..]) else {
                break;
            };
            f(serial, RevokedEntry::decode(&value)?)?;
        }
        Ok(())
    }

    /// Takes the next CRL Number, durably: a number is never handed out
    /// twice, even across a crash or restart.
    pub fn take_crl_number(&self) -> Result<u64, LedgerError> {
        let _guard = self.lock();
        let meta = self.cf(CF_META);
        // CRL Numbers start at 1.
        let next = u64_value(self.db.get_cf(meta, META_NEXT_CRL_NUMBER)?)?.max(1);
        self.db.put_cf_opt(
            meta,
            META_NEXT_CRL_NUMBER,
            (next + 1).to_be_bytes(),
            &sync_opts(),
        )?;
        Ok(next)
    }

    /// Records that `shards` shards are in use and returns the most ever
    /// used: lowering the setting later must not orphan the certificates
    /// that name a higher shard in their CDP.
    pub fn note_crl_shards(&self, shards: u32) -> Result<u32, LedgerError> {
        let _guard = self.lock();
        let meta = self.cf(CF_META);
        let known = u64_value(self.db.get_cf(meta, META_CRL_SHARDS)?)? as u32;
        let most = known.max(shards).max(1);
        if most != known {
            self.db.put_cf_opt(
                meta,
                META_CRL_SHARDS,
                (most as u64).to_be_bytes(),
                &sync_opts(),
            )?;
        }
        Ok(most)
    }

    /// Stores a shard's current CRL (synced: it is what we serve).
    ///
    /// The chunks go under the CRL's own number, and only the final synced
    /// batch (metadata, and removal of older numbers' chunks) makes them
    /// current: a crash half-way leaves the previous CRL in place.
    pub fn store_crl(&self, crl: &StoredCrl) -> Result<(), LedgerError> {
        let cf = self.cf(CF_CRLS);
        self.ingest_chunks(crl)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, meta_key(crl.shard), super::encode(crl));
        batch.delete_range_cf(
            cf,
            chunk_key(crl.shard, 0, 0),
            chunk_key(crl.shard, crl.number, 0),
        );
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// Writes the DER's chunks into an SST file beside the database and
    /// ingests it: the bytes go to disk as they are written and never sit
    /// in a memtable, so storing a CRL costs no second copy of it in memory.
    fn ingest_chunks(&self, crl: &StoredCrl) -> Result<(), LedgerError> {
        let file = self
            .path
            .join(format!("crl-ingest-{}-{}.sst", crl.shard, crl.number));
        let result = (|| {
            let opts = rocksdb::Options::default();
            let mut writer = rocksdb::SstFileWriter::create(&opts);
            writer.open(&file)?;
            for (i, chunk) in crl.der.chunks(CHUNK).enumerate() {
                writer.put(chunk_key(crl.shard, crl.number, i as u32), chunk)?;
            }
            writer.finish()?;
            let mut ingest = rocksdb::IngestExternalFileOptions::default();
            ingest.set_move_files(true);
            self.db
                .ingest_external_file_cf_opts(self.cf(CF_CRLS), &ingest, vec![&file])
        })();
        // Moved on success; left behind only on failure.
        let _ = std::fs::remove_file(&file);
        result.map_err(LedgerError::from)
    }

    /// A shard's current CRL.
    pub fn get_crl(&self, shard: u32) -> Result<Option<StoredCrl>, LedgerError> {
        let cf = self.cf(CF_CRLS);
        let Some(meta) = self.db.get_pinned_cf(cf, meta_key(shard))? else {
            return Ok(None);
        };
        let mut crl: StoredCrl = super::decode(&meta, "stored CRL")?;
        let mut der = Vec::with_capacity(crl.bytes as usize);
        let start = chunk_key(shard, crl.number, 0);
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item?;
            if key.len() != start.len() || key[..13] != start[..13] {
                break;
            }
            der.extend_from_slice(&value);
        }
        if der.len() as u64 != crl.bytes {
            return Err(LedgerError::Corrupt(format!(
                "CRL of shard {shard}: {} of {} bytes stored",
                der.len(),
                crl.bytes
            )));
        }
        crl.der = der;
        Ok(Some(crl))
    }
}
