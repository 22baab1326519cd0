//! MDM inventory sync run: a local generic MDM serving `CUSTOS_SYNC_DEVICES`
//! devices (default 100,000) in pages of 1,000, synced by the real
//! `MdmSync` into a ledger in a temp dir. Reports, each against the same
//! run's unchanged sync as baseline:
//! - the first sync (every device added to the inventory);
//! - an unchanged sync (read and compare only);
//! - a sync where `CUSTOS_SYNC_LOST` devices (default 1,000, 1 % so not
//!   held) turned lost, each with one certificate: the revocations per
//!   second it reaches, with OCSP responses re-signed in each revocation's
//!   write.
//!
//! One command: `cargo bench --bench mdm_sync`.

#[path = "support/mod.rs"]
mod support;
use support::*;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use custos::app::{open_ledger, App};
use custos::config::{Config, MdmKind, MdmSource, Overrides};
use custos::devices::sync::SyncOptions;
use custos::ledger::CertRecord;
use custos::serial::Serial;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

const PAGE: usize = 1000;

type Devices = Arc<RwLock<Vec<Value>>>;

async fn page(
    State((devices, base)): State<(Devices, String)>,
    Query(q): Query<HashMap<String, usize>>,
) -> Json<Value> {
    let start = q.get("from").copied().unwrap_or(0);
    let all = devices.read().unwrap();
    let list: Vec<Value> = all.iter().skip(start).take(PAGE).cloned().collect();
    let next = (start + PAGE < all.len()).then(|| format!("{base}/devices?from={}", start + PAGE));
    Json(json!({"devices": list, "next": next}))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env("CUSTOS_SYNC_DEVICES", 100_000);
    let lost = env("CUSTOS_SYNC_LOST", 1000).min(n);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let devices: Devices = Arc::new(RwLock::new(
        (0..n)
            .map(
                |i| json!({"serial": format!("SYNC{i:07}"), "status": "active", "compliant": true}),
            )
            .collect(),
    ));
    let base = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/devices", get(page))
            .with_state((devices.clone(), base.clone()));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        base
    });
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(
        None,
        &Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    let source: MdmSource = toml::from_str(&format!(
        "kind = \"generic\"\nurl = \"{base}/devices?from=0\"\ntoken = \"bench\"\nsync_interval_secs = 86400\n"
    ))
    .unwrap();
    assert_eq!(source.kind, MdmKind::Generic);
    config.mdm.insert("bench".into(), source);
    let ledger = open_ledger(&config).unwrap();
    let app = Arc::new(App::build(config, ledger, None, true).unwrap());
    let sync = |label: &str| {
        let t = Instant::now();
        let r = rt
            .block_on(app.mdm_sync.sync("bench", SyncOptions::default()))
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label:<44} {:>8.2} s  {:>9.0} devices/s  {:>4} requests  result {} ({} added, {} changes)",
            secs,
            r.seen as f64 / secs,
            r.requests,
            r.result,
            r.added,
            r.changes.len()
        );
        (secs, r)
    };
    println!(
        "machine: {} cores; {n} devices in pages of {PAGE}; {lost} turn lost",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let (first, _) = sync("first sync (adds every device)");
    // One certificate for each device that will turn lost.
    let now = custos::model::time::unix_now();
    let records: Vec<(CertRecord, Vec<u8>)> = (0..lost)
        .map(|i| {
            (
                device_record(Serial::random(), &format!("SYNC{i:07}")),
                vec![0x30u8; 700],
            )
        })
        .collect();
    for chunk in records.chunks(10_000) {
        app.ledger.insert_batch(chunk).unwrap();
    }
    for (r, _) in &records {
        app.responder.on_issued(r, now).unwrap();
    }
    let (unchanged, _) = sync("unchanged sync (baseline)");
    for d in devices.write().unwrap().iter_mut().take(lost) {
        d["status"] = "lost".into();
    }
    let (with_lost, r) = sync(&format!("sync with {lost} lost devices"));
    assert_eq!(r.result, "applied");
    let revoked = (0..lost)
        .filter(|i| {
            app.ledger
                .get(&records[*i].0.serial)
                .unwrap()
                .is_some_and(|r| r.revocation.is_some())
        })
        .count();
    assert_eq!(revoked, lost, "every lost device's certificate revoked");
    println!(
        "first sync / unchanged: {:.2}; sync with lost / unchanged: {:.2}; revocations: {:.0}/s over the sync's extra time ({:.0}/s over its whole time)",
        first / unchanged,
        with_lost / unchanged,
        lost as f64 / (with_lost - unchanged).max(1e-6),
        lost as f64 / with_lost
    );
}
