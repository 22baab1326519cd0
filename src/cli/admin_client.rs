//! Client for a running server's admin API, used by CLI commands when
//! `custos serve` holds the data dir. It trusts only the data dir's own root
//! certificate and sends the token from `admin.token`; it never logs it.

use crate::ca::CaPaths;
use crate::ra::CertView;
use crate::server::admin::{
    CrlInfo, IssueBody, ListAnswer, RefreshAnswer, RevokeAnswer, RevokeBody, StatusAnswer,
};
use crate::support::files::read_named;
use crate::support::instance::{AdminToken, ServerInfo};
use anyhow::{anyhow, Context};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::time::Duration;

/// A connection to a running server.
pub struct AdminClient {
    info: ServerInfo,
    http: reqwest::Client,
    base: String,
    token: AdminToken,
}

/// How the command line names whoever runs it in the audit log:
/// `cli:<login name>`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let user: String = user
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    format!("cli:{user}")
}

impl AdminClient {
    /// Finds the server of a data dir from `server.json`, `admin.token` and `ca/root.pem`.
    pub fn for_data_dir(data_dir: &Path) -> anyhow::Result<AdminClient> {
        let info = ServerInfo::read(data_dir)?;
        let token = AdminToken::read(data_dir)?;
        let root_path = CaPaths::new(data_dir).root_cert();
        let root_pem = read_named(&root_path, "root certificate")?;
        let root = reqwest::Certificate::from_pem(&root_pem)
            .with_context(|| format!("{}: not a PEM certificate", root_path.display()))?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(root)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the admin API client")?;
        Ok(AdminClient {
            http,
            base: info.https_url.clone(),
            info,
            token,
        })
    }

    /// What the running server announced in `server.json`.
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = req
            .bearer_auth(self.token.expose())
            .header("x-custos-client", cli_actor())
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the running server at {}: {e}", self.base))?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            anyhow::bail!("server refused ({status}): {msg}");
        }
        serde_json::from_slice(&body).context("unexpected answer from the server")
    }

    /// `POST /admin/certificates`.
    pub async fn post_certificate(
        &self,
        csr_pem: String,
        profile: Option<String>,
        device: Option<String>,
    ) -> anyhow::Result<CertView> {
        let body = IssueBody {
            csr: csr_pem,
            profile,
            device,
        };
        self.send(
            self.http
                .post(format!("{}/admin/certificates", self.base))
                .json(&body),
        )
        .await
    }

    /// `GET /admin/certificates`.
    pub async fn get_certificates(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> anyhow::Result<ListAnswer> {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(a) = after {
            q.push(("after", a));
        }
        self.send(
            self.http
                .get(format!("{}/admin/certificates", self.base))
                .query(&q),
        )
        .await
    }

    /// `GET /admin/certificates/{serial}`.
    pub async fn get_certificate(&self, serial: &str) -> anyhow::Result<CertView> {
        self.send(
            self.http
                .get(format!("{}/admin/certificates/{serial}", self.base)),
        )
        .await
    }

    /// `POST /admin/revoke`.
    pub async fn post_revoke(&self, body: &RevokeBody) -> anyhow::Result<RevokeAnswer> {
        self.send(
            self.http
                .post(format!("{}/admin/revoke", self.base))
                .json(body),
        )
        .await
    }

    /// `GET /admin/status`.
    pub async fn get_status(&self) -> anyhow::Result<StatusAnswer> {
        self.send(self.http.get(format!("{}/admin/status", self.base)))
            .await
    }

    /// `POST /admin/crl/generate`.
    pub async fn post_crl_generate(&self) -> anyhow::Result<Vec<CrlInfo>> {
        self.send(
            self.http
                .post(format!("{}/admin/crl/generate", self.base))
                .timeout(Duration::from_secs(3600)),
        )
        .await
    }

    /// `POST /admin/eab`.
    pub async fn post_eab(&self, name: &str) -> anyhow::Result<crate::acme::eab::EabKey> {
        self.send(
            self.http
                .post(format!("{}/admin/eab", self.base))
                .json(&serde_json::json!({ "name": name })),
        )
        .await
    }

    /// `POST /admin/mdm/<name>/sync`.
    pub async fn post_mdm_sync(
        &self,
        name: &str,
        options: &crate::devices::sync::SyncOptions,
    ) -> anyhow::Result<crate::devices::sync::SyncReport> {
        self.send(
            self.http
                .post(format!("{}/admin/mdm/{name}/sync", self.base))
                .json(options),
        )
        .await
    }

    /// `GET /admin/mdm/status`.
    pub async fn get_mdm_status(&self) -> anyhow::Result<Vec<crate::devices::sync::SourceStatus>> {
        self.send(self.http.get(format!("{}/admin/mdm/status", self.base)))
            .await
    }

    /// `POST /admin/scep/challenges`.
    pub async fn post_scep_challenge(
        &self,
        device: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<crate::scep::NewChallenge> {
        self.send(
            self.http
                .post(format!("{}/admin/scep/challenges", self.base))
                .json(&serde_json::json!({ "device": device, "ttl_secs": ttl_secs })),
        )
        .await
    }

    /// `POST /admin/devices`.
    pub async fn post_device(
        &self,
        new: &crate::devices::NewDevice,
    ) -> anyhow::Result<crate::devices::Device> {
        self.send(
            self.http
                .post(format!("{}/admin/devices", self.base))
                .json(new),
        )
        .await
    }

    /// `POST /admin/devices/import` (CSV body).
    pub async fn post_device_import(
        &self,
        csv: Vec<u8>,
    ) -> anyhow::Result<crate::devices::ImportResult> {
        self.send(
            self.http
                .post(format!("{}/admin/devices/import", self.base))
                .header("content-type", "text/csv")
                .body(csv),
        )
        .await
    }

    /// `GET /admin/devices`.
    pub async fn get_devices(
        &self,
        after: Option<String>,
        limit: usize,
        enrolment: Option<crate::model::device::Enrolment>,
    ) -> anyhow::Result<Vec<crate::devices::Device>> {
        #[derive(serde::Deserialize)]
        struct Page {
            devices: Vec<crate::devices::Device>,
        }
        let mut query = vec![("limit", limit.to_string())];
        if let Some(a) = after {
            query.push(("after", a));
        }
        if let Some(e) = enrolment {
            query.push(("enrolment", e.name().to_string()));
        }
        let page: Page = self
            .send(
                self.http
                    .get(format!("{}/admin/devices", self.base))
                    .query(&query),
            )
            .await?;
        Ok(page.devices)
    }

    /// `GET /admin/devices/<id>`; `None` when unknown.
    pub async fn get_device(&self, id: &str) -> anyhow::Result<Option<crate::devices::Device>> {
        match self
            .send(self.http.get(format!("{}/admin/devices/{id}", self.base)))
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.to_string().contains("404") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /admin/devices/<id>/status`; `None` when unknown.
    pub async fn post_device_status(
        &self,
        id: &str,
        change: &crate::devices::StatusChange,
    ) -> anyhow::Result<Option<crate::devices::Device>> {
        match self
            .send(
                self.http
                    .post(format!("{}/admin/devices/{id}/status", self.base))
                    .json(change),
            )
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.to_string().contains("404") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /admin/devices/<id>/scep`; `None` when unknown.
    pub async fn post_device_scep(
        &self,
        id: &str,
        policy: crate::model::device::ScepPolicy,
    ) -> anyhow::Result<Option<crate::devices::Device>> {
        match self
            .send(
                self.http
                    .post(format!("{}/admin/devices/{id}/scep", self.base))
                    .json(&serde_json::json!({ "scep": policy })),
            )
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.to_string().contains("404") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /admin/audit`.
    pub async fn get_audit(
        &self,
        after: u64,
        limit: usize,
        filter: &crate::ledger::AuditFilter,
    ) -> anyhow::Result<Vec<crate::ledger::AuditEntry>> {
        #[derive(serde::Deserialize)]
        struct Page {
            entries: Vec<crate::ledger::AuditEntry>,
        }
        let mut q = vec![("after", after.to_string()), ("limit", limit.to_string())];
        for (k, v) in [
            ("kind", filter.kind.clone()),
            ("device", filter.device.clone()),
            ("serial", filter.serial.clone()),
            ("since", filter.since.map(|t| t.to_string())),
            ("until", filter.until.map(|t| t.to_string())),
        ] {
            if let Some(v) = v {
                q.push((k, v));
            }
        }
        let page: Page = self
            .send(
                self.http
                    .get(format!("{}/admin/audit", self.base))
                    .query(&q),
            )
            .await?;
        Ok(page.entries)
    }

    /// `GET /admin/audit/verify`: entries read and what is wrong.
    pub async fn get_audit_verify(&self) -> anyhow::Result<(u64, Vec<String>)> {
        #[derive(serde::Deserialize)]
        struct Answer {
            entries: u64,
            problems: Vec<String>,
        }
        let a: Answer = self
            .send(
                self.http
                    .get(format!("{}/admin/audit/verify", self.base))
                    .timeout(Duration::from_secs(24 * 3600)),
            )
            .await?;
        Ok((a.entries, a.problems))
    }

    /// `GET /admin/webhooks/outbox`.
    pub async fn get_outbox(
        &self,
        state: crate::ledger::OutboxState,
    ) -> anyhow::Result<Vec<crate::ledger::OutboxEntry>> {
        #[derive(serde::Deserialize)]
        struct Page {
            entries: Vec<crate::ledger::OutboxEntry>,
        }
        let state = match state {
            crate::ledger::OutboxState::Pending => "pending",
            crate::ledger::OutboxState::Dead => "dead",
        };
        let page: Page = self
            .send(
                self.http
                    .get(format!("{}/admin/webhooks/outbox", self.base))
                    .query(&[("state", state)]),
            )
            .await?;
        Ok(page.entries)
    }

    /// `POST /admin/webhooks/outbox/retry`.
    pub async fn post_outbox_retry(&self) -> anyhow::Result<usize> {
        #[derive(serde::Deserialize)]
        struct Answer {
            requeued: usize,
        }
        let a: Answer = self
            .send(
                self.http
                    .post(format!("{}/admin/webhooks/outbox/retry", self.base)),
            )
            .await?;
        Ok(a.requeued)
    }

    /// `GET /admin/crl`.
    pub async fn get_crl(&self) -> anyhow::Result<Vec<CrlInfo>> {
        self.send(self.http.get(format!("{}/admin/crl", self.base)))
            .await
    }

    /// `POST /admin/ocsp/refresh`.
    pub async fn post_ocsp_refresh(&self) -> anyhow::Result<RefreshAnswer> {
        self.send(
            self.http
                .post(format!("{}/admin/ocsp/refresh", self.base))
                .timeout(Duration::from_secs(3600)),
        )
        .await
    }

    /// `POST /admin/ledger/verify` (may take long on a large ledger).
    pub async fn post_ledger_verify(
        &self,
    ) -> anyhow::Result<crate::maintenance::verify::VerifyReport> {
        self.send(
            self.http
                .post(format!("{}/admin/ledger/verify", self.base))
                .timeout(Duration::from_secs(24 * 3600)),
        )
        .await
    }

    /// `POST /admin/replication/resync`: certificates published.
    pub async fn post_replication_resync(&self) -> anyhow::Result<u64> {
        #[derive(serde::Deserialize)]
        struct Answer {
            published: u64,
        }
        let a: Answer = self
            .send(
                self.http
                    .post(format!("{}/admin/replication/resync", self.base))
                    .timeout(Duration::from_secs(24 * 3600)),
            )
            .await?;
        Ok(a.published)
    }

    /// `POST /admin/responders/tokens`: a join token.
    pub async fn post_responder_token(&self, name: &str) -> anyhow::Result<String> {
        #[derive(serde::Deserialize)]
        struct Answer {
            token: String,
        }
        let a: Answer = self
            .send(
                self.http
                    .post(format!("{}/admin/responders/tokens", self.base))
                    .json(&serde_json::json!({ "name": name })),
            )
            .await?;
        Ok(a.token)
    }

    /// `POST /admin/responders/revoke`: cuts a responder off.
    pub async fn post_responder_revoke(
        &self,
        name: &str,
        reason: crate::revocation::Reason,
    ) -> anyhow::Result<crate::replication::enroll::RevokedResponder> {
        self.send(
            self.http
                .post(format!("{}/admin/responders/revoke", self.base))
                .json(&serde_json::json!({ "name": name, "reason": reason.name() })),
        )
        .await
    }

    /// `POST /admin/backup`: the server writes the backup to `out`.
    pub async fn post_backup(
        &self,
        out: &Path,
    ) -> anyhow::Result<crate::maintenance::backup::BackupManifest> {
        self.send(
            self.http
                .post(format!("{}/admin/backup", self.base))
                .json(&serde_json::json!({ "out": out }))
                .timeout(Duration::from_secs(24 * 3600)),
        )
        .await
    }
}
