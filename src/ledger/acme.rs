//! The ledger's side of the ACME server: accounts (and later orders,
//! authorizations and challenges) as JSON records in the `acme` column
//! family, every write synced.
//!
//! Keys: `acct/<id>` → account JSON; `key/<thumbprint>` → account id, which
//! keeps one account per key; `order/<id>`, `authz/<id>` → JSON;
//! `acctorder/<account>/<created, 16 hex>/<order>` → empty (the orders list).

use super::{sync_opts, Ledger, LedgerError, CF_ACME};
use crate::eab::EabRecord;
use custos_acme::account::AccountRecord;
use custos_acme::order::{AuthzRecord, OrderRecord};
use rocksdb::{Direction, IteratorMode, WriteBatch};

fn account_key(id: &str) -> Vec<u8> {
    [b"acct/".as_slice(), id.as_bytes()].concat()
}

fn thumbprint_key(thumbprint: &str) -> Vec<u8> {
    [b"key/".as_slice(), thumbprint.as_bytes()].concat()
}

impl Ledger {
    /// The ACME account with this id.
    pub fn acme_account(&self, id: &str) -> Result<Option<AccountRecord>, LedgerError> {
        match self.db.get_pinned_cf(self.cf(CF_ACME), account_key(id))? {
            Some(v) => Ok(Some(super::decode(&v, "ACME account")?)),
            None => Ok(None),
        }
    }

    /// The ACME account whose key has this thumbprint.
    pub fn acme_account_by_thumbprint(
        &self,
        thumbprint: &str,
    ) -> Result<Option<AccountRecord>, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_ACME), thumbprint_key(thumbprint))?
        {
            Some(id) => self.acme_account(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Stores a new account and its key index, and marks its external
    /// account binding key used; `false` if the account key already has an
    /// account or the binding key was used meanwhile.
    pub fn create_acme_account(&self, account: &AccountRecord) -> Result<bool, LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_ACME);
        let tkey = thumbprint_key(&account.thumbprint);
        if self.db.get_pinned_cf(cf, &tkey)?.is_some() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        if let Some(kid) = &account.eab_kid {
            let Some(mut eab) = self.eab(kid)? else {
                return Ok(false);
            };
            if eab.account_id.is_some() {
                return Ok(false);
            }
            eab.account_id = Some(account.id.clone());
            batch.put_cf(cf, eab_key(kid), super::encode(&eab));
        }
        batch.put_cf(cf, account_key(&account.id), super::encode(account));
        batch.put_cf(cf, tkey, account.id.as_bytes());
        self.db.write_opt(batch, &sync_opts())?;
        Ok(true)
    }

    /// Moves an account to a new key in one synced write; `Some(id)` names
    /// the account that already has the new key (nothing changed then).
    pub fn change_acme_account_key(
        &self,
        account: &AccountRecord,
        new_jwk: serde_json::Value,
        new_thumbprint: &str,
    ) -> Result<Option<String>, LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_ACME);
        let new_key = thumbprint_key(new_thumbprint);
        if let Some(owner) = self.db.get_pinned_cf(cf, &new_key)? {
            return Ok(Some(String::from_utf8_lossy(&owner).into_owned()));
        }
        let mut updated = account.clone();
        updated.jwk = new_jwk;
        updated.thumbprint = new_thumbprint.to_string();
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf, thumbprint_key(&account.thumbprint));
        batch.put_cf(cf, new_key, account.id.as_bytes());
        batch.put_cf(cf, account_key(&account.id), super::encode(&updated));
        self.db.write_opt(batch, &sync_opts())?;
        Ok(None)
    }

    /// Replaces an account record (same key).
    pub fn update_acme_account(&self, account: &AccountRecord) -> Result<(), LedgerError> {
        let _guard = self.lock();
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_ACME),
            account_key(&account.id),
            super::encode(account),
        );
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }
}

fn eab_key(kid: &str) -> Vec<u8> {
    format!("eab/{kid}").into_bytes()
}

fn order_key(id: &str) -> Vec<u8> {
    format!("order/{id}").into_bytes()
}

fn authz_key(id: &str) -> Vec<u8> {
    format!("authz/{id}").into_bytes()
}

fn account_orders_prefix(account: &str) -> String {
    format!("acctorder/{account}/")
}

impl Ledger {
    fn acme_get<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &str,
    ) -> Result<Option<T>, LedgerError> {
        match self.db.get_pinned_cf(self.cf(CF_ACME), key)? {
            Some(v) => Ok(Some(super::decode(&v, what)?)),
            None => Ok(None),
        }
    }

    fn acme_put<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), LedgerError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_ACME), key, super::encode(value));
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// Stores a new order, its authorizations and its place in the
    /// account's list, in one synced write.
    pub fn create_acme_order(
        &self,
        order: &OrderRecord,
        authzs: &[AuthzRecord],
    ) -> Result<(), LedgerError> {
        let cf = self.cf(CF_ACME);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, order_key(&order.id), super::encode(order));
        for a in authzs {
            batch.put_cf(cf, authz_key(&a.id), super::encode(a));
        }
        batch.put_cf(
            cf,
            format!(
                "{}{:016x}/{}",
                account_orders_prefix(&order.account_id),
                order.created_at,
                order.id
            ),
            b"",
        );
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// Records a new external account binding key.
    pub fn put_eab(&self, record: &EabRecord) -> Result<(), LedgerError> {
        self.acme_put(&eab_key(&record.kid), record)
    }

    /// An external account binding key's record.
    pub fn eab(&self, kid: &str) -> Result<Option<EabRecord>, LedgerError> {
        self.acme_get(&eab_key(kid), "EAB key")
    }

    /// The ACME order with this id.
    pub fn acme_order(&self, id: &str) -> Result<Option<OrderRecord>, LedgerError> {
        self.acme_get(&order_key(id), "ACME order")
    }

    /// Replaces an ACME order.
    pub fn update_acme_order(&self, order: &OrderRecord) -> Result<(), LedgerError> {
        self.acme_put(&order_key(&order.id), order)
    }

    /// The ACME authorization with this id.
    pub fn acme_authz(&self, id: &str) -> Result<Option<AuthzRecord>, LedgerError> {
        self.acme_get(&authz_key(id), "ACME authorization")
    }

    /// Replaces an ACME authorization.
    pub fn update_acme_authz(&self, authz: &AuthzRecord) -> Result<(), LedgerError> {
        self.acme_put(&authz_key(&authz.id), authz)
    }

    /// Authorizations with a challenge still `processing`.
    pub fn acme_processing_authzs(&self) -> Result<Vec<AuthzRecord>, LedgerError> {
        let mut found = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_ACME),
            IteratorMode::From(b"authz/", Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(b"authz/") {
                break;
            }
            let authz: AuthzRecord = super::decode(&value, "ACME authorization")?;
            if authz
                .challenges
                .iter()
                .any(|c| c.status == custos_acme::order::ChallengeStatus::Processing)
            {
                found.push(authz);
            }
        }
        Ok(found)
    }

    /// Ids of an account's orders, oldest first (at most 1000, newest kept).
    pub fn acme_orders_of_account(&self, account: &str) -> Result<Vec<String>, LedgerError> {
        let prefix = account_orders_prefix(account);
        let mut ids = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_ACME),
            IteratorMode::From(prefix.as_bytes(), Direction::Forward),
        ) {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(prefix.as_bytes()) else {
                break;
            };
            if let Some((_, id)) = String::from_utf8_lossy(rest).split_once('/') {
                ids.push(id.to_string());
            }
        }
        let skip = ids.len().saturating_sub(1000);
        Ok(ids.split_off(skip))
    }
}
