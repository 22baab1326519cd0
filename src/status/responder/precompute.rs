//! Precomputed responses: signing a certificate's responses ahead of time
//! (at issuance, on refresh, after a revocation) and the refresh schedule.
//! Every write goes through the ledger's conditional store, so a response
//! signed from an older record never replaces a revocation's.

use super::{status_code, Responder};
use crate::ledger::{CertRecord, LedgerError, PrecomputedSet};
use crate::serial::Serial;
use custos_ocsp::issuer::HashAlg;
use custos_ocsp::response::{build_response, cert_id_for, SingleAnswer, Status};
use custos_ocsp::OcspError;

impl Responder {
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
            .map_err(|e| LedgerError::Status(e.into()))?;
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
    /// with the number done so far. Pages of 1,000 certificates are signed
    /// on every core while the page before is stored (one write per page),
    /// under the same condition as [`Responder::on_issued`]: a set signed
    /// from a record a revocation changed meanwhile is not stored (the
    /// revocation wrote its own).
    pub fn refresh_all(&self, now: u64, mut progress: impl FnMut(u64)) -> Result<u64, LedgerError> {
        let mut done = 0u64;
        std::thread::scope(|scope| {
            let (pages, to_store) = std::sync::mpsc::sync_channel::<Vec<_>>(1);
            let writer = scope.spawn(move || {
                for page in to_store {
                    self.ledger.store_precomputed_many(&page)?;
                }
                Ok::<_, LedgerError>(())
            });
            let mut after: Option<Serial> = None;
            loop {
                let page = self.ledger.list(after.as_ref(), 1000)?;
                let Some(last) = page.last() else { break };
                after = Some(last.serial.clone());
                let live: Vec<CertRecord> =
                    page.into_iter().filter(|r| r.not_after >= now).collect();
                done += live.len() as u64;
                let signed = self.sign_page(live, now)?;
                if pages.send(signed).is_err() {
                    break; // the writer failed: its error is returned below
                }
                progress(done);
            }
            drop(pages);
            writer.join().unwrap_or_else(|_| {
                Err(LedgerError::Status(
                    "the refresh's writer thread panicked".into(),
                ))
            })
        })?;
        self.update_gauges(now)?;
        Ok(done)
    }

    /// Signs a page of records' responses on every core.
    fn sign_page(
        &self,
        records: Vec<CertRecord>,
        now: u64,
    ) -> Result<Vec<(CertRecord, PrecomputedSet)>, LedgerError> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per = records.len().div_ceil(threads).max(1);
        let mut parts: Vec<Vec<CertRecord>> = Vec::new();
        let mut rest = records;
        while rest.len() > per {
            let tail = rest.split_off(per);
            parts.push(rest);
            rest = tail;
        }
        parts.push(rest);
        let signed: Vec<Result<Vec<_>, OcspError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    scope.spawn(move || {
                        part.into_iter()
                            .map(|rec| {
                                let set = self.precompute(&rec, now)?;
                                Ok((rec, set))
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(OcspError::Internal(custos_ocsp::InternalError::Signing(
                            "a refresh signing thread panicked".into(),
                        )))
                    })
                })
                .collect()
        });
        let mut sets = Vec::new();
        for part in signed {
            sets.extend(part.map_err(|e| LedgerError::Status(e.into()))?);
        }
        Ok(sets)
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
}

/// The OCSP status a record states.
pub(super) fn to_status(record: &CertRecord) -> Status {
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
