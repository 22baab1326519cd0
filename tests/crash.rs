//! Crash consistency: a child process revokes in a loop and reports each
//! acknowledged revocation; it is killed with SIGKILL mid-loop. After
//! reopening, every revocation it reported must be in the ledger.

use custos::ledger::{CertRecord, DeviceIds, Ledger};
use custos::revocation::Reason;
use custos::serial::Serial;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "CUSTOS_CRASH_CHILD_DIR";
const CERTS: usize = 2_000;

fn record(serial: &Serial) -> CertRecord {
    CertRecord {
        serial: serial.clone(),
        issuer_id: "test".into(),
        subject: "CN=crash".into(),
        not_before: 0,
        not_after: u64::MAX / 2,
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
            "crash_child",
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
