//! The operator's signed documents in force (the key set, the configuration), one row
//! per kind, each
//! change written with its audit row in one transaction.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::Journal;
use super::JournalError;
use super::inventory::{SlotMapChange, apply_slot_map_in};
use super::row::now_ms;
use crate::config::SlotConfig;

/// A document as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// Its version: the floor any new document of its kind must climb above.
    pub version: u64,
    /// Hex SHA-256 of the token; `None` after a reset on site.
    pub sha256: Option<String>,
    /// The compact JWS as accepted; `None` after a reset on site (the config file's
    /// content is in force again).
    pub token: Option<String>,
    /// The kid that signed it (or, after a reset, who reset it).
    pub signed_by: Option<String>,
    /// When it was applied (or reset), unix ms.
    pub applied_at: i64,
}

/// A document to put in force, and the audit row that records it.
#[derive(Debug, Clone, Copy)]
pub struct DocumentChange<'a> {
    /// `keys`.
    pub kind: &'a str,
    /// Its version.
    pub version: u64,
    /// Hex SHA-256 of the token (`None`: a reset).
    pub sha256: Option<&'a str>,
    /// The token (`None`: a reset).
    pub token: Option<&'a str>,
    /// Who: the signing kid, or the technician who reset it.
    pub by: &'a str,
    /// The audit row's actor (`operator:<kid>`, or the technician).
    pub actor: &'a str,
    /// The audit row's action (`keys_applied`, `keys_reset`).
    pub action: &'a str,
    /// The audit row's detail.
    pub detail: &'a str,
}

fn to_version(v: i64) -> Result<u64, JournalError> {
    u64::try_from(v).map_err(|_| JournalError::Corrupt(format!("document version {v}")))
}

impl Journal {
    /// The document of `kind` in force (or reset), if one was ever applied.
    pub fn document(&self, kind: &str) -> Result<Option<StoredDocument>, JournalError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT version, sha256, token, signed_by, applied_at FROM documents WHERE kind = ?1",
            )?
            .query_row([kind], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        row.map(|(version, sha256, token, signed_by, applied_at)| {
            Ok(StoredDocument {
                version: to_version(version)?,
                sha256,
                token,
                signed_by,
                applied_at,
            })
        })
        .transpose()
    }

    /// Puts a document in force (or resets one) and records it in the audit trail, in one
    /// transaction: the journal never holds a change nobody can account for.
    pub fn put_document(&mut self, change: &DocumentChange<'_>) -> Result<(), JournalError> {
        self.put_document_with_slots(change, None).map(|_| ())
    }

    /// [`Journal::put_document`], and with `slots` the inventory made to follow that slot
    /// map ([`Journal::apply_slot_map`]), all in one transaction: a configuration is in
    /// force with its slot map or not at all.
    pub fn put_document_with_slots(
        &mut self,
        change: &DocumentChange<'_>,
        slots: Option<&[SlotConfig]>,
    ) -> Result<SlotMapChange, JournalError> {
        let version = i64::try_from(change.version)
            .map_err(|_| JournalError::Corrupt(format!("document version {}", change.version)))?;
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "INSERT INTO documents (kind, version, sha256, token, signed_by, applied_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT(kind) DO UPDATE SET version = excluded.version, \
             sha256 = excluded.sha256, token = excluded.token, \
             signed_by = excluded.signed_by, applied_at = excluded.applied_at",
        )?
        .execute(params![
            change.kind,
            version,
            change.sha256,
            change.token,
            change.by,
            now
        ])?;
        tx.prepare_cached(
            "INSERT INTO audit (at, technician, action, detail) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![now, change.actor, change.action, change.detail])?;
        let slot_change = match slots {
            Some(slots) => apply_slot_map_in(&tx, slots)?,
            None => SlotMapChange::default(),
        };
        tx.commit()?;
        Ok(slot_change)
    }
}
