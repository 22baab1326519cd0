//! custos-webhooks: authenticating MDM webhook deliveries and normalising
//! their payloads into device events, without storage knowledge.
//!
//! Filled by the MDM webhooks issue; for now it names the event kinds the
//! domain will act on.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// What happened to a device, normalised across MDMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceEventKind {
    /// Reported lost or stolen.
    Lost,
    /// Remotely wiped.
    Wiped,
    /// Left management.
    Unenrolled,
    /// Removed from the MDM.
    Deleted,
    /// Fell out of compliance.
    NonCompliant,
    /// Back in compliance.
    Compliant,
    /// Found again.
    Found,
    /// Enrolled.
    Enrolled,
}
