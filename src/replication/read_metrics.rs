//! The responder role's metrics (`custos_responder_*`).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

/// The responder role's metrics.
pub(super) struct ReadMetrics {
    pub(super) answers: IntCounterVec,
    /// `answers` for good and revoked, resolved once (the hot path's).
    pub(super) good: IntCounter,
    pub(super) revoked: IntCounter,
    pub(super) cache_hits: IntCounter,
    pub(super) redis_errors: IntCounter,
    pub(super) redis_up: IntGauge,
    pub(super) subscribed: IntGauge,
}

impl ReadMetrics {
    pub(super) fn new(registry: &prometheus::Registry) -> ReadMetrics {
        let answers = IntCounterVec::new(
            Opts::new(
                "custos_responder_answers_total",
                "OCSP answers of this responder by outcome",
            ),
            &["status"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        let _ = registry.register(Box::new(answers.clone()));
        ReadMetrics {
            good: answers.with_label_values(&["good"]),
            revoked: answers.with_label_values(&["revoked"]),
            answers,
            cache_hits: counter(
                "custos_responder_cache_hits_total",
                "OCSP answers served from the responder's cache",
            ),
            redis_errors: counter(
                "custos_responder_redis_errors_total",
                "Redis reads that failed",
            ),
            redis_up: gauge(
                "custos_responder_redis_up",
                "1 while the last Redis read succeeded",
            ),
            subscribed: gauge(
                "custos_responder_subscribed",
                "1 while subscribed to the revocation channel",
            ),
        }
    }
}
