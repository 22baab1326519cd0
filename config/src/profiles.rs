//! `[profiles.<name>]`: certificate templates.

use serde::{Deserialize, Serialize};

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
