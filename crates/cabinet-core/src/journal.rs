//! The journal: the durable, on-disk record of commands, replies waiting for the
//! broker, inventory, technician actions and untrusted payloads.
//!
//! It is what makes invariants 2 and 3 (docs/ARCHITECTURE.md) survive crashes and power cuts:
//! - a command ID is inserted once ([`Journal::insert_new_command`] reports a
//!   [`Inserted::Duplicate`] with the stored command on every redelivery), so one ID
//!   moves a motor at most once;
//! - a state change and the reply announcing it are written in *one* transaction
//!   ([`Journal::transition`]), so after any crash either both exist or neither does:
//!   a reply can never be lost or doubled;
//! - replies leave the outbox only when the broker acknowledged them
//!   ([`Journal::outbox_ack`]);
//! - on start-up, commands still in `dispensing` are found with
//!   [`Journal::commands_in_state`] and become `outcome_unknown`, never re-run.
//!
//! Only commands whose signature verified are stored in `commands`. Untrusted payloads
//! go to `rejections` as a hash and a length, never as a body: a forger must not be
//! able to fill the disk, plant text in diagnostics, or reserve a future command ID.
//!
//! SQLite settings: WAL (readers such as the diagnostics screen never block the
//! engine) and `synchronous=FULL`. In WAL mode `NORMAL` only syncs at checkpoints, so
//! a power cut can roll back the last commits. Losing an `accepted` row after the MQTT
//! PUBACK went out would lose the command; losing a `dispensing` row would let the
//! motor run again after restart. `FULL` fsyncs the WAL on every commit, which costs a
//! few milliseconds per transition — nothing next to a motor turn. One exception: an
//! untrusted payload's record and its reply ([`Journal::record_untrusted`]) commit
//! without the fsync, so a flood of junk cannot make real orders wait behind a disk
//! flush per payload; they identify no command, and the next `FULL` commit makes them
//! durable too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::config::{JournalConfig, SlotConfig};
use crate::protocol::{Command, Evidence, ReplyState, TrustedIds};
use crate::reason::Reason;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit a released step: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
    CREATE TABLE commands (
        cmd_id      TEXT PRIMARY KEY NOT NULL,
        log_id      TEXT NOT NULL,
        order_id    TEXT NOT NULL,
        slot        INTEGER,            -- NULL when rejected before the slot was read
        qty         INTEGER,
        session     TEXT,
        state       TEXT NOT NULL,
        reason      TEXT,
        evidence    TEXT NOT NULL DEFAULT '{}',
        last_reply  TEXT,               -- the latest reply payload, re-sent to duplicates
        received_at INTEGER NOT NULL,   -- unix ms
        updated_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX commands_by_log_id ON commands(log_id);
    CREATE INDEX commands_by_state ON commands(state);
    CREATE INDEX commands_by_received ON commands(received_at);

    CREATE TABLE command_transitions (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        cmd_id TEXT NOT NULL REFERENCES commands(cmd_id),
        state  TEXT NOT NULL,
        reason TEXT,
        at     INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX transitions_by_cmd ON command_transitions(cmd_id);

    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        cmd_id     TEXT,
        topic      TEXT NOT NULL,
        payload    TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE inventory (
        slot       INTEGER PRIMARY KEY NOT NULL,
        product    TEXT NOT NULL,
        capacity   INTEGER NOT NULL CHECK (capacity >= 0),
        count      INTEGER NOT NULL CHECK (count >= 0),
        enabled    INTEGER NOT NULL DEFAULT 1,
        jammed     INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE audit (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        at         INTEGER NOT NULL,
        technician TEXT NOT NULL,
        action     TEXT NOT NULL,
        detail     TEXT NOT NULL
    ) STRICT;

    CREATE TABLE rejections (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        at             INTEGER NOT NULL,
        reason         TEXT NOT NULL,
        payload_sha256 TEXT NOT NULL,
        payload_len    INTEGER NOT NULL,
        cmd_id         TEXT,            -- only when the signature verified
        log_id         TEXT,
        detail         TEXT NOT NULL
    ) STRICT;
    "#,
    // 2: small named values that must survive restarts (the technician PIN lockout).
    r#"
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY NOT NULL,
        value  TEXT NOT NULL
    ) STRICT;
    "#,
    // 3: retention and identity. A command's token `exp` bounds how long a redelivery
    // could be accepted (NULL for commands journaled before this step: retention then
    // assumes the longest lifetime any cabinet accepts). The outbox index lets retention
    // skip commands whose reply the broker has not acknowledged. The journal gets an
    // identity, which the witness file outside it remembers (crate::witness).
    r#"
    ALTER TABLE commands ADD COLUMN expires_at INTEGER;
    CREATE INDEX outbox_by_cmd ON outbox(cmd_id);
    INSERT INTO settings (key, value) VALUES ('journal_id', lower(hex(randomblob(16))))
        ON CONFLICT(key) DO NOTHING;
    INSERT INTO settings (key, value)
        VALUES ('journal_created_at', CAST(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS TEXT))
        ON CONFLICT(key) DO NOTHING;
    "#,
];

/// Errors from the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite failed (disk full, I/O error, corruption...).
    #[error("journal database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The journal's directory could not be created.
    #[error("cannot create journal directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A corrupt journal could not be moved aside; it is left where it is, untouched.
    #[error("cannot set the corrupt journal {path} aside: {source}")]
    SetAside {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database was written by a newer version of the app; refusing to guess.
    #[error("journal schema version {found} is newer than this app supports ({supported})")]
    SchemaTooNew {
        /// `user_version` on disk.
        found: i64,
        /// Migrations this build knows.
        supported: i64,
    },
    /// SQLite refused WAL mode (for example on some network filesystems).
    #[error("journal could not switch to WAL mode (got {0:?}); use a local filesystem")]
    NoWal(String),
    /// The state machine forbids this change (e.g. out of a terminal state).
    #[error("illegal transition of command {cmd_id}: {from} -> {to}")]
    IllegalTransition {
        /// The command.
        cmd_id: String,
        /// Its stored state.
        from: ReplyState,
        /// The requested state.
        to: ReplyState,
    },
    /// New commands start as `accepted` or `rejected`.
    #[error("a new command must start as accepted or rejected, not {0}")]
    IllegalInitialState(ReplyState),
    /// No command with this ID.
    #[error("unknown command {0}")]
    UnknownCommand(String),
    /// No inventory row for this slot.
    #[error("unknown slot {0}")]
    UnknownSlot(u16),
    /// A stock count above the slot's capacity.
    #[error("count {count} exceeds capacity {capacity} of slot {slot}")]
    OverCapacity {
        /// The slot.
        slot: u16,
        /// Requested count.
        count: u32,
        /// Its capacity.
        capacity: u32,
    },
    /// A stored value could not be read back (hand-edited or corrupted row).
    #[error("corrupt journal row: {0}")]
    Corrupt(String),
}

/// A command to insert. Build it with [`NewCommand::accepted`] or
/// [`NewCommand::rejected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    /// `jti`.
    pub cmd_id: String,
    /// `log_id`.
    pub log_id: String,
    /// `order_id`.
    pub order_id: String,
    /// Slot, when known.
    pub slot: Option<u16>,
    /// Quantity, when known.
    pub qty: Option<u8>,
    /// QR session, when present.
    pub session: Option<String>,
    /// `accepted` or `rejected`.
    pub state: ReplyState,
    /// Why, for `rejected`.
    pub reason: Option<Reason>,
    /// The token's `exp` (unix s), when known: until then (plus the clock skew) a
    /// redelivery could be accepted, so retention keeps the row at least that long.
    pub expires_at: Option<i64>,
}

impl NewCommand {
    /// A verified command that passed every check and will be queued for the motor.
    pub fn accepted(cmd: &Command) -> NewCommand {
        NewCommand {
            cmd_id: cmd.cmd_id.clone(),
            log_id: cmd.log_id.clone(),
            order_id: cmd.order_id.clone(),
            slot: Some(cmd.slot),
            qty: Some(cmd.qty),
            session: cmd.session.clone(),
            state: ReplyState::Accepted,
            reason: None,
            expires_at: Some(cmd.expires_at),
        }
    }

    /// A command whose signature verified but which is refused (expired, slot empty,
    /// ...). Stored so a redelivery gets the same answer.
    pub fn rejected(ids: &TrustedIds, reason: Reason) -> NewCommand {
        NewCommand {
            cmd_id: ids.cmd_id.clone(),
            log_id: ids.log_id.clone(),
            order_id: ids.order_id.clone(),
            slot: None,
            qty: None,
            session: None,
            state: ReplyState::Rejected,
            reason: Some(reason),
            expires_at: ids.exp,
        }
    }
}

/// A reply to publish, written to the outbox in the same transaction as its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// MQTT topic (the cabinet's `reply` topic).
    pub topic: String,
    /// JSON payload.
    pub payload: String,
}

/// A command as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredCommand {
    /// `jti`.
    pub cmd_id: String,
    /// `log_id`.
    pub log_id: String,
    /// `order_id`.
    pub order_id: String,
    /// Slot (None if rejected before it was read).
    pub slot: Option<u16>,
    /// Quantity.
    pub qty: Option<u8>,
    /// QR session.
    pub session: Option<String>,
    /// Current state.
    pub state: ReplyState,
    /// Reason of the current state.
    pub reason: Option<Reason>,
    /// Evidence recorded with the latest transition.
    pub evidence: Evidence,
    /// The latest reply payload enqueued for this command (re-sent to duplicates).
    pub last_reply: Option<String>,
    /// First seen, unix ms.
    pub received_at: i64,
    /// Last state change, unix ms.
    pub updated_at: i64,
}

/// Result of [`Journal::insert_new_command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// First time this command ID was seen; it is now stored.
    New,
    /// The ID was already stored; nothing was written. Answer with the stored state,
    /// never act on it again.
    Duplicate(StoredCommand),
}

/// One state change of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// New state.
    pub state: ReplyState,
    /// Its reason.
    pub reason: Option<Reason>,
    /// When, unix ms.
    pub at: i64,
}

/// A reply waiting for the broker's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Outbox row ID; pass it to [`Journal::outbox_ack`].
    pub id: i64,
    /// The command it belongs to, if any.
    pub cmd_id: Option<String>,
    /// MQTT topic.
    pub topic: String,
    /// JSON payload.
    pub payload: String,
    /// When enqueued, unix ms.
    pub created_at: i64,
}

/// One slot's stock and service state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotInventory {
    /// Slot number.
    pub slot: u16,
    /// Product name.
    pub product: String,
    /// Items when full.
    pub capacity: u32,
    /// Items left.
    pub count: u32,
    /// Not disabled by a technician.
    pub enabled: bool,
    /// Jammed until cleared by a technician.
    pub jammed: bool,
}

impl SlotInventory {
    /// Why this slot cannot serve a dispense right now, if it cannot.
    pub fn unavailable_reason(&self) -> Option<Reason> {
        if !self.enabled {
            Some(Reason::SlotDisabled)
        } else if self.jammed {
            Some(Reason::SlotJammed)
        } else if self.count == 0 {
            Some(Reason::SlotEmpty)
        } else {
            None
        }
    }
}

/// One technician action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// Row ID.
    pub id: i64,
    /// When, unix ms.
    pub at: i64,
    /// Who (technician ID as entered at login).
    pub technician: String,
    /// What (`restock`, `clear_jam`, `test_slot`, ...).
    pub action: String,
    /// Details.
    pub detail: String,
}

/// One payload that could not be trusted or was refused before entering `commands`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectionEntry {
    /// Row ID.
    pub id: i64,
    /// When, unix ms.
    pub at: i64,
    /// Why.
    pub reason: Reason,
    /// SHA-256 of the raw payload, hex: lets support match it with the backend's copy.
    pub payload_sha256: String,
    /// Raw payload length in bytes.
    pub payload_len: u64,
    /// Command ID, only if the signature verified.
    pub cmd_id: Option<String>,
    /// Log ID, only if the signature verified.
    pub log_id: Option<String>,
    /// The verifier's explanation.
    pub detail: String,
}

/// The journal. One per process; the engine task owns it.
#[derive(Debug)]
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    /// The rejections ring's bounds ([`Journal::set_rejection_limits`]).
    rejection_limits: RejectionLimits,
    /// Times this connection found the write lock held and had to wait for it.
    waits: LockWaits,
    /// Another connection's waits, for background work on this one to give way to
    /// ([`Journal::give_way_to`]).
    give_way: Option<LockWaits>,
    /// This connection's `synchronous` setting (`FULL` unless a benchmark asked otherwise),
    /// restored after a commit that does not wait for the disk.
    sync: &'static str,
}

/// How often a connection of this process had to wait for the journal's write lock
/// because another one held it (SQLite's busy handler was called for a new wait).
/// The engine's connection counts its waits; retention, on a second connection, watches
/// the count and stops its batch as soon as it moves (crate::retention), so a dispense
/// waits for one commit at most, never for a whole batch.
#[derive(Debug, Clone, Default)]
pub struct LockWaits(Arc<AtomicU64>);

impl LockWaits {
    /// Waits so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// How long a connection waits for the write lock before its statement fails with
/// "database is locked".
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The engine's connection looks for the write lock this often while another holds it.
/// SQLite's own busy handler sleeps in growing steps (up to 100 ms), so a waiting
/// writer can sleep through the moment the lock is free and wait for the next holder
/// too; polling every millisecond takes it at once.
const BUSY_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// Installs the engine's busy handler: counts each new wait, polls every [`BUSY_POLL`],
/// gives up after [`BUSY_TIMEOUT`].
fn poll_for_the_lock(conn: &mut Connection, waits: &LockWaits) -> Result<(), JournalError> {
    let waits = waits.clone();
    let mut since = std::time::Instant::now();
    conn.busy_handler(Some(move |attempt: i32| {
        if attempt == 0 {
            waits.0.fetch_add(1, Ordering::AcqRel);
            since = std::time::Instant::now();
        }
        if since.elapsed() >= BUSY_TIMEOUT {
            return false;
        }
        std::thread::sleep(BUSY_POLL);
        true
    }))?;
    Ok(())
}

/// How many refused payloads the journal keeps, and for how long. Untrusted payloads
/// cost the sender nothing, so without a bound a flood grows the journal until the disk
/// is full (221 junk payloads once filled a 4 MB partition and stopped a cabinet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectionLimits {
    /// Rows kept at most; the oldest go first.
    pub max_rows: u64,
    /// Rows older than this (ms) go too.
    pub max_age_ms: u64,
}

impl RejectionLimits {
    /// The bounds a site config sets (`[journal]`).
    pub fn of(cfg: &JournalConfig) -> RejectionLimits {
        RejectionLimits {
            max_rows: cfg.max_rejections,
            max_age_ms: cfg.rejections_max_age_days.saturating_mul(86_400_000),
        }
    }
}

impl Default for RejectionLimits {
    fn default() -> Self {
        RejectionLimits {
            max_rows: 10_000,
            max_age_ms: 30 * 86_400_000,
        }
    }
}

/// The setting that counts rejections dropped from the ring.
const REJECTIONS_DROPPED: &str = "rejections_dropped";
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

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn parse_state(s: &str) -> Result<ReplyState, JournalError> {
    ReplyState::parse(s).ok_or_else(|| JournalError::Corrupt(format!("unknown state {s:?}")))
}

fn parse_reason(s: Option<String>) -> Result<Option<Reason>, JournalError> {
    s.map(|s| {
        s.parse::<Reason>()
            .map_err(|e| JournalError::Corrupt(e.to_string()))
    })
    .transpose()
}

fn to_u16(v: Option<i64>, what: &str) -> Result<Option<u16>, JournalError> {
    v.map(|v| {
        u16::try_from(v).map_err(|_| JournalError::Corrupt(format!("{what} {v} out of range")))
    })
    .transpose()
}

fn to_u32(v: i64, what: &str) -> Result<u32, JournalError> {
    u32::try_from(v).map_err(|_| JournalError::Corrupt(format!("{what} {v} out of range")))
}

const COMMAND_COLUMNS: &str = "cmd_id, log_id, order_id, slot, qty, session, state, reason, \
                               evidence, last_reply, received_at, updated_at";

/// A `commands` row before its text columns are checked.
struct RawCommand {
    cmd_id: String,
    log_id: String,
    order_id: String,
    slot: Option<i64>,
    qty: Option<i64>,
    session: Option<String>,
    state: String,
    reason: Option<String>,
    evidence: String,
    last_reply: Option<String>,
    received_at: i64,
    updated_at: i64,
}

impl RawCommand {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawCommand> {
        Ok(RawCommand {
            cmd_id: r.get(0)?,
            log_id: r.get(1)?,
            order_id: r.get(2)?,
            slot: r.get(3)?,
            qty: r.get(4)?,
            session: r.get(5)?,
            state: r.get(6)?,
            reason: r.get(7)?,
            evidence: r.get(8)?,
            last_reply: r.get(9)?,
            received_at: r.get(10)?,
            updated_at: r.get(11)?,
        })
    }

    fn into_stored(self) -> Result<StoredCommand, JournalError> {
        let qty = self
            .qty
            .map(|q| u8::try_from(q).map_err(|_| JournalError::Corrupt(format!("qty {q}"))))
            .transpose()?;
        Ok(StoredCommand {
            slot: to_u16(self.slot, "slot")?,
            qty,
            state: parse_state(&self.state)?,
            reason: parse_reason(self.reason)?,
            evidence: serde_json::from_str(&self.evidence)
                .map_err(|e| JournalError::Corrupt(format!("evidence: {e}")))?,
            cmd_id: self.cmd_id,
            log_id: self.log_id,
            order_id: self.order_id,
            session: self.session,
            last_reply: self.last_reply,
            received_at: self.received_at,
            updated_at: self.updated_at,
        })
    }
}

fn get_command_in(conn: &Connection, cmd_id: &str) -> Result<Option<StoredCommand>, JournalError> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {COMMAND_COLUMNS} FROM commands WHERE cmd_id = ?1"
        ))?
        .query_row([cmd_id], RawCommand::from_row)
        .optional()?;
    raw.map(RawCommand::into_stored).transpose()
}

fn enqueue_in(
    conn: &Connection,
    cmd_id: Option<&str>,
    msg: &OutboxMessage,
    at: i64,
) -> Result<i64, JournalError> {
    conn.prepare_cached(
        "INSERT INTO outbox (cmd_id, topic, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![cmd_id, msg.topic, msg.payload, at])?;
    Ok(conn.last_insert_rowid())
}

/// [`Journal::record_rejection`] inside a transaction the caller commits.
fn record_rejection_in(
    tx: &Connection,
    limits: RejectionLimits,
    reason: Reason,
    payload: &[u8],
    trusted: Option<&TrustedIds>,
    detail: &str,
) -> Result<i64, JournalError> {
    let hash: String = Sha256::digest(payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let now = now_ms();
    tx.prepare_cached(
        "INSERT INTO rejections (at, reason, payload_sha256, payload_len, cmd_id, log_id, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        now,
        reason.code(),
        hash,
        i64::try_from(payload.len()).unwrap_or(i64::MAX),
        trusted.map(|t| t.cmd_id.as_str()),
        trusted.map(|t| t.log_id.as_str()),
        detail,
    ])?;
    let id = tx.last_insert_rowid();
    let keep_from = id.saturating_sub(i64::try_from(limits.max_rows).unwrap_or(i64::MAX));
    let oldest = now.saturating_sub(i64::try_from(limits.max_age_ms).unwrap_or(i64::MAX));
    // Both bounds as one range of ids, so the delete never reads more than it
    // removes: rows are appended in time order, so the rows too old are those before
    // the first young enough one, found walking from the oldest id. (One predicate
    // `id <= ?1 OR at < ?2` read the whole ring, 10,000 rows, for each payload; a
    // row out of time order, after a clock jump, goes by the count bound.)
    let first_young: i64 = tx
        .prepare_cached("SELECT id FROM rejections WHERE at >= ?1 ORDER BY id LIMIT 1")?
        .query_row([oldest], |r| r.get(0))
        .optional()?
        .unwrap_or(i64::MAX);
    let dropped = tx
        .prepare_cached("DELETE FROM rejections WHERE id < ?1")?
        .execute([keep_from.saturating_add(1).max(first_young)])?;
    if dropped > 0 {
        tx.prepare_cached(
            "INSERT INTO settings (key, value) VALUES (?1, CAST(?2 AS TEXT)) \
             ON CONFLICT(key) DO UPDATE SET \
             value = CAST(CAST(value AS INTEGER) + ?2 AS TEXT)",
        )?
        .execute(params![
            REJECTIONS_DROPPED,
            i64::try_from(dropped).unwrap_or(i64::MAX)
        ])?;
    }
    Ok(id)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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

    /// The count of this connection's waits for the write lock (the engine's: opened by
    /// [`Journal::open_checked`] and the functions built on it).
    pub fn lock_waits(&self) -> LockWaits {
        self.waits.clone()
    }

    /// Makes long work on this connection (retention's batches) stop and commit as soon
    /// as the connection behind `waits` waits for the write lock.
    pub fn give_way_to(&mut self, waits: LockWaits) {
        self.give_way = Some(waits);
    }

    /// The waits of the connection this one gives way to, if any.
    pub(crate) fn give_way(&self) -> Option<&LockWaits> {
        self.give_way.as_ref()
    }

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

    // ----------------------------------------------------------------- commands

    /// Stores a command the first time its ID is seen, with its first reply (if any) in
    /// the same transaction. On a redelivery nothing is written and the stored command
    /// is returned, so the caller answers with it and never acts twice (invariant 2).
    pub fn insert_new_command(
        &mut self,
        cmd: &NewCommand,
        reply: Option<&OutboxMessage>,
    ) -> Result<Inserted, JournalError> {
        if !matches!(cmd.state, ReplyState::Accepted | ReplyState::Rejected) {
            return Err(JournalError::IllegalInitialState(cmd.state));
        }
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO commands (cmd_id, log_id, order_id, slot, qty, session, state, \
                 reason, evidence, last_reply, received_at, updated_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '{}', ?9, ?10, ?10, ?11) \
                 ON CONFLICT(cmd_id) DO NOTHING",
            )?
            .execute(params![
                cmd.cmd_id,
                cmd.log_id,
                cmd.order_id,
                cmd.slot,
                cmd.qty,
                cmd.session,
                cmd.state.as_str(),
                cmd.reason.map(Reason::code),
                reply.map(|r| r.payload.as_str()),
                now,
                cmd.expires_at,
            ])?;
        if inserted == 0 {
            let stored = get_command_in(&tx, &cmd.cmd_id)?
                .ok_or_else(|| JournalError::UnknownCommand(cmd.cmd_id.clone()))?;
            // Dropping `tx` rolls back; nothing was written anyway.
            return Ok(Inserted::Duplicate(stored));
        }
        tx.prepare_cached(
            "INSERT INTO command_transitions (cmd_id, state, reason, at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            cmd.cmd_id,
            cmd.state.as_str(),
            cmd.reason.map(Reason::code),
            now
        ])?;
        if let Some(r) = reply {
            enqueue_in(&tx, Some(&cmd.cmd_id), r, now)?;
        }
        tx.commit()?;
        Ok(Inserted::New)
    }

    /// Moves a command to `to`, records the transition and evidence, and enqueues
    /// `reply` — all in one transaction, so the state and its reply are never out of
    /// step after a crash (invariant 3). Illegal moves (anything out of a terminal
    /// state, `dispensing` → `rejected`, going backwards) are refused.
    pub fn transition(
        &mut self,
        cmd_id: &str,
        to: ReplyState,
        reason: Option<Reason>,
        evidence: &Evidence,
        reply: Option<&OutboxMessage>,
    ) -> Result<StoredCommand, JournalError> {
        let now = now_ms();
        let evidence_json = serde_json::to_string(evidence)
            .map_err(|e| JournalError::Corrupt(format!("evidence: {e}")))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = get_command_in(&tx, cmd_id)?
            .ok_or_else(|| JournalError::UnknownCommand(cmd_id.to_owned()))?;
        if !current.state.can_transition_to(to) {
            return Err(JournalError::IllegalTransition {
                cmd_id: cmd_id.to_owned(),
                from: current.state,
                to,
            });
        }
        tx.prepare_cached(
            "UPDATE commands SET state = ?2, reason = ?3, evidence = ?4, updated_at = ?5, \
             last_reply = COALESCE(?6, last_reply) WHERE cmd_id = ?1",
        )?
        .execute(params![
            cmd_id,
            to.as_str(),
            reason.map(Reason::code),
            evidence_json,
            now,
            reply.map(|r| r.payload.as_str()),
        ])?;
        tx.prepare_cached(
            "INSERT INTO command_transitions (cmd_id, state, reason, at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![cmd_id, to.as_str(), reason.map(Reason::code), now])?;
        if let Some(r) = reply {
            enqueue_in(&tx, Some(cmd_id), r, now)?;
        }
        let updated = get_command_in(&tx, cmd_id)?
            .ok_or_else(|| JournalError::UnknownCommand(cmd_id.to_owned()))?;
        tx.commit()?;
        Ok(updated)
    }

    /// The command with this ID.
    pub fn get_command(&self, cmd_id: &str) -> Result<Option<StoredCommand>, JournalError> {
        get_command_in(&self.conn, cmd_id)
    }

    fn query_commands(
        &self,
        where_order: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<StoredCommand>, JournalError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COMMAND_COLUMNS} FROM commands {where_order}"
        ))?;
        let raws = stmt
            .query_map(p, RawCommand::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawCommand::into_stored).collect()
    }

    /// Commands in `state`, oldest first. Start-up recovery uses it to find commands
    /// left in `dispensing` by a crash.
    pub fn commands_in_state(&self, state: ReplyState) -> Result<Vec<StoredCommand>, JournalError> {
        self.query_commands(
            "WHERE state = ?1 ORDER BY received_at, rowid",
            [state.as_str()],
        )
    }

    /// The `n` most recent commands, newest first (diagnostics screen).
    pub fn recent_commands(&self, n: usize) -> Result<Vec<StoredCommand>, JournalError> {
        self.query_commands("ORDER BY received_at DESC, rowid DESC LIMIT ?1", [limit(n)])
    }

    /// Commands carrying this log ID, oldest first (support looks a case up by it).
    pub fn find_by_log_id(&self, log_id: &str) -> Result<Vec<StoredCommand>, JournalError> {
        self.query_commands("WHERE log_id = ?1 ORDER BY received_at, rowid", [log_id])
    }

    /// Like [`Journal::find_by_log_id`] but ignoring ASCII case (a support code typed on
    /// an on-screen keyboard). Scans the table: for technicians, not for the hot path.
    pub fn find_by_log_id_nocase(&self, log_id: &str) -> Result<Vec<StoredCommand>, JournalError> {
        self.query_commands(
            "WHERE log_id = ?1 COLLATE NOCASE ORDER BY received_at, rowid",
            [log_id],
        )
    }

    /// Every state a command went through, in order.
    pub fn transitions(&self, cmd_id: &str) -> Result<Vec<Transition>, JournalError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT state, reason, at FROM command_transitions WHERE cmd_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([cmd_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(s, reason, at)| {
                Ok(Transition {
                    state: parse_state(&s)?,
                    reason: parse_reason(reason)?,
                    at,
                })
            })
            .collect()
    }

    // ------------------------------------------------------------------- outbox

    /// Enqueues a message without a state change, e.g. the stored reply re-sent to a
    /// duplicate, or a rejected reply for a command not kept in `commands`.
    pub fn enqueue(
        &mut self,
        cmd_id: Option<&str>,
        msg: &OutboxMessage,
    ) -> Result<i64, JournalError> {
        enqueue_in(&self.conn, cmd_id, msg, now_ms())
    }

    /// Up to `limit` unacknowledged messages, in the order they were enqueued.
    pub fn outbox_pending(&self, max: usize) -> Result<Vec<OutboxEntry>, JournalError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, cmd_id, topic, payload, created_at FROM outbox ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit(max)], |r| {
                Ok(OutboxEntry {
                    id: r.get(0)?,
                    cmd_id: r.get(1)?,
                    topic: r.get(2)?,
                    payload: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Number of unacknowledged messages (telemetry).
    pub fn outbox_len(&self) -> Result<u64, JournalError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Removes a message the broker acknowledged (PUBACK). Returns false if it was
    /// already gone (a second ack after a reconnect is harmless).
    pub fn outbox_ack(&mut self, id: i64) -> Result<bool, JournalError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM outbox WHERE id = ?1")?
            .execute([id])?;
        Ok(n == 1)
    }

    // ---------------------------------------------------------------- inventory

    /// Inserts the configured slots that are not in the journal yet, with their
    /// `initial_count`. Existing slots keep their live count. Returns how many were new.
    pub fn seed_inventory(&mut self, slots: &[SlotConfig]) -> Result<usize, JournalError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO inventory (slot, product, capacity, count, enabled, jammed, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 1, 0, ?5) ON CONFLICT(slot) DO NOTHING",
            )?;
            for s in slots {
                added +=
                    stmt.execute(params![s.slot, s.product, s.capacity, s.initial_count, now])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// All slots, by slot number.
    pub fn inventory(&self) -> Result<Vec<SlotInventory>, JournalError> {
        self.query_slots("ORDER BY slot", [])
    }

    /// One slot.
    pub fn slot(&self, slot: u16) -> Result<Option<SlotInventory>, JournalError> {
        Ok(self.query_slots("WHERE slot = ?1", [slot])?.pop())
    }

    fn query_slots(
        &self,
        where_order: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<SlotInventory>, JournalError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT slot, product, capacity, count, enabled, jammed FROM inventory {where_order}"
        ))?;
        let rows = stmt
            .query_map(p, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(slot, product, capacity, count, enabled, jammed)| {
                Ok(SlotInventory {
                    slot: to_u16(Some(slot), "slot")?.unwrap_or_default(),
                    product,
                    capacity: to_u32(capacity, "capacity")?,
                    count: to_u32(count, "count")?,
                    enabled,
                    jammed,
                })
            })
            .collect()
    }

    /// Takes one item off a slot after the board confirmed a drop (stock goes down only
    /// on a confirmed drop). Never goes below zero. Returns the new count.
    pub fn decrement_on_drop(&mut self, slot: u16) -> Result<u32, JournalError> {
        let count: Option<i64> = self
            .conn
            .prepare_cached(
                "UPDATE inventory SET count = MAX(count - 1, 0), updated_at = ?2 \
                 WHERE slot = ?1 RETURNING count",
            )?
            .query_row(params![slot, now_ms()], |r| r.get(0))
            .optional()?;
        to_u32(count.ok_or(JournalError::UnknownSlot(slot))?, "count")
    }

    /// Sets a slot's count (restock, correction). Refuses counts above capacity.
    pub fn set_count(&mut self, slot: u16, count: u32) -> Result<(), JournalError> {
        let s = self.slot(slot)?.ok_or(JournalError::UnknownSlot(slot))?;
        if count > s.capacity {
            return Err(JournalError::OverCapacity {
                slot,
                count,
                capacity: s.capacity,
            });
        }
        self.update_slot("count", slot, i64::from(count))
    }

    /// Marks a slot jammed (out of service) or clears the jam.
    pub fn set_jammed(&mut self, slot: u16, jammed: bool) -> Result<(), JournalError> {
        self.update_slot("jammed", slot, i64::from(jammed))
    }

    /// Enables or disables a slot.
    pub fn set_enabled(&mut self, slot: u16, enabled: bool) -> Result<(), JournalError> {
        self.update_slot("enabled", slot, i64::from(enabled))
    }

    /// `column` is one of our own constants, never input.
    fn update_slot(
        &mut self,
        column: &'static str,
        slot: u16,
        value: i64,
    ) -> Result<(), JournalError> {
        let n = self
            .conn
            .prepare_cached(&format!(
                "UPDATE inventory SET {column} = ?2, updated_at = ?3 WHERE slot = ?1"
            ))?
            .execute(params![slot, value, now_ms()])?;
        if n == 0 {
            return Err(JournalError::UnknownSlot(slot));
        }
        Ok(())
    }

    // ----------------------------------------------------------------- settings

    /// A stored value, if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>, JournalError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Stores `value` under `key` (replacing any earlier value).
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), JournalError> {
        self.conn
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute([key, value])?;
        Ok(())
    }

    // -------------------------------------------------------------------- audit

    /// Records a technician action. Returns its row ID.
    pub fn audit(
        &mut self,
        technician: &str,
        action: &str,
        detail: &str,
    ) -> Result<i64, JournalError> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit (at, technician, action, detail) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![now_ms(), technician, action, detail])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The `n` most recent technician actions, newest first.
    pub fn recent_audit(&self, n: usize) -> Result<Vec<AuditEntry>, JournalError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, technician, action, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit(n)], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    technician: r.get(2)?,
                    action: r.get(3)?,
                    detail: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

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

    // --------------------------------------------------------------- rejections

    /// Bound the rejections ring (`journal.max_rejections`, `journal.rejections_max_age_days`).
    pub fn set_rejection_limits(&mut self, limits: RejectionLimits) {
        self.rejection_limits = limits;
    }

    /// How many rejections the ring has dropped over the journal's life.
    pub fn rejections_dropped(&self) -> Result<u64, JournalError> {
        Ok(self
            .setting(REJECTIONS_DROPPED)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Records a payload that was refused, as its SHA-256 and length only (never the
    /// body), with the command's IDs when its signature verified. The table is a ring:
    /// in the same transaction, rows beyond [`RejectionLimits`] are deleted and counted
    /// ([`Journal::rejections_dropped`]), so a flood of junk has a fixed disk cost
    /// (SQLite reuses the freed pages).
    pub fn record_rejection(
        &mut self,
        reason: Reason,
        payload: &[u8],
        trusted: Option<&TrustedIds>,
        detail: &str,
    ) -> Result<i64, JournalError> {
        let limits = self.rejection_limits;
        let tx = self.conn.transaction()?;
        let id = record_rejection_in(&tx, limits, reason, payload, trusted, detail)?;
        tx.commit()?;
        Ok(id)
    }

    /// An untrusted payload's record and its reply (no command id), in one transaction
    /// committed without waiting for the disk (`synchronous=NORMAL` for this commit
    /// only; the connection's setting is restored after it). A payload nobody could
    /// authenticate must not cost the cabinet an fsync: a flood of them would queue real
    /// orders behind one disk flush each. A power cut may lose the last few of these rows
    /// and their replies, which identify no command; the next commit that waits for the
    /// disk (any command's) makes them durable too.
    pub fn record_untrusted(
        &mut self,
        reason: Reason,
        payload: &[u8],
        detail: &str,
        reply: &OutboxMessage,
    ) -> Result<(), JournalError> {
        let limits = self.rejection_limits;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let written = (|| {
            let tx = self.conn.transaction()?;
            record_rejection_in(&tx, limits, reason, payload, None, detail)?;
            enqueue_in(&tx, None, reply, now_ms())?;
            tx.commit()?;
            Ok::<(), JournalError>(())
        })();
        let restored = self.conn.pragma_update(None, "synchronous", self.sync);
        written?;
        restored?;
        Ok(())
    }

    /// The `n` most recent rejections, newest first.
    pub fn recent_rejections(&self, n: usize) -> Result<Vec<RejectionEntry>, JournalError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, reason, payload_sha256, payload_len, cmd_id, log_id, detail \
             FROM rejections ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit(n)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(
                |(id, at, reason, payload_sha256, len, cmd_id, log_id, detail)| {
                    Ok(RejectionEntry {
                        id,
                        at,
                        reason: parse_reason(Some(reason))?.ok_or_else(|| {
                            JournalError::Corrupt("missing rejection reason".into())
                        })?,
                        payload_sha256,
                        payload_len: u64::try_from(len).unwrap_or(0),
                        cmd_id,
                        log_id,
                        detail,
                    })
                },
            )
            .collect()
    }
}

/// Applies the migrations not yet recorded in `user_version`, each in its own
/// transaction together with the version bump, so a crash mid-migration leaves the
/// previous version intact.
fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > supported {
        return Err(JournalError::SchemaTooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CommandKind;

    fn open_tmp() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("sub/dir/journal.sqlite3")).unwrap();
        (dir, j)
    }

    fn cmd(id: &str) -> Command {
        Command {
            cmd_id: id.into(),
            log_id: format!("log-{id}"),
            order_id: format!("order-{id}"),
            kind: CommandKind::Dispense,
            slot: 3,
            qty: 1,
            session: Some("nonce".into()),
            issued_at: 0,
            expires_at: 60,
            kid: "k1".into(),
        }
    }

    /// `id` stored as accepted and moved to dispensing, without replies.
    fn accepted_then_dispensing(j: &mut Journal, id: &str) {
        j.insert_new_command(&NewCommand::accepted(&cmd(id)), None)
            .unwrap();
        j.transition(id, ReplyState::Dispensing, None, &Evidence::default(), None)
            .unwrap();
    }

    fn reply(text: &str) -> OutboxMessage {
        OutboxMessage {
            topic: "cabinet/v1/GZ-1/reply".into(),
            payload: format!("{{\"state\":\"{text}\"}}"),
        }
    }

    fn slot_cfg(slot: u16, count: u32) -> SlotConfig {
        SlotConfig {
            slot,
            product: format!("P{slot}"),
            capacity: 10,
            initial_count: count,
        }
    }

    #[test]
    fn open_creates_parent_directories_and_uses_wal_with_full_sync() {
        let (dir, j) = open_tmp();
        assert!(dir.path().join("sub/dir/journal.sqlite3").exists());
        let mode: String = j
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = j
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL guards the motor");
        assert_eq!(j.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn settings_survive_reopening_and_a_version_1_journal_gains_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        {
            // A journal as the first release left it: only migration 1.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.setting("gate").unwrap(), None);
        j.set_setting("gate", "a").unwrap();
        j.set_setting("gate", "b").unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.setting("gate").unwrap().as_deref(), Some("b"));
        assert_eq!(j.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_new_command_is_stored_with_its_first_transition_and_reply() {
        let (_d, mut j) = open_tmp();
        let r = j
            .insert_new_command(&NewCommand::accepted(&cmd("c1")), Some(&reply("accepted")))
            .unwrap();
        assert_eq!(r, Inserted::New);
        let c = j.get_command("c1").unwrap().unwrap();
        assert_eq!(c.state, ReplyState::Accepted);
        assert_eq!(c.slot, Some(3));
        assert_eq!(c.log_id, "log-c1");
        assert_eq!(c.session.as_deref(), Some("nonce"));
        assert_eq!(
            c.last_reply.as_deref(),
            Some(reply("accepted").payload.as_str())
        );
        assert_eq!(j.transitions("c1").unwrap().len(), 1);
        let out = j.outbox_pending(10).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].cmd_id.as_deref(), Some("c1"));
    }

    /// The journal's timestamps are the wall clock in milliseconds (the technician's
    /// command list and the diagnostics bundle show them).
    #[test]
    fn commands_are_stamped_with_the_wall_clock() {
        let (_d, mut j) = open_tmp();
        let before = now_ms();
        accepted_then_dispensing(&mut j, "c1");
        let after = now_ms();
        let c = j.get_command("c1").unwrap().unwrap();
        assert!(before > 1_700_000_000_000, "milliseconds since 1970");
        for t in [c.received_at, c.updated_at] {
            assert!(
                (before..=after).contains(&t),
                "{t} not in {before}..={after}"
            );
        }
    }

    #[test]
    fn a_duplicate_insert_returns_the_stored_command_and_writes_nothing() {
        let (_d, mut j) = open_tmp();
        j.insert_new_command(&NewCommand::accepted(&cmd("c1")), Some(&reply("accepted")))
            .unwrap();
        j.transition(
            "c1",
            ReplyState::Dispensing,
            None,
            &Evidence::default(),
            None,
        )
        .unwrap();
        let mut again = NewCommand::accepted(&cmd("c1"));
        again.slot = Some(9); // a redelivery can never change what is stored
        match j
            .insert_new_command(&again, Some(&reply("accepted")))
            .unwrap()
        {
            Inserted::Duplicate(stored) => {
                assert_eq!(stored.state, ReplyState::Dispensing);
                assert_eq!(stored.slot, Some(3));
            }
            Inserted::New => panic!("a redelivered command ID must be a duplicate"),
        }
        assert_eq!(
            j.outbox_pending(10).unwrap().len(),
            1,
            "no second reply enqueued"
        );
        assert_eq!(j.transitions("c1").unwrap().len(), 2);
    }

    #[test]
    fn a_trusted_rejection_is_stored_so_redelivery_gets_the_same_answer() {
        let (_d, mut j) = open_tmp();
        let ids = TrustedIds {
            cmd_id: "c9".into(),
            aud: "GZ-1".into(),
            order_id: "o".into(),
            log_id: "l".into(),
            exp: None,
        };
        let nc = NewCommand::rejected(&ids, Reason::Expired);
        j.insert_new_command(&nc, Some(&reply("rejected"))).unwrap();
        let Inserted::Duplicate(s) = j.insert_new_command(&nc, None).unwrap() else {
            panic!("expected duplicate");
        };
        assert_eq!(s.state, ReplyState::Rejected);
        assert_eq!(s.reason, Some(Reason::Expired));
        assert_eq!(s.slot, None);
        assert_eq!(
            s.last_reply.as_deref(),
            Some(reply("rejected").payload.as_str())
        );
    }

    #[test]
    fn new_commands_cannot_start_in_dispensing_or_succeeded() {
        let (_d, mut j) = open_tmp();
        for st in [ReplyState::Dispensing, ReplyState::Succeeded] {
            let mut nc = NewCommand::accepted(&cmd("c1"));
            nc.state = st;
            assert!(matches!(
                j.insert_new_command(&nc, None),
                Err(JournalError::IllegalInitialState(_))
            ));
        }
        assert!(j.get_command("c1").unwrap().is_none());
    }

    #[test]
    fn transition_updates_state_evidence_and_enqueues_the_reply_together() {
        let (_d, mut j) = open_tmp();
        j.insert_new_command(&NewCommand::accepted(&cmd("c1")), None)
            .unwrap();
        j.transition(
            "c1",
            ReplyState::Dispensing,
            None,
            &Evidence::default(),
            Some(&reply("dispensing")),
        )
        .unwrap();
        let ev = Evidence {
            drop_detected: Some(true),
            door_open: None,
            board_status: Some("vmc:02".into()),
        };
        let c = j
            .transition(
                "c1",
                ReplyState::Succeeded,
                None,
                &ev,
                Some(&reply("succeeded")),
            )
            .unwrap();
        assert_eq!(c.state, ReplyState::Succeeded);
        assert_eq!(c.evidence, ev);
        assert_eq!(
            c.last_reply.as_deref(),
            Some(reply("succeeded").payload.as_str())
        );
        let states: Vec<_> = j
            .transitions("c1")
            .unwrap()
            .into_iter()
            .map(|t| t.state)
            .collect();
        assert_eq!(
            states,
            [
                ReplyState::Accepted,
                ReplyState::Dispensing,
                ReplyState::Succeeded
            ]
        );
        let out: Vec<_> = j
            .outbox_pending(10)
            .unwrap()
            .into_iter()
            .map(|e| e.payload)
            .collect();
        assert_eq!(
            out,
            [reply("dispensing").payload, reply("succeeded").payload]
        );
    }

    #[test]
    fn an_illegal_transition_changes_nothing_and_enqueues_nothing() {
        let (_d, mut j) = open_tmp();
        accepted_then_dispensing(&mut j, "c1");
        j.transition(
            "c1",
            ReplyState::Succeeded,
            None,
            &Evidence::default(),
            None,
        )
        .unwrap();
        for to in [
            ReplyState::Dispensing,
            ReplyState::Failed,
            ReplyState::OutcomeUnknown,
            ReplyState::Accepted,
        ] {
            let e = j
                .transition(
                    "c1",
                    to,
                    Some(Reason::Jammed),
                    &Evidence::default(),
                    Some(&reply("x")),
                )
                .unwrap_err();
            assert!(matches!(e, JournalError::IllegalTransition { .. }), "{e}");
        }
        assert_eq!(
            j.get_command("c1").unwrap().unwrap().state,
            ReplyState::Succeeded
        );
        assert!(j.outbox_pending(10).unwrap().is_empty());
        assert_eq!(j.transitions("c1").unwrap().len(), 3);
    }

    #[test]
    fn dispensing_can_never_become_rejected_or_go_back_to_accepted() {
        let (_d, mut j) = open_tmp();
        accepted_then_dispensing(&mut j, "c1");
        for to in [
            ReplyState::Rejected,
            ReplyState::Accepted,
            ReplyState::Dispensing,
        ] {
            assert!(
                j.transition("c1", to, None, &Evidence::default(), None)
                    .is_err(),
                "{to}"
            );
        }
    }

    #[test]
    fn transition_of_an_unknown_command_is_an_error() {
        let (_d, mut j) = open_tmp();
        assert!(matches!(
            j.transition("nope", ReplyState::Failed, None, &Evidence::default(), None),
            Err(JournalError::UnknownCommand(_))
        ));
    }

    #[test]
    fn reopening_after_drop_keeps_commands_outbox_inventory_and_audit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        {
            let mut j = Journal::open(&path).unwrap();
            j.insert_new_command(&NewCommand::accepted(&cmd("c1")), Some(&reply("accepted")))
                .unwrap();
            j.transition(
                "c1",
                ReplyState::Dispensing,
                None,
                &Evidence::default(),
                None,
            )
            .unwrap();
            j.seed_inventory(&[slot_cfg(3, 5)]).unwrap();
            j.audit("tech-7", "restock", "slot 3 to 5").unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(
            j.get_command("c1").unwrap().unwrap().state,
            ReplyState::Dispensing
        );
        assert_eq!(j.outbox_pending(10).unwrap().len(), 1);
        assert_eq!(j.inventory().unwrap()[0].count, 5);
        assert_eq!(j.recent_audit(5).unwrap()[0].technician, "tech-7");
    }

    #[test]
    fn startup_recovery_finds_commands_left_dispensing_and_marks_them_outcome_unknown() {
        // The crash-mid-dispense case: on restart the command is found
        // in `dispensing`, reported as outcome_unknown, and can never dispense again.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        {
            let mut j = Journal::open(&path).unwrap();
            for id in ["a", "b", "c"] {
                j.insert_new_command(&NewCommand::accepted(&cmd(id)), None)
                    .unwrap();
            }
            j.transition(
                "b",
                ReplyState::Dispensing,
                None,
                &Evidence::default(),
                None,
            )
            .unwrap();
            // process "dies" here
        }
        let mut j = Journal::open(&path).unwrap();
        let stuck = j.commands_in_state(ReplyState::Dispensing).unwrap();
        assert_eq!(stuck.len(), 1);
        assert_eq!(stuck[0].cmd_id, "b");
        j.transition(
            "b",
            ReplyState::OutcomeUnknown,
            Some(Reason::Interrupted),
            &Evidence::default(),
            Some(&reply("outcome_unknown")),
        )
        .unwrap();
        assert!(
            j.commands_in_state(ReplyState::Dispensing)
                .unwrap()
                .is_empty()
        );
        assert!(
            j.transition(
                "b",
                ReplyState::Dispensing,
                None,
                &Evidence::default(),
                None
            )
            .is_err()
        );
        let accepted: Vec<_> = j
            .commands_in_state(ReplyState::Accepted)
            .unwrap()
            .into_iter()
            .map(|c| c.cmd_id)
            .collect();
        assert_eq!(accepted, ["a", "c"]);
    }

    #[test]
    fn migrations_are_idempotent_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        drop(Journal::open(&path).unwrap());
        drop(Journal::open(&path).unwrap());
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_journal_from_a_newer_app_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        {
            let j = Journal::open(&path).unwrap();
            j.conn.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn outbox_is_delivered_in_insertion_order_and_ack_removes_exactly_one() {
        let (_d, mut j) = open_tmp();
        let ids: Vec<i64> = (0..5)
            .map(|i| j.enqueue(None, &reply(&format!("m{i}"))).unwrap())
            .collect();
        let pending = j.outbox_pending(3).unwrap();
        assert_eq!(pending.iter().map(|e| e.id).collect::<Vec<_>>(), ids[..3]);
        assert!(j.outbox_ack(ids[1]).unwrap());
        assert!(!j.outbox_ack(ids[1]).unwrap(), "a second ack is harmless");
        let left: Vec<_> = j
            .outbox_pending(10)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, [ids[0], ids[2], ids[3], ids[4]]);
        assert_eq!(j.outbox_len().unwrap(), 4);
    }

    #[test]
    fn unacknowledged_replies_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        {
            let mut j = Journal::open(&path).unwrap();
            j.enqueue(Some("c1"), &reply("succeeded")).unwrap();
            let acked = j.enqueue(Some("c2"), &reply("failed")).unwrap();
            j.outbox_ack(acked).unwrap();
        }
        let j = Journal::open(&path).unwrap();
        let p = j.outbox_pending(10).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].cmd_id.as_deref(), Some("c1"));
    }

    #[test]
    fn recent_commands_are_newest_first_and_find_by_log_id_works() {
        let (_d, mut j) = open_tmp();
        for id in ["a", "b", "c"] {
            j.insert_new_command(&NewCommand::accepted(&cmd(id)), None)
                .unwrap();
        }
        let recent: Vec<_> = j
            .recent_commands(2)
            .unwrap()
            .into_iter()
            .map(|c| c.cmd_id)
            .collect();
        assert_eq!(recent, ["c", "b"]);
        let found = j.find_by_log_id("log-b").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].cmd_id, "b");
        assert!(j.find_by_log_id("log-zzz").unwrap().is_empty());
        assert!(
            j.find_by_log_id("LOG-B").unwrap().is_empty(),
            "exact is exact"
        );
        let typed = j.find_by_log_id_nocase("LOG-B").unwrap();
        assert_eq!(typed.len(), 1);
        assert_eq!(typed[0].cmd_id, "b");
    }

    #[test]
    fn seeding_inserts_missing_slots_only_and_keeps_live_counts() {
        let (_d, mut j) = open_tmp();
        assert_eq!(
            j.seed_inventory(&[slot_cfg(1, 5), slot_cfg(2, 7)]).unwrap(),
            2
        );
        j.decrement_on_drop(1).unwrap();
        // Restart with the same config plus a new slot: slot 1 keeps its live count.
        assert_eq!(
            j.seed_inventory(&[slot_cfg(1, 5), slot_cfg(2, 7), slot_cfg(3, 1)])
                .unwrap(),
            1
        );
        let inv = j.inventory().unwrap();
        assert_eq!(
            inv.iter().map(|s| (s.slot, s.count)).collect::<Vec<_>>(),
            [(1, 4), (2, 7), (3, 1)]
        );
        assert!(inv.iter().all(|s| s.enabled && !s.jammed));
    }

    #[test]
    fn decrement_on_drop_never_goes_below_zero() {
        let (_d, mut j) = open_tmp();
        j.seed_inventory(&[slot_cfg(1, 1)]).unwrap();
        assert_eq!(j.decrement_on_drop(1).unwrap(), 0);
        assert_eq!(j.decrement_on_drop(1).unwrap(), 0);
        assert!(matches!(
            j.decrement_on_drop(42),
            Err(JournalError::UnknownSlot(42))
        ));
    }

    #[test]
    fn restock_refuses_counts_above_capacity() {
        let (_d, mut j) = open_tmp();
        j.seed_inventory(&[slot_cfg(1, 0)]).unwrap();
        j.set_count(1, 10).unwrap();
        assert_eq!(j.slot(1).unwrap().unwrap().count, 10);
        assert!(matches!(
            j.set_count(1, 11),
            Err(JournalError::OverCapacity { .. })
        ));
        assert!(matches!(
            j.set_count(5, 1),
            Err(JournalError::UnknownSlot(5))
        ));
    }

    #[test]
    fn jammed_and_disabled_slots_report_why_they_cannot_dispense() {
        let (_d, mut j) = open_tmp();
        j.seed_inventory(&[slot_cfg(1, 3), slot_cfg(2, 0)]).unwrap();
        assert_eq!(j.slot(1).unwrap().unwrap().unavailable_reason(), None);
        assert_eq!(
            j.slot(2).unwrap().unwrap().unavailable_reason(),
            Some(Reason::SlotEmpty)
        );
        j.set_jammed(1, true).unwrap();
        assert_eq!(
            j.slot(1).unwrap().unwrap().unavailable_reason(),
            Some(Reason::SlotJammed)
        );
        j.set_enabled(1, false).unwrap();
        assert_eq!(
            j.slot(1).unwrap().unwrap().unavailable_reason(),
            Some(Reason::SlotDisabled)
        );
        j.set_enabled(1, true).unwrap();
        j.set_jammed(1, false).unwrap();
        assert_eq!(j.slot(1).unwrap().unwrap().unavailable_reason(), None);
        assert!(matches!(
            j.set_jammed(9, true),
            Err(JournalError::UnknownSlot(9))
        ));
        assert!(j.slot(9).unwrap().is_none());
    }

    #[test]
    fn audit_entries_come_back_newest_first() {
        let (_d, mut j) = open_tmp();
        j.audit("t1", "login", "").unwrap();
        j.audit("t1", "clear_jam", "slot 4").unwrap();
        let a = j.recent_audit(10).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].action, "clear_jam");
        assert_eq!(a[0].detail, "slot 4");
        assert_eq!(j.recent_audit(1).unwrap().len(), 1);
    }

    #[test]
    fn a_flood_of_junk_keeps_the_rejections_to_their_bound_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        let mut j = Journal::open(&path).unwrap();
        j.set_rejection_limits(RejectionLimits {
            max_rows: 200,
            max_age_ms: 86_400_000,
        });
        let junk = |i: u32| format!("junk {i} {}", "x".repeat(300));
        let mut size_at_bound = 0;
        for i in 0..2_000u32 {
            j.record_rejection(Reason::Malformed, junk(i).as_bytes(), None, "not a JWS")
                .unwrap();
            if i == 400 {
                j.conn
                    .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                    .unwrap();
                size_at_bound = std::fs::metadata(&path).unwrap().len();
            }
        }
        let rows: i64 = j
            .conn
            .query_row("SELECT COUNT(*) FROM rejections", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 200);
        assert_eq!(j.rejections_dropped().unwrap(), 1_800);
        // The newest are the ones kept.
        assert_eq!(
            j.recent_rejections(1).unwrap()[0].payload_len,
            junk(1_999).len() as u64
        );
        j.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(
            size <= size_at_bound,
            "the file grew from {size_at_bound} to {size} bytes past the bound"
        );
        // Rows older than the age bound go at the next rejection, whatever the count.
        j.conn
            .execute("UPDATE rejections SET at = at - 2 * 86400000", [])
            .unwrap();
        j.record_rejection(Reason::Malformed, b"new", None, "not a JWS")
            .unwrap();
        assert_eq!(j.recent_rejections(1_000).unwrap().len(), 1);
        assert_eq!(j.rejections_dropped().unwrap(), 2_000);
    }

    #[test]
    fn an_untrusted_payload_and_its_reply_commit_together_without_changing_the_sync_level() {
        let (_d, mut j) = open_tmp();
        let sync = |j: &Journal| -> i64 {
            j.conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(sync(&j), 2, "FULL");
        let reply = OutboxMessage {
            topic: "cabinet/v1/C001/reply".into(),
            payload: "{\"state\":\"rejected\"}".into(),
        };
        j.record_untrusted(Reason::Malformed, b"junk", "not a JWS", &reply)
            .unwrap();
        assert_eq!(sync(&j), 2, "FULL again after the commit");
        assert_eq!(j.recent_rejections(10).unwrap().len(), 1);
        let out = j.outbox_pending(10).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].cmd_id.as_deref(), out[0].payload.as_str()),
            (None, reply.payload.as_str())
        );
    }

    #[test]
    fn rejections_store_a_hash_and_length_never_the_payload() {
        let (_d, mut j) = open_tmp();
        let payload = b"forged.token.SECRET-LOOKING-BODY";
        j.record_rejection(
            Reason::BadSignature,
            payload,
            None,
            "signature does not verify",
        )
        .unwrap();
        let ids = TrustedIds {
            cmd_id: "c1".into(),
            aud: "other".into(),
            order_id: "o".into(),
            log_id: "l1".into(),
            exp: None,
        };
        j.record_rejection(Reason::WrongTarget, b"x", Some(&ids), "aud")
            .unwrap();
        let r = j.recent_rejections(10).unwrap();
        assert_eq!(r[0].reason, Reason::WrongTarget);
        assert_eq!(r[0].log_id.as_deref(), Some("l1"));
        assert_eq!(r[1].reason, Reason::BadSignature);
        assert_eq!(r[1].payload_len, payload.len() as u64);
        assert_eq!(r[1].payload_sha256.len(), 64);
        assert!(r[1].cmd_id.is_none());
        // The body is nowhere in the database file's rejections table.
        let n: i64 = j
            .conn
            .query_row(
                "SELECT COUNT(*) FROM rejections WHERE detail LIKE '%SECRET%' OR payload_sha256 LIKE '%SECRET%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn sha256_of_the_empty_payload_matches_the_known_vector() {
        let (_d, mut j) = open_tmp();
        j.record_rejection(Reason::Malformed, b"", None, "empty")
            .unwrap();
        assert_eq!(
            j.recent_rejections(1).unwrap()[0].payload_sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
