//! Helpers the load benches share: environment knobs, percentiles, OCSP
//! GET paths and reading an OCSP answer's status. No measuring here.

#![allow(dead_code)]

use base64::Engine;
use std::path::Path;
use std::process::{Command, Stdio};

/// `custos --data-dir DATA ARGS…` as a quiet background process
/// (`RUST_LOG=warn`, output discarded), ready to spawn.
pub fn custos_quiet(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Runs `custos --data-dir DATA ARGS…` to completion from DATA's parent
/// (where a `custos.toml` would be read): its stdout, or a panic showing
/// its stderr.
pub fn custos_cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .current_dir(data.parent().unwrap_or(data))
        .output()
        .expect("the custos binary");
    assert!(
        out.status.success(),
        "custos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A numeric knob from the environment, or its default.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` percentile (0..=1) of sorted microseconds, in milliseconds.
pub fn percentile(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    f64::from(sorted_us[((sorted_us.len() as f64 - 1.0) * p) as usize]) / 1000.0
}

/// `/ocsp/<percent-encoded base64 request>`.
pub fn percent_path(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!(
        "/ocsp/{}",
        b64.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    )
}

/// Whether an OCSP response's first answer says revoked.
pub fn is_revoked(der: &[u8]) -> bool {
    use custos_ocsp::x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse};
    use der::Decode;
    let Ok(r) = OcspResponse::from_der(der) else {
        return false;
    };
    let Some(b) = r.response_bytes else {
        return false;
    };
    let Ok(basic) = BasicOcspResponse::from_der(b.response.as_bytes()) else {
        return false;
    };
    matches!(
        basic
            .tbs_response_data
            .responses
            .first()
            .map(|r| &r.cert_status),
        Some(CertStatus::Revoked(_))
    )
}

/// A certificate record linked to inventory device `device` (valid until
/// 2096, shard 0), for benches that fill a ledger directly.
pub fn device_record(serial: custos::serial::Serial, device: &str) -> custos::ledger::CertRecord {
    custos::ledger::CertRecord {
        serial,
        issuer_id: "bench".into(),
        subject: format!("CN={device}"),
        not_before: 0,
        not_after: 4_000_000_000,
        issued_at: 0,
        dns_names: vec![],
        ip_addresses: vec![],
        device: custos::ledger::DeviceIds {
            serial_number: Some(device.to_string()),
            ..custos::ledger::DeviceIds::default()
        },
        acme_account: None,
        profile: "device".into(),
        crl_shard: 0,
        revocation: None,
    }
}
