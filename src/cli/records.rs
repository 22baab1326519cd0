//! The records and their upkeep: `custos ledger verify`, `backup`,
//! `restore`, `audit`, `webhooks outbox`.

use super::args::*;
use super::ops::Operations;
use crate::config::Config;
use anyhow::{anyhow, Context};
use std::path::PathBuf;

pub(super) async fn ledger_verify(
    ops: &impl Operations,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let bar = progress_bar();
    let report = ops.ledger_verify(&bar).await;
    bar.finish_and_clear();
    let report = report?;
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

pub(super) async fn backup(ops: &impl Operations, out: PathBuf) -> anyhow::Result<()> {
    let out = std::path::absolute(&out).with_context(|| format!("{}: bad path", out.display()))?;
    let manifest = ops.backup(&out).await?;
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
    ops: &impl Operations,
    dead: bool,
    retry_dead: bool,
    json: bool,
) -> anyhow::Result<()> {
    use crate::ledger::OutboxState;
    if retry_dead {
        let n = ops.outbox_retry().await?;
        println!("{n} dead notifications queued again");
        return Ok(());
    }
    let state = if dead {
        OutboxState::Dead
    } else {
        OutboxState::Pending
    };
    let entries = ops.outbox(state).await?;
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
    ops: &impl Operations,
    args: AuditArgs,
) -> anyhow::Result<std::process::ExitCode> {
    if let Some(AuditCommand::Verify) = args.command {
        let (entries, problems) = ops.audit_verify().await?;
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
    let entries = ops.audit(args.after, limit, &filter).await?;
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

/// A progress bar on a terminal, hidden otherwise (the operation styles it).
pub(super) fn progress_bar() -> indicatif::ProgressBar {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

pub(super) async fn replication_resync(ops: &impl Operations) -> anyhow::Result<()> {
    let bar = progress_bar();
    let done = ops.replication_resync(&bar).await;
    bar.finish_and_clear();
    println!(
        "published {} unexpired certificates, the CRLs and the CA files to Redis",
        done?
    );
    Ok(())
}

pub(super) async fn responder_revoke(
    ops: &impl Operations,
    name: &str,
    reason: crate::revocation::Reason,
) -> anyhow::Result<()> {
    let done = ops.responder_revoke(name, reason).await?;
    match &done.certificate {
        Some(serial) => println!(
            "responder {name:?} revoked: certificate {serial} is revoked ({reason}) and its renewals are refused"
        ),
        None => println!("responder {name:?} revoked: it had no certificate yet; its join token no longer works"),
    }
    Ok(())
}

pub(super) async fn responder_token(ops: &impl Operations, name: &str) -> anyhow::Result<()> {
    let token = ops.responder_token(name).await?;
    println!("{token}");
    eprintln!(
        "one-time join token for responder {name:?}, valid for a day; on the responder: custos serve --role responder --redis URL --join TOKEN --data-dir DIR"
    );
    Ok(())
}
