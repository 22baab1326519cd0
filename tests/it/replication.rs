//! Status on Redis: a real `redis-server` started here, a primary publishing
//! to it, a stateless `custos serve --role responder` reading it, checked
//! with the OpenSSL CLI and byte for byte against the primary; then Redis
//! killed (the responder serves what it holds and says `degraded`, the
//! primary queues revocations) and restarted empty (the primary publishes
//! everything again by itself).

use crate::common::*;
use custos_ocsp::issuer::{HashAlg, IssuerHashes};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throwaway Redis on a loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Redis {
        Self::start_with(port, &[])
    }

    fn start_with(port: u16, extra: &[&str]) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (see .ci/setup)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A responder process, killed on drop.
struct Responder {
    child: Child,
    url: String,
}

impl Responder {
    fn start(dir: &Path, redis: &str) -> Responder {
        Self::start_with(dir, redis, &[], &[])
    }

    /// `global` goes before `serve` (`--data-dir`), `serve_args` after.
    fn start_with(dir: &Path, redis: &str, global: &[&str], serve_args: &[&str]) -> Responder {
        let addr = free_addr();
        let log = std::fs::File::create(dir.join("responder.log")).unwrap();
        let child = Command::new(custos_bin())
            .args(global)
            .args(["serve", "--role", "responder", "--redis", redis])
            .args(["--http", &addr])
            .args(serve_args)
            .current_dir(dir)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let url = format!("http://{addr}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "responder did not start: {}",
                std::fs::read_to_string(dir.join("responder.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Responder { child, url }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    free_addr().rsplit(':').next().unwrap().parse().unwrap()
}

/// `openssl ocsp` against `url` without a nonce (answered from the
/// primary's precomputed responses).
fn openssl_status(data: &Path, leaf: &Path, url: &str) -> String {
    openssl_ocsp(data, leaf, url, false)
}

/// `openssl ocsp` with a nonce (its default).
fn openssl_nonce(data: &Path, leaf: &Path, url: &str) -> String {
    openssl_ocsp(data, leaf, url, true)
}

fn openssl_ocsp(data: &Path, leaf: &Path, url: &str, nonce: bool) -> String {
    let (issuer, root) = (data.join("ca/intermediate.pem"), data.join("ca/root.pem"));
    let url = format!("{url}/ocsp");
    let mut args = vec!["ocsp", "-issuer", issuer.to_str().unwrap()];
    args.extend(["-cert", leaf.to_str().unwrap(), "-url", &url]);
    args.extend(["-CAfile", root.to_str().unwrap()]);
    if !nonce {
        args.push("-no_nonce");
    }
    let out = openssl(&args);
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The GET path of a nonce-less request for `serial`.
fn get_path(hashes: &IssuerHashes, serial: &custos::serial::Serial) -> String {
    use base64::Engine;
    let id = custos_ocsp::response::cert_id_for(hashes, HashAlg::Sha1, serial.as_bytes()).unwrap();
    let der = custos_ocsp::request::build_request(id, None).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!(
        "/ocsp/{}",
        b64.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    )
}

fn issue(data: &Path, dir: &Path, name: &str) -> (PathBuf, custos::serial::Serial) {
    let csr = dir.join(format!("{name}.csr"));
    std::fs::write(&csr, p256_csr(&[&format!("{name}.example")])).unwrap();
    let leaf = dir.join(format!("{name}.pem"));
    let out = custos(
        data,
        &[
            "issue",
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            leaf.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serial = issued_serial(&String::from_utf8_lossy(&out.stderr));
    (leaf, serial.parse().unwrap())
}

/// Waits until `check` holds, up to 20 s; returns how long it took.
fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn fetch(url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/stdout", url])
        .output()
        .unwrap();
    let text = out.stdout;
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let head = String::from_utf8_lossy(&text[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, text[split + 4..].to_vec())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn responders_answer_from_redis_through_faults() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(custos(&data, &["init"]).status.success());
    let port = free_port();
    let mut redis = Redis::start(port);
    std::fs::write(
        dir.path().join("custos.toml"),
        format!("[replication]\nredis = [\"{}\"]\n", redis.url()),
    )
    .unwrap();
    let primary = Server::start(&data, &[]);
    let (leaf, serial) = issue(&data, dir.path(), "one");
    let (leaf2, serial2) = issue(&data, dir.path(), "two");
    let (leaf3, serial3) = issue(&data, dir.path(), "three");
    let hashes = issuer_hashes_of(&data);

    // A responder with no ledger and no key answers what the primary signed.
    let responder = Responder::start(dir.path(), &redis.url());
    eventually("the responder answers good", || {
        openssl_status(&data, &leaf, &responder.url).contains(": good")
    });
    let path = get_path(&hashes, &serial);
    let (s1, h1, b1) = fetch(&format!("{}{path}", primary.http_url));
    let (s2, h2, b2) = fetch(&format!("{}{path}", responder.url));
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, b2, "the responder serves the primary's bytes");
    for name in ["content-type", "etag", "last-modified"] {
        assert_eq!(header(&h1, name), header(&h2, name), "{name}");
    }
    assert!(header(&h2, "cache-control").unwrap().contains("max-age="));
    // CRL and CA files: the same bytes.
    for file in [
        "/ca/root.pem",
        "/ca/chain.pem",
        "/crl/{issuer}/0.crl",
        "/crl/{issuer}/0.pem",
    ] {
        let issuer_id = custos_issuer_id(&primary);
        let file = file.replace("{issuer}", &issuer_id);
        let (a, _, x) = fetch(&format!("{}{file}", primary.http_url));
        let (b, _, y) = fetch(&format!("{}{file}", responder.url));
        assert_eq!((a, b), (200, 200), "{file}");
        assert_eq!(x, y, "{file}");
    }
    // A serial this CA never issued: unauthorized, never good.
    let unknown = custos::serial::Serial::random();
    let (_, _, body) = fetch(&format!("{}{}", responder.url, get_path(&hashes, &unknown)));
    assert_eq!(body, custos_ocsp::OcspError::Unauthorized.to_der());
    assert_eq!(fetch(&format!("{}/healthz", responder.url)).2, b"ok\n");

    // A revocation reaches the responder (which had the good answer cached).
    custos_ok(
        &data,
        &[
            "revoke",
            "--serial",
            &serial.to_hex(),
            "--reason",
            "keyCompromise",
        ],
    );
    let took = eventually("the responder answers revoked", || {
        fetch(&format!("{}{path}", responder.url)).2 != b2
    });
    eprintln!("revocation visible at the responder after {took:?}");
    assert!(openssl_status(&data, &leaf, &responder.url).contains(": revoked"));

    // Redis down: the responder answers what it holds, says degraded; the
    // primary keeps revocations for later.
    let held = fetch(&format!("{}{path}", responder.url)).2;
    drop(redis);
    eventually("the responder says degraded", || {
        fetch(&format!("{}/healthz", responder.url)).2 == b"degraded\n"
    });
    let (status, _, body) = fetch(&format!("{}/readyz", responder.url));
    assert_eq!((status, body.as_slice()), (503, b"degraded\n".as_slice()));
    assert_eq!(fetch(&format!("{}{path}", responder.url)).2, held);
    let (_, _, body) = fetch(&format!("{}{}", responder.url, get_path(&hashes, &serial2)));
    assert_eq!(
        body,
        custos_ocsp::OcspError::TryLater.to_der(),
        "not cached, Redis down"
    );
    let out = custos(
        &data,
        &[
            "revoke",
            "--serial",
            &serial2.to_hex(),
            "--reason",
            "superseded",
        ],
    );
    assert!(out.status.success(), "a revocation does not need Redis");
    eventually("the primary's backlog grows", || {
        metric(&primary, "custos_replication_backlog") >= 1.0
    });

    // Redis back, empty: the primary publishes everything again by itself,
    // the queued revocation included; the responder reconnects.
    redis = Redis::start(port);
    eventually("the second revocation reaches the responder", || {
        openssl_status(&data, &leaf2, &responder.url).contains(": revoked")
    });
    assert!(openssl_status(&data, &leaf, &responder.url).contains(": revoked"));
    eventually("the backlog drains", || {
        metric(&primary, "custos_replication_backlog") == 0.0
    });
    assert!(metric(&primary, "custos_replication_resyncs_total") >= 2.0);
    eventually("the responder is healthy again", || {
        fetch(&format!("{}/healthz", responder.url)).2 == b"ok\n"
    });
    let (status, _, body) = fetch(&format!("{}/readyz", responder.url));
    assert_eq!((status, body.as_slice()), (200, b"ready\n".as_slice()));

    // An operator's resync through the running server.
    let out = custos(&data, &["replication", "resync"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The three devices' certificates and the HTTPS listener's own.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("published 4 unexpired certificates"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A revocation waiting for Redis survives kill -9 of the primary: Redis
    // frozen, revoke, kill the primary, thaw Redis (its data intact),
    // restart: the restarted primary publishes it from the ledger's log,
    // without a resync (Redis holds this ledger's generation).
    let signal = |sig: &str| {
        let pid = redis.child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let out = custos(&data, &["revoke", "--serial", &serial3.to_hex()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(primary); // SIGKILL
    signal("-CONT");
    let primary = Server::start(&data, &[]);
    eventually("the third revocation reaches the responder", || {
        openssl_status(&data, &leaf3, &responder.url).contains(": revoked")
    });
    // The responder may see it first through the write the killed primary
    // had already sent into Redis's socket; the log entry was still pending
    // (never acknowledged), so the restarted primary publishes it too.
    eventually("the restarted primary publishes the pending entry", || {
        metric(&primary, "custos_replication_published_total") >= 1.0
    });
    assert_eq!(metric(&primary, "custos_replication_resyncs_total"), 0.0);
    assert!(openssl_status(&data, &leaf2, &responder.url).contains(": revoked"));

    // The primary down: the responder keeps answering from Redis.
    drop(primary);
    for leaf in [&leaf, &leaf2, &leaf3] {
        assert!(openssl_status(&data, leaf, &responder.url).contains(": revoked"));
    }
    assert_eq!(fetch(&format!("{}/healthz", responder.url)).2, b"ok\n");
    drop(redis);
}

fn custos_issuer_id(server: &Server) -> String {
    let out = custos(&server.data_dir, &["crl", "show"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let url = text
        .split_whitespace()
        .find(|w| w.contains("/crl/"))
        .unwrap_or_else(|| panic!("no CRL URL in {text}"));
    url.split("/crl/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

fn metric(server: &Server, name: &str) -> f64 {
    let (_, _, body) = fetch(&format!("{}/metrics", server.http_url));
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn a_joined_responder_signs_nonce_requests_with_its_own_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (data, redis, _primary) = primary_on_redis(dir.path());
    let (leaf, serial) = issue(&data, dir.path(), "edge");
    let token = join_token(&data, "edge-1");
    assert!(token.starts_with("custos-join."), "{token}");

    // Bad enrolments are refused with a reason and change nothing: the
    // token still works afterwards.
    // POST over HTTPS: (status, body); with the admin token when `admin`.
    let post = |path: &str, body: &str, admin: bool| {
        let auth = format!("authorization: Bearer {}", _primary.token());
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/stderr", "-w", "%{http_code}", "--cacert"])
            .arg(data.join("ca/root.pem"))
            .args([
                "-H",
                "content-type: application/json",
                "--data-binary",
                body,
            ])
            .args(if admin {
                vec!["-H", auth.as_str()]
            } else {
                vec![]
            })
            .arg(format!("{}{path}", _primary.https_url))
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let enroll = |body: &str| post("/responder/enroll", body, false);
    let secret = custos::replication::enroll::JoinToken::decode(&token)
        .unwrap()
        .secret;
    let csr = p256_csr(&["edge-1"]);
    let csr_json = serde_json::to_string(&csr).unwrap();
    for (body, code, why) in [
        ("not json".to_string(), "400", "invalid JSON"),
        (
            format!("{{\"name\":\"edge 1\",\"secret\":\"{secret}\",\"csr\":{csr_json}}}"),
            "400",
            "responder names",
        ),
        (
            format!("{{\"name\":\"edge-1\",\"secret\":\"{secret}\",\"csr\":\"garbage\"}}"),
            "400",
            "CSR",
        ),
        (
            format!("{{\"name\":\"edge-1\",\"secret\":\"wrong\",\"csr\":{csr_json}}}"),
            "401",
            "wrong, used or expired",
        ),
        (
            format!("{{\"name\":\"nobody\",\"secret\":\"{secret}\",\"csr\":{csr_json}}}"),
            "401",
            "wrong, used or expired",
        ),
    ] {
        let (status, text) = enroll(&body);
        assert_eq!(status, code, "{body}: {text}");
        assert!(text.contains(why), "{body}: {text}");
    }

    // Without a key of its own, a nonce request gets the published answer.
    let plain = Responder::start(dir.path(), &redis.url());
    eventually("published", || {
        openssl_status(&data, &leaf, &plain.url).contains(": good")
    });
    let text = openssl_nonce(&data, &leaf, &plain.url);
    assert!(text.contains("WARNING: no nonce in response"), "{text}");
    drop(plain);

    // Joined: its own key and certificate, a fresh answer echoing the nonce.
    let rdir = dir.path().join("edge-1");
    let global = ["--data-dir", rdir.to_str().unwrap()];
    let joined = Responder::start_with(dir.path(), &redis.url(), &global, &["--join", &token]);
    let text = openssl_nonce(&data, &leaf, &joined.url);
    assert!(text.contains(": good"), "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
    let mode = std::fs::metadata(rdir.join("responder.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let cert = std::fs::read_to_string(rdir.join("responder.pem")).unwrap();
    let out = openssl_stdin(&["x509", "-noout", "-text"], cert.as_bytes());
    assert!(out.contains("OCSP Signing"), "{out}");
    assert!(out.contains("custos OCSP Responder edge-1"), "{out}");
    // Revoked: the fresh answer says so (status from Redis).
    let out = custos(&data, &["revoke", "--serial", &serial.to_hex()]);
    assert!(out.status.success());
    eventually("the joined responder signs revoked", || {
        openssl_nonce(&data, &leaf, &joined.url).contains(": revoked")
    });
    drop(joined);

    // The key is kept: a restart without the token still signs.
    let again = Responder::start_with(dir.path(), &redis.url(), &global, &[]);
    let text = openssl_nonce(&data, &leaf, &again.url);
    assert!(
        text.contains(": revoked") && !text.contains("WARNING"),
        "{text}"
    );

    // Its certificate is in the ledger like any other, and good.
    let kept_cert = dir.path().join("edge-1-responder.pem");
    std::fs::copy(rdir.join("responder.pem"), &kept_cert).unwrap();
    let renewal = std::fs::read_to_string(rdir.join("responder.renewal")).unwrap();
    let text = openssl_status(&data, &kept_cert, &_primary.http_url);
    assert!(text.contains(": good"), "{text}");

    // Revoking the responder: its certificate is revoked on the primary and
    // at the responders, the responder stops signing with that key (and
    // deletes it), and the primary refuses its renewal.
    let out = custos(
        &data,
        &[
            "responder",
            "revoke",
            "--name",
            "edge-1",
            "--reason",
            "keyCompromise",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("is revoked (keyCompromise)"), "{said}");
    let text = openssl_status(&data, &kept_cert, &_primary.http_url);
    assert!(
        text.contains(": revoked") && text.contains("keyCompromise"),
        "{text}"
    );
    eventually("the revoked responder stops signing", || {
        openssl_nonce(&data, &leaf, &again.url).contains("WARNING: no nonce in response")
    });
    assert!(!rdir.join("responder.key").exists());
    assert!(openssl_status(&data, &kept_cert, &again.url).contains(": revoked"));
    let body = format!(
        "{{\"name\":\"edge-1\",\"secret\":\"{}\",\"csr\":{csr_json}}}",
        renewal.trim()
    );
    let (status, text) = enroll(&body);
    assert_eq!(status, "401", "{text}");
    let out = custos(&data, &["audit", "--kind", "responder.revoke", "--json"]);
    let audit = String::from_utf8_lossy(&out.stdout);
    assert!(
        audit.contains("edge-1") && audit.contains("keyCompromise"),
        "{audit}"
    );
    drop(again);

    // A responder whose certificate was revoked by serial is refused too.
    let token2 = join_token(&data, "edge-3");
    let dir3 = dir.path().join("edge-3");
    let global3 = ["--data-dir", dir3.to_str().unwrap()];
    let third = Responder::start_with(dir.path(), &redis.url(), &global3, &["--join", &token2]);
    assert!(!openssl_nonce(&data, &leaf, &third.url).contains("WARNING"));
    // Bad revocation requests are refused with the reason and change
    // nothing: the third responder still signs and its certificate is good.
    let audit_before = custos(&data, &["audit", "--kind", "revocation", "--json"]).stdout;
    for (body, admin, code, why) in [
        (r#"{"name":"edge-3"}"#, false, "401", ""),
        ("not json", true, "400", "invalid JSON"),
        (r#"{"name":"edge 3"}"#, true, "400", "responder names"),
        (r#"{"name":"nobody"}"#, true, "404", "no responder is named"),
        (
            r#"{"name":"edge-3","reason":"certificateHold"}"#,
            true,
            "400",
            "certificateHold",
        ),
    ] {
        let (status, text) = post("/admin/responders/revoke", body, admin);
        assert_eq!(status, code, "{body}: {text}");
        assert!(text.contains(why), "{body}: {text}");
    }
    let out = custos(&data, &["responder", "revoke", "--name", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no responder is named"));
    assert_eq!(
        custos(&data, &["audit", "--kind", "revocation", "--json"]).stdout,
        audit_before
    );
    assert!(dir3.join("responder.key").exists());
    assert!(!openssl_nonce(&data, &leaf, &third.url).contains("WARNING"));
    let cert3 = dir3.join("responder.pem");
    assert!(openssl_status(&data, &cert3, &_primary.http_url).contains(": good"));
    let renewal3 = std::fs::read_to_string(dir3.join("responder.renewal")).unwrap();
    let serial3 = issued_serial_of(&dir3.join("responder.pem"));
    let out = custos(&data, &["revoke", "--serial", &serial3]);
    assert!(out.status.success());
    let body = format!(
        "{{\"name\":\"edge-3\",\"secret\":\"{}\",\"csr\":{csr_json}}}",
        renewal3.trim()
    );
    let (status, text) = enroll(&body);
    assert_eq!(status, "403", "{text}");
    assert!(text.contains("was revoked"), "{text}");
    eventually("the third responder stops signing", || {
        openssl_nonce(&data, &leaf, &third.url).contains("WARNING: no nonce in response")
    });
    drop(third);

    // An answer lost on the way can be asked again with the same secret,
    // until the secret it carried is used; then the older one is refused.
    let token4 = join_token(&data, "edge-4");
    let join4 = custos::replication::enroll::JoinToken::decode(&token4)
        .unwrap()
        .secret;
    let ask = |secret: &str| {
        let (status, text) = enroll(&format!(
            "{{\"name\":\"edge-4\",\"secret\":\"{secret}\",\"csr\":{csr_json}}}"
        ));
        let renewal = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["renewal_secret"].as_str().map(str::to_string));
        (status, renewal.unwrap_or(text))
    };
    let (status, _lost) = ask(&join4);
    assert_eq!(status, "200");
    let (status, s2) = ask(&join4);
    assert_eq!(status, "200", "the join could not be asked again: {s2}");
    let (status, lost) = ask(&s2);
    assert_eq!(status, "200", "{lost}");
    assert_eq!(ask(&join4).0, "401", "the join secret outlived the renewal");
    let (status, s4) = ask(&s2);
    assert_eq!(status, "200", "the renewal could not be asked again: {s4}");
    assert_eq!(ask(&s4).0, "200");
    assert_eq!(ask(&s2).0, "401", "a used renewal secret still works");
    assert_eq!(ask(&lost).0, "401", "a lost answer's secret works");

    // The join secret of a responder cut off works no more.
    let other = dir.path().join("edge-2");
    let out = Command::new(custos_bin())
        .args(["--data-dir", other.to_str().unwrap()])
        .args(["serve", "--role", "responder", "--redis", &redis.url()])
        .args(["--http", &free_addr(), "--join", &token])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the enrolment"), "{err}");
    assert!(!other.join("responder.key").exists());
}

/// A data dir with a CA in `dir`, a throwaway Redis, and a primary
/// publishing to it (`custos.toml` in `dir`, the tests' working dir).
fn primary_on_redis(dir: &Path) -> (PathBuf, Redis, Server) {
    let data = dir.join("data");
    assert!(custos(&data, &["init"]).status.success());
    let redis = Redis::start(free_port());
    std::fs::write(
        dir.join("custos.toml"),
        format!("[replication]\nredis = [\"{}\"]\n", redis.url()),
    )
    .unwrap();
    let primary = Server::start(&data, &[]);
    (data, redis, primary)
}

/// `custos responder token create --name NAME`'s token.
fn join_token(data: &Path, name: &str) -> String {
    let out = custos(data, &["responder", "token", "create", "--name", name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The CertID hashes of the data dir's issuing CA.
fn issuer_hashes_of(data: &Path) -> IssuerHashes {
    use der::Decode;
    let pem = std::fs::read(data.join("ca/intermediate.pem")).unwrap();
    let der = der::pem::decode_vec(&pem).unwrap().1;
    IssuerHashes::new(&x509_cert::Certificate::from_der(&der).unwrap()).unwrap()
}

/// The serial (uppercase hex) of a PEM certificate file.
fn issued_serial_of(pem: &Path) -> String {
    let out = openssl(&["x509", "-noout", "-serial", "-in", pem.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.trim()
        .trim_start_matches("serial=")
        .to_ascii_uppercase()
}

fn openssl_stdin(args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).to_string()
}

/// A cluster node's `redis-cli` answer.
fn node_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A cluster node on `port` (its cluster state in `conf`), failures noticed
/// within a second.
fn cluster_node(port: u16, conf: &Path) -> Redis {
    Redis::start_with(
        port,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            conf.to_str().unwrap(),
            "--cluster-node-timeout",
            "1000",
        ],
    )
}

#[test]
fn a_redis_cluster_carries_the_status_and_refills_a_node_restarted_empty() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(custos(&data, &["init"]).status.success());
    // Three primaries, no replicas, each with its own cluster state file.
    let confs: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("nodes-{i}.conf")))
        .collect();
    let mut nodes: Vec<Option<Redis>> = confs
        .iter()
        .map(|conf| Some(cluster_node(free_port(), conf)))
        .collect();
    let ports: Vec<u16> = nodes.iter().flatten().map(|n| n.port).collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli (redis-tools) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let cluster_state = |port: u16| node_cli(port, &["cluster", "info"]);
    eventually("the cluster is up", || {
        cluster_state(ports[0]).contains("cluster_state:ok")
    });
    let urls: Vec<String> = nodes.iter().flatten().map(Redis::url).collect();
    std::fs::write(
        dir.path().join("custos.toml"),
        format!(
            "[replication]\nredis = [{}]\n",
            urls.iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .unwrap();
    let _primary = Server::start(&data, &[]);
    let (leaf, serial) = issue(&data, dir.path(), "clustered");
    let responder = Responder::start(dir.path(), &urls.join(","));
    eventually("the responder answers good through the cluster", || {
        openssl_status(&data, &leaf, &responder.url).contains(": good")
    });
    let out = custos(&data, &["revoke", "--serial", &serial.to_hex()]);
    assert!(out.status.success());
    eventually(
        "the revocation reaches the responder through the cluster",
        || openssl_status(&data, &leaf, &responder.url).contains(": revoked"),
    );
    // The keys are spread over the nodes, not all on one.
    let keys_on = |port: u16| node_cli(port, &["dbsize"]).parse::<u64>().unwrap_or(0);
    let holding = ports.iter().filter(|p| keys_on(**p) > 0).count();
    assert!(holding >= 2, "keys on {holding} of 3 nodes");

    // One node lost and restarted empty (no persistence), while the primary
    // goes on revoking: a node that does not hold the generation key, so
    // only the per-node markers can tell the primary that its keys are gone.
    let leaves: Vec<(PathBuf, custos::serial::Serial)> = (0..8)
        .map(|i| issue(&data, dir.path(), &format!("node-loss-{i}")))
        .collect();
    let status = String::from_utf8_lossy(&custos(&data, &["status"]).stdout).into_owned();
    let issuer = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("issuer id:"))
        .map(|s| s.trim().to_string())
        .unwrap();
    let generation = format!("custos:{issuer}:generation");
    let lost = (0..3)
        .find(|i| node_cli(ports[*i], &["exists", &generation]) != "1" && keys_on(ports[*i]) > 0)
        .expect("a node holding keys but not the generation key");
    eventually("every certificate reaches Redis", || {
        leaves
            .iter()
            .all(|(leaf, _)| openssl_status(&data, leaf, &responder.url).contains(": good"))
    });
    let before = keys_on(ports[lost]);
    drop(nodes[lost].take());
    eventually("the cluster notices the lost node", || {
        cluster_state(ports[(lost + 1) % 3]).contains("cluster_state:fail")
    });
    let (revoked_leaf, revoked_serial) = &leaves[0];
    let out = custos(&data, &["revoke", "--serial", &revoked_serial.to_hex()]);
    assert!(
        out.status.success(),
        "a revocation is accepted while a node is down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    nodes[lost] = Some(cluster_node(ports[lost], &confs[lost]));
    eventually("the cluster is whole again", || {
        (0..3).all(|i| cluster_state(ports[i]).contains("cluster_state:ok"))
    });
    eventually("the primary refills the restarted node", || {
        keys_on(ports[lost]) >= before
    });
    // A responder that starts now has nothing cached: every answer comes
    // from what Redis holds after the refill.
    let fresh_dir = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh_dir).unwrap();
    let fresh = Responder::start(&fresh_dir, &urls.join(","));
    eventually(
        "the revocation made while a node was down, and every other certificate, are in Redis",
        || {
            openssl_status(&data, revoked_leaf, &fresh.url).contains(": revoked")
                && leaves[1..]
                    .iter()
                    .all(|(leaf, _)| openssl_status(&data, leaf, &fresh.url).contains(": good"))
        },
    );
    assert!(openssl_status(&data, revoked_leaf, &responder.url).contains(": revoked"));
}

/// Resyncs and refreshes racing revocations: once the log is drained, Redis
/// says revoked for every acknowledged revocation (status record and both
/// responses), and so does a responder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resyncs_and_refreshes_never_undo_a_revocation_in_redis() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serials = crate::hardening::fill(&data, 2000);
    let redis = Redis::start(free_port());
    std::fs::write(
        dir.path().join("custos.toml"),
        format!("[replication]\nredis = [\"{}\"]\n", redis.url()),
    )
    .unwrap();
    let server = Server::start(&data, &[]);
    let https = server.https_client();
    let token = server.token();
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let background = ["/admin/replication/resync", "/admin/ocsp/refresh"].map(|path| {
            let (https, token) = (https.clone(), token.clone());
            let url = format!("{}{path}", server.https_url);
            tokio::spawn(async move {
                let r = https.post(url).bearer_auth(token).send().await.unwrap();
                assert_eq!(r.status(), 200);
            })
        });
        for s in serials.iter().skip(round * 600).step_by(6).take(100) {
            let r = https
                .post(format!("{}/admin/revoke", server.https_url))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "serial": s.to_hex(), "reason": "keyCompromise" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            acknowledged.push(s.clone());
        }
        for b in background {
            b.await.unwrap();
        }
    }
    let check = tokio::task::spawn_blocking(move || {
        eventually("the log drains", || {
            metric(&server, "custos_replication_backlog") == 0.0
        });
        let issuer = custos_issuer_id(&server);
        let keys = custos::replication::Keys::new("custos", &issuer);
        let mut conn = redis::Client::open(redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let mut wrong = Vec::new();
        for s in &acknowledged {
            let status: String = redis::cmd("GET")
                .arg(keys.status(s))
                .query(&mut conn)
                .unwrap();
            if !status.starts_with("revoked ") {
                wrong.push(format!("{} status {status}", s.to_hex()));
            }
            for alg in [HashAlg::Sha1, HashAlg::Sha256] {
                let v: Vec<u8> = redis::cmd("GET")
                    .arg(keys.ocsp(alg.tag(), s))
                    .query(&mut conn)
                    .unwrap();
                let r = custos::replication::StoredResponse::decode(&v).unwrap();
                if r.status != 1 {
                    wrong.push(format!("{} {alg:?} response good", s.to_hex()));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {}: {wrong:?}",
            wrong.len(),
            acknowledged.len() * 3
        );
        let responder = Responder::start(dir.path(), &redis.url());
        for s in acknowledged.iter().step_by(10) {
            let hashes = crate::hardening::issuer_hashes(&data);
            let body = fetch(&format!("{}{}", responder.url, get_path(&hashes, s))).2;
            let (_, _, primary) = fetch(&format!("{}{}", server.http_url, get_path(&hashes, s)));
            assert!(
                is_revoked_der(&body) && is_revoked_der(&primary),
                "{}",
                s.to_hex()
            );
        }
    });
    check.await.unwrap();
}

/// Whether an OCSP response's first answer says revoked.
fn is_revoked_der(der: &[u8]) -> bool {
    use custos_ocsp::x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse};
    use der::Decode;
    let Some(bytes) = OcspResponse::from_der(der)
        .ok()
        .and_then(|r| r.response_bytes)
    else {
        return false;
    };
    BasicOcspResponse::from_der(bytes.response.as_bytes())
        .ok()
        .and_then(|b| b.tbs_response_data.responses.first().cloned())
        .is_some_and(|r| matches!(r.cert_status, CertStatus::Revoked(_)))
}

/// nginx as README's "Scaling out" runs it, in the foreground, killed on drop.
struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// README's loopback example with `examples/scale-out/nginx.conf` itself
/// (its ports swapped for free ones): a primary, two joined responders,
/// nginx in front. Nonce requests are signed by both responders, GETs are
/// cached by nginx, a revocation reaches clients through it, and it keeps
/// answering with one responder down.
#[test]
fn two_responders_behind_nginx_as_the_readme_shows() {
    let dir = tempfile::tempdir().unwrap();
    let (data, redis, primary) = primary_on_redis(dir.path());
    let (leaf, serial) = issue(&data, dir.path(), "laptop");
    let mut responders = Vec::new();
    for name in ["edge-1", "edge-2"] {
        let token = join_token(&data, name);
        let rdir = dir.path().join(name);
        let global = ["--data-dir", rdir.to_str().unwrap()];
        responders.push(Responder::start_with(
            dir.path(),
            &redis.url(),
            &global,
            &["--join", &token],
        ));
    }

    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scale-out/nginx.conf"),
    )
    .unwrap();
    let front = free_addr();
    let conf = conf
        .replace("127.0.0.1:9080", &front)
        .replace(
            "127.0.0.1:9081",
            responders[0].url.trim_start_matches("http://"),
        )
        .replace(
            "127.0.0.1:9082",
            responders[1].url.trim_start_matches("http://"),
        );
    let ndir = dir.path().join("nginx");
    std::fs::create_dir(&ndir).unwrap();
    std::fs::write(ndir.join("nginx.conf"), conf).unwrap();
    let nginx_bin = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|b| Command::new(b).arg("-v").output().is_ok())
        .expect("nginx must be installed (see .ci/setup)");
    let log = std::fs::File::create(dir.path().join("nginx.log")).unwrap();
    // Root here (CI): workers would otherwise run as nobody, who cannot
    // enter the temp dir.
    let _nginx = Nginx {
        child: Command::new(nginx_bin)
            .arg("-p")
            .arg(&ndir)
            .args([
                "-e",
                "stderr",
                "-c",
                "nginx.conf",
                "-g",
                "daemon off; user root;",
            ])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    };
    let via = format!("http://{front}");
    eventually("nginx answers", || {
        std::net::TcpStream::connect(&front).is_ok()
    });

    // Nonce requests through nginx: signed fresh by either responder, with
    // its own key; both take a share.
    for _ in 0..6 {
        let text = openssl_nonce(&data, &leaf, &via);
        assert!(text.contains(": good"), "{text}");
        assert!(
            text.contains("Response verify OK") && !text.contains("WARNING"),
            "{text}"
        );
    }
    let signed = |r: &Responder| {
        let (_, _, body) = fetch(&format!("{}/metrics", r.url));
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with("custos_responder_answers_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert!(signed(&responders[0]) > 0.0 && signed(&responders[1]) > 0.0);

    // GETs: the primary's bytes, the second one from nginx's cache.
    let path = get_path(&issuer_hashes_of(&data), &serial);
    let (_, _, direct) = fetch(&format!("{}{path}", primary.http_url));
    let (s1, _, b1) = fetch(&format!("{via}{path}"));
    let (s2, h2, b2) = fetch(&format!("{via}{path}"));
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, direct);
    assert_eq!(b2, direct);
    assert_eq!(header(&h2, "x-cache-status"), Some("HIT"));
    let (s, _, crl) = fetch(&format!("{via}/ca/root.pem"));
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&crl));

    // A revocation reaches both responders (GET, POST, nonce), and clients
    // through nginx (POST is never cached).
    assert!(custos(&data, &["revoke", "--serial", &serial.to_hex()])
        .status
        .success());
    let revoked_at = Instant::now();
    for r in &responders {
        eventually("GET says revoked at each responder", || {
            is_revoked_der(&fetch(&format!("{}{path}", r.url)).2)
        });
    }
    eprintln!(
        "both responders answer revoked {} ms after the revoke command returned",
        revoked_at.elapsed().as_millis()
    );
    for r in &responders {
        assert!(openssl_status(&data, &leaf, &r.url).contains(": revoked"));
        let text = openssl_nonce(&data, &leaf, &r.url);
        assert!(
            text.contains(": revoked") && !text.contains("WARNING"),
            "{text}"
        );
    }
    eventually("revoked through nginx", || {
        openssl_status(&data, &leaf, &via).contains(": revoked")
    });
    let text = openssl_nonce(&data, &leaf, &via);
    assert!(
        text.contains(": revoked") && !text.contains("WARNING"),
        "{text}"
    );

    // One responder down: nginx asks the other.
    drop(responders.remove(0));
    for _ in 0..4 {
        let text = openssl_nonce(&data, &leaf, &via);
        assert!(text.contains(": revoked"), "{text}");
    }
}
