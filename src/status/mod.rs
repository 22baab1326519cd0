//! Status: what relying parties and subscribers read. Everything here reads
//! what the ledger and the CA produced; nothing here decides who is revoked.
//!
//! - [`responder`]: OCSP answers, from precomputed responses or freshly signed
//!   ([`signing_pool`] runs those signatures on a bounded pool).
//! - [`crl_publisher`]: each shard's CRL, rebuilt on a schedule and soon after
//!   a revocation.
//! - [`notify`]: outbound revocation notifications to subscribers.
//! - [`ocsp_rates`]: OCSP answers per second and the precomputed share over
//!   the last hour, for the console.
//! - [`ocsp_check`]: reads and verifies an OCSP answer as a relying party
//!   would (`custos ocsp check`, `custos ledger verify`).

pub mod crl_publisher;
pub mod notify;
pub mod ocsp_check;
pub mod ocsp_rates;
pub mod responder;
pub mod signing_pool;
