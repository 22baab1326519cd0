//! `POST /webhooks/<name>` on the HTTPS listener: authenticate the source
//! (`[webhooks.<name>]`), parse, record every event durably, answer, then
//! process (revocations, device status) off the request. Unknown source:
//! 404; bad credentials: 401; unreadable payload: 400; an event id reused
//! with another body: 409; only unknown event types, or only devices
//! custos does not know: 202.

use crate::app::App;
use crate::model::time::unix_now;
use crate::webhook_events::{self, Delivery, Refusal, MAX_BODY_BYTES};
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
    let Some(source) = app.config.webhooks.get(&name).cloned() else {
        return answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": format!("no webhook source {name:?}")}),
        );
    };
    let now = unix_now();
    let refuse = |r: Refusal| {
        let status = match r {
            Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        tracing::warn!(source = %name, status = status.as_u16(), reason = %r, "webhook refused");
        answer(status, serde_json::json!({"error": r.to_string()}))
    };
    let checked = {
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
        webhook_events::authenticate(&source, &delivery)
            .and_then(|()| webhook_events::parse_delivery(&name, &source, &delivery))
    };
    let parsed = match checked {
        Ok(p) => p,
        Err(r) => return refuse(r),
    };
    let a = app.clone();
    let body_copy = body.clone();
    let accepted =
        tokio::task::spawn_blocking(move || webhook_events::accept(&a, parsed, &body_copy, now))
            .await;
    let accepted = match accepted {
        Ok(Ok(acc)) => acc,
        Ok(Err(r)) => return refuse(r),
        Err(e) => return refuse(Refusal::Internal(e.to_string())),
    };
    for why in &accepted.ignored {
        tracing::info!(source = %name, what = %why, "webhook payload not acted on");
    }
    let new = accepted.new.len();
    if new > 0 && !webhook_events::held() {
        // Durable already: process after answering (a crash here is
        // finished at the next start).
        let a = app.clone();
        let events = accepted.new;
        tokio::task::spawn_blocking(move || {
            for e in &events {
                if let Err(err) = webhook_events::process(&a, e, unix_now()) {
                    tracing::error!(event_id = %e.event_id, error = %err, "device event processing failed; retried at next start");
                }
            }
        });
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
