//! What the ledger remembers about one certificate.
//!
//! Plain data with serde; stored as JSON so that fields added by later
//! releases do not break older records. No storage calls here.

use crate::revocation::Reason;
use crate::serial::Serial;
use serde::{Deserialize, Serialize};

/// The device a certificate was issued to, as far as it is known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIds {
    /// Hardware serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Apple UDID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// ACME permanent-identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent_id: Option<String>,
}

impl DeviceIds {
    /// Every identifier present, normalised for the device index.
    pub fn index_keys(&self) -> Vec<String> {
        [&self.serial_number, &self.udid, &self.permanent_id]
            .into_iter()
            .flatten()
            .map(|id| normalize_device_id(id))
            .collect()
    }

    /// True when no identifier is known.
    pub fn is_empty(&self) -> bool {
        self.serial_number.is_none() && self.udid.is_none() && self.permanent_id.is_none()
    }
}

/// Device identifiers compare case-insensitively (MDMs differ in case).
pub fn normalize_device_id(id: &str) -> String {
    id.trim().to_ascii_uppercase()
}

/// A revocation as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When it was revoked (Unix seconds).
    pub time: u64,
    /// Why.
    pub reason: Reason,
    /// Sequence number of the event that last changed it.
    pub seq: u64,
}

/// One certificate's metadata (the DER is stored beside it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Serial number.
    pub serial: Serial,
    /// Issuer id (see `Ca::issuer_id`).
    pub issuer_id: String,
    /// Subject DN (RFC 4514 string).
    pub subject: String,
    /// notBefore (Unix seconds).
    pub not_before: u64,
    /// notAfter (Unix seconds).
    pub not_after: u64,
    /// When custos issued it (Unix seconds).
    pub issued_at: u64,
    /// DNS names in the SAN.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// IP addresses in the SAN.
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// Device identifiers.
    #[serde(default)]
    pub device: DeviceIds,
    /// ACME account that ordered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_account: Option<String>,
    /// Profile (certificate template) name.
    pub profile: String,
    /// CRL shard, fixed at issuance.
    pub crl_shard: u32,
    /// Set once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
}

/// Status derived from a record at a point in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    /// Valid and not revoked.
    Good,
    /// Revoked.
    Revoked,
    /// Past notAfter and not revoked.
    Expired,
}

impl CertRecord {
    /// Status at `now`.
    pub fn status(&self, now: u64) -> CertStatus {
        if self.revocation.is_some() {
            CertStatus::Revoked
        } else if now > self.not_after {
            CertStatus::Expired
        } else {
            CertStatus::Good
        }
    }
}

/// One entry of the revocation event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEvent {
    /// Monotonic sequence number.
    pub seq: u64,
    /// The certificate.
    pub serial: Serial,
    /// Its CRL shard.
    pub crl_shard: u32,
    /// The revocation as it stands after this event.
    pub revocation: Revocation,
}
