//! The two listeners and their lifecycle.
//!
//! - Plain HTTP ([`plain`]): OCSP, CRL, CA certificates, `/healthz`, `/metrics`.
//! - HTTPS ([`admin`] and later ACME and webhooks): TLS with a certificate
//!   from our own CA ([`tls`]).
//!
//! Handlers are thin: they decode HTTP, call the domain, encode the answer.
//! Shutdown is a [`CancellationToken`] passed in, so tests can stop a server:
//! accepting stops at once, in-flight requests get a grace period.

pub mod acme;
pub mod admin;
pub mod crl;
pub mod observe;
pub mod ocsp;
pub mod plain;
pub mod tls;
pub mod webhooks;

use crate::app::App;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

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
    let a = tokio::spawn(accept_loop(http, plain_service, None, shutdown.clone()));
    let b = tokio::spawn(accept_loop(
        https,
        https_service,
        Some(tls),
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
    accept_loop(http, plain::service(app), None, shutdown).await;
}

async fn accept_loop<S>(
    listener: TcpListener,
    service: S,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let inner = service.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            hyper::service::Service::call(&inner, req)
        });
        let watcher = graceful.watcher();
        let builder = builder.clone();
        match tls.clone() {
            None => {
                tokio::spawn(async move {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let tls_stream =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}
