//! Admin handlers for the inventory, the records and upkeep: devices, EAB
//! keys, the audit log, the notification outbox.

use super::{actor, bad_request, internal, ApiError, CrlInfo, RefreshAnswer, MAX_PAGE};
use crate::app::App;
use crate::model::time::unix_now as build_unix_now;
use crate::ra::AdminError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

pub(super) async fn device_add(
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

pub(super) async fn device_import(
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
pub(super) struct AuditPage {
    after: Option<u64>,
    limit: Option<usize>,
    kind: Option<String>,
    device: Option<String>,
    serial: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
}

pub(super) async fn audit_list(
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

pub(super) async fn audit_verify(
    State(app): State<Arc<App>>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
pub(super) struct OutboxQuery {
    state: Option<crate::ledger::OutboxState>,
}

pub(super) async fn outbox_list(
    State(app): State<Arc<App>>,
    axum::extract::Query(q): axum::extract::Query<OutboxQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = q.state.unwrap_or(crate::ledger::OutboxState::Pending);
    let entries = app.ledger.outbox(state, MAX_PAGE).map_err(internal)?;
    Ok(Json(serde_json::json!({ "entries": entries })))
}

pub(super) async fn outbox_retry(
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
pub(super) struct DevicePage {
    after: Option<String>,
    limit: Option<usize>,
    enrolment: Option<crate::model::device::Enrolment>,
}

pub(super) async fn device_list(
    State(app): State<Arc<App>>,
    axum::extract::Query(page): axum::extract::Query<DevicePage>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let enrolment = page.enrolment;
    let devices = app
        .ledger
        .list_devices_where(page.after.as_deref(), limit, |d| {
            enrolment.is_none() || d.enrolment == enrolment
        })
        .map_err(internal)?;
    Ok(Json(serde_json::json!({ "devices": devices })))
}

pub(super) async fn device_show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<crate::devices::Device>, ApiError> {
    app.ledger
        .device(&id)
        .map_err(internal)?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {id:?}")))
}

pub(super) async fn device_status(
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
#[serde(deny_unknown_fields)]
pub(super) struct ScepPolicyRequest {
    scep: crate::model::device::ScepPolicy,
}

/// `POST /admin/devices/<id>/scep` `{"scep": "allow" | "deny" | "auto"}`.
pub(super) async fn device_scep(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<ScepPolicyRequest>,
) -> Result<Json<crate::devices::Device>, ApiError> {
    let ledger = app.ledger.clone();
    let key = id.clone();
    let device = tokio::task::spawn_blocking(move || {
        ledger.set_device_scep(&key, req.scep, build_unix_now())
    })
    .await
    .map_err(internal)?
    .map_err(internal)?
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {id:?}")))?;
    tracing::info!(serial = %device.serial, scep = device.scep.name(), "device SCEP policy changed");
    crate::devices::ops::audit_scep(&app.authority, &actor(&headers), &device, build_unix_now());
    Ok(Json(device))
}

#[derive(serde::Deserialize)]
pub(super) struct EabRequest {
    name: String,
}

pub(super) async fn eab_create(
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScepChallengeRequest {
    device: String,
    ttl_secs: Option<u64>,
}

/// `POST /admin/scep/challenges` `{"device": SERIAL, "ttl_secs": 3600}`:
/// a one-time SCEP challenge bound to the device, shown once.
pub(super) async fn scep_challenge(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Json(req): Json<ScepChallengeRequest>,
) -> Result<Json<crate::scep::NewChallenge>, ApiError> {
    let ttl = req.ttl_secs.unwrap_or(app.config.scep.challenge_ttl_secs);
    let ledger = app.ledger.clone();
    let made = tokio::task::spawn_blocking(move || {
        crate::scep::create_challenge(&ledger, Some(&req.device), ttl, build_unix_now())
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| bad_request(e.to_string()))?;
    tracing::info!(challenge = %made.id, device = ?made.device, "SCEP challenge created");
    crate::scep::audit_create(&app.authority, &actor(&headers), &made, build_unix_now());
    Ok(Json(made))
}

/// `GET /admin/mdm/status`: every MDM source's last sync.
pub(super) async fn mdm_status(
    State(app): State<Arc<App>>,
) -> Result<Json<Vec<crate::devices::sync::SourceStatus>>, ApiError> {
    let a = app.clone();
    let status = tokio::task::spawn_blocking(move || a.mdm_sync.status())
        .await
        .map_err(internal)?
        .map_err(internal)?;
    Ok(Json(status))
}

/// `POST /admin/mdm/<name>/sync` `{"dry_run": bool, "confirm": bool}`:
/// syncs that source now; its report.
pub(super) async fn mdm_sync(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Json(options): Json<crate::devices::sync::SyncOptions>,
) -> Result<Json<crate::devices::sync::SyncReport>, ApiError> {
    use crate::devices::sync::SyncError;
    let report = app
        .mdm_sync
        .sync(&name, options)
        .await
        .map_err(|e| match e {
            SyncError::UnknownSource(..) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            SyncError::Internal(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        })?;
    crate::devices::sync::audit(&app.authority, &actor(&headers), &name, options, &report);
    Ok(Json(report))
}

pub(super) async fn crl_generate(
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

pub(super) async fn ocsp_refresh(
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

pub(super) async fn ledger_verify(
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
pub(super) struct BackupRequest {
    out: std::path::PathBuf,
}

pub(super) async fn backup(
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

pub(super) async fn replication_resync(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(publisher) = app.replication.clone() else {
        return Err(bad_request(
            "replication is off: set [replication] redis in the server's configuration",
        ));
    };
    let unavailable = |e: crate::replication::publish::PublishError| {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    };
    let mut conn = publisher.connect().await.map_err(unavailable)?;
    let published = publisher
        .resync(&mut conn, |_| {})
        .await
        .map_err(unavailable)?;
    app.authority.audit(
        &actor(&headers),
        "replication.resync",
        serde_json::json!({"published": published, "outcome": "published"}),
        build_unix_now(),
    );
    Ok(Json(serde_json::json!({ "published": published })))
}

#[derive(serde::Deserialize)]
pub(super) struct TokenRequest {
    name: String,
}

pub(super) async fn responder_token(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: TokenRequest = super::parse_json(&body)?;
    let token = crate::replication::enroll::create_token(
        &app.ledger,
        &app.ca,
        &app.authority,
        &app.https_base(),
        &req.name,
        &actor(&headers),
        build_unix_now(),
    )
    .map_err(enroll_error)?;
    Ok(Json(serde_json::json!({ "token": token.encode() })))
}

#[derive(serde::Deserialize)]
pub(super) struct ResponderRevokeRequest {
    name: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /admin/responders/revoke`: `{"name": …, "reason": …}`.
pub(super) async fn responder_revoke(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<crate::replication::enroll::RevokedResponder>, ApiError> {
    let req: ResponderRevokeRequest = super::parse_json(&body)?;
    let reason: crate::revocation::Reason = match req.reason.as_deref() {
        None => crate::revocation::Reason::Unspecified,
        Some(r) => r.parse().map_err(|e: crate::revocation::ReasonError| {
            ApiError(StatusCode::BAD_REQUEST, e.to_string())
        })?,
    };
    let actor = actor(&headers);
    let authority = app.authority.clone();
    let done = tokio::task::spawn_blocking(move || {
        crate::replication::enroll::revoke(&authority, &req.name, reason, &actor, build_unix_now())
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(enroll_error)?;
    Ok(Json(done))
}

fn enroll_error(e: crate::replication::enroll::EnrollError) -> ApiError {
    use crate::replication::enroll::EnrollError as E;
    let status = match &e {
        E::BadName | E::Csr(_) => StatusCode::BAD_REQUEST,
        E::Refused => StatusCode::UNAUTHORIZED,
        E::Revoked(_) => StatusCode::FORBIDDEN,
        E::Unknown(_) => StatusCode::NOT_FOUND,
        E::Ledger(_) | E::Issue(_) => {
            tracing::error!(error = %crate::support::error_chain(&e), "responder enrolment failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    ApiError(status, e.to_string())
}

/// `POST /responder/enroll`: authenticated by the join or renewal secret in
/// the body, not by the admin token.
pub(super) async fn responder_enroll(
    State(app): State<Arc<App>>,
    body: axum::body::Bytes,
) -> Result<Json<crate::replication::enroll::EnrollAnswer>, ApiError> {
    let req: crate::replication::enroll::EnrollRequest = super::parse_json(&body)?;
    let answer = crate::replication::enroll::enroll(
        &app.ledger,
        &app.ca,
        &app.authority,
        app.config.ocsp.signer_validity_days,
        &req,
        build_unix_now(),
    )
    .map_err(enroll_error)?;
    Ok(Json(answer))
}
