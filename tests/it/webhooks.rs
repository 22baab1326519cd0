//! MDM webhooks end to end: a device certificate issued by ACME device
//! attestation, then a Standard-Webhooks-signed `lost` event: the real
//! `openssl ocsp` client reports it revoked and the device is marked lost;
//! a second delivery is a no-op; bad credentials, stale timestamps, a
//! reused id with another body, unknown sources, garbage and unknown event
//! types get their answers.

use crate::common;

use common::attest::{Claims, TestAttestationCa};
use common::{custos, Server};
use custos_webhooks::standard::Secret;
use instant_acme::{ChallengeType, DeviceAttestation, Identifier, NewOrder, RetryPolicy};
use std::borrow::Cow;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";

pub(crate) async fn device_certificate(
    server: &Server,
    ca: &TestAttestationCa,
    serial: &str,
) -> String {
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
    let now = custos::model::time::unix_now();
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
    assert!(!crl_lists(&leaf).await);

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
    while !crl_lists(&leaf).await {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "not on the CRL in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

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
    // (The device's enrolment is audited too: look at what the event did.)
    let kinds: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| matches!(*k, "event" | "revocation"))
        .collect();
    assert_eq!(kinds, ["event", "revocation"], "{entries}");
    let revocation = entries.as_array().unwrap().last().unwrap();
    assert_eq!(revocation["actor"], "webhook:mdm", "{revocation}");
    drop(server);
    let device: serde_json::Value =
        serde_json::from_slice(&custos(&data, &["devices", "show", "C02STOLEN"]).stdout).unwrap();
    assert_eq!(device["status"], "lost");
}

/// Whether the CRL named in the certificate's CRL distribution point lists
/// it (`openssl crl -text`, signature checked against the chain).
pub(crate) async fn crl_lists(leaf: &std::path::Path) -> bool {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let text = |args: &[&str]| {
        let o = common::openssl(args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let leaf_s = leaf.to_str().unwrap();
    let serial = text(&["x509", "-in", leaf_s, "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_string();
    let dp = text(&[
        "x509",
        "-in",
        leaf_s,
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    let url = dp
        .split_whitespace()
        .find_map(|w| w.strip_prefix("URI:"))
        .expect("a CRL distribution point")
        .to_string();
    let der = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    let file = leaf.with_extension("crl");
    std::fs::write(&file, &der).unwrap();
    let listed = text(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        file.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    listed.lines().any(|l| {
        l.trim().strip_prefix("Serial Number: ").is_some_and(|s| {
            s.trim()
                .trim_start_matches('0')
                .eq_ignore_ascii_case(&serial)
        })
    })
}

fn standard_config(dir: &std::path::Path, ca: &TestAttestationCa) {
    let root = dir.join("attest-root.pem");
    std::fs::write(&root, &ca.root_pem).unwrap();
    std::fs::write(
        dir.join("custos.toml"),
        format!(
            "[acme.device_attest]\napple_roots = [\"{}\"]\n[webhooks.mdm]\nkind = \"standard\"\nsecrets = [\"{SECRET}\"]\n",
            root.display()
        ),
    )
    .unwrap();
}

fn audit_kinds(data: &std::path::Path) -> Vec<String> {
    let audit = custos(data, &["audit", "--json"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .filter(|k| matches!(k.as_str(), "event" | "revocation"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jamf_smart_group_event_is_resolved_through_the_jamf_api() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // A Jamf Pro API: OAuth client credentials, then computer 21's
    // hardware section. It can be switched off to play an outage.
    let up = Arc::new(AtomicBool::new(false));
    let api = {
        let up = up.clone();
        let up2 = up.clone();
        axum::Router::new()
            .route(
                "/api/oauth/token",
                axum::routing::post(move |body: String| {
                    let up = up.clone();
                    async move {
                        if !up.load(Ordering::SeqCst) {
                            return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                        }
                        if body.contains("client_id=custos") && body.contains("client_secret=jamf-s3cret") {
                            Ok(axum::Json(serde_json::json!({"access_token": "jt", "expires_in": 600})))
                        } else {
                            Err(axum::http::StatusCode::UNAUTHORIZED)
                        }
                    }
                }),
            )
            .route(
                "/api/v1/computers-inventory/{id}",
                axum::routing::get(
                    move |axum::extract::Path(id): axum::extract::Path<u64>,
                          headers: axum::http::HeaderMap| {
                        let up = up2.clone();
                        async move {
                            if !up.load(Ordering::SeqCst) {
                                return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                            }
                            if headers.get("authorization").is_none_or(|v| v != "Bearer jt") {
                                return Err(axum::http::StatusCode::UNAUTHORIZED);
                            }
                            match id {
                                21 => Ok(axum::Json(serde_json::json!({"id": "21", "hardware": {"serialNumber": "C02JAMF1"}}))),
                                _ => Err(axum::http::StatusCode::NOT_FOUND),
                            }
                        }
                    },
                ),
            )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = TestAttestationCa::new();
    standard_config(dir.path(), &ca);
    let mut toml = std::fs::read_to_string(dir.path().join("custos.toml")).unwrap();
    toml.push_str(&format!(
        "[webhooks.jamf]\nkind = \"jamf\"\nusername = \"hook\"\npassword = \"hook-pw\"\napi_url = \"{api_url}\"\nclient_id = \"custos\"\nclient_secret = \"jamf-s3cret\"\n[webhooks.jamf.smart_groups]\n\"Lost Macs\" = \"lost\"\n"
    ));
    std::fs::write(dir.path().join("custos.toml"), toml).unwrap();
    assert!(custos(&data, &["init"]).status.success());
    assert!(custos(&data, &["devices", "add", "--serial", "C02JAMF1"])
        .status
        .success());
    let server = Server::start(&data, &[]);
    let chain = device_certificate(&server, &ca, "C02JAMF1").await;
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, &chain).unwrap();

    let body = r#"{"webhook":{"id":7,"name":"lost","webhookEvent":"SmartGroupComputerMembershipChange","eventTimestamp":1767225600000},"event":{"computer":true,"name":"Lost Macs","smartGroup":true,"groupAddedDevicesIds":[21],"groupRemovedDevicesIds":[]}}"#;
    let post = || {
        server
            .https_client()
            .post(format!("{}/webhooks/jamf", server.https_url))
            .basic_auth("hook", Some("hook-pw"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Jamf's API is down: the event is accepted (the device id can be
    // resolved later), stays pending, and revokes nothing yet.
    let r = post().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(common::ocsp_says(&server, &leaf).contains(": good"));
    drop(server);

    // The API is back: the pending event is finished at the next start.
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let server = Server::start(&data, &[]);
    let t = Instant::now();
    while !common::ocsp_says(&server, &leaf).contains(": revoked") {
        assert!(t.elapsed() < Duration::from_secs(10), "not revoked in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    let device: serde_json::Value =
        serde_json::from_slice(&custos(&data, &["devices", "show", "C02JAMF1"]).stdout).unwrap();
    assert_eq!(device["status"], "lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_answered_before_sigkill_is_processed_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = TestAttestationCa::new();
    standard_config(dir.path(), &ca);
    assert!(custos(&data, &["init"]).status.success());
    assert!(custos(&data, &["devices", "add", "--serial", "C02KILLED"])
        .status
        .success());
    // This server records events but leaves processing to the next start.
    let server = Server::start(&data, &["--hold-device-events"]);
    let chain = device_certificate(&server, &ca, "C02KILLED").await;
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, &chain).unwrap();

    let body = r#"{"kind":"wiped","serial":"C02KILLED"}"#;
    let now = custos::model::time::unix_now();
    let sig = Secret::parse(SECRET)
        .unwrap()
        .sign("msg_kill", now, body.as_bytes());
    let answer = server
        .https_client()
        .post(format!("{}/webhooks/mdm", server.https_url))
        .header("webhook-id", "msg_kill")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(common::ocsp_says(&server, &leaf).contains(": good"));
    // SIGKILL: no shutdown, no flush.
    drop(server);
    assert_eq!(audit_kinds(&data), ["event"]);

    let server = Server::start(&data, &[]);
    let t = Instant::now();
    while !common::ocsp_says(&server, &leaf).contains(": revoked") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the event was not finished at restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(common::ocsp_says(&server, &leaf).contains("keyCompromise"));
    drop(server);
    assert_eq!(audit_kinds(&data), ["event", "revocation"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_lock_by_host_id_is_resolved_through_the_fleet_api() {
    // A Fleet API knowing host 42 (and checking the token).
    let api =
        axum::Router::new().route(
            "/api/v1/fleet/hosts/{id}",
            axum::routing::get(
                |axum::extract::Path(id): axum::extract::Path<u64>,
                 headers: axum::http::HeaderMap| async move {
                    let authorized = headers
                        .get("authorization")
                        .is_some_and(|v| v == "Bearer fleet-api-token");
                    match (authorized, id) {
                        (false, _) => (axum::http::StatusCode::UNAUTHORIZED, String::new()),
                        (true, 42) => (
                            axum::http::StatusCode::OK,
                            r#"{"host":{"id":42,"hardware_serial":"C02LOCKED"}}"#.to_string(),
                        ),
                        _ => (axum::http::StatusCode::NOT_FOUND, String::new()),
                    }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = TestAttestationCa::new();
    standard_config(dir.path(), &ca);
    let mut toml = std::fs::read_to_string(dir.path().join("custos.toml")).unwrap();
    toml.push_str(&format!(
        "[webhooks.fleet]\nkind = \"fleet\"\ntoken = \"hook-token\"\napi_url = \"{api_url}\"\napi_token = \"fleet-api-token\"\n"
    ));
    std::fs::write(dir.path().join("custos.toml"), toml).unwrap();
    assert!(custos(&data, &["init"]).status.success());
    assert!(custos(&data, &["devices", "add", "--serial", "C02LOCKED"])
        .status
        .success());
    let server = Server::start(&data, &[]);
    let chain = device_certificate(&server, &ca, "C02LOCKED").await;
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, &chain).unwrap();
    let post = |body: &'static str| {
        server
            .https_client()
            .post(format!(
                "{}/webhooks/fleet?token=hook-token",
                server.https_url
            ))
            .body(body)
            .send()
    };
    // A host Fleet does not know: accepted, nothing revoked.
    let other = post(r#"{"type":"locked_host","details":{"host_id":7}}"#)
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(common::ocsp_says(&server, &leaf).contains(": good"));

    let locked = post(r#"{"type":"locked_host","details":{"host_id":42}}"#)
        .await
        .unwrap();
    assert_eq!(locked.status(), 200);
    let t = Instant::now();
    while !common::ocsp_says(&server, &leaf).contains(": revoked") {
        assert!(t.elapsed() < Duration::from_secs(5), "not revoked in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server);
    let device: serde_json::Value =
        serde_json::from_slice(&custos(&data, &["devices", "show", "C02LOCKED"]).stdout).unwrap();
    assert_eq!(device["status"], "lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_takes_its_fixture_with_its_credentials() {
    use base64::Engine;
    let fixture = |name: &str| {
        std::fs::read(format!(
            "{}/tests/data/mdm/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("custos.toml"),
        "[webhooks.jamf]\nkind = \"jamf\"\nusername = \"jamf\"\npassword = \"jamf-pass\"\n\
         [webhooks.nano]\nkind = \"nanomdm\"\nhmac_key = \"nano-key\"\n\
         [webhooks.micro]\nkind = \"micromdm\"\ntoken = \"micro-token\"\n\
         [webhooks.fleet]\nkind = \"fleet\"\ntoken = \"fleet-token\"\n",
    )
    .unwrap();
    assert!(custos(&data, &["init"]).status.success());
    for args in [
        &["devices", "add", "--serial", "C8EM25KSG5PT"][..],
        &["devices", "add", "--serial", "C02MT66KFLHH"],
        &["devices", "add", "--serial", "C08VQ2AXHT96"],
        &[
            "devices",
            "add",
            "--serial",
            "MICRO1",
            "--udid",
            "A5EF1BA1-586D-4F29-B4F3-759DADAC2DDD",
        ],
    ] {
        assert!(custos(&data, args).status.success());
    }
    let server = Server::start(&data, &[]);
    let http = server.https_client();
    let url = |name: &str| format!("{}/webhooks/{name}", server.https_url);
    let status = |r: reqwest::Response| r.status().as_u16();

    // Jamf: HTTP Basic.
    let jamf = fixture("jamf_mobiledeviceunenrolled_rubyjss.json");
    let wrong = http
        .post(url("jamf"))
        .basic_auth("jamf", Some("nope"))
        .body(jamf.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(status(wrong), 401);
    let ok = http
        .post(url("jamf"))
        .basic_auth("jamf", Some("jamf-pass"))
        .body(jamf)
        .send()
        .await
        .unwrap();
    assert_eq!(status(ok), 200);

    // NanoMDM: X-Hmac-Signature over the body; Authenticate teaches the UDID.
    let hmac = |body: &[u8]| {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"nano-key");
        base64::engine::general_purpose::STANDARD.encode(aws_lc_rs::hmac::sign(&key, body))
    };
    let auth = fixture("nanomdm_authenticate.json");
    let forged = http
        .post(url("nano"))
        .header("x-hmac-signature", hmac(b"another body"))
        .body(auth.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(status(forged), 401);
    let ok = http
        .post(url("nano"))
        .header("x-hmac-signature", hmac(&auth))
        .body(auth)
        .send()
        .await
        .unwrap();
    assert_eq!(status(ok), 202);

    // MicroMDM: a bearer token; CheckOut by UDID.
    let checkout = fixture("micromdm_checkout.json");
    let none = http
        .post(url("micro"))
        .body(checkout.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(status(none), 401);
    let ok = http
        .post(url("micro"))
        .bearer_auth("micro-token")
        .body(checkout)
        .send()
        .await
        .unwrap();
    assert_eq!(status(ok), 200);

    // Fleet: the token in the query.
    let ok = http
        .post(format!("{}?token=fleet-token", url("fleet")))
        .body(fixture("fleet_mdm_unenrolled_COMPOSED.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(ok), 200);

    // A device nobody knows: 202, recorded, nothing done.
    let unknown = http
        .post(format!("{}?token=fleet-token", url("fleet")))
        .body(r#"{"type":"deleted_host","details":{"host_serial":"NOBODY"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(status(unknown), 202);
    // Over 256 KiB: refused before anything is read into the ledger.
    let big = http
        .post(format!("{}?token=fleet-token", url("fleet")))
        .body(vec![b' '; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(status(big), 413);

    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(server);
    let show = |id: &str| -> serde_json::Value {
        let o = custos(&data, &["devices", "show", id]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    for serial in ["C8EM25KSG5PT", "MICRO1", "C08VQ2AXHT96"] {
        assert_eq!(show(serial)["status"], "unenrolled", "{serial}");
    }
    assert_eq!(show("C02MT66KFLHH")["status"], "active");
    assert_eq!(
        show("66ADE930-5FDF-5EC4-8429-15640684C489")["serial"],
        "C02MT66KFLHH"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_older_event_does_not_override_a_newer_status() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = TestAttestationCa::new();
    standard_config(dir.path(), &ca);
    assert!(custos(&data, &["init"]).status.success());
    assert!(custos(&data, &["devices", "add", "--serial", "C02ORDER"])
        .status
        .success());
    let server = Server::start(&data, &[]);
    let http = server.https_client();
    let url = format!("{}/webhooks/mdm", server.https_url);
    let secret = Secret::parse(SECRET).unwrap();
    let send = |id: &'static str, body: &'static str| {
        let ts = custos::model::time::unix_now();
        http.post(&url)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", secret.sign(id, ts, body.as_bytes()))
            .body(body)
            .send()
    };
    // Lost at 10:00, delivered first; found at 09:00, delivered late.
    let lost = send(
        "msg_lost",
        r#"{"kind":"lost","serial":"C02ORDER","occurred_at":"2026-11-30T10:00:00Z"}"#,
    )
    .await
    .unwrap();
    assert_eq!(lost.status(), 200);
    let found = send(
        "msg_found",
        r#"{"kind":"found","serial":"C02ORDER","occurred_at":"2026-11-30T09:00:00Z"}"#,
    )
    .await
    .unwrap();
    assert_eq!(found.status(), 200);
    // The same delivery again is a no-op.
    let again = send(
        "msg_lost",
        r#"{"kind":"lost","serial":"C02ORDER","occurred_at":"2026-11-30T10:00:00Z"}"#,
    )
    .await
    .unwrap();
    assert_eq!(again.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(server);
    let device: serde_json::Value =
        serde_json::from_slice(&custos(&data, &["devices", "show", "C02ORDER"]).stdout).unwrap();
    assert_eq!(device["status"], "lost", "{device}");
    assert_eq!(audit_kinds(&data), ["event", "event"]);
}
