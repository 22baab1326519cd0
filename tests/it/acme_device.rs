//! device-attest-01 end to end with a real client crate: an Apple-format
//! attestation (test root and intermediate carrying the Apple extensions)
//! for a device on the inventory gets a hardware-bound certificate linked
//! to the device; unknown or lost devices, wrong tokens, other devices'
//! attestations and a CSR for another key are refused.

use crate::common;

use common::attest::{Claims, TestAttestationCa};
use common::{custos, custos_ok, openssl, Server};
use instant_acme::{
    Account, ChallengeType, DeviceAttestation, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use std::borrow::Cow;
use std::time::Duration;

fn csr_der(key: &rcgen::KeyPair, cn: &str) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(key).unwrap().der().to_vec()
}

/// A test attestation CA trusted by a fresh data dir under `dir` (with
/// `extra` appended to custos.toml), and `custos init` run.
fn setup(dir: &std::path::Path, extra: &str) -> TestAttestationCa {
    let ca = TestAttestationCa::new();
    let root = dir.join("attest-root.pem");
    std::fs::write(&root, &ca.root_pem).unwrap();
    std::fs::write(
        dir.join("custos.toml"),
        format!(
            "[acme.device_attest]\napple_roots = [\"{}\"]\n{extra}",
            root.display()
        ),
    )
    .unwrap();
    assert!(custos(&dir.join("data"), &["init"]).status.success());
    ca
}

fn retry() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(50))
        .timeout(Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread")]
async fn attested_devices_on_the_inventory_get_hardware_bound_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = setup(
        dir.path(),
        "[acme.device_attest.groups.phones]\nmin_os_version = \"18.0\"\n",
    );
    for (serial, status, group) in [
        ("C02GOOD1", "active", "laptops"),
        ("C02LOST1", "lost", "laptops"),
        ("C02OLD1", "active", "phones"),
    ] {
        let out = custos(
            &data,
            &[
                "devices", "add", "--serial", serial, "--status", status, "--group", group,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = Server::start(&data, &[]);
    let account = common::acme_account(&server).await;

    // Unknown and lost devices: refused at newOrder, in the same words, so
    // that any account cannot learn which serials are on the inventory.
    let mut answers = Vec::new();
    for serial in ["C02NOBODY", "C02LOST1"] {
        let ids = [Identifier::PermanentIdentifier(serial.into())];
        let Err(err) = account.new_order(&NewOrder::new(&ids)).await else {
            panic!("an order for {serial} was accepted");
        };
        let text = format!("{err:?}");
        assert!(text.contains("rejectedIdentifier"), "{serial}: {text}");
        answers.push(text.replace(serial, "SERIAL"));
    }
    assert_eq!(answers[0], answers[1]);

    // A phone below its group's OS floor: unauthorized, with the reason.
    let old = [Identifier::PermanentIdentifier("C02OLD1".into())];
    let mut old_order = account.new_order(&NewOrder::new(&old)).await.unwrap();
    {
        let mut authorizations = old_order.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let mut challenge = authz.challenge(ChallengeType::DeviceAttest01).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let obj = ca.att_obj(
            &key,
            &Claims {
                serial: "C02OLD1".into(),
                udid: "00008030-0002BBBB".into(),
                os_version: "17.4".into(),
                token: Some(challenge.token.clone()),
            },
        );
        let err = challenge
            .send_device_attestation(&DeviceAttestation {
                att_obj: Cow::Owned(obj),
            })
            .await
            .unwrap_err();
        let text = format!("{err:?}");
        assert!(
            text.contains("unauthorized")
                && text.contains("17.4 is below the minimum 18.0 for group phones"),
            "{text}"
        );
    }

    let ids = [Identifier::PermanentIdentifier("C02GOOD1".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    let device_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    {
        let mut authorizations = order.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        assert_eq!(
            authz.challenges.len(),
            1,
            "only device-attest-01 is offered"
        );
        let mut challenge = authz.challenge(ChallengeType::DeviceAttest01).unwrap();
        let token = challenge.token.clone();
        let claims = |serial: &str, token: Option<&str>| Claims {
            serial: serial.into(),
            udid: "00008030-0001AAAA".into(),
            os_version: "17.4".into(),
            token: token.map(str::to_string),
        };
        let send = |obj: Vec<u8>| DeviceAttestation {
            att_obj: Cow::Owned(obj),
        };
        // Wrong token, another device, garbage: badAttestationStatement,
        // nothing changed (the device may try again).
        for (obj, expect) in [
            (
                ca.att_obj(&device_key, &claims("C02GOOD1", Some("other"))),
                "freshness",
            ),
            (
                ca.att_obj(&device_key, &claims("C02OTHER", Some(&token))),
                "rejectedIdentifier",
            ),
            (b"\x01garbage".to_vec(), "CBOR"),
        ] {
            let err = challenge
                .send_device_attestation(&send(obj))
                .await
                .unwrap_err();
            let text = format!("{err:?}");
            assert!(
                text.contains("badAttestationStatement") && text.contains(expect),
                "{text}"
            );
        }
        let status = challenge
            .send_device_attestation(&send(
                ca.att_obj(&device_key, &claims("C02GOOD1", Some(&token))),
            ))
            .await
            .expect("valid attestation");
        assert_eq!(status, instant_acme::ChallengeStatus::Valid);
    }
    assert_eq!(
        order.poll_ready(&retry()).await.unwrap(),
        OrderStatus::Ready
    );

    // A CSR for another key: badCSR.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let err = order
        .finalize_csr(&csr_der(&other, "C02GOOD1"))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("attested"), "{err:?}");

    order
        .finalize_csr(&csr_der(&device_key, "C02GOOD1"))
        .await
        .unwrap();
    let chain = order.poll_certificate(&retry()).await.unwrap();
    let leaf = dir.path().join("device.pem");
    std::fs::write(&leaf, &chain).unwrap();
    let text = String::from_utf8_lossy(
        &openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]).stdout,
    )
    .to_string();
    assert!(
        text.contains("CN=C02GOOD1") || text.contains("CN = C02GOOD1"),
        "{text}"
    );
    assert!(
        text.contains("Permanent Identifier") || text.contains("1.3.6.1.5.5.7.8.3"),
        "{text}"
    );
    assert!(
        text.contains("Hardware Module Name") || text.contains("1.3.6.1.5.5.7.8.4"),
        "{text}"
    );
    // The device profile: client authentication only.
    assert!(
        text.contains("TLS Web Client Authentication") && !text.contains("Server Authentication"),
        "{text}"
    );

    // Linked to the device: revoking the device revokes it; the UDID was learned.
    drop(server);
    let shown = custos(&data, &["devices", "show", "00008030-0001AAAA"]);
    assert!(shown.status.success(), "UDID learned from the attestation");
    let out = custos_ok(
        &data,
        &[
            "revoke",
            "--device",
            "C02GOOD1",
            "--reason",
            "keyCompromise",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
}

/// Attests `serial` on a fresh order; the challenge's outcome.
async fn attest(
    account: &Account,
    ca: &TestAttestationCa,
    serial: &str,
) -> Result<instant_acme::ChallengeStatus, String> {
    let ids = [Identifier::PermanentIdentifier(serial.into())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut authorizations = order.authorizations();
    let mut authz = authorizations.next().await.unwrap().unwrap();
    let mut challenge = authz.challenge(ChallengeType::DeviceAttest01).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let obj = ca.att_obj(
        &key,
        &Claims {
            serial: serial.into(),
            udid: format!("UDID-{serial}"),
            os_version: "18.1".into(),
            token: Some(challenge.token.clone()),
        },
    );
    challenge
        .send_device_attestation(&DeviceAttestation {
            att_obj: Cow::Owned(obj),
        })
        .await
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mdm_is_asked_and_silence_fails_closed() {
    use axum::extract::Query;
    use std::collections::HashMap;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mdm = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/managed",
        axum::routing::get(|Query(q): Query<HashMap<String, String>>| async move {
            let serial = q.get("serial").cloned().unwrap_or_default();
            if serial == "C02SLOW" {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            axum::Json(serde_json::json!({ "managed": serial == "C02MANAGED" }))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = setup(
        dir.path(),
        &format!("[acme.device_attest.mdm]\nkind = \"generic\"\nurl = \"http://{mdm}/managed\"\ntimeout_secs = 1\n"),
    );
    for serial in ["C02MANAGED", "C02UNMANAGED", "C02SLOW"] {
        assert!(custos(&data, &["devices", "add", "--serial", serial])
            .status
            .success());
    }
    let server = Server::start(&data, &[]);
    let account = common::acme_account(&server).await;
    assert_eq!(
        attest(&account, &ca, "C02MANAGED").await.unwrap(),
        instant_acme::ChallengeStatus::Valid
    );
    let err = attest(&account, &ca, "C02UNMANAGED").await.unwrap_err();
    assert!(
        err.contains("unauthorized") && err.contains("does not manage"),
        "{err}"
    );
    let err = attest(&account, &ca, "C02SLOW").await.unwrap_err();
    assert!(
        err.contains("unauthorized") && err.contains("could not confirm"),
        "{err}"
    );
}
