//! What the commands ask of a data dir, as one trait ([`Operations`]) with
//! two implementations: [`Local`], in this process, when no server holds
//! the ledger; and the admin API client (`ops_remote`), when `custos
//! serve` does. The commands are written once, against the trait, and
//! print the same whichever path served them. Both paths audit the same
//! entries (the server's admin handlers audit what the client asks).

use crate::acme::eab::EabKey;
use crate::app::App;
use crate::cli::admin_client::cli_actor;
use crate::devices::{ops, Device, ImportResult, NewDevice, StatusChange};
use crate::ledger::{AuditEntry, AuditFilter, OutboxEntry, OutboxState};
use crate::maintenance::backup::BackupManifest;
use crate::maintenance::verify::VerifyReport;
use crate::model::time::{rfc3339, unix_now};
use crate::ra::{CertView, RevokeResult};
use crate::replication::enroll::RevokedResponder;
use crate::revocation::Reason;
use crate::serial::Serial;
use crate::server::admin::{CrlInfo, StatusAnswer};
use crate::support::instance::ServerInfo;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::time::Duration;

/// What `custos revoke` names.
pub(crate) enum RevokeTarget {
    /// One certificate.
    Serial(Serial),
    /// Every unexpired certificate of a device.
    Device(String),
}

/// The operations on a data dir the command line offers. `bar` arguments
/// show progress on the terminal (a bar when the work is counted here, a
/// spinner while a server does it).
pub(crate) trait Operations {
    /// The running server this goes through, if any.
    fn server(&self) -> Option<ServerInfo>;
    /// `custos issue`: a certificate from a CSR (DER or PEM).
    async fn issue(
        &self,
        csr: &[u8],
        profile: Option<String>,
        device: Option<String>,
    ) -> anyhow::Result<CertView>;
    /// `custos certs list`.
    async fn certificates(
        &self,
        after: Option<Serial>,
        limit: usize,
    ) -> anyhow::Result<Vec<CertView>>;
    /// `custos certs show`.
    async fn certificate(&self, serial: &Serial) -> anyhow::Result<CertView>;
    /// `custos revoke`.
    async fn revoke(
        &self,
        what: &RevokeTarget,
        reason: Reason,
    ) -> anyhow::Result<Vec<RevokeResult>>;
    /// `custos status`.
    async fn status(&self) -> anyhow::Result<StatusAnswer>;
    /// `custos crl generate`.
    async fn crl_generate(&self) -> anyhow::Result<Vec<CrlInfo>>;
    /// `custos crl show`.
    async fn crl_show(&self) -> anyhow::Result<Vec<CrlInfo>>;
    /// `custos ocsp refresh`: how many certificates were re-signed.
    async fn ocsp_refresh(&self, bar: &ProgressBar) -> anyhow::Result<u64>;
    /// `custos eab create`.
    async fn eab_create(&self, name: &str) -> anyhow::Result<EabKey>;
    /// `custos mdm sync`.
    async fn mdm_sync(
        &self,
        name: &str,
        options: crate::devices::sync::SyncOptions,
        bar: &ProgressBar,
    ) -> anyhow::Result<crate::devices::sync::SyncReport>;
    /// `custos mdm status`.
    async fn mdm_status(&self) -> anyhow::Result<Vec<crate::devices::sync::SourceStatus>>;
    /// `custos scep challenge`.
    async fn scep_challenge(
        &self,
        device: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<crate::scep::NewChallenge>;
    /// `custos devices add`.
    async fn device_add(&self, new: NewDevice) -> anyhow::Result<Device>;
    /// `custos devices import`.
    async fn device_import(&self, csv: Vec<u8>) -> anyhow::Result<ImportResult>;
    /// `custos devices list`.
    async fn devices(
        &self,
        after: Option<String>,
        limit: usize,
        enrolment: Option<crate::model::device::Enrolment>,
    ) -> anyhow::Result<Vec<Device>>;
    /// `custos devices set-scep`.
    async fn device_set_scep(
        &self,
        id: &str,
        policy: crate::model::device::ScepPolicy,
    ) -> anyhow::Result<Option<Device>>;
    /// `custos devices show`.
    async fn device(&self, id: &str) -> anyhow::Result<Option<Device>>;
    /// `custos devices set-status`.
    async fn device_set_status(
        &self,
        id: &str,
        change: StatusChange,
    ) -> anyhow::Result<Option<Device>>;
    /// `custos audit`.
    async fn audit(
        &self,
        after: u64,
        limit: usize,
        filter: &AuditFilter,
    ) -> anyhow::Result<Vec<AuditEntry>>;
    /// `custos audit verify`: entries read and what is wrong.
    async fn audit_verify(&self) -> anyhow::Result<(u64, Vec<String>)>;
    /// `custos webhooks outbox`.
    async fn outbox(&self, state: OutboxState) -> anyhow::Result<Vec<OutboxEntry>>;
    /// `custos webhooks outbox --retry-dead`: how many were queued again.
    async fn outbox_retry(&self) -> anyhow::Result<usize>;
    /// `custos ledger verify`.
    async fn ledger_verify(&self, bar: &ProgressBar) -> anyhow::Result<VerifyReport>;
    /// `custos backup`.
    async fn backup(&self, out: &Path) -> anyhow::Result<BackupManifest>;
    /// `custos replication resync`: how many certificates were published.
    async fn replication_resync(&self, bar: &ProgressBar) -> anyhow::Result<u64>;
    /// `custos responder token create`: the printable join token.
    async fn responder_token(&self, name: &str) -> anyhow::Result<String>;
    /// `custos responder revoke`.
    async fn responder_revoke(
        &self,
        name: &str,
        reason: Reason,
    ) -> anyhow::Result<RevokedResponder>;
}

/// The data dir opened in this process (no server holds it).
pub(crate) struct Local(pub(crate) Box<App>);

/// A counted progress bar of `total` certificates.
fn counted(bar: &ProgressBar, total: u64) {
    bar.set_length(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} certificates ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
}

/// A spinner while the server works.
pub(super) fn spinning(bar: &ProgressBar, message: &'static str) {
    bar.set_style(ProgressStyle::default_spinner());
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
}

impl Operations for Local {
    fn server(&self) -> Option<ServerInfo> {
        None
    }

    async fn issue(
        &self,
        csr: &[u8],
        profile: Option<String>,
        device: Option<String>,
    ) -> anyhow::Result<CertView> {
        let now = unix_now();
        let issued = self.0.authority.issue_csr_for_device(
            csr,
            profile.as_deref(),
            device.as_deref(),
            &cli_actor(),
            now,
        )?;
        Ok(CertView::new(&issued.record, now, Some(&issued.der)))
    }

    async fn certificates(
        &self,
        after: Option<Serial>,
        limit: usize,
    ) -> anyhow::Result<Vec<CertView>> {
        Ok(self.0.authority.list(after.as_ref(), limit, unix_now())?)
    }

    async fn certificate(&self, serial: &Serial) -> anyhow::Result<CertView> {
        Ok(self.0.authority.show(serial, unix_now())?)
    }

    async fn revoke(
        &self,
        what: &RevokeTarget,
        reason: Reason,
    ) -> anyhow::Result<Vec<RevokeResult>> {
        let (actor, now) = (cli_actor(), unix_now());
        let ra = &self.0.authority;
        Ok(match what {
            RevokeTarget::Serial(s) => vec![ra.revoke_serial(s, reason, Some(&actor), now)?],
            RevokeTarget::Device(d) => ra.revoke_device(d, reason, Some(&actor), now)?,
        })
    }

    async fn status(&self) -> anyhow::Result<StatusAnswer> {
        let app = &self.0;
        Ok(StatusAnswer {
            certificates: app.ledger.count()?,
            revocation_events: app.ledger.next_revocation_seq()?,
            issuer_id: app.ca.issuer_id().to_string(),
            root_fingerprint: app.ca.root_fingerprint(),
            ocsp_signer_not_after: rfc3339(app.ca.ocsp_signer().not_after),
        })
    }

    async fn crl_generate(&self) -> anyhow::Result<Vec<CrlInfo>> {
        let app = &self.0;
        let made = app.crl.generate_all(unix_now())?;
        app.authority.audit(
            &cli_actor(),
            "crl.generate",
            serde_json::json!({"shards": made.iter().map(|c| c.shard).collect::<Vec<_>>(), "numbers": made.iter().map(|c| c.number).collect::<Vec<_>>(), "outcome": "signed"}),
            unix_now(),
        );
        Ok(made.iter().map(|c| CrlInfo::new(app, c)).collect())
    }

    async fn crl_show(&self) -> anyhow::Result<Vec<CrlInfo>> {
        let app = &self.0;
        Ok((0..app.crl.shard_count())
            .filter_map(|s| app.crl.current(s))
            .map(|c| CrlInfo::new(app, &c))
            .collect())
    }

    async fn ocsp_refresh(&self, bar: &ProgressBar) -> anyhow::Result<u64> {
        let app = &self.0;
        counted(bar, app.ledger.count()?);
        let done = app
            .responder
            .refresh_all(unix_now(), |n| bar.set_position(n))?;
        app.authority.audit(
            &cli_actor(),
            "ocsp.refresh",
            serde_json::json!({"refreshed": done, "outcome": "signed"}),
            unix_now(),
        );
        Ok(done as u64)
    }

    async fn mdm_sync(
        &self,
        name: &str,
        options: crate::devices::sync::SyncOptions,
        bar: &ProgressBar,
    ) -> anyhow::Result<crate::devices::sync::SyncReport> {
        spinning(bar, "reading the MDM's inventory…");
        let report = self.0.mdm_sync.sync(name, options).await?;
        crate::devices::sync::audit(&self.0.authority, &cli_actor(), name, options, &report);
        Ok(report)
    }

    async fn mdm_status(&self) -> anyhow::Result<Vec<crate::devices::sync::SourceStatus>> {
        self.0.mdm_sync.status()
    }

    async fn scep_challenge(
        &self,
        device: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<crate::scep::NewChallenge> {
        let app = &self.0;
        let c = crate::scep::create_challenge(&app.ledger, Some(device), ttl_secs, unix_now())?;
        crate::scep::audit_create(&app.authority, &cli_actor(), &c, unix_now());
        Ok(c)
    }

    async fn eab_create(&self, name: &str) -> anyhow::Result<EabKey> {
        let app = &self.0;
        let secret = crate::acme::eab::EabSecret::ensure(&app.config.data_dir)?;
        let key = crate::acme::eab::create(&app.ledger, &secret, name, unix_now())?;
        crate::acme::eab::audit_create(&app.authority, &cli_actor(), &key, unix_now());
        Ok(key)
    }

    async fn device_add(&self, new: NewDevice) -> anyhow::Result<Device> {
        let d = ops::add(&self.0.ledger, new, unix_now())?;
        ops::audit_add(&self.0.authority, &cli_actor(), &d, unix_now());
        Ok(d)
    }

    async fn device_import(&self, csv: Vec<u8>) -> anyhow::Result<ImportResult> {
        let r = ops::import(&self.0.ledger, &csv, unix_now())?;
        self.0.authority.audit(
            &cli_actor(),
            "device",
            serde_json::json!({"action": "import", "imported": r.imported, "added": r.added, "outcome": "imported"}),
            unix_now(),
        );
        Ok(r)
    }

    async fn devices(
        &self,
        after: Option<String>,
        limit: usize,
        enrolment: Option<crate::model::device::Enrolment>,
    ) -> anyhow::Result<Vec<Device>> {
        Ok(self
            .0
            .ledger
            .list_devices_where(after.as_deref(), limit, |d| {
                enrolment.is_none() || d.enrolment == enrolment
            })?)
    }

    async fn device_set_scep(
        &self,
        id: &str,
        policy: crate::model::device::ScepPolicy,
    ) -> anyhow::Result<Option<Device>> {
        let d = self.0.ledger.set_device_scep(id, policy, unix_now())?;
        if let Some(d) = &d {
            ops::audit_scep(&self.0.authority, &cli_actor(), d, unix_now());
        }
        Ok(d)
    }

    async fn device(&self, id: &str) -> anyhow::Result<Option<Device>> {
        Ok(self.0.ledger.device(id)?)
    }

    async fn device_set_status(
        &self,
        id: &str,
        change: StatusChange,
    ) -> anyhow::Result<Option<Device>> {
        let d = self
            .0
            .ledger
            .set_device_status(id, change.status, change.compliant, unix_now())?;
        if let Some(d) = &d {
            ops::audit_status(&self.0.authority, &cli_actor(), d, unix_now());
        }
        Ok(d)
    }

    async fn audit(
        &self,
        after: u64,
        limit: usize,
        filter: &AuditFilter,
    ) -> anyhow::Result<Vec<AuditEntry>> {
        Ok(self.0.ledger.audit_filtered(after, limit, filter)?)
    }

    async fn audit_verify(&self) -> anyhow::Result<(u64, Vec<String>)> {
        Ok(self.0.ledger.verify_audit()?)
    }

    async fn outbox(&self, state: OutboxState) -> anyhow::Result<Vec<OutboxEntry>> {
        Ok(self
            .0
            .ledger
            .outbox(state, crate::server::admin::MAX_PAGE)?)
    }

    async fn outbox_retry(&self) -> anyhow::Result<usize> {
        let n = self.0.ledger.retry_dead_notifications(unix_now())?;
        self.0.authority.audit(
            &cli_actor(),
            "outbox.retry",
            serde_json::json!({"requeued": n, "outcome": "requeued"}),
            unix_now(),
        );
        Ok(n)
    }

    async fn ledger_verify(&self, bar: &ProgressBar) -> anyhow::Result<VerifyReport> {
        counted(bar, self.0.ledger.count()?);
        crate::maintenance::verify::verify(self.0.verify_sources(), unix_now(), |n| {
            bar.set_position(n)
        })
    }

    async fn backup(&self, out: &Path) -> anyhow::Result<BackupManifest> {
        let app = &self.0;
        let m =
            crate::maintenance::backup::backup(&app.ledger, &app.config.data_dir, out, unix_now())?;
        app.authority.audit(
            &cli_actor(),
            "backup",
            serde_json::json!({"out": out.display().to_string(), "certificates": m.certificates, "outcome": "written"}),
            unix_now(),
        );
        Ok(m)
    }

    async fn replication_resync(&self, bar: &ProgressBar) -> anyhow::Result<u64> {
        let app = &self.0;
        let Some(publisher) = &app.replication else {
            anyhow::bail!("replication is off: set [replication] redis = [\"redis://host:port\"] in the configuration");
        };
        counted(bar, app.ledger.count()?);
        let mut conn = publisher.connect().await?;
        let done = publisher.resync(&mut conn, |n| bar.set_position(n)).await?;
        app.authority.audit(
            &cli_actor(),
            "replication.resync",
            serde_json::json!({"published": done, "outcome": "published"}),
            unix_now(),
        );
        Ok(done)
    }

    async fn responder_token(&self, name: &str) -> anyhow::Result<String> {
        let app = &self.0;
        let token = crate::replication::enroll::create_token(
            &app.ledger,
            &app.ca,
            &app.authority,
            &app.config.https_base(None),
            name,
            &cli_actor(),
            unix_now(),
        )?;
        Ok(token.encode())
    }

    async fn responder_revoke(
        &self,
        name: &str,
        reason: Reason,
    ) -> anyhow::Result<RevokedResponder> {
        let app = &self.0;
        Ok(crate::replication::enroll::revoke(
            &app.authority,
            name,
            reason,
            &cli_actor(),
            unix_now(),
        )?)
    }
}
