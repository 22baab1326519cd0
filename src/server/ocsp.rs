//! HTTP front of the OCSP responder: `POST /ocsp` and `GET /ocsp/{base64}`
//! (RFC 6960 Appendix A, RFC 5019 §5–6), with the caching headers a CDN or
//! nginx needs to be correct without extra configuration.
//!
//! The GET request is read from the raw request path so that no router
//! decoding, `+`→space conversion or `//` collapsing can alter it.
//!
//! [`PlainService`] answers OCSP straight on hyper, ahead of the axum router
//! (which serves everything else on the plain listener): the hot path pays
//! for no routing, no middleware and no metric label lookups.

use crate::app::App;
use crate::model::time::unix_now;
use crate::status::responder::{Answer, AnswerKind};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custos_ocsp::get::decode_get_path;
use custos_ocsp::RESPONSE_MEDIA_TYPE;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Method;
use prometheus::{Histogram, IntCounter};
use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

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
    post_answer(&*app, app.config.ocsp.max_age_secs, &headers, &body).await
}

async fn get_request(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    get_answer(&*app, app.config.ocsp.max_age_secs, &uri, &headers).await
}

/// A POST's answer, with its HTTP headers.
pub(super) async fn post_answer<A: Answerer>(
    answerer: &A,
    max_age_secs: u64,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let answer = answerer.answer(body, unix_now()).await;
    respond(max_age_secs, answer, headers)
}

/// A GET's answer (the request is the path after `/ocsp/`), with its HTTP
/// headers.
pub(super) async fn get_answer<A: Answerer>(
    answerer: &A,
    max_age_secs: u64,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let encoded = uri.path().strip_prefix("/ocsp/").unwrap_or_default();
    let answer = match decode_get_path(encoded) {
        Ok(der) => answerer.answer(&der, unix_now()).await,
        Err(e) => answerer.refuse(e),
    };
    respond(max_age_secs, answer, headers)
}

/// Who answers OCSP on the hot path: the primary's responder (from the
/// ledger) or a stateless responder (from Redis).
pub trait Answerer: Send + Sync + 'static {
    /// Answers a DER request at `now`.
    fn answer(&self, der: &[u8], now: u64) -> impl Future<Output = Answer> + Send;
    /// The answer to a request that could not be decoded.
    fn refuse(&self, e: custos_ocsp::OcspError) -> Answer;
}

impl Answerer for App {
    async fn answer(&self, der: &[u8], now: u64) -> Answer {
        self.responder.answer_pooled(der, now).await
    }
    fn refuse(&self, e: custos_ocsp::OcspError) -> Answer {
        self.responder.error_answer(e)
    }
}

/// Metric handles of the hot path, resolved once (label lookups hash and
/// lock on every call).
struct HotMetrics {
    get_ok: IntCounter,
    get_not_modified: IntCounter,
    post_ok: IntCounter,
    get_latency: Histogram,
    post_latency: Histogram,
}

const GET_ROUTE: &str = "/ocsp/{*request}";
const POST_ROUTE: &str = "/ocsp";

/// The plain listener's hyper service: OCSP on the hot path, the rest
/// through `router` (health, metrics, CA files, CRLs, and OCSP requests the
/// hot path does not take, such as other methods).
pub struct PlainService<A> {
    inner: Arc<PlainInner<A>>,
}

impl<A> Clone for PlainService<A> {
    fn clone(&self) -> Self {
        PlainService {
            inner: self.inner.clone(),
        }
    }
}

struct PlainInner<A> {
    answerer: Arc<A>,
    router: Router,
    hot: HotMetrics,
    requests: prometheus::IntCounterVec,
    max_age_secs: u64,
    body_timeout: Duration,
}

impl<A: Answerer> PlainService<A> {
    /// Wraps the plain router: OCSP requests go to `answerer` with the
    /// caching headers of `max_age_secs`, bodies within `body_timeout`.
    pub fn new(
        answerer: Arc<A>,
        metrics: &crate::support::metrics::Metrics,
        max_age_secs: u64,
        body_timeout: Duration,
        router: Router,
    ) -> PlainService<A> {
        let count = |route: &str, method: &str, status: &str| {
            metrics
                .requests
                .with_label_values(&["http", route, method, status])
        };
        let hot = HotMetrics {
            get_ok: count(GET_ROUTE, "GET", "200"),
            get_not_modified: count(GET_ROUTE, "GET", "304"),
            post_ok: count(POST_ROUTE, "POST", "200"),
            get_latency: metrics.latency.with_label_values(&["http", GET_ROUTE]),
            post_latency: metrics.latency.with_label_values(&["http", POST_ROUTE]),
        };
        PlainService {
            inner: Arc::new(PlainInner {
                answerer,
                router,
                hot,
                requests: metrics.requests.clone(),
                max_age_secs,
                body_timeout,
            }),
        }
    }
}

type BoxedResponse = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<A: Answerer> hyper::service::Service<hyper::Request<Incoming>> for PlainService<A> {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxedResponse;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let start = Instant::now();
            let is_get = req.method() == Method::GET && req.uri().path().starts_with("/ocsp/");
            let is_post = req.method() == Method::POST && req.uri().path() == POST_ROUTE;
            if !is_get && !is_post {
                return inner
                    .router
                    .clone()
                    .oneshot(req.map(axum::body::Body::new))
                    .await;
            }
            let answerer = &*inner.answerer;
            let max_age = inner.max_age_secs;
            let hot = &inner.hot;
            let (response, route, method, latency) = if is_get {
                let response = get_answer(answerer, max_age, req.uri(), req.headers()).await;
                (response, GET_ROUTE, "GET", &hot.get_latency)
            } else {
                let (parts, body) = req.into_parts();
                let read = Limited::new(body, MAX_REQUEST_BYTES).collect();
                let response = match tokio::time::timeout(inner.body_timeout, read).await {
                    Ok(Ok(body)) => {
                        post_answer(answerer, max_age, &parts.headers, &body.to_bytes()).await
                    }
                    Err(_) => (
                        StatusCode::REQUEST_TIMEOUT,
                        "OCSP request body not received within http.body_timeout_secs\n",
                    )
                        .into_response(),
                    Ok(Err(_)) => (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "OCSP request body over 16 KiB or unreadable\n",
                    )
                        .into_response(),
                };
                (response, POST_ROUTE, "POST", &hot.post_latency)
            };
            match (method, response.status()) {
                ("GET", StatusCode::OK) => hot.get_ok.inc(),
                ("GET", StatusCode::NOT_MODIFIED) => hot.get_not_modified.inc(),
                ("POST", StatusCode::OK) => hot.post_ok.inc(),
                (_, status) => inner
                    .requests
                    .with_label_values(&["http", route, method, status.as_str()])
                    .inc(),
            }
            latency.observe(start.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}

fn http_date(secs: u64) -> HeaderValue {
    HeaderValue::from_str(&crate::model::time::http_date(secs))
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

/// The HTTP answer for an OCSP answer: caching headers for a precomputed
/// one (capped at `max_age_secs`, with its ETag and a 304 when the client
/// holds it), `no-cache` for the rest.
pub(super) fn respond(max_age_secs: u64, answer: Answer, request: &HeaderMap) -> Response {
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
            let max_age = next_update.saturating_sub(now).min(max_age_secs);
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
