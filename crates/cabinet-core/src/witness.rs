//! The witness: evidence, kept outside the journal, that a journal existed.
//!
//! The journal is what makes "at most once" true. If it disappears (deleted, replaced
//! by an empty file, restored from an older copy, corrupted), a new one would start from
//! nothing and a still-valid token it had already served would be served again. SQLite
//! cannot notice that from inside the file that went missing, so a small JSON file
//! elsewhere remembers which journal this cabinet uses ([`Identity`]: a random ID and a
//! counter that only grows).
//!
//! At start the kiosk opens the journal ([`Journal::open_checked`]) and compares it with
//! the witness ([`judge`]). A journal that is missing, empty, corrupt, another one, or
//! an older copy of this one is a [`Loss`]: the cabinet refuses commands
//! (`journal_unverified`) until a technician or operator confirms a fresh start
//! ([`confirm_fresh_start`], from the diagnostics screen or `cabinet journal
//! confirm-fresh-start`), which is audited in the journal and written to the log.
//!
//! The witness lives at `journal.witness_path` (by default beside the journal, so a
//! delete of the journal file alone does not remove it; on another partition it also
//! survives losing the journal's). It is rewritten atomically at start and after each
//! retention pass, so an older copy of the journal is caught unless it is younger than
//! the last rewrite.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::journal::{Found, Identity, Journal, JournalError, Opened};

/// What the witness file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    /// The journal's identity when last seen healthy.
    pub journal: Identity,
    /// The journal's path then (for the reader; not compared).
    pub journal_path: PathBuf,
    /// When the witness was written, unix ms.
    pub written_at_ms: i64,
}

/// Why the journal cannot be trusted. Serialized as `{"loss": ..., fields}`: the
/// technician's panel words each in its language (ui/strings.js, `diag.losses`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "loss", rename_all = "snake_case")]
pub enum Loss {
    /// The journal file was gone.
    Missing,
    /// The journal file was empty (zero bytes, or SQLite without our tables).
    Empty,
    /// The journal failed SQLite's integrity check and was moved aside.
    Corrupt {
        /// Where it is now.
        set_aside: PathBuf,
        /// What the check said.
        problem: String,
    },
    /// A different journal is in its place.
    Replaced {
        /// The ID the witness remembers.
        expected: String,
        /// The ID found.
        found: String,
    },
    /// An older copy of this journal is in its place: it has written fewer commands'
    /// transitions than the witness saw.
    RolledBack {
        /// The count the witness remembers.
        expected: i64,
        /// The count found.
        found: i64,
    },
    /// The witness itself cannot be read: nothing can be proved either way.
    WitnessUnreadable {
        /// Why.
        problem: String,
    },
}

impl Loss {
    /// One line for logs, the technician screen and telemetry.
    pub fn describe(&self) -> String {
        match self {
            Loss::Missing => "the journal file was missing".into(),
            Loss::Empty => "the journal file was empty".into(),
            Loss::Corrupt { set_aside, problem } => format!(
                "the journal failed its integrity check ({problem}) and was kept as {}",
                set_aside.display()
            ),
            Loss::Replaced { expected, found } => {
                format!("another journal ({found}) is in place of journal {expected}")
            }
            Loss::RolledBack { expected, found } => format!(
                "an older copy of the journal is in place ({found} transitions, the witness saw {expected})"
            ),
            Loss::WitnessUnreadable { problem } => {
                format!("the journal's witness file cannot be read: {problem}")
            }
        }
    }
}

/// The start-up verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The journal is the one the witness remembers (or its first start, or the first
    /// start of a version that keeps a witness): serve.
    Trusted,
    /// Refuse commands until someone confirms a fresh start.
    Lost(Loss),
}

/// Errors writing the witness.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The file could not be written.
    #[error("cannot write the journal witness {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Reads the witness: `Ok(None)` when there is none, `Err` (a description) when there
/// is one that cannot be read or parsed.
pub fn read(path: &Path) -> Result<Option<Witness>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes the witness for `journal` atomically (a temporary file, fsync, rename, fsync
/// of the directory), so a power cut leaves the old witness or the new one.
pub fn write(path: &Path, journal: &Journal) -> Result<(), WitnessError> {
    let w = Witness {
        journal: journal.identity()?,
        journal_path: journal.path().to_owned(),
        written_at_ms: crate::journal::now_ms(),
    };
    let werr = |source| WitnessError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(werr)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let json = serde_json::to_vec_pretty(&w).map_err(|e| werr(e.into()))?;
    let mut f = std::fs::File::create(&tmp).map_err(werr)?;
    f.write_all(&json).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(werr)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Compares what [`Journal::open_checked`] found with the witness.
pub fn judge(opened: &Opened, witness: Result<Option<Witness>, String>) -> Verdict {
    judge_parts(
        opened.found,
        opened.set_aside.as_ref(),
        opened.journal.identity().map_err(|e| e.to_string()),
        witness,
    )
}

/// [`judge`] from its parts, for readers that must not create or move anything
/// (`cabinet journal check`): what was at the path, a corrupt file already set aside
/// (where, what the check said), the journal's identity (or why it could not be read).
pub fn judge_parts(
    found: Found,
    set_aside: Option<&(PathBuf, String)>,
    identity: Result<Identity, String>,
    witness: Result<Option<Witness>, String>,
) -> Verdict {
    if let Some((set_aside, problem)) = set_aside {
        // Whatever the witness says: a corrupt journal held commands we can no longer
        // read.
        return Verdict::Lost(Loss::Corrupt {
            set_aside: set_aside.clone(),
            problem: problem.clone(),
        });
    }
    let w = match witness {
        Ok(Some(w)) => w,
        // First start, or the first start of a version that keeps a witness.
        Ok(None) => return Verdict::Trusted,
        Err(problem) => return Verdict::Lost(Loss::WitnessUnreadable { problem }),
    };
    match found {
        Found::Missing => return Verdict::Lost(Loss::Missing),
        Found::Empty => return Verdict::Lost(Loss::Empty),
        Found::Journal => {}
    }
    let now = match identity {
        Ok(id) => id,
        Err(e) => {
            return Verdict::Lost(Loss::Replaced {
                expected: w.journal.id,
                found: format!("unreadable identity: {e}"),
            });
        }
    };
    if now.id != w.journal.id {
        return Verdict::Lost(Loss::Replaced {
            expected: w.journal.id,
            found: now.id,
        });
    }
    if now.high_water < w.journal.high_water {
        return Verdict::Lost(Loss::RolledBack {
            expected: w.journal.high_water,
            found: now.high_water,
        });
    }
    Verdict::Trusted
}

/// Whether the witness at `path` now names `journal` (someone confirmed a fresh start
/// from outside the running kiosk, with `cabinet journal confirm-fresh-start`).
pub fn names(path: &Path, journal: &Journal) -> bool {
    match (read(path), journal.identity()) {
        (Ok(Some(w)), Ok(id)) => w.journal.id == id.id,
        _ => false,
    }
}

/// The journal setting that records a confirmed fresh start (unix s).
const FRESH_START_AT: &str = "fresh_start_at";

/// When a fresh start of `journal` was confirmed (unix s), if it began that way.
pub fn fresh_start_at(journal: &Journal) -> Option<i64> {
    journal
        .setting(FRESH_START_AT)
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
}

/// Accepts `journal` as this cabinet's journal from now on: writes the witness for it,
/// records who confirmed and why in the audit table, and when ([`fresh_start_at`]: the
/// engine refuses tokens issued before that, which the lost journal may have served).
pub fn confirm_fresh_start(
    path: &Path,
    journal: &mut Journal,
    who: &str,
    loss: &str,
) -> Result<i64, WitnessError> {
    let id = journal.identity()?;
    journal.set_setting(
        FRESH_START_AT,
        &(crate::journal::now_ms() / 1000).to_string(),
    )?;
    let audit = journal.audit(
        who,
        "journal_fresh_start",
        &format!("confirmed a fresh start with journal {}: {loss}", id.id),
    )?;
    write(path, journal)?;
    tracing::warn!(technician = who, journal_id = %id.id, loss, "fresh start of the journal confirmed");
    Ok(audit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Durability;

    fn open(path: &Path) -> Opened {
        Journal::open_checked(path, Durability::Full).unwrap()
    }

    /// A journal with one command's transition written, and its witness.
    fn journal_with_witness(dir: &Path) -> (PathBuf, PathBuf) {
        let jp = dir.join("j.sqlite3");
        let wp = dir.join("j.witness");
        let mut o = open(&jp);
        o.journal
            .conn()
            .execute_batch(
                "INSERT INTO commands (cmd_id, log_id, order_id, state, received_at, updated_at) \
                 VALUES ('c1', 'l', 'o', 'succeeded', 1, 1); \
                 INSERT INTO command_transitions (cmd_id, state, at) VALUES ('c1', 'accepted', 1);",
            )
            .unwrap();
        assert_eq!(judge(&o, read(&wp)), Verdict::Trusted, "first start");
        write(&wp, &o.journal).unwrap();
        (jp, wp)
    }

    #[test]
    fn the_same_journal_is_trusted_after_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let (jp, wp) = journal_with_witness(d.path());
        assert_eq!(judge(&open(&jp), read(&wp)), Verdict::Trusted);
    }

    #[test]
    fn a_deleted_journal_is_a_loss_and_stays_one_after_another_restart() {
        let d = tempfile::tempdir().unwrap();
        let (jp, wp) = journal_with_witness(d.path());
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", jp.display()));
        }
        assert_eq!(judge(&open(&jp), read(&wp)), Verdict::Lost(Loss::Missing));
        // The new journal created meanwhile is not the one the witness names.
        assert!(matches!(
            judge(&open(&jp), read(&wp)),
            Verdict::Lost(Loss::Replaced { .. })
        ));
    }

    #[test]
    fn an_emptied_journal_is_a_loss() {
        let d = tempfile::tempdir().unwrap();
        let (jp, wp) = journal_with_witness(d.path());
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", jp.display()));
        }
        std::fs::write(&jp, b"").unwrap();
        assert_eq!(judge(&open(&jp), read(&wp)), Verdict::Lost(Loss::Empty));
    }

    #[test]
    fn an_older_copy_of_the_journal_is_a_loss() {
        let d = tempfile::tempdir().unwrap();
        let (jp, wp) = journal_with_witness(d.path());
        let copy = d.path().join("copy.sqlite3");
        {
            let o = open(&jp);
            o.journal
                .conn_ref()
                .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
                .unwrap();
            o.journal
                .conn_ref()
                .execute_batch(
                    "INSERT INTO command_transitions (cmd_id, state, at) VALUES ('c1', 'succeeded', 2);",
                )
                .unwrap();
            write(&wp, &o.journal).unwrap();
        }
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", jp.display()));
        }
        std::fs::rename(&copy, &jp).unwrap();
        assert_eq!(
            judge(&open(&jp), read(&wp)),
            Verdict::Lost(Loss::RolledBack {
                expected: 2,
                found: 1
            })
        );
    }

    #[test]
    fn a_corrupt_journal_is_set_aside_untouched_and_is_a_loss() {
        let d = tempfile::tempdir().unwrap();
        let (jp, wp) = journal_with_witness(d.path());
        {
            // Checkpoint everything into the main file, then break a b-tree page.
            let o = open(&jp);
            o.journal
                .conn_ref()
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .unwrap();
        }
        let mut bytes = std::fs::read(&jp).unwrap();
        // Page 1 is the header and schema, page 2 the auto-vacuum pointer map: break
        // the b-tree pages after them.
        let page = 4096;
        assert!(bytes.len() >= 4 * page, "{} bytes", bytes.len());
        for start in (2 * page..bytes.len()).step_by(page) {
            for b in &mut bytes[start..start + 16] {
                *b = 0xA5;
            }
        }
        std::fs::write(&jp, &bytes).unwrap();
        let o = open(&jp);
        let Verdict::Lost(Loss::Corrupt { set_aside, problem }) = judge(&o, read(&wp)) else {
            panic!("not detected");
        };
        assert!(!problem.is_empty());
        assert_eq!(std::fs::read(&set_aside).unwrap(), bytes, "kept as it was");
    }

    #[test]
    fn an_unreadable_witness_proves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (jp, wp) = journal_with_witness(d.path());
        std::fs::write(&wp, b"{not json").unwrap();
        assert!(matches!(
            judge(&open(&jp), read(&wp)),
            Verdict::Lost(Loss::WitnessUnreadable { .. })
        ));
    }

    #[test]
    fn a_confirmed_fresh_start_is_trusted_and_audited() {
        let d = tempfile::tempdir().unwrap();
        let (jp, wp) = journal_with_witness(d.path());
        std::fs::remove_file(&jp).unwrap();
        let mut o = open(&jp);
        let Verdict::Lost(loss) = judge(&o, read(&wp)) else {
            panic!("not a loss");
        };
        assert!(!names(&wp, &o.journal));
        confirm_fresh_start(&wp, &mut o.journal, "ana", &loss.describe()).unwrap();
        assert!(names(&wp, &o.journal));
        let audit = o.journal.recent_audit(1).unwrap();
        assert_eq!(audit[0].action, "journal_fresh_start");
        assert!(audit[0].detail.contains("missing"), "{}", audit[0].detail);
        drop(o);
        assert_eq!(judge(&open(&jp), read(&wp)), Verdict::Trusted);
    }
}
