//! ACME accounts (RFC 8555 §7.1.2, §7.3): what is stored about one, the
//! newAccount and update payloads, and the JSON object clients see.
//!
//! Plain data; storing it is the domain's, through [`crate::server::Store`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An account's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Usable.
    Valid,
    /// Deactivated by its holder: refused from then on.
    Deactivated,
    /// Revoked by the server.
    Revoked,
}

impl AccountStatus {
    /// The status as RFC 8555 spells it.
    pub fn name(self) -> &'static str {
        match self {
            AccountStatus::Valid => "valid",
            AccountStatus::Deactivated => "deactivated",
            AccountStatus::Revoked => "revoked",
        }
    }
}

/// One account as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Identifier in the account URL (`/acme/acct/<id>`).
    pub id: String,
    /// The account key as a JWK (required members only).
    pub jwk: Value,
    /// RFC 7638 thumbprint of the key: unique per account.
    pub thumbprint: String,
    /// Status.
    pub status: AccountStatus,
    /// Contact URLs (`mailto:`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// Whether the terms of service were agreed to.
    #[serde(default)]
    pub terms_agreed: bool,
    /// The external account key id it was bound with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab_kid: Option<String>,
    /// Creation time (Unix seconds).
    pub created_at: u64,
}

impl AccountRecord {
    /// The account object of RFC 8555 §7.1.2.
    pub fn to_object(&self, orders_url: &str) -> Value {
        let mut v = serde_json::json!({
            "status": self.status,
            "contact": self.contact,
            "orders": orders_url,
            "key": self.jwk,
            "termsOfServiceAgreed": self.terms_agreed,
        });
        if let Some(kid) = &self.eab_kid {
            v["externalAccountBinding"] = serde_json::json!({ "kid": kid });
        }
        v
    }
}

/// The newAccount payload.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAccount {
    /// Contact URLs.
    #[serde(default)]
    pub contact: Option<Vec<String>>,
    /// Agreement to the terms of service.
    #[serde(default)]
    pub terms_of_service_agreed: Option<bool>,
    /// Only look the account up, never create it.
    #[serde(default)]
    pub only_return_existing: Option<bool>,
    /// The external account binding (a flattened JWS).
    #[serde(default)]
    pub external_account_binding: Option<Value>,
}

/// The account update payload (contact change or deactivation).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AccountUpdate {
    /// New contact URLs.
    #[serde(default)]
    pub contact: Option<Vec<String>>,
    /// `"deactivated"` to deactivate.
    #[serde(default)]
    pub status: Option<String>,
}

/// Checks contact URLs: `mailto:` with one plausible address each.
pub fn check_contacts(contact: &[String]) -> Result<(), String> {
    if contact.len() > 10 {
        return Err("more than 10 contact URLs".into());
    }
    for c in contact {
        let Some(addr) = c.strip_prefix("mailto:") else {
            return Err(format!("contact {c:?} is not a mailto: URL"));
        };
        let ok = addr.len() <= 254
            && addr.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains(['@', ',', ' '])
            })
            && !addr.contains(['?', '<', '>', ' ']);
        if !ok {
            return Err(format!("contact {c:?} is not a single e-mail address"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_must_be_single_mailto_addresses() {
        assert!(check_contacts(&["mailto:ops@example.org".into()]).is_ok());
        assert!(check_contacts(&["tel:+1555".into()]).is_err());
        assert!(check_contacts(&["mailto:a@b.org,c@d.org".into()]).is_err());
        assert!(check_contacts(&["mailto:nobody".into()]).is_err());
        assert!(check_contacts(&["mailto:a@b.org?subject=x".into()]).is_err());
    }
}
