//! The CA and the issuance function, checked with the real OpenSSL CLI.

use crate::common;

use common::{csr_pem, openssl, p256_csr};
use custos::app::{open_ledger, App};
use custos::ca::{Ca, CaPaths, CaUrls, InitOptions};
use custos::config::{Config, Overrides};
use custos::csr::CsrError;
use custos::ra::issuance::IssueError;
use custos::ra::AdminError;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn config(data_dir: &Path) -> Config {
    Config::load(
        None,
        &Overrides {
            data_dir: Some(data_dir.to_path_buf()),
            ..Overrides::default()
        },
    )
    .unwrap()
}

fn app(data_dir: &Path) -> App {
    let config = config(data_dir);
    let ledger = open_ledger(&config).unwrap();
    App::build(config, ledger, None, true).unwrap()
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p.to_string_lossy().into_owned()
}

fn verify(data_dir: &Path, leaf: &str) -> std::process::Output {
    let paths = CaPaths::new(data_dir);
    openssl(&[
        "verify",
        "-CAfile",
        paths.root_cert().to_str().unwrap(),
        "-untrusted",
        paths.chain().to_str().unwrap(),
        leaf,
    ])
}

#[test]
fn issued_certificates_verify_with_openssl_and_carry_aia_cdp_ski_aki() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_RSA_SHA256,
    ] {
        let (csr, _) = csr_pem(alg, &["device.example.com"]);
        let issued = app
            .authority
            .issue_csr(csr.as_bytes(), None, custos::model::time::unix_now())
            .unwrap();
        let leaf = write(
            dir.path(),
            "leaf.pem",
            custos::ca::to_pem(&issued.der).as_bytes(),
        );
        let out = verify(dir.path(), &leaf);
        assert!(
            out.status.success(),
            "openssl verify failed for {alg:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = openssl(&["x509", "-in", &leaf, "-noout", "-text"]);
        let text = String::from_utf8_lossy(&text.stdout);
        let http = app.config.http_base(None);
        for needle in [
            "Authority Information Access".to_string(),
            format!("OCSP - URI:{http}/ocsp"),
            format!("CA Issuers - URI:{http}/ca/{}.crt", app.ca.issuer_id()),
            "X509v3 CRL Distribution Points".to_string(),
            format!("URI:{http}/crl/{}/0.crl", app.ca.issuer_id()),
            "X509v3 Subject Key Identifier".to_string(),
            "X509v3 Authority Key Identifier".to_string(),
            "DNS:device.example.com".to_string(),
            "TLS Web Client Authentication".to_string(),
        ] {
            assert!(text.contains(&needle), "missing {needle:?} in:\n{text}");
        }
        let serial = openssl(&["x509", "-in", &leaf, "-noout", "-serial"]);
        let serial = String::from_utf8_lossy(&serial.stdout);
        assert_eq!(serial.trim(), format!("serial={}", issued.record.serial));
        assert!(app.ledger.get(&issued.record.serial).unwrap().is_some());
    }
    assert_eq!(app.ledger.count().unwrap(), 4);
}

#[test]
fn ca_files_are_laid_out_with_private_keys_0600_and_ocsp_signer_is_delegated() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let paths = CaPaths::new(dir.path());
    for key in [
        paths.root_key(),
        paths.issuer_key(),
        paths.ocsp_key(),
        dir.path().join("admin.token"),
    ] {
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    let ocsp = paths.ocsp_cert();
    let out = verify(dir.path(), ocsp.to_str().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = openssl(&["x509", "-in", ocsp.to_str().unwrap(), "-noout", "-text"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("OCSP Signing"), "{text}");
    assert!(text.contains("OCSP No Check"), "{text}");
    assert!(text.contains("prime256v1"), "P-256 by default: {text}");
    assert!(!text.contains("Authority Information Access"), "{text}");
    assert!(!text.contains("CRL Distribution"), "{text}");
    let root = openssl(&[
        "x509",
        "-in",
        paths.root_cert().to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(String::from_utf8_lossy(&root.stdout).contains("secp384r1"));
    assert_eq!(
        app.ca.ocsp_signer().key.algorithm(),
        custos::ca::key::KeyAlgorithm::P256
    );
}

#[test]
fn bad_csrs_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let now = custos::model::time::unix_now();

    // A CSR whose signature was tampered with.
    let csr = p256_csr(&["a.example"]);
    let (_, mut der) = der::pem::decode_vec(csr.as_bytes()).unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let err = app.authority.issue_csr(&der, None, now).unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::Issue(IssueError::Csr(CsrError::BadSignature))
        ),
        "{err:?}"
    );

    // Garbage and an unsupported curve.
    let err = app
        .authority
        .issue_csr(b"not a csr", None, now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::Issue(IssueError::Csr(CsrError::Malformed(_)))
        ),
        "{err:?}"
    );
    let (p521, _) = csr_pem(&rcgen::PKCS_ECDSA_P521_SHA512, &["a.example"]);
    let err = app
        .authority
        .issue_csr(p521.as_bytes(), None, now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::Issue(IssueError::Csr(CsrError::UnsupportedKey(_)))
        ),
        "{err:?}"
    );

    // A CSR made with the issuing CA's own key.
    let ca_key = std::fs::read_to_string(CaPaths::new(dir.path()).issuer_key()).unwrap();
    let key = rcgen::KeyPair::from_pem(&ca_key).unwrap();
    let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
    let ca_csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let err = app
        .authority
        .issue_csr(ca_csr.as_bytes(), None, now)
        .unwrap_err();
    assert!(
        matches!(err, AdminError::Issue(IssueError::Csr(CsrError::CaKey))),
        "{err:?}"
    );

    // Unknown profile.
    let err = app
        .authority
        .issue_csr(p256_csr(&["a.example"]).as_bytes(), Some("nope"), now)
        .unwrap_err();
    assert!(matches!(err, AdminError::UnknownProfile(_)), "{err:?}");

    assert_eq!(app.ledger.count().unwrap(), 0);
}

#[test]
fn an_existing_issuing_ca_can_be_imported() {
    let source = tempfile::tempdir().unwrap();
    let urls = CaUrls {
        http_base: "http://127.0.0.1:8080".into(),
    };
    Ca::init(source.path(), &InitOptions::default(), urls.clone()).unwrap();
    let src = CaPaths::new(source.path());
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(src.issuer_cert()).unwrap(),
        std::fs::read_to_string(src.root_cert()).unwrap()
    );
    let key = std::fs::read(src.issuer_key()).unwrap();

    let target = tempfile::tempdir().unwrap();
    // A key that does not match is refused.
    let wrong = std::fs::read(src.ocsp_key()).unwrap();
    assert!(Ca::import(
        target.path(),
        bundle.as_bytes(),
        &wrong,
        &InitOptions::default(),
        urls.clone()
    )
    .is_err());
    // A bundle without its root is refused.
    let no_root = std::fs::read(src.issuer_cert()).unwrap();
    assert!(Ca::import(
        target.path(),
        &no_root,
        &key,
        &InitOptions::default(),
        urls.clone()
    )
    .is_err());

    let ca = Ca::import(
        target.path(),
        bundle.as_bytes(),
        &key,
        &InitOptions::default(),
        urls,
    )
    .unwrap();
    assert!(!CaPaths::new(target.path()).root_key().exists());
    assert_eq!(
        std::fs::read(CaPaths::new(target.path()).root_cert()).unwrap(),
        std::fs::read(src.root_cert()).unwrap()
    );
    drop(ca);
    let app = app(target.path());
    let issued = app
        .authority
        .issue_csr(
            p256_csr(&["imported.example"]).as_bytes(),
            None,
            custos::model::time::unix_now(),
        )
        .unwrap();
    let leaf = write(
        target.path(),
        "leaf.pem",
        custos::ca::to_pem(&issued.der).as_bytes(),
    );
    let out = verify(target.path(), &leaf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_second_init_refuses_to_overwrite_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let urls = CaUrls {
        http_base: "http://127.0.0.1:8080".into(),
    };
    Ca::init(dir.path(), &InitOptions::default(), urls.clone()).unwrap();
    let root = std::fs::read(CaPaths::new(dir.path()).root_cert()).unwrap();
    assert!(Ca::init(dir.path(), &InitOptions::default(), urls).is_err());
    assert_eq!(
        std::fs::read(CaPaths::new(dir.path()).root_cert()).unwrap(),
        root
    );
}

#[test]
fn precomputed_responses_are_made_at_issuance_and_refreshed_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let now = custos::model::time::unix_now();
    let issued = app
        .authority
        .issue_csr(p256_csr(&["r.example"]).as_bytes(), None, now)
        .unwrap();
    let serial = &issued.record.serial;
    let first = app
        .ledger
        .get_precomputed(1, serial)
        .unwrap()
        .expect("SHA-1 response stored");
    assert!(
        app.ledger.get_precomputed(2, serial).unwrap().is_some(),
        "SHA-256 response stored"
    );
    assert!(first.next_update > now && first.this_update < now);
    assert!(first.refresh_at > now && first.refresh_at < first.next_update);
    // Nothing is due yet; at the refresh time it is re-signed.
    assert_eq!(app.responder.refresh_due(now, 100).unwrap(), 0);
    let later = first.refresh_at + 1;
    assert!(app.responder.refresh_due(later, 100).unwrap() >= 1);
    let second = app.ledger.get_precomputed(1, serial).unwrap().unwrap();
    assert!(second.this_update > first.this_update);
    assert!(second.refresh_at > later);
    assert_ne!(second.etag, first.etag);
    // Revocation re-signs within the same call.
    app.authority
        .revoke_serial(
            serial,
            custos::revocation::Reason::KeyCompromise,
            None,
            later,
        )
        .unwrap();
    assert_eq!(
        app.ledger
            .get_precomputed(1, serial)
            .unwrap()
            .unwrap()
            .status,
        1
    );
    assert_eq!(
        app.ledger
            .get_precomputed(2, serial)
            .unwrap()
            .unwrap()
            .status,
        1
    );
}

#[test]
fn a_lost_ocsp_responder_key_is_replaced_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let urls = CaUrls {
        http_base: "http://127.0.0.1:8080".into(),
    };
    let ca = Ca::init(dir.path(), &InitOptions::default(), urls.clone()).unwrap();
    let old = ca.ocsp_signer().cert_der.clone();
    drop(ca);
    std::fs::remove_file(CaPaths::new(dir.path()).ocsp_key()).unwrap();
    let ca = Ca::load(dir.path(), urls).unwrap();
    assert_ne!(ca.ocsp_signer().cert_der, old);
    assert!(CaPaths::new(dir.path()).ocsp_key().exists());
}
