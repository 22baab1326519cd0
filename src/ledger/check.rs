//! Consistency of the indexes with the records (`custos ledger verify`).

use super::*;

impl Ledger {
    /// Checks that every index agrees with the records: each certificate
    /// has its expiry entry, its device and account entries and (when
    /// revoked) its CRL-shard entry; no index entry names a certificate
    /// that is missing or does not match; the certificate count is right.
    /// Returns the disagreements found, one line each, and how many
    /// records were read.
    pub fn check_indexes(&self) -> Result<(u64, Vec<String>), LedgerError> {
        let mut problems = Vec::new();
        let records = self.check_records(&mut problems)?;
        self.check_shard_index(&mut problems)?;
        self.check_device_index(&mut problems)?;
        let count = self.count()?;
        if count != records {
            problems.push(format!(
                "certificate count says {count}, the ledger holds {records}"
            ));
        }
        Ok((records, problems))
    }

    /// Each record against the indexes it should be in; returns how many
    /// records were read.
    fn check_records(&self, problems: &mut Vec<String>) -> Result<u64, LedgerError> {
        let mut records = 0u64;
        let has = |cf: &str, key: &[u8]| -> Result<bool, LedgerError> {
            Ok(self.db.get_pinned_cf(self.cf(cf), key)?.is_some())
        };
        for item in self.db.iterator_cf(self.cf(CF_CERTS), IteratorMode::Start) {
            let (key, value) = item?;
            records += 1;
            let record: CertRecord = match decode(&value, "certificate record") {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("{}: {e}", hex::encode_upper(&key)));
                    continue;
                }
            };
            let serial = &record.serial;
            if serial.as_bytes() != &*key {
                problems.push(format!("{serial}: stored under another key"));
            }
            if !has(CF_CERT_DER, serial.as_bytes())? {
                problems.push(format!("{serial}: certificate DER missing"));
            }
            if !has(CF_BY_EXPIRY, &expiry_key(record.not_after, serial))? {
                problems.push(format!("{serial}: missing from the expiry index"));
            }
            for id in record.device.index_keys() {
                if !has(CF_BY_DEVICE, &index_key(&id, serial))? {
                    problems.push(format!("{serial}: missing from the device index ({id})"));
                }
            }
            if let Some(account) = &record.acme_account {
                if !has(CF_BY_ACCOUNT, &index_key(account, serial))? {
                    problems.push(format!("{serial}: missing from the account index"));
                }
            }
            let in_shard = has(CF_REVOKED_BY_SHARD, &shard_key(record.crl_shard, serial))?;
            match (&record.revocation, in_shard) {
                (Some(_), false) => problems.push(format!(
                    "{serial}: revoked but missing from its CRL shard index"
                )),
                (None, true) => {
                    problems.push(format!("{serial}: in its CRL shard index but not revoked"))
                }
                _ => {}
            }
        }
        Ok(records)
    }

    /// Every CRL-shard index entry names a revoked record in that shard.
    fn check_shard_index(&self, problems: &mut Vec<String>) -> Result<(), LedgerError> {
        for item in self
            .db
            .iterator_cf(self.cf(CF_REVOKED_BY_SHARD), IteratorMode::Start)
        {
            let (key, _) = item?;
            let Some(serial) = key.get(4..).and_then(|s| Serial::from_bytes(s).ok()) else {
                problems.push("malformed CRL shard index key".into());
                continue;
            };
            match self.get(&serial)? {
                Some(r) if r.revocation.is_some() && key[..4] == r.crl_shard.to_be_bytes() => {}
                _ => problems.push(format!(
                    "{serial}: CRL shard index names no matching revoked certificate"
                )),
            }
        }
        Ok(())
    }

    /// Every device index entry names a record carrying that device id.
    fn check_device_index(&self, problems: &mut Vec<String>) -> Result<(), LedgerError> {
        for item in self
            .db
            .iterator_cf(self.cf(CF_BY_DEVICE), IteratorMode::Start)
        {
            let (key, _) = item?;
            let Some(pos) = key.iter().position(|b| *b == 0) else {
                problems.push("malformed device index key".into());
                continue;
            };
            let id = String::from_utf8_lossy(&key[..pos]).into_owned();
            let Ok(serial) = Serial::from_bytes(&key[pos + 1..]) else {
                problems.push(format!("device index entry for {id} holds a bad serial"));
                continue;
            };
            match self.get(&serial)? {
                Some(r) if r.device.index_keys().contains(&id) => {}
                _ => problems.push(format!(
                    "{serial}: device index entry {id} names no matching certificate"
                )),
            }
        }
        Ok(())
    }
}
