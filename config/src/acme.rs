//! `[acme]`: the embedded ACME server and device attestation.

use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[acme]`: the embedded ACME server under `/acme/` on the HTTPS listener.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// DNS names certificates may name: a suffix `example.org` allows the
    /// name itself and every name under it. Nothing else is allowed.
    pub allowed_dns_suffixes: Vec<String>,
    /// IP ranges (CIDR) certificates may name.
    pub allowed_ip_ranges: Vec<ipnet::IpNet>,
    /// Port http-01 validation connects to.
    pub http01_port: u16,
    /// DNS server (`ip:port`) dns-01 validation asks; unset: the system's
    /// resolvers (`/etc/resolv.conf`).
    pub dns_resolver: Option<SocketAddr>,
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
    /// PEM files of the organisation's TPM attestation CA(s), which issue
    /// the attestation keys' (AK) certificates; empty: the `tpm` format is
    /// refused.
    pub tpm_roots: Vec<PathBuf>,
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
    /// An `[mdm.<name>]` source (kind `jamf`, `fleet` or `intune`) whose
    /// URL and credentials the lookup uses: one place to configure an MDM.
    /// Replaces `kind`, `url`, `client_id`, `client_secret`, `token`,
    /// `tenant` and `token_url`.
    pub source: Option<String>,
    /// `jamf`, `fleet`, `intune` or `generic`; unset: no lookup.
    pub kind: Option<String>,
    /// Base URL (Jamf Pro, Fleet; Microsoft Graph for Intune, default
    /// `https://graph.microsoft.com`) or the endpoint (generic).
    pub url: String,
    /// Jamf Pro API client id, or the Entra app's client id (Intune).
    pub client_id: Option<String>,
    /// Jamf Pro API client secret, or the Entra app's secret (Intune).
    pub client_secret: Option<String>,
    /// Bearer token for Fleet's API or the generic endpoint.
    pub token: Option<String>,
    /// Intune: the Entra tenant (id or domain) whose token endpoint issues
    /// the Graph token.
    pub tenant: Option<String>,
    /// Intune: the OAuth token URL instead of the tenant's.
    pub token_url: Option<String>,
    /// Seconds a lookup may take.
    pub timeout_secs: u64,
    /// Issue anyway when the MDM cannot be asked (default: refuse).
    pub fail_open: bool,
}

impl Default for MdmLookupConfig {
    fn default() -> Self {
        MdmLookupConfig {
            source: None,
            kind: None,
            url: String::new(),
            client_id: None,
            client_secret: None,
            token: None,
            tenant: None,
            token_url: None,
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
            tpm_roots: Vec::new(),
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

impl AcmeConfig {
    /// The checks serde cannot make (ranges, relations between keys).
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if self.validation_attempts == 0 || self.validation_attempts > 10 {
            bail!("configuration error: acme.validation_attempts must be between 1 and 10");
        }
        if self.validation_timeout_secs == 0 || self.validation_timeout_secs > 120 {
            bail!("configuration error: acme.validation_timeout_secs must be between 1 and 120");
        }
        if self.order_lifetime_days == 0 || self.authz_lifetime_days == 0 {
            bail!("configuration error: acme.order_lifetime_days and acme.authz_lifetime_days must be at least 1");
        }
        Ok(())
    }
}
