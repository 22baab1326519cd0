//! The bounded in-memory cache in front of the precomputed OCSP responses in
//! RocksDB: the hot path's lookup is a hash probe and a reference-count
//! increment, with no RocksDB read and no copy of the response.
//!
//! It is bounded by bytes (the responses' sizes), never by the ledger's
//! size. It must never serve a response older than the one in RocksDB: a
//! writer removes the keys it changed after its write is durable, and a
//! reader that filled the cache while any write happened takes its entry
//! back out (see [`HotCache::fill`]), so a reader racing a revocation can
//! never leave the pre-revocation response behind.

use super::Precomputed;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
struct ByBytes;

impl Weighter<Vec<u8>, Arc<Precomputed>> for ByBytes {
    fn weight(&self, key: &Vec<u8>, value: &Arc<Precomputed>) -> u64 {
        // The response plus the entry's own bookkeeping.
        (key.len() + value.der.len() + 96) as u64
    }
}

/// Responses by ledger key (`tag ‖ serial`), bounded by bytes.
pub(super) struct HotCache {
    cache: Option<Cache<Vec<u8>, Arc<Precomputed>, ByBytes>>,
    /// Bumped by every write to the precomputed responses.
    epoch: AtomicU64,
}

impl HotCache {
    /// A cache holding at most about `bytes` of responses (0: no cache).
    pub(super) fn new(bytes: usize) -> HotCache {
        let cache = (bytes > 0).then(|| {
            // Estimated item count only sizes the hash tables.
            let items = (bytes / 1024).max(16);
            Cache::with_weighter(items, bytes as u64, ByBytes)
        });
        HotCache {
            cache,
            epoch: AtomicU64::new(0),
        }
    }

    /// The cached response for `key`, if any.
    pub(super) fn get(&self, key: &[u8]) -> Option<Arc<Precomputed>> {
        self.cache.as_ref()?.get(key)
    }

    /// The epoch to pass to [`HotCache::fill`]; read it before reading RocksDB.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `value`, read from RocksDB after [`HotCache::epoch`] returned
    /// `epoch`. If any write happened since, the value may predate it and
    /// is removed again.
    pub(super) fn fill(&self, key: Vec<u8>, value: Arc<Precomputed>, epoch: u64) {
        let Some(cache) = &self.cache else { return };
        if self.epoch() != epoch {
            return;
        }
        cache.insert(key.clone(), value);
        if self.epoch() != epoch {
            cache.remove(&key[..]);
        }
    }

    /// Forgets `keys`; call after their new values are written to RocksDB.
    pub(super) fn invalidate<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(cache) = &self.cache {
            for k in keys {
                cache.remove(k);
            }
        }
    }

    /// Bytes held now.
    pub(super) fn weight(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weight())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: usize) -> Arc<Precomputed> {
        Arc::new(Precomputed {
            this_update: 1,
            next_update: 2,
            refresh_at: 1,
            etag: [0; 8],
            status: 0,
            der: vec![7; n].into(),
        })
    }

    #[test]
    fn a_fill_racing_a_write_is_not_kept() {
        let hot = HotCache::new(1 << 20);
        let before = hot.epoch();
        hot.invalidate([&b"k"[..]]);
        hot.fill(b"k".to_vec(), value(10), before);
        assert!(hot.get(b"k").is_none());
        let now = hot.epoch();
        hot.fill(b"k".to_vec(), value(10), now);
        assert!(hot.get(b"k").is_some());
        hot.invalidate([&b"k"[..]]);
        assert!(hot.get(b"k").is_none());
    }

    #[test]
    fn bounded_by_bytes() {
        let hot = HotCache::new(64 * 1024);
        for i in 0..1000u32 {
            hot.fill(i.to_be_bytes().to_vec(), value(1000), hot.epoch());
        }
        assert!(hot.weight() <= 64 * 1024, "{}", hot.weight());
        let kept = (0..1000u32)
            .filter(|i| hot.get(&i.to_be_bytes()).is_some())
            .count();
        assert!(kept > 10 && kept < 70, "{kept}");
    }
}
