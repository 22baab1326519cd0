//! The overview page: certificates by status; issuance and revocations per
//! hour over the last day and OCSP answers per second over the last hour,
//! as small inline SVG charts (no script, no external asset); CRL shards,
//! the notification outbox and MDM syncs. What is stale is red.
//!
//! The hourly counts come from the audit log (every issuance and
//! revocation is an entry): read backwards over the last day once, then
//! only the entries written since the page was last shown.

use super::pages::page;
use super::Session;
use crate::app::App;
use crate::model::time::{rfc3339, unix_now};
use maud::{html, Markup};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Most audit entries read for the hourly counts.
const HOURLY_MAX_SCAN: usize = 500_000;
/// Most expired certificates counted.
const EXPIRED_MAX: u64 = 5_000_000;

/// Issuance and revocations per clock hour over the last day, oldest
/// first (the last: the hour now running), as of audit entry `seq`.
#[derive(Clone)]
struct Hourly {
    /// The end of the last hour (Unix seconds, a multiple of 3,600).
    end: u64,
    seq: u64,
    issued: Vec<u64>,
    revoked: Vec<u64>,
    complete: bool,
}

const HOURS: usize = 24;
const KINDS: [&str; 2] = ["issuance", "revocation"];

impl Hourly {
    /// Counted afresh from the audit log.
    fn read(app: &App, end: u64) -> anyhow::Result<Hourly> {
        let mut h = app
            .ledger
            .audit_hourly(end, HOURS, &KINDS, HOURLY_MAX_SCAN)?;
        let revoked = h.counts.pop().unwrap_or_default();
        Ok(Hourly {
            end,
            seq: h.newest,
            issued: h.counts.pop().unwrap_or_default(),
            revoked,
            complete: h.complete,
        })
    }

    /// Brought up to `end` and the newest entry: the hours that passed
    /// shift out, the entries written since are added.
    fn advance(mut self, app: &App, end: u64) -> anyhow::Result<Hourly> {
        let passed = ((end - self.end) / 3600) as usize;
        for counts in [&mut self.issued, &mut self.revoked] {
            counts.drain(..passed.min(HOURS));
            counts.resize(HOURS, 0);
        }
        self.end = end;
        let start = end - HOURS as u64 * 3600;
        let heads = app.ledger.audit_heads_after(self.seq, HOURLY_MAX_SCAN)?;
        if heads.len() >= HOURLY_MAX_SCAN {
            return Hourly::read(app, end);
        }
        for head in heads {
            self.seq = head.seq;
            let hour = (head.time.saturating_sub(start) / 3600) as usize;
            match head.kind.as_str() {
                "issuance" if head.time >= start => self.issued[hour.min(HOURS - 1)] += 1,
                "revocation" if head.time >= start => self.revoked[hour.min(HOURS - 1)] += 1,
                _ => {}
            }
        }
        Ok(self)
    }
}

/// A value the overview keeps between page loads, per ledger (data dir).
struct Kept<T>(OnceLock<Mutex<HashMap<PathBuf, T>>>);

impl<T: Clone> Kept<T> {
    const fn new() -> Self {
        Kept(OnceLock::new())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, T>> {
        self.0
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, app: &App) -> Option<T> {
        self.map().get(&app.config.data_dir).cloned()
    }

    fn put(&self, app: &App, value: T) {
        self.map().insert(app.config.data_dir.clone(), value);
    }
}

/// The hourly counts of `app`'s ledger, kept between page loads so that a
/// load reads only the entries written since the one before.
fn hourly(app: &App, now: u64) -> anyhow::Result<Hourly> {
    static KEPT: Kept<Hourly> = Kept::new();
    let end = (now / 3600 + 1) * 3600;
    let h = match KEPT.get(app) {
        Some(h) if h.complete && h.end <= end => h.advance(app, end)?,
        _ => Hourly::read(app, end)?,
    };
    KEPT.put(app, h.clone());
    Ok(h)
}

/// A bar chart: one bar per value, each with its own tooltip, between
/// the labels `span.0` (left) and `span.1` (right).
fn bars(
    id: &str,
    label: &str,
    span: (&str, &str),
    values: &[f64],
    tip: impl Fn(usize, f64) -> String,
) -> Markup {
    let max = values.iter().copied().fold(0.0f64, f64::max).max(1e-9);
    let width = values.len().max(1) * 10;
    let peak = if max < 10.0 {
        format!("{max:.1}")
    } else {
        format!("{max:.0}")
    };
    html! {
        figure.chart id=(id) {
            figcaption { (label) @if max > 1e-9 { " (highest " (peak) ")" } }
            svg viewBox={ "0 0 " (width) " 40" } width="100%" height="48" preserveAspectRatio="none" role="img" aria-label=(label) {
                rect x="0" y="0" width=(width) height="40" fill="#f6f8fa" {}
                @for (i, v) in values.iter().enumerate() {
                    @let h = if *v > 0.0 { (v / max * 38.0).max(1.5) } else { 0.0 };
                    rect x=(i * 10 + 1) y=(format!("{:.1}", 40.0 - h)) width="8" height=(format!("{h:.1}")) fill="#0366d6" {
                        title { (tip(i, *v)) }
                    }
                }
            }
            div.span { span { (span.0) } span { (span.1) } }
        }
    }
}

/// The value of a gauge in the process's registry (0 when absent).
fn gauge(app: &App, name: &str) -> f64 {
    app.metrics
        .registry()
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.metric.iter())
        .map(|m| m.gauge.value())
        .sum()
}

/// How many certificates expired before `now` (and whether all were
/// counted): counted once, then only those that expired since the page was
/// last shown, and afresh every hour (bulk imports may add old ones).
fn expired(app: &App, now: u64) -> anyhow::Result<(u64, bool)> {
    /// (counted up to, count, when counted afresh)
    static KEPT: Kept<(u64, u64, u64)> = Kept::new();
    let (count, all, fresh) = match KEPT.get(app) {
        Some((to, count, fresh)) if to <= now && now - fresh < 3600 => {
            let (more, all) = app.ledger.count_expiring(to, now, EXPIRED_MAX)?;
            (count + more, all, fresh)
        }
        _ => {
            let (count, all) = app.ledger.count_expiring(0, now, EXPIRED_MAX)?;
            (count, all, now)
        }
    };
    if all {
        KEPT.put(app, (now, count, fresh));
    }
    Ok((count, all))
}

fn certificates_card(app: &App, now: u64) -> anyhow::Result<Markup> {
    let total = app.ledger.count()?;
    let (expired, all_counted) = expired(app, now)?;
    let revoked: u64 = (0..app.crl.shard_count())
        .filter_map(|s| app.crl.current(s))
        .map(|c| c.entries)
        .sum();
    let good = total.saturating_sub(expired).saturating_sub(revoked);
    Ok(html! {
        div.card id="by-status" {
            h2 { "Certificates by status" }
            p {
                "Good: " strong.good id="count-good" { (good) } " · "
                "revoked (unexpired, on the current CRLs): " strong id="count-revoked" { (revoked) } " · "
                "expired: " strong { (expired) @if !all_counted { "+" } } " · "
                "in the ledger: " strong { (total) }
            }
        }
    })
}

fn activity_card(app: &App, now: u64) -> anyhow::Result<Markup> {
    let h = hourly(app, now)?;
    let hour_tip = |unit: &'static str| {
        move |i: usize, v: f64| {
            let from = h.end - (HOURS - i) as u64 * 3600;
            format!("{v} {unit} from {}", rfc3339(from))
        }
    };
    let issued: Vec<f64> = h.issued.iter().map(|v| *v as f64).collect();
    let revoked: Vec<f64> = h.revoked.iter().map(|v| *v as f64).collect();
    let points = app.ocsp_rates.points();
    let rate: Vec<f64> = points.iter().map(|p| p.per_second).collect();
    let ratio: Vec<f64> = points
        .iter()
        .map(|p| p.hit_ratio.unwrap_or(0.0) * 100.0)
        .collect();
    let last = points.last();
    let stale_after = f64::from(app.config.ocsp.response_validity_hours) * 3600.0 * 0.75;
    let oldest = gauge(app, "custos_ocsp_oldest_precomputed_age_seconds");
    let backlog = gauge(app, "custos_ocsp_refresh_backlog");
    let tip_at = |unit: &'static str| {
        let at: Vec<u64> = points.iter().map(|p| p.at).collect();
        move |i: usize, v: f64| format!("{v:.1}{unit} at {}", rfc3339(at[i]))
    };
    Ok(html! {
        div.card {
            h2 { "Last 24 hours" }
            p {
                "Issued: " strong id="issued-24h" { (h.issued.iter().sum::<u64>()) } " · "
                "revoked: " strong id="revoked-24h" { (h.revoked.iter().sum::<u64>()) }
                @if !h.complete { " (counted over the newest " (HOURLY_MAX_SCAN) " audit entries only)" }
            }
            (bars("chart-issued", "Certificates issued per hour", ("24 h ago", "this hour"), &issued, hour_tip("issued")))
            (bars("chart-revoked", "Certificates revoked per hour", ("24 h ago", "this hour"), &revoked, hour_tip("revoked")))
        }
        div.card {
            h2 { "OCSP, last hour" }
            @match last {
                None => p { "No sample yet (one every " (crate::status::ocsp_rates::OcspRates::INTERVAL_SECS) " s while serving)." },
                Some(p) => p {
                    "Answers now: " strong id="ocsp-rate" { (format!("{:.1}", p.per_second)) " /s" } " · "
                    "served precomputed: " strong id="ocsp-hit" { (p.hit_ratio.map_or("-".to_string(), |r| format!("{:.1} %", r * 100.0))) }
                },
            }
            p {
                "Oldest precomputed response: "
                strong class=(if oldest > stale_after { "bad" } else { "" }) { (format!("{:.0}", oldest / 60.0)) " min" }
                " · past their refresh time: "
                strong class=(if oldest > stale_after && backlog > 0.0 { "bad" } else { "" }) { (backlog) }
            }
            @if !points.is_empty() {
                @let from = format!("{} min ago", (points.len() as u64 * crate::status::ocsp_rates::OcspRates::INTERVAL_SECS).div_ceil(60));
                (bars("chart-ocsp-rate", "OCSP answers per second", (&from, "now"), &rate, tip_at(" /s")))
                (bars("chart-ocsp-hit", "Share served precomputed (%)", (&from, "now"), &ratio, tip_at(" %")))
            }
        }
    })
}

/// `secs` in hours and minutes.
fn age(secs: u64) -> String {
    match (secs / 3600, secs % 3600 / 60) {
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The overview.
pub fn overview(app: &App, s: &Session) -> anyhow::Result<String> {
    let now = unix_now();
    let pending = app
        .ledger
        .outbox_count(crate::ledger::OutboxState::Pending)?;
    let dead = app.ledger.outbox_count(crate::ledger::OutboxState::Dead)?;
    let syncs = app.mdm_sync.status()?;
    let validity = u64::from(app.config.crl.validity_hours) * 3600;
    let body = html! {
        (certificates_card(app, now)?)
        (activity_card(app, now)?)
        div.card {
            p { "Notifications waiting: " strong { (pending) } ", given up: "
                @if dead > 0 { strong.bad { (dead) } } @else { strong { "0" } } }
        }
        h2 { "CRL shards" }
        table {
            tr { th { "Shard" } th { "Number" } th { "Signed" } th { "Age" } th { "thisUpdate – nextUpdate" } th { "Entries" } }
            @for shard in 0..app.crl.shard_count() {
                @if let Some(c) = app.crl.current(shard) {
                    tr {
                        td { (shard) } td { (c.number) }
                        @let signed = app.crl.signed_at(&c);
                        @let stale = now.saturating_sub(signed) > validity / 2;
                        td class=(if stale { "bad" } else { "" }) { (rfc3339(signed)) }
                        td class=(if stale { "bad" } else { "" }) { (age(now.saturating_sub(signed))) }
                        td { (rfc3339(c.this_update)) " – " (rfc3339(c.next_update)) } td { (c.entries) }
                    }
                }
            }
        }
        h2 { "MDM inventory sync" }
        @if syncs.is_empty() { p { "No MDM source is configured." } }
        @else {
            table {
                tr { th { "Source" } th { "Last result" } th { "Last success" } th { "Devices" } th { "Changes" } }
                @for src in &syncs {
                    @let last = src.last.as_ref();
                    tr {
                        td { (src.name) " (" (src.kind) ")" }
                        td class=(if last.is_some_and(|l| l.result == "failed" || l.result == "held") { "bad" } else { "" }) {
                            (last.map_or("never", |l| l.result.as_str()))
                        }
                        td { (src.last_success.map_or("never".to_string(), rfc3339)) }
                        td { (last.map_or(0, |l| l.seen)) } td { (last.map_or(0, |l| l.changes.len())) }
                    }
                }
            }
        }
    };
    Ok(page(
        Some(s),
        "Overview",
        html! { div data-refresh="60" {} (body) },
    ))
}
