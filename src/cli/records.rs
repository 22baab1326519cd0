//! The records and their upkeep: `custos ledger verify`, `backup`,
//! `restore`, `audit`, `webhooks outbox`.

use super::args::*;
use super::{target, Target};
use crate::config::Config;
use crate::model::time::unix_now;
use anyhow::{anyhow, Context};
use std::path::PathBuf;

pub(super) async fn ledger_verify(
    config: Config,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let report = match target(config)? {
        Target::Direct(app) => {
            let total = app.ledger.count()?;
            let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                indicatif::ProgressBar::new(total)
            } else {
                indicatif::ProgressBar::hidden()
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} certificates ({eta} left)",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let report =
                crate::maintenance::verify::verify(app.verify_sources(), unix_now(), |n| {
                    bar.set_position(n)
                })?;
            bar.finish_and_clear();
            report
        }
        Target::Remote(client) => {
            let spinner = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                indicatif::ProgressBar::new_spinner()
            } else {
                indicatif::ProgressBar::hidden()
            };
            spinner.set_message("verifying on the running server…");
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let report = client.ledger_verify().await;
            spinner.finish_and_clear();
            report?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("certificates:              {}", report.certificates);
        println!(
            "stored OCSP responses:     {} verified, {} to be signed on request",
            report.responses_checked, report.responses_missing
        );
        println!(
            "revocations in CRLs:       {} checked, {} awaiting regeneration",
            report.crl_entries_checked, report.crl_regeneration_pending
        );
        println!("devices:                   {}", report.devices_checked);
        if report.clean() {
            println!("ledger verified: no mismatches");
        } else {
            println!("{} mismatches:", report.mismatches.len());
            for m in &report.mismatches {
                println!("  {m}");
            }
        }
    }
    Ok(if report.clean() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

pub(super) async fn backup(config: Config, out: PathBuf) -> anyhow::Result<()> {
    let out = std::path::absolute(&out).with_context(|| format!("{}: bad path", out.display()))?;
    let manifest = match target(config)? {
        Target::Direct(app) => {
            let m = crate::maintenance::backup::backup(
                &app.ledger,
                &app.config.data_dir,
                &out,
                unix_now(),
            )?;
            app.authority.audit(
                &crate::cli::admin_client::cli_actor(),
                "backup",
                serde_json::json!({"out": out.display().to_string(), "certificates": m.certificates, "outcome": "written"}),
                unix_now(),
            );
            m
        }
        Target::Remote(client) => client.backup(&out).await?,
    };
    println!(
        "backup of {} certificates and {} revocation events in {}",
        manifest.certificates,
        manifest.revocation_events,
        out.display()
    );
    Ok(())
}

pub(super) fn restore(config: Config, from: PathBuf) -> anyhow::Result<()> {
    let manifest = crate::maintenance::backup::restore(&from, &config.data_dir)?;
    println!(
        "restored {} certificates into {}; check it with `custos --data-dir {} ledger verify`",
        manifest.certificates,
        config.data_dir.display(),
        config.data_dir.display()
    );
    Ok(())
}

pub(super) async fn outbox(
    config: Config,
    dead: bool,
    retry_dead: bool,
    json: bool,
) -> anyhow::Result<()> {
    use crate::ledger::OutboxState;
    let target = target(config)?;
    if retry_dead {
        let n = match &target {
            Target::Direct(app) => {
                let n = app.ledger.retry_dead_notifications(unix_now())?;
                app.authority.audit(
                    &crate::cli::admin_client::cli_actor(),
                    "outbox.retry",
                    serde_json::json!({"requeued": n, "outcome": "requeued"}),
                    unix_now(),
                );
                n
            }
            Target::Remote(c) => c.outbox_retry().await?,
        };
        println!("{n} dead notifications queued again");
        return Ok(());
    }
    let state = if dead {
        OutboxState::Dead
    } else {
        OutboxState::Pending
    };
    let limit = crate::server::admin::MAX_PAGE;
    let entries = match &target {
        Target::Direct(app) => app.ledger.outbox(state, limit)?,
        Target::Remote(c) => c.outbox(state).await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no {} notifications", if dead { "dead" } else { "pending" });
    }
    for e in entries {
        println!(
            "{:<16} seq {:<8} serial {}  {}  attempts {}  next {}  {}",
            e.subscriber,
            e.seq,
            e.revocation.serial,
            e.revocation.revocation.reason,
            e.attempts,
            crate::model::time::rfc3339(e.next_attempt_at),
            e.last_error.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

pub(super) async fn audit(
    config: Config,
    args: AuditArgs,
) -> anyhow::Result<std::process::ExitCode> {
    if let Some(AuditCommand::Verify) = args.command {
        let (entries, problems) = match target(config)? {
            Target::Direct(app) => app.ledger.verify_audit()?,
            Target::Remote(c) => c.audit_verify().await?,
        };
        if problems.is_empty() {
            println!("audit log verified: {entries} entries, chain intact");
            return Ok(std::process::ExitCode::SUCCESS);
        }
        println!(
            "audit log BROKEN: {} problems in {entries} entries:",
            problems.len()
        );
        for p in &problems {
            println!("  {p}");
        }
        return Ok(std::process::ExitCode::from(1));
    }
    let filter = crate::ledger::AuditFilter {
        kind: args.kind.clone(),
        device: args.device.clone(),
        serial: args.serial.clone(),
        since: args
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
    };
    let limit = args.limit.clamp(1, crate::server::admin::MAX_PAGE);
    let entries = match target(config)? {
        Target::Direct(app) => app.ledger.audit_filtered(args.after, limit, &filter)?,
        Target::Remote(c) => c.audit(args.after, limit, &filter).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else if args.jsonl {
        for e in &entries {
            println!("{}", serde_json::to_string(e)?);
        }
    } else if entries.is_empty() {
        println!("no audit entries after sequence number {}", args.after);
    } else {
        for e in entries {
            println!(
                "{:>6}  {}  {:<12} {:<24} {}",
                e.seq,
                crate::model::time::rfc3339(e.time),
                e.kind,
                e.actor,
                e.detail
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn parse_time(flag: &str, text: &str) -> anyhow::Result<u64> {
    if let Ok(n) = text.trim().parse::<u64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp().max(0) as u64)
        .map_err(|_| {
            anyhow!("--{flag} {text:?}: give RFC 3339 (2026-12-01T10:00:00Z) or Unix seconds")
        })
}
