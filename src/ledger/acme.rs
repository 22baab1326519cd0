//! The ledger's side of the ACME server: accounts (and later orders,
//! authorizations and challenges) as JSON records in the `acme` column
//! family, every write synced.
//!
//! Keys: `acct/<id>` → account JSON; `key/<thumbprint>` → account id, which
//! keeps one account per key.

use super::{sync_opts, Ledger, LedgerError, CF_ACME};
use custos_acme::account::AccountRecord;
use rocksdb::WriteBatch;

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

    /// Stores a new account and its key index; `false` if the key already
    /// has an account.
    pub fn create_acme_account(&self, account: &AccountRecord) -> Result<bool, LedgerError> {
        let _guard = self.lock();
        let cf = self.cf(CF_ACME);
        let tkey = thumbprint_key(&account.thumbprint);
        if self.db.get_pinned_cf(cf, &tkey)?.is_some() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, account_key(&account.id), super::encode(account));
        batch.put_cf(cf, tkey, account.id.as_bytes());
        self.db.write_opt(batch, &sync_opts())?;
        Ok(true)
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
