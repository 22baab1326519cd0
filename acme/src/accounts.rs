//! Account requests (RFC 8555 §7.3): newAccount (with external account
//! binding), and POSTs to an account's URL (fetch, update, deactivate) or
//! to its orders list.

use crate::account::{check_contacts, AccountRecord, AccountStatus, AccountUpdate, NewAccount};
use crate::jws::{Jwk, Jws, Signer};
use crate::ports::{Domain, Store};
use crate::problem::{Problem, ProblemType};
use crate::server::{random_id, AcmeServer, Request, Response, Urls};
use serde_json::Value;

impl<S: Store, D: Domain> AcmeServer<S, D> {
    /// A POST to `acct/<id>` or `acct/<id>/orders`, signed by that account.
    pub(crate) fn account_post(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        rest: &str,
    ) -> Result<Response, Problem> {
        let (jws, account) = self.verify_account_post(req, urls)?;
        let (id, orders) = match rest.strip_suffix("/orders") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        if account.id != id {
            return Err(Problem::unauthorized(
                "the signing account is not the account addressed",
            ));
        }
        if orders {
            return self.orders_list(urls, &account);
        }
        self.account_request(urls, &jws, account)
    }

    pub(crate) fn new_account(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        jws: &Jws,
        key: Jwk,
    ) -> Result<Response, Problem> {
        let payload: NewAccount = jws.payload_json()?;
        let thumbprint = key.thumbprint();
        if let Some(existing) = self.store.account_by_thumbprint(&thumbprint)? {
            let url = urls.account(&existing.id);
            return Ok(
                Response::json(200, &existing.to_object(&format!("{url}/orders")))
                    .with_location(url),
            );
        }
        if payload.only_return_existing == Some(true) {
            return Err(Problem::new(
                ProblemType::AccountDoesNotExist,
                "no account for this key",
            ));
        }
        if self.settings.terms_of_service.is_some() && payload.terms_of_service_agreed != Some(true)
        {
            return Err(Problem::malformed(
                "the terms of service must be agreed to (termsOfServiceAgreed: true)",
            ));
        }
        let contact = payload.contact.unwrap_or_default();
        check_contacts(&contact).map_err(|d| Problem::new(ProblemType::Malformed, d))?;
        let eab_kid = match &payload.external_account_binding {
            Some(binding) => Some(self.check_binding(binding, &key, urls)?),
            None if self.settings.external_account_required => {
                return Err(Problem::new(
                    ProblemType::ExternalAccountRequired,
                    "this server requires an external account binding (ask the CA's operator for a key: custos eab create)",
                ))
            }
            None => None,
        };
        let account = AccountRecord {
            id: random_id(),
            jwk: key.to_json(),
            thumbprint,
            status: AccountStatus::Valid,
            contact,
            terms_agreed: payload.terms_of_service_agreed == Some(true),
            eab_kid,
            created_at: req.now,
        };
        if !self.store.create_account(&account)? {
            return Err(Problem::unauthorized(
                "the account key or the external account binding key was used concurrently",
            ));
        }
        let url = urls.account(&account.id);
        Ok(Response::json(201, &account.to_object(&format!("{url}/orders"))).with_location(url))
    }

    /// Checks an external account binding (RFC 8555 §7.3.4): an HS256 JWS
    /// by a key id we handed out and nobody used, over the account key, for
    /// the newAccount URL. Returns the key id.
    fn check_binding(
        &self,
        binding: &Value,
        key: &Jwk,
        urls: &Urls<'_>,
    ) -> Result<String, Problem> {
        let inner = Jws::parse_value(binding)?;
        let Some(Signer::Kid(kid)) = &inner.signer else {
            return Err(Problem::malformed("external account binding needs a kid"));
        };
        if inner.nonce.is_some() {
            return Err(Problem::malformed(
                "external account binding must not have a nonce",
            ));
        }
        if inner.url.as_deref() != Some(urls.of("new-account").as_str()) {
            return Err(Problem::malformed(
                "external account binding url must be the newAccount URL",
            ));
        }
        let mac_key = self.domain.eab_mac_key(kid)?.ok_or_else(|| {
            Problem::unauthorized("external account binding key is unknown or already used")
        })?;
        inner.verify_hs256(&mac_key)?;
        let bound: Value = inner.payload_json()?;
        if Jwk::from_json(&bound).ok().as_ref() != Some(key) {
            return Err(Problem::malformed(
                "external account binding is over another key than the account's",
            ));
        }
        Ok(kid.clone())
    }

    fn account_request(
        &self,
        urls: &Urls<'_>,
        jws: &Jws,
        mut account: AccountRecord,
    ) -> Result<Response, Problem> {
        if !jws.is_post_as_get() {
            let update: AccountUpdate = jws.payload_json()?;
            if let Some(status) = update.status.as_deref() {
                if status != "deactivated" {
                    return Err(Problem::malformed(format!(
                        "status can only be changed to deactivated, not {status}"
                    )));
                }
                account.status = AccountStatus::Deactivated;
            }
            if let Some(contact) = update.contact {
                check_contacts(&contact).map_err(Problem::malformed)?;
                account.contact = contact;
            }
            self.store.update_account(&account)?;
        }
        let url = urls.account(&account.id);
        Ok(Response::json(200, &account.to_object(&format!("{url}/orders"))).with_location(url))
    }
}
