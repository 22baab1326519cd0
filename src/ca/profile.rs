//! Certificate templates ("profiles"): validity, key usage and extended key
//! usage, parsed from `[profiles.<name>]` once at start.
//!
//! A profile says what a certificate *looks like*; who may get one is decided
//! by the caller of the issuance function.

use der::oid::ObjectIdentifier;
use std::collections::BTreeMap;
use std::str::FromStr;
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};

use crate::config::{Config, ProfileConfig};

/// A checked certificate template.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Its name.
    pub name: String,
    /// Lifetime in seconds.
    pub validity_secs: u64,
    /// keyUsage.
    pub key_usage: KeyUsage,
    /// extendedKeyUsage OIDs.
    pub ext_key_usage: Vec<ObjectIdentifier>,
}

fn key_usage_bit(name: &str) -> Result<KeyUsages, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "digitalsignature" => KeyUsages::DigitalSignature,
        "nonrepudiation" | "contentcommitment" => KeyUsages::NonRepudiation,
        "keyencipherment" => KeyUsages::KeyEncipherment,
        "dataencipherment" => KeyUsages::DataEncipherment,
        "keyagreement" => KeyUsages::KeyAgreement,
        _ => return Err(format!("unknown or CA-only key usage {name:?}")),
    })
}

fn eku_oid(name: &str) -> Result<ObjectIdentifier, String> {
    let dotted = match name.to_ascii_lowercase().as_str() {
        "serverauth" => "1.3.6.1.5.5.7.3.1",
        "clientauth" => "1.3.6.1.5.5.7.3.2",
        "codesigning" => "1.3.6.1.5.5.7.3.3",
        "emailprotection" => "1.3.6.1.5.5.7.3.4",
        "ipsecike" => "1.3.6.1.5.5.7.3.17",
        "ocspsigning" => "1.3.6.1.5.5.7.3.9",
        "anyextendedkeyusage" => "2.5.29.37.0",
        _ => name,
    };
    ObjectIdentifier::from_str(dotted).map_err(|_| format!("unknown extended key usage {name:?}"))
}

/// Why an extended key usage may not appear in an end-entity profile.
fn refused_eku(oid: &ObjectIdentifier) -> Option<&'static str> {
    match oid.to_string().as_str() {
        // A certificate with OCSPSigning issued by our CA could sign OCSP
        // answers for every certificate we issued (RFC 6960 §4.2.2.2).
        "1.3.6.1.5.5.7.3.9" => {
            Some("OCSPSigning makes a certificate a delegated OCSP responder for this CA")
        }
        // anyExtendedKeyUsage includes OCSPSigning for relying parties that honour it.
        "2.5.29.37.0" => Some("anyExtendedKeyUsage allows every usage, OCSP signing included"),
        _ => None,
    }
}

impl Profile {
    /// One line for humans (ACME directory `meta.profiles`).
    pub fn describe(&self) -> String {
        let days = self.validity_secs / 86_400;
        let ekus: Vec<String> = self
            .ext_key_usage
            .iter()
            .map(|oid| match oid.to_string().as_str() {
                "1.3.6.1.5.5.7.3.1" => "serverAuth".to_string(),
                "1.3.6.1.5.5.7.3.2" => "clientAuth".to_string(),
                other => other.to_string(),
            })
            .collect();
        format!("valid {days} days; extended key usage: {}", ekus.join(", "))
    }

    /// Checks one `[profiles.<name>]` table.
    pub fn from_config(name: &str, cfg: &ProfileConfig) -> Result<Profile, String> {
        if cfg.validity_days == 0 || cfg.validity_days > 3650 {
            return Err("validity_days must be between 1 and 3650".into());
        }
        let mut usage = der::flagset::FlagSet::<KeyUsages>::default();
        for n in &cfg.key_usage {
            usage |= key_usage_bit(n)?;
        }
        if usage.is_empty() {
            return Err("key_usage must name at least one usage".into());
        }
        let ext_key_usage: Vec<ObjectIdentifier> = cfg
            .extended_key_usage
            .iter()
            .map(|n| eku_oid(n))
            .collect::<Result<_, _>>()?;
        for oid in &ext_key_usage {
            if let Some(why) = refused_eku(oid) {
                return Err(format!("extended key usage {oid} is refused: {why}"));
            }
        }
        Ok(Profile {
            name: name.to_string(),
            validity_secs: u64::from(cfg.validity_days) * 86_400,
            key_usage: KeyUsage(usage),
            ext_key_usage,
        })
    }

    /// The built-in template of the HTTPS listener's own certificate.
    pub fn tls_server() -> Profile {
        Profile {
            name: "tls-server".into(),
            validity_secs: 90 * 86_400,
            key_usage: KeyUsage(KeyUsages::DigitalSignature.into()),
            ext_key_usage: vec![ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1")],
        }
    }
}

/// All profiles by name, plus the default's name.
#[derive(Clone, Debug)]
pub struct Profiles {
    by_name: BTreeMap<String, Profile>,
    default: String,
}

impl Profiles {
    /// Builds the set from a checked config.
    pub fn from_config(config: &Config) -> Result<Profiles, String> {
        let mut by_name = BTreeMap::new();
        for (name, p) in &config.profiles {
            by_name.insert(name.clone(), Profile::from_config(name, p)?);
        }
        Ok(Profiles {
            by_name,
            default: config.default_profile.clone(),
        })
    }

    /// A profile by name, or the default for `None`.
    pub fn get(&self, name: Option<&str>) -> Option<&Profile> {
        self.by_name.get(name.unwrap_or(&self.default))
    }

    /// Profile names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_eku(eku: &str) -> Result<Profile, String> {
        let cfg = ProfileConfig {
            extended_key_usage: vec!["clientAuth".into(), eku.into()],
            ..ProfileConfig::default()
        };
        Profile::from_config("p", &cfg)
    }

    #[test]
    fn ocsp_signing_and_any_usage_are_refused() {
        let e = with_eku("1.3.6.1.5.5.7.3.9").unwrap_err();
        assert!(e.contains("OCSPSigning"), "{e}");
        let e = with_eku("2.5.29.37.0").unwrap_err();
        assert!(e.contains("anyExtendedKeyUsage"), "{e}");
        assert!(with_eku("serverAuth").is_ok());
    }
}
