//! The device inventory through the real CLI, on the ledger directly and
//! through a running server's admin API: add, CSV import (all or nothing),
//! list, show by serial or UDID, status changes, and refusals that name the
//! fault.

use crate::common;

use common::{custos, Server};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

#[test]
fn inventory_works_offline_and_through_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&custos(&data, &["init"]));

    // Offline: add, import, show, list.
    let d = json(&custos(
        &data,
        &[
            "devices",
            "add",
            "--serial",
            "c02abc123",
            "--owner",
            "alice",
            "--group",
            "laptops",
        ],
    ));
    assert_eq!(
        (d["serial"].as_str(), d["status"].as_str()),
        (Some("C02ABC123"), Some("active"))
    );
    let csv = dir.path().join("inventory.csv");
    std::fs::write(
        &csv,
        "serial,udid,owner,group,status,compliant\nF2LX1,00008030-000A1B2C,bob,phones,,\nF2LX2,,carol,phones,lost,false\n",
    )
    .unwrap();
    assert!(ok(&custos(
        &data,
        &["devices", "import", csv.to_str().unwrap()]
    ))
    .contains("imported 2 devices (2 new)"));
    let by_udid = json(&custos(&data, &["devices", "show", "00008030-000a1b2c"]));
    assert_eq!(by_udid["serial"], "F2LX1");
    let list = json(&custos(&data, &["devices", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 3);

    // A bad row: nothing imported, the line named.
    std::fs::write(&csv, "serial,status\nNEW1,active\nNEW2,stolen\n").unwrap();
    let out = custos(&data, &["devices", "import", csv.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("stolen"), "{err}");
    assert!(!custos(&data, &["devices", "show", "NEW1"]).status.success());

    // Through the running server (the ledger is locked by it).
    let server = Server::start(&data, &[]);
    let d = json(&custos(
        &data,
        &[
            "devices",
            "set-status",
            "F2LX2",
            "active",
            "--compliant",
            "true",
        ],
    ));
    assert_eq!(
        (d["status"].as_str(), d["compliant"].as_bool()),
        (Some("active"), Some(true))
    );
    let d = json(&custos(
        &data,
        &["devices", "add", "--serial", "NEW3", "--noncompliant"],
    ));
    assert_eq!(d["compliant"], false);
    let table = ok(&custos(&data, &["devices", "list"]));
    assert!(
        table.contains("NEW3") && table.contains("C02ABC123"),
        "{table}"
    );
    let out = custos(&data, &["devices", "show", "NOPE"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device"));
    let out = custos(&data, &["devices", "set-status", "NOPE", "lost"]);
    assert!(!out.status.success());
    drop(server);
    let after = json(&custos(&data, &["devices", "show", "NEW3"]));
    assert_eq!(after["compliant"], false);
}

#[test]
fn apple_profile_names_the_directory_and_carries_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&custos(&data, &["init"]));
    std::fs::write(
        dir.path().join("custos.toml"),
        "public_https_url = \"https://ca.corp.example\"\n",
    )
    .unwrap();
    let out = dir.path().join("laptops.mobileconfig");
    ok(&custos(
        &data,
        &[
            "profile",
            "apple",
            "--group",
            "laptops",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    let v = plist::Value::from_file(&out).unwrap();
    let content = v.as_dictionary().unwrap()["PayloadContent"]
        .as_array()
        .unwrap()
        .clone();
    let acme = content
        .iter()
        .find(|p| {
            p.as_dictionary().unwrap()["PayloadType"].as_string() == Some("com.apple.security.acme")
        })
        .unwrap()
        .as_dictionary()
        .unwrap()
        .clone();
    assert_eq!(
        acme["DirectoryURL"].as_string(),
        Some("https://ca.corp.example/acme/directory")
    );
    assert_eq!(acme["ClientIdentifier"].as_string(), Some("$SERIALNUMBER"));
    let root = content
        .iter()
        .find(|p| {
            p.as_dictionary().unwrap()["PayloadType"].as_string() == Some("com.apple.security.root")
        })
        .unwrap();
    let root_pem = std::fs::read_to_string(data.join("ca/root.pem")).unwrap();
    let der = root.as_dictionary().unwrap()["PayloadContent"]
        .as_data()
        .unwrap()
        .to_vec();
    use base64::Engine;
    let body: String = root_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(
        der,
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    );
    let help = ok(&custos(&data, &["profile", "apple", "--help"]));
    assert!(help.contains("Jamf") && help.contains("Intune") && help.contains("Fleet"));
}
