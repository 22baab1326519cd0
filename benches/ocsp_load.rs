//! OCSP load run: the real HTTP responder over loopback, next to a minimal
//! hyper server answering every request with a fixed 1 KB body (the
//! ceiling), in the same run and process.
//!
//! One command: `cargo bench --bench ocsp_load`. Environment:
//! `CUSTOS_LOAD_CERTS` (certificates in the ledger, default 1000000),
//! `CUSTOS_LOAD_SECS` (seconds per scenario, default 10),
//! `CUSTOS_LOAD_CONNS` (connections, default 64),
//! `CUSTOS_LOAD_REVOCATIONS` (revocation-visibility samples, default 1000).
//! Prints requests/s, p50 and p99 for GET, POST without nonce and POST with
//! nonce, the ratio to the baseline, the revocation-visibility latency, and
//! the process's peak RSS.

use base64::Engine;
use bytes::Bytes;
use custos::app::{open_ledger, App};
use custos::config::{Config, Overrides};
use custos::ledger::{CertRecord, DeviceIds};
use custos::revocation::Reason;
use custos::serial::Serial;
use custos_ocsp::issuer::{HashAlg, IssuerHashes};
use custos_ocsp::request::build_request;
use custos_ocsp::response::cert_id_for;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn record(serial: Serial) -> CertRecord {
    CertRecord {
        serial,
        issuer_id: "load".into(),
        subject: "CN=load".into(),
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

fn ocsp_request(hashes: &IssuerHashes, serial: &Serial, nonce: Option<u64>) -> Vec<u8> {
    let cert_id = cert_id_for(hashes, HashAlg::Sha1, serial.as_bytes()).unwrap();
    let bytes = nonce.map(|n| {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&n.to_be_bytes());
        b
    });
    build_request(cert_id, bytes.as_ref().map(|b| &b[..])).unwrap()
}

#[derive(Clone)]
enum Shape {
    Get(Arc<Vec<String>>),
    Post(Arc<Vec<Bytes>>),
}

struct Outcome {
    requests: usize,
    errors: usize,
    latencies_us: Vec<u32>,
    secs: f64,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p) as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

async fn load(addr: SocketAddr, shape: Shape, conns: usize, secs: u64) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let shape = shape.clone();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut i = c * 7919;
            while Instant::now() < deadline {
                i = i.wrapping_add(1);
                let req = match &shape {
                    Shape::Get(paths) => hyper::Request::get(&paths[i % paths.len()])
                        .header("host", "localhost")
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                    Shape::Post(bodies) => hyper::Request::post("/ocsp")
                        .header("host", "localhost")
                        .header("content-type", "application/ocsp-request")
                        .body(Full::new(bodies[i % bodies.len()].clone()))
                        .unwrap(),
                };
                let t = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if ok {
                            lat.push(t.elapsed().as_micros() as u32);
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies_us.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Outcome {
        requests: latencies_us.len(),
        errors,
        latencies_us,
        secs,
    }
}

async fn baseline_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Bytes::from(vec![0x30u8; 1024]);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let body = body.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(body)))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let certs = env("CUSTOS_LOAD_CERTS", 1_000_000);
    let secs = env("CUSTOS_LOAD_SECS", 10) as u64;
    let conns = env("CUSTOS_LOAD_CONNS", 64);
    let revocations = env("CUSTOS_LOAD_REVOCATIONS", 1000);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(
        None,
        &Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    let ledger = open_ledger(&config).unwrap();
    let app = Arc::new(App::build(config, ledger, None, true).unwrap());
    let hashes = IssuerHashes::new(app.ca.issuer_cert()).unwrap();

    // Fill the ledger: records in bulk, then the precomputed responses.
    let t = Instant::now();
    let now = custos::ca::build::unix_now();
    let mut serials = Vec::with_capacity(certs);
    let mut chunk = Vec::new();
    for _ in 0..certs {
        let s = Serial::random();
        serials.push(s.clone());
        chunk.push((record(s), vec![0x30u8; 700]));
        if chunk.len() == 10_000 {
            app.ledger.insert_batch(&chunk).unwrap();
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        app.ledger.insert_batch(&chunk).unwrap();
    }
    let serials = Arc::new(serials);
    std::thread::scope(|scope| {
        for part in 0..2 {
            let app = app.clone();
            let serials = serials.clone();
            scope.spawn(move || {
                for s in serials.iter().skip(part).step_by(2) {
                    app.responder.on_issued(&record(s.clone()), now).unwrap();
                }
            });
        }
    });
    println!(
        "machine: {} cores; ledger: {certs} certificates, filled and precomputed in {:.1} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        t.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let custos_addr = listener.local_addr().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let router = custos::server::plain::router(app.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        let base_addr = baseline_server().await;

        let sample: Vec<&Serial> = (0..10_000.min(certs)).map(|i| &serials[(i * 7919) % certs]).collect();
        let gets = Arc::new(
            sample
                .iter()
                .map(|s| {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(ocsp_request(&hashes, s, None));
                    format!("/ocsp/{}", b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"))
                })
                .collect::<Vec<_>>(),
        );
        let posts = Arc::new(sample.iter().map(|s| Bytes::from(ocsp_request(&hashes, s, None))).collect::<Vec<_>>());
        let nonces = Arc::new(
            sample
                .iter()
                .enumerate()
                .map(|(i, s)| Bytes::from(ocsp_request(&hashes, s, Some(i as u64))))
                .collect::<Vec<_>>(),
        );

        let base_get = load(base_addr, Shape::Get(gets.clone()), conns, secs).await;
        let base_post = load(base_addr, Shape::Post(posts.clone()), conns, secs).await;
        println!("\nscenario                  req/s      p50 ms   p99 ms   errors   vs baseline");
        let line = |name: &str, o: &Outcome, base: &Outcome| {
            println!(
                "{name:<24} {:>8.0}   {:>7.3}  {:>7.3}   {:>6}   {:>6.1} %",
                o.rate(),
                o.pct(0.50),
                o.pct(0.99),
                o.errors,
                100.0 * o.rate() / base.rate()
            );
        };
        line("baseline GET (1 KB)", &base_get, &base_get);
        line("baseline POST (1 KB)", &base_post, &base_post);
        let g = load(custos_addr, Shape::Get(gets), conns, secs).await;
        line("custos GET", &g, &base_get);
        let p = load(custos_addr, Shape::Post(posts), conns, secs).await;
        line("custos POST no nonce", &p, &base_post);
        let n = load(custos_addr, Shape::Post(nonces), conns, secs).await;
        line("custos POST nonce", &n, &base_post);

        // Revocation visibility: revoke, then GET until the answer says revoked.
        let client_stream = TcpStream::connect(custos_addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_stream)).await.unwrap();
        tokio::spawn(conn);
        let mut visible = Vec::new();
        for i in 0..revocations.min(certs) {
            let serial = serials[(i * 104_729 + 13) % certs].clone();
            let path = format!(
                "/ocsp/{}",
                base64::engine::general_purpose::STANDARD
                    .encode(ocsp_request(&hashes, &serial, None))
                    .replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            );
            let t = Instant::now();
            let a = app.clone();
            let s2 = serial.clone();
            tokio::task::spawn_blocking(move || a.authority.revoke_serial(&s2, Reason::KeyCompromise, custos::ca::build::unix_now()))
                .await
                .unwrap()
                .unwrap();
            loop {
                let req = hyper::Request::get(&path).header("host", "localhost").body(Full::new(Bytes::new())).unwrap();
                let resp = sender.send_request(req).await.unwrap();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                if is_revoked(&body) {
                    break;
                }
            }
            visible.push(t.elapsed().as_micros() as u32);
        }
        visible.sort_unstable();
        if !visible.is_empty() {
            let pct = |p: f64| visible[((visible.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
            println!("\nrevocation visible (admin revoke → GET says revoked), {} samples: p50 {:.3} ms, p99 {:.3} ms", visible.len(), pct(0.5), pct(0.99));
        }
        shutdown.cancel();
    });
    println!("peak RSS: {:.0} MB (ocsp.cache_mb = 64)", peak_rss_mb());
}

fn is_revoked(der: &[u8]) -> bool {
    use custos_ocsp::x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse};
    use der::Decode;
    let Ok(r) = OcspResponse::from_der(der) else {
        return false;
    };
    let Some(b) = r.response_bytes else {
        return false;
    };
    let Ok(basic) = BasicOcspResponse::from_der(b.response.as_bytes()) else {
        return false;
    };
    matches!(
        basic
            .tbs_response_data
            .responses
            .first()
            .map(|r| &r.cert_status),
        Some(CertStatus::Revoked(_))
    )
}
