//! The ACME engine's [`Store`] over the ledger, and the engine's settings
//! from the configuration. Translation only: no protocol rules here.

use crate::config::Config;
use crate::ledger::{Ledger, LedgerError};
use custos_acme::account::AccountRecord;
use custos_acme::server::{AcmeServer, Settings, Store, StoreError};
use std::sync::Arc;

/// The ledger as ACME storage.
#[derive(Clone, Debug)]
pub struct LedgerStore(pub Arc<Ledger>);

fn store_err(e: LedgerError) -> StoreError {
    StoreError(e.to_string())
}

impl Store for LedgerStore {
    fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.0.acme_account(id).map_err(store_err)
    }
    fn account_by_thumbprint(&self, t: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.0.acme_account_by_thumbprint(t).map_err(store_err)
    }
    fn create_account(&self, account: &AccountRecord) -> Result<bool, StoreError> {
        self.0.create_acme_account(account).map_err(store_err)
    }
    fn update_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        self.0.update_acme_account(account).map_err(store_err)
    }
}

/// The ACME engine of this process.
pub type Acme = AcmeServer<LedgerStore>;

/// Builds the engine from `[acme]`.
pub fn acme_server(config: &Config, ledger: Arc<Ledger>) -> Acme {
    let a = &config.acme;
    AcmeServer::new(
        LedgerStore(ledger),
        Settings {
            terms_of_service: a.terms_of_service.clone(),
            website: a.website.clone(),
            caa_identities: a.caa_identities.clone(),
            external_account_required: a.external_account_required,
        },
    )
}
