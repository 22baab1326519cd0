//! `custos backup` and `custos restore`: a consistent copy of a data dir
//! taken while the server runs, and its restoration into a new data dir.
//!
//! A backup is a directory holding `ledger/` (a RocksDB checkpoint: every
//! acknowledged write, as of one instant), every other file of the data
//! dir (the CA's certificates and keys, `admin.token`, `eab.secret`, the
//! HTTPS listener's certificate) with their permissions, and `backup.json`
//! saying when it was taken and what it holds. `server.json` (the running
//! server's address) is left out. The backup directory is created 0700:
//! it holds private keys.

use crate::ledger::Ledger;
use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// What `backup.json` says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupManifest {
    /// When the checkpoint was taken (Unix seconds).
    pub taken_at: u64,
    /// The custos version that took it.
    pub custos_version: String,
    /// Certificates in the ledger copy.
    pub certificates: u64,
    /// Revocation events in the ledger copy.
    pub revocation_events: u64,
    /// Files copied besides the ledger (relative paths).
    pub files: Vec<String>,
}

const MANIFEST: &str = "backup.json";
/// Files of a data dir that are not copied.
const SKIP: &[&str] = &["ledger", "server.json"];

fn copy_tree(from: &Path, to: &Path, rel: &Path, files: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from.join(rel))
        .with_context(|| format!("{}: cannot read", from.join(rel).display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let rel_path = rel.join(&name);
        if rel.as_os_str().is_empty() && SKIP.iter().any(|s| name == *s) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            // Never follow a link out of the data dir.
            continue;
        }
        let src = from.join(&rel_path);
        let dst = to.join(&rel_path);
        if kind.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dst)
                .with_context(|| format!("{}: cannot create", dst.display()))?;
            copy_tree(from, to, &rel_path, files)?;
        } else if kind.is_file() {
            let bytes = zeroize::Zeroizing::new(
                std::fs::read(&src).with_context(|| format!("{}: cannot read", src.display()))?,
            );
            let mode = entry.metadata()?.permissions().mode() & 0o777;
            let visibility = if mode & 0o077 == 0 {
                crate::support::files::Visibility::Secret
            } else {
                crate::support::files::Visibility::Public
            };
            crate::support::files::write_atomic(&dst, &bytes, visibility)
                .with_context(|| format!("{}: cannot write", dst.display()))?;
            files.push(rel_path.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

fn create_new_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    if dir.exists() {
        bail!(
            "{}: {what} already exists; refusing to overwrite it",
            dir.display()
        );
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("{}: cannot create {what}", dir.display()))
}

/// Takes a backup of the data dir whose ledger is `ledger` into `out`
/// (which must not exist), while the ledger serves.
pub fn backup(
    ledger: &Ledger,
    data_dir: &Path,
    out: &Path,
    now: u64,
) -> anyhow::Result<BackupManifest> {
    create_new_dir(out, "backup directory")?;
    let result = (|| {
        ledger
            .checkpoint(&out.join("ledger"))
            .map_err(|e| anyhow!("ledger checkpoint: {e}"))?;
        let copy =
            Ledger::open(&out.join("ledger")).map_err(|e| anyhow!("reading the copy: {e}"))?;
        let certificates = copy.count()?;
        let revocation_events = copy.next_revocation_seq()?;
        drop(copy);
        let mut files = Vec::new();
        copy_tree(data_dir, out, Path::new(""), &mut files)?;
        files.sort();
        let manifest = BackupManifest {
            taken_at: now,
            custos_version: env!("CARGO_PKG_VERSION").to_string(),
            certificates,
            revocation_events,
            files,
        };
        crate::support::files::write_atomic(
            &out.join(MANIFEST),
            &serde_json::to_vec_pretty(&manifest)?,
            crate::support::files::Visibility::Public,
        )?;
        Ok(manifest)
    })();
    if result.is_err() {
        // Leave no half-made backup that could be mistaken for a good one.
        let _ = std::fs::remove_dir_all(out);
    }
    result
}

/// Restores the backup in `from` into the new data dir `to`.
pub fn restore(from: &Path, to: &Path) -> anyhow::Result<BackupManifest> {
    let manifest: BackupManifest = serde_json::from_slice(
        &std::fs::read(from.join(MANIFEST))
            .with_context(|| format!("{}: not a custos backup (no {MANIFEST})", from.display()))?,
    )
    .with_context(|| format!("{}: unreadable {MANIFEST}", from.display()))?;
    if !from.join("ledger").is_dir() {
        bail!("{}: the backup holds no ledger", from.display());
    }
    create_new_dir(to, "data dir")?;
    let result = (|| {
        let mut files = Vec::new();
        // Everything, the ledger included (it is a plain RocksDB directory).
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(to.join("ledger"))?;
        copy_tree(from, to, Path::new("ledger"), &mut files)?;
        let mut rest = Vec::new();
        copy_tree(from, to, Path::new(""), &mut rest)?;
        let _ = std::fs::remove_file(to.join(MANIFEST));
        // Check the copy opens and holds what the manifest says.
        let ledger =
            Ledger::open(&to.join("ledger")).map_err(|e| anyhow!("restored ledger: {e}"))?;
        let certificates = ledger.count()?;
        if certificates != manifest.certificates {
            bail!(
                "restored ledger holds {certificates} certificates, the backup says {}",
                manifest.certificates
            );
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(to);
        return Err(e);
    }
    Ok(manifest)
}
