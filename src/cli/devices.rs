//! Devices and enrolment: `custos devices …`, `eab …`, `profile apple`.

use super::args::*;
use super::{target, Target};
use crate::cli::admin_client::cli_actor;
use crate::config::Config;
use crate::devices::{ops, Device, NewDevice, StatusChange};
use crate::model::time::unix_now;

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

pub(super) async fn devices(config: Config, command: DevicesCommand) -> anyhow::Result<()> {
    let target = target(config)?;
    match command {
        DevicesCommand::Add {
            serial,
            udid,
            owner,
            group,
            status,
            noncompliant,
            notes,
        } => {
            let new = NewDevice {
                serial,
                udid,
                owner,
                group,
                status: status.map(|s| s.name().to_string()),
                compliant: Some((!noncompliant).to_string()),
                notes,
            };
            print_device(&device_add(&target, new).await?)
        }
        DevicesCommand::Import { file } => {
            let csv = crate::support::files::read_named(&file, "device CSV")?;
            let result = device_import(&target, csv).await?;
            println!(
                "imported {} devices ({} new)",
                result.imported, result.added
            );
            Ok(())
        }
        DevicesCommand::List { after, limit, json } => {
            let limit = limit.clamp(1, crate::server::admin::MAX_PAGE);
            let devices = match &target {
                Target::Direct(app) => app.ledger.list_devices(after.as_deref(), limit)?,
                Target::Remote(c) => c.device_list(after, limit).await?,
            };
            print_devices(&devices, json)
        }
        DevicesCommand::Show { id } => {
            let device = match &target {
                Target::Direct(app) => app.ledger.device(&id)?,
                Target::Remote(c) => c.device_show(&id).await?,
            };
            match device {
                Some(d) => print_device(&d),
                None => anyhow::bail!("no device {id:?} in the inventory"),
            }
        }
        DevicesCommand::SetStatus {
            id,
            status,
            compliant,
        } => match set_status(&target, &id, StatusChange { status, compliant }).await? {
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
        "{:<20} {:<10} {:<9} {:<20} {:<12} UDID",
        "SERIAL", "STATUS", "COMPLIANT", "OWNER", "GROUP"
    );
    for d in devices {
        println!(
            "{:<20} {:<10} {:<9} {:<20} {:<12} {}",
            d.serial,
            d.status.name(),
            d.compliant,
            d.owner.as_deref().unwrap_or("-"),
            d.group.as_deref().unwrap_or("-"),
            d.udid.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

async fn device_add(target: &Target, new: NewDevice) -> anyhow::Result<Device> {
    Ok(match target {
        Target::Direct(app) => {
            let d = ops::add(&app.ledger, new, unix_now())?;
            ops::audit_add(&app.authority, &cli_actor(), &d, unix_now());
            d
        }
        Target::Remote(c) => c.device_add(&new).await?,
    })
}

async fn device_import(
    target: &Target,
    csv: Vec<u8>,
) -> anyhow::Result<crate::devices::ImportResult> {
    Ok(match target {
        Target::Direct(app) => {
            let r = ops::import(&app.ledger, &csv, unix_now())?;
            app.authority.audit(
                &cli_actor(),
                "device",
                serde_json::json!({"action": "import", "imported": r.imported, "added": r.added, "outcome": "imported"}),
                unix_now(),
            );
            r
        }
        Target::Remote(c) => c.device_import(csv).await?,
    })
}

async fn set_status(
    target: &Target,
    id: &str,
    change: StatusChange,
) -> anyhow::Result<Option<Device>> {
    Ok(match target {
        Target::Direct(app) => {
            let d =
                app.ledger
                    .set_device_status(id, change.status, change.compliant, unix_now())?;
            if let Some(d) = &d {
                ops::audit_status(&app.authority, &cli_actor(), d, unix_now());
            }
            d
        }
        Target::Remote(c) => c.device_set_status(id, &change).await?,
    })
}

pub(super) async fn eab(config: Config, command: EabCommand) -> anyhow::Result<()> {
    let EabCommand::Create { name } = command;
    let key = match target(config)? {
        Target::Direct(app) => {
            let secret = crate::acme::eab::EabSecret::ensure(&app.config.data_dir)?;
            let key = crate::acme::eab::create(&app.ledger, &secret, &name, unix_now())?;
            crate::acme::eab::audit_create(
                &app.authority,
                &crate::cli::admin_client::cli_actor(),
                &key,
                unix_now(),
            );
            key
        }
        Target::Remote(client) => client.eab_create(&name).await?,
    };
    println!("kid: {}", key.kid);
    println!("hmac_key: {}", key.hmac_key);
    Ok(())
}
