//! What the operator console lists of the ACME server: the newest accounts
//! and orders, through two time-ordered indexes in the `acme` column family
//! (`acctnew/<created, 16 hex>/<account>` and
//! `ordernew/<created, 16 hex>/<order>` → empty), written with the record
//! they point at and, for orders, deleted with it. A ledger written before
//! the indexes existed gets them in one pass at open.

use super::{sync_opts, Ledger, LedgerError, CF_ACME, CF_META};
use custos_acme::account::AccountRecord;
use custos_acme::order::OrderRecord;
use rocksdb::{Direction, IteratorMode, WriteBatch};

const ACCOUNT_NEW_PREFIX: &[u8] = b"acctnew/";
const ORDER_NEW_PREFIX: &[u8] = b"ordernew/";
const META_ACME_LISTS: &[u8] = b"acme_lists_index_version";

/// The accounts index entry of `account`.
pub(super) fn account_new_key(account: &AccountRecord) -> Vec<u8> {
    format!("acctnew/{:016x}/{}", account.created_at, account.id).into_bytes()
}

/// The recent orders index entry of `order`.
pub(super) fn order_new_key(order: &OrderRecord) -> Vec<u8> {
    format!("ordernew/{:016x}/{}", order.created_at, order.id).into_bytes()
}

/// An order with what went wrong with it, for the console.
#[derive(Clone, Debug)]
pub struct OrderView {
    /// The order, its status as of the time asked for.
    pub order: OrderRecord,
    /// Its error, or the first error of one of its challenges.
    pub error: Option<serde_json::Value>,
}

impl Ledger {
    /// The newest `limit` accounts, newest first.
    pub fn acme_recent_accounts(&self, limit: usize) -> Result<Vec<AccountRecord>, LedgerError> {
        let mut out = Vec::new();
        for id in self.newest_ids(ACCOUNT_NEW_PREFIX, limit)? {
            if let Some(a) = self.acme_account(&id)? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// The newest `limit` orders, newest first, each with its status at
    /// `now` (from its authorizations) and its error.
    pub fn acme_recent_orders(
        &self,
        limit: usize,
        now: u64,
    ) -> Result<Vec<OrderView>, LedgerError> {
        let mut out = Vec::new();
        for id in self.newest_ids(ORDER_NEW_PREFIX, limit)? {
            let Some(mut order) = self.acme_order(&id)? else {
                continue;
            };
            let mut error = order.error.clone();
            let mut statuses = Vec::with_capacity(order.authz_ids.len());
            for authz in &order.authz_ids {
                let Some(a) = self.acme_authz(authz)? else {
                    continue;
                };
                statuses.push(a.status_at(now));
                if error.is_none() {
                    error = a.challenges.into_iter().find_map(|c| c.error);
                }
            }
            order.status = order.status_at(now, &statuses);
            out.push(OrderView { order, error });
        }
        Ok(out)
    }

    /// The ids of the newest `limit` entries of a time-ordered index.
    fn newest_ids(&self, prefix: &[u8], limit: usize) -> Result<Vec<String>, LedgerError> {
        let end = [prefix, b"g"].concat(); // after every hex digit
        let mut ids = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_ACME),
            IteratorMode::From(&end, Direction::Reverse),
        ) {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(prefix) else {
                break;
            };
            if ids.len() >= limit {
                break;
            }
            if let Some((_, id)) = String::from_utf8_lossy(rest).split_once('/') {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    /// Adds `index_key` of every record under `prefix` to `batch`, writing
    /// it out every 10,000 records.
    fn index_records<T: serde::de::DeserializeOwned>(
        &self,
        batch: &mut WriteBatch,
        prefix: &[u8],
        what: &str,
        index_key: fn(&T) -> Vec<u8>,
    ) -> Result<(), LedgerError> {
        let cf = self.cf(CF_ACME);
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            batch.put_cf(cf, index_key(&super::decode(&value, what)?), b"");
            if batch.len() >= 10_000 {
                self.db.write_opt(std::mem::take(batch), &sync_opts())?;
            }
        }
        Ok(())
    }

    /// Writes both indexes for a ledger made before they existed (once).
    pub(super) fn index_acme_lists(&self) -> Result<(), LedgerError> {
        let meta = self.cf(CF_META);
        if self.db.get_cf(meta, META_ACME_LISTS)?.is_some() {
            return Ok(());
        }
        let _guard = self.lock();
        let mut batch = WriteBatch::default();
        self.index_records(&mut batch, b"acct/", "ACME account", account_new_key)?;
        self.index_records(&mut batch, b"order/", "ACME order", order_new_key)?;
        batch.put_cf(meta, META_ACME_LISTS, 1u64.to_be_bytes());
        self.db.write_opt(batch, &sync_opts())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::acme::tests::order_with_authz;
    use super::*;
    use custos_acme::account::AccountStatus;

    fn account(id: &str, created_at: u64) -> AccountRecord {
        AccountRecord {
            id: id.into(),
            jwk: serde_json::json!({}),
            thumbprint: format!("tp-{id}"),
            status: AccountStatus::Valid,
            contact: vec![],
            terms_agreed: true,
            eab_kid: None,
            created_at,
        }
    }

    /// Newest first, bounded, with a failed challenge's error shown; an
    /// order deleted when due leaves the list; a ledger written before the
    /// indexes gets them at open.
    #[test]
    fn newest_accounts_and_orders_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        {
            let ledger = Ledger::open(&path).unwrap();
            for (i, id) in ["a1", "a2", "a3"].iter().enumerate() {
                assert!(ledger
                    .create_acme_account(&account(id, 100 + i as u64))
                    .unwrap());
            }
            for (i, id) in ["o1", "o2", "o3"].iter().enumerate() {
                let (mut o, mut a) = order_with_authz(id, false);
                o.created_at = 500 + i as u64;
                if *id == "o2" {
                    a.challenges[0].error =
                        Some(serde_json::json!({"detail": "connection refused"}));
                }
                ledger.create_acme_order(&o, &[a]).unwrap();
            }
            let ids: Vec<String> = ledger
                .acme_recent_accounts(2)
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect();
            assert_eq!(ids, ["a3", "a2"]);
            let orders = ledger.acme_recent_orders(10, 0).unwrap();
            let ids: Vec<&str> = orders.iter().map(|o| o.order.id.as_str()).collect();
            assert_eq!(ids, ["o3", "o2", "o1"]);
            assert!(orders[0].error.is_none());
            assert_eq!(
                orders[1].error.as_ref().unwrap()["detail"],
                "connection refused"
            );
            // Back to before the indexes.
            let cf = ledger.cf(CF_ACME);
            let mut batch = WriteBatch::default();
            for item in ledger.db.iterator_cf(cf, IteratorMode::Start) {
                let (key, _) = item.unwrap();
                if key.starts_with(ACCOUNT_NEW_PREFIX) || key.starts_with(ORDER_NEW_PREFIX) {
                    batch.delete_cf(cf, &key);
                }
            }
            batch.delete_cf(ledger.cf(CF_META), META_ACME_LISTS);
            ledger.db.write(batch).unwrap();
            assert!(ledger.acme_recent_orders(10, 0).unwrap().is_empty());
        }
        let ledger = Ledger::open(&path).unwrap();
        assert_eq!(ledger.acme_recent_accounts(10).unwrap().len(), 3);
        assert_eq!(ledger.acme_recent_orders(10, 0).unwrap().len(), 3);
        assert_eq!(ledger.delete_expired_acme(u64::MAX, 10).unwrap(), 3);
        assert!(ledger.acme_recent_orders(10, 0).unwrap().is_empty());
    }
}
