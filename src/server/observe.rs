//! Request metrics middleware: counts and times every request by listener and
//! matched route (never by raw path, which would let clients create
//! unbounded label values).

use crate::metrics::Metrics;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// State for [`track`]: which listener and the metrics handle.
#[derive(Clone, Debug)]
pub struct Observe {
    /// `http` or `https`.
    pub listener: &'static str,
    /// Metrics.
    pub metrics: Metrics,
}

/// Axum middleware recording `custos_http_requests_total` and latency.
pub async fn track(State(obs): State<Observe>, req: Request, next: Next) -> Response {
    // MatchedPath is an Arc<str>: cloning it does not copy the string.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    obs.metrics
        .requests
        .with_label_values(&[
            obs.listener,
            route,
            method.as_str(),
            response.status().as_str(),
        ])
        .inc();
    obs.metrics
        .latency
        .with_label_values(&[obs.listener, route])
        .observe(elapsed);
    response
}
