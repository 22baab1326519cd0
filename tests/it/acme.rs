//! ACME over real HTTPS: a real client crate (instant-acme) against
//! `custos serve`, trusting only the data dir's root, plus hand-built JWS
//! requests for the problem documents a client library would never send.

use crate::common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::Server;
use instant_acme::{Account, NewAccount};
use serde_json::{json, Value};

fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

struct Client {
    http: reqwest::Client,
    dir: Value,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Client {
    async fn new(server: &Server) -> Client {
        let http = server.https_client();
        let dir = http
            .get(format!("{}/acme/directory", server.https_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        Client {
            http,
            dir,
            key,
            rng,
        }
    }

    fn jwk(&self) -> Value {
        let p = self.key.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "x": b64u(&p[1..33]), "y": b64u(&p[33..])})
    }

    async fn nonce(&self) -> String {
        let r = self
            .http
            .head(self.dir["newNonce"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["replay-nonce"].to_str().unwrap().to_string()
    }

    fn sign(&self, header: Value, payload: &str) -> Value {
        let protected = b64u(header.to_string().as_bytes());
        let payload = if payload.is_empty() {
            String::new()
        } else {
            b64u(payload.as_bytes())
        };
        let sig = self
            .key
            .sign(&self.rng, format!("{protected}.{payload}").as_bytes())
            .unwrap();
        json!({"protected": protected, "payload": payload, "signature": b64u(sig.as_ref())})
    }

    async fn post(
        &self,
        url: &str,
        body: &Value,
        content_type: &str,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let v = r.json().await.unwrap_or(Value::Null);
        (status, v, headers)
    }
}

const JOSE: &str = "application/jose+json";

#[tokio::test(flavor = "multi_thread")]
async fn a_real_client_creates_and_finds_its_account_and_bad_requests_get_rfc_problems() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let directory_url = format!("{}/acme/directory", server.https_url);

    // instant-acme, unmodified, trusting our root.
    let (account, credentials) = Account::builder_with_root(data.join("ca/root.pem"))
        .unwrap()
        .create(
            &NewAccount {
                contact: &["mailto:ops@example.org"],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory_url.clone(),
            None,
        )
        .await
        .expect("account created");
    assert!(account
        .id()
        .starts_with(&format!("{}/acme/acct/", server.https_url)));
    let again = Account::builder_with_root(data.join("ca/root.pem"))
        .unwrap()
        .from_credentials(credentials)
        .await
        .unwrap();
    again
        .update_contacts(&["mailto:pki@example.org"])
        .await
        .unwrap();

    let c = Client::new(&server).await;
    for name in [
        "newNonce",
        "newAccount",
        "newOrder",
        "revokeCert",
        "keyChange",
    ] {
        assert!(
            c.dir[name].as_str().unwrap().starts_with(&server.https_url),
            "{name}"
        );
    }
    assert_eq!(c.dir["meta"]["externalAccountRequired"], false);
    assert!(
        c.dir["meta"]["profiles"]["default"].is_string(),
        "{}",
        c.dir
    );
    let new_account = c.dir["newAccount"].as_str().unwrap().to_string();
    let problem = |v: &Value| v["type"].as_str().unwrap_or_default().to_string();
    let urn = |t: &str| format!("urn:ietf:params:acme:error:{t}");

    // onlyReturnExisting for an unknown key.
    let body = c.sign(
        json!({"alg": "ES256", "nonce": c.nonce().await, "url": new_account, "jwk": c.jwk()}),
        r#"{"onlyReturnExisting":true}"#,
    );
    let (s, v, h) = c.post(&new_account, &body, JOSE).await;
    assert_eq!((s, problem(&v)), (400, urn("accountDoesNotExist")));
    assert!(h.contains_key("replay-nonce"));
    assert!(h["link"].to_str().unwrap().contains("rel=\"index\""));

    // A replayed nonce.
    let nonce = c.nonce().await;
    let body = c.sign(
        json!({"alg": "ES256", "nonce": nonce, "url": new_account, "jwk": c.jwk()}),
        r#"{"termsOfServiceAgreed":true}"#,
    );
    let (s, _, h) = c.post(&new_account, &body, JOSE).await;
    assert_eq!(s, 201);
    let my_account = h["location"].to_str().unwrap().to_string();
    let (s, v, _) = c.post(&new_account, &body, JOSE).await;
    assert_eq!((s, problem(&v)), (400, urn("badNonce")));

    // The same key again: the existing account, 200.
    let body = c.sign(
        json!({"alg": "ES256", "nonce": c.nonce().await, "url": new_account, "jwk": c.jwk()}),
        r#"{"termsOfServiceAgreed":true}"#,
    );
    let (s, _, h) = c.post(&new_account, &body, JOSE).await;
    assert_eq!(
        (s, h["location"].to_str().unwrap()),
        (200, my_account.as_str())
    );

    // Wrong url, wrong alg, wrong media type, forged signature, unknown kid.
    let body = c.sign(json!({"alg": "ES256", "nonce": c.nonce().await, "url": format!("{new_account}x"), "jwk": c.jwk()}), "{}");
    let (s, v, _) = c.post(&new_account, &body, JOSE).await;
    assert_eq!((s, problem(&v)), (403, urn("unauthorized")));
    let body = c.sign(
        json!({"alg": "HS256", "nonce": c.nonce().await, "url": new_account, "jwk": c.jwk()}),
        "{}",
    );
    let (s, v, _) = c.post(&new_account, &body, JOSE).await;
    assert_eq!((s, problem(&v)), (400, urn("badSignatureAlgorithm")));
    assert!(v["algorithms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "ES256"));
    let body = c.sign(
        json!({"alg": "ES256", "nonce": c.nonce().await, "url": new_account, "jwk": c.jwk()}),
        "{}",
    );
    let (s, v, _) = c.post(&new_account, &body, "application/json").await;
    assert_eq!((s, problem(&v)), (415, urn("malformed")));
    let mut forged = c.sign(
        json!({"alg": "ES256", "nonce": c.nonce().await, "url": new_account, "jwk": c.jwk()}),
        "{}",
    );
    forged["payload"] = json!(b64u(br#"{"contact":["mailto:evil@example.org"]}"#));
    let (s, v, _) = c.post(&new_account, &forged, JOSE).await;
    assert_eq!((s, problem(&v)), (400, urn("malformed")));
    let ghost = format!("{}/acme/acct/nobody", server.https_url);
    let body = c.sign(
        json!({"alg": "ES256", "nonce": c.nonce().await, "url": ghost, "kid": ghost}),
        "",
    );
    let (s, v, _) = c.post(&ghost, &body, JOSE).await;
    assert_eq!((s, problem(&v)), (400, urn("accountDoesNotExist")));
    let p521 = json!({"kty": "EC", "crv": "P-521", "x": b64u(&[1u8; 66]), "y": b64u(&[2u8; 66])});
    let body = c.sign(
        json!({"alg": "ES256", "nonce": c.nonce().await, "url": new_account, "jwk": p521}),
        "{}",
    );
    let (s, v, _) = c.post(&new_account, &body, JOSE).await;
    assert_eq!((s, problem(&v)), (400, urn("badPublicKey")));
    let (s, v, _) = c.post(&new_account, &json!({"garbage": true}), JOSE).await;
    assert_eq!((s, problem(&v)), (400, urn("malformed")));
    let huge = json!({"protected": "x".repeat(70 * 1024), "payload": "", "signature": ""});
    let (s, v, h) = c.post(&new_account, &huge, JOSE).await;
    assert_eq!((s, problem(&v)), (413, urn("malformed")));
    assert!(h.contains_key("replay-nonce"));

    // POST-as-GET the account, deactivate it, and it is refused afterwards.
    let body = c.sign(
        json!({"alg": "ES256", "nonce": c.nonce().await, "url": my_account, "kid": my_account}),
        "",
    );
    let (s, v, _) = c.post(&my_account, &body, JOSE).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("valid")));
    let body = c.sign(
        json!({"alg": "ES256", "nonce": c.nonce().await, "url": my_account, "kid": my_account}),
        r#"{"status":"deactivated"}"#,
    );
    let (s, v, _) = c.post(&my_account, &body, JOSE).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("deactivated")));
    let body = c.sign(
        json!({"alg": "ES256", "nonce": c.nonce().await, "url": my_account, "kid": my_account}),
        "",
    );
    let (s, v, _) = c.post(&my_account, &body, JOSE).await;
    assert_eq!((s, problem(&v)), (403, urn("unauthorized")));

    // Accounts survive a restart.
    drop(server);
    let server = Server::start(&data, &[]);
    let c2 = Client {
        http: server.https_client(),
        dir: Client::new(&server).await.dir,
        key: c.key,
        rng: c.rng,
    };
    let new_account = c2.dir["newAccount"].as_str().unwrap().to_string();
    let body = c2.sign(
        json!({"alg": "ES256", "nonce": c2.nonce().await, "url": new_account, "jwk": c2.jwk()}),
        r#"{"onlyReturnExisting":true}"#,
    );
    let (s, v, _) = c2.post(&new_account, &body, JOSE).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("deactivated")));
}
