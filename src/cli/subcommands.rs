//! The `custos console …` and `custos mdm …` subcommands' arguments (the
//! rest are in `args`).

use clap::Subcommand;

/// `custos console …`.
#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Operator accounts.
    User {
        /// What to do.
        #[command(subcommand)]
        command: ConsoleUserCommand,
    },
}

/// `custos console user …`.
#[derive(Debug, Subcommand)]
pub enum ConsoleUserCommand {
    /// Adds (or replaces) an operator and prints a new random password,
    /// once (only its Argon2id hash is kept, in console-users.json, 0600).
    Add {
        /// Sign-in name.
        #[arg(long)]
        name: String,
        /// viewer (look only) or operator (also revoke).
        #[arg(long, value_enum)]
        role: crate::support::console_users::Role,
    },
}

/// `custos mdm …`.
#[derive(Debug, Subcommand)]
pub enum MdmCommand {
    /// Sync one source now: read its inventory, update ours, revoke what
    /// became lost, wiped, unenrolled or retired; prints what changed.
    Sync {
        /// The source (`[mdm.<name>]`).
        #[arg(long)]
        name: String,
        /// Show what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply even when more than max_changes_percent would change (a
        /// held sync).
        #[arg(long)]
        confirm: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every source's last sync: result, duration, counts, held changes.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
