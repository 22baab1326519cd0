//! Writing files safely: atomic replace (temp file + fsync + rename) and
//! secret files created with mode 0600 from the first byte.
//!
//! Every key, token and certificate custos writes goes through here so that a
//! crash never leaves a half-written file and a secret is never briefly
//! world-readable. No parsing or policy lives here.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Who may read a file we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Owner read/write only (0600): private keys, tokens.
    Secret,
    /// World-readable (0644): certificates.
    Public,
}

/// Atomically writes `bytes` to `path` with the given visibility.
pub fn write_atomic(path: &Path, bytes: &[u8], visibility: Visibility) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let mode = match visibility {
        Visibility::Secret => 0o600,
        Visibility::Public => 0o644,
    };
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    // Make the rename itself durable.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a file, turning "not found" and other failures into one line that
/// names the file.
pub fn read_named(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read {what}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_files_are_0600_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key.pem");
        write_atomic(&path, b"one", Visibility::Secret).unwrap();
        write_atomic(&path, b"two", Visibility::Secret).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
