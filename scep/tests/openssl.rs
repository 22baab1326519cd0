//! What OpenSSL reads from the certificates-only PKCS#7 `GetCACert` sends.

use std::path::PathBuf;
use std::process::Command;

/// A scratch directory for this test process.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("custos-scep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A self-signed P-256 certificate with `cn`, made by the OpenSSL CLI: DER.
fn cert(dir: &std::path::Path, cn: &str) -> Vec<u8> {
    let (key, crt) = (dir.join(format!("{cn}.key")), dir.join(format!("{cn}.der")));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={cn}"),
            "-outform",
            "DER",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(crt).expect("certificate")
}

#[test]
fn openssl_lists_every_certificate() {
    let dir = scratch();
    let (ra, ca) = (cert(&dir, "custos RA"), cert(&dir, "custos CA"));
    let p7 = custos_scep::certs_only(&[&ra, &ca]).expect("certs-only PKCS#7");
    let file = dir.join("getcacert.p7b");
    std::fs::write(&file, &p7).expect("write");
    let out = Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs", "-noout", "-in"])
        .arg(&file)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut subjects: Vec<&str> = text.lines().filter(|l| l.starts_with("subject=")).collect();
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        ["subject=CN = custos CA", "subject=CN = custos RA"],
        "{text}"
    );
    // The same bytes through the CMS reader: no signer, no content.
    let out = Command::new("openssl")
        .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
        .arg(&file)
        .output()
        .expect("openssl");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("contentType: pkcs7-signedData"),
        "{printed}"
    );
    assert!(printed.contains("signerInfos:\n      <EMPTY>"), "{printed}");
    let _ = std::fs::remove_dir_all(dir);
}
