//! The `custos` command line (clap). It only builds configuration and calls
//! the library: commands that change state go through the admin API when a
//! server holds the data dir, and straight to the ledger when none does.

use crate::admin_client::AdminClient;
use crate::app::{open_ledger, App};
use crate::ca::key::KeyAlgorithm;
use crate::ca::{Ca, CaUrls, InitOptions};
use crate::config::{Config, LogFormat, Overrides};
use crate::files::{read_named, write_atomic, Visibility};
use crate::instance::{AdminToken, ServerInfo};
use crate::model::time::unix_now;
use crate::ra::CertView;
use crate::revocation::Reason;
use crate::serial::Serial;
use crate::server::admin::{CrlInfo, RevokeBody};
use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Device certificate authority: ACME issuance, certificate ledger, OCSP and CRL.
#[derive(Debug, Parser)]
#[command(name = "custos", version, about)]
pub struct Cli {
    /// Data directory (ledger, CA, tokens). Default ./custos-data.
    #[arg(long, global = true, env = "CUSTOS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file. Default: ./custos.toml when present.
    #[arg(long, global = true, env = "CUSTOS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the CA (root, issuing intermediate, OCSP responder) and the admin token.
    Init(InitArgs),
    /// Run the OCSP/CRL (HTTP) and ACME/admin (HTTPS) listeners.
    Serve(ServeArgs),
    /// Issue a certificate for a CSR (PEM certificate out).
    Issue(IssueArgs),
    /// List or show certificates.
    Certs {
        /// What to do.
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Revoke one certificate, or every certificate of a device.
    Revoke(RevokeArgs),
    /// Show the CA, the ledger and whether a server is running.
    Status,
    /// OCSP responder tools.
    Ocsp {
        /// What to do.
        #[command(subcommand)]
        command: OcspCommand,
    },
    /// CRL publisher tools.
    Crl {
        /// What to do.
        #[command(subcommand)]
        command: CrlCommand,
    },
    /// The audit log: every change, who made it and what came of it, in a
    /// hash chain (`custos audit verify` checks it).
    Audit(AuditArgs),
    /// Enrolment profiles for MDMs.
    Profile {
        /// What to make.
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// The device inventory.
    Devices {
        /// What to do.
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// ACME external account binding keys.
    Eab {
        /// What to do.
        #[command(subcommand)]
        command: EabCommand,
    },
    /// Ledger tools.
    Ledger {
        /// What to do.
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Take a consistent copy of the data dir (ledger checkpoint, CA files,
    /// tokens and secrets) while the server runs.
    Backup {
        /// Directory to create (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into a new data dir (--data-dir, which must not exist).
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// MDM webhooks and outbound revocation notifications.
    Webhooks {
        /// What to do.
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

/// `custos audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// `verify`: check the hash chain.
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Entries after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Only this kind (event, revocation, issuance, device, eab,
    /// ocsp.refresh, crl.generate, outbox.retry, backup).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only entries naming this device (serial number or UDID).
    #[arg(long)]
    pub device: Option<String>,
    /// Only entries naming this certificate serial.
    #[arg(long)]
    pub serial: Option<String>,
    /// Only entries at or after this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub until: Option<String>,
    /// Print a JSON array.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one JSON object per line (for a SIEM).
    #[arg(long)]
    pub jsonl: bool,
}

/// `custos audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain: exits non-zero if an entry was
    /// removed, changed or cut off the end.
    Verify,
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

/// `custos ledger …`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check, read-only, that stored OCSP responses, CRLs, device statuses
    /// and indexes agree with the certificate records; exits non-zero on
    /// any mismatch.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `custos webhooks …`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// The outbound notification outbox: what waits for delivery (and why
    /// the last attempt failed), or what was given up on (`--dead`).
    Outbox {
        /// List dead entries instead of pending ones.
        #[arg(long)]
        dead: bool,
        /// Put every dead entry back in the queue, attempts reset.
        #[arg(long, conflicts_with = "dead")]
        retry_dead: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `custos profile …`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Write an Apple configuration profile (.mobileconfig) that enrols
    /// devices by ACME with a hardware-bound, attested P-384 key.
    ///
    /// Upload it to the MDM as a custom configuration profile, scoped to
    /// the devices of the group: Jamf Pro: Computers/Devices >
    /// Configuration Profiles > Upload; Microsoft Intune: Devices > macOS
    /// or iOS/iPadOS > Configuration > Create > Templates > Custom; Fleet:
    /// Controls > OS settings > Custom settings > Add profile. Set
    /// acme.device_attest.client_identifier (or --client-identifier) to the
    /// MDM's serial-number variable: Jamf $SERIALNUMBER, Intune
    /// {{serialnumber}}, Fleet $FLEET_VAR_HOST_HARDWARE_SERIAL. The devices
    /// must be on the inventory (custos devices import) and reach the
    /// ACME directory URL (public_https_url).
    Apple {
        /// Device group the profile is for (named in the profile).
        #[arg(long)]
        group: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// ClientIdentifier (default: acme.device_attest.client_identifier).
        #[arg(long)]
        client_identifier: Option<String>,
        /// Organisation name shown on devices.
        #[arg(long, default_value = "custos")]
        organization: String,
    },
}

/// `custos devices …`.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Add a device (or replace the one with the same serial).
    Add {
        /// Hardware serial number.
        #[arg(long)]
        serial: String,
        /// Apple UDID.
        #[arg(long)]
        udid: Option<String>,
        /// Who has it.
        #[arg(long)]
        owner: Option<String>,
        /// Group (policy floors apply per group).
        #[arg(long)]
        group: Option<String>,
        /// Status (default active).
        #[arg(long, value_enum)]
        status: Option<crate::devices::DeviceStatus>,
        /// Not compliant with the MDM's policies.
        #[arg(long)]
        noncompliant: bool,
        /// Notes for the helpdesk.
        #[arg(long)]
        notes: Option<String>,
    },
    /// Import a CSV inventory (header: serial, and any of udid, owner,
    /// group, status, compliant, notes); all rows or none.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// List devices in serial order.
    List {
        /// Start after this serial.
        #[arg(long)]
        after: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one device (by serial or UDID).
    Show {
        /// Serial or UDID.
        id: String,
    },
    /// Change a device's status (and compliance).
    SetStatus {
        /// Serial or UDID.
        id: String,
        /// New status.
        #[arg(value_enum)]
        status: crate::devices::DeviceStatus,
        /// Also set compliance: true or false.
        #[arg(long)]
        compliant: Option<bool>,
    },
}

/// `custos eab …`.
#[derive(Debug, Subcommand)]
pub enum EabCommand {
    /// Make a single-use key id and HS256 MAC key for one ACME account
    /// (give them to the client: certbot --eab-kid/--eab-hmac-key,
    /// acme.sh --eab-kid/--eab-hmac-key, lego --eab --kid/--hmac).
    Create {
        /// Who the key is for (kept with the key, shown in logs).
        #[arg(long)]
        name: String,
    },
}

/// `custos crl …`.
#[derive(Debug, Subcommand)]
pub enum CrlCommand {
    /// Re-sign every shard's CRL now.
    Generate,
    /// Print every shard's current CRL: number, dates, entries, size, URL.
    Show,
}

/// `custos ocsp …`.
#[derive(Debug, Subcommand)]
pub enum OcspCommand {
    /// Re-sign every unexpired certificate's precomputed responses now.
    Refresh,
    /// Ask the running responder about a certificate and print its status.
    Check {
        /// PEM certificate issued by this CA.
        #[arg(long)]
        cert: PathBuf,
        /// Responder URL (default: the running server's, else public_http_url + /ocsp).
        #[arg(long)]
        url: Option<String>,
    },
}

/// `custos init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Organisation name in the CA certificates.
    #[arg(long, default_value = "custos")]
    pub org: String,
    /// Root CA common name.
    #[arg(long, default_value = "custos Development Root CA")]
    pub root_cn: String,
    /// Issuing CA common name.
    #[arg(long, default_value = "custos Development Issuing CA")]
    pub intermediate_cn: String,
    /// Root validity in days.
    #[arg(long, default_value_t = 3650)]
    pub root_days: u32,
    /// Issuing CA validity in days.
    #[arg(long, default_value_t = 1825)]
    pub intermediate_days: u32,
    /// OCSP responder key type: p256 (fast) or p384.
    #[arg(long, default_value = "p256")]
    pub ocsp_key: KeyAlgorithm,
    /// OCSP responder certificate validity in days (default: ocsp.signer_validity_days).
    #[arg(long)]
    pub ocsp_days: Option<u32>,
    /// Import an existing issuing CA instead: CERT (PEM, issuing CA first, then its chain to the root) and KEY (PEM).
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
    pub import_ca: Option<Vec<PathBuf>>,
}

/// `custos serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Plain-HTTP listen address (OCSP, CRL, health, metrics).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// HTTPS listen address (ACME, admin API, webhooks).
    #[arg(long)]
    pub https: Option<SocketAddr>,
    /// Record MDM events without processing them until the next start
    /// (for tests that stop a server between the answer and the work).
    #[arg(long, hide = true)]
    pub hold_device_events: bool,
}

/// `custos issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// PEM or DER CSR file.
    #[arg(long)]
    pub csr: PathBuf,
    /// Profile (certificate template) name.
    #[arg(long)]
    pub profile: Option<String>,
    /// Write the PEM certificate here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Link the certificate to this inventory device (serial number or
    /// UDID), so `custos revoke --device` and MDM events reach it.
    #[arg(long)]
    pub device: Option<String>,
}

/// `custos certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List certificates in serial order.
    List {
        /// Start after this serial.
        #[arg(long)]
        after: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one certificate.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["serial", "serial_arg"]))]
    Show {
        /// Serial (hex), as `--serial HEX` or positionally.
        #[arg(long)]
        serial: Option<String>,
        /// Serial (hex).
        #[arg(value_name = "SERIAL")]
        serial_arg: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `custos revoke`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["serial", "device"]))]
pub struct RevokeArgs {
    /// Serial (hex) of the certificate.
    #[arg(long)]
    pub serial: Option<String>,
    /// Device identifier: serial number, UDID or permanent identifier.
    #[arg(long)]
    pub device: Option<String>,
    /// RFC 5280 reason (keyCompromise, cessationOfOperation, …).
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
}

/// Entry point of the binary: the process's exit code, or an error to print.
pub async fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    // One crypto provider everywhere: rustls and reqwest use aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        http_listen: match &cli.command {
            Command::Serve(a) => a.http,
            _ => None,
        },
        https_listen: match &cli.command {
            Command::Serve(a) => a.https,
            _ => None,
        },
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    crate::app::check_config(&config)?;
    init_logging(&config, matches!(cli.command, Command::Serve(_)));
    let done = match cli.command {
        Command::Init(args) => init(config, args),
        Command::Serve(args) => serve(config, args).await,
        Command::Issue(args) => issue(config, args).await,
        Command::Certs { command } => certs(config, command).await,
        Command::Revoke(args) => revoke(config, args).await,
        Command::Status => status(config).await,
        Command::Ocsp { command } => return ocsp(config, command).await,
        Command::Crl { command } => crl(config, command).await,
        Command::Eab { command } => eab(config, command).await,
        Command::Devices { command } => devices(config, command).await,
        Command::Profile { command } => profile(config, command),
        Command::Audit(args) => return audit(config, args).await,
        Command::Ledger {
            command: LedgerCommand::Verify { json },
        } => return ledger_verify(config, json).await,
        Command::Backup { out } => backup(config, out).await,
        Command::Restore { from } => restore(config, from),
        Command::Webhooks {
            command:
                WebhooksCommand::Outbox {
                    dead,
                    retry_dead,
                    json,
                },
        } => outbox(config, dead, retry_dead, json).await,
    };
    done.map(|()| std::process::ExitCode::SUCCESS)
}

async fn ledger_verify(config: Config, json: bool) -> anyhow::Result<std::process::ExitCode> {
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
            let report = crate::verify::verify(&app, unix_now(), |n| bar.set_position(n))?;
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

async fn backup(config: Config, out: PathBuf) -> anyhow::Result<()> {
    let out = std::path::absolute(&out).with_context(|| format!("{}: bad path", out.display()))?;
    let manifest = match target(config)? {
        Target::Direct(app) => {
            let m = crate::backup::backup(&app.ledger, &app.config.data_dir, &out, unix_now())?;
            app.authority.audit(
                &crate::admin_client::cli_actor(),
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

fn restore(config: Config, from: PathBuf) -> anyhow::Result<()> {
    let manifest = crate::backup::restore(&from, &config.data_dir)?;
    println!(
        "restored {} certificates into {}; check it with `custos --data-dir {} ledger verify`",
        manifest.certificates,
        config.data_dir.display(),
        config.data_dir.display()
    );
    Ok(())
}

async fn outbox(config: Config, dead: bool, retry_dead: bool, json: bool) -> anyhow::Result<()> {
    use crate::ledger::OutboxState;
    let target = target(config)?;
    if retry_dead {
        let n = match &target {
            Target::Direct(app) => {
                let n = app.ledger.retry_dead_notifications(unix_now())?;
                app.authority.audit(
                    &crate::admin_client::cli_actor(),
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

async fn audit(config: Config, args: AuditArgs) -> anyhow::Result<std::process::ExitCode> {
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

fn profile(config: Config, command: ProfileCommand) -> anyhow::Result<()> {
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
    let pem = crate::files::read_named(&root, "root certificate (run `custos init` first)")?;
    let root_der = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(&pem)
            .map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?
            .to_vec()
    };
    let bytes = crate::apple_profile::build(&crate::apple_profile::AppleProfileOptions {
        directory_url: format!("{}/acme/directory", config.https_base(None)),
        client_identifier: client_identifier
            .unwrap_or_else(|| config.acme.device_attest.client_identifier.clone()),
        group,
        root_der,
        organization,
    })?;
    match out {
        Some(path) => {
            crate::files::write_atomic(&path, &bytes, crate::files::Visibility::Public)?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(())
}

async fn devices(config: Config, command: DevicesCommand) -> anyhow::Result<()> {
    use crate::devices::{ops, Device, NewDevice, StatusChange};
    let target = target(config)?;
    let print = |d: &Device| -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(d)?);
        Ok(())
    };
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
            let device = match &target {
                Target::Direct(app) => {
                    let d = ops::add(&app.ledger, new, unix_now())?;
                    ops::audit_add(
                        &app.authority,
                        &crate::admin_client::cli_actor(),
                        &d,
                        unix_now(),
                    );
                    d
                }
                Target::Remote(c) => c.device_add(&new).await?,
            };
            print(&device)?;
        }
        DevicesCommand::Import { file } => {
            let csv = crate::files::read_named(&file, "device CSV")?;
            let result = match &target {
                Target::Direct(app) => {
                    let r = ops::import(&app.ledger, &csv, unix_now())?;
                    app.authority.audit(
                        &crate::admin_client::cli_actor(),
                        "device",
                        serde_json::json!({"action": "import", "imported": r.imported, "added": r.added, "outcome": "imported"}),
                        unix_now(),
                    );
                    r
                }
                Target::Remote(c) => c.device_import(csv).await?,
            };
            println!(
                "imported {} devices ({} new)",
                result.imported, result.added
            );
        }
        DevicesCommand::List { after, limit, json } => {
            let limit = limit.clamp(1, crate::server::admin::MAX_PAGE);
            let devices = match &target {
                Target::Direct(app) => app.ledger.list_devices(after.as_deref(), limit)?,
                Target::Remote(c) => c.device_list(after, limit).await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
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
            }
        }
        DevicesCommand::Show { id } => {
            let device = match &target {
                Target::Direct(app) => app.ledger.device(&id)?,
                Target::Remote(c) => c.device_show(&id).await?,
            };
            match device {
                Some(d) => print(&d)?,
                None => anyhow::bail!("no device {id:?} in the inventory"),
            }
        }
        DevicesCommand::SetStatus {
            id,
            status,
            compliant,
        } => {
            let change = StatusChange { status, compliant };
            let device = match &target {
                Target::Direct(app) => {
                    let d = app.ledger.set_device_status(
                        &id,
                        change.status,
                        change.compliant,
                        unix_now(),
                    )?;
                    if let Some(d) = &d {
                        ops::audit_status(
                            &app.authority,
                            &crate::admin_client::cli_actor(),
                            d,
                            unix_now(),
                        );
                    }
                    d
                }
                Target::Remote(c) => c.device_set_status(&id, &change).await?,
            };
            match device {
                Some(d) => print(&d)?,
                None => anyhow::bail!("no device {id:?} in the inventory"),
            }
        }
    }
    Ok(())
}

async fn eab(config: Config, command: EabCommand) -> anyhow::Result<()> {
    let EabCommand::Create { name } = command;
    let key = match target(config)? {
        Target::Direct(app) => {
            let secret = crate::eab::EabSecret::ensure(&app.config.data_dir)?;
            let key = crate::eab::create(&app.ledger, &secret, &name, unix_now())?;
            crate::eab::audit_create(
                &app.authority,
                &crate::admin_client::cli_actor(),
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

fn init_logging(config: &Config, serving: bool) {
    let default = if serving {
        config.log.level.as_str()
    } else {
        "warn"
    };
    // The scheduler announces its own bookkeeping at info; keep it quiet.
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTOS_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},tokio_cron_scheduler=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn urls(config: &Config) -> CaUrls {
    CaUrls {
        http_base: config.http_base(None),
    }
}

fn init(config: Config, args: InitArgs) -> anyhow::Result<()> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("{}: cannot create data dir", data_dir.display()))?;
    let opts = InitOptions {
        organization: args.org,
        root_cn: args.root_cn,
        intermediate_cn: args.intermediate_cn,
        root_days: args.root_days,
        intermediate_days: args.intermediate_days,
        ocsp_key: args.ocsp_key,
        ocsp_days: args.ocsp_days.unwrap_or(config.ocsp.signer_validity_days),
    };
    let ca = match args.import_ca {
        Some(files) => {
            let (cert, key) = (&files[0], &files[1]);
            let bundle = read_named(cert, "CA certificate")?;
            let key_pem = read_named(key, "CA key")?;
            Ca::import(data_dir, &bundle, &key_pem, &opts, urls(&config))
                .map_err(|e| anyhow!("{} / {}: {e}", cert.display(), key.display()))?
        }
        None => Ca::init(data_dir, &opts, urls(&config))?,
    };
    AdminToken::ensure(data_dir)?;
    println!("CA ready in {}", data_dir.display());
    print_ca(&ca, data_dir);
    Ok(())
}

fn print_ca(ca: &Ca, data_dir: &Path) {
    println!("  root certificate:  {}", ca.paths().root_cert().display());
    println!("  issuing chain:     {}", ca.paths().chain().display());
    println!("  root SHA-256:      {}", ca.root_fingerprint());
    println!(
        "  admin token:       {}",
        crate::instance::admin_token_path(data_dir).display()
    );
}

async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let ledger = open_ledger(&config).map_err(|e| match ServerInfo::read(&data_dir) {
        Ok(info) => anyhow!(
            "custos is already serving this data dir (pid {}, {}): {e}",
            info.pid,
            info.https_url
        ),
        Err(_) => e,
    })?;
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {} (http_listen)", config.http_listen))?;
    let https = tokio::net::TcpListener::bind(config.https_listen)
        .await
        .with_context(|| format!("cannot listen on {} (https_listen)", config.https_listen))?;
    let http_addr = http.local_addr()?;
    let https_addr = https.local_addr()?;
    let app = App::build(config, ledger, Some(http_addr), true)?;
    if args.hold_device_events {
        app.device_events.hold();
    }
    app.ca.renew_ocsp_signer_if_due(
        app.config.ocsp.signer_validity_days,
        app.config.ocsp.signer_renew_before_days,
    )?;
    let tls = crate::server::tls::acceptor(&app)?;
    let info = ServerInfo {
        pid: std::process::id(),
        https_url: app.config.https_base(Some(https_addr)),
        http_url: app.config.http_base(Some(http_addr)),
    };
    info.write(&data_dir)?;
    println!("custos is serving");
    println!("  http  (OCSP, CRL, /metrics):     {}", info.http_url);
    println!("  https (admin API, ACME):         {}", info.https_url);
    println!(
        "  CRL ({} shard{}):                 {}",
        app.crl.shard_count(),
        if app.crl.shard_count() == 1 { "" } else { "s" },
        app.ca.crl_url(0)
    );
    print_ca(&app.ca, &data_dir);
    for w in app.config.loopback_warnings(true, true) {
        eprintln!("custos: warning: {w}");
        tracing::warn!("{w}");
    }
    tracing::info!(http = %http_addr, https = %https_addr, "listening");

    let app = Arc::new(app);
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    // Catch up on refreshes missed while the server was down, then schedule.
    crate::jobs::refresh_ocsp(app.clone()).await;
    let crl = app.crl.clone();
    tokio::task::spawn_blocking(move || crl.ensure_current(unix_now()))
        .await?
        .map_err(|e| anyhow!("cannot publish the CRLs: {e}"))?;
    tokio::spawn(app.crl.clone().run_triggered(shutdown.clone()));
    crate::acme_validation::spawn(app.clone(), shutdown.clone());
    crate::notify::spawn(
        app.ledger.clone(),
        &app.config.notify,
        app.metrics.registry(),
        shutdown.clone(),
    )?;
    crate::jobs::retry_device_events(app.clone()).await;
    let mut scheduler = crate::jobs::start(app.clone()).await?;
    let result = crate::server::run(app.clone(), http, https, tls, shutdown).await;
    let _ = scheduler.shutdown().await;
    tracing::info!("shutting down: flushing the ledger");
    let flushed = app.ledger.flush();
    ServerInfo::remove(&data_dir);
    result?;
    flushed?;
    Ok(())
}

async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}

/// Where a command's work goes: straight to the ledger, or to the server.
enum Target {
    Direct(Box<App>),
    Remote(AdminClient),
}

fn target(config: Config) -> anyhow::Result<Target> {
    let data_dir = config.data_dir.clone();
    if !data_dir.exists() {
        anyhow::bail!(
            "{}: data dir does not exist; run `custos init` or `custos serve` first",
            data_dir.display()
        );
    }
    match crate::ledger::Ledger::open_with(
        &crate::instance::ledger_dir(&data_dir),
        &crate::app::ledger_options(&config),
    ) {
        Ok(ledger) => Ok(Target::Direct(Box::new(App::build(
            config, ledger, None, false,
        )?))),
        Err(crate::ledger::LedgerError::Locked(_)) => {
            Ok(Target::Remote(AdminClient::for_data_dir(&data_dir)?))
        }
        Err(e) => Err(anyhow!(
            "{}: {e}",
            crate::instance::ledger_dir(&data_dir).display()
        )),
    }
}

/// Whether a file holds a private key (PEM), which must never be sent.
fn holds_private_key(bytes: &[u8]) -> bool {
    bytes
        .windows(b"PRIVATE KEY-----".len())
        .any(|w| w == b"PRIVATE KEY-----")
}

async fn issue(config: Config, args: IssueArgs) -> anyhow::Result<()> {
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
                    &crate::admin_client::cli_actor(),
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

fn print_view(v: &CertView) {
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

async fn certs(config: Config, command: CertsCommand) -> anyhow::Result<()> {
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

async fn revoke(config: Config, args: RevokeArgs) -> anyhow::Result<()> {
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
                    Some(&crate::admin_client::cli_actor()),
                    now,
                )?],
                (None, Some(d)) => app.authority.revoke_device(
                    d,
                    reason,
                    Some(&crate::admin_client::cli_actor()),
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

async fn status(config: Config) -> anyhow::Result<()> {
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
                crate::instance::admin_token_path(&data_dir).display()
            );
        }
    }
    Ok(())
}

fn print_crls(crls: &[CrlInfo]) {
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

async fn crl(config: Config, command: CrlCommand) -> anyhow::Result<()> {
    let crls = match (command, target(config)?) {
        (CrlCommand::Generate, Target::Direct(app)) => {
            let made = app.crl.generate_all(unix_now())?;
            app.authority.audit(
                &crate::admin_client::cli_actor(),
                "crl.generate",
                serde_json::json!({"shards": made.iter().map(|c| c.shard).collect::<Vec<_>>(), "numbers": made.iter().map(|c| c.number).collect::<Vec<_>>(), "outcome": "signed"}),
                unix_now(),
            );
            made.iter().map(|c| CrlInfo::new(&app, c)).collect()
        }
        (CrlCommand::Show, Target::Direct(app)) => (0..app.crl.shard_count())
            .filter_map(|s| app.crl.current(s))
            .map(|c| CrlInfo::new(&app, &c))
            .collect(),
        (CrlCommand::Generate, Target::Remote(client)) => client.crl_generate().await?,
        (CrlCommand::Show, Target::Remote(client)) => client.crl_show().await?,
    };
    if crls.is_empty() {
        println!("no CRL published yet: run `custos crl generate` or start `custos serve`");
    } else {
        print_crls(&crls);
    }
    Ok(())
}

enum CheckOutcome {
    Good,
    Revoked,
    Unknown,
}

async fn ocsp_check(
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
        None => match crate::ocsp_check::aia_ocsp_url(&leaf[0]) {
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
    let result = crate::ocsp_check::check(&url, &issuer[0], &leaf[0])
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

async fn ocsp(config: Config, command: OcspCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        OcspCommand::Refresh => match target(config)? {
            Target::Direct(app) => {
                let total = app.ledger.count()?;
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} certificates ({eta} left)",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let done = app
                    .responder
                    .refresh_all(unix_now(), |n| bar.set_position(n))?;
                bar.finish_and_clear();
                app.authority.audit(
                    &crate::admin_client::cli_actor(),
                    "ocsp.refresh",
                    serde_json::json!({"refreshed": done, "outcome": "signed"}),
                    unix_now(),
                );
                println!("re-signed OCSP responses for {done} unexpired certificates");
            }
            Target::Remote(client) => {
                let spinner = indicatif::ProgressBar::new_spinner();
                spinner.set_message("re-signing on the running server…");
                spinner.enable_steady_tick(std::time::Duration::from_millis(120));
                let answer = client.ocsp_refresh().await;
                spinner.finish_and_clear();
                println!(
                    "re-signed OCSP responses for {} unexpired certificates",
                    answer?.refreshed
                );
            }
        },
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
