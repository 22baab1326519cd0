//! custos: a device certificate authority that issues over ACME, remembers
//! every certificate in a RocksDB ledger, serves status over OCSP and CRL, and
//! revokes on MDM events.
//!
//! Module map (domain and wiring; protocols live in the `custos-*` crates):
//! - [`model`]: the shared vocabulary ([`serial`] numbers, [`revocation`] reasons, time, digests); imports nothing of custos.
//! - [`ca`]: the CA's keys and certificates; signs what it is told to.
//! - [`csr`] (the `custos-csr` crate): PKCS#10 parsing and self-signature verification.
//! - [`attestation`] (the `custos-attest` crate): Apple device attestation.
//! - [`profile`]: certificate templates.
//! - [`issuance`]: the one issuance function (CSR + profile + identity → certificate in the ledger).
//! - [`ledger`]: RocksDB storage of certificates, indexes and the revocation log.
//! - [`ra`]: administrative operations shared by the admin API and the CLI.
//! - [`responder`]: OCSP status decisions and precomputed responses.
//! - [`config`]: `custos.toml` + `CUSTOS_*` + flags → typed config.
//! - [`app`]: builds the shared handles; [`server`]: the listeners.
//! - [`instance`]: how a running server is found; [`admin_client`]: the CLI's client for it.
//! - [`ocsp_check`]: the CLI's OCSP client.
//! - [`jobs`]: scheduled work (OCSP refresh, responder renewal).
//! - [`verify`]: `custos ledger verify`; [`backup`]: online backups and restores.
//! - [`cli`]: the `custos` command line; [`metrics`], [`files`]: support.

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
pub mod config;
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
pub mod model;
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
