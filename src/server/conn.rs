//! What every client connection is held to, on both listeners: a cap on
//! open connections, a time limit for sending a request's headers and for
//! sending its body, and an idle limit for connections with nothing under
//! way. A client that opens connections and sends half a request line, or
//! trickles a body, ties up a slot for seconds, not for ever.
//!
//! - Connections: a semaphore of `http.max_connections` slots per listener.
//!   When all are taken the accept loop stops accepting, so new clients
//!   wait in the kernel's backlog (counted in
//!   `custos_http_connections_limited_total`) instead of costing memory.
//! - Headers: hyper's `header_read_timeout` (`http.header_timeout_secs`),
//!   from the connection's start or the end of the previous response.
//! - Idle: [`Activity`] notes the time of the last byte read or written and
//!   the requests under way; a connection with none under way and no bytes
//!   for `http.idle_timeout_secs` is shut down gracefully.
//! - Bodies: [`DeadlineBody`] fails a body not fully received within
//!   `http.body_timeout_secs` of the request's headers.

use crate::config::HttpConfig;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The limits, from `[http]`.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    /// Time a connection may sit idle.
    pub idle_timeout: Duration,
    /// Time to send a request's body.
    pub body_timeout: Duration,
    /// Open connections per listener.
    pub max_connections: usize,
}

impl ConnLimits {
    /// From the `[http]` section.
    pub fn from_config(c: &HttpConfig) -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(c.header_timeout_secs),
            idle_timeout: Duration::from_secs(c.idle_timeout_secs),
            body_timeout: Duration::from_secs(c.body_timeout_secs),
            max_connections: c.max_connections,
        }
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits::from_config(&HttpConfig::default())
    }
}

/// One connection's activity: when bytes last moved, and how many requests
/// are under way.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    /// A connection that starts now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        // Relaxed: a coarse timestamp; a stale read only delays the check.
        if self.last_ms.load(Ordering::Relaxed) != ms {
            self.last_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Whether nothing is under way and no byte moved for `limit`.
    pub fn idle_for(&self, limit: Duration) -> bool {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return false;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last) >= limit
    }

    /// Marks a request under way until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

/// A request under way (see [`Activity::request`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An IO stream that reports progress to an [`Activity`].
#[derive(Debug)]
pub struct TrackedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> TrackedIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        TrackedIo { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The error a body reports when its sender was too slow.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0} s (http.body_timeout_secs)")]
pub struct BodyTimeout(pub u64);

/// A request body that fails once its deadline passes.
pub struct DeadlineBody<B> {
    inner: B,
    secs: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> DeadlineBody<B> {
    /// `inner`, which must be received within `limit` from now.
    pub fn new(inner: B, limit: Duration) -> Self {
        DeadlineBody {
            inner,
            secs: limit.as_secs(),
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let secs = self.secs;
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(secs)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Axum middleware giving every request body the `http.body_timeout_secs`
/// deadline.
pub async fn body_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::Body::new(DeadlineBody::new(body, limit));
    next.run(Request::from_parts(parts, body)).await
}

/// How much of an HTTP/2 request body [`h2_body_first`] reads before the
/// route runs: one byte over the route's own limit, so the route still
/// answers 413 itself.
fn h2_read_cap(path: &str) -> usize {
    if path.starts_with("/webhooks/") {
        crate::devices::events::MAX_BODY_BYTES + 1
    } else {
        64 * 1024 + 1
    }
}

/// Past this many bytes an HTTP/2 body is not read on; the stream is reset.
const H2_DRAIN_MAX: usize = 1 << 20;

/// Axum middleware for HTTP/2: receives the whole request body (bounded by
/// the route's limit and `http.body_timeout_secs`) before any handler or
/// check runs. An answer given before the body is in (a 401 for a missing
/// token, a 413, a 415) would otherwise go out while the client is still
/// sending, and hyper then resets the stream, which clients such as curl
/// report as a framing error instead of showing the answer. HTTP/1.1 needs
/// none of this: the answer is read first, then the connection closed.
pub async fn h2_body_first(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    if req.version() != axum::http::Version::HTTP_2 || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let cap = h2_read_cap(req.uri().path());
    let (parts, body) = req.into_parts();
    let mut body = DeadlineBody::new(body, limit);
    let mut kept = Vec::new();
    let mut seen = 0usize;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                let status = if e.is::<BodyTimeout>() {
                    axum::http::StatusCode::REQUEST_TIMEOUT
                } else {
                    axum::http::StatusCode::BAD_REQUEST
                };
                return (status, format!("request body: {e}\n")).into_response();
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    seen += data.len();
                    if kept.len() < cap {
                        let room = cap - kept.len();
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                    }
                    if seen > H2_DRAIN_MAX {
                        break;
                    }
                }
            }
        }
    }
    let req = Request::from_parts(parts, axum::body::Body::from(kept));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_that_never_ends_times_out() {
        struct Never;
        impl Body for Never {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
                Poll::Pending
            }
        }
        let err = DeadlineBody::new(Never, Duration::from_millis(50))
            .collect()
            .await
            .map(|_| ())
            .expect_err("times out");
        assert!(err.to_string().contains("body_timeout_secs"), "{err}");
    }

    #[tokio::test]
    async fn a_prompt_body_is_passed_through() {
        let body = http_body_util::Full::new(Bytes::from_static(b"hello"));
        let got = DeadlineBody::new(body, Duration::from_secs(5))
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&got[..], b"hello");
    }

    #[test]
    fn idle_only_with_nothing_under_way() {
        let a = Activity::new();
        assert!(a.idle_for(Duration::ZERO));
        let guard = a.request();
        assert!(!a.idle_for(Duration::ZERO));
        drop(guard);
        assert!(!a.idle_for(Duration::from_secs(60)));
    }
}
