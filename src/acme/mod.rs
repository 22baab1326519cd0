//! The ACME server's domain side. The protocol (RFC 8555: JWS, nonces,
//! orders, challenges, problem documents) is the `custos-acme` crate; it asks
//! for storage and decisions through two ports, implemented here:
//!
//! - [`store`]: the engine's `Store` over the ledger, and the engine built from
//!   the configuration.
//! - [`domain`]: the engine's `Domain`: which identifiers may be certified,
//!   which challenges are offered, device attestation, issuance at finalize.
//! - [`validation`]: runs http-01 and dns-01 validations off the request path.
//! - [`eab`]: external account binding keys.

pub mod domain;
pub mod eab;
pub mod store;
pub mod validation;
