//! What a sync would do: the MDM's devices compared with the inventory,
//! device by device, and the devices it listed before and lists no more.

use super::sources::{MdmDevice, MdmState};
use super::{PlannedChange, SyncState};
use crate::config::MdmSource;
use crate::devices::{Device, DeviceStatus};
use crate::ledger::Ledger;
use crate::model::device::DeviceEventKind;
use std::collections::BTreeSet;

pub(super) fn kind_named(name: &str) -> Option<DeviceEventKind> {
    Some(match name {
        "lost" => DeviceEventKind::Lost,
        "wiped" => DeviceEventKind::Wiped,
        "unenrolled" => DeviceEventKind::Unenrolled,
        "deleted" => DeviceEventKind::Deleted,
        "noncompliant" => DeviceEventKind::NonCompliant,
        "compliant" => DeviceEventKind::Compliant,
        "found" => DeviceEventKind::Found,
        _ => return None,
    })
}

/// What a sync would do.
pub(super) struct Plan {
    pub(super) added: Vec<Device>,
    /// Devices whose MDM group maps to another inventory group.
    pub(super) regrouped: Vec<(String, String)>,
    pub(super) changes: Vec<PlannedChange>,
    pub(super) seen: BTreeSet<String>,
    pub(super) missing: BTreeSet<String>,
}

/// Compares the MDM's devices with the inventory.
pub(super) fn plan(
    ledger: &Ledger,
    source: &MdmSource,
    devices: &[MdmDevice],
    state: &SyncState,
    now: u64,
) -> anyhow::Result<Plan> {
    let mut out = Plan {
        added: Vec::new(),
        regrouped: Vec::new(),
        changes: Vec::new(),
        seen: BTreeSet::new(),
        missing: BTreeSet::new(),
    };
    for m in devices {
        let found = [&m.serial, &m.udid]
            .into_iter()
            .flatten()
            .find_map(|id| ledger.device(id).ok().flatten());
        let Some(d) = found else {
            if let Some(serial) = &m.serial {
                let new = crate::devices::NewDevice {
                    serial: serial.clone(),
                    udid: m.udid.clone(),
                    group: m.group.as_ref().and_then(|g| source.groups.get(g).cloned()),
                    status: Some(target_status(m.state).name().into()),
                    compliant: m.compliant.map(|c| c.to_string()),
                    ..crate::devices::NewDevice::default()
                };
                if let Ok(d) = new.into_device(now) {
                    out.seen.insert(d.serial.clone());
                    out.added.push(d);
                }
            }
            continue;
        };
        out.seen.insert(d.serial.clone());
        if let Some(g) = m.group.as_ref().and_then(|g| source.groups.get(g)) {
            if d.group.as_ref() != Some(g) {
                out.regrouped.push((d.serial.clone(), g.clone()));
            }
        }
        out.changes.extend(compare(&d, m, now));
    }
    // Listed before, not now: unenrolled once two syncs agree.
    for serial in state.seen.difference(&out.seen) {
        if !state.missing.contains(serial) {
            out.missing.insert(serial.clone());
            continue;
        }
        if let Some(d) = ledger.device(serial)? {
            if matches!(d.status, DeviceStatus::Active) {
                out.changes.push(PlannedChange {
                    device: d.serial.clone(),
                    change: "unenrolled".into(),
                    from: d.status.name().into(),
                    occurred_at: now,
                });
            }
        }
    }
    Ok(out)
}

/// The change an MDM's view of a device makes to ours, if any.
fn compare(d: &Device, m: &MdmDevice, now: u64) -> Option<PlannedChange> {
    let at = m.updated_at.unwrap_or(now);
    // What the MDM knew before the device's status was last set (a
    // webhook newer than its last inventory) does not undo it.
    if at < d.status_at {
        return None;
    }
    let change = if target_status(m.state) != d.status {
        match (m.state, d.status) {
            // Retired by an administrator: the MDM does not bring it back.
            (MdmState::Active, DeviceStatus::Retired) => return None,
            (MdmState::Active, _) => "found",
            (MdmState::Lost, _) => "lost",
            (MdmState::Wiped, _) => "wiped",
            (MdmState::Unenrolled, _) => "unenrolled",
            (MdmState::Retired, _) => "deleted",
        }
    } else {
        match m.compliant.filter(|c| *c != d.compliant)? {
            true => "compliant",
            false => "noncompliant",
        }
    };
    Some(PlannedChange {
        device: d.serial.clone(),
        change: change.into(),
        from: d.status.name().into(),
        occurred_at: at,
    })
}

fn target_status(state: MdmState) -> DeviceStatus {
    match state {
        MdmState::Active => DeviceStatus::Active,
        MdmState::Lost | MdmState::Wiped => DeviceStatus::Lost,
        MdmState::Unenrolled | MdmState::Retired => DeviceStatus::Unenrolled,
    }
}
