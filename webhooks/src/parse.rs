//! Each source's payload → [`Parsed`] values (one delivery may name several
//! devices). Unknown event types are [`Parsed::Ignored`], never errors;
//! malformed JSON is an error.
//!
//! Event ids: the payload's own id where it has one (NanoMDM/MicroMDM
//! `event_id`, the Standard Webhooks `webhook-id`), else a SHA-256 of the
//! body, so a re-delivery of the same body is recognised as a duplicate.

use crate::{DeviceEvent, DeviceEventKind, Parsed};
use serde_json::Value;
use std::collections::BTreeMap;

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(pub String);

fn json(body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError(format!("payload is not JSON: {e}")))
}

/// `sha256:<hex>` of the body: the id of a delivery that carries none.
pub fn body_id(body: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    let hex: String = d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn rfc3339(v: &Value) -> Option<u64> {
    let t =
        time::OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339)
            .ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}

fn event(source: &str, id: String, kind: DeviceEventKind, occurred_at: u64) -> DeviceEvent {
    DeviceEvent {
        source: source.to_string(),
        event_id: id,
        kind,
        serial: None,
        udid: None,
        mdm_id: None,
        occurred_at,
    }
}

/// Our own documented JSON (`kind` standard): `{"kind": "lost", "serial"?,
/// "udid"?, "mdm_id"?, "occurred_at"?: RFC 3339}`; the id is the
/// Standard Webhooks `webhook-id`.
pub fn standard(
    source: &str,
    webhook_id: &str,
    body: &[u8],
    now: u64,
) -> Result<Vec<Parsed>, ParseError> {
    let v = json(body)?;
    let kind: DeviceEventKind = match v.get("kind").cloned().map(serde_json::from_value) {
        Some(Ok(k)) => k,
        Some(Err(_)) => return Ok(vec![Parsed::Ignored(format!("unknown kind {}", v["kind"]))]),
        None => return Err(ParseError("payload has no \"kind\"".into())),
    };
    let mut e = event(
        source,
        webhook_id.to_string(),
        kind,
        v.get("occurred_at").and_then(rfc3339).unwrap_or(now),
    );
    e.serial = v.get("serial").and_then(text);
    e.udid = v.get("udid").and_then(text);
    e.mdm_id = v.get("mdm_id").and_then(text);
    if e.serial.is_none() && e.udid.is_none() && e.mdm_id.is_none() {
        return Err(ParseError("payload names no serial, udid or mdm_id".into()));
    }
    Ok(vec![Parsed::Event(e)])
}

/// Jamf Pro: `MobileDeviceUnEnrolled` → unenrolled; smart-group membership
/// changes → the kind configured for the group name (`smart_groups`), for
/// each added device (by Jamf id).
pub fn jamf(
    source: &str,
    body: &[u8],
    smart_groups: &BTreeMap<String, DeviceEventKind>,
    now: u64,
) -> Result<Vec<Parsed>, ParseError> {
    let v = json(body)?;
    let name = v["webhook"]["webhookEvent"].as_str().unwrap_or_default();
    let id = body_id(body);
    let at = v["webhook"]["eventTimestamp"]
        .as_u64()
        .map(|ms| ms / 1000)
        .unwrap_or(now);
    let ev = &v["event"];
    // Jamf ids are per inventory: say which, as the Jamf Pro API path
    // (`computers/<id>` or `mobile-devices/<id>`), so the id can be turned
    // into a serial number.
    let inventory = if name.contains("Computer") {
        "computers"
    } else {
        "mobile-devices"
    };
    match name {
        "MobileDeviceUnEnrolled" | "ComputerUnEnrolled" => {
            let mut e = event(source, id, DeviceEventKind::Unenrolled, at);
            e.serial = ev.get("serialNumber").and_then(text);
            e.udid = ev.get("udid").and_then(text);
            e.mdm_id = ev
                .get("jssID")
                .and_then(text)
                .map(|jss| format!("{inventory}/{jss}"));
            Ok(vec![Parsed::Event(e)])
        }
        "SmartGroupMobileDeviceMembershipChange" | "SmartGroupComputerMembershipChange" => {
            let group = ev["name"].as_str().unwrap_or_default();
            let Some(kind) = smart_groups.get(group) else {
                return Ok(vec![Parsed::Ignored(format!(
                    "smart group {group:?} has no meaning configured"
                ))]);
            };
            let added = ev["groupAddedDevicesIds"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            Ok(added
                .iter()
                .filter_map(text)
                .map(|jss| {
                    let mut e = event(source, format!("{id}:{jss}"), *kind, at);
                    e.mdm_id = Some(format!("{inventory}/{jss}"));
                    Parsed::Event(e)
                })
                .collect())
        }
        other => Ok(vec![Parsed::Ignored(format!("Jamf event {other:?}"))]),
    }
}

/// NanoMDM and MicroMDM: `mdm.CheckOut` → unenrolled (by UDID);
/// `mdm.Authenticate` → the serial↔UDID pairing from its plist.
pub fn nanomdm(source: &str, body: &[u8], now: u64) -> Result<Vec<Parsed>, ParseError> {
    use base64::Engine;
    let v = json(body)?;
    let topic = v["topic"].as_str().unwrap_or_default();
    let id = v
        .get("event_id")
        .and_then(text)
        .unwrap_or_else(|| body_id(body));
    let at = v.get("created_at").and_then(rfc3339).unwrap_or(now);
    let checkin = &v["checkin_event"];
    let udid = checkin.get("udid").and_then(text);
    match topic {
        "mdm.CheckOut" => {
            let mut e = event(source, id, DeviceEventKind::Unenrolled, at);
            e.udid = udid;
            if e.udid.is_none() {
                return Err(ParseError("CheckOut without a UDID".into()));
            }
            Ok(vec![Parsed::Event(e)])
        }
        "mdm.Authenticate" => {
            let raw = checkin["raw_payload"].as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|_| ParseError("raw_payload is not base64".into()))?;
            let plist: plist::Value = plist::from_bytes(&bytes)
                .map_err(|e| ParseError(format!("raw_payload is not a plist: {e}")))?;
            let dict = plist.as_dictionary();
            let get = |k: &str| {
                dict.and_then(|d| d.get(k))
                    .and_then(|v| v.as_string())
                    .map(str::to_string)
            };
            match (get("SerialNumber"), get("UDID").or(udid)) {
                (Some(serial), Some(udid)) => Ok(vec![Parsed::Pairing { serial, udid }]),
                _ => Ok(vec![Parsed::Ignored(
                    "Authenticate without serial and UDID".into(),
                )]),
            }
        }
        other => Ok(vec![Parsed::Ignored(format!("topic {other:?}"))]),
    }
}

/// Fleet activities: `mdm_unenrolled`, `deleted_host` (by serial),
/// `locked_host` → lost and `wiped_host` → wiped (by Fleet host id).
pub fn fleet(source: &str, body: &[u8], now: u64) -> Result<Vec<Parsed>, ParseError> {
    let v = json(body)?;
    let kind = match v["type"].as_str().unwrap_or_default() {
        "mdm_unenrolled" => DeviceEventKind::Unenrolled,
        "deleted_host" => DeviceEventKind::Deleted,
        "locked_host" => DeviceEventKind::Lost,
        "wiped_host" => DeviceEventKind::Wiped,
        other => return Ok(vec![Parsed::Ignored(format!("Fleet activity {other:?}"))]),
    };
    let at = v.get("timestamp").and_then(rfc3339).unwrap_or(now);
    let d = &v["details"];
    let mut e = event(source, body_id(body), kind, at);
    e.serial = d.get("host_serial").and_then(text);
    e.mdm_id = d.get("host_id").and_then(text);
    if e.serial.is_none() && e.mdm_id.is_none() {
        return Err(ParseError("Fleet activity names no host".into()));
    }
    Ok(vec![Parsed::Event(e)])
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET: &[u8] = include_bytes!("../../tests/data/mdm/fleet_mdm_unenrolled_COMPOSED.json");
    const JAMF: &[u8] =
        include_bytes!("../../tests/data/mdm/jamf_mobiledeviceunenrolled_rubyjss.json");
    const CHECKOUT: &[u8] = include_bytes!("../../tests/data/mdm/micromdm_checkout.json");
    const AUTHENTICATE: &[u8] = include_bytes!("../../tests/data/mdm/nanomdm_authenticate.json");

    fn one(p: Vec<Parsed>) -> DeviceEvent {
        match p.as_slice() {
            [Parsed::Event(e)] => e.clone(),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    #[test]
    fn fixtures_become_normalised_events() {
        let e = one(fleet("fleet", FLEET, 9).unwrap());
        assert_eq!(
            (e.kind, e.serial.as_deref()),
            (DeviceEventKind::Unenrolled, Some("C08VQ2AXHT96"))
        );
        assert_eq!(e.occurred_at, 1_704_067_200);
        let e = one(jamf("jamf", JAMF, &BTreeMap::new(), 9).unwrap());
        assert_eq!(e.kind, DeviceEventKind::Unenrolled);
        assert_eq!(e.serial.as_deref(), Some("C8EM25KSG5PT"));
        assert_eq!(e.mdm_id.as_deref(), Some("mobile-devices/158"));
        assert_eq!(e.event_id, body_id(JAMF));
        let e = one(nanomdm("nano", CHECKOUT, 9).unwrap());
        assert_eq!(
            e.udid.as_deref(),
            Some("A5EF1BA1-586D-4F29-B4F3-759DADAC2DDD")
        );
        assert_eq!(e.event_id, "3f3a0620-6c3a-4dc5-bdc6-523f071e5865");
        assert_eq!(
            nanomdm("nano", AUTHENTICATE, 9).unwrap(),
            vec![Parsed::Pairing {
                serial: "C02MT66KFLHH".into(),
                udid: "66ADE930-5FDF-5EC4-8429-15640684C489".into()
            }]
        );
    }

    #[test]
    fn unknown_events_are_ignored_and_garbage_is_an_error() {
        assert!(matches!(
            fleet("f", br#"{"type":"ran_script"}"#, 0).unwrap()[0],
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            nanomdm("n", br#"{"topic":"mdm.Connect"}"#, 0).unwrap()[0],
            Parsed::Ignored(_)
        ));
        assert!(fleet("f", b"{not json", 0).is_err());
        assert!(
            standard("s", "msg_1", br#"{"kind":"lost"}"#, 0).is_err(),
            "no device named"
        );
        let e = one(standard(
            "s",
            "msg_1",
            br#"{"kind":"lost","serial":"C02X","occurred_at":"2026-01-01T00:00:00Z"}"#,
            0,
        )
        .unwrap());
        assert_eq!(
            (e.kind, e.event_id.as_str(), e.occurred_at),
            (DeviceEventKind::Lost, "msg_1", 1_767_225_600)
        );
        assert!(matches!(
            standard("s", "m", br#"{"kind":"exploded","serial":"X"}"#, 0).unwrap()[0],
            Parsed::Ignored(_)
        ));
        let groups = BTreeMap::from([("Lost Devices".to_string(), DeviceEventKind::Lost)]);
        let body = br#"{"webhook":{"webhookEvent":"SmartGroupMobileDeviceMembershipChange","eventTimestamp":1700000000000},"event":{"name":"Lost Devices","groupAddedDevicesIds":[12,13]}}"#;
        let events = jamf("j", body, &groups, 0).unwrap();
        assert_eq!(events.len(), 2);
        assert!(
            matches!(&events[1], Parsed::Event(e) if e.kind == DeviceEventKind::Lost && e.mdm_id.as_deref() == Some("mobile-devices/13") && e.occurred_at == 1_700_000_000)
        );
    }
}
