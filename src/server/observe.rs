//! Request metrics middleware: counts and times every request by listener and
//! matched route (never by raw path, which would let clients create
//! unbounded label values).

use crate::support::metrics::Metrics;
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
    let method = method_label(req.method());
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    obs.metrics
        .requests
        .with_label_values(&[obs.listener, route, method, response.status().as_str()])
        .inc();
    obs.metrics
        .latency
        .with_label_values(&[obs.listener, route])
        .observe(elapsed);
    response
}

/// The method as a metric label: the standard methods by name, anything
/// else (`FOO1`, `FOO2`, … chosen by a client) as `other`, so that clients
/// cannot create series.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn client_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        let foo1 = Method::from_bytes(b"FOO1").unwrap();
        let foo2 = Method::from_bytes(b"FOO2").unwrap();
        assert_eq!(method_label(&foo1), "other");
        assert_eq!(method_label(&foo2), "other");
        assert_eq!(method_label(&Method::CONNECT), "other");
    }
}
