//! The action interpreter: performs the engine's [`Action`]s, in order, against the
//! journal, the link, the board and the screen.
//!
//! The order is the engine's and it is the guarantee: a command is in the journal
//! before its PUBACK ([`Action::Ack`] comes after [`Action::Insert`]), a dispense is
//! journaled `dispensing` before the motor command, and every reply is an outbox row
//! written in the same transaction as the state it reports.

use std::collections::VecDeque;

use tracing::{info, warn};

use crate::engine::{Action, Event, InventoryChange};
use crate::hooks::CrashPoint;
use crate::journal::OutboxMessage;
use crate::mqtt::AckToken;
use crate::protocol::{self, ReplyState};
use crate::screen::Screen;

use super::link::{Link, stopped_is_not_an_error};
use super::{KioskError, Runner, new_nonce, now_ms};

impl<L: Link> Runner<L> {
    /// Performs `actions` for an event that carried no message.
    pub(super) async fn exec(
        &mut self,
        actions: Vec<Action>,
        ack: Option<AckToken>,
    ) -> Result<(), KioskError> {
        self.exec_with_payload(actions, ack, &[]).await
    }

    /// Performs `actions` for the message `payload`, whose PUBACK is `ack`.
    pub(super) async fn exec_with_payload(
        &mut self,
        actions: Vec<Action>,
        mut ack: Option<AckToken>,
        payload: &[u8],
    ) -> Result<(), KioskError> {
        let mut actions = VecDeque::from(actions);
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Insert { cmd, reply } => {
                    let msg = self.outbox_message(&reply);
                    self.journal.insert_new_command(&cmd, Some(&msg))?;
                    if cmd.state == ReplyState::Accepted {
                        self.hooks.crash(CrashPoint::Accepted);
                    }
                }
                Action::Transition {
                    cmd_id,
                    to,
                    reason,
                    evidence,
                    reply,
                } => {
                    let msg = self.outbox_message(&reply);
                    self.journal
                        .transition(&cmd_id, to, reason, &evidence, Some(&msg))?;
                    if to == ReplyState::Dispensing {
                        self.hooks.crash(CrashPoint::Dispensing);
                    } else if to.is_terminal() {
                        self.hooks.crash(CrashPoint::Outcome);
                    }
                    info!(
                        state = to.as_str(),
                        reason = reason.map(|r| r.code()),
                        "state"
                    );
                }
                Action::RecordRejection {
                    reason,
                    detail,
                    reply,
                } => {
                    let msg = self.outbox_message(&reply);
                    if self.service.disk_low {
                        self.service.unrecorded_rejection(reason, &detail);
                        // Answered once, outside the outbox: a stranger's payloads must not
                        // spend the reserve a promised dispense needs.
                        if self.conn.connected {
                            stopped_is_not_an_error(
                                self.link
                                    .publish_unjournaled_reply(&msg.topic, msg.payload)
                                    .await,
                            )?;
                        }
                    } else {
                        self.journal
                            .record_untrusted(reason, payload, &detail, &msg)?;
                    }
                }
                Action::Ack => {
                    if let Some(t) = ack.take() {
                        stopped_is_not_an_error(self.link.ack(t).await)?;
                    }
                }
                Action::Resend { cmd_id, reply_json } => {
                    let msg = OutboxMessage {
                        topic: self.topics.reply.clone(),
                        payload: reply_json,
                    };
                    self.journal.enqueue(Some(&cmd_id), &msg)?;
                }
                Action::Publish => self.flush().await?,
                Action::Dispense(job) => self.board.dispense(job),
                Action::Inventory(InventoryChange::Decrement(slot)) => {
                    let left = self.journal.decrement_on_drop(slot)?;
                    info!(slot, left, "stock");
                }
                Action::Inventory(InventoryChange::Emptied(slot)) => {
                    self.journal.set_count(slot, 0)?;
                    info!(slot, left = 0, "stock: the door was opened and is empty");
                }
                Action::Inventory(InventoryChange::Loaded(slot)) => {
                    self.journal.set_count(slot, 1)?;
                    info!(slot, left = 1, "stock: an item was put back in the door");
                }
                Action::Inventory(InventoryChange::Jammed(slot)) => {
                    self.journal.set_jammed(slot, true)?;
                    warn!(
                        slot,
                        "slot taken out of service until a technician clears it"
                    );
                }
                Action::Inventory(InventoryChange::Enabled { slot, enabled }) => {
                    self.journal.set_enabled(slot, enabled)?;
                    info!(
                        slot,
                        enabled, "slot put in or out of service by the operator"
                    );
                }
                Action::Inventory(InventoryChange::Count { slot, count }) => {
                    self.journal.set_count(slot, count)?;
                    info!(slot, left = count, "stock set by the operator");
                }
                Action::Audit {
                    actor,
                    action,
                    detail,
                } => {
                    self.journal.audit(&actor, &action, &detail)?;
                    self.queue_audit(&actor, &action, detail);
                }
                Action::Telemetry => self.heartbeat().await?,
                Action::Screen(snap) => {
                    info!(screen = ?snap.screen, link_up = snap.link_up, board_up = snap.board_up, "screen");
                    // An idle screen always shows a QR code: when the last nonce was
                    // used by a scan (one scan, one dispense) or expired, issue the next
                    // one now instead of at the next rotation.
                    let needs_nonce = snap.screen == Screen::Idle && snap.qr_nonce.is_none();
                    self.screen.send_replace(Some(snap));
                    if needs_nonce {
                        actions.extend(self.engine.step(Event::SessionIssued {
                            nonce: new_nonce()?,
                            now_ms: now_ms(),
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    fn outbox_message(&self, reply: &protocol::Reply) -> OutboxMessage {
        // Serializing our own struct cannot fail; an empty payload would still be visible.
        let payload = reply.to_json().unwrap_or_default();
        OutboxMessage {
            topic: self.topics.reply.clone(),
            payload,
        }
    }

    /// Hands pending outbox replies to the link, oldest first (while connected).
    pub(super) async fn flush(&mut self) -> Result<(), KioskError> {
        if !self.conn.connected {
            return Ok(());
        }
        let due = self.outbox.due(&self.journal)?;
        self.outbox.hand(due, &self.link).await
    }
}
