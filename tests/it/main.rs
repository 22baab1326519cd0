//! Every integration test, in one binary: RocksDB and the custos library
//! are linked once, not once per file. Each module drives real parts (the
//! `custos` binary over loopback, RocksDB in a temp dir, the OpenSSL CLI,
//! real ACME clients and HTTP servers); `common` holds what they share.
//!
//! Run one module with `cargo test --test it -- <module>::`, e.g.
//! `cargo test --test it -- ocsp::`.

mod common;
mod console;

mod acme;
mod acme_device;
mod acme_eab;
mod acme_issuance;
mod attestation;
mod crash;
mod crl;
mod crl_publisher;
mod devices;
mod hardening;
mod issuance;
mod ledger;
mod mdm_sync;
mod notify;
mod ocsp;
mod replication;
mod scep;
mod server;
mod tour;
mod tpm;
mod webhooks;
