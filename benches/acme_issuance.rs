//! ACME issuance load run: a real `custos serve` (release build) in its own
//! process, N instant-acme clients in this one, each looping order →
//! http-01 challenge (answered by a small server here) → finalize →
//! download, with accounts created beforehand. In the same run, the raw
//! P-384 signing rate (the issuing CA's key type) on every core, as the
//! yardstick: each issuance signs one certificate and its OCSP responses.
//! Also in the same run, the rate if signatures were the only cost (the
//! client's JWS signatures and every signature custos makes or checks),
//! since client and server share the machine.
//!
//! One command: `cargo bench --bench acme_issuance`. Environment:
//! `CUSTOS_ACME_CLIENTS` (concurrent clients, default 16),
//! `CUSTOS_ACME_SECS` (seconds, default 20).

#[path = "support/mod.rs"]
mod support;
use support::*;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
use instant_acme::{Account, ChallengeType, Identifier, NewAccount, NewOrder, RetryPolicy};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Requests one issuance makes once the account exists (new-order,
/// authorization, challenge, order poll, finalize, certificate): each is a
/// JWS the client signs and custos verifies with the account's P-256 key.
const JWS_PER_ISSUANCE: usize = 6;

/// Issuances per second if nothing but their signatures cost anything, on
/// `threads` threads: per issuance, [`JWS_PER_ISSUANCE`] ES256 signatures
/// (client) and verifications (custos), the CSR's verification, the
/// certificate's P-384 signature and two P-256 OCSP responses (SHA-1 and
/// SHA-256 CertIDs). Client and server share this machine in the load run,
/// so both sides count; with `client` false only custos's side does.
fn crypto_floor_rate(threads: usize, secs: f64, client: bool) -> f64 {
    use aws_lc_rs::signature::{
        KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    let rng = SystemRandom::new();
    let key = |alg| {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap()
    };
    let account = key(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let device = key(&ECDSA_P256_SHA256_ASN1_SIGNING);
    let ca = key(&ECDSA_P384_SHA384_FIXED_SIGNING);
    let responder = key(&ECDSA_P256_SHA256_ASN1_SIGNING);
    let jws = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        account.public_key().as_ref().to_vec(),
    );
    let csr = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_ASN1,
        device.public_key().as_ref().to_vec(),
    );
    let csr_sig = device.sign(&rng, b"certification request info").unwrap();
    let body = [0x5au8; 300];
    let jws_sig = account.sign(&rng, &body).unwrap();
    let tbs = [0x5au8; 600];
    per_second(threads, secs, || {
        for _ in 0..JWS_PER_ISSUANCE {
            if client {
                account.sign(&rng, &body).unwrap();
            }
            jws.verify(&body, jws_sig.as_ref()).unwrap();
        }
        csr.verify(b"certification request info", csr_sig.as_ref())
            .unwrap();
        ca.sign(&rng, &tbs).unwrap();
        responder.sign(&rng, &tbs[..400]).unwrap();
        responder.sign(&rng, &tbs[..400]).unwrap();
    })
}

/// How many times per second `threads` threads together run `round`,
/// each looping for `secs` seconds.
fn per_second(threads: usize, secs: f64, round: impl Fn() + Sync) -> f64 {
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while start.elapsed().as_secs_f64() < secs {
                        round();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn raw_p384_rate(threads: usize, secs: f64) -> f64 {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let tbs = [0x5au8; 600];
    per_second(threads, secs, || {
        key.sign(&rng, &tbs).unwrap();
    })
}

/// instant-acme's client with TCP_NODELAY, as certbot (urllib3), lego and
/// acme.sh (curl) have it: without it, Nagle's algorithm and delayed ACKs
/// add ~40 ms to each request that is written in two parts.
fn acme_client(root_pem: &std::path::Path) -> Box<dyn instant_acme::HttpClient> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(root_pem).unwrap())
        .unwrap();
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    Box::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, instant_acme::BodyWrapper<bytes::Bytes>>(https),
    )
}

fn csr_der(key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(key).unwrap().der().to_vec()
}

async fn issue_once(account: &Account, tokens: &Tokens, csr: &[u8]) -> anyhow::Result<()> {
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(5))
        .backoff(1.5)
        .timeout(Duration::from_secs(30));
    let ids = [Identifier::Ip("127.0.0.1".parse()?)];
    let t = Instant::now();
    let mut marks = Vec::new();
    let mut order = account.new_order(&NewOrder::new(&ids)).await?;
    marks.push(("new-order", t.elapsed()));
    {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| anyhow::anyhow!("no http-01"))?;
            tokens.lock().unwrap().insert(
                challenge.token.clone(),
                challenge.key_authorization().as_str().to_string(),
            );
            challenge.set_ready().await?;
        }
    }
    marks.push(("challenges", t.elapsed()));
    order.poll_ready(&retry).await?;
    marks.push(("ready", t.elapsed()));
    order.finalize_csr(csr).await?;
    marks.push(("finalized", t.elapsed()));
    // custos signs during finalize, so the order is usually valid already:
    // fetch the certificate at once, as certbot does, and poll only if not.
    let chain = match order.certificate().await? {
        Some(chain) => chain,
        None => order.poll_certificate(&retry).await?,
    };
    marks.push(("downloaded", t.elapsed()));
    if std::env::var_os("CUSTOS_ACME_TRACE").is_some() {
        eprintln!("{marks:?}");
    }
    anyhow::ensure!(chain.contains("BEGIN CERTIFICATE"), "no certificate");
    Ok(())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let clients = env("CUSTOS_ACME_CLIENTS", 16);
    let secs = env("CUSTOS_ACME_SECS", 20) as u64;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let raw = raw_p384_rate(cores, 3.0);
    let floor = crypto_floor_rate(cores, 3.0, true);
    let server_floor = crypto_floor_rate(cores, 3.0, false);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tokens: Tokens = Arc::default();
        {
            use axum::extract::{Path, State};
            let app = axum::Router::new()
                .route(
                    "/.well-known/acme-challenge/{token}",
                    axum::routing::get(|State(t): State<Tokens>, Path(token): Path<String>| async move {
                        t.lock().unwrap().get(&token).cloned().unwrap_or_default()
                    }),
                )
                .with_state(tokens.clone());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        std::fs::write(
            dir.path().join("custos.toml"),
            format!(
                "[log]\nlevel = \"warn\"\n[acme]\nallowed_ip_ranges = [\"127.0.0.0/8\"]\nhttp01_port = {port}\nnew_orders_per_account_per_hour = 0\nnew_orders_per_ip_per_hour = 0\n"
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let info = loop {
            if let Ok(bytes) = std::fs::read(data.join("server.json")) {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    break v;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let directory = format!("{}/acme/directory", info["https_url"].as_str().unwrap());
        let mut accounts = Vec::new();
        for _ in 0..clients {
            let (account, _) = Account::builder_with_http(acme_client(&data.join("ca/root.pem")))
                .create(
                    &NewAccount {
                        contact: &[],
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    directory.clone(),
                    None,
                )
                .await
                .unwrap();
            accounts.push(account);
        }
        let done = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for account in accounts {
            let (tokens, done, failed) = (tokens.clone(), done.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                let csr = csr_der(&key);
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match issue_once(&account, &tokens, &csr).await {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("issuance failed: {e}");
                            }
                        }
                    }
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        let elapsed = start.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            latencies
                .get(((latencies.len().max(1) - 1) as f64 * p) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let rate = done.load(Ordering::Relaxed) as f64 / elapsed;
        println!("machine: {cores} cores; {clients} concurrent ACME clients for {secs} s (account exists; order → http-01 → finalize → download)");
        println!(
            "issuances: {} ({} failed), {rate:.1}/s; per issuance p50 {:.1} ms, p99 {:.1} ms",
            done.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            pct(0.5),
            pct(0.99)
        );
        println!("raw P-384 signing on {cores} threads: {raw:.0}/s; issuance rate is {:.2} % of it", 100.0 * rate / raw);
        println!(
            "signatures alone (client and server, {JWS_PER_ISSUANCE} JWS + CSR + certificate + 2 OCSP per issuance) on {cores} threads: {floor:.0} issuances/s = {:.1} % of raw P-384 signing; issuance rate is {:.1} % of it",
            100.0 * floor / raw,
            100.0 * rate / floor
        );
        println!(
            "custos's signatures alone (verifying {JWS_PER_ISSUANCE} JWS and the CSR, signing the certificate and 2 OCSP) on {cores} threads: {server_floor:.0} issuances/s = {:.1} % of raw P-384 signing",
            100.0 * server_floor / raw
        );
        let _ = child.kill();
        let _ = child.wait();
    });
}
