//! The order resources (RFC 8555 §7.4–7.5): newOrder, order, authorization,
//! challenge, finalize, certificate and the account's orders list.
//!
//! Every handler runs after [`AcmeServer`]'s POST checks. A refusal returns
//! before anything is written; a read-modify-write holds the record's lock.

use crate::account::AccountRecord;
use crate::jws::{b64u_decode, Jws};
use crate::limits::Event;
use crate::order::{
    problem_value, AuthzRecord, AuthzStatus, ChallengeRecord, ChallengeStatus, Finalize,
    Identifier, NewOrder, OrderRecord, OrderStatus, OrderUrls, ValidationJob,
};
use crate::problem::{Problem, ProblemType};
use crate::server::{not_found, random_id, AcmeServer, Domain, Request, Response, Store, Urls};
use custos_model::serial::Serial;
use serde_json::Value;

/// Most identifiers in one order.
pub const MAX_IDENTIFIERS: usize = 100;

/// The validation job of one challenge.
fn job(
    authz: &AuthzRecord,
    c: &ChallengeRecord,
    account: &AccountRecord,
    requester: Option<std::net::IpAddr>,
) -> ValidationJob {
    ValidationJob {
        authz_id: authz.id.clone(),
        challenge_id: c.id.clone(),
        kind: c.kind.clone(),
        identifier: authz.identifier.clone(),
        token: c.token.clone(),
        key_authorization: format!("{}.{}", c.token, account.thumbprint),
        account_id: account.id.clone(),
        requester,
    }
}

fn owned<T>(
    record: Option<T>,
    owner: impl Fn(&T) -> &str,
    account: &AccountRecord,
) -> Result<T, Problem> {
    match record {
        Some(r) if owner(&r) == account.id => Ok(r),
        Some(_) => Err(Problem::unauthorized(
            "this resource belongs to another account",
        )),
        None => Err(not_found()),
    }
}

impl<S: Store, D: Domain> AcmeServer<S, D> {
    pub(crate) fn new_order(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        jws: &Jws,
        account: &AccountRecord,
    ) -> Result<Response, Problem> {
        let payload: NewOrder = jws.payload_json()?;
        let ip = req.client_ip.map(|ip| ip.to_string());
        self.limiter
            .check(Event::NewOrder, &account.id, ip.as_deref(), req.now)?;
        if payload.identifiers.is_empty() {
            return Err(Problem::malformed("an order needs at least one identifier"));
        }
        if payload.identifiers.len() > MAX_IDENTIFIERS {
            return Err(Problem::new(
                ProblemType::RejectedIdentifier,
                format!("more than {MAX_IDENTIFIERS} identifiers in one order"),
            ));
        }
        if payload.not_before.is_some() || payload.not_after.is_some() {
            return Err(Problem::malformed(
                "notBefore/notAfter are not supported: validity comes from the profile",
            ));
        }
        self.domain.check_profile(payload.profile.as_deref())?;
        if let Some(replaces) = &payload.replaces {
            self.check_replaces(replaces, &account.id)?;
        }
        let identifiers = self.allowed_identifiers(&payload.identifiers)?;
        let now = req.now;
        let authzs: Vec<AuthzRecord> = identifiers
            .iter()
            .map(|id| self.new_authz(&account.id, id, now))
            .collect();
        let order = OrderRecord {
            id: random_id(),
            account_id: account.id.clone(),
            status: OrderStatus::Pending,
            expires: now + self.settings.order_lifetime_secs,
            identifiers,
            authz_ids: authzs.iter().map(|a| a.id.clone()).collect(),
            profile: payload.profile,
            replaces: payload.replaces,
            certificate: None,
            error: None,
            created_at: now,
        };
        self.store.create_order(&order, &authzs)?;
        self.limiter
            .record(Event::NewOrder, &account.id, ip.as_deref(), req.now);
        let statuses: Vec<AuthzStatus> = authzs.iter().map(|a| a.status_at(now)).collect();
        let body = order.to_object(
            order.status_at(now, &statuses),
            &self.order_urls(urls, &order),
        );
        Ok(Response::json(201, &body).with_location(urls.order(&order.id)))
    }

    /// The order's identifiers, normalised and without repeats; every one
    /// the domain refuses is named in one problem's subproblems.
    fn allowed_identifiers(&self, asked: &[Identifier]) -> Result<Vec<Identifier>, Problem> {
        let mut identifiers: Vec<Identifier> = Vec::new();
        let mut refused: Option<Problem> = None;
        for id in asked {
            let id = id.normalized();
            if identifiers.contains(&id) {
                continue;
            }
            if let Err(p) = self.domain.check_identifier(&id) {
                let top = refused.get_or_insert_with(|| {
                    Problem::new(
                        p.kind,
                        "the order names identifiers this CA does not issue for",
                    )
                });
                top.subproblems.push(crate::problem::Subproblem {
                    kind: p.kind,
                    detail: p.detail.clone(),
                    identifier: id.for_problem(),
                });
                continue;
            }
            identifiers.push(id);
        }
        if let Some(mut p) = refused {
            if p.subproblems.len() == 1 {
                p.detail = format!(
                    "{}: {}",
                    p.subproblems[0].identifier.value, p.subproblems[0].detail
                );
            }
            return Err(p);
        }
        Ok(identifiers)
    }

    /// A fresh pending authorization for `id`, with every challenge the
    /// domain offers for it.
    fn new_authz(&self, account_id: &str, id: &Identifier, now: u64) -> AuthzRecord {
        AuthzRecord {
            id: random_id(),
            account_id: account_id.to_string(),
            identifier: id.clone(),
            status: AuthzStatus::Pending,
            expires: now + self.settings.authz_lifetime_secs,
            challenges: self
                .domain
                .challenge_types(id)
                .into_iter()
                .map(|kind| ChallengeRecord {
                    id: random_id(),
                    kind: kind.to_string(),
                    token: random_id(),
                    status: ChallengeStatus::Pending,
                    validated: None,
                    error: None,
                })
                .collect(),
            attestation: None,
        }
    }

    fn order_urls(&self, urls: &Urls<'_>, order: &OrderRecord) -> OrderUrls {
        let base = urls.of("authz/");
        OrderUrls {
            authz: Box::new(move |id| format!("{base}{id}")),
            finalize: format!("{}/finalize", urls.order(&order.id)),
            certificate: order.certificate.as_ref().map(|s| urls.certificate(s)),
        }
    }

    fn authz_statuses(&self, order: &OrderRecord, now: u64) -> Result<Vec<AuthzStatus>, Problem> {
        order
            .authz_ids
            .iter()
            .map(|id| {
                Ok(self
                    .store
                    .authz(id)?
                    .map_or(AuthzStatus::Expired, |a| a.status_at(now)))
            })
            .collect()
    }

    fn order_response(
        &self,
        urls: &Urls<'_>,
        order: &OrderRecord,
        now: u64,
        status: u16,
    ) -> Result<Response, Problem> {
        let statuses = self.authz_statuses(order, now)?;
        let state = order.status_at(now, &statuses);
        let mut r = Response::json(
            status,
            &order.to_object(state, &self.order_urls(urls, order)),
        )
        .with_location(urls.order(&order.id));
        // Pending waits on the client's challenges, not on us: no
        // Retry-After (it would hold clients back a whole second).
        if state == OrderStatus::Processing {
            r.retry_after = Some(1);
        }
        Ok(r)
    }

    pub(crate) fn order_request(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        jws: &Jws,
        account: &AccountRecord,
        id: &str,
    ) -> Result<Response, Problem> {
        if !jws.is_post_as_get() {
            return Err(Problem::malformed(
                "orders are read with POST-as-GET (empty payload)",
            ));
        }
        let order = owned(self.store.order(id)?, |o| &o.account_id, account)?;
        self.order_response(urls, &order, req.now, 200)
    }

    pub(crate) fn orders_list(
        &self,
        urls: &Urls<'_>,
        account: &AccountRecord,
    ) -> Result<Response, Problem> {
        let orders: Vec<String> = self
            .store
            .orders_of_account(&account.id)?
            .iter()
            .map(|id| urls.order(id))
            .collect();
        Ok(Response::json(
            200,
            &serde_json::json!({ "orders": orders }),
        ))
    }

    pub(crate) fn authz_request(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        jws: &Jws,
        account: &AccountRecord,
        id: &str,
    ) -> Result<Response, Problem> {
        let _guard = self.lock(id);
        let mut authz = owned(self.store.authz(id)?, |a| &a.account_id, account)?;
        if !jws.is_post_as_get() {
            let update: Value = jws.payload_json()?;
            if update.get("status").and_then(Value::as_str) != Some("deactivated") {
                return Err(Problem::malformed(
                    "an authorization can only be updated to {\"status\": \"deactivated\"}",
                ));
            }
            match authz.status_at(req.now) {
                AuthzStatus::Pending | AuthzStatus::Valid => {
                    authz.status = AuthzStatus::Deactivated;
                    self.store.update_authz(&authz)?;
                }
                other => {
                    return Err(Problem::malformed(format!(
                        "an authorization that is {} cannot be deactivated",
                        serde_json::to_value(other)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or_default()
                    )))
                }
            }
        }
        let body = authz.to_object(req.now, |a, c| urls.challenge(a, c));
        let mut r = Response::json(200, &body).with_location(urls.authz(&authz.id));
        if authz
            .challenges
            .iter()
            .any(|c| c.status == ChallengeStatus::Processing)
        {
            r.retry_after = Some(1);
        }
        Ok(r)
    }

    pub(crate) fn challenge_request(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        jws: &Jws,
        account: &AccountRecord,
        authz_id: &str,
        chall_id: &str,
    ) -> Result<Response, Problem> {
        let _guard = self.lock(authz_id);
        let mut authz = owned(self.store.authz(authz_id)?, |a| &a.account_id, account)?;
        let index = authz
            .challenges
            .iter()
            .position(|c| c.id == chall_id)
            .ok_or_else(not_found)?;
        if !jws.is_post_as_get() && authz.challenges[index].kind == "device-attest-01" {
            return self.device_attestation(req, urls, jws, account, authz, index);
        }
        if !jws.is_post_as_get() {
            // RFC 8555 §7.5.1: the response is an empty JSON object.
            let _: serde_json::Map<String, Value> = jws.payload_json()?;
            let state = authz.status_at(req.now);
            let challenge = &authz.challenges[index];
            if challenge.status == ChallengeStatus::Pending {
                if state != AuthzStatus::Pending {
                    return Err(Problem::malformed("the authorization is no longer pending"));
                }
                // An account or address past its failed-validation limit
                // gets no more validations (which would make us fetch
                // URLs or ask DNS on its behalf) until the window moves.
                let ip = req.client_ip.map(|ip| ip.to_string());
                self.limiter
                    .check(Event::FailedValidation, &account.id, ip.as_deref(), req.now)?;
                // A slot in the bounded validation queue, given back when
                // the validator reports.
                self.in_flight.reserve(&account.id)?;
                authz.challenges[index].status = ChallengeStatus::Processing;
                if let Err(p) = self.store.update_authz(&authz) {
                    self.in_flight.release(&account.id);
                    return Err(p.into());
                }
                let c = &authz.challenges[index];
                self.domain.validate(job(&authz, c, account, req.client_ip));
            }
        }
        let c = &authz.challenges[index];
        let mut r = Response::json(200, &c.to_object(&urls.challenge(&authz.id, &c.id)))
            .with_link(&urls.authz(&authz.id), "up");
        if c.status == ChallengeStatus::Processing {
            r.retry_after = Some(1);
        }
        Ok(r)
    }

    /// device-attest-01: the attestation is verified on the request (it is
    /// self-contained), so the answer already says valid. A refused
    /// attestation changes nothing; the device may send another.
    fn device_attestation(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        jws: &Jws,
        account: &AccountRecord,
        mut authz: AuthzRecord,
        index: usize,
    ) -> Result<Response, Problem> {
        let payload: crate::order::AttestationResponse = jws.payload_json()?;
        let att_obj = b64u_decode(&payload.att_obj, "attObj").map_err(|_| {
            Problem::new(
                ProblemType::BadAttestationStatement,
                "attObj is not unpadded base64url",
            )
        })?;
        if authz.challenges[index].status == ChallengeStatus::Pending {
            if authz.status_at(req.now) != AuthzStatus::Pending {
                return Err(Problem::malformed("the authorization is no longer pending"));
            }
            let ip = req.client_ip.map(|ip| ip.to_string());
            self.limiter
                .check(Event::FailedValidation, &account.id, ip.as_deref(), req.now)?;
            let token = authz.challenges[index].token.clone();
            let key_authorization = format!("{token}.{}", account.thumbprint);
            let proved = match self.domain.verify_attestation(
                &authz.identifier,
                &token,
                &key_authorization,
                &att_obj,
            ) {
                Ok(v) => v,
                Err(p) => {
                    self.limiter.record(
                        Event::FailedValidation,
                        &account.id,
                        ip.as_deref(),
                        req.now,
                    );
                    return Err(p);
                }
            };
            let c = &mut authz.challenges[index];
            c.status = ChallengeStatus::Valid;
            c.validated = Some(req.now);
            authz.status = AuthzStatus::Valid;
            authz.attestation = Some(proved);
            self.store.update_authz(&authz)?;
        }
        let c = &authz.challenges[index];
        Ok(
            Response::json(200, &c.to_object(&urls.challenge(&authz.id, &c.id)))
                .with_link(&urls.authz(&authz.id), "up"),
        )
    }

    /// Hands the domain again every validation that was under way when the
    /// server stopped; returns how many.
    pub fn resume_validations(&self) -> Result<usize, Problem> {
        let mut resumed = 0;
        for authz in self.store.processing_authzs()? {
            let Some(account) = self.store.account(&authz.account_id)? else {
                continue;
            };
            for c in authz
                .challenges
                .iter()
                .filter(|c| c.status == ChallengeStatus::Processing)
            {
                self.in_flight.force(&account.id);
                self.domain.validate(job(&authz, c, &account, None));
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    /// Records a validation's outcome (from the domain's validator). A
    /// challenge that is no longer processing is left alone.
    pub fn finish_validation(
        &self,
        job: &ValidationJob,
        outcome: Result<(), Problem>,
        now: u64,
    ) -> Result<(), Problem> {
        self.in_flight.release(&job.account_id);
        if outcome.is_err() {
            let ip = job.requester.map(|ip| ip.to_string());
            self.limiter
                .record(Event::FailedValidation, &job.account_id, ip.as_deref(), now);
        }
        let (authz_id, challenge_id) = (job.authz_id.as_str(), job.challenge_id.as_str());
        let _guard = self.lock(authz_id);
        let Some(mut authz) = self.store.authz(authz_id)? else {
            return Ok(());
        };
        let Some(c) = authz.challenges.iter_mut().find(|c| c.id == challenge_id) else {
            return Ok(());
        };
        if c.status != ChallengeStatus::Processing {
            return Ok(());
        }
        match outcome {
            Ok(()) => {
                c.status = ChallengeStatus::Valid;
                c.validated = Some(now);
                if authz.status == AuthzStatus::Pending {
                    authz.status = AuthzStatus::Valid;
                }
            }
            Err(p) => {
                c.status = ChallengeStatus::Invalid;
                c.error = Some(problem_value(&p));
                if authz.status == AuthzStatus::Pending {
                    authz.status = AuthzStatus::Invalid;
                }
            }
        }
        self.store.update_authz(&authz)?;
        Ok(())
    }

    pub(crate) fn finalize(
        &self,
        req: &Request<'_>,
        urls: &Urls<'_>,
        jws: &Jws,
        account: &AccountRecord,
        id: &str,
    ) -> Result<Response, Problem> {
        let payload: Finalize = jws.payload_json()?;
        let csr = b64u_decode(&payload.csr, "csr")
            .map_err(|_| Problem::new(ProblemType::BadCsr, "csr is not unpadded base64url DER"))?;
        let _guard = self.lock(id);
        let mut order = owned(self.store.order(id)?, |o| &o.account_id, account)?;
        let state = order.status_at(req.now, &self.authz_statuses(&order, req.now)?);
        if state != OrderStatus::Ready {
            let detail = match state {
                OrderStatus::Pending => {
                    "the order's authorizations are not all valid yet".to_string()
                }
                OrderStatus::Valid => "the order is already finalized".to_string(),
                other => format!(
                    "the order is {}",
                    serde_json::to_value(other)
                        .unwrap_or_default()
                        .as_str()
                        .unwrap_or_default()
                ),
            };
            return Err(Problem::new(ProblemType::OrderNotReady, detail));
        }
        let mut attestations = Vec::new();
        for authz_id in &order.authz_ids {
            if let Some(a) = self.store.authz(authz_id)?.and_then(|a| a.attestation) {
                attestations.push(a);
            }
        }
        let serial = self.domain.issue(&order, account, &csr, &attestations)?;
        order.status = OrderStatus::Valid;
        order.certificate = Some(serial);
        self.store.update_order(&order)?;
        self.order_response(urls, &order, req.now, 200)
    }

    pub(crate) fn certificate_request(
        &self,
        jws: &Jws,
        account: &AccountRecord,
        serial: &str,
    ) -> Result<Response, Problem> {
        if !jws.is_post_as_get() {
            return Err(Problem::malformed("certificates are read with POST-as-GET"));
        }
        let serial: Serial = serial.parse().map_err(|_| not_found())?;
        let cert = self.domain.certificate(&serial)?.ok_or_else(not_found)?;
        if cert.account_id.as_deref() != Some(account.id.as_str()) {
            return Err(Problem::unauthorized(
                "this certificate belongs to another account",
            ));
        }
        let mut r = Response::json(200, &Value::Null);
        r.content_type = "application/pem-certificate-chain";
        r.body = cert.chain_pem.into_bytes();
        Ok(r)
    }
}
