//! MDM webhooks end to end: a device certificate issued by ACME device
//! attestation, then a Standard-Webhooks-signed `lost` event: the real
//! `openssl ocsp` client reports it revoked and the device is marked lost;
//! a second delivery is a no-op; bad credentials, stale timestamps, a
//! reused id with another body, unknown sources, garbage and unknown event
//! types get their answers.

mod common;

use common::attest::{Claims, TestAttestationCa};
use common::{custos, Server};
use custos_webhooks::standard::Secret;
use instant_acme::{ChallengeType, DeviceAttestation, Identifier, NewOrder, RetryPolicy};
use std::borrow::Cow;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";

async fn device_certificate(server: &Server, ca: &TestAttestationCa, serial: &str) -> String {
    let account = common::acme_account(server).await;
    let ids = [Identifier::PermanentIdentifier(serial.into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    {
        let mut authorizations = order.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let mut challenge = authz.challenge(ChallengeType::DeviceAttest01).unwrap();
        let obj = ca.att_obj(
            &key,
            &Claims {
                serial: serial.into(),
                udid: format!("UDID-{serial}"),
                os_version: "18.0".into(),
                token: Some(challenge.token.clone()),
            },
        );
        challenge
            .send_device_attestation(&DeviceAttestation {
                att_obj: Cow::Owned(obj),
            })
            .await
            .unwrap();
    }
    let retry = RetryPolicy::new().initial_delay(Duration::from_millis(50));
    order.poll_ready(&retry).await.unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    order
        .finalize_csr(params.serialize_request(&key).unwrap().der())
        .await
        .unwrap();
    order.poll_certificate(&retry).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_lost_event_revokes_the_device_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = TestAttestationCa::new();
    let root = dir.path().join("attest-root.pem");
    std::fs::write(&root, &ca.root_pem).unwrap();
    std::fs::write(
        dir.path().join("custos.toml"),
        format!(
            "[acme.device_attest]\napple_roots = [\"{}\"]\n[webhooks.mdm]\nkind = \"standard\"\nsecrets = [\"{SECRET}\"]\n[webhooks.fleet]\nkind = \"fleet\"\ntoken = \"fleet-token-123\"\n",
            root.display()
        ),
    )
    .unwrap();
    assert!(custos(&data, &["init"]).status.success());
    assert!(custos(&data, &["devices", "add", "--serial", "C02STOLEN"])
        .status
        .success());
    let server = Server::start(&data, &[]);
    let chain = device_certificate(&server, &ca, "C02STOLEN").await;
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, &chain).unwrap();
    assert!(common::ocsp_says(&server, &leaf).contains(": good"));

    let http = server.https_client();
    let url = format!("{}/webhooks/mdm", server.https_url);
    let now = custos::ca::build::unix_now();
    let secret = Secret::parse(SECRET).unwrap();
    let post = |id: &str, ts: u64, body: &str, sig: Option<String>| {
        let sig = sig.unwrap_or_else(|| secret.sign(id, ts, body.as_bytes()));
        http.post(&url)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let lost = r#"{"kind":"lost","serial":"C02STOLEN"}"#;

    // Refusals first: nothing is revoked by them.
    let bad = post("msg_0", now, lost, Some("v1,AAAA".into()))
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let stale = post("msg_0", now - 600, lost, None).await.unwrap();
    assert_eq!(stale.status(), 401);
    let garbage = post("msg_g", now, "{not json", None).await.unwrap();
    assert_eq!(garbage.status(), 400);
    let nobody = http
        .post(format!("{}/webhooks/nobody", server.https_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status(), 404);
    assert!(common::ocsp_says(&server, &leaf).contains(": good"));

    // The real event: accepted, then revoked within moments.
    let t = Instant::now();
    let ok = post("msg_1", now, lost, None).await.unwrap();
    assert_eq!(ok.status(), 200);
    loop {
        if common::ocsp_says(&server, &leaf).contains(": revoked") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "not revoked in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(common::ocsp_says(&server, &leaf).contains("keyCompromise"));

    // Again: a no-op; the same id with another body: 409.
    let again = post("msg_1", now, lost, None).await.unwrap();
    assert_eq!(again.status(), 200);
    let v: serde_json::Value = again.json().await.unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let reused = post("msg_1", now, r#"{"kind":"lost","serial":"C02OTHER"}"#, None)
        .await
        .unwrap();
    assert_eq!(reused.status(), 409);

    // Fleet with its token in the query: an activity we do not act on.
    let fleet = http
        .post(format!(
            "{}/webhooks/fleet?token=fleet-token-123",
            server.https_url
        ))
        .body(r#"{"type":"ran_script","details":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(fleet.status(), 202);
    let wrong = http
        .post(format!("{}/webhooks/fleet?token=nope", server.https_url))
        .body(r#"{"type":"mdm_unenrolled","details":{"host_serial":"C02STOLEN"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // The audit log, through the running server: the event, then the revocation.
    let audit = custos(&data, &["audit", "--json"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let kinds: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["event", "revocation"], "{entries}");
    drop(server);
    let device: serde_json::Value =
        serde_json::from_slice(&custos(&data, &["devices", "show", "C02STOLEN"]).stdout).unwrap();
    assert_eq!(device["status"], "lost");
}
