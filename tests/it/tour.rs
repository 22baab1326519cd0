//! What a newcomer and an auditor meet first: the README's tour, run
//! command by command against a real `custos serve`; the command line's
//! edges; and the audit log, which must record every change exactly once
//! and show any edit.

use crate::common;

use common::{custos, openssl, Server};
use std::path::Path;
use std::process::Output;

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_in(dir: &Path, data: &Path, args: &[&str]) -> Output {
    std::process::Command::new(common::custos_bin())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CUSTOS_CONFIG")
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The tour of README.md, as written there.
#[test]
fn the_readme_tour_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let data = work.join("custos-data");
    let server = {
        // `custos serve` creates the development CA on first start.
        std::fs::create_dir_all(&data).unwrap();
        Server::start(&data, &[])
    };
    let key = work.join("device.key");
    let csr = work.join("device.csr");
    let out = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
        "-subj",
        "/CN=laptop-42",
        "-addext",
        "subjectAltName=DNS:laptop-42.corp.example",
    ]);
    assert!(out.status.success());
    ok(&run_in(
        work,
        &data,
        &[
            "devices",
            "add",
            "--serial",
            "C02XK0AAJGH5",
            "--owner",
            "alice",
        ],
    ));

    // A private key given as the CSR is refused before anything is sent.
    let refused = run_in(
        work,
        &data,
        &["issue", "--csr", "device.key", "--out", "x.pem"],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("holds a private key") && err.contains("nothing was sent"),
        "{err}"
    );
    assert!(!err.contains("BEGIN"), "the key must not be echoed: {err}");

    let issued = run_in(
        work,
        &data,
        &[
            "issue",
            "--csr",
            "device.csr",
            "--device",
            "C02XK0AAJGH5",
            "--out",
            "device.pem",
        ],
    );
    ok(&issued);
    let stderr = String::from_utf8_lossy(&issued.stderr);
    let serial = common::issued_serial(&stderr);
    let verify = openssl(&[
        "verify",
        "-CAfile",
        data.join("ca/root.pem").to_str().unwrap(),
        "-untrusted",
        data.join("ca/chain.pem").to_str().unwrap(),
        work.join("device.pem").to_str().unwrap(),
    ]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(ok(&run_in(work, &data, &["certs", "list"])).contains(&serial));
    // Both spellings of `certs show`.
    let shown = ok(&run_in(work, &data, &["certs", "show", &serial]));
    assert!(shown.contains("C02XK0AAJGH5"), "{shown}");
    ok(&run_in(
        work,
        &data,
        &["certs", "show", "--serial", &serial],
    ));

    let check = run_in(work, &data, &["ocsp", "check", "--cert", "device.pem"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains(": good"));

    // The laptop is lost.
    let revoked = ok(&run_in(
        work,
        &data,
        &[
            "revoke",
            "--device",
            "C02XK0AAJGH5",
            "--reason",
            "keyCompromise",
        ],
    ));
    assert!(
        revoked.contains(&serial) && revoked.contains("revoked"),
        "{revoked}"
    );
    let check = run_in(work, &data, &["ocsp", "check", "--cert", "device.pem"]);
    assert_eq!(check.status.code(), Some(1), "revoked exits 1");
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains("revoked at") && said.contains("(keyCompromise)"),
        "{said}"
    );
    let again = ok(&run_in(
        work,
        &data,
        &["revoke", "--serial", &serial, "--reason", "keyCompromise"],
    ));
    assert!(again.contains("unchanged"), "{again}");

    let status = ok(&run_in(work, &data, &["status"]));
    assert!(
        status.contains("running") && status.contains("root certificate:"),
        "{status}"
    );
    let audit = ok(&run_in(work, &data, &["audit"]));
    assert!(
        audit.contains("issuance") && audit.contains("revocation"),
        "{audit}"
    );
    drop(server);

    // With no server, `ocsp check` asks the certificate's own URL and says
    // which one it could not reach, exit 2.
    let down = run_in(work, &data, &["ocsp", "check", "--cert", "device.pem"]);
    assert_eq!(down.status.code(), Some(2));
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(err.contains("/ocsp"), "{err}");
}

#[test]
fn an_unknown_or_lost_device_gets_no_linked_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&custos(&data, &["init"]));
    std::fs::write(dir.path().join("d.csr"), common::p256_csr(&["d.example"])).unwrap();
    let csr = dir.path().join("d.csr");
    let out = custos(
        &data,
        &["issue", "--csr", csr.to_str().unwrap(), "--device", "NOPE1"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the inventory"));
    ok(&custos(
        &data,
        &["devices", "add", "--serial", "LOST1", "--status", "lost"],
    ));
    let out = custos(
        &data,
        &["issue", "--csr", csr.to_str().unwrap(), "--device", "LOST1"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lost"));
}

#[test]
fn custos_log_is_a_filter_and_env_typos_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&custos(&data, &["init"]));
    let out = std::process::Command::new(common::custos_bin())
        .arg("--data-dir")
        .arg(&data)
        .arg("status")
        .env("CUSTOS_LOG", "debug")
        .current_dir(dir.path())
        .output()
        .unwrap();
    ok(&out);
    let out = std::process::Command::new(common::custos_bin())
        .arg("--data-dir")
        .arg(&data)
        .arg("status")
        .env("CUSTOS_HTTP_LISTN", "127.0.0.1:1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean CUSTOS_HTTP_LISTEN?"));
}

fn audit_json(data: &Path) -> Vec<serde_json::Value> {
    let out = ok(&custos(data, &["audit", "--json", "--limit", "1000"]));
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Every documented change path leaves exactly one entry, naming who.
#[test]
fn every_change_is_audited_once_and_edits_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&custos(&data, &["init"]));
    let csr = dir.path().join("a.csr");
    std::fs::write(&csr, common::p256_csr(&["a.example"])).unwrap();
    let csv = dir.path().join("inv.csv");
    std::fs::write(&csv, "serial,owner\nDEV2,bob\n").unwrap();

    // Each step: the command and the audit kind it must add (offline, then
    // the same through a running server).
    let steps: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "devices".into(),
                "add".into(),
                "--serial".into(),
                "DEV1".into(),
            ],
            "device",
        ),
        (
            vec!["devices".into(), "import".into(), csv.display().to_string()],
            "device",
        ),
        (
            vec![
                "devices".into(),
                "set-status".into(),
                "DEV2".into(),
                "retired".into(),
            ],
            "device",
        ),
        (
            vec![
                "issue".into(),
                "--csr".into(),
                csr.display().to_string(),
                "--device".into(),
                "DEV1".into(),
            ],
            "issuance",
        ),
        (
            vec!["revoke".into(), "--device".into(), "DEV1".into()],
            "revocation",
        ),
        (
            vec!["eab".into(), "create".into(), "--name".into(), "ci".into()],
            "eab",
        ),
        (vec!["crl".into(), "generate".into()], "crl.generate"),
        (vec!["ocsp".into(), "refresh".into()], "ocsp.refresh"),
        (
            vec!["webhooks".into(), "outbox".into(), "--retry-dead".into()],
            "outbox.retry",
        ),
    ];
    let run_steps = |remote: bool| {
        for (args, kind) in &steps {
            let before = audit_json(&data).len();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ok(&custos(&data, &args));
            let after = audit_json(&data);
            let added: Vec<&serde_json::Value> = after[before..].iter().collect();
            assert_eq!(added.len(), 1, "{args:?} (remote {remote}) added {added:?}");
            assert_eq!(added[0]["kind"], *kind, "{args:?}");
            let actor = added[0]["actor"].as_str().unwrap();
            if remote {
                assert!(actor.starts_with("admin-token (cli:"), "{actor}");
            } else {
                assert!(actor.starts_with("cli:"), "{actor}");
            }
        }
    };
    run_steps(false);
    let server = Server::start(&data, &[]);
    // The server's start issued its HTTPS certificate: audited as `serve`.
    let entries = audit_json(&data);
    assert_eq!(entries.last().unwrap()["actor"], "serve");
    ok(&custos(&data, &["devices", "set-status", "DEV1", "active"]));
    run_steps(true);
    // Filters.
    let only: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&custos(&data, &["audit", "--json", "--kind", "eab"]))).unwrap();
    assert_eq!(only.len(), 2);
    let dev: Vec<serde_json::Value> = serde_json::from_str(&ok(&custos(
        &data,
        &[
            "audit",
            "--json",
            "--device",
            "dev1",
            "--kind",
            "revocation",
        ],
    )))
    .unwrap();
    assert_eq!(dev.len(), 2, "{dev:?}");
    let lines = ok(&custos(&data, &["audit", "--jsonl", "--limit", "3"]));
    assert_eq!(lines.lines().count(), 3);
    for l in lines.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
    assert!(ok(&custos(&data, &["audit", "verify"])).contains("chain intact"));
    drop(server);

    // Edit one entry in the ledger: `audit verify` must fail.
    {
        // As an intruder with the files would: straight through RocksDB.
        let path = data.join("ledger");
        let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, &cfs).unwrap();
        let cf = db.cf_handle("events").unwrap();
        let key = [b"audit/".as_slice(), &3u64.to_be_bytes()].concat();
        let mut entry: serde_json::Value =
            serde_json::from_slice(&db.get_cf(&cf, &key).unwrap().unwrap()).unwrap();
        entry["actor"] = "someone else".into();
        db.put_cf(&cf, &key, serde_json::to_vec(&entry).unwrap())
            .unwrap();
    }
    let out = custos(&data, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("entry 3: changed"));
}
