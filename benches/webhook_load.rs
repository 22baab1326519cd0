//! MDM webhook load run: the real listeners (`custos::server::run`) in this
//! process over a ledger of devices with 1 and with 5 certificates each, a
//! Standard-Webhooks-signed `lost` event POSTed over HTTPS, then OCSP GETs
//! on the plain-HTTP listener until every certificate of the device says
//! `revoked`. Reports p50/p99 of "POST sent → last certificate revoked"
//! over `CUSTOS_WEBHOOK_EVENTS` events (default 1,000) per device shape,
//! then the sustained rate: `CUSTOS_WEBHOOK_CONNS` connections (default 32)
//! posting events for `CUSTOS_WEBHOOK_BURST` more devices (default 5,000),
//! timed until every one of their certificates is revoked.
//!
//! One command: `cargo bench --bench webhook_load`.

#[path = "support/mod.rs"]
mod support;
use support::*;

use bytes::Bytes;
use custos::app::{open_ledger, App};
use custos::config::{Config, Overrides, WebhookSource};
use custos::serial::Serial;
use custos_ocsp::issuer::{HashAlg, IssuerHashes};
use custos_ocsp::request::build_request;
use custos_ocsp::response::cert_id_for;
use custos_webhooks::standard::Secret;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA==";

/// A device and the OCSP GET paths of its certificates.
struct Device {
    serial: String,
    gets: Vec<String>,
    certs: Vec<Serial>,
}

fn get_path(hashes: &IssuerHashes, serial: &Serial) -> String {
    let id = cert_id_for(hashes, HashAlg::Sha1, serial.as_bytes()).unwrap();
    percent_path(&build_request(id, None).unwrap())
}

fn fill(app: &App, hashes: &IssuerHashes, prefix: &str, devices: usize, per: usize) -> Vec<Device> {
    let now = custos::model::time::unix_now();
    let mut out = Vec::with_capacity(devices);
    let mut records = Vec::new();
    let mut csv = String::from("serial\n");
    for d in 0..devices {
        let name = format!("{prefix}{d:06}");
        csv.push_str(&name);
        csv.push('\n');
        let mut dev = Device {
            serial: name.clone(),
            gets: vec![],
            certs: vec![],
        };
        for _ in 0..per {
            let s = Serial::random();
            dev.gets.push(get_path(hashes, &s));
            dev.certs.push(s.clone());
            records.push((device_record(s, &name), vec![0x30u8; 700]));
        }
        out.push(dev);
    }
    for chunk in records.chunks(10_000) {
        app.ledger.insert_batch(chunk).unwrap();
    }
    for (r, _) in &records {
        app.responder.on_issued(r, now).unwrap();
    }
    custos::devices::ops::import(&app.ledger, csv.as_bytes(), now).unwrap();
    out
}

struct Poster {
    http: reqwest::Client,
    url: String,
    secret: Secret,
    next_id: AtomicUsize,
}

impl Poster {
    async fn lost(&self, device: &str) {
        let id = format!("msg_{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let ts = custos::model::time::unix_now();
        let body = format!(r#"{{"kind":"lost","serial":"{device}"}}"#);
        let resp = self
            .http
            .post(&self.url)
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                self.secret.sign(&id, ts, body.as_bytes()),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text().await);
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn ocsp_sender(addr: std::net::SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn revoked(sender: &mut Sender, path: &str) -> bool {
    let req = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    is_revoked(&resp.into_body().collect().await.unwrap().to_bytes())
}

async fn latency(poster: &Poster, sender: &mut Sender, devices: &[Device]) -> Vec<u32> {
    let mut out = Vec::with_capacity(devices.len());
    for d in devices {
        let t = Instant::now();
        poster.lost(&d.serial).await;
        for path in &d.gets {
            while !revoked(sender, path).await {}
        }
        out.push(t.elapsed().as_micros() as u32);
    }
    out.sort_unstable();
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let events = env("CUSTOS_WEBHOOK_EVENTS", 1000);
    let conns = env("CUSTOS_WEBHOOK_CONNS", 32);
    let burst = env("CUSTOS_WEBHOOK_BURST", 5000);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(
        None,
        &Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    config.webhooks.insert(
        "bench".into(),
        WebhookSource::Standard {
            secrets: vec![SECRET.into()],
            allowed_ips: Vec::new(),
        },
    );
    let ledger = open_ledger(&config).unwrap();
    let app = Arc::new(App::build(config, ledger, None, true).unwrap());
    let hashes = IssuerHashes::new(app.ca.issuer_cert()).unwrap();
    let t = Instant::now();
    let one = fill(&app, &hashes, "ONE", events, 1);
    let five = fill(&app, &hashes, "FIVE", events, 5);
    let many = fill(&app, &hashes, "BURST", burst, 1);
    println!(
        "machine: {} cores; ledger: {} devices, {} certificates, filled in {:.1} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        2 * events + burst,
        6 * events + burst,
        t.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, https_addr) = (http.local_addr().unwrap(), https.local_addr().unwrap());
        let tls = custos::server::tls::acceptor(&app).unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(custos::server::run(app.clone(), http, https, tls, shutdown.clone()));
        tokio::spawn(app.crl.clone().run_triggered(shutdown.clone()));
        let root = std::fs::read(app.ca.paths().root_cert()).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
            .tcp_nodelay(true)
            .build()
            .unwrap();
        let poster = Arc::new(Poster {
            http: client,
            url: format!("https://{https_addr}/webhooks/bench"),
            secret: Secret::parse(SECRET).unwrap(),
            next_id: AtomicUsize::new(0),
        });
        let mut sender = ocsp_sender(http_addr).await;
        // Warm the connections.
        poster.lost("NO-SUCH-DEVICE").await;

        println!("\nPOST lost event → every certificate of the device says revoked (OCSP GET)");
        for (name, devs) in [("1 certificate", &one), ("5 certificates", &five)] {
            let l = latency(&poster, &mut sender, devs).await;
            println!(
                "  device with {name:<15} {} events: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.len(),
                percentile(&l, 0.5),
                percentile(&l, 0.99),
                percentile(&l, 1.0)
            );
        }

        // Sustained: many posters, then wait until everything is revoked.
        let many = Arc::new(many);
        let next = Arc::new(AtomicUsize::new(0));
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..conns {
            let (poster, many, next) = (poster.clone(), many.clone(), next.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(d) = many.get(i) else { return };
                    poster.lost(&d.serial).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let accepted = t.elapsed();
        let ledger = app.ledger.clone();
        let all: Vec<Serial> = many.iter().flat_map(|d| d.certs.clone()).collect();
        tokio::task::spawn_blocking(move || {
            for s in &all {
                while ledger.get(s).unwrap().unwrap().revocation.is_none() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
        .await
        .unwrap();
        let processed = t.elapsed();
        println!(
            "\nsustained, {} events over {conns} HTTPS connections: accepted (2xx, synced) {:.0} events/s; all revoked after {:.2} s = {:.0} events/s end to end",
            many.len(),
            many.len() as f64 / accepted.as_secs_f64(),
            processed.as_secs_f64(),
            many.len() as f64 / processed.as_secs_f64()
        );
        shutdown.cancel();
    });
}
