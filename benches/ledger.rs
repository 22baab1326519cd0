//! Ledger speed on a real RocksDB: synced insert, lookup by serial, lookup by
//! device, synced revocation, at 10k and 1M certificates.
//!
//! Sizes come from `CUSTOS_BENCH_SIZES` (comma-separated; default
//! `10000,1000000`). Run: `cargo bench --bench ledger`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use custos::ledger::{CertRecord, DeviceIds, Ledger};
use custos::revocation::Reason;
use custos::serial::Serial;

fn record(serial: Serial, i: usize) -> CertRecord {
    CertRecord {
        serial,
        issuer_id: "bench".into(),
        subject: format!("CN=device-{i}"),
        not_before: 1_700_000_000,
        not_after: 1_700_000_000 + (i as u64 % 100_000),
        issued_at: 1_700_000_000,
        dns_names: vec![],
        ip_addresses: vec![],
        device: DeviceIds {
            serial_number: Some(format!("SERIAL{i:08}")),
            udid: Some(format!("00008110-{i:016X}")),
            permanent_id: None,
        },
        acme_account: Some(format!("acct-{}", i % 1000)),
        profile: "default".into(),
        crl_shard: (i % 4) as u32,
        revocation: None,
    }
}

/// A DER-sized payload (a P-256 device certificate is about 700 bytes).
const DER: [u8; 700] = [0x30; 700];

fn populate(ledger: &Ledger, n: usize) -> Vec<Serial> {
    let mut serials = Vec::with_capacity(n);
    let mut chunk = Vec::with_capacity(10_000);
    for i in 0..n {
        let s = Serial::random();
        serials.push(s.clone());
        chunk.push((record(s, i), DER.to_vec()));
        if chunk.len() == 10_000 {
            ledger.insert_batch(&chunk).unwrap();
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        ledger.insert_batch(&chunk).unwrap();
    }
    serials
}

fn sizes() -> Vec<usize> {
    std::env::var("CUSTOS_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn bench(c: &mut Criterion) {
    for n in sizes() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let serials = populate(&ledger, n);
        let mut group = c.benchmark_group(format!("ledger/{n}"));
        let mut i = 0usize;
        group.bench_function("insert_synced", |b| {
            b.iter(|| {
                i += 1;
                ledger
                    .insert(&record(Serial::random(), n + i), &DER)
                    .unwrap();
            })
        });
        let mut k = 0usize;
        group.bench_function("get_by_serial", |b| {
            b.iter(|| {
                k = (k + 7919) % serials.len();
                ledger.get(&serials[k]).unwrap().unwrap()
            })
        });
        group.bench_function("serials_by_device", |b| {
            b.iter(|| {
                k = (k + 7919) % serials.len();
                ledger.serials_by_device(&format!("SERIAL{k:08}")).unwrap()
            })
        });
        let mut r = 0usize;
        group.bench_function("revoke_synced", |b| {
            // Each iteration revokes a certificate that is still good (made
            // in the untimed setup), so every measured call is a synced write.
            b.iter_batched(
                || {
                    r += 1;
                    let s = Serial::random();
                    ledger.insert(&record(s.clone(), 2 * n + r), &DER).unwrap();
                    s
                },
                |s| {
                    ledger
                        .revoke(&s, Reason::KeyCompromise, 1_800_000_000)
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
