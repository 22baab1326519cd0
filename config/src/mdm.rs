//! `[mdm.<name>]`: MDM inventories custos pulls and reconciles with its own.

use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which API an MDM source speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MdmKind {
    /// Jamf Pro API (OAuth client credentials).
    Jamf,
    /// Fleet REST API (API token).
    Fleet,
    /// Microsoft Intune through Microsoft Graph (OAuth client credentials).
    Intune,
    /// Any endpoint answering a JSON list of devices (bearer token).
    Generic,
}

impl MdmKind {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            MdmKind::Jamf => "jamf",
            MdmKind::Fleet => "fleet",
            MdmKind::Intune => "intune",
            MdmKind::Generic => "generic",
        }
    }
}

/// One `[mdm.<name>]` table.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdmSource {
    /// `jamf`, `fleet`, `intune` or `generic`.
    pub kind: MdmKind,
    /// Base URL: the Jamf Pro server, the Fleet server, Microsoft Graph
    /// (default `https://graph.microsoft.com`), or the generic endpoint
    /// itself.
    #[serde(default)]
    pub url: String,
    /// Bearer token: Fleet's API token, the generic endpoint's token.
    #[serde(default)]
    pub token: Option<String>,
    /// OAuth client id (Jamf API client, Entra app registration).
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Intune: the Entra tenant id (for the default token URL).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Intune: the OAuth token URL (default
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Seconds between syncs (default 900; at least 5).
    #[serde(default = "default_interval")]
    pub sync_interval_secs: u64,
    /// A sync that would change more than this share of the source's
    /// devices applies nothing until confirmed (default 5).
    #[serde(default = "default_max_changes")]
    pub max_changes_percent: f64,
    /// MDM group (site, team, group tag) → inventory group.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    /// Devices per page asked for (default 100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_interval() -> u64 {
    900
}
fn default_max_changes() -> f64 {
    5.0
}
fn default_page_size() -> u32 {
    100
}

impl std::fmt::Debug for MdmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdmSource")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<secret>"),
            )
            .field("sync_interval_secs", &self.sync_interval_secs)
            .field("max_changes_percent", &self.max_changes_percent)
            .finish()
    }
}

impl MdmSource {
    /// The checks serde cannot make; errors name the table.
    pub(super) fn check(&self, name: &str) -> anyhow::Result<()> {
        let at = format!("configuration error: [mdm.{name}]");
        if !custos_model::is_plain_name(name) {
            bail!("{at}: the name may hold only letters, digits, '-' and '_'");
        }
        let needs = |what: &str, v: &Option<String>| -> anyhow::Result<()> {
            match v {
                Some(s) if !s.is_empty() => Ok(()),
                _ => bail!("{at}: kind = \"{}\" needs {what}", self.kind.name()),
            }
        };
        match self.kind {
            MdmKind::Generic | MdmKind::Fleet => needs("token", &self.token)?,
            MdmKind::Jamf => {
                needs("client_id", &self.client_id)?;
                needs("client_secret", &self.client_secret)?;
            }
            MdmKind::Intune => {
                needs("client_id", &self.client_id)?;
                needs("client_secret", &self.client_secret)?;
                if self.tenant.is_none() && self.token_url.is_none() {
                    bail!("{at}: kind = \"intune\" needs tenant (or token_url)");
                }
            }
        }
        if self.url.is_empty() && self.kind != MdmKind::Intune {
            bail!("{at}: url is required");
        }
        for u in std::iter::once(&self.url).chain(self.token_url.iter()) {
            if !(u.is_empty() || u.starts_with("https://") || u.starts_with("http://")) {
                bail!("{at}: {u:?} is not an http(s) URL");
            }
        }
        if self.sync_interval_secs < 5 {
            bail!("{at}: sync_interval_secs must be at least 5");
        }
        if !(0.0..=100.0).contains(&self.max_changes_percent) {
            bail!("{at}: max_changes_percent must be between 0 and 100");
        }
        if !(1..=1000).contains(&self.page_size) {
            bail!("{at}: page_size must be between 1 and 1000");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, WebhookSource};

    #[test]
    fn one_mdm_table_configures_the_lookup_and_the_webhooks_apis() {
        let c = Config::from_toml(
            "[mdm.jamf]\nkind = \"jamf\"\nurl = \"https://jamf.example\"\nclient_id = \"id\"\nclient_secret = \"secret\"\n\
             [mdm.fleet]\nkind = \"fleet\"\nurl = \"https://fleet.example\"\ntoken = \"fleet-token\"\n\
             [acme.device_attest.mdm]\nsource = \"jamf\"\n\
             [webhooks.j]\nkind = \"jamf\"\nusername = \"u\"\npassword = \"p\"\n\
             [webhooks.f]\nkind = \"fleet\"\ntoken = \"hook-token\"\n",
        )
        .unwrap();
        let m = &c.acme.device_attest.mdm;
        assert_eq!(m.kind.as_deref(), Some("jamf"));
        assert_eq!(m.url, "https://jamf.example");
        assert_eq!(m.client_secret.as_deref(), Some("secret"));
        match &c.webhooks["j"] {
            WebhookSource::Jamf {
                api_url, client_id, ..
            } => {
                assert_eq!(api_url.as_deref(), Some("https://jamf.example"));
                assert_eq!(client_id.as_deref(), Some("id"));
            }
            other => panic!("{other:?}"),
        }
        match &c.webhooks["f"] {
            WebhookSource::Fleet {
                api_url, api_token, ..
            } => {
                assert_eq!(api_url.as_deref(), Some("https://fleet.example"));
                assert_eq!(api_token.as_deref(), Some("fleet-token"));
            }
            other => panic!("{other:?}"),
        }
        let e = Config::from_toml("[acme.device_attest.mdm]\nsource = \"nope\"\n").unwrap_err();
        assert!(e.to_string().contains("names no [mdm.nope]"), "{e}");
        // Fleet and Intune sources configure the lookup too; a generic
        // source (a device list, not a lookup) is refused.
        let c = Config::from_toml(
            "[mdm.fleet]\nkind = \"fleet\"\nurl = \"https://fleet.example\"\ntoken = \"fleet-token\"\n\
             [acme.device_attest.mdm]\nsource = \"fleet\"\n",
        )
        .unwrap();
        let m = &c.acme.device_attest.mdm;
        assert_eq!(m.kind.as_deref(), Some("fleet"));
        assert_eq!(m.token.as_deref(), Some("fleet-token"));
        let c = Config::from_toml(
            "[mdm.intune]\nkind = \"intune\"\ntenant = \"contoso.example\"\nclient_id = \"id\"\nclient_secret = \"secret\"\n\
             [acme.device_attest.mdm]\nsource = \"intune\"\n",
        )
        .unwrap();
        let m = &c.acme.device_attest.mdm;
        assert_eq!(m.kind.as_deref(), Some("intune"));
        assert_eq!(m.tenant.as_deref(), Some("contoso.example"));
        let e = Config::from_toml(
            "[mdm.list]\nkind = \"generic\"\nurl = \"https://mdm.example/devices\"\n\
             [acme.device_attest.mdm]\nsource = \"list\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("generic source"), "{e}");
    }
}
