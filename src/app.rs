//! Wiring: from a checked [`Config`] and an open ledger to the handles every
//! front end shares (CA, ledger, authority, metrics, admin token).
//!
//! `App` is built once in `main` (or a test) and passed around in an `Arc`;
//! there are no globals. Creating a CA on first start also lives here.

use crate::ca::profile::Profiles;
use crate::ca::{Ca, CaUrls, InitOptions};
use crate::config::Config;
use crate::config::OcspSignWith;
use crate::ledger::{Ledger, LedgerError, LedgerOptions};
use crate::ra::issuance::Issuer;
use crate::ra::Authority;
use crate::status::crl_publisher::{CrlPublisher, CrlSettings};
use crate::status::responder::{Responder, ResponderSettings};
use crate::support::instance::{ledger_dir, AdminToken};
use crate::support::metrics::Metrics;
use anyhow::{anyhow, Context};
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything a front end needs.
#[derive(Clone, Debug)]
pub struct App {
    /// Configuration.
    pub config: Arc<Config>,
    /// The CA.
    pub ca: Arc<Ca>,
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// Administrative operations.
    pub authority: Authority,
    /// Metrics.
    pub metrics: Metrics,
    /// Admin API token.
    pub admin_token: AdminToken,
    /// The OCSP responder.
    pub responder: Arc<Responder>,
    /// The CRL publisher.
    pub crl: Arc<CrlPublisher>,
    /// The ACME server.
    pub acme: Arc<crate::acme::store::Acme>,
    /// ACME validation jobs, taken by the validator when serving starts.
    pub acme_jobs: AcmeJobs,
    /// MDM device events (the webhook listener's one service).
    pub device_events: Arc<crate::devices::events::DeviceEvents>,
    /// Publishing status to Redis (`[replication]` set).
    pub replication: Option<Arc<crate::replication::publish::Publisher>>,
    /// MDM inventory sync (`[mdm.<name>]`).
    pub mdm_sync: Arc<crate::devices::sync::MdmSync>,
    /// The last hour of OCSP answer rates (sampled while serving).
    pub ocsp_rates: Arc<crate::status::ocsp_rates::OcspRates>,
    /// Set while `serve`'s start-up catch-up (CRLs, then OCSP refreshes)
    /// runs: `/readyz` answers 503 meanwhile.
    pub catching_up: Arc<std::sync::atomic::AtomicBool>,
}

/// The queue of ACME validation jobs (taken once, by the validator).
pub type AcmeJobs = Arc<
    std::sync::Mutex<
        Option<tokio::sync::mpsc::UnboundedReceiver<custos_acme::order::ValidationJob>>,
    >,
>;

/// The device-attest-01 verifier from `acme.device_attest.apple_roots`.
fn apple_verifier(config: &Config) -> anyhow::Result<crate::attestation::AppleVerifier> {
    let roots = config
        .acme
        .device_attest
        .apple_roots
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| anyhow!("acme.device_attest.apple_roots: {}: {e}", p.display()))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    crate::attestation::AppleVerifier::new(&roots)
        .map_err(|e| anyhow!("acme.device_attest.apple_roots: {e}"))
}

/// The TPM attestation verifier from `acme.device_attest.tpm_roots`
/// (`None`: not configured, the `tpm` format is refused).
fn tpm_verifier(config: &Config) -> anyhow::Result<Option<custos_attest::tpm::TpmVerifier>> {
    let paths = &config.acme.device_attest.tpm_roots;
    if paths.is_empty() {
        return Ok(None);
    }
    let roots = paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| anyhow!("acme.device_attest.tpm_roots: {}: {e}", p.display()))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    custos_attest::tpm::TpmVerifier::new(&roots)
        .map(Some)
        .map_err(|e| anyhow!("acme.device_attest.tpm_roots: {e}"))
}

/// Checks what only the domain can judge in a loaded configuration: every
/// certificate profile builds, every webhook source and notification
/// subscriber is usable. Errors name the table at fault.
pub fn check_config(config: &Config) -> anyhow::Result<()> {
    for (name, p) in &config.profiles {
        crate::ca::profile::Profile::from_config(name, p)
            .map_err(|e| anyhow!("configuration error: [profiles.{name}]: {e}"))?;
    }
    for (name, w) in &config.webhooks {
        crate::devices::events::check_source(w)
            .map_err(|e| anyhow!("configuration error: [webhooks.{name}]: {e}"))?;
    }
    crate::status::notify::check(&config.notify)
        .map_err(|e| anyhow!("configuration error: {e}"))?;
    if config.scep.enabled && !config.profiles.contains_key(&config.scep.profile) {
        anyhow::bail!(
            "configuration error: scep.profile {:?} is not a profile (known: {})",
            config.scep.profile,
            config
                .profiles
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Ledger options from the configuration.
pub fn ledger_options(config: &Config) -> LedgerOptions {
    LedgerOptions {
        ocsp_cache_bytes: config.ocsp.cache_mb.max(1) << 20,
        replication_log: config.replication.enabled(),
    }
}

/// Responder settings from the configuration.
pub fn responder_settings(config: &Config) -> ResponderSettings {
    let o = &config.ocsp;
    ResponderSettings {
        validity_secs: u64::from(o.response_validity_hours) * 3600,
        refresh_fraction: o.refresh_fraction,
        backdate_secs: o.backdate_secs,
        fresh_signing: o.fresh_signing,
        max_concurrent_signing: o.max_concurrent_signing,
        max_nonce_len: o.max_nonce_len,
        sign_with_issuer: o.sign_with == OcspSignWith::Issuer,
        ..ResponderSettings::default()
    }
}

/// CRL publisher settings from the configuration.
pub fn crl_settings(config: &Config) -> CrlSettings {
    let c = &config.crl;
    CrlSettings {
        shards: c.shards,
        validity_secs: u64::from(c.validity_hours) * 3600,
        expired_grace_secs: u64::from(c.expired_grace_hours) * 3600,
        debounce: std::time::Duration::from_millis(c.debounce_ms),
        backdate_secs: c.backdate_secs,
        publish_dir: c.publish_dir.clone(),
        refresh_schedule: c.refresh_schedule.clone(),
    }
}

/// Opens the ledger of a data dir, with a message that says what to do when
/// a server holds it.
pub fn open_ledger(config: &Config) -> anyhow::Result<Ledger> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("{}: cannot create data dir", data_dir.display()))?;
    Ledger::open_with(&ledger_dir(data_dir), &ledger_options(config)).map_err(|e| match e {
        LedgerError::Locked(p) => anyhow!(
            "{}: another custos process (a running `custos serve`?) holds this data dir",
            p.display()
        ),
        other => anyhow!("{}: {other}", ledger_dir(data_dir).display()),
    })
}

impl App {
    /// The HTTPS URL this server is reached at: `public_https_url`, or
    /// where the running server announced it listens (the bound port when
    /// the configuration asked for port 0).
    pub fn https_base(&self) -> String {
        if let Some(u) = &self.config.public_https_url {
            return u.trim_end_matches('/').to_string();
        }
        crate::support::instance::ServerInfo::read(&self.config.data_dir)
            .map(|i| i.https_url)
            .unwrap_or_else(|_| self.config.https_base(None))
    }

    /// Builds the app over an open ledger. Creates a development CA when the
    /// data dir has none and `create_ca` is set. `http_bound` is the bound
    /// plain-HTTP address, used for URLs when `public_http_url` is unset.
    pub fn build(
        config: Config,
        ledger: Ledger,
        http_bound: Option<SocketAddr>,
        create_ca: bool,
    ) -> anyhow::Result<App> {
        check_config(&config)?;
        let data_dir = config.data_dir.clone();
        let ca = open_ca(&config, http_bound, create_ca)?;
        let admin_token = AdminToken::ensure(&data_dir)?;
        let ca = Arc::new(ca);
        let ledger = Arc::new(ledger);
        let metrics = Metrics::new();
        let profiles =
            Profiles::from_config(&config).map_err(|e| anyhow!("configuration error: {e}"))?;
        let issuer = Issuer::new(ca.clone(), ledger.clone(), config.crl.shards);
        let responder = Arc::new(Responder::new(
            ledger.clone(),
            ca.clone(),
            responder_settings(&config),
            metrics.registry(),
        )?);
        let crl = Arc::new(CrlPublisher::new(
            ledger.clone(),
            ca.clone(),
            crl_settings(&config),
            metrics.registry(),
        )?);
        let authority = Authority::new(
            issuer,
            profiles,
            metrics.clone(),
            responder.clone(),
            crl.clone(),
        );
        let (acme, job_queue) = acme_engine(&config, &ca, &ledger, &authority)?;
        let device_events = Arc::new(crate::devices::events::DeviceEvents::new(
            ledger.clone(),
            authority.clone(),
            &config,
        ));
        let mdm_sync = Arc::new(crate::devices::sync::MdmSync::new(
            ledger.clone(),
            device_events.clone(),
            config.mdm.clone(),
            metrics.registry(),
        )?);
        let replication = config.replication.enabled().then(|| {
            Arc::new(crate::replication::publish::Publisher::new(
                &config.replication,
                ledger.clone(),
                ca.clone(),
                crl.clone(),
                &metrics,
            ))
        });
        Ok(App {
            mdm_sync,
            ocsp_rates: Arc::default(),
            catching_up: Arc::default(),
            replication,
            acme,
            device_events,
            acme_jobs: Arc::new(std::sync::Mutex::new(Some(job_queue))),
            config: Arc::new(config),
            ca,
            ledger,
            authority,
            metrics,
            admin_token,
            responder,
            crl,
        })
    }
}

impl App {
    /// What `custos ledger verify` reads.
    pub fn verify_sources(&self) -> crate::maintenance::verify::Sources<'_> {
        crate::maintenance::verify::Sources {
            ledger: &self.ledger,
            ca: &self.ca,
            crl: &self.crl,
            expired_grace_hours: self.config.crl.expired_grace_hours,
        }
    }
}

/// The CA of the data dir: loaded, or (when `create` is set and there is
/// none) a development CA made now.
fn open_ca(config: &Config, http_bound: Option<SocketAddr>, create: bool) -> anyhow::Result<Ca> {
    let data_dir = &config.data_dir;
    let urls = CaUrls {
        http_base: config.http_base(http_bound),
    };
    if Ca::exists(data_dir) {
        Ca::load(data_dir, urls)
    } else if create {
        let ca = Ca::init(data_dir, &InitOptions::default(), urls)?;
        tracing::info!(root = %ca.paths().root_cert().display(), "created a development CA");
        Ok(ca)
    } else {
        anyhow::bail!(
            "{}: no CA in this data dir; run `custos init` first",
            crate::ca::CaPaths::new(data_dir).chain().display()
        )
    }
}

/// The ACME engine over the ledger and the authority, and the queue its
/// validation jobs arrive on (taken by the validator when serving starts).
fn acme_engine(
    config: &Config,
    ca: &Arc<Ca>,
    ledger: &Arc<Ledger>,
    authority: &Authority,
) -> anyhow::Result<(
    Arc<crate::acme::store::Acme>,
    tokio::sync::mpsc::UnboundedReceiver<custos_acme::order::ValidationJob>,
)> {
    let (jobs, job_queue) = tokio::sync::mpsc::unbounded_channel();
    let domain = crate::acme::domain::AcmeDomain::new(
        authority.clone(),
        ca.clone(),
        ledger.clone(),
        &config.acme,
        crate::acme::domain::Checks {
            jobs,
            eab: crate::acme::eab::EabSecret::ensure(&config.data_dir)?,
            apple: apple_verifier(config)?,
            tpm: tpm_verifier(config)?,
            mdm: crate::devices::mdm_lookup::from_config(&config.acme.device_attest.mdm)?,
        },
    );
    let engine = crate::acme::store::acme_server(config, ledger.clone(), domain);
    Ok((Arc::new(engine), job_queue))
}
