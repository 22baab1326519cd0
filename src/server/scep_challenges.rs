//! Where MDMs fetch one-time SCEP challenges, each behind its own HTTP
//! Basic credentials (`[scep.ndes]`, `[scep.jamf]`), on the HTTPS listener
//! only (a challenge is a credential):
//! - `GET /certsrv/mscep_admin/`: the page Microsoft NDES serves, which
//!   Fleet and other MDMs read a challenge from ("The enrollment challenge
//!   password is: <B> … </B>", UTF-16 as IIS sends it). NDES challenges
//!   name no device: the CSR's subject must name an inventory device.
//! - `POST /scep/jamf-challenge`: Jamf Pro's SCEPChallenge webhook; the
//!   answer's body is the challenge. Bound to the device the event names
//!   (`serialNumber` or `udid`), when it names one.

use crate::app::App;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Largest Jamf webhook body read.
const MAX_EVENT: usize = 64 * 1024;

/// Routes for the HTTPS router.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/certsrv/mscep_admin/", get(ndes_page))
        .route("/certsrv/mscep_admin", get(ndes_page))
        .route("/scep/jamf-challenge", post(jamf_challenge))
}

/// 401 asking for Basic credentials.
fn unauthorized(realm: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, format!("Basic realm=\"{realm}\""))],
        "credentials required\n",
    )
        .into_response()
}

/// Checks the Basic credentials of `creds` (None: the path is off, 404).
fn authorised(
    headers: &HeaderMap,
    creds: Option<&crate::config::BasicCredentials>,
    realm: &str,
) -> Result<String, Box<Response>> {
    let Some(c) = creds else {
        return Err(Box::new(
            (StatusCode::NOT_FOUND, "not configured on this server\n").into_response(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if custos_webhooks::auth::basic(given, &c.username, &c.password) {
        Ok(c.username.clone())
    } else {
        tracing::warn!(realm, "SCEP challenge request with wrong or no credentials");
        Err(Box::new(unauthorized(realm)))
    }
}

/// Makes and audits a challenge (off the async workers).
async fn make(
    app: &Arc<App>,
    device: Option<String>,
    actor: String,
) -> Result<crate::scep::NewChallenge, Box<Response>> {
    let a = app.clone();
    let ttl = app.config.scep.challenge_ttl_secs;
    let max = u64::from(app.config.scep.max_open_challenges);
    let made = tokio::task::spawn_blocking(move || {
        let now = crate::model::time::unix_now();
        if a.ledger.count_open_scep_challenges(now, max)? >= max {
            return Ok(Err(max));
        }
        let c = crate::scep::create_challenge(&a.ledger, device.as_deref(), ttl, now)?;
        crate::scep::audit_create(&a.authority, &actor, &c, now);
        Ok::<_, anyhow::Error>(Ok(c))
    })
    .await;
    match made {
        Ok(Ok(Err(max))) => {
            tracing::warn!(
                max,
                "SCEP challenge refused: scep.max_open_challenges reached"
            );
            Err(Box::new(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("{max} challenges are open and unused (scep.max_open_challenges): use some or wait for them to expire\n"),
                )
                    .into_response(),
            ))
        }
        Ok(Ok(Ok(c))) => {
            tracing::info!(challenge = %c.id, device = ?c.device, "SCEP challenge handed to an MDM");
            Ok(c)
        }
        Ok(Err(e)) => Err(Box::new(
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response(),
        )),
        Err(_) => Err(Box::new(
            (StatusCode::INTERNAL_SERVER_ERROR, "task failed\n").into_response(),
        )),
    }
}

async fn ndes_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let user = match authorised(&headers, app.config.scep.ndes.as_ref(), "custos NDES") {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let c = match make(&app, None, format!("ndes:{user}")).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let minutes = app.config.scep.challenge_ttl_secs.div_ceil(60);
    let html = format!(
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-16\">\
         <Title>Network Device Enrollment Service</Title></Head>\
         <Body BgColor=#FFFFFF><Font ID=locPageFont Face=\"Arial\">\
         <P>You have requested a one-time challenge password for SCEP enrolment with custos.\
         <P> The enrollment challenge password is: <B> {} </B>\
         <P> This password can be used only once and will expire within {minutes} minutes.\
         <P> The certificate request must name the device (serialNumber or CN of an inventory device).\
         </Font></Body></HTML>",
        c.challenge
    );
    // UTF-16 little-endian with a byte order mark, as IIS serves NDES.
    let mut body = vec![0xFF, 0xFE];
    for unit in html.encode_utf16() {
        body.extend_from_slice(&unit.to_le_bytes());
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-16"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn jamf_challenge(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match authorised(&headers, app.config.scep.jamf.as_ref(), "custos Jamf") {
        Ok(u) => u,
        Err(r) => return *r,
    };
    if body.len() > MAX_EVENT {
        return (StatusCode::PAYLOAD_TOO_LARGE, "event too large\n").into_response();
    }
    let event: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a Jamf webhook event: {e}\n"),
            )
                .into_response()
        }
    };
    let event = &event["event"];
    let id = ["serialNumber", "udid"]
        .iter()
        .filter_map(|k| event[*k].as_str())
        .map(str::trim)
        .find(|s| !s.is_empty() && s.len() <= 128)
        .map(str::to_string);
    let c = match make(&app, id, format!("jamf:{user}")).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    (
        [
            (header::CONTENT_TYPE, "text/plain"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        c.challenge,
    )
        .into_response()
}
