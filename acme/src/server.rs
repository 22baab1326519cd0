//! The ACME request pipeline without sockets: one [`Request`] in (method,
//! base URL, path, content type, body, time), one [`Response`] out. It
//! checks every POST as RFC 8555 §6 requires (media type, JWS form, `url`
//! equal to the request URL, a fresh single-use nonce, `jwk` or `kid` as the
//! resource demands, the signature) before any resource sees it, so a bad
//! request changes nothing.
//!
//! State lives behind [`Store`]; the server implements it over its ledger.

use crate::account::{check_contacts, AccountRecord, AccountStatus, AccountUpdate, NewAccount};
use crate::jws::{b64u, Jwk, Jws, Signer};
use crate::nonce::NonceStore;
use crate::problem::{Problem, ProblemType};
use serde_json::Value;

/// The media type of ACME POST bodies.
pub const JOSE_MEDIA_TYPE: &str = "application/jose+json";

/// Largest request body accepted (RFC 8555 leaves it to the server).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Path prefix of every ACME resource.
pub const PREFIX: &str = "/acme";

/// A storage failure: the server's fault, reported as `serverInternal`.
#[derive(Debug, thiserror::Error)]
#[error("ACME storage: {0}")]
pub struct StoreError(pub String);

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        Problem::internal(e.to_string())
    }
}

/// What the protocol needs stored. Writes must be durable when they return.
pub trait Store: Send + Sync {
    /// The account with this id.
    fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// The account with this key thumbprint.
    fn account_by_thumbprint(&self, thumbprint: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Stores a new account; `Ok(false)` if its key already has one.
    fn create_account(&self, account: &AccountRecord) -> Result<bool, StoreError>;
    /// Replaces an account.
    fn update_account(&self, account: &AccountRecord) -> Result<(), StoreError>;
}

/// Directory `meta` and policy.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// `meta.termsOfService`.
    pub terms_of_service: Option<String>,
    /// `meta.website`.
    pub website: Option<String>,
    /// `meta.caaIdentities`.
    pub caa_identities: Vec<String>,
    /// `meta.externalAccountRequired`.
    pub external_account_required: bool,
}

/// One HTTP request, as far as ACME cares.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `GET`, `HEAD` or `POST`.
    pub method: &'a str,
    /// Scheme and authority clients use, without a trailing slash
    /// (`https://ca.example:8443`).
    pub base: &'a str,
    /// The request path (`/acme/new-account`).
    pub path: &'a str,
    /// The Content-Type header.
    pub content_type: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
    /// Now, Unix seconds.
    pub now: u64,
}

/// One HTTP response. Every response carries a fresh `Replay-Nonce` and a
/// `Link: <directory>;rel="index"`, which the server adds from here.
#[derive(Clone, Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Content-Type (empty when there is no body).
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// `Location`.
    pub location: Option<String>,
    /// `Replay-Nonce`.
    pub nonce: String,
    /// `Link` header values.
    pub links: Vec<String>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
    /// `Cache-Control` (`no-store` on nonce responses).
    pub cache_control: Option<&'static str>,
}

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
            location: None,
            nonce: String::new(),
            links: Vec::new(),
            retry_after: None,
            cache_control: None,
        }
    }

    fn empty(status: u16) -> Response {
        Response {
            content_type: "",
            body: Vec::new(),
            ..Response::json(status, &Value::Null)
        }
    }

    fn problem(p: &Problem) -> Response {
        Response {
            content_type: crate::problem::PROBLEM_MEDIA_TYPE,
            body: p.to_json().into_bytes(),
            ..Response::json(p.status, &Value::Null)
        }
    }

    fn with_location(mut self, url: String) -> Response {
        self.location = Some(url);
        self
    }
}

/// Whose key signed a request that passed the checks.
enum Verified {
    /// A key given in full.
    Key(Jwk),
    /// A valid account.
    Account(AccountRecord),
}

/// URLs of the resources, from the request's base.
struct Urls<'a> {
    base: &'a str,
}

impl Urls<'_> {
    fn of(&self, resource: &str) -> String {
        format!("{}{PREFIX}/{resource}", self.base)
    }
    fn account(&self, id: &str) -> String {
        self.of(&format!("acct/{id}"))
    }
}

/// The ACME protocol engine.
#[derive(Debug)]
pub struct AcmeServer<S> {
    store: S,
    nonces: NonceStore,
    settings: Settings,
}

impl<S: Store> AcmeServer<S> {
    /// An engine over `store`.
    pub fn new(store: S, settings: Settings) -> AcmeServer<S> {
        AcmeServer {
            store,
            nonces: NonceStore::new(100_000),
            settings,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Answers one request. Never panics on input; every refusal is a
    /// problem document.
    pub fn handle(&self, req: &Request<'_>) -> Response {
        let urls = Urls { base: req.base };
        let mut response = match self.route(req, &urls) {
            Ok(r) => r,
            Err(p) => Response::problem(&p),
        };
        response.nonce = self.nonces.issue();
        response
            .links
            .push(format!("<{}>;rel=\"index\"", urls.of("directory")));
        response
    }

    fn route(&self, req: &Request<'_>, urls: &Urls<'_>) -> Result<Response, Problem> {
        let Some(resource) = req
            .path
            .strip_prefix(PREFIX)
            .and_then(|p| p.strip_prefix('/'))
        else {
            return Err(not_found());
        };
        match (req.method, resource) {
            ("GET", "directory") => Ok(Response::json(200, &self.directory(urls))),
            ("HEAD", "new-nonce") => Ok(no_store(Response::empty(200))),
            ("GET", "new-nonce") => Ok(no_store(Response::empty(204))),
            ("POST", "new-account") => {
                let (jws, key) = self.verify_post(req, urls, KeyRule::Jwk)?;
                let Verified::Key(key) = key else {
                    return Err(Problem::malformed("newAccount must be signed with jwk"));
                };
                self.new_account(req, urls, &jws, key)
            }
            ("POST", r) if r.starts_with("acct/") => {
                let (jws, signer) = self.verify_post(req, urls, KeyRule::Kid)?;
                let Verified::Account(account) = signer else {
                    return Err(Problem::malformed("account requests are signed with kid"));
                };
                if account.id != r["acct/".len()..] {
                    return Err(Problem::unauthorized(
                        "the signing account is not the account addressed",
                    ));
                }
                self.account_request(urls, &jws, account)
            }
            ("POST", _) | ("GET", _) | ("HEAD", _) => Err(not_found()),
            (m, _) => {
                Err(Problem::malformed(format!("method {m} is not used by ACME")).with_status(405))
            }
        }
    }

    fn directory(&self, urls: &Urls<'_>) -> Value {
        let mut meta = serde_json::Map::new();
        if let Some(t) = &self.settings.terms_of_service {
            meta.insert("termsOfService".into(), t.clone().into());
        }
        if let Some(w) = &self.settings.website {
            meta.insert("website".into(), w.clone().into());
        }
        if !self.settings.caa_identities.is_empty() {
            meta.insert(
                "caaIdentities".into(),
                self.settings.caa_identities.clone().into(),
            );
        }
        meta.insert(
            "externalAccountRequired".into(),
            self.settings.external_account_required.into(),
        );
        serde_json::json!({
            "newNonce": urls.of("new-nonce"),
            "newAccount": urls.of("new-account"),
            "newOrder": urls.of("new-order"),
            "revokeCert": urls.of("revoke-cert"),
            "keyChange": urls.of("key-change"),
            "renewalInfo": urls.of("renewal-info"),
            "meta": meta,
        })
    }

    /// RFC 8555 §6.2–6.5 checks, in the order that keeps state unchanged on
    /// failure: form, url, nonce (used up), signer, signature.
    fn verify_post(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        rule: KeyRule,
    ) -> Result<(Jws, Verified), Problem> {
        let media = req
            .content_type
            .map(|c| c.split(';').next().unwrap_or_default().trim());
        if media != Some(JOSE_MEDIA_TYPE) {
            return Err(
                Problem::malformed(format!("Content-Type must be {JOSE_MEDIA_TYPE}"))
                    .with_status(415),
            );
        }
        if req.body.len() > MAX_BODY_BYTES {
            return Err(Problem::malformed("request body over 64 KiB").with_status(413));
        }
        let jws = Jws::parse_request(req.body)?;
        let expected = format!("{}{}", req.base, req.path);
        if jws.url.as_deref() != Some(expected.as_str()) {
            return Err(Problem::unauthorized(format!(
                "JWS url does not match the request URL {expected}"
            )));
        }
        if !self.nonces.redeem(jws.nonce.as_deref().unwrap_or_default()) {
            return Err(Problem::new(
                ProblemType::BadNonce,
                "nonce unknown or already used; use the Replay-Nonce of this response",
            ));
        }
        let verified = match (&jws.signer, rule) {
            (Some(Signer::Jwk(key)), KeyRule::Jwk | KeyRule::Either) => {
                jws.verify(key)?;
                Verified::Key(key.clone())
            }
            (Some(Signer::Kid(kid)), KeyRule::Kid | KeyRule::Either) => {
                let id = kid
                    .strip_prefix(&urls.account(""))
                    .filter(|id| !id.is_empty() && !id.contains('/'))
                    .ok_or_else(|| {
                        Problem::new(
                            ProblemType::AccountDoesNotExist,
                            format!("kid {kid} is not an account URL of this server"),
                        )
                    })?;
                let account = self.store.account(id)?.ok_or_else(|| {
                    Problem::new(ProblemType::AccountDoesNotExist, "no such account")
                })?;
                let key = Jwk::from_json(&account.jwk)?;
                jws.verify(&key)?;
                if account.status != AccountStatus::Valid {
                    return Err(Problem::unauthorized(format!(
                        "account is {}",
                        status_name(account.status)
                    )));
                }
                Verified::Account(account)
            }
            (Some(Signer::Jwk(_)), _) => {
                return Err(Problem::malformed(
                    "this resource needs kid (the account URL), not jwk",
                ))
            }
            (Some(Signer::Kid(_)), _) => {
                return Err(Problem::malformed("this resource needs jwk, not kid"))
            }
            (None, _) => return Err(Problem::malformed("no jwk or kid")),
        };
        Ok((jws, verified))
    }

    fn new_account(
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
        if self.settings.external_account_required && payload.external_account_binding.is_none() {
            return Err(Problem::new(
                ProblemType::ExternalAccountRequired,
                "this server requires an external account binding",
            ));
        }
        let account = AccountRecord {
            id: random_id(),
            jwk: key.to_json(),
            thumbprint,
            status: AccountStatus::Valid,
            contact,
            terms_agreed: payload.terms_of_service_agreed == Some(true),
            eab_kid: None,
            created_at: req.now,
        };
        if !self.store.create_account(&account)? {
            return Err(Problem::internal("account created concurrently; retry"));
        }
        let url = urls.account(&account.id);
        Ok(Response::json(201, &account.to_object(&format!("{url}/orders"))).with_location(url))
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

#[derive(Clone, Copy)]
enum KeyRule {
    Jwk,
    Kid,
    #[allow(dead_code)]
    Either,
}

fn status_name(s: AccountStatus) -> &'static str {
    match s {
        AccountStatus::Valid => "valid",
        AccountStatus::Deactivated => "deactivated",
        AccountStatus::Revoked => "revoked",
    }
}

fn not_found() -> Problem {
    Problem::malformed("no such ACME resource").with_status(404)
}

fn no_store(mut r: Response) -> Response {
    r.cache_control = Some("no-store");
    r
}

/// A random URL-safe identifier (128 bits).
pub fn random_id() -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut raw = [0u8; 16];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut raw);
    b64u(&raw)
}
