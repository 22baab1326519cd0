//! Runs ACME challenge validations off the request path: takes the jobs the
//! engine queued, proves the identifier (http-01: fetch
//! `http://<identifier>:<acme.http01_port>/.well-known/acme-challenge/<token>`
//! and compare it with the key authorization), with a timeout per attempt
//! and `acme.validation_attempts` tries, then reports the outcome back to the
//! engine, which records it on the challenge and authorization.
//!
//! No protocol state here: only the network check and the hand-back.

use crate::app::App;
use crate::ca::build::unix_now;
use custos_acme::order::ValidationJob;
use custos_acme::problem::{Problem, ProblemType};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Validations running at once.
const CONCURRENT: usize = 32;
/// Largest http-01 response read.
const MAX_RESPONSE_BYTES: usize = 8 * 1024;
/// Pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Starts the validator; it stops when `shutdown` is cancelled. Does
/// nothing if the queue was already taken.
pub fn spawn(app: Arc<App>, shutdown: CancellationToken) {
    let queue = app
        .acme_jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(mut queue) = queue else {
        return;
    };
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .timeout(Duration::from_secs(app.config.acme.validation_timeout_secs))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the ACME validation client");
            return;
        }
    };
    match app.acme.resume_validations() {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            count = n,
            "resuming ACME validations interrupted by a restart"
        ),
        Err(p) => tracing::error!(problem = %p, "cannot resume interrupted ACME validations"),
    }
    let limit = Arc::new(Semaphore::new(CONCURRENT));
    tokio::spawn(async move {
        loop {
            let job = tokio::select! {
                _ = shutdown.cancelled() => break,
                job = queue.recv() => match job {
                    Some(j) => j,
                    None => break,
                },
            };
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let app = app.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let outcome = validate(&app, &client, &job).await;
                match &outcome {
                    Ok(()) => {
                        tracing::info!(identifier = %job.identifier.value, kind = %job.kind, "ACME challenge valid")
                    }
                    Err(p) => {
                        tracing::info!(identifier = %job.identifier.value, kind = %job.kind, problem = %p, "ACME challenge invalid")
                    }
                }
                let engine = app.clone();
                let recorded = tokio::task::spawn_blocking(move || {
                    engine.acme.finish_validation(&job, outcome, unix_now())
                })
                .await;
                if let Ok(Err(p)) = recorded {
                    tracing::error!(problem = %p, "could not record an ACME validation");
                }
                drop(permit);
            });
        }
    });
}

async fn validate(app: &App, client: &reqwest::Client, job: &ValidationJob) -> Result<(), Problem> {
    match job.kind.as_str() {
        "http-01" => {
            let attempts = app.config.acme.validation_attempts.max(1);
            let mut last = Problem::new(ProblemType::Connection, "not attempted");
            for attempt in 0..attempts {
                if attempt > 0 {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                match http01(app, client, job).await {
                    Ok(()) => return Ok(()),
                    // A wrong answer is final; a connection failure is retried.
                    Err(p) if p.kind != ProblemType::Connection => return Err(p),
                    Err(p) => last = p,
                }
            }
            Err(last)
        }
        other => Err(Problem::malformed(format!(
            "challenge type {other} is not validated by this server"
        ))),
    }
}

async fn http01(app: &App, client: &reqwest::Client, job: &ValidationJob) -> Result<(), Problem> {
    let host = match job.identifier.value.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => job.identifier.value.clone(),
    };
    let url = format!(
        "http://{host}:{}/.well-known/acme-challenge/{}",
        app.config.acme.http01_port, job.token
    );
    let mut response = client.get(&url).send().await.map_err(|e| {
        Problem::new(
            ProblemType::Connection,
            format!("fetching {url}: {}", error_chain(&e)),
        )
    })?;
    if !response.status().is_success() {
        return Err(Problem::unauthorized(format!(
            "{url} answered HTTP {}",
            response.status().as_u16()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Problem::new(ProblemType::Connection, format!("reading {url}: {e}")))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(Problem::new(
                ProblemType::IncorrectResponse,
                format!("{url} answered more than {MAX_RESPONSE_BYTES} bytes"),
            ));
        }
    }
    let text = String::from_utf8_lossy(&body);
    if text.trim_end() == job.key_authorization {
        Ok(())
    } else {
        Err(Problem::new(
            ProblemType::IncorrectResponse,
            format!("{url} did not answer the key authorization"),
        ))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
