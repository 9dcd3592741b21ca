//! [`JournalError`]: what can go wrong reading or writing the journal.

use std::path::PathBuf;

use crate::protocol::ReplyState;

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
