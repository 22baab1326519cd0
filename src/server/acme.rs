//! HTTP front of the ACME server (`/acme/...` on the HTTPS listener): turns
//! an HTTP request into a [`custos_acme::server::Request`] and the engine's
//! answer into headers (`Replay-Nonce`, `Link`, `Location`, `Retry-After`).
//!
//! The base URL is `public_https_url` when configured, else the scheme and
//! the request's authority (`Host`, or the HTTP/2 `:authority`), so a JWS
//! `url` is compared with what the client actually asked.

use crate::app::App;
use crate::model::time::unix_now;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use custos_acme::server::{Request, MAX_BODY_BYTES};
use std::sync::Arc;

/// ACME routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/acme/{*resource}", any(acme))
        .layer(DefaultBodyLimit::disable())
}

fn base_url(app: &App, uri: &Uri, headers: &HeaderMap) -> String {
    if let Some(url) = &app.config.public_https_url {
        return url.trim_end_matches('/').to_string();
    }
    // HTTP/2 carries the authority in the URI, HTTP/1.1 in Host.
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("localhost");
    format!("https://{host}")
}

async fn acme(
    State(app): State<Arc<App>>,
    peer: Option<axum::Extension<super::PeerAddr>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use http_body_util::BodyExt;
    // Read at most one byte past the limit: the engine refuses oversized
    // bodies with a problem document (and a fresh nonce), not a bare 413.
    let body = match http_body_util::Limited::new(body, MAX_BODY_BYTES + 1)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => axum::body::Bytes::from(vec![0u8; MAX_BODY_BYTES + 1]),
    };
    let base = base_url(&app, &uri, &headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = uri.path().to_owned();
    let method_name = method.as_str().to_owned();
    // Storage writes are synced: keep them off the async workers.
    let engine = app.clone();
    let answer = tokio::task::spawn_blocking(move || {
        engine.acme.handle(&Request {
            method: &method_name,
            base: &base,
            path: &path,
            content_type: content_type.as_deref(),
            body: &body,
            now: unix_now(),
            client_ip: peer.map(|p| p.0 .0.ip()),
        })
    })
    .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "ACME handler failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut out = HeaderMap::new();
    let mut put = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.append(name, v);
        }
    };
    put(
        header::HeaderName::from_static("replay-nonce"),
        &answer.nonce,
    );
    for link in &answer.links {
        put(header::LINK, link);
    }
    if let Some(l) = &answer.location {
        put(header::LOCATION, l);
    }
    if let Some(s) = answer.retry_after {
        put(header::RETRY_AFTER, &s.to_string());
    }
    put(
        header::CACHE_CONTROL,
        answer.cache_control.unwrap_or("no-store"),
    );
    if !answer.content_type.is_empty() {
        put(header::CONTENT_TYPE, answer.content_type);
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, out, answer.body).into_response()
}
