//! The OCSP responder's domain side: which status to answer, from which
//! precomputed response, and when to (re)sign. The protocol work (parsing,
//! encoding) is in `custos-ocsp`; HTTP is in `server::ocsp`.
//!
//! Nonce-less single-certificate requests (nginx, CDNs, most RADIUS setups
//! with nonces off) are answered from responses signed ahead of time and
//! stored in the ledger: one lookup and a copy. Requests with a nonce, or
//! asking about several certificates, get a freshly signed response, with at
//! most `max_concurrent_signing` signatures under way (`tryLater` past that).

use crate::ca::{Ca, OcspSigner};
use crate::ledger::{CertRecord, Ledger, LedgerError, Precomputed, PrecomputedSet};
use crate::serial::Serial;
use custos_ocsp::issuer::{HashAlg, IssuerHashes};
use custos_ocsp::request::{parse_request, parse_simple, CertQuery};
use custos_ocsp::response::{build_response, cert_id_for, ResponseSigner, SingleAnswer, Status};
use custos_ocsp::OcspError;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use spki::AlgorithmIdentifierOwned;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Responder settings, from `[ocsp]`.
#[derive(Clone, Debug)]
pub struct ResponderSettings {
    /// thisUpdate → nextUpdate, seconds.
    pub validity_secs: u64,
    /// Fraction of the validity after which a response is re-made.
    pub refresh_fraction: f64,
    /// thisUpdate is this many seconds in the past (clock skew).
    pub backdate_secs: u64,
    /// Sign fresh responses for nonce requests.
    pub fresh_signing: bool,
    /// Fresh signatures under way at once before `tryLater`.
    pub max_concurrent_signing: usize,
    /// Longest nonce accepted (RFC 8954: 32; RFC 9654: 128).
    pub max_nonce_len: usize,
    /// Sign with the issuing CA's key instead of the delegated responder.
    pub sign_with_issuer: bool,
}

impl Default for ResponderSettings {
    fn default() -> Self {
        ResponderSettings {
            validity_secs: 24 * 3600,
            refresh_fraction: 0.5,
            backdate_secs: 300,
            fresh_signing: true,
            max_concurrent_signing: 256,
            max_nonce_len: 32,
            sign_with_issuer: false,
        }
    }
}

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

#[derive(Clone)]
struct OcspMetrics {
    answers: IntCounterVec,
    /// `answers` for good and revoked, resolved once for the hot path.
    good: IntCounter,
    revoked: IntCounter,
    precomputed_hits: IntCounter,
    fresh_signings: IntCounter,
    shed: IntCounter,
    oldest_age: IntGauge,
    backlog: IntGauge,
}

impl OcspMetrics {
    fn new(registry: &Registry) -> OcspMetrics {
        let answers = IntCounterVec::new(
            Opts::new("custos_ocsp_responses_total", "OCSP answers by status"),
            &["status"],
        )
        .expect("valid metric");
        let m = OcspMetrics {
            good: answers.with_label_values(&["good"]),
            revoked: answers.with_label_values(&["revoked"]),
            answers,
            precomputed_hits: IntCounter::new(
                "custos_ocsp_precomputed_hits_total",
                "OCSP answers served from precomputed responses",
            )
            .expect("valid metric"),
            fresh_signings: IntCounter::new(
                "custos_ocsp_fresh_signatures_total",
                "OCSP responses signed on request (nonce or several CertIDs)",
            )
            .expect("valid metric"),
            shed: IntCounter::new("custos_ocsp_shed_total", "OCSP requests answered tryLater")
                .expect("valid metric"),
            oldest_age: IntGauge::new(
                "custos_ocsp_oldest_precomputed_age_seconds",
                "Age of the oldest precomputed response",
            )
            .expect("valid metric"),
            backlog: IntGauge::new(
                "custos_ocsp_refresh_backlog",
                "Precomputed responses past their refresh time",
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(m.answers.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.precomputed_hits.clone()),
            Box::new(m.fresh_signings.clone()),
            Box::new(m.shed.clone()),
            Box::new(m.oldest_age.clone()),
            Box::new(m.backlog.clone()),
        ] {
            // Registering twice (a second responder in one process, as in
            // tests) is harmless: the first registration keeps counting.
            let _ = registry.register(c);
        }
        m
    }
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
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, String> {
        self.key.sign(tbs).map_err(|e| e.to_string())
    }
    fn certs_der(&self) -> &[&[u8]] {
        &self.certs
    }
}

/// The OCSP responder.
pub struct Responder {
    ledger: Arc<Ledger>,
    ca: Arc<Ca>,
    hashes: IssuerHashes,
    settings: ResponderSettings,
    signing: Arc<Semaphore>,
    metrics: OcspMetrics,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Responder({:?})", self.settings)
    }
}

fn to_status(record: &CertRecord) -> Status {
    match record.revocation {
        None => Status::Good,
        Some(r) => Status::Revoked {
            time: r.time,
            reason: (r.reason.code() != 0).then(|| r.reason.code()),
        },
    }
}

fn refresh_jitter(serial: &Serial, span: u64) -> u64 {
    // Spread refreshes by the serial's low bits so that certificates issued
    // together do not all fall due together.
    let b = serial.as_bytes();
    let mut v = [0u8; 8];
    let tail = &b[b.len().saturating_sub(8)..];
    v[8 - tail.len()..].copy_from_slice(tail);
    if span == 0 {
        0
    } else {
        u64::from_be_bytes(v) % span
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
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.with_signer(|s| s.sign(message))
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

    /// Signs the responses (SHA-1 and SHA-256 CertIDs) for a record.
    pub fn precompute(&self, record: &CertRecord, now: u64) -> Result<PrecomputedSet, OcspError> {
        let this_update = now.saturating_sub(self.settings.backdate_secs);
        let next_update = now + self.settings.validity_secs;
        let refresh_span =
            (self.settings.validity_secs as f64 * self.settings.refresh_fraction) as u64;
        let jitter = refresh_jitter(&record.serial, (self.settings.validity_secs / 10).max(1));
        let refresh_at =
            now + refresh_span.saturating_sub(self.settings.validity_secs / 20) + jitter;
        let status = to_status(record);
        let mut responses = Vec::with_capacity(2);
        for alg in HashAlg::ALL {
            let answer = SingleAnswer {
                cert_id: cert_id_for(&self.hashes, alg, record.serial.as_bytes())?,
                status,
                this_update,
                next_update,
            };
            let der = self.with_signer(|s| build_response(&[answer], None, now, s))?;
            responses.push((alg.tag(), der));
        }
        Ok(PrecomputedSet {
            this_update,
            next_update,
            refresh_at,
            status: status_code(status),
            responses,
        })
    }

    /// Makes and stores the responses for `record` (a just-issued
    /// certificate, or one being refreshed). Nothing is stored when the
    /// certificate's revocation state changed since `record` was read: the
    /// change (a revocation) wrote its own responses in its synced batch,
    /// and a response signed from the older record must not replace them.
    /// Returns whether the responses were stored.
    pub fn on_issued(&self, record: &CertRecord, now: u64) -> Result<bool, LedgerError> {
        let set = self
            .precompute(record, now)
            .map_err(|e| LedgerError::Status(e.to_string()))?;
        self.ledger
            .store_precomputed(&record.serial, record.revocation.as_ref(), &set)
    }

    /// Re-signs one certificate's responses from its current record.
    /// Expired certificates' responses are dropped instead.
    pub fn refresh(&self, serial: &Serial, now: u64) -> Result<bool, LedgerError> {
        let tags: Vec<u8> = HashAlg::ALL.iter().map(|a| a.tag()).collect();
        match self.ledger.get(serial)? {
            Some(rec) if rec.not_after >= now => {
                // Refused only when a revocation landed in between, which
                // wrote fresh responses itself: nothing left to do.
                self.on_issued(&rec, now)?;
                Ok(true)
            }
            _ => {
                self.ledger.delete_precomputed(serial, &tags)?;
                Ok(false)
            }
        }
    }

    /// Refreshes what is due at `now`, at most `limit`; returns how many.
    pub fn refresh_due(&self, now: u64, limit: usize) -> Result<usize, LedgerError> {
        let due = self.ledger.precomputed_due(now, limit)?;
        let mut n = 0;
        for (_, serial) in &due {
            if self.refresh(serial, now)? {
                n += 1;
            }
        }
        self.update_gauges(now)?;
        Ok(n)
    }

    /// Re-signs every unexpired certificate's responses; `progress` is called
    /// with the number done so far.
    pub fn refresh_all(&self, now: u64, mut progress: impl FnMut(u64)) -> Result<u64, LedgerError> {
        let mut after: Option<Serial> = None;
        let mut done = 0u64;
        loop {
            let page = self.ledger.list(after.as_ref(), 1000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.serial.clone());
            for rec in &page {
                if rec.not_after >= now {
                    self.on_issued(rec, now)?;
                    done += 1;
                }
            }
            progress(done);
        }
        self.update_gauges(now)?;
        Ok(done)
    }

    /// Sets the backlog and oldest-age gauges.
    pub fn update_gauges(&self, now: u64) -> Result<(), LedgerError> {
        let backlog = self.ledger.precomputed_due(now, 100_000)?.len();
        self.metrics.backlog.set(backlog as i64);
        // The response due first is (to within the refresh spread) the
        // oldest; its stored thisUpdate, less the backdating, is when it was
        // really signed.
        if let Some((_, serial)) = self.ledger.precomputed_due(u64::MAX, 1)?.first() {
            let mut signed = None;
            for alg in HashAlg::ALL {
                if let Some(p) = self.ledger.get_precomputed(alg.tag(), serial)? {
                    let at = p.this_update + self.settings.backdate_secs;
                    signed = Some(signed.map_or(at, |s: u64| s.min(at)));
                }
            }
            if let Some(signed) = signed {
                self.metrics
                    .oldest_age
                    .set(now.saturating_sub(signed) as i64);
            }
        } else {
            self.metrics.oldest_age.set(0);
        }
        Ok(())
    }

    /// An unsuccessful answer for an error, counted in the metrics.
    pub fn error_answer(&self, e: OcspError) -> Answer {
        let label = match e {
            OcspError::Malformed(_) => "malformedRequest",
            OcspError::Unauthorized => "unauthorized",
            OcspError::TryLater => "tryLater",
            _ => "internalError",
        };
        if let OcspError::Internal(msg) = &e {
            tracing::error!(error = %msg, "OCSP internal error");
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

    /// Answers a DER request at `now`.
    pub fn answer(&self, der: &[u8], now: u64) -> Answer {
        match self.try_answer(der, now) {
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

    /// The precomputed answer for one of our serials (made now if missing
    /// or stale).
    fn precomputed_answer(
        &self,
        (alg, serial): (HashAlg, Serial),
        now: u64,
    ) -> Result<Answer, OcspError> {
        let internal = |e: LedgerError| OcspError::Internal(e.to_string());
        let stored = self
            .ledger
            .get_precomputed(alg.tag(), &serial)
            .map_err(internal)?;
        let p = match stored {
            Some(p) if p.next_update > now => p,
            _ => {
                // Never precomputed, or stale: make it now from the record,
                // under the signing limit like any other fresh signature.
                let _permit = self.signing.clone().try_acquire_owned().map_err(|_| {
                    self.metrics.shed.inc();
                    OcspError::TryLater
                })?;
                // A revocation may land between reading the record and
                // storing what was signed from it; the store then refuses,
                // and the answer is made again from the newer record.
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
                let der = set
                    .responses
                    .iter()
                    .find(|(t, _)| *t == alg.tag())
                    .map(|(_, d)| d.clone())
                    .ok_or_else(|| OcspError::Internal("algorithm missing".into()))?;
                let fresh = self
                    .ledger
                    .get_precomputed(alg.tag(), &serial)
                    .map_err(internal)?;
                fresh.unwrap_or_else(|| {
                    Arc::new(Precomputed {
                        this_update: set.this_update,
                        next_update: set.next_update,
                        refresh_at: set.refresh_at,
                        etag: [0; 8],
                        status: set.status,
                        der: der.into(),
                    })
                })
            }
        };
        self.metrics.precomputed_hits.inc();
        let status = status_label(p.status);
        Ok(Answer {
            kind: AnswerKind::Precomputed {
                this_update: p.this_update,
                next_update: p.next_update,
                etag: p.etag,
            },
            der: p.der.clone(),
            status,
        })
    }

    /// A certificate's status now. A current precomputed response saying
    /// `good` settles it from the hot cache (a revocation re-makes the
    /// precomputed responses in the same write that records it); anything
    /// else is read from the certificate's record.
    fn current_status(&self, alg: HashAlg, serial: &Serial, now: u64) -> Result<Status, OcspError> {
        let internal = |e: LedgerError| OcspError::Internal(e.to_string());
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

    fn try_answer(&self, der: &[u8], now: u64) -> Result<Answer, OcspError> {
        if let Some(q) = parse_simple(der) {
            let serial = self
                .issued_serial(q.alg, q.name_hash, q.key_hash, q.serial)
                .ok_or(OcspError::Unauthorized)?;
            return self.precomputed_answer(serial, now);
        }
        let req = parse_request(der, self.settings.max_nonce_len)?;
        if req.queries.len() == 1 && (req.nonce.is_none() || !self.settings.fresh_signing) {
            let serial = self
                .query_serial(&req.queries[0])
                .ok_or(OcspError::Unauthorized)?;
            return self.precomputed_answer(serial, now);
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
        let _permit = self.signing.clone().try_acquire_owned().map_err(|_| {
            self.metrics.shed.inc();
            OcspError::TryLater
        })?;
        let der = self.with_signer(|s| build_response(&answers, req.nonce.as_ref(), now, s))?;
        self.metrics.fresh_signings.inc();
        let status = match (answers.len(), answers[0].status) {
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
