//! SCEP on a running server with real clients: `GetCACaps` and `GetCACert`
//! read with the OpenSSL CLI (the RSA RA certificate the CA makes at first
//! use); enrolment, renewal and refusals with strongSwan's `pki --scep`;
//! micromdm's `scepclient` refused for its single DES; a lost-device
//! webhook revoking what SCEP issued.

use crate::common::{custos, custos_ok, ocsp_says, openssl, Server};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[tokio::test]
async fn get_ca_cert_sends_an_rsa_ra_issued_by_the_ca_and_keeps_it() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &[]);
    let client = server.https_client();
    let get = |query: &str| {
        let (client, url) = (client.clone(), format!("{}/scep{query}", server.https_url));
        async move { client.get(url).send().await.unwrap() }
    };

    let caps = get("?operation=GetCACaps").await;
    assert_eq!(caps.status(), 200);
    let caps = caps.text().await.unwrap();
    for cap in ["POSTPKIOperation", "SHA-256", "AES", "SCEPStandard"] {
        assert!(caps.lines().any(|l| l == cap), "{caps}");
    }

    let r = get("?operation=GetCACert&message=custos").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-x509-ca-ra-cert");
    let p7 = r.bytes().await.unwrap();
    let p7_file = tmp.path().join("ca-ra.p7b");
    std::fs::write(&p7_file, &p7).unwrap();
    let certs = tmp.path().join("ca-ra.pem");
    let out = openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        p7_file.to_str().unwrap(),
        "-print_certs",
        "-out",
        certs.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pems = std::fs::read_to_string(&certs).unwrap();
    assert_eq!(pems.matches("BEGIN CERTIFICATE").count(), 3, "{pems}");
    // The RA's certificate: RSA 2048, for signing and key transport,
    // issued by the intermediate, verifying to the root.
    let ra_pem = pems
        .split_inclusive("-----END CERTIFICATE-----\n")
        .find(|block| block.contains("custos SCEP RA"))
        .expect("the RA certificate")
        .split_once("-----BEGIN")
        .map(|(_, rest)| format!("-----BEGIN{rest}"))
        .unwrap();
    let ra = tmp.path().join("ra.pem");
    std::fs::write(&ra, &ra_pem).unwrap();
    let text = openssl(&["x509", "-in", ra.to_str().unwrap(), "-noout", "-text"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains("rsaEncryption"), "{text}");
    assert!(
        text.contains(
            "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment"
        ),
        "{text}"
    );
    let verify = openssl(&[
        "verify",
        "-CAfile",
        data.join("ca/root.pem").to_str().unwrap(),
        "-untrusted",
        data.join("ca/intermediate.pem").to_str().unwrap(),
        ra.to_str().unwrap(),
    ]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let mode = std::fs::metadata(data.join("ca/scep-ra.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the RA key is private");
    let key = std::fs::read_to_string(data.join("ca/scep-ra.key")).unwrap();
    let log = std::fs::read_to_string(tmp.path().join(format!("serve-{}.log", std::process::id())))
        .unwrap_or_default();
    assert!(
        !log.contains(key.lines().nth(1).unwrap()),
        "the key is not logged"
    );

    // Recorded like every certificate the CA signs: in the ledger (OCSP
    // answers good for it), and audited once, as an issuance.
    let says = ocsp_says(&server, &ra);
    assert!(says.contains(": good"), "{says}");
    let audit = custos(&data, &["audit", "--kind", "issuance", "--json"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert_eq!(audit.matches("\"scep-ra\"").count(), 1, "{audit}");

    // A real SCEP client (micromdm's scepclient, Debian `scep`) reads both
    // answers and gets as far as enrolment, encrypting to the RA it picks
    // by fingerprint (without one it encrypts to every certificate listed,
    // and an EC CA cannot be a recipient).
    let fingerprint = openssl(&[
        "x509",
        "-in",
        ra.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    let client_out = tokio::process::Command::new("scepclient")
        .env("SSL_CERT_FILE", data.join("ca/root.pem"))
        .args(["-server-url", &format!("{}/scep", server.https_url)])
        .args([
            "-private-key",
            tmp.path().join("device.key").to_str().unwrap(),
        ])
        .args([
            "-cn",
            "device-1",
            "-challenge",
            "unused",
            "-ca-fingerprint",
            &fingerprint,
        ])
        .output()
        .await
        .expect("scepclient (Debian scep) must be installed (see .ci/setup)");
    let said = String::from_utf8_lossy(&client_out.stderr).into_owned()
        + &String::from_utf8_lossy(&client_out.stdout);
    // It reads the RA's signed answer: refused, for its single DES.
    assert!(
        said.contains("PKCSReq (19) request failed, failInfo: badAlg (0)"),
        "{said}"
    );

    // The same RA on the next request and after a restart.
    let again = get("?operation=GetCACert").await.bytes().await.unwrap();
    assert_eq!(again, p7);
    assert!(server.terminate().success());
    let server = Server::start(&data, &[]);
    let r = server
        .https_client()
        .get(format!("{}/scep?operation=GetCACert", server.https_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), p7);
    let audit = custos(&data, &["audit", "--kind", "issuance", "--json"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert_eq!(
        audit.matches("\"scep-ra\"").count(),
        1,
        "recorded once: {audit}"
    );

    // What is not an operation we serve is refused with the reason.
    let client = server.https_client();
    for (query, status, says) in [
        ("", 400, "name an operation"),
        ("?operation=GetNextCACert", 400, "unknown SCEP operation"),
        (
            "?operation=PKIOperation&message=AAAA",
            400,
            "not a SCEP PKIOperation message",
        ),
        ("?operation=PKIOperation", 400, "needs the message"),
        ("?operation=PKIOperation&message=%%%", 400, "not base64"),
    ] {
        let r = client
            .get(format!("{}/scep{query}", server.https_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{query}");
        assert!(r.text().await.unwrap().contains(says), "{query}");
    }
    assert!(server.terminate().success());
}

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";

/// A server for a SCEP test: `toml` as its configuration, `devices` in
/// its inventory, and the RA and CA certificates fetched into `dir`; the
/// data dir, the server and the SCEP URL on the plain listener.
async fn scep_server(dir: &Path, toml: &str, devices: &[&str]) -> (PathBuf, Server, String) {
    let data = dir.join("data");
    std::fs::write(dir.join("custos.toml"), toml).unwrap();
    custos_ok(&data, &["init"]);
    for serial in devices {
        custos_ok(&data, &["devices", "add", "--serial", serial]);
    }
    let server = Server::start(&data, &[]);
    let url = format!("{}/scep", server.http_url);
    fetch_ca_files(dir, &url).await;
    (data, server, url)
}

/// Fetches the RA and CA certificates (GetCACert) into `ra.pem`,
/// `issuer.pem` and `root.pem` in `dir`, as an administrator would.
async fn fetch_ca_files(dir: &Path, url: &str) {
    let p7 = reqwest::get(format!("{url}?operation=GetCACert"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(dir.join("ca.p7b"), &p7).unwrap();
    let all = openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        dir.join("ca.p7b").to_str().unwrap(),
        "-print_certs",
    ]);
    let all = String::from_utf8_lossy(&all.stdout).into_owned();
    for block in all.split_inclusive("-----END CERTIFICATE-----\n") {
        let Some((_, pem)) = block.split_once("-----BEGIN") else {
            continue;
        };
        let subject = block
            .lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or("");
        let name = if subject.contains("SCEP RA") {
            "ra.pem"
        } else if subject.contains("Root CA") {
            "root.pem"
        } else {
            "issuer.pem"
        };
        std::fs::write(dir.join(name), format!("-----BEGIN{pem}")).unwrap();
    }
}

/// A new RSA-2048 key (DER) made by strongSwan's `pki --gen`.
fn gen_key(dir: &Path, name: &str) {
    let out = std::process::Command::new("pki")
        .current_dir(dir)
        .args([
            "--gen",
            "--type",
            "rsa",
            "--size",
            "2048",
            "--outform",
            "der",
        ])
        .output()
        .expect("pki (Debian strongswan-pki) must be installed (see .ci/setup)");
    assert!(out.status.success());
    std::fs::write(dir.join(name), out.stdout).unwrap();
}

/// `pki --scep` in `dir` (which holds the files [`fetch_ca_files`] makes):
/// success, the certificate (PEM), and what it said.
fn pki_scep(
    dir: &Path,
    url: &str,
    key: &str,
    dn: &str,
    password: &str,
    extra: &[&str],
) -> (bool, String, String) {
    let mut args = vec![
        "--scep",
        "--url",
        url,
        "--in",
        key,
        "--dn",
        dn,
        "--cacert-enc",
        "ra.pem",
        "--cacert-sig",
        "ra.pem",
        "--cacert",
        "issuer.pem",
        "--cacert",
        "root.pem",
        "--outform",
        "pem",
    ];
    if !password.is_empty() {
        args.extend(["--password", password]);
    }
    args.extend_from_slice(extra);
    let out = std::process::Command::new("pki")
        .current_dir(dir)
        .args(&args)
        .output()
        .expect("pki (Debian strongswan-pki) must be installed (see .ci/setup)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A one-time challenge for `device` (`custos scep challenge`).
fn challenge(data: &Path, device: &str, ttl: &str) -> String {
    let out = custos_ok(
        data,
        &["scep", "challenge", "--device", device, "--ttl", ttl],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("challenge:"))
        .expect("a challenge line")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn strongswan_enrols_renews_and_is_refused_then_a_lost_event_revokes() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let toml = format!(
        "[scep]\nlisten_plain = true\n[webhooks.mdm]\nkind = \"standard\"\nsecrets = [\"{SECRET}\"]\n"
    );
    // SCEP on the plain listener, as NDES-era clients expect.
    let (data, server, url) = scep_server(dir, &toml, &["C02SCEP1", "C02SCEP2"]).await;
    for k in ["k1.der", "k2.der", "k3.der", "k4.der"] {
        gen_key(dir, k);
    }
    let scep = |key: &str, dn: &str, password: &str, extra: &[&str]| {
        pki_scep(dir, &url, key, dn, password, extra)
    };

    // Enrolment with a one-time challenge (AES, strongSwan's default).
    let ch1 = challenge(&data, "C02SCEP1", "1h");
    let (ok, cert, said) = scep("k1.der", "C=US, O=Acme, CN=C02SCEP1", &ch1, &[]);
    assert!(ok, "{said}");
    assert!(said.contains("Issued certificate is trusted"), "{said}");
    let first = dir.join("first.pem");
    std::fs::write(&first, &cert).unwrap();
    assert!(ocsp_says(&server, &first).contains(": good"));
    let serial1 = String::from_utf8_lossy(
        &openssl(&["x509", "-in", first.to_str().unwrap(), "-noout", "-serial"]).stdout,
    )
    .trim()
    .trim_start_matches("serial=")
    .to_string();
    let shown = custos_ok(&data, &["certs", "show", &serial1]);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains("C02SCEP1"), "linked to the device: {shown}");

    // Refused: the used challenge (another key), an expired one, another
    // device's, none at all; each with failInfo badRequest and nothing
    // issued.
    let count = || {
        let out = custos_ok(&data, &["certs", "list"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let before = count();
    let (ok, _, said) = scep("k2.der", "C=US, O=Acme, CN=C02SCEP1", &ch1, &[]);
    assert!(!ok && said.contains("badRequest"), "used challenge: {said}");
    let expired = challenge(&data, "C02SCEP1", "1s");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (ok, _, said) = scep("k2.der", "C=US, O=Acme, CN=C02SCEP1", &expired, &[]);
    assert!(!ok && said.contains("badRequest"), "expired: {said}");
    let other = challenge(&data, "C02SCEP2", "1h");
    let (ok, _, said) = scep("k2.der", "C=US, O=Acme, CN=C02SCEP1", &other, &[]);
    assert!(!ok && said.contains("badRequest"), "other device's: {said}");
    let (ok, _, said) = scep("k2.der", "C=US, O=Acme, CN=C02SCEP1", "", &[]);
    assert!(!ok && said.contains("badRequest"), "no challenge: {said}");
    let (ok, _, said) = scep(
        "k2.der",
        "C=US, O=Acme, CN=C02SCEP1",
        "not-a-challenge",
        &[],
    );
    assert!(!ok && said.contains("badRequest"), "unknown: {said}");
    assert_eq!(count(), before, "nothing issued by a refusal");
    let log = std::fs::read_to_string(dir.join(format!("serve-{}.log", std::process::id())))
        .unwrap_or_default();
    assert!(
        log.contains("was already used") && log.contains("expired"),
        "reasons logged"
    );
    assert!(
        !log.contains(&ch1) && !log.contains(&other),
        "challenges are not logged"
    );

    // The other device's challenge still works for its own device (the
    // refusal above did not use it), with DES3 this time.
    let (ok, cert2, said) = scep(
        "k3.der",
        "C=US, O=Acme, CN=C02SCEP2",
        &other,
        &["--cipher", "des3"],
    );
    assert!(ok, "{said}");
    let second = dir.join("second.pem");
    std::fs::write(&second, &cert2).unwrap();

    // Renewal: signed with the current certificate, no challenge.
    std::fs::write(
        dir.join("first.der"),
        &openssl(&["x509", "-in", first.to_str().unwrap(), "-outform", "DER"]).stdout,
    )
    .unwrap();
    let (ok, renewed, said) = scep(
        "k4.der",
        "C=US, O=Acme, CN=C02SCEP1",
        "",
        &["--cert", "first.der", "--key", "k1.der"],
    );
    assert!(ok, "renewal: {said}");
    let renewed_file = dir.join("renewed.pem");
    std::fs::write(&renewed_file, &renewed).unwrap();
    assert!(ocsp_says(&server, &renewed_file).contains(": good"));
    assert_ne!(renewed, cert);

    // The audit log names SCEP as the issuer of each.
    let audit = custos_ok(&data, &["audit", "--kind", "issuance", "--json"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert_eq!(audit.matches("\"actor\": \"scep\"").count(), 3, "{audit}");

    // The MDM reports C02SCEP1 lost: both its certificates are revoked,
    // the other device's is not.
    let body = r#"{"kind":"lost","serial":"C02SCEP1"}"#;
    let status = crate::common::post_standard_event(&server, SECRET, "msg_scep_1", body).await;
    assert_eq!(status, 200);
    let t = std::time::Instant::now();
    while !(ocsp_says(&server, &first).contains(": revoked")
        && ocsp_says(&server, &renewed_file).contains(": revoked"))
    {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "not revoked in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ocsp_says(&server, &second).contains(": good"));

    // A lost device cannot renew.
    std::fs::write(
        dir.join("renewed.der"),
        &openssl(&[
            "x509",
            "-in",
            renewed_file.to_str().unwrap(),
            "-outform",
            "DER",
        ])
        .stdout,
    )
    .unwrap();
    let (ok, _, said) = scep(
        "k2.der",
        "C=US, O=Acme, CN=C02SCEP1",
        "",
        &["--cert", "renewed.der", "--key", "k4.der"],
    );
    assert!(!ok && said.contains("badRequest"), "{said}");
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn scep_after_hardware_attestation_is_a_downgrade_refused_until_allowed() {
    use crate::common::attest::TestAttestationCa;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = TestAttestationCa::new();
    let root = dir.join("attest-root.pem");
    std::fs::write(&root, &ca.root_pem).unwrap();
    let toml = format!(
        "[scep]\nlisten_plain = true\n[acme.device_attest]\napple_roots = [\"{}\"]\n",
        root.display()
    );
    let (data, server, url) = scep_server(dir, &toml, &["C02ATTEST", "C02LEGACY"]).await;
    for k in ["a.der", "b.der", "c.der"] {
        gen_key(dir, k);
    }
    let listed = |enrolment: &str| {
        let out = custos_ok(&data, &["devices", "list", "--enrolment", enrolment]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // C02ATTEST enrols over ACME with Apple hardware attestation.
    crate::webhooks::device_certificate(&server, &ca, "C02ATTEST").await;
    assert!(listed("acme-attested").contains("C02ATTEST"));
    assert!(!listed("scep").contains("C02ATTEST"));

    // SCEP for it now would be a downgrade: refused, the challenge left
    // usable, nothing issued.
    let ch = challenge(&data, "C02ATTEST", "1h");
    let (ok, _, said) = pki_scep(dir, &url, "a.der", "CN=C02ATTEST", &ch, &[]);
    assert!(!ok && said.contains("badRequest"), "{said}");
    let log = std::fs::read_to_string(dir.join(format!("serve-{}.log", std::process::id())))
        .unwrap_or_default();
    assert!(log.contains("SCEP would be a downgrade"), "reason logged");

    // An administrator allows it: the same challenge now enrols.
    let out = custos_ok(&data, &["devices", "set-scep", "C02ATTEST", "allow"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"scep\": \"allow\""));
    let (ok, _, said) = pki_scep(dir, &url, "a.der", "CN=C02ATTEST", &ch, &[]);
    assert!(ok, "{said}");

    // `deny` refuses a device that never attested; `auto` restores the rule.
    custos_ok(&data, &["devices", "set-scep", "C02LEGACY", "deny"]);
    let ch = challenge(&data, "C02LEGACY", "1h");
    let (ok, _, said) = pki_scep(dir, &url, "b.der", "CN=C02LEGACY", &ch, &[]);
    assert!(!ok && said.contains("badRequest"), "{said}");
    custos_ok(&data, &["devices", "set-scep", "C02LEGACY", "auto"]);
    let (ok, _, said) = pki_scep(dir, &url, "b.der", "CN=C02LEGACY", &ch, &[]);
    assert!(ok, "{said}");

    // The inventory shows how each device last enrolled.
    let scep = listed("scep");
    assert!(
        scep.contains("C02ATTEST") && scep.contains("C02LEGACY"),
        "{scep}"
    );
    assert!(!listed("acme-attested").contains("C02"));
    let audit = custos_ok(&data, &["audit", "--kind", "device", "--json"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert_eq!(audit.matches("set-scep").count(), 3, "{audit}");
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn mdms_fetch_challenges_from_the_ndes_page_and_the_jamf_webhook() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    std::fs::write(
        dir.join("custos.toml"),
        "[scep]\nlisten_plain = true\nstatic_challenge = \"shared-legacy-secret-123\"\nmax_open_challenges = 3\n[scep.ndes]\nusername = \"fleet\"\npassword = \"ndes-password-0123456789\"\n\
         [scep.jamf]\nusername = \"jamf\"\npassword = \"jamf-password-0123456789\"\n",
    )
    .unwrap();
    custos_ok(&data, &["init"]);
    for serial in ["C02NDES1", "C02JAMF1", "C02JAMF2"] {
        custos_ok(&data, &["devices", "add", "--serial", serial]);
    }
    custos_ok(
        &data,
        &[
            "devices",
            "add",
            "--serial",
            "C02JAMF3",
            "--udid",
            "UDID-JAMF-3",
        ],
    );
    let server = Server::start(&data, &[]);
    let http = server.https_client();
    // The challenge pages are on the HTTPS listener only.
    let ndes_url = format!("{}/certsrv/mscep_admin/", server.https_url);
    let plain = reqwest::get(format!("{}/certsrv/mscep_admin/", server.http_url))
        .await
        .unwrap();
    assert_eq!(plain.status(), 404, "not on the plain listener");

    // Without or with wrong credentials: 401, and no challenge made.
    let r = http.get(&ndes_url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let r = http
        .get(&ndes_url)
        .basic_auth("fleet", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Read as Fleet reads NDES: UTF-16 with a byte order mark, then the
    // text after "The enrollment challenge password is: <B> ".
    let r = http
        .get(&ndes_url)
        .basic_auth("fleet", Some("ndes-password-0123456789"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0xFF, 0xFE], "UTF-16LE BOM");
    let units: Vec<u16> = bytes[2..]
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let page = String::from_utf16(&units).unwrap();
    let ndes_challenge = page
        .split("The enrollment challenge password is: <B> ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a challenge on the page")
        .to_string();

    // Jamf's SCEPChallenge webhook: the answer's body is the challenge,
    // bound to the device the event names (serial, or UDID).
    let jamf = |event: serde_json::Value, password: &'static str| {
        let (http, url) = (
            http.clone(),
            format!("{}/scep/jamf-challenge", server.https_url),
        );
        async move {
            http.post(url)
                .basic_auth("jamf", Some(password))
                .json(&serde_json::json!({
                    "webhook": {"id": 3, "name": "custos", "webhookEvent": "SCEPChallenge"},
                    "event": event,
                }))
                .send()
                .await
                .unwrap()
        }
    };
    let r = jamf(serde_json::json!({"serialNumber": "C02JAMF1"}), "wrong").await;
    assert_eq!(r.status(), 401);
    let r = jamf(
        serde_json::json!({"serialNumber": "C02NOBODY"}),
        "jamf-password-0123456789",
    )
    .await;
    assert_eq!(r.status(), 422, "unknown device");
    let r = jamf(
        serde_json::json!({"serialNumber": "C02JAMF1", "udid": "X"}),
        "jamf-password-0123456789",
    )
    .await;
    assert_eq!(r.status(), 200);
    let jamf1 = r.text().await.unwrap();
    let r = jamf(
        serde_json::json!({"udid": "UDID-JAMF-3"}),
        "jamf-password-0123456789",
    )
    .await;
    assert_eq!(r.status(), 200);
    let jamf3 = r.text().await.unwrap();
    assert_ne!(jamf1, jamf3);
    // Three unused challenges are open: the cap refuses a fourth.
    let ndes_page = || {
        http.get(&ndes_url)
            .basic_auth("fleet", Some("ndes-password-0123456789"))
            .send()
    };
    let r = ndes_page().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("scep.max_open_challenges"));

    // Enrol with them: strongSwan, on the path NDES answers SCEP at.
    let url = format!("{}/certsrv/mscep/mscep.dll", server.http_url);
    fetch_ca_files(dir, &url).await;
    for k in ["n.der", "j.der", "x.der"] {
        gen_key(dir, k);
    }
    // The NDES challenge names no device: a CSR naming none is refused,
    // one naming an inventory device enrols it, and then the challenge is
    // spent.
    let (ok, _, said) = pki_scep(
        dir,
        &url,
        "n.der",
        "O=Acme, CN=printer",
        &ndes_challenge,
        &[],
    );
    assert!(!ok && said.contains("badRequest"), "{said}");
    let (ok, cert, said) = pki_scep(
        dir,
        &url,
        "n.der",
        "O=Acme, CN=C02NDES1",
        &ndes_challenge,
        &[],
    );
    assert!(ok, "{said}");
    let leaf = dir.join("ndes.pem");
    std::fs::write(&leaf, &cert).unwrap();
    assert!(ocsp_says(&server, &leaf).contains(": good"));
    let (ok, _, said) = pki_scep(
        dir,
        &url,
        "x.der",
        "O=Acme, CN=C02JAMF2",
        &ndes_challenge,
        &[],
    );
    assert!(!ok && said.contains("badRequest"), "spent: {said}");
    // A Jamf challenge works for its device only.
    let (ok, _, said) = pki_scep(dir, &url, "j.der", "CN=C02JAMF2", &jamf1, &[]);
    assert!(!ok && said.contains("badRequest"), "{said}");
    let (ok, _, said) = pki_scep(dir, &url, "j.der", "CN=C02JAMF1", &jamf1, &[]);
    assert!(ok, "{said}");
    let (ok, _, said) = pki_scep(
        dir,
        &url,
        "x.der",
        "serialNumber=C02JAMF3, CN=laptop",
        &jamf3,
        &[],
    );
    assert!(ok, "{said}");
    let listed = custos_ok(&data, &["devices", "list", "--enrolment", "scep"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    for d in ["C02NDES1", "C02JAMF1", "C02JAMF3"] {
        assert!(listed.contains(d), "{listed}");
    }
    assert!(!listed.contains("C02JAMF2"));
    // The legacy shared challenge: any device, as long as the CSR names
    // one in the inventory.
    let (ok, _, said) = pki_scep(
        dir,
        &url,
        "j.der",
        "CN=printer",
        "shared-legacy-secret-123",
        &[],
    );
    assert!(!ok && said.contains("badRequest"), "{said}");
    let (ok, _, said) = pki_scep(
        dir,
        &url,
        "j.der",
        "CN=C02JAMF2",
        "shared-legacy-secret-123",
        &[],
    );
    assert!(ok, "{said}");
    let listed = custos_ok(&data, &["devices", "list", "--enrolment", "scep"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("C02JAMF2"));
    let audit = custos_ok(&data, &["audit", "--kind", "scep.challenge", "--json"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(
        audit.contains("ndes:fleet") && audit.contains("jamf:jamf"),
        "{audit}"
    );
    assert!(!audit.contains(&jamf1) && !audit.contains(&ndes_challenge));
    // Challenges used: the page makes them again.
    assert_eq!(ndes_page().await.unwrap().status(), 200);
    assert!(server.terminate().success());
}

/// A SCEP request as a client makes it: `content` encrypted to the RA by
/// the OpenSSL CLI (AES-128), in a SignedData signed by the client's RSA
/// key (`client.pk8`, `client.der` in `dir`) with SHA-256, carrying the
/// SCEP attributes.
fn scep_request(dir: &Path, message_type: &str, transaction_id: &str, content: &[u8]) -> Vec<u8> {
    scep_request_signed_at(dir, message_type, transaction_id, content, None)
}

/// [`scep_request`] with a signingTime attribute (Unix seconds) when given.
fn scep_request_signed_at(
    dir: &Path,
    message_type: &str,
    transaction_id: &str,
    content: &[u8],
    signing_time: Option<u64>,
) -> Vec<u8> {
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{
        CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo,
        SignerInfos,
    };
    use der::asn1::{Any, OctetString, PrintableStringRef, SetOfVec};
    use der::{Decode, Encode};
    std::fs::write(dir.join("content.bin"), content).unwrap();
    let out = openssl(&[
        "cms",
        "-encrypt",
        "-binary",
        "-aes128",
        "-in",
        dir.join("content.bin").to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        dir.join("env.der").to_str().unwrap(),
        "-recip",
        dir.join("ra.pem").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let envelope = std::fs::read(dir.join("env.der")).unwrap();
    let oid = der::oid::ObjectIdentifier::new_unwrap;
    let attr = |id: &str, value: Any| x509_cert::attr::Attribute {
        oid: oid(id),
        values: SetOfVec::try_from(vec![value]).unwrap(),
    };
    let printable = |s: &str| Any::encode_from(&PrintableStringRef::new(s).unwrap()).unwrap();
    let octets = |b: &[u8]| Any::encode_from(&OctetString::new(b).unwrap()).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &envelope);
    let mut attrs = vec![
        attr(
            "1.2.840.113549.1.9.3",
            Any::encode_from(&oid("1.2.840.113549.1.7.1")).unwrap(),
        ),
        attr("1.2.840.113549.1.9.4", octets(digest.as_ref())),
        attr("2.16.840.1.113733.1.9.2", printable(message_type)),
        attr("2.16.840.1.113733.1.9.7", printable(transaction_id)),
        attr("2.16.840.1.113733.1.9.5", octets(&[9u8; 16])),
    ];
    if let Some(t) = signing_time {
        let utc =
            der::asn1::UtcTime::from_unix_duration(std::time::Duration::from_secs(t)).unwrap();
        attrs.push(attr(
            "1.2.840.113549.1.9.5",
            Any::encode_from(&utc).unwrap(),
        ));
    }
    let attrs = SetOfVec::try_from(attrs).unwrap();
    let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(
        &std::fs::read(dir.join("client.pk8")).unwrap(),
    )
    .unwrap();
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &attrs.to_der().unwrap(),
        &mut sig,
    )
    .unwrap();
    let cert =
        x509_cert::Certificate::from_der(&std::fs::read(dir.join("client.der")).unwrap()).unwrap();
    let sha256 = spki::AlgorithmIdentifierOwned {
        oid: oid("2.16.840.1.101.3.4.2.1"),
        parameters: None,
    };
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(attrs),
        signature_algorithm: spki::AlgorithmIdentifierOwned {
            oid: oid("1.2.840.113549.1.1.11"),
            parameters: None,
        },
        signature: OctetString::new(sig).unwrap(),
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).unwrap(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid("1.2.840.113549.1.7.1"),
            econtent: Some(octets(&envelope)),
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(cert)]).unwrap(),
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).unwrap()),
    };
    ContentInfo {
        content_type: oid("1.2.840.113549.1.7.2"),
        content: Any::encode_from(&signed).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// POSTs a request; what the OpenSSL CLI reads from the `CertRep`: the
/// printed structure, and (on success) the decrypted PKCS#7 printed with
/// `-print_certs` (certificates and CRLs).
async fn post_scep(dir: &Path, url: &str, request: Vec<u8>) -> (String, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{url}?operation=PKIOperation"))
        .header("content-type", "application/x-pki-message")
        .body(request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    std::fs::write(dir.join("rep.der"), r.bytes().await.unwrap()).unwrap();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let printed = openssl(&[
        "cms",
        "-cmsout",
        "-print",
        "-inform",
        "DER",
        "-in",
        &p("rep.der"),
    ]);
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    let verified = openssl(&[
        "cms",
        "-verify",
        "-noverify",
        "-inform",
        "DER",
        "-in",
        &p("rep.der"),
        "-out",
        &p("rep-env.der"),
    ]);
    if !verified.status.success() {
        return (printed, None);
    }
    let decrypted = openssl(&[
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &p("rep-env.der"),
        "-inkey",
        &p("client.key"),
        "-recip",
        &p("client.pem"),
        "-out",
        &p("inner.der"),
    ]);
    assert!(
        decrypted.status.success(),
        "{}",
        String::from_utf8_lossy(&decrypted.stderr)
    );
    let inner = openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        &p("inner.der"),
        "-print_certs",
        "-text",
    ]);
    (
        printed,
        Some(String::from_utf8_lossy(&inner.stdout).into_owned()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn get_cert_get_crl_and_cert_poll_answer_from_the_ledger() {
    use der::{Decode, Encode};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (data, server, url) =
        scep_server(dir, "[scep]\nlisten_plain = true\n", &["C02POLL1"]).await;
    gen_key(dir, "k.der");
    let ch = challenge(&data, "C02POLL1", "1h");
    let (ok, cert_pem, said) = pki_scep(dir, &url, "k.der", "CN=C02POLL1", &ch, &[]);
    assert!(ok, "{said}");
    let tid = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("transaction ID: "))
        .expect("pki prints its transaction ID")
        .to_string();
    let leaf = x509_cert::Certificate::from_der(
        &der::pem::decode_vec(cert_pem.trim().as_bytes()).unwrap().1,
    )
    .unwrap();
    // As OpenSSL prints it: upper-case hex without a leading zero byte.
    let serial_hex = hex::encode_upper(leaf.tbs_certificate.serial_number.as_bytes())
        .trim_start_matches("00")
        .to_string();
    // The client's own signing identity for these queries.
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=querier",
            "-keyout",
            &p("client.key"),
            "-out",
            &p("client.pem"),
        ],
        vec![
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &p("client.key"),
            "-outform",
            "DER",
            "-out",
            &p("client.pk8"),
        ],
        vec![
            "x509",
            "-in",
            &p("client.pem"),
            "-outform",
            "DER",
            "-out",
            &p("client.der"),
        ],
    ] {
        assert!(openssl(&args).status.success());
    }
    let issuer = leaf.tbs_certificate.issuer.clone();
    let by_serial = |serial: x509_cert::serial_number::SerialNumber| {
        custos_scep::IssuerAndSerialNumber {
            issuer: issuer.clone(),
            serial_number: serial,
        }
        .to_der()
        .unwrap()
    };

    // GetCert: the certificate, by issuer and serial.
    let req = scep_request(
        dir,
        "21",
        "q-getcert",
        &by_serial(leaf.tbs_certificate.serial_number.clone()),
    );
    let (_, inner) = post_scep(dir, &url, req).await;
    let inner = inner.expect("a success");
    assert!(
        inner.contains("CN = C02POLL1") || inner.contains("CN=C02POLL1"),
        "{inner}"
    );
    // GetCRL: the CRL of its shard.
    let req = scep_request(
        dir,
        "22",
        "q-getcrl",
        &by_serial(leaf.tbs_certificate.serial_number.clone()),
    );
    let (_, inner) = post_scep(dir, &url, req).await;
    let inner = inner.expect("a success");
    assert!(inner.contains("Certificate Revocation List"), "{inner}");
    assert!(!inner.contains(&serial_hex), "not revoked yet");
    // Revoked: the next GetCRL lists it.
    custos_ok(
        &data,
        &[
            "revoke",
            "--serial",
            &serial_hex,
            "--reason",
            "keyCompromise",
        ],
    );
    // (CRLs are re-signed within moments of a revocation, as over HTTP.)
    let t = std::time::Instant::now();
    loop {
        let req = scep_request(
            dir,
            "22",
            "q-getcrl-2",
            &by_serial(leaf.tbs_certificate.serial_number.clone()),
        );
        let (_, inner) = post_scep(dir, &url, req).await;
        if inner.expect("a success").contains(&serial_hex) {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "not listed after revocation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // CertPoll for strongSwan's transaction: the certificate it was issued.
    let poll = custos_scep::IssuerAndSubject {
        issuer: issuer.clone(),
        subject: leaf.tbs_certificate.subject.clone(),
    }
    .to_der()
    .unwrap();
    let (_, inner) = post_scep(dir, &url, scep_request(dir, "20", &tid, &poll)).await;
    assert!(inner.expect("a success").contains("C02POLL1"));
    // Unknown serial, unknown transaction: failInfo badCertId (4).
    let unknown = x509_cert::serial_number::SerialNumber::new(&[0x01, 0x02, 0x03]).unwrap();
    let (printed, inner) = post_scep(
        dir,
        &url,
        scep_request(dir, "21", "q-unknown", &by_serial(unknown.clone())),
    )
    .await;
    assert!(inner.is_none());
    assert!(
        printed.contains("2.16.840.1.113733.1.9.4") && printed.contains("PRINTABLESTRING:4"),
        "{printed}"
    );
    let (printed, _) = post_scep(dir, &url, scep_request(dir, "20", "no-such-tx", &poll)).await;
    assert!(printed.contains("PRINTABLESTRING:4"), "{printed}");
    // signingTime: a minute off is within scep.max_clock_skew_secs (the
    // request goes on to badCertID); two hours off is badTime (3).
    let now = custos::model::time::unix_now();
    for (at, fail) in [
        (now - 60, "PRINTABLESTRING:4"),
        (now - 7200, "PRINTABLESTRING:3"),
    ] {
        let req =
            scep_request_signed_at(dir, "21", "q-time", &by_serial(unknown.clone()), Some(at));
        let (printed, inner) = post_scep(dir, &url, req).await;
        assert!(inner.is_none());
        assert!(printed.contains(fail), "{at}: {printed}");
    }
    assert!(server.terminate().success());
}
