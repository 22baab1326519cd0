//! The operator console in a real browser: Debian's chromium driven by
//! playwright-core (`tests/console/console.mjs`) signs in, finds a device,
//! revokes it and sees OCSP say revoked on its certificate page; a forged
//! CSRF token and a viewer are refused; the cookie's flags are checked.
//! The overview's charts, the certificate's chain, the audit filters and
//! the ACME page's failed order are checked there too. Screenshots go to
//! `$CUSTOS_SCREENSHOTS` when set (the README's come from
//! `CUSTOS_SCREENSHOTS=docs/console`), else to a temporary directory.

use crate::common::{custos_ok, ocsp_says, Server};

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_revokes_a_device_in_the_browser_and_a_viewer_cannot() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    custos_ok(&data, &["init"]);
    custos_ok(
        &data,
        &[
            "devices",
            "add",
            "--serial",
            "C02CONSOLE1",
            "--owner",
            "alice",
        ],
    );
    let (leaf, serial) = crate::common::issue_for_device(dir, &data, "C02CONSOLE1");
    let viewer = custos_ok(
        &data,
        &[
            "console", "user", "add", "--name", "helpdesk", "--role", "viewer",
        ],
    );
    let viewer = String::from_utf8_lossy(&viewer.stdout).into_owned();
    let password = viewer
        .lines()
        .find_map(|l| l.strip_prefix("password:"))
        .unwrap()
        .trim()
        .to_string();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("console-users.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // ACME for loopback addresses, validated on a port where nothing
    // listens: the order below fails, for the ACME page's failures list.
    let http01 = crate::common::free_addr();
    let port = http01.rsplit(':').next().unwrap();
    std::fs::write(
        dir.join("custos.toml"),
        format!("[acme]\nallowed_ip_ranges = [\"127.0.0.0/8\"]\nhttp01_port = {port}\nvalidation_attempts = 1\n"),
    )
    .unwrap();
    let server = Server::start(&data, &[]);
    assert!(ocsp_says(&server, &leaf).contains(": good"));
    failed_acme_order(&server).await;

    let console = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let shots = match std::env::var_os("CUSTOS_SCREENSHOTS") {
        Some(d) => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(d),
        None => dir.join("shots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::process::Command::new("node")
        .current_dir(&console)
        .arg("console.mjs")
        .args([
            &server.https_url,
            &server.token(),
            "helpdesk",
            &password,
            "C02CONSOLE1",
            &serial,
        ])
        .arg(&shots)
        .output()
        .await
        .expect("node must be installed (see .ci/setup)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the browser did, seen from outside.
    assert!(ocsp_says(&server, &leaf).contains(": revoked"));
    let audit = custos_ok(&data, &["audit", "--kind", "revocation", "--json"]);
    assert!(String::from_utf8_lossy(&audit.stdout).contains("console:admin"));
    let log = std::fs::read_to_string(dir.join(format!("serve-{}.log", std::process::id())))
        .unwrap_or_default();
    assert!(!log.contains(&password), "passwords are not logged");
    assert!(server.terminate().success());
}

/// An ACME order whose http-01 challenge cannot be reached: invalid.
async fn failed_acme_order(server: &Server) {
    use instant_acme::{ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy};
    let account = crate::common::acme_account(server).await;
    let ids = [Identifier::Ip("127.0.0.1".parse().unwrap())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authorizations = order.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let mut challenge = authz.challenge(ChallengeType::Http01).unwrap();
        challenge.set_ready().await.unwrap();
    }
    let retry = RetryPolicy::new()
        .initial_delay(std::time::Duration::from_millis(100))
        .timeout(std::time::Duration::from_secs(30));
    assert_eq!(
        order.poll_ready(&retry).await.unwrap(),
        OrderStatus::Invalid
    );
}
