//! Anti-replay nonces (RFC 8555 §6.5): each one issued once, accepted once.
//!
//! Bounded: past `capacity` outstanding nonces the oldest are forgotten, and
//! a client presenting one gets `badNonce` with a fresh nonce, which every
//! ACME client retries. Nonces do not survive a restart, for the same reason.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

const NONCE_BYTES: usize = 16;

/// Outstanding nonces.
#[derive(Debug)]
pub struct NonceStore {
    rng: SystemRandom,
    capacity: usize,
    inner: Mutex<Outstanding>,
}

#[derive(Debug, Default)]
struct Outstanding {
    live: HashSet<[u8; NONCE_BYTES]>,
    order: VecDeque<[u8; NONCE_BYTES]>,
}

impl NonceStore {
    /// A store remembering at most `capacity` outstanding nonces.
    pub fn new(capacity: usize) -> NonceStore {
        NonceStore {
            rng: SystemRandom::new(),
            capacity: capacity.max(1),
            inner: Mutex::new(Outstanding::default()),
        }
    }

    /// A fresh nonce for a `Replay-Nonce` header.
    pub fn issue(&self) -> String {
        let mut raw = [0u8; NONCE_BYTES];
        // The system RNG does not fail on supported platforms; a zero nonce
        // would only be refused later, never accepted twice.
        let _ = self.rng.fill(&mut raw);
        let mut o = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while o.order.len() >= self.capacity {
            if let Some(old) = o.order.pop_front() {
                o.live.remove(&old);
            }
        }
        o.live.insert(raw);
        o.order.push_back(raw);
        crate::jws::b64u(&raw)
    }

    /// Uses up `nonce`: true the first time for a nonce we issued and
    /// still remember, false otherwise.
    pub fn redeem(&self, nonce: &str) -> bool {
        let Ok(bytes) = crate::jws::b64u_decode(nonce, "nonce") else {
            return false;
        };
        let Ok(raw) = <[u8; NONCE_BYTES]>::try_from(bytes.as_slice()) else {
            return false;
        };
        let mut o = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        o.live.remove(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_single_use_and_bounded() {
        let store = NonceStore::new(3);
        let a = store.issue();
        assert!(store.redeem(&a));
        assert!(!store.redeem(&a), "replayed");
        assert!(!store.redeem("not-a-nonce"));
        let first = store.issue();
        for _ in 0..3 {
            store.issue();
        }
        assert!(!store.redeem(&first), "evicted past capacity");
        assert_ne!(store.issue(), store.issue());
    }
}
