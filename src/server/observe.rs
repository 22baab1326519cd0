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
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    obs.metrics
        .requests
        .with_label_values(&[obs.listener, &route, &method, response.status().as_str()])
        .inc();
    obs.metrics
        .latency
        .with_label_values(&[obs.listener, &route])
        .observe(elapsed);
    response
}
