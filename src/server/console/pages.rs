//! The console's pages, rendered with maud (escaped by construction).

use super::Session;
use crate::app::App;
use crate::model::time::{rfc3339, unix_now};
use crate::support::console_users::Role;
use maud::{html, Markup, DOCTYPE};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1f23;background:#f6f8fa}\
header{background:#24292e;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}\
header a{color:#fff;text-decoration:none}header form{margin-left:auto}\
main{padding:1rem;max-width:70rem;margin:auto}table{border-collapse:collapse;width:100%;background:#fff}\
td,th{border-bottom:1px solid #e1e4e8;padding:.35rem .5rem;text-align:left;font-size:.92rem;vertical-align:top}\
.bad{color:#b31d28;font-weight:600}.good{color:#22863a;font-weight:600}.card{background:#fff;padding:1rem;margin:.8rem 0;border:1px solid #e1e4e8}\
input,select,button{font-size:1rem;padding:.3rem}code{word-break:break-all}@media(max-width:40rem){td,th{font-size:.8rem}}";

fn page(session: Option<&Session>, title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "custos · " (title) }
                style { (STYLE) }
            }
            body {
                header {
                    strong { "custos" }
                    @if let Some(s) = session {
                        a href="/console/" { "Overview" }
                        a href="/console/devices" { "Devices" }
                        a href="/console/audit" { "Audit log" }
                        a href="/console/acme" { "ACME" }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span { (s.operator) " (" (s.role.name()) ") " }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
    .into_string()
}

/// The sign-in page.
pub fn login(error: Option<&str>) -> String {
    page(
        None,
        "Sign in",
        html! {
            @if let Some(e) = error { p.bad { (e) } }
            form.card method="post" action="/console/login" {
                p { label { "Name " input name="name" autocomplete="username"; } }
                p { label { "Password " input name="password" type="password" autocomplete="current-password"; } }
                p { "or" }
                p { label { "Admin token " input name="token" type="password" autocomplete="off"; } }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A short message page.
pub fn message(s: &Session, title: &str, text: &str) -> String {
    page(
        Some(s),
        title,
        html! { p.bad { (text) } p { a href="/console/" { "Back" } } },
    )
}

/// The overview: counts, CRL shards, the outbox, MDM syncs.
pub fn overview(app: &App, s: &Session) -> anyhow::Result<String> {
    let now = unix_now();
    let certificates = app.ledger.count()?;
    let revocations = app.ledger.next_revocation_seq()?;
    let pending = app
        .ledger
        .outbox_count(crate::ledger::OutboxState::Pending)?;
    let dead = app.ledger.outbox_count(crate::ledger::OutboxState::Dead)?;
    let syncs = app.mdm_sync.status()?;
    let validity = u64::from(app.config.crl.validity_hours) * 3600;
    Ok(page(
        Some(s),
        "Overview",
        html! {
            div.card {
                p { "Certificates in the ledger: " strong { (certificates) } }
                p { "Revocations recorded: " strong { (revocations) } }
                p { "Notifications waiting: " strong { (pending) } ", given up: "
                    @if dead > 0 { strong.bad { (dead) } } @else { strong { "0" } } }
            }
            h2 { "CRL shards" }
            table {
                tr { th { "Shard" } th { "Number" } th { "Signed" } th { "Next update" } th { "Entries" } }
                @for shard in 0..app.crl.shard_count() {
                    @if let Some(c) = app.crl.current(shard) {
                        tr {
                            td { (shard) } td { (c.number) }
                            td class=(if now.saturating_sub(c.this_update) > validity / 2 { "bad" } else { "" }) { (rfc3339(c.this_update)) }
                            td { (rfc3339(c.next_update)) } td { (c.entries) }
                        }
                    }
                }
            }
            h2 { "MDM inventory sync" }
            @if syncs.is_empty() { p { "No MDM source is configured." } }
            @else {
                table {
                    tr { th { "Source" } th { "Last result" } th { "Last success" } th { "Devices" } th { "Changes" } }
                    @for src in &syncs {
                        @let last = src.last.as_ref();
                        tr {
                            td { (src.name) " (" (src.kind) ")" }
                            td class=(if last.is_some_and(|l| l.result == "failed" || l.result == "held") { "bad" } else { "" }) {
                                (last.map_or("never", |l| l.result.as_str()))
                            }
                            td { (src.last_success.map_or("never".to_string(), rfc3339)) }
                            td { (last.map_or(0, |l| l.seen)) } td { (last.map_or(0, |l| l.changes.len())) }
                        }
                    }
                }
            }
        },
    ))
}

/// The devices matching `q` (serial, UDID or owner; empty: the first 200).
pub fn devices(app: &App, s: &Session, q: &str) -> anyhow::Result<String> {
    let needle = q.to_ascii_lowercase();
    let found = app.ledger.list_devices_where(None, 200, |d| {
        needle.is_empty()
            || d.serial.to_ascii_lowercase().contains(&needle)
            || d.udid
                .as_deref()
                .is_some_and(|u| u.to_ascii_lowercase().contains(&needle))
            || d.owner
                .as_deref()
                .is_some_and(|o| o.to_ascii_lowercase().contains(&needle))
    })?;
    Ok(page(
        Some(s),
        "Devices",
        html! {
            form method="get" action="/console/devices" {
                input name="q" value=(q) placeholder="serial, UDID or owner";
                button type="submit" { "Search" }
            }
            table {
                tr { th { "Serial" } th { "Status" } th { "Compliant" } th { "Enrolment" } th { "Owner" } }
                @for d in &found {
                    tr {
                        td { a href={ "/console/devices/" (d.serial) } { (d.serial) } }
                        td class=(if d.status.name() == "active" { "good" } else { "bad" }) { (d.status.name()) }
                        td { (d.compliant) }
                        td { (d.enrolment.map_or("-", |e| e.name())) }
                        td { (d.owner.as_deref().unwrap_or("-")) }
                    }
                }
            }
        },
    ))
}

fn reasons() -> Markup {
    html! {
        select name="reason" {
            @for r in ["unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "privilegeWithdrawn"] {
                option value=(r) { (r) }
            }
        }
    }
}

/// One device, its certificates, and (operators) revoke-all.
pub fn device(app: &App, s: &Session, id: &str) -> anyhow::Result<Option<String>> {
    let Some(d) = app.ledger.device(id)? else {
        return Ok(None);
    };
    let now = unix_now();
    let mut certs = Vec::new();
    for serial in app.ledger.serials_by_device(&d.serial)? {
        certs.push(app.authority.show(&serial, now)?);
    }
    Ok(Some(page(
        Some(s),
        &format!("Device {}", d.serial),
        html! {
            div.card {
                p { "Status: " strong class=(if d.status.name() == "active" { "good" } else { "bad" }) { (d.status.name()) }
                    ", compliant: " (d.compliant) ", enrolment: " (d.enrolment.map_or("-", |e| e.name())) }
                p { "UDID: " (d.udid.as_deref().unwrap_or("-")) ", owner: " (d.owner.as_deref().unwrap_or("-")) ", group: " (d.group.as_deref().unwrap_or("-")) }
            }
            h2 { "Certificates" }
            table {
                tr { th { "Serial" } th { "Status" } th { "Not after" } th { "Profile" } }
                @for c in &certs {
                    tr {
                        td { a href={ "/console/certificates/" (c.serial) } { code { (c.serial) } } }
                        td class=(if c.status == "good" { "good" } else { "bad" }) { (c.status) }
                        td { (c.not_after) } td { (c.profile) }
                    }
                }
            }
            @if s.role == Role::Operator {
                form.card method="post" action={ "/console/devices/" (d.serial) "/status" } {
                    h2 { "Set status" }
                    input type="hidden" name="csrf" value=(s.csrf);
                    select name="status" {
                        @for st in ["active", "lost", "unenrolled", "retired"] {
                            option value=(st) selected[st == d.status.name()] { (st) }
                        }
                    }
                    " "
                    label { input type="checkbox" name="compliant" value="true" checked[d.compliant]; " compliant" }
                    " "
                    button type="submit" { "Save" }
                }
                form.card method="post" action={ "/console/devices/" (d.serial) "/revoke" } {
                    h2 { "Revoke every certificate of this device" }
                    input type="hidden" name="csrf" value=(s.csrf);
                    p { label { "Reason " (reasons()) } }
                    p { label { "Type the serial " code { (d.serial) } " to confirm " input name="confirm" autocomplete="off"; } }
                    button type="submit" { "Revoke all" }
                }
            }
        },
    )))
}

/// One certificate: details, the live OCSP answer, PEM, and (operators)
/// revoke.
pub fn certificate(app: &App, s: &Session, serial: &str) -> anyhow::Result<Option<String>> {
    let Ok(serial) = serial.parse::<crate::serial::Serial>() else {
        return Ok(None);
    };
    if app.ledger.get(&serial)?.is_none() {
        return Ok(None);
    }
    let now = unix_now();
    let c = app.authority.show(&serial, now)?;
    let ocsp = live_ocsp(app, &serial, now);
    Ok(Some(page(
        Some(s),
        "Certificate",
        html! {
            div.card {
                p { "Serial: " code { (c.serial) } }
                p { "Subject: " (c.subject) }
                p { "Status in the ledger: " strong class=(if c.status == "good" { "good" } else { "bad" }) { (c.status) }
                    @if let Some(at) = &c.revoked_at { " at " (at) } }
                p { "OCSP answers now: " strong id="ocsp" class=(if ocsp == "good" { "good" } else { "bad" }) { (ocsp) } }
                p { "Valid: " (c.not_before) " – " (c.not_after) ", profile " (c.profile) ", CRL shard " (c.crl_shard) }
                p { "Device: " @if let Some(d) = &c.device.serial_number { a href={ "/console/devices/" (d) } { (d) } } @else { "-" } }
                p { a href={ "/console/certificates/" (c.serial) "/pem" } { "Download PEM" } }
            }
            @if s.role == Role::Operator && c.status == "good" {
                form.card method="post" action={ "/console/certificates/" (c.serial) "/revoke" } {
                    h2 { "Revoke this certificate" }
                    input type="hidden" name="csrf" value=(s.csrf);
                    p { label { "Reason " (reasons()) } }
                    button type="submit" { "Revoke" }
                }
            }
        },
    )))
}

/// What the OCSP responder answers for `serial` right now.
fn live_ocsp(app: &App, serial: &crate::serial::Serial, now: u64) -> String {
    use custos_ocsp::issuer::{HashAlg, IssuerHashes};
    let request = IssuerHashes::new(app.ca.issuer_cert())
        .ok()
        .and_then(|h| custos_ocsp::response::cert_id_for(&h, HashAlg::Sha1, serial.as_bytes()).ok())
        .and_then(|id| custos_ocsp::request::build_request(id, None).ok());
    match request {
        Some(der) => app.responder.answer(&der, now).status.to_string(),
        None => "could not ask".into(),
    }
}

/// The ACME server's directory and, for operators, external account
/// binding keys: a new key is shown on this answer only.
pub fn acme(app: &App, s: &Session, created: Option<&crate::acme::eab::EabKey>) -> String {
    let directory = format!("{}/acme/directory", app.config.https_base(None));
    page(
        Some(s),
        "ACME",
        html! {
            div.card {
                p { "Directory: " code { (directory) } }
                p { "External account binding required: " (app.config.acme.external_account_required) }
            }
            @if let Some(k) = created {
                div.card {
                    h2 { "New key for " (k.name) }
                    p.bad { "Shown once: copy it now." }
                    p { "kid: " code id="eab-kid" { (k.kid) } }
                    p { "hmac_key: " code id="eab-hmac" { (k.hmac_key) } }
                    p { "certbot " code { "--eab-kid " (k.kid) " --eab-hmac-key " (k.hmac_key) } }
                }
            }
            @if s.role == Role::Operator {
                form.card method="post" action="/console/acme/eab" {
                    h2 { "Make an external account binding key" }
                    input type="hidden" name="csrf" value=(s.csrf);
                    label { "For " input name="name" placeholder="who or what it is for" required; }
                    " "
                    button type="submit" { "Make key" }
                }
            }
        },
    )
}

/// The audit log, newest last, filtered by device and kind.
pub fn audit(app: &App, s: &Session, device: &str, kind: &str) -> anyhow::Result<String> {
    let filter = crate::ledger::AuditFilter {
        kind: (!kind.is_empty()).then(|| kind.to_string()),
        device: (!device.is_empty()).then(|| device.to_string()),
        ..Default::default()
    };
    let mut entries = app.ledger.audit_filtered(0, 100_000, &filter)?;
    let skip = entries.len().saturating_sub(200);
    entries.drain(..skip);
    Ok(page(
        Some(s),
        "Audit log",
        html! {
            form method="get" action="/console/audit" {
                input name="device" value=(device) placeholder="device";
                input name="kind" value=(kind) placeholder="kind (issuance, revocation, …)";
                button type="submit" { "Filter" }
            }
            table {
                tr { th { "#" } th { "Time" } th { "Kind" } th { "Actor" } th { "Detail" } }
                @for e in entries.iter().rev() {
                    tr { td { (e.seq) } td { (rfc3339(e.time)) } td { (e.kind) } td { (e.actor) } td { code { (e.detail.to_string()) } } }
                }
            }
        },
    ))
}
