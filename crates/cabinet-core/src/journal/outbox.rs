//! The outbox: replies waiting for the broker's acknowledgement, written in the same
//! transaction as the state they announce and removed only once acknowledged.

use rusqlite::{Connection, params};

use super::Journal;
use super::JournalError;
use super::row::{limit, now_ms};

/// A reply to publish, written to the outbox in the same transaction as its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// MQTT topic (the cabinet's `reply` topic).
    pub topic: String,
    /// JSON payload.
    pub payload: String,
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

pub(super) fn enqueue_in(
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

impl Journal {
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
}
