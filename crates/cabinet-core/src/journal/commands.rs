//! Commands: inserting a verified command once, its state changes (each with its reply
//! in one transaction), and reading commands and their history back.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::protocol::{Command, Evidence, ReplyState, TrustedIds};
use crate::reason::Reason;

use super::Journal;
use super::outbox::enqueue_in;
use super::row::{limit, now_ms, parse_reason, parse_state, to_u16};
use super::{JournalError, OutboxMessage};

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
    /// `accepted` or `rejected`; `succeeded` for a control command, done at once.
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

    /// A control command carried out at once (`slot_enable`, `slot_set_count`, ...): its
    /// first state is its last.
    pub fn done(cmd: &Command) -> NewCommand {
        NewCommand {
            state: ReplyState::Succeeded,
            slot: (cmd.slot > 0).then_some(cmd.slot),
            qty: None,
            ..NewCommand::accepted(cmd)
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

impl Journal {
    /// Stores a command the first time its ID is seen, with its first reply (if any) in
    /// the same transaction. On a redelivery nothing is written and the stored command
    /// is returned, so the caller answers with it and never acts twice (invariant 2).
    pub fn insert_new_command(
        &mut self,
        cmd: &NewCommand,
        reply: Option<&OutboxMessage>,
    ) -> Result<Inserted, JournalError> {
        // An order starts accepted (or rejected); only a command that moves nothing (a
        // control command: no `qty`) may be done the moment it arrives.
        let done_at_once = cmd.state == ReplyState::Succeeded && cmd.qty.is_none();
        if !matches!(cmd.state, ReplyState::Accepted | ReplyState::Rejected) && !done_at_once {
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

    /// Commands among the newest `depth` whose support code ([`crate::support::code`]) is
    /// `code` (canonical form, as [`crate::support::parse`] returns it), newest first.
    /// The code is not stored: this hashes the newest `depth` command IDs, about 80 ms
    /// per 100,000 here. For technicians, not for the hot path.
    pub fn find_by_support_code(
        &self,
        code: &str,
        depth: usize,
    ) -> Result<Vec<StoredCommand>, JournalError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cmd_id FROM commands ORDER BY received_at DESC, rowid DESC LIMIT ?1",
        )?;
        let matching = stmt
            .query_map([limit(depth)], |r| r.get::<_, String>(0))?
            .filter(|id| {
                id.as_ref()
                    .map_or(true, |id| crate::support::code(id) == code)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut found = Vec::with_capacity(matching.len());
        for id in matching {
            found.extend(self.get_command(&id)?);
        }
        Ok(found)
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
}
