//! The responder's Prometheus series.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub(super) struct OcspMetrics {
    pub(super) answers: IntCounterVec,
    /// `answers` for good and revoked, resolved once for the hot path.
    pub(super) good: IntCounter,
    pub(super) revoked: IntCounter,
    pub(super) precomputed_hits: IntCounter,
    pub(super) fresh_signings: IntCounter,
    pub(super) shed: IntCounter,
    pub(super) oldest_age: IntGauge,
    pub(super) backlog: IntGauge,
}

impl OcspMetrics {
    pub(super) fn new(registry: &Registry) -> OcspMetrics {
        let answers = IntCounterVec::new(
            Opts::new("custos_ocsp_responses_total", "OCSP answers by status"),
            &["status"],
        )
        .expect("valid metric");
        let m = OcspMetrics {
            good: answers.with_label_values(&["good"]),
            revoked: answers.with_label_values(&["revoked"]),
            answers,
            precomputed_hits: IntCounter::new(
                "custos_ocsp_precomputed_hits_total",
                "OCSP answers served from precomputed responses",
            )
            .expect("valid metric"),
            fresh_signings: IntCounter::new(
                "custos_ocsp_fresh_signatures_total",
                "OCSP responses signed on request (nonce or several CertIDs)",
            )
            .expect("valid metric"),
            shed: IntCounter::new("custos_ocsp_shed_total", "OCSP requests answered tryLater")
                .expect("valid metric"),
            oldest_age: IntGauge::new(
                "custos_ocsp_oldest_precomputed_age_seconds",
                "Age of the oldest precomputed response",
            )
            .expect("valid metric"),
            backlog: IntGauge::new(
                "custos_ocsp_refresh_backlog",
                "Precomputed responses past their refresh time",
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(m.answers.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.precomputed_hits.clone()),
            Box::new(m.fresh_signings.clone()),
            Box::new(m.shed.clone()),
            Box::new(m.oldest_age.clone()),
            Box::new(m.backlog.clone()),
        ] {
            // Registering twice (a second responder in one process, as in
            // tests) is harmless: the first registration keeps counting.
            let _ = registry.register(c);
        }
        m
    }
}
