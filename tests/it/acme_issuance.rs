//! ACME issuance end to end with a real client crate (instant-acme) over
//! HTTPS: account, order for an IP identifier, http-01 answered by a small
//! HTTP server in the test, finalize with an rcgen CSR, certificate chain
//! download checked by `openssl verify` and `openssl ocsp`; then the
//! refusals: names outside policy, a CSR that does not match, the account
//! key in the CSR, finalize before the order is ready, a wrong http-01
//! answer.

use crate::common;

use common::{openssl, Server};
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy, RevocationReason, RevocationRequest,
};
use rustls::pki_types::Der;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Serves `/.well-known/acme-challenge/<token>` from `tokens`.
async fn challenge_server(listener: tokio::net::TcpListener, tokens: Tokens) {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    let app = axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(
                |State(t): State<Tokens>, Path(token): Path<String>| async move {
                    match t.lock().unwrap().get(&token) {
                        Some(v) => (StatusCode::OK, v.clone()),
                        None => (StatusCode::NOT_FOUND, String::new()),
                    }
                },
            ),
        )
        .with_state(tokens);
    axum::serve(listener, app).await.unwrap();
}

fn csr_der(names: &[&str], key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(key).unwrap().der().to_vec()
}

pub(crate) fn pem_to_der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
        .into()
}

/// The AKI keyIdentifier and serial content bytes of a DER certificate.
pub(crate) fn cert_id_parts(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der).unwrap();
    let aki = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::AuthorityKeyIdentifier>()
        .unwrap()
        .unwrap()
        .1
        .key_identifier
        .unwrap();
    (
        aki.as_bytes().to_vec(),
        cert.tbs_certificate.serial_number.as_bytes().to_vec(),
    )
}

fn retry() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(100))
        .timeout(Duration::from_secs(20))
}

/// Starts the http-01 challenge server and writes `dir/custos.toml`: ACME
/// for 127.0.0.0/8 validated on that server's port, plus `extra` `[acme]`
/// lines. Returns the tokens the server answers from.
async fn http01_setup(dir: &std::path::Path, extra: &str) -> Tokens {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tokens: Tokens = Arc::default();
    tokio::spawn(challenge_server(listener, tokens.clone()));
    std::fs::write(
        dir.join("custos.toml"),
        format!("[acme]\nallowed_ip_ranges = [\"127.0.0.0/8\"]\nhttp01_port = {port}\n{extra}"),
    )
    .unwrap();
    tokens
}

#[tokio::test(flavor = "multi_thread")]
async fn instant_acme_gets_a_certificate_through_http01_and_refusals_change_nothing() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = http01_setup(
        dir.path(),
        "allowed_dns_suffixes = [\"corp.example\"]\nvalidation_attempts = 1\n",
    )
    .await;
    let server = Server::start(&data, &[]);
    let root = data.join("ca/root.pem");
    // The account key is kept, to try it in a CSR below.
    let (account_key, account_pkcs8) = instant_acme::Key::generate_pkcs8().unwrap();
    let account_key_pair =
        rcgen::KeyPair::try_from(account_pkcs8.secret_pkcs8_der()).expect("account key as rcgen");
    let (mut account, _) = Account::builder_with_root(&root)
        .unwrap()
        .create_from_key(
            (account_key, account_pkcs8.into()),
            format!("{}/acme/directory", server.https_url),
        )
        .await
        .unwrap();

    // A name outside policy: rejectedIdentifier, with the identifier named.
    let outside = [Identifier::Dns("www.elsewhere.example".into())];
    let Err(err) = account.new_order(&NewOrder::new(&outside)).await else {
        panic!("an order outside policy was accepted");
    };
    let text = format!("{err:?}");
    assert!(
        text.contains("rejectedIdentifier") && text.contains("www.elsewhere.example"),
        "{text}"
    );

    // The happy path.
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let ids = [Identifier::Ip(ip)];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(order.state().status, OrderStatus::Pending);

    // Finalize before the authorizations are valid: orderNotReady.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let err = order
        .finalize_csr(&csr_der(&["127.0.0.1"], &key))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("orderNotReady"), "{err:?}");

    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.unwrap();
        assert_eq!(authz.status, AuthorizationStatus::Pending);
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .expect("http-01 offered");
        tokens.lock().unwrap().insert(
            challenge.token.clone(),
            challenge.key_authorization().as_str().to_string(),
        );
        challenge.set_ready().await.unwrap();
    }
    assert_eq!(
        order.poll_ready(&retry()).await.unwrap(),
        OrderStatus::Ready
    );

    // A CSR naming something else: badCSR, and the order stays ready.
    let err = order
        .finalize_csr(&csr_der(&["127.0.0.2"], &key))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("badCSR"), "{err:?}");
    // The account key as the certificate key: badCSR.
    let err = order
        .finalize_csr(&csr_der(&["127.0.0.1"], &account_key_pair))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("account key"), "{err:?}");
    assert_eq!(order.refresh().await.unwrap().status, OrderStatus::Ready);

    order
        .finalize_csr(&csr_der(&["127.0.0.1"], &key))
        .await
        .unwrap();
    let chain = order.poll_certificate(&retry()).await.unwrap();
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf and issuer"
    );
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, &chain).unwrap();
    let out = openssl(&[
        "verify",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        leaf.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(
        &openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]).stdout,
    )
    .to_string();
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    let ocsp = common::ocsp_says(&server, &leaf);
    let said = ocsp;
    assert!(
        said.contains(": good") && said.contains("Response verify OK"),
        "{said}"
    );

    // ARI: the window lies ahead, and a renewal order may name the
    // certificate it replaces.
    let (aki, serial_bytes) = cert_id_parts(&pem_to_der(&chain));
    let cert_id = CertificateIdentifier::new(Der::from_slice(&aki), Der::from_slice(&serial_bytes));
    let (info, retry_after) = account.renewal_info(&cert_id).await.expect("renewal info");
    let now = time::OffsetDateTime::now_utc();
    assert!(
        info.suggested_window.start > now
            && info.suggested_window.end > info.suggested_window.start
    );
    assert!(retry_after.as_secs() > 3600);
    let renewal = account
        .new_order(&NewOrder::new(&ids).replaces(cert_id.clone()))
        .await
        .expect("renewal order");
    drop(renewal);

    // Key rollover, then revocation by the (same) account under its new
    // key: the real `openssl ocsp` client then says revoked.
    let _credentials = account.update_key().await.expect("key change");
    let leaf_der = pem_to_der(&chain);
    let request = |reason| RevocationRequest {
        certificate: &leaf_der,
        reason: Some(reason),
    };
    let err = account
        .revoke(&request(RevocationReason::CaCompromise))
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("badRevocationReason"),
        "{err:?}"
    );
    account
        .revoke(&request(RevocationReason::KeyCompromise))
        .await
        .expect("revoked");
    let err = account
        .revoke(&request(RevocationReason::KeyCompromise))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("alreadyRevoked"), "{err:?}");
    let ocsp = common::ocsp_says(&server, &leaf);
    let said = ocsp;
    assert!(
        said.contains(": revoked") && said.contains("keyCompromise"),
        "{said}"
    );

    // Revoked: ARI says renew now.
    let (info, _) = account.renewal_info(&cert_id).await.unwrap();
    assert!(info.suggested_window.end < time::OffsetDateTime::now_utc());

    // Another account may not revoke it.
    let stranger = common::acme_account(&server).await;
    let err = stranger
        .revoke(&request(RevocationReason::Superseded))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("unauthorized"), "{err:?}");
    let Err(err) = stranger
        .new_order(&NewOrder::new(&ids).replaces(cert_id.clone()))
        .await
    else {
        panic!("a stranger's order replaced our certificate");
    };
    assert!(format!("{err:?}").contains("unauthorized"), "{err:?}");

    // A wrong http-01 answer: the challenge and authorization go invalid,
    // with the problem on the challenge.
    let mut bad = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authorizations = bad.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let mut challenge = authz.challenge(ChallengeType::Http01).unwrap();
        tokens
            .lock()
            .unwrap()
            .insert(challenge.token.clone(), "not the key authorization".into());
        challenge.set_ready().await.unwrap();
    }
    let status = bad.poll_ready(&retry()).await.unwrap();
    assert_eq!(status, OrderStatus::Invalid);
}

#[tokio::test(flavor = "multi_thread")]
async fn new_orders_past_the_hourly_limit_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("custos.toml"),
        "[acme]\nallowed_ip_ranges = [\"127.0.0.0/8\"]\nnew_orders_per_account_per_hour = 2\n",
    )
    .unwrap();
    let server = Server::start(&data, &[]);
    let account = common::acme_account(&server).await;
    let ids = [Identifier::Ip("127.0.0.1".parse().unwrap())];
    for _ in 0..2 {
        account.new_order(&NewOrder::new(&ids)).await.unwrap();
    }
    let Err(err) = account.new_order(&NewOrder::new(&ids)).await else {
        panic!("a third order within the hour was accepted");
    };
    let text = format!("{err:?}");
    assert!(
        text.contains("rateLimited") && text.contains("2 new orders per hour"),
        "{text}"
    );
}

/// A validation under way when the server is killed is finished after the
/// restart: the challenge does not stay `processing` for ever.
#[tokio::test(flavor = "multi_thread")]
async fn validations_interrupted_by_kill_9_finish_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The challenge server stalls the first fetch long enough to kill custos.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tokens: Tokens = Arc::default();
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        use axum::extract::{Path, State};
        let state = (tokens.clone(), fetches.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/acme-challenge/{token}",
                axum::routing::get(
                    |State((t, n)): State<(Tokens, Arc<std::sync::atomic::AtomicUsize>)>,
                     Path(token): Path<String>| async move {
                        if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                        t.lock().unwrap().get(&token).cloned().unwrap_or_default()
                    },
                ),
            )
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
    std::fs::write(
        dir.path().join("custos.toml"),
        format!("[acme]\nallowed_ip_ranges = [\"127.0.0.0/8\"]\nhttp01_port = {port}\nvalidation_timeout_secs = 30\n"),
    )
    .unwrap();
    let (http, https) = (common::free_addr(), common::free_addr());
    let mut server = Server::start_on(&data, &http, &https, &[]);
    let account = common::acme_account(&server).await;
    let ids = [Identifier::Ip("127.0.0.1".parse().unwrap())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authorizations = order.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let mut challenge = authz.challenge(ChallengeType::Http01).unwrap();
        tokens.lock().unwrap().insert(
            challenge.token.clone(),
            challenge.key_authorization().as_str().to_string(),
        );
        challenge.set_ready().await.unwrap();
    }
    // Wait for the stalled fetch, then SIGKILL.
    for _ in 0..100 {
        if fetches.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fetches.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "validation never started"
    );
    server.child.kill().unwrap();
    let _ = server.child.wait();
    drop(server);
    let _server = Server::start_on(&data, &http, &https, &[]);
    assert_eq!(
        order.poll_ready(&retry()).await.unwrap(),
        OrderStatus::Ready
    );
    assert!(fetches.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

/// A tiny authoritative DNS server answering TXT queries from `records`
/// (name without trailing dot → values); NXDOMAIN for anything else.
async fn dns_server(socket: tokio::net::UdpSocket, records: Tokens) {
    use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
    use hickory_resolver::proto::rr::rdata::TXT;
    use hickory_resolver::proto::rr::{RData, Record};
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let mut answer = Message::new();
        answer.set_id(query.id());
        answer.set_message_type(MessageType::Response);
        answer.set_authoritative(true);
        answer.set_recursion_available(true);
        for q in query.queries() {
            answer.add_query(q.clone());
            let name = q
                .name()
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            match records.lock().unwrap().get(&name) {
                Some(value) => {
                    answer.add_answer(Record::from_rdata(
                        q.name().clone(),
                        0,
                        RData::TXT(TXT::new(vec![value.clone()])),
                    ));
                }
                None => {
                    answer.set_response_code(ResponseCode::NXDomain);
                }
            }
        }
        if let Ok(bytes) = answer.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dns01_with_a_txt_record_gets_a_certificate_for_a_dns_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns = socket.local_addr().unwrap();
    let records: Tokens = Arc::default();
    tokio::spawn(dns_server(socket, records.clone()));
    std::fs::write(
        dir.path().join("custos.toml"),
        format!("[acme]\nallowed_dns_suffixes = [\"corp.example\"]\ndns_resolver = \"{dns}\"\nvalidation_attempts = 1\n"),
    )
    .unwrap();
    let server = Server::start(&data, &[]);
    let account = common::acme_account(&server).await;

    // Without the record: the challenge fails with the problem recorded.
    let name = "radius.corp.example";
    let ids = [Identifier::Dns(name.into())];
    let mut first = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authorizations = first.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let mut challenge = authz
            .challenge(ChallengeType::Dns01)
            .expect("dns-01 offered");
        challenge.set_ready().await.unwrap();
    }
    assert_eq!(
        first.poll_ready(&retry()).await.unwrap(),
        OrderStatus::Invalid
    );

    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authorizations = order.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let mut challenge = authz.challenge(ChallengeType::Dns01).unwrap();
        records.lock().unwrap().insert(
            format!("_acme-challenge.{name}"),
            challenge.key_authorization().dns_value(),
        );
        challenge.set_ready().await.unwrap();
    }
    assert_eq!(
        order.poll_ready(&retry()).await.unwrap(),
        OrderStatus::Ready
    );
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    order.finalize_csr(&csr_der(&[name], &key)).await.unwrap();
    let chain = order.poll_certificate(&retry()).await.unwrap();
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, &chain).unwrap();
    let text = String::from_utf8_lossy(
        &openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]).stdout,
    )
    .to_string();
    assert!(text.contains(&format!("DNS:{name}")), "{text}");

    // revokeCert signed with the certificate's own key (jwk, no account).
    let status = revoke_with_certificate_key(&server, &key, &pem_to_der(&chain)).await;
    assert_eq!(status, 200);
    let out = common::ocsp_says(&server, &leaf);
    assert!(out.contains(": revoked"));
}

/// POSTs revoke-cert signed by `key` (a P-384 certificate key) with `jwk`.
async fn revoke_with_certificate_key(server: &Server, key: &rcgen::KeyPair, cert: &[u8]) -> u16 {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &key.serialize_der()).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-384", "x": B64.encode(&point[1..49]), "y": B64.encode(&point[49..])});
    let http = server.https_client();
    let nonce = http
        .head(format!("{}/acme/new-nonce", server.https_url))
        .send()
        .await
        .unwrap()
        .headers()["replay-nonce"]
        .to_str()
        .unwrap()
        .to_string();
    let url = format!("{}/acme/revoke-cert", server.https_url);
    let protected = B64.encode(
        serde_json::json!({"alg": "ES384", "nonce": nonce, "url": url, "jwk": jwk}).to_string(),
    );
    let payload =
        B64.encode(serde_json::json!({"certificate": B64.encode(cert), "reason": 1}).to_string());
    let sig = pair
        .sign(
            &aws_lc_rs::rand::SystemRandom::new(),
            format!("{protected}.{payload}").as_bytes(),
        )
        .unwrap();
    let body = serde_json::json!({"protected": protected, "payload": payload, "signature": B64.encode(sig.as_ref())});
    http.post(url)
        .header("content-type", "application/jose+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Answers every http-01 challenge of `order` with the account's key
/// authorization and waits for the order to be ready.
async fn validate_http01(order: &mut instant_acme::Order, tokens: &Tokens) {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.unwrap();
        let mut challenge = authz.challenge(ChallengeType::Http01).unwrap();
        tokens.lock().unwrap().insert(
            challenge.token.clone(),
            challenge.key_authorization().as_str().to_string(),
        );
        challenge.set_ready().await.unwrap();
    }
    assert_eq!(
        order.poll_ready(&retry()).await.unwrap(),
        OrderStatus::Ready
    );
}

/// Revocation by authorization reads an index of the account's
/// authorizations; orders and authorizations are deleted a day after they
/// expire, and what the issued certificate needs (its record, its status,
/// revocation by its key) stays.
#[tokio::test(flavor = "multi_thread")]
async fn expired_orders_are_deleted_and_certificates_stay_revocable() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = http01_setup(
        dir.path(),
        "order_lifetime_days = 1\nauthz_lifetime_days = 2\n",
    )
    .await;
    let (http, https) = (common::free_addr(), common::free_addr());
    let server = Server::start_on(&data, &http, &https, &[]);
    let ids = [Identifier::Ip("127.0.0.1".parse().unwrap())];

    // Two certificates ordered by one account.
    let owner = common::acme_account(&server).await;
    let mut issued = Vec::new();
    let mut order_urls = Vec::new();
    for _ in 0..2 {
        let mut order = owner.new_order(&NewOrder::new(&ids)).await.unwrap();
        validate_http01(&mut order, &tokens).await;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        order
            .finalize_csr(&csr_der(&["127.0.0.1"], &key))
            .await
            .unwrap();
        let chain = order.poll_certificate(&retry()).await.unwrap();
        order_urls.push(order.url().to_string());
        issued.push((pem_to_der(&chain), key));
    }
    // Another account holding a valid authorization for the same address
    // may revoke the first (found through the authorization index).
    let other = common::acme_account(&server).await;
    let mut other_order = other.new_order(&NewOrder::new(&ids)).await.unwrap();
    validate_http01(&mut other_order, &tokens).await;
    order_urls.push(other_order.url().to_string());
    other
        .revoke(&RevocationRequest {
            certificate: &issued[0].0,
            reason: Some(RevocationReason::Superseded),
        })
        .await
        .expect("revoked by an account holding the authorization");
    drop(server);

    // Offline: nothing is due before the authorizations' expiry plus a
    // day; after it, all three orders go with their authorizations.
    let config = custos::config::Config::load(
        None,
        &custos::config::Overrides {
            data_dir: Some(data.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let order_ids: Vec<String> = order_urls
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect();
    let serial = |der: &[u8]| {
        let cert = <x509_cert::Certificate as der::Decode>::from_der(der).unwrap();
        custos::serial::Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes()).unwrap()
    };
    {
        let ledger = custos::app::open_ledger(&config).unwrap();
        let now = custos::model::time::unix_now();
        assert_eq!(ledger.delete_expired_acme(now + 86_400, 100).unwrap(), 0);
        let authz_ids = ledger.acme_order(&order_ids[0]).unwrap().unwrap().authz_ids;
        // The hourly job's work, at that time: it deletes all three and
        // leaves one audit entry saying so.
        let app = custos::app::App::build(config.clone(), ledger, None, false).unwrap();
        assert_eq!(
            custos::jobs::delete_expired_acme_at(&app, now + 3 * 86_400 + 60).unwrap(),
            3
        );
        let ledger = app.ledger.clone();
        for id in &order_ids {
            assert!(ledger.acme_order(id).unwrap().is_none(), "order {id} kept");
        }
        assert!(ledger.acme_authz(&authz_ids[0]).unwrap().is_none());
        assert!(ledger.acme_processing_authzs().unwrap().is_empty());
        // Their certificates are untouched.
        let first = ledger.get(&serial(&issued[0].0)).unwrap().unwrap();
        assert!(first.revocation.is_some());
        assert!(ledger
            .get(&serial(&issued[1].0))
            .unwrap()
            .unwrap()
            .revocation
            .is_none());
        assert_eq!(
            ledger
                .delete_expired_acme(now + 3 * 86_400 + 60, 100)
                .unwrap(),
            0
        );
    }

    let audit = common::custos(&data, &["audit", "--kind", "acme_cleanup", "--json"]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.matches("\"kind\": \"acme_cleanup\"").count() == 1
            && text.contains("\"orders_deleted\": 3")
            && text.contains("\"actor\": \"serve\""),
        "{text}"
    );
    // Served again: the deleted order is gone for its account too, the
    // second certificate is still revocable by the account that ordered it,
    // and OCSP says so.
    let server = Server::start_on(&data, &http, &https, &[]);
    let gone = owner.order(order_urls[1].clone()).await;
    assert!(
        format!("{:?}", gone.err()).contains("404"),
        "a deleted order was served"
    );
    owner
        .revoke(&RevocationRequest {
            certificate: &issued[1].0,
            reason: Some(RevocationReason::Superseded),
        })
        .await
        .expect("revoked by the account that ordered it");
    let leaf = dir.path().join("second.pem");
    let pem =
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &issued[1].0).unwrap();
    std::fs::write(&leaf, pem).unwrap();
    let said = common::ocsp_says(&server, &leaf);
    assert!(said.contains(": revoked"), "{said}");
}
