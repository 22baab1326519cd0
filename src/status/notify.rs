//! Outbound revocation notifications (`[notify]`): every revocation in the
//! ledger's log is POSTed to each subscriber as a Standard Webhooks v1
//! signed JSON message, from the persisted outbox (`ledger/outbox.rs`),
//! with exponential backoff and a dead-letter state.
//!
//! One background task follows the revocation log: it moves the outbox
//! cursors, sends what is due (one subscriber's messages in order, the
//! subscribers side by side) and records each result before the next try.
//! Delivery is at least once: a receiver deduplicates on `webhook-id`.
//! Nothing here revokes or decides status; secrets never reach the logs.

use crate::config::{NotifyConfig, Subscriber};
use crate::ledger::{Ledger, OutboxEntry, OutboxState};
use crate::model::time::unix_now;
use custos_webhooks::standard::Secret;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the log is looked at for new revocations.
const POLL: Duration = Duration::from_millis(200);
/// Most entries enqueued or attempted per round.
const BATCH: usize = 500;
/// Rounds between two counts of the outbox for the gauges (10 s).
const COUNT_EVERY: u64 = 50;
/// The event type in every message.
pub const EVENT_TYPE: &str = "certificate.revoked";

/// Checks `[notify]`.
pub fn check(c: &NotifyConfig) -> Result<(), String> {
    if c.max_attempts == 0 || c.max_attempts > 100 {
        return Err("notify.max_attempts must be between 1 and 100".into());
    }
    if c.initial_backoff_secs == 0 || c.initial_backoff_secs > c.max_backoff_secs {
        return Err(
            "notify.initial_backoff_secs must be at least 1 and at most notify.max_backoff_secs"
                .into(),
        );
    }
    if c.timeout_secs == 0 || c.timeout_secs > 300 {
        return Err("notify.timeout_secs must be between 1 and 300".into());
    }
    for (name, s) in &c.subscribers {
        let at = |e: String| format!("[notify.subscribers.{name}]: {e}");
        if !crate::model::is_plain_name(name) {
            return Err(at(
                "the name may hold only letters, digits, '-' and '_'".into()
            ));
        }
        if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
            return Err(at(format!("url {:?} is not an http(s) URL", s.url)));
        }
        Secret::parse(&s.secret).map_err(at)?;
        if let Some(f) = &s.ca_file {
            read_anchors(f).map_err(at)?;
        }
    }
    Ok(())
}

fn read_anchors(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// The wait before attempt `attempts + 1`, after `attempts` failures:
/// `initial · 2^(attempts-1)`, capped, plus up to a quarter more (`jitter`
/// in 0..=1) so that a recovered receiver is not hit all at once.
pub fn backoff(c: &NotifyConfig, attempts: u32, jitter: f64) -> u64 {
    let base = c
        .initial_backoff_secs
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(30))
        .min(c.max_backoff_secs);
    base + (base as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as u64
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    f64::from(u16::from_be_bytes(b)) / f64::from(u16::MAX)
}

/// The message body for one outbox entry (the certificate's record, when
/// the ledger still has it, adds its subject and device).
pub fn message(entry: &OutboxEntry, ledger: &Ledger) -> Vec<u8> {
    let r = &entry.revocation;
    let mut data = serde_json::json!({
        "serial": r.serial.to_string(),
        "reason": r.revocation.reason.name(),
        "revoked_at": crate::model::time::rfc3339(r.revocation.time),
        "crl_shard": r.crl_shard,
        "sequence": r.seq,
    });
    if let Ok(Some(rec)) = ledger.get(&r.serial) {
        data["subject"] = rec.subject.clone().into();
        data["issuer_id"] = rec.issuer_id.clone().into();
        data["not_after"] = crate::model::time::rfc3339(rec.not_after).into();
        data["device"] = serde_json::to_value(&rec.device).unwrap_or_default();
    }
    serde_json::to_vec(&serde_json::json!({
        "type": EVENT_TYPE,
        "timestamp": crate::model::time::rfc3339(r.revocation.time),
        "data": data,
    }))
    .unwrap_or_default()
}

/// Counters and gauges of the outbox.
#[derive(Clone, Debug)]
struct NotifyMetrics {
    entries: IntGaugeVec,
    deliveries: IntCounterVec,
}

impl NotifyMetrics {
    fn new(registry: &Registry) -> NotifyMetrics {
        let entries = IntGaugeVec::new(
            Opts::new(
                "custos_notify_outbox_entries",
                "Revocation notifications in the outbox, by state (pending, dead)",
            ),
            &["state"],
        )
        .expect("valid metric");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "custos_notify_deliveries_total",
                "Notification delivery attempts by subscriber and result (delivered, failed, dead)",
            ),
            &["subscriber", "result"],
        )
        .expect("valid metric");
        // A second registration (tests building two notifiers on one
        // registry) keeps the first; the counters still count.
        let _ = registry.register(Box::new(entries.clone()));
        let _ = registry.register(Box::new(deliveries.clone()));
        NotifyMetrics {
            entries,
            deliveries,
        }
    }
}

struct Target {
    url: String,
    secret: Secret,
    http: reqwest::Client,
}

/// The background sender.
pub struct Notifier {
    ledger: Arc<Ledger>,
    config: NotifyConfig,
    targets: BTreeMap<String, Target>,
    metrics: NotifyMetrics,
    rounds: AtomicU64,
    changed: AtomicBool,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Notifier({} subscribers)", self.targets.len())
    }
}

fn client(c: &NotifyConfig, s: &Subscriber) -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a default crypto provider: use aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(c.timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")));
    if let Some(f) = &s.ca_file {
        for cert in read_anchors(f).map_err(anyhow::Error::msg)? {
            b = b.add_root_certificate(cert);
        }
    }
    Ok(b.build()?)
}

impl Notifier {
    /// A notifier for the configured subscribers.
    pub fn new(
        ledger: Arc<Ledger>,
        config: &NotifyConfig,
        registry: &Registry,
    ) -> anyhow::Result<Notifier> {
        let mut targets = BTreeMap::new();
        for (name, s) in &config.subscribers {
            targets.insert(
                name.clone(),
                Target {
                    url: s.url.clone(),
                    secret: Secret::parse(&s.secret).map_err(anyhow::Error::msg)?,
                    http: client(config, s)?,
                },
            );
        }
        Ok(Notifier {
            ledger,
            config: config.clone(),
            targets,
            metrics: NotifyMetrics::new(registry),
            rounds: AtomicU64::new(0),
            changed: AtomicBool::new(false),
        })
    }

    /// One round: enqueue new revocations, attempt what is due. Returns how
    /// many attempts were made.
    pub async fn round(self: &Arc<Self>, now: u64) -> anyhow::Result<usize> {
        let names: Vec<String> = self.targets.keys().cloned().collect();
        let ledger = self.ledger.clone();
        // Counting walks every entry: only after a round that changed the
        // outbox, or every COUNT_EVERY rounds, so that a long backlog (a
        // subscriber down for days) costs little per round.
        let changed = self.changed.swap(false, Ordering::Relaxed);
        let count = changed || self.rounds.fetch_add(1, Ordering::Relaxed) % COUNT_EVERY == 0;
        let (due, counts) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let queued = ledger.enqueue_notifications(&names, now, BATCH)?;
            // One subscriber's messages go in order: only the head of each
            // queue can be due, so a batch from each is enough.
            let mut due = Vec::new();
            for name in &names {
                due.extend(ledger.outbox_of(name, OutboxState::Pending, BATCH)?);
            }
            let counts = if count || queued > 0 {
                Some((
                    ledger.outbox_count(OutboxState::Pending)?,
                    ledger.outbox_count(OutboxState::Dead)?,
                ))
            } else {
                None
            };
            Ok((due, counts))
        })
        .await??;
        if let Some((pending, dead)) = counts {
            self.metrics
                .entries
                .with_label_values(&["pending"])
                .set(pending as i64);
            self.metrics
                .entries
                .with_label_values(&["dead"])
                .set(dead as i64);
        }
        let mut per_sub: BTreeMap<String, Vec<OutboxEntry>> = BTreeMap::new();
        for e in due {
            if e.next_attempt_at <= now && self.targets.contains_key(&e.subscriber) {
                per_sub.entry(e.subscriber.clone()).or_default().push(e);
            }
        }
        // Side by side: one slow receiver must not hold up the others.
        let mut tasks = tokio::task::JoinSet::new();
        for (name, entries) in per_sub {
            let me = self.clone();
            tasks.spawn(async move { me.deliver_in_order(name, entries, now).await });
        }
        let mut attempts = 0;
        while let Some(n) = tasks.join_next().await {
            attempts += n??;
        }
        if attempts > 0 {
            self.changed.store(true, Ordering::Relaxed);
        }
        Ok(attempts)
    }

    /// Sends one subscriber's due entries in order; stops at the first
    /// failure (later ones wait their turn, keeping order).
    async fn deliver_in_order(
        &self,
        name: String,
        entries: Vec<OutboxEntry>,
        now: u64,
    ) -> anyhow::Result<usize> {
        let Some(target) = self.targets.get(&name) else {
            return Ok(0);
        };
        let mut attempts = 0;
        for mut e in entries.into_iter().take(BATCH) {
            attempts += 1;
            let body = message(&e, &self.ledger);
            let result = self.send(target, &e.message_id(), &body).await;
            e.attempts += 1;
            let after = match result {
                Ok(()) => {
                    self.metrics
                        .deliveries
                        .with_label_values(&[&name, "delivered"])
                        .inc();
                    None
                }
                Err(Failure { why, gone }) => {
                    e.last_error = Some(why.clone());
                    if gone || e.attempts >= self.config.max_attempts {
                        e.state = OutboxState::Dead;
                        self.metrics
                            .deliveries
                            .with_label_values(&[&name, "dead"])
                            .inc();
                        tracing::warn!(subscriber = %name, seq = e.seq, attempts = e.attempts, error = %why, "revocation notification is dead");
                    } else {
                        e.next_attempt_at = now + backoff(&self.config, e.attempts, jitter());
                        self.metrics
                            .deliveries
                            .with_label_values(&[&name, "failed"])
                            .inc();
                        tracing::info!(subscriber = %name, seq = e.seq, attempts = e.attempts, error = %why, "revocation notification failed; will retry");
                    }
                    Some(e.clone())
                }
            };
            let ledger = self.ledger.clone();
            let (sub, seq) = (name.clone(), e.seq);
            let stop = after.is_some();
            tokio::task::spawn_blocking(move || ledger.update_outbox(&sub, seq, after.as_ref()))
                .await??;
            if stop {
                break;
            }
        }
        Ok(attempts)
    }

    async fn send(&self, target: &Target, id: &str, body: &[u8]) -> Result<(), Failure> {
        let ts = unix_now();
        let resp = target
            .http
            .post(&target.url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", target.secret.sign(id, ts, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Failure {
                // Without the URL: a token in its query must not be logged.
                why: e.without_url().to_string(),
                gone: false,
            })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure {
                why: format!("HTTP {}", status.as_u16()),
                gone: status == reqwest::StatusCode::GONE,
            })
        }
    }

    /// Runs rounds until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.round(unix_now()).await {
                tracing::error!(error = %e, "revocation notifications: round failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

struct Failure {
    why: String,
    gone: bool,
}

/// Starts the notifier when subscribers are configured.
pub fn spawn(
    ledger: Arc<Ledger>,
    config: &NotifyConfig,
    registry: &Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if config.subscribers.is_empty() {
        return Ok(());
    }
    let n = Arc::new(Notifier::new(ledger, config, registry)?);
    tokio::spawn(n.run(shutdown));
    Ok(())
}
