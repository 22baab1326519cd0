//! What the ACME engine asks of the CA ([`Domain`]): which identifiers may
//! be certified (`acme.allowed_dns_suffixes`, `acme.allowed_ip_ranges`),
//! which challenges are offered, and issuance from a finalized order's CSR,
//! which must name exactly the order's identifiers and not use the account
//! key. Validation jobs are queued here and run by `crate::acme::validation`.
//!
//! No protocol rules (those are `custos-acme`'s) and no HTTP.

use crate::ca::Ca;
use crate::csr::{verify_csr, CsrError, VerifiedCsr};
use crate::ledger::Ledger;
use crate::ra::issuance::{Identity, IssueError};
use crate::ra::{AdminError, Authority};
use crate::serial::Serial;
use custos_acme::account::AccountRecord;
use custos_acme::jws::Jwk;
use custos_acme::order::{Identifier, OrderRecord, ValidationJob};
use custos_acme::problem::{Problem, ProblemType};
use custos_acme::server::{CertificateFacts, Domain, IssuedCertificate};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

mod device;

const COMMON_NAME: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("2.5.4.3");

/// The CA as the ACME engine sees it.
#[derive(Debug)]
pub struct AcmeDomain {
    authority: Authority,
    ca: Arc<Ca>,
    ledger: Arc<Ledger>,
    dns_suffixes: Vec<String>,
    ip_ranges: Vec<IpNet>,
    jobs: UnboundedSender<ValidationJob>,
    eab: crate::acme::eab::EabSecret,
    apple: crate::attestation::AppleVerifier,
    tpm: Option<custos_attest::tpm::TpmVerifier>,
    device_attest: crate::config::DeviceAttestConfig,
    mdm: Option<Box<dyn crate::devices::mdm_lookup::MdmLookup>>,
}

/// The secrets and outside checks the domain uses.
#[derive(Debug)]
pub struct Checks {
    /// Validation jobs go here.
    pub jobs: UnboundedSender<ValidationJob>,
    /// External account binding keys derive from this.
    pub eab: crate::acme::eab::EabSecret,
    /// Verifies Apple device attestations.
    pub apple: crate::attestation::AppleVerifier,
    /// Verifies TPM attestations, when configured.
    pub tpm: Option<custos_attest::tpm::TpmVerifier>,
    /// Asks the MDM, when configured.
    pub mdm: Option<Box<dyn crate::devices::mdm_lookup::MdmLookup>>,
}

impl AcmeDomain {
    /// A domain with the configured identifier policy.
    pub fn new(
        authority: Authority,
        ca: Arc<Ca>,
        ledger: Arc<Ledger>,
        config: &crate::config::AcmeConfig,
        checks: Checks,
    ) -> AcmeDomain {
        let Checks {
            jobs,
            eab,
            apple,
            tpm,
            mdm,
        } = checks;
        AcmeDomain {
            authority,
            ca,
            ledger,
            dns_suffixes: config
                .allowed_dns_suffixes
                .iter()
                .map(|s| s.trim_matches('.').to_ascii_lowercase())
                .collect(),
            ip_ranges: config.allowed_ip_ranges.clone(),
            jobs,
            eab,
            apple,
            tpm,
            device_attest: config.device_attest.clone(),
            mdm,
        }
    }
}

fn rejected(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::RejectedIdentifier, detail)
}

fn bad_csr(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::BadCsr, detail)
}

/// A DNS name in preferred name syntax (RFC 1035 §2.3.1, digits allowed first).
fn is_hostname(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').count() >= 2
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The identifiers a CSR names: SAN dNSNames and iPAddresses, and the
/// subject's CN when present.
fn csr_identifiers(csr: &VerifiedCsr, identity: &Identity) -> BTreeSet<(String, String)> {
    let mut ids: BTreeSet<(String, String)> = identity
        .dns_names
        .iter()
        .map(|n| {
            (
                "dns".to_string(),
                n.trim_end_matches('.').to_ascii_lowercase(),
            )
        })
        .chain(
            identity
                .ip_addresses
                .iter()
                .map(|ip| ("ip".to_string(), ip.to_string())),
        )
        .collect();
    for rdn in csr.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid != COMMON_NAME {
                continue;
            }
            let text = der::asn1::Utf8StringRef::try_from(&atv.value)
                .map(|s| s.to_string())
                .or_else(|_| {
                    der::asn1::PrintableStringRef::try_from(&atv.value).map(|s| s.to_string())
                });
            if let Ok(cn) = text {
                match cn.parse::<IpAddr>() {
                    Ok(ip) => ids.insert(("ip".into(), ip.to_string())),
                    Err(_) => {
                        ids.insert(("dns".into(), cn.trim_end_matches('.').to_ascii_lowercase()))
                    }
                };
            }
        }
    }
    ids
}

/// True when the CSR certifies the account's own key.
fn is_account_key(csr: &VerifiedCsr, account: &AccountRecord) -> bool {
    Jwk::from_json(&account.jwk)
        .is_ok_and(|jwk| jwk.matches_public_key(csr.spki.subject_public_key.raw_bytes()))
}

fn issue_problem(e: AdminError) -> Problem {
    match e {
        AdminError::Issue(IssueError::Csr(CsrError::UnsupportedKey(k))) => Problem::new(
            ProblemType::BadPublicKey,
            format!("CSR key {k} is not accepted (EC P-256/P-384, RSA >= 2048, Ed25519)"),
        ),
        AdminError::Issue(IssueError::Csr(e)) => bad_csr(e.to_string()),
        AdminError::Issue(IssueError::Refused(r)) => bad_csr(r),
        AdminError::UnknownProfile(p) => Problem::malformed(format!("unknown profile {p:?}")),
        other => {
            tracing::error!(error = %other, "ACME issuance failed");
            Problem::internal("issuance failed on the server; try again later")
        }
    }
}

impl Domain for AcmeDomain {
    fn check_identifier(&self, id: &Identifier) -> Result<(), Problem> {
        match id.kind.as_str() {
            "dns" => {
                let name = &id.value;
                if name.starts_with("*.") {
                    return Err(rejected("wildcard names are not issued"));
                }
                if !is_hostname(name) {
                    return Err(Problem::malformed(format!("{name:?} is not a DNS name")));
                }
                let allowed = self
                    .dns_suffixes
                    .iter()
                    .any(|s| name == s || name.ends_with(&format!(".{s}")));
                if allowed {
                    Ok(())
                } else {
                    Err(rejected(
                        "not under a DNS suffix this CA issues for (acme.allowed_dns_suffixes)",
                    ))
                }
            }
            "ip" => {
                let ip: IpAddr = id.value.parse().map_err(|_| {
                    Problem::malformed(format!("{:?} is not an IP address", id.value))
                })?;
                if self.ip_ranges.iter().any(|r| r.contains(&ip)) {
                    Ok(())
                } else {
                    Err(rejected(
                        "not in an IP range this CA issues for (acme.allowed_ip_ranges)",
                    ))
                }
            }
            // Any ACME account may ask, so the answer must not tell whether
            // a serial is on the inventory: unknown and refused devices
            // get the same words. The reason is logged for the helpdesk,
            // and a device that proves itself by attestation is told it.
            "permanent-identifier" => match self.device_in_good_standing(&id.value) {
                Ok(_) => Ok(()),
                Err(p) if p.kind == ProblemType::ServerInternal => Err(p),
                Err(p) => {
                    tracing::info!(identifier = %id.value, reason = %p, "device order refused");
                    Err(rejected(format!(
                        "device {} may not enrol; its administrator can see why in custos's log",
                        id.value
                    )))
                }
            },
            other => Err(Problem::new(
                ProblemType::UnsupportedIdentifier,
                format!("identifier type {other:?} is not supported"),
            )),
        }
    }

    fn challenge_types(&self, id: &Identifier) -> Vec<&'static str> {
        match id.kind.as_str() {
            "dns" => vec!["http-01", "dns-01"],
            "permanent-identifier" => vec!["device-attest-01"],
            _ => vec!["http-01"],
        }
    }

    fn profiles(&self) -> Vec<(String, serde_json::Value)> {
        let profiles = self.authority.profiles();
        profiles
            .names()
            .filter_map(|name| profiles.get(Some(name)))
            .map(|p| (p.name.clone(), p.describe().into()))
            .collect()
    }

    fn check_profile(&self, profile: Option<&str>) -> Result<(), Problem> {
        match self.authority.profiles().get(profile) {
            Some(_) => Ok(()),
            None => Err(Problem::malformed(format!(
                "unknown profile {:?}; offered: {}",
                profile.unwrap_or_default(),
                self.authority
                    .profiles()
                    .names()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn validate(&self, job: ValidationJob) {
        if self.jobs.send(job).is_err() {
            tracing::error!("ACME validation queue is closed");
        }
    }

    fn verify_attestation(
        &self,
        identifier: &Identifier,
        token: &str,
        key_authorization: &str,
        att_obj: &[u8],
    ) -> Result<serde_json::Value, Problem> {
        let bad = |d: String| Problem::new(ProblemType::BadAttestationStatement, d);
        if identifier.kind != "permanent-identifier" {
            return Err(bad(
                "device-attest-01 proves permanent-identifier identifiers only".into(),
            ));
        }
        let now = crate::model::time::unix_now();
        let format = custos_attest::apple::format_of(att_obj).map_err(|e| bad(e.to_string()))?;
        if format == "tpm" {
            let tpm = self.tpm.as_ref().ok_or_else(|| {
                bad("TPM attestation is not configured on this server (acme.device_attest.tpm_roots)".into())
            })?;
            let proved = tpm
                .verify(att_obj, key_authorization, now)
                .map_err(|e| bad(e.to_string()))?;
            return self.bind_tpm(identifier, proved);
        }
        let proved = self
            .apple
            .verify(att_obj, token, now)
            .map_err(|e| bad(e.to_string()))?;
        let wanted = crate::ledger::normalize_device_id(&identifier.value);
        let norm = |v: &Option<String>| v.as_deref().map(crate::ledger::normalize_device_id);
        if norm(&proved.serial).as_deref() != Some(wanted.as_str())
            && norm(&proved.udid).as_deref() != Some(wanted.as_str())
        {
            return Err(device::not_the_attested_device(
                identifier,
                format!(
                    "the attestation is for serial {} / UDID {}, not {}",
                    proved.serial.as_deref().unwrap_or("?"),
                    proved.udid.as_deref().unwrap_or("?"),
                    identifier.value
                ),
            ));
        }
        let device = self.device_in_good_standing(&identifier.value)?;
        self.check_mdm(&device.serial)?;
        let policy = self.device_attest.policy_for(device.group.as_deref());
        if let Some(reason) =
            crate::devices::policy_refusal(&policy, &proved, device.group.as_deref())
        {
            return Err(Problem::unauthorized(reason));
        }
        // Learn the serial↔UDID pairing from the attestation.
        if device.udid.is_none() {
            if let Some(udid) = &proved.udid {
                self.ledger
                    .learn_udid(&device.serial, udid, crate::model::time::unix_now())
                    .map_err(|e| Problem::internal(e.to_string()))?;
            }
        }
        tracing::info!(
            serial = proved.serial.as_deref().unwrap_or("?"),
            os = proved.os_version.as_deref().unwrap_or("?"),
            "device attestation verified"
        );
        serde_json::to_value(&proved).map_err(|e| Problem::internal(e.to_string()))
    }

    fn issue(
        &self,
        order: &OrderRecord,
        account: &AccountRecord,
        csr_der: &[u8],
        attestations: &[serde_json::Value],
    ) -> Result<Serial, Problem> {
        if order
            .identifiers
            .iter()
            .any(|i| i.kind == "permanent-identifier")
        {
            return self.issue_device(order, account, csr_der, attestations);
        }
        let csr = verify_csr(csr_der).map_err(|e| issue_problem(AdminError::Issue(e.into())))?;
        let vouched = Identity::vouched_from_csr(&csr).map_err(|e| bad_csr(e.to_string()))?;
        if !vouched.emails.is_empty() || !vouched.uris.is_empty() {
            return Err(bad_csr(
                "CSR asks for e-mail or URI names, which ACME orders cannot authorize",
            ));
        }
        let wanted: BTreeSet<(String, String)> = order
            .identifiers
            .iter()
            .map(|i| (i.kind.clone(), i.value.clone()))
            .collect();
        let named = csr_identifiers(&csr, &vouched);
        if named != wanted {
            let show = |s: &BTreeSet<(String, String)>| {
                s.iter()
                    .map(|(_, v)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(bad_csr(format!(
                "CSR names [{}] but the order is for [{}]",
                show(&named),
                show(&wanted)
            )));
        }
        if is_account_key(&csr, account) {
            return Err(bad_csr(
                "CSR key is the ACME account key; use a separate key",
            ));
        }
        let profile = self
            .authority
            .profiles()
            .get(order.profile.as_deref())
            .ok_or_else(|| Problem::malformed("the order's profile no longer exists"))?;
        let identity = Identity {
            dns_names: vouched
                .dns_names
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            ip_addresses: vouched.ip_addresses.clone(),
            acme_account: Some(account.id.clone()),
            ..Identity::default()
        };
        self.issue_to(&csr, profile, &identity)
    }

    fn certificate(&self, serial: &Serial) -> Result<Option<IssuedCertificate>, Problem> {
        let internal = |e: crate::ledger::LedgerError| Problem::internal(e.to_string());
        let Some(record) = self.ledger.get(serial).map_err(internal)? else {
            return Ok(None);
        };
        let Some(der) = self.ledger.get_der(serial).map_err(internal)? else {
            return Ok(None);
        };
        let chain_pem = crate::ca::to_pem(&der) + &crate::ca::to_pem(self.ca.issuer_der());
        Ok(Some(IssuedCertificate {
            account_id: record.acme_account,
            chain_pem,
        }))
    }

    fn certificate_facts(&self, der: &[u8]) -> Result<Option<CertificateFacts>, Problem> {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| Problem::malformed(format!("certificate is not DER X.509: {e}")))?;
        let Ok(serial) = Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes()) else {
            return Ok(None);
        };
        let internal = |e: crate::ledger::LedgerError| Problem::internal(e.to_string());
        let Some(record) = self.ledger.get(&serial).map_err(internal)? else {
            return Ok(None);
        };
        // Only the exact certificate we issued counts, not a look-alike.
        if self.ledger.get_der(&serial).map_err(internal)?.as_deref() != Some(der) {
            return Ok(None);
        }
        let identifiers = record
            .dns_names
            .iter()
            .map(|n| Identifier {
                kind: "dns".into(),
                value: n.to_ascii_lowercase(),
            })
            .chain(record.ip_addresses.iter().map(|ip| Identifier {
                kind: "ip".into(),
                value: ip.clone(),
            }))
            .collect();
        Ok(Some(CertificateFacts {
            serial,
            account_id: record.acme_account.clone(),
            identifiers,
            public_key: cert
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes()
                .to_vec(),
            revoked: record.revocation.is_some(),
        }))
    }

    fn revoke(
        &self,
        serial: &Serial,
        reason: crate::revocation::Reason,
        account: Option<&str>,
    ) -> Result<(), Problem> {
        self.authority
            .revoke_serial(
                serial,
                reason,
                Some(&match account {
                    Some(a) => format!("acme:{a}"),
                    None => "acme:certificate-key".to_string(),
                }),
                crate::model::time::unix_now(),
            )
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "ACME revocation failed");
                Problem::internal("revocation failed on the server; try again")
            })
    }

    fn eab_mac_key(&self, kid: &str) -> Result<Option<Vec<u8>>, Problem> {
        crate::acme::eab::usable_key(&self.ledger, &self.eab, kid)
            .map(|k| k.map(|k| k.to_vec()))
            .map_err(|e| Problem::internal(e.to_string()))
    }

    fn renewal_facts(
        &self,
        aki: &[u8],
        serial: &[u8],
    ) -> Result<Option<custos_acme::renewal::RenewalFacts>, Problem> {
        if aki != self.ca.issuer_key_id().as_slice() {
            return Ok(None);
        }
        let Ok(serial) = Serial::from_bytes(serial) else {
            return Ok(None);
        };
        let record = self
            .ledger
            .get(&serial)
            .map_err(|e| Problem::internal(e.to_string()))?;
        let Some(r) = record else {
            return Ok(None);
        };
        // A device that may not have a certificate now (lost, unenrolled,
        // non-compliant): its revoked certificate waits to be renewed.
        let renewal_refused = match &r.device.serial_number {
            Some(serial) => self
                .ledger
                .device(serial)
                .map_err(|e| Problem::internal(e.to_string()))?
                .is_none_or(|d| d.refusal().is_some()),
            None => false,
        };
        Ok(Some(custos_acme::renewal::RenewalFacts {
            not_before: r.not_before,
            not_after: r.not_after,
            revoked: r.revocation.is_some(),
            renewal_refused,
            account_id: r.acme_account,
        }))
    }
}
