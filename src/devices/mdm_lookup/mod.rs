//! Asking the MDM whether a device is managed, before a device certificate
//! is issued (`[acme.device_attest.mdm]`): a Jamf Pro API client (OAuth
//! client credentials, computers and mobile devices inventory), Fleet and
//! Microsoft Intune ([`cloud`]), and a generic JSON endpoint
//! (`GET <url>?serial=<serial>` → `{"managed": bool}`), behind one trait,
//! with a timeout. Unreachable or unclear answers fail closed unless
//! `fail_open` is set.

mod cloud;

pub use cloud::{fleet_host_serial, Fleet, Intune};

use crate::config::MdmLookupConfig;
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The answer of a lookup.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

/// An MDM that can say whether a device (by serial) is managed.
pub trait MdmLookup: Send + Sync + std::fmt::Debug {
    /// True when the MDM manages the device; errors name what failed.
    fn is_managed<'a>(&'a self, serial: &'a str) -> Lookup<'a>;
}

/// Builds the configured client, if any.
pub fn from_config(config: &MdmLookupConfig) -> anyhow::Result<Option<Box<dyn MdmLookup>>> {
    // reqwest is built without a default crypto provider: use aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = || {
        reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .build()
    };
    let url = config.url.trim_end_matches('/').to_string();
    match config.kind.as_deref() {
        None | Some("") | Some("none") => Ok(None),
        Some("generic") => Ok(Some(Box::new(Generic {
            http: http()?,
            url,
            token: config.token.clone(),
        }))),
        Some("jamf") => Ok(Some(Box::new(Jamf {
            http: http()?,
            oauth: ClientCredentials::new(
                format!("{url}/api/oauth/token"),
                config.client_id.as_deref().unwrap_or_default(),
                config.client_secret.as_deref().unwrap_or_default(),
                None,
                "Jamf token",
            ),
            url,
        }))),
        Some("fleet") => Ok(Some(Box::new(Fleet::new(
            http()?,
            url,
            config.token.clone().unwrap_or_default(),
        )))),
        Some("intune") => Ok(Some(Box::new(Intune::new(http()?, config)?))),
        Some(other) => {
            anyhow::bail!(
                "acme.device_attest.mdm.kind {other:?} is not known (jamf, fleet, intune, generic)"
            )
        }
    }
}

/// `GET <url>?serial=<serial>` with an optional bearer token, answering
/// `{"managed": true|false}`.
pub struct Generic {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl std::fmt::Debug for Generic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Generic({})", self.url)
    }
}

impl MdmLookup for Generic {
    fn is_managed<'a>(&'a self, serial: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let req = self.http.get(&self.url).query(&[("serial", serial)]);
            let Some(v) = get_json(req, self.token.as_deref(), "MDM lookup").await? else {
                return Ok(false);
            };
            v["managed"]
                .as_bool()
                .ok_or_else(|| "MDM lookup answer: no \"managed\" boolean".to_string())
        })
    }
}

/// A GET with an optional bearer token, read as JSON: `Ok(None)` for 404;
/// `Err` (naming `what`) when it could not be asked or answered otherwise.
async fn get_json(
    req: reqwest::RequestBuilder,
    token: Option<&str>,
    what: &str,
) -> Result<Option<serde_json::Value>, String> {
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{what}: {}", e.without_url()))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(format!("{what} answered HTTP {}", resp.status().as_u16()));
    }
    resp.json()
        .await
        .map(Some)
        .map_err(|e| format!("{what} answer: {e}"))
}

/// Jamf Pro API: an OAuth token from the API client's credentials, then
/// the computers inventory and the mobile devices list by serial number.
pub struct Jamf {
    http: reqwest::Client,
    url: String,
    oauth: ClientCredentials,
}

/// OAuth client credentials (RFC 6749 §4.4) and the access token they last
/// got, kept until a minute before it expires.
struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: Option<&'static str>,
    /// What errors call it (`Jamf token`, `Intune token`).
    what: &'static str,
    cached: Mutex<Option<(String, Instant)>>,
}

impl ClientCredentials {
    fn new(
        token_url: String,
        client_id: &str,
        client_secret: &str,
        scope: Option<&'static str>,
        what: &'static str,
    ) -> ClientCredentials {
        ClientCredentials {
            token_url,
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            scope,
            what,
            cached: Mutex::new(None),
        }
    }

    /// The kept token, or a new one.
    async fn token(&self, http: &reqwest::Client) -> Result<String, String> {
        if let Some((t, until)) = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            if Instant::now() < until {
                return Ok(t);
            }
        }
        let what = self.what;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
        ];
        if let Some(scope) = self.scope {
            form.push(("scope", scope));
        }
        let resp = http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("{what}: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("{what}: HTTP {}", resp.status().as_u16()));
        }
        let t: OAuthToken = resp.json().await.map_err(|e| format!("{what}: {e}"))?;
        let life = Duration::from_secs(t.expires_in.unwrap_or(300).saturating_sub(60).max(30));
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((t.access_token.clone(), Instant::now() + life));
        Ok(t.access_token)
    }
}

impl std::fmt::Debug for Jamf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jamf({})", self.url)
    }
}

#[derive(Deserialize)]
struct OAuthToken {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct JamfComputers {
    #[serde(default)]
    results: Vec<serde_json::Value>,
}

impl Jamf {
    async fn token(&self) -> Result<String, String> {
        self.oauth.token(&self.http).await
    }

    async fn get(&self, path: &str, filter: &str) -> Result<Vec<serde_json::Value>, String> {
        let token = self.token().await?;
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .query(&[("section", "GENERAL"), ("filter", filter)])
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("Jamf {path}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("Jamf {path}: HTTP {}", resp.status().as_u16()));
        }
        let list: JamfComputers = resp.json().await.map_err(|e| format!("Jamf {path}: {e}"))?;
        Ok(list.results)
    }
}

impl Jamf {
    /// A Jamf Pro API client with these credentials.
    pub fn new(
        url: &str,
        client_id: &str,
        client_secret: &str,
        timeout: Duration,
    ) -> Result<Jamf, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("Jamf API client: {e}"))?;
        let url = url.trim_end_matches('/').to_string();
        Ok(Jamf {
            http,
            oauth: ClientCredentials::new(
                format!("{url}/api/oauth/token"),
                client_id,
                client_secret,
                None,
                "Jamf token",
            ),
            url,
        })
    }

    /// The serial number of the device Jamf knows as `mdm_id`
    /// (`computers/<id>` or `mobile-devices/<id>`, as the webhook parser
    /// names it). `Ok(None)`: Jamf has no such device; `Err`: Jamf could
    /// not be asked (try again later).
    pub async fn serial_of(&self, mdm_id: &str) -> Result<Option<String>, String> {
        let Some((inventory, id)) = mdm_id.split_once('/') else {
            return Ok(None);
        };
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let (path, pointer) = match inventory {
            "computers" => (
                format!("/api/v1/computers-inventory/{id}?section=HARDWARE"),
                "/hardware/serialNumber",
            ),
            "mobile-devices" => (format!("/api/v2/mobile-devices/{id}"), "/serialNumber"),
            _ => return Ok(None),
        };
        let token = self.token().await?;
        let req = self.http.get(format!("{}{path}", self.url));
        let what = format!("Jamf API {path}");
        let Some(v) = get_json(req, Some(&token), &what).await? else {
            return Ok(None);
        };
        Ok(v.pointer(pointer)
            .and_then(|s| s.as_str())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()))
    }
}

impl MdmLookup for Jamf {
    fn is_managed<'a>(&'a self, serial: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let quoted = serial.replace('"', "");
            let computers = self
                .get(
                    "/api/v1/computers-inventory",
                    &format!("hardware.serialNumber==\"{quoted}\""),
                )
                .await?;
            if let Some(c) = computers.first() {
                return Ok(c["general"]["remoteManagement"]["managed"].as_bool() == Some(true));
            }
            let mobiles = self
                .get(
                    "/api/v2/mobile-devices",
                    &format!("serialNumber==\"{quoted}\""),
                )
                .await?;
            Ok(mobiles
                .first()
                .is_some_and(|m| m["managed"].as_bool() == Some(true)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Query;
    use axum::http::HeaderMap;
    use std::collections::HashMap;

    /// A Jamf Pro stand-in: one token, one managed computer, one unmanaged
    /// mobile device.
    async fn fake_jamf() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let authorized = |h: &HeaderMap| {
            h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer t0k")
        };
        let app = axum::Router::new()
            .route(
                "/api/oauth/token",
                axum::routing::post(|body: String| async move {
                    if body.contains("client_secret=s3cret") && body.contains("grant_type=client_credentials") {
                        Ok(axum::Json(serde_json::json!({"access_token": "t0k", "expires_in": 1200})))
                    } else {
                        Err(axum::http::StatusCode::UNAUTHORIZED)
                    }
                }),
            )
            .route(
                "/api/v1/computers-inventory",
                axum::routing::get(move |h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                    if !authorized(&h) {
                        return Err(axum::http::StatusCode::UNAUTHORIZED);
                    }
                    let hit = q.get("filter").is_some_and(|f| f.contains("\"MAC1\""));
                    let results = if hit {
                        vec![serde_json::json!({"general": {"remoteManagement": {"managed": true}}})]
                    } else {
                        vec![]
                    };
                    Ok(axum::Json(serde_json::json!({"totalCount": results.len(), "results": results})))
                }),
            )
            .route(
                "/api/v2/mobile-devices",
                axum::routing::get(move |h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                    if !authorized(&h) {
                        return Err(axum::http::StatusCode::UNAUTHORIZED);
                    }
                    let hit = q.get("filter").is_some_and(|f| f.contains("\"PHONE1\""));
                    let results = if hit {
                        vec![serde_json::json!({"serialNumber": "PHONE1", "managed": false})]
                    } else {
                        vec![]
                    };
                    Ok(axum::Json(serde_json::json!({"totalCount": results.len(), "results": results})))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn jamf_answers_from_computers_then_mobile_devices() {
        let url = fake_jamf().await;
        let config = MdmLookupConfig {
            kind: Some("jamf".into()),
            url: url.clone(),
            client_id: Some("custos".into()),
            client_secret: Some("s3cret".into()),
            ..MdmLookupConfig::default()
        };
        let jamf = from_config(&config).unwrap().unwrap();
        assert_eq!(jamf.is_managed("MAC1").await, Ok(true));
        assert_eq!(jamf.is_managed("PHONE1").await, Ok(false));
        assert_eq!(jamf.is_managed("NOBODY").await, Ok(false));
        let wrong = from_config(&MdmLookupConfig {
            client_secret: Some("wrong".into()),
            ..config
        })
        .unwrap()
        .unwrap();
        assert!(wrong.is_managed("MAC1").await.unwrap_err().contains("401"));
        assert!(from_config(&MdmLookupConfig {
            kind: Some("intune".into()),
            ..MdmLookupConfig::default()
        })
        .is_err());
        assert!(from_config(&MdmLookupConfig {
            kind: Some("workspace-one".into()),
            ..MdmLookupConfig::default()
        })
        .is_err());
    }
}
