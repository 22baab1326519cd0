//! Devices and enrolment: `custos devices …`, `eab …`, `profile apple`.

use super::args::*;
use super::ops::Operations;
use crate::config::Config;
use crate::devices::{Device, NewDevice, StatusChange};

pub(super) fn profile(config: Config, command: ProfileCommand) -> anyhow::Result<()> {
    let ProfileCommand::Apple {
        group,
        out,
        client_identifier,
        organization,
    } = command;
    for w in config.loopback_warnings(false, true) {
        eprintln!("custos: warning: {w}");
    }
    let root = crate::ca::CaPaths::new(&config.data_dir).root_cert();
    let pem =
        crate::support::files::read_named(&root, "root certificate (run `custos init` first)")?;
    let root_der = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(&pem)
            .map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?
            .to_vec()
    };
    let bytes = crate::cli::mobileconfig::build(&crate::cli::mobileconfig::AppleProfileOptions {
        directory_url: format!("{}/acme/directory", config.https_base(None)),
        client_identifier: client_identifier
            .unwrap_or_else(|| config.acme.device_attest.client_identifier.clone()),
        group,
        root_der,
        organization,
    })?;
    match out {
        Some(path) => {
            crate::support::files::write_atomic(
                &path,
                &bytes,
                crate::support::files::Visibility::Public,
            )?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(())
}

pub(super) async fn devices(ops: &impl Operations, command: DevicesCommand) -> anyhow::Result<()> {
    match command {
        DevicesCommand::Add {
            serial,
            udid,
            owner,
            group,
            status,
            noncompliant,
            notes,
            tpm_ak,
        } => {
            let new = NewDevice {
                tpm_ak,
                serial,
                udid,
                owner,
                group,
                status: status.map(|s| s.name().to_string()),
                compliant: Some((!noncompliant).to_string()),
                notes,
            };
            print_device(&ops.device_add(new).await?)
        }
        DevicesCommand::Import { file } => {
            let csv = crate::support::files::read_named(&file, "device CSV")?;
            let result = ops.device_import(csv).await?;
            println!(
                "imported {} devices ({} new)",
                result.imported, result.added
            );
            Ok(())
        }
        DevicesCommand::List {
            after,
            limit,
            enrolment,
            json,
        } => {
            let limit = limit.clamp(1, crate::server::admin::MAX_PAGE);
            let devices = ops.devices(after, limit, enrolment).await?;
            print_devices(&devices, json)
        }
        DevicesCommand::Show { id } => match ops.device(&id).await? {
            Some(d) => print_device(&d),
            None => anyhow::bail!("no device {id:?} in the inventory"),
        },
        DevicesCommand::SetStatus {
            id,
            status,
            compliant,
        } => match ops
            .device_set_status(&id, StatusChange { status, compliant })
            .await?
        {
            Some(d) => print_device(&d),
            None => anyhow::bail!("no device {id:?} in the inventory"),
        },
        DevicesCommand::SetScep { id, policy } => match ops.device_set_scep(&id, policy).await? {
            Some(d) => print_device(&d),
            None => anyhow::bail!("no device {id:?} in the inventory"),
        },
    }
}

fn print_device(d: &Device) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(d)?);
    Ok(())
}

fn print_devices(devices: &[Device], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(devices)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<9} {:<13} {:<20} {:<12} UDID",
        "SERIAL", "STATUS", "COMPLIANT", "ENROLMENT", "OWNER", "GROUP"
    );
    for d in devices {
        println!(
            "{:<20} {:<10} {:<9} {:<13} {:<20} {:<12} {}",
            d.serial,
            d.status.name(),
            d.compliant,
            d.enrolment.map_or("-", |e| e.name()),
            d.owner.as_deref().unwrap_or("-"),
            d.group.as_deref().unwrap_or("-"),
            d.udid.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

pub(super) async fn scep(
    ops: &impl Operations,
    command: crate::cli::args::ScepCommand,
    default_ttl: u64,
) -> anyhow::Result<()> {
    let crate::cli::args::ScepCommand::Challenge { device, ttl } = command;
    let ttl = match ttl {
        Some(t) => crate::scep::parse_ttl(&t)?,
        None => default_ttl,
    };
    let c = ops.scep_challenge(&device, ttl).await?;
    println!("challenge:  {}", c.challenge);
    println!(
        "device:     {}",
        c.device.as_deref().unwrap_or("(the one the CSR names)")
    );
    println!("id:         {}", c.id);
    println!("expires:    {}", crate::model::time::rfc3339(c.expires_at));
    Ok(())
}

pub(super) fn console(
    config: &crate::config::Config,
    command: crate::cli::args::ConsoleCommand,
) -> anyhow::Result<()> {
    let crate::cli::args::ConsoleCommand::User { command } = command;
    let crate::cli::args::ConsoleUserCommand::Add { name, role } = command;
    let password = crate::support::console_users::add(
        &config.data_dir,
        &name,
        role,
        crate::model::time::unix_now(),
    )?;
    println!("name:     {name}");
    println!("role:     {}", role.name());
    println!("password: {password}");
    Ok(())
}

pub(super) async fn mdm(
    ops: &impl Operations,
    command: crate::cli::args::MdmCommand,
) -> anyhow::Result<()> {
    use crate::cli::args::MdmCommand;
    use crate::model::time::rfc3339;
    match command {
        MdmCommand::Sync {
            name,
            dry_run,
            confirm,
            json,
        } => {
            let bar = indicatif::ProgressBar::new_spinner();
            if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let options = crate::devices::sync::SyncOptions { dry_run, confirm };
            let report = ops.mdm_sync(&name, options, &bar).await?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{}: {} ({} devices listed, {} added, {} changes, {} missing once, {} requests, {} ms)",
                    report.source,
                    report.result,
                    report.seen,
                    report.added,
                    report.changes.len(),
                    report.missing_once,
                    report.requests,
                    report.duration_ms
                );
                if let Some(r) = &report.reason {
                    println!("  {r}");
                }
                for c in &report.changes {
                    println!("  {:<20} {} -> {}", c.device, c.from, c.change);
                }
            }
            if report.result == "failed" {
                anyhow::bail!(
                    "sync of {name} failed: {}",
                    report.reason.unwrap_or_default()
                );
            }
            Ok(())
        }
        MdmCommand::Status { json } => {
            let all = ops.mdm_status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(());
            }
            if all.is_empty() {
                println!("no MDM sources configured ([mdm.<name>] in custos.toml)");
            }
            for s in all {
                let last = s.last.as_ref();
                println!(
                    "{} ({}, every {} s): last {} at {}, last success {}; {} devices, {} changes{}",
                    s.name,
                    s.kind,
                    s.sync_interval_secs,
                    last.map_or("never", |l| l.result.as_str()),
                    last.map_or("-".into(), |l| rfc3339(l.started_at)),
                    s.last_success.map_or("never".into(), rfc3339),
                    last.map_or(0, |l| l.seen),
                    last.map_or(0, |l| l.changes.len()),
                    last.and_then(|l| l.reason.as_ref())
                        .map_or(String::new(), |r| format!(" ({r})"))
                );
            }
            Ok(())
        }
    }
}

pub(super) async fn eab(ops: &impl Operations, command: EabCommand) -> anyhow::Result<()> {
    let EabCommand::Create { name } = command;
    let key = ops.eab_create(&name).await?;
    println!("kid: {}", key.kid);
    println!("hmac_key: {}", key.hmac_key);
    Ok(())
}
