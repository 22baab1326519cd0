//! ACME problem documents (RFC 8555 §6.7, RFC 7807): the error every ACME
//! answer carries, with its `urn:ietf:params:acme:error:*` type, the HTTP
//! status it is sent with, and per-identifier subproblems.
//!
//! Pure data: building the HTTP response (with `Replay-Nonce` and
//! `Content-Type: application/problem+json`) is the server's job.

use serde::Serialize;

/// The URN prefix of ACME problem types (RFC 8555 §6.7).
pub const PROBLEM_NS: &str = "urn:ietf:params:acme:error:";

/// The media type problem documents are sent with.
pub const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

/// ACME error types (RFC 8555 §6.7, RFC 9773, draft-ietf-acme-device-attest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemType {
    /// The account is deactivated or otherwise unusable.
    AccountDoesNotExist,
    /// The certificate is already revoked.
    AlreadyRevoked,
    /// The attestation statement could not be verified.
    BadAttestationStatement,
    /// The CSR is unacceptable.
    BadCsr,
    /// The nonce is unknown, used or missing.
    BadNonce,
    /// The key is unacceptable.
    BadPublicKey,
    /// The revocation reason is not allowed.
    BadRevocationReason,
    /// The JWS algorithm is not supported.
    BadSignatureAlgorithm,
    /// Could not connect to the validation target.
    Connection,
    /// DNS lookup failed.
    Dns,
    /// An external account binding is required.
    ExternalAccountRequired,
    /// The challenge response was wrong.
    IncorrectResponse,
    /// The request is malformed.
    Malformed,
    /// The order is not ready to finalize.
    OrderNotReady,
    /// A rate limit was hit.
    RateLimited,
    /// The server will not issue for this identifier.
    RejectedIdentifier,
    /// Something failed on our side.
    ServerInternal,
    /// The client is not allowed to do this.
    Unauthorized,
    /// The identifier type is not supported.
    UnsupportedIdentifier,
}

impl ProblemType {
    /// The short name after the URN prefix.
    pub fn name(self) -> &'static str {
        match self {
            ProblemType::AccountDoesNotExist => "accountDoesNotExist",
            ProblemType::AlreadyRevoked => "alreadyRevoked",
            ProblemType::BadAttestationStatement => "badAttestationStatement",
            ProblemType::BadCsr => "badCSR",
            ProblemType::BadNonce => "badNonce",
            ProblemType::BadPublicKey => "badPublicKey",
            ProblemType::BadRevocationReason => "badRevocationReason",
            ProblemType::BadSignatureAlgorithm => "badSignatureAlgorithm",
            ProblemType::Connection => "connection",
            ProblemType::Dns => "dns",
            ProblemType::ExternalAccountRequired => "externalAccountRequired",
            ProblemType::IncorrectResponse => "incorrectResponse",
            ProblemType::Malformed => "malformed",
            ProblemType::OrderNotReady => "orderNotReady",
            ProblemType::RateLimited => "rateLimited",
            ProblemType::RejectedIdentifier => "rejectedIdentifier",
            ProblemType::ServerInternal => "serverInternal",
            ProblemType::Unauthorized => "unauthorized",
            ProblemType::UnsupportedIdentifier => "unsupportedIdentifier",
        }
    }

    /// The full URN.
    pub fn urn(self) -> String {
        format!("{PROBLEM_NS}{}", self.name())
    }

    /// The HTTP status a problem of this type is sent with.
    pub fn http_status(self) -> u16 {
        match self {
            ProblemType::Unauthorized | ProblemType::OrderNotReady => 403,
            ProblemType::RateLimited => 429,
            ProblemType::ServerInternal => 500,
            _ => 400,
        }
    }
}

impl Serialize for ProblemType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.urn())
    }
}

/// The identifier a subproblem is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProblemIdentifier {
    /// `dns`, `ip` or `permanent-identifier`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value.
    pub value: String,
}

/// A problem about one identifier of a request (RFC 8555 §6.7.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subproblem {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ProblemType,
    /// Human-readable explanation.
    pub detail: String,
    /// The identifier at fault.
    pub identifier: ProblemIdentifier,
}

/// A problem document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ProblemType,
    /// Human-readable explanation, safe to show to the client.
    pub detail: String,
    /// The HTTP status, repeated in the body as RFC 7807 allows.
    pub status: u16,
    /// Per-identifier problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<Subproblem>,
    /// For `badSignatureAlgorithm`: the algorithms we accept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<&'static str>>,
    /// Seconds for a `Retry-After` header (rate limits); not in the body.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of `kind` with `detail`, sent with the type's status.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            status: kind.http_status(),
            subproblems: Vec::new(),
            algorithms: None,
            retry_after: None,
        }
    }

    /// `malformed`.
    pub fn malformed(detail: impl Into<String>) -> Problem {
        Problem::new(ProblemType::Malformed, detail)
    }

    /// `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(ProblemType::Unauthorized, detail)
    }

    /// `serverInternal`, for failures that are ours, not the client's.
    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(ProblemType::ServerInternal, detail)
    }

    /// Adds a subproblem for one identifier.
    pub fn with_subproblem(
        mut self,
        kind: ProblemType,
        identifier: ProblemIdentifier,
        detail: impl Into<String>,
    ) -> Problem {
        self.subproblems.push(Subproblem {
            kind,
            detail: detail.into(),
            identifier,
        });
        self
    }

    /// Uses another HTTP status than the type's default (e.g. 401 or 404).
    pub fn with_status(mut self, status: u16) -> Problem {
        self.status = status;
        self
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"{}","detail":"problem could not be encoded","status":{}}}"#,
                self.kind.urn(),
                self.status
            )
        })
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.detail)
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_the_urn_status_and_subproblems() {
        let p = Problem::new(ProblemType::RejectedIdentifier, "not ours").with_subproblem(
            ProblemType::RejectedIdentifier,
            ProblemIdentifier {
                kind: "dns".into(),
                value: "evil.example".into(),
            },
            "outside the allowed suffixes",
        );
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["type"], "urn:ietf:params:acme:error:rejectedIdentifier");
        assert_eq!(v["status"], 400);
        assert_eq!(v["subproblems"][0]["identifier"]["value"], "evil.example");
        assert_eq!(
            ProblemType::BadCsr.urn(),
            "urn:ietf:params:acme:error:badCSR"
        );
        assert_eq!(ProblemType::RateLimited.http_status(), 429);
        assert!(v.get("algorithms").is_none());
    }
}
