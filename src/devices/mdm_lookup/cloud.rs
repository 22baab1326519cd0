//! Fleet and Microsoft Intune asked about one device by serial number.
//!
//! - Fleet: `GET <url>/api/v1/fleet/hosts/identifier/<serial>` with the API
//!   token. Managed when its MDM enrolment is on (`On (manual)`,
//!   `On (automatic)`, …) and it is not locked or wiped; 404 is not managed.
//! - Intune: an OAuth client-credentials token for Microsoft Graph (kept
//!   until a minute before it expires), then
//!   `GET <graph>/v1.0/deviceManagement/managedDevices?$filter=serialNumber eq '<serial>'`.
//!   Managed when a listed device is neither being retired, wiped or
//!   deleted nor revoked from Entra registration.

use super::{ClientCredentials, Lookup, MdmLookup};
use crate::config::MdmLookupConfig;
use serde_json::Value;
use std::time::Duration;

/// Fleet's REST API.
pub struct Fleet {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fleet({})", self.url)
    }
}

impl Fleet {
    /// A Fleet client for `url` with an API token.
    pub fn new(http: reqwest::Client, url: String, token: String) -> Fleet {
        Fleet { http, url, token }
    }
}

/// Whether a Fleet host (`GET …/hosts/identifier/…`'s `host`) is managed.
fn fleet_managed(host: &Value) -> bool {
    let mdm = &host["mdm"];
    let enrolled = mdm["enrollment_status"]
        .as_str()
        .is_some_and(|s| s.starts_with("On"));
    let gone = matches!(
        mdm["device_status"].as_str(),
        Some("locked" | "locking" | "wiped" | "wiping")
    );
    enrolled && !gone
}

/// `GET <api_url>/api/v1/fleet/hosts/<tail>` with the API token: the
/// answer's `host`. `Ok(None)`: Fleet has no such host; `Err`: Fleet could
/// not be asked.
async fn fleet_host(
    http: &reqwest::Client,
    api_url: &str,
    token: &str,
    tail: &str,
) -> Result<Option<Value>, String> {
    let req = http.get(format!(
        "{}/api/v1/fleet/hosts/{tail}",
        api_url.trim_end_matches('/')
    ));
    let host = super::get_json(req, Some(token), "Fleet API").await?;
    Ok(host.map(|mut v| v["host"].take()))
}

/// The `hardware_serial` of the Fleet host with id `host_id` (what a Fleet
/// webhook names). `Ok(None)`: Fleet has no such host (or no serial for
/// it); `Err`: Fleet could not be asked (try again later).
pub async fn fleet_host_serial(
    api_url: &str,
    token: &str,
    host_id: &str,
) -> Result<Option<String>, String> {
    if host_id.is_empty() || !host_id.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("Fleet API client: {e}"))?;
    let host = fleet_host(&http, api_url, token, host_id).await?;
    Ok(host
        .and_then(|h| h["hardware_serial"].as_str().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty()))
}

impl MdmLookup for Fleet {
    fn is_managed<'a>(&'a self, serial: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
            if serial.is_empty() || !serial.bytes().all(ok) {
                return Ok(false);
            }
            let tail = format!("identifier/{serial}");
            let host = fleet_host(&self.http, &self.url, &self.token, &tail).await?;
            Ok(host.is_some_and(|h| fleet_managed(&h)))
        })
    }
}

/// Microsoft Graph's Intune managed devices.
pub struct Intune {
    http: reqwest::Client,
    graph: String,
    oauth: ClientCredentials,
}

impl std::fmt::Debug for Intune {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Intune({})", self.graph)
    }
}

/// Whether an Intune managed device is still managed.
fn intune_managed(device: &Value) -> bool {
    let state = device["managementState"].as_str().unwrap_or("managed");
    let leaving = matches!(
        state,
        "retirePending" | "retireIssued" | "wipePending" | "wipeIssued" | "deletePending"
    );
    !leaving && device["deviceRegistrationState"].as_str() != Some("revoked")
}

impl Intune {
    /// An Intune client from `[acme.device_attest.mdm]` (`tenant` or
    /// `token_url`, `client_id`, `client_secret`, `url` for Graph).
    pub fn new(http: reqwest::Client, config: &MdmLookupConfig) -> anyhow::Result<Intune> {
        let token_url = match (&config.token_url, &config.tenant) {
            (Some(u), _) => u.clone(),
            (None, Some(t)) => format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token"),
            (None, None) => {
                anyhow::bail!("acme.device_attest.mdm: kind \"intune\" needs tenant or token_url")
            }
        };
        let graph = match config.url.trim_end_matches('/') {
            "" => "https://graph.microsoft.com".to_string(),
            u => u.to_string(),
        };
        Ok(Intune {
            http,
            graph,
            oauth: ClientCredentials::new(
                token_url,
                config.client_id.as_deref().unwrap_or_default(),
                config.client_secret.as_deref().unwrap_or_default(),
                Some("https://graph.microsoft.com/.default"),
                "Intune token",
            ),
        })
    }
}

impl MdmLookup for Intune {
    fn is_managed<'a>(&'a self, serial: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let token = self.oauth.token(&self.http).await?;
            // An OData string literal: a quote is written twice.
            let filter = format!("serialNumber eq '{}'", serial.replace('\'', "''"));
            let req = self
                .http
                .get(format!(
                    "{}/v1.0/deviceManagement/managedDevices",
                    self.graph
                ))
                .query(&[
                    ("$filter", filter.as_str()),
                    (
                        "$select",
                        "id,serialNumber,managementState,deviceRegistrationState",
                    ),
                ]);
            let v = super::get_json(req, Some(&token), "Graph managedDevices")
                .await?
                .ok_or("Graph managedDevices answered HTTP 404")?;
            let list = v["value"]
                .as_array()
                .ok_or("Graph managedDevices: no \"value\" list")?;
            Ok(list.iter().any(intune_managed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::from_config;
    use super::*;
    use axum::extract::{Path, Query};
    use axum::http::{HeaderMap, StatusCode};
    use std::collections::HashMap;

    fn bearer(h: &HeaderMap, token: &str) -> bool {
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {token}"))
    }

    /// Fleet and Graph stand-ins on one loopback server; how many tokens
    /// Graph's token endpoint handed out.
    async fn fake_mdms() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tokens = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let issued = tokens.clone();
        let app = axum::Router::new()
            .route(
                "/api/v1/fleet/hosts/identifier/{id}",
                axum::routing::get(|h: HeaderMap, Path(id): Path<String>| async move {
                    if !bearer(&h, "fleet-t0k") {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    let mdm = match id.as_str() {
                        "MAC1" => serde_json::json!({"enrollment_status": "On (automatic)"}),
                        "MAC2" => serde_json::json!({"enrollment_status": "Off"}),
                        "MAC3" => serde_json::json!({"enrollment_status": "On (manual)", "device_status": "locked"}),
                        _ => return Err(StatusCode::NOT_FOUND),
                    };
                    Ok(axum::Json(serde_json::json!({"host": {"hardware_serial": id, "mdm": mdm}})))
                }),
            )
            .route(
                "/tenant-1/token",
                axum::routing::post(move |body: String| async move {
                    if !body.contains("client_secret=s3cret") || !body.contains("graph.microsoft.com") {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(axum::Json(serde_json::json!({"access_token": "graph-t0k", "expires_in": 3599})))
                }),
            )
            .route(
                "/v1.0/deviceManagement/managedDevices",
                axum::routing::get(|h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                    if !bearer(&h, "graph-t0k") {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    let filter = q.get("$filter").cloned().unwrap_or_default();
                    let value = match filter.as_str() {
                        "serialNumber eq 'PC1'" => vec![serde_json::json!({"serialNumber": "PC1", "managementState": "managed", "deviceRegistrationState": "registered"})],
                        "serialNumber eq 'PC2'" => vec![serde_json::json!({"serialNumber": "PC2", "managementState": "retireIssued"})],
                        "serialNumber eq 'O''NEIL'" => vec![serde_json::json!({"serialNumber": "O'NEIL", "managementState": "managed"})],
                        _ => vec![],
                    };
                    Ok(axum::Json(serde_json::json!({"value": value})))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), tokens)
    }

    #[tokio::test]
    async fn fleet_says_managed_when_enrolled_and_not_locked() {
        let (url, _) = fake_mdms().await;
        let config = MdmLookupConfig {
            kind: Some("fleet".into()),
            url,
            token: Some("fleet-t0k".into()),
            ..MdmLookupConfig::default()
        };
        let fleet = from_config(&config).unwrap().unwrap();
        assert_eq!(fleet.is_managed("MAC1").await, Ok(true));
        assert_eq!(fleet.is_managed("MAC2").await, Ok(false), "enrolment off");
        assert_eq!(fleet.is_managed("MAC3").await, Ok(false), "locked");
        assert_eq!(fleet.is_managed("NOBODY").await, Ok(false), "404");
        assert_eq!(
            fleet.is_managed("../hosts").await,
            Ok(false),
            "not a serial"
        );
        let wrong = from_config(&MdmLookupConfig {
            token: Some("wrong".into()),
            ..config
        })
        .unwrap()
        .unwrap();
        assert!(wrong.is_managed("MAC1").await.unwrap_err().contains("401"));
    }

    #[tokio::test]
    async fn intune_asks_graph_by_serial_with_one_token() {
        let (url, tokens) = fake_mdms().await;
        let config = MdmLookupConfig {
            kind: Some("intune".into()),
            url: url.clone(),
            token_url: Some(format!("{url}/tenant-1/token")),
            client_id: Some("custos".into()),
            client_secret: Some("s3cret".into()),
            ..MdmLookupConfig::default()
        };
        let intune = from_config(&config).unwrap().unwrap();
        assert_eq!(intune.is_managed("PC1").await, Ok(true));
        assert_eq!(intune.is_managed("PC2").await, Ok(false), "retire issued");
        assert_eq!(intune.is_managed("NOBODY").await, Ok(false), "not listed");
        assert_eq!(intune.is_managed("O'NEIL").await, Ok(true), "quote escaped");
        assert_eq!(tokens.load(std::sync::atomic::Ordering::SeqCst), 1);
        let wrong = from_config(&MdmLookupConfig {
            client_secret: Some("wrong".into()),
            ..config
        })
        .unwrap()
        .unwrap();
        assert!(wrong.is_managed("PC1").await.unwrap_err().contains("401"));
    }
}
