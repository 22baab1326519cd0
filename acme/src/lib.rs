//! custos-acme: the ACME protocol (RFC 8555) without I/O.
//!
//! - [`problem`]: problem documents with the RFC's error types.
//! - [`jws`]: flattened JWS parsing, JWK keys and thumbprints, signature
//!   and external-account-binding MAC checks.
//! - [`nonce`]: single-use anti-replay nonces.
//! - [`account`]: accounts and their payloads.
//! - [`order`]: orders, authorizations and challenges, and their states.
//! - [`ports`]: what the engine asks of its storage ([`ports::Store`]) and
//!   of the CA around it ([`ports::Domain`]), and the facts they return.
//! - [`server`]: the request pipeline (checks every POST, then the
//!   resource); the resources are in `orders` (orders, authorizations,
//!   challenges, finalize), `revoke` (revokeCert, keyChange), [`renewal`]
//!   (ARI) and [`limits`] (rate limits, the validation queue bound).
//!
//! Imports point down: resources → `server` → `ports` → data (`account`,
//! `order`, `problem`, `jws`). The crate asks the domain for storage, validation and issuance through
//! small traits and never touches sockets, files, clocks or RocksDB.

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
mod accounts;
pub mod jws;
pub mod limits;
pub mod nonce;
pub mod order;
mod orders;
pub mod ports;
pub mod problem;
pub mod renewal;
mod revoke;
pub mod server;

pub use problem::{Problem, ProblemType, PROBLEM_NS};
