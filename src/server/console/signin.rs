//! Signing in to the console: the admin token, or a named account's
//! password (Argon2id, `console-users.json`).
//!
//! Password checks are bounded so that sign-in cannot be used to guess
//! passwords or to burn the CPU: at most [`CHECKS_AT_ONCE`] run at a time
//! (each costs tens of milliseconds), and an account that fails
//! [`MAX_FAILURES`] times within [`WINDOW`] is refused, without a check,
//! until the window ends. Failures are counted for existing accounts only,
//! so the table is as small as the accounts file. The name typed is logged
//! only when it is an account's: a password typed into the name field
//! stays out of the logs.

use super::{html, pages, random_token, redirect, session, sessions, Session, COOKIE, IDLE};
use super::{Role, MAX_SESSIONS};
use crate::app::App;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Password checks running at once.
const CHECKS_AT_ONCE: usize = 2;
/// How long a sign-in waits for a check slot.
const CHECK_WAIT: Duration = Duration::from_secs(10);
/// Failed sign-ins of one account within [`WINDOW`] before it is refused.
const MAX_FAILURES: u32 = 5;
/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(15 * 60);

struct Failures {
    count: u32,
    since: Instant,
}

/// Failures per (data dir, account name).
fn failures() -> &'static Mutex<HashMap<(PathBuf, String), Failures>> {
    static F: OnceLock<Mutex<HashMap<(PathBuf, String), Failures>>> = OnceLock::new();
    F.get_or_init(Mutex::default)
}

fn checks() -> &'static Semaphore {
    static S: Semaphore = Semaphore::const_new(CHECKS_AT_ONCE);
    &S
}

/// How long `key` is still refused, if it is.
fn locked_for(key: &(PathBuf, String)) -> Option<Duration> {
    let mut all = failures().lock().unwrap_or_else(|e| e.into_inner());
    let f = all.get(key)?;
    let elapsed = f.since.elapsed();
    if elapsed > WINDOW {
        all.remove(key);
        return None;
    }
    (f.count >= MAX_FAILURES).then(|| WINDOW - elapsed)
}

fn count_failure(key: (PathBuf, String)) {
    let mut all = failures().lock().unwrap_or_else(|e| e.into_inner());
    let f = all.entry(key).or_insert(Failures {
        count: 0,
        since: Instant::now(),
    });
    if f.since.elapsed() > WINDOW {
        *f = Failures {
            count: 0,
            since: Instant::now(),
        };
    }
    f.count += 1;
}

pub(super) async fn login_page(headers: HeaderMap) -> Response {
    if session(&headers).is_some() {
        return redirect("/console/");
    }
    html(StatusCode::OK, pages::login(None))
}

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
}

fn refused(status: StatusCode, why: &str) -> Response {
    html(status, pages::login(Some(why)))
}

/// Who a named account's password signs in, or the answer to send.
async fn check_password(app: &App, form: &LoginForm) -> Result<(String, Role), Response> {
    let key = (app.config.data_dir.clone(), form.name.clone());
    if let Some(left) = locked_for(&key) {
        return Err(refused(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed sign-ins for this account: try again in {} minutes.",
                left.as_secs().div_ceil(60)
            ),
        ));
    }
    let Ok(Ok(_slot)) = tokio::time::timeout(CHECK_WAIT, checks().acquire()).await else {
        return Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins at once: try again shortly.",
        ));
    };
    let data_dir = app.config.data_dir.clone();
    let (name, password) = (form.name.clone(), form.password.clone());
    let checked = tokio::task::spawn_blocking(move || {
        let user = crate::support::console_users::check(&data_dir, &name, &password);
        let known = crate::support::console_users::known(&data_dir, &name);
        (user, known)
    })
    .await;
    match checked {
        Ok((Ok(Some(u)), _)) => Ok((u.name, u.role)),
        Ok((_, true)) => {
            tracing::warn!(name = %form.name, "console sign-in refused: wrong password");
            count_failure(key);
            Err(wrong())
        }
        _ => {
            tracing::warn!("console sign-in refused: no such account");
            Err(wrong())
        }
    }
}

fn wrong() -> Response {
    refused(StatusCode::UNAUTHORIZED, "Wrong name, password or token.")
}

pub(super) async fn login(State(app): State<Arc<App>>, Form(form): Form<LoginForm>) -> Response {
    let who = if !form.token.is_empty() {
        if !app.admin_token.matches(form.token.trim()) {
            tracing::warn!("console sign-in refused: wrong admin token");
            return wrong();
        }
        ("admin".to_string(), Role::Operator)
    } else {
        match check_password(&app, &form).await {
            Ok(who) => who,
            Err(r) => return r,
        }
    };
    start_session(&app, who)
}

/// A new session for `operator`: audited, its cookie set.
fn start_session(app: &App, (operator, role): (String, Role)) -> Response {
    let id = random_token();
    {
        let mut all = sessions().lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| s.seen.elapsed() <= IDLE);
        if all.len() >= MAX_SESSIONS {
            if let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(k, _)| k.clone())
            {
                all.remove(&oldest);
            }
        }
        all.insert(
            id.clone(),
            Session {
                operator: operator.clone(),
                role,
                csrf: random_token(),
                seen: Instant::now(),
            },
        );
    }
    app.authority.audit(
        &format!("console:{operator}"),
        "console.signin",
        serde_json::json!({"role": role.name(), "outcome": "signed in"}),
        crate::model::time::unix_now(),
    );
    let mut r = redirect("/console/");
    let cookie = format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        IDLE.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
