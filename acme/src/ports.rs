//! The ports of the ACME engine: what it asks of the storage around it
//! ([`Store`]) and of the CA around it ([`Domain`]), and the facts they
//! hand back. The engine (`server`) and its resources depend on these; the
//! implementations live outside this crate.

use crate::account::AccountRecord;
use crate::order::{AuthzRecord, Identifier, OrderRecord, ValidationJob};
use crate::problem::Problem;
use custos_model::revocation::Reason;
use custos_model::serial::Serial;
use serde_json::Value;

/// A storage failure: the server's fault, reported as `serverInternal`.
#[derive(Debug, thiserror::Error)]
#[error("ACME storage: {0}")]
pub struct StoreError(pub String);

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        Problem::internal(e.to_string())
    }
}

/// What the protocol needs stored. Writes must be durable when they return.
pub trait Store: Send + Sync {
    /// The account with this id.
    fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// The account with this key thumbprint.
    fn account_by_thumbprint(&self, thumbprint: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Stores a new account; `Ok(false)` if its key already has one.
    fn create_account(&self, account: &AccountRecord) -> Result<bool, StoreError>;
    /// Replaces an account.
    fn update_account(&self, account: &AccountRecord) -> Result<(), StoreError>;
    /// Stores a new order with its new authorizations, in one write.
    fn create_order(&self, order: &OrderRecord, authzs: &[AuthzRecord]) -> Result<(), StoreError>;
    /// The order with this id.
    fn order(&self, id: &str) -> Result<Option<OrderRecord>, StoreError>;
    /// Replaces an order.
    fn update_order(&self, order: &OrderRecord) -> Result<(), StoreError>;
    /// The authorization with this id.
    fn authz(&self, id: &str) -> Result<Option<AuthzRecord>, StoreError>;
    /// Replaces an authorization.
    fn update_authz(&self, authz: &AuthzRecord) -> Result<(), StoreError>;
    /// Ids of an account's orders, oldest first.
    fn orders_of_account(&self, account_id: &str) -> Result<Vec<String>, StoreError>;
    /// An account's authorizations for one identifier, any status (from an
    /// index: revocation by authorization reads it).
    fn authzs_for(
        &self,
        account_id: &str,
        identifier: &crate::order::Identifier,
    ) -> Result<Vec<AuthzRecord>, StoreError>;
    /// Authorizations with a challenge left `processing` (a validation that
    /// was under way when the server stopped), from an index, not a scan.
    fn processing_authzs(&self) -> Result<Vec<AuthzRecord>, StoreError>;
    /// Moves an account to a new key; `Ok(Some(id))` names the account that
    /// already has that key (nothing changed then).
    fn change_account_key(
        &self,
        account: &AccountRecord,
        new_jwk: Value,
        new_thumbprint: &str,
    ) -> Result<Option<String>, StoreError>;
}

/// What revocation needs to know about a certificate.
#[derive(Clone, Debug)]
pub struct CertificateFacts {
    /// Serial.
    pub serial: Serial,
    /// The ACME account that ordered it, if any.
    pub account_id: Option<String>,
    /// Its identifiers (SAN dNSNames and iPAddresses).
    pub identifiers: Vec<Identifier>,
    /// The content of its subjectPublicKey BIT STRING.
    pub public_key: Vec<u8>,
    /// Already revoked.
    pub revoked: bool,
}

/// A certificate as the ACME server hands it out.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// The account that ordered it, if it came through ACME.
    pub account_id: Option<String>,
    /// The PEM chain (leaf first).
    pub chain_pem: String,
}

/// What the protocol needs from the CA around it: identifier policy,
/// validation, issuance.
pub trait Domain: Send + Sync {
    /// Whether certificates may name `id` (`rejectedIdentifier` or
    /// `unsupportedIdentifier` otherwise).
    fn check_identifier(&self, id: &Identifier) -> Result<(), Problem>;
    /// The challenge types offered for `id`.
    fn challenge_types(&self, id: &Identifier) -> Vec<&'static str>;
    /// The profiles offered, with a description each (directory
    /// `meta.profiles`).
    fn profiles(&self) -> Vec<(String, Value)>;
    /// Whether `profile` names a profile we issue (`None`: the default).
    fn check_profile(&self, profile: Option<&str>) -> Result<(), Problem>;
    /// Starts validating, off the request path; the result comes back
    /// through `AcmeServer::finish_validation`.
    fn validate(&self, job: ValidationJob);
    /// Verifies a device-attest-01 response (the decoded attestation
    /// object) for `identifier`, the challenge `token` and its key
    /// authorization (`token.thumbprint`); returns what it proved, to be
    /// kept on the authorization and handed back at finalize.
    fn verify_attestation(
        &self,
        identifier: &Identifier,
        token: &str,
        key_authorization: &str,
        att_obj: &[u8],
    ) -> Result<Value, Problem>;
    /// Issues for a ready order from a DER CSR; returns the serial.
    /// `attestations` are what the order's authorizations proved by device
    /// attestation. Refusals are problems (`badCSR`, `badPublicKey`, ...)
    /// and issue nothing.
    fn issue(
        &self,
        order: &OrderRecord,
        account: &AccountRecord,
        csr_der: &[u8],
        attestations: &[Value],
    ) -> Result<Serial, Problem>;
    /// The certificate with this serial.
    fn certificate(&self, serial: &Serial) -> Result<Option<IssuedCertificate>, Problem>;
    /// Facts about a certificate given as DER, if this CA issued it.
    fn certificate_facts(&self, der: &[u8]) -> Result<Option<CertificateFacts>, Problem>;
    /// Revokes a certificate at the request of
    /// `account` (`None`: a request signed with the certificate's own
    /// key); durable when it returns.
    fn revoke(&self, serial: &Serial, reason: Reason, account: Option<&str>)
        -> Result<(), Problem>;
    /// ARI facts about the certificate with this AKI keyIdentifier and
    /// serial (DER INTEGER content bytes), if this CA issued it.
    fn renewal_facts(&self, aki: &[u8], serial: &[u8]) -> Result<Option<RenewalFacts>, Problem>;
    /// The HS256 MAC key of an external account binding key id that exists
    /// and has not bound an account yet.
    fn eab_mac_key(&self, kid: &str) -> Result<Option<Vec<u8>>, Problem>;
}

/// What ARI needs to know about a certificate.
#[derive(Clone, Debug)]
pub struct RenewalFacts {
    /// notBefore (Unix seconds).
    pub not_before: u64,
    /// notAfter (Unix seconds).
    pub not_after: u64,
    /// Revoked.
    pub revoked: bool,
    /// A renewal would be refused now (its device is lost, unenrolled or
    /// non-compliant): a revoked certificate's window then waits.
    pub renewal_refused: bool,
    /// The ACME account that ordered it.
    pub account_id: Option<String>,
}
