//! What the journal holds, read without writing: its size, its rows, its identity.
//!
//! [`Journal::stats`] is cheap enough for telemetry every minute (counts over indexes,
//! two index lookups for the oldest and newest command, a few pragmas: about 15 ms on a
//! 50,000-command journal, see docs/OPERATIONS.md "The journal"). [`JournalReader`]
//! opens a journal read-only, for the operator's tools that must not create, migrate or
//! move anything while the kiosk may be running (`cabinet journal stats | check |
//! export`): its integrity check, its identity, its stats, and a streaming JSON Lines
//! export.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::journal::{Identity, Journal, JournalError};
use crate::protocol::ReplyState;

// Settings keys, as journal/ and retention.rs write them (the tests below compare
// with their readers, so a rename there fails here).
const JOURNAL_ID: &str = "journal_id";
const JOURNAL_CREATED_AT: &str = "journal_created_at";
const REJECTIONS_DROPPED: &str = "rejections_dropped";
const COMMANDS_PRUNED: &str = "commands_pruned";

/// How long a reader waits for a writer's lock (a checkpoint) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The journal's files on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FileBytes {
    /// The database file.
    pub database: u64,
    /// Its write-ahead log (`<path>-wal`), 0 when there is none.
    pub wal: u64,
    /// Both.
    pub total: u64,
}

impl FileBytes {
    /// The sizes of the journal at `path` and its WAL now (0 for a missing file).
    pub fn of(path: &Path) -> FileBytes {
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let database = len(path);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = len(Path::new(&wal));
        FileBytes {
            database,
            wal,
            total: database + wal,
        }
    }
}

/// Row counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    /// Commands.
    pub commands: u64,
    /// Commands by state: every state, 0 when none (and any unknown state found).
    pub commands_by_state: BTreeMap<String, u64>,
    /// Their state changes.
    pub command_transitions: u64,
    /// Replies waiting for the broker's acknowledgement.
    pub outbox: u64,
    /// Refused payloads in the ring.
    pub rejections: u64,
    /// Technician actions.
    pub audit: u64,
}

/// What [`Journal::stats`] and [`JournalReader::stats`] report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalStats {
    /// The database file.
    pub path: PathBuf,
    /// Migrations applied (`PRAGMA user_version`).
    pub schema_version: i64,
    /// The journal's random identity (None before schema 3).
    pub journal_id: Option<String>,
    /// When it was created (or upgraded to schema 3), unix ms.
    pub created_at_ms: Option<i64>,
    /// Command transitions ever written ([`Journal::high_water`]).
    pub high_water: i64,
    /// The files' sizes.
    pub file_bytes: FileBytes,
    /// SQLite page size, bytes.
    pub page_size: u64,
    /// Pages in the database (as this connection sees it, WAL included).
    pub page_count: u64,
    /// Unused pages inside the file: what `PRAGMA incremental_vacuum` or `cabinet
    /// journal compact` would give back.
    pub freelist_pages: u64,
    /// `none`, `full` or `incremental`. Journals created before retention are `none`
    /// until `cabinet journal compact` rebuilds them.
    pub auto_vacuum: String,
    /// Rows per table.
    pub rows: RowCounts,
    /// `received_at` of the oldest command, unix ms.
    pub oldest_command_ms: Option<i64>,
    /// `received_at` of the newest command, unix ms.
    pub newest_command_ms: Option<i64>,
    /// Refused payloads dropped from the ring over the journal's life.
    pub rejections_dropped: u64,
    /// Commands removed by retention over the journal's life.
    pub commands_pruned: u64,
    /// Free bytes on the journal's file system, for an unprivileged user (statvfs).
    pub disk_free_bytes: Option<u64>,
}

/// Free bytes for an unprivileged user on the file system holding `path` (statvfs on
/// its directory), or None when it cannot be read.
// fsblkcnt_t and c_ulong are u64 here but u32 on 32-bit ARM kiosk boards.
#[allow(clippy::useless_conversion)]
pub fn disk_free(path: &Path) -> Option<u64> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    u64::try_from(st.blocks_available())
        .ok()?
        .checked_mul(u64::try_from(st.fragment_size()).ok()?)
}

fn as_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn pragma_i64(conn: &Connection, name: &str) -> Result<i64, JournalError> {
    Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
}

fn count(conn: &Connection, table: &str) -> Result<u64, JournalError> {
    let n: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM {table}"))?
        .query_row([], |r| r.get(0))?;
    Ok(as_u64(n))
}

fn setting(conn: &Connection, key: &str) -> Result<Option<String>, JournalError> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn high_water(conn: &Connection) -> Result<i64, JournalError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'command_transitions'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn identity(conn: &Connection) -> Result<Identity, JournalError> {
    let id = setting(conn, JOURNAL_ID)?
        .ok_or_else(|| JournalError::Corrupt("the journal has no journal_id".into()))?;
    Ok(Identity {
        id,
        created_at_ms: setting(conn, JOURNAL_CREATED_AT)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        high_water: high_water(conn)?,
    })
}

/// Every figure of [`JournalStats`] from one connection. Counts go over the smallest
/// index SQLite finds; the oldest and newest command are one index lookup each (two
/// subqueries: with MIN and MAX in one SELECT, SQLite would scan).
fn gather(conn: &Connection, path: &Path) -> Result<JournalStats, JournalError> {
    let mut by_state: BTreeMap<String, u64> = ReplyState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    let mut commands = 0;
    {
        let mut st = conn.prepare_cached("SELECT state, COUNT(*) FROM commands GROUP BY state")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let n = as_u64(r.get(1)?);
            commands += n;
            *by_state.entry(r.get(0)?).or_default() += n;
        }
    }
    let (oldest, newest): (Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT (SELECT MIN(received_at) FROM commands), (SELECT MAX(received_at) FROM commands)",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let auto_vacuum = match pragma_i64(conn, "auto_vacuum")? {
        0 => "none".to_owned(),
        1 => "full".to_owned(),
        2 => "incremental".to_owned(),
        n => format!("unknown ({n})"),
    };
    let number = |key| -> Result<u64, JournalError> {
        Ok(setting(conn, key)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    };
    Ok(JournalStats {
        path: path.to_owned(),
        schema_version: pragma_i64(conn, "user_version")?,
        journal_id: setting(conn, JOURNAL_ID)?,
        created_at_ms: setting(conn, JOURNAL_CREATED_AT)?.and_then(|v| v.parse().ok()),
        high_water: high_water(conn)?,
        file_bytes: FileBytes::of(path),
        page_size: as_u64(pragma_i64(conn, "page_size")?),
        page_count: as_u64(pragma_i64(conn, "page_count")?),
        freelist_pages: as_u64(pragma_i64(conn, "freelist_count")?),
        auto_vacuum,
        rows: RowCounts {
            commands,
            commands_by_state: by_state,
            command_transitions: count(conn, "command_transitions")?,
            outbox: count(conn, "outbox")?,
            rejections: count(conn, "rejections")?,
            audit: count(conn, "audit")?,
        },
        oldest_command_ms: oldest,
        newest_command_ms: newest,
        rejections_dropped: number(REJECTIONS_DROPPED)?,
        commands_pruned: number(COMMANDS_PRUNED)?,
        disk_free_bytes: disk_free(path),
    })
}

impl Journal {
    /// The journal's size, rows and identity (telemetry, `cabinet journal stats`).
    /// Reads only; about 15 ms on a 50,000-command journal (two index scans).
    pub fn stats(&mut self) -> Result<JournalStats, JournalError> {
        let path = self.path().to_owned();
        gather(self.conn(), &path)
    }
}

/// A journal opened read-only: nothing is created, migrated, checkpointed or moved, and
/// the kiosk may keep running (WAL: readers and the writer do not block each other).
#[derive(Debug)]
pub struct JournalReader {
    conn: Connection,
    path: PathBuf,
}

/// Errors from [`JournalReader::export`].
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Writing the export failed (disk full, closed pipe).
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

impl From<rusqlite::Error> for ExportError {
    fn from(e: rusqlite::Error) -> Self {
        ExportError::Journal(e.into())
    }
}

/// What [`JournalReader::export`] wrote, besides its header and end lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExportCounts {
    /// Command lines.
    pub commands: u64,
    /// Transitions inside them.
    pub transitions: u64,
    /// Audit lines.
    pub audit: u64,
    /// Rejection lines.
    pub rejections: u64,
    /// Pending outbox lines.
    pub outbox: u64,
    /// Slot lines: the inventory as it stands (all of it, whatever `since`).
    pub slots: u64,
    /// Document lines: the key set and configuration in force (all of them).
    pub documents: u64,
}

/// One line of the export. Text columns are written as stored: an export of a journal
/// with a row this build cannot parse still carries that row.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Header {
        format: &'static str,
        format_version: u32,
        path: &'a Path,
        journal: Option<&'a Identity>,
        schema_version: i64,
        exported_at_ms: u64,
        since_ms: Option<i64>,
    },
    Command {
        cmd_id: String,
        log_id: String,
        order_id: String,
        slot: Option<i64>,
        qty: Option<i64>,
        session: Option<String>,
        state: String,
        reason: Option<String>,
        /// Parsed when it is JSON (it always should be), else the stored text.
        evidence: serde_json::Value,
        last_reply: Option<String>,
        received_at: i64,
        updated_at: i64,
        expires_at: Option<i64>,
        transitions: Vec<ExportTransition>,
    },
    Audit {
        id: i64,
        at: i64,
        technician: String,
        action: String,
        detail: String,
    },
    Rejection {
        id: i64,
        at: i64,
        reason: String,
        payload_sha256: String,
        payload_len: i64,
        cmd_id: Option<String>,
        log_id: Option<String>,
        detail: String,
    },
    Outbox {
        id: i64,
        cmd_id: Option<String>,
        topic: String,
        payload: String,
        created_at: i64,
    },
    /// A slot as the journal counts it now: state, not history, so always all of them.
    Slot {
        slot: i64,
        product: String,
        capacity: i64,
        count: i64,
        enabled: bool,
        jammed: bool,
        updated_at: i64,
    },
    /// A signed document in force (or reset on site), with its token as accepted: the
    /// key set and configuration the cabinet's decisions rested on.
    Document {
        kind: String,
        version: i64,
        sha256: Option<String>,
        token: Option<String>,
        signed_by: Option<String>,
        applied_at: i64,
    },
    End(ExportCounts),
}

#[derive(Serialize)]
struct ExportTransition {
    state: String,
    reason: Option<String>,
    at: i64,
}

fn write_line(out: &mut dyn Write, line: &Line<'_>) -> Result<(), ExportError> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

impl JournalReader {
    /// Opens the journal at `path` read-only. The file must exist (nothing is created);
    /// problems with its content show at the first read ([`JournalReader::integrity`]).
    pub fn open(path: &Path) -> Result<JournalReader, JournalError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(JournalReader {
            conn,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SQLite's `quick_check` (as at the kiosk's start), or with `full` its
    /// `integrity_check` (index contents too; slower): `None` when fine, else what is
    /// wrong (at most 20 problems). A file that is not a database counts as corrupt.
    pub fn integrity(&self, full: bool) -> Result<Option<String>, JournalError> {
        let sql = if full {
            "PRAGMA integrity_check(20)"
        } else {
            "PRAGMA quick_check(20)"
        };
        let rows: Result<Vec<String>, rusqlite::Error> = self
            .conn
            .prepare(sql)
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
        match rows {
            Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(None),
            Ok(rows) => Ok(Some(rows.join("; "))),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
                ) =>
            {
                Ok(Some(e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Migrations applied; 0 for a SQLite file without the journal's schema.
    pub fn schema_version(&self) -> Result<i64, JournalError> {
        pragma_i64(&self.conn, "user_version")
    }

    /// The journal's identity, as [`Journal::identity`].
    pub fn identity(&self) -> Result<Identity, JournalError> {
        identity(&self.conn)
    }

    /// As [`Journal::stats`].
    pub fn stats(&self) -> Result<JournalStats, JournalError> {
        gather(&self.conn, &self.path)
    }

    /// Writes the journal as JSON Lines to `out`, one row at a time (memory does not
    /// grow with the journal), from one consistent snapshot (a read transaction: the
    /// kiosk keeps writing meanwhile, the export does not see it):
    ///
    /// 1. `{"type":"header", ...}`: format, journal identity, schema version, time;
    /// 2. `{"type":"command", ..., "transitions":[...]}` per command, oldest first;
    /// 3. `{"type":"audit", ...}`, then `{"type":"rejection", ...}`, then the replies
    ///    still waiting for the broker, `{"type":"outbox", ...}`, each oldest first;
    /// 4. the state the journal holds: `{"type":"slot", ...}` per slot, by number, and
    ///    `{"type":"document", ...}` per signed document in force, by kind;
    /// 5. `{"type":"end", "commands": n, ...}`: the counts, so a cut-off file shows.
    ///
    /// With `since_ms`, only rows from then on (commands by `received_at`, the rest by
    /// their own time); the state lines are always all of it. A journal from before the
    /// documents table (schema 3) has no document lines.
    pub fn export(
        &mut self,
        since_ms: Option<i64>,
        exported_at_ms: u64,
        out: &mut dyn Write,
    ) -> Result<ExportCounts, ExportError> {
        let tx = self.conn.transaction()?;
        let identity = identity(&tx).ok();
        let schema_version = pragma_i64(&tx, "user_version")?;
        write_line(
            out,
            &Line::Header {
                format: "cabinet-journal-export",
                format_version: 1,
                path: &self.path,
                journal: identity.as_ref(),
                schema_version,
                exported_at_ms,
                since_ms,
            },
        )?;
        let since = since_ms.unwrap_or(i64::MIN);
        let mut n = ExportCounts::default();

        let mut transitions = tx.prepare(
            "SELECT state, reason, at FROM command_transitions WHERE cmd_id = ?1 ORDER BY id",
        )?;
        let mut commands = tx.prepare(
            "SELECT cmd_id, log_id, order_id, slot, qty, session, state, reason, evidence, \
             last_reply, received_at, updated_at, expires_at \
             FROM commands WHERE received_at >= ?1 ORDER BY received_at, rowid",
        )?;
        let mut rows = commands.query([since])?;
        while let Some(r) = rows.next()? {
            let cmd_id: String = r.get(0)?;
            let ts = transitions
                .query_map([&cmd_id], |t| {
                    Ok(ExportTransition {
                        state: t.get(0)?,
                        reason: t.get(1)?,
                        at: t.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let evidence: String = r.get(8)?;
            n.commands += 1;
            n.transitions += ts.len() as u64;
            write_line(
                out,
                &Line::Command {
                    cmd_id,
                    log_id: r.get(1)?,
                    order_id: r.get(2)?,
                    slot: r.get(3)?,
                    qty: r.get(4)?,
                    session: r.get(5)?,
                    state: r.get(6)?,
                    reason: r.get(7)?,
                    evidence: serde_json::from_str(&evidence)
                        .unwrap_or(serde_json::Value::String(evidence)),
                    last_reply: r.get(9)?,
                    received_at: r.get(10)?,
                    updated_at: r.get(11)?,
                    expires_at: r.get(12)?,
                    transitions: ts,
                },
            )?;
        }
        drop(rows);

        let mut st = tx.prepare(
            "SELECT id, at, technician, action, detail FROM audit WHERE at >= ?1 ORDER BY id",
        )?;
        let mut rows = st.query([since])?;
        while let Some(r) = rows.next()? {
            n.audit += 1;
            write_line(
                out,
                &Line::Audit {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    technician: r.get(2)?,
                    action: r.get(3)?,
                    detail: r.get(4)?,
                },
            )?;
        }
        drop(rows);

        let mut st = tx.prepare(
            "SELECT id, at, reason, payload_sha256, payload_len, cmd_id, log_id, detail \
             FROM rejections WHERE at >= ?1 ORDER BY id",
        )?;
        let mut rows = st.query([since])?;
        while let Some(r) = rows.next()? {
            n.rejections += 1;
            write_line(
                out,
                &Line::Rejection {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    reason: r.get(2)?,
                    payload_sha256: r.get(3)?,
                    payload_len: r.get(4)?,
                    cmd_id: r.get(5)?,
                    log_id: r.get(6)?,
                    detail: r.get(7)?,
                },
            )?;
        }
        drop(rows);

        let mut st = tx.prepare(
            "SELECT id, cmd_id, topic, payload, created_at FROM outbox \
             WHERE created_at >= ?1 ORDER BY id",
        )?;
        let mut rows = st.query([since])?;
        while let Some(r) = rows.next()? {
            n.outbox += 1;
            write_line(
                out,
                &Line::Outbox {
                    id: r.get(0)?,
                    cmd_id: r.get(1)?,
                    topic: r.get(2)?,
                    payload: r.get(3)?,
                    created_at: r.get(4)?,
                },
            )?;
        }
        drop(rows);

        let mut st = tx.prepare(
            "SELECT slot, product, capacity, count, enabled, jammed, updated_at \
             FROM inventory ORDER BY slot",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            n.slots += 1;
            write_line(
                out,
                &Line::Slot {
                    slot: r.get(0)?,
                    product: r.get(1)?,
                    capacity: r.get(2)?,
                    count: r.get(3)?,
                    enabled: r.get::<_, i64>(4)? != 0,
                    jammed: r.get::<_, i64>(5)? != 0,
                    updated_at: r.get(6)?,
                },
            )?;
        }
        drop(rows);

        let has_documents: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'documents')",
            [],
            |r| r.get(0),
        )?;
        if has_documents {
            let mut st = tx.prepare(
                "SELECT kind, version, sha256, token, signed_by, applied_at \
                 FROM documents ORDER BY kind",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                n.documents += 1;
                write_line(
                    out,
                    &Line::Document {
                        kind: r.get(0)?,
                        version: r.get(1)?,
                        sha256: r.get(2)?,
                        token: r.get(3)?,
                        signed_by: r.get(4)?,
                        applied_at: r.get(5)?,
                    },
                )?;
            }
        }

        write_line(out, &Line::End(n))?;
        out.flush()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::journal::{NewCommand, OutboxMessage};
    use crate::protocol::{Evidence, TrustedIds};
    use crate::reason::Reason;
    use crate::retention::Retention;

    fn open_tmp() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.sqlite3")).unwrap();
        (dir, j)
    }

    fn new_command(id: &str, state: ReplyState) -> NewCommand {
        NewCommand {
            cmd_id: id.into(),
            log_id: format!("l-{id}"),
            order_id: format!("o-{id}"),
            slot: Some(1),
            qty: Some(1),
            session: None,
            state,
            reason: (state == ReplyState::Rejected).then_some(Reason::Expired),
            expires_at: Some(60),
        }
    }

    fn reply() -> OutboxMessage {
        OutboxMessage {
            topic: "cabinet/v1/GZ-1/reply".into(),
            payload: "{\"state\":\"x\"}".into(),
        }
    }

    /// Three succeeded commands (3 transitions each), one rejected, one still
    /// accepted with its reply pending; an audit row and a refused payload.
    fn populate(j: &mut Journal) {
        for i in 0..3 {
            let id = format!("ok{i}");
            j.insert_new_command(&new_command(&id, ReplyState::Accepted), None)
                .unwrap();
            j.transition(
                &id,
                ReplyState::Dispensing,
                None,
                &Evidence::default(),
                None,
            )
            .unwrap();
            j.transition(&id, ReplyState::Succeeded, None, &Evidence::default(), None)
                .unwrap();
        }
        j.insert_new_command(&new_command("no", ReplyState::Rejected), None)
            .unwrap();
        j.insert_new_command(&new_command("wait", ReplyState::Accepted), Some(&reply()))
            .unwrap();
        j.audit("ana", "restock", "slot 1: 10").unwrap();
        let ids = TrustedIds {
            cmd_id: "x".into(),
            aud: "GZ-1".into(),
            log_id: "lx".into(),
            order_id: "ox".into(),
            exp: None,
        };
        j.record_rejection(Reason::BadSignature, b"junk", Some(&ids), "forged")
            .unwrap();
        j.conn()
            .execute_batch(
                "UPDATE commands SET received_at = 1000 WHERE cmd_id = 'ok0'; \
                 UPDATE commands SET received_at = 2000 WHERE cmd_id = 'ok1'; \
                 UPDATE commands SET received_at = 3000 WHERE cmd_id = 'ok2'; \
                 UPDATE commands SET received_at = 4000 WHERE cmd_id = 'no'; \
                 UPDATE commands SET received_at = 9000 WHERE cmd_id = 'wait';",
            )
            .unwrap();
    }

    #[test]
    fn a_fresh_journal_has_zero_rows_an_identity_and_incremental_auto_vacuum() {
        let (_d, mut j) = open_tmp();
        let s = j.stats().unwrap();
        assert_eq!(
            s.rows,
            RowCounts {
                commands_by_state: ReplyState::ALL
                    .iter()
                    .map(|s| (s.as_str().to_owned(), 0))
                    .collect(),
                ..RowCounts::default()
            }
        );
        assert_eq!(
            s.journal_id.as_deref(),
            Some(j.identity().unwrap().id.as_str())
        );
        assert_eq!(s.schema_version, j.schema_version().unwrap());
        assert_eq!(s.high_water, 0);
        assert_eq!(s.auto_vacuum, "incremental");
        assert_eq!((s.oldest_command_ms, s.newest_command_ms), (None, None));
        assert!(s.file_bytes.database > 0);
        assert_eq!(s.file_bytes.total, s.file_bytes.database + s.file_bytes.wal);
        assert!(s.page_size >= 512 && s.page_count > 0);
        assert!(s.disk_free_bytes.unwrap() > 0);
    }

    #[test]
    fn counts_states_times_and_lifetime_counters_match_the_journal() {
        let (_d, mut j) = open_tmp();
        populate(&mut j);
        let s = j.stats().unwrap();
        assert_eq!(s.rows.commands, 5);
        assert_eq!(s.rows.commands_by_state["succeeded"], 3);
        assert_eq!(s.rows.commands_by_state["rejected"], 1);
        assert_eq!(s.rows.commands_by_state["accepted"], 1);
        assert_eq!(s.rows.commands_by_state["dispensing"], 0);
        assert_eq!(s.rows.command_transitions, 11);
        assert_eq!((s.rows.outbox, s.rows.audit, s.rows.rejections), (1, 1, 1));
        assert_eq!(s.oldest_command_ms, Some(1000));
        assert_eq!(s.newest_command_ms, Some(9000));
        assert_eq!(s.high_water, j.high_water().unwrap());
        let id = j.identity().unwrap();
        assert_eq!(s.created_at_ms, Some(id.created_at_ms));

        // The lifetime counters are read where journal/ and retention.rs keep them.
        j.set_rejection_limits(crate::journal::RejectionLimits {
            max_rows: 1,
            max_age_ms: u64::MAX / 2,
        });
        j.record_rejection(Reason::BadSignature, b"more", None, "x")
            .unwrap();
        j.conn()
            .execute_batch("UPDATE commands SET updated_at = 0 WHERE cmd_id = 'no'")
            .unwrap();
        let r = Retention {
            keep_ms: 1,
            max_commands: 1_000,
        };
        j.prune(&r, 1_000_000_000_000, |_| true).unwrap();
        let s = j.stats().unwrap();
        assert_eq!(s.rejections_dropped, j.rejections_dropped().unwrap());
        assert_eq!(s.commands_pruned, j.commands_pruned().unwrap());
        assert_eq!((s.rejections_dropped, s.commands_pruned), (1, 1));
    }

    #[test]
    fn the_reader_sees_what_the_journal_sees_and_writes_nothing() {
        let (d, mut j) = open_tmp();
        populate(&mut j);
        let path = j.path().to_owned();
        let r = JournalReader::open(&path).unwrap();
        assert_eq!(r.integrity(false).unwrap(), None);
        assert_eq!(r.integrity(true).unwrap(), None);
        assert_eq!(r.identity().unwrap(), j.identity().unwrap());
        let mut a = r.stats().unwrap();
        let mut b = j.stats().unwrap();
        // Taken a moment apart.
        a.disk_free_bytes = None;
        b.disk_free_bytes = None;
        assert_eq!(a, b);
        assert!(
            r.conn.execute_batch("DELETE FROM audit").is_err(),
            "read-only"
        );
        drop((r, j));
        // Nothing is created at a path without a journal.
        let missing = d.path().join("missing.sqlite3");
        assert!(JournalReader::open(&missing).is_err());
        assert!(!missing.exists());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_corrupt_not_an_error() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("j.sqlite3");
        std::fs::write(&path, vec![b'x'; 8192]).unwrap();
        let r = JournalReader::open(&path).unwrap();
        assert!(r.integrity(false).unwrap().is_some());
        assert!(r.integrity(true).unwrap().is_some());
    }

    #[test]
    fn the_export_carries_the_inventory_and_the_documents_in_force_whatever_since() {
        let (_d, mut j) = open_tmp();
        let slot = |slot: u16, product: &str, count: u32| crate::config::SlotConfig {
            slot,
            board: None,
            channel: None,
            product: product.into(),
            capacity: 10,
            initial_count: count,
        };
        j.seed_inventory(&[slot(2, "Umbrella", 4), slot(1, "雨伞", 7)])
            .unwrap();
        j.set_jammed(2, true).unwrap();
        j.put_document(&crate::journal::DocumentChange {
            kind: "keys",
            version: 3,
            sha256: Some("ab12"),
            token: Some("h.p.s"),
            by: "op-2026",
            actor: "operator:op-2026",
            action: "keys_applied",
            detail: "2 keys",
        })
        .unwrap();
        let mut r = JournalReader::open(j.path()).unwrap();
        let mut out = Vec::new();
        // A `since` after every row: history is filtered, state is not.
        let n = r.export(Some(i64::MAX), 42, &mut out).unwrap();
        assert_eq!((n.commands, n.audit, n.slots, n.documents), (0, 0, 2, 1));
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["header", "slot", "slot", "document", "end"]);
        assert_eq!(lines[1]["slot"], 1);
        assert_eq!(lines[1]["product"], "雨伞");
        assert_eq!(lines[1]["count"], 7);
        assert_eq!(lines[1]["jammed"], false);
        assert_eq!(lines[2]["jammed"], true);
        assert_eq!(lines[2]["enabled"], true);
        assert_eq!(lines[3]["kind"], "keys");
        assert_eq!(lines[3]["version"], 3);
        assert_eq!(lines[3]["token"], "h.p.s");
        assert_eq!(lines[3]["signed_by"], "op-2026");
        assert_eq!(lines[4]["slots"], 2);
        assert_eq!(lines[4]["documents"], 1);
    }

    #[test]
    fn the_export_has_a_header_every_row_and_counts_at_the_end() {
        let (_d, mut j) = open_tmp();
        populate(&mut j);
        let mut r = JournalReader::open(j.path()).unwrap();
        let mut out = Vec::new();
        let n = r.export(None, 42, &mut out).unwrap();
        assert_eq!(
            n,
            ExportCounts {
                commands: 5,
                transitions: 11,
                audit: 1,
                rejections: 1,
                outbox: 1,
                slots: 0,
                documents: 0,
            }
        );
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1 + 5 + 1 + 1 + 1 + 1);
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "header",
                "command",
                "command",
                "command",
                "command",
                "command",
                "audit",
                "rejection",
                "outbox",
                "end"
            ]
        );
        assert_eq!(lines[0]["journal"]["id"], j.identity().unwrap().id);
        assert_eq!(lines[0]["exported_at_ms"], 42);
        // Oldest first; transitions in order; evidence as JSON.
        assert_eq!(lines[1]["cmd_id"], "ok0");
        let states: Vec<&str> = lines[1]["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["accepted", "dispensing", "succeeded"]);
        assert!(lines[1]["evidence"].is_object());
        assert_eq!(lines[8]["payload"], "{\"state\":\"x\"}");
        assert_eq!(lines[9]["commands"], 5);

        // Since: only the newer command, and the rest by their own time.
        let mut out = Vec::new();
        let n = r.export(Some(9000), 42, &mut out).unwrap();
        assert_eq!(n.commands, 1);
        assert_eq!(n.audit, 1);
        let first_command: serde_json::Value =
            serde_json::from_str(String::from_utf8(out).unwrap().lines().nth(1).unwrap()).unwrap();
        assert_eq!(first_command["cmd_id"], "wait");
    }

    /// Telemetry calls stats every minute: on a full journal (the default
    /// `max_commands`, 3 transitions each) it must stay in milliseconds. Prints the
    /// figure; the bound is loose for slow CI machines.
    #[test]
    fn stats_on_a_50000_command_journal_takes_milliseconds() {
        let d = tempfile::tempdir().unwrap();
        let mut j = Journal::open_with(
            &d.path().join("big.sqlite3"),
            crate::journal::Durability::Normal,
        )
        .unwrap();
        j.conn()
            .execute_batch(
                "BEGIN;
                 WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 49999)
                 INSERT INTO commands (cmd_id, log_id, order_id, slot, qty, state, evidence, \
                     last_reply, received_at, updated_at, expires_at)
                 SELECT printf('cmd-%08d', i), printf('log-%08d', i), printf('order-%08d', i), \
                     1 + i % 40, 1, 'succeeded', '{\"drop_sensor\":true}', \
                     '{\"state\":\"succeeded\",\"cmd_id\":\"' || printf('cmd-%08d', i) || '\"}', \
                     1000000 + i * 1000, 1000000 + i * 1000 + 5, 1000 + i FROM n;
                 INSERT INTO command_transitions (cmd_id, state, at)
                 SELECT cmd_id, s.state, received_at FROM commands,
                     (SELECT 'accepted' AS state UNION ALL SELECT 'dispensing' UNION ALL SELECT 'succeeded') s;
                 COMMIT;",
            )
            .unwrap();
        let _ = j.stats().unwrap(); // warm the page cache, as every later minute is
        let runs = 10;
        let t = std::time::Instant::now();
        for _ in 0..runs {
            let s = j.stats().unwrap();
            assert_eq!(s.rows.commands, 50_000);
            assert_eq!(s.rows.command_transitions, 150_000);
        }
        let each = t.elapsed() / runs;
        eprintln!(
            "stats on 50,000 commands / 150,000 transitions ({} bytes): {each:?} each",
            j.stats().unwrap().file_bytes.total
        );
        assert!(each < Duration::from_millis(500), "{each:?}");
    }
}
