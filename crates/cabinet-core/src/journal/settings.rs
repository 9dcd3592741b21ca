//! Settings (a small key/value table) and the technicians' audit trail.

use rusqlite::{OptionalExtension, params};

use super::Journal;
use super::JournalError;
use super::row::{limit, now_ms};

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

impl Journal {
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
}
