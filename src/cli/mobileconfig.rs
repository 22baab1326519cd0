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

/// A payload UUID that stays the same for one CA, group and payload, so
/// that an MDM sees a regenerated profile as the same profile (a new UUID
/// is a new profile to it): SHA-256 of the root certificate and the payload
/// identifier, laid out as an RFC 9562 version 8 (name-based, SHA-256) UUID.
fn stable_uuid(root_der: &[u8], identifier: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"custos payload uuid\0");
    h.update(root_der);
    h.update(b"\0");
    h.update(identifier.as_bytes());
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
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

fn payload(kind: &str, identifier: &str, name: &str, root_der: &[u8]) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("PayloadType".into(), kind.into());
    d.insert("PayloadIdentifier".into(), identifier.into());
    d.insert(
        "PayloadUUID".into(),
        stable_uuid(root_der, identifier).into(),
    );
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
        &options.root_der,
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
        &options.root_der,
    );
    root.insert(
        "PayloadContent".into(),
        Value::Data(options.root_der.clone()),
    );

    let name = match &options.group {
        Some(g) => format!("{} device certificate ({g})", options.organization),
        None => format!("{} device certificate", options.organization),
    };
    let mut top = payload("Configuration", &base, &name, &options.root_der);
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

    #[test]
    fn payload_uuids_are_stable_per_ca_and_group() {
        let opts = |group: &str, root: u8| AppleProfileOptions {
            directory_url: "https://ca.corp.example/acme/directory".into(),
            client_identifier: "$SERIALNUMBER".into(),
            group: Some(group.into()),
            root_der: vec![0x30, 0x03, 0x02, 0x01, root],
            organization: "Corp".into(),
        };
        let uuid = |o: &AppleProfileOptions| {
            let v = Value::from_reader_xml(build(o).unwrap().as_slice()).unwrap();
            v.as_dictionary().unwrap()["PayloadUUID"]
                .as_string()
                .unwrap()
                .to_string()
        };
        assert_eq!(uuid(&opts("a", 1)), uuid(&opts("a", 1)));
        assert_ne!(uuid(&opts("a", 1)), uuid(&opts("b", 1)));
        assert_ne!(uuid(&opts("a", 1)), uuid(&opts("a", 2)));
    }
}
