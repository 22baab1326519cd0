//! The one issuance function every path uses (admin API and CLI, ACME, later
//! SCEP): a verified CSR + a profile + the identity the caller proved →
//! a signed certificate recorded in the ledger.
//!
//! The caller has already authenticated the requester and decided *which*
//! identifiers it may have; this module checks the CSR key against the CA's
//! own, picks a unique serial and the CRL shard, signs, and records. It does
//! no HTTP and no protocol work.

use crate::ca::profile::Profile;
use crate::ca::{Ca, LeafSpec};
use crate::csr::{CsrError, VerifiedCsr};
use crate::ledger::{CertRecord, DeviceIds, Ledger, LedgerError};
use crate::serial::Serial;
use der::asn1::Ia5String;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

/// Seconds notBefore is moved back to tolerate relying parties' clock skew.
const BACKDATE_SECS: u64 = 60;

/// What the caller proved about the requester.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// Subject to use; `None` makes `CN=<first identifier>`.
    pub subject: Option<Name>,
    /// DNS names (SAN dNSName).
    pub dns_names: Vec<String>,
    /// IP addresses (SAN iPAddress).
    pub ip_addresses: Vec<IpAddr>,
    /// E-mail addresses (SAN rfc822Name).
    pub emails: Vec<String>,
    /// URIs (SAN uniformResourceIdentifier).
    pub uris: Vec<String>,
    /// The device, when the certificate is a device's.
    pub device: DeviceIds,
    /// ACME account that ordered it.
    pub acme_account: Option<String>,
    /// How it was enrolled, when the caller says (else derived: attested
    /// device identifier → `acme-attested`, ACME account → `acme`).
    pub enrolment: Option<crate::model::device::Enrolment>,
}

impl Identity {
    /// The identity an administrator vouches for: exactly what the CSR asks
    /// (subject and the DNS/IP/e-mail/URI SANs). Other SAN types are refused.
    pub fn vouched_from_csr(csr: &VerifiedCsr) -> Result<Identity, IssueError> {
        let mut id = Identity {
            subject: (!csr.subject.0.is_empty()).then(|| csr.subject.clone()),
            ..Identity::default()
        };
        for san in &csr.requested_sans {
            match san {
                GeneralName::DnsName(n) => id.dns_names.push(n.to_string()),
                GeneralName::Rfc822Name(n) => id.emails.push(n.to_string()),
                GeneralName::UniformResourceIdentifier(n) => id.uris.push(n.to_string()),
                GeneralName::IpAddress(o) => {
                    let ip = match o.as_bytes().len() {
                        4 => <[u8; 4]>::try_from(o.as_bytes()).map(IpAddr::from).ok(),
                        16 => <[u8; 16]>::try_from(o.as_bytes()).map(IpAddr::from).ok(),
                        _ => None,
                    };
                    id.ip_addresses.push(ip.ok_or_else(|| {
                        IssueError::Refused("CSR has a malformed IP address SAN".into())
                    })?);
                }
                other => {
                    return Err(IssueError::Refused(format!(
                        "CSR asks for a subjectAltName type custos does not issue: {other:?}"
                    )))
                }
            }
        }
        Ok(id)
    }

    fn sans(&self) -> Result<Vec<GeneralName>, IssueError> {
        let ia5 = |s: &str| {
            Ia5String::new(s)
                .map_err(|_| IssueError::Refused(format!("{s:?} is not an ASCII name")))
        };
        let mut out = Vec::new();
        for n in &self.dns_names {
            out.push(GeneralName::DnsName(ia5(n)?));
        }
        for ip in &self.ip_addresses {
            out.push(GeneralName::from(*ip));
        }
        for e in &self.emails {
            out.push(GeneralName::Rfc822Name(ia5(e)?));
        }
        for u in &self.uris {
            out.push(GeneralName::UniformResourceIdentifier(ia5(u)?));
        }
        // Device certificates: RFC 4043 PermanentIdentifier for the
        // attested identifier, RFC 4108 HardwareModuleName for the serial.
        if let Some(id) = &self.device.permanent_id {
            out.push(device_names::permanent_identifier(id)?);
            if let Some(serial) = &self.device.serial_number {
                out.push(device_names::hardware_module_name(serial)?);
            }
        }
        Ok(out)
    }

    /// How this identity was enrolled.
    pub fn enrolment(&self) -> crate::model::device::Enrolment {
        use crate::model::device::Enrolment;
        self.enrolment
            .unwrap_or(if self.device.permanent_id.is_some() {
                Enrolment::AcmeAttested
            } else if self.acme_account.is_some() {
                Enrolment::Acme
            } else {
                Enrolment::Admin
            })
    }

    fn first_identifier(&self) -> Option<String> {
        self.dns_names
            .first()
            .cloned()
            .or_else(|| self.device.permanent_id.clone())
            .or_else(|| self.ip_addresses.first().map(|i| i.to_string()))
            .or_else(|| self.emails.first().cloned())
            .or_else(|| self.device.serial_number.clone())
    }
}

/// The otherName SANs of device certificates.
mod device_names {
    use super::IssueError;
    use der::asn1::{Any, OctetStringRef, Utf8StringRef};
    use der::oid::ObjectIdentifier;
    use der::{Decode, Encode};
    use x509_cert::ext::pkix::name::{GeneralName, OtherName};

    /// id-on-permanentIdentifier (RFC 4043).
    pub const ID_ON_PERMANENT_IDENTIFIER: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.8.3");
    /// id-on-hardwareModuleName (RFC 4108).
    pub const ID_ON_HARDWARE_MODULE_NAME: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.8.4");
    /// hwType of Apple devices: Apple's attested-serial-number OID.
    pub const APPLE_SERIAL_HW_TYPE: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113635.100.8.9.1");

    #[derive(der::Sequence)]
    struct PermanentIdentifier<'a> {
        identifier_value: Utf8StringRef<'a>,
    }

    #[derive(der::Sequence)]
    struct HardwareModuleName<'a> {
        hw_type: ObjectIdentifier,
        hw_serial_num: OctetStringRef<'a>,
    }

    fn other_name(type_id: ObjectIdentifier, value: Vec<u8>) -> Result<GeneralName, IssueError> {
        let value = Any::from_der(&value).map_err(|e| IssueError::Signing(e.to_string()))?;
        Ok(GeneralName::OtherName(OtherName { type_id, value }))
    }

    pub fn permanent_identifier(id: &str) -> Result<GeneralName, IssueError> {
        let value = PermanentIdentifier {
            identifier_value: Utf8StringRef::new(id)
                .map_err(|e| IssueError::Refused(format!("permanent identifier: {e}")))?,
        }
        .to_der()
        .map_err(|e| IssueError::Signing(e.to_string()))?;
        other_name(ID_ON_PERMANENT_IDENTIFIER, value)
    }

    pub fn hardware_module_name(serial: &str) -> Result<GeneralName, IssueError> {
        let value = HardwareModuleName {
            hw_type: APPLE_SERIAL_HW_TYPE,
            hw_serial_num: OctetStringRef::new(serial.as_bytes())
                .map_err(|e| IssueError::Refused(format!("serial: {e}")))?,
        }
        .to_der()
        .map_err(|e| IssueError::Signing(e.to_string()))?;
        other_name(ID_ON_HARDWARE_MODULE_NAME, value)
    }
}

/// Why issuance failed, by whose fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The CSR is unacceptable (requester's fault).
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The request is refused by policy (requester's fault).
    #[error("issuance refused: {0}")]
    Refused(String),
    /// The ledger failed (ours).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Signing or encoding failed (ours).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A certificate just issued.
#[derive(Clone, Debug)]
pub struct Issued {
    /// What the ledger now holds.
    pub record: CertRecord,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// Signs and records certificates.
#[derive(Clone, Debug)]
pub struct Issuer {
    ca: Arc<Ca>,
    ledger: Arc<Ledger>,
    crl_shards: u32,
}

/// The CRL shard a serial belongs to; fixed at issuance (the count may change
/// later without moving existing certificates, since the shard is stored).
pub fn shard_for(serial: &Serial, shards: u32) -> u32 {
    let bytes = serial.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(4)..];
    let mut v = [0u8; 4];
    v[4 - tail.len()..].copy_from_slice(tail);
    u32::from_be_bytes(v) % shards.max(1)
}

impl Issuer {
    /// An issuer over this CA and ledger, spreading certificates over `crl_shards`.
    pub fn new(ca: Arc<Ca>, ledger: Arc<Ledger>, crl_shards: u32) -> Issuer {
        Issuer {
            ca,
            ledger,
            crl_shards,
        }
    }

    /// The CA.
    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Issues a certificate for `csr` shaped by `profile` to `identity`.
    pub fn issue(
        &self,
        csr: &VerifiedCsr,
        profile: &Profile,
        identity: &Identity,
        now: u64,
    ) -> Result<Issued, IssueError> {
        if self.ca.is_ca_key(&csr.spki_der) {
            return Err(CsrError::CaKey.into());
        }
        let sans = identity.sans()?;
        let subject = match &identity.subject {
            Some(s) => s.clone(),
            None => {
                let first = identity.first_identifier().ok_or_else(|| {
                    IssueError::Refused("no subject and no identifier to certify".into())
                })?;
                let escaped = first
                    .replace('\\', "\\\\")
                    .replace(',', "\\,")
                    .replace('+', "\\+");
                Name::from_str(&format!("CN={escaped}"))
                    .map_err(|e| IssueError::Refused(format!("bad identifier {first:?}: {e}")))?
            }
        };
        let serial = self.fresh_serial()?;
        let crl_shard = shard_for(&serial, self.crl_shards);
        let issuer_not_after = self
            .ca
            .issuer_cert()
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs();
        let not_before = now.saturating_sub(BACKDATE_SECS);
        let not_after = (now + profile.validity_secs).min(issuer_not_after);
        let (_, der) = self
            .ca
            .sign_leaf(LeafSpec {
                serial: serial.clone(),
                subject: subject.clone(),
                spki: csr.spki.clone(),
                not_before,
                not_after,
                key_usage: profile.key_usage,
                ext_key_usage: profile.ext_key_usage.clone(),
                sans,
                crl_shard,
            })
            .map_err(|e| IssueError::Signing(e.to_string()))?;
        let record = CertRecord {
            serial,
            issuer_id: self.ca.issuer_id().to_string(),
            subject: subject.to_string(),
            not_before,
            not_after,
            issued_at: now,
            dns_names: identity.dns_names.clone(),
            ip_addresses: identity
                .ip_addresses
                .iter()
                .map(|i| i.to_string())
                .collect(),
            device: identity.device.clone(),
            acme_account: identity.acme_account.clone(),
            profile: profile.name.clone(),
            crl_shard,
            revocation: None,
        };
        self.ledger.insert(&record, &der)?;
        Ok(Issued { record, der })
    }

    /// Records a certificate this CA signed outside the profiles (an
    /// enrolled responder's delegated OCSP certificate) under `profile`, so
    /// that it is listed, answered for and revocable like any other.
    pub fn record_signed(
        &self,
        der: &[u8],
        profile: &str,
        now: u64,
    ) -> Result<CertRecord, IssueError> {
        use der::Decode;
        let bad = |e: String| IssueError::Signing(format!("recording a signed certificate: {e}"));
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let serial =
            Serial::from_bytes(tbs.serial_number.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let record = CertRecord {
            crl_shard: shard_for(&serial, self.crl_shards),
            serial,
            issuer_id: self.ca.issuer_id().to_string(),
            subject: tbs.subject.to_string(),
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
            issued_at: now,
            dns_names: vec![],
            ip_addresses: vec![],
            device: Default::default(),
            acme_account: None,
            profile: profile.to_string(),
            revocation: None,
        };
        self.ledger.insert(&record, der)?;
        Ok(record)
    }

    fn fresh_serial(&self) -> Result<Serial, IssueError> {
        // 128 random bits collide with negligible probability; the check makes
        // uniqueness a fact rather than a likelihood.
        for _ in 0..8 {
            let serial = Serial::random();
            if !self.ledger.contains(&serial)? {
                return Ok(serial);
            }
        }
        Err(IssueError::Signing(
            "could not find an unused serial".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_in_range() {
        let s: Serial = "0102030405".parse().unwrap();
        assert_eq!(shard_for(&s, 1), 0);
        assert_eq!(shard_for(&s, 7), shard_for(&s, 7));
        for _ in 0..100 {
            assert!(shard_for(&Serial::random(), 5) < 5);
        }
    }
}
