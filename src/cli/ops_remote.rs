//! [`Operations`] served by a running server: each command through the
//! admin API client ([`AdminClient`]), whose handlers audit what it asks.

use super::ops::{spinning, Operations, RevokeTarget};
use crate::acme::eab::EabKey;
use crate::cli::admin_client::AdminClient;
use crate::devices::{Device, ImportResult, NewDevice, StatusChange};
use crate::ledger::{AuditEntry, AuditFilter, OutboxEntry, OutboxState};
use crate::maintenance::backup::BackupManifest;
use crate::maintenance::verify::VerifyReport;
use crate::ra::{CertView, RevokeResult};
use crate::replication::enroll::RevokedResponder;
use crate::revocation::Reason;
use crate::serial::Serial;
use crate::server::admin::{CrlInfo, RevokeBody, StatusAnswer};
use crate::support::instance::ServerInfo;
use indicatif::ProgressBar;
use std::path::Path;

/// Through the running server's admin API (which audits what it does).
impl Operations for AdminClient {
    fn server(&self) -> Option<ServerInfo> {
        Some(self.info().clone())
    }

    async fn issue(
        &self,
        csr: &[u8],
        profile: Option<String>,
        device: Option<String>,
    ) -> anyhow::Result<CertView> {
        let text = String::from_utf8(csr.to_vec())
            .unwrap_or_else(|_| crate::ca::build::der_to_csr_pem(csr));
        self.post_certificate(text, profile, device).await
    }

    async fn certificates(
        &self,
        after: Option<Serial>,
        limit: usize,
    ) -> anyhow::Result<Vec<CertView>> {
        Ok(self
            .get_certificates(after.map(|s| s.to_hex()), limit)
            .await?
            .certificates)
    }

    async fn certificate(&self, serial: &Serial) -> anyhow::Result<CertView> {
        self.get_certificate(&serial.to_hex()).await
    }

    async fn revoke(
        &self,
        what: &RevokeTarget,
        reason: Reason,
    ) -> anyhow::Result<Vec<RevokeResult>> {
        let (serial, device) = match what {
            RevokeTarget::Serial(s) => (Some(s.to_hex()), None),
            RevokeTarget::Device(d) => (None, Some(d.clone())),
        };
        let body = RevokeBody {
            serial,
            device,
            reason: Some(reason.name().to_string()),
        };
        Ok(self.post_revoke(&body).await?.revoked)
    }

    async fn status(&self) -> anyhow::Result<StatusAnswer> {
        self.get_status().await
    }

    async fn crl_generate(&self) -> anyhow::Result<Vec<CrlInfo>> {
        self.post_crl_generate().await
    }

    async fn crl_show(&self) -> anyhow::Result<Vec<CrlInfo>> {
        self.get_crl().await
    }

    async fn ocsp_refresh(&self, bar: &ProgressBar) -> anyhow::Result<u64> {
        spinning(bar, "re-signing on the running server…");
        Ok(self.post_ocsp_refresh().await?.refreshed as u64)
    }

    async fn eab_create(&self, name: &str) -> anyhow::Result<EabKey> {
        self.post_eab(name).await
    }

    async fn scep_challenge(
        &self,
        device: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<crate::scep::NewChallenge> {
        self.post_scep_challenge(device, ttl_secs).await
    }

    async fn mdm_sync(
        &self,
        name: &str,
        options: crate::devices::sync::SyncOptions,
        bar: &ProgressBar,
    ) -> anyhow::Result<crate::devices::sync::SyncReport> {
        spinning(bar, "the running server is reading the MDM's inventory…");
        self.post_mdm_sync(name, &options).await
    }

    async fn mdm_status(&self) -> anyhow::Result<Vec<crate::devices::sync::SourceStatus>> {
        self.get_mdm_status().await
    }

    async fn device_add(&self, new: NewDevice) -> anyhow::Result<Device> {
        self.post_device(&new).await
    }

    async fn device_import(&self, csv: Vec<u8>) -> anyhow::Result<ImportResult> {
        self.post_device_import(csv).await
    }

    async fn devices(
        &self,
        after: Option<String>,
        limit: usize,
        enrolment: Option<crate::model::device::Enrolment>,
    ) -> anyhow::Result<Vec<Device>> {
        self.get_devices(after, limit, enrolment).await
    }

    async fn device_set_scep(
        &self,
        id: &str,
        policy: crate::model::device::ScepPolicy,
    ) -> anyhow::Result<Option<Device>> {
        self.post_device_scep(id, policy).await
    }

    async fn device(&self, id: &str) -> anyhow::Result<Option<Device>> {
        self.get_device(id).await
    }

    async fn device_set_status(
        &self,
        id: &str,
        change: StatusChange,
    ) -> anyhow::Result<Option<Device>> {
        self.post_device_status(id, &change).await
    }

    async fn audit(
        &self,
        after: u64,
        limit: usize,
        filter: &AuditFilter,
    ) -> anyhow::Result<Vec<AuditEntry>> {
        self.get_audit(after, limit, filter).await
    }

    async fn audit_verify(&self) -> anyhow::Result<(u64, Vec<String>)> {
        self.get_audit_verify().await
    }

    async fn outbox(&self, state: OutboxState) -> anyhow::Result<Vec<OutboxEntry>> {
        self.get_outbox(state).await
    }

    async fn outbox_retry(&self) -> anyhow::Result<usize> {
        self.post_outbox_retry().await
    }

    async fn ledger_verify(&self, bar: &ProgressBar) -> anyhow::Result<VerifyReport> {
        spinning(bar, "verifying on the running server…");
        self.post_ledger_verify().await
    }

    async fn backup(&self, out: &Path) -> anyhow::Result<BackupManifest> {
        self.post_backup(out).await
    }

    async fn replication_resync(&self, bar: &ProgressBar) -> anyhow::Result<u64> {
        spinning(bar, "publishing to Redis from the running server…");
        self.post_replication_resync().await
    }

    async fn responder_token(&self, name: &str) -> anyhow::Result<String> {
        self.post_responder_token(name).await
    }

    async fn responder_revoke(
        &self,
        name: &str,
        reason: Reason,
    ) -> anyhow::Result<RevokedResponder> {
        self.post_responder_revoke(name, reason).await
    }
}
