//! The ledger's side of the device inventory: one JSON record per device
//! under its serial, and a UDID index, in the `devices` column family,
//! every write synced.

use super::{sync_opts, Ledger, LedgerError, CF_DEVICES};
use crate::model::device::{Device, DeviceStatus, Enrolment, ScepPolicy};
use rocksdb::{Direction, IteratorMode, WriteBatch};

fn device_key(serial: &str) -> Vec<u8> {
    format!("dev/{serial}").into_bytes()
}

fn udid_key(udid: &str) -> Vec<u8> {
    format!("udid/{udid}").into_bytes()
}

impl Ledger {
    /// The device with this serial or UDID (normalised).
    pub fn device(&self, id: &str) -> Result<Option<Device>, LedgerError> {
        let id = super::normalize_device_id(id);
        let cf = self.cf(CF_DEVICES);
        if let Some(v) = self.db.get_pinned_cf(cf, device_key(&id))? {
            return Ok(Some(super::decode(&v, "device")?));
        }
        match self.db.get_pinned_cf(cf, udid_key(&id))? {
            Some(serial) => match self
                .db
                .get_pinned_cf(cf, device_key(&String::from_utf8_lossy(&serial)))?
            {
                Some(v) => Ok(Some(super::decode(&v, "device")?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// Adds or replaces devices (keyed by serial) in one synced write; a
    /// replaced device keeps its creation time, how it last enrolled and
    /// its SCEP policy (an inventory does not carry them). Returns how
    /// many were new.
    pub fn put_devices(&self, devices: &[Device]) -> Result<usize, LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_DEVICES);
        let mut batch = WriteBatch::default();
        let mut added = 0;
        for d in devices {
            let mut d = d.clone();
            match self.db.get_pinned_cf(cf, device_key(&d.serial))? {
                Some(old) => {
                    let old: Device = super::decode(&old, "device")?;
                    d.created_at = old.created_at;
                    d.enrolment = old.enrolment;
                    d.scep = old.scep;
                    if let Some(u) = old.udid.filter(|u| Some(u) != d.udid.as_ref()) {
                        batch.delete_cf(cf, udid_key(&u));
                    }
                }
                None => added += 1,
            }
            if let Some(u) = &d.udid {
                batch.put_cf(cf, udid_key(u), d.serial.as_bytes());
            }
            batch.put_cf(cf, device_key(&d.serial), super::encode(&d));
        }
        self.db.write_opt(batch, &sync_opts())?;
        Ok(added)
    }

    /// Records a device's UDID if it has none yet, reading and writing the
    /// record under the write lock: only that field changes, so a status
    /// set meanwhile (a lost device) is never reverted by a stale copy.
    /// `None` if the device is unknown.
    pub fn learn_udid(
        &self,
        serial: &str,
        udid: &str,
        now: u64,
    ) -> Result<Option<Device>, LedgerError> {
        let _guard = self.lock();
        let Some(mut d) = self.device(serial)? else {
            return Ok(None);
        };
        if d.udid.is_some() {
            return Ok(Some(d));
        }
        let udid = super::normalize_device_id(udid);
        d.udid = Some(udid.clone());
        d.updated_at = now;
        let cf = self.cf(CF_DEVICES);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, udid_key(&udid), d.serial.as_bytes());
        batch.put_cf(cf, device_key(&d.serial), super::encode(&d));
        self.db.write_opt(batch, &sync_opts())?;
        Ok(Some(d))
    }

    /// Records how a device last got a certificate, changing only that
    /// field under the write lock; `None` if the device is unknown.
    pub fn set_device_enrolment(
        &self,
        id: &str,
        enrolment: Enrolment,
        now: u64,
    ) -> Result<Option<Device>, LedgerError> {
        self.update_device(id, now, |d| {
            let changed = d.enrolment != Some(enrolment);
            d.enrolment = Some(enrolment);
            changed
        })
    }

    /// Reads a device and, when `change` says it changed it, writes it back
    /// (synced), all under the write lock so no other change is lost.
    fn update_device(
        &self,
        id: &str,
        now: u64,
        change: impl FnOnce(&mut Device) -> bool,
    ) -> Result<Option<Device>, LedgerError> {
        let _guard = self.lock();
        let Some(mut d) = self.device(id)? else {
            return Ok(None);
        };
        if !change(&mut d) {
            return Ok(Some(d));
        }
        d.updated_at = now;
        self.db.put_cf_opt(
            self.cf(CF_DEVICES),
            device_key(&d.serial),
            super::encode(&d),
            &sync_opts(),
        )?;
        Ok(Some(d))
    }

    /// Sets a device's group (from an MDM's group mapping), changing only
    /// that field under the write lock; `None` if the device is unknown.
    pub fn set_device_group(
        &self,
        id: &str,
        group: &str,
        now: u64,
    ) -> Result<Option<Device>, LedgerError> {
        self.update_device(id, now, |d| {
            let changed = d.group.as_deref() != Some(group);
            d.group = Some(group.to_string());
            changed
        })
    }

    /// Sets whether a device may enrol over SCEP, changing only that field
    /// under the write lock; `None` if the device is unknown.
    pub fn set_device_scep(
        &self,
        id: &str,
        policy: ScepPolicy,
        now: u64,
    ) -> Result<Option<Device>, LedgerError> {
        self.update_device(id, now, |d| {
            d.scep = policy;
            true
        })
    }

    /// Sets a device's status (and compliance, when given); `None` if the
    /// device is unknown.
    pub fn set_device_status(
        &self,
        id: &str,
        status: DeviceStatus,
        compliant: Option<bool>,
        now: u64,
    ) -> Result<Option<Device>, LedgerError> {
        let _guard = self.lock();
        let mut batch = WriteBatch::default();
        let d = self.put_device_status(&mut batch, id, status, compliant, now, now)?;
        self.db.write_opt(batch, &sync_opts())?;
        Ok(d)
    }

    /// Adds a device's status change, as of `at`, to `batch` (caller holds
    /// the lock). A change older than the one the device's status comes
    /// from (a late delivery of an earlier event) changes nothing.
    pub(super) fn put_device_status(
        &self,
        batch: &mut WriteBatch,
        id: &str,
        status: DeviceStatus,
        compliant: Option<bool>,
        at: u64,
        now: u64,
    ) -> Result<Option<Device>, LedgerError> {
        let Some(mut d) = self.device(id)? else {
            return Ok(None);
        };
        if at < d.status_at {
            return Ok(Some(d));
        }
        d.status_at = at;
        d.status = status;
        if let Some(c) = compliant {
            d.compliant = c;
        }
        d.updated_at = now;
        batch.put_cf(
            self.cf(CF_DEVICES),
            device_key(&d.serial),
            super::encode(&d),
        );
        Ok(Some(d))
    }

    /// Devices in serial order after `after`, at most `limit`.
    pub fn list_devices(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Device>, LedgerError> {
        self.list_devices_where(after, limit, |_| true)
    }

    /// Devices `keep` accepts, in serial order after `after`, at most
    /// `limit` (reading on past the others).
    pub fn list_devices_where(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&Device) -> bool,
    ) -> Result<Vec<Device>, LedgerError> {
        let start = device_key(after.unwrap_or(""));
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_DEVICES),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(b"dev/") || out.len() >= limit {
                break;
            }
            if after.is_some() && *key == *start {
                continue;
            }
            let d: Device = super::decode(&value, "device")?;
            if keep(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }
}
