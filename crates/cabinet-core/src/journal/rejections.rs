//! The rejections ring: payloads that could not be trusted or were refused before
//! entering `commands`, kept as a hash and a length within [`RejectionLimits`].

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::config::JournalConfig;
use crate::protocol::TrustedIds;
use crate::reason::Reason;

use super::Journal;
use super::outbox::enqueue_in;
use super::row::{limit, now_ms, parse_reason};
use super::{JournalError, OutboxMessage};

/// The setting that counts rejections dropped from the ring.
const REJECTIONS_DROPPED: &str = "rejections_dropped";

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

impl Journal {
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
