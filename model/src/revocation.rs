//! Revocation reasons (RFC 5280 §5.3.1 CRLReason codes) and their names.
//!
//! The ledger stores the numeric code; the CLI, the admin API and the logs use
//! the RFC's camelCase names. `certificateHold` is refused: holds are not
//! revocations we can take back safely, and CA/B practice forbids them.
//! `removeFromCRL` only has meaning in delta CRLs and is refused as well.

use std::fmt;
use std::str::FromStr;

/// Why a certificate was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 0: no reason given (omitted from CRL entries).
    Unspecified,
    /// 1: the private key is known or suspected to be compromised.
    KeyCompromise,
    /// 2: the CA's key is compromised.
    CaCompromise,
    /// 3: the subject's affiliation changed.
    AffiliationChanged,
    /// 4: replaced by a newer certificate.
    Superseded,
    /// 5: the subject no longer operates (device retired, unenrolled).
    CessationOfOperation,
    /// 9: privileges withdrawn (device non-compliant).
    PrivilegeWithdrawn,
    /// 10: attribute authority compromise.
    AaCompromise,
}

/// A reason that cannot be used to revoke.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReasonError {
    /// certificateHold (6) is not supported.
    #[error("certificateHold is not supported: revocation here is permanent")]
    Hold,
    /// removeFromCRL (8) only exists in delta CRLs.
    #[error("removeFromCRL is not a revocation reason")]
    RemoveFromCrl,
    /// Not an RFC 5280 reason.
    #[error("unknown revocation reason {0:?}; use one of: unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, aACompromise")]
    Unknown(String),
}

impl Reason {
    /// Every usable reason, in code order.
    pub const ALL: [Reason; 8] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::PrivilegeWithdrawn,
        Reason::AaCompromise,
    ];

    /// The RFC 5280 CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Reason::Unspecified => 0,
            Reason::KeyCompromise => 1,
            Reason::CaCompromise => 2,
            Reason::AffiliationChanged => 3,
            Reason::Superseded => 4,
            Reason::CessationOfOperation => 5,
            Reason::PrivilegeWithdrawn => 9,
            Reason::AaCompromise => 10,
        }
    }

    /// The reason for a CRLReason code.
    pub fn from_code(code: u8) -> Result<Reason, ReasonError> {
        match code {
            6 => Err(ReasonError::Hold),
            8 => Err(ReasonError::RemoveFromCrl),
            _ => Reason::ALL
                .into_iter()
                .find(|r| r.code() == code)
                .ok_or_else(|| ReasonError::Unknown(code.to_string())),
        }
    }

    /// The RFC's name for this reason.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
            Reason::AaCompromise => "aACompromise",
        }
    }
}

impl FromStr for Reason {
    type Err = ReasonError;

    /// Accepts the RFC names in any case, with or without `-`/`_`, or the code.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(code) = s.trim().parse::<u8>() {
            return Reason::from_code(code);
        }
        let folded: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        match folded.as_str() {
            "certificatehold" | "hold" => return Err(ReasonError::Hold),
            "removefromcrl" => return Err(ReasonError::RemoveFromCrl),
            _ => {}
        }
        Reason::ALL
            .into_iter()
            .find(|r| r.name().to_lowercase() == folded)
            .ok_or_else(|| ReasonError::Unknown(s.to_string()))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for r in Reason::ALL {
            assert_eq!(r.name().parse::<Reason>(), Ok(r));
            assert_eq!(Reason::from_code(r.code()), Ok(r));
        }
        assert_eq!("key-compromise".parse(), Ok(Reason::KeyCompromise));
        assert_eq!(
            "CESSATION_OF_OPERATION".parse(),
            Ok(Reason::CessationOfOperation)
        );
    }

    #[test]
    fn hold_and_unknown_are_refused() {
        assert_eq!("certificateHold".parse::<Reason>(), Err(ReasonError::Hold));
        assert_eq!(Reason::from_code(6), Err(ReasonError::Hold));
        assert_eq!(Reason::from_code(8), Err(ReasonError::RemoveFromCrl));
        assert!(matches!(
            "stolen".parse::<Reason>(),
            Err(ReasonError::Unknown(_))
        ));
        assert!(matches!(Reason::from_code(7), Err(ReasonError::Unknown(_))));
    }
}
