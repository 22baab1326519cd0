//! `custos profile apple`: a configuration profile (`.mobileconfig`) that
//! makes Apple devices enrol with custos by ACME and device attestation:
//! a `com.apple.security.acme` payload (hardware-bound P-384 key, attested)
//! and a `com.apple.security.root` payload with the root CA.
//!
//! Writes a plist (via the `plist` crate); signing the profile is the MDM's
//! job when it delivers it.

use plist::{Dictionary, Value};

/// What goes into the profile.
#[derive(Clone, Debug)]
pub struct AppleProfileOptions {
    /// The ACME directory URL devices use.
    pub directory_url: String,
    /// The MDM variable (or literal) sent as the permanent identifier.
    pub client_identifier: String,
    /// Device group the profile is for (named in the profile).
    pub group: Option<String>,
    /// The root CA certificate, DER.
    pub root_der: Vec<u8>,
    /// Organisation name shown on the device.
    pub organization: String,
}

fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn payload(kind: &str, identifier: &str, name: &str) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("PayloadType".into(), kind.into());
    d.insert("PayloadIdentifier".into(), identifier.into());
    d.insert("PayloadUUID".into(), uuid_v4().into());
    d.insert("PayloadVersion".into(), 1.into());
    d.insert("PayloadDisplayName".into(), name.into());
    d
}

/// The profile as XML plist bytes.
pub fn build(options: &AppleProfileOptions) -> anyhow::Result<Vec<u8>> {
    let suffix = options
        .group
        .as_deref()
        .map(|g| format!(".{}", g.replace(|c: char| !c.is_ascii_alphanumeric(), "-")))
        .unwrap_or_default();
    let base = format!("dev.custos.enrolment{suffix}");

    let mut acme = payload(
        "com.apple.security.acme",
        &format!("{base}.acme"),
        "Device certificate (custos)",
    );
    acme.insert("DirectoryURL".into(), options.directory_url.clone().into());
    acme.insert(
        "ClientIdentifier".into(),
        options.client_identifier.clone().into(),
    );
    // Subject: CN = the identifier (the CA writes it from the attestation).
    acme.insert(
        "Subject".into(),
        Value::Array(vec![Value::Array(vec![Value::Array(vec![
            "CN".into(),
            options.client_identifier.clone().into(),
        ])])]),
    );
    acme.insert("KeyType".into(), "ECSECPrimeRandom".into());
    acme.insert("KeySize".into(), 384.into());
    acme.insert("HardwareBound".into(), true.into());
    acme.insert("Attest".into(), true.into());
    // 1 = digital signature.
    acme.insert("UsageFlags".into(), 1.into());
    acme.insert(
        "ExtendedKeyUsage".into(),
        Value::Array(vec!["1.3.6.1.5.5.7.3.2".into()]),
    );

    let mut root = payload(
        "com.apple.security.root",
        &format!("{base}.root"),
        "custos root CA",
    );
    root.insert(
        "PayloadContent".into(),
        Value::Data(options.root_der.clone()),
    );

    let name = match &options.group {
        Some(g) => format!("{} device certificate ({g})", options.organization),
        None => format!("{} device certificate", options.organization),
    };
    let mut top = payload("Configuration", &base, &name);
    top.insert(
        "PayloadOrganization".into(),
        options.organization.clone().into(),
    );
    top.insert(
        "PayloadDescription".into(),
        "Enrols this device for a hardware-bound, attested certificate (Wi-Fi, VPN, mTLS)".into(),
    );
    top.insert(
        "PayloadContent".into(),
        Value::Array(vec![Value::Dictionary(root), Value::Dictionary(acme)]),
    );
    let mut out = Vec::new();
    Value::Dictionary(top).to_writer_xml(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_hold_an_attested_acme_payload_and_the_root() {
        let bytes = build(&AppleProfileOptions {
            directory_url: "https://ca.corp.example/acme/directory".into(),
            client_identifier: "$SERIALNUMBER".into(),
            group: Some("field phones".into()),
            root_der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
            organization: "Corp".into(),
        })
        .unwrap();
        let v = Value::from_reader_xml(bytes.as_slice()).unwrap();
        let top = v.as_dictionary().unwrap();
        assert_eq!(top["PayloadType"].as_string(), Some("Configuration"));
        assert_eq!(
            top["PayloadIdentifier"].as_string(),
            Some("dev.custos.enrolment.field-phones")
        );
        let content = top["PayloadContent"].as_array().unwrap();
        let acme = content[1].as_dictionary().unwrap();
        assert_eq!(
            acme["PayloadType"].as_string(),
            Some("com.apple.security.acme")
        );
        assert_eq!(acme["KeySize"].as_unsigned_integer(), Some(384));
        assert_eq!(acme["Attest"].as_boolean(), Some(true));
        assert_eq!(acme["HardwareBound"].as_boolean(), Some(true));
        assert_eq!(acme["ClientIdentifier"].as_string(), Some("$SERIALNUMBER"));
        let root = content[0].as_dictionary().unwrap();
        assert_eq!(
            root["PayloadContent"].as_data(),
            Some(&[0x30, 0x03, 0x02, 0x01, 0x01][..])
        );
        assert_ne!(acme["PayloadUUID"], root["PayloadUUID"]);
    }
}
