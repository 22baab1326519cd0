//! A managed device as every module sees it: its standing and its record.

use serde::{Deserialize, Serialize};

/// A device's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// In use and managed: may get certificates.
    Active,
    /// Reported lost or stolen.
    Lost,
    /// Left management.
    Unenrolled,
    /// Taken out of service for good.
    Retired,
}

impl DeviceStatus {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            DeviceStatus::Active => "active",
            DeviceStatus::Lost => "lost",
            DeviceStatus::Unenrolled => "unenrolled",
            DeviceStatus::Retired => "retired",
        }
    }
}

impl std::str::FromStr for DeviceStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Ok(DeviceStatus::Active),
            "lost" => Ok(DeviceStatus::Lost),
            "unenrolled" => Ok(DeviceStatus::Unenrolled),
            "retired" => Ok(DeviceStatus::Retired),
            other => Err(format!(
                "unknown device status {other:?} (active, lost, unenrolled, retired)"
            )),
        }
    }
}

/// How a device last got a certificate (set at each issuance linked to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Enrolment {
    /// ACME with hardware attestation (device-attest-01).
    AcmeAttested,
    /// ACME without attestation.
    Acme,
    /// SCEP.
    Scep,
    /// An administrator (`custos issue --device`, the admin API).
    Admin,
}

impl Enrolment {
    /// The name shown and filtered on.
    pub fn name(self) -> &'static str {
        match self {
            Enrolment::AcmeAttested => "acme-attested",
            Enrolment::Acme => "acme",
            Enrolment::Scep => "scep",
            Enrolment::Admin => "admin",
        }
    }
}

/// Whether a device may enrol over SCEP (`custos devices set-scep`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScepPolicy {
    /// Allowed until the device holds a hardware-attested certificate
    /// (then SCEP would be a downgrade, and is refused).
    #[default]
    Auto,
    /// Allowed even after hardware attestation (an administrator's choice).
    Allow,
    /// Refused.
    Deny,
}

impl ScepPolicy {
    /// The default (not stored).
    pub fn is_auto(&self) -> bool {
        *self == ScepPolicy::Auto
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ScepPolicy::Auto => "auto",
            ScepPolicy::Allow => "allow",
            ScepPolicy::Deny => "deny",
        }
    }
}

/// One managed device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Hardware serial number (normalised: trimmed, upper-case); the key.
    pub serial: String,
    /// Apple UDID (normalised), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// Who has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Group (policy floors apply per group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Standing.
    pub status: DeviceStatus,
    /// Compliant with the MDM's policies.
    pub compliant: bool,
    /// Free text for the helpdesk.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// Created (Unix seconds).
    pub created_at: u64,
    /// Last changed (Unix seconds).
    pub updated_at: u64,
    /// When what set the current status happened (an MDM event's
    /// `occurred_at`, or an administrator's `set-status`; 0 for a status
    /// from `devices add` or an import): an event that happened before
    /// this does not change the status.
    #[serde(default)]
    pub status_at: u64,
    /// How it last got a certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment: Option<Enrolment>,
    /// Whether it may enrol over SCEP.
    #[serde(default, skip_serializing_if = "ScepPolicy::is_auto")]
    pub scep: ScepPolicy,
    /// SHA-256 (hex, lower case) of its TPM attestation key's public key
    /// (the AK certificate's SubjectPublicKeyInfo): TPM attestations by
    /// that AK prove this device even when the AK certificate names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_ak: Option<String>,
}

impl Device {
    /// Why this device may not get a certificate now, in words a helpdesk
    /// can act on; `None` when it may.
    pub fn refusal(&self) -> Option<String> {
        if self.status != DeviceStatus::Active {
            return Some(format!(
                "device {} is {} in the inventory; an administrator must set it active again (custos devices set-status {} active)",
                self.serial,
                self.status.name(),
                self.serial
            ));
        }
        if !self.compliant {
            return Some(format!(
                "device {} is not compliant with the MDM's policies",
                self.serial
            ));
        }
        None
    }
}

/// What happened to a device, normalised across MDMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DeviceEventKind {
    /// Reported lost or stolen.
    Lost,
    /// Remotely wiped.
    Wiped,
    /// Left management.
    Unenrolled,
    /// Removed from the MDM.
    Deleted,
    /// Fell out of compliance.
    #[serde(rename = "noncompliant")]
    NonCompliant,
    /// Back in compliance.
    Compliant,
    /// Found again.
    Found,
    /// Enrolled.
    Enrolled,
}

impl DeviceEventKind {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            DeviceEventKind::Lost => "lost",
            DeviceEventKind::Wiped => "wiped",
            DeviceEventKind::Unenrolled => "unenrolled",
            DeviceEventKind::Deleted => "deleted",
            DeviceEventKind::NonCompliant => "noncompliant",
            DeviceEventKind::Compliant => "compliant",
            DeviceEventKind::Found => "found",
            DeviceEventKind::Enrolled => "enrolled",
        }
    }
}

impl std::str::FromStr for DeviceEventKind {
    type Err = String;

    /// The kind named `s`, in any case (`lost`, `Lost`, `LOST`).
    fn from_str(s: &str) -> Result<Self, String> {
        const ALL: [DeviceEventKind; 8] = [
            DeviceEventKind::Lost,
            DeviceEventKind::Wiped,
            DeviceEventKind::Unenrolled,
            DeviceEventKind::Deleted,
            DeviceEventKind::NonCompliant,
            DeviceEventKind::Compliant,
            DeviceEventKind::Found,
            DeviceEventKind::Enrolled,
        ];
        ALL.into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("{s:?} is not an event kind (lost, wiped, unenrolled, deleted, noncompliant, compliant, found, enrolled)")
            })
    }
}
