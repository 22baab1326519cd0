//! The CRL publisher checked with the real `openssl crl` and `openssl verify
//! -crl_check` against a running `custos serve` with several shards.

use crate::common;

use common::{custos, custos_ok, ocsp_says, openssl, p256_csr, Server};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SHARDS: u32 = 3;

struct Fixture {
    server: Server,
    dir: PathBuf,
    data: PathBuf,
}

struct Leaf {
    serial: String,
    shard: u32,
    pem: String,
}

impl Fixture {
    fn start(dir: &Path) -> Fixture {
        Fixture::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[&str]) -> Fixture {
        let data = dir.join("data");
        Fixture {
            server: Server::start(&data, extra),
            dir: dir.to_path_buf(),
            data,
        }
    }

    fn restart(self) -> Fixture {
        assert!(self.server.terminate().success());
        Fixture::start(&self.dir)
    }

    async fn issue(&self, name: &str) -> Leaf {
        let r: Value = self
            .server
            .https_client()
            .post(format!("{}/admin/certificates", self.server.https_url))
            .bearer_auth(self.server.token())
            .json(&json!({ "csr": p256_csr(&[name]) }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let pem = self.dir.join(format!("{name}.pem"));
        std::fs::write(&pem, r["certificate_pem"].as_str().unwrap()).unwrap();
        Leaf {
            serial: r["serial"].as_str().unwrap().to_string(),
            shard: r["crl_shard"].as_u64().unwrap() as u32,
            pem: pem.to_string_lossy().into_owned(),
        }
    }

    async fn revoke(&self, serial: &str, reason: &str) {
        let r = self
            .server
            .https_client()
            .post(format!("{}/admin/revoke", self.server.https_url))
            .bearer_auth(self.server.token())
            .json(&json!({ "serial": serial, "reason": reason }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    fn issuer_id(&self) -> String {
        let out = custos(&self.data, &["status"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("issuer id:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("no issuer id in: {text}"))
    }

    fn url(&self, issuer: &str, file: &str) -> String {
        format!("{}/crl/{issuer}/{file}", self.server.http_url)
    }

    /// Fetches a shard's DER CRL and writes it (and its PEM) to files.
    async fn fetch(&self, issuer: &str, shard: u32) -> (PathBuf, PathBuf) {
        let der = reqwest::get(self.url(issuer, &format!("{shard}.crl")))
            .await
            .unwrap();
        assert_eq!(der.status(), 200);
        assert_eq!(der.headers()["content-type"], "application/pkix-crl");
        let der = der.bytes().await.unwrap();
        let pem = reqwest::get(self.url(issuer, &format!("{shard}.pem")))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let d = self.dir.join(format!("shard{shard}.crl"));
        let p = self.dir.join(format!("shard{shard}.crl.pem"));
        std::fs::write(&d, &der).unwrap();
        std::fs::write(&p, pem).unwrap();
        (d, p)
    }

    fn text(&self, crl_der: &Path) -> String {
        let chain = self.data.join("ca/chain.pem");
        let out = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            crl_der.to_str().unwrap(),
            "-CAfile",
            chain.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{all}");
        assert!(all.contains("verify OK"), "{all}");
        all
    }

    fn verify(&self, leaf: &Leaf, crl_pem: &Path) -> (bool, String) {
        let root = self.data.join("ca/root.pem");
        let inter = self.data.join("ca/intermediate.pem");
        let out = openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            inter.to_str().unwrap(),
            "-CRLfile",
            crl_pem.to_str().unwrap(),
            &leaf.pem,
        ]);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

fn crl_number(text: &str) -> u64 {
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.contains("X509v3 CRL Number") {
            return lines.next().unwrap().trim().parse().unwrap();
        }
    }
    panic!("no CRL number in {text}");
}

/// Serials (upper-case hex, no separators) listed in `openssl crl -text`.
fn listed(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
        .map(norm)
        .collect()
}

fn norm(serial: &str) -> String {
    serial
        .trim()
        .replace(':', "")
        .trim_start_matches('0')
        .to_ascii_uppercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_verify_list_revocations_within_a_second_and_survive_restarts() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let publish = tmp.path().join("public");
    std::fs::write(
        tmp.path().join("custos.toml"),
        format!(
            "[crl]\nshards = {SHARDS}\ndebounce_ms = 100\npublish_dir = {:?}\n",
            publish.to_str().unwrap()
        ),
    )
    .unwrap();
    let fx = Fixture::start(tmp.path());
    let issuer = fx.issuer_id();

    // Enough certificates that every shard gets some.
    let mut leaves = Vec::new();
    for i in 0..12 {
        leaves.push(fx.issue(&format!("d{i}.example")).await);
    }
    let shards_used: std::collections::BTreeSet<u32> = leaves.iter().map(|l| l.shard).collect();
    assert!(shards_used.iter().all(|s| *s < SHARDS));

    // Every shard is published at start, verifies, and names its own URL.
    let mut first_numbers = HashMap::new();
    for shard in 0..SHARDS {
        let (der, pem) = fx.fetch(&issuer, shard).await;
        let text = fx.text(&der);
        assert!(
            text.contains("Issuing Distribution Point: critical"),
            "{text}"
        );
        assert!(
            text.contains(&format!("URI:{}", fx.url(&issuer, &format!("{shard}.crl")))),
            "{text}"
        );
        assert!(text.contains("Only User Certificates"), "{text}");
        assert!(text.contains("No Revoked Certificates"), "{text}");
        first_numbers.insert(shard, crl_number(&text));
        // A good certificate of this shard passes a CRL check against it.
        if let Some(leaf) = leaves.iter().find(|l| l.shard == shard) {
            let (ok, out) = fx.verify(leaf, &pem);
            assert!(ok, "{out}");
        }
    }

    // Revoke one per shard (when the shard has one), with several reasons.
    let reasons = ["keyCompromise", "unspecified", "superseded"];
    let mut revoked = Vec::new();
    for (i, shard) in shards_used.iter().enumerate() {
        let leaf = leaves.iter().find(|l| l.shard == *shard).unwrap();
        fx.revoke(&leaf.serial, reasons[i % reasons.len()]).await;
        let t = Instant::now();
        // Within a second of the revocation call returning, its shard's
        // CRL lists it.
        loop {
            let (der, _) = fx.fetch(&issuer, leaf.shard).await;
            if listed(&fx.text(&der)).contains(&norm(&leaf.serial)) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "{} not on the CRL of shard {} after 1 s: {}",
                leaf.serial,
                leaf.shard,
                fx.text(&der)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        revoked.push(leaf);
    }

    // Each revoked serial is in exactly one shard, its own; the reasons are
    // written (none for unspecified); OpenSSL rejects revoked leaves and
    // accepts the others.
    let mut seen: HashMap<String, u32> = HashMap::new();
    for shard in 0..SHARDS {
        let (der, pem) = fx.fetch(&issuer, shard).await;
        let text = fx.text(&der);
        assert!(crl_number(&text) > first_numbers[&shard] || !shards_used.contains(&shard));
        for s in listed(&text) {
            assert!(seen.insert(s, shard).is_none(), "a serial in two shards");
        }
        for leaf in leaves.iter().filter(|l| l.shard == shard) {
            let (ok, out) = fx.verify(leaf, &pem);
            let is_revoked = revoked.iter().any(|r| r.serial == leaf.serial);
            assert_eq!(ok, !is_revoked, "{}: {out}", leaf.serial);
            if is_revoked {
                assert!(out.contains("certificate revoked"), "{out}");
            }
        }
        if shard == revoked[0].shard {
            assert!(text.contains("Key Compromise"), "{text}");
        }
        // The publish directory holds the same bytes.
        let file = publish.join(&issuer).join(format!("{shard}.crl"));
        assert_eq!(std::fs::read(file).unwrap(), std::fs::read(&der).unwrap());
    }
    assert_eq!(seen.len(), revoked.len());
    for r in &revoked {
        assert_eq!(seen[&norm(&r.serial)], r.shard);
    }

    // Caching headers and 304.
    let http = reqwest::Client::new();
    let r = http.get(fx.url(&issuer, "0.crl")).send().await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let cc = r.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(cc.starts_with("max-age=") && cc.contains("public"), "{cc}");
    let max_age: u64 = cc["max-age=".len()..]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age <= 3600,
        "max-age {max_age} beyond the next hourly regeneration"
    );
    assert!(r.headers().contains_key("last-modified"));
    let r = http
        .get(fx.url(&issuer, "0.crl"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // Unknown issuer, shard or file name: 404.
    for path in [
        fx.url("nosuchissuer", "0.crl"),
        fx.url(&issuer, &format!("{SHARDS}.crl")),
        fx.url(&issuer, "01.crl"),
        fx.url(&issuer, "0.der"),
        fx.url(&issuer, "-1.crl"),
        fx.url(&issuer, "99999999999999999999.crl"),
    ] {
        assert_eq!(reqwest::get(&path).await.unwrap().status(), 404, "{path}");
    }

    // CRL Numbers keep growing across restarts and offline generation.
    let (der, _) = fx.fetch(&issuer, 0).await;
    let before = crl_number(&fx.text(&der));
    let fx = fx.restart();
    let (der, _) = fx.fetch(&issuer, 0).await;
    let after_restart = crl_number(&fx.text(&der));
    assert!(after_restart >= before);
    let out = custos(&fx.data, &["crl", "generate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (der, _) = fx.fetch(&issuer, 0).await;
    let regenerated = crl_number(&fx.text(&der));
    assert!(regenerated > after_restart && regenerated > before);
    let out = custos(&fx.data, &["crl", "show"]);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(shown.lines().count(), 1 + SHARDS as usize, "{shown}");
    assert!(shown.contains(&fx.url(&issuer, "0.crl")), "{shown}");
    assert!(fx.server.terminate().success());

    // Offline: the CLI opens the ledger itself; numbers still grow.
    let out = custos(&fx.data, &["crl", "generate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    let number: u64 = shown
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(number > regenerated, "{shown}");

    // Revoked while the server is down: the CRL stored for its shard misses
    // it. The next server accepts at once and answers OCSP `revoked`, and
    // holds that shard's CRL until the re-signed one is out (its start-up
    // catch-up delayed here so that requests arrive before it): no answer
    // ever says the certificate is good.
    let leaf = leaves
        .iter()
        .find(|l| !revoked.iter().any(|r| r.serial == l.serial))
        .unwrap();
    custos_ok(
        &fx.data,
        &[
            "revoke",
            "--serial",
            &leaf.serial,
            "--reason",
            "keyCompromise",
        ],
    );
    let started = Instant::now();
    let fx = Fixture::start_with(&fx.dir, &["--delay-catch-up-ms", "5000"]);
    // Alive, not ready: the shard is held and the catch-up waits.
    let get = |path: &str| {
        let url = format!("{}{path}", fx.server.http_url);
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await, (200, "ok\n".to_string()));
    let (status, text) = get("/readyz").await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("CRL shards held") && text.contains("start-up"),
        "{text}"
    );
    let says = ocsp_says(&fx.server, Path::new(&leaf.pem));
    let ocsp_at = started.elapsed();
    assert!(says.contains(": revoked"), "{says}");
    let (der, _) = fx.fetch(&issuer, leaf.shard).await;
    let crl_at = started.elapsed();
    let text = fx.text(&der);
    assert!(listed(&text).contains(&norm(&leaf.serial)), "{text}");
    assert!(crl_number(&text) > number, "{text}");
    assert!(
        ocsp_at < Duration::from_secs(5) && crl_at >= Duration::from_secs(5),
        "OCSP answered after {ocsp_at:?} (before the catch-up), the CRL after {crl_at:?} (held until it)"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, text) = get("/readyz").await;
        if status == 200 {
            assert_eq!(text, "ready\n");
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fx.server.terminate().success());
}
