//! The reconciliation graded by hand-made runs: what the backend sent, what it received
//! and what the boards counted, with one fault at a time. A fleet run that grades itself
//! is only as good as `reconcile`; these say it catches each way the books can fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cabinet_board::Board;
use cabinet_board::memory::MemoryBoard;
use cabinet_core::mqtt::BackendMessage;

use super::backend::{Inbox, Kind, Sent};
use super::cabinets::code;
use super::options::FleetOptions;
use super::reconcile::{Figures, reconcile};
use super::report::Report;
use crate::node_kills::NodeKills;
use crate::rabbitmq::SessionQueues;

fn options(cabinets: u32) -> FleetOptions {
    FleetOptions {
        cabinets,
        commands: 0,
        rate: 0.0,
        hostile: 0.0,
        motor: Duration::ZERO,
        dir: None,
        broker_restarts: 0,
        broker_persistence: false,
        cluster: None,
        kill_node: false,
        rolling_restart: false,
        session_queues: SessionQueues::Quorum,
        rollout: false,
    }
}

fn figures(restarts: u32) -> Figures {
    let now = Instant::now();
    Figures {
        t0: now,
        last_send: now,
        run_s: 1.0,
        all_online: Duration::ZERO,
        rss: [0; 3],
        cpu: [0.0; 2],
        resent: 0,
        restarts,
        reconnects: 0,
        kills: NodeKills::none(),
        broker_rss: 0,
        hijack: None,
        rollout: None,
    }
}

/// A run: two cabinets with three slots each, the commands sent, the replies received.
struct Run {
    sent: Vec<Sent>,
    inbox: Inbox,
    boards: Vec<Arc<MemoryBoard>>,
    seq: u64,
    restarts: u32,
}

impl Run {
    fn new() -> Run {
        Run {
            sent: Vec::new(),
            inbox: Inbox::default(),
            boards: (0..2)
                .map(|_| Arc::new(MemoryBoard::new(3, Duration::ZERO)))
                .collect(),
            seq: 0,
            restarts: 0,
        }
    }

    fn send(&mut self, cmd_id: &str, to: usize, kind: Kind, slot: u16) {
        self.sent.push(Sent {
            cmd_id: cmd_id.into(),
            to,
            kind,
            slot,
            at: Instant::now(),
        });
    }

    /// Cabinet `cab` replies `state` (with `reason`) about `cmd_id` ("" for a token it
    /// could not trust).
    fn reply(&mut self, cab: usize, cmd_id: &str, state: &str, reason: Option<&str>) {
        self.seq += 1;
        self.reply_seq(cab, cmd_id, state, reason, self.seq);
    }

    fn reply_seq(&mut self, cab: usize, cmd_id: &str, state: &str, reason: Option<&str>, seq: u64) {
        let mut v = serde_json::json!({
            "v": 1, "cmd_id": cmd_id, "order_id": "", "log_id": "",
            "machine_code": code(cab), "boot_id": format!("boot-{cab}"),
            "state": state, "at": 1_750_000_000_000u64, "seq": seq,
        });
        if let Some(r) = reason {
            v["reason"] = r.into();
        }
        self.inbox.record(&BackendMessage {
            topic: format!("cabinet/v1/{}/reply", code(cab)),
            payload: serde_json::to_vec(&v).unwrap(),
            retain: false,
            at: Instant::now(),
        });
    }

    /// The board of cabinet `cab` turns the motor of `slot`.
    fn motor(&self, cab: usize, slot: u16) {
        self.boards[cab].dispense(slot);
    }

    /// A served order, as a healthy cabinet does it.
    fn served(&mut self, cmd_id: &str, cab: usize, slot: u16) {
        self.send(cmd_id, cab, Kind::Valid, slot);
        self.reply(cab, cmd_id, "accepted", None);
        self.reply(cab, cmd_id, "dispensing", None);
        self.motor(cab, slot);
        self.reply(cab, cmd_id, "succeeded", None);
    }

    fn report(&self) -> Report {
        reconcile(
            &options(2),
            &self.sent,
            &self.inbox,
            &self.boards,
            figures(self.restarts),
        )
    }
}

/// Every kind of command, each answered as it should be.
fn balanced() -> Run {
    let mut r = Run::new();
    r.served("a", 0, 1);
    r.served("b", 1, 2);
    // The same id again: answered with the stored reply, no motor.
    r.send("a", 0, Kind::Duplicate, 3);
    r.reply(0, "a", "succeeded", None);
    r.send("w", 1, Kind::WrongTopic, 1);
    r.reply(1, "w", "rejected", Some("wrong_target"));
    r.send("e", 0, Kind::Expired, 1);
    r.reply(0, "e", "rejected", Some("expired"));
    r.send("f", 1, Kind::Forged, 1);
    r.reply(1, "", "rejected", Some("bad_signature"));
    r
}

#[test]
fn books_that_balance_are_reconciled() {
    let rep = balanced().report();
    assert!(rep.reconciled, "{rep:?}");
    assert_eq!((rep.succeeded, rep.motor_actions), (2, 2));
    assert_eq!(rep.outcomes.get("succeeded"), Some(&2));
    assert_eq!(rep.outcomes.get("rejected/wrong_target"), Some(&1));
    assert_eq!(
        rep.anonymous_rejections.get("rejected/bad_signature"),
        Some(&1)
    );
    assert_eq!(
        (
            rep.missing,
            rep.conflicting,
            rep.unexpected,
            rep.forged_unanswered
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn a_second_motor_run_for_one_order_is_a_double_dispense() {
    let r = balanced();
    r.motor(0, 1);
    let rep = r.report();
    assert!(!rep.reconciled);
    assert_eq!((rep.double_dispenses, rep.motor_mismatch_cabinets), (1, 1));
}

#[test]
fn a_success_without_its_motor_run_is_caught() {
    let mut r = balanced();
    r.send("ghost", 1, Kind::Valid, 3);
    r.reply(1, "ghost", "succeeded", None);
    let rep = r.report();
    assert!(!rep.reconciled);
    assert_eq!(
        (rep.succeeded_without_motor, rep.motor_mismatch_cabinets),
        (1, 1)
    );
}

#[test]
fn a_command_without_a_terminal_outcome_is_missing() {
    let mut r = balanced();
    r.send("lost", 0, Kind::Valid, 2);
    r.reply(0, "lost", "accepted", None);
    let rep = r.report();
    assert!(!rep.reconciled);
    assert_eq!(rep.missing, 1);
}

#[test]
fn two_different_outcomes_for_one_id_conflict_but_the_same_one_twice_does_not() {
    let mut r = balanced();
    // A redelivered reply: the same outcome twice.
    r.reply(1, "b", "succeeded", None);
    assert!(r.report().reconciled);
    r.reply(1, "b", "failed", Some("jammed"));
    let rep = r.report();
    assert!(!rep.reconciled);
    assert_eq!(rep.conflicting, 1);
}

#[test]
fn a_command_for_another_cabinet_that_was_dispensed_fails_the_run() {
    let mut r = Run::new();
    r.send("w", 1, Kind::WrongTopic, 1);
    r.reply(1, "w", "accepted", None);
    r.reply(1, "w", "dispensing", None);
    r.motor(1, 1);
    r.reply(1, "w", "succeeded", None);
    let rep = r.report();
    assert!(!rep.reconciled);
    assert_eq!(rep.wrong_cabinet_dispenses, 1);
    assert!(rep.unexpected >= 1, "{rep:?}");
}

#[test]
fn an_expired_command_refused_for_another_reason_is_unexpected() {
    let mut r = Run::new();
    r.send("e", 0, Kind::Expired, 1);
    r.reply(0, "e", "rejected", Some("slot_empty"));
    let rep = r.report();
    assert!(!rep.reconciled);
    assert_eq!(rep.unexpected, 1);
}

#[test]
fn a_forged_token_refused_twice_is_only_excused_after_a_broker_restart() {
    let mut r = balanced();
    // The same refusal delivered twice (same boot and sequence number) is one refusal.
    let seq = r.seq;
    r.reply_seq(1, "", "rejected", Some("bad_signature"), seq);
    assert!(r.report().reconciled);
    // A second refusal of its own: the cabinet was sent one forged token.
    r.reply(1, "", "rejected", Some("bad_signature"));
    let rep = r.report();
    assert!(!rep.reconciled);
    assert_eq!(rep.unexpected, 1);
    // After a broker restart the broker may have delivered it twice: counted, excused.
    r.restarts = 1;
    let rep = r.report();
    assert!(rep.reconciled, "{rep:?}");
    assert_eq!(rep.forged_refused_twice, 1);
}

#[test]
fn a_forged_token_the_broker_dropped_is_counted_not_failed() {
    let mut r = Run::new();
    r.send("f", 0, Kind::Forged, 1);
    let rep = r.report();
    assert!(rep.reconciled, "{rep:?}");
    assert_eq!(rep.forged_unanswered, 1);
}

/// A rollout graded: it must reach every cabinet and no cabinet may refuse a document.
#[test]
fn a_rollout_that_did_not_reach_every_cabinet_or_was_refused_fails_the_run() {
    let run = balanced();
    let grade = |rollout: super::rollout::RolloutReport| {
        let mut f = figures(0);
        f.rollout = Some(rollout);
        reconcile(&options(2), &run.sent, &run.inbox, &run.boards, f).reconciled
    };
    let done = super::rollout::RolloutReport {
        after_commands: 3,
        both_in_force_ms: Some(40.0),
        drained_ms: Some(5.0),
        rotated_ms: Some(90.0),
        cabinets_done: 2,
        refused: 0,
        published: 6,
    };
    assert!(grade(done.clone()));
    assert!(!grade(super::rollout::RolloutReport {
        cabinets_done: 1,
        ..done.clone()
    }));
    assert!(!grade(super::rollout::RolloutReport {
        rotated_ms: None,
        ..done.clone()
    }));
    assert!(!grade(super::rollout::RolloutReport { refused: 1, ..done }));
}
