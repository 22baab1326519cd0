//! `custos init` and `custos serve`: make the CA, then run the listeners,
//! the validator, the notifier and the scheduled jobs until a signal.

use super::args::*;
use super::urls;
use crate::app::{open_ledger, App};
use crate::ca::{Ca, InitOptions};
use crate::config::Config;
use crate::model::time::unix_now;
use crate::support::files::read_named;
use crate::support::instance::{AdminToken, ServerInfo};
use anyhow::{anyhow, Context};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(super) fn init(config: Config, args: InitArgs) -> anyhow::Result<()> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("{}: cannot create data dir", data_dir.display()))?;
    let opts = InitOptions {
        organization: args.org,
        root_cn: args.root_cn,
        intermediate_cn: args.intermediate_cn,
        root_days: args.root_days,
        intermediate_days: args.intermediate_days,
        ocsp_key: args.ocsp_key,
        ocsp_days: args.ocsp_days.unwrap_or(config.ocsp.signer_validity_days),
    };
    let ca = match args.import_ca {
        Some(files) => {
            let (cert, key) = (&files[0], &files[1]);
            let bundle = read_named(cert, "CA certificate")?;
            let key_pem = read_named(key, "CA key")?;
            Ca::import(data_dir, &bundle, &key_pem, &opts, urls(&config))
                .map_err(|e| anyhow!("{} / {}: {e}", cert.display(), key.display()))?
        }
        None => Ca::init(data_dir, &opts, urls(&config))?,
    };
    AdminToken::ensure(data_dir)?;
    println!("CA ready in {}", data_dir.display());
    print_ca(data_dir, &ca.root_fingerprint());
    Ok(())
}

pub(super) fn print_ca(data_dir: &Path, root_fingerprint: &str) {
    let paths = crate::ca::CaPaths::new(data_dir);
    println!("  root certificate:  {}", paths.root_cert().display());
    println!("  issuing chain:     {}", paths.chain().display());
    println!("  root SHA-256:      {root_fingerprint}");
    println!(
        "  admin token:       {}",
        crate::support::instance::admin_token_path(data_dir).display()
    );
}

pub(super) async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    if args.role == Role::Responder {
        return serve_responder(config, args).await;
    }
    let data_dir = config.data_dir.clone();
    let ledger = open_ledger(&config).map_err(|e| match ServerInfo::read(&data_dir) {
        Ok(info) => anyhow!(
            "custos is already serving this data dir (pid {}, {}): {e}",
            info.pid,
            info.https_url
        ),
        Err(_) => e,
    })?;
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {} (http_listen)", config.http_listen))?;
    let https = tokio::net::TcpListener::bind(config.https_listen)
        .await
        .with_context(|| format!("cannot listen on {} (https_listen)", config.https_listen))?;
    let http_addr = http.local_addr()?;
    let https_addr = https.local_addr()?;
    let app = App::build(config, ledger, Some(http_addr), true)?;
    if args.hold_device_events {
        app.device_events.hold();
    }
    app.ca.renew_ocsp_signer_if_due(
        app.config.ocsp.signer_validity_days,
        app.config.ocsp.signer_renew_before_days,
    )?;
    let tls = crate::server::tls::acceptor(&app)?;
    // Before accepting: a shard whose stored CRL misses a revocation made
    // while the server was down is held until its new CRL is out.
    let held = app
        .crl
        .hold_outdated()
        .map_err(|e| anyhow!("cannot read the CRLs: {e}"))?;
    if !held.is_empty() {
        tracing::info!(shards = ?held, "CRLs older than a revocation are held until re-signed");
    }
    // Signal handlers before `server.json` says we are up: a SIGTERM sent
    // the moment a supervisor sees us must stop us gracefully, not kill us.
    let signals = Signals::install()?;
    let info = ServerInfo {
        pid: std::process::id(),
        https_url: app.config.https_base(Some(https_addr)),
        http_url: app.config.http_base(Some(http_addr)),
    };
    info.write(&data_dir)?;
    print_serving(&app, &info, &data_dir);
    tracing::info!(http = %http_addr, https = %https_addr, "listening");

    let app = Arc::new(app);
    let shutdown = CancellationToken::new();
    tokio::spawn(signals.watch(shutdown.clone()));
    app.catching_up
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let catch_up = tokio::spawn(catch_up(
        app.clone(),
        std::time::Duration::from_millis(args.delay_catch_up_ms),
        shutdown.clone(),
    ));
    start_background(&app, &shutdown)?;
    crate::jobs::retry_device_events(app.clone()).await;
    let mut scheduler = crate::jobs::start(app.clone()).await?;
    let result = crate::server::run(app.clone(), http, https, tls, shutdown).await;
    let _ = scheduler.shutdown().await;
    tracing::info!("shutting down: flushing the ledger");
    let flushed = app.ledger.flush();
    ServerInfo::remove(&data_dir);
    result?;
    flushed?;
    if catch_up.is_finished() {
        catch_up.await??;
    }
    Ok(())
}

/// The start-up work done while already serving: re-signs the CRLs that
/// are missing, stale or older than a revocation (held shards wait for
/// it), then catches up on OCSP refreshes missed while the server was down
/// (a stale stored response is re-made on demand meanwhile). A CRL that
/// cannot be signed stops the server, as it would have refused to start.
async fn catch_up(
    app: Arc<App>,
    delay: std::time::Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tokio::time::sleep(delay).await;
    let crl = app.crl.clone();
    let made = tokio::task::spawn_blocking(move || crl.ensure_current(unix_now())).await?;
    if let Err(e) = made {
        tracing::error!(error = %e, "cannot publish the CRLs; stopping");
        shutdown.cancel();
        return Err(anyhow!("cannot publish the CRLs: {e}"));
    }
    crate::jobs::refresh_ocsp(app.clone()).await;
    app.catching_up
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tracing::info!("start-up catch-up done: ready");
    Ok(())
}

/// What `serve` prints when it is up: where it listens, the CRLs, the CA
/// files, and any loopback URL warnings.
fn print_serving(app: &App, info: &ServerInfo, data_dir: &std::path::Path) {
    println!("custos is serving");
    println!("  http  (OCSP, CRL, /metrics):     {}", info.http_url);
    println!("  https (admin API, ACME):         {}", info.https_url);
    println!(
        "  console:                         {}/console/ (sign in with the admin token)",
        info.https_url
    );
    println!(
        "  CRL ({} shard{}):                 {}",
        app.crl.shard_count(),
        if app.crl.shard_count() == 1 { "" } else { "s" },
        app.ca.crl_url(0)
    );
    print_ca(data_dir, &app.ca.root_fingerprint());
    for w in app.config.loopback_warnings(true, true) {
        eprintln!("custos: warning: {w}");
        tracing::warn!("{w}");
    }
}

/// The background services: triggered CRL publishing, the ACME validator
/// and the revocation notifier; all stop with `shutdown`.
fn start_background(app: &Arc<App>, shutdown: &CancellationToken) -> anyhow::Result<()> {
    tokio::spawn(app.crl.clone().run_triggered(shutdown.clone()));
    if let Some(queue) = app
        .acme_jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        crate::acme::validation::spawn(app.acme.clone(), queue, &app.config, shutdown.clone());
    }
    if let Some(publisher) = &app.replication {
        tokio::spawn(publisher.clone().run(shutdown.clone()));
    }
    app.mdm_sync.clone().spawn(shutdown.clone());
    tokio::spawn(
        app.ocsp_rates
            .clone()
            .run(app.metrics.registry().clone(), shutdown.clone()),
    );
    crate::status::notify::spawn(
        app.ledger.clone(),
        &app.config.notify,
        app.metrics.registry(),
        shutdown.clone(),
    )?;
    Ok(())
}

/// SIGTERM and SIGINT, listened for from the moment they are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// Cancels `shutdown` at the first signal.
    async fn watch(mut self, shutdown: CancellationToken) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
        shutdown.cancel();
    }
}

/// `custos serve --role responder`: OCSP, CRL and CA files from Redis on
/// the plain listener, until a signal.
async fn serve_responder(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let urls = if args.redis.is_empty() {
        config.replication.redis.clone()
    } else {
        args.redis.clone()
    };
    if urls.is_empty() {
        anyhow::bail!(
            "a responder needs Redis: give --redis redis://host:port (or set [replication] redis)"
        );
    }
    for url in &urls {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            anyhow::bail!(
                "--redis {:?}: must start with redis:// or rediss://",
                redacted(url)
            );
        }
    }
    let url = &urls.join(",");
    let metrics = crate::support::metrics::Metrics::new();
    let status = crate::replication::read::RedisStatus::connect(
        &urls,
        config.replication.redis_cluster,
        &config.replication.key_prefix,
        (config.ocsp.cache_mb.max(1) as u64) << 20,
        crate::replication::read::FreshSettings {
            validity_secs: u64::from(config.ocsp.response_validity_hours) * 3600,
            backdate_secs: config.ocsp.backdate_secs,
            max_concurrent_signing: config.ocsp.max_concurrent_signing,
        },
        metrics.registry(),
    )
    .await
    .with_context(|| format!("cannot start the responder on {}", redacted(url)))?;
    let status = Arc::new(status);
    responder_identity(&status, &config.data_dir, args.join.as_deref()).await?;
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {} (http_listen)", config.http_listen))?;
    let addr = http.local_addr()?;
    let signals = Signals::install()?;
    println!("custos responder is serving");
    println!("  http  (OCSP, CRL, CA files, /metrics): http://{addr}");
    let shown = redacted(url);
    println!(
        "  status from:                          {shown} (issuer {})",
        status.issuer_id()
    );
    tracing::info!(http = %addr, redis = %shown, "responder listening");
    let shutdown = CancellationToken::new();
    tokio::spawn(signals.watch(shutdown.clone()));
    tokio::spawn(status.clone().listen(shutdown.clone()));
    tokio::spawn(renew_identity(
        status.clone(),
        config.data_dir.clone(),
        shutdown.clone(),
    ));
    let state = Arc::new(crate::server::responder::ResponderState {
        status,
        metrics,
        max_age_secs: config.ocsp.max_age_secs,
    });
    crate::server::responder::run(state, &config, http, shutdown).await;
    Ok(())
}

/// A Redis URL without its password (`redis://user:***@host:port`).
fn redacted(urls: &str) -> String {
    let one = |url: &str| match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (userinfo, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    };
    urls.split(',').map(one).collect::<Vec<_>>().join(",")
}

/// The responder's own key: kept in `dir`, or made now with a join token.
async fn responder_identity(
    status: &crate::replication::read::RedisStatus,
    dir: &std::path::Path,
    join: Option<&str>,
) -> anyhow::Result<()> {
    use crate::replication::join;
    let kept = join::load(dir)?;
    let identity = match (kept, join) {
        (Some(id), _) => id,
        (None, Some(token)) => {
            let root = status
                .ca_file("root.crt")
                .await?
                .ok_or_else(|| anyhow!("Redis holds no root certificate to pin"))?;
            let id = join::join(dir, token, &root).await?;
            println!(
                "  enrolled: responder key and certificate in {}",
                dir.display()
            );
            id
        }
        (None, None) => {
            eprintln!("custos: warning: no responder key in {} (start once with --join TOKEN): nonce requests get the published response, without the nonce", dir.display());
            return Ok(());
        }
    };
    status.set_identity(identity);
    if status.identity_revoked().await {
        status.retire_identity("Redis says so at start");
        eprintln!("custos: warning: this responder's certificate was revoked; its key is deleted and nonce requests get the published response (enrol again with a new join token)");
    }
    Ok(())
}

/// Renews the responder's certificate when a third of its life is left
/// (checked every ten minutes; a failure is retried at the next check).
async fn renew_identity(
    status: Arc<crate::replication::read::RedisStatus>,
    dir: std::path::PathBuf,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(600)) => {}
        }
        let Some(current) = status.identity() else {
            continue;
        };
        // Catches an announcement missed while unsubscribed.
        if status.identity_revoked().await {
            status.retire_identity("Redis says so");
            continue;
        }
        if !current.renewal_due(unix_now()) {
            continue;
        }
        let renewed = match status.ca_file("root.crt").await {
            Ok(Some(root)) => crate::replication::join::renew(&dir, &root).await,
            Ok(None) => Err(anyhow!("Redis holds no root certificate")),
            Err(e) => Err(e.into()),
        };
        match renewed {
            Ok(id) => {
                tracing::info!(not_after = id.not_after, "responder certificate renewed");
                status.set_identity(id);
            }
            Err(e)
                if e.downcast_ref::<crate::replication::join::RevokedByPrimary>()
                    .is_some() =>
            {
                status.retire_identity(&e.to_string());
            }
            Err(e) => {
                tracing::warn!(error = %e, "responder certificate renewal failed; retrying later")
            }
        }
    }
}
