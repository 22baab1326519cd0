//! One data dir, one running server: how `custos serve` announces itself and
//! how the other commands find it.
//!
//! `serve` holds the ledger's RocksDB lock for as long as it runs (a second
//! `serve` fails to open it) and writes `<data-dir>/server.json` with its
//! admin URL and pid. Commands that change state first try to open the
//! ledger; when it is locked they read `server.json` and `admin.token` and go
//! through the admin API. The admin token is created by `init` (0600) and
//! never logged.

use crate::support::files::{read_named, write_atomic, Visibility};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File names inside a data dir.
pub fn ledger_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ledger")
}

/// `<data-dir>/admin.token`.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.token")
}

/// `<data-dir>/server.json`.
pub fn server_file(data_dir: &Path) -> PathBuf {
    data_dir.join("server.json")
}

/// What a running server announces.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Process id.
    pub pid: u32,
    /// Base URL of the admin API's listener (`https://…`).
    pub https_url: String,
    /// Base URL of the plain-HTTP listener.
    pub http_url: String,
}

impl ServerInfo {
    /// Writes `server.json`.
    pub fn write(&self, data_dir: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(&server_file(data_dir), &json, Visibility::Public)?;
        Ok(())
    }

    /// Reads `server.json`.
    pub fn read(data_dir: &Path) -> anyhow::Result<ServerInfo> {
        let path = server_file(data_dir);
        let bytes = read_named(
            &path,
            "running server's address (is `custos serve` running?)",
        )?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not valid JSON", path.display()))
    }

    /// Removes `server.json` at shutdown.
    pub fn remove(data_dir: &Path) {
        let _ = std::fs::remove_file(server_file(data_dir));
    }
}

/// The admin API's bearer token. `Debug` never shows it.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<secret>)")
    }
}

impl AdminToken {
    /// Creates `admin.token` (0600) unless it exists; returns the token.
    pub fn ensure(data_dir: &Path) -> anyhow::Result<AdminToken> {
        let path = admin_token_path(data_dir);
        if path.exists() {
            return Self::read(data_dir);
        }
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("CSPRNG unavailable"))?;
        let token = hex::encode(bytes);
        write_atomic(&path, format!("{token}\n").as_bytes(), Visibility::Secret)?;
        Ok(AdminToken(token))
    }

    /// Reads `admin.token`.
    pub fn read(data_dir: &Path) -> anyhow::Result<AdminToken> {
        let path = admin_token_path(data_dir);
        let text = String::from_utf8(read_named(&path, "admin token")?)
            .with_context(|| format!("{}: admin token is not text", path.display()))?;
        let token = text.trim().to_string();
        if token.len() < 32 {
            anyhow::bail!(
                "{}: admin token is too short (at least 32 characters)",
                path.display()
            );
        }
        Ok(AdminToken(token))
    }

    /// The token text, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}
