//! What goes into the engine ([`Event`]) and what comes out ([`Action`]).

use cabinet_board::Outcome;

use crate::journal::{NewCommand, SlotInventory, StoredCommand};
use crate::protocol::{Command, Evidence, Rejection, Reply, ReplyState};
use crate::reason::Reason;
use crate::screen::Snapshot;

use super::Job;

/// An input to the engine.
// Events are built and consumed one at a time, never stored in bulk: size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    /// Start-up: what the journal holds from the previous run.
    Recover {
        /// Commands left in `dispensing`: the motor may have moved.
        dispensing: Vec<StoredCommand>,
        /// Commands left in `accepted`: the motor never moved.
        accepted: Vec<StoredCommand>,
        /// What the board says now (door states etc.), as evidence.
        board_status: Option<String>,
        /// Clock.
        now_ms: u64,
    },
    /// A message arrived on the cmd topic and was verified.
    Command {
        /// The verifier's verdict.
        verdict: Result<Command, Rejection>,
        /// What the journal holds for the command id, if the signature verified and the
        /// id was seen before.
        existing: Option<StoredCommand>,
        /// Clock.
        now_ms: u64,
    },
    /// The board finished the current job.
    BoardDone {
        /// Which command.
        cmd_id: String,
        /// What the board reported.
        outcome: Outcome,
        /// Clock.
        now_ms: u64,
    },
    /// The broker link went up or down.
    Link {
        /// Up?
        up: bool,
        /// Clock.
        now_ms: u64,
    },
    /// The board became reachable or unreachable.
    Board {
        /// Up?
        up: bool,
        /// Clock.
        now_ms: u64,
    },
    /// In a cabinet of several boards: the slots whose board does not answer now (the
    /// others still sell). Empty when every board answers.
    SlotsUnreachable {
        /// The slots, any order.
        slots: Vec<u16>,
        /// Clock.
        now_ms: u64,
    },
    /// The screen showed a new QR nonce.
    SessionIssued {
        /// The nonce.
        nonce: String,
        /// Clock.
        now_ms: u64,
    },
    /// A technician changed a slot (restock, enable/disable, cleared or caused a jam):
    /// the journal's row, now the engine's too.
    SlotUpdated {
        /// The slot as the journal holds it now.
        slot: SlotInventory,
        /// Clock.
        now_ms: u64,
    },
    /// A technician's slot test finished: the engine books its stock changes as it does
    /// a customer's dispense (an item that left the slot is gone from the stock, a jam
    /// takes the slot out of service) and returns them as [`Action::Inventory`].
    SlotTested {
        /// Which slot.
        slot: u16,
        /// What the board reported.
        outcome: Outcome,
        /// Clock.
        now_ms: u64,
    },
    /// Whether the journal can be trusted: at start it was found missing, empty, corrupt
    /// or replaced (`trusted: false`, crate::witness), or someone confirmed a fresh start
    /// (`true`). Untrusted, every new command is refused `journal_unverified`.
    JournalTrust {
        /// Trusted?
        trusted: bool,
        /// When a fresh start was confirmed (unix s), if this journal began that way:
        /// tokens issued before it (within the clock skew) may have been served by the
        /// lost journal, so they are refused `journal_unverified` too.
        fresh_start_at: Option<i64>,
        /// Clock.
        now_ms: u64,
    },
    /// The journal's file system went below `journal.min_free_mb` free (`low: true`) or
    /// back above it with margin (the runner samples it, with hysteresis, and sends only
    /// changes). While low, new commands are refused `disk_low`; accepted ones still run.
    Disk {
        /// Below the threshold?
        low: bool,
        /// Clock.
        now_ms: u64,
    },
    /// A technician entered or left maintenance.
    Maintenance {
        /// On?
        on: bool,
        /// Clock.
        now_ms: u64,
    },
    /// The app is stopping: the dispense in progress may finish, nothing new starts.
    /// Commands still waiting stay `accepted` in the journal; the next start fails them
    /// `interrupted` (nothing moved).
    Stop {
        /// Clock.
        now_ms: u64,
    },
    /// Time passes (screens time out, sessions expire, out-of-service grace runs out).
    Tick {
        /// Clock.
        now_ms: u64,
    },
}

/// Stock bookkeeping the runner applies to the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryChange {
    /// A confirmed drop: one item fewer.
    Decrement(u16),
    /// A door a customer opened: it held one item and is empty now.
    Emptied(u16),
    /// A door opened for a rented item to be put back: it holds one item now.
    Loaded(u16),
    /// Take the slot out of service until a technician clears it: after a jam, a motor
    /// that did not stop, or a dispense whose outcome is unknown.
    Jammed(u16),
    /// The operator put a slot in or out of service (`slot_enable`, `slot_disable`).
    Enabled {
        /// The slot.
        slot: u16,
        /// In service.
        enabled: bool,
    },
    /// The operator set a slot's count after a restock (`slot_set_count`).
    Count {
        /// The slot.
        slot: u16,
        /// Its new count.
        count: u32,
    },
}

/// Something the runner must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Journal a new command (accepted, or rejected with trusted ids) and its first reply,
    /// in one transaction.
    Insert {
        /// The journal row.
        cmd: NewCommand,
        /// The reply to enqueue with it.
        reply: Reply,
    },
    /// Journal a state change and its reply, in one transaction.
    Transition {
        /// Which command.
        cmd_id: String,
        /// New state.
        to: ReplyState,
        /// Why.
        reason: Option<Reason>,
        /// What was seen.
        evidence: Evidence,
        /// The reply to enqueue with it.
        reply: Reply,
    },
    /// Journal a command that could not be trusted (no reply row; see `reply`).
    RecordRejection {
        /// Why.
        reason: Reason,
        /// For the log.
        detail: String,
        /// A reply with empty ids: tells the backend "something unusable arrived" without
        /// letting a forger put words in the mouth of a real command id.
        reply: Reply,
    },
    /// Send the PUBACK for the message being handled (it is journaled now).
    Ack,
    /// A duplicate: enqueue the stored reply again (never a second dispense).
    Resend {
        /// The command.
        cmd_id: String,
        /// Its last reply, as stored.
        reply_json: String,
    },
    /// Publish whatever the outbox holds.
    Publish,
    /// Tell the board to dispense. The runner answers with [`Event::BoardDone`].
    Dispense(Job),
    /// Update stock.
    Inventory(InventoryChange),
    /// Record an action in the audit trail (and send it with the next telemetry), as a
    /// technician's action is.
    Audit {
        /// Who: `backend:<kid>` for a control command.
        actor: String,
        /// What, in the technician's words (`enable_slot`, `disable_slot`, `restock`).
        action: String,
        /// The detail, in the technician's forms (`slot 3: 2 -> 10`).
        detail: String,
    },
    /// Send a telemetry message now.
    Telemetry,
    /// The screen changed.
    Screen(Snapshot),
}
