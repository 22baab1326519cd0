//! Prometheus metrics: one registry per process, passed as a handle (no
//! globals), exported at `/metrics` on the plain-HTTP listener.
//!
//! Metric names are part of the product's interface: dashboards and alerts
//! depend on them. Nothing here changes state outside the counters.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The process's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Certificates issued.
    pub issued: IntCounter,
    /// Certificates revoked, by reason.
    pub revoked: IntCounterVec,
    /// Certificates in the ledger (set when scraped).
    pub ledger_certificates: IntGauge,
    /// HTTP requests by listener, route, method and status.
    pub requests: IntCounterVec,
    /// HTTP request latency by listener and route.
    pub latency: HistogramVec,
    /// Open client connections by listener.
    pub connections_open: IntGaugeVec,
    /// Connections that had to wait for a slot (`http.max_connections`).
    pub connections_waited: IntCounterVec,
    /// Connections closed by a limit: `header_timeout`, `idle_timeout`,
    /// `tls_handshake_timeout`.
    pub connections_closed: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let issued = IntCounter::new("custos_certificates_issued_total", "Certificates issued")
            .expect("valid metric");
        let revoked = IntCounterVec::new(
            Opts::new(
                "custos_certificates_revoked_total",
                "Certificates revoked, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let ledger_certificates = IntGauge::new(
            "custos_ledger_certificates",
            "Certificates recorded in the ledger",
        )
        .expect("valid metric");
        let requests = IntCounterVec::new(
            Opts::new("custos_http_requests_total", "HTTP requests"),
            &["listener", "route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "custos_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["listener", "route"],
        )
        .expect("valid metric");
        let connections_open = IntGaugeVec::new(
            Opts::new("custos_http_connections_open", "Open client connections"),
            &["listener"],
        )
        .expect("valid metric");
        let connections_waited = IntCounterVec::new(
            Opts::new(
                "custos_http_connections_waited_total",
                "Connections accepted only after waiting for a slot under http.max_connections",
            ),
            &["listener"],
        )
        .expect("valid metric");
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "custos_http_connections_closed_total",
                "Connections closed by a limit (idle_timeout, tls_handshake_timeout)",
            ),
            &["listener", "limit"],
        )
        .expect("valid metric");
        for c in [
            Box::new(connections_open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connections_waited.clone()),
            Box::new(connections_closed.clone()),
            Box::new(issued.clone()),
            Box::new(revoked.clone()),
            Box::new(ledger_certificates.clone()),
            Box::new(requests.clone()),
            Box::new(latency.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            issued,
            revoked,
            ledger_certificates,
            requests,
            latency,
            connections_open,
            connections_waited,
            connections_closed,
        }
    }

    /// The registry, for modules that add their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
