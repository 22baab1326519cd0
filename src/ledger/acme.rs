//! The ledger's side of the ACME server: accounts (and later orders,
//! authorizations and challenges) as JSON records in the `acme` column
//! family, every write synced.
//!
//! Keys: `acct/<id>` → account JSON; `key/<thumbprint>` → account id, which
//! keeps one account per key; `order/<id>`, `authz/<id>` → JSON;
//! `acctorder/<account>/<created, 16 hex>/<order>` → empty (the orders list).
//!
//! Indexes, so that nothing reads every order or authorization:
//! `orderexp/<delete at, 16 hex>/<order>` → empty (when an order and its
//! authorizations are deleted: a day after the last of them expires);
//! `authzid/<account>\0<type>\0<value>\0<authz>` → empty (an account's
//! authorizations for one identifier, read by revocation by authorization);
//! `authzproc/<authz>` → empty (authorizations with a challenge
//! `processing`, resumed at start).

use super::{sync_opts, Ledger, LedgerError, CF_ACME, CF_META};
use custos_acme::account::AccountRecord;
use custos_acme::order::{AuthzRecord, Identifier, OrderRecord};
use rocksdb::{Direction, IteratorMode, WriteBatch};

/// One handed-out key as the ledger remembers it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EabRecord {
    /// Key id (the binding's `kid`).
    pub kid: String,
    /// Who it was made for (`--name`).
    pub name: String,
    /// SHA-256 of the MAC key, hex.
    pub key_sha256: String,
    /// When it was made (Unix seconds).
    pub created_at: u64,
    /// The account it bound, once used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

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
        batch.put_cf(cf, super::acme_lists::account_new_key(account), b"");
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

fn account_order_key(order: &OrderRecord) -> String {
    format!(
        "{}{:016x}/{}",
        account_orders_prefix(&order.account_id),
        order.created_at,
        order.id
    )
}

/// How long an order and its authorizations are kept after the last of
/// them expired (a client polling an expired order still sees it
/// `invalid` for a while, instead of a 404).
pub const ACME_RETENTION_SECS: u64 = 86_400;

const ORDER_EXPIRY_PREFIX: &[u8] = b"orderexp/";
const PROCESSING_PREFIX: &[u8] = b"authzproc/";
const META_ACME_INDEX: &[u8] = b"acme_index_version";

fn order_expiry_key(delete_at: u64, order: &str) -> Vec<u8> {
    format!("orderexp/{delete_at:016x}/{order}").into_bytes()
}

/// When an order and its authorizations may go.
fn delete_at(order: &OrderRecord, authzs: &[AuthzRecord]) -> u64 {
    authzs
        .iter()
        .map(|a| a.expires)
        .fold(order.expires, u64::max)
        .saturating_add(ACME_RETENTION_SECS)
}

fn authz_ident_prefix(account: &str, id: &Identifier) -> Vec<u8> {
    let mut key = b"authzid/".to_vec();
    for part in [account, id.kind.as_str(), id.value.as_str()] {
        key.extend_from_slice(part.as_bytes());
        key.push(0);
    }
    key
}

fn authz_ident_key(authz: &AuthzRecord) -> Vec<u8> {
    let mut key = authz_ident_prefix(&authz.account_id, &authz.identifier);
    key.extend_from_slice(authz.id.as_bytes());
    key
}

fn processing_key(authz: &str) -> Vec<u8> {
    [PROCESSING_PREFIX, authz.as_bytes()].concat()
}

fn is_processing(authz: &AuthzRecord) -> bool {
    authz
        .challenges
        .iter()
        .any(|c| c.status == custos_acme::order::ChallengeStatus::Processing)
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
        let mut batch = WriteBatch::default();
        self.put_order_with_indexes(&mut batch, order, authzs);
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// An order, its authorizations, and every index entry they need.
    fn put_order_with_indexes(
        &self,
        batch: &mut WriteBatch,
        order: &OrderRecord,
        authzs: &[AuthzRecord],
    ) {
        let cf = self.cf(CF_ACME);
        batch.put_cf(cf, order_key(&order.id), super::encode(order));
        for a in authzs {
            batch.put_cf(cf, authz_key(&a.id), super::encode(a));
            batch.put_cf(cf, authz_ident_key(a), b"");
            if is_processing(a) {
                batch.put_cf(cf, processing_key(&a.id), b"");
            }
        }
        batch.put_cf(cf, account_order_key(order), b"");
        batch.put_cf(cf, super::acme_lists::order_new_key(order), b"");
        batch.put_cf(
            cf,
            order_expiry_key(delete_at(order, authzs), &order.id),
            b"",
        );
    }

    /// Builds the ACME indexes of a ledger written before they existed (one
    /// pass over the orders, once).
    pub(super) fn index_acme(&self) -> Result<(), LedgerError> {
        let meta = self.cf(CF_META);
        if self.db.get_cf(meta, META_ACME_INDEX)?.is_some() {
            return Ok(());
        }
        let _guard = self.lock();
        let mut batch = WriteBatch::default();
        let mut orders = 0usize;
        for item in self.db.iterator_cf(
            self.cf(CF_ACME),
            IteratorMode::From(b"order/", Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(b"order/") {
                break;
            }
            let order: OrderRecord = super::decode(&value, "ACME order")?;
            let mut authzs = Vec::with_capacity(order.authz_ids.len());
            for id in &order.authz_ids {
                if let Some(a) = self.acme_authz(id)? {
                    authzs.push(a);
                }
            }
            self.put_order_with_indexes(&mut batch, &order, &authzs);
            orders += 1;
            if orders % 1000 == 0 {
                self.db
                    .write_opt(std::mem::take(&mut batch), &sync_opts())?;
            }
        }
        batch.put_cf(meta, META_ACME_INDEX, 1u64.to_be_bytes());
        self.db.write_opt(batch, &sync_opts())?;
        if orders > 0 {
            tracing::info!(orders, "indexed the ACME orders and authorizations");
        }
        Ok(())
    }

    /// Deletes up to `limit` orders whose deletion time has come, with their
    /// authorizations and index entries; returns how many orders went.
    /// Certificates and their records are not touched: revocation and the
    /// certificate URL read those, not the orders.
    pub fn delete_expired_acme(&self, now: u64, limit: usize) -> Result<usize, LedgerError> {
        let cf = self.cf(CF_ACME);
        let _guard = self.lock();
        let mut batch = WriteBatch::default();
        let mut deleted = 0;
        for item in self.db.iterator_cf(
            cf,
            IteratorMode::From(ORDER_EXPIRY_PREFIX, Direction::Forward),
        ) {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(ORDER_EXPIRY_PREFIX) else {
                break;
            };
            let text = String::from_utf8_lossy(rest);
            let Some((at, id)) = text.split_once('/') else {
                batch.delete_cf(cf, &key);
                continue;
            };
            let at = u64::from_str_radix(at, 16).unwrap_or(0);
            if at > now || deleted >= limit {
                break;
            }
            batch.delete_cf(cf, &key);
            if let Some(order) = self.acme_order(id)? {
                for authz_id in &order.authz_ids {
                    if let Some(a) = self.acme_authz(authz_id)? {
                        batch.delete_cf(cf, authz_ident_key(&a));
                    }
                    batch.delete_cf(cf, authz_key(authz_id));
                    batch.delete_cf(cf, processing_key(authz_id));
                }
                batch.delete_cf(cf, account_order_key(&order));
                batch.delete_cf(cf, super::acme_lists::order_new_key(&order));
                batch.delete_cf(cf, order_key(id));
            }
            deleted += 1;
        }
        self.db.write_opt(batch, &sync_opts())?;
        Ok(deleted)
    }

    /// An account's authorizations for one identifier (any status).
    pub fn acme_authzs_for(
        &self,
        account: &str,
        identifier: &Identifier,
    ) -> Result<Vec<AuthzRecord>, LedgerError> {
        let prefix = authz_ident_prefix(account, identifier);
        let mut found = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_ACME),
            IteratorMode::From(&prefix, Direction::Forward),
        ) {
            let (key, _) = item?;
            let Some(id) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if let Some(a) = self.acme_authz(&String::from_utf8_lossy(id))? {
                found.push(a);
            }
        }
        Ok(found)
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

    /// Replaces an ACME order (not one deleted meanwhile).
    pub fn update_acme_order(&self, order: &OrderRecord) -> Result<(), LedgerError> {
        let _guard = self.lock();
        if self.acme_order(&order.id)?.is_none() {
            return Ok(());
        }
        self.acme_put(&order_key(&order.id), order)
    }

    /// The ACME authorization with this id.
    pub fn acme_authz(&self, id: &str) -> Result<Option<AuthzRecord>, LedgerError> {
        self.acme_get(&authz_key(id), "ACME authorization")
    }

    /// Replaces an ACME authorization (not one deleted meanwhile), keeping
    /// the index of those with a challenge processing.
    pub fn update_acme_authz(&self, authz: &AuthzRecord) -> Result<(), LedgerError> {
        let _guard = self.lock();
        if self.acme_authz(&authz.id)?.is_none() {
            return Ok(());
        }
        let cf = self.cf(CF_ACME);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, authz_key(&authz.id), super::encode(authz));
        if is_processing(authz) {
            batch.put_cf(cf, processing_key(&authz.id), b"");
        } else {
            batch.delete_cf(cf, processing_key(&authz.id));
        }
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }

    /// Authorizations with a challenge still `processing` (from the index).
    pub fn acme_processing_authzs(&self) -> Result<Vec<AuthzRecord>, LedgerError> {
        let mut found = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_ACME),
            IteratorMode::From(PROCESSING_PREFIX, Direction::Forward),
        ) {
            let (key, _) = item?;
            let Some(id) = key.strip_prefix(PROCESSING_PREFIX) else {
                break;
            };
            if let Some(a) = self.acme_authz(&String::from_utf8_lossy(id))? {
                if is_processing(&a) {
                    found.push(a);
                }
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use custos_acme::order::{AuthzStatus, ChallengeRecord, ChallengeStatus, OrderStatus};

    pub(in crate::ledger) fn order_with_authz(
        id: &str,
        processing: bool,
    ) -> (OrderRecord, AuthzRecord) {
        let identifier = Identifier {
            kind: "dns".into(),
            value: "a.corp.example".into(),
        };
        let authz = AuthzRecord {
            id: format!("{id}-authz"),
            account_id: "acct".into(),
            identifier: identifier.clone(),
            status: AuthzStatus::Pending,
            expires: 2_000,
            challenges: vec![ChallengeRecord {
                id: "c".into(),
                kind: "http-01".into(),
                token: "t".into(),
                status: if processing {
                    ChallengeStatus::Processing
                } else {
                    ChallengeStatus::Pending
                },
                validated: None,
                error: None,
            }],
            attestation: None,
        };
        let order = OrderRecord {
            id: id.into(),
            account_id: "acct".into(),
            status: OrderStatus::Pending,
            expires: 1_000,
            identifiers: vec![identifier],
            authz_ids: vec![authz.id.clone()],
            profile: None,
            replaces: None,
            certificate: None,
            error: None,
            created_at: 500,
        };
        (order, authz)
    }

    /// A ledger written before the indexes existed gets them when opened:
    /// the processing authorization is found, the identifier lookup works,
    /// and the orders are deleted when due.
    #[test]
    fn indexes_are_built_for_a_ledger_written_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let identifier = {
            let ledger = Ledger::open(&path).unwrap();
            let (o1, a1) = order_with_authz("o1", true);
            let (o2, a2) = order_with_authz("o2", false);
            ledger.create_acme_order(&o1, &[a1]).unwrap();
            ledger.create_acme_order(&o2, &[a2]).unwrap();
            // Take the ledger back to before the indexes: records only.
            let cf = ledger.cf(CF_ACME);
            let mut batch = WriteBatch::default();
            for item in ledger.db.iterator_cf(cf, IteratorMode::Start) {
                let (key, _) = item.unwrap();
                if ![&b"order/"[..], b"authz/", b"acctorder/"]
                    .iter()
                    .any(|p| key.starts_with(p))
                {
                    batch.delete_cf(cf, &key);
                }
            }
            batch.delete_cf(ledger.cf(CF_META), META_ACME_INDEX);
            ledger.db.write(batch).unwrap();
            assert!(ledger.acme_processing_authzs().unwrap().is_empty());
            o1.identifiers[0].clone()
        };
        let ledger = Ledger::open(&path).unwrap();
        let processing = ledger.acme_processing_authzs().unwrap();
        assert_eq!(processing.len(), 1);
        assert_eq!(processing[0].id, "o1-authz");
        assert_eq!(
            ledger.acme_authzs_for("acct", &identifier).unwrap().len(),
            2
        );
        assert!(ledger
            .acme_authzs_for("other", &identifier)
            .unwrap()
            .is_empty());
        // Due a day after the authorizations' expiry (2,000), not before.
        assert_eq!(
            ledger
                .delete_expired_acme(2_000 + ACME_RETENTION_SECS - 1, 10)
                .unwrap(),
            0
        );
        assert_eq!(
            ledger
                .delete_expired_acme(2_000 + ACME_RETENTION_SECS, 1)
                .unwrap(),
            1
        );
        assert_eq!(
            ledger
                .delete_expired_acme(2_000 + ACME_RETENTION_SECS, 10)
                .unwrap(),
            1
        );
        assert!(ledger.acme_order("o1").unwrap().is_none());
        assert!(ledger.acme_processing_authzs().unwrap().is_empty());
        assert!(ledger
            .acme_authzs_for("acct", &identifier)
            .unwrap()
            .is_empty());
        assert!(ledger.acme_orders_of_account("acct").unwrap().is_empty());
        // Nothing of them is left in the column family.
        let left = ledger
            .db
            .iterator_cf(ledger.cf(CF_ACME), IteratorMode::Start)
            .count();
        assert_eq!(left, 0);
        // An update of a deleted authorization does not bring it back.
        let (_, a1) = order_with_authz("o1", true);
        ledger.update_acme_authz(&a1).unwrap();
        assert!(ledger.acme_authz("o1-authz").unwrap().is_none());
        assert!(ledger.acme_processing_authzs().unwrap().is_empty());
    }
}
