//! custos-acme: the ACME protocol (RFC 8555) without I/O.
//!
//! This crate will hold JWS verification, nonces, the account/order/
//! authorization state machines and problem documents. It asks the domain for
//! storage, validation and issuance through small traits and never touches
//! sockets, files, clocks or RocksDB itself. It is filled by the ACME issue;
//! for now it only fixes the problem-type namespace every answer uses.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The URN prefix of ACME problem types (RFC 8555 §6.7).
pub const PROBLEM_NS: &str = "urn:ietf:params:acme:error:";
