//! custos: a device certificate authority that issues over ACME, remembers
//! every certificate in a RocksDB ledger, serves status over OCSP and CRL, and
//! revokes on MDM events.
//!
//! Module map (domain and wiring; protocols live in the `custos-*` crates),
//! from the bottom up. Imports point down this list, never up, and no two
//! modules import each other (`.ci/module-cycles` checks it in CI):
//! - [`model`]: the shared vocabulary ([`serial`] numbers, [`revocation`] reasons, time, digests); imports nothing of custos.
//! - [`config`]: `custos.toml` + `CUSTOS_*` + flags → typed, checked sections; imports only `model`.
//! - [`files`], [`metrics`], [`instance`]: atomic key files, Prometheus, how a running server is found.
//! - [`ledger`]: RocksDB storage of certificates, revocations, precomputed OCSP, CRLs, devices, events, ACME state, the audit chain.
//! - [`ca`]: the CA's keys and certificates and the delegated OCSP responder; signs what it is told to.
//! - [`csr`] (the `custos-csr` crate) and [`attestation`] (the `custos-attest` crate): PKCS#10 and Apple attestation checks.
//! - [`profile`], [`issuance`]: certificate templates; the one issuance function.
//! - [`responder`] (with [`signing_pool`]), [`crl_publisher`], [`notify`]: what status readers and subscribers see.
//! - [`ra`]: the registration authority (issue, revoke, audit) shared by every front end; [`devices`], [`mdm_lookup`]: the inventory and MDM APIs.
//! - [`webhook_events`]: MDM device events in ([`webhook_events::DeviceEvents`]); [`eab`], [`acme_domain`], [`acme_store`], [`acme_validation`]: the ACME engine's ports and its validator.
//! - [`verify`], [`backup`]: `custos ledger verify`; online backups and restores.
//! - [`app`]: builds the shared handles; [`jobs`]: scheduled work; [`server`]: the listeners; [`admin_client`], [`ocsp_check`], [`apple_profile`], [`cli`]: the command line.

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]

pub mod acme_domain;
pub mod acme_store;
pub mod acme_validation;
pub mod admin_client;
pub mod app;
pub mod apple_profile;
pub use custos_attest::apple as attestation;
pub mod backup;
pub mod ca;
pub mod cli;
pub use custos_config as config;
pub mod crl_publisher;
pub use custos_csr as csr;
pub mod devices;
pub mod eab;
pub mod files;
pub mod instance;
pub mod issuance;
pub mod jobs;
pub mod ledger;
pub mod mdm_lookup;
pub mod metrics;
pub use custos_model as model;
pub mod notify;
pub mod ocsp_check;
pub use model::{revocation, serial};
pub mod profile;
pub mod ra;
pub mod responder;
pub mod server;
pub mod signing_pool;
pub mod verify;
pub mod webhook_events;
