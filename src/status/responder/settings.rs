//! `[ocsp]` as the responder uses it.

/// Responder settings, from `[ocsp]`.
#[derive(Clone, Debug)]
pub struct ResponderSettings {
    /// thisUpdate → nextUpdate, seconds.
    pub validity_secs: u64,
    /// Fraction of the validity after which a response is re-made.
    pub refresh_fraction: f64,
    /// thisUpdate is this many seconds in the past (clock skew).
    pub backdate_secs: u64,
    /// Sign fresh responses for nonce requests.
    pub fresh_signing: bool,
    /// Fresh signatures under way at once before `tryLater`.
    pub max_concurrent_signing: usize,
    /// Longest nonce accepted (RFC 8954: 32; RFC 9654: 128).
    pub max_nonce_len: usize,
    /// Sign with the issuing CA's key instead of the delegated responder.
    pub sign_with_issuer: bool,
    /// Threads of the signing pool (fresh responses and the re-making of
    /// missing or stale ones); one per core by default.
    pub signing_threads: usize,
}

impl Default for ResponderSettings {
    fn default() -> Self {
        ResponderSettings {
            validity_secs: 24 * 3600,
            refresh_fraction: 0.5,
            backdate_secs: 300,
            fresh_signing: true,
            max_concurrent_signing: 256,
            max_nonce_len: 32,
            sign_with_issuer: false,
            signing_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}
