//! Status: `custos crl …`, `ocsp refresh` and `ocsp check`.

use super::args::*;
use super::ops::Operations;
use crate::config::Config;
use crate::server::admin::CrlInfo;
use crate::support::files::read_named;
use crate::support::instance::ServerInfo;
use anyhow::anyhow;
use std::path::Path;

pub(super) fn print_crls(crls: &[CrlInfo]) {
    println!(
        "{:<6} {:>8} {:<21} {:<21} {:>8} {:>10}  URL",
        "SHARD", "NUMBER", "THIS UPDATE", "NEXT UPDATE", "ENTRIES", "BYTES"
    );
    for c in crls {
        println!(
            "{:<6} {:>8} {:<21} {:<21} {:>8} {:>10}  {}",
            c.shard, c.number, c.this_update, c.next_update, c.entries, c.bytes, c.url
        );
    }
}

pub(super) async fn crl(ops: &impl Operations, command: CrlCommand) -> anyhow::Result<()> {
    let crls = match command {
        CrlCommand::Generate => ops.crl_generate().await?,
        CrlCommand::Show => ops.crl_show().await?,
    };
    if crls.is_empty() {
        println!("no CRL published yet: run `custos crl generate` or start `custos serve`");
    } else {
        print_crls(&crls);
    }
    Ok(())
}

pub(super) enum CheckOutcome {
    Good,
    Revoked,
    Unknown,
}

pub(super) async fn ocsp_check(
    config: &Config,
    cert: &Path,
    url: Option<String>,
) -> anyhow::Result<CheckOutcome> {
    let data_dir = &config.data_dir;
    let pem = read_named(cert, "certificate")?;
    let leaf = crate::ca::parse_pem_bundle(&pem).map_err(|e| anyhow!("{}: {e}", cert.display()))?;
    // Ask where the certificate itself says to ask, as a relying party
    // does; then the running server; then public_http_url.
    let url = match url {
        Some(u) => u,
        None => match crate::status::ocsp_check::aia_ocsp_url(&leaf[0]) {
            Some(u) => u,
            None => match ServerInfo::read(data_dir) {
                Ok(info) => format!("{}/ocsp", info.http_url),
                Err(_) => format!("{}/ocsp", config.http_base(None)),
            },
        },
    };
    let issuer_path = crate::ca::CaPaths::new(data_dir).issuer_cert();
    let issuer_pem = read_named(&issuer_path, "issuing CA certificate")?;
    let issuer = crate::ca::parse_pem_bundle(&issuer_pem)
        .map_err(|e| anyhow!("{}: {e}", issuer_path.display()))?;
    let result = crate::status::ocsp_check::check(&url, &issuer[0], &leaf[0])
        .await
        .map_err(|e| anyhow!("{}: {e}", cert.display()))?;
    match &result.revoked {
        Some((time, reason)) => println!(
            "{}: revoked at {time}{}",
            cert.display(),
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        None => println!("{}: {}", cert.display(), result.status),
    }
    println!("  responder:   {url}");
    println!("  this update: {}", result.this_update);
    if let Some(n) = &result.next_update {
        println!("  next update: {n}");
    }
    println!("  response verified against {}", issuer_path.display());
    Ok(match result.status.as_str() {
        "good" => CheckOutcome::Good,
        "revoked" => CheckOutcome::Revoked,
        _ => CheckOutcome::Unknown,
    })
}

pub(super) async fn ocsp(
    config: Config,
    command: OcspCommand,
) -> anyhow::Result<std::process::ExitCode> {
    match command {
        OcspCommand::Refresh => {
            let bar = indicatif::ProgressBar::new(0);
            let done = with_ops!(config, |ops| ops.ocsp_refresh(&bar));
            bar.finish_and_clear();
            println!(
                "re-signed OCSP responses for {} unexpired certificates",
                done?
            );
        }
        OcspCommand::Check { cert, url } => {
            // Exit codes a script can test: 0 good, 1 revoked, 2 unknown or
            // any failure to get a verified answer.
            return Ok(match ocsp_check(&config, &cert, url).await {
                Ok(CheckOutcome::Good) => std::process::ExitCode::SUCCESS,
                Ok(CheckOutcome::Revoked) => std::process::ExitCode::from(1),
                Ok(CheckOutcome::Unknown) => std::process::ExitCode::from(2),
                Err(e) => {
                    eprintln!("custos: error: {}", format!("{e:#}").replace('\n', " "));
                    std::process::ExitCode::from(2)
                }
            });
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
