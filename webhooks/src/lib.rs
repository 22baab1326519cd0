//! custos-webhooks: authenticating MDM webhook deliveries and normalising
//! their payloads into one [`DeviceEvent`], without storage knowledge.
//!
//! - [`standard`]: Standard Webhooks v1 signatures (inbound and outbound).
//! - [`auth`]: the other sources' credentials (HMAC header, Basic or a
//!   header value, bearer/query token), compared in constant time.
//! - [`parse`]: each source's payload → [`Parsed`].

#![warn(clippy::unwrap_used)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod parse;
pub mod standard;

use serde::{Deserialize, Serialize};

pub use custos_model::device::DeviceEventKind;

/// One device event, whatever MDM sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// The configured source name (`[webhooks.<name>]`).
    pub source: String,
    /// The delivery's id (idempotency key), from the payload or headers.
    pub event_id: String,
    /// What happened.
    pub kind: DeviceEventKind,
    /// Hardware serial number, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// UDID, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// The MDM's own device id, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdm_id: Option<String>,
    /// When it happened (Unix seconds; the delivery time if not sent).
    pub occurred_at: u64,
}

/// What a payload turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A device event to act on.
    Event(DeviceEvent),
    /// A serial↔UDID pairing learned (NanoMDM/MicroMDM Authenticate).
    Pairing {
        /// Serial number.
        serial: String,
        /// UDID.
        udid: String,
    },
    /// An event type we do not act on (accepted with 202 and logged, so
    /// the MDM does not retry for ever).
    Ignored(String),
}
