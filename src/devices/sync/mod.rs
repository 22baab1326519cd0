//! MDM inventory sync: each `[mdm.<name>]` source's inventory is read in
//! full ([`sources`]), compared with ours, and the differences are applied
//! through the same path as webhook events ([`DeviceEvents`]): a device
//! that became lost, wiped, unenrolled or retired has its certificates
//! revoked (reasons from `[webhook_reasons]`), durably, audited as
//! `sync:<name>`, with outbound notifications. Devices new to us are added.
//!
//! Safety against an MDM glitch:
//! - an MDM that answers an error, or no devices at all, changes nothing;
//! - a device the source listed before and lists no more counts as
//!   unenrolled only when two consecutive syncs agree;
//! - a sync that would change more than `max_changes_percent` of the
//!   source's devices applies nothing (`custos_mdm_sync_held`) until
//!   `custos mdm sync --name NAME --confirm`.
//!
//! What each sync did is kept per source in the ledger (`custos mdm
//! status`) and in metrics.

mod plan;
pub mod sources;

use plan::{kind_named, plan, Plan};

use crate::config::MdmSource;
use crate::devices::events::DeviceEvents;
use crate::ledger::Ledger;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};
use sources::{MdmDevice, Reader};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One change a sync makes to a device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedChange {
    /// The device (inventory serial).
    pub device: String,
    /// What happens: lost, wiped, unenrolled, deleted (retired),
    /// noncompliant, compliant, found.
    pub change: String,
    /// Its status before.
    pub from: String,
    /// When the MDM says it happened (Unix seconds).
    pub occurred_at: u64,
}

/// What one sync did (or would do).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyncReport {
    /// The source.
    pub source: String,
    /// Started (Unix seconds).
    pub started_at: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// `applied`, `unchanged`, `held`, `dry-run` or `failed`.
    pub result: String,
    /// Why it failed or was held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Devices the MDM listed.
    pub seen: usize,
    /// Devices added to the inventory.
    pub added: usize,
    /// Devices moved to the inventory group their MDM group maps to.
    #[serde(default)]
    pub regrouped: usize,
    /// Requests made to the MDM.
    pub requests: usize,
    /// Devices listed before and missing now for the first time (they
    /// count as unenrolled if the next sync agrees).
    pub missing_once: usize,
    /// The changes (applied, or held, or what a dry run would apply).
    pub changes: Vec<PlannedChange>,
}

/// What a source's syncs remember.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct SyncState {
    /// Inventory serials the last applied sync saw.
    seen: BTreeSet<String>,
    /// Of those, the ones missing once already.
    missing: BTreeSet<String>,
    /// The last sync's report.
    last: Option<SyncReport>,
    /// When a sync last succeeded (applied or unchanged).
    last_success: Option<u64>,
}

/// A source's standing for `custos mdm status`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SourceStatus {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Seconds between syncs.
    pub sync_interval_secs: u64,
    /// Last success (Unix seconds).
    pub last_success: Option<u64>,
    /// The last sync.
    pub last: Option<SyncReport>,
}

/// Why a sync could not be asked for.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No such source.
    #[error("no MDM source {0:?} (configured: {1})")]
    UnknownSource(String, String),
    /// Ledger or task failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

struct SyncMetrics {
    last_success: GaugeVec,
    duration: GaugeVec,
    devices: IntGaugeVec,
    changes: IntCounterVec,
    failures: IntCounterVec,
    held: IntGaugeVec,
}

impl SyncMetrics {
    fn new(registry: &prometheus::Registry) -> anyhow::Result<SyncMetrics> {
        let l = &["source"];
        let m = SyncMetrics {
            last_success: GaugeVec::new(
                Opts::new(
                    "custos_mdm_sync_last_success_timestamp_seconds",
                    "When each MDM source last synced successfully",
                ),
                l,
            )?,
            duration: GaugeVec::new(
                Opts::new(
                    "custos_mdm_sync_duration_seconds",
                    "How long each source's last sync took",
                ),
                l,
            )?,
            devices: IntGaugeVec::new(
                Opts::new(
                    "custos_mdm_sync_devices",
                    "Devices each source listed at its last sync",
                ),
                l,
            )?,
            changes: IntCounterVec::new(
                Opts::new(
                    "custos_mdm_sync_changes_total",
                    "Device changes applied by syncs",
                ),
                l,
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "custos_mdm_sync_failures_total",
                    "Syncs that failed (the MDM answered an error or nothing)",
                ),
                l,
            )?,
            held: IntGaugeVec::new(
                Opts::new(
                    "custos_mdm_sync_held",
                    "1 while a source's last sync was held for too many changes",
                ),
                l,
            )?,
        };
        for c in [
            Box::new(m.last_success.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.duration.clone()),
            Box::new(m.devices.clone()),
            Box::new(m.changes.clone()),
            Box::new(m.failures.clone()),
            Box::new(m.held.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(m)
    }
}

/// Syncs the configured MDM sources.
pub struct MdmSync {
    ledger: Arc<Ledger>,
    events: Arc<DeviceEvents>,
    sources: BTreeMap<String, MdmSource>,
    metrics: SyncMetrics,
    /// One sync per source at a time.
    running: std::sync::Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for MdmSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdmSync")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The audit entry of a sync asked for by an operator (`mdm.sync`): the
/// source, the options and what came of it. (The changes it applied are
/// audited as device events by `sync:<name>`.)
pub fn audit(
    authority: &crate::ra::Authority,
    actor: &str,
    name: &str,
    options: SyncOptions,
    report: &SyncReport,
) {
    authority.audit(
        actor,
        "mdm.sync",
        serde_json::json!({
            "source": name,
            "dry_run": options.dry_run,
            "confirm": options.confirm,
            "changes": report.changes.len(),
            "outcome": report.result,
        }),
        crate::model::time::unix_now(),
    );
}

/// Options of one sync.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SyncOptions {
    /// Compute and report, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Apply even past `max_changes_percent`.
    #[serde(default)]
    pub confirm: bool,
}

impl MdmSync {
    /// The sync service for `sources`.
    pub fn new(
        ledger: Arc<Ledger>,
        events: Arc<DeviceEvents>,
        sources: BTreeMap<String, MdmSource>,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<MdmSync> {
        Ok(MdmSync {
            ledger,
            events,
            sources,
            metrics: SyncMetrics::new(registry)?,
            running: std::sync::Mutex::new(BTreeSet::new()),
        })
    }

    /// Every source's standing.
    pub fn status(&self) -> anyhow::Result<Vec<SourceStatus>> {
        let mut out = Vec::new();
        for (name, s) in &self.sources {
            let state: SyncState = self.ledger.mdm_sync_state(name)?.unwrap_or_default();
            out.push(SourceStatus {
                name: name.clone(),
                kind: s.kind.name().into(),
                sync_interval_secs: s.sync_interval_secs,
                last_success: state.last_success,
                last: state.last,
            });
        }
        Ok(out)
    }

    /// Runs one sync of source `name`.
    pub async fn sync(
        self: &Arc<Self>,
        name: &str,
        options: SyncOptions,
    ) -> Result<SyncReport, SyncError> {
        let source = self.sources.get(name).ok_or_else(|| {
            SyncError::UnknownSource(
                name.into(),
                self.sources.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        })?;
        if !self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string())
        {
            return Err(SyncError::Internal(anyhow::anyhow!(
                "a sync of {name} is already running"
            )));
        }
        let result = self.sync_now(name, source, options).await;
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        result
    }

    async fn sync_now(
        self: &Arc<Self>,
        name: &str,
        source: &MdmSource,
        options: SyncOptions,
    ) -> Result<SyncReport, SyncError> {
        let started = std::time::Instant::now();
        let now = crate::model::time::unix_now();
        let mut report = SyncReport {
            source: name.into(),
            started_at: now,
            ..SyncReport::default()
        };
        let mut reader = Reader::new(source)?;
        let listed = reader.read_all().await;
        report.requests = reader.requests;
        let devices = match listed {
            Ok(d) if d.is_empty() => Err("the MDM listed no devices; nothing changed".to_string()),
            Ok(d) => Ok(d),
            Err(e) => Err(format!("{e}; nothing changed")),
        };
        let me = self.clone();
        let (name_owned, source_owned) = (name.to_string(), source.clone());
        let report = tokio::task::spawn_blocking(move || {
            me.decide_and_apply(
                &name_owned,
                &source_owned,
                devices,
                options,
                report,
                now,
                started,
            )
        })
        .await
        .map_err(|e| anyhow::anyhow!("sync task: {e}"))??;
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_and_apply(
        &self,
        name: &str,
        source: &MdmSource,
        devices: Result<Vec<MdmDevice>, String>,
        options: SyncOptions,
        mut report: SyncReport,
        now: u64,
        started: std::time::Instant,
    ) -> anyhow::Result<SyncReport> {
        let mut state: SyncState = self.ledger.mdm_sync_state(name)?.unwrap_or_default();
        let label = [name];
        let devices = match devices {
            Ok(d) => d,
            Err(why) => {
                report.result = "failed".into();
                report.reason = Some(why.clone());
                self.finish(&mut report, name, started);
                self.metrics.failures.with_label_values(&label).inc();
                tracing::warn!(source = name, error = %why, "MDM sync failed");
                if !options.dry_run {
                    state.last = Some(report.clone());
                    self.ledger.put_mdm_sync_state(name, &state)?;
                }
                return Ok(report);
            }
        };
        report.seen = devices.len();
        self.metrics
            .devices
            .with_label_values(&label)
            .set(devices.len() as i64);
        let plan = plan(&self.ledger, source, &devices, &state, now)?;
        report.added = plan.added.len();
        report.regrouped = plan.regrouped.len();
        report.missing_once = plan.missing.len();
        report.changes = plan.changes.clone();
        let base = state.seen.len().max(plan.seen.len()).max(1);
        let limit = source.max_changes_percent / 100.0 * base as f64;
        let too_many = plan.changes.len() as f64 > limit && !plan.changes.is_empty();
        if options.dry_run {
            report.result = "dry-run".into();
        } else if too_many && !options.confirm {
            report.result = "held".into();
            report.reason = Some(format!(
                "{} changes are more than {}% of {base} devices; review them (custos mdm sync --name {name} --dry-run) and apply with --confirm",
                plan.changes.len(),
                source.max_changes_percent
            ));
            self.metrics.held.with_label_values(&label).set(1);
            tracing::warn!(
                source = name,
                changes = plan.changes.len(),
                devices = base,
                "MDM sync held: too many changes at once; nothing applied"
            );
            for c in plan.changes.iter().take(20) {
                tracing::warn!(source = name, device = %c.device, change = %c.change, "held change");
            }
            state.last = Some(report.clone());
        } else {
            self.apply(name, plan, &mut state, &mut report, now)?;
        }
        self.finish(&mut report, name, started);
        if !options.dry_run {
            if let Some(last) = state.last.as_mut() {
                last.duration_ms = report.duration_ms;
            }
            self.ledger.put_mdm_sync_state(name, &state)?;
        }
        Ok(report)
    }

    fn finish(&self, report: &mut SyncReport, name: &str, started: std::time::Instant) {
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.metrics
            .duration
            .with_label_values(&[name])
            .set(started.elapsed().as_secs_f64());
    }

    /// Applies a plan: new devices added, changes recorded and processed as
    /// device events (revocations, statuses, audit, notifications).
    fn apply(
        &self,
        name: &str,
        plan: Plan,
        state: &mut SyncState,
        report: &mut SyncReport,
        now: u64,
    ) -> anyhow::Result<()> {
        let label = [name];
        self.ledger.put_devices(&plan.added)?;
        for (serial, group) in &plan.regrouped {
            self.ledger.set_device_group(serial, group, now)?;
        }
        if !plan.added.is_empty() || !plan.regrouped.is_empty() {
            // Like an import: one entry for the devices the sync added
            // and moved (their status changes are audited as events).
            let moved: Vec<_> = plan.regrouped.iter().take(1000).collect();
            let entry = crate::ledger::AuditEntry::new(
                now,
                "device",
                &format!("sync:{name}"),
                serde_json::json!({
                    "action": "sync",
                    "added": plan.added.len(),
                    "regrouped": plan.regrouped.len(),
                    "moved": moved,
                    "outcome": "imported",
                }),
            );
            self.ledger.append_audit(&entry)?;
        }
        let events: Vec<custos_webhooks::DeviceEvent> = plan
            .changes
            .iter()
            .filter_map(|c| {
                Some(custos_webhooks::DeviceEvent {
                    source: format!("sync:{name}"),
                    event_id: format!("{now}:{}:{}", c.device, c.change),
                    kind: kind_named(&c.change)?,
                    serial: Some(c.device.clone()),
                    udid: None,
                    mdm_id: None,
                    occurred_at: c.occurred_at,
                })
            })
            .collect();
        self.events.record_and_process(events, now)?;
        self.metrics
            .changes
            .with_label_values(&label)
            .inc_by(plan.changes.len() as u64);
        self.metrics.held.with_label_values(&label).set(0);
        self.metrics
            .last_success
            .with_label_values(&label)
            .set(now as f64);
        report.result =
            if plan.changes.is_empty() && plan.added.is_empty() && plan.regrouped.is_empty() {
                "unchanged"
            } else {
                "applied"
            }
            .into();
        // Missing once: still counted as this source's, so the next sync
        // can agree that it is gone.
        state.seen = plan.seen.union(&plan.missing).cloned().collect();
        state.missing = plan.missing;
        state.last_success = Some(now);
        state.last = Some(report.clone());
        tracing::info!(
            source = name,
            seen = report.seen,
            added = report.added,
            changes = report.changes.len(),
            "MDM sync applied"
        );
        Ok(())
    }

    /// Syncs every source on its interval until `shutdown` (the first
    /// sync after at most a minute).
    pub fn spawn(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        for (name, source) in &self.sources {
            let (me, name, every) = (self.clone(), name.clone(), source.sync_interval_secs);
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                // The first sync soon after start (a webhook may have been
                // missed while custos was down), then on the interval.
                let mut wait = std::time::Duration::from_secs(every.min(60));
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    if let Err(e) = me.sync(&name, SyncOptions::default()).await {
                        tracing::warn!(source = %name, error = %e, "scheduled MDM sync did not run");
                    }
                    wait = std::time::Duration::from_secs(every);
                }
            });
        }
    }
}
