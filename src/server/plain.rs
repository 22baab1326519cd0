//! Routes of the plain-HTTP listener: health, metrics and the CA's
//! certificates (the AIA caIssuers URL points here). OCSP and CRL routes join
//! this router in their own modules.

use super::observe::{track, Observe};
use crate::app::App;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The plain listener's service: the OCSP hot path in front of [`router`].
pub fn service(app: Arc<App>) -> super::ocsp::PlainService<App> {
    super::ocsp::PlainService::new(
        app.clone(),
        &app.metrics,
        app.config.ocsp.max_age_secs,
        std::time::Duration::from_secs(app.config.http.body_timeout_secs),
        router(app.clone()),
    )
}

/// The plain-HTTP router.
pub fn router(app: Arc<App>) -> Router {
    let observe = Observe {
        listener: "http",
        metrics: app.metrics.clone(),
    };
    // SCEP protects its messages itself; some clients and MDMs only speak
    // http:// to it.
    let scep = if app.config.scep.listen_plain {
        super::scep::routes()
    } else {
        Router::new()
    };
    Router::new()
        .merge(scep)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/ca/{file}", get(ca_file))
        .merge(super::ocsp::routes())
        .merge(super::crl::routes())
        .layer(axum::middleware::from_fn_with_state(
            std::time::Duration::from_secs(app.config.http.body_timeout_secs),
            super::conn::body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(observe, track))
        .with_state(app)
}

/// Liveness: answers once the ledger is readable.
pub async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.ledger.count() {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: ledger unreadable");
            (StatusCode::SERVICE_UNAVAILABLE, "ledger unavailable\n").into_response()
        }
    }
}

/// Readiness: 503 while the start-up catch-up runs or a CRL shard is held
/// (its CRL would make a client wait), else `ready`. Status answers are
/// right either way; this tells a load balancer where they are quick.
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let held = app.crl.held_count();
    let catching_up = app.catching_up.load(std::sync::atomic::Ordering::SeqCst);
    if app.ledger.count().is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "ledger unavailable\n").into_response();
    }
    if catching_up || held > 0 {
        let text = format!(
            "catching up: {held} CRL shard{} held{}\n",
            if held == 1 { "" } else { "s" },
            if catching_up {
                ", start-up CRL and OCSP work running"
            } else {
                ""
            }
        );
        return (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    if let Ok(n) = app.ledger.count() {
        app.metrics.ledger_certificates.set(n as i64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

async fn ca_file(State(app): State<Arc<App>>, Path(file): Path<String>) -> Response {
    const DER: &str = "application/pkix-cert";
    const PEM: &str = "application/x-pem-file";
    let issuer_file = format!("{}.crt", app.ca.issuer_id());
    let (ctype, body): (&str, Vec<u8>) = if file == issuer_file {
        (DER, app.ca.issuer_der().to_vec())
    } else if file == "root.crt" {
        (DER, app.ca.root_der().to_vec())
    } else if file == "root.pem" {
        (PEM, crate::ca::to_pem(app.ca.root_der()).into_bytes())
    } else if file == "chain.pem" {
        match app.ca.chain_pem() {
            Ok(p) => (PEM, p.into_bytes()),
            Err(e) => {
                tracing::error!(error = %e, "cannot read chain");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
    } else {
        return (StatusCode::NOT_FOUND, "no such CA file\n").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
