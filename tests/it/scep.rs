//! SCEP's first operations on a running server, read with the OpenSSL CLI:
//! `GetCACaps`, and `GetCACert` with the RSA RA certificate the CA makes at
//! first use.

use crate::common::{custos, ocsp_says, openssl, Server};
use std::os::unix::fs::PermissionsExt;

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
    assert!(
        said.contains("PKIOperation for PKCSReq (19): http request failed with status 501"),
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
            501,
            "not available yet",
        ),
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
