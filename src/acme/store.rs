//! The ACME engine's [`Store`] over the ledger, and the engine built from
//! the configuration. Translation only: no protocol rules here.

use crate::acme::domain::AcmeDomain;
use crate::config::Config;
use crate::ledger::{Ledger, LedgerError};
use custos_acme::account::AccountRecord;
use custos_acme::order::{AuthzRecord, Identifier, OrderRecord};
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
    fn create_order(&self, order: &OrderRecord, authzs: &[AuthzRecord]) -> Result<(), StoreError> {
        self.0.create_acme_order(order, authzs).map_err(store_err)
    }
    fn order(&self, id: &str) -> Result<Option<OrderRecord>, StoreError> {
        self.0.acme_order(id).map_err(store_err)
    }
    fn update_order(&self, order: &OrderRecord) -> Result<(), StoreError> {
        self.0.update_acme_order(order).map_err(store_err)
    }
    fn authz(&self, id: &str) -> Result<Option<AuthzRecord>, StoreError> {
        self.0.acme_authz(id).map_err(store_err)
    }
    fn update_authz(&self, authz: &AuthzRecord) -> Result<(), StoreError> {
        self.0.update_acme_authz(authz).map_err(store_err)
    }
    fn orders_of_account(&self, account_id: &str) -> Result<Vec<String>, StoreError> {
        self.0.acme_orders_of_account(account_id).map_err(store_err)
    }
    fn authzs_for(
        &self,
        account_id: &str,
        identifier: &Identifier,
    ) -> Result<Vec<AuthzRecord>, StoreError> {
        self.0
            .acme_authzs_for(account_id, identifier)
            .map_err(store_err)
    }
    fn processing_authzs(&self) -> Result<Vec<AuthzRecord>, StoreError> {
        self.0.acme_processing_authzs().map_err(store_err)
    }
    fn change_account_key(
        &self,
        account: &AccountRecord,
        new_jwk: serde_json::Value,
        new_thumbprint: &str,
    ) -> Result<Option<String>, StoreError> {
        self.0
            .change_acme_account_key(account, new_jwk, new_thumbprint)
            .map_err(store_err)
    }
}

/// The ACME engine of this process.
pub type Acme = AcmeServer<LedgerStore, AcmeDomain>;

/// Builds the engine from `[acme]`.
pub fn acme_server(config: &Config, ledger: Arc<Ledger>, domain: AcmeDomain) -> Acme {
    let a = &config.acme;
    AcmeServer::new(
        LedgerStore(ledger),
        domain,
        Settings {
            limits: custos_acme::limits::Limits {
                new_orders_per_account: a.new_orders_per_account_per_hour,
                new_orders_per_ip: a.new_orders_per_ip_per_hour,
                failed_validations_per_account: a.failed_validations_per_account_per_hour,
                failed_validations_per_ip: a.failed_validations_per_ip_per_hour,
            },
            order_lifetime_secs: u64::from(a.order_lifetime_days) * 86_400,
            authz_lifetime_secs: u64::from(a.authz_lifetime_days) * 86_400,
            terms_of_service: a.terms_of_service.clone(),
            website: a.website.clone(),
            caa_identities: a.caa_identities.clone(),
            external_account_required: a.external_account_required,
        },
    )
}
