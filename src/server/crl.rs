//! HTTP front of the CRL publisher: `GET /crl/<issuer-id>/<shard>.crl` (DER,
//! `application/pkix-crl`) and `.pem`, with `Last-Modified`, `ETag` (304 on
//! `If-None-Match`), `Expires` and a `Cache-Control` that ends no later than
//! the next scheduled regeneration or the CRL's nextUpdate.
//!
//! It only reads the publisher's current CRLs; it never builds one. A shard
//! held at start-up (see `CrlPublisher::hold_outdated`) is answered once its
//! new CRL is out, or 503 with `Retry-After` after [`HELD_WAIT`].

use crate::app::App;
use crate::model::time::unix_now;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// How long a request for a shard held at start-up (its stored CRL older
/// than a revocation made while the server was down) waits for the new one
/// before it gets 503 with `Retry-After`.
const HELD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Routes for the plain-HTTP router.
pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/crl/{issuer}/{file}", get(crl_file))
}

fn not_found(why: &'static str) -> Response {
    (StatusCode::NOT_FOUND, why).into_response()
}

/// `<shard>.crl` or `<shard>.pem` → (shard, pem), or why it names no CRL
/// (the 404's text).
pub(super) fn parse_file(file: &str) -> Result<(u32, bool), &'static str> {
    let (shard, pem) = if let Some(s) = file.strip_suffix(".crl") {
        (s, false)
    } else if let Some(s) = file.strip_suffix(".pem") {
        (s, true)
    } else {
        return Err("CRLs are <shard>.crl (DER) or <shard>.pem\n");
    };
    // Digits only: no signs, spaces or leading zeros ("01" is not shard 1).
    let canonical = !shard.is_empty()
        && shard.bytes().all(|b| b.is_ascii_digit())
        && (shard == "0" || !shard.starts_with('0'));
    match shard.parse::<u32>().ok().filter(|_| canonical) {
        Some(s) => Ok((s, pem)),
        None => Err("no such CRL shard\n"),
    }
}

/// The strong validator of a CRL's DER: quoted hex of the first 8 bytes of
/// its SHA-256.
pub(super) fn etag_of(der: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(&sha2::Sha256::digest(der)[..8]))
}

async fn crl_file(
    State(app): State<Arc<App>>,
    Path((issuer, file)): Path<(String, String)>,
    request: HeaderMap,
) -> Response {
    if issuer != app.crl.issuer_id() {
        return not_found("no such CRL issuer\n");
    }
    let (shard, pem) = match parse_file(&file) {
        Ok(x) => x,
        Err(why) => return not_found(why),
    };
    let crl = match app.crl.serving(shard, HELD_WAIT).await {
        Ok(Some(crl)) => crl,
        Ok(None) => return not_found("no such CRL shard\n"),
        Err(held) => {
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, format!("{held}\n")).into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
    };
    let now = unix_now();
    let until = app
        .crl
        .next_scheduled(now)
        .map_or(crl.next_update, |t| t.min(crl.next_update));
    let body = if pem { crl.pem() } else { crl.der.clone() };
    serve(body, pem, crl.this_update, until, &crl.etag, &request)
}

/// A CRL answer: `body` (DER, or PEM when `pem`), fresh until `until`, with
/// its validators; 304 when the client holds it.
pub(super) fn serve(
    body: bytes::Bytes,
    pem: bool,
    this_update: u64,
    until: u64,
    der_etag: &str,
    request: &HeaderMap,
) -> Response {
    let now = unix_now();
    let max_age = until.saturating_sub(now);
    let etag = if pem {
        format!("{}-pem\"", der_etag.trim_end_matches('"'))
    } else {
        der_etag.to_string()
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set(
        header::CACHE_CONTROL,
        format!("max-age={max_age}, public, no-transform, must-revalidate"),
    );
    set(
        header::LAST_MODIFIED,
        crate::model::time::http_date(this_update),
    );
    set(
        header::EXPIRES,
        crate::model::time::http_date(now + max_age),
    );
    set(header::ETAG, etag.clone());
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let ctype = if pem {
        "application/x-pem-file"
    } else {
        custos_crl::MEDIA_TYPE
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    (StatusCode::OK, headers, body).into_response()
}
