//! External account binding keys (RFC 8555 §7.3.4): `custos eab create
//! --name X` hands out a key id and an HS256 MAC key; a new ACME account
//! must then prove it holds them. Each key binds one account only.
//!
//! The MAC key is never stored: it is derived from the data dir's
//! `eab.secret` (0600) and the key id, and the ledger keeps only its SHA-256
//! (to recognise our own keys) and who used it. A copy of the ledger alone
//! does not reveal any key.

use crate::ledger::Ledger;
use crate::support::files::{read_named, write_atomic, Visibility};
use aws_lc_rs::hmac;
use custos_acme::jws::b64u;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::ledger::EabRecord;

/// A key as printed for the administrator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EabKey {
    /// Key id.
    pub kid: String,
    /// The HS256 MAC key, base64url (what ACME clients take as
    /// `--eab-hmac-key`).
    pub hmac_key: String,
    /// The name given.
    pub name: String,
}

/// The data dir's EAB secret.
#[derive(Clone)]
pub struct EabSecret([u8; 32]);

impl std::fmt::Debug for EabSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EabSecret(..)")
    }
}

fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("eab.secret")
}

impl EabSecret {
    /// Reads `eab.secret`, creating it (0600) on first use.
    pub fn ensure(data_dir: &Path) -> anyhow::Result<EabSecret> {
        let path = secret_path(data_dir);
        if !path.exists() {
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("CSPRNG unavailable"))?;
            write_atomic(
                &path,
                format!("{}\n", hex::encode(bytes)).as_bytes(),
                Visibility::Secret,
            )?;
        }
        let text = String::from_utf8(read_named(&path, "EAB secret")?)?;
        let bytes = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| anyhow::anyhow!("{}: not 32 hex-encoded bytes", path.display()))?;
        Ok(EabSecret(bytes))
    }

    /// The MAC key of `kid`.
    pub fn mac_key(&self, kid: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let tag = hmac::sign(&key, format!("custos-eab-v1:{kid}").as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// Makes a new key for `name` and records it.
pub fn create(ledger: &Ledger, secret: &EabSecret, name: &str, now: u64) -> anyhow::Result<EabKey> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        anyhow::bail!("--name must be 1 to 200 characters");
    }
    let kid = custos_acme::server::random_id();
    let key = secret.mac_key(&kid);
    ledger.put_eab(&EabRecord {
        kid: kid.clone(),
        name: name.to_string(),
        key_sha256: crate::model::sha256_hex(&key),
        created_at: now,
        account_id: None,
    })?;
    Ok(EabKey {
        kid,
        hmac_key: b64u(&key),
        name: name.to_string(),
    })
}

/// The MAC key of an unused key id we handed out.
pub fn usable_key(
    ledger: &Ledger,
    secret: &EabSecret,
    kid: &str,
) -> anyhow::Result<Option<[u8; 32]>> {
    let Some(record) = ledger.eab(kid)? else {
        return Ok(None);
    };
    let key = secret.mac_key(kid);
    if record.account_id.is_some() || record.key_sha256 != crate::model::sha256_hex(&key) {
        return Ok(None);
    }
    Ok(Some(key))
}

/// The audit entry of a new key: its id and name, never the MAC key.
pub fn audit_create(authority: &crate::ra::Authority, actor: &str, key: &EabKey, now: u64) {
    authority.audit(
        actor,
        "eab",
        serde_json::json!({"kid": key.kid, "name": key.name, "outcome": "created"}),
        now,
    );
}
