//! `[http]`, `[tls]` and `[log]`: how the listeners treat connections, the
//! HTTPS listener's certificate, and logging.

use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `custos=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// `[http]`: limits both listeners put on every client connection.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Seconds a client may take to send a request's headers (HTTP/1).
    pub header_timeout_secs: u64,
    /// Seconds a connection may sit with no request under way and no bytes
    /// moving before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a client may take to send a request's body.
    pub body_timeout_secs: u64,
    /// Open connections per listener; past it new connections wait in the
    /// kernel's accept queue (counted in `custos_http_connections_waited_total`).
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_timeout_secs: 10,
            max_connections: 10_000,
        }
    }
}

/// `[tls]`: the HTTPS listener's own certificate. `cert_file` and
/// `key_file` come as a pair ([`TlsFiles`]) or not at all; one without the
/// other cannot be loaded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "TlsKeys", into = "TlsKeys")]
pub struct TlsConfig {
    /// DNS names and IP addresses in the listener certificate.
    pub server_names: Vec<String>,
    /// A certificate chain and key to use instead of one issued by our own
    /// CA (`cert_file`, `key_file`).
    pub files: Option<TlsFiles>,
}

/// `tls.cert_file` and `tls.key_file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
}

/// `[tls]` as written in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TlsKeys {
    server_names: Vec<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

impl Default for TlsKeys {
    fn default() -> Self {
        TlsConfig::default().into()
    }
}

impl TryFrom<TlsKeys> for TlsConfig {
    type Error = String;

    fn try_from(k: TlsKeys) -> Result<Self, String> {
        let files = match (k.cert_file, k.key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err("tls.cert_file and tls.key_file go together".into()),
        };
        Ok(TlsConfig {
            server_names: k.server_names,
            files,
        })
    }
}

impl From<TlsConfig> for TlsKeys {
    fn from(c: TlsConfig) -> Self {
        let (cert_file, key_file) = match c.files {
            Some(f) => (Some(f.cert), Some(f.key)),
            None => (None, None),
        };
        TlsKeys {
            server_names: c.server_names,
            cert_file,
            key_file,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            server_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            files: None,
        }
    }
}

impl HttpConfig {
    /// The checks serde cannot make (ranges, relations between keys).
    pub(super) fn check(&self) -> anyhow::Result<()> {
        for (key, v) in [
            ("header_timeout_secs", self.header_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
        ] {
            if v == 0 || v > 3600 {
                bail!("configuration error: http.{key} must be between 1 and 3600");
            }
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            bail!("configuration error: http.max_connections must be between 1 and 1000000");
        }
        Ok(())
    }
}
