//! `POST /webhooks/<name>` on the HTTPS listener: authenticate the source
//! (`[webhooks.<name>]`), parse, record every event durably, answer, then
//! process (revocations, device status) off the request. Unknown source:
//! 404; bad credentials: 401; unreadable payload: 400; an event id reused
//! with another body: 409; only unknown event types, or only devices
//! custos does not know: 202.

use crate::app::App;
use crate::devices::events::{Delivery, Refusal, MAX_BODY_BYTES};
use crate::model::time::unix_now;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use std::collections::HashMap;
use std::sync::Arc;

/// Webhook routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/webhooks/{name}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

fn answer(status: StatusCode, v: serde_json::Value) -> Response {
    (status, Json(v)).into_response()
}

async fn receive(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    peer: Option<axum::Extension<super::PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = unix_now();
    let events = app.device_events.clone();
    let source = name.clone();
    // Authenticate, parse and record (synced writes) on the blocking pool.
    let received = tokio::task::spawn_blocking(move || {
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let delivery = Delivery {
            header: &header,
            query_token: query.get("token").map(String::as_str),
            peer: peer.map(|p| p.0 .0.ip()),
            body: &body,
            now,
        };
        events.receive(&source, &delivery)
    })
    .await
    .unwrap_or_else(|e| Err(Refusal::Internal(e.to_string())));
    let accepted = match received {
        Ok(a) => a,
        Err(r) => {
            let status = match r {
                Refusal::UnknownSource(_) => StatusCode::NOT_FOUND,
                Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
                Refusal::Conflict(_) => StatusCode::CONFLICT,
                Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::warn!(source = %name, status = status.as_u16(), reason = %r, "webhook refused");
            return answer(status, serde_json::json!({"error": r.to_string()}));
        }
    };
    for why in &accepted.ignored {
        tracing::info!(source = %name, what = %why, "webhook payload not acted on");
    }
    let new = accepted.new.len();
    if new > 0 {
        // Durable already: process after answering (a crash here is
        // finished at the next start).
        let events = app.device_events.clone();
        let recorded = accepted.new;
        tokio::task::spawn_blocking(move || events.process_new(&recorded, unix_now()));
    }
    // 202: nothing will be acted on (only unknown event types, or only
    // devices custos does not know: recorded, logged, nothing revoked).
    let status = if accepted.duplicates == 0 && new == accepted.unknown_devices {
        if accepted.unknown_devices > 0 {
            tracing::info!(source = %name, events = new, "webhook names no known device");
        }
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    answer(
        status,
        serde_json::json!({"accepted": new, "duplicates": accepted.duplicates, "unknown_devices": accepted.unknown_devices, "ignored": accepted.ignored}),
    )
}
