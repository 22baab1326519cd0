//! What OpenSSL reads from the certificates-only PKCS#7 `GetCACert` sends.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory for this test process.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("custos-scep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs the OpenSSL CLI with `args` and `file` last; its stdout, after
/// asserting it succeeded.
fn openssl(args: &[&str], file: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed P-256 certificate with `cn`, made by the OpenSSL CLI: DER.
fn cert(dir: &Path, cn: &str) -> Vec<u8> {
    let (key, crt) = (dir.join(format!("{cn}.key")), dir.join(format!("{cn}.der")));
    let subject = format!("/CN={cn}");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &subject,
            "-outform",
            "DER",
            "-keyout",
            key.to_str().expect("utf-8 path"),
            "-out",
        ],
        &crt,
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
    let text = openssl(
        &["pkcs7", "-inform", "DER", "-print_certs", "-noout", "-in"],
        &file,
    );
    let mut subjects: Vec<&str> = text.lines().filter(|l| l.starts_with("subject=")).collect();
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        ["subject=CN = custos CA", "subject=CN = custos RA"],
        "{text}"
    );
    // The same bytes through the CMS reader: no signer, no content.
    let printed = openssl(
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in"],
        &file,
    );
    assert!(
        printed.contains("contentType: pkcs7-signedData"),
        "{printed}"
    );
    assert!(printed.contains("signerInfos:\n      <EMPTY>"), "{printed}");
    let _ = std::fs::remove_dir_all(dir);
}
