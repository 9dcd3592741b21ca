//! The dispense engine: a state machine with no I/O inside (`step(event) -> actions`).
//!
//! One task (the kiosk runner, `kiosk/`) feeds it events — a command verified by
//! `protocol::verify_command` together with what the journal already knows about that
//! command id, a board outcome, link/board health, a clock tick — and performs the actions
//! it returns, **in order**. The order is the design (docs/ARCHITECTURE.md, "The command path"):
//!
//! ```text
//! verify → target → expiry → dedupe → slot/stock/board/session
//!   → Insert(accepted + reply)  [journal, fsync]   → Ack (MQTT PUBACK)   → Publish
//!   → Transition(dispensing + reply) [journal, fsync]   → Publish   → Dispense (motor)
//!   → BoardDone → Transition(outcome + reply) [journal]   → Publish   → Screen
//! ```
//!
//! Because the journal write that says "dispensing" comes before the motor command, a crash
//! anywhere leaves a record that makes the next start-up report `outcome_unknown` instead
//! of running the motor again (invariant 2), and because every state change carries its
//! reply in the same transaction, exactly one terminal reply is owed and kept until the
//! broker acknowledges it (invariant 3).
//!
//! Time is an input (`now_ms` on every event), so tests drive the machine step by step.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cabinet_board::{Outcome, Reach};

use crate::journal::{NewCommand, SlotInventory, StoredCommand};
use crate::protocol::{
    Command, CommandKind, Evidence, PROTOCOL_VERSION, Rejection, Reply, ReplyState, TrustedIds,
};
use crate::reason::Reason;
use crate::screen::{EarlierFailure, Item, OutOfService, Screen, Snapshot};

/// Engine settings (from the config's `[commands]` and `[kiosk]`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This cabinet.
    pub machine_code: String,
    /// The name shown on the screen (`kiosk.name`).
    pub cabinet_name: String,
    /// This run of the app.
    pub boot_id: String,
    /// Commands must carry a `session` nonce this screen showed recently.
    pub require_session: bool,
    /// How long a shown nonce stays acceptable.
    pub session_lifetime_ms: u64,
    /// How long "take your item" stays on screen.
    pub take_item_ms: u64,
    /// How long the failure screen stays on screen.
    pub failed_ms: u64,
    /// How long the broker or board may be down before the screen says "out of service".
    pub out_of_service_grace_ms: u64,
    /// Allowed clock skew (`commands.clock_skew_secs`): the same staleness rule as on
    /// arrival ([`crate::protocol::is_expired`]) when a queued command's turn comes.
    pub clock_skew_secs: i64,
    /// How long after start the board's state may stay unknown (no check answered yet)
    /// before it counts as down. The runner's first check normally decides well before;
    /// this bound makes the engine hold commands for a bounded time whatever happens.
    pub board_start_wait_ms: u64,
    /// Where each slot is and what it is (from the slot map). A slot missing here is a
    /// spiral on the cabinet's one board.
    pub sites: BTreeMap<u16, SlotSite>,
    /// The version of the operator's configuration in force (0: the site file's), and
    /// what the screens say about the cabinet under it: the snapshot carries both, so a
    /// screen knows when to read the cabinet's words again.
    pub config_version: u64,
    /// The screens' words for the cabinet (support contact, scan apps, QR link).
    pub info: std::sync::Arc<crate::screen::CabinetInfo>,
}

/// Where a slot is and what kind of slot it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotSite {
    /// The board that drives it, on cabinets with several (`[[boards]]`): replies,
    /// journal rows and logs name it.
    pub board: Option<String>,
    /// Its channel or motor on that board.
    pub channel: Option<u16>,
    /// A lock-board door rather than a spiral: it holds one item, an opened door is an
    /// empty door, and a technician's test opening leaves its stock alone.
    pub door: bool,
}

/// A command waiting for (or at) the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// `jti`.
    pub cmd_id: String,
    /// Correlation id for logs and the support code.
    pub log_id: String,
    /// The backend's order.
    pub order_id: String,
    /// Slot to dispense from (or, for a return, the door to open).
    pub slot: u16,
    /// `exp`, unix seconds: re-checked when the job's turn comes.
    pub expires_at: i64,
    /// A sale, or a rented item put back into an empty door.
    pub kind: CommandKind,
}

impl Job {
    /// (`cmd_id`, `order_id`, `log_id`): what every reply about this job carries.
    fn ids(&self) -> (&str, &str, &str) {
        (&self.cmd_id, &self.order_id, &self.log_id)
    }
}

/// The engine's state.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    queue: VecDeque<Job>,
    active: Option<(Job, u64)>,
    inventory: BTreeMap<u16, SlotInventory>,
    link_up: bool,
    link_down_since: u64,
    board_up: bool,
    /// Whether any board check has answered yet (or the start wait ran out). Until then
    /// the board is *unknown*, not down: a restart must not refuse the commands a broker
    /// queued for it just because they arrive before the first POLL.
    board_known: bool,
    board_down_since: u64,
    /// Slots whose board does not answer while others do ([`Event::SlotsUnreachable`]):
    /// refused `board_unreachable` and shown unavailable; the cabinet sells the rest.
    unreachable: BTreeSet<u16>,
    /// When this engine started: the start wait counts from here.
    started_ms: u64,
    /// The app is stopping ([`Event::Stop`]): no new dispense starts.
    stopping: bool,
    ever_connected: bool,
    maintenance_since: Option<u64>,
    /// Since when the journal's disk is low ([`Event::Disk`]).
    disk_low_since: Option<u64>,
    /// Since when the journal is untrusted ([`Event::JournalTrust`]).
    journal_unverified_since: Option<u64>,
    /// Tokens issued up to this (unix s, skew included) predate a confirmed fresh start.
    issued_before_journal: Option<i64>,
    sessions: VecDeque<(String, u64)>,
    /// A transient customer screen (take item / failed) and when it ends.
    transient: Option<Screen>,
    /// The latest failure while it would still be on screen: an order that takes the
    /// screen over carries its support code along (the customer may still be reading it).
    earlier_failure: Option<EarlierFailure>,
    seq: u64,
    last_screen: Option<Snapshot>,
    version: u64,
}

impl Engine {
    /// A fresh engine. `inventory` is the journal's slot table.
    pub fn new(cfg: EngineConfig, inventory: Vec<SlotInventory>, now_ms: u64) -> Engine {
        Engine {
            cfg,
            queue: VecDeque::new(),
            active: None,
            inventory: inventory.into_iter().map(|s| (s.slot, s)).collect(),
            link_up: false,
            link_down_since: now_ms,
            board_up: false,
            board_known: false,
            board_down_since: now_ms,
            unreachable: BTreeSet::new(),
            started_ms: now_ms,
            stopping: false,
            ever_connected: false,
            maintenance_since: None,
            disk_low_since: None,
            journal_unverified_since: None,
            issued_before_journal: None,
            sessions: VecDeque::new(),
            transient: None,
            earlier_failure: None,
            seq: 0,
            last_screen: None,
            version: 0,
        }
    }

    /// The command at the board, if any.
    pub fn active(&self) -> Option<&Job> {
        self.active.as_ref().map(|(j, _)| j)
    }

    /// The slots whose board does not answer while others do, ascending.
    pub fn unreachable_slots(&self) -> impl Iterator<Item = u16> + '_ {
        self.unreachable.iter().copied()
    }

    /// Whether the engine considers the board usable (what dispense decisions use).
    pub fn board_up(&self) -> bool {
        self.board_up
    }

    /// Whether the journal is trusted ([`Event::JournalTrust`]).
    pub fn journal_trusted(&self) -> bool {
        self.journal_unverified_since.is_none()
    }

    /// Whether the board's state is known: a check has answered, or the start wait
    /// ([`EngineConfig::board_start_wait_ms`]) ran out.
    pub fn board_known(&self) -> bool {
        self.board_known
    }

    /// Commands waiting behind the active one.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The slot table as the engine sees it.
    pub fn inventory(&self) -> impl Iterator<Item = &SlotInventory> {
        self.inventory.values()
    }

    /// Whether no customer is being served: nothing at the board or waiting, and no
    /// technician's visit. A new configuration comes into force only then. A "take your
    /// item" or failure screen still up does not count: the next order may replace it at
    /// any moment too, and waiting for it would let a busy cabinet put a configuration off
    /// for as long as orders keep coming.
    pub fn between_customers(&self) -> bool {
        self.active.is_none() && self.queue.is_empty() && self.maintenance_since.is_none()
    }

    /// A new configuration is in force (`cfg`, with `inventory` the journal's slot table
    /// as its slot map made it). Only [`Engine::between_customers`]: the caller checks.
    /// The screen follows at once (names, slot list, timeouts).
    pub fn reconfigure(
        &mut self,
        cfg: EngineConfig,
        inventory: Vec<SlotInventory>,
        now_ms: u64,
    ) -> Vec<Action> {
        self.cfg = cfg;
        self.inventory = inventory.into_iter().map(|s| (s.slot, s)).collect();
        self.unreachable
            .retain(|slot| self.inventory.contains_key(slot));
        let mut out = Vec::new();
        self.emit_screen(now_ms, &mut out);
        out
    }

    /// Advance the machine by one event.
    pub fn step(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        let now = match event {
            Event::Recover {
                dispensing,
                accepted,
                board_status,
                now_ms,
            } => {
                self.recover(dispensing, accepted, board_status, now_ms, &mut out);
                now_ms
            }
            Event::Command {
                verdict,
                existing,
                now_ms,
            } => {
                self.command(verdict, existing, now_ms, &mut out);
                now_ms
            }
            Event::BoardDone {
                cmd_id,
                outcome,
                now_ms,
            } => {
                self.board_done(&cmd_id, outcome, now_ms, &mut out);
                now_ms
            }
            Event::Link { up, now_ms } => {
                if up != self.link_up {
                    self.link_up = up;
                    if up {
                        self.ever_connected = true;
                    } else {
                        self.link_down_since = now_ms;
                    }
                }
                now_ms
            }
            Event::Board { up, now_ms } => {
                if up != self.board_up {
                    self.board_up = up;
                    if !up {
                        self.board_down_since = now_ms;
                    }
                }
                // The first answer ends the hold: commands held since start run now, or
                // fail `board_unreachable` if the board was checked and found down.
                let first = !self.board_known;
                self.board_known = true;
                if up || first {
                    self.start_next(now_ms, &mut out);
                }
                now_ms
            }
            Event::SlotsUnreachable { slots, now_ms } => {
                let slots: BTreeSet<u16> = slots.into_iter().collect();
                if slots != self.unreachable {
                    let back = self.unreachable.difference(&slots).count() > 0;
                    self.unreachable = slots;
                    if back {
                        self.start_next(now_ms, &mut out);
                    }
                }
                now_ms
            }
            Event::SessionIssued { nonce, now_ms } => {
                self.sessions
                    .push_back((nonce, now_ms + self.cfg.session_lifetime_ms));
                now_ms
            }
            Event::Maintenance { on, now_ms } => {
                self.maintenance_since = on.then_some(now_ms);
                now_ms
            }
            Event::Disk { low, now_ms } => {
                if low != self.disk_low_since.is_some() {
                    self.disk_low_since = low.then_some(now_ms);
                }
                now_ms
            }
            Event::JournalTrust {
                trusted,
                fresh_start_at,
                now_ms,
            } => {
                self.journal_unverified_since = (!trusted).then_some(now_ms);
                self.issued_before_journal =
                    fresh_start_at.map(|t| t.saturating_add(self.cfg.clock_skew_secs));
                now_ms
            }
            Event::SlotUpdated { slot, now_ms } => {
                self.inventory.insert(slot.slot, slot);
                now_ms
            }
            Event::SlotTested {
                slot,
                outcome,
                now_ms,
            } => {
                let (_, _, _, mut changes) = judge(&outcome, slot);
                if self.site(slot).door {
                    // The technician opened the door and stands at it: the item is still
                    // inside unless they take it (and then they say so with a restock).
                    changes.retain(|c| !matches!(c, InventoryChange::Decrement(_)));
                }
                self.book(changes, &mut out);
                now_ms
            }
            Event::Stop { now_ms } => {
                self.stopping = true;
                now_ms
            }
            Event::Tick { now_ms } => {
                if !self.board_known
                    && now_ms.saturating_sub(self.started_ms) >= self.cfg.board_start_wait_ms
                {
                    tracing::warn!(
                        wait_ms = self.cfg.board_start_wait_ms,
                        held = self.queue.len(),
                        "the board did not answer in its start wait: it counts as down"
                    );
                    self.board_known = true;
                    self.start_next(now_ms, &mut out);
                }
                now_ms
            }
        };
        self.sessions.retain(|(_, until)| *until > now);
        self.emit_screen(now, &mut out);
        out
    }

    fn reply(
        &mut self,
        ids: (&str, &str, &str),
        state: ReplyState,
        reason: Option<Reason>,
        evidence: Evidence,
        now: u64,
    ) -> Reply {
        self.seq += 1;
        Reply {
            v: PROTOCOL_VERSION,
            cmd_id: ids.0.to_owned(),
            order_id: ids.1.to_owned(),
            log_id: ids.2.to_owned(),
            machine_code: self.cfg.machine_code.clone(),
            boot_id: self.cfg.boot_id.clone(),
            state,
            reason,
            evidence,
            at: now,
            seq: Some(self.seq),
        }
    }

    fn transition(
        &mut self,
        job: (&str, &str, &str),
        to: ReplyState,
        reason: Option<Reason>,
        evidence: Evidence,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let reply = self.reply(job, to, reason, evidence.clone(), now);
        out.push(Action::Transition {
            cmd_id: job.0.to_owned(),
            to,
            reason,
            evidence,
            reply,
        });
    }

    fn recover(
        &mut self,
        dispensing: Vec<StoredCommand>,
        accepted: Vec<StoredCommand>,
        board_status: Option<String>,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        for c in dispensing {
            // The motor may have moved before the crash: never run it again, say so.
            let evidence = Evidence {
                board_status: board_status.clone(),
                ..Evidence::default()
            };
            let evidence = match c.slot {
                Some(slot) => self.placed(slot, evidence),
                None => evidence,
            };
            self.transition(
                (&c.cmd_id, &c.order_id, &c.log_id),
                ReplyState::OutcomeUnknown,
                Some(Reason::Interrupted),
                evidence,
                now,
                out,
            );
        }
        for c in accepted {
            // Journaled but never sent to the board: nothing moved; the customer has long
            // gone. Fail it honestly rather than dispense to an empty room.
            self.transition(
                (&c.cmd_id, &c.order_id, &c.log_id),
                ReplyState::Failed,
                Some(Reason::Interrupted),
                Evidence::default(),
                now,
                out,
            );
        }
        if !out.is_empty() {
            out.push(Action::Publish);
        }
    }

    fn command(
        &mut self,
        verdict: Result<Command, Rejection>,
        existing: Option<StoredCommand>,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let cmd = match verdict {
            Ok(cmd) => cmd,
            Err(rej) => return self.rejected(rej, existing, now, out),
        };
        if let Some(stored) = existing {
            return self.duplicate(stored, out);
        }
        if cmd.kind.is_control() {
            return self.control(cmd, now, out);
        }
        let ids = (
            cmd.cmd_id.as_str(),
            cmd.order_id.as_str(),
            cmd.log_id.as_str(),
        );
        if let Some(reason) = self.refusal(&cmd, now) {
            self.refuse(&cmd, reason, now, out);
            if reason.is_customer_facing_failure() {
                self.show_failed(reason, false, &cmd.cmd_id, now);
            }
            return;
        }
        if self.cfg.require_session
            && let Some(s) = &cmd.session
        {
            // One scan, one dispense.
            self.sessions.retain(|(n, _)| n != s);
        }
        let reply = self.reply(ids, ReplyState::Accepted, None, Evidence::default(), now);
        out.push(Action::Insert {
            cmd: NewCommand::accepted(&cmd),
            reply,
        });
        out.push(Action::Ack);
        out.push(Action::Publish);
        self.queue.push_back(Job {
            cmd_id: cmd.cmd_id,
            log_id: cmd.log_id,
            order_id: cmd.order_id,
            slot: cmd.slot,
            expires_at: cmd.expires_at,
            kind: cmd.kind,
        });
        self.start_next(now, out);
    }

    /// Why a valid command cannot be served, checked in the order the design gives (docs/ARCHITECTURE.md, "The command path").
    fn refusal(&self, cmd: &Command, now: u64) -> Option<Reason> {
        // The journal that would remember this command cannot prove it has not served it.
        if self.journal_unverified_since.is_some()
            || self
                .issued_before_journal
                .is_some_and(|t| cmd.issued_at <= t)
        {
            return Some(Reason::JournalUnverified);
        }
        // A technician is testing slots: no customer command may move a motor meanwhile.
        if self.maintenance_since.is_some() {
            return Some(Reason::Maintenance);
        }
        // Too little disk to journal a new command to its end. Commands already accepted
        // are not re-checked (`start_next`): the threshold is the reserve for their writes.
        if self.disk_low_since.is_some() {
            return Some(Reason::DiskLow);
        }
        if self.cfg.require_session {
            let ok = cmd.session.as_ref().is_some_and(|s| {
                self.sessions
                    .iter()
                    .any(|(n, until)| n == s && *until > now)
            });
            if !ok {
                return Some(Reason::SessionMismatch);
            }
        }
        let Some(slot) = self.inventory.get(&cmd.slot) else {
            return Some(Reason::SlotUnknown);
        };
        let waiting = self
            .queue
            .iter()
            .chain(self.active.iter().map(|(j, _)| j))
            .filter(|j| j.slot == cmd.slot)
            .count();
        if let Some(r) = self.unserviceable(cmd.slot, slot, cmd.kind) {
            return Some(r);
        }
        // What is already queued for the slot takes its stock (or, for a door, its room).
        match cmd.kind {
            CommandKind::Dispense if u64::from(slot.count) <= waiting as u64 => {
                return Some(Reason::SlotEmpty);
            }
            CommandKind::Return if waiting > 0 => return Some(Reason::DoorOccupied),
            _ => {}
        }
        // Only a board that was checked and found down refuses. While its state is
        // unknown (the app just started) the command is accepted and held (`start_next`).
        if self.board_known && !self.board_up {
            return Some(Reason::BoardUnreachable);
        }
        // Its board alone is silent: nothing would be sent, nobody is charged.
        if self.unreachable.contains(&cmd.slot) {
            return Some(Reason::BoardUnreachable);
        }
        None
    }

    /// Why `slot` (number `n`) cannot serve a command of `kind` now, by its own state:
    /// disabled, jammed, empty for a sale; for a return, not a door or not empty (a
    /// spiral takes nothing back, and a door that holds an item has no room).
    fn unserviceable(&self, n: u16, slot: &SlotInventory, kind: CommandKind) -> Option<Reason> {
        match kind {
            CommandKind::Dispense => slot.unavailable_reason(),
            CommandKind::Return if !self.site(n).door => Some(Reason::NotADoor),
            CommandKind::Return => match slot.unavailable_reason() {
                Some(r @ (Reason::SlotDisabled | Reason::SlotJammed)) => Some(r),
                _ if slot.count > 0 => Some(Reason::DoorOccupied),
                _ => None,
            },
            // Control commands are checked by `control_refusal`.
            _ => None,
        }
    }

    fn rejected(
        &mut self,
        rej: Rejection,
        existing: Option<StoredCommand>,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        match rej.trusted {
            Some(ids) => {
                if let Some(stored) = existing {
                    return self.duplicate(stored, out);
                }
                let reply = self.reply(
                    (&ids.cmd_id, &ids.order_id, &ids.log_id),
                    ReplyState::Rejected,
                    Some(rej.reason),
                    Evidence::default(),
                    now,
                );
                out.push(Action::Insert {
                    cmd: NewCommand::rejected(&ids, rej.reason),
                    reply,
                });
                out.push(Action::Ack);
                out.push(Action::Publish);
            }
            None => {
                let reply = self.reply(
                    ("", "", ""),
                    ReplyState::Rejected,
                    Some(rej.reason),
                    Evidence::default(),
                    now,
                );
                out.push(Action::RecordRejection {
                    reason: rej.reason,
                    detail: rej.detail,
                    reply,
                });
                out.push(Action::Ack);
                out.push(Action::Publish);
            }
        }
    }

    fn duplicate(&mut self, stored: StoredCommand, out: &mut Vec<Action>) {
        out.push(Action::Ack);
        if let Some(reply_json) = stored.last_reply {
            out.push(Action::Resend {
                cmd_id: stored.cmd_id,
                reply_json,
            });
            out.push(Action::Publish);
        }
    }

    /// Start the next queued job if the board is free (and its state known: until the
    /// first board check answers, jobs wait).
    fn start_next(&mut self, now: u64, out: &mut Vec<Action>) {
        while self.active.is_none() && self.board_known && !self.stopping {
            let Some(job) = self.queue.pop_front() else {
                return;
            };
            // Queued commands are re-checked for expiry when their turn comes, by the
            // same rule (and skew) as on arrival.
            let now_s = i64::try_from(now / 1000).unwrap_or(i64::MAX);
            let expired =
                crate::protocol::is_expired(job.expires_at, now_s, self.cfg.clock_skew_secs);
            let fail = if expired {
                Some(Reason::Expired)
            } else if !self.board_up || self.unreachable.contains(&job.slot) {
                Some(Reason::BoardUnreachable)
            } else {
                self.inventory
                    .get(&job.slot)
                    .and_then(|slot| self.unserviceable(job.slot, slot, job.kind))
            };
            if let Some(reason) = fail {
                self.transition(
                    job.ids(),
                    ReplyState::Failed,
                    Some(reason),
                    Evidence::default(),
                    now,
                    out,
                );
                out.push(Action::Publish);
                self.show_failed(reason, false, &job.cmd_id, now);
                continue;
            }
            let evidence = self.placed(job.slot, Evidence::default());
            self.transition(job.ids(), ReplyState::Dispensing, None, evidence, now, out);
            out.push(Action::Publish);
            out.push(Action::Dispense(job.clone()));
            self.transient = None;
            self.active = Some((job, now));
        }
    }

    /// Applies stock changes to the engine's slot table and asks the runner to journal
    /// them.
    fn book(&mut self, changes: Vec<InventoryChange>, out: &mut Vec<Action>) {
        for ch in changes {
            match ch {
                InventoryChange::Decrement(s) => {
                    if let Some(slot) = self.inventory.get_mut(&s) {
                        slot.count = slot.count.saturating_sub(1);
                    }
                }
                InventoryChange::Emptied(s) => {
                    if let Some(slot) = self.inventory.get_mut(&s) {
                        slot.count = 0;
                    }
                }
                InventoryChange::Loaded(s) => {
                    if let Some(slot) = self.inventory.get_mut(&s) {
                        slot.count = 1;
                    }
                }
                InventoryChange::Jammed(s) => {
                    if let Some(slot) = self.inventory.get_mut(&s) {
                        slot.jammed = true;
                    }
                }
                InventoryChange::Enabled { slot: s, enabled } => {
                    if let Some(slot) = self.inventory.get_mut(&s) {
                        slot.enabled = enabled;
                    }
                }
                InventoryChange::Count { slot: s, count } => {
                    if let Some(slot) = self.inventory.get_mut(&s) {
                        slot.count = count;
                    }
                }
            }
            out.push(Action::Inventory(ch));
        }
    }

    /// Where `slot` is (a spiral on the one board when the slot map says nothing).
    fn site(&self, slot: u16) -> SlotSite {
        self.cfg.sites.get(&slot).cloned().unwrap_or_default()
    }

    /// `evidence` naming the board and channel of `slot`, on cabinets with several boards.
    fn placed(&self, slot: u16, mut evidence: Evidence) -> Evidence {
        if let Some(site) = self.cfg.sites.get(&slot).filter(|s| s.board.is_some()) {
            evidence.board = site.board.clone();
            evidence.channel = site.channel;
        }
        evidence
    }

    fn board_done(&mut self, cmd_id: &str, outcome: Outcome, now: u64, out: &mut Vec<Action>) {
        let Some((job, _)) = self.active.take_if(|(j, _)| j.cmd_id == cmd_id) else {
            tracing::warn!(
                cmd_id,
                "board outcome for a command that is not active; ignored"
            );
            return;
        };
        let (state, reason, evidence, mut change) = judge(&outcome, job.slot);
        let evidence = self.placed(job.slot, evidence);
        if job.kind == CommandKind::Return {
            // The door opened for the customer to put the item back: it holds one now (a
            // lock board cannot see inside; the backend settles the rental). A door that
            // did not open, or may have, changes nothing.
            change.retain(|c| !matches!(c, InventoryChange::Decrement(_)));
            if state == ReplyState::Succeeded {
                change.push(InventoryChange::Loaded(job.slot));
            }
        } else if self.site(job.slot).door {
            // A door holds one item: once a customer opened it, it is empty, whatever
            // count an older config seeded.
            for c in &mut change {
                if let InventoryChange::Decrement(s) = *c {
                    *c = InventoryChange::Emptied(s);
                }
            }
        }
        self.transition(job.ids(), state, reason, evidence, now, out);
        out.push(Action::Publish);
        self.book(change, out);
        match (state, reason) {
            (ReplyState::Succeeded, _) => {
                let product = self.product(job.slot);
                self.transient = Some(match job.kind {
                    CommandKind::Return => Screen::PutBack {
                        slot: job.slot,
                        product,
                        until_ms: now + self.cfg.take_item_ms,
                    },
                    // Only orders reach the board: a dispense.
                    _ => Screen::TakeItem {
                        slot: job.slot,
                        product,
                        until_ms: now + self.cfg.take_item_ms,
                    },
                });
            }
            (_, Some(r)) => {
                self.show_failed(r, state == ReplyState::OutcomeUnknown, &job.cmd_id, now)
            }
            _ => {}
        }
        self.start_next(now, out);
    }
}

mod control;
mod events;
mod judge;
#[cfg(test)]
mod model;
mod screen;
#[cfg(test)]
mod tests;

pub use events::{Action, Event, InventoryChange};
pub use judge::judge;
