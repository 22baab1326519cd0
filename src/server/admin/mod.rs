//! The admin API on the HTTPS listener: JSON under `/admin/`, bearer token
//! from `<data-dir>/admin.token`, bodies capped at 64 KiB.
//!
//! A request with a wrong or missing token gets 401 before any handler runs,
//! so it can change nothing. Errors are JSON `{"error": "…"}` with a status
//! that says whose fault it was.

use super::observe::{track, Observe};
use crate::app::App;
use crate::ledger::LedgerError;
use crate::model::time::unix_now as build_unix_now;
use crate::ra::issuance::IssueError;
use crate::ra::{AdminError, CertView};
use crate::revocation::Reason;
use crate::serial::Serial;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

mod api;
mod records;
use records::*;

/// Largest admin request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest page of `GET /admin/certificates`.
pub const MAX_PAGE: usize = 1000;

pub use api::*;

/// An error answer.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let status = match &e {
            AdminError::Issue(IssueError::Csr(_) | IssueError::Refused(_)) => {
                StatusCode::BAD_REQUEST
            }
            AdminError::UnknownProfile(_) => StatusCode::BAD_REQUEST,
            AdminError::Ledger(LedgerError::NotFound(_)) | AdminError::UnknownDevice(_) => {
                StatusCode::NOT_FOUND
            }
            AdminError::Issue(IssueError::Ledger(LedgerError::NotFound(_))) => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %crate::support::error_chain(&e), "admin request failed");
        }
        ApiError(status, e.to_string())
    }
}

/// Who made an admin request, as the audit log records it: the admin
/// token, and the client's own account of itself (`x-custos-client`, sent
/// by the CLI) when it gives one.
fn actor(headers: &axum::http::HeaderMap) -> String {
    match headers
        .get("x-custos-client")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 80 && v.bytes().all(|b| b.is_ascii_graphic()))
    {
        Some(client) => format!("admin-token ({client})"),
        None => "admin-token".to_string(),
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

fn parse_serial(s: &str) -> Result<Serial, ApiError> {
    s.parse()
        .map_err(|e: crate::serial::SerialError| bad_request(e.to_string()))
}

/// The HTTPS router: admin API and health.
pub fn router(app: Arc<App>) -> Router {
    let observe = Observe {
        listener: "https",
        metrics: app.metrics.clone(),
    };
    let admin = Router::new()
        .route("/admin/certificates", post(issue).get(list))
        .route("/admin/certificates/{serial}", get(show))
        .route("/admin/revoke", post(revoke))
        .route("/admin/status", get(status))
        .route("/admin/ocsp/refresh", post(ocsp_refresh))
        .route("/admin/crl", get(crl_show))
        .route("/admin/crl/generate", post(crl_generate))
        .route("/admin/eab", post(eab_create))
        .route("/admin/scep/challenges", post(scep_challenge))
        .route("/admin/mdm/status", get(mdm_status))
        .route("/admin/mdm/{name}/sync", post(mdm_sync))
        .route("/admin/audit", get(audit_list))
        .route("/admin/audit/verify", get(audit_verify))
        .route("/admin/webhooks/outbox", get(outbox_list))
        .route("/admin/webhooks/outbox/retry", post(outbox_retry))
        .route("/admin/devices", post(device_add).get(device_list))
        .route("/admin/devices/import", post(device_import))
        .route("/admin/devices/{id}", get(device_show))
        .route("/admin/devices/{id}/status", post(device_status))
        .route("/admin/devices/{id}/scep", post(device_scep))
        .route("/admin/ledger/verify", post(ledger_verify))
        .route("/admin/backup", post(backup))
        .route("/admin/replication/resync", post(replication_resync))
        .route("/admin/responders/tokens", post(responder_token))
        .route("/admin/responders/revoke", post(responder_revoke))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    let enroll = Router::new()
        .route("/responder/enroll", post(responder_enroll))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    Router::new()
        .merge(admin)
        .merge(enroll)
        .merge(super::acme::routes())
        .merge(super::webhooks::routes())
        .merge(super::scep::routes())
        .merge(super::scep_challenges::routes())
        .merge(super::console::routes())
        .route("/healthz", get(super::plain::healthz))
        .route("/readyz", get(super::plain::readyz))
        .layer(axum::middleware::from_fn_with_state(
            std::time::Duration::from_secs(app.config.http.body_timeout_secs),
            super::conn::body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::time::Duration::from_secs(app.config.http.body_timeout_secs),
            super::conn::h2_body_first,
        ))
        .layer(axum::middleware::from_fn_with_state(observe, track))
        .with_state(app)
}

async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if app.admin_token.matches(t) => next.run(req).await,
        _ => {
            let mut resp = ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong admin token (Authorization: Bearer <admin.token>)".into(),
            )
            .into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            resp
        }
    }
}

async fn issue(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: IssueBody = parse_json(&body)?;
    let who = actor(&headers);
    let authority = app.authority.clone();
    let now = build_unix_now();
    let issued = tokio::task::spawn_blocking(move || {
        authority.issue_csr_for_device(
            req.csr.as_bytes(),
            req.profile.as_deref(),
            req.device.as_deref(),
            &who,
            now,
        )
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let view = CertView::new(&issued.record, now, Some(&issued.der));
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(app): State<Arc<App>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListAnswer>, ApiError> {
    let after = q.after.as_deref().map(parse_serial).transpose()?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let certificates = app
        .authority
        .list(after.as_ref(), limit, build_unix_now())?;
    let next = (certificates.len() == limit)
        .then(|| certificates.last().map(|c| c.serial.clone()))
        .flatten();
    Ok(Json(ListAnswer { certificates, next }))
}

async fn show(
    State(app): State<Arc<App>>,
    Path(serial): Path<String>,
) -> Result<Json<CertView>, ApiError> {
    let serial = parse_serial(&serial)?;
    Ok(Json(app.authority.show(&serial, build_unix_now())?))
}

async fn revoke(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<RevokeAnswer>, ApiError> {
    let req: RevokeBody = parse_json(&body)?;
    let who = actor(&headers);
    let reason: Reason = match req.reason.as_deref() {
        None => Reason::Unspecified,
        Some(r) => r
            .parse()
            .map_err(|e: crate::revocation::ReasonError| bad_request(e.to_string()))?,
    };
    let target = match (req.serial, req.device) {
        (Some(s), None) => Ok(parse_serial(&s)?),
        (None, Some(d)) if !d.trim().is_empty() => Err(d),
        _ => return Err(bad_request("give exactly one of \"serial\" and \"device\"")),
    };
    let authority = app.authority.clone();
    let now = build_unix_now();
    // RocksDB's synced write blocks: keep it off the async workers.
    let revoked = tokio::task::spawn_blocking(move || match target {
        Ok(serial) => authority
            .revoke_serial(&serial, reason, Some(&who), now)
            .map(|r| vec![r]),
        Err(device) => authority.revoke_device(&device, reason, Some(&who), now),
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(RevokeAnswer { revoked }))
}

async fn status(State(app): State<Arc<App>>) -> Result<Json<StatusAnswer>, ApiError> {
    let ledger_err = |e: LedgerError| ApiError::from(AdminError::from(e));
    Ok(Json(StatusAnswer {
        certificates: app.ledger.count().map_err(ledger_err)?,
        revocation_events: app.ledger.next_revocation_seq().map_err(ledger_err)?,
        issuer_id: app.ca.issuer_id().to_string(),
        root_fingerprint: app.ca.root_fingerprint(),
        ocsp_signer_not_after: crate::model::time::rfc3339(app.ca.ocsp_signer().not_after),
    }))
}

async fn crl_show(State(app): State<Arc<App>>) -> Json<Vec<CrlInfo>> {
    Json(
        (0..app.crl.shard_count())
            .filter_map(|s| app.crl.current(s))
            .map(|c| CrlInfo::new(&app, &c))
            .collect(),
    )
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}
