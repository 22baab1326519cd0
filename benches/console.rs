//! What the operator console's pages cost on a real RocksDB audit log of
//! `CUSTOS_BENCH_AUDIT` entries (default 200,000: issuance and revocations
//! spread over the last 24 hours, as a busy day writes them):
//! - `hourly_full`: counting issuance and revocations per hour over the
//!   whole day (the overview's first load);
//! - `hourly_since`: reading the 100 entries written since the last load
//!   (every later load);
//! - `audit_page`: the newest page of 100 entries (the baseline);
//! - `audit_page_rare`: a page filtered by a device no entry names (the
//!   50,000-entry scan bound).
//!
//! Run: `cargo bench --bench console`.

use criterion::{criterion_group, criterion_main, Criterion};
use custos::ledger::{AuditEntry, AuditFilter, Ledger};

fn entries() -> u64 {
    std::env::var("CUSTOS_BENCH_AUDIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

fn bench(c: &mut Criterion) {
    let n = entries();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let now = 1_800_000_000u64;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let time = now - 86_400 + i * 86_400 / n;
        let kind = if i % 10 == 0 {
            "revocation"
        } else {
            "issuance"
        };
        batch.push(AuditEntry::new(
            time,
            kind,
            "acme:bench",
            serde_json::json!({
                "certificate": format!("{i:032x}"),
                "device": format!("SERIAL{i:08}"),
                "subject": format!("CN=device-{i}"),
                "profile": "device",
                "outcome": "issued",
            }),
        ));
        if batch.len() == 10_000 {
            ledger.append_audits(&batch).unwrap();
            batch.clear();
        }
    }
    ledger.append_audits(&batch).unwrap();
    let kinds = ["issuance", "revocation"];
    let mut group = c.benchmark_group(format!("console/{n}"));
    group.bench_function("audit_page", |b| {
        b.iter(|| {
            ledger
                .audit_page_back(None, 100, 50_000, &AuditFilter::default())
                .unwrap()
        })
    });
    group.bench_function("hourly_full", |b| {
        b.iter(|| ledger.audit_hourly(now, 24, &kinds, 500_000).unwrap())
    });
    group.bench_function("hourly_since", |b| {
        b.iter(|| ledger.audit_heads_after(n - 100, 500_000).unwrap())
    });
    let rare = AuditFilter {
        device: Some("NOSUCHDEVICE".into()),
        ..Default::default()
    };
    group.bench_function("audit_page_rare", |b| {
        b.iter(|| ledger.audit_page_back(None, 100, 50_000, &rare).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
