//! Certificates: `custos issue`, `certs list|show`, `revoke`, `status`.

use super::args::*;
use super::ops::{Operations, RevokeTarget};
use super::serve::print_ca;
use crate::config::Config;
use crate::ra::CertView;
use crate::revocation::Reason;
use crate::serial::Serial;
use crate::support::files::{read_named, write_atomic, Visibility};
use anyhow::anyhow;
use std::path::Path;

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
    let view = with_ops!(config, |ops| ops.issue(&csr, args.profile, args.device))
        .map_err(|e| anyhow!("{}: {e}", args.csr.display()))?;
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

pub(super) async fn certs(ops: &impl Operations, command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::List { after, limit, json } => {
            let limit = limit.clamp(1, crate::server::admin::MAX_PAGE);
            let after = after.as_deref().map(str::parse::<Serial>).transpose()?;
            let views = ops.certificates(after, limit).await?;
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
            let view = ops.certificate(&parsed).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_view(&view);
            }
        }
    }
    Ok(())
}

pub(super) async fn revoke(ops: &impl Operations, args: RevokeArgs) -> anyhow::Result<()> {
    let reason: Reason = args.reason.parse()?;
    let what = match (args.serial.as_deref(), args.device) {
        (Some(s), _) => RevokeTarget::Serial(s.parse()?),
        (None, Some(d)) => RevokeTarget::Device(d),
        (None, None) => anyhow::bail!("give --serial or --device"),
    };
    let results = ops.revoke(&what, reason).await?;
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

pub(super) async fn status(ops: &impl Operations, data_dir: &Path) -> anyhow::Result<()> {
    let s = ops.status().await?;
    match ops.server() {
        Some(info) => println!(
            "server:            running (pid {}, {} and {})",
            info.pid, info.http_url, info.https_url
        ),
        None => println!("server:            not running"),
    }
    println!("certificates:      {}", s.certificates);
    println!("revocation events: {}", s.revocation_events);
    println!("issuer id:         {}", s.issuer_id);
    println!("ocsp signer until: {}", s.ocsp_signer_not_after);
    print_ca(data_dir, &s.root_fingerprint);
    Ok(())
}
