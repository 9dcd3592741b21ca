//! Waiting for the write lock: counting this connection's waits ([`LockWaits`]) and
//! giving way to another connection's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

use super::Journal;
use super::JournalError;

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
pub(super) fn poll_for_the_lock(
    conn: &mut Connection,
    waits: &LockWaits,
) -> Result<(), JournalError> {
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

impl Journal {
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
}
