//! The ACME request pipeline without sockets: one [`Request`] in (method,
//! base URL, path, content type, body, time), one [`Response`] out. It
//! checks every POST as RFC 8555 §6 requires (media type, JWS form, `url`
//! equal to the request URL, a fresh single-use nonce, `jwk` or `kid` as the
//! resource demands, the signature) before any resource sees it, so a bad
//! request changes nothing.
//!
//! State lives behind [`Store`] and the CA around it behind [`Domain`] (both
//! in [`crate::ports`]); the server implements them over its ledger.

use crate::account::{AccountRecord, AccountStatus};
use crate::jws::{b64u, Jwk, Jws, Signer};
use crate::nonce::NonceStore;
pub use crate::ports::{CertificateFacts, Domain, IssuedCertificate, Store, StoreError};
use crate::problem::{Problem, ProblemType};
use serde_json::Value;
use std::sync::{Mutex, MutexGuard};

/// The media type of ACME POST bodies.
pub const JOSE_MEDIA_TYPE: &str = "application/jose+json";

/// Largest request body accepted (RFC 8555 leaves it to the server).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Path prefix of every ACME resource.
pub const PREFIX: &str = "/acme";

/// Directory `meta` and policy.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Seconds an order stays open.
    pub order_lifetime_secs: u64,
    /// Seconds an authorization stays usable.
    pub authz_lifetime_secs: u64,
    /// `meta.termsOfService`.
    pub terms_of_service: Option<String>,
    /// `meta.website`.
    pub website: Option<String>,
    /// `meta.caaIdentities`.
    pub caa_identities: Vec<String>,
    /// `meta.externalAccountRequired`.
    pub external_account_required: bool,
    /// Rate limits.
    pub limits: crate::limits::Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            order_lifetime_secs: 7 * 86_400,
            authz_lifetime_secs: 7 * 86_400,
            terms_of_service: None,
            website: None,
            caa_identities: Vec::new(),
            external_account_required: false,
            limits: crate::limits::Limits::default(),
        }
    }
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
    /// The client's IP address (for per-IP rate limits).
    pub client_ip: Option<std::net::IpAddr>,
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
    pub(crate) fn json(status: u16, v: &Value) -> Response {
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

    pub(crate) fn empty(status: u16) -> Response {
        Response {
            content_type: "",
            body: Vec::new(),
            ..Response::json(status, &Value::Null)
        }
    }

    pub(crate) fn problem(p: &Problem) -> Response {
        Response {
            content_type: crate::problem::PROBLEM_MEDIA_TYPE,
            body: p.to_json().into_bytes(),
            retry_after: p.retry_after,
            ..Response::json(p.status, &Value::Null)
        }
    }

    pub(crate) fn with_location(mut self, url: String) -> Response {
        self.location = Some(url);
        self
    }

    pub(crate) fn with_link(mut self, url: &str, rel: &str) -> Response {
        self.links.push(format!("<{url}>;rel=\"{rel}\""));
        self
    }
}

/// Whose key signed a request that passed the checks.
pub(crate) enum Verified {
    /// A key given in full.
    Key(Jwk),
    /// A valid account.
    Account(AccountRecord),
}

/// URLs of the resources, from the request's base.
pub(crate) struct Urls<'a> {
    pub(crate) base: &'a str,
}

impl Urls<'_> {
    pub(crate) fn of(&self, resource: &str) -> String {
        format!("{}{PREFIX}/{resource}", self.base)
    }
    pub(crate) fn account(&self, id: &str) -> String {
        self.of(&format!("acct/{id}"))
    }
    pub(crate) fn order(&self, id: &str) -> String {
        self.of(&format!("order/{id}"))
    }
    pub(crate) fn authz(&self, id: &str) -> String {
        self.of(&format!("authz/{id}"))
    }
    pub(crate) fn challenge(&self, authz: &str, id: &str) -> String {
        self.of(&format!("chall/{authz}/{id}"))
    }
    pub(crate) fn certificate(&self, serial: &custos_model::serial::Serial) -> String {
        self.of(&format!("cert/{}", serial.to_hex()))
    }
}

/// Read-modify-write of one order or authorization happens under its
/// stripe of these locks.
const LOCK_STRIPES: usize = 64;

/// The ACME protocol engine.
pub struct AcmeServer<S, D> {
    pub(crate) store: S,
    pub(crate) domain: D,
    nonces: NonceStore,
    pub(crate) settings: Settings,
    pub(crate) limiter: crate::limits::Limiter,
    /// Validations queued or running, bounded per account and in all.
    pub(crate) in_flight: crate::limits::InFlight,
    locks: Vec<Mutex<()>>,
}

impl<S, D> std::fmt::Debug for AcmeServer<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AcmeServer({:?})", self.settings)
    }
}

impl<S: Store, D: Domain> AcmeServer<S, D> {
    /// An engine over `store` and `domain`.
    pub fn new(store: S, domain: D, settings: Settings) -> AcmeServer<S, D> {
        AcmeServer {
            store,
            domain,
            nonces: NonceStore::new(100_000),
            limiter: crate::limits::Limiter::new(settings.limits),
            in_flight: crate::limits::InFlight::default(),
            settings,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The lock stripe of a record id.
    pub(crate) fn lock(&self, id: &str) -> MutexGuard<'_, ()> {
        let h = id
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        self.locks[h % LOCK_STRIPES]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The domain.
    pub fn domain(&self) -> &D {
        &self.domain
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
        if req.body.len() > MAX_BODY_BYTES {
            return Err(Problem::malformed("request body over 64 KiB").with_status(413));
        }
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
                self.account_post(req, urls, &r["acct/".len()..])
            }
            ("POST", "new-order") => {
                let (jws, account) = self.verify_account_post(req, urls)?;
                self.new_order(req, urls, &jws, &account)
            }
            ("POST", r) if r.starts_with("order/") => {
                let (jws, account) = self.verify_account_post(req, urls)?;
                let rest = &r["order/".len()..];
                match rest.strip_suffix("/finalize") {
                    Some(id) => self.finalize(req, urls, &jws, &account, id),
                    None => self.order_request(req, urls, &jws, &account, rest),
                }
            }
            ("POST", r) if r.starts_with("authz/") => {
                let (jws, account) = self.verify_account_post(req, urls)?;
                self.authz_request(req, urls, &jws, &account, &r["authz/".len()..])
            }
            ("POST", r) if r.starts_with("chall/") => {
                let (jws, account) = self.verify_account_post(req, urls)?;
                let (authz, chall) = r["chall/".len()..].split_once('/').ok_or_else(not_found)?;
                self.challenge_request(req, urls, &jws, &account, authz, chall)
            }
            ("GET", r) if r.starts_with("renewal-info/") => {
                self.renewal_info(&r["renewal-info/".len()..], req.now)
            }
            ("POST", "revoke-cert") => {
                let (jws, signer) = self.verify_post(req, urls, KeyRule::Either)?;
                self.revoke_cert(req, &jws, signer)
            }
            ("POST", "key-change") => {
                let (jws, account) = self.verify_account_post(req, urls)?;
                self.key_change(req, urls, &jws, account)
            }
            ("POST", r) if r.starts_with("cert/") => {
                let (jws, account) = self.verify_account_post(req, urls)?;
                self.certificate_request(&jws, &account, &r["cert/".len()..])
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
        let profiles = self.domain.profiles();
        if !profiles.is_empty() {
            meta.insert(
                "profiles".into(),
                profiles
                    .into_iter()
                    .collect::<serde_json::Map<String, Value>>()
                    .into(),
            );
        }
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
    pub(crate) fn verify_post(
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
                        account.status.name()
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

    /// A POST signed by an existing, valid account (`kid`).
    pub(crate) fn verify_account_post(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
    ) -> Result<(Jws, AccountRecord), Problem> {
        match self.verify_post(req, urls, KeyRule::Kid)? {
            (jws, Verified::Account(account)) => Ok((jws, account)),
            (_, Verified::Key(_)) => Err(Problem::malformed("this resource needs kid")),
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum KeyRule {
    Jwk,
    Kid,
    Either,
}

pub(crate) fn not_found() -> Problem {
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
