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
//!
//! One file per concern, all re-exported here so every item keeps its
//! `crate::journal::` path:
//! - `open`: opening, checking and setting aside a corrupt file, identity, figures;
//! - `schema`: the migrations; `lock`: waiting for and giving way on the write lock;
//! - `commands`: commands and their transitions; `outbox`: replies awaiting a PUBACK;
//! - `rejections`: the bounded ring of refused payloads;
//! - `inventory`: slots; `settings`: settings and the audit trail;
//! - `documents`: the operator's signed documents in force (the key set);
//! - `row`: column conversions; `error`: [`JournalError`].

use std::path::PathBuf;

use rusqlite::Connection;

mod commands;
mod documents;
mod error;
mod inventory;
mod lock;
mod open;
mod outbox;
mod rejections;
mod row;
mod schema;
mod settings;

pub use commands::{Inserted, NewCommand, StoredCommand, Transition};
pub use documents::{DocumentChange, StoredDocument};
pub use error::JournalError;
pub use inventory::{SlotInventory, SlotMapChange};
pub use lock::{BUSY_TIMEOUT, LockWaits};
pub use open::{Durability, Found, Identity, Opened, quick_check};
pub use outbox::{OutboxEntry, OutboxMessage};
pub use rejections::{RejectionEntry, RejectionLimits};
pub(crate) use row::now_ms;
pub use settings::AuditEntry;

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

#[cfg(test)]
mod tests;
