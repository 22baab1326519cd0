//! MDM webhooks in the domain: check a source's configuration and
//! credentials, parse its payload (`custos-webhooks`), record each event
//! durably (idempotent by event id) before the HTTP answer, then act on it:
//! revoke every unexpired certificate of the device (OCSP re-signed in the
//! same write, CRL shard within a second), update the device's status, and
//! write the audit log. Events accepted before a crash are finished at start.

use crate::config::{Config, MdmLookupConfig, WebhookReasons, WebhookSource};
use crate::devices::DeviceStatus;
use crate::ledger::{AuditEntry, Ledger, Recorded, StoredEvent};
use crate::ra::Authority;
use crate::revocation::Reason;
use custos_webhooks::{auth, parse, standard, DeviceEvent, DeviceEventKind, Parsed};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// MDM device events: the one service the webhook listener calls. It
/// authenticates a delivery, parses it, records its events durably, and
/// (after the answer) processes them; it also finishes events left pending
/// by a crash or an unreachable MDM API.
pub struct DeviceEvents {
    ledger: Arc<Ledger>,
    authority: Authority,
    sources: BTreeMap<String, WebhookSource>,
    reasons: WebhookReasons,
    /// `acme.device_attest.mdm`: the Jamf Pro API a `jamf` source without
    /// its own credentials resolves device ids through.
    mdm: MdmLookupConfig,
    /// Record events but leave their processing to the next start (the
    /// hidden `serve --hold-device-events`, for tests).
    held: AtomicBool,
}

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Checks what only the webhooks protocol can judge in a `[webhooks.<name>]`
/// table (the configuration checked the rest when it was loaded): every
/// Standard Webhooks secret parses.
pub fn check_source(w: &WebhookSource) -> Result<(), String> {
    if let WebhookSource::Standard { secrets, .. } = w {
        for s in secrets {
            standard::Secret::parse(s)?;
        }
    }
    Ok(())
}

/// What the HTTP front hands over.
pub struct Delivery<'a> {
    /// Header lookup (lower-case names).
    pub header: &'a dyn Fn(&str) -> Option<String>,
    /// `?token=` in the URL.
    pub query_token: Option<&'a str>,
    /// The sender's address.
    pub peer: Option<IpAddr>,
    /// The raw body.
    pub body: &'a [u8],
    /// Now (Unix seconds).
    pub now: u64,
}

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No such source (404).
    #[error("{0}")]
    UnknownSource(String),
    /// Bad or missing credentials (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Unreadable payload (400).
    #[error("{0}")]
    Malformed(String),
    /// An id already used by another body (409).
    #[error("{0}")]
    Conflict(String),
    /// Our failure (500).
    #[error("{0}")]
    Internal(String),
}

impl std::fmt::Debug for Delivery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Delivery({} bytes from {:?})",
            self.body.len(),
            self.peer
        )
    }
}

/// Authenticates a delivery for source `w`.
pub fn authenticate(w: &WebhookSource, d: &Delivery<'_>) -> Result<(), Refusal> {
    let no = |why: &str| Err(Refusal::Unauthenticated(why.to_string()));
    let allowed_ips = w.allowed_ips();
    if !allowed_ips.is_empty() {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d;
        // compare it as the IPv4 address it is.
        let peer = d.peer.map(|ip| ip.to_canonical());
        let allowed = peer.is_some_and(|ip| allowed_ips.iter().any(|r| r.contains(&ip)));
        if !allowed {
            return no("source address not allowed");
        }
    }
    let header = d.header;
    let ok = match w {
        WebhookSource::Standard { secrets, .. } => {
            let secrets: Vec<standard::Secret> = secrets
                .iter()
                .filter_map(|s| standard::Secret::parse(s).ok())
                .collect();
            return standard::verify(
                &secrets,
                header("webhook-id").as_deref(),
                header("webhook-timestamp").as_deref(),
                header("webhook-signature").as_deref(),
                d.body,
                d.now,
            )
            .map_err(|e| Refusal::Unauthenticated(e.to_string()));
        }
        WebhookSource::NanoMdm { hmac_key, .. } => auth::nanomdm_hmac(
            hmac_key.as_bytes(),
            header("x-hmac-signature").as_deref(),
            d.body,
        ),
        WebhookSource::Jamf {
            username,
            password,
            header_name,
            header_value,
            ..
        } => match (username, password, header_name, header_value) {
            (Some(u), Some(p), _, _) if auth::basic(header("authorization").as_deref(), u, p) => {
                true
            }
            (_, _, Some(n), Some(v)) => {
                header(&n.to_ascii_lowercase()).is_some_and(|h| auth::same_secret(h.trim(), v))
            }
            _ => false,
        },
        WebhookSource::MicroMdm { token, .. } | WebhookSource::Fleet { token, .. } => {
            auth::token(header("authorization").as_deref(), d.query_token, token)
        }
    };
    if ok {
        Ok(())
    } else {
        no("missing or wrong credentials")
    }
}

/// Parses a delivery of source `name`.
pub fn parse_delivery(
    name: &str,
    w: &WebhookSource,
    d: &Delivery<'_>,
) -> Result<Vec<Parsed>, Refusal> {
    let bad = |e: parse::ParseError| Refusal::Malformed(e.0);
    match w {
        WebhookSource::Standard { .. } => {
            let id = (d.header)("webhook-id").unwrap_or_default();
            parse::standard(name, &id, d.body, d.now).map_err(bad)
        }
        WebhookSource::Jamf { smart_groups, .. } => {
            parse::jamf(name, d.body, smart_groups, d.now).map_err(bad)
        }
        WebhookSource::NanoMdm { .. } | WebhookSource::MicroMdm { .. } => {
            parse::nanomdm(name, d.body, d.now).map_err(bad)
        }
        WebhookSource::Fleet { .. } => parse::fleet(name, d.body, d.now).map_err(bad),
    }
}

/// What accepting a delivery did.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Events newly recorded (to process now).
    pub new: Vec<DeviceEvent>,
    /// Duplicates seen.
    pub duplicates: usize,
    /// Ignored payloads (with why).
    pub ignored: Vec<String>,
    /// New events naming no device custos knows (inventory or certificates).
    pub unknown_devices: usize,
}

impl std::fmt::Debug for DeviceEvents {
    // Names only: the sources hold credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceEvents")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("held", &self.held())
            .finish()
    }
}

impl DeviceEvents {
    /// The service for `config`'s webhook sources, reasons and MDM.
    pub fn new(ledger: Arc<Ledger>, authority: Authority, config: &Config) -> DeviceEvents {
        DeviceEvents {
            ledger,
            authority,
            sources: config.webhooks.clone(),
            reasons: config.webhook_reasons.clone(),
            mdm: config.acme.device_attest.mdm.clone(),
            held: AtomicBool::new(false),
        }
    }

    /// From now on, record events without processing them (they are
    /// finished at the next start): how tests stop a server between the
    /// answer and the processing.
    pub fn hold(&self) {
        self.held.store(true, Ordering::Relaxed);
    }

    /// Whether events are held (see [`DeviceEvents::hold`]).
    pub fn held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes one delivery to source `name`: authenticates it, parses it and
    /// records its events durably (synced writes: call it where blocking is
    /// fine). The caller answers, then hands [`Accepted::new`] to
    /// [`DeviceEvents::process_new`].
    pub fn receive(&self, name: &str, delivery: &Delivery<'_>) -> Result<Accepted, Refusal> {
        let source = self
            .sources
            .get(name)
            .ok_or_else(|| Refusal::UnknownSource(format!("no webhook source {name:?}")))?;
        authenticate(source, delivery)?;
        let parsed = parse_delivery(name, source, delivery)?;
        self.accept(parsed, delivery.body, delivery.now)
    }

    /// Records events made here (an inventory sync's changes) durably, then
    /// processes them as webhook events are: the same revocations, device
    /// updates, audit and notifications. Returns how many were new.
    pub fn record_and_process(&self, events: Vec<DeviceEvent>, now: u64) -> anyhow::Result<usize> {
        let mut new = Vec::new();
        for event in events {
            let body = serde_json::to_vec(&event)?;
            let stored = StoredEvent {
                body_sha256: crate::model::sha256_hex(&body),
                event: event.clone(),
                received_at: now,
                state: "pending".into(),
                outcome: None,
            };
            if self.ledger.record_event(&stored)? == Recorded::New {
                new.push(event);
            }
        }
        self.process_new(&new, now);
        Ok(new.len())
    }

    /// Processes newly recorded events (unless held); a failure leaves the
    /// event pending for the retry job.
    pub fn process_new(&self, events: &[DeviceEvent], now: u64) {
        if self.held() {
            return;
        }
        for e in events {
            if let Err(err) = self.process(e, now) {
                tracing::error!(event_id = %e.event_id, error = %err, "device event processing failed; retried every minute and at start");
            }
        }
    }

    /// Whether an event names a device in the inventory or on a certificate
    /// (a Fleet host id counts when the Fleet API can be asked).
    fn names_known_device(&self, event: &DeviceEvent) -> bool {
        let known = |id: &String| {
            self.ledger.device(id).ok().flatten().is_some()
                || self
                    .ledger
                    .serials_by_device(id)
                    .is_ok_and(|s| !s.is_empty())
        };
        if [&event.serial, &event.udid]
            .into_iter()
            .flatten()
            .any(known)
        {
            return true;
        }
        event.serial.is_none()
            && event.udid.is_none()
            && event.mdm_id.is_some()
            && self.sources.get(&event.source).is_some_and(|w| match w {
                WebhookSource::Fleet { api_url, .. } => api_url.is_some(),
                WebhookSource::Jamf { .. } => self.jamf_api(w).is_some(),
                _ => false,
            })
    }

    /// The Jamf Pro API a `jamf` source resolves device ids through: its own
    /// `api_url`/`client_id`/`client_secret`, else `acme.device_attest.mdm`
    /// when that is a Jamf Pro server.
    fn jamf_api(&self, w: &WebhookSource) -> Option<(String, String, String)> {
        if let WebhookSource::Jamf {
            api_url: Some(u),
            client_id: Some(id),
            client_secret: Some(secret),
            ..
        } = w
        {
            return Some((u.clone(), id.clone(), secret.clone()));
        }
        let m = &self.mdm;
        match (m.kind.as_deref(), &m.client_id, &m.client_secret) {
            (Some("jamf"), Some(id), Some(secret)) if !m.url.is_empty() => {
                Some((m.url.clone(), id.clone(), secret.clone()))
            }
            _ => None,
        }
    }

    /// Records a delivery's events durably (synced); learns pairings.
    fn accept(&self, parsed: Vec<Parsed>, body: &[u8], now: u64) -> Result<Accepted, Refusal> {
        let internal = |e: crate::ledger::LedgerError| Refusal::Internal(e.to_string());
        let mut out = Accepted::default();
        let hash = crate::model::sha256_hex(body);
        for p in parsed {
            match p {
                Parsed::Event(event) => {
                    let stored = StoredEvent {
                        event: event.clone(),
                        body_sha256: hash.clone(),
                        received_at: now,
                        state: "pending".into(),
                        outcome: None,
                    };
                    match self.ledger.record_event(&stored).map_err(internal)? {
                        Recorded::New => {
                            if !self.names_known_device(&event) {
                                out.unknown_devices += 1;
                            }
                            out.new.push(event)
                        }
                        Recorded::Duplicate => out.duplicates += 1,
                        Recorded::Conflict => {
                            return Err(Refusal::Conflict(format!(
                                "event id {} was already delivered with a different body",
                                event.event_id
                            )))
                        }
                    }
                }
                Parsed::Pairing { serial, udid } => {
                    self.ledger
                        .learn_udid(&serial, &udid, now)
                        .map_err(internal)?;
                    out.ignored.push("serial/UDID pairing learned".into());
                }
                Parsed::Ignored(why) => out.ignored.push(why),
            }
        }
        Ok(out)
    }

    fn reason_for(&self, kind: DeviceEventKind) -> Option<Reason> {
        let r = &self.reasons;
        match kind {
            DeviceEventKind::Lost => Some(r.lost),
            DeviceEventKind::Wiped => Some(r.wiped),
            DeviceEventKind::Unenrolled => Some(r.unenrolled),
            DeviceEventKind::Deleted => Some(r.deleted),
            DeviceEventKind::NonCompliant => Some(r.noncompliant),
            _ => None,
        }
    }

    /// Acts on one recorded event and marks it done: revokes the device's
    /// certificates (for lost, wiped, unenrolled, deleted, noncompliant),
    /// updates the device, writes the audit log. Returns the outcome text.
    pub fn process(&self, event: &DeviceEvent, now: u64) -> anyhow::Result<String> {
        self.process_resumed(event, now, None)
    }

    /// [`process`] for an event accepted at `resumed_since` and perhaps
    /// partly processed before a crash: certificates it finds already revoked
    /// since then are audited as its revocations (the crash lost their audit
    /// entries along with the event's end).
    fn process_resumed(
        &self,
        event: &DeviceEvent,
        now: u64,
        resumed_since: Option<u64>,
    ) -> anyhow::Result<String> {
        let looked_up = self.mdm_serial(event)?;
        let ids: Vec<&String> = [&event.serial, &event.udid, &looked_up]
            .into_iter()
            .flatten()
            .collect();
        let device = ids
            .iter()
            .find_map(|id| self.ledger.device(id).ok().flatten());
        // One device's events are processed one at a time, and each event
        // once: the delivery's own processing and the retry job may both pick
        // up a pending event; whoever comes second finds it done.
        let lock_key = device
            .as_ref()
            .map(|d| d.serial.clone())
            .or_else(|| ids.first().map(|s| crate::ledger::normalize_device_id(s)))
            .unwrap_or_else(|| event.event_id.clone());
        let _one_at_a_time = crate::devices::device_lock(&lock_key);
        if !self.ledger.event_pending(&event.source, &event.event_id)? {
            return Ok("already processed".into());
        }
        // Re-read under the lock: an event processed just before may have
        // changed the device.
        let device = match &device {
            Some(d) => self.ledger.device(&d.serial)?,
            None => None,
        };
        let audits = match self.reason_for(event.kind) {
            Some(reason) => {
                let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
                if let Some(d) = &device {
                    ids.push(d.serial.clone());
                    ids.extend(d.udid.clone());
                }
                self.revoke_all(event, &ids, device.as_ref(), reason, now, resumed_since)?
            }
            None => Vec::new(),
        };
        let revoked = audits.len();
        let status = device.as_ref().map(|d| {
            let (status, compliant) = status_after(event.kind, d);
            (d.serial.as_str(), status, compliant)
        });
        let outcome = match (&device, revoked) {
            (None, 0) => "unknown device: nothing revoked".to_string(),
            (_, n) => format!("{n} certificates revoked"),
        };
        self.ledger.finish_event(
            &event.source,
            &event.event_id,
            &outcome,
            &audits,
            status,
            now,
        )?;
        tracing::info!(source = %event.source, event_id = %event.event_id, kind = event.kind.name(), outcome = %outcome, "device event processed");
        Ok(outcome)
    }

    /// Revokes every unexpired certificate of the device known by any of
    /// `ids`; returns one audit entry per certificate this event revoked
    /// (counting, for a resumed event, those revoked since it arrived).
    fn revoke_all(
        &self,
        event: &DeviceEvent,
        ids: &[String],
        device: Option<&crate::devices::Device>,
        reason: Reason,
        now: u64,
        resumed_since: Option<u64>,
    ) -> anyhow::Result<Vec<AuditEntry>> {
        let mut seen = std::collections::BTreeSet::new();
        let mut audits = Vec::new();
        for id in ids {
            let results = match self.authority.revoke_device(id, reason, None, now) {
                Ok(results) => results,
                Err(crate::ra::AdminError::UnknownDevice(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            for r in results {
                if !seen.insert(r.serial.clone()) {
                    continue;
                }
                let ours = r.change != crate::ledger::RevokeChange::Unchanged
                    || resumed_since.is_some_and(|since| self.revoked_since(&r.serial, since));
                if ours {
                    audits.push(AuditEntry::new(
                        now,
                        "revocation",
                        &crate::ledger::event_actor(&event.source),
                        serde_json::json!({
                            "certificate": r.serial,
                            "device": device.map(|d| d.serial.clone()),
                            "reason": r.reason,
                            "outcome": r.change,
                            "event_id": event.event_id,
                        }),
                    ));
                }
            }
        }
        Ok(audits)
    }

    fn revoked_since(&self, serial: &str, since: u64) -> bool {
        serial
            .parse::<crate::serial::Serial>()
            .ok()
            .and_then(|s| self.ledger.get(&s).ok().flatten())
            .and_then(|r| r.revocation)
            .is_some_and(|rev| rev.time >= since)
    }

    /// The serial of a device an event names only by the MDM's own id: a
    /// Fleet host id through Fleet's API (`api_url`, `api_token`), a Jamf
    /// computer or mobile device id through the Jamf Pro API (see
    /// [`jamf_api`]). An unreachable API is an error: the event stays pending
    /// and is retried.
    fn mdm_serial(&self, event: &DeviceEvent) -> anyhow::Result<Option<String>> {
        let (None, None, Some(id)) = (&event.serial, &event.udid, &event.mdm_id) else {
            return Ok(None);
        };
        let Some(source) = self.sources.get(&event.source) else {
            return Ok(None);
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Ok(None);
        };
        // Called on the blocking pool: waiting here holds no async worker.
        match source {
            WebhookSource::Fleet {
                api_url, api_token, ..
            } => {
                let (Some(url), Some(token)) = (api_url, api_token) else {
                    return Ok(None);
                };
                rt.block_on(crate::devices::mdm_lookup::fleet_host_serial(
                    url, token, id,
                ))
                .map_err(anyhow::Error::msg)
            }
            WebhookSource::Jamf { .. } => {
                let Some((url, client_id, secret)) = self.jamf_api(source) else {
                    return Ok(None);
                };
                let jamf = crate::devices::mdm_lookup::Jamf::new(
                    &url,
                    &client_id,
                    &secret,
                    std::time::Duration::from_secs(10),
                )
                .map_err(anyhow::Error::msg)?;
                rt.block_on(jamf.serial_of(id)).map_err(anyhow::Error::msg)
            }
            _ => Ok(None),
        }
    }

    /// Finishes events accepted before a crash (or whose processing failed);
    /// returns how many were finished. One failure does not hold up the rest.
    pub fn resume(&self, now: u64) -> anyhow::Result<usize> {
        let pending = self.ledger.pending_events()?;
        let mut done = 0;
        let mut first_error = None;
        for p in &pending {
            match self.process_resumed(&p.event, now, Some(p.received_at)) {
                Ok(_) => done += 1,
                Err(e) => {
                    tracing::error!(source = %p.event.source, event_id = %p.event.event_id, error = %e, "device event processing failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }
}

/// The device's status and compliance after an event of `kind`.
fn status_after(kind: DeviceEventKind, d: &crate::devices::Device) -> (DeviceStatus, Option<bool>) {
    match kind {
        DeviceEventKind::Lost | DeviceEventKind::Wiped => (DeviceStatus::Lost, None),
        DeviceEventKind::Unenrolled | DeviceEventKind::Deleted => (DeviceStatus::Unenrolled, None),
        DeviceEventKind::NonCompliant => (d.status, Some(false)),
        DeviceEventKind::Compliant => (d.status, Some(true)),
        DeviceEventKind::Found | DeviceEventKind::Enrolled => (DeviceStatus::Active, None),
        _ => (d.status, None),
    }
}
