//! Issuance throughput (CSR verify → build → P-384 sign → synced ledger
//! insert) next to raw P-384 signatures per second with the same key type,
//! in the same run. Run: `cargo bench --bench issuance`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use custos::ca::key::{KeyAlgorithm, SigningKey};
use custos::ca::profile::Profile;
use custos::ca::{Ca, CaUrls, InitOptions};
use custos::csr::verify_csr;
use custos::ledger::Ledger;
use custos::ra::issuance::{Identity, Issuer};
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let urls = CaUrls {
        http_base: "http://127.0.0.1:8080".into(),
    };
    let ca = Arc::new(Ca::init(dir.path(), &InitOptions::default(), urls).unwrap());
    let ledger = Arc::new(Ledger::open(&dir.path().join("ledger")).unwrap());
    let issuer = Issuer::new(ca, ledger, 1);
    let profile = Profile::from_config("default", &Default::default()).unwrap();

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["bench.example".to_string()]).unwrap();
    let csr_pem = params.serialize_request(&key).unwrap().pem().unwrap();

    let mut group = c.benchmark_group("issuance");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_p384_sign", |b| {
        let k = SigningKey::generate(KeyAlgorithm::P384).unwrap();
        let msg = [0x5au8; 600];
        b.iter(|| k.sign(&msg).unwrap())
    });
    group.bench_function("raw_p256_sign", |b| {
        let k = SigningKey::generate(KeyAlgorithm::P256).unwrap();
        let msg = [0x5au8; 600];
        b.iter(|| k.sign(&msg).unwrap())
    });
    group.bench_function("csr_to_signed_cert_in_ledger", |b| {
        b.iter(|| {
            let csr = verify_csr(csr_pem.as_bytes()).unwrap();
            let id = Identity::vouched_from_csr(&csr).unwrap();
            issuer.issue(&csr, &profile, &id, 1_800_000_000).unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
