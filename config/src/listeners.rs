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

/// `[tls]`: the HTTPS listener's own certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// DNS names and IP addresses in the listener certificate.
    pub server_names: Vec<String>,
    /// PEM certificate chain to use instead of one issued by our own CA.
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            server_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            cert_file: None,
            key_file: None,
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
