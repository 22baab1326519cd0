//! custos: a device certificate authority that issues over ACME, remembers
//! every certificate in a RocksDB ledger, serves status over OCSP and CRL, and
//! revokes on MDM events.
//!
//! The folders are the capabilities. Module map (domain and wiring;
//! protocols live in the `custos-*` crates), from the bottom up. Imports
//! point down this list, never up, and no two modules import each other
//! (`.ci/module-cycles` checks it in CI):
//! - [`model`] (crate `custos-model`): the shared vocabulary ([`serial`] numbers, [`revocation`] reasons, devices, time, digests); imports nothing of custos.
//! - [`config`] (crate `custos-config`): `custos.toml` + `CUSTOS_*` + flags → typed, checked sections; imports only `model`.
//! - [`support`]: atomic and 0600 file writes, Prometheus metrics, how a running server is found.
//! - [`ledger`]: RocksDB storage of certificates, revocations, precomputed OCSP, CRLs, devices, events, ACME state, outboxes, the audit chain.
//! - [`ca`]: the CA's keys and certificates, the delegated OCSP signer, certificate profiles (templates); signs what it is told to.
//!   [`csr`] (crate `custos-csr`) and [`attestation`] (crate `custos-attest`): PKCS#10 and Apple attestation checks.
//! - [`status`]: what status readers and subscribers see: the OCSP responder and its signing pool, the CRL publisher, outbound notifications, the OCSP client check, the OCSP rate samples the console charts.
//! - [`ra`]: the registration authority: issuance and revocation (with audit) shared by every front end.
//! - [`devices`]: the inventory's rules, MDM inventory lookups, MDM device events in ([`devices::events::DeviceEvents`]).
//! - [`acme`]: the ACME engine's ports (store, domain), its validator and EAB keys; the protocol is crate `custos-acme`.
//! - [`replication`]: status published to Redis by the primary ([`replication::publish`]) and read by stateless responders ([`replication::read`]).
//! - [`maintenance`]: `custos ledger verify`, online backups and restores.
//! - [`app`]: builds the shared handles; [`jobs`]: scheduled work.
//! - [`server`]: the listeners and routes (HTTP only; each route calls one service).
//! - [`cli`]: the command line (commands written once against `Operations`, served in this process or by the admin API client), the Apple `.mobileconfig` builder.

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]

pub mod acme;
pub mod app;
pub use custos_attest::apple as attestation;
pub mod ca;
pub mod cli;
pub use custos_config as config;
pub use custos_csr as csr;
pub mod devices;
pub mod jobs;
pub mod ledger;
pub mod maintenance;
pub use custos_model as model;
pub use model::{revocation, serial};
pub mod ra;
pub mod replication;
pub mod scep;
pub mod server;
pub mod status;
pub mod support;
