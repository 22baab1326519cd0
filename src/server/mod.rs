//! The two listeners and their lifecycle.
//!
//! - Plain HTTP ([`plain`]): OCSP, CRL, CA certificates, `/healthz`,
//!   `/readyz`, `/metrics` (and SCEP when `scep.listen_plain`).
//! - HTTPS ([`admin`]): the admin API, ACME ([`acme`]), MDM webhooks
//!   ([`webhooks`]), SCEP ([`scep`], [`scep_challenges`]) and the operator
//!   console ([`console`]), with TLS from our own CA ([`tls`]).
//! - A stateless responder's one listener ([`responder`]).
//!
//! Handlers are thin: they decode HTTP, call the domain, encode the answer.
//! Shutdown is a [`CancellationToken`] passed in, so tests can stop a server:
//! accepting stops at once, in-flight requests get a grace period.

pub mod acme;
pub mod admin;
pub mod conn;
pub mod console;
pub mod crl;
pub mod observe;
pub mod ocsp;
pub mod plain;
pub mod responder;
pub mod scep;
pub mod scep_challenges;
pub mod tls;
pub mod webhooks;

use crate::app::App;
use axum::response::Response;
use conn::{Activity, ConnLimits, TrackedIo};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long in-flight requests may run after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TCP peer of a request's connection, as a request extension.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Runs both listeners until `shutdown` is cancelled, then drains them.
pub async fn run(
    app: Arc<App>,
    http: TcpListener,
    https: TcpListener,
    tls: TlsAcceptor,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let plain_service = plain::service(app.clone());
    let https_service = TowerToHyperService::new(admin::router(app.clone()));
    let limits = ConnLimits::from_config(&app.config.http);
    let a = tokio::spawn(accept_loop(
        Listener::new(&app.metrics, "http", http, None, limits),
        plain_service,
        shutdown.clone(),
    ));
    let b = tokio::spawn(accept_loop(
        Listener::new(&app.metrics, "https", https, Some(tls), limits),
        https_service,
        shutdown.clone(),
    ));
    let (ra, rb) = tokio::join!(a, b);
    ra?;
    rb?;
    Ok(())
}

/// Runs the plain-HTTP listener alone (benches and embedders) until
/// `shutdown` is cancelled.
pub async fn run_plain(app: Arc<App>, http: TcpListener, shutdown: CancellationToken) {
    let limits = ConnLimits::from_config(&app.config.http);
    accept_loop(
        Listener::new(&app.metrics, "http", http, None, limits),
        plain::service(app),
        shutdown,
    )
    .await;
}

/// What a listener serves: a cloneable hyper service answering every
/// request (the plain listener's OCSP fast path, or an axum router).
trait HttpService:
    hyper::service::Service<
        Request<Incoming>,
        Response = Response,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> HttpService for S
where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
}

/// One listening socket and what its connections are held to.
struct Listener {
    name: &'static str,
    socket: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ConnLimits,
    metrics: crate::support::metrics::Metrics,
}

impl Listener {
    fn new(
        metrics: &crate::support::metrics::Metrics,
        name: &'static str,
        socket: TcpListener,
        tls: Option<TlsAcceptor>,
        limits: ConnLimits,
    ) -> Listener {
        Listener {
            name,
            socket,
            tls,
            limits,
            metrics: metrics.clone(),
        }
    }
}

async fn accept_loop<S: HttpService>(listener: Listener, service: S, shutdown: CancellationToken) {
    let limits = listener.limits;
    let builder = Arc::new(connection_builder(limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    let name = listener.name;
    let open = listener.metrics.connections_open.with_label_values(&[name]);
    let waited = listener
        .metrics
        .connections_waited
        .with_label_values(&[name]);
    loop {
        // A slot first: when all are taken, stop accepting and let new
        // clients wait in the kernel's backlog.
        let Some(slot) = next_slot(&slots, &waited, &shutdown).await else {
            break;
        };
        let Some((stream, peer)) = next_connection(&listener.socket, &shutdown).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let ctx = ConnCtx {
            service: with_peer(service.clone(), peer, activity.clone()),
            activity,
            limits,
            shutdown: shutdown.clone(),
            peer,
            listener: name,
            closed: listener.metrics.connections_closed.clone(),
            _open: OpenGuard::new(open.clone()),
        };
        let builder = builder.clone();
        let tls = listener.tls.clone();
        tracker.spawn(async move {
            let _slot = slot;
            serve_connection(stream, tls, &builder, ctx).await;
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

/// HTTP/1 and HTTP/2 as every connection is served: hyper's header timer
/// (HTTP/1) and keep-alive pings (HTTP/2) on a real timer.
fn connection_builder(limits: ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.idle_timeout);
    builder
}

/// A connection slot, waiting (and counting the wait) when every one is
/// taken; `None` when the server stops meanwhile.
async fn next_slot(
    slots: &Arc<Semaphore>,
    waited: &prometheus::IntCounter,
    shutdown: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    waited.inc();
    tokio::select! {
        _ = shutdown.cancelled() => None,
        s = slots.clone().acquire_owned() => s.ok(),
    }
}

/// The next accepted connection; `None` when the server stops. Accept
/// errors (out of file descriptors and the like) back off and retry.
async fn next_connection(
    socket: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = socket.accept() => match accepted {
                Ok(pair) => return Some(pair),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// `service` with the connection's peer address on every request and each
/// request in flight counted as activity (so a slow answer is not idle).
fn with_peer<S: HttpService>(
    service: S,
    peer: std::net::SocketAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response, Infallible>> + Send + 'static,
> + Clone
       + Send
       + 'static {
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(PeerAddr(peer));
        let guard = activity.request();
        let fut = hyper::service::Service::call(&service, req);
        async move {
            let r = fut.await;
            drop(guard);
            r
        }
    })
}

/// Serves one accepted connection (after the TLS handshake, on the HTTPS
/// listener) until it ends.
async fn serve_connection<S>(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    builder: &auto::Builder<TokioExecutor>,
    ctx: ConnCtx<S>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let Some(acceptor) = tls else {
        let io = TokioIo::new(TrackedIo::new(stream, ctx.activity.clone()));
        let conn = builder.serve_connection(io, ctx.service.clone());
        drive(conn, |c| c.graceful_shutdown(), &ctx).await;
        return;
    };
    let peer = ctx.peer;
    let tls_stream =
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                ctx.closed
                    .with_label_values(&[ctx.listener, "tls_handshake_timeout"])
                    .inc();
                return;
            }
        };
    let io = TokioIo::new(TrackedIo::new(tls_stream, ctx.activity.clone()));
    let conn = builder.serve_connection_with_upgrades(io, ctx.service.clone());
    drive(conn, |c| c.graceful_shutdown(), &ctx).await;
}

/// Counts a connection in `custos_http_connections_open` while it lives.
struct OpenGuard(prometheus::IntGauge);

impl OpenGuard {
    fn new(gauge: prometheus::IntGauge) -> OpenGuard {
        gauge.inc();
        OpenGuard(gauge)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What serving one connection needs besides the connection.
struct ConnCtx<S> {
    service: S,
    activity: Arc<Activity>,
    limits: ConnLimits,
    shutdown: CancellationToken,
    peer: std::net::SocketAddr,
    listener: &'static str,
    closed: prometheus::IntCounterVec,
    _open: OpenGuard,
}

/// Serves one connection until it ends, shutting it down gracefully when
/// it has been idle for `idle_timeout` or the server stops, and dropping it
/// if it has not finished `SHUTDOWN_GRACE` after that.
async fn drive<C, F, S>(conn: C, shut: F, ctx: &ConnCtx<S>)
where
    C: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
    F: Fn(std::pin::Pin<&mut C>),
{
    let ConnCtx {
        activity,
        limits,
        shutdown,
        peer,
        listener,
        closed,
        ..
    } = ctx;
    tokio::pin!(conn);
    let check_every = (limits.idle_timeout / 4).max(Duration::from_millis(250));
    let listener = *listener;
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    let timed_out = e
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(|h| h.is_timeout());
                    if timed_out {
                        closed.with_label_values(&[listener, "header_timeout"]).inc();
                    }
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if deadline.is_none() => {
                shut(conn.as_mut());
                deadline = Some(Box::pin(tokio::time::sleep(SHUTDOWN_GRACE)));
            }
            _ = tick.tick(), if deadline.is_none() => {
                if activity.idle_for(limits.idle_timeout) {
                    closed.with_label_values(&[listener, "idle_timeout"]).inc();
                    shut(conn.as_mut());
                    deadline = Some(Box::pin(tokio::time::sleep(SHUTDOWN_GRACE)));
                }
            }
            _ = async { deadline.as_mut().expect("guarded").as_mut().await }, if deadline.is_some() => {
                tracing::debug!(%peer, "connection dropped after the grace period");
                return;
            }
        }
    }
}
