//! The `custos` command line (clap). It only builds configuration and calls
//! the library: commands that change state go through the admin API when a
//! server holds the data dir, and straight to the ledger when none does.
//!
//! One file per group of commands: `args` (the grammar), `serve`, `certs`,
//! `devices`, `records` and `status`.

use crate::app::App;
use crate::ca::CaUrls;
use crate::cli::admin_client::AdminClient;
use crate::config::{Config, LogFormat, Overrides};
use anyhow::anyhow;
use clap::Parser;

/// Runs `$body` with `$ops` bound to the data dir's [`ops::Operations`]:
/// in this process when no server holds the ledger, else through the
/// running server's admin API. The one place the two paths part.
macro_rules! with_ops {
    ($config:expr, |$ops:ident| $body:expr) => {
        match $crate::cli::target($config)? {
            $crate::cli::Target::Direct(app) => {
                let $ops = &$crate::cli::ops::Local(app);
                $body.await
            }
            $crate::cli::Target::Remote(client) => {
                let $ops = &client;
                $body.await
            }
        }
    };
}

pub mod admin_client;
mod args;
mod certs;
mod devices;
pub mod mobileconfig;
mod ops;
mod ops_remote;
mod records;
mod serve;
mod status;
mod subcommands;

pub use args::*;
use certs::{certs, issue, revoke, status};
use devices::{devices, eab, mdm, profile, scep};
use records::{
    audit, backup, ledger_verify, outbox, replication_resync, responder_revoke, responder_token,
    restore,
};
use serve::{init, serve};
use status::{crl, ocsp};

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
        Command::Certs { command } => with_ops!(config, |ops| certs(ops, command)),
        Command::Revoke(args) => with_ops!(config, |ops| revoke(ops, args)),
        Command::Status => {
            let data_dir = config.data_dir.clone();
            with_ops!(config, |ops| status(ops, &data_dir))
        }
        Command::Ocsp { command } => return ocsp(config, command).await,
        Command::Crl { command } => with_ops!(config, |ops| crl(ops, command)),
        Command::Eab { command } => with_ops!(config, |ops| eab(ops, command)),
        Command::Mdm { command } => with_ops!(config, |ops| mdm(ops, command)),
        Command::Console { command } => devices::console(&config, command),
        Command::Scep { command } => {
            let ttl = config.scep.challenge_ttl_secs;
            with_ops!(config, |ops| scep(ops, command, ttl))
        }
        Command::Devices { command } => with_ops!(config, |ops| devices(ops, command)),
        Command::Profile { command } => profile(config, command),
        Command::Audit(args) => return with_ops!(config, |ops| audit(ops, args)),
        Command::Ledger {
            command: LedgerCommand::Verify { json },
        } => return with_ops!(config, |ops| ledger_verify(ops, json)),
        Command::Backup { out } => with_ops!(config, |ops| backup(ops, out)),
        Command::Restore { from } => restore(config, from),
        Command::Webhooks {
            command:
                WebhooksCommand::Outbox {
                    dead,
                    retry_dead,
                    json,
                },
        } => with_ops!(config, |ops| outbox(ops, dead, retry_dead, json)),
        Command::Replication {
            command: ReplicationCommand::Resync,
        } => with_ops!(config, |ops| replication_resync(ops)),
        Command::Responder {
            command:
                ResponderCommand::Token {
                    command: TokenCommand::Create { name },
                },
        } => with_ops!(config, |ops| responder_token(ops, &name)),
        Command::Responder {
            command: ResponderCommand::Revoke { name, reason },
        } => {
            let reason = reason.parse()?;
            with_ops!(config, |ops| responder_revoke(ops, &name, reason))
        }
    };
    done.map(|()| std::process::ExitCode::SUCCESS)
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
        &crate::support::instance::ledger_dir(&data_dir),
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
            crate::support::instance::ledger_dir(&data_dir).display()
        )),
    }
}
