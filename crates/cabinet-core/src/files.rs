//! Files the tools write that must stay private.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `private` and a newline to a new file only its owner can read (mode 0600). An
/// existing file is an error: a key is never written over.
pub fn write_private(path: &Path, private: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{private}")
}
