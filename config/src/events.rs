//! `[webhooks.<name>]`, `[webhook_reasons]` and `[notify]`: MDM events in,
//! revocation notifications out.

use custos_model::revocation::Reason;
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
    pub allowed_ips: Vec<ipnet::IpNet>,
    /// jamf: smart group name → event kind (lost, noncompliant, …).
    pub smart_groups: BTreeMap<String, String>,
    /// fleet, jamf: base URL of the MDM's API, to turn a device id into a
    /// serial (jamf: defaults to `acme.device_attest.mdm.url` when that is
    /// a Jamf Pro server).
    pub api_url: Option<String>,
    /// fleet: API token for `api_url`.
    pub api_token: Option<String>,
    /// jamf: Jamf Pro API client id for `api_url`.
    pub client_id: Option<String>,
    /// jamf: Jamf Pro API client secret for `api_url`.
    pub client_secret: Option<String>,
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
