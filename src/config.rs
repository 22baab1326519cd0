//! custos configuration: `custos.toml`, `CUSTOS_*` environment variables and
//! command-line flags, merged once at start into typed, checked values.
//!
//! Precedence, lowest first: built-in defaults, the config file (`--config`,
//! else `custos.toml` in the working directory when present), environment
//! variables (`CUSTOS_HTTP_LISTEN`, nested keys with `__`:
//! `CUSTOS_CRL__SHARDS`), then flags. Every key is documented in README.md.
//! Nothing here opens sockets or touches the data dir.

use anyhow::{anyhow, bail};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `custos=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Who signs OCSP responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OcspSignWith {
    /// The delegated responder certificate (included in responses).
    Responder,
    /// The issuing CA's key directly.
    Issuer,
}

/// `[ocsp]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspConfig {
    /// Lifetime of the delegated OCSP responder certificate, in days.
    pub signer_validity_days: u32,
    /// Renew the responder certificate when fewer days than this are left.
    pub signer_renew_before_days: u32,
    /// thisUpdate to nextUpdate of every response, in hours.
    pub response_validity_hours: u32,
    /// Fraction of the validity after which a precomputed response is re-signed.
    pub refresh_fraction: f64,
    /// How far thisUpdate is set in the past, for relying parties' clock skew.
    pub backdate_secs: u64,
    /// Cron expression (with seconds) of the refresh job.
    pub refresh_schedule: String,
    /// Answer requests that carry a nonce with a freshly signed response echoing it.
    pub fresh_signing: bool,
    /// Fresh signatures under way at once; past this, `tryLater`.
    pub max_concurrent_signing: usize,
    /// Longest nonce accepted, in bytes (RFC 8954: 32; RFC 9654 allows 128).
    pub max_nonce_len: usize,
    /// `responder` (delegated certificate) or `issuer` (the issuing CA's key).
    pub sign_with: OcspSignWith,
    /// Cap on the HTTP `max-age` of precomputed answers, in seconds.
    pub max_age_secs: u64,
    /// Memory for precomputed responses (RocksDB block cache), in MiB.
    pub cache_mb: usize,
}

impl Default for OcspConfig {
    fn default() -> Self {
        OcspConfig {
            signer_validity_days: 14,
            signer_renew_before_days: 5,
            response_validity_hours: 24,
            refresh_fraction: 0.5,
            backdate_secs: 300,
            refresh_schedule: "0 * * * * *".into(),
            fresh_signing: true,
            max_concurrent_signing: 256,
            max_nonce_len: 32,
            sign_with: OcspSignWith::Responder,
            max_age_secs: 60,
            cache_mb: 64,
        }
    }
}

/// `[crl]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrlConfig {
    /// Number of CRL shards new certificates are spread over.
    pub shards: u32,
    /// thisUpdate to nextUpdate of every CRL, in hours.
    pub validity_hours: u32,
    /// Cron expression (with seconds) of the job that re-signs every shard.
    pub refresh_schedule: String,
    /// Revoked certificates stay listed this many hours past their notAfter.
    pub expired_grace_hours: u32,
    /// Revocations arriving within this many milliseconds are published
    /// in one regeneration of their shard.
    pub debounce_ms: u64,
    /// Also write every CRL (`<issuer-id>/<shard>.crl` and `.pem`) here,
    /// atomically, for a web server or CDN to serve.
    pub publish_dir: Option<PathBuf>,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            shards: 1,
            validity_hours: 24,
            refresh_schedule: "0 0 * * * *".into(),
            expired_grace_hours: 24,
            debounce_ms: 200,
            publish_dir: None,
        }
    }
}

/// `[acme]`: the embedded ACME server under `/acme/` on the HTTPS listener.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// DNS names certificates may name: a suffix `example.org` allows the
    /// name itself and every name under it. Nothing else is allowed.
    pub allowed_dns_suffixes: Vec<String>,
    /// IP ranges (CIDR) certificates may name.
    pub allowed_ip_ranges: Vec<String>,
    /// Port http-01 validation connects to.
    pub http01_port: u16,
    /// DNS server (`ip:port`) dns-01 validation asks; unset: the system's
    /// resolvers (`/etc/resolv.conf`).
    pub dns_resolver: Option<String>,
    /// Seconds one http-01 attempt may take.
    pub validation_timeout_secs: u64,
    /// Attempts per validation before it fails.
    pub validation_attempts: u32,
    /// Days an order stays open.
    pub order_lifetime_days: u32,
    /// Days an authorization stays usable.
    pub authz_lifetime_days: u32,
    /// New orders per account per hour (0: unlimited).
    pub new_orders_per_account_per_hour: u32,
    /// New orders per client IP per hour (0: unlimited).
    pub new_orders_per_ip_per_hour: u32,
    /// Failed validations per account per hour (0: unlimited).
    pub failed_validations_per_account_per_hour: u32,
    /// Failed validations per client IP per hour (0: unlimited).
    pub failed_validations_per_ip_per_hour: u32,
    /// Directory `meta.termsOfService` URL; when set, new accounts must agree.
    pub terms_of_service: Option<String>,
    /// Directory `meta.website`.
    pub website: Option<String>,
    /// Directory `meta.caaIdentities`.
    pub caa_identities: Vec<String>,
    /// Refuse new accounts without an external account binding.
    pub external_account_required: bool,
    /// device-attest-01.
    pub device_attest: DeviceAttestConfig,
}

/// `[acme.device_attest]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceAttestConfig {
    /// PEM files of the roots Apple attestations must chain to; empty: the
    /// Apple Enterprise Attestation Root CA compiled into custos.
    pub apple_roots: Vec<PathBuf>,
    /// Profile device certificates use when the order names none.
    pub profile: String,
    /// What `custos profile apple` writes as ClientIdentifier: the MDM's
    /// variable for the serial number (Jamf `$SERIALNUMBER`, Intune
    /// `{{serialnumber}}`, Fleet `$FLEET_VAR_HOST_HARDWARE_SERIAL`).
    pub client_identifier: String,
    /// Lowest OS version accepted from every device (e.g. "17.4").
    pub min_os_version: Option<String>,
    /// Require Secure Boot "Full Security" of every device.
    pub require_full_security: bool,
    /// Require System Integrity Protection enabled on every device.
    pub require_sip: bool,
    /// Floors per device group (each key set replaces the global one).
    pub groups: BTreeMap<String, DevicePolicy>,
    /// Ask the MDM before issuing.
    pub mdm: MdmLookupConfig,
}

/// `[acme.device_attest.mdm]`: the MDM asked whether a device is managed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MdmLookupConfig {
    /// `jamf` or `generic`; unset: no lookup.
    pub kind: Option<String>,
    /// Base URL (Jamf Pro) or the endpoint (generic).
    pub url: String,
    /// Jamf Pro API client id.
    pub client_id: Option<String>,
    /// Jamf Pro API client secret.
    pub client_secret: Option<String>,
    /// Bearer token for the generic endpoint.
    pub token: Option<String>,
    /// Seconds a lookup may take.
    pub timeout_secs: u64,
    /// Issue anyway when the MDM cannot be asked (default: refuse).
    pub fail_open: bool,
}

impl Default for MdmLookupConfig {
    fn default() -> Self {
        MdmLookupConfig {
            kind: None,
            url: String::new(),
            client_id: None,
            client_secret: None,
            token: None,
            timeout_secs: 5,
            fail_open: false,
        }
    }
}

impl DeviceAttestConfig {
    /// The floors for a device of `group`.
    pub fn policy_for(&self, group: Option<&str>) -> DevicePolicy {
        let global = DevicePolicy {
            min_os_version: self.min_os_version.clone(),
            require_full_security: Some(self.require_full_security),
            require_sip: Some(self.require_sip),
        };
        match group.and_then(|g| self.groups.get(g)) {
            None => global,
            Some(g) => DevicePolicy {
                min_os_version: g.min_os_version.clone().or(global.min_os_version),
                require_full_security: g.require_full_security.or(global.require_full_security),
                require_sip: g.require_sip.or(global.require_sip),
            },
        }
    }
}

impl Default for DeviceAttestConfig {
    fn default() -> Self {
        DeviceAttestConfig {
            apple_roots: Vec::new(),
            profile: "device".into(),
            client_identifier: "$SERIALNUMBER".into(),
            min_os_version: None,
            require_full_security: false,
            require_sip: false,
            groups: BTreeMap::new(),
            mdm: MdmLookupConfig::default(),
        }
    }
}

/// Attested-state floors (`[acme.device_attest]` and
/// `[acme.device_attest.groups.<group>]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicePolicy {
    /// Lowest OS version accepted (e.g. "17.4").
    pub min_os_version: Option<String>,
    /// Require Secure Boot "Full Security".
    pub require_full_security: Option<bool>,
    /// Require System Integrity Protection enabled.
    pub require_sip: Option<bool>,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            allowed_dns_suffixes: Vec::new(),
            allowed_ip_ranges: Vec::new(),
            http01_port: 80,
            dns_resolver: None,
            validation_timeout_secs: 10,
            validation_attempts: 3,
            order_lifetime_days: 7,
            authz_lifetime_days: 7,
            new_orders_per_account_per_hour: 300,
            new_orders_per_ip_per_hour: 1000,
            failed_validations_per_account_per_hour: 60,
            failed_validations_per_ip_per_hour: 100,
            terms_of_service: None,
            website: None,
            caa_identities: Vec::new(),
            external_account_required: false,
            device_attest: DeviceAttestConfig::default(),
        }
    }
}

/// `[tls]`: the HTTPS listener's own certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// DNS names and IP addresses in the listener certificate.
    pub server_names: Vec<String>,
    /// PEM certificate chain to use instead of one issued by our own CA.
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            server_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            cert_file: None,
            key_file: None,
        }
    }
}

/// `[profiles.<name>]`: a certificate template.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Certificate lifetime in days.
    #[serde(default = "default_validity_days")]
    pub validity_days: u32,
    /// keyUsage names (digitalSignature, keyEncipherment, keyAgreement, …).
    #[serde(default = "default_key_usage")]
    pub key_usage: Vec<String>,
    /// extendedKeyUsage names (clientAuth, serverAuth, …) or dotted OIDs.
    #[serde(default = "default_eku")]
    pub extended_key_usage: Vec<String>,
}

fn default_validity_days() -> u32 {
    30
}
fn default_key_usage() -> Vec<String> {
    vec!["digitalSignature".into()]
}
fn default_eku() -> Vec<String> {
    vec!["clientAuth".into(), "serverAuth".into()]
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            validity_days: default_validity_days(),
            key_usage: default_key_usage(),
            extended_key_usage: default_eku(),
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the ledger, CA files and tokens live.
    pub data_dir: PathBuf,
    /// Plain-HTTP listener (OCSP, CRL, /healthz, /metrics).
    pub http_listen: SocketAddr,
    /// HTTPS listener (ACME, admin API, webhooks).
    pub https_listen: SocketAddr,
    /// Public base URL of the HTTP listener, written into certificates.
    pub public_http_url: Option<String>,
    /// Public base URL of the HTTPS listener.
    pub public_https_url: Option<String>,
    /// Profile used when none is named.
    pub default_profile: String,
    /// Certificate templates by name.
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// Logging.
    pub log: LogConfig,
    /// OCSP responder.
    pub ocsp: OcspConfig,
    /// CRL publishing.
    pub crl: CrlConfig,
    /// ACME server.
    pub acme: AcmeConfig,
    /// HTTPS listener certificate.
    pub tls: TlsConfig,
    /// MDM webhook sources by name (`POST /webhooks/<name>`).
    pub webhooks: BTreeMap<String, WebhookSource>,
    /// Revocation reason per device event kind.
    pub webhook_reasons: WebhookReasons,
    /// Outbound revocation notifications.
    pub notify: NotifyConfig,
}

/// `[notify]`: who hears of each revocation, and how hard we try.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Attempts before an entry is dead.
    pub max_attempts: u32,
    /// Wait after the first failure (doubles each time).
    pub initial_backoff_secs: u64,
    /// Longest wait between attempts.
    pub max_backoff_secs: u64,
    /// Timeout of one delivery.
    pub timeout_secs: u64,
    /// Subscribers by name.
    pub subscribers: BTreeMap<String, Subscriber>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            max_attempts: 12,
            initial_backoff_secs: 5,
            max_backoff_secs: 3600,
            timeout_secs: 10,
            subscribers: BTreeMap::new(),
        }
    }
}

/// `[notify.subscribers.<name>]`: one receiver of revocation notifications.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Subscriber {
    /// Where to POST (http or https).
    pub url: String,
    /// Standard Webhooks signing secret (`whsec_…`).
    pub secret: String,
    /// Extra trust anchors (PEM) for an https URL with a private CA.
    pub ca_file: Option<PathBuf>,
}

/// `[webhooks.<name>]`: one MDM sending events.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSource {
    /// `standard`, `jamf`, `nanomdm`, `micromdm` or `fleet`.
    pub kind: String,
    /// standard: `whsec_…` secrets (several during rotation).
    pub secrets: Vec<String>,
    /// nanomdm: the HMAC key of `X-Hmac-Signature`.
    pub hmac_key: Option<String>,
    /// jamf: HTTP Basic user.
    pub username: Option<String>,
    /// jamf: HTTP Basic password.
    pub password: Option<String>,
    /// jamf: or a header that must carry `header_value`.
    pub header_name: Option<String>,
    /// jamf: the header's value.
    pub header_value: Option<String>,
    /// micromdm, fleet: bearer token (`Authorization: Bearer …` or `?token=`).
    pub token: Option<String>,
    /// Source IPs allowed (CIDR); empty: any.
    pub allowed_ips: Vec<String>,
    /// jamf: smart group name → event kind (lost, noncompliant, …).
    pub smart_groups: BTreeMap<String, String>,
    /// fleet: base URL of Fleet's API, to turn a host id into a serial.
    pub api_url: Option<String>,
    /// fleet: API token for `api_url`.
    pub api_token: Option<String>,
}

/// `[webhook_reasons]`: the revocation reason of each event kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookReasons {
    /// lost.
    pub lost: String,
    /// wiped.
    pub wiped: String,
    /// unenrolled.
    pub unenrolled: String,
    /// deleted.
    pub deleted: String,
    /// noncompliant.
    pub noncompliant: String,
}

impl Default for WebhookReasons {
    fn default() -> Self {
        WebhookReasons {
            lost: "keyCompromise".into(),
            wiped: "keyCompromise".into(),
            unenrolled: "cessationOfOperation".into(),
            deleted: "cessationOfOperation".into(),
            noncompliant: "privilegeWithdrawn".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut profiles = BTreeMap::new();
        profiles.insert("default".to_string(), ProfileConfig::default());
        profiles.insert(
            "device".to_string(),
            ProfileConfig {
                validity_days: 14,
                extended_key_usage: vec!["clientAuth".into()],
                ..ProfileConfig::default()
            },
        );
        Config {
            data_dir: PathBuf::from("./custos-data"),
            http_listen: "127.0.0.1:8080".parse().expect("valid default address"),
            https_listen: "127.0.0.1:8443".parse().expect("valid default address"),
            public_http_url: None,
            public_https_url: None,
            default_profile: "default".into(),
            profiles,
            log: LogConfig::default(),
            ocsp: OcspConfig::default(),
            crl: CrlConfig::default(),
            acme: AcmeConfig::default(),
            tls: TlsConfig::default(),
            webhooks: BTreeMap::new(),
            webhook_reasons: WebhookReasons::default(),
            notify: NotifyConfig::default(),
        }
    }
}

/// Values from command-line flags, which win over everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--http`.
    pub http_listen: Option<SocketAddr>,
    /// `--https`.
    pub https_listen: Option<SocketAddr>,
}

fn base_url(scheme: &str, addr: SocketAddr) -> String {
    format!("{scheme}://{addr}")
}

/// Top-level configuration keys that `CUSTOS_<KEY>` (and
/// `CUSTOS_<SECTION>__<KEY>`) environment variables may set.
const ENV_KEYS: &[&str] = &[
    "data_dir",
    "http_listen",
    "https_listen",
    "public_http_url",
    "public_https_url",
    "default_profile",
    "profiles",
    "log",
    "ocsp",
    "crl",
    "acme",
    "webhooks",
    "webhook_reasons",
    "notify",
    "tls",
];

impl Config {
    /// Loads and checks the configuration. `config_file` is `--config`.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match config_file {
            Some(path) => {
                if !path.is_file() {
                    bail!("{}: config file not found", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None => {
                let local = Path::new("custos.toml");
                if local.is_file() {
                    figment = figment.merge(Toml::file_exact(local));
                }
            }
        }
        // Only variables naming a configuration section or key are read:
        // other CUSTOS_* variables (CUSTOS_CONFIG, the benches' knobs) are
        // not configuration and must not be refused as unknown fields.
        figment = figment.merge(
            Env::prefixed("CUSTOS_")
                .filter(|key| {
                    let top = key.as_str().split("__").next().unwrap_or_default();
                    ENV_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
                })
                .split("__"),
        );
        let mut config: Config = figment
            .extract()
            .map_err(|e| anyhow!("configuration error: {}", one_line(&e)))?;
        if let Some(d) = &overrides.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(a) = overrides.http_listen {
            config.http_listen = a;
        }
        if let Some(a) = overrides.https_listen {
            config.https_listen = a;
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if !self.profiles.contains_key(&self.default_profile) {
            bail!(
                "configuration error: default_profile {:?} is not defined under [profiles]",
                self.default_profile
            );
        }
        for (name, p) in &self.profiles {
            crate::profile::Profile::from_config(name, p)
                .map_err(|e| anyhow!("configuration error: [profiles.{name}]: {e}"))?;
        }
        for (name, w) in &self.webhooks {
            crate::webhook_events::check_source(name, w)
                .map_err(|e| anyhow!("configuration error: [webhooks.{name}]: {e}"))?;
        }
        crate::notify::check(&self.notify).map_err(|e| anyhow!("configuration error: {e}"))?;
        let r = &self.webhook_reasons;
        for (kind, reason) in [
            ("lost", &r.lost),
            ("wiped", &r.wiped),
            ("unenrolled", &r.unenrolled),
            ("deleted", &r.deleted),
            ("noncompliant", &r.noncompliant),
        ] {
            reason
                .parse::<crate::revocation::Reason>()
                .map_err(|e| anyhow!("configuration error: webhook_reasons.{kind}: {e}"))?;
        }
        let a = &self.acme;
        for range in &a.allowed_ip_ranges {
            range.parse::<ipnet::IpNet>().map_err(|_| {
                anyhow!(
                    "configuration error: acme.allowed_ip_ranges: {range:?} is not a CIDR range"
                )
            })?;
        }
        if let Some(r) = &a.dns_resolver {
            r.parse::<SocketAddr>().map_err(|_| {
                anyhow!("configuration error: acme.dns_resolver {r:?} is not ip:port")
            })?;
        }
        if a.validation_attempts == 0 || a.validation_attempts > 10 {
            bail!("configuration error: acme.validation_attempts must be between 1 and 10");
        }
        if a.validation_timeout_secs == 0 || a.validation_timeout_secs > 120 {
            bail!("configuration error: acme.validation_timeout_secs must be between 1 and 120");
        }
        if a.order_lifetime_days == 0 || a.authz_lifetime_days == 0 {
            bail!("configuration error: acme.order_lifetime_days and acme.authz_lifetime_days must be at least 1");
        }
        let c = &self.crl;
        if c.shards == 0 || c.shards > 4096 {
            bail!("configuration error: crl.shards must be between 1 and 4096");
        }
        if c.validity_hours == 0 || c.validity_hours > 24 * 10 {
            bail!("configuration error: crl.validity_hours must be between 1 and 240");
        }
        if c.debounce_ms > 1000 {
            bail!("configuration error: crl.debounce_ms must be at most 1000 (revocations are published within a second)");
        }
        crate::crl_publisher::parse_schedule(&c.refresh_schedule).map_err(|e| {
            anyhow!(
                "configuration error: crl.refresh_schedule {:?}: {e}",
                c.refresh_schedule
            )
        })?;
        let o = &self.ocsp;
        if o.response_validity_hours == 0 || o.response_validity_hours > 24 * 7 {
            bail!("configuration error: ocsp.response_validity_hours must be between 1 and 168");
        }
        if !(0.1..=0.9).contains(&o.refresh_fraction) {
            bail!("configuration error: ocsp.refresh_fraction must be between 0.1 and 0.9");
        }
        if o.max_nonce_len < 1 || o.max_nonce_len > 128 {
            bail!("configuration error: ocsp.max_nonce_len must be between 1 and 128");
        }
        if o.max_concurrent_signing == 0 {
            bail!("configuration error: ocsp.max_concurrent_signing must be at least 1");
        }
        if o.backdate_secs >= u64::from(o.response_validity_hours) * 3600 {
            bail!("configuration error: ocsp.backdate_secs must be shorter than the response validity");
        }
        if self.ocsp.signer_renew_before_days >= self.ocsp.signer_validity_days {
            bail!("configuration error: ocsp.signer_renew_before_days must be less than ocsp.signer_validity_days");
        }
        for (key, url) in [
            ("public_http_url", &self.public_http_url),
            ("public_https_url", &self.public_https_url),
        ] {
            if let Some(u) = url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    bail!(
                        "configuration error: {key} must start with http:// or https://, got {u:?}"
                    );
                }
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            bail!("configuration error: tls.cert_file and tls.key_file go together");
        }
        Ok(())
    }

    /// Public base URL of the HTTP listener (no trailing slash).
    pub fn http_base(&self, bound: Option<SocketAddr>) -> String {
        self.public_http_url
            .clone()
            .unwrap_or_else(|| base_url("http", bound.unwrap_or(self.http_listen)))
            .trim_end_matches('/')
            .to_string()
    }

    /// Public base URL of the HTTPS listener (no trailing slash).
    pub fn https_base(&self, bound: Option<SocketAddr>) -> String {
        self.public_https_url
            .clone()
            .unwrap_or_else(|| base_url("https", bound.unwrap_or(self.https_listen)))
            .trim_end_matches('/')
            .to_string()
    }
}

fn one_line(e: &figment::Error) -> String {
    e.to_string().replace('\n', " ")
}
