//! The ledger's side of MDM inventory sync: one JSON record per source
//! (`mdmsync/<name>` in the `devices` column family, synced) holding what
//! the last syncs saw and decided.

use super::{sync_opts, Ledger, LedgerError, CF_DEVICES};

fn state_key(name: &str) -> Vec<u8> {
    format!("mdmsync/{name}").into_bytes()
}

impl Ledger {
    /// A source's sync state (JSON), if it ever synced.
    pub fn mdm_sync_state<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_DEVICES), state_key(name))?
        {
            Some(v) => Ok(Some(super::decode(&v, "MDM sync state")?)),
            None => Ok(None),
        }
    }

    /// Stores a source's sync state.
    pub fn put_mdm_sync_state<T: serde::Serialize>(
        &self,
        name: &str,
        state: &T,
    ) -> Result<(), LedgerError> {
        self.db.put_cf_opt(
            self.cf(CF_DEVICES),
            state_key(name),
            super::encode(state),
            &sync_opts(),
        )?;
        Ok(())
    }
}
