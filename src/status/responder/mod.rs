//! The OCSP responder's domain side: which status to answer, from which
//! precomputed response, and when to (re)sign. The protocol work (parsing,
//! encoding) is in `custos-ocsp`; HTTP is in `server::ocsp`.
//!
//! Nonce-less single-certificate requests (nginx, CDNs, most RADIUS setups
//! with nonces off) are answered from responses signed ahead of time and
//! stored in the ledger: one lookup and a copy. Requests with a nonce, or
//! asking about several certificates, get a freshly signed response, with at
//! most `max_concurrent_signing` signatures admitted at once (`tryLater` past
//! that), run on a small pool of signing threads (see `signing_pool`).

use crate::ca::{Ca, OcspSigner};
use crate::ledger::{Ledger, LedgerError, Precomputed};
use crate::serial::Serial;
use crate::status::signing_pool::{PoolError, SigningPool};
use custos_ocsp::issuer::{HashAlg, IssuerHashes};
use custos_ocsp::request::{parse_request, parse_simple, CertQuery};
use custos_ocsp::response::{build_response, ResponseSigner, SingleAnswer, Status};
use custos_ocsp::{InternalError, OcspError};
use prometheus::Registry;
use spki::AlgorithmIdentifierOwned;
use std::sync::Arc;
use tokio::sync::Semaphore;

mod metrics;
mod precompute;
mod settings;

use metrics::OcspMetrics;
use precompute::to_status;
pub use settings::ResponderSettings;

/// How an answer was produced (for caching headers and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// From a precomputed response.
    Precomputed {
        /// thisUpdate.
        this_update: u64,
        /// nextUpdate.
        next_update: u64,
        /// Strong validator.
        etag: [u8; 8],
    },
    /// Freshly signed (nonce or several CertIDs).
    Fresh,
    /// An unsuccessful OCSPResponse.
    Error(&'static str),
}

/// An answer: DER bytes plus how they were made.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The DER OCSPResponse.
    pub der: bytes::Bytes,
    /// How.
    pub kind: AnswerKind,
    /// good | revoked | unknown | mixed, for metrics.
    pub status: &'static str,
}

/// Signs with the delegated responder (or the issuing CA).
struct Signer<'a> {
    key: &'a crate::ca::key::SigningKey,
    /// Empty, or the delegated responder's certificate.
    certs: Vec<&'a [u8]>,
}

impl ResponseSigner for Signer<'_> {
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        self.key.signature_algorithm()
    }
    fn key_hash(&self) -> [u8; 20] {
        self.key.key_id()
    }
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, custos_ocsp::BoxError> {
        Ok(self.key.sign(tbs)?)
    }
    fn certs_der(&self) -> &[&[u8]] {
        &self.certs
    }
}

/// A ledger failure while answering: our fault, `internalError` on the wire.
fn status_error(e: LedgerError) -> OcspError {
    InternalError::Status(e.into()).into()
}

/// The OCSP responder.
pub struct Responder {
    ledger: Arc<Ledger>,
    ca: Arc<Ca>,
    hashes: IssuerHashes,
    settings: ResponderSettings,
    signing: Arc<Semaphore>,
    pool: SigningPool,
    metrics: OcspMetrics,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Responder({:?})", self.settings)
    }
}

impl Responder {
    /// A responder for the CA's issuing certificate.
    pub fn new(
        ledger: Arc<Ledger>,
        ca: Arc<Ca>,
        settings: ResponderSettings,
        registry: &Registry,
    ) -> anyhow::Result<Responder> {
        let hashes = IssuerHashes::new(ca.issuer_cert())?;
        Ok(Responder {
            signing: Arc::new(Semaphore::new(settings.max_concurrent_signing.max(1))),
            pool: SigningPool::new(
                settings.signing_threads,
                settings.max_concurrent_signing.max(1),
            )?,
            ledger,
            ca,
            hashes,
            settings,
            metrics: OcspMetrics::new(registry),
        })
    }

    /// The responder key's algorithm (for logs and benches).
    pub fn key_algorithm(&self) -> String {
        self.with_signer(|s| s.key.algorithm().to_string())
    }

    /// One bare signature with the responder key: the benches' yardstick
    /// for the cost of a fresh response.
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, crate::ca::key::KeyError> {
        self.with_signer(|s| s.key.sign(message))
    }

    fn with_signer<T>(&self, f: impl FnOnce(&Signer<'_>) -> T) -> T {
        if self.settings.sign_with_issuer {
            f(&Signer {
                key: self.ca.issuer_key(),
                certs: Vec::new(),
            })
        } else {
            let delegated: Arc<OcspSigner> = self.ca.ocsp_signer();
            f(&Signer {
                key: &delegated.key,
                certs: vec![&delegated.cert_der],
            })
        }
    }

    /// An unsuccessful answer for an error, counted in the metrics.
    pub fn error_answer(&self, e: OcspError) -> Answer {
        let label = match e {
            OcspError::Malformed(_) => "malformedRequest",
            OcspError::Unauthorized => "unauthorized",
            OcspError::TryLater => "tryLater",
            _ => "internalError",
        };
        if let OcspError::Internal(internal) = &e {
            tracing::error!(error = %crate::support::error_chain(internal), "OCSP internal error");
        }
        self.metrics.answers.with_label_values(&[label]).inc();
        Answer {
            der: e.to_der().to_vec().into(),
            kind: AnswerKind::Error(label),
            status: label,
        }
    }

    fn query_serial(&self, q: &CertQuery) -> Option<(HashAlg, Serial)> {
        self.issued_serial(q.alg, q.name_hash(), q.key_hash(), &q.serial)
    }

    /// The serial asked about, when the CertID names our issuer.
    fn issued_serial(
        &self,
        alg: Option<HashAlg>,
        name_hash: &[u8],
        key_hash: &[u8],
        serial: &[u8],
    ) -> Option<(HashAlg, Serial)> {
        let alg = alg?;
        if !self.hashes.matches(alg, name_hash, key_hash) {
            return None;
        }
        Serial::from_bytes(serial).ok().map(|s| (alg, s))
    }

    /// Answers a DER request at `now`, signing (when it must) on the
    /// calling thread. For callers without a runtime (benches, tools); the
    /// server uses [`Responder::answer_pooled`].
    pub fn answer(&self, der: &[u8], now: u64) -> Answer {
        let result = self.plan(der, now).and_then(|plan| match plan {
            Plan::Ready(a) => Ok(a),
            Plan::Remake(query) => {
                let _permit = self.signing_permit()?;
                self.remake_answer(query, now)
            }
            Plan::Fresh(job) => {
                let _permit = self.signing_permit()?;
                self.sign_fresh(&job, now)
            }
        });
        self.count(result)
    }

    /// Answers a DER request at `now`. Anything to sign is signed on the
    /// responder's signing pool with a permit held until the signature is
    /// done; past `max_concurrent_signing` permits the answer is
    /// `tryLater`, at once.
    pub async fn answer_pooled(self: &Arc<Self>, der: &[u8], now: u64) -> Answer {
        let result = match self.plan(der, now) {
            Ok(Plan::Ready(a)) => Ok(a),
            Ok(Plan::Remake(query)) => {
                let this = self.clone();
                self.on_pool(move || this.remake_answer(query, now)).await
            }
            Ok(Plan::Fresh(job)) => {
                let this = self.clone();
                self.on_pool(move || this.sign_fresh(&job, now)).await
            }
            Err(e) => Err(e),
        };
        self.count(result)
    }

    /// Runs `f` on the signing pool under a signing permit.
    async fn on_pool(
        &self,
        f: impl FnOnce() -> Result<Answer, OcspError> + Send + 'static,
    ) -> Result<Answer, OcspError> {
        let permit = self.signing_permit()?;
        let result = self
            .pool
            .run(move || {
                let answer = f();
                drop(permit);
                answer
            })
            .await;
        match result {
            Ok(answer) => answer,
            Err(PoolError::Full) => {
                self.metrics.shed.inc();
                Err(OcspError::TryLater)
            }
            Err(PoolError::Lost) => Err(InternalError::Signing(PoolError::Lost.into()).into()),
        }
    }

    /// A signing permit, or `tryLater` (counted as shed) when every one is
    /// taken.
    fn signing_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, OcspError> {
        self.signing.clone().try_acquire_owned().map_err(|_| {
            self.metrics.shed.inc();
            OcspError::TryLater
        })
    }

    /// Counts an answer in the metrics.
    fn count(&self, result: Result<Answer, OcspError>) -> Answer {
        match result {
            Ok(a) => {
                match a.status {
                    "good" => self.metrics.good.inc(),
                    "revoked" => self.metrics.revoked.inc(),
                    other => self.metrics.answers.with_label_values(&[other]).inc(),
                }
                a
            }
            Err(e) => self.error_answer(e),
        }
    }

    /// The stored answer for one of our serials, or `None` when it is
    /// missing or stale.
    fn stored_answer(
        &self,
        (alg, serial): &(HashAlg, Serial),
        now: u64,
    ) -> Result<Option<Answer>, OcspError> {
        let stored = self
            .ledger
            .get_precomputed(alg.tag(), serial)
            .map_err(status_error)?;
        Ok(stored
            .filter(|p| p.next_update > now)
            .map(|p| self.precomputed(&p)))
    }

    fn precomputed(&self, p: &Precomputed) -> Answer {
        self.metrics.precomputed_hits.inc();
        Answer {
            kind: AnswerKind::Precomputed {
                this_update: p.this_update,
                next_update: p.next_update,
                etag: p.etag,
            },
            der: p.der.clone(),
            status: status_label(p.status),
        }
    }

    /// Makes (and stores) the precomputed responses of a certificate whose
    /// stored one is missing or stale, and answers from them. The caller
    /// holds a signing permit.
    fn remake_answer(&self, query: (HashAlg, Serial), now: u64) -> Result<Answer, OcspError> {
        let internal = status_error;
        let (alg, serial) = query;
        // Another request may have made it while this one waited.
        if let Some(a) = self.stored_answer(&(alg, serial.clone()), now)? {
            return Ok(a);
        }
        // A revocation may land between reading the record and storing what
        // was signed from it; the store then refuses, and the answer is made
        // again from the newer record.
        let mut attempt = 0;
        let set = loop {
            let rec = self
                .ledger
                .get(&serial)
                .map_err(internal)?
                .ok_or(OcspError::Unauthorized)?;
            let set = self.precompute(&rec, now)?;
            if self
                .ledger
                .store_precomputed(&serial, rec.revocation.as_ref(), &set)
                .map_err(internal)?
            {
                break set;
            }
            attempt += 1;
            if attempt >= 3 {
                return Err(OcspError::TryLater);
            }
        };
        let fresh = self
            .ledger
            .get_precomputed(alg.tag(), &serial)
            .map_err(internal)?;
        let p = match fresh {
            Some(p) => p,
            None => {
                let der = set
                    .responses
                    .iter()
                    .find(|(t, _)| *t == alg.tag())
                    .map(|(_, d)| d.clone())
                    .ok_or_else(|| {
                        InternalError::Status("no response for the asked hash algorithm".into())
                    })?;
                Arc::new(Precomputed {
                    this_update: set.this_update,
                    next_update: set.next_update,
                    refresh_at: set.refresh_at,
                    etag: [0; 8],
                    status: set.status,
                    der: der.into(),
                })
            }
        };
        Ok(self.precomputed(&p))
    }

    /// A certificate's status now. A current precomputed response saying
    /// `good` settles it from the hot cache (a revocation re-makes the
    /// precomputed responses in the same write that records it); anything
    /// else is read from the certificate's record.
    fn current_status(&self, alg: HashAlg, serial: &Serial, now: u64) -> Result<Status, OcspError> {
        let internal = status_error;
        if let Some(p) = self
            .ledger
            .get_precomputed(alg.tag(), serial)
            .map_err(internal)?
        {
            if p.status == 0 && p.next_update > now {
                return Ok(Status::Good);
            }
        }
        Ok(match self.ledger.get(serial).map_err(internal)? {
            Some(rec) => to_status(&rec),
            None => Status::Unknown,
        })
    }

    /// Everything up to the signature: parse, find the stored answer, or
    /// the statuses a fresh response must carry.
    fn plan(&self, der: &[u8], now: u64) -> Result<Plan, OcspError> {
        let single = |query| {
            Ok(match self.stored_answer(&query, now)? {
                Some(a) => Plan::Ready(a),
                None => Plan::Remake(query),
            })
        };
        if let Some(q) = parse_simple(der) {
            let query = self
                .issued_serial(q.alg, q.name_hash, q.key_hash, q.serial)
                .ok_or(OcspError::Unauthorized)?;
            return single(query);
        }
        let req = parse_request(der, self.settings.max_nonce_len)?;
        if req.queries.len() == 1 && (req.nonce.is_none() || !self.settings.fresh_signing) {
            let query = self
                .query_serial(&req.queries[0])
                .ok_or(OcspError::Unauthorized)?;
            return single(query);
        }

        // Fresh signing: a nonce to echo, or several certificates.
        let mut answers = Vec::with_capacity(req.queries.len());
        let mut statuses = Vec::with_capacity(req.queries.len());
        let this_update = now.saturating_sub(self.settings.backdate_secs);
        let next_update = now + self.settings.validity_secs;
        for q in &req.queries {
            let status = match self.query_serial(q) {
                None => None,
                Some((alg, serial)) => Some(self.current_status(alg, &serial, now)?),
            };
            statuses.push(status);
            answers.push(SingleAnswer {
                cert_id: q.cert_id.clone(),
                status: status.unwrap_or(Status::Unknown),
                this_update,
                next_update,
            });
        }
        // Not one certificate we are authoritative for: say so.
        if statuses
            .iter()
            .all(|s| matches!(s, None | Some(Status::Unknown)))
        {
            return Err(OcspError::Unauthorized);
        }
        Ok(Plan::Fresh(FreshJob {
            answers,
            nonce: req.nonce,
        }))
    }

    /// Signs a fresh response. The caller holds a signing permit.
    fn sign_fresh(&self, job: &FreshJob, now: u64) -> Result<Answer, OcspError> {
        let der = self.with_signer(|s| build_response(&job.answers, job.nonce.as_ref(), now, s))?;
        self.metrics.fresh_signings.inc();
        let status = match (job.answers.len(), job.answers[0].status) {
            (1, Status::Good) => "good",
            (1, Status::Revoked { .. }) => "revoked",
            (1, Status::Unknown) => "unknown",
            _ => "mixed",
        };
        Ok(Answer {
            der: der.into(),
            kind: AnswerKind::Fresh,
            status,
        })
    }
}

/// What answering one request takes, decided before any signature.
enum Plan {
    /// A current stored response.
    Ready(Answer),
    /// The stored response is missing or stale: sign and store new ones.
    Remake((HashAlg, Serial)),
    /// A nonce to echo, or several certificates: sign a fresh response.
    Fresh(FreshJob),
}

/// The content of a fresh response, ready to sign.
struct FreshJob {
    answers: Vec<SingleAnswer>,
    nonce: Option<x509_cert::ext::Extension>,
}

fn status_code(status: Status) -> u8 {
    match status {
        Status::Good => 0,
        Status::Revoked { .. } => 1,
        Status::Unknown => 2,
    }
}

fn status_label(code: u8) -> &'static str {
    match code {
        0 => "good",
        1 => "revoked",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{CaUrls, InitOptions};
    use crate::ledger::{CertRecord, DeviceIds};
    use custos_ocsp::request::build_request;
    use custos_ocsp::response::cert_id_for;

    fn record(serial: Serial) -> CertRecord {
        CertRecord {
            serial,
            issuer_id: "test".into(),
            issued_at: 1_700_000_000,
            not_before: 1_700_000_000,
            not_after: 4_000_000_000,
            subject: "CN=pool".into(),
            dns_names: vec![],
            ip_addresses: vec![],
            device: DeviceIds::default(),
            acme_account: None,
            profile: "default".into(),
            crl_shard: 0,
            revocation: None,
        }
    }

    /// Requests waiting for a signature hold their permits: with the one
    /// signing thread busy, `max_concurrent_signing` requests are admitted
    /// and the next is answered `tryLater` at once; the admitted ones are
    /// then answered. (When signatures ran inline on the async workers, at
    /// most one per worker could ever be under way, and the limit was never
    /// reached.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_signatures_count_against_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let urls = CaUrls {
            http_base: "http://127.0.0.1:8080".into(),
        };
        let ca = Arc::new(Ca::init(dir.path(), &InitOptions::default(), urls).unwrap());
        let ledger = Arc::new(Ledger::open(&dir.path().join("ledger")).unwrap());
        let settings = ResponderSettings {
            max_concurrent_signing: 4,
            signing_threads: 1,
            ..Default::default()
        };
        let responder = Arc::new(
            Responder::new(ledger.clone(), ca.clone(), settings, &Registry::new()).unwrap(),
        );
        let serial = Serial::random();
        ledger.insert(&record(serial.clone()), b"der").unwrap();
        let now = crate::model::time::unix_now();
        responder.on_issued(&record(serial.clone()), now).unwrap();
        let hashes = IssuerHashes::new(ca.issuer_cert()).unwrap();
        let id = cert_id_for(&hashes, HashAlg::Sha1, serial.as_bytes()).unwrap();
        let with_nonce = build_request(id.clone(), Some(&[7u8; 16])).unwrap();
        let plain = build_request(id, None).unwrap();

        // Occupy the one signing thread.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let r = responder.clone();
        let blocker = tokio::spawn(async move {
            r.pool
                .run(move || {
                    let _ = started_tx.send(());
                    let _ = wait.recv();
                })
                .await
        });
        started.await.unwrap();

        let mut admitted = Vec::new();
        for _ in 0..4 {
            let r = responder.clone();
            let der = with_nonce.clone();
            admitted.push(tokio::spawn(
                async move { r.answer_pooled(&der, now).await },
            ));
        }
        // Every admitted request has taken its permit once none is left.
        while responder.signing.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let shed = responder.answer_pooled(&with_nonce, now).await;
        assert_eq!(shed.status, "tryLater");
        // Precomputed answers need no signature and still flow.
        let stored = responder.answer_pooled(&plain, now).await;
        assert_eq!(stored.status, "good");
        assert!(matches!(stored.kind, AnswerKind::Precomputed { .. }));

        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for a in admitted {
            let answer = a.await.unwrap();
            assert_eq!(answer.status, "good");
            assert_eq!(answer.kind, AnswerKind::Fresh);
        }
        assert_eq!(responder.signing.available_permits(), 4);
        assert_eq!(responder.metrics.shed.get(), 1);
    }
}
