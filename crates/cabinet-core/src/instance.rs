//! One kiosk per cabinet: an exclusive lock next to the journal.
//!
//! Two kiosk processes on one journal would both answer the same commands and drive the
//! same board. The lock is an advisory `flock` on `<journal>.lock` (it works without a
//! D-Bus session, unlike desktop single-instance helpers, and the kernel releases it when
//! the process dies, even by `kill -9`, so there is no stale lock to clean up). The file
//! holds the owner's pid for the error message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Another process holds it.
    #[error(
        "another kiosk is already running for this cabinet (pid {pid}, lock {path}); stop it first"
    )]
    AlreadyRunning {
        /// The lock file.
        path: PathBuf,
        /// The pid written by the owner, or `?` when unreadable.
        pid: String,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Held for as long as the kiosk runs; released on drop or process exit.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock for the cabinet `cfg` describes (beside its journal).
    pub fn for_config(cfg: &Config) -> Result<InstanceLock, InstanceError> {
        InstanceLock::acquire(&cfg.journal.beside(".lock"))
    }

    /// Takes an exclusive lock on `path` (created, with its directory, if missing)
    /// without waiting.
    pub fn acquire(path: &Path) -> Result<InstanceLock, InstanceError> {
        let io = |source| InstanceError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(InstanceError::AlreadyRunning {
                    path: path.to_path_buf(),
                    pid: if pid.is_empty() {
                        "?".into()
                    } else {
                        pid.into()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(InstanceLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_owner_pid_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/journal.sqlite3.lock");
        let first = InstanceLock::acquire(&path).unwrap();
        match InstanceLock::acquire(&path) {
            Err(InstanceError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string());
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        drop(first);
        InstanceLock::acquire(&path).unwrap();
    }
}
