//! What SCEP's domain code shares: the handles a `PKIOperation` needs
//! ([`ScepContext`]) and how it fails ([`Fail`]).

use crate::ca::Ca;
use crate::config::ScepConfig;
use crate::ledger::Ledger;
use crate::ra::Authority;
use crate::status::crl_publisher::CrlPublisher;
use custos_scep::{FailInfo, Refusal};

/// What a `PKIOperation` needs from the rest of custos.
pub struct ScepContext<'a> {
    /// The ledger (challenges, transactions, certificates).
    pub ledger: &'a Ledger,
    /// The CA (the RA, the issuer certificate).
    pub ca: &'a Ca,
    /// Issuance, shared with ACME and the admin API.
    pub authority: &'a Authority,
    /// The CRLs (`GetCRL`).
    pub crl: &'a CrlPublisher,
    /// `[scep]`.
    pub config: &'a ScepConfig,
}

/// A failure: the client's (answered as a `CertRep` failure) or ours.
pub enum Fail {
    /// The client's: a `CertRep` failure.
    Refused(Refusal),
    /// Ours: 500.
    Internal(anyhow::Error),
}

impl From<Refusal> for Fail {
    fn from(r: Refusal) -> Fail {
        Fail::Refused(r)
    }
}

impl From<crate::ledger::LedgerError> for Fail {
    fn from(e: crate::ledger::LedgerError) -> Fail {
        Fail::Internal(e.into())
    }
}

pub fn refused(code: FailInfo, why: impl Into<String>) -> Fail {
    Fail::Refused(Refusal::new(code, why))
}
