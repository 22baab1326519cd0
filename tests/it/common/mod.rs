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

/// A certificate record for tests that fill a ledger directly: unexpired
/// for decades, no device, no revocation.
pub fn cert_record(serial: &custos::serial::Serial, subject: &str) -> custos::ledger::CertRecord {
    custos::ledger::CertRecord {
        serial: serial.clone(),
        issuer_id: "test".into(),
        subject: subject.into(),
        not_before: 0,
        not_after: 4_000_000_000,
        issued_at: 0,
        dns_names: vec![],
        ip_addresses: vec![],
        device: custos::ledger::DeviceIds::default(),
        acme_account: None,
        profile: "default".into(),
        crl_shard: 0,
        revocation: None,
    }
}

/// The serial `custos issue` reports on stderr (`issued serial <HEX> …`),
/// whatever warnings come before it.
pub fn issued_serial(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("issued serial "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("custos issue prints the serial")
        .to_string()
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

/// Runs `custos --data-dir DIR args…` and asserts it succeeded (its stderr
/// is the failure message).
pub fn custos_ok(data_dir: &Path, args: &[&str]) -> Output {
    let out = custos(data_dir, args);
    assert!(
        out.status.success(),
        "custos {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Issues a P-256 certificate for inventory device `device` with
/// `custos issue --profile device --device` (its key and CSR made by the
/// OpenSSL CLI in `dir`): the certificate's PEM file and its serial.
pub fn issue_for_device(dir: &Path, data: &Path, device: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{device}.key"));
    let csr = dir.join(format!("{device}.csr"));
    let out = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &format!("/CN={device}"),
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let cert = dir.join(format!("{device}.pem"));
    let issued = custos_ok(
        data,
        &[
            "issue",
            "--csr",
            csr.to_str().unwrap(),
            "--profile",
            "device",
            "--device",
            device,
            "--out",
            cert.to_str().unwrap(),
        ],
    );
    let serial = issued_serial(&String::from_utf8_lossy(&issued.stderr));
    (cert, serial)
}

/// A new ACME account (instant-acme, trusting the data dir's root) on a
/// running server.
pub async fn acme_account(server: &Server) -> instant_acme::Account {
    let (account, _) =
        instant_acme::Account::builder_with_root(server.data_dir.join("ca/root.pem"))
            .expect("ACME client")
            .create(
                &instant_acme::NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                format!("{}/acme/directory", server.https_url),
                None,
            )
            .await
            .expect("ACME account");
    account
}

/// What the real `openssl ocsp` client says about `leaf` (PEM file), asking
/// the running server and verifying with the data dir's root: its stdout
/// and stderr.
pub fn ocsp_says(server: &Server, leaf: &Path) -> String {
    let data = &server.data_dir;
    let out = openssl(&[
        "ocsp",
        "-issuer",
        data.join("ca/intermediate.pem").to_str().unwrap(),
        "-cert",
        leaf.to_str().unwrap(),
        "-url",
        &format!("{}/ocsp", server.http_url),
        "-CAfile",
        data.join("ca/root.pem").to_str().unwrap(),
    ]);
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// A loopback address no one listens on now (for a server restarted on
/// the same ports).
pub fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
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
        Self::start_with_env(data_dir, http, https, extra, &[])
    }

    /// Starts `custos serve` with extra environment variables.
    pub fn start_with_env(
        data_dir: &Path,
        http: &str,
        https: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let _ = std::fs::remove_file(data_dir.join("server.json"));
        // Its output goes to a file beside the data dir (read it when a test
        // fails): a pipe nobody reads fills up and stops the server.
        let log_path = data_dir
            .parent()
            .unwrap_or(data_dir)
            .join(format!("serve-{}.log", std::process::id()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log file");
        let child = Command::new(custos_bin())
            .envs(env.iter().copied())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--http", http, "--https", https])
            .args(extra)
            .env_remove("CUSTOS_CONFIG")
            .current_dir(data_dir.parent().unwrap_or(data_dir))
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
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
    #[allow(unsafe_code)] // kill(2) on our own child
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

/// Apple-format attestations from a throwaway root and intermediate (rcgen).
pub mod attest {
    /// A test CA that issues attestation leaves.
    pub struct TestAttestationCa {
        /// The root, PEM (configure it as the trust anchor).
        pub root_pem: String,
        intermediate: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    }

    /// What a test leaf attests.
    #[derive(Clone, Debug, Default)]
    pub struct Claims {
        /// Serial number.
        pub serial: String,
        /// UDID.
        pub udid: String,
        /// OS version.
        pub os_version: String,
        /// The challenge token the freshness code is made from; `None`
        /// leaves the code out.
        pub token: Option<String>,
    }

    fn oid(dotted: &str) -> Vec<u64> {
        dotted.split('.').filter_map(|p| p.parse().ok()).collect()
    }

    impl TestAttestationCa {
        /// A new root and intermediate (P-384).
        pub fn new() -> TestAttestationCa {
            let alg = &rcgen::PKCS_ECDSA_P384_SHA384;
            let mut root_params =
                rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            root_params.distinguished_name.push(
                rcgen::DnType::CommonName,
                "Test Enterprise Attestation Root CA",
            );
            let root = rcgen::CertifiedIssuer::self_signed(
                root_params,
                rcgen::KeyPair::generate_for(alg).expect("key"),
            )
            .expect("root");
            let mut mid_params =
                rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            mid_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
            mid_params.distinguished_name.push(
                rcgen::DnType::CommonName,
                "Test Enterprise Attestation Sub CA 1",
            );
            let intermediate = rcgen::CertifiedIssuer::signed_by(
                mid_params,
                rcgen::KeyPair::generate_for(alg).expect("key"),
                &root,
            )
            .expect("intermediate");
            TestAttestationCa {
                root_pem: root.pem(),
                intermediate,
            }
        }

        /// An attestation object (CBOR) for `key` with these claims; the
        /// chain is leaf and intermediate.
        pub fn att_obj(&self, key: &rcgen::KeyPair, claims: &Claims) -> Vec<u8> {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "test attestation");
            // Apple's leaves live about 90 days.
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(90);
            let mut ext = |dotted: &str, value: Vec<u8>| {
                params
                    .custom_extensions
                    .push(rcgen::CustomExtension::from_oid_content(
                        &oid(dotted),
                        value,
                    ));
            };
            ext(
                custos::attestation::OID_SERIAL,
                claims.serial.clone().into_bytes(),
            );
            ext(
                custos::attestation::OID_UDID,
                claims.udid.clone().into_bytes(),
            );
            ext(
                custos::attestation::OID_OS_VERSION,
                claims.os_version.clone().into_bytes(),
            );
            ext(
                custos::attestation::OID_SECURE_BOOT,
                b"Full Security".to_vec(),
            );
            if let Some(token) = &claims.token {
                let code = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
                ext(custos::attestation::OID_FRESHNESS, code.as_ref().to_vec());
            }
            let leaf = params.signed_by(key, &self.intermediate).expect("leaf");
            let value = ciborium::value::Value::Map(vec![
                ("fmt".into(), "apple".into()),
                (
                    "attStmt".into(),
                    ciborium::value::Value::Map(vec![(
                        "x5c".into(),
                        ciborium::value::Value::Array(vec![
                            ciborium::value::Value::Bytes(leaf.der().to_vec()),
                            ciborium::value::Value::Bytes(self.intermediate.der().to_vec()),
                        ]),
                    )]),
                ),
            ]);
            let mut out = Vec::new();
            ciborium::ser::into_writer(&value, &mut out).expect("CBOR");
            out
        }
    }

    impl Default for TestAttestationCa {
        fn default() -> Self {
            Self::new()
        }
    }
}

/// POSTs a Standard Webhooks event (`body`, signed with `secret`) to the
/// server's `/webhooks/mdm` source with id `id`; its HTTP status.
pub async fn post_standard_event(server: &Server, secret: &str, id: &str, body: &str) -> u16 {
    let now = custos::model::time::unix_now();
    let secret = custos_webhooks::standard::Secret::parse(secret).unwrap();
    server
        .https_client()
        .post(format!("{}/webhooks/mdm", server.https_url))
        .header("webhook-id", id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", secret.sign(id, now, body.as_bytes()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
