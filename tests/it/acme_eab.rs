//! External account binding with a real client: `custos eab create` on a
//! running server hands out a key; instant-acme binds an account with it;
//! the key cannot bind a second account; a server that requires binding
//! refuses accounts without one, and a wrong MAC key.

use crate::common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{custos, Server};
use instant_acme::{Account, ExternalAccountKey, NewAccount};

fn new_account() -> NewAccount<'static> {
    NewAccount {
        contact: &[],
        terms_of_service_agreed: true,
        only_return_existing: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn eab_keys_bind_exactly_one_account() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("custos.toml"),
        "[acme]\nexternal_account_required = true\n",
    )
    .unwrap();
    let server = Server::start(&data, &[]);
    let root = data.join("ca/root.pem");
    let directory = format!("{}/acme/directory", server.https_url);

    let out = custos(&data, &["eab", "create", "--name", "wifi laptops"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .to_string()
    };
    let kid = field("kid:");
    let mac = URL_SAFE_NO_PAD.decode(field("hmac_key:")).unwrap();
    assert_eq!(mac.len(), 32);
    let secret = std::fs::metadata(data.join("eab.secret")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(secret.permissions().mode() & 0o777, 0o600);

    // Without a binding: externalAccountRequired.
    let err = match Account::builder_with_root(&root)
        .unwrap()
        .create(&new_account(), directory.clone(), None)
        .await
    {
        Err(e) => format!("{e:?}"),
        Ok(_) => panic!("an account without a binding was created"),
    };
    assert!(err.contains("externalAccountRequired"), "{err}");

    // A wrong MAC key: refused.
    let wrong = ExternalAccountKey::new(kid.clone(), &[7u8; 32]);
    let err = match Account::builder_with_root(&root)
        .unwrap()
        .create(&new_account(), directory.clone(), Some(&wrong))
        .await
    {
        Err(e) => format!("{e:?}"),
        Ok(_) => panic!("a wrong MAC key bound an account"),
    };
    assert!(err.contains("unauthorized"), "{err}");

    // The right key binds one account, once.
    let key = ExternalAccountKey::new(kid.clone(), &mac);
    let _bound = Account::builder_with_root(&root)
        .unwrap()
        .create(&new_account(), directory.clone(), Some(&key))
        .await
        .expect("bound account");
    let err = match Account::builder_with_root(&root)
        .unwrap()
        .create(&new_account(), directory.clone(), Some(&key))
        .await
    {
        Err(e) => format!("{e:?}"),
        Ok(_) => panic!("an EAB key bound a second account"),
    };
    assert!(
        err.contains("unauthorized") && err.contains("already used"),
        "{err}"
    );

    // The directory says binding is required.
    let dir_json: serde_json::Value = server
        .https_client()
        .get(&directory)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dir_json["meta"]["externalAccountRequired"], true);
}
