//! `[webhooks.<name>]`, `[webhook_reasons]` and `[notify]`: MDM events in,
//! revocation notifications out.

use custos_model::device::DeviceEventKind;
use custos_model::revocation::Reason;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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

/// `[webhooks.<name>]`: one MDM sending events, told apart by `kind`. Each
/// kind has exactly the keys it uses; a key of another kind, or a missing
/// credential, is refused when the configuration is loaded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "SourceKeys", into = "SourceKeys")]
pub enum WebhookSource {
    /// Standard Webhooks v1 (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`) with our own JSON events.
    Standard {
        /// `whsec_…` secrets (several during rotation).
        secrets: Vec<String>,
        /// Source IPs allowed (CIDR); empty: any.
        allowed_ips: Vec<IpNet>,
    },
    /// Jamf Pro webhooks (HTTP Basic or a header value).
    Jamf {
        /// HTTP Basic user.
        username: Option<String>,
        /// HTTP Basic password.
        password: Option<String>,
        /// Or a header that must carry `header_value`.
        header_name: Option<String>,
        /// The header's value.
        header_value: Option<String>,
        /// Smart group name → the event a device joining it means.
        smart_groups: BTreeMap<String, DeviceEventKind>,
        /// The Jamf Pro API that turns a device id into a serial (default:
        /// `acme.device_attest.mdm` when that is a Jamf Pro server).
        api_url: Option<String>,
        /// Jamf Pro API client id for `api_url`.
        client_id: Option<String>,
        /// Jamf Pro API client secret for `api_url`.
        client_secret: Option<String>,
        /// Source IPs allowed (CIDR); empty: any.
        allowed_ips: Vec<IpNet>,
    },
    /// NanoMDM's webhook, signed in `X-Hmac-Signature`.
    NanoMdm {
        /// The HMAC key.
        hmac_key: String,
        /// Source IPs allowed (CIDR); empty: any.
        allowed_ips: Vec<IpNet>,
    },
    /// MicroMDM's webhook with a bearer token (`Authorization` or `?token=`).
    MicroMdm {
        /// The bearer token.
        token: String,
        /// Source IPs allowed (CIDR); empty: any.
        allowed_ips: Vec<IpNet>,
    },
    /// Fleet's webhooks with a bearer token (`Authorization` or `?token=`).
    Fleet {
        /// The bearer token.
        token: String,
        /// Fleet's API, to turn a host id into a serial.
        api_url: Option<String>,
        /// API token for `api_url`.
        api_token: Option<String>,
        /// Source IPs allowed (CIDR); empty: any.
        allowed_ips: Vec<IpNet>,
    },
}

impl WebhookSource {
    /// The `kind` key's value.
    pub fn kind(&self) -> &'static str {
        match self {
            WebhookSource::Standard { .. } => "standard",
            WebhookSource::Jamf { .. } => "jamf",
            WebhookSource::NanoMdm { .. } => "nanomdm",
            WebhookSource::MicroMdm { .. } => "micromdm",
            WebhookSource::Fleet { .. } => "fleet",
        }
    }

    /// Source addresses allowed to deliver (empty: any).
    pub fn allowed_ips(&self) -> &[IpNet] {
        match self {
            WebhookSource::Standard { allowed_ips, .. }
            | WebhookSource::Jamf { allowed_ips, .. }
            | WebhookSource::NanoMdm { allowed_ips, .. }
            | WebhookSource::MicroMdm { allowed_ips, .. }
            | WebhookSource::Fleet { allowed_ips, .. } => allowed_ips,
        }
    }

    /// The checks serde cannot make: blank credentials, keys that only
    /// work together. `name` is the table's name.
    pub(super) fn check(&self, name: &str) -> anyhow::Result<()> {
        let at = |why: String| anyhow::anyhow!("configuration error: webhooks.{name}: {why}");
        if !custos_model::is_plain_name(name) {
            return Err(at(
                "the name may hold only letters, digits, '-' and '_'".into()
            ));
        }
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let need = |v: &str, key: &str| match v.trim().is_empty() {
            true => Err(at(format!(
                "{key} must not be empty for kind {:?}",
                self.kind()
            ))),
            false => Ok(()),
        };
        match self {
            WebhookSource::Standard { secrets, .. } if secrets.is_empty() => {
                return Err(at(
                    "secrets (whsec_…) are required for kind \"standard\"".into()
                ));
            }
            WebhookSource::Standard { .. } => {}
            WebhookSource::NanoMdm { hmac_key, .. } => need(hmac_key, "hmac_key")?,
            WebhookSource::MicroMdm { token, .. } => need(token, "token")?,
            WebhookSource::Jamf {
                username,
                password,
                header_name,
                header_value,
                api_url,
                client_id,
                client_secret,
                ..
            } => {
                let basic = set(username) && set(password);
                let header = set(header_name) && set(header_value);
                if !basic && !header {
                    return Err(at(
                        "jamf needs username and password, or header_name and header_value".into(),
                    ));
                }
                let api = [api_url, client_id, client_secret];
                if api.iter().any(|v| v.is_some()) && !api.iter().all(|v| set(v)) {
                    return Err(at("api_url, client_id and client_secret go together".into()));
                }
            }
            WebhookSource::Fleet {
                token,
                api_url,
                api_token,
                ..
            } => {
                need(token, "token")?;
                if api_url.is_some() != api_token.is_some() {
                    return Err(at("api_url and api_token go together".into()));
                }
            }
        }
        Ok(())
    }
}

/// The `kind` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceKind {
    #[default]
    Standard,
    Jamf,
    NanoMdm,
    MicroMdm,
    Fleet,
}

/// `[webhooks.<name>]` as written: every key any kind has, so that a wrong
/// type or an unknown key is reported with its full name, then sorted into
/// the one kind it names (a key of another kind is refused there).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SourceKeys {
    kind: Option<SourceKind>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hmac_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_ips: Vec<IpNet>,
    #[serde(
        deserialize_with = "event_kinds",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    smart_groups: BTreeMap<String, DeviceEventKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl SourceKeys {
    /// Refuses, rather than ignores, a key that `kind` does not use.
    fn refuse_foreign_keys(&self, kind: SourceKind, name: &str) -> Result<(), String> {
        let k = self;
        let used: &[&str] = match kind {
            SourceKind::Standard => &["secrets"],
            SourceKind::Jamf => &[
                "username",
                "password",
                "header_name",
                "header_value",
                "smart_groups",
                "api_url",
                "client_id",
                "client_secret",
            ],
            SourceKind::NanoMdm => &["hmac_key"],
            SourceKind::MicroMdm => &["token"],
            SourceKind::Fleet => &["token", "api_url", "api_token"],
        };
        let given = [
            ("secrets", !k.secrets.is_empty()),
            ("hmac_key", k.hmac_key.is_some()),
            ("username", k.username.is_some()),
            ("password", k.password.is_some()),
            ("header_name", k.header_name.is_some()),
            ("header_value", k.header_value.is_some()),
            ("token", k.token.is_some()),
            ("smart_groups", !k.smart_groups.is_empty()),
            ("api_url", k.api_url.is_some()),
            ("api_token", k.api_token.is_some()),
            ("client_id", k.client_id.is_some()),
            ("client_secret", k.client_secret.is_some()),
        ];
        if let Some((key, _)) = given.iter().find(|(key, set)| *set && !used.contains(key)) {
            return Err(format!("{key} is not a key of kind {name:?}"));
        }
        Ok(())
    }
}

impl TryFrom<SourceKeys> for WebhookSource {
    type Error = String;

    fn try_from(k: SourceKeys) -> Result<Self, String> {
        let Some(kind) = k.kind else {
            return Err("missing key kind (standard, jamf, nanomdm, micromdm or fleet)".into());
        };
        let name = match kind {
            SourceKind::Standard => "standard",
            SourceKind::Jamf => "jamf",
            SourceKind::NanoMdm => "nanomdm",
            SourceKind::MicroMdm => "micromdm",
            SourceKind::Fleet => "fleet",
        };
        k.refuse_foreign_keys(kind, name)?;
        let need = |v: Option<String>, key: &str| {
            v.ok_or_else(|| format!("missing key {key} (required for kind {name:?})"))
        };
        let allowed_ips = k.allowed_ips;
        Ok(match kind {
            SourceKind::Standard => WebhookSource::Standard {
                secrets: k.secrets,
                allowed_ips,
            },
            SourceKind::Jamf => WebhookSource::Jamf {
                username: k.username,
                password: k.password,
                header_name: k.header_name,
                header_value: k.header_value,
                smart_groups: k.smart_groups,
                api_url: k.api_url,
                client_id: k.client_id,
                client_secret: k.client_secret,
                allowed_ips,
            },
            SourceKind::NanoMdm => WebhookSource::NanoMdm {
                hmac_key: need(k.hmac_key, "hmac_key")?,
                allowed_ips,
            },
            SourceKind::MicroMdm => WebhookSource::MicroMdm {
                token: need(k.token, "token")?,
                allowed_ips,
            },
            SourceKind::Fleet => WebhookSource::Fleet {
                token: need(k.token, "token")?,
                api_url: k.api_url,
                api_token: k.api_token,
                allowed_ips,
            },
        })
    }
}

impl From<WebhookSource> for SourceKeys {
    fn from(w: WebhookSource) -> Self {
        match w {
            WebhookSource::Standard {
                secrets,
                allowed_ips,
            } => SourceKeys {
                kind: Some(SourceKind::Standard),
                secrets,
                allowed_ips,
                ..SourceKeys::default()
            },
            WebhookSource::Jamf {
                username,
                password,
                header_name,
                header_value,
                smart_groups,
                api_url,
                client_id,
                client_secret,
                allowed_ips,
            } => SourceKeys {
                kind: Some(SourceKind::Jamf),
                username,
                password,
                header_name,
                header_value,
                smart_groups,
                api_url,
                client_id,
                client_secret,
                allowed_ips,
                ..SourceKeys::default()
            },
            WebhookSource::NanoMdm {
                hmac_key,
                allowed_ips,
            } => SourceKeys {
                kind: Some(SourceKind::NanoMdm),
                hmac_key: Some(hmac_key),
                allowed_ips,
                ..SourceKeys::default()
            },
            WebhookSource::MicroMdm { token, allowed_ips } => SourceKeys {
                kind: Some(SourceKind::MicroMdm),
                token: Some(token),
                allowed_ips,
                ..SourceKeys::default()
            },
            WebhookSource::Fleet {
                token,
                api_url,
                api_token,
                allowed_ips,
            } => SourceKeys {
                kind: Some(SourceKind::Fleet),
                token: Some(token),
                api_url,
                api_token,
                allowed_ips,
                ..SourceKeys::default()
            },
        }
    }
}

/// Smart-group values are event kinds in any case (`Lost`, `lost`).
fn event_kinds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, DeviceEventKind>, D::Error> {
    let raw = BTreeMap::<String, String>::deserialize(d)?;
    raw.into_iter()
        .map(|(group, kind)| Ok((group, kind.parse().map_err(serde::de::Error::custom)?)))
        .collect()
}

/// `[webhook_reasons]`: the revocation reason of each event kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookReasons {
    /// lost.
    pub lost: Reason,
    /// wiped.
    pub wiped: Reason,
    /// unenrolled.
    pub unenrolled: Reason,
    /// deleted.
    pub deleted: Reason,
    /// noncompliant.
    pub noncompliant: Reason,
}

impl Default for WebhookReasons {
    fn default() -> Self {
        WebhookReasons {
            lost: Reason::KeyCompromise,
            wiped: Reason::KeyCompromise,
            unenrolled: Reason::CessationOfOperation,
            deleted: Reason::CessationOfOperation,
            noncompliant: Reason::PrivilegeWithdrawn,
        }
    }
}
