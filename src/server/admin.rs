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
use crate::ra::{AdminError, CertView, RevokeResult};
use crate::revocation::Reason;
use crate::serial::Serial;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Largest admin request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest page of `GET /admin/certificates`.
pub const MAX_PAGE: usize = 1000;

/// `POST /admin/certificates`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// PEM CSR.
    pub csr: String,
    /// Profile name (default profile when absent).
    #[serde(default)]
    pub profile: Option<String>,
    /// Inventory device (serial number or UDID) to link the certificate to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// `POST /admin/revoke`: exactly one of `serial` and `device`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// Serial (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Device identifier (serial number, UDID or permanent identifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// RFC 5280 reason name (default unspecified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Answer of `POST /admin/revoke`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RevokeAnswer {
    /// One entry per certificate considered.
    pub revoked: Vec<RevokeResult>,
}

/// Answer of `GET /admin/certificates`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListAnswer {
    /// The page.
    pub certificates: Vec<CertView>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Answer of `POST /admin/ocsp/refresh`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RefreshAnswer {
    /// Certificates whose responses were re-signed.
    pub refreshed: u64,
}

/// One shard's current CRL, as `GET /admin/crl` and `custos crl show` list it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrlInfo {
    /// Shard.
    pub shard: u32,
    /// CRL Number.
    pub number: u64,
    /// thisUpdate (RFC 3339).
    pub this_update: String,
    /// nextUpdate (RFC 3339).
    pub next_update: String,
    /// Revoked entries listed.
    pub entries: u64,
    /// DER size.
    pub bytes: u64,
    /// Where it is served.
    pub url: String,
}

impl CrlInfo {
    /// The listing of a published CRL.
    pub fn new(app: &App, c: &crate::status::crl_publisher::PublishedCrl) -> CrlInfo {
        CrlInfo {
            shard: c.shard,
            number: c.number,
            this_update: crate::model::time::rfc3339(c.this_update),
            next_update: crate::model::time::rfc3339(c.next_update),
            entries: c.entries,
            bytes: c.der.len() as u64,
            url: app.ca.crl_url(c.shard),
        }
    }
}

/// Answer of `GET /admin/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusAnswer {
    /// Certificates in the ledger.
    pub certificates: u64,
    /// Revocation events so far.
    pub revocation_events: u64,
    /// Issuer id.
    pub issuer_id: String,
    /// Root SHA-256 fingerprint.
    pub root_fingerprint: String,
    /// OCSP responder certificate expiry (RFC 3339).
    pub ocsp_signer_not_after: String,
}

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
        .route("/admin/audit", get(audit_list))
        .route("/admin/audit/verify", get(audit_verify))
        .route("/admin/webhooks/outbox", get(outbox_list))
        .route("/admin/webhooks/outbox/retry", post(outbox_retry))
        .route("/admin/devices", post(device_add).get(device_list))
        .route("/admin/devices/import", post(device_import))
        .route("/admin/devices/{id}", get(device_show))
        .route("/admin/devices/{id}/status", post(device_status))
        .route("/admin/ledger/verify", post(ledger_verify))
        .route("/admin/backup", post(backup))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    Router::new()
        .merge(admin)
        .merge(super::acme::routes())
        .merge(super::webhooks::routes())
        .route("/healthz", get(super::plain::healthz))
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

async fn device_add(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Json(new): Json<crate::devices::NewDevice>,
) -> Result<(StatusCode, Json<crate::devices::Device>), ApiError> {
    let ledger = app.ledger.clone();
    let device = tokio::task::spawn_blocking(move || {
        crate::devices::ops::add(&ledger, new, build_unix_now())
    })
    .await
    .map_err(internal)?
    .map_err(|e| bad_request(e.to_string()))?;
    crate::devices::ops::audit_add(&app.authority, &actor(&headers), &device, build_unix_now());
    Ok((StatusCode::CREATED, Json(device)))
}

async fn device_import(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<crate::devices::ImportResult>, ApiError> {
    let ledger = app.ledger.clone();
    let result = tokio::task::spawn_blocking(move || {
        crate::devices::ops::import(&ledger, &body, build_unix_now())
    })
    .await
    .map_err(internal)?
    .map_err(|e| bad_request(e.to_string()))?;
    app.authority.audit(
        &actor(&headers),
        "device",
        serde_json::json!({"action": "import", "imported": result.imported, "added": result.added, "outcome": "imported"}),
        build_unix_now(),
    );
    Ok(Json(result))
}

#[derive(serde::Deserialize)]
struct AuditPage {
    after: Option<u64>,
    limit: Option<usize>,
    kind: Option<String>,
    device: Option<String>,
    serial: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
}

async fn audit_list(
    State(app): State<Arc<App>>,
    axum::extract::Query(page): axum::extract::Query<AuditPage>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let entries = app
        .ledger
        .audit_filtered(
            page.after.unwrap_or(0),
            limit,
            &crate::ledger::AuditFilter {
                kind: page.kind,
                device: page.device,
                serial: page.serial,
                since: page.since,
                until: page.until,
            },
        )
        .map_err(internal)?;
    Ok(Json(serde_json::json!({ "entries": entries })))
}

async fn audit_verify(State(app): State<Arc<App>>) -> Result<Json<serde_json::Value>, ApiError> {
    let ledger = app.ledger.clone();
    let (entries, problems) = tokio::task::spawn_blocking(move || ledger.verify_audit())
        .await
        .map_err(internal)?
        .map_err(internal)?;
    Ok(Json(
        serde_json::json!({ "entries": entries, "problems": problems }),
    ))
}

#[derive(serde::Deserialize)]
struct OutboxQuery {
    state: Option<crate::ledger::OutboxState>,
}

async fn outbox_list(
    State(app): State<Arc<App>>,
    axum::extract::Query(q): axum::extract::Query<OutboxQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = q.state.unwrap_or(crate::ledger::OutboxState::Pending);
    let entries = app.ledger.outbox(state, MAX_PAGE).map_err(internal)?;
    Ok(Json(serde_json::json!({ "entries": entries })))
}

async fn outbox_retry(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = app
        .ledger
        .retry_dead_notifications(crate::model::time::unix_now())
        .map_err(internal)?;
    app.authority.audit(
        &actor(&headers),
        "outbox.retry",
        serde_json::json!({"requeued": n, "outcome": "requeued"}),
        build_unix_now(),
    );
    Ok(Json(serde_json::json!({ "requeued": n })))
}

#[derive(serde::Deserialize)]
struct DevicePage {
    after: Option<String>,
    limit: Option<usize>,
}

async fn device_list(
    State(app): State<Arc<App>>,
    axum::extract::Query(page): axum::extract::Query<DevicePage>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let devices = app
        .ledger
        .list_devices(page.after.as_deref(), limit)
        .map_err(internal)?;
    Ok(Json(serde_json::json!({ "devices": devices })))
}

async fn device_show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<crate::devices::Device>, ApiError> {
    app.ledger
        .device(&id)
        .map_err(internal)?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {id:?}")))
}

async fn device_status(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    Json(change): Json<crate::devices::StatusChange>,
) -> Result<Json<crate::devices::Device>, ApiError> {
    let ledger = app.ledger.clone();
    let key = id.clone();
    let device = tokio::task::spawn_blocking(move || {
        ledger.set_device_status(&key, change.status, change.compliant, build_unix_now())
    })
    .await
    .map_err(internal)?
    .map_err(internal)?
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {id:?}")))?;
    tracing::info!(serial = %device.serial, status = device.status.name(), "device status changed");
    crate::devices::ops::audit_status(&app.authority, &actor(&headers), &device, build_unix_now());
    Ok(Json(device))
}

#[derive(serde::Deserialize)]
struct EabRequest {
    name: String,
}

async fn eab_create(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Json(req): Json<EabRequest>,
) -> Result<Json<crate::acme::eab::EabKey>, ApiError> {
    let secret = crate::acme::eab::EabSecret::ensure(&app.config.data_dir)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let ledger = app.ledger.clone();
    let key = tokio::task::spawn_blocking(move || {
        crate::acme::eab::create(&ledger, &secret, &req.name, build_unix_now())
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| bad_request(e.to_string()))?;
    tracing::info!(kid = %key.kid, name = %key.name, "external account binding key created");
    crate::acme::eab::audit_create(&app.authority, &actor(&headers), &key, build_unix_now());
    Ok(Json(key))
}

async fn crl_generate(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Vec<CrlInfo>>, ApiError> {
    let a = app.clone();
    let made = tokio::task::spawn_blocking(move || a.crl.generate_all(build_unix_now()))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    app.authority.audit(
        &actor(&headers),
        "crl.generate",
        serde_json::json!({"shards": made.iter().map(|c| c.shard).collect::<Vec<_>>(), "numbers": made.iter().map(|c| c.number).collect::<Vec<_>>(), "outcome": "signed"}),
        build_unix_now(),
    );
    Ok(Json(made.iter().map(|c| CrlInfo::new(&app, c)).collect()))
}

async fn ocsp_refresh(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
) -> Result<Json<RefreshAnswer>, ApiError> {
    let responder = app.responder.clone();
    let refreshed =
        tokio::task::spawn_blocking(move || responder.refresh_all(build_unix_now(), |_| {}))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError::from(AdminError::from(e)))?;
    app.authority.audit(
        &actor(&headers),
        "ocsp.refresh",
        serde_json::json!({"refreshed": refreshed, "outcome": "signed"}),
        build_unix_now(),
    );
    Ok(Json(RefreshAnswer { refreshed }))
}

async fn ledger_verify(
    State(app): State<Arc<App>>,
) -> Result<Json<crate::maintenance::verify::VerifyReport>, ApiError> {
    let a = app.clone();
    let report = tokio::task::spawn_blocking(move || {
        crate::maintenance::verify::verify(a.verify_sources(), build_unix_now(), |_| {})
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(report))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    out: std::path::PathBuf,
}

async fn backup(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Json(req): Json<BackupRequest>,
) -> Result<Json<crate::maintenance::backup::BackupManifest>, ApiError> {
    let out_text = req.out.display().to_string();
    if !req.out.is_absolute() {
        return Err(bad_request(
            "\"out\" must be an absolute path on the server's machine",
        ));
    }
    let a = app.clone();
    let manifest = tokio::task::spawn_blocking(move || {
        crate::maintenance::backup::backup(
            &a.ledger,
            &a.config.data_dir,
            &req.out,
            build_unix_now(),
        )
    })
    .await
    .map_err(internal)?
    .map_err(|e| bad_request(format!("{e:#}")))?;
    tracing::info!(certificates = manifest.certificates, "backup taken");
    app.authority.audit(
        &actor(&headers),
        "backup",
        serde_json::json!({"out": out_text, "certificates": manifest.certificates, "outcome": "written"}),
        build_unix_now(),
    );
    Ok(Json(manifest))
}
