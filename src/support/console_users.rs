//! Named operator accounts of the web console: `console-users.json` in the
//! data dir (0600), one entry per operator with a role and an Argon2id
//! password hash (PHC string). `custos console user add` writes it; the
//! server reads it at each sign-in, so a change needs no restart.

use crate::support::files::{write_atomic, Visibility};
use anyhow::{anyhow, bail, Context};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::path::{Path, PathBuf};

/// What an operator may do in the console.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Look only.
    Viewer,
    /// Look, revoke, change device status.
    Operator,
}

impl Role {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// One operator account.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ConsoleUser {
    /// Sign-in name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string.
    pub hash: String,
    /// Made (Unix seconds).
    pub created_at: u64,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct UsersFile {
    users: Vec<ConsoleUser>,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("console-users.json")
}

fn read(data_dir: &Path) -> anyhow::Result<UsersFile> {
    let p = path(data_dir);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
        Err(e) => Err(anyhow!("{}: {e}", p.display())),
    }
}

/// Adds (or replaces) an operator with a fresh random password; returns
/// the password, shown once.
pub fn add(data_dir: &Path, name: &str, role: Role, now: u64) -> anyhow::Result<String> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain || name.len() > 64 {
        bail!("--name may hold only letters, digits, '-' and '_' (at most 64)");
    }
    let mut raw = [0u8; 18];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow!("no randomness"))?;
    let password = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("hashing the password: {e}"))?
        .to_string();
    let mut file = read(data_dir)?;
    file.users.retain(|u| u.name != name);
    file.users.push(ConsoleUser {
        name: name.into(),
        role,
        hash,
        created_at: now,
    });
    write_atomic(
        &path(data_dir),
        &serde_json::to_vec_pretty(&file)?,
        Visibility::Secret,
    )?;
    Ok(password)
}

/// The operator whose name and password these are, if any. Always runs
/// one Argon2 verification, so an unknown name takes as long as a wrong
/// Whether `name` is an account's.
pub fn known(data_dir: &Path, name: &str) -> bool {
    read(data_dir).is_ok_and(|f| f.users.iter().any(|u| u.name == name))
}

/// password.
pub fn check(data_dir: &Path, name: &str, password: &str) -> anyhow::Result<Option<ConsoleUser>> {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8GbPzSC6wV1Ps3mv2pB7Mx0W2Y0Fv4mXr4f0b1Zq0vY";
    let file = read(data_dir)?;
    let user = file.users.into_iter().find(|u| u.name == name);
    let stored = user.as_ref().map_or(DUMMY, |u| u.hash.as_str());
    let ok = PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    Ok(user.filter(|_| ok))
}
