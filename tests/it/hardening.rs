//! The promise under pressure: a revocation is never undone by a refresh,
//! and the listeners stay up for honest clients while hostile ones hold
//! connections, send half requests, or make up HTTP methods. Everything
//! here runs the real `custos serve` binary over loopback.

use crate::common;

use base64::Engine;
use common::{custos, Server};
use custos::serial::Serial;
use custos_ocsp::issuer::{HashAlg, IssuerHashes};
use custos_ocsp::x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse};
use der::Decode;
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn record(serial: Serial) -> custos::ledger::CertRecord {
    common::cert_record(&serial, "CN=race")
}

/// The configuration of a data dir (defaults) and its ledger, opened
/// directly (no server may run on it).
fn open_data_dir(data: &Path) -> (custos::config::Config, custos::ledger::Ledger) {
    let config = custos::config::Config::load(
        None,
        &custos::config::Overrides {
            data_dir: Some(data.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    let ledger = custos::app::open_ledger(&config).unwrap();
    (config, ledger)
}

/// Fills a fresh data dir with `n` certificates and their precomputed
/// responses, through the library (as fast as the ledger allows); returns
/// their serials.
pub(crate) fn fill(data: &Path, n: usize) -> Vec<Serial> {
    let (config, ledger) = open_data_dir(data);
    let app = custos::app::App::build(config, ledger, None, true).unwrap();
    let serials: Vec<Serial> = (0..n).map(|_| Serial::random()).collect();
    let batch: Vec<_> = serials
        .iter()
        .map(|s| (record(s.clone()), vec![0x30u8; 16]))
        .collect();
    app.ledger.insert_batch(&batch).unwrap();
    let now = custos::model::time::unix_now();
    for s in &serials {
        app.responder.on_issued(&record(s.clone()), now).unwrap();
    }
    custos::support::instance::AdminToken::ensure(data).unwrap();
    serials
}

fn ocsp_request(hashes: &IssuerHashes, serial: &Serial, nonce: Option<&[u8]>) -> Vec<u8> {
    let id = custos_ocsp::response::cert_id_for(hashes, HashAlg::Sha1, serial.as_bytes()).unwrap();
    custos_ocsp::request::build_request(id, nonce).unwrap()
}

/// The status an OCSP answer gives its first certificate.
fn status_of(der: &[u8]) -> &'static str {
    let resp = OcspResponse::from_der(der).expect("an OCSP response");
    let bytes = resp.response_bytes.expect("a successful answer");
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    match basic.tbs_response_data.responses[0].cert_status {
        CertStatus::Good(_) => "good",
        CertStatus::Revoked(_) => "revoked",
        CertStatus::Unknown(_) => "unknown",
    }
}

pub(crate) fn issuer_hashes(data: &Path) -> IssuerHashes {
    let pem = std::fs::read(data.join("ca/intermediate.pem")).unwrap();
    let cert = custos::ca::parse_pem_bundle(&pem).unwrap().remove(0);
    IssuerHashes::new(&cert).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refreshes_never_undo_an_acknowledged_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serials = fill(&data, 3000);
    let server = Server::start(&data, &[]);
    let https = server.https_client();
    let token = server.token();
    let hashes = issuer_hashes(&data);

    // Three rounds: a full re-signing runs while 100 revocations go through
    // the admin API, each acknowledged before the next is sent.
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let refresher = {
            let https = https.clone();
            let url = format!("{}/admin/ocsp/refresh", server.https_url);
            let token = token.clone();
            tokio::spawn(async move {
                let r = https.post(url).bearer_auth(token).send().await.unwrap();
                assert_eq!(r.status(), 200);
            })
        };
        for s in serials.iter().skip(round * 1000).step_by(10).take(100) {
            let r = https
                .post(format!("{}/admin/revoke", server.https_url))
                .bearer_auth(&token)
                .json(&json!({ "serial": s.to_hex(), "reason": "keyCompromise" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            acknowledged.push(s.clone());
        }
        refresher.await.unwrap();
    }

    let http = reqwest::Client::new();
    let post = |req: Vec<u8>| {
        http.post(format!("{}/ocsp", server.http_url))
            .header("content-type", "application/ocsp-request")
            .body(req)
            .send()
    };
    let mut wrong = Vec::new();
    for s in &acknowledged {
        let plain = ocsp_request(&hashes, s, None);
        let with_nonce = ocsp_request(&hashes, s, Some(&[7u8; 16]));
        let get_path = base64::engine::general_purpose::STANDARD
            .encode(&plain)
            .replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D");
        let get = http
            .get(format!("{}/ocsp/{get_path}", server.http_url))
            .send()
            .await
            .unwrap();
        let answers = [
            ("GET", get.bytes().await.unwrap()),
            ("POST", post(plain).await.unwrap().bytes().await.unwrap()),
            (
                "POST with nonce",
                post(with_nonce).await.unwrap().bytes().await.unwrap(),
            ),
        ];
        for (how, body) in answers {
            if status_of(&body) != "revoked" {
                wrong.push(format!("{} by {how}", s.to_hex()));
            }
        }
    }
    assert_eq!(acknowledged.len(), 300);
    // The oldest precomputed response was signed moments ago (by the last
    // refresh round), and the gauge says so: it reads the real thisUpdate.
    let metrics = http_get(&host_port(&server.http_url), "/metrics");
    let age = metric(&metrics, "custos_ocsp_oldest_precomputed_age_seconds");
    assert!(
        age < 600.0,
        "oldest precomputed age {age} s on a fresh ledger"
    );
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged revocations answered otherwise: {:?}",
        wrong.len(),
        acknowledged.len(),
        &wrong[..wrong.len().min(10)]
    );
}

/// The value of one series in a Prometheus text answer (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Lets this process (and the servers it starts) open as many files as
/// the hard limit allows.
#[allow(unsafe_code)] // getrlimit/setrlimit on this process
fn raise_fd_limit() {
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// A plain HTTP/1.1 GET over a new connection; the whole answer.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_config(dir: &Path, text: &str) {
    std::fs::write(dir.join("custos.toml"), text).unwrap();
}

fn host_port(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn half_sent_requests_are_cut_off_and_do_not_stop_honest_clients() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    raise_fd_limit();
    write_config(
        dir.path(),
        "[http]\nheader_timeout_secs = 6\nidle_timeout_secs = 8\n",
    );
    assert!(custos(&data, &["init"]).status.success());
    let server = Server::start(&data, &[]);
    let addr = host_port(&server.http_url);

    // 1,000 connections, each with half a request line sent.
    let mut slow = Vec::new();
    let mut opened = Vec::new();
    for _ in 0..1000 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /heal").unwrap();
        slow.push(s);
        opened.push(Instant::now());
    }
    // Honest clients are answered meanwhile, while the slow connections
    // are still held open (checked on those opened well within the header
    // timeout: on a loaded CI machine opening 1,000 can take seconds).
    assert!(http_get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    let young: Vec<usize> = [0, 999]
        .into_iter()
        .filter(|&i| opened[i].elapsed() < Duration::from_secs(4))
        .collect();
    assert!(
        young.contains(&999),
        "opening 1,000 connections took too long to check"
    );
    for i in young {
        let s = &mut slow[i];
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let e = s.read(&mut b).expect_err("still open, nothing said yet");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        s.set_nonblocking(false).unwrap();
    }

    // Past the header timeout every slow connection has been closed.
    std::thread::sleep(
        (opened[999] + Duration::from_millis(7500)).saturating_duration_since(Instant::now()),
    );
    let mut still_open = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => {}
            // hyper may answer 408 before closing.
            Ok(_) => {
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(_) => still_open += 1,
        }
    }
    assert_eq!(
        still_open, 0,
        "connections sending half a request stayed open"
    );

    let metrics = http_get(&addr, "/metrics");
    assert!(
        metric(
            &metrics,
            "custos_http_connections_closed_total{limit=\"header_timeout\",listener=\"http\"}"
        ) >= 1000.0,
        "{metrics}"
    );
    drop(server);

    // An idle connection (a request answered, nothing since) is closed
    // after idle_timeout_secs.
    write_config(
        dir.path(),
        "[http]\nheader_timeout_secs = 30\nidle_timeout_secs = 1\n",
    );
    let server = Server::start(&data, &[]);
    let addr = host_port(&server.http_url);
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "idle connection kept for {:?}",
        t.elapsed()
    );
    let metrics = http_get(&addr, "/metrics");
    assert!(
        metric(
            &metrics,
            "custos_http_connections_closed_total{limit=\"idle_timeout\",listener=\"http\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

#[test]
fn made_up_methods_do_not_create_metric_series() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(custos(&data, &["init"]).status.success());
    let server = Server::start(&data, &[]);
    let addr = host_port(&server.http_url);
    for m in ["FOO1", "FOO2", "FOO3"] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "{m} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 405"));
    }
    let metrics = http_get(&addr, "/metrics");
    assert!(!metrics.contains("FOO1"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

#[test]
fn early_answers_reach_http2_clients() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(custos(&data, &["init"]).status.success());
    let server = Server::start(&data, &[]);
    let root = data.join("ca/root.pem");
    let curl = |args: &[&str]| {
        std::process::Command::new("curl")
            .args(["-sS", "--http2", "--cacert", root.to_str().unwrap()])
            .args(["-o", "-", "-w", "\n%{http_code} %{http_version}"])
            .args(args)
            .output()
            .expect("curl must be installed (see .ci/setup)")
    };
    // No token: the 401 must reach the client, over HTTP/2.
    let out = curl(&[
        "-X",
        "POST",
        &format!("{}/admin/revoke", server.https_url),
        "-d",
        "{}",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.ends_with("401 2"), "{text}");
    assert!(text.contains("admin token"), "{text}");
    // A body over the limit: 413, also over HTTP/2.
    let big = data.join("big.json");
    std::fs::write(&big, vec![b' '; 200 * 1024]).unwrap();
    let out = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("authorization: Bearer {}", server.token()),
        &format!("{}/admin/revoke", server.https_url),
        "--data-binary",
        &format!("@{}", big.display()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.ends_with("413 2"), "{text}");
}

#[test]
fn the_https_certificate_is_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(custos(&data, &["init"]).status.success());
    for _ in 0..3 {
        let server = Server::start(&data, &[]);
        assert!(server.terminate().success());
    }
    let out = custos(&data, &["certs", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one listener certificate for three starts: {list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_revocation_load_restores_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serials = fill(&data, 1500);
    let server = Server::start(&data, &[]);
    let https = server.https_client();
    let token = server.token();

    // Revocations keep coming while the backup is taken.
    let revoker = {
        let (https, token, base) = (https.clone(), token.clone(), server.https_url.clone());
        let serials = serials.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for s in serials.iter().take(600) {
                let r = https
                    .post(format!("{base}/admin/revoke"))
                    .bearer_auth(&token)
                    .json(&json!({ "serial": s.to_hex(), "reason": "keyCompromise" }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                acked.push((s.clone(), Instant::now()));
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backup_dir = dir.path().join("backup");
    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let data = data.clone();
        let backup_dir = backup_dir.clone();
        move || custos(&data, &["backup", "--out", backup_dir.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acked = revoker.await.unwrap();
    // A backup never overwrites.
    let again = custos(&data, &["backup", "--out", backup_dir.to_str().unwrap()]);
    assert!(!again.status.success());
    drop(server);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(backup_dir.join("ca/intermediate.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "keys stay private in the backup");

    let restored = dir.path().join("restored");
    let out = custos(
        &restored,
        &["restore", "--from", backup_dir.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Restore refuses an existing data dir.
    let out = custos(
        &restored,
        &["restore", "--from", backup_dir.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let verify = custos(&restored, &["ledger", "verify"]);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // Every revocation acknowledged before the backup began answers
    // revoked from the restored data dir.
    let server = Server::start(&restored, &[]);
    let hashes = issuer_hashes(&restored);
    let http = reqwest::Client::new();
    let before: Vec<&Serial> = acked
        .iter()
        .filter(|(_, at)| *at < started)
        .map(|(s, _)| s)
        .collect();
    assert!(!before.is_empty());
    for s in before {
        let body = http
            .post(format!("{}/ocsp", server.http_url))
            .body(ocsp_request(&hashes, s, None))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(status_of(&body), "revoked", "{}", s.to_hex());
    }
}

#[test]
fn ledger_verify_finds_a_response_that_disagrees_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serials = fill(&data, 20);
    let clean = custos(&data, &["ledger", "verify"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    assert!(String::from_utf8_lossy(&clean.stdout).contains("no mismatches"));
    // Revoke one certificate's record behind the responder's back (as a
    // bug or a bad restore would), leaving its `good` responses in place.
    {
        let (_, ledger) = open_data_dir(&data);
        ledger
            .revoke(
                &serials[3],
                custos::revocation::Reason::KeyCompromise,
                1_800_000_000,
            )
            .unwrap();
    }
    let out = custos(&data, &["ledger", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&serials[3].to_hex())
            && text.contains("says good but the record says revoked"),
        "{text}"
    );
}
