//! Envelopes and replies checked against what other implementations make
//! and read: scepclient's real request (signature verified, single DES
//! refused), envelopes the OpenSSL CLI encrypts (opened, or refused with
//! the right failInfo), and `CertRep`s the OpenSSL CLI verifies and
//! decrypts.

use custos_scep::envelope::{open, ContentCipher, RaKey};
use custos_scep::{cert_rep, FailInfo, MessageType, Outcome, PkiMessage};
use std::path::{Path, PathBuf};
use std::process::Command;

const SCEPCLIENT_REQUEST: &[u8] = include_bytes!("fixtures/scepclient-pkcsreq.der");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("custos-scep-env-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed")
}

fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let out = openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An RA (or client) key and certificate, as files and in memory.
struct TestKey {
    cert_der: Vec<u8>,
    decrypt: aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey,
    sign: aws_lc_rs::signature::RsaKeyPair,
}

impl TestKey {
    /// Loads `<name>.key` (PEM) and `<name>.pem` from `dir`.
    fn load(dir: &Path, name: &str) -> TestKey {
        let key = format!("{name}.key");
        let pk8 = format!("{name}.pk8");
        let crt = format!("{name}.crt.der");
        openssl_ok(
            dir,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", &key, "-outform", "DER", "-out", &pk8,
            ],
        );
        openssl_ok(
            dir,
            &[
                "x509",
                "-in",
                &format!("{name}.pem"),
                "-outform",
                "DER",
                "-out",
                &crt,
            ],
        );
        let pk8 = std::fs::read(dir.join(pk8)).expect("pkcs8");
        TestKey {
            cert_der: std::fs::read(dir.join(crt)).expect("cert"),
            decrypt: aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey::new(
                aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&pk8).expect("rsa key"),
            )
            .expect("pkcs1"),
            sign: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&pk8).expect("rsa key"),
        }
    }

    /// A fresh RSA-2048 key and self-signed certificate named `name`.
    fn make(dir: &Path, name: &str) -> TestKey {
        openssl_ok(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
        TestKey::load(dir, name)
    }
}

impl RaKey for TestKey {
    fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }
    fn unwrap_key(&self, wrapped: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; self.decrypt.min_output_size()];
        let n = self.decrypt.decrypt(wrapped, &mut out).ok()?.len();
        out.truncate(n);
        Some(out)
    }
    fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut sig = vec![0u8; self.sign.public_modulus_len()];
        self.sign
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|e| e.to_string())?;
        Ok(sig)
    }
}

#[test]
fn scepclients_request_verifies_and_its_single_des_is_refused_with_bad_alg() {
    let dir = scratch("scepclient");
    for f in ["scepclient-ra.key", "scepclient-ra.pem"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(f),
            dir.join(f),
        )
        .expect("fixture");
    }
    let ra = TestKey::load(&dir, "scepclient-ra");
    let m = PkiMessage::parse(SCEPCLIENT_REQUEST).expect("reads");
    m.verify()
        .expect("scepclient's SHA-1 RSA signature verifies");

    // One bit changed in what is signed, or in the content the digest
    // covers: badMessageCheck.
    let mut attrs = m.clone();
    let last = attrs.signed_attrs_der.len() - 1;
    attrs.signed_attrs_der[last] ^= 1;
    assert_eq!(
        attrs.verify().unwrap_err().fail_info,
        FailInfo::BadMessageCheck
    );
    let mut content = m.clone();
    let last = content.envelope.len() - 1;
    content.envelope[last] ^= 1;
    assert_eq!(
        content.verify().unwrap_err().fail_info,
        FailInfo::BadMessageCheck
    );

    // The envelope (BER from Go's pkcs7) reads, and its single DES is
    // refused by name.
    let refusal = open(&m.envelope, &ra).unwrap_err();
    assert_eq!(refusal.fail_info, FailInfo::BadAlg, "{refusal}");
    assert!(refusal.reason.contains("single DES"), "{refusal}");
}

#[test]
fn envelopes_openssl_encrypts_open_or_are_refused_with_the_right_code() {
    let dir = scratch("openssl");
    let ra = TestKey::make(&dir, "ra");
    TestKey::make(&dir, "other");
    std::fs::write(dir.join("content.bin"), b"a certificate request, say").expect("write");
    let encrypt = |out: &str, recip: &str, extra: &[&str]| -> Vec<u8> {
        let mut args = vec![
            "cms",
            "-encrypt",
            "-binary",
            "-in",
            "content.bin",
            "-outform",
            "DER",
            "-out",
            out,
            "-recip",
            recip,
        ];
        args.extend_from_slice(extra);
        openssl_ok(&dir, &args);
        std::fs::read(dir.join(out)).expect("envelope")
    };
    for (flag, cipher) in [
        ("-aes128", ContentCipher::Aes128Cbc),
        ("-aes192", ContentCipher::Aes192Cbc),
        ("-aes256", ContentCipher::Aes256Cbc),
        ("-des3", ContentCipher::DesEde3Cbc),
    ] {
        let env = encrypt("env.der", "ra.pem", &[flag]);
        let opened = open(&env, &ra).unwrap_or_else(|e| panic!("{flag}: {e}"));
        assert_eq!(opened.content, b"a certificate request, say", "{flag}");
        assert_eq!(opened.cipher, cipher);
    }
    // Addressed to someone else.
    let env = encrypt("other.der", "other.pem", &["-aes128"]);
    assert_eq!(
        open(&env, &ra).unwrap_err().fail_info,
        FailInfo::BadMessageCheck
    );
    // To us, but decrypted with the wrong key (certificate of ours, key
    // of another): no padding oracle, the same code as any other failure.
    let confused = TestKey {
        cert_der: ra.cert_der.clone(),
        ..TestKey::load(&dir, "other")
    };
    let env = encrypt("env.der", "ra.pem", &["-aes128"]);
    assert_eq!(
        open(&env, &confused).unwrap_err().fail_info,
        FailInfo::BadMessageCheck
    );
    // RSA-OAEP key transport and single DES: badAlg.
    let env = encrypt(
        "oaep.der",
        "ra.pem",
        &["-aes128", "-keyopt", "rsa_padding_mode:oaep"],
    );
    assert_eq!(open(&env, &ra).unwrap_err().fail_info, FailInfo::BadAlg);
    if openssl(
        &dir,
        &[
            "cms",
            "-encrypt",
            "-binary",
            "-in",
            "content.bin",
            "-outform",
            "DER",
            "-out",
            "des.der",
            "-recip",
            "ra.pem",
            "-des",
        ],
    )
    .status
    .success()
    {
        let env = std::fs::read(dir.join("des.der")).expect("des envelope");
        assert_eq!(open(&env, &ra).unwrap_err().fail_info, FailInfo::BadAlg);
    }
    // Garbage and truncations are refused, not panicked on.
    let env = encrypt("env.der", "ra.pem", &["-aes256"]);
    for cut in [0, 1, 10, env.len() / 2, env.len() - 1] {
        assert!(open(&env[..cut], &ra).is_err());
    }
}

/// A request from `client`, as a client would have sent it (only the
/// fields a reply uses matter).
fn request_from(client: &TestKey) -> PkiMessage {
    PkiMessage {
        message_type: MessageType::PkcsReq,
        transaction_id: "tx-42".into(),
        sender_nonce: vec![7; 16],
        signer_cert: client.cert_der.clone(),
        signed_attrs_der: Vec::new(),
        signature_alg: custos_scep::envelope::RSA_ENCRYPTION,
        digest_alg: custos_scep::envelope::RSA_ENCRYPTION,
        signature: Vec::new(),
        envelope: Vec::new(),
        message_digest: Vec::new(),
        signing_time: None,
    }
}

#[test]
fn openssl_verifies_and_decrypts_a_certrep() {
    let dir = scratch("reply");
    let ra = TestKey::make(&dir, "ra");
    let client = TestKey::make(&dir, "client");
    let issued = TestKey::make(&dir, "issued");
    let req = request_from(&client);
    for cipher in [ContentCipher::Aes128Cbc, ContentCipher::DesEde3Cbc] {
        let outcome = Outcome::certificates(&[&issued.cert_der], &req, cipher).expect("sealed");
        let rep = cert_rep(&req, &outcome, &ra).expect("reply");
        std::fs::write(dir.join("rep.der"), &rep).expect("write");
        // The RA's signature over the attributes and content verifies.
        openssl_ok(
            &dir,
            &[
                "cms",
                "-verify",
                "-noverify",
                "-inform",
                "DER",
                "-in",
                "rep.der",
                "-out",
                "env.der",
            ],
        );
        let printed = openssl_ok(
            &dir,
            &[
                "cms", "-cmsout", "-print", "-inform", "DER", "-in", "rep.der",
            ],
        );
        assert!(printed.contains("tx-42"), "transactionID echoed");
        assert!(
            printed.contains("2.16.840.1.113733.1.9.6"),
            "recipientNonce"
        );
        // The client decrypts the certificates-only PKCS#7 inside.
        openssl_ok(
            &dir,
            &[
                "cms",
                "-decrypt",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "env.der",
                "-inkey",
                "client.key",
                "-recip",
                "client.pem",
                "-out",
                "inner.der",
            ],
        );
        let certs = openssl_ok(
            &dir,
            &[
                "pkcs7",
                "-inform",
                "DER",
                "-in",
                "inner.der",
                "-print_certs",
            ],
        );
        assert!(certs.contains("subject=CN = issued"), "{certs}");
    }
    // A failure carries failInfo and no content.
    let rep = cert_rep(&req, &Outcome::Failure(FailInfo::BadRequest), &ra).expect("reply");
    std::fs::write(dir.join("fail.der"), &rep).expect("write");
    let printed = openssl_ok(
        &dir,
        &[
            "cms", "-cmsout", "-print", "-inform", "DER", "-in", "fail.der",
        ],
    );
    assert!(
        printed.contains("2.16.840.1.113733.1.9.4"),
        "failInfo present"
    );
    assert!(printed.contains("eContent: <ABSENT>"), "{printed}");
}
