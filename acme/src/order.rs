//! Orders, authorizations and challenges (RFC 8555 §7.1.3–7.1.6): what is
//! stored, the JSON objects clients see, and the state rules between them.
//!
//! Pure data and pure functions: no storage, no validation I/O.

use crate::problem::Problem;
use custos_model::serial::Serial;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An identifier a certificate is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    /// `dns`, `ip` or `permanent-identifier`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name, address or device identifier.
    pub value: String,
}

impl Identifier {
    /// Canonical form: DNS names lower-case without a trailing dot.
    pub fn normalized(&self) -> Identifier {
        let value = match self.kind.as_str() {
            "dns" => self.value.trim_end_matches('.').to_ascii_lowercase(),
            _ => self.value.clone(),
        };
        Identifier {
            kind: self.kind.clone(),
            value,
        }
    }

    /// As a problem's subproblem identifier.
    pub fn for_problem(&self) -> crate::problem::ProblemIdentifier {
        crate::problem::ProblemIdentifier {
            kind: self.kind.clone(),
            value: self.value.clone(),
        }
    }
}

/// Order status (RFC 8555 §7.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Authorizations outstanding.
    Pending,
    /// All authorizations valid: finalize may be called.
    Ready,
    /// Issuing.
    Processing,
    /// Issued.
    Valid,
    /// Failed or expired.
    Invalid,
}

/// Authorization status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthzStatus {
    /// Awaiting a challenge.
    Pending,
    /// Proven.
    Valid,
    /// A challenge failed.
    Invalid,
    /// Deactivated by the client.
    Deactivated,
    /// Past its expiry.
    Expired,
    /// Revoked by the server.
    Revoked,
}

/// Challenge status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStatus {
    /// Not yet answered.
    Pending,
    /// Being validated.
    Processing,
    /// Validated.
    Valid,
    /// Validation failed.
    Invalid,
}

/// One challenge of an authorization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// Identifier in its URL (`/acme/chall/<authz>/<id>`).
    pub id: String,
    /// `http-01`, `dns-01`, `tls-alpn-01` or `device-attest-01`.
    pub kind: String,
    /// The token (base64url, 128 bits).
    pub token: String,
    /// Status.
    pub status: ChallengeStatus,
    /// When it was validated (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<u64>,
    /// Why it failed (a problem document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// One authorization as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzRecord {
    /// Identifier in its URL (`/acme/authz/<id>`).
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// What it authorizes.
    pub identifier: Identifier,
    /// Status as stored (expiry is applied when read).
    pub status: AuthzStatus,
    /// Expiry (Unix seconds).
    pub expires: u64,
    /// Its challenges.
    pub challenges: Vec<ChallengeRecord>,
    /// What a device attestation proved (device-attest-01), as the domain
    /// recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Value>,
}

impl AuthzRecord {
    /// The status at `now` (a pending or valid authorization past its
    /// expiry is expired).
    pub fn status_at(&self, now: u64) -> AuthzStatus {
        match self.status {
            AuthzStatus::Pending | AuthzStatus::Valid if now >= self.expires => {
                AuthzStatus::Expired
            }
            s => s,
        }
    }

    /// The authorization object; `chall_url(authz, chall)` makes URLs.
    pub fn to_object(&self, now: u64, chall_url: impl Fn(&str, &str) -> String) -> Value {
        serde_json::json!({
            "identifier": self.identifier,
            "status": self.status_at(now),
            "expires": rfc3339(self.expires),
            "challenges": self
                .challenges
                .iter()
                .map(|c| c.to_object(&chall_url(&self.id, &c.id)))
                .collect::<Vec<_>>(),
        })
    }
}

impl ChallengeRecord {
    /// The challenge object.
    pub fn to_object(&self, url: &str) -> Value {
        let mut v = serde_json::json!({
            "type": self.kind,
            "url": url,
            "status": self.status,
            "token": self.token,
        });
        if let Some(t) = self.validated {
            v["validated"] = rfc3339(t).into();
        }
        if let Some(e) = &self.error {
            v["error"] = e.clone();
        }
        v
    }
}

/// One order as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// Identifier in its URL (`/acme/order/<id>`).
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// Status as stored (derived from the authorizations while pending).
    pub status: OrderStatus,
    /// Expiry (Unix seconds).
    pub expires: u64,
    /// The identifiers, normalised, in the client's order.
    pub identifiers: Vec<Identifier>,
    /// Its authorizations' ids, one per identifier.
    pub authz_ids: Vec<String>,
    /// The certificate profile asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// ARI: the certificate this order replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The issued certificate's serial (stored as hex), once valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Serial>,
    /// Why it became invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Creation time.
    pub created_at: u64,
}

/// Where an order's URLs point.
pub struct OrderUrls {
    /// `authz(id)`.
    pub authz: Box<dyn Fn(&str) -> String>,
    /// The order's finalize URL.
    pub finalize: String,
    /// The certificate URL, once there is one.
    pub certificate: Option<String>,
}

impl OrderRecord {
    /// The status at `now`, given its authorizations' statuses.
    pub fn status_at(&self, now: u64, authz: &[AuthzStatus]) -> OrderStatus {
        match self.status {
            OrderStatus::Valid | OrderStatus::Invalid | OrderStatus::Processing => self.status,
            OrderStatus::Pending | OrderStatus::Ready => {
                if now >= self.expires {
                    return OrderStatus::Invalid;
                }
                if authz
                    .iter()
                    .any(|s| *s != AuthzStatus::Valid && *s != AuthzStatus::Pending)
                {
                    OrderStatus::Invalid
                } else if !authz.is_empty() && authz.iter().all(|s| *s == AuthzStatus::Valid) {
                    OrderStatus::Ready
                } else {
                    OrderStatus::Pending
                }
            }
        }
    }

    /// The order object.
    pub fn to_object(&self, status: OrderStatus, urls: &OrderUrls) -> Value {
        let mut v = serde_json::json!({
            "status": status,
            "expires": rfc3339(self.expires),
            "identifiers": self.identifiers,
            "authorizations": self.authz_ids.iter().map(|a| (urls.authz)(a)).collect::<Vec<_>>(),
            "finalize": urls.finalize,
        });
        if let Some(c) = &urls.certificate {
            v["certificate"] = c.clone().into();
        }
        if let Some(p) = &self.profile {
            v["profile"] = p.clone().into();
        }
        if let Some(r) = &self.replaces {
            v["replaces"] = r.clone().into();
        }
        if let Some(e) = &self.error {
            v["error"] = e.clone();
        }
        v
    }
}

/// The newOrder payload.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    /// What the certificate is for.
    pub identifiers: Vec<Identifier>,
    /// Requested notBefore (refused: validity comes from the profile).
    #[serde(default)]
    pub not_before: Option<String>,
    /// Requested notAfter (refused likewise).
    #[serde(default)]
    pub not_after: Option<String>,
    /// Profile name (draft-ietf-acme-profiles).
    #[serde(default)]
    pub profile: Option<String>,
    /// ARI: the certificate being renewed.
    #[serde(default)]
    pub replaces: Option<String>,
}

/// The device-attest-01 challenge response (draft-ietf-acme-device-attest).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponse {
    /// The attestation object, CBOR in base64url.
    pub att_obj: String,
}

/// The finalize payload.
#[derive(Clone, Debug, Deserialize)]
pub struct Finalize {
    /// The CSR, DER in base64url.
    pub csr: String,
}

/// A challenge to validate, handed to the domain's validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationJob {
    /// The authorization.
    pub authz_id: String,
    /// The challenge.
    pub challenge_id: String,
    /// Its type.
    pub kind: String,
    /// The identifier to prove.
    pub identifier: Identifier,
    /// The token.
    pub token: String,
    /// `token.thumbprint` (RFC 8555 §8.1).
    pub key_authorization: String,
    /// The account whose authorization it is.
    pub account_id: String,
    /// The IP address that asked for the validation.
    pub requester: Option<std::net::IpAddr>,
}

/// A problem as the JSON stored on a challenge or order.
pub fn problem_value(p: &Problem) -> Value {
    serde_json::from_str(&p.to_json()).unwrap_or(Value::Null)
}

/// RFC 3339 UTC time of Unix seconds.
pub fn rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus) -> OrderRecord {
        OrderRecord {
            id: "o".into(),
            account_id: "a".into(),
            status,
            expires: 100,
            identifiers: vec![],
            authz_ids: vec![],
            profile: None,
            replaces: None,
            certificate: None,
            error: None,
            created_at: 0,
        }
    }

    #[test]
    fn order_status_follows_its_authorizations_and_expiry() {
        use AuthzStatus as A;
        let o = order(OrderStatus::Pending);
        assert_eq!(
            o.status_at(10, &[A::Valid, A::Pending]),
            OrderStatus::Pending
        );
        assert_eq!(o.status_at(10, &[A::Valid, A::Valid]), OrderStatus::Ready);
        assert_eq!(
            o.status_at(10, &[A::Valid, A::Invalid]),
            OrderStatus::Invalid
        );
        assert_eq!(o.status_at(10, &[A::Deactivated]), OrderStatus::Invalid);
        assert_eq!(o.status_at(100, &[A::Valid]), OrderStatus::Invalid);
        assert_eq!(
            order(OrderStatus::Valid).status_at(1000, &[]),
            OrderStatus::Valid
        );
    }

    #[test]
    fn times_are_rfc3339_and_dns_names_normalised() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let id = Identifier {
            kind: "dns".into(),
            value: "WWW.Example.org.".into(),
        };
        assert_eq!(id.normalized().value, "www.example.org");
    }
}
