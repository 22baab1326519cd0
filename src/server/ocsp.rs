//! HTTP front of the OCSP responder: `POST /ocsp` and `GET /ocsp/{base64}`
//! (RFC 6960 Appendix A, RFC 5019 §5–6), with the caching headers a CDN or
//! nginx needs to be correct without extra configuration.
//!
//! The GET request is read from the raw request path so that no router
//! decoding, `+`→space conversion or `//` collapsing can alter it.

use crate::app::App;
use crate::ca::build::unix_now;
use crate::responder::{Answer, AnswerKind};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custos_ocsp::get::decode_get_path;
use custos_ocsp::RESPONSE_MEDIA_TYPE;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Largest POST body accepted (a request for 64 certificates with a nonce
/// is well under this).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Routes for the plain-HTTP router.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/ocsp", post(post_request))
        .route("/ocsp/", post(post_request))
        .route("/ocsp/{*request}", get(get_request))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
}

async fn post_request(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = app.responder.answer(&body, unix_now());
    respond(&app, answer, &headers)
}

async fn get_request(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    let encoded = uri.path().strip_prefix("/ocsp/").unwrap_or_default();
    let answer = match decode_get_path(encoded) {
        Ok(der) => app.responder.answer(&der, unix_now()),
        Err(e) => app.responder.error_answer(e),
    };
    respond(&app, answer, &headers)
}

fn http_date(secs: u64) -> HeaderValue {
    let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    HeaderValue::from_str(&text)
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

thread_local! {
    /// The last `Expires` and `Cache-Control` values made on this thread:
    /// under load nearly every answer in a second shares them.
    static LAST_HEADERS: RefCell<Option<(u64, u64, HeaderValue, HeaderValue)>> =
        const { RefCell::new(None) };
}

/// `Expires` (now + max-age) and `Cache-Control` for a precomputed answer.
fn freshness_headers(now: u64, max_age: u64) -> (HeaderValue, HeaderValue) {
    LAST_HEADERS.with(|cell| {
        let mut last = cell.borrow_mut();
        if let Some((n, m, expires, control)) = last.as_ref() {
            if *n == now && *m == max_age {
                return (expires.clone(), control.clone());
            }
        }
        let control = HeaderValue::from_str(&format!(
            "max-age={max_age}, public, no-transform, must-revalidate"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("max-age=0, no-cache"));
        let expires = http_date(now + max_age);
        *last = Some((now, max_age, expires.clone(), control.clone()));
        (expires, control)
    })
}

/// The quoted hex ETag of an 8-byte validator.
fn etag_value(etag: &[u8; 8]) -> HeaderValue {
    let mut text = [b'"'; 18];
    hex::encode_to_slice(etag, &mut text[1..17]).unwrap_or_default();
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

fn respond(app: &App, answer: Answer, request: &HeaderMap) -> Response {
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(RESPONSE_MEDIA_TYPE),
    );
    match answer.kind {
        AnswerKind::Precomputed {
            this_update,
            next_update,
            etag,
        } => {
            let now = unix_now();
            let max_age = next_update
                .saturating_sub(now)
                .min(app.config.ocsp.max_age_secs);
            let (expires, control) = freshness_headers(now, max_age);
            let etag = etag_value(&etag);
            headers.insert(header::CACHE_CONTROL, control);
            headers.insert(header::LAST_MODIFIED, http_date(this_update));
            headers.insert(header::EXPIRES, expires);
            let matches = request
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.split(',')
                        .any(|t| t.trim().as_bytes() == etag.as_bytes() || t.trim() == "*")
                });
            headers.insert(header::ETAG, etag);
            if matches {
                headers.remove(header::CONTENT_TYPE);
                return (StatusCode::NOT_MODIFIED, headers).into_response();
            }
        }
        AnswerKind::Fresh | AnswerKind::Error(_) => {
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=0, no-cache"),
            );
        }
    }
    (StatusCode::OK, headers, answer.der).into_response()
}
