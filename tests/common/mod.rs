//! Shared helpers for the integration tests: temp data dirs, CSRs made by a
//! real library (rcgen), the real OpenSSL CLI, and a real `custos serve`
//! process on ephemeral loopback ports.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A CSR (PEM) for a fresh key of the given algorithm, with these DNS SANs.
pub fn csr_pem(alg: &'static rcgen::SignatureAlgorithm, dns: &[&str]) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(alg).expect("key generation");
    let mut params =
        rcgen::CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        dns.first().copied().unwrap_or("device"),
    );
    let csr = params.serialize_request(&key).expect("csr");
    (csr.pem().expect("pem"), key)
}

/// A P-256 CSR for `dns`.
pub fn p256_csr(dns: &[&str]) -> String {
    csr_pem(&rcgen::PKCS_ECDSA_P256_SHA256, dns).0
}

/// Runs `openssl` with args; returns the output.
pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI must be installed (see .ci/setup)")
}

/// Path of the built `custos` binary.
pub fn custos_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_custos"))
}

/// Runs `custos --data-dir DIR args…` to completion.
pub fn custos(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(custos_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("CUSTOS_CONFIG")
        .current_dir(data_dir.parent().unwrap_or(data_dir))
        .output()
        .expect("run custos")
}

/// A running `custos serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub data_dir: PathBuf,
    pub http_url: String,
    pub https_url: String,
}

impl Server {
    /// Starts `custos serve` on ephemeral ports and waits until it answers.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_on(data_dir, "127.0.0.1:0", "127.0.0.1:0", extra)
    }

    /// Starts `custos serve` on the given listen addresses.
    pub fn start_on(data_dir: &Path, http: &str, https: &str, extra: &[&str]) -> Server {
        let _ = std::fs::remove_file(data_dir.join("server.json"));
        let child = Command::new(custos_bin())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--http", http, "--https", https])
            .args(extra)
            .env_remove("CUSTOS_CONFIG")
            .current_dir(data_dir.parent().unwrap_or(data_dir))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn custos serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        let info = loop {
            if let Ok(bytes) = std::fs::read(data_dir.join("server.json")) {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    break v;
                }
            }
            assert!(Instant::now() < deadline, "custos serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Server {
            child,
            data_dir: data_dir.to_path_buf(),
            http_url: info["http_url"].as_str().unwrap().to_string(),
            https_url: info["https_url"].as_str().unwrap().to_string(),
        }
    }

    /// An HTTPS client trusting only the data dir's root.
    pub fn https_client(&self) -> reqwest::Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let root = std::fs::read(self.data_dir.join("ca/root.pem")).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
            .build()
            .unwrap()
    }

    /// The admin token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "custos serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
