//! Outbound revocation notifications: a revocation reaches a subscriber as
//! a Standard-Webhooks-signed POST, retried after a failure with the same
//! `webhook-id`; a subscriber answering 410 ends in the dead letters, which
//! `custos webhooks outbox --dead` lists and `--retry-dead` queues again.

use crate::common;

use common::{custos, p256_csr, Server};
use custos_webhooks::standard::{self, Secret};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_bm90aWZ5LXNlY3JldC1mb3ItdGVzdHM=";

/// One request the receiver got: path, webhook-timestamp,
/// "webhook-id|webhook-signature", body, and the status it answered.
#[derive(Clone)]
struct Hit(String, u64, String, Vec<u8>, u16);

#[derive(Clone, Default)]
struct Received {
    hits: Arc<Mutex<Vec<Hit>>>,
}

/// A receiver: `/hook` fails its first delivery with 500, then takes them;
/// `/gone` always answers 410.
async fn receiver() -> (String, Received) {
    use axum::http::{HeaderMap, StatusCode};
    let received = Received::default();
    let r = received.clone();
    let handler = move |path: &'static str| {
        let r = r.clone();
        move |headers: HeaderMap, body: axum::body::Bytes| {
            let r = r.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let mut hits = r.hits.lock().unwrap();
                let status = match path {
                    "/gone" => StatusCode::GONE,
                    _ if hits.iter().all(|x| x.0 != "/hook") => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::NO_CONTENT,
                };
                hits.push(Hit(
                    path.to_string(),
                    h("webhook-timestamp").parse().unwrap_or(0),
                    format!("{}|{}", h("webhook-id"), h("webhook-signature")),
                    body.to_vec(),
                    status.as_u16(),
                ));
                status
            }
        }
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(handler("/hook")))
        .route("/gone", axum::routing::post(handler("/gone")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn hits(r: &Received, path: &str) -> Vec<Hit> {
    r.hits
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.0 == path)
        .cloned()
        .collect()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn outbox(data: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["webhooks", "outbox", "--json"];
    all.extend_from_slice(args);
    let o = custos(data, &all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn revocations_are_notified_with_retries_and_dead_letters() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (base, received) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("custos.toml"),
        format!(
            "[notify]\ninitial_backoff_secs = 1\nmax_attempts = 3\n\
             [notify.subscribers.siem]\nurl = \"{base}/hook\"\nsecret = \"{SECRET}\"\n\
             [notify.subscribers.old]\nurl = \"{base}/gone\"\nsecret = \"{SECRET}\"\n"
        ),
    )
    .unwrap();
    assert!(custos(&data, &["init"]).status.success());
    let server = Server::start(&data, &[]);
    let csr = dir.path().join("a.csr");
    std::fs::write(&csr, p256_csr(&["notify.example"])).unwrap();
    let o = custos(&data, &["issue", "--csr", csr.to_str().unwrap()]);
    assert!(o.status.success());
    let serial = common::issued_serial(&String::from_utf8_lossy(&o.stderr));
    // Nothing is sent before a revocation.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(received.hits.lock().unwrap().is_empty());

    let o = custos(
        &data,
        &["revoke", "--serial", &serial, "--reason", "keyCompromise"],
    );
    assert!(o.status.success());

    // First delivery fails (500), the retry a second or more later succeeds.
    wait_for("a retried delivery", || hits(&received, "/hook").len() >= 2).await;
    let h = hits(&received, "/hook");
    assert_eq!((h[0].4, h[1].4), (500, 204));
    assert_eq!(h[0].2.split('|').next(), h[1].2.split('|').next());
    assert!(h[1].1 > h[0].1, "retried without backing off");
    let secret = Secret::parse(SECRET).unwrap();
    for Hit(_, ts, id_sig, body, _) in &h {
        let (id, sig) = id_sig.split_once('|').unwrap();
        standard::verify(
            std::slice::from_ref(&secret),
            Some(id),
            Some(&ts.to_string()),
            Some(sig),
            body,
            custos::model::time::unix_now(),
        )
        .expect("a valid Standard Webhooks signature");
    }
    let msg: serde_json::Value = serde_json::from_slice(&h[1].3).unwrap();
    assert_eq!(msg["type"], "certificate.revoked");
    assert_eq!(msg["data"]["serial"], serial.as_str());
    assert_eq!(msg["data"]["reason"], "keyCompromise");
    assert!(msg["data"]["subject"].as_str().is_some(), "{msg}");

    // 410 Gone: dead at once, listed, and visible in the metrics.
    wait_for("a dead letter", || {
        outbox(&data, &["--dead"]).as_array().unwrap().len() == 1
    })
    .await;
    let dead = outbox(&data, &["--dead"]);
    assert_eq!(dead[0]["subscriber"], "old");
    assert_eq!(dead[0]["last_error"], "HTTP 410");
    assert_eq!(hits(&received, "/gone").len(), 1);
    wait_for("an empty queue", || {
        outbox(&data, &[]).as_array().unwrap().is_empty()
    })
    .await;
    let metrics = reqwest::get(format!("{}/metrics", server.http_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"custos_notify_deliveries_total{result="delivered",subscriber="siem"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"custos_notify_outbox_entries{state="dead"} 1"#));

    // Queued again on request: one more attempt, dead again.
    let o = custos(&data, &["webhooks", "outbox", "--retry-dead"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 dead notifications queued again"));
    wait_for("a second attempt", || hits(&received, "/gone").len() == 2).await;

    // The outbox survives a restart: nothing is sent twice to siem.
    drop(server);
    let server = Server::start(&data, &[]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hits(&received, "/hook").len(), 2);
    drop(server);
}
