//! End to end: the real `custos` binary serving on loopback, the admin API
//! over real HTTPS, and the CLI finding the running server.

use crate::common;

use common::{custos, p256_csr, Server};
use serde_json::{json, Value};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_health_admin_api_and_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // No init: the CA is created on first start.
    let server = Server::start(&data, &[]);
    assert!(data.join("ca/root.pem").exists());
    assert!(data.join("ca/chain.pem").exists());

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let plain = reqwest::Client::new();
    let health = plain
        .get(format!("{}/healthz", server.http_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let https = server.https_client();
    let health = https
        .get(format!("{}/healthz", server.https_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // The issuing CA certificate is where AIA says.
    let issuer_id = {
        let s: Value = https
            .get(format!("{}/admin/status", server.https_url))
            .bearer_auth(server.token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s["issuer_id"].as_str().unwrap().to_string()
    };
    let crt = plain
        .get(format!("{}/ca/{issuer_id}.crt", server.http_url))
        .send()
        .await
        .unwrap();
    assert_eq!(crt.status(), 200);
    assert_eq!(crt.headers()["content-type"], "application/pkix-cert");

    let certs_url = format!("{}/admin/certificates", server.https_url);
    // Without or with a wrong token: 401 and nothing issued.
    let body = json!({ "csr": p256_csr(&["x.example"]) });
    let r = https.post(&certs_url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = https
        .post(&certs_url)
        .bearer_auth("wrong-token-wrong-token-wrong-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Oversized body: 413.
    let big = json!({ "csr": "A".repeat(70 * 1024) });
    let r = https
        .post(&certs_url)
        .bearer_auth(server.token())
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Garbage CSR: 400 with a reason.
    let r = https
        .post(&certs_url)
        .bearer_auth(server.token())
        .json(&json!({ "csr": "nonsense" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("PKCS#10"), "{err}");

    let list: Value = https
        .get(&certs_url)
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Only the HTTPS listener's own certificate so far.
    assert_eq!(list["certificates"].as_array().unwrap().len(), 1, "{list}");

    // Issue over the admin API.
    let r = https
        .post(&certs_url)
        .bearer_auth(server.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let issued: Value = r.json().await.unwrap();
    let serial = issued["serial"].as_str().unwrap().to_string();
    assert!(issued["certificate_pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));

    // Unknown serial: 404; bad serial: 400.
    let r = https
        .get(format!("{certs_url}/0123AB"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = https
        .get(format!("{certs_url}/xyz"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // certificateHold is refused.
    let r = https
        .post(format!("{}/admin/revoke", server.https_url))
        .bearer_auth(server.token())
        .json(&json!({ "serial": serial, "reason": "certificateHold" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The CLI works through the running server.
    let csr_file = tmp.path().join("device.csr");
    std::fs::write(&csr_file, p256_csr(&["cli.example"])).unwrap();
    let out_file = tmp.path().join("device.pem");
    let o = custos(
        &data,
        &[
            "issue",
            "--csr",
            csr_file.to_str().unwrap(),
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cli_serial = common::issued_serial(&stderr(&o));
    let o = custos(
        &data,
        &[
            "revoke",
            "--serial",
            &cli_serial,
            "--reason",
            "keyCompromise",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("revoked (keyCompromise"),
        "{}",
        stdout(&o)
    );
    let o = custos(&data, &["certs", "show", "--serial", &cli_serial]);
    assert!(
        stdout(&o).contains("status:       revoked"),
        "{}",
        stdout(&o)
    );
    let o = custos(&data, &["revoke", "--serial", &serial, "--reason", "bogus"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown revocation reason"),
        "{}",
        stderr(&o)
    );
    let o = custos(&data, &["status"]);
    assert!(stdout(&o).contains("running"), "{}", stdout(&o));
    let o = custos(&data, &["certs", "list"]);
    assert!(
        stdout(&o).contains(&serial) && stdout(&o).contains(&cli_serial),
        "{}",
        stdout(&o)
    );

    // A second server on the same data dir is refused with a clear message.
    let o = custos(
        &data,
        &["serve", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already serving"), "{}", stderr(&o));

    // Metrics count what happened.
    let m = plain
        .get(format!("{}/metrics", server.http_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("custos_certificates_issued_total 2"), "{m}");
    assert!(
        m.contains("custos_certificates_revoked_total{reason=\"keyCompromise\"} 1"),
        "{m}"
    );
    assert!(m.contains("custos_http_requests_total{listener=\"https\",method=\"POST\",route=\"/admin/certificates\",status=\"401\"} 2"), "{m}");

    // SIGTERM: clean exit, server.json gone; the ledger is then usable directly.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!data.join("server.json").exists());
    let o = custos(&data, &["certs", "show", "--serial", &cli_serial]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("keyCompromise"), "{}", stdout(&o));
    let o = custos(&data, &["revoke", "--device", "no-such-device"]);
    assert!(!o.status.success());
}

#[test]
fn broken_files_give_one_line_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = custos(&data, &["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("root SHA-256"));

    // A second init refuses.
    let o = custos(&data, &["init"]);
    assert!(!o.status.success());

    // Corrupt CA key.
    let key = data.join("ca/intermediate.key");
    let good = std::fs::read(&key).unwrap();
    std::fs::write(&key, "garbage").unwrap();
    let o = custos(&data, &["status"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("intermediate.key"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    std::fs::write(&key, good).unwrap();

    // Corrupt config file.
    let cfg = tmp.path().join("custos.toml");
    std::fs::write(&cfg, "http_listen = 12\n[crl]\nshards = \"x\"\n").unwrap();
    let o = custos(&data, &["--config", cfg.to_str().unwrap(), "status"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("custos.toml"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    // custos.toml in the working directory is read without --config.
    let o = custos(&data, &["status"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("custos.toml"), "{}", stderr(&o));
    std::fs::remove_file(&cfg).unwrap();
    // Environment overrides are checked like the file.
    let o = std::process::Command::new(common::custos_bin())
        .args(["--data-dir", data.to_str().unwrap(), "status"])
        .env("CUSTOS_CRL__SHARDS", "0")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("crl.shards"), "{}", stderr(&o));
    // CUSTOS_* variables that name no configuration key are not configuration.
    let o = std::process::Command::new(common::custos_bin())
        .args(["--data-dir", data.to_str().unwrap(), "status"])
        .env("CUSTOS_LOAD_CERTS", "10")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Missing config file.
    let o = custos(&data, &["--config", "/nonexistent/custos.toml", "status"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/custos.toml"),
        "{}",
        stderr(&o)
    );

    // A bad CSR file through the offline CLI.
    let csr = tmp.path().join("bad.csr");
    std::fs::write(
        &csr,
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    let o = custos(&data, &["issue", "--csr", csr.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bad.csr"), "{}", stderr(&o));
    let o = custos(&data, &["certs", "list"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).lines().count(),
        1,
        "only the header: {}",
        stdout(&o)
    );
}
