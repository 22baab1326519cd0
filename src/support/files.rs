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
    let mode = match visibility {
        Visibility::Secret => 0o600,
        Visibility::Public => 0o644,
    };
    // A fresh temp file, never an existing one and never through a symlink
    // someone planted in the directory: create_new (O_EXCL) refuses both.
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(
            ".{file_name}.tmp{}.{}",
            std::process::id(),
            temp_suffix(attempt)
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let written = file.write_all(bytes).and_then(|_| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    // Make the rename itself durable.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A suffix that differs between calls and processes.
fn temp_suffix(attempt: u32) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{:x}{:x}{attempt}",
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
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
