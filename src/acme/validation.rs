//! Runs ACME challenge validations off the request path: takes the jobs the
//! engine queued, proves the identifier (http-01: fetch
//! `http://<identifier>:<acme.http01_port>/.well-known/acme-challenge/<token>`
//! and compare it with the key authorization; dns-01: look up the TXT
//! records of `_acme-challenge.<name>` with hickory-resolver and find
//! base64url(SHA-256(key authorization))), with a timeout per attempt and
//! `acme.validation_attempts` tries for transient failures, then reports the
//! outcome back to the engine, which records it on the challenge and
//! authorization.
//!
//! No protocol state here: only the network check and the hand-back.

use crate::acme::store::Acme;
use crate::config::{AcmeConfig, Config};
use crate::model::time::unix_now;
use custos_acme::order::ValidationJob;
use custos_acme::problem::{Problem, ProblemType};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::Resolver;
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

/// Starts the validator on the engine's job queue (what the ACME domain
/// queues); it stops when `shutdown` is cancelled.
pub fn spawn(
    engine: Arc<Acme>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<ValidationJob>,
    config: &Config,
    shutdown: CancellationToken,
) {
    let acme = Arc::new(config.acme.clone());
    let own = own_endpoints(config);
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            redirect_allowed(&own, attempt)
        }))
        .timeout(Duration::from_secs(acme.validation_timeout_secs))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the ACME validation client");
            return;
        }
    };
    match engine.resume_validations() {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            count = n,
            "resuming ACME validations interrupted by a restart"
        ),
        Err(p) => tracing::error!(problem = %p, "cannot resume interrupted ACME validations"),
    }
    // Without a usable resolver (no acme.dns_resolver and no readable
    // /etc/resolv.conf) dns-01 fails per challenge; http-01 still runs.
    let resolver = match dns_resolver(&acme) {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the dns-01 resolver; dns-01 challenges will fail");
            None
        }
    };
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
            let (engine, acme) = (engine.clone(), acme.clone());
            let client = client.clone();
            let resolver = resolver.clone();
            tokio::spawn(async move {
                let outcome = validate(&acme, &client, &resolver, &job).await;
                match &outcome {
                    Ok(()) => {
                        tracing::info!(identifier = %job.identifier.value, kind = %job.kind, "ACME challenge valid")
                    }
                    Err(p) => {
                        tracing::info!(identifier = %job.identifier.value, kind = %job.kind, problem = %p, "ACME challenge invalid")
                    }
                }
                let recorded = tokio::task::spawn_blocking(move || {
                    engine.finish_validation(&job, outcome, unix_now())
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

/// custos's own listeners (host, port), which http-01 redirects may not
/// lead to: a client must not make custos send requests to itself.
fn own_endpoints(config: &crate::config::Config) -> Vec<(String, u16)> {
    let mut out = vec![
        (
            config.http_listen.ip().to_string(),
            config.http_listen.port(),
        ),
        (
            config.https_listen.ip().to_string(),
            config.https_listen.port(),
        ),
    ];
    for url in [&config.public_http_url, &config.public_https_url]
        .into_iter()
        .flatten()
    {
        if let Ok(u) = reqwest::Url::parse(url) {
            if let (Some(h), Some(p)) = (u.host_str(), u.port_or_known_default()) {
                out.push((h.trim_matches(['[', ']']).to_ascii_lowercase(), p));
            }
        }
    }
    out
}

/// http-01 follows at most 5 redirects, only to http or https on ports 80
/// and 443 (RFC 8555 §8.3 and what public CAs do), never to a loopback
/// address or to custos's own listeners.
fn redirect_allowed(
    own: &[(String, u16)],
    attempt: reqwest::redirect::Attempt<'_>,
) -> reqwest::redirect::Action {
    if attempt.previous().len() >= 5 {
        return attempt.error("more than 5 redirects");
    }
    let url = attempt.url();
    let port = url.port_or_known_default();
    let scheme_ok = matches!(url.scheme(), "http" | "https");
    if !scheme_ok || !matches!(port, Some(80) | Some(443)) {
        return attempt.error("redirect to a port other than 80 or 443");
    }
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback() || ip.is_unspecified());
    let ours = own
        .iter()
        .any(|(h, p)| Some(*p) == port && (*h == host || h == "0.0.0.0" || h == "::"));
    if loopback || ours {
        return attempt.error("redirect to this server or a loopback address");
    }
    attempt.follow()
}

/// A problem that says what failed without passing on the network's own
/// error text (which can reveal what lies behind the address).
fn connection_problem(url: &str, e: &reqwest::Error) -> Problem {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_redirect() {
        "was redirected to an address validation does not follow (only ports 80 and 443, never this server)"
    } else {
        "could not be fetched"
    };
    Problem::new(ProblemType::Connection, format!("{url} {what}"))
}

/// The dns-01 resolver: `acme.dns_resolver` or the system's, without a
/// cache (a retried validation must see a record published meanwhile).
fn dns_resolver(
    config: &crate::config::AcmeConfig,
) -> anyhow::Result<Resolver<TokioConnectionProvider>> {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::proto::xfer::Protocol;
    let mut builder = match &config.dns_resolver {
        Some(addr) => {
            let addr = *addr;
            let mut c = ResolverConfig::new();
            c.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
            c.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            Resolver::builder_with_config(c, TokioConnectionProvider::default())
        }
        None => Resolver::builder_tokio()?,
    };
    let opts = builder.options_mut();
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(config.validation_timeout_secs);
    opts.attempts = 1;
    Ok(builder.build())
}

async fn validate(
    acme: &AcmeConfig,
    client: &reqwest::Client,
    resolver: &Option<Arc<Resolver<TokioConnectionProvider>>>,
    job: &ValidationJob,
) -> Result<(), Problem> {
    let attempts = acme.validation_attempts.max(1);
    let mut last = Problem::new(ProblemType::Connection, "not attempted");
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let outcome = match job.kind.as_str() {
            "http-01" => http01(acme.http01_port, client, job).await,
            "dns-01" => match resolver {
                Some(r) => dns01(r, job).await,
                None => {
                    return Err(Problem::new(
                        ProblemType::Dns,
                        "no DNS resolver is configured (set acme.dns_resolver)",
                    ))
                }
            },
            other => {
                return Err(Problem::malformed(format!(
                    "challenge type {other} is not validated by this server"
                )))
            }
        };
        match outcome {
            Ok(()) => return Ok(()),
            // A wrong answer is final; connection and DNS failures are retried.
            Err(p) if !matches!(p.kind, ProblemType::Connection | ProblemType::Dns) => {
                return Err(p)
            }
            Err(p) => last = p,
        }
    }
    Err(last)
}

async fn dns01(
    resolver: &Resolver<TokioConnectionProvider>,
    job: &ValidationJob,
) -> Result<(), Problem> {
    let name = format!("_acme-challenge.{}.", job.identifier.value);
    let expected = custos_acme::jws::b64u(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, job.key_authorization.as_bytes())
            .as_ref(),
    );
    let lookup = match resolver.txt_lookup(name.as_str()).await {
        Ok(l) => l,
        Err(e) if e.is_no_records_found() => {
            return Err(Problem::unauthorized(format!("no TXT record at {name}")))
        }
        Err(e) => {
            return Err(Problem::new(
                ProblemType::Dns,
                format!("looking up TXT {name}: {e}"),
            ))
        }
    };
    let found = lookup.iter().any(|txt| {
        let value: Vec<u8> = txt
            .txt_data()
            .iter()
            .flat_map(|part| part.iter().copied())
            .collect();
        value == expected.as_bytes()
    });
    if found {
        Ok(())
    } else {
        Err(Problem::new(
            ProblemType::IncorrectResponse,
            format!("no TXT record at {name} holds the expected digest"),
        ))
    }
}

async fn http01(port: u16, client: &reqwest::Client, job: &ValidationJob) -> Result<(), Problem> {
    let host = match job.identifier.value.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => job.identifier.value.clone(),
    };
    let url = format!(
        "http://{host}:{}/.well-known/acme-challenge/{}",
        port, job.token
    );
    let mut response = client.get(&url).send().await.map_err(|e| {
        tracing::debug!(url = %url, error = %error_chain(&e), "http-01 fetch failed");
        connection_problem(&url, &e)
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
        .map_err(|e| connection_problem(&url, &e))?
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
