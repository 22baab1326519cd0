//! The HTTPS listener's certificate and rustls configuration.
//!
//! By default the listener presents a certificate issued by custos's own CA
//! (recorded in the ledger like any other) for `tls.server_names` plus the
//! host of `public_https_url`; it is reused across restarts until a third of
//! its life is left or the names change. `tls.cert_file`/`tls.key_file`
//! replace it with an operator-provided one.

use crate::app::App;
use crate::ca::key::{KeyAlgorithm, SigningKey};
use crate::ca::profile::Profile;
use crate::ca::to_pem;
use crate::config::TlsFiles;
use crate::csr::VerifiedCsr;
use crate::ra::issuance::Identity;
use crate::support::files::{read_named, write_atomic, Visibility};
use anyhow::{anyhow, Context};
use der::Decode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use x509_cert::Certificate;

/// Where the listener certificate lives.
pub fn paths(app: &App) -> (PathBuf, PathBuf, PathBuf) {
    let dir = app.config.data_dir.join("tls");
    (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("server.names"),
    )
}

fn wanted_names(app: &App) -> Vec<String> {
    let mut names = app.config.tls.server_names.clone();
    if let Some(url) = &app.config.public_https_url {
        if let Some(host) = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .filter(|h| !h.is_empty())
        {
            names.push(host.to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

fn reusable(
    cert_path: &PathBuf,
    key_path: &std::path::Path,
    names_path: &PathBuf,
    names: &str,
    issuer: &Certificate,
) -> bool {
    let Ok(stored) = std::fs::read_to_string(names_path) else {
        return false;
    };
    if stored != names {
        return false;
    }
    let Ok(pem) = std::fs::read(cert_path) else {
        return false;
    };
    // The file holds the leaf, then the issuing CA: the leaf is the first.
    let Some(cert) = Certificate::load_pem_chain(&pem)
        .ok()
        .and_then(|c| c.into_iter().next())
    else {
        return false;
    };
    // Issued by the CA in use now (a data dir's CA can be replaced).
    if der::Encode::to_der(&cert.tbs_certificate.issuer).ok()
        != der::Encode::to_der(&issuer.tbs_certificate.subject).ok()
    {
        return false;
    }
    if !key_path.is_file() {
        return false;
    }
    let v = &cert.tbs_certificate.validity;
    let nb = v.not_before.to_unix_duration().as_secs();
    let na = v.not_after.to_unix_duration().as_secs();
    let now = crate::model::time::unix_now();
    now + (na.saturating_sub(nb)) / 3 < na
}

/// Issues (or reuses) the listener certificate; returns the rustls acceptor.
pub fn acceptor(app: &App) -> anyhow::Result<TlsAcceptor> {
    let (chain, key) = match &app.config.tls.files {
        Some(files) => load_operator_cert(files)?,
        None => own_cert(app)?,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| anyhow!("HTTPS listener certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn load_operator_cert(
    files: &TlsFiles,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (cert, key) = (&files.cert, &files.key);
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{}: tls.cert_file: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{}: tls.cert_file holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow!("{}: tls.key_file: {e}", key.display()))?;
    Ok((chain, key))
}

fn own_cert(app: &App) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (cert_path, key_path, names_path) = paths(app);
    let names = wanted_names(app);
    let names_text = names.join("\n");
    if !reusable(
        &cert_path,
        &key_path,
        &names_path,
        &names_text,
        app.ca.issuer_cert(),
    ) {
        let key = SigningKey::generate(KeyAlgorithm::P256)?;
        let mut identity = Identity::default();
        for n in &names {
            match n.parse::<IpAddr>() {
                Ok(ip) => identity.ip_addresses.push(ip),
                Err(_) => identity.dns_names.push(n.clone()),
            }
        }
        let csr = VerifiedCsr::for_own_key(key.spki_der())?;
        let issued = app
            .authority
            .issuer()
            .issue(
                &csr,
                &Profile::tls_server(),
                &identity,
                crate::model::time::unix_now(),
            )
            .context("issuing the HTTPS listener certificate")?;
        let pem = format!("{}{}", to_pem(&issued.der), to_pem(app.ca.issuer_der()));
        write_atomic(
            &key_path,
            key.to_pkcs8_pem()?.as_bytes(),
            Visibility::Secret,
        )?;
        write_atomic(&cert_path, pem.as_bytes(), Visibility::Public)?;
        write_atomic(&names_path, names_text.as_bytes(), Visibility::Public)?;
        tracing::info!(serial = %issued.record.serial, "issued the HTTPS listener certificate");
        app.authority.audit(
            "serve",
            "issuance",
            serde_json::json!({
                "certificate": issued.record.serial.to_hex(),
                "subject": issued.record.subject,
                "profile": "tls-server",
                "not_after": issued.record.not_after,
                "outcome": "issued",
            }),
            crate::model::time::unix_now(),
        );
    }
    let pem = read_named(&cert_path, "HTTPS listener certificate")?;
    let chain = Certificate::load_pem_chain(&pem)
        .map_err(|e| anyhow!("{}: {e}", cert_path.display()))?
        .into_iter()
        .map(|c| der::Encode::to_der(&c).map(CertificateDer::from))
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| anyhow!("{}: HTTPS listener key: {e}", key_path.display()))?;
    let _ = Certificate::from_der(&chain[0]);
    Ok((chain, key))
}
