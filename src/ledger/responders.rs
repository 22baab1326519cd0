//! Stateless responders enrolled with this primary (`custos responder token
//! create`, `POST /responder/enroll`): per name, the SHA-256 of the
//! join secret, of the current renewal secret and of the secret presented
//! last (so that a lost answer can be asked again), never the secrets
//! themselves. Kept in `meta` under `responder/<name>`.

use super::{sync_opts, Ledger, LedgerError, CF_META};
use serde::{Deserialize, Serialize};

/// One responder's enrolment state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponderRecord {
    /// Its name.
    pub name: String,
    /// SHA-256 (hex) of the join secret, until it is used.
    pub join_sha256: Option<String>,
    /// When the join secret stops working (Unix seconds).
    pub join_expires_at: u64,
    /// SHA-256 (hex) of the secret its next renewal must present.
    pub renewal_sha256: Option<String>,
    /// SHA-256 (hex) of the secret presented last, which keeps working
    /// until the secret it was answered with is used (or until
    /// `previous_until`): an answer lost on the way can be asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_sha256: Option<String>,
    /// When `previous_sha256` stops working (Unix seconds): a join
    /// secret's expiry; a renewal secret's is not bounded.
    #[serde(default)]
    pub previous_until: u64,
    /// Serial (hex) of the last certificate issued to it.
    pub certificate: Option<String>,
    /// When that certificate was issued.
    pub enrolled_at: Option<u64>,
    /// When `custos responder revoke` cut it off (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

fn key(name: &str) -> Vec<u8> {
    format!("responder/{name}").into_bytes()
}

impl Ledger {
    /// A responder's record.
    pub fn responder(&self, name: &str) -> Result<Option<ResponderRecord>, LedgerError> {
        match self.db.get_cf(self.cf(CF_META), key(name))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| LedgerError::Corrupt(format!("responder {name}: {e}"))),
        }
    }

    /// Changes a responder's record under the write lock: `change` sees the
    /// current record (or `None`) and returns the new one, or an error that
    /// leaves it as it was. Synced.
    pub fn update_responder<E: From<LedgerError>>(
        &self,
        name: &str,
        change: impl FnOnce(Option<ResponderRecord>) -> Result<ResponderRecord, E>,
    ) -> Result<ResponderRecord, E> {
        let _guard = self.lock();
        let next = change(self.responder(name)?)?;
        let bytes = serde_json::to_vec(&next)
            .map_err(|e| LedgerError::Corrupt(format!("responder {name}: {e}")))?;
        self.db
            .put_cf_opt(self.cf(CF_META), key(name), bytes, &sync_opts())
            .map_err(LedgerError::from)?;
        Ok(next)
    }
}
