//! Scheduled background work (tokio-cron-scheduler): re-signing OCSP
//! responses before they go stale, re-signing every CRL shard well before
//! its nextUpdate, renewing the delegated OCSP responder certificate, and
//! finishing device events whose processing failed.
//!
//! Jobs only call domain functions, on the blocking pool (RocksDB and
//! signing are synchronous); a failure is logged and retried at the next
//! tick. Nothing here decides status.

use crate::app::App;
use crate::model::time::unix_now;
use std::sync::Arc;
use tokio_cron_scheduler::{Job, JobScheduler};

/// Most OCSP responses re-signed per run of the refresh job; the rest wait
/// for the next tick (responses are refreshed long before they expire).
pub const REFRESH_BATCH: usize = 50_000;

/// Re-signs the OCSP responses due now. Returns how many were refreshed.
pub async fn refresh_ocsp(app: Arc<App>) -> usize {
    let result =
        tokio::task::spawn_blocking(move || app.responder.refresh_due(unix_now(), REFRESH_BATCH))
            .await;
    match result {
        Ok(Ok(n)) => {
            if n > 0 {
                tracing::info!(refreshed = n, "re-signed precomputed OCSP responses");
            }
            n
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "OCSP refresh failed");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "OCSP refresh task failed");
            0
        }
    }
}

/// Re-signs every CRL shard now.
pub async fn regenerate_crls(app: Arc<App>) {
    let result = tokio::task::spawn_blocking(move || app.crl.generate_all(unix_now())).await;
    match result {
        Ok(Ok(made)) => tracing::info!(shards = made.len(), "re-signed the CRLs"),
        // generate() has logged and counted the failure.
        Ok(Err(_)) => {}
        Err(e) => tracing::error!(error = %e, "CRL regeneration task failed"),
    }
}

async fn renew_ocsp_signer(app: Arc<App>) {
    let result = tokio::task::spawn_blocking(move || {
        app.ca.renew_ocsp_signer_if_due(
            app.config.ocsp.signer_validity_days,
            app.config.ocsp.signer_renew_before_days,
        )
    })
    .await;
    match result {
        Ok(Ok(true)) => tracing::info!("renewed the OCSP responder certificate"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "OCSP responder renewal failed"),
        Err(e) => tracing::error!(error = %e, "OCSP responder renewal task failed"),
    }
}

/// Processes device events whose processing failed (or was cut short).
/// Returns how many were finished.
pub async fn retry_device_events(app: Arc<App>) -> usize {
    if app.device_events.held() {
        return 0;
    }
    let events = app.device_events.clone();
    let result = tokio::task::spawn_blocking(move || events.resume(unix_now())).await;
    match result {
        Ok(Ok(0)) => 0,
        Ok(Ok(n)) => {
            tracing::info!(count = n, "finished pending device events");
            n
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not finish pending device events");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "device event task failed");
            0
        }
    }
}

/// Deletes, at `now`, the ACME orders and authorizations whose time has
/// come (in pages, until none is due) and records how many in the audit
/// log; returns how many orders went.
pub fn delete_expired_acme_at(app: &App, now: u64) -> Result<usize, crate::ledger::LedgerError> {
    let mut total = 0;
    loop {
        let n = app.ledger.delete_expired_acme(now, 1000)?;
        total += n;
        if n < 1000 {
            break;
        }
    }
    if total > 0 {
        app.authority.audit(
            "serve",
            "acme_cleanup",
            serde_json::json!({"orders_deleted": total, "outcome": "deleted"}),
            now,
        );
    }
    Ok(total)
}

/// [`delete_expired_acme_at`] now, off the async workers (the hourly job).
pub async fn delete_expired_acme(app: Arc<App>) -> usize {
    let result =
        tokio::task::spawn_blocking(move || delete_expired_acme_at(&app, unix_now())).await;
    match result {
        Ok(Ok(n)) => {
            if n > 0 {
                tracing::info!(
                    orders = n,
                    "deleted expired ACME orders and their authorizations"
                );
            }
            n
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "deleting expired ACME orders failed");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "deleting expired ACME orders stopped");
            0
        }
    }
}

/// Adds one job running `work(app)` on the cron `schedule`; `key` names
/// the configuration key the schedule came from, for errors.
async fn add_job<F, Fut>(
    scheduler: &JobScheduler,
    app: &Arc<App>,
    key: &str,
    schedule: &str,
    work: F,
) -> anyhow::Result<()>
where
    F: Fn(Arc<App>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let app = app.clone();
    let work = Arc::new(work);
    let job = Job::new_async(schedule, move |_, _| {
        let (app, work) = (app.clone(), work.clone());
        Box::pin(async move { work(app).await })
    })
    .map_err(|e| anyhow::anyhow!("configuration error: {key} {schedule:?}: {e}"))?;
    scheduler.add(job).await?;
    Ok(())
}

/// Starts the scheduler with every job. Shut it down with `shutdown()`.
pub async fn start(app: Arc<App>) -> anyhow::Result<JobScheduler> {
    let s = JobScheduler::new().await?;
    let ocsp = app.config.ocsp.refresh_schedule.clone();
    let crl = app.config.crl.refresh_schedule.clone();
    add_job(&s, &app, "ocsp.refresh_schedule", &ocsp, |a| async move {
        refresh_ocsp(a).await;
    })
    .await?;
    add_job(&s, &app, "crl.refresh_schedule", &crl, regenerate_crls).await?;
    add_job(
        &s,
        &app,
        "device event retry",
        "41 * * * * *",
        |a| async move {
            retry_device_events(a).await;
        },
    )
    .await?;
    add_job(
        &s,
        &app,
        "OCSP signer renewal",
        "0 17 * * * *",
        renew_ocsp_signer,
    )
    .await?;
    add_job(&s, &app, "ACME expiry", "0 23 * * * *", |a| async move {
        delete_expired_acme(a).await;
    })
    .await?;
    add_job(
        &s,
        &app,
        "SCEP challenge expiry",
        "0 29 * * * *",
        |a| async move {
            let done = tokio::task::spawn_blocking(move || {
                a.ledger
                    .purge_scep_challenges(crate::model::time::unix_now())
            })
            .await;
            match done {
                Ok(Ok(n)) if n > 0 => tracing::info!(purged = n, "expired SCEP challenges deleted"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not delete expired SCEP challenges")
                }
                _ => {}
            }
        },
    )
    .await?;
    s.start().await?;
    Ok(s)
}
