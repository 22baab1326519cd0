//! Assembling and signing X.509 certificates from parts.
//!
//! Callers decide *what* goes into a certificate (names, validity,
//! extensions); this module only encodes a `TBSCertificate`, signs it with a
//! [`SigningKey`] and returns the DER. It makes no policy decisions.

use super::key::SigningKey;
use crate::serial::Serial;
use der::asn1::{GeneralizedTime, Ia5String, OctetString, UtcTime};
use der::oid::{AssociatedOid, ObjectIdentifier};
use der::{DateTime, Encode};
use spki::SubjectPublicKeyInfoOwned;
use std::time::Duration;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    crl::dp::DistributionPoint, AccessDescription, AuthorityInfoAccessSyntax,
    AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::{Time, Validity};

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
pub const ID_PKIX_OCSP_NOCHECK: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-ad-ocsp.
pub const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
/// id-ad-caIssuers.
pub const ID_AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");

/// Failure to encode or sign a certificate: always our fault, never the requester's.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An encoding step failed (a name or URL that does not fit its ASN.1 type).
    #[error("certificate encoding failed: {0}")]
    Encode(#[from] der::Error),
    /// The key refused to sign.
    #[error(transparent)]
    Sign(#[from] super::key::KeyError),
}

/// Everything that differs between the certificates we issue.
pub struct CertParts {
    /// Serial number.
    pub serial: Serial,
    /// Subject name.
    pub subject: Name,
    /// Subject public key.
    pub spki: SubjectPublicKeyInfoOwned,
    /// notBefore, as seconds since the Unix epoch.
    pub not_before: u64,
    /// notAfter, as seconds since the Unix epoch.
    pub not_after: u64,
    /// Extensions, in order.
    pub extensions: Vec<Extension>,
}

/// Encodes and signs a certificate; returns it parsed and as DER.
pub fn sign_certificate(
    parts: CertParts,
    issuer: &Name,
    issuer_key: &SigningKey,
) -> Result<(Certificate, Vec<u8>), BuildError> {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: parts.serial.to_x509(),
        signature: issuer_key.signature_algorithm(),
        issuer: issuer.clone(),
        validity: Validity {
            not_before: x509_time(parts.not_before)?,
            not_after: x509_time(parts.not_after)?,
        },
        subject: parts.subject,
        subject_public_key_info: parts.spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: if parts.extensions.is_empty() {
            None
        } else {
            Some(parts.extensions)
        },
    };
    let tbs_der = tbs.to_der()?;
    let signature = issuer_key.sign_bitstring(&tbs_der)?;
    let cert = Certificate {
        signature_algorithm: tbs.signature.clone(),
        tbs_certificate: tbs,
        signature,
    };
    let der = cert.to_der()?;
    Ok((cert, der))
}

/// A time as RFC 5280 wants it: UTCTime through 2049, GeneralizedTime after.
pub fn x509_time(unix_secs: u64) -> der::Result<Time> {
    let dt = DateTime::from_unix_duration(Duration::from_secs(unix_secs))?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_date_time(dt)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

/// Wraps an encodable value as an extension.
pub fn extension<T: AssociatedOid + Encode>(critical: bool, value: &T) -> der::Result<Extension> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// basicConstraints, always critical.
pub fn basic_constraints(ca: bool, path_len: Option<u8>) -> der::Result<Extension> {
    extension(
        true,
        &BasicConstraints {
            ca,
            path_len_constraint: path_len,
        },
    )
}

/// subjectKeyIdentifier from a key id.
pub fn subject_key_id(key_id: &[u8]) -> der::Result<Extension> {
    extension(false, &SubjectKeyIdentifier(OctetString::new(key_id)?))
}

/// authorityKeyIdentifier naming the issuer's key id.
pub fn authority_key_id(issuer_key_id: &[u8]) -> der::Result<Extension> {
    extension(
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(issuer_key_id)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )
}

/// authorityInfoAccess with the OCSP responder and CA issuers URLs.
pub fn authority_info_access(ocsp_url: &str, ca_issuers_url: &str) -> der::Result<Extension> {
    extension(
        false,
        &AuthorityInfoAccessSyntax(vec![
            AccessDescription {
                access_method: ID_AD_OCSP,
                access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(ocsp_url)?),
            },
            AccessDescription {
                access_method: ID_AD_CA_ISSUERS,
                access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(
                    ca_issuers_url,
                )?),
            },
        ]),
    )
}

/// cRLDistributionPoints with one full-name URL.
pub fn crl_distribution_point(url: &str) -> der::Result<Extension> {
    extension(
        false,
        &CrlDistributionPoints(vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![
                GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
            ])),
            reasons: None,
            crl_issuer: None,
        }]),
    )
}

/// id-pkix-ocsp-nocheck: its value is an ASN.1 NULL.
pub fn ocsp_nocheck() -> der::Result<Extension> {
    Ok(Extension {
        extn_id: ID_PKIX_OCSP_NOCHECK,
        critical: false,
        extn_value: OctetString::new(vec![0x05, 0x00])?,
    })
}

/// PEM text of a DER CSR, for sending a binary CSR file to the admin API.
pub fn der_to_csr_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, der)
        .unwrap_or_default()
}

/// The O= of a certificate's subject ("custos" when it has none).
pub fn organization(cert: &x509_cert::Certificate) -> String {
    cert.tbs_certificate
        .subject
        .to_string()
        .split(',')
        .find_map(|p| p.strip_prefix("O=").map(str::to_string))
        .unwrap_or_else(|| "custos".into())
}
