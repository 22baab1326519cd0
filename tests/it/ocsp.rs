//! The OCSP responder checked with the real `openssl ocsp` client against a
//! running `custos serve`.

use crate::common;

use common::{openssl, p256_csr, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

struct Fixture {
    server: Server,
    dir: PathBuf,
    issuer: String,
    root: String,
}

impl Fixture {
    fn url(&self) -> String {
        format!("{}/ocsp", self.server.http_url)
    }

    async fn issue(&self, name: &str) -> (String, String) {
        let https = self.server.https_client();
        let r: Value = https
            .post(format!("{}/admin/certificates", self.server.https_url))
            .bearer_auth(self.server.token())
            .json(&json!({ "csr": p256_csr(&[name]) }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let path = self.dir.join(format!("{name}.pem"));
        std::fs::write(&path, r["certificate_pem"].as_str().unwrap()).unwrap();
        (
            r["serial"].as_str().unwrap().to_string(),
            path.to_string_lossy().into_owned(),
        )
    }

    async fn revoke(&self, serial: &str, reason: &str) {
        let https = self.server.https_client();
        let r = https
            .post(format!("{}/admin/revoke", self.server.https_url))
            .bearer_auth(self.server.token())
            .json(&json!({ "serial": serial, "reason": reason }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// `openssl ocsp` against the server; returns stdout+stderr.
    fn ask(&self, certs: &[&str], extra: &[&str]) -> String {
        let url = self.url();
        // Digest options must come before -cert.
        let mut args = vec![
            "ocsp",
            "-issuer",
            &self.issuer,
            "-CAfile",
            &self.root,
            "-url",
            &url,
        ];
        args.extend_from_slice(extra);
        for c in certs {
            args.push("-cert");
            args.push(c);
        }
        let out = openssl(&args);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

fn start(data: &Path, dir: &Path) -> Fixture {
    let server = Server::start(data, &[]);
    Fixture {
        issuer: data
            .join("ca/intermediate.pem")
            .to_string_lossy()
            .into_owned(),
        root: data.join("ca/root.pem").to_string_lossy().into_owned(),
        server,
        dir: dir.to_path_buf(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_sees_good_then_revoked_over_post_and_get() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fx = start(&data, tmp.path());
    let (serial_a, leaf_a) = fx.issue("a.example").await;
    let (_, leaf_b) = fx.issue("b.example").await;

    // POST with a nonce (OpenSSL's default), without, and with SHA-256 CertIDs.
    for extra in [
        &[][..],
        &["-no_nonce"][..],
        &["-sha256"][..],
        &["-sha256", "-no_nonce"][..],
    ] {
        let out = fx.ask(&[&leaf_a], extra);
        assert!(out.contains("Response verify OK"), "{extra:?}: {out}");
        assert!(out.contains(&format!("{leaf_a}: good")), "{extra:?}: {out}");
        assert!(!out.contains("WARNING"), "{extra:?}: {out}");
    }
    // Two certificates in one request.
    let out = fx.ask(&[&leaf_a, &leaf_b], &[]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(
        out.contains(&format!("{leaf_a}: good")) && out.contains(&format!("{leaf_b}: good")),
        "{out}"
    );

    // GET, percent-encoded, with caching headers and a 304 on If-None-Match.
    let req_file = tmp.path().join("req.der");
    let o = openssl(&[
        "ocsp",
        "-issuer",
        &fx.issuer,
        "-cert",
        &leaf_a,
        "-no_nonce",
        "-reqout",
        req_file.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let req = std::fs::read(&req_file).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&req);
    let encoded = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let client = reqwest::Client::new();
    let get_url = format!("{}/{encoded}", fx.url());
    let r = client.get(&get_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/ocsp-response");
    let cc = r.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(
        cc.contains("max-age=")
            && cc.contains("public")
            && cc.contains("no-transform")
            && cc.contains("must-revalidate"),
        "{cc}"
    );
    assert!(r.headers().contains_key("last-modified") && r.headers().contains_key("expires"));
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let body = r.bytes().await.unwrap();
    let resp_file = tmp.path().join("resp.der");
    std::fs::write(&resp_file, &body).unwrap();
    let o = openssl(&[
        "ocsp",
        "-respin",
        resp_file.to_str().unwrap(),
        "-issuer",
        &fx.issuer,
        "-cert",
        &leaf_a,
        "-CAfile",
        &fx.root,
    ]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    let r = client
        .get(&get_url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // Unencoded base64 (literal '+' and '/') works too.
    let r = client
        .get(format!("{}/{b64}", fx.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), body);

    // Revoke: the next answer says revoked, on every path.
    fx.revoke(&serial_a, "keyCompromise").await;
    for extra in [&[][..], &["-no_nonce"][..], &["-sha256", "-no_nonce"][..]] {
        let out = fx.ask(&[&leaf_a], extra);
        assert!(out.contains("Response verify OK"), "{extra:?}: {out}");
        assert!(
            out.contains(&format!("{leaf_a}: revoked")),
            "{extra:?}: {out}"
        );
        assert!(out.contains("Reason: keyCompromise"), "{extra:?}: {out}");
    }
    let r = client.get(&get_url).send().await.unwrap();
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);

    // A CertID hash we do not serve (SHA-384): unauthorized, never good.
    let out = fx.ask(&[&leaf_b], &["-sha384", "-no_nonce"]);
    assert!(out.contains("unauthorized"), "{out}");
    // A serial we never issued, and garbage.
    let out = fx.ask(&[], &["-serial", "0x1234567890", "-no_nonce"]);
    assert!(out.contains("unauthorized"), "{out}");
    let r = client.post(fx.url()).body("garbage").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        &r.bytes().await.unwrap()[..],
        &[0x30, 0x03, 0x0a, 0x01, 0x01]
    );
    let r = client
        .get(format!("{}/%%%", fx.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        &r.bytes().await.unwrap()[..],
        &[0x30, 0x03, 0x0a, 0x01, 0x01]
    );
    let r = client.put(fx.url()).body("x").send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = client
        .post(fx.url())
        .body(vec![0u8; 20_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // Still revoked after a restart.
    let Fixture { server, .. } = fx;
    assert!(server.terminate().success());
    let fx = start(&data, tmp.path());
    let out = fx.ask(&[&leaf_a], &["-no_nonce"]);
    assert!(
        out.contains("Response verify OK") && out.contains(&format!("{leaf_a}: revoked")),
        "{out}"
    );
    let out = fx.ask(&[&leaf_b], &[]);
    assert!(out.contains(&format!("{leaf_b}: good")), "{out}");

    let m = client
        .get(format!("{}/metrics", fx.server.http_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("custos_ocsp_precomputed_hits_total"), "{m}");
    assert!(m.contains("custos_ocsp_fresh_signatures_total"), "{m}");
}
