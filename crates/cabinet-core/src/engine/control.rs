//! The operator's control commands (`slot_enable`, `slot_disable`, `slot_set_count`,
//! `telemetry`): answered at once, nothing queued or sent to a board; and the one way a
//! verified command is refused, which orders share.

use super::*;

impl Engine {
    /// A verified command refused for `reason`: journaled with its reply (a redelivery
    /// gets the same answer), acknowledged, published.
    pub(super) fn refuse(
        &mut self,
        cmd: &Command,
        reason: Reason,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let ids = (
            cmd.cmd_id.as_str(),
            cmd.order_id.as_str(),
            cmd.log_id.as_str(),
        );
        let reply = self.reply(
            ids,
            ReplyState::Rejected,
            Some(reason),
            Evidence::default(),
            now,
        );
        let trusted = TrustedIds {
            cmd_id: cmd.cmd_id.clone(),
            aud: self.cfg.machine_code.clone(),
            order_id: cmd.order_id.clone(),
            log_id: cmd.log_id.clone(),
            exp: Some(cmd.expires_at),
        };
        out.push(Action::Insert {
            cmd: NewCommand::rejected(&trusted, reason),
            reply,
        });
        out.push(Action::Ack);
        out.push(Action::Publish);
    }

    /// The operator's control of a slot (or a telemetry request): no motor, answered at
    /// once with one terminal reply. Each is an absolute setting (enabled, disabled, a
    /// count), applied before it is journaled: a crash in between leaves the command
    /// unacknowledged, the broker delivers it again, and applying it again changes
    /// nothing more. Audited as a technician's action is, by `backend:<kid>`.
    pub(super) fn control(&mut self, cmd: Command, now: u64, out: &mut Vec<Action>) {
        let ids = (
            cmd.cmd_id.as_str(),
            cmd.order_id.as_str(),
            cmd.log_id.as_str(),
        );
        if let Some(reason) = self.control_refusal(&cmd) {
            self.refuse(&cmd, reason, now, out);
            return;
        }
        let slot = cmd.slot;
        let before = self.inventory.get(&slot).map(|s| s.count).unwrap_or(0);
        let (change, audit) = match cmd.kind {
            CommandKind::SlotEnable => (
                Some(InventoryChange::Enabled {
                    slot,
                    enabled: true,
                }),
                Some(("enable_slot", format!("slot {slot}"))),
            ),
            CommandKind::SlotDisable => (
                Some(InventoryChange::Enabled {
                    slot,
                    enabled: false,
                }),
                Some(("disable_slot", format!("slot {slot}"))),
            ),
            CommandKind::SlotSetCount => {
                let count = cmd.count.unwrap_or(before);
                (
                    Some(InventoryChange::Count { slot, count }),
                    Some(("restock", format!("slot {slot}: {before} -> {count}"))),
                )
            }
            CommandKind::Telemetry | CommandKind::Dispense | CommandKind::Return => (None, None),
        };
        if let Some(change) = change {
            self.book(vec![change], out);
        }
        let reply = self.reply(ids, ReplyState::Succeeded, None, Evidence::default(), now);
        out.push(Action::Insert {
            cmd: NewCommand::done(&cmd),
            reply,
        });
        out.push(Action::Ack);
        if let Some((action, detail)) = audit {
            out.push(Action::Audit {
                actor: format!("backend:{}", cmd.kid),
                action: action.to_owned(),
                detail,
            });
        }
        out.push(Action::Publish);
        if cmd.kind == CommandKind::Telemetry {
            out.push(Action::Telemetry);
        }
        self.emit_screen(now, out);
    }

    /// Why a control command cannot be carried out: the journal that must remember it
    /// is not trusted or has no room; a technician's visit owns the slots meanwhile; the
    /// slot is not in the map; a count above the slot's capacity.
    fn control_refusal(&self, cmd: &Command) -> Option<Reason> {
        if self.journal_unverified_since.is_some()
            || self
                .issued_before_journal
                .is_some_and(|t| cmd.issued_at <= t)
        {
            return Some(Reason::JournalUnverified);
        }
        if self.disk_low_since.is_some() {
            return Some(Reason::DiskLow);
        }
        if cmd.kind == CommandKind::Telemetry {
            return None;
        }
        if self.maintenance_since.is_some() {
            return Some(Reason::Maintenance);
        }
        let Some(slot) = self.inventory.get(&cmd.slot) else {
            return Some(Reason::SlotUnknown);
        };
        if cmd.count.is_some_and(|c| c > slot.capacity) {
            return Some(Reason::UnsupportedQuantity);
        }
        None
    }
}
