//! The listener of a stateless responder (`custos serve --role responder`):
//! `POST /ocsp`, `GET /ocsp/…`, `GET /crl/…`, `GET /ca/…`, `/healthz` and
//! `/metrics` on plain HTTP, answered from Redis with the same bytes and
//! headers as the primary.

use super::observe::{track, Observe};
use super::{accept_loop, ConnLimits, Listener};
use crate::config::Config;
use crate::model::time::unix_now;
use crate::replication::read::RedisStatus;
use crate::support::metrics::Metrics;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custos_ocsp::get::decode_get_path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the responder's handlers share.
pub struct ResponderState {
    /// Status from Redis.
    pub status: Arc<RedisStatus>,
    /// Metrics.
    pub metrics: Metrics,
    /// `ocsp.max_age_secs`.
    pub max_age_secs: u64,
}

type Shared = State<Arc<ResponderState>>;

impl super::ocsp::Answerer for RedisStatus {
    async fn answer(&self, der: &[u8], now: u64) -> crate::status::responder::Answer {
        RedisStatus::answer(self, der, now).await
    }
    fn refuse(&self, e: custos_ocsp::OcspError) -> crate::status::responder::Answer {
        RedisStatus::refuse(self, e)
    }
}

/// Serves until `shutdown`.
pub async fn run(
    state: Arc<ResponderState>,
    config: &Config,
    http: TcpListener,
    shutdown: CancellationToken,
) {
    let limits = ConnLimits::from_config(&config.http);
    let observe = Observe {
        listener: "http",
        metrics: state.metrics.clone(),
    };
    let router = Router::new()
        .route("/ocsp", post(post_request))
        .route("/ocsp/", post(post_request))
        .route("/ocsp/{*request}", get(get_request))
        .layer(DefaultBodyLimit::max(super::ocsp::MAX_REQUEST_BYTES))
        .route("/crl/{issuer}/{file}", get(crl_file))
        .route("/ca/{file}", get(ca_file))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            std::time::Duration::from_secs(config.http.body_timeout_secs),
            super::conn::body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(observe, track))
        .with_state(state.clone());
    // OCSP on the same hot path as the primary's plain listener.
    let service = super::ocsp::PlainService::new(
        state.status.clone(),
        &state.metrics,
        state.max_age_secs,
        std::time::Duration::from_secs(config.http.body_timeout_secs),
        router,
    );
    accept_loop(
        Listener::new(&state.metrics, "http", http, None, limits),
        service,
        shutdown,
    )
    .await;
}

async fn post_request(State(s): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let answer = s.status.answer(&body, unix_now()).await;
    super::ocsp::respond(s.max_age_secs, answer, &headers)
}

async fn get_request(State(s): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let encoded = uri.path().strip_prefix("/ocsp/").unwrap_or_default();
    // Undecodable: an empty request, answered malformedRequest like any.
    let der = decode_get_path(encoded).unwrap_or_default();
    let answer = s.status.answer(&der, unix_now()).await;
    super::ocsp::respond(s.max_age_secs, answer, &headers)
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "status store unreachable; try again\n",
    )
        .into_response()
}

async fn crl_file(
    State(s): Shared,
    Path((issuer, file)): Path<(String, String)>,
    request: HeaderMap,
) -> Response {
    if issuer != s.status.issuer_id() {
        return (StatusCode::NOT_FOUND, "no such CRL issuer\n").into_response();
    }
    let (shard, pem) = match super::crl::parse_file(&file) {
        Ok(x) => x,
        Err(why) => return (StatusCode::NOT_FOUND, why).into_response(),
    };
    let crl = match s.status.crl(shard).await {
        Ok(Some(c)) => c,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such CRL shard\n").into_response(),
        Err(_) => return unavailable(),
    };
    let etag = super::crl::etag_of(&crl.der);
    let body = if pem {
        Bytes::from(crate::status::crl_publisher::pem_of(&crl.der))
    } else {
        crl.der.clone()
    };
    super::crl::serve(body, pem, crl.this_update, crl.next_update, &etag, &request)
}

async fn ca_file(State(s): Shared, Path(file): Path<String>) -> Response {
    let ctype = if file.ends_with(".pem") {
        "application/x-pem-file"
    } else {
        "application/pkix-cert"
    };
    match s.status.ca_file(&file).await {
        Ok(Some(body)) => (
            [
                (header::CONTENT_TYPE, ctype),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            body,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such CA file\n").into_response(),
        Err(_) => unavailable(),
    }
}

/// `ok`, or `degraded` while Redis or the revocation channel is down (the
/// responder still answers what it holds, so it stays 200).
async fn healthz(State(s): Shared) -> Response {
    if s.status.healthy() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::OK, "degraded\n").into_response()
    }
}

/// `ready`, or 503 while Redis or the revocation channel is down: the
/// responder then answers only what it holds, so a load balancer should
/// prefer another.
async fn readyz(State(s): Shared) -> Response {
    if s.status.healthy() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded\n").into_response()
    }
}

async fn metrics(State(s): Shared) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
