//! Streaming construction of one signed CRL.
//!
//! The buffer starts with a gap big enough for everything that precedes the
//! revoked entries (the fixed TBSCertList fields and the three SEQUENCE
//! headers whose lengths are only known at the end). Entries are appended
//! as they come; [`CrlBuilder::finish`] writes the headers into the gap,
//! signs the TBSCertList in place, appends the signature and moves the
//! result to the front of the buffer. No entry is ever copied twice into a
//! second buffer.

use crate::CrlError;
use der::asn1::{GeneralizedTime, Ia5String, OctetString, UtcTime};
use der::oid::db::rfc5280::{ID_CE_INVALIDITY_DATE, ID_CE_ISSUING_DISTRIBUTION_POINT};
use der::oid::AssociatedOid;
use der::{Encode, Header, Length, Tag};
use spki::AlgorithmIdentifierOwned;
use std::time::Duration;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::crl::CrlNumber;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlReason};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

/// Longest DER header (tag + length) of a value under 4 GiB.
const MAX_HEADER: usize = 6;
/// 2050-01-01T00:00:00Z: from here on RFC 5280 times are GeneralizedTime.
const Y2050: u64 = 2_524_608_000;

/// What signs the CRL (the issuing CA).
pub trait CrlSigner {
    /// The signature AlgorithmIdentifier (in the TBSCertList and outside it).
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned;
    /// Signs the DER TBSCertList; returns the DER signature value.
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, crate::BoxError>;
}

/// The fixed fields of one CRL.
#[derive(Clone, Debug)]
pub struct CrlParams<'a> {
    /// The issuing CA's subject Name, DER.
    pub issuer_name_der: &'a [u8],
    /// The issuing CA's subject key identifier (Authority Key Identifier).
    pub authority_key_id: &'a [u8],
    /// thisUpdate, Unix seconds.
    pub this_update: u64,
    /// nextUpdate, Unix seconds.
    pub next_update: u64,
    /// CRL Number; the caller keeps it strictly increasing.
    pub crl_number: u64,
    /// The shard's URL, named by a critical Issuing Distribution Point with
    /// onlyContainsUserCerts; `None` for a complete, unpartitioned CRL.
    pub distribution_point: Option<&'a str>,
}

/// One revoked certificate.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// Serial number magnitude, big-endian (leading zeros allowed).
    pub serial: &'a [u8],
    /// Revocation time, Unix seconds.
    pub revoked_at: u64,
    /// RFC 5280 CRLReason code; `None` or 0 (unspecified) writes no reasonCode.
    pub reason: Option<u8>,
    /// When the key is known or suspected to have been compromised.
    pub invalidity_date: Option<u64>,
}

/// A CRL under construction.
#[derive(Debug)]
pub struct CrlBuilder {
    buf: Vec<u8>,
    /// version, signature, issuer, thisUpdate, nextUpdate.
    prefix: Vec<u8>,
    /// crlExtensions, [0] EXPLICIT.
    extensions: Vec<u8>,
    signature_algorithm: AlgorithmIdentifierOwned,
    gap: usize,
    entries: usize,
}

fn time(secs: u64) -> Result<Time, CrlError> {
    let d = Duration::from_secs(secs);
    Ok(if secs < Y2050 {
        Time::UtcTime(UtcTime::from_unix_duration(d)?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_unix_duration(d)?)
    })
}

fn reason(code: u8) -> Option<CrlReason> {
    Some(match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        // 0 (unspecified) is written by omitting reasonCode; 6 (hold) and
        // 8 (removeFromCRL) are never revocations here.
        _ => return None,
    })
}

fn extension(
    oid: der::oid::ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, CrlError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn header(tag: Tag, len: usize) -> Result<Vec<u8>, CrlError> {
    Ok(Header::new(tag, Length::try_from(len)?)?.to_der()?)
}

impl CrlBuilder {
    /// Starts a CRL. `size_hint` is the expected number of entries (it
    /// only sizes the buffer).
    pub fn new(
        params: &CrlParams<'_>,
        signature_algorithm: AlgorithmIdentifierOwned,
        size_hint: usize,
    ) -> Result<CrlBuilder, CrlError> {
        let mut prefix = Vec::with_capacity(256 + params.issuer_name_der.len());
        x509_cert::Version::V2.encode_to_vec(&mut prefix)?;
        signature_algorithm.encode_to_vec(&mut prefix)?;
        prefix.extend_from_slice(params.issuer_name_der);
        time(params.this_update)?.encode_to_vec(&mut prefix)?;
        time(params.next_update)?.encode_to_vec(&mut prefix)?;

        let mut exts = vec![
            extension(
                AuthorityKeyIdentifier::OID,
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(OctetString::new(params.authority_key_id)?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
            )?,
            extension(
                CrlNumber::OID,
                false,
                &CrlNumber(der::asn1::Uint::new(&params.crl_number.to_be_bytes())?),
            )?,
        ];
        if let Some(url) = params.distribution_point {
            let idp = IssuingDistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![
                    GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
                ])),
                only_contains_user_certs: true,
                only_contains_ca_certs: false,
                only_some_reasons: None,
                indirect_crl: false,
                only_contains_attribute_certs: false,
            };
            // Not IssuingDistributionPoint::OID: x509-cert 0.2.5 maps that
            // type to the wrong OID (subjectInfoAccess).
            exts.push(extension(ID_CE_ISSUING_DISTRIBUTION_POINT, true, &idp)?);
        }
        let exts_der = exts.to_der()?;
        let mut extensions = header(
            Tag::ContextSpecific {
                constructed: true,
                number: der::TagNumber::N0,
            },
            exts_der.len(),
        )?;
        extensions.extend_from_slice(&exts_der);

        // Outer header, TBS header, prefix, revokedCertificates header.
        let gap = MAX_HEADER + MAX_HEADER + prefix.len() + MAX_HEADER;
        let mut buf = Vec::with_capacity(gap + size_hint.saturating_mul(40) + 512);
        buf.resize(gap, 0);
        Ok(CrlBuilder {
            buf,
            prefix,
            extensions,
            signature_algorithm,
            gap,
            entries: 0,
        })
    }

    /// Appends one revoked certificate.
    pub fn push(&mut self, entry: &Entry<'_>) -> Result<(), CrlError> {
        let mut exts = Vec::new();
        if let Some(r) = entry.reason.and_then(reason) {
            exts.push(extension(CrlReason::OID, false, &r)?);
        }
        if let Some(t) = entry.invalidity_date {
            let when = GeneralizedTime::from_unix_duration(Duration::from_secs(t))?;
            exts.push(extension(ID_CE_INVALIDITY_DATE, false, &when)?);
        }
        let revoked = RevokedCert {
            serial_number: SerialNumber::new(entry.serial)?,
            revocation_date: time(entry.revoked_at)?,
            crl_entry_extensions: (!exts.is_empty()).then_some(exts),
        };
        revoked.encode_to_vec(&mut self.buf)?;
        self.entries += 1;
        Ok(())
    }

    /// Entries pushed so far.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no entry was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Signs and returns the DER CertificateList.
    pub fn finish(mut self, signer: &dyn CrlSigner) -> Result<Vec<u8>, CrlError> {
        let entries_len = self.buf.len() - self.gap;
        // An empty list is absent, not an empty SEQUENCE (RFC 5280 §5.1.2.6).
        let revoked_header = if entries_len > 0 {
            header(Tag::Sequence, entries_len)?
        } else {
            Vec::new()
        };
        self.buf.extend_from_slice(&self.extensions);
        let tbs_content =
            self.prefix.len() + revoked_header.len() + entries_len + self.extensions.len();
        let tbs_header = header(Tag::Sequence, tbs_content)?;

        let mut at = self.gap - revoked_header.len();
        self.buf[at..self.gap].copy_from_slice(&revoked_header);
        at -= self.prefix.len();
        self.buf[at..at + self.prefix.len()].copy_from_slice(&self.prefix);
        at -= tbs_header.len();
        self.buf[at..at + tbs_header.len()].copy_from_slice(&tbs_header);
        let tbs_start = at;

        let signature = signer
            .sign(&self.buf[tbs_start..])
            .map_err(CrlError::Signing)?;
        self.signature_algorithm.encode_to_vec(&mut self.buf)?;
        der::asn1::BitString::from_bytes(&signature)?.encode_to_vec(&mut self.buf)?;

        let outer_header = header(Tag::Sequence, self.buf.len() - tbs_start)?;
        let start = tbs_start - outer_header.len();
        self.buf[start..tbs_start].copy_from_slice(&outer_header);
        // Move the CRL to the front in place (no second buffer).
        self.buf.copy_within(start.., 0);
        let len = self.buf.len() - start;
        self.buf.truncate(len);
        self.buf.shrink_to_fit();
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;
    use p256::ecdsa::signature::{Signer, Verifier};
    use x509_cert::crl::CertificateList;

    struct TestSigner(p256::ecdsa::SigningKey);

    impl CrlSigner for TestSigner {
        fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
            AlgorithmIdentifierOwned {
                oid: der::oid::db::rfc5912::ECDSA_WITH_SHA_256,
                parameters: None,
            }
        }
        fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, crate::BoxError> {
            let sig: p256::ecdsa::DerSignature = self.0.sign(tbs);
            Ok(sig.as_bytes().to_vec())
        }
    }

    fn name() -> Vec<u8> {
        use std::str::FromStr;
        x509_cert::name::Name::from_str("CN=Test CA")
            .unwrap()
            .to_der()
            .unwrap()
    }

    fn params<'a>(name: &'a [u8], url: Option<&'a str>) -> CrlParams<'a> {
        CrlParams {
            issuer_name_der: name,
            authority_key_id: &[1, 2, 3, 4],
            this_update: 1_700_000_000,
            next_update: 1_700_086_400,
            crl_number: 42,
            distribution_point: url,
        }
    }

    fn build(entries: &[Entry<'_>], url: Option<&str>) -> (Vec<u8>, p256::ecdsa::VerifyingKey) {
        let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let signer = TestSigner(key.clone());
        let name = name();
        let mut b = CrlBuilder::new(
            &params(&name, url),
            signer.signature_algorithm(),
            entries.len(),
        )
        .unwrap();
        for e in entries {
            b.push(e).unwrap();
        }
        assert_eq!(b.len(), entries.len());
        (b.finish(&signer).unwrap(), *key.verifying_key())
    }

    #[test]
    fn decodes_verifies_and_carries_every_field() {
        let entries = [
            Entry {
                serial: &[0x80, 1],
                revoked_at: 1_699_999_000,
                reason: Some(1),
                invalidity_date: Some(1_699_990_000),
            },
            Entry {
                serial: &[0, 0, 5],
                revoked_at: 1_699_999_100,
                reason: Some(0),
                invalidity_date: None,
            },
            Entry {
                serial: &[7; 16],
                revoked_at: 2_600_000_000,
                reason: None,
                invalidity_date: None,
            },
        ];
        let (der, vk) = build(&entries, Some("http://ca.example/crl/abc/3.crl"));
        let crl = CertificateList::from_der(&der).unwrap();
        let tbs_der = crl.tbs_cert_list.to_der().unwrap();
        let sig = p256::ecdsa::DerSignature::from_bytes(crl.signature.raw_bytes()).unwrap();
        vk.verify(&tbs_der, &sig).unwrap();
        assert_eq!(crl.tbs_cert_list.version, x509_cert::Version::V2);
        let revoked = crl.tbs_cert_list.revoked_certificates.unwrap();
        assert_eq!(revoked.len(), 3);
        assert_eq!(revoked[0].serial_number.as_bytes(), &[0, 0x80, 1]);
        assert_eq!(revoked[1].serial_number.as_bytes(), &[5]);
        // keyCompromise and invalidityDate; unspecified writes no extension.
        let e0 = revoked[0].crl_entry_extensions.as_ref().unwrap();
        assert_eq!(e0.len(), 2);
        assert_eq!(e0[0].extn_value.as_bytes(), &[0x0a, 0x01, 0x01]);
        assert!(revoked[1].crl_entry_extensions.is_none());
        assert!(matches!(revoked[0].revocation_date, Time::UtcTime(_)));
        assert!(matches!(revoked[2].revocation_date, Time::GeneralTime(_)));
        let exts = crl.tbs_cert_list.crl_extensions.unwrap();
        let idp = exts
            .iter()
            .find(|e| e.extn_id == ID_CE_ISSUING_DISTRIBUTION_POINT)
            .unwrap();
        assert_eq!(idp.extn_id.to_string(), "2.5.29.28");
        assert!(idp.critical);
        let idp = IssuingDistributionPoint::from_der(idp.extn_value.as_bytes()).unwrap();
        assert!(idp.only_contains_user_certs);
        let number = exts.iter().find(|e| e.extn_id == CrlNumber::OID).unwrap();
        let number = CrlNumber::from_der(number.extn_value.as_bytes()).unwrap();
        assert_eq!(number.0.as_bytes(), &[42]);
    }

    #[test]
    fn an_empty_crl_has_no_revoked_list() {
        let (der, _) = build(&[], None);
        let crl = CertificateList::from_der(&der).unwrap();
        assert!(crl.tbs_cert_list.revoked_certificates.is_none());
        let exts = crl.tbs_cert_list.crl_extensions.unwrap();
        assert!(exts
            .iter()
            .all(|e| e.extn_id != ID_CE_ISSUING_DISTRIBUTION_POINT));
    }

    #[test]
    fn large_lists_use_long_length_forms() {
        let serials: Vec<[u8; 16]> = (0..20_000u32)
            .map(|i| {
                let mut s = [0x11; 16];
                s[12..].copy_from_slice(&i.to_be_bytes());
                s
            })
            .collect();
        let entries: Vec<Entry<'_>> = serials
            .iter()
            .map(|s| Entry {
                serial: s,
                revoked_at: 1_699_000_000,
                reason: Some(4),
                invalidity_date: None,
            })
            .collect();
        let (der, _) = build(&entries, Some("http://x/crl/a/0.crl"));
        let crl = CertificateList::from_der(&der).unwrap();
        assert_eq!(
            crl.tbs_cert_list.revoked_certificates.unwrap().len(),
            20_000
        );
    }
}
