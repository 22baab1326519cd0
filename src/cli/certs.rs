//! Certificates: `custos issue`, `certs list|show`, `revoke`, `status`.

use super::args::*;
use super::serve::print_ca;
use super::{target, Target};
use crate::config::Config;
use crate::model::time::unix_now;
use crate::ra::CertView;
use crate::revocation::Reason;
use crate::serial::Serial;
use crate::server::admin::RevokeBody;
use crate::support::files::{read_named, write_atomic, Visibility};
use crate::support::instance::ServerInfo;
use anyhow::anyhow;

/// Whether a file holds a private key (PEM), which must never be sent.
pub(super) fn holds_private_key(bytes: &[u8]) -> bool {
    bytes
        .windows(b"PRIVATE KEY-----".len())
        .any(|w| w == b"PRIVATE KEY-----")
}

pub(super) async fn issue(config: Config, args: IssueArgs) -> anyhow::Result<()> {
    let csr = zeroize::Zeroizing::new(read_named(&args.csr, "CSR")?);
    if holds_private_key(&csr) {
        anyhow::bail!(
            "{}: this file holds a private key, not a certificate request; nothing was sent. Give the CSR (openssl req -new -key KEY -out device.csr)",
            args.csr.display()
        );
    }
    for w in config.loopback_warnings(true, false) {
        eprintln!("custos: warning: {w}");
    }
    let view = match target(config)? {
        Target::Direct(app) => {
            let now = unix_now();
            let issued = app
                .authority
                .issue_csr_for_device(
                    &csr,
                    args.profile.as_deref(),
                    args.device.as_deref(),
                    &crate::cli::admin_client::cli_actor(),
                    now,
                )
                .map_err(|e| anyhow!("{}: {e}", args.csr.display()))?;
            CertView::new(&issued.record, now, Some(&issued.der))
        }
        Target::Remote(client) => {
            let text = String::from_utf8(csr.to_vec())
                .unwrap_or_else(|_| crate::ca::build::der_to_csr_pem(&csr));
            client
                .issue(text, args.profile, args.device)
                .await
                .map_err(|e| anyhow!("{}: {e}", args.csr.display()))?
        }
    };
    let pem = view.certificate_pem.clone().unwrap_or_default();
    match &args.out {
        Some(path) => {
            write_atomic(path, pem.as_bytes(), Visibility::Public)?;
            eprintln!("issued serial {} -> {}", view.serial, path.display());
        }
        None => {
            print!("{pem}");
            eprintln!("issued serial {}", view.serial);
        }
    }
    Ok(())
}

pub(super) fn print_view(v: &CertView) {
    println!("serial:       {}", v.serial);
    println!("subject:      {}", v.subject);
    println!("status:       {}", v.status);
    if let (Some(t), Some(r)) = (&v.revoked_at, &v.revocation_reason) {
        println!("revoked:      {t} ({r})");
    }
    println!("not before:   {}", v.not_before);
    println!("not after:    {}", v.not_after);
    println!("profile:      {}", v.profile);
    println!("crl shard:    {}", v.crl_shard);
    if !v.dns_names.is_empty() {
        println!("dns names:    {}", v.dns_names.join(", "));
    }
    if !v.ip_addresses.is_empty() {
        println!("ip addresses: {}", v.ip_addresses.join(", "));
    }
    for (k, val) in [
        ("device serial", &v.device.serial_number),
        ("udid", &v.device.udid),
        ("permanent id", &v.device.permanent_id),
        ("acme account", &v.acme_account),
    ] {
        if let Some(val) = val {
            println!("{k:<13} {val}");
        }
    }
    if let Some(pem) = &v.certificate_pem {
        print!("{pem}");
    }
}

pub(super) async fn certs(config: Config, command: CertsCommand) -> anyhow::Result<()> {
    let target = target(config)?;
    match command {
        CertsCommand::List { after, limit, json } => {
            let limit = limit.clamp(1, crate::server::admin::MAX_PAGE);
            let views = match &target {
                Target::Direct(app) => {
                    let after = after.as_deref().map(str::parse::<Serial>).transpose()?;
                    app.authority.list(after.as_ref(), limit, unix_now())?
                }
                Target::Remote(c) => c.list(after, limit).await?.certificates,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                println!(
                    "{:<34} {:<8} {:<21} SUBJECT",
                    "SERIAL", "STATUS", "NOT AFTER"
                );
                for v in views {
                    println!(
                        "{:<34} {:<8} {:<21} {}",
                        v.serial, v.status, v.not_after, v.subject
                    );
                }
            }
        }
        CertsCommand::Show {
            serial,
            serial_arg,
            json,
        } => {
            let serial = serial.or(serial_arg).unwrap_or_default();
            let parsed: Serial = serial.parse()?;
            let view = match &target {
                Target::Direct(app) => app.authority.show(&parsed, unix_now())?,
                Target::Remote(c) => c.show(&parsed.to_hex()).await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_view(&view);
            }
        }
    }
    Ok(())
}

pub(super) async fn revoke(config: Config, args: RevokeArgs) -> anyhow::Result<()> {
    let reason: Reason = args.reason.parse()?;
    let serial = args
        .serial
        .as_deref()
        .map(str::parse::<Serial>)
        .transpose()?;
    let results = match target(config)? {
        Target::Direct(app) => {
            let now = unix_now();
            match (&serial, &args.device) {
                (Some(s), _) => vec![app.authority.revoke_serial(
                    s,
                    reason,
                    Some(&crate::cli::admin_client::cli_actor()),
                    now,
                )?],
                (None, Some(d)) => app.authority.revoke_device(
                    d,
                    reason,
                    Some(&crate::cli::admin_client::cli_actor()),
                    now,
                )?,
                (None, None) => unreachable!("clap requires --serial or --device"),
            }
        }
        Target::Remote(client) => {
            let body = RevokeBody {
                serial: serial.map(|s| s.to_hex()),
                device: args.device.clone(),
                reason: Some(reason.name().to_string()),
            };
            client.revoke(&body).await?.revoked
        }
    };
    if results.is_empty() {
        println!("no unexpired certificates to revoke");
    }
    for r in results {
        println!(
            "{} {} ({}, since {})",
            r.serial, r.change, r.reason, r.revoked_at
        );
    }
    Ok(())
}

pub(super) async fn status(config: Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    match target(config)? {
        Target::Direct(app) => {
            println!("server:            not running");
            println!("certificates:      {}", app.ledger.count()?);
            println!("revocation events: {}", app.ledger.next_revocation_seq()?);
            println!("issuer id:         {}", app.ca.issuer_id());
            println!(
                "ocsp signer until: {}",
                crate::model::time::rfc3339(app.ca.ocsp_signer().not_after)
            );
            print_ca(&app.ca, &data_dir);
        }
        Target::Remote(client) => {
            let info = ServerInfo::read(&data_dir)?;
            let s = client.status().await?;
            println!(
                "server:            running (pid {}, {} and {})",
                info.pid, info.http_url, info.https_url
            );
            println!("certificates:      {}", s.certificates);
            println!("revocation events: {}", s.revocation_events);
            println!("issuer id:         {}", s.issuer_id);
            println!("ocsp signer until: {}", s.ocsp_signer_not_after);
            let paths = crate::ca::CaPaths::new(&data_dir);
            println!("  root certificate:  {}", paths.root_cert().display());
            println!("  issuing chain:     {}", paths.chain().display());
            println!("  root SHA-256:      {}", s.root_fingerprint);
            println!(
                "  admin token:       {}",
                crate::support::instance::admin_token_path(&data_dir).display()
            );
        }
    }
    Ok(())
}
