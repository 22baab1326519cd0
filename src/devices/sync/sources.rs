//! Reading an MDM's whole device inventory, page by page, as each API
//! documents it, into [`MdmDevice`]s:
//! - `generic`: `GET <url>` with a bearer token → a JSON list of
//!   `{serial, udid?, status, compliant?, group?, updated_at?}`, or
//!   `{"devices": [...], "next": "<url>"}` to page.
//! - `fleet`: `GET /api/v1/fleet/hosts?page=N&per_page=M` (API token):
//!   `hardware_serial`, `uuid`, `team_name`, `detail_updated_at`, and
//!   `mdm.enrollment_status` ("Off": unenrolled) and `mdm.device_status`
//!   (locked → lost, wiped).
//! - `intune`: an OAuth client-credentials token, then Microsoft Graph
//!   `GET /v1.0/deviceManagement/managedDevices` following
//!   `@odata.nextLink`: `serialNumber`, `complianceState`,
//!   `managementState` (wipe/retire issued or pending → wiped/retired,
//!   deletePending → unenrolled), `deviceRegistrationState` (revoked →
//!   unenrolled), `deviceCategoryDisplayName`, `lastSyncDateTime`.
//! - `jamf`: an OAuth client-credentials token, then Jamf Pro API
//!   `GET /api/v1/computers-inventory` and `GET /api/v2/mobile-devices/detail`
//!   (`page`, `page-size`): serial, UDID, managed (false → unenrolled), lost
//!   mode (mobile devices), site, last inventory update.
//!
//! Every request has a timeout; 429 answers are retried after their
//! `Retry-After` (at most 60 s), 5xx answers a few times with back-off;
//! anything else fails the sync, which then changes nothing.

use crate::config::{MdmKind, MdmSource};
use serde_json::Value;
use std::time::Duration;

/// A device as an MDM's inventory describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdmDevice {
    /// Hardware serial number.
    pub serial: Option<String>,
    /// UDID (Apple) or the MDM's hardware UUID.
    pub udid: Option<String>,
    /// Its standing in the MDM.
    pub state: MdmState,
    /// Compliant with the MDM's policies, when the MDM says.
    pub compliant: Option<bool>,
    /// The MDM's group (site, team, category).
    pub group: Option<String>,
    /// When the MDM last heard of it (Unix seconds), when it says.
    pub updated_at: Option<u64>,
}

/// A device's standing in an MDM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MdmState {
    /// Managed, in use.
    Active,
    /// Lost mode, locked.
    Lost,
    /// Wiped (or a wipe issued).
    Wiped,
    /// No longer managed.
    Unenrolled,
    /// Retired (or a retire issued).
    Retired,
}

impl MdmState {
    fn parse(text: &str) -> Option<MdmState> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "active" => MdmState::Active,
            "lost" => MdmState::Lost,
            "wiped" => MdmState::Wiped,
            "unenrolled" => MdmState::Unenrolled,
            "retired" => MdmState::Retired,
            _ => return None,
        })
    }
}

/// Most pages read from one source in one sync.
const MAX_PAGES: usize = 100_000;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// An HTTP client for one source.
pub struct Reader<'a> {
    http: reqwest::Client,
    source: &'a MdmSource,
    base: String,
    /// Requests made (for the report and the bench).
    pub requests: usize,
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn time_of(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        // Jamf and others send milliseconds.
        return Some(if n > 100_000_000_000 { n / 1000 } else { n });
    }
    let s = v.as_str()?;
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
}

impl<'a> Reader<'a> {
    /// A reader for `source`, with a 30 s timeout per request.
    pub fn new(source: &'a MdmSource) -> anyhow::Result<Reader<'a>> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(30))
            .build()?;
        let base = match (source.kind, source.url.is_empty()) {
            (MdmKind::Intune, true) => "https://graph.microsoft.com".to_string(),
            _ => source.url.trim_end_matches('/').to_string(),
        };
        Ok(Reader {
            http,
            source,
            base,
            requests: 0,
        })
    }

    /// Sends a request (built afresh for each attempt) and reads its JSON,
    /// retrying throttling and server errors.
    async fn json(
        &mut self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Value, String> {
        let mut backoff = Duration::from_millis(500);
        for attempt in 0..6 {
            self.requests += 1;
            let resp = build(&self.http)
                .send()
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            let status = resp.status();
            if status.as_u16() == 429 || status.is_server_error() {
                if attempt == 5 {
                    return Err(format!(
                        "{what}: HTTP {} (gave up after retries)",
                        status.as_u16()
                    ));
                }
                let wait = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(backoff)
                    .min(MAX_RETRY_AFTER);
                tracing::info!(
                    what,
                    status = status.as_u16(),
                    wait_ms = wait.as_millis() as u64,
                    "MDM asked to wait; retrying"
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_RETRY_AFTER);
                continue;
            }
            if !status.is_success() {
                return Err(format!("{what}: HTTP {}", status.as_u16()));
            }
            return resp.json().await.map_err(|e| format!("{what}: {e}"));
        }
        Err(format!("{what}: no answer"))
    }

    /// An OAuth client-credentials token from `url`.
    async fn oauth(&mut self, url: &str, scope: Option<&str>) -> Result<String, String> {
        let id = self.source.client_id.clone().unwrap_or_default();
        let secret = self.source.client_secret.clone().unwrap_or_default();
        let url = url.to_string();
        let scope = scope.map(str::to_string);
        let v = self
            .json("OAuth token", move |http| {
                let mut form = vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", id.clone()),
                    ("client_secret", secret.clone()),
                ];
                if let Some(s) = &scope {
                    form.push(("scope", s.clone()));
                }
                http.post(&url).form(&form)
            })
            .await?;
        text(&v["access_token"]).ok_or_else(|| "OAuth token: no access_token".to_string())
    }

    /// Every device the source lists.
    pub async fn read_all(&mut self) -> Result<Vec<MdmDevice>, String> {
        match self.source.kind {
            MdmKind::Generic => self.generic().await,
            MdmKind::Fleet => self.fleet().await,
            MdmKind::Intune => self.intune().await,
            MdmKind::Jamf => self.jamf().await,
        }
    }

    async fn generic(&mut self) -> Result<Vec<MdmDevice>, String> {
        let token = self.source.token.clone().unwrap_or_default();
        let mut url = self.base.clone();
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let t = token.clone();
            let u = url.clone();
            let v = self
                .json("generic inventory", move |http| {
                    http.get(&u).bearer_auth(&t)
                })
                .await?;
            let (list, next) = match &v {
                Value::Array(a) => (a.clone(), None),
                Value::Object(_) => (
                    v["devices"]
                        .as_array()
                        .cloned()
                        .ok_or("generic inventory: no \"devices\" list")?,
                    text(&v["next"]),
                ),
                _ => return Err("generic inventory: not a JSON list".into()),
            };
            for d in &list {
                let status = text(&d["status"]).unwrap_or_else(|| "active".into());
                let state = MdmState::parse(&status)
                    .ok_or_else(|| format!("generic inventory: unknown status {status:?}"))?;
                out.push(MdmDevice {
                    serial: text(&d["serial"]),
                    udid: text(&d["udid"]),
                    state,
                    compliant: d["compliant"].as_bool(),
                    group: text(&d["group"]),
                    updated_at: time_of(&d["updated_at"]),
                });
            }
            match next {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
        Err("generic inventory: too many pages".into())
    }

    async fn fleet(&mut self) -> Result<Vec<MdmDevice>, String> {
        let token = self.source.token.clone().unwrap_or_default();
        let per_page = self.source.page_size;
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let (t, u) = (token.clone(), format!("{}/api/v1/fleet/hosts", self.base));
            let v = self
                .json("Fleet hosts", move |http| {
                    http.get(&u)
                        .query(&[
                            ("page", page.to_string()),
                            ("per_page", per_page.to_string()),
                            ("order_key", "id".into()),
                        ])
                        .bearer_auth(&t)
                })
                .await?;
            let hosts = v["hosts"]
                .as_array()
                .ok_or("Fleet hosts: no \"hosts\" list")?;
            for h in hosts {
                let mdm = &h["mdm"];
                let device_status = text(&mdm["device_status"]).unwrap_or_default();
                let enrollment = text(&mdm["enrollment_status"]).unwrap_or_default();
                let state = match device_status.as_str() {
                    "locked" | "locking" => MdmState::Lost,
                    "wiped" | "wiping" => MdmState::Wiped,
                    _ if enrollment == "Off" => MdmState::Unenrolled,
                    _ => MdmState::Active,
                };
                out.push(MdmDevice {
                    serial: text(&h["hardware_serial"]),
                    udid: text(&h["uuid"]),
                    state,
                    compliant: None,
                    group: text(&h["team_name"]),
                    updated_at: time_of(&h["detail_updated_at"]),
                });
            }
            if hosts.len() < per_page as usize {
                return Ok(out);
            }
        }
        Err("Fleet hosts: too many pages".into())
    }

    async fn intune(&mut self) -> Result<Vec<MdmDevice>, String> {
        let token_url = match (&self.source.token_url, &self.source.tenant) {
            (Some(u), _) => u.clone(),
            (None, Some(t)) => format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token"),
            (None, None) => return Err("Intune: no tenant or token_url".into()),
        };
        let token = self
            .oauth(&token_url, Some("https://graph.microsoft.com/.default"))
            .await?;
        let mut url = format!(
            "{}/v1.0/deviceManagement/managedDevices?$select=id,serialNumber,complianceState,managementState,deviceRegistrationState,deviceCategoryDisplayName,lastSyncDateTime&$top={}",
            self.base, self.source.page_size
        );
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let (t, u) = (token.clone(), url.clone());
            let v = self
                .json("Graph managedDevices", move |http| {
                    http.get(&u).bearer_auth(&t)
                })
                .await?;
            let list = v["value"]
                .as_array()
                .ok_or("Graph managedDevices: no \"value\" list")?;
            for d in list {
                let management = text(&d["managementState"]).unwrap_or_default();
                let registration = text(&d["deviceRegistrationState"]).unwrap_or_default();
                let state = match management.as_str() {
                    "wipeIssued" | "wipePending" => MdmState::Wiped,
                    "retireIssued" | "retirePending" => MdmState::Retired,
                    "deletePending" => MdmState::Unenrolled,
                    _ if registration == "revoked" => MdmState::Unenrolled,
                    _ => MdmState::Active,
                };
                let compliant = match text(&d["complianceState"]).as_deref() {
                    Some("compliant") | Some("inGracePeriod") => Some(true),
                    Some("noncompliant") => Some(false),
                    _ => None,
                };
                out.push(MdmDevice {
                    serial: text(&d["serialNumber"]),
                    udid: None,
                    state,
                    compliant,
                    group: text(&d["deviceCategoryDisplayName"]),
                    updated_at: time_of(&d["lastSyncDateTime"]),
                });
            }
            match text(&v["@odata.nextLink"]) {
                Some(next) => url = next,
                None => return Ok(out),
            }
        }
        Err("Graph managedDevices: too many pages".into())
    }

    async fn jamf(&mut self) -> Result<Vec<MdmDevice>, String> {
        let token = self
            .oauth(&format!("{}/api/oauth/token", self.base), None)
            .await?;
        let mut out = Vec::new();
        for (path, sections) in [
            ("/api/v1/computers-inventory", ["GENERAL", "HARDWARE", ""]),
            (
                "/api/v2/mobile-devices/detail",
                ["GENERAL", "HARDWARE", "SECURITY"],
            ),
        ] {
            let size = self.source.page_size as usize;
            for page in 0..MAX_PAGES {
                let (t, u) = (token.clone(), format!("{}{path}", self.base));
                let v = self
                    .json(path, move |http| {
                        let mut q: Vec<(&str, String)> = sections
                            .iter()
                            .filter(|s| !s.is_empty())
                            .map(|s| ("section", s.to_string()))
                            .collect();
                        q.push(("page", page.to_string()));
                        q.push(("page-size", size.to_string()));
                        http.get(&u).query(&q).bearer_auth(&t)
                    })
                    .await?;
                let results = v["results"]
                    .as_array()
                    .ok_or_else(|| format!("{path}: no \"results\" list"))?;
                for d in results {
                    let g = &d["general"];
                    let managed = g["remoteManagement"]["managed"]
                        .as_bool()
                        .or_else(|| g["managed"].as_bool())
                        .or_else(|| d["managed"].as_bool())
                        .unwrap_or(true);
                    let lost = d["security"]["lostModeEnabled"].as_bool().unwrap_or(false);
                    let state = match (managed, lost) {
                        (_, true) => MdmState::Lost,
                        (false, _) => MdmState::Unenrolled,
                        _ => MdmState::Active,
                    };
                    out.push(MdmDevice {
                        serial: text(&d["hardware"]["serialNumber"])
                            .or_else(|| text(&d["serialNumber"])),
                        udid: text(&d["udid"]).or_else(|| text(&g["udid"])),
                        state,
                        compliant: None,
                        group: text(&g["site"]["name"]).or_else(|| text(&g["siteName"])),
                        updated_at: time_of(&g["lastInventoryUpdate"])
                            .or_else(|| time_of(&g["lastInventoryUpdateDate"])),
                    });
                }
                let total = v["totalCount"].as_u64().unwrap_or(0) as usize;
                if results.len() < size || (page + 1) * size >= total {
                    break;
                }
            }
        }
        Ok(out)
    }
}
