//! The device inventory: which devices the organisation manages, who has
//! them, and whether they are in good standing. Device certificates are
//! only issued (and renewed) for known, active, compliant devices; MDM
//! events change a device's status.
//!
//! Plain data and rules; storage is the ledger's (`devices` column family).

pub mod events;
pub mod mdm_lookup;
pub mod sync;

use serde::{Deserialize, Serialize};

pub use crate::ledger::normalize_device_id;
pub use crate::model::device::{Device, DeviceStatus};

/// A lock per device (by normalised serial number), striped over a fixed
/// set so that memory does not grow with the devices senders name. Held
/// while a device's MDM event is processed and while a certificate is
/// issued to it, so an issuance cannot slip past a `lost` event.
pub fn device_lock(key: &str) -> std::sync::MutexGuard<'static, ()> {
    use std::hash::{Hash, Hasher};
    static STRIPES: std::sync::OnceLock<Vec<std::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let stripes = STRIPES.get_or_init(|| (0..64).map(|_| std::sync::Mutex::new(())).collect());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    let i = (h.finish() % stripes.len() as u64) as usize;
    stripes[i].lock().unwrap_or_else(|e| e.into_inner())
}

/// A device to add, as given by an administrator or a CSV row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDevice {
    /// Serial number (required).
    pub serial: String,
    /// UDID.
    #[serde(default)]
    pub udid: Option<String>,
    /// Owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// Group.
    #[serde(default)]
    pub group: Option<String>,
    /// Status (default active).
    #[serde(default)]
    pub status: Option<String>,
    /// Compliant (default true).
    #[serde(default)]
    pub compliant: Option<String>,
    /// Notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// SHA-256 of the TPM attestation key's SubjectPublicKeyInfo, hex.
    #[serde(default)]
    pub tpm_ak: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("compliant must be true or false, not {other:?}")),
    }
}

impl NewDevice {
    /// Checks and normalises it into a device created at `now`.
    pub fn into_device(self, now: u64) -> Result<Device, String> {
        let serial = normalize_device_id(&self.serial);
        if serial.is_empty() || serial.len() > 64 {
            return Err("serial must be 1 to 64 characters".into());
        }
        if !serial
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(format!(
                "serial {serial:?} may hold only letters, digits, '-', '_' and '.'"
            ));
        }
        let status = match non_empty(&self.status) {
            Some(s) => s.parse()?,
            None => DeviceStatus::Active,
        };
        let compliant = match &self.compliant {
            Some(v) => parse_bool(v)?,
            None => true,
        };
        let tpm_ak = match non_empty(&self.tpm_ak) {
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(h.to_ascii_lowercase())
            }
            Some(_) => {
                return Err("tpm_ak must be 64 hex digits (SHA-256 of the AK's public key)".into())
            }
            None => None,
        };
        Ok(Device {
            serial,
            udid: non_empty(&self.udid).map(|u| normalize_device_id(&u)),
            owner: non_empty(&self.owner),
            group: non_empty(&self.group),
            status,
            compliant,
            notes: non_empty(&self.notes).unwrap_or_default(),
            created_at: now,
            updated_at: now,
            // An inventory entry claims no time for its status: any MDM
            // event, however old, may change it. Status changes by an
            // administrator or an event are dated.
            status_at: 0,
            enrolment: None,
            scep: crate::model::device::ScepPolicy::Auto,
            tpm_ak,
        })
    }
}

/// Reads a CSV inventory: a header row naming columns among `serial`
/// (required), `udid`, `owner`, `group`, `status`, `compliant`, `notes`, in
/// any order. Errors name the line.
pub fn parse_csv(text: &[u8], now: u64) -> Result<Vec<Device>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text);
    let headers = reader
        .headers()
        .map_err(|e| format!("CSV header: {e}"))?
        .clone();
    if !headers.iter().any(|h| h.eq_ignore_ascii_case("serial")) {
        return Err("CSV header has no \"serial\" column".into());
    }
    let lower: csv::StringRecord = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    const COLUMNS: [&str; 8] = [
        "serial",
        "udid",
        "owner",
        "group",
        "status",
        "compliant",
        "notes",
        "tpm_ak",
    ];
    for (i, h) in lower.iter().enumerate() {
        if !COLUMNS.contains(&h) {
            return Err(format!(
                "CSV header: unknown column {:?} (column {}); columns are {}",
                headers.get(i).unwrap_or_default(),
                i + 1,
                COLUMNS.join(", ")
            ));
        }
        if lower.iter().filter(|o| *o == h).count() > 1 {
            return Err(format!("CSV header: column {h:?} appears twice"));
        }
    }
    let mut devices = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| format!("CSV line {line}: {e}"))?;
        let new: NewDevice = row
            .deserialize(Some(&lower))
            .map_err(|e| format!("CSV line {line}: {e}"))?;
        devices.push(
            new.into_device(now)
                .map_err(|e| format!("CSV line {line}: {e}"))?,
        );
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_normalised_devices_and_errors_name_the_line() {
        let csv = b"serial,udid,owner,group,status,compliant,notes\n c02xl0abcdef ,00008030-001a,alice,laptops,,,\nF2LX1,,bob,phones,lost,false,left on a train\n";
        let devices = parse_csv(csv, 7).unwrap();
        assert_eq!(devices[0].serial, "C02XL0ABCDEF");
        assert_eq!(devices[0].udid.as_deref(), Some("00008030-001A"));
        assert_eq!(devices[0].status, DeviceStatus::Active);
        assert!(devices[0].compliant && devices[0].refusal().is_none());
        assert_eq!(devices[1].status, DeviceStatus::Lost);
        assert!(devices[1].refusal().unwrap().contains("lost"));
        let bad = parse_csv(b"serial,status\nA1,stolen\n", 0).unwrap_err();
        assert!(bad.contains("line 2") && bad.contains("stolen"), "{bad}");
        assert!(parse_csv(b"owner\nalice\n", 0).is_err());
        assert!(parse_csv(b"serial\na b\n", 0)
            .unwrap_err()
            .contains("line 2"));
        let unknown = parse_csv(b"serial,colour\nA1,red\n", 0).unwrap_err();
        assert!(unknown.contains("unknown column \"colour\""), "{unknown}");
        let yes = parse_csv(b"serial,compliant\nA1,yes\n", 0).unwrap_err();
        assert!(
            yes.contains("line 2") && yes.contains("true or false"),
            "{yes}"
        );
    }
}

/// What an import did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    /// Rows read.
    pub imported: usize,
    /// Devices that were new.
    pub added: usize,
}

/// A status change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// New status.
    pub status: DeviceStatus,
    /// New compliance, if it changes.
    #[serde(default)]
    pub compliant: Option<bool>,
}

/// Inventory operations shared by the CLI (direct) and the admin API.
pub mod ops {
    use super::*;
    use crate::ledger::Ledger;

    /// Adds (or replaces) one device.
    pub fn add(ledger: &Ledger, new: NewDevice, now: u64) -> anyhow::Result<Device> {
        let device = new.into_device(now).map_err(anyhow::Error::msg)?;
        ledger.put_devices(std::slice::from_ref(&device))?;
        Ok(ledger.device(&device.serial)?.unwrap_or(device))
    }

    /// The audit entry of a device added or replaced.
    pub fn audit_add(authority: &crate::ra::Authority, actor: &str, d: &Device, now: u64) {
        authority.audit(
            actor,
            "device",
            serde_json::json!({
                "action": "add",
                "device": d.serial,
                "udid": d.udid,
                "status": d.status.name(),
                "compliant": d.compliant,
                "outcome": "stored",
            }),
            now,
        );
    }

    /// The audit entry of a status change.
    pub fn audit_status(authority: &crate::ra::Authority, actor: &str, d: &Device, now: u64) {
        authority.audit(
            actor,
            "device",
            serde_json::json!({
                "action": "set-status",
                "device": d.serial,
                "udid": d.udid,
                "status": d.status.name(),
                "compliant": d.compliant,
                "outcome": "changed",
            }),
            now,
        );
    }

    /// The audit entry of a SCEP policy change.
    pub fn audit_scep(authority: &crate::ra::Authority, actor: &str, d: &Device, now: u64) {
        authority.audit(
            actor,
            "device",
            serde_json::json!({
                "action": "set-scep",
                "device": d.serial,
                "scep": d.scep.name(),
                "outcome": "changed",
            }),
            now,
        );
    }

    /// Imports a CSV inventory; all rows or none.
    pub fn import(ledger: &Ledger, csv: &[u8], now: u64) -> anyhow::Result<ImportResult> {
        let devices = parse_csv(csv, now).map_err(anyhow::Error::msg)?;
        let added = ledger.put_devices(&devices)?;
        Ok(ImportResult {
            imported: devices.len(),
            added,
        })
    }
}

/// Compares dotted version numbers ("17.4.1" ≥ "17.4").
pub fn version_at_least(version: &str, floor: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.trim()
            .split('.')
            .map(|p| p.trim().parse().unwrap_or(0))
            .collect()
    };
    let (mut a, mut b) = (parts(version), parts(floor));
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    a >= b
}

/// Why an attested device state falls short of `policy`, if it does.
pub fn policy_refusal(
    policy: &crate::config::DevicePolicy,
    attested: &crate::attestation::AttestedDevice,
    group: Option<&str>,
) -> Option<String> {
    let scope = group.map_or(String::new(), |g| format!(" for group {g}"));
    if let Some(floor) = &policy.min_os_version {
        match &attested.os_version {
            Some(v) if version_at_least(v, floor) => {}
            Some(v) => {
                return Some(format!(
                    "OS {v} is below the minimum {floor}{scope}: update the device"
                ))
            }
            None => {
                return Some(format!(
                    "the attestation has no OS version; {floor}{scope} is required"
                ))
            }
        }
    }
    if policy.require_full_security == Some(true)
        && attested.secure_boot.as_deref() != Some("Full Security")
    {
        return Some(format!(
            "Secure Boot is {:?}, \"Full Security\" is required{scope}",
            attested.secure_boot.as_deref().unwrap_or("not attested")
        ));
    }
    if policy.require_sip == Some(true) && attested.sip.as_deref() != Some("0") {
        return Some(format!(
            "System Integrity Protection is not enabled, and is required{scope}"
        ));
    }
    None
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use crate::attestation::AttestedDevice;
    use crate::config::DevicePolicy;

    #[test]
    fn floors_refuse_with_a_reason() {
        assert!(version_at_least("17.4.1", "17.4"));
        assert!(version_at_least("18", "17.10"));
        assert!(!version_at_least("17.3.9", "17.4"));
        let policy = DevicePolicy {
            min_os_version: Some("17.4".into()),
            require_full_security: Some(true),
            require_sip: Some(true),
        };
        let mut d = AttestedDevice {
            os_version: Some("17.5".into()),
            secure_boot: Some("Full Security".into()),
            sip: Some("0".into()),
            ..AttestedDevice::default()
        };
        assert_eq!(policy_refusal(&policy, &d, None), None);
        d.os_version = Some("16.7".into());
        assert!(policy_refusal(&policy, &d, Some("laptops"))
            .unwrap()
            .contains("16.7 is below the minimum 17.4 for group laptops"));
        d.os_version = Some("17.5".into());
        d.secure_boot = Some("Reduced Security".into());
        assert!(policy_refusal(&policy, &d, None)
            .unwrap()
            .contains("Full Security"));
        d.secure_boot = Some("Full Security".into());
        d.sip = Some("1".into());
        assert!(policy_refusal(&policy, &d, None)
            .unwrap()
            .contains("Integrity"));
    }
}
