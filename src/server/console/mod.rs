//! The operator console, `/console/` on the HTTPS listener: sign in with
//! the admin token or a named operator account (`custos console user
//! add`), then look at the overview, devices, certificates and the audit
//! log, and (operators, not viewers) revoke.
//!
//! Sessions live in this process (a restart signs everyone out): a random
//! id in a cookie that is HttpOnly, Secure and SameSite=Strict, scoped to
//! `/console`, idle for at most 8 hours; every change is a POST carrying
//! the session's CSRF token, and is audited with the operator's name. The
//! pages are server-rendered HTML with inline styles and no external
//! asset (Content-Security-Policy `default-src 'none'`); one small script
//! of our own (`/console/console.js`) asks before a revocation is sent and
//! refreshes the overview, and every page works without it.

mod overview;
mod pages;
mod signin;

use crate::app::App;
use crate::support::console_users::Role;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const COOKIE: &str = "custos_console";
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// Most sessions kept (the oldest go first).
const MAX_SESSIONS: usize = 10_000;

/// A signed-in operator.
#[derive(Clone, Debug)]
pub struct Session {
    /// Name in the audit log (`console:<name>`).
    pub operator: String,
    /// What they may do.
    pub role: Role,
    /// The token every change must carry.
    pub csrf: String,
    seen: Instant,
}

fn sessions() -> &'static Mutex<HashMap<String, Session>> {
    static S: OnceLock<Mutex<HashMap<String, Session>>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(HashMap::new()))
}

fn random_token() -> String {
    let mut raw = [0u8; 24];
    let _ = aws_lc_rs::rand::fill(&mut raw);
    hex::encode(raw)
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

/// The session a request carries, refreshed; `None` when signed out.
fn session(headers: &HeaderMap) -> Option<Session> {
    let id = cookie_value(headers)?;
    let mut all = sessions().lock().unwrap_or_else(|e| e.into_inner());
    let s = all.get_mut(&id)?;
    if s.seen.elapsed() > IDLE {
        all.remove(&id);
        return None;
    }
    s.seen = Instant::now();
    Some(s.clone())
}

/// Headers of every console page: no caching, no framing, no script but
/// our own.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// The console's one script, progressive: every page works without it.
/// It asks before a form marked `data-confirm` is sent, and reloads a page
/// holding `data-refresh` (seconds) while it is visible and nothing is
/// being typed.
const SCRIPT: &str = r#"'use strict';
document.addEventListener('submit', (e) => {
  const msg = e.target.getAttribute('data-confirm');
  if (msg && !window.confirm(msg)) e.preventDefault();
});
const r = document.querySelector('[data-refresh]');
if (r) {
  const secs = Math.max(15, Number(r.getAttribute('data-refresh')) || 60);
  setInterval(() => {
    const a = document.activeElement;
    if (!document.hidden && !(a && (a.tagName === 'INPUT' || a.tagName === 'SELECT'))) location.reload();
  }, secs * 1000);
}
"#;

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT,
    )
        .into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Routes for the HTTPS router.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/console", get(|| async { redirect("/console/") }))
        .route("/console/", get(overview))
        .route("/console/console.js", get(script))
        .route(
            "/console/login",
            get(signin::login_page).post(signin::login),
        )
        .route("/console/logout", post(logout))
        .route("/console/devices", get(devices))
        .route("/console/devices/{id}", get(device))
        .route("/console/devices/{id}/revoke", post(revoke_device))
        .route("/console/devices/{id}/status", post(device_status))
        .route("/console/certificates/{serial}", get(certificate))
        .route("/console/certificates/{serial}/pem", get(certificate_pem))
        .route(
            "/console/certificates/{serial}/revoke",
            post(revoke_certificate),
        )
        .route("/console/audit", get(audit))
        .route("/console/acme", get(acme))
        .route("/console/acme/eab", post(acme_eab))
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    confirm: Option<String>,
}

/// The session of a change: signed in, with the right CSRF token, and an
/// operator; else the answer to send.
fn change_session(headers: &HeaderMap, csrf: &str) -> Result<Session, Box<Response>> {
    let Some(s) = session(headers) else {
        return Err(Box::new(redirect("/console/login")));
    };
    let ok = aws_lc_rs::constant_time::verify_slices_are_equal(s.csrf.as_bytes(), csrf.as_bytes())
        .is_ok();
    if !ok {
        return Err(Box::new(html(
            StatusCode::FORBIDDEN,
            pages::message(
                &s,
                "Refused",
                "The form's CSRF token is missing or wrong; reload the page and try again.",
            ),
        )));
    }
    if s.role != Role::Operator {
        return Err(Box::new(html(
            StatusCode::FORBIDDEN,
            pages::message(
                &s,
                "Refused",
                "Viewers cannot change anything; ask an operator.",
            ),
        )));
    }
    Ok(s)
}

async fn logout(headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let (Some(id), Some(s)) = (cookie_value(&headers), session(&headers)) {
        if s.csrf == form.csrf {
            sessions()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
    let mut r = redirect("/console/login");
    let gone = format!("{COOKIE}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Renders a page off the async workers: 200, 404 for `None`, 500 (the
/// error logged) for a failure.
async fn render(
    what: &'static str,
    make: impl FnOnce() -> anyhow::Result<Option<String>> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(make).await {
        Ok(Ok(Some(body))) => html(StatusCode::OK, body),
        Ok(Ok(None)) => html(StatusCode::NOT_FOUND, format!("no such {what}")),
        Ok(Err(e)) => {
            tracing::error!(page = what, error = %e, "console page failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the {what} page failed; see the server log"),
            )
        }
        Err(_) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the {what} page failed"),
        ),
    }
}

macro_rules! signed_in {
    ($headers:expr) => {
        match session(&$headers) {
            Some(s) => s,
            None => return redirect("/console/login"),
        }
    };
}

async fn overview(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = signed_in!(headers);
    render("overview", move || overview::overview(&app, &s).map(Some)).await
}

#[derive(serde::Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn devices(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Search>,
) -> Response {
    let s = signed_in!(headers);
    render("device list", move || {
        pages::devices(&app, &s, q.q.trim()).map(Some)
    })
    .await
}

async fn device(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = signed_in!(headers);
    render("device", move || pages::device(&app, &s, &id)).await
}

async fn certificate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Response {
    let s = signed_in!(headers);
    render("certificate", move || pages::certificate(&app, &s, &serial)).await
}

#[derive(serde::Deserialize)]
struct PemQuery {
    #[serde(default)]
    chain: bool,
}

async fn certificate_pem(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(serial): Path<String>,
    Query(q): Query<PemQuery>,
) -> Response {
    let _s = signed_in!(headers);
    let Ok(serial) = serial.parse::<crate::serial::Serial>() else {
        return (StatusCode::BAD_REQUEST, "not a serial").into_response();
    };
    match app.ledger.get_der(&serial) {
        Ok(Some(der)) => (
            [
                (header::CONTENT_TYPE, "application/x-pem-file".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.pem\"", serial.to_hex()),
                ),
            ],
            if q.chain {
                crate::ca::to_pem(&der) + &app.ca.chain_pem().unwrap_or_default()
            } else {
                crate::ca::to_pem(&der)
            },
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "no such certificate").into_response(),
    }
}

fn reason_of(form: &CsrfForm) -> Result<crate::revocation::Reason, String> {
    form.reason
        .as_deref()
        .unwrap_or("unspecified")
        .parse::<crate::revocation::Reason>()
        .map_err(|e| e.to_string())
}

async fn revoke_device(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let s = match change_session(&headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if form.confirm.as_deref() != Some(id.as_str()) {
        return not_revoked(
            &s,
            "Type the device's serial in the confirmation box to revoke all its certificates.",
        );
    }
    let reason = match reason_of(&form) {
        Ok(r) => r,
        Err(e) => return not_revoked(&s, &e),
    };
    let (actor, a) = (format!("console:{}", s.operator), app.clone());
    let done = run_change(&s, "Not revoked", StatusCode::BAD_REQUEST, move || {
        a.authority
            .revoke_device(&id, reason, Some(&actor), crate::model::time::unix_now())
            .map(|r| (id, r))
    })
    .await;
    match done {
        Ok((id, results)) => redirect(&format!("/console/devices/{id}?revoked={}", results.len())),
        Err(r) => r,
    }
}

/// A revocation refused, with why (400).
fn not_revoked(s: &Session, why: &str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        pages::message(s, "Not revoked", why),
    )
}

/// Runs a change off the async workers: its value, or the answer to send
/// (the error on a page titled `title` with `status`; 500 if the task
/// itself failed).
async fn run_change<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    s: &Session,
    title: &str,
    status: StatusCode,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(html(status, pages::message(s, title, &e.to_string()))),
        Err(_) => Err(html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{title}: the change failed"),
        )),
    }
}

async fn revoke_certificate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(serial): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let s = match change_session(&headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Ok(parsed) = serial.parse::<crate::serial::Serial>() else {
        return not_revoked(&s, "not a serial");
    };
    let reason = match reason_of(&form) {
        Ok(r) => r,
        Err(e) => return not_revoked(&s, &e),
    };
    let (actor, a) = (format!("console:{}", s.operator), app.clone());
    let done = run_change(&s, "Not revoked", StatusCode::BAD_REQUEST, move || {
        a.authority.revoke_serial(
            &parsed,
            reason,
            Some(&actor),
            crate::model::time::unix_now(),
        )
    })
    .await;
    match done {
        Ok(r) => redirect(&format!("/console/certificates/{}", r.serial)),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
struct StatusForm {
    #[serde(default)]
    csrf: String,
    status: String,
    #[serde(default)]
    compliant: Option<String>,
}

async fn device_status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<StatusForm>,
) -> Response {
    let s = match change_session(&headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let status = match form.status.parse::<crate::devices::DeviceStatus>() {
        Ok(st) => st,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                pages::message(&s, "Not changed", &e),
            )
        }
    };
    let compliant = Some(form.compliant.is_some());
    let actor = format!("console:{}", s.operator);
    let a = app.clone();
    let done = run_change(
        &s,
        "Not changed",
        StatusCode::INTERNAL_SERVER_ERROR,
        move || {
            let now = crate::model::time::unix_now();
            let d = a.ledger.set_device_status(&id, status, compliant, now)?;
            if let Some(d) = &d {
                crate::devices::ops::audit_status(&a.authority, &actor, d, now);
            }
            Ok::<_, anyhow::Error>(d)
        },
    )
    .await;
    match done {
        Ok(Some(d)) => redirect(&format!("/console/devices/{}", d.serial)),
        Ok(None) => html(StatusCode::NOT_FOUND, "no such device".into()),
        Err(r) => r,
    }
}

async fn acme(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = signed_in!(headers);
    render("ACME", move || pages::acme(&app, &s, None).map(Some)).await
}

#[derive(serde::Deserialize)]
struct EabForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// Makes an external account binding key and shows it, once (the answer
/// is not cached and the key is not kept).
async fn acme_eab(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<EabForm>,
) -> Response {
    let s = match change_session(&headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let actor = format!("console:{}", s.operator);
    let a = app.clone();
    let name = form.name.clone();
    let made = run_change(&s, "No key made", StatusCode::BAD_REQUEST, move || {
        let now = crate::model::time::unix_now();
        let secret = crate::acme::eab::EabSecret::ensure(&a.config.data_dir)?;
        let key = crate::acme::eab::create(&a.ledger, &secret, &name, now)?;
        crate::acme::eab::audit_create(&a.authority, &actor, &key, now);
        Ok::<_, anyhow::Error>(key)
    })
    .await;
    match made {
        Ok(key) => render("ACME", move || pages::acme(&app, &s, Some(&key)).map(Some)).await,
        Err(r) => r,
    }
}

async fn audit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<pages::AuditQuery>,
) -> Response {
    let s = signed_in!(headers);
    render("audit", move || pages::audit(&app, &s, &q).map(Some)).await
}
