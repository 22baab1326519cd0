//! The command line's grammar: every command, subcommand and flag (clap).

pub use super::subcommands::{ConsoleCommand, ConsoleUserCommand, MdmCommand};
use crate::ca::key::KeyAlgorithm;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Device certificate authority: ACME issuance, certificate ledger, OCSP and CRL.
#[derive(Debug, Parser)]
#[command(name = "custos", version, about)]
pub struct Cli {
    /// Data directory (ledger, CA, tokens). Default ./custos-data.
    #[arg(long, global = true, env = "CUSTOS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file. Default: ./custos.toml when present.
    #[arg(long, global = true, env = "CUSTOS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the CA (root, issuing intermediate, OCSP responder) and the admin token.
    Init(InitArgs),
    /// Run the OCSP/CRL (HTTP) and ACME/admin (HTTPS) listeners.
    Serve(ServeArgs),
    /// Issue a certificate for a CSR (PEM certificate out).
    Issue(IssueArgs),
    /// List or show certificates.
    Certs {
        /// What to do.
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Revoke one certificate, or every certificate of a device.
    Revoke(RevokeArgs),
    /// Show the CA, the ledger and whether a server is running.
    Status,
    /// OCSP responder tools.
    Ocsp {
        /// What to do.
        #[command(subcommand)]
        command: OcspCommand,
    },
    /// CRL publisher tools.
    Crl {
        /// What to do.
        #[command(subcommand)]
        command: CrlCommand,
    },
    /// The audit log: every change, who made it and what came of it, in a
    /// hash chain (`custos audit verify` checks it).
    Audit(AuditArgs),
    /// Enrolment profiles for MDMs.
    Profile {
        /// What to make.
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// The device inventory.
    Devices {
        /// What to do.
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// ACME external account binding keys.
    Eab {
        /// What to do.
        #[command(subcommand)]
        command: EabCommand,
    },
    /// Operator accounts of the web console (`/console/`).
    Console {
        /// What to do.
        #[command(subcommand)]
        command: ConsoleCommand,
    },
    /// MDM inventory sync (`[mdm.<name>]` sources).
    Mdm {
        /// What to do.
        #[command(subcommand)]
        command: MdmCommand,
    },
    /// SCEP enrolment (RFC 8894) for devices that cannot do ACME yet.
    Scep {
        /// What to do.
        #[command(subcommand)]
        command: ScepCommand,
    },
    /// Ledger tools.
    Ledger {
        /// What to do.
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Take a consistent copy of the data dir (ledger checkpoint, CA files,
    /// tokens and secrets) while the server runs.
    Backup {
        /// Directory to create (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into a new data dir (--data-dir, which must not exist).
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// MDM webhooks and outbound revocation notifications.
    Webhooks {
        /// What to do.
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Stateless responders of this primary.
    Responder {
        /// What to do.
        #[command(subcommand)]
        command: ResponderCommand,
    },
    /// Status replication to Redis (`[replication]`).
    Replication {
        /// What to do.
        #[command(subcommand)]
        command: ReplicationCommand,
    },
}

/// `custos responder …`.
#[derive(Debug, Subcommand)]
pub enum ResponderCommand {
    /// Join tokens for `custos serve --role responder --join TOKEN`.
    Token {
        /// What to do.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Cuts a responder off: revokes the certificate last issued to it (on
    /// OCSP, the CRL and Redis) and refuses its renewals; the responder
    /// stops signing with that key as soon as it hears of the revocation.
    Revoke {
        /// The responder's name.
        #[arg(long)]
        name: String,
        /// RFC 5280 reason (keyCompromise, cessationOfOperation, …).
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
}

/// `custos responder token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Prints a one-time join token (valid for a day) carrying this
    /// primary's HTTPS URL, its root's fingerprint and a secret; a new
    /// token for a name cuts off the responder enrolled under it.
    Create {
        /// The responder's name (letters, digits, '-', '_').
        #[arg(long)]
        name: String,
    },
}

/// `custos replication …`.
#[derive(Debug, Subcommand)]
pub enum ReplicationCommand {
    /// Publish every unexpired certificate's status, every CRL and the CA
    /// files to Redis again (after Redis lost its data, or to fill a new
    /// one); also done by itself when the primary finds Redis empty.
    Resync,
}

/// `custos audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// `verify`: check the hash chain.
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Entries after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Only this kind (event, revocation, issuance, device, eab,
    /// ocsp.refresh, crl.generate, outbox.retry, backup).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only entries naming this device (serial number or UDID).
    #[arg(long)]
    pub device: Option<String>,
    /// Only entries naming this certificate serial.
    #[arg(long)]
    pub serial: Option<String>,
    /// Only entries at or after this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub until: Option<String>,
    /// Print a JSON array.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one JSON object per line (for a SIEM).
    #[arg(long)]
    pub jsonl: bool,
}

/// `custos audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain: exits non-zero if an entry was
    /// removed, changed or cut off the end.
    Verify,
}

/// `custos ledger …`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check, read-only, that stored OCSP responses, CRLs, device statuses
    /// and indexes agree with the certificate records; exits non-zero on
    /// any mismatch.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `custos webhooks …`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// The outbound notification outbox: what waits for delivery (and why
    /// the last attempt failed), or what was given up on (`--dead`).
    Outbox {
        /// List dead entries instead of pending ones.
        #[arg(long)]
        dead: bool,
        /// Put every dead entry back in the queue, attempts reset.
        #[arg(long, conflicts_with = "dead")]
        retry_dead: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `custos profile …`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Write an Apple configuration profile (.mobileconfig) that enrols
    /// devices by ACME with a hardware-bound, attested P-384 key.
    ///
    /// Upload it to the MDM as a custom configuration profile, scoped to
    /// the devices of the group: Jamf Pro: Computers/Devices >
    /// Configuration Profiles > Upload; Microsoft Intune: Devices > macOS
    /// or iOS/iPadOS > Configuration > Create > Templates > Custom; Fleet:
    /// Controls > OS settings > Custom settings > Add profile. Set
    /// acme.device_attest.client_identifier (or --client-identifier) to the
    /// MDM's serial-number variable: Jamf $SERIALNUMBER, Intune
    /// {{serialnumber}}, Fleet $FLEET_VAR_HOST_HARDWARE_SERIAL. The devices
    /// must be on the inventory (custos devices import) and reach the
    /// ACME directory URL (public_https_url).
    Apple {
        /// Device group the profile is for (named in the profile).
        #[arg(long)]
        group: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// ClientIdentifier (default: acme.device_attest.client_identifier).
        #[arg(long)]
        client_identifier: Option<String>,
        /// Organisation name shown on devices.
        #[arg(long, default_value = "custos")]
        organization: String,
    },
}

/// `custos devices …`.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Add a device (or replace the one with the same serial).
    Add {
        /// Hardware serial number.
        #[arg(long)]
        serial: String,
        /// Apple UDID.
        #[arg(long)]
        udid: Option<String>,
        /// Who has it.
        #[arg(long)]
        owner: Option<String>,
        /// Group (policy floors apply per group).
        #[arg(long)]
        group: Option<String>,
        /// Status (default active).
        #[arg(long, value_enum)]
        status: Option<crate::devices::DeviceStatus>,
        /// Not compliant with the MDM's policies.
        #[arg(long)]
        noncompliant: bool,
        /// Notes for the helpdesk.
        #[arg(long)]
        notes: Option<String>,
        /// SHA-256 (hex) of the device's TPM attestation key
        /// (SubjectPublicKeyInfo), for TPM attestations whose AK certificate
        /// does not name the device.
        #[arg(long)]
        tpm_ak: Option<String>,
    },
    /// Import a CSV inventory (header: serial, and any of udid, owner,
    /// group, status, compliant, notes); all rows or none.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// List devices in serial order.
    List {
        /// Start after this serial.
        #[arg(long)]
        after: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only devices that last enrolled this way (acme-attested, acme,
        /// scep, admin): `--enrolment scep` shows what a migration to ACME
        /// has left.
        #[arg(long, value_enum)]
        enrolment: Option<crate::model::device::Enrolment>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one device (by serial or UDID).
    Show {
        /// Serial or UDID.
        id: String,
    },
    /// Change a device's status (and compliance).
    SetStatus {
        /// Serial or UDID.
        id: String,
        /// New status.
        #[arg(value_enum)]
        status: crate::devices::DeviceStatus,
        /// Also set compliance: true or false.
        #[arg(long)]
        compliant: Option<bool>,
    },
    /// Allow or deny SCEP for a device. By default (`auto`) SCEP is
    /// refused once the device has enrolled with hardware attestation.
    SetScep {
        /// Serial or UDID.
        id: String,
        /// allow, deny, or auto (the default rule).
        #[arg(value_enum)]
        policy: crate::model::device::ScepPolicy,
    },
}

/// `custos eab …`.
#[derive(Debug, Subcommand)]
pub enum EabCommand {
    /// Make a single-use key id and HS256 MAC key for one ACME account
    /// (give them to the client: certbot --eab-kid/--eab-hmac-key,
    /// acme.sh --eab-kid/--eab-hmac-key, lego --eab --kid/--hmac).
    Create {
        /// Who the key is for (kept with the key, shown in logs).
        #[arg(long)]
        name: String,
    },
}

/// `custos scep …`.
#[derive(Debug, Subcommand)]
pub enum ScepCommand {
    /// Make a one-time challenge password bound to one inventory device
    /// (put it in the device's SCEP profile; shown once, never stored).
    Challenge {
        /// The device's serial number (or UDID) in the inventory.
        #[arg(long)]
        device: String,
        /// How long it may be used: 90s, 15m, 1h, 7d (default
        /// `scep.challenge_ttl_secs`, one hour).
        #[arg(long)]
        ttl: Option<String>,
    },
}

/// `custos crl …`.
#[derive(Debug, Subcommand)]
pub enum CrlCommand {
    /// Re-sign every shard's CRL now.
    Generate,
    /// Print every shard's current CRL: number, dates, entries, size, URL.
    Show,
}

/// `custos ocsp …`.
#[derive(Debug, Subcommand)]
pub enum OcspCommand {
    /// Re-sign every unexpired certificate's precomputed responses now.
    Refresh,
    /// Ask the running responder about a certificate and print its status.
    Check {
        /// PEM certificate issued by this CA.
        #[arg(long)]
        cert: PathBuf,
        /// Responder URL (default: the running server's, else public_http_url + /ocsp).
        #[arg(long)]
        url: Option<String>,
    },
}

/// `custos init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Organisation name in the CA certificates.
    #[arg(long, default_value = "custos")]
    pub org: String,
    /// Root CA common name.
    #[arg(long, default_value = "custos Development Root CA")]
    pub root_cn: String,
    /// Issuing CA common name.
    #[arg(long, default_value = "custos Development Issuing CA")]
    pub intermediate_cn: String,
    /// Root validity in days.
    #[arg(long, default_value_t = 3650)]
    pub root_days: u32,
    /// Issuing CA validity in days.
    #[arg(long, default_value_t = 1825)]
    pub intermediate_days: u32,
    /// OCSP responder key type: p256 (fast) or p384.
    #[arg(long, default_value = "p256")]
    pub ocsp_key: KeyAlgorithm,
    /// OCSP responder certificate validity in days (default: ocsp.signer_validity_days).
    #[arg(long)]
    pub ocsp_days: Option<u32>,
    /// Import an existing issuing CA instead: CERT (PEM, issuing CA first, then its chain to the root) and KEY (PEM).
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
    pub import_ca: Option<Vec<PathBuf>>,
}

/// `custos serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Plain-HTTP listen address (OCSP, CRL, health, metrics).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// HTTPS listen address (ACME, admin API, webhooks).
    #[arg(long)]
    pub https: Option<SocketAddr>,
    /// Record MDM events without processing them until the next start
    /// (for tests that stop a server between the answer and the work).
    #[arg(long, hide = true)]
    pub hold_device_events: bool,
    /// Wait this long before the start-up catch-up (CRLs older than a
    /// revocation, due OCSP refreshes), for tests that ask while it runs.
    #[arg(long, hide = true, default_value_t = 0)]
    pub delay_catch_up_ms: u64,
    /// `primary` (the CA, the ledger, every listener) or `responder` (OCSP,
    /// CRL and CA files from Redis on the plain listener; no ledger, no CA
    /// key).
    #[arg(long, value_enum, default_value_t = Role::Primary)]
    pub role: Role,
    /// Redis URL(s) a responder reads (comma-separated; default
    /// `replication.redis`).
    #[arg(long, value_delimiter = ',')]
    pub redis: Vec<String>,
    /// A responder's join token (`custos responder token create` on the
    /// primary): at first start it makes its own key in `--data-dir` and
    /// gets its delegated OCSP responder certificate from the primary.
    #[arg(long, requires = "redis")]
    pub join: Option<String>,
}

/// What `custos serve` runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The CA: issues, revokes, keeps the ledger, publishes status.
    Primary,
    /// A stateless status responder reading Redis.
    Responder,
}

/// `custos issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// PEM or DER CSR file.
    #[arg(long)]
    pub csr: PathBuf,
    /// Profile (certificate template) name.
    #[arg(long)]
    pub profile: Option<String>,
    /// Write the PEM certificate here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Link the certificate to this inventory device (serial number or
    /// UDID), so `custos revoke --device` and MDM events reach it.
    #[arg(long)]
    pub device: Option<String>,
}

/// `custos certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List certificates in serial order.
    List {
        /// Start after this serial.
        #[arg(long)]
        after: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one certificate.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["serial", "serial_arg"]))]
    Show {
        /// Serial (hex), as `--serial HEX` or positionally.
        #[arg(long)]
        serial: Option<String>,
        /// Serial (hex).
        #[arg(value_name = "SERIAL")]
        serial_arg: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `custos revoke`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["serial", "device"]))]
pub struct RevokeArgs {
    /// Serial (hex) of the certificate.
    #[arg(long)]
    pub serial: Option<String>,
    /// Device identifier: serial number, UDID or permanent identifier.
    #[arg(long)]
    pub device: Option<String>,
    /// RFC 5280 reason (keyCompromise, cessationOfOperation, …).
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
}
