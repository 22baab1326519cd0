//! custos-acme: the ACME protocol (RFC 8555) without I/O.
//!
//! - [`problem`]: problem documents with the RFC's error types.
//! - [`jws`]: flattened JWS parsing, JWK keys and thumbprints, signature
//!   and external-account-binding MAC checks.
//! - [`nonce`]: single-use anti-replay nonces.
//! - [`account`]: accounts and their payloads.
//! - [`order`]: orders, authorizations and challenges, and their states.
//! - [`server`]: the request pipeline (checks every POST, then the
//!   resource), over a [`server::Store`].
//!
//! The resources and state machines join these as the ACME issue proceeds.
//! The crate asks the domain for storage, validation and issuance through
//! small traits and never touches sockets, files, clocks or RocksDB.

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
pub mod jws;
pub mod limits;
pub mod nonce;
pub mod order;
mod orders;
pub mod problem;
pub mod renewal;
mod revoke;
pub mod server;

pub use problem::{Problem, ProblemType, PROBLEM_NS};
