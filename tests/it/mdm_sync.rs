//! MDM inventory sync against local HTTP servers that answer as each API
//! documents: a lost device is revoked by a sync, a failing or empty MDM
//! changes nothing, a mass change is held until confirmed, a device gone
//! from the MDM is unenrolled when two syncs agree, throttling is waited
//! out, a webhook newer than the MDM's inventory wins, and the Fleet,
//! Intune (OAuth + Graph paging) and Jamf (OAuth + pages) readers page
//! through everything.

use crate::common::{custos, custos_ok, ocsp_says, Server};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The fake MDM's state: its devices, and what to answer instead of them.
#[derive(Default)]
struct Fake {
    devices: Vec<Value>,
    /// Answers to give first, in order (status, Retry-After), before the
    /// devices.
    answers: Vec<(u16, Option<u64>)>,
    requests: usize,
}

type Shared = Arc<Mutex<Fake>>;

/// Serves `router` on a free loopback port; its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// The first queued non-200 answer, if any.
fn queued(fake: &Shared) -> Option<Response> {
    let mut f = fake.lock().unwrap();
    f.requests += 1;
    if f.answers.is_empty() {
        return None;
    }
    let (status, retry) = f.answers.remove(0);
    let mut r = (StatusCode::from_u16(status).unwrap(), "not now").into_response();
    if let Some(s) = retry {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    Some(r)
}

async fn generic(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer t0ken") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some(r) = queued(&fake) {
        return r;
    }
    Json(Value::Array(fake.lock().unwrap().devices.clone())).into_response()
}

fn device(serial: &str, status: &str) -> Value {
    json!({"serial": serial, "status": status, "compliant": true})
}

/// Sets the status of `serials` in the fake (adding them if missing).
fn set(fake: &Shared, serials: &[&str], status: &str) {
    let mut f = fake.lock().unwrap();
    for s in serials {
        match f.devices.iter_mut().find(|d| d["serial"] == *s) {
            Some(d) => d["status"] = status.into(),
            None => f.devices.push(device(s, status)),
        }
    }
}

/// A generic MDM listing `serials` as active at `<url>/devices`: its state
/// and URL.
async fn generic_mdm(serials: &[impl AsRef<str>]) -> (Shared, String) {
    let fake: Shared = Arc::default();
    for s in serials {
        fake.lock()
            .unwrap()
            .devices
            .push(device(s.as_ref(), "active"));
    }
    let url = serve(
        Router::new()
            .route("/devices", get(generic))
            .with_state(fake.clone()),
    )
    .await;
    (fake, url)
}

fn issue_for(dir: &Path, data: &Path, device: &str) -> std::path::PathBuf {
    crate::common::issue_for_device(dir, data, device).0
}

fn sync(data: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["mdm", "sync", "--name", "fake", "--json"];
    args.extend_from_slice(extra);
    let out = custos(data, &args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "mdm sync: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_revokes_what_the_mdm_lost_and_holds_what_looks_like_a_glitch() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let serials: Vec<String> = (1..=20).map(|i| format!("C02SYNC{i:02}")).collect();
    let (fake, url) = generic_mdm(&serials).await;
    std::fs::write(
        dir.join("custos.toml"),
        format!(
            "[mdm.fake]\nkind = \"generic\"\nurl = \"{url}/devices\"\ntoken = \"t0ken\"\nsync_interval_secs = 3600\n\
             [webhooks.mdm]\nkind = \"standard\"\nsecrets = [\"{SECRET}\"]\n"
        ),
    )
    .unwrap();
    custos_ok(&data, &["init"]);
    let server = Server::start(&data, &[]);

    // The first sync adds the MDM's devices to the inventory.
    let r = sync(&data, &[]);
    assert_eq!(r["result"], "applied", "{r}");
    assert_eq!(r["added"], 20);
    let audit = custos_ok(&data, &["audit", "--kind", "device", "--json"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(
        audit.contains("\"action\": \"sync\"") && audit.contains("\"added\": 20"),
        "{audit}"
    );
    let certs: HashMap<&str, _> = [
        "C02SYNC01",
        "C02SYNC02",
        "C02SYNC03",
        "C02SYNC04",
        "C02SYNC05",
    ]
    .into_iter()
    .map(|d| (d, issue_for(dir, &data, d)))
    .collect();
    let says = |d: &str| ocsp_says(&server, &certs[d]);
    assert!(says("C02SYNC01").contains(": good"));

    // Lost in the MDM: revoked by the next sync, audited as the sync's.
    set(&fake, &["C02SYNC01"], "lost");
    let r = sync(&data, &[]);
    assert_eq!(r["result"], "applied", "{r}");
    assert_eq!(r["changes"][0]["change"], "lost");
    assert!(says("C02SYNC01").contains(": revoked"));
    let audit = custos_ok(&data, &["audit", "--kind", "revocation", "--json"]);
    assert!(String::from_utf8_lossy(&audit.stdout).contains("\"actor\": \"sync:fake\""));

    // An MDM answering errors, or nothing: nothing changes.
    fake.lock().unwrap().answers = vec![(500, None); 6];
    set(&fake, &["C02SYNC02"], "lost");
    let out = custos(&data, &["mdm", "sync", "--name", "fake"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 500"));
    assert!(says("C02SYNC02").contains(": good"));
    let saved = std::mem::take(&mut fake.lock().unwrap().devices);
    let r = sync(&data, &[]);
    assert_eq!(r["result"], "failed");
    assert!(says("C02SYNC02").contains(": good"));
    fake.lock().unwrap().devices = saved;
    let status = custos_ok(&data, &["mdm", "status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("last failed"));

    // Five of twenty at once (25 % > 5 %): held, nothing applied; a dry
    // run shows them; --confirm applies them.
    set(
        &fake,
        &["C02SYNC03", "C02SYNC06", "C02SYNC07", "C02SYNC08"],
        "wiped",
    );
    let r = sync(&data, &[]);
    assert_eq!(r["result"], "held", "{r}");
    assert_eq!(r["changes"].as_array().unwrap().len(), 5);
    assert!(says("C02SYNC02").contains(": good"));
    let metrics = reqwest::get(format!("{}/metrics", server.http_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("custos_mdm_sync_held{source=\"fake\"} 1"),
        "{metrics}"
    );
    let r = sync(&data, &["--dry-run"]);
    assert_eq!(r["result"], "dry-run");
    assert_eq!(r["changes"].as_array().unwrap().len(), 5);
    let r = sync(&data, &["--confirm"]);
    assert_eq!(r["result"], "applied");
    assert!(says("C02SYNC02").contains(": revoked"));
    assert!(says("C02SYNC03").contains(": revoked"));

    // Gone from the MDM: unenrolled only when the second sync agrees.
    fake.lock()
        .unwrap()
        .devices
        .retain(|d| d["serial"] != "C02SYNC04");
    let r = sync(&data, &[]);
    assert_eq!(r["missing_once"], 1, "{r}");
    assert!(says("C02SYNC04").contains(": good"));
    let r = sync(&data, &[]);
    assert_eq!(r["changes"][0]["change"], "unenrolled", "{r}");
    assert!(says("C02SYNC04").contains(": revoked"));

    // Throttled: the sync waits out Retry-After and goes on.
    fake.lock().unwrap().answers = vec![(429, Some(1))];
    let before = fake.lock().unwrap().requests;
    let r = sync(&data, &[]);
    assert!(
        r["result"] == "unchanged" || r["result"] == "applied",
        "{r}"
    );
    assert_eq!(fake.lock().unwrap().requests - before, 2);

    // A webhook newer than the MDM's inventory wins: the MDM still lists
    // C02SYNC05 active (last heard of an hour ago), the webhook said lost.
    let now = custos::model::time::unix_now();
    let body = r#"{"kind":"lost","serial":"C02SYNC05"}"#;
    let status = crate::common::post_standard_event(&server, SECRET, "msg_sync_1", body).await;
    assert_eq!(status, 200);
    let t = Instant::now();
    while !says("C02SYNC05").contains(": revoked") {
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let mut f = fake.lock().unwrap();
        let d = f
            .devices
            .iter_mut()
            .find(|d| d["serial"] == "C02SYNC05")
            .unwrap();
        d["updated_at"] = (now - 3600).into();
    }
    let r = sync(&data, &[]);
    assert_eq!(r["changes"].as_array().unwrap().len(), 0, "{r}");
    let shown = custos_ok(&data, &["devices", "show", "C02SYNC05"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("\"status\": \"lost\""));
    assert!(server.terminate().success());
}

// ---- the other APIs, read by a dry run ----

#[derive(serde::Deserialize)]
struct Page {
    page: Option<usize>,
    per_page: Option<usize>,
    #[serde(rename = "page-size")]
    page_size: Option<usize>,
}

async fn fleet_hosts(headers: HeaderMap, Query(p): Query<Page>) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer fleet-api") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let hosts = [
        json!({"id": 1, "hardware_serial": "FLEET1", "uuid": "U1", "team_name": "Laptops", "mdm": {"enrollment_status": "On (automatic)", "device_status": "unlocked"}}),
        json!({"id": 2, "hardware_serial": "FLEET2", "uuid": "U2", "mdm": {"enrollment_status": "On (manual)", "device_status": "locked"}}),
        json!({"id": 3, "hardware_serial": "FLEET3", "uuid": "U3", "mdm": {"enrollment_status": "Off"}}),
    ];
    let per = p.per_page.unwrap_or(100);
    let page: Vec<Value> = hosts
        .into_iter()
        .skip(p.page.unwrap_or(0) * per)
        .take(per)
        .collect();
    Json(json!({ "hosts": page })).into_response()
}

async fn oauth_token(body: String) -> Response {
    if !body.contains("grant_type=client_credentials") || !body.contains("client_secret=s3cret") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"access_token": "oauth-token", "expires_in": 3600})).into_response()
}

fn bearer_ok(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer oauth-token")
}

async fn graph_devices(
    State(base): State<Arc<Mutex<String>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !bearer_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let base = base.lock().unwrap().clone();
    if !q.contains_key("skiptoken") {
        Json(json!({
            "value": [
                {"serialNumber": "INTUNE1", "complianceState": "compliant", "managementState": "managed", "deviceRegistrationState": "registered"},
                {"serialNumber": "INTUNE2", "complianceState": "noncompliant", "managementState": "managed"},
            ],
            "@odata.nextLink": format!("{base}/v1.0/deviceManagement/managedDevices?skiptoken=2"),
        }))
        .into_response()
    } else {
        Json(json!({"value": [
            {"serialNumber": "INTUNE3", "complianceState": "compliant", "managementState": "wipeIssued"},
            {"serialNumber": "INTUNE4", "complianceState": "compliant", "managementState": "retirePending"},
        ]}))
        .into_response()
    }
}

async fn jamf_computers(headers: HeaderMap, Query(p): Query<Page>) -> Response {
    if !bearer_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let all = [
        json!({"udid": "J-U1", "general": {"remoteManagement": {"managed": true}}, "hardware": {"serialNumber": "JAMF1"}}),
        json!({"udid": "J-U2", "general": {"remoteManagement": {"managed": false}}, "hardware": {"serialNumber": "JAMF2"}}),
        json!({"udid": "J-U3", "general": {"remoteManagement": {"managed": true}}, "hardware": {"serialNumber": "JAMF3"}}),
    ];
    let size = p.page_size.unwrap_or(100);
    let page: Vec<Value> = all
        .into_iter()
        .skip(p.page.unwrap_or(0) * size)
        .take(size)
        .collect();
    Json(json!({"totalCount": 3, "results": page})).into_response()
}

async fn jamf_mobiles(headers: HeaderMap) -> Response {
    if !bearer_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"totalCount": 1, "results": [
        {"mobileDeviceId": "7", "general": {"udid": "J-M1", "managed": true}, "hardware": {"serialNumber": "JAMFPHONE1"}, "security": {"lostModeEnabled": true}},
    ]}))
    .into_response()
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_intune_and_jamf_inventories_are_read_page_by_page() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let fleet = serve(Router::new().route("/api/v1/fleet/hosts", get(fleet_hosts))).await;
    let graph_base = Arc::new(Mutex::new(String::new()));
    let graph = serve(
        Router::new()
            .route("/token", post(oauth_token))
            .route("/v1.0/deviceManagement/managedDevices", get(graph_devices))
            .with_state(graph_base.clone()),
    )
    .await;
    *graph_base.lock().unwrap() = graph.clone();
    let jamf = serve(
        Router::new()
            .route("/api/oauth/token", post(oauth_token))
            .route("/api/v1/computers-inventory", get(jamf_computers))
            .route("/api/v2/mobile-devices/detail", get(jamf_mobiles)),
    )
    .await;
    std::fs::write(
        dir.join("custos.toml"),
        format!(
            "[mdm.fleet]\nkind = \"fleet\"\nurl = \"{fleet}\"\ntoken = \"fleet-api\"\npage_size = 2\nmax_changes_percent = 100\ngroups = {{ \"Laptops\" = \"laptops\" }}\n\
             [mdm.intune]\nkind = \"intune\"\nurl = \"{graph}\"\ntoken_url = \"{graph}/token\"\nclient_id = \"app\"\nclient_secret = \"s3cret\"\nmax_changes_percent = 100\n\
             [mdm.jamf]\nkind = \"jamf\"\nurl = \"{jamf}\"\nclient_id = \"custos\"\nclient_secret = \"s3cret\"\npage_size = 2\nmax_changes_percent = 100\n"
        ),
    )
    .unwrap();
    custos_ok(&data, &["init"]);
    let run = |name: &str| {
        let out = custos_ok(&data, &["mdm", "sync", "--name", name, "--json"]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    // Offline (no server): the CLI syncs in-process. First sync: every
    // device added with the MDM's status.
    let r = run("fleet");
    assert_eq!(r["seen"], 3, "{r}");
    assert_eq!(r["requests"], 2, "two pages of two");
    let r = run("intune");
    assert_eq!(r["seen"], 4, "{r}");
    let r = run("jamf");
    assert_eq!(r["seen"], 4, "{r}");
    let show = |id: &str| {
        let out = custos_ok(&data, &["devices", "show", id]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(show("FLEET1")["status"], "active");
    assert_eq!(show("FLEET1")["group"], "laptops", "team mapped to a group");
    assert_eq!(show("FLEET2")["status"], "lost", "locked in Fleet");
    assert_eq!(show("FLEET3")["status"], "unenrolled");
    assert_eq!(show("INTUNE2")["compliant"], false);
    assert_eq!(show("INTUNE3")["status"], "lost", "wipe issued");
    assert_eq!(show("INTUNE4")["status"], "unenrolled", "retire pending");
    assert_eq!(show("JAMF2")["status"], "unenrolled", "no longer managed");
    assert_eq!(show("JAMFPHONE1")["status"], "lost", "lost mode");
    assert_eq!(show("JAMF3")["udid"], "J-U3");
    let status = custos_ok(&data, &["mdm", "status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status.as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_syncs_on_its_interval_and_revokes_within_one() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let (fake, url) = generic_mdm(&["C02TICK1", "C02TICK2"]).await;
    std::fs::write(
        dir.join("custos.toml"),
        format!("[mdm.fake]\nkind = \"generic\"\nurl = \"{url}/devices\"\ntoken = \"t0ken\"\nsync_interval_secs = 5\nmax_changes_percent = 100\n"),
    )
    .unwrap();
    custos_ok(&data, &["init"]);
    let server = Server::start(&data, &[]);
    // The first scheduled sync adds the devices.
    let t = Instant::now();
    while custos(&data, &["devices", "show", "C02TICK1"])
        .status
        .code()
        != Some(0)
    {
        assert!(t.elapsed() < Duration::from_secs(15), "no scheduled sync");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cert = issue_for(dir, &data, "C02TICK1");
    assert!(ocsp_says(&server, &cert).contains(": good"));
    set(&fake, &["C02TICK1"], "lost");
    let t = Instant::now();
    while !ocsp_says(&server, &cert).contains(": revoked") {
        assert!(
            t.elapsed() < Duration::from_secs(12),
            "not revoked within an interval"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And the CRL lists it.
    while !crate::webhooks::crl_lists(&cert).await {
        assert!(t.elapsed() < Duration::from_secs(15), "not on the CRL");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = custos_ok(&data, &["mdm", "status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status[0]["last_success"].as_u64().is_some(), "{status}");
    assert!(server.terminate().success());
}
