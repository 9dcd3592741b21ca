//! The engine's invariants as properties of whole runs: random sequences of commands
//! (with ids reused, so duplicates and redeliveries happen), board outcomes, clock steps,
//! and the broker and board going down and up, fed to the engine the way the runner does,
//! with this test playing the journal. Whatever the sequence:
//!
//! - at most one dispense is in flight, and a command id moves a motor at most once;
//! - the `dispensing` state is journaled before its motor command;
//! - a message is in the journal (inserted or recorded, or its id there already) before
//!   its PUBACK;
//! - a terminal state is never left, and once the board is back and the clock has moved
//!   on, every accepted command has exactly one terminal state.

use std::collections::{HashMap, HashSet};

use cabinet_board::{Outcome, Reach};
use proptest::prelude::*;

use super::tests::{T0, cfg, engine_with, slot};
use super::{Action, Engine, Event};
use crate::journal::{SlotInventory, StoredCommand};
use crate::protocol::{Command, CommandKind, Evidence, ReplyState};

#[derive(Debug, Clone)]
enum Op {
    /// A signed command for slot `slot` with id `c{id}`, valid for a minute from now.
    Send { id: u8, slot: u16 },
    /// The board finishes the job in flight (if any) with outcome number `outcome`.
    Finish { outcome: u8 },
    /// The clock moves on.
    Tick { ms: u32 },
    /// The broker link goes up or down.
    Link(bool),
    /// The board goes up or down.
    Board(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8, 1u16..5).prop_map(|(id, slot)| Op::Send { id, slot }),
        3 => (0u8..6).prop_map(|outcome| Op::Finish { outcome }),
        2 => (0u32..90_000).prop_map(|ms| Op::Tick { ms }),
        1 => any::<bool>().prop_map(Op::Link),
        1 => any::<bool>().prop_map(Op::Board),
    ]
}

fn outcome(n: u8) -> Outcome {
    match n {
        0 => Outcome::Dispensed {
            drop_detected: Some(true),
        },
        1 => Outcome::Dispensed {
            drop_detected: None,
        },
        2 => Outcome::Jammed,
        3 => Outcome::NoReply {
            reach: Reach::NotSent,
        },
        4 => Outcome::NoReply {
            reach: Reach::Unconfirmed,
        },
        _ => Outcome::PortGone {
            reach: Reach::Acknowledged,
        },
    }
}

fn slots() -> Vec<SlotInventory> {
    (1..=3).map(|n| slot(n, 3)).collect()
}

/// The runner and the journal, as far as the invariants need them.
struct Harness {
    engine: Engine,
    now: u64,
    /// The journal's commands.
    stored: HashMap<String, StoredCommand>,
    /// The command whose motor is running.
    in_flight: Option<String>,
    motor_runs: HashMap<String, u32>,
    terminal: HashMap<String, u32>,
    accepted: HashSet<String>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            // Broker and board up, as the step-by-step tests start (only screens come of it).
            engine: engine_with(cfg(), slots()),
            now: T0,
            stored: HashMap::new(),
            in_flight: None,
            motor_runs: HashMap::new(),
            terminal: HashMap::new(),
            accepted: HashSet::new(),
        }
    }

    fn step(&mut self, ev: Event) {
        let is_message = matches!(ev, Event::Command { .. });
        // A redelivered id is in the journal already: its PUBACK may go at once.
        let known = matches!(
            ev,
            Event::Command {
                existing: Some(_),
                ..
            }
        );
        let actions = self.engine.step(ev);
        self.perform(actions, is_message, known);
    }

    /// Checks and performs the actions, in order, as the runner does.
    fn perform(&mut self, actions: Vec<Action>, is_message: bool, known: bool) {
        let mut journaled = known;
        for a in actions {
            match a {
                Action::Insert { cmd, reply } => {
                    assert!(
                        !self.stored.contains_key(&cmd.cmd_id),
                        "{} inserted twice",
                        cmd.cmd_id
                    );
                    let state = reply.state;
                    if state == ReplyState::Accepted {
                        self.accepted.insert(cmd.cmd_id.clone());
                    }
                    if state.is_terminal() {
                        *self.terminal.entry(cmd.cmd_id.clone()).or_default() += 1;
                    }
                    let now = i64::try_from(self.now).unwrap();
                    self.stored.insert(
                        cmd.cmd_id.clone(),
                        StoredCommand {
                            cmd_id: cmd.cmd_id,
                            log_id: cmd.log_id,
                            order_id: cmd.order_id,
                            slot: cmd.slot,
                            qty: cmd.qty,
                            session: cmd.session,
                            state,
                            reason: reply.reason,
                            evidence: Evidence::default(),
                            last_reply: reply.to_json().ok(),
                            received_at: now,
                            updated_at: now,
                        },
                    );
                    journaled = true;
                }
                Action::Transition {
                    cmd_id, to, reply, ..
                } => {
                    let row = self
                        .stored
                        .get_mut(&cmd_id)
                        .unwrap_or_else(|| panic!("{cmd_id} changed state before it was inserted"));
                    assert!(
                        !row.state.is_terminal(),
                        "{cmd_id} left its terminal state {:?} for {to:?}",
                        row.state
                    );
                    row.state = to;
                    row.last_reply = reply.to_json().ok();
                    if to.is_terminal() {
                        *self.terminal.entry(cmd_id).or_default() += 1;
                    }
                }
                Action::RecordRejection { .. } | Action::Resend { .. } => journaled = true,
                // The model sends dispenses only; control commands have their own tests.
                Action::Audit { .. } | Action::Telemetry => {}
                Action::Ack => {
                    assert!(is_message, "an ack outside a message's handling");
                    assert!(journaled, "a PUBACK before the message was journaled");
                }
                Action::Dispense(job) => {
                    assert_eq!(
                        self.in_flight, None,
                        "a second dispense ({}) while one runs",
                        job.cmd_id
                    );
                    assert_eq!(
                        self.stored.get(&job.cmd_id).map(|r| r.state),
                        Some(ReplyState::Dispensing),
                        "{}: motor before `dispensing` was journaled",
                        job.cmd_id
                    );
                    let runs = self.motor_runs.entry(job.cmd_id.clone()).or_default();
                    *runs += 1;
                    assert_eq!(*runs, 1, "{} moved a motor twice", job.cmd_id);
                    self.in_flight = Some(job.cmd_id);
                }
                Action::Publish | Action::Inventory(_) | Action::Screen(_) => {}
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Send { id, slot } => {
                let cmd_id = format!("c{id}");
                let secs = i64::try_from(self.now / 1000).unwrap();
                let command = Command {
                    cmd_id: cmd_id.clone(),
                    log_id: format!("log-{cmd_id}"),
                    order_id: format!("order-{cmd_id}"),
                    kind: CommandKind::Dispense,
                    slot,
                    qty: 1,
                    count: None,
                    session: None,
                    issued_at: secs,
                    expires_at: secs + 60,
                    kid: "k1".into(),
                };
                // What the runner looks up before handing a verified command over.
                let existing = self.stored.get(&cmd_id).cloned();
                self.step(Event::Command {
                    verdict: Ok(command),
                    existing,
                    now_ms: self.now,
                });
            }
            Op::Finish { outcome: n } => {
                if let Some(cmd_id) = self.in_flight.take() {
                    self.step(Event::BoardDone {
                        cmd_id,
                        outcome: outcome(n),
                        now_ms: self.now,
                    });
                }
            }
            Op::Tick { ms } => {
                self.now += u64::from(ms);
                self.step(Event::Tick { now_ms: self.now });
            }
            Op::Link(up) => self.step(Event::Link {
                up,
                now_ms: self.now,
            }),
            Op::Board(up) => self.step(Event::Board {
                up,
                now_ms: self.now,
            }),
        }
    }

    /// Board and broker back, every running job finished, the clock past every token.
    fn settle(&mut self) {
        self.apply(&Op::Link(true));
        self.apply(&Op::Board(true));
        for _ in 0..50 {
            self.apply(&Op::Finish { outcome: 0 });
            self.apply(&Op::Tick { ms: 30_000 });
        }
        assert_eq!(self.in_flight, None, "a job still running after settling");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn whatever_happens_one_motor_run_per_id_and_one_outcome_per_accepted_command(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
        }
        h.settle();
        for id in &h.accepted {
            prop_assert_eq!(
                h.terminal.get(id).copied().unwrap_or(0),
                1,
                "{} accepted, ended {} times (state {:?})",
                id,
                h.terminal.get(id).copied().unwrap_or(0),
                h.stored.get(id).map(|r| r.state)
            );
        }
        for (id, n) in &h.terminal {
            prop_assert_eq!(*n, 1, "{} has {} terminal states", id, n);
        }
    }
}
