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
input,select,button{font-size:1rem;padding:.3rem}code{word-break:break-all}figure{margin:.6rem 0}figcaption,.span{font-size:.85rem;color:#586069}.span{display:flex;justify-content:space-between}@media(max-width:40rem){td,th{font-size:.8rem}}";

pub(super) fn page(session: Option<&Session>, title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "custos · " (title) }
                style { (STYLE) }
                script src="/console/console.js" defer {}
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
                form.card method="post" action={ "/console/devices/" (d.serial) "/revoke" } data-confirm={ "Revoke every certificate of " (d.serial) "? Relying parties will refuse them at once." } {
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
    let Some(record) = app.ledger.get(&serial)? else {
        return Ok(None);
    };
    let der = app.ledger.get_der(&serial)?;
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
                p { a href={ "/console/certificates/" (c.serial) "/pem" } { "Download PEM" } " · "
                    a href={ "/console/certificates/" (c.serial) "/pem?chain=true" } { "with the CA chain" } }
            }
            h2 { "Chain" }
            (chain(app, &record, der.as_deref()))
            @if s.role == Role::Operator && c.status == "good" {
                form.card method="post" action={ "/console/certificates/" (c.serial) "/revoke" } data-confirm={ "Revoke certificate " (c.serial) "? Relying parties will refuse it at once." } {
                    h2 { "Revoke this certificate" }
                    input type="hidden" name="csrf" value=(s.csrf);
                    p { label { "Reason " (reasons()) } }
                    button type="submit" { "Revoke" }
                }
            }
        },
    )))
}

/// One certificate of a chain: subject, validity, fingerprint.
fn chain_row(role: &str, der: &[u8], issuer_ok: Option<bool>) -> Markup {
    use der::Decode;
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        return html! { tr { td { (role) } td colspan="4" { "cannot be read" } } };
    };
    let tbs = &cert.tbs_certificate;
    let time = |t: &x509_cert::time::Time| rfc3339(t.to_unix_duration().as_secs());
    html! {
        tr {
            td { (role) }
            td { (tbs.subject.to_string())
                @if issuer_ok == Some(false) { br; span.bad { "issued by " (tbs.issuer.to_string()) ", not the CA below" } } }
            td { (time(&tbs.validity.not_before)) " – " (time(&tbs.validity.not_after)) }
            td { code { (crate::ca::fingerprint(der)) } }
        }
    }
}

/// The certificate, the issuing CA that signed it and the root above.
fn chain(app: &App, record: &crate::ledger::CertRecord, der: Option<&[u8]>) -> Markup {
    use der::Decode;
    let issuer_subject = x509_cert::Certificate::from_der(app.ca.issuer_der())
        .map(|c| c.tbs_certificate.subject.to_string())
        .unwrap_or_default();
    let leaf_issuer = der
        .and_then(|d| x509_cert::Certificate::from_der(d).ok())
        .map(|c| c.tbs_certificate.issuer.to_string());
    let same_ca = record.issuer_id == app.ca.issuer_id();
    html! {
        @if !same_ca {
            p.bad { "Issued by an earlier issuing CA (" (record.issuer_id) "), not the one in service:" }
        }
        table id="chain" {
            tr { th { "" } th { "Subject" } th { "Valid" } th { "SHA-256" } }
            @if let Some(d) = der { (chain_row("certificate", d, Some(leaf_issuer.as_deref() == Some(issuer_subject.as_str())))) }
            (chain_row("issuing CA", app.ca.issuer_der(), None))
            @if app.ca.root_der() != app.ca.issuer_der() { (chain_row("root", app.ca.root_der(), None)) }
        }
    }
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
pub fn acme(
    app: &App,
    s: &Session,
    created: Option<&crate::acme::eab::EabKey>,
) -> anyhow::Result<String> {
    let directory = format!("{}/acme/directory", app.https_base());
    let accounts = app.ledger.acme_recent_accounts(ACME_LIST)?;
    let orders = app.ledger.acme_recent_orders(ACME_SCAN, unix_now())?;
    let failures: Vec<_> = orders
        .iter()
        .filter(|o| o.order.status == custos_acme::order::OrderStatus::Invalid)
        .take(ACME_LIST)
        .collect();
    Ok(page(
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
            h2 { "Recent failures" }
            @if failures.is_empty() { p { "No failed order among the newest " (ACME_SCAN) "." } }
            @else { (orders_table("failures", &failures)) }
            h2 { "Recent orders" }
            (orders_table("orders", &orders.iter().take(ACME_LIST).collect::<Vec<_>>()))
            h2 { "Newest accounts" }
            table id="accounts" {
                tr { th { "Account" } th { "Status" } th { "Created" } th { "Contact" } th { "Bound with" } }
                @for a in &accounts {
                    tr {
                        td { code { (a.id) } }
                        td class=(if a.status == custos_acme::account::AccountStatus::Valid { "good" } else { "bad" }) { (format!("{:?}", a.status).to_lowercase()) }
                        td { (rfc3339(a.created_at)) }
                        td { (a.contact.join(", ")) }
                        td { (a.eab_kid.as_deref().unwrap_or("-")) }
                    }
                }
            }
        },
    ))
}

/// Orders listed on the ACME page.
const ACME_LIST: usize = 50;
/// Orders read for the failures list.
const ACME_SCAN: usize = 500;

fn orders_table(id: &str, orders: &[&crate::ledger::OrderView]) -> Markup {
    html! {
        table id=(id) {
            tr { th { "Created" } th { "Identifiers" } th { "Status" } th { "Account" } th { "Certificate or error" } }
            @for v in orders {
                @let o = &v.order;
                tr {
                    td { (rfc3339(o.created_at)) }
                    td { (o.identifiers.iter().map(|i| format!("{}:{}", i.kind, i.value)).collect::<Vec<_>>().join(", ")) }
                    td class=(match o.status { custos_acme::order::OrderStatus::Invalid => "bad", custos_acme::order::OrderStatus::Valid => "good", _ => "" }) {
                        (format!("{:?}", o.status).to_lowercase())
                    }
                    td { code { (o.account_id) } }
                    td {
                        @if let Some(c) = &o.certificate { a href={ "/console/certificates/" (c.to_hex()) } { code { (c.to_hex()) } } }
                        @else if let Some(e) = &v.error {
                            span.bad { (e.get("detail").and_then(|d| d.as_str()).map_or_else(|| e.to_string(), str::to_string)) }
                        }
                    }
                }
            }
        }
    }
}

/// What the audit page was asked for.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct AuditQuery {
    /// Device serial number or UDID.
    #[serde(default)]
    pub device: String,
    /// Entry kind.
    #[serde(default)]
    pub kind: String,
    /// From (`YYYY-MM-DDTHH:MM`, UTC, as a datetime-local field sends it).
    #[serde(default)]
    pub since: String,
    /// Until (same form).
    #[serde(default)]
    pub until: String,
    /// Entries before this sequence number (the next page).
    #[serde(default)]
    pub before: Option<u64>,
}

/// Entries per audit page.
const AUDIT_PAGE: usize = 100;
/// Most entries one audit page reads (a rare filter pages on).
const AUDIT_MAX_SCAN: usize = 50_000;

/// A datetime-local value (or RFC 3339) as Unix seconds, UTC.
fn parse_local(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let minute = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let second = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(text, minute)
        .or_else(|_| time::PrimitiveDateTime::parse(text, second))
        .map(|t| t.assume_utc())
        .or_else(|_| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        })
        .map(|t| Some(t.unix_timestamp().max(0) as u64))
        .map_err(|_| format!("{text:?} is not a time: give YYYY-MM-DDTHH:MM (UTC)"))
}

/// The audit log, newest first, a page at a time, filtered by device, kind
/// and time.
pub fn audit(app: &App, s: &Session, q: &AuditQuery) -> anyhow::Result<String> {
    let (since, until) = match (parse_local(&q.since), parse_local(&q.until)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Ok(message(s, "Audit log", &e)),
    };
    let filter = crate::ledger::AuditFilter {
        kind: (!q.kind.trim().is_empty()).then(|| q.kind.trim().to_string()),
        device: (!q.device.trim().is_empty()).then(|| q.device.trim().to_string()),
        since,
        until,
        ..Default::default()
    };
    let (entries, next) =
        app.ledger
            .audit_page_back(q.before, AUDIT_PAGE, AUDIT_MAX_SCAN, &filter)?;
    let older = next.map(|before| {
        let query = serde_urlencoded::to_string([
            ("device", q.device.as_str()),
            ("kind", q.kind.as_str()),
            ("since", q.since.as_str()),
            ("until", q.until.as_str()),
            ("before", &before.to_string()),
        ])
        .unwrap_or_default();
        format!("/console/audit?{query}")
    });
    Ok(page(
        Some(s),
        "Audit log",
        html! {
            form method="get" action="/console/audit" {
                input name="device" value=(q.device) placeholder="device";
                " "
                input name="kind" value=(q.kind) placeholder="kind (issuance, revocation, …)";
                " "
                label { "from " input type="datetime-local" name="since" value=(q.since); }
                " "
                label { "until " input type="datetime-local" name="until" value=(q.until); }
                " (UTC) "
                button type="submit" { "Filter" }
            }
            table id="audit" {
                tr { th { "#" } th { "Time" } th { "Kind" } th { "Actor" } th { "Detail" } }
                @for e in &entries {
                    tr { td { (e.seq) } td { (rfc3339(e.time)) } td { (e.kind) } td { (e.actor) } td { code { (e.detail.to_string()) } } }
                }
            }
            @if entries.is_empty() { p { "No entry matches." } }
            @if let Some(href) = older { p { a id="older" href=(href) { "Older entries" } } }
        },
    ))
}
