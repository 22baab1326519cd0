//! Crash consistency: a child process revokes in a loop and reports each
//! acknowledged revocation; it is killed with SIGKILL mid-loop. After
//! reopening, every revocation it reported must be in the ledger.

use custos::ledger::{CertRecord, Ledger};
use custos::revocation::Reason;
use custos::serial::Serial;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "CUSTOS_CRASH_CHILD_DIR";
const CERTS: usize = 2_000;

fn record(serial: &Serial) -> CertRecord {
    common::cert_record(serial, "CN=crash")
}

/// The child's body: runs only when the parent test starts it.
#[test]
#[ignore = "helper process of acknowledged_revocations_survive_sigkill"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let ledger = Ledger::open(std::path::Path::new(&dir)).unwrap();
    let serials = ledger.list(None, CERTS).unwrap();
    let mut out = std::io::stdout().lock();
    for rec in serials {
        ledger
            .revoke(&rec.serial, Reason::KeyCompromise, 7)
            .unwrap();
        // Only after `revoke` returned is the revocation acknowledged.
        writeln!(out, "REVOKED {}", rec.serial).unwrap();
        out.flush().unwrap();
    }
    // Wait to be killed.
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn acknowledged_revocations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = Ledger::open(dir.path()).unwrap();
        for _ in 0..CERTS {
            ledger.insert(&record(&Serial::random()), b"der").unwrap();
        }
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::crash_child",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut acknowledged = Vec::new();
    let mut line = String::new();
    while acknowledged.len() < 200 {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(hex) = line.trim().strip_prefix("REVOKED ") {
            acknowledged.push(hex.parse::<Serial>().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Lines written before the kill are acknowledgements too.
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
    for l in rest.lines() {
        if let Some(hex) = l.strip_prefix("REVOKED ") {
            acknowledged.push(hex.parse::<Serial>().unwrap());
        }
    }
    assert!(
        acknowledged.len() >= 200,
        "child reported only {}",
        acknowledged.len()
    );

    let ledger = Ledger::open(dir.path()).unwrap();
    for serial in &acknowledged {
        let rec = ledger.get(serial).unwrap().unwrap();
        let rev = rec
            .revocation
            .unwrap_or_else(|| panic!("{serial} was acknowledged but is not revoked"));
        assert_eq!(rev.reason, Reason::KeyCompromise);
    }
    assert!(ledger.next_revocation_seq().unwrap() >= acknowledged.len() as u64);
}

use crate::common;

use common::{custos, Server};

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";

/// What the storm was told had happened (answers 2xx).
#[derive(Default)]
struct Acknowledged {
    issued: Vec<(String, String)>,
    revoked: Vec<String>,
    lost: Vec<String>,
}

/// One storm against a running server until it is killed: issuance linked
/// to devices, revocations by serial, and signed `lost` events, from three
/// tasks at once. Returns what was acknowledged.
async fn storm(server: &Server, devices: &[String], seed: u64, for_ms: u64) -> Acknowledged {
    use std::sync::{Arc, Mutex};
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let http = server.https_client();
    let token = server.token();
    let base = server.https_url.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(for_ms);
    let mut tasks = Vec::new();
    // Issuance.
    {
        let (http, token, base, acked) = (http.clone(), token.clone(), base.clone(), acked.clone());
        let devices = devices.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut i = seed as usize;
            while std::time::Instant::now() < deadline {
                i += 7;
                let device = &devices[i % devices.len()];
                let r = http
                    .post(format!("{base}/admin/certificates"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"csr": common::p256_csr(&["storm.example"]), "device": device}))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() == 201 {
                    let v: serde_json::Value = match r.json().await {
                        Ok(v) => v,
                        Err(_) => break,
                    };
                    acked.lock().unwrap().issued.push((
                        v["serial"].as_str().unwrap().to_string(),
                        device.clone(),
                    ));
                }
            }
        }));
    }
    // Revocations of what was issued.
    {
        let (http, token, base, acked) = (http.clone(), token.clone(), base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            while std::time::Instant::now() < deadline {
                let target = {
                    let a = acked.lock().unwrap();
                    a.issued.iter().rev().nth(1).map(|(s, _)| s.clone())
                };
                let Some(serial) = target else {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                };
                let r = http
                    .post(format!("{base}/admin/revoke"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"serial": serial, "reason": "superseded"}))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() == 200 {
                    acked.lock().unwrap().revoked.push(serial);
                }
            }
        }));
    }
    // Lost events.
    {
        let (http, base, acked) = (http.clone(), base.clone(), acked.clone());
        let devices = devices.to_vec();
        tasks.push(tokio::spawn(async move {
            let secret = custos_webhooks::standard::Secret::parse(SECRET).unwrap();
            let mut n = 0u64;
            while std::time::Instant::now() < deadline {
                n += 1;
                let device = &devices[((seed + n * 13) as usize) % devices.len()];
                let id = format!("msg_{seed}_{n}");
                let ts = custos::model::time::unix_now();
                let body = format!(r#"{{"kind":"lost","serial":"{device}"}}"#);
                let r = http
                    .post(format!("{base}/webhooks/mdm"))
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", secret.sign(&id, ts, body.as_bytes()))
                    .body(body)
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status().is_success() {
                    acked.lock().unwrap().lost.push(device.clone());
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap()
}

/// SIGKILL at 20 points of a mixed storm; after each restart every
/// acknowledged issuance, revocation and event is there and the ledger
/// verifies clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(unsafe_code)] // kill(2) on our own child
async fn a_killed_server_keeps_everything_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("custos.toml"),
        format!("[webhooks.mdm]\nkind = \"standard\"\nsecrets = [\"{SECRET}\"]\n"),
    )
    .unwrap();
    assert!(custos(&data, &["init"]).status.success());
    let devices: Vec<String> = (0..400).map(|i| format!("STORM{i:04}")).collect();
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, format!("serial\n{}\n", devices.join("\n"))).unwrap();
    assert!(custos(&data, &["devices", "import", csv.to_str().unwrap()])
        .status
        .success());
    let mut all = Acknowledged::default();
    for round in 0..20u64 {
        let server = Server::start(&data, &[]);
        // Kill somewhere between 100 and 700 ms into the storm.
        let kill_after = 100 + (round * 277) % 600;
        let storm_devices = devices[(round as usize * 20)..(round as usize * 20 + 20)].to_vec();
        let killer = {
            let pid = server.child.id() as i32;
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(kill_after)).await;
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            })
        };
        let acked = storm(&server, &storm_devices, round, 2_000).await;
        killer.await.unwrap();
        drop(server);
        all.issued.extend(acked.issued);
        all.revoked.extend(acked.revoked);
        all.lost.extend(acked.lost);
    }
    assert!(!all.issued.is_empty() && !all.revoked.is_empty() && !all.lost.is_empty());

    // Restart: pending events are finished at start.
    let server = Server::start(&data, &[]);
    let http = server.https_client();
    let token = server.token();
    let show = |serial: String| {
        let http = http.clone();
        let url = format!("{}/admin/certificates/{serial}", server.https_url);
        let token = token.clone();
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(
                r.status(),
                200,
                "acknowledged certificate {serial} is missing"
            );
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    for (serial, _) in &all.issued {
        show(serial.clone()).await;
    }
    for serial in &all.revoked {
        let v = show(serial.clone()).await;
        assert_eq!(
            v["status"], "revoked",
            "acknowledged revocation of {serial} lost"
        );
    }
    // Every certificate of a device reported lost is revoked once the
    // pending events are finished (at start).
    let lost: std::collections::BTreeSet<&String> = all.lost.iter().collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut good = Vec::new();
        for (serial, device) in &all.issued {
            if lost.contains(device) && show(serial.clone()).await["status"] != "revoked" {
                good.push(serial.clone());
            }
        }
        if good.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "certificates of lost devices still good: {good:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let verify = custos(&data, &["ledger", "verify"]);
    assert!(
        verify.status.success(),
        "ledger verify after 20 kills:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let audit = custos(&data, &["audit", "verify"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}
