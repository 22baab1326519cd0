//! device-attest-01 `tpm` with a real TPM 2.0: Debian's `swtpm` simulator
//! and `tpm2-tools` make the attestation key (AK) and a device key inside
//! the TPM, the TPM signs the CSR and certifies the key (`TPM2_Certify`,
//! sent with `tpm2_send`, since bookworm's `tpm2_certify` cannot pass
//! qualifying data), a test attestation CA issues the AK certificate, and
//! an `instant-acme` client sends the attestation. Forgeries are refused
//! with `badAttestationStatement` and change nothing.

use crate::common::{custos_ok, free_addr, ocsp_says, Server};
use der::{Decode, Encode};
use instant_acme::{ChallengeType, DeviceAttestation, Identifier, NewOrder, RetryPolicy};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A swtpm TPM 2.0 on free loopback ports, with its state in a temp dir.
struct Swtpm {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Swtpm {
    fn start(dir: &Path) -> Swtpm {
        let state = dir.join("tpm-state");
        std::fs::create_dir_all(&state).unwrap();
        let port_of = |a: String| a.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        // The swtpm TCTI finds the control channel on the next port.
        let port = port_of(free_addr());
        let ctrl = port + 1;
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"),
            ])
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm (Debian swtpm) must be installed (see .ci/setup)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", ctrl)).is_err()
        {
            assert!(std::time::Instant::now() < deadline, "swtpm did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Swtpm {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Runs a tpm2-tools command against this TPM; its stdout.
    fn run(&self, args: &[&str]) -> Vec<u8> {
        self.run_with(args, None)
    }

    fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        for _ in 0..5 {
            let mut child = Command::new(args[0])
                .args(&args[1..])
                .current_dir(&self.dir)
                .env(
                    "TPM2TOOLS_TCTI",
                    format!("swtpm:host=127.0.0.1,port={}", self.port),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("tpm2-tools must be installed (see .ci/setup)");
            if let Some(input) = stdin {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(input).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // TPM_RC_RETRY (0x922) from a raw command: send it again.
            if args[0] == "tpm2_send" && out.stdout.get(6..10) == Some(&[0, 0, 0x09, 0x22]) {
                continue;
            }
            return out.stdout;
        }
        panic!("{args:?}: the TPM kept asking to retry");
    }

    /// Makes a persistent object at `handle` from a context file, and
    /// empties the TPM's few transient slots.
    fn persist(&self, ctx: &str, handle: &str) {
        self.run(&["tpm2_evictcontrol", "-C", "o", "-c", ctx, handle]);
        self.run(&["tpm2_flushcontext", "-t"]);
    }

    /// A restricted ECDSA P-256 signing key (an AK) at `handle`.
    fn make_ak(&self, handle: &str) {
        self.run(&[
            "tpm2_createprimary",
            "-C",
            "o",
            "-G",
            "ecc256:ecdsa-sha256:null",
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign",
            "-c",
            "ak.ctx",
        ]);
        self.persist("ak.ctx", handle);
    }

    /// A P-256 signing key made in the TPM, under the storage key at
    /// 0x81000001, at `handle`; `attributes` as tpm2_create takes them.
    fn make_key(&self, handle: &str, attributes: &str) {
        self.run(&[
            "tpm2_create",
            "-C",
            "0x81000001",
            "-G",
            "ecc256:ecdsa-sha256",
            "-a",
            attributes,
            "-u",
            "k.pub",
            "-r",
            "k.priv",
        ]);
        self.run(&[
            "tpm2_load",
            "-C",
            "0x81000001",
            "-u",
            "k.pub",
            "-r",
            "k.priv",
            "-c",
            "k.ctx",
        ]);
        self.persist("k.ctx", handle);
    }

    /// The public key at `handle` as PEM, and its TPMT_PUBLIC.
    fn public(&self, handle: &str) -> (String, Vec<u8>) {
        self.run(&[
            "tpm2_readpublic",
            "-c",
            handle,
            "-f",
            "pem",
            "-o",
            "pub.pem",
        ]);
        self.run(&["tpm2_readpublic", "-c", handle, "-o", "pub.tpm2b"]);
        let pem = std::fs::read_to_string(self.dir.join("pub.pem")).unwrap();
        let tpm2b = std::fs::read(self.dir.join("pub.tpm2b")).unwrap();
        (pem, tpm2b[2..].to_vec())
    }

    /// TPM2_Certify of `object` by `ak` with `qualifying` data: the
    /// certInfo (TPMS_ATTEST) and the AK's signature as DER ECDSA.
    fn certify(&self, object: u32, ak: u32, qualifying: &[u8]) -> (Vec<u8>, Vec<u8>) {
        // Two password sessions (TPM_RS_PW, empty nonce and password).
        let pw = [0x40, 0, 0, 0x09, 0, 0, 0, 0, 0];
        let mut body = Vec::new();
        body.extend(object.to_be_bytes());
        body.extend(ak.to_be_bytes());
        body.extend(18u32.to_be_bytes());
        body.extend(pw);
        body.extend(pw);
        body.extend((qualifying.len() as u16).to_be_bytes());
        body.extend(qualifying);
        body.extend(0x0010u16.to_be_bytes()); // inScheme TPM_ALG_NULL
        let mut cmd = vec![0x80, 0x02];
        cmd.extend(((10 + body.len()) as u32).to_be_bytes());
        cmd.extend(0x0000_0148u32.to_be_bytes()); // TPM_CC_Certify
        cmd.extend(body);
        let rsp = self.run_with(&["tpm2_send"], Some(&cmd));
        assert_eq!(
            &rsp[6..10],
            &[0, 0, 0, 0],
            "TPM2_Certify failed: {rsp:02x?}"
        );
        fn sized(rsp: &[u8], at: &mut usize) -> Vec<u8> {
            let n = u16::from_be_bytes([rsp[*at], rsp[*at + 1]]) as usize;
            let v = rsp[*at + 2..*at + 2 + n].to_vec();
            *at += 2 + n;
            v
        }
        let mut at = 14; // header (10) + parameterSize (4)
        let cert_info = sized(&rsp, &mut at);
        // TPMT_SIGNATURE: sigAlg ECDSA, hash, r, s.
        at += 4;
        let (r, s) = (sized(&rsp, &mut at), sized(&rsp, &mut at));
        let pad = |v: Vec<u8>| {
            let mut out = [0u8; 32];
            out[32 - v.len()..].copy_from_slice(&v);
            out
        };
        let sig = p256::ecdsa::Signature::from_scalars(pad(r), pad(s)).unwrap();
        (cert_info, sig.to_der().as_bytes().to_vec())
    }

    /// A CSR for the key at `handle`, signed by the TPM.
    fn csr(&self, handle: &str, key_pem: &str) -> Vec<u8> {
        use x509_cert::request::{CertReq, CertReqInfo};
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(
            &der::pem::decode_vec(key_pem.as_bytes()).unwrap().1,
        )
        .unwrap();
        let info = CertReqInfo {
            version: x509_cert::request::Version::V1,
            subject: Default::default(),
            public_key: spki,
            attributes: Default::default(),
        };
        std::fs::write(self.dir.join("csr-info.der"), info.to_der().unwrap()).unwrap();
        self.run(&[
            "tpm2_sign",
            "-c",
            handle,
            "-g",
            "sha256",
            "-f",
            "plain",
            "-o",
            "csr.sig",
            "csr-info.der",
        ]);
        let sig = std::fs::read(self.dir.join("csr.sig")).unwrap();
        CertReq {
            info,
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
                parameters: None,
            },
            signature: der::asn1::BitString::from_bytes(&sig).unwrap(),
        }
        .to_der()
        .unwrap()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test attestation CA: a root that issues AK certificates.
struct AkCa {
    root_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl AkCa {
    fn new(name: &str) -> AkCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let root = params.self_signed(&key).unwrap();
        AkCa {
            root_pem: root.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// An AK certificate (WebAuthn's profile) for the AK public key
    /// `ak_pem`, naming the TPM and, when given, the device.
    fn ak_cert(&self, ak_pem: &str, device: Option<&str>) -> Vec<u8> {
        use x509_cert::ext::pkix::name::{DirectoryString, GeneralName, OtherName};
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::Other(vec![
            2, 23, 133, 8, 3,
        ])];
        let attr = |oid: &str, value: &str| x509_cert::attr::AttributeTypeAndValue {
            oid: der::oid::ObjectIdentifier::new_unwrap(oid),
            value: der::asn1::Any::encode_from(&DirectoryString::Utf8String(value.into())).unwrap(),
        };
        let rdns = [
            attr("2.23.133.2.1", "id:53575450"),
            attr("2.23.133.2.2", "swtpm"),
            attr("2.23.133.2.3", "id:00020000"),
        ]
        .into_iter()
        .map(|a| {
            x509_cert::name::RelativeDistinguishedName(
                der::asn1::SetOfVec::try_from(vec![a]).unwrap(),
            )
        })
        .collect();
        let mut names = vec![GeneralName::DirectoryName(x509_cert::name::RdnSequence(
            rdns,
        ))];
        if let Some(id) = device {
            #[derive(der::Sequence)]
            struct PermanentIdentifier<'a> {
                identifier_value: der::asn1::Utf8StringRef<'a>,
            }
            let value = PermanentIdentifier {
                identifier_value: der::asn1::Utf8StringRef::new(id).unwrap(),
            };
            names.push(GeneralName::OtherName(OtherName {
                type_id: der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.8.3"),
                value: der::asn1::Any::encode_from(&value).unwrap(),
            }));
        }
        let san = x509_cert::ext::pkix::SubjectAltName(names)
            .to_der()
            .unwrap();
        let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 17], san);
        ext.set_criticality(true);
        params.custom_extensions.push(ext);
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(
            &der::pem::decode_vec(ak_pem.as_bytes()).unwrap().1,
        )
        .unwrap();
        let ak = AkPublic(spki.subject_public_key.raw_bytes().to_vec());
        params.signed_by(&ak, &self.issuer).unwrap().der().to_vec()
    }
}

/// An AK's P-256 public key, as rcgen takes a key it does not hold.
struct AkPublic(Vec<u8>);

impl rcgen::PublicKeyData for AkPublic {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

fn att_obj(ak_cert: &[u8], sig: &[u8], cert_info: &[u8], pub_area: &[u8]) -> Vec<u8> {
    use ciborium::value::Value;
    let stmt = Value::Map(vec![
        ("ver".into(), "2.0".into()),
        ("alg".into(), Value::Integer((-7).into())),
        (
            "x5c".into(),
            Value::Array(vec![Value::Bytes(ak_cert.to_vec())]),
        ),
        ("sig".into(), Value::Bytes(sig.to_vec())),
        ("certInfo".into(), Value::Bytes(cert_info.to_vec())),
        ("pubArea".into(), Value::Bytes(pub_area.to_vec())),
    ]);
    let obj = Value::Map(vec![("fmt".into(), "tpm".into()), ("attStmt".into(), stmt)]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&obj, &mut out).unwrap();
    out
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tpm_attested_key_gets_a_device_certificate_and_forgeries_do_not() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let tpm = Swtpm::start(dir);
    tpm.make_ak("0x81010001");
    tpm.run(&[
        "tpm2_createprimary",
        "-C",
        "o",
        "-G",
        "ecc",
        "-c",
        "prim.ctx",
    ]);
    tpm.persist("prim.ctx", "0x81000001");
    let hardware = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign";
    tpm.make_key("0x81010002", hardware);
    tpm.make_key("0x81010003", hardware);
    let (ak_pem, _) = tpm.public("0x81010001");
    let (key_pem, pub_area) = tpm.public("0x81010002");

    let ca = AkCa::new("Test TPM Attestation CA");
    let stranger = AkCa::new("Someone else's CA");
    let roots = dir.join("tpm-roots.pem");
    std::fs::write(&roots, &ca.root_pem).unwrap();
    std::fs::write(
        dir.join("custos.toml"),
        format!(
            "[acme.device_attest]\ntpm_roots = [\"{}\"]\n",
            roots.display()
        ),
    )
    .unwrap();
    custos_ok(&data, &["init"]);
    custos_ok(&data, &["devices", "add", "--serial", "C02TPM0001"]);
    let server = Server::start(&data, &[]);

    let account = crate::common::acme_account(&server).await;
    let ids = [Identifier::PermanentIdentifier("C02TPM0001".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    let ak_cert = ca.ak_cert(&ak_pem, Some("C02TPM0001"));
    {
        let mut authorizations = order.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let mut challenge = authz.challenge(ChallengeType::DeviceAttest01).unwrap();
        let nonce = sha256(challenge.key_authorization().as_str().as_bytes());
        let (cert_info, sig) = tpm.certify(0x81010002, 0x81010001, &nonce);

        // Forgeries, each refused with badAttestationStatement.
        let (wrong_info, wrong_sig) =
            tpm.certify(0x81010002, 0x81010001, &sha256(b"another challenge"));
        let (other_info, other_sig) = tpm.certify(0x81010003, 0x81010001, &nonce);
        let mut tampered = cert_info.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let stranger_cert = stranger.ak_cert(&ak_pem, Some("C02TPM0001"));
        let other_device = ca.ak_cert(&ak_pem, Some("C02TPM9999"));
        let forgeries = [
            (
                "wrong extraData",
                att_obj(&ak_cert, &wrong_sig, &wrong_info, &pub_area),
                "extraData",
            ),
            (
                "another key certified",
                att_obj(&ak_cert, &other_sig, &other_info, &pub_area),
                "another key",
            ),
            (
                "tampered certInfo",
                att_obj(&ak_cert, &sig, &tampered, &pub_area),
                "sig does not verify",
            ),
            (
                "AK from another CA",
                att_obj(&stranger_cert, &sig, &cert_info, &pub_area),
                "chain",
            ),
            (
                "AK of another device",
                att_obj(&other_device, &sig, &cert_info, &pub_area),
                "names device",
            ),
        ];
        for (what, obj, says) in &forgeries {
            let err = challenge
                .send_device_attestation(&DeviceAttestation {
                    att_obj: Cow::Owned(obj.clone()),
                })
                .await
                .expect_err(what);
            let text = format!("{err:?}");
            assert!(text.contains("badAttestationStatement"), "{what}: {text}");
            assert!(text.contains(says), "{what}: {text}");
        }

        // The real one.
        challenge
            .send_device_attestation(&DeviceAttestation {
                att_obj: Cow::Owned(att_obj(&ak_cert, &sig, &cert_info, &pub_area)),
            })
            .await
            .unwrap();
    }
    let retry = RetryPolicy::new().initial_delay(Duration::from_millis(50));
    order.poll_ready(&retry).await.unwrap();
    // A CSR for another TPM key than the attested one: refused.
    let (third_pem, _) = tpm.public("0x81010003");
    let other_csr = tpm.csr("0x81010003", &third_pem);
    let err = order.finalize_csr(&other_csr).await.expect_err("other key");
    assert!(format!("{err:?}").contains("badCSR"), "{err:?}");
    let csr = tpm.csr("0x81010002", &key_pem);
    order.finalize_csr(&csr).await.unwrap();
    let chain = order.poll_certificate(&retry).await.unwrap();
    let leaf = dir.join("tpm-leaf.pem");
    std::fs::write(&leaf, &chain).unwrap();
    assert!(ocsp_says(&server, &leaf).contains(": good"));
    let text = crate::common::openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("C02TPM0001"), "{text}");
    // The leaf certifies the TPM's key.
    let leaf_key =
        crate::common::openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-pubkey"]);
    assert_eq!(
        String::from_utf8_lossy(&leaf_key.stdout).trim(),
        key_pem.trim()
    );
    let listed = custos_ok(&data, &["devices", "list", "--enrolment", "acme-attested"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("C02TPM0001"));

    // ARI: revoked while its device is non-compliant, the certificate waits;
    // compliant again, the window moves to now so the client renews at once.
    let leaf_der = crate::acme_issuance::pem_to_der(&chain);
    let (aki, serial) = crate::acme_issuance::cert_id_parts(&leaf_der);
    let cert_id = instant_acme::CertificateIdentifier::new(
        rustls::pki_types::Der::from_slice(&aki),
        rustls::pki_types::Der::from_slice(&serial),
    );
    custos_ok(
        &data,
        &[
            "devices",
            "set-status",
            "C02TPM0001",
            "active",
            "--compliant",
            "false",
        ],
    );
    custos_ok(&data, &["revoke", "--device", "C02TPM0001"]);
    let (info, _) = account.renewal_info(&cert_id).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(
        info.suggested_window.start > now,
        "waits while non-compliant"
    );
    custos_ok(
        &data,
        &[
            "devices",
            "set-status",
            "C02TPM0001",
            "active",
            "--compliant",
            "true",
        ],
    );
    let (info, _) = account.renewal_info(&cert_id).await.unwrap();
    assert!(
        info.suggested_window.end < time::OffsetDateTime::now_utc(),
        "renew now"
    );

    // An AK certificate naming no device: refused until the inventory maps
    // that AK to the device (`--tpm-ak`, SHA-256 of the AK's public key).
    custos_ok(&data, &["devices", "add", "--serial", "C02TPM0002"]);
    let anonymous = ca.ak_cert(&ak_pem, None);
    let ak_sha256 = hex::encode(sha256(&der::pem::decode_vec(ak_pem.as_bytes()).unwrap().1));
    let (other_pem, other_pub_area) = tpm.public("0x81010003");
    let ids = [Identifier::PermanentIdentifier("C02TPM0002".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authorizations = order.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let mut challenge = authz.challenge(ChallengeType::DeviceAttest01).unwrap();
        let nonce = sha256(challenge.key_authorization().as_str().as_bytes());
        let (info, sig) = tpm.certify(0x81010003, 0x81010001, &nonce);
        let obj = att_obj(&anonymous, &sig, &info, &other_pub_area);
        let err = challenge
            .send_device_attestation(&DeviceAttestation {
                att_obj: Cow::Owned(obj.clone()),
            })
            .await
            .expect_err("unmapped AK");
        assert!(format!("{err:?}").contains("does not map AK"), "{err:?}");
        custos_ok(
            &data,
            &[
                "devices",
                "add",
                "--serial",
                "C02TPM0002",
                "--tpm-ak",
                &ak_sha256,
            ],
        );
        challenge
            .send_device_attestation(&DeviceAttestation {
                att_obj: Cow::Owned(obj),
            })
            .await
            .unwrap();
    }
    order.poll_ready(&retry).await.unwrap();
    order
        .finalize_csr(&tpm.csr("0x81010003", &other_pem))
        .await
        .unwrap();
    order.poll_certificate(&retry).await.unwrap();
    assert!(server.terminate().success());
}
