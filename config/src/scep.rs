//! `[scep]`: the SCEP server (RFC 8894) for devices that cannot do ACME.

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// `[scep]`: where and how SCEP enrols.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScepConfig {
    /// Answer `/scep` at all (the HTTPS listener; see `listen_plain`).
    /// Switched off at the end of a migration to ACME.
    pub enabled: bool,
    /// Also answer `/scep` (and the NDES paths) on the plain-HTTP
    /// listener, for clients and MDMs that only speak `http://`. SCEP
    /// protects its messages itself (signed and encrypted CMS).
    pub listen_plain: bool,
    /// Profile of certificates issued over SCEP.
    pub profile: String,
    /// Lifetime of a challenge made without `--ttl` (seconds).
    pub challenge_ttl_secs: u64,
    /// Legacy: one shared challenge every device may use. The CSR must then
    /// name an inventory device in its subject (serialNumber or CN).
    /// Unset (the default): only one-time per-device challenges.
    pub static_challenge: Option<String>,
    /// Seconds a request's signingTime may differ from our clock.
    pub max_clock_skew_secs: u64,
    /// Size of the RA's RSA key: 2048, 3072 or 4096 (a change applies when
    /// the RA certificate is next renewed).
    pub ra_key_bits: u32,
    /// The NDES-compatible challenge page `GET /certsrv/mscep_admin/`
    /// (Fleet and other MDMs read a one-time challenge from it): its HTTP
    /// Basic credentials. Unset: the page answers 404.
    pub ndes: Option<BasicCredentials>,
    /// Jamf Pro's SCEPChallenge webhook, `POST /scep/jamf-challenge`: its
    /// HTTP Basic credentials. Unset: 404.
    pub jamf: Option<BasicCredentials>,
    /// Most unused, unexpired challenges that may be open at once before
    /// the NDES page and the Jamf webhook refuse to make more (429) until
    /// some are used or expire. `custos scep challenge` is not limited.
    pub max_open_challenges: u32,
}

/// A user name and password an MDM sends with HTTP Basic.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredentials {
    /// User name.
    pub username: String,
    /// Password (at least 16 characters).
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicCredentials({}, <password>)", self.username)
    }
}

impl Default for ScepConfig {
    fn default() -> Self {
        ScepConfig {
            enabled: true,
            listen_plain: false,
            profile: "device".into(),
            challenge_ttl_secs: 3600,
            static_challenge: None,
            max_clock_skew_secs: 3600,
            ra_key_bits: 2048,
            ndes: None,
            jamf: None,
            max_open_challenges: 1000,
        }
    }
}

/// Longest lifetime of a challenge (a challenge is a credential).
pub const MAX_CHALLENGE_TTL_SECS: u64 = 30 * 86_400;

impl ScepConfig {
    /// The checks serde cannot make.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if self.challenge_ttl_secs < 60 || self.challenge_ttl_secs > MAX_CHALLENGE_TTL_SECS {
            bail!("configuration error: scep.challenge_ttl_secs must be between 60 and {MAX_CHALLENGE_TTL_SECS}");
        }
        if let Some(s) = &self.static_challenge {
            if s.len() < 16
                || s.len() > 128
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            {
                bail!("configuration error: scep.static_challenge must be 16 to 128 letters, digits or -_.: (a shared secret; prefer one-time challenges)");
            }
        }
        if self.max_open_challenges == 0 || self.max_open_challenges > 1_000_000 {
            bail!("configuration error: scep.max_open_challenges must be between 1 and 1000000");
        }
        if ![2048, 3072, 4096].contains(&self.ra_key_bits) {
            bail!("configuration error: scep.ra_key_bits must be 2048, 3072 or 4096");
        }
        for (key, c) in [("scep.ndes", &self.ndes), ("scep.jamf", &self.jamf)] {
            if let Some(c) = c {
                if c.username.is_empty() || c.username.contains(':') || c.password.len() < 16 {
                    bail!("configuration error: {key}: username must be non-empty without ':', password at least 16 characters");
                }
            }
        }
        Ok(())
    }
}
