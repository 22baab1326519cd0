//! OCSP responder functions: a precomputed answer (parse + lookup + copy)
//! and freshly signed answers with P-256 and P-384 keys, next to raw
//! signatures with the same keys, in the same run.
//! Run: `cargo bench --bench ocsp`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use custos::ca::key::{KeyAlgorithm, SigningKey};
use custos::ca::{Ca, CaUrls, InitOptions};
use custos::ledger::{CertRecord, DeviceIds, Ledger};
use custos::serial::Serial;
use custos::status::responder::{Responder, ResponderSettings};
use custos_ocsp::issuer::{HashAlg, IssuerHashes};
use custos_ocsp::request::build_request;
use custos_ocsp::response::cert_id_for;
use std::sync::Arc;

fn record(serial: Serial) -> CertRecord {
    CertRecord {
        serial,
        issuer_id: "bench".into(),
        subject: "CN=bench".into(),
        not_before: 0,
        not_after: 4_000_000_000,
        issued_at: 0,
        dns_names: vec![],
        ip_addresses: vec![],
        device: DeviceIds::default(),
        acme_account: None,
        profile: "default".into(),
        crl_shard: 0,
        revocation: None,
    }
}

/// A DER OCSP request for `serial` (SHA-1 CertID), with or without a nonce.
pub fn request(hashes: &IssuerHashes, serial: &Serial, nonce: bool) -> Vec<u8> {
    let cert_id = cert_id_for(hashes, HashAlg::Sha1, serial.as_bytes()).unwrap();
    build_request(cert_id, nonce.then_some(&[9u8; 16][..])).unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let urls = CaUrls {
        http_base: "http://127.0.0.1:8080".into(),
    };
    let ca = Arc::new(Ca::init(dir.path(), &InitOptions::default(), urls).unwrap());
    let ledger = Arc::new(Ledger::open(&dir.path().join("ledger")).unwrap());
    let registry = prometheus::Registry::new();
    let delegated = Responder::new(
        ledger.clone(),
        ca.clone(),
        ResponderSettings::default(),
        &registry,
    )
    .unwrap();
    let by_issuer = Responder::new(
        ledger.clone(),
        ca.clone(),
        ResponderSettings {
            sign_with_issuer: true,
            ..Default::default()
        },
        &registry,
    )
    .unwrap();
    let hashes = IssuerHashes::new(ca.issuer_cert()).unwrap();
    let serial = Serial::random();
    let rec = record(serial.clone());
    ledger.insert(&rec, b"der").unwrap();
    delegated.on_issued(&rec, 1_800_000_000).unwrap();
    let plain = request(&hashes, &serial, false);
    let with_nonce = request(&hashes, &serial, true);
    let now = 1_800_000_100;

    let mut g = c.benchmark_group("ocsp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("precomputed_answer", |b| {
        b.iter(|| delegated.answer(&plain, now))
    });
    g.bench_function("fresh_answer_p256_responder", |b| {
        b.iter(|| delegated.answer(&with_nonce, now))
    });
    g.bench_function("fresh_answer_p384_issuer", |b| {
        b.iter(|| by_issuer.answer(&with_nonce, now))
    });
    let msg = [0x42u8; 300];
    let p256 = SigningKey::generate(KeyAlgorithm::P256).unwrap();
    let p384 = SigningKey::generate(KeyAlgorithm::P384).unwrap();
    g.bench_function("raw_sign_p256", |b| b.iter(|| p256.sign(&msg).unwrap()));
    g.bench_function("raw_sign_p384", |b| b.iter(|| p384.sign(&msg).unwrap()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
