//! Opening the journal: creating, checking, setting a corrupt file aside, migrating;
//! the connection's settings, identity and figures.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use super::Journal;
use super::lock::poll_for_the_lock;
use super::row::now_ms;
use super::schema::{MIGRATIONS, migrate};
use super::{BUSY_TIMEOUT, JournalError, LockWaits, RejectionLimits};

/// Page cache per connection, in KiB (`PRAGMA cache_size` = minus this). SQLite's default
/// is 2 MiB per connection, and start-up's quick_check reads the whole file through it:
/// with a 60 MiB journal that left ~1.8 MB of heap resident for good (docs/BENCHMARKS.md,
/// "Footprint"). The pages are in the OS's cache anyway; a miss costs a read, not a seek.
const CACHE_KIB: i64 = 512;

/// The journal's random identity (set by migration 3).
const JOURNAL_ID: &str = "journal_id";
/// When the journal was created or upgraded to schema 3, unix ms.
const JOURNAL_CREATED_AT: &str = "journal_created_at";
/// Bytes the WAL file is truncated to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// What was at the journal's path when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// No file (or a corrupt one that was set aside): a new journal was created.
    Missing,
    /// A zero-length file, or a SQLite file without our schema.
    Empty,
    /// A journal, which passed the quick integrity check.
    Journal,
}

/// What [`Journal::open_checked`] found and did.
#[derive(Debug)]
pub struct Opened {
    /// The journal, ready for use.
    pub journal: Journal,
    /// What was there before.
    pub found: Found,
    /// A journal that failed the integrity check: where it was moved, and what the
    /// check said.
    pub set_aside: Option<(PathBuf, String)>,
}

/// Who a journal is: see [`Journal::identity`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Random, 32 hex digits.
    pub id: String,
    /// Creation (or upgrade to schema 3), unix ms.
    pub created_at_ms: i64,
    /// [`Journal::high_water`].
    pub high_water: i64,
}

/// SQLite's `quick_check` (page structure, record formats; not index contents) on the
/// file at `path`: `None` when it is fine, else what is wrong. A file that is not a
/// database at all counts as corrupt; a file that cannot be opened for other reasons
/// (permissions) is an error, not corruption.
pub fn quick_check(path: &Path) -> Result<Option<String>, JournalError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    let rows: Result<Vec<String>, rusqlite::Error> = conn
        .prepare("PRAGMA quick_check(20)")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    match rows {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(None),
        Ok(rows) => Ok(Some(rows.join("; "))),
        Err(e) if is_corruption(&e) => Ok(Some(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Moves a corrupt journal and its WAL and shared-memory files to
/// `<path>.corrupt-<unix ms>[-wal|-shm]`, so nothing ever writes over it.
fn set_aside_corrupt(path: &Path) -> Result<PathBuf, JournalError> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{}", now_ms()));
    let aside = PathBuf::from(aside);
    for suffix in ["-wal", "-shm", ""] {
        let mut from = path.as_os_str().to_owned();
        from.push(suffix);
        let mut to = aside.as_os_str().to_owned();
        to.push(suffix);
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(source) => {
                return Err(JournalError::SetAside {
                    path: PathBuf::from(from),
                    source,
                });
            }
        }
    }
    Ok(aside)
}

/// How hard each commit is pushed to disk (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the WAL on every commit: a commit survives a power cut. What the kiosk uses.
    Full,
    /// fsync only at checkpoints: a power cut can roll back the last commits. Only for
    /// benchmarks (`cabinet-lab bench journal`) and for filling a journal with history.
    Normal,
}

impl Journal {
    /// Opens (creating if needed, with its parent directory) and migrates the journal,
    /// with [`Durability::Full`].
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        Journal::open_with(path, Durability::Full)
    }

    /// [`Journal::open`] with a chosen durability. The kiosk never uses anything but
    /// `Full` (see the module docs).
    pub fn open_with(path: &Path, durability: Durability) -> Result<Journal, JournalError> {
        Journal::open_checked(path, durability).map(|o| o.journal)
    }

    /// Opens the journal the way the kiosk does at start, and says what it found:
    /// nothing, an empty file, or a journal — and whether that journal passed SQLite's
    /// quick integrity check. A journal that fails it (or is not a database at all) is
    /// renamed to `<path>.corrupt-<unix ms>` with its WAL, never overwritten, and a new
    /// one is created in its place; whether the cabinet may use the new one is for
    /// [`crate::witness`] to decide.
    pub fn open_checked(path: &Path, durability: Durability) -> Result<Opened, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut found = match std::fs::metadata(path) {
            Ok(md) if md.len() == 0 => Found::Empty,
            Ok(_) => Found::Journal,
            Err(_) => Found::Missing,
        };
        let mut set_aside = None;
        if found == Found::Journal
            && let Some(problem) = quick_check(path)?
        {
            let aside = set_aside_corrupt(path)?;
            set_aside = Some((aside, problem));
            found = Found::Missing;
        }
        let mut conn = Connection::open(path)?;
        // Only possible before the first table exists: lets retention hand freed pages
        // back to the file system (`PRAGMA incremental_vacuum`). Journals created before
        // this keep `NONE` until `cabinet journal compact` rebuilds them.
        // Only on a new file: on an existing one the pragma would write its header for
        // nothing (VACUUM is what switches an existing journal).
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        if pages == 0 {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::NoWal(mode));
        }
        // See the module docs for why FULL and not NORMAL.
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        // After a checkpoint the WAL is truncated to this, so a burst (a prune, a flood)
        // does not leave a large WAL file behind.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let waits = LockWaits::default();
        poll_for_the_lock(&mut conn, &waits)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found == Found::Journal && version == 0 {
            // A SQLite file without our schema: as good as empty.
            found = Found::Empty;
        }
        migrate(&mut conn)?;
        Ok(Opened {
            journal: Journal {
                conn,
                path: path.to_owned(),
                rejection_limits: RejectionLimits::default(),
                waits,
                give_way: None,
                sync,
            },
            found,
            set_aside,
        })
    }

    /// A second connection to a journal another connection of this process already
    /// opened (and checked, and migrated): nothing is created, checked or moved. For work
    /// that runs beside the engine's connection (retention, crate::upkeep).
    pub fn open_again(path: &Path) -> Result<Journal, JournalError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if found != supported {
            return Err(JournalError::Corrupt(format!(
                "schema version {found} where {supported} was expected"
            )));
        }
        Ok(Journal {
            conn,
            path: path.to_owned(),
            rejection_limits: RejectionLimits::default(),
            waits: LockWaits::default(),
            give_way: None,
            sync: "FULL",
        })
    }
}

impl Journal {
    /// This journal's identity: a random ID given when it was created (or upgraded to
    /// schema 3), and when that was (unix ms).
    pub fn identity(&self) -> Result<Identity, JournalError> {
        let id = self
            .setting(JOURNAL_ID)?
            .ok_or_else(|| JournalError::Corrupt("the journal has no journal_id".into()))?;
        let created_at_ms = self
            .setting(JOURNAL_CREATED_AT)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Identity {
            id,
            created_at_ms,
            high_water: self.high_water()?,
        })
    }

    /// How many command transitions were ever written. It only grows (SQLite's
    /// AUTOINCREMENT counter survives deletes), so a journal swapped for an older copy
    /// of itself shows a lower number than the witness remembers.
    pub fn high_water(&self) -> Result<i64, JournalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'command_transitions'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// The SQLite connection, for the modules that extend the journal (retention).
    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The SQLite connection, read-only use in tests.
    #[cfg(test)]
    pub(crate) fn conn_ref(&self) -> &Connection {
        &self.conn
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version on disk (number of migrations applied).
    pub fn schema_version(&self) -> Result<i64, JournalError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

impl Journal {
    /// Commands and refused payloads held now (two `COUNT(*)`s over the smallest
    /// index: a few milliseconds at the retention ceiling), for telemetry.
    pub fn rows_held(&self) -> Result<(u64, u64), JournalError> {
        let count = |table: &str| -> Result<u64, JournalError> {
            let n: i64 = self
                .conn
                .prepare_cached(&format!("SELECT COUNT(*) FROM {table}"))?
                .query_row([], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok((count("commands")?, count("rejections")?))
    }
}
