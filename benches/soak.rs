//! Soak: the real `custos serve` binary under mixed load for
//! `CUSTOS_SOAK_SECS` seconds (default 600): OCSP GET and POST, with and
//! without nonce; issuance through the admin API with certificates linked
//! to devices; revocations; signed MDM `lost` events. Every 30 s it samples
//! the server's RSS, open files and threads from /proc; at the end it
//! prints them at start and end, the operations done and the errors seen
//! (anything but the expected answer). Flat resources and zero errors are
//! the pass mark; judge them, not a single sample.
//!
//! `cargo bench --bench soak` (or `--profile dev` to reuse the test build).

mod support;
use support::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";

#[derive(Default)]
struct Counts {
    ocsp: AtomicU64,
    issued: AtomicU64,
    revoked: AtomicU64,
    events: AtomicU64,
    errors: AtomicU64,
}

fn proc_sample(pid: u32) -> (u64, usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (field("VmRSS:") / 1024, fds, field("Threads:"))
}

fn csr() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["soak.example".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn custos(data: &Path, args: &[&str]) {
    custos_cli(data, args);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env("CUSTOS_SOAK_SECS", 600) as u64;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("custos.toml"),
        format!("[webhooks.mdm]\nkind = \"standard\"\nsecrets = [\"{SECRET}\"]\n"),
    )
    .unwrap();
    custos(&data, &["init"]);
    let devices: Vec<String> = (0..100_000).map(|i| format!("SOAK{i:06}")).collect();
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, format!("serial\n{}\n", devices.join("\n"))).unwrap();
    custos(&data, &["devices", "import", csv.to_str().unwrap()]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let info: serde_json::Value = loop {
        if let Ok(b) = std::fs::read(data.join("server.json")) {
            if let Ok(v) = serde_json::from_slice(&b) {
                break v;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let http_url = info["http_url"].as_str().unwrap().to_string();
    let https_url = info["https_url"].as_str().unwrap().to_string();
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let root = std::fs::read(data.join("ca/root.pem")).unwrap();
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let issuer_pem = std::fs::read(data.join("ca/intermediate.pem")).unwrap();
    let issuer = custos::ca::parse_pem_bundle(&issuer_pem).unwrap().remove(0);
    let hashes = Arc::new(custos_ocsp::issuer::IssuerHashes::new(&issuer).unwrap());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let counts = Arc::new(Counts::default());
    let serials = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let pid = child.id();
    let mut samples = Vec::new();
    rt.block_on(async {
        let mut tasks = Vec::new();
        // Issuance, linked to devices.
        for worker in 0..2usize {
            let (https, token, base, counts, serials) = (
                https.clone(),
                token.clone(),
                https_url.clone(),
                counts.clone(),
                serials.clone(),
            );
            let devices = devices.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = worker;
                while Instant::now() < deadline {
                    i += 2;
                    let r = https
                        .post(format!("{base}/admin/certificates"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"csr": csr(), "device": devices[i % devices.len()]}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 201 => {
                            let v: serde_json::Value = r.json().await.unwrap_or_default();
                            if let Some(s) = v["serial"].as_str() {
                                serials.lock().unwrap().push(s.to_string());
                                counts.issued.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // A device a `lost` event reached first is refused: expected.
                        Ok(r) if r.status() == 400 => {}
                        _ => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        // Revocations.
        {
            let (https, token, base, counts, serials) = (
                https.clone(),
                token.clone(),
                https_url.clone(),
                counts.clone(),
                serials.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut next = 0usize;
                while Instant::now() < deadline {
                    let target = serials.lock().unwrap().get(next * 3).cloned();
                    let Some(serial) = target else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    next += 1;
                    let r = https
                        .post(format!("{base}/admin/revoke"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"serial": serial, "reason": "superseded"}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            counts.revoked.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        // Lost events, 20 per second.
        {
            let (https, base, counts) = (https.clone(), https_url.clone(), counts.clone());
            let devices = devices.clone();
            tasks.push(tokio::spawn(async move {
                let secret = custos_webhooks::standard::Secret::parse(SECRET).unwrap();
                let mut n = 0usize;
                while Instant::now() < deadline {
                    n += 1;
                    let device = &devices[(n * 7919) % devices.len()];
                    let id = format!("soak_{n}");
                    let ts = custos::model::time::unix_now();
                    let body = format!(r#"{{"kind":"lost","serial":"{device}"}}"#);
                    let r = https
                        .post(format!("{base}/webhooks/mdm"))
                        .header("webhook-id", &id)
                        .header("webhook-timestamp", ts.to_string())
                        .header("webhook-signature", secret.sign(&id, ts, body.as_bytes()))
                        .body(body)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            counts.events.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
        }
        // OCSP: GET, POST, POST with nonce over the certificates issued so far.
        for worker in 0..4usize {
            let (http, base, counts, serials, hashes) = (
                http.clone(),
                http_url.clone(),
                counts.clone(),
                serials.clone(),
                hashes.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut i = worker;
                while Instant::now() < deadline {
                    i += 4;
                    let target = {
                        let s = serials.lock().unwrap();
                        (!s.is_empty()).then(|| s[i % s.len()].clone())
                    };
                    let Some(hex) = target else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let serial = hex::decode(&hex).unwrap();
                    let id = custos_ocsp::response::cert_id_for(
                        &hashes,
                        custos_ocsp::issuer::HashAlg::Sha1,
                        &serial,
                    )
                    .unwrap();
                    let nonce = (i % 3 == 2).then(|| (i as u64).to_be_bytes());
                    let der =
                        custos_ocsp::request::build_request(id, nonce.as_ref().map(|n| &n[..]))
                            .unwrap();
                    let r = if i % 3 == 0 {
                        http.get(format!("{base}{}", percent_path(&der))).send().await
                    } else {
                        http.post(format!("{base}/ocsp")).body(der).send().await
                    };
                    let ok = match r {
                        Ok(r) if r.status() == 200 => r
                            .bytes()
                            .await
                            .map(|b| {
                                use der::Decode;
                                custos_ocsp::x509_ocsp::OcspResponse::from_der(&b).is_ok_and(|r| {
                                    r.response_status
                                        == custos_ocsp::x509_ocsp::OcspResponseStatus::Successful
                                })
                            })
                            .unwrap_or(false),
                        _ => false,
                    };
                    if ok {
                        counts.ocsp.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        // Samples.
        let start = Instant::now();
        while Instant::now() < deadline {
            samples.push((start.elapsed().as_secs(), proc_sample(pid)));
            tokio::time::sleep(Duration::from_secs(30).min(deadline - Instant::now())).await;
        }
        for t in tasks {
            let _ = t.await;
        }
        samples.push((start.elapsed().as_secs(), proc_sample(pid)));
    });
    let _ = child.kill();
    let _ = child.wait();

    println!(
        "soak: {secs} s of mixed load on the real custos serve (machine: {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:>6} {:>9} {:>9} {:>8}",
        "t (s)", "RSS (MB)", "open fds", "threads"
    );
    for (t, (rss, fds, threads)) in &samples {
        println!("{t:>6} {rss:>9} {fds:>9} {threads:>8}");
    }
    let c = &counts;
    println!(
        "operations: {} OCSP answers, {} issuances, {} revocations, {} MDM events; errors: {}",
        c.ocsp.load(Ordering::Relaxed),
        c.issued.load(Ordering::Relaxed),
        c.revoked.load(Ordering::Relaxed),
        c.events.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed)
    );
}
