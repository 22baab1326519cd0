//! revokeCert and keyChange (RFC 8555 §7.6, §7.3.5).
//!
//! Revocation is allowed to the account that ordered the certificate, to an
//! account holding valid authorizations for all its identifiers, or to a
//! request signed with the certificate's own key (`jwk`).

use crate::account::AccountRecord;
use crate::jws::{b64u_decode, Jwk, Jws, Signer};
use crate::order::{AuthzStatus, Identifier};
use crate::problem::{Problem, ProblemType};
use crate::server::{AcmeServer, Domain, Request, Response, Store, Urls, Verified};
use custos_model::revocation::Reason;
use serde::Deserialize;
use serde_json::Value;

/// Reason codes a subscriber may give (RFC 5280 §5.3.1): unspecified,
/// keyCompromise, affiliationChanged, superseded, cessationOfOperation,
/// privilegeWithdrawn.
pub const ALLOWED_REASONS: [u8; 6] = [0, 1, 3, 4, 5, 9];

#[derive(Deserialize)]
struct RevokeCert {
    certificate: String,
    #[serde(default)]
    reason: Option<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyChange {
    account: String,
    old_key: Value,
}

impl<S: Store, D: Domain> AcmeServer<S, D> {
    /// True when `account` holds a valid authorization for `id` at `now`.
    fn holds_authz(
        &self,
        account: &AccountRecord,
        id: &Identifier,
        now: u64,
    ) -> Result<bool, Problem> {
        Ok(self
            .store
            .authzs_for(&account.id, &id.normalized())?
            .iter()
            .any(|a| a.status_at(now) == AuthzStatus::Valid))
    }

    pub(crate) fn revoke_cert(
        &self,
        req: &Request<'_>,
        jws: &Jws,
        signer: Verified,
    ) -> Result<Response, Problem> {
        let payload: RevokeCert = jws.payload_json()?;
        let der = b64u_decode(&payload.certificate, "certificate")?;
        let code = payload.reason.unwrap_or(0);
        let refused = || {
            Problem::new(
                ProblemType::BadRevocationReason,
                format!("reason code {code} is not accepted; use one of {ALLOWED_REASONS:?}"),
            )
        };
        if !ALLOWED_REASONS.contains(&code) {
            return Err(refused());
        }
        let reason = Reason::from_code(code).map_err(|_| refused())?;
        let facts = self.domain.certificate_facts(&der)?.ok_or_else(|| {
            Problem::malformed("this CA did not issue that certificate").with_status(404)
        })?;
        let allowed = match &signer {
            Verified::Key(key) => key.matches_public_key(&facts.public_key),
            Verified::Account(account) => {
                facts.account_id.as_deref() == Some(account.id.as_str())
                    || (!facts.identifiers.is_empty()
                        && facts
                            .identifiers
                            .iter()
                            .map(|id| self.holds_authz(account, id, req.now))
                            .collect::<Result<Vec<bool>, Problem>>()?
                            .into_iter()
                            .all(|held| held))
            }
        };
        if !allowed {
            return Err(Problem::unauthorized(
                "the signer neither ordered this certificate, holds authorizations for all its identifiers, nor holds its key",
            ));
        }
        if facts.revoked {
            return Err(Problem::new(
                ProblemType::AlreadyRevoked,
                "the certificate is already revoked",
            ));
        }
        let account = match &signer {
            Verified::Account(a) => Some(a.id.as_str()),
            Verified::Key(_) => None,
        };
        self.domain.revoke(&facts.serial, reason, account)?;
        Ok(Response::empty(200))
    }

    pub(crate) fn key_change(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        outer: &Jws,
        account: AccountRecord,
    ) -> Result<Response, Problem> {
        let inner_value: Value = outer.payload_json()?;
        let inner = Jws::parse_value(&inner_value)?;
        let Some(Signer::Jwk(new_key)) = &inner.signer else {
            return Err(Problem::malformed(
                "the inner JWS must carry the new key as jwk",
            ));
        };
        if inner.nonce.is_some() {
            return Err(Problem::malformed("the inner JWS must not have a nonce"));
        }
        if inner.url != outer.url {
            return Err(Problem::malformed(
                "the inner JWS url must equal the outer one",
            ));
        }
        inner.verify(new_key)?;
        let payload: KeyChange = inner.payload_json()?;
        if payload.account != urls.account(&account.id) {
            return Err(Problem::unauthorized(
                "the inner payload names another account",
            ));
        }
        let old = Jwk::from_json(&payload.old_key)?;
        if old.thumbprint() != account.thumbprint {
            return Err(Problem::unauthorized(
                "oldKey is not the account's current key",
            ));
        }
        let thumbprint = new_key.thumbprint();
        if thumbprint == account.thumbprint {
            return Err(Problem::malformed("the new key is the current key"));
        }
        let _ = req;
        if let Some(other) =
            self.store
                .change_account_key(&account, new_key.to_json(), &thumbprint)?
        {
            // RFC 8555 §7.3.5: 409 with the Location of the key's account.
            let conflict =
                Problem::malformed("another account already uses the new key").with_status(409);
            return Ok(Response::problem(&conflict).with_location(urls.account(&other)));
        }
        let mut updated = account;
        updated.jwk = new_key.to_json();
        updated.thumbprint = thumbprint;
        let url = urls.account(&updated.id);
        Ok(Response::json(200, &updated.to_object(&format!("{url}/orders"))).with_location(url))
    }
}
