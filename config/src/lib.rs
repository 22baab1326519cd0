//! custos configuration: `custos.toml`, `CUSTOS_*` environment variables and
//! command-line flags, merged once at start into typed, checked values.
//!
//! Precedence, lowest first: built-in defaults, the config file (`--config`,
//! else `custos.toml` in the working directory when present), environment
//! variables (`CUSTOS_HTTP_LISTEN`, nested keys with `__`:
//! `CUSTOS_CRL__SHARDS`), then flags. Every key is documented in README.md.
//! Nothing here opens sockets or touches the data dir, and nothing here
//! imports the domain: only `model`. One file per group of sections
//! (`listeners`, `status`, `acme`, `profiles`, `events`); what only the
//! domain can judge (profiles build, sources are usable) is checked by
//! `app::check_config`.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

use anyhow::{anyhow, bail};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod acme;
mod events;
mod listeners;
mod mdm;
mod profiles;
mod replication;
mod scep;
mod status;

pub use acme::{AcmeConfig, DeviceAttestConfig, DevicePolicy, MdmLookupConfig};
pub use events::{NotifyConfig, Subscriber, WebhookReasons, WebhookSource};
pub use listeners::{HttpConfig, LogConfig, LogFormat, TlsConfig, TlsFiles};
pub use mdm::{MdmKind, MdmSource};
pub use profiles::ProfileConfig;
pub use replication::ReplicationConfig;
pub use scep::{BasicCredentials, ScepConfig, MAX_CHALLENGE_TTL_SECS};
pub use status::{CrlConfig, OcspConfig, OcspSignWith};

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
    /// Connection limits of both listeners.
    pub http: HttpConfig,
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
    /// Publishing status to Redis for stateless responders.
    pub replication: ReplicationConfig,
    /// SCEP enrolment.
    pub scep: ScepConfig,
    /// MDM inventories to sync, by name.
    pub mdm: BTreeMap<String, MdmSource>,
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
            http: HttpConfig::default(),
            ocsp: OcspConfig::default(),
            crl: CrlConfig::default(),
            acme: AcmeConfig::default(),
            tls: TlsConfig::default(),
            webhooks: BTreeMap::new(),
            webhook_reasons: WebhookReasons::default(),
            notify: NotifyConfig::default(),
            replication: ReplicationConfig::default(),
            scep: ScepConfig::default(),
            mdm: BTreeMap::new(),
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
    "http",
    "ocsp",
    "crl",
    "acme",
    "webhooks",
    "webhook_reasons",
    "notify",
    "tls",
    "replication",
    "scep",
    "mdm",
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
        check_env_names(std::env::vars().map(|(k, _)| k))?;
        figment = figment.merge(
            Env::prefixed("CUSTOS_")
                .filter(|key| {
                    // CUSTOS_LOG is a tracing filter (read when logging
                    // starts), not the [log] table.
                    if key.as_str().eq_ignore_ascii_case("log") {
                        return false;
                    }
                    let top = key.as_str().split("__").next().unwrap_or_default();
                    ENV_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
                })
                .split("__"),
        );
        let mut config: Config = figment
            .extract()
            .map_err(|e| anyhow!("configuration error: {}", describe(&e)))?;
        if let Some(d) = &overrides.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(a) = overrides.http_listen {
            config.http_listen = a;
        }
        if let Some(a) = overrides.https_listen {
            config.https_listen = a;
        }
        config.resolve_mdm()?;
        config.check()?;
        Ok(config)
    }

    /// The configuration a TOML text gives over the defaults, checked, with
    /// no environment variables, flags or files: what a config file alone
    /// means (the fuzz target and tests use it).
    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| anyhow!("configuration error: {}", describe(&e)))?;
        let mut config = config;
        config.resolve_mdm()?;
        config.check()?;
        Ok(config)
    }

    /// One place to configure an MDM: `acme.device_attest.mdm.source`
    /// takes its URL and credentials from that `[mdm.<name>]` table, and a
    /// Jamf or Fleet webhook source without its own API settings uses the
    /// one `[mdm.<name>]` source of its kind, when there is exactly one.
    fn resolve_mdm(&mut self) -> anyhow::Result<()> {
        if let Some(name) = self.acme.device_attest.mdm.source.clone() {
            let s = self.mdm.get(&name).ok_or_else(|| {
                anyhow!("configuration error: acme.device_attest.mdm.source {name:?} names no [mdm.{name}] table")
            })?;
            if s.kind == MdmKind::Generic {
                bail!("configuration error: acme.device_attest.mdm.source {name:?} is a generic source, whose URL lists devices; the lookup asks a jamf, fleet or intune source (or set kind = \"generic\" and the url of a lookup endpoint)");
            }
            let m = &mut self.acme.device_attest.mdm;
            m.kind = Some(s.kind.name().into());
            m.url = s.url.clone();
            m.client_id = s.client_id.clone();
            m.client_secret = s.client_secret.clone();
            m.token = s.token.clone();
            m.tenant = s.tenant.clone();
            m.token_url = s.token_url.clone();
        }
        let only = |kind: MdmKind| {
            let of_kind: Vec<&MdmSource> = self.mdm.values().filter(|s| s.kind == kind).collect();
            match of_kind.as_slice() {
                [one] => Some((*one).clone()),
                _ => None,
            }
        };
        let (jamf, fleet) = (only(MdmKind::Jamf), only(MdmKind::Fleet));
        for w in self.webhooks.values_mut() {
            match w {
                WebhookSource::Jamf {
                    api_url: api_url @ None,
                    client_id,
                    client_secret,
                    ..
                } => {
                    if let Some(s) = &jamf {
                        *api_url = Some(s.url.clone());
                        *client_id = s.client_id.clone();
                        *client_secret = s.client_secret.clone();
                    }
                }
                WebhookSource::Fleet {
                    api_url: api_url @ None,
                    api_token,
                    ..
                } => {
                    if let Some(s) = &fleet {
                        *api_url = Some(s.url.clone());
                        *api_token = s.token.clone();
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// What can be judged from the configuration alone (the domain judges
    /// the rest: see `app::check_config`).
    fn check(&self) -> anyhow::Result<()> {
        if !self.profiles.contains_key(&self.default_profile) {
            bail!(
                "configuration error: default_profile {:?} is not defined under [profiles]",
                self.default_profile
            );
        }
        self.acme.check()?;
        self.crl.check()?;
        self.http.check()?;
        self.ocsp.check()?;
        self.replication.check()?;
        self.scep.check()?;
        for (name, m) in &self.mdm {
            m.check(name)?;
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
        for (name, source) in &self.webhooks {
            source.check(name)?;
        }
        Ok(())
    }

    /// Warnings for URLs that would name this machine's loopback address
    /// in what custos hands out (certificates' OCSP, CRL and CA issuer
    /// URLs; the ACME directory URL in enrolment profiles): only this
    /// machine can reach them. Each names the key to set.
    pub fn loopback_warnings(&self, http: bool, https: bool) -> Vec<String> {
        let mut out = Vec::new();
        if http && self.public_http_url.is_none() && self.http_listen.ip().is_loopback() {
            out.push(format!(
                "public_http_url is not set: certificates will carry OCSP and CRL URLs under {}, which only this machine can reach; set public_http_url to the address relying parties use",
                self.http_base(None)
            ));
        }
        if https && self.public_https_url.is_none() && self.https_listen.ip().is_loopback() {
            out.push(format!(
                "public_https_url is not set: devices will be sent to {}, which only this machine can reach; set public_https_url to the address devices use",
                self.https_base(None)
            ));
        }
        out
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

/// `CUSTOS_*` variables that are not configuration keys but are read by
/// custos, its tests or its benches.
const OTHER_ENV: &[&str] = &["CONFIG", "LOG", "SCREENSHOTS"];
/// Prefixes of the benches' and tests' own `CUSTOS_*` knobs.
const OTHER_ENV_PREFIXES: &[&str] = &["LOAD_", "BENCH_", "ACME_", "WEBHOOK_", "CRL_SIZES", "SOAK_"];

/// Refuses a `CUSTOS_*` variable that looks like a misspelt configuration
/// key (`CUSTOS_HTTP_LISTN`), which would otherwise be silently ignored.
fn check_env_names(names: impl Iterator<Item = String>) -> anyhow::Result<()> {
    for name in names {
        let Some(rest) = name.strip_prefix("CUSTOS_") else {
            continue;
        };
        let top = rest.split("__").next().unwrap_or_default();
        let known = ENV_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top));
        if known
            || OTHER_ENV.iter().any(|k| k.eq_ignore_ascii_case(rest))
            || OTHER_ENV_PREFIXES.iter().any(|p| rest.starts_with(p))
        {
            continue;
        }
        let lower = top.to_ascii_lowercase();
        let hint = ENV_KEYS
            .iter()
            .map(|k| (strsim::levenshtein(k, &lower), k))
            .filter(|(d, _)| *d <= 2)
            .min();
        if let Some((_, k)) = hint {
            bail!(
                "configuration error: environment variable {name} is not a configuration key (did you mean CUSTOS_{}?)",
                k.to_ascii_uppercase()
            );
        }
    }
    Ok(())
}

/// One line naming where the fault is (file or environment), the key, and
/// what is wrong, with a suggestion for a misspelt key.
fn describe(e: &figment::Error) -> String {
    use figment::error::Kind;
    let mut out = Vec::new();
    for e in e.clone() {
        let path: Vec<&str> = e
            .path
            .iter()
            .map(String::as_str)
            .skip_while(|p| *p == "default" || *p == "global")
            .collect();
        let key = path.join(".");
        let source = match e.metadata.as_ref() {
            Some(m) => match &m.source {
                Some(figment::Source::File(f)) => f.display().to_string(),
                _ if m.name.contains("environment") => {
                    let var = format!("CUSTOS_{}", path.join("__").to_ascii_uppercase());
                    format!("environment variable {var}")
                }
                _ => m.name.to_string(),
            },
            None => "configuration".to_string(),
        };
        let what = match &e.kind {
            Kind::UnknownField(field, expected) => {
                let parent: Vec<&str> = path[..path.len().saturating_sub(1)].to_vec();
                let full = |f: &str| {
                    let mut p = parent.clone();
                    p.push(f);
                    p.join(".")
                };
                let hint = expected
                    .iter()
                    .map(|k| (strsim::levenshtein(k, field), *k))
                    .filter(|(d, _)| *d <= 3)
                    .min()
                    .map(|(_, k)| format!(" (did you mean {}?)", full(k)))
                    .unwrap_or_default();
                format!("unknown key {}{hint}", full(field))
            }
            Kind::InvalidType(actual, expected) => {
                format!("{key}: expected {expected}, found {actual}")
            }
            Kind::InvalidValue(actual, expected) => {
                format!("{key}: expected {expected}, found {actual}")
            }
            Kind::UnknownVariant(v, expected) => {
                format!("{key}: {v:?} is not one of {}", expected.join(", "))
            }
            Kind::MissingField(f) => {
                let mut p = path.clone();
                p.push(f);
                format!("missing key {}", p.join("."))
            }
            other if key.is_empty() => other.to_string(),
            other => format!("{key}: {other}"),
        };
        out.push(format!("{source}: {what}"));
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(text: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), &Overrides::default())
    }

    #[test]
    fn a_misspelt_key_is_named_with_a_suggestion() {
        let e = load_toml("[crl]\nshard = 3\n").unwrap_err().to_string();
        assert!(
            e.contains("custos.toml: unknown key crl.shard (did you mean crl.shards?)"),
            "{e}"
        );
        let e = load_toml("http_listn = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown key http_listn (did you mean http_listen?)"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let e = load_toml("[crl]\nshards = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("custos.toml: crl.shards: expected"), "{e}");
    }

    #[test]
    fn typed_values_are_checked_when_loaded_and_name_the_key() {
        for (text, key) in [
            (
                "[acme]\nallowed_ip_ranges = [\"10.0.0.0/33\"]\n",
                "acme.allowed_ip_ranges",
            ),
            ("[acme]\ndns_resolver = \"8.8.8.8\"\n", "acme.dns_resolver"),
            (
                "[webhook_reasons]\nlost = \"certificateHold\"\n",
                "webhook_reasons.lost",
            ),
            (
                "[webhooks.x]\nkind = \"fleet\"\ntoken = \"t\"\nallowed_ips = [\"nope\"]\n",
                "webhooks.x.allowed_ips",
            ),
        ] {
            let e = load_toml(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        // A webhook source has exactly its kind's keys.
        for (text, want) in [
            (
                "[webhooks.x]\nkind = \"fleet\"\ntoken = \"t\"\nhmac_key = \"k\"\n",
                "webhooks.x: hmac_key is not a key of kind \"fleet\"",
            ),
            (
                "[webhooks.x]\nkind = \"nanomdm\"\n",
                "webhooks.x: missing key hmac_key (required for kind \"nanomdm\")",
            ),
            ("[webhooks.x]\nkind = \"airwatch\"\n", "webhooks.x.kind: \"airwatch\" is not one of"),
            ("[webhooks.x]\ntoken = \"t\"\n", "webhooks.x: missing key kind"),
            (
                "[webhooks.x]\nkind = \"jamf\"\nusername = \"u\"\npassword = \"p\"\n[webhooks.x.smart_groups]\nStolen = \"misplaced\"\n",
                "\"misplaced\" is not an event kind",
            ),
            (
                "[webhooks.x]\nkind = \"micromdm\"\ntoken = \" \"\n",
                "webhooks.x: token must not be empty",
            ),
            ("[tls]\ncert_file = \"/c.pem\"\n", "tls.cert_file and tls.key_file go together"),
        ] {
            let e = load_toml(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let c = load_toml("[webhooks.x]\nkind = \"jamf\"\nheader_name = \"X-K\"\nheader_value = \"v\"\n[webhooks.x.smart_groups]\nStolen = \"Lost\"\n").unwrap();
        match &c.webhooks["x"] {
            WebhookSource::Jamf { smart_groups, .. } => assert_eq!(
                smart_groups["Stolen"],
                custos_model::device::DeviceEventKind::Lost
            ),
            other => panic!("{other:?}"),
        }
        let c = load_toml("[acme]\nallowed_ip_ranges = [\"10.0.0.0/8\"]\n[webhook_reasons]\nlost = \"superseded\"\n").unwrap();
        assert_eq!(c.acme.allowed_ip_ranges[0].prefix_len(), 8);
        assert_eq!(
            c.webhook_reasons.lost,
            custos_model::revocation::Reason::Superseded
        );
    }

    #[test]
    fn a_toml_text_alone_is_a_checked_configuration() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.crl.shards, Config::default().crl.shards);
        let e = Config::from_toml("[crl]\nshards = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("crl.shards must be between 1 and 4096"), "{e}");
        let e = Config::from_toml("[crl\n").unwrap_err().to_string();
        assert!(e.contains("configuration error"), "{e}");
    }

    #[test]
    fn misspelt_environment_variables_are_refused() {
        let e = check_env_names(["CUSTOS_HTTP_LISTN".to_string()].into_iter())
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean CUSTOS_HTTP_LISTEN?"), "{e}");
        for fine in [
            "CUSTOS_HTTP_LISTEN",
            "CUSTOS_CRL__SHARDS",
            "CUSTOS_LOG",
            "CUSTOS_CONFIG",
            "CUSTOS_LOAD_CERTS",
            "PATH",
        ] {
            check_env_names([fine.to_string()].into_iter()).unwrap();
        }
    }
}
