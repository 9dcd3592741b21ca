//! The engine, step by step: every rule of the command path with the clock in hand.

use super::*;
use crate::protocol::CommandKind;

pub(super) const T0: u64 = 1_750_000_000_000;

pub(super) fn cfg() -> EngineConfig {
    EngineConfig {
        machine_code: "C001".into(),
        cabinet_name: String::new(),
        boot_id: "boot".into(),
        require_session: false,
        session_lifetime_ms: 60_000,
        take_item_ms: 10_000,
        failed_ms: 15_000,
        out_of_service_grace_ms: 5_000,
        clock_skew_secs: 0,
        board_start_wait_ms: 10_000,
        sites: BTreeMap::new(),
        config_version: 0,
        info: std::sync::Arc::new(crate::screen::CabinetInfo::plain()),
    }
}

pub(super) fn slot(n: u16, count: u32) -> SlotInventory {
    SlotInventory {
        slot: n,
        product: format!("item {n}"),
        capacity: 10,
        count,
        enabled: true,
        jammed: false,
    }
}

pub(super) fn engine_with(cfg: EngineConfig, slots: Vec<SlotInventory>) -> Engine {
    let mut e = Engine::new(cfg, slots, T0);
    e.step(Event::Link {
        up: true,
        now_ms: T0,
    });
    e.step(Event::Board {
        up: true,
        now_ms: T0,
    });
    e
}

fn engine() -> Engine {
    engine_with(cfg(), vec![slot(1, 5), slot(2, 1), slot(3, 0)])
}

fn cmd(id: &str, slot: u16) -> Command {
    Command {
        cmd_id: id.into(),
        log_id: format!("log-{id}"),
        order_id: format!("order-{id}"),
        kind: CommandKind::Dispense,
        slot,
        qty: 1,
        count: None,
        session: None,
        issued_at: (T0 / 1000) as i64,
        expires_at: (T0 / 1000) as i64 + 60,
        kid: "k".into(),
    }
}

fn send(e: &mut Engine, c: Command, now: u64) -> Vec<Action> {
    e.step(Event::Command {
        verdict: Ok(c),
        existing: None,
        now_ms: now,
    })
}

/// The actions without screen updates, as short names.
fn names(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Insert { reply, .. } => Some(format!("insert:{}", reply.state.as_str())),
            Action::Transition { to, reason, .. } => Some(match reason {
                Some(r) => format!("to:{}:{}", to.as_str(), r.code()),
                None => format!("to:{}", to.as_str()),
            }),
            Action::RecordRejection { reason, .. } => Some(format!("untrusted:{}", reason.code())),
            Action::Ack => Some("ack".into()),
            Action::Resend { .. } => Some("resend".into()),
            Action::Publish => Some("publish".into()),
            Action::Dispense(j) => Some(format!("dispense:{}", j.slot)),
            Action::Inventory(InventoryChange::Decrement(s)) => Some(format!("stock-1:{s}")),
            Action::Inventory(InventoryChange::Emptied(s)) => Some(format!("emptied:{s}")),
            Action::Inventory(InventoryChange::Loaded(s)) => Some(format!("loaded:{s}")),
            Action::Inventory(InventoryChange::Jammed(s)) => Some(format!("jammed:{s}")),
            Action::Inventory(InventoryChange::Enabled { slot, enabled }) => {
                Some(format!("enabled:{slot}:{enabled}"))
            }
            Action::Inventory(InventoryChange::Count { slot, count }) => {
                Some(format!("count:{slot}:{count}"))
            }
            Action::Audit { action, detail, .. } => Some(format!("audit:{action}:{detail}")),
            Action::Telemetry => Some("telemetry".into()),
            Action::Screen(_) => None,
        })
        .collect()
}

fn rejected_reason(actions: &[Action]) -> Option<Reason> {
    actions.iter().find_map(|a| match a {
        Action::Insert { reply, .. } if reply.state == ReplyState::Rejected => reply.reason,
        _ => None,
    })
}

fn last_screen(actions: &[Action]) -> Option<Screen> {
    actions.iter().rev().find_map(|a| match a {
        Action::Screen(s) => Some(s.screen.clone()),
        _ => None,
    })
}

#[test]
fn accepted_is_journaled_before_the_ack_and_dispensing_before_the_motor() {
    let mut e = engine();
    let a = send(&mut e, cmd("a", 1), T0);
    assert_eq!(
        names(&a),
        [
            "insert:accepted",
            "ack",
            "publish",
            "to:dispensing",
            "publish",
            "dispense:1"
        ]
    );
    assert!(matches!(
        last_screen(&a),
        Some(Screen::Dispensing { slot: 1, .. })
    ));
    let a = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::Dispensed {
            drop_detected: Some(true),
        },
        now_ms: T0 + 3000,
    });
    assert_eq!(names(&a), ["to:succeeded", "publish", "stock-1:1"]);
    assert!(matches!(
        last_screen(&a),
        Some(Screen::TakeItem { slot: 1, .. })
    ));
}

#[test]
fn replies_carry_the_commands_ids_and_a_per_boot_sequence() {
    let mut e = engine();
    let a = send(&mut e, cmd("a", 1), T0);
    let replies: Vec<&Reply> = a
        .iter()
        .filter_map(|x| match x {
            Action::Insert { reply, .. } | Action::Transition { reply, .. } => Some(reply),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 2);
    for r in &replies {
        assert_eq!(
            (r.cmd_id.as_str(), r.log_id.as_str(), r.order_id.as_str()),
            ("a", "log-a", "order-a")
        );
        assert_eq!(r.machine_code, "C001");
        assert_eq!(r.boot_id, "boot");
    }
    assert_eq!((replies[0].seq, replies[1].seq), (Some(1), Some(2)));
}

#[test]
fn a_duplicate_gets_the_stored_reply_and_never_a_second_dispense() {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    let stored = StoredCommand {
        cmd_id: "a".into(),
        log_id: "log-a".into(),
        order_id: "order-a".into(),
        slot: Some(1),
        qty: Some(1),
        session: None,
        state: ReplyState::Dispensing,
        reason: None,
        evidence: Evidence::default(),
        last_reply: Some("{\"stored\":true}".into()),
        received_at: 0,
        updated_at: 0,
    };
    let a = e.step(Event::Command {
        verdict: Ok(cmd("a", 1)),
        existing: Some(stored),
        now_ms: T0 + 10,
    });
    assert_eq!(names(&a), ["ack", "resend", "publish"]);
    assert!(a.contains(&Action::Resend {
        cmd_id: "a".into(),
        reply_json: "{\"stored\":true}".into()
    }));
}

#[test]
fn wrong_target_with_a_good_signature_is_rejected_with_its_ids_and_moves_nothing() {
    let mut e = engine();
    let rej = Rejection {
        reason: Reason::WrongTarget,
        detail: "aud C002".into(),
        trusted: Some(Box::new(TrustedIds {
            cmd_id: "x".into(),
            aud: "C002".into(),
            order_id: "o".into(),
            log_id: "l".into(),
            exp: None,
        })),
    };
    let a = e.step(Event::Command {
        verdict: Err(rej),
        existing: None,
        now_ms: T0,
    });
    assert_eq!(names(&a), ["insert:rejected", "ack", "publish"]);
    assert_eq!(rejected_reason(&a), Some(Reason::WrongTarget));
    // Not the customer's business at this cabinet: the screen stays idle.
    assert!(last_screen(&a).is_none() || last_screen(&a) == Some(Screen::Idle));
}

#[test]
fn an_untrusted_payload_gets_a_reply_with_empty_ids() {
    let mut e = engine();
    let rej = Rejection {
        reason: Reason::BadSignature,
        detail: "sig".into(),
        trusted: None,
    };
    let a = e.step(Event::Command {
        verdict: Err(rej),
        existing: None,
        now_ms: T0,
    });
    assert_eq!(names(&a), ["untrusted:bad_signature", "ack", "publish"]);
    let Some(Action::RecordRejection { reply, .. }) = a.first() else {
        panic!("{a:?}")
    };
    assert_eq!((reply.cmd_id.as_str(), reply.log_id.as_str()), ("", ""));
}

#[test]
fn unavailable_slots_are_rejected_with_their_reason() {
    let mut e = engine();
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("u", 99), T0)),
        Some(Reason::SlotUnknown)
    );
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("z", 3), T0)),
        Some(Reason::SlotEmpty)
    );
    let mut disabled = slot(4, 5);
    disabled.enabled = false;
    let mut jammed = slot(5, 5);
    jammed.jammed = true;
    let mut e = engine_with(cfg(), vec![disabled, jammed]);
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("d", 4), T0)),
        Some(Reason::SlotDisabled)
    );
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("j", 5), T0)),
        Some(Reason::SlotJammed)
    );
}

#[test]
fn stock_counts_commands_already_queued_for_the_slot() {
    let mut e = engine();
    let a = send(&mut e, cmd("first", 2), T0);
    assert!(names(&a).contains(&"dispense:2".to_string()));
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("second", 2), T0)),
        Some(Reason::SlotEmpty)
    );
}

#[test]
fn an_unverified_journal_refuses_every_command_until_a_fresh_start_is_confirmed() {
    let mut e = engine();
    let a = e.step(Event::JournalTrust {
        trusted: false,
        fresh_start_at: None,
        now_ms: T0,
    });
    assert_eq!(
        last_screen(&a),
        Some(Screen::OutOfService {
            reason: OutOfService::JournalUnverified,
            since_ms: T0
        })
    );
    let refused = send(&mut e, cmd("a", 1), T0 + 1);
    assert_eq!(rejected_reason(&refused), Some(Reason::JournalUnverified));
    assert!(!names(&refused).iter().any(|n| n.starts_with("dispense")));
    // Confirmed a minute later: a token issued before that (and within the clock
    // skew after it) may have been served by the lost journal.
    let confirmed_s = (T0 / 1000) as i64 + 60;
    let back = e.step(Event::JournalTrust {
        trusted: true,
        fresh_start_at: Some(confirmed_s),
        now_ms: T0 + 60_000,
    });
    assert_eq!(last_screen(&back), Some(Screen::Idle));
    assert!(e.journal_trusted());
    let skew = cfg().clock_skew_secs;
    let mut old = cmd("b", 1);
    old.issued_at = confirmed_s + skew;
    old.expires_at = old.issued_at + 600;
    assert_eq!(
        rejected_reason(&send(&mut e, old, T0 + 600_001)),
        Some(Reason::JournalUnverified)
    );
    let mut new = cmd("c", 1);
    new.issued_at = confirmed_s + skew + 1;
    new.expires_at = new.issued_at + 600;
    assert_eq!(
        names(&send(&mut e, new, T0 + 600_002))[..2],
        ["insert:accepted", "ack"]
    );
}

#[test]
fn a_board_that_is_down_gets_no_commands() {
    let mut e = engine();
    e.step(Event::Board {
        up: false,
        now_ms: T0,
    });
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("a", 1), T0)),
        Some(Reason::BoardUnreachable)
    );
}

/// A cabinet of several boards with one silent: its slots are refused unsent and shown
/// unavailable, the cabinet stays in service and sells the others, and its slots sell
/// again once it answers.
#[test]
fn the_slots_of_a_silent_board_are_refused_while_the_rest_sells() {
    let mut e = engine();
    let a = e.step(Event::SlotsUnreachable {
        slots: vec![2],
        now_ms: T0,
    });
    let snap = a
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Screen(s) => Some(s.clone()),
            _ => None,
        })
        .expect("a new screen");
    assert_eq!(snap.screen, Screen::Idle, "still in service");
    let available: Vec<(u16, bool)> = snap.items.iter().map(|i| (i.slot, i.available)).collect();
    assert_eq!(available, [(1, true), (2, false), (3, false)]);
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("a", 2), T0)),
        Some(Reason::BoardUnreachable)
    );
    assert!(names(&send(&mut e, cmd("b", 1), T0)).contains(&"dispense:1".to_string()));
    e.step(Event::SlotsUnreachable {
        slots: vec![],
        now_ms: T0 + 1,
    });
    assert_eq!(e.unreachable_slots().count(), 0);
    // Queued behind the dispense on slot 1, not refused.
    assert_eq!(rejected_reason(&send(&mut e, cmd("c", 2), T0 + 2)), None);
}

/// A locker wall's door holds one item: a customer's opening empties it, a technician's
/// test opening leaves it loaded, and every reply says which board and channel acted.
/// A rented item goes back into an empty door: the door opens, the reply succeeds, the
/// door is loaded and sells again; a spiral, a loaded door or a door with a sale waiting
/// takes nothing back, and a door that did not open stays empty.
#[test]
fn a_return_opens_an_empty_door_and_loads_it_and_nothing_else_takes_one() {
    let door = |channel: u16| SlotSite {
        board: Some("wall-1".into()),
        channel: Some(channel),
        door: true,
    };
    let walled = EngineConfig {
        sites: BTreeMap::from([(1, door(1)), (2, door(2)), (3, SlotSite::default())]),
        ..cfg()
    };
    let mut empty = slot(1, 0);
    empty.capacity = 1;
    let mut loaded = slot(2, 1);
    loaded.capacity = 1;
    let mut e = engine_with(walled, vec![empty, loaded, slot(3, 0)]);
    let ret = |id: &str, slot: u16| Command {
        kind: CommandKind::Return,
        ..cmd(id, slot)
    };
    assert_eq!(
        rejected_reason(&send(&mut e, ret("spiral", 3), T0)),
        Some(Reason::NotADoor)
    );
    assert_eq!(
        rejected_reason(&send(&mut e, ret("full", 2), T0)),
        Some(Reason::DoorOccupied)
    );
    assert_eq!(
        rejected_reason(&send(&mut e, ret("nowhere", 9), T0)),
        Some(Reason::SlotUnknown)
    );

    // Door 1 is empty: it opens for the return, and the customer sees "put it back".
    let a = send(&mut e, ret("r1", 1), T0);
    assert_eq!(
        names(&a),
        [
            "insert:accepted",
            "ack",
            "publish",
            "to:dispensing",
            "publish",
            "dispense:1"
        ]
    );
    // A second return for the same door while the first is under way: no room.
    assert_eq!(
        rejected_reason(&send(&mut e, ret("r2", 1), T0 + 100)),
        Some(Reason::DoorOccupied)
    );
    let done = e.step(Event::BoardDone {
        cmd_id: "r1".into(),
        outcome: Outcome::DoorOpened,
        now_ms: T0 + 2000,
    });
    assert_eq!(names(&done), ["to:succeeded", "publish", "loaded:1"]);
    assert!(
        matches!(last_screen(&done), Some(Screen::PutBack { slot: 1, .. })),
        "{:?}",
        last_screen(&done)
    );
    // Loaded now: the door sells again, and takes no second return.
    assert_eq!(
        rejected_reason(&send(&mut e, ret("r3", 1), T0 + 9000)),
        Some(Reason::DoorOccupied)
    );
    let sale = send(&mut e, cmd("sale", 1), T0 + 9000);
    assert!(
        names(&sale).contains(&"dispense:1".to_owned()),
        "{:?}",
        names(&sale)
    );
    let done = e.step(Event::BoardDone {
        cmd_id: "sale".into(),
        outcome: Outcome::DoorOpened,
        now_ms: T0 + 10_000,
    });
    assert_eq!(names(&done), ["to:succeeded", "publish", "emptied:1"]);

    // A door that never opened took nothing back: still empty, still takes a return.
    let _ = send(&mut e, ret("r4", 1), T0 + 20_000);
    let failed = e.step(Event::BoardDone {
        cmd_id: "r4".into(),
        outcome: Outcome::DoorNeverOpened,
        now_ms: T0 + 25_000,
    });
    assert_eq!(names(&failed), ["to:failed:door_never_opened", "publish"]);
    let again = send(&mut e, ret("r5", 1), T0 + 60_000);
    assert!(
        names(&again).contains(&"dispense:1".to_owned()),
        "{:?}",
        names(&again)
    );
}

#[test]
fn a_door_empties_when_a_customer_opens_it_and_replies_name_its_board() {
    let site = |board: &str, channel: u16, door: bool| SlotSite {
        board: Some(board.into()),
        channel: Some(channel),
        door,
    };
    let walled = EngineConfig {
        sites: BTreeMap::from([(1, site("wall-2", 7, true)), (2, site("vend", 3, false))]),
        ..cfg()
    };
    let mut door = slot(1, 1);
    door.capacity = 1;
    let mut e = engine_with(walled, vec![door, slot(2, 5)]);
    let evidence = |a: &[Action]| -> Vec<(String, Option<String>, Option<u16>)> {
        a.iter()
            .filter_map(|x| match x {
                Action::Transition { to, reply, .. } => Some((
                    to.as_str().to_owned(),
                    reply.evidence.board.clone(),
                    reply.evidence.channel,
                )),
                _ => None,
            })
            .collect()
    };
    // The technician's test opening: the door stays loaded.
    let t = e.step(Event::SlotTested {
        slot: 1,
        outcome: Outcome::DoorOpened,
        now_ms: T0,
    });
    assert!(names(&t).is_empty(), "{:?}", names(&t));
    let a = send(&mut e, cmd("a", 1), T0);
    assert_eq!(
        evidence(&a),
        [("dispensing".into(), Some("wall-2".into()), Some(7))]
    );
    let done = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::DoorOpened,
        now_ms: T0 + 2000,
    });
    assert_eq!(names(&done), ["to:succeeded", "publish", "emptied:1"]);
    assert_eq!(
        evidence(&done),
        [("succeeded".into(), Some("wall-2".into()), Some(7))]
    );
    // Empty now: the next order for the door is refused, the spiral still sells.
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("b", 1), T0 + 9000)),
        Some(Reason::SlotEmpty)
    );
    let spiral = send(&mut e, cmd("c", 2), T0 + 9000);
    assert_eq!(
        evidence(&spiral),
        [("dispensing".into(), Some("vend".into()), Some(3))]
    );
    let done = e.step(Event::BoardDone {
        cmd_id: "c".into(),
        outcome: Outcome::Dispensed {
            drop_detected: Some(true),
        },
        now_ms: T0 + 12_000,
    });
    assert_eq!(names(&done), ["to:succeeded", "publish", "stock-1:2"]);
}

/// Regression: a command 10 s past `exp` was accepted on arrival (within the 30 s
/// skew) and then failed `expired` at its turn. One rule, one skew.
#[test]
fn expiry_at_the_motor_allows_the_same_clock_skew_as_on_arrival() {
    let skewed = EngineConfig {
        clock_skew_secs: 30,
        ..cfg()
    };
    for (late_s, want) in [
        (10, "dispense:1"),
        (30, "dispense:1"),
        (31, "to:failed:expired"),
    ] {
        let mut e = engine_with(skewed.clone(), vec![slot(1, 5)]);
        let mut c = cmd("late", 1);
        c.expires_at = (T0 / 1000) as i64 - late_s;
        let out = send(&mut e, c, T0);
        assert!(
            names(&out).contains(&want.to_owned()),
            "{late_s} s past exp: {:?}",
            names(&out)
        );
    }
}

/// Regression: after a restart, commands the broker had queued arrived before the
/// first board check and were all refused `board_unreachable` (31 of 40 in one run of
/// kill -9 restarts) although the board was healthy.
#[test]
fn commands_before_the_first_board_check_are_held_then_run_when_it_answers() {
    let mut e = Engine::new(cfg(), vec![slot(1, 5)], T0);
    e.step(Event::Link {
        up: true,
        now_ms: T0,
    });
    assert!(!e.board_known());
    let a = send(&mut e, cmd("a", 1), T0 + 30);
    assert_eq!(
        names(&a),
        ["insert:accepted", "ack", "publish"],
        "held, not refused"
    );
    let b = send(&mut e, cmd("b", 1), T0 + 31);
    assert_eq!(names(&b), ["insert:accepted", "ack", "publish"]);
    assert_eq!(e.queued(), 2);
    let up = e.step(Event::Board {
        up: true,
        now_ms: T0 + 700,
    });
    assert_eq!(names(&up), ["to:dispensing", "publish", "dispense:1"]);
    assert_eq!(e.queued(), 1, "b waits for a, one dispense at a time");
}

#[test]
fn held_commands_fail_board_unreachable_when_the_first_check_finds_the_board_down() {
    let mut e = Engine::new(cfg(), vec![slot(1, 5)], T0);
    e.step(Event::Link {
        up: true,
        now_ms: T0,
    });
    send(&mut e, cmd("a", 1), T0 + 30);
    let down = e.step(Event::Board {
        up: false,
        now_ms: T0 + 3_000,
    });
    assert_eq!(names(&down), ["to:failed:board_unreachable", "publish"]);
    // Now it is known to be down: the next command is refused on arrival.
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("b", 1), T0 + 3_001)),
        Some(Reason::BoardUnreachable)
    );
}

#[test]
fn held_commands_wait_no_longer_than_the_start_wait() {
    let mut e = Engine::new(cfg(), vec![slot(1, 5)], T0);
    e.step(Event::Link {
        up: true,
        now_ms: T0,
    });
    send(&mut e, cmd("a", 1), T0 + 30);
    let before = e.step(Event::Tick { now_ms: T0 + 9_999 });
    assert!(names(&before).is_empty(), "{:?}", names(&before));
    let after = e.step(Event::Tick {
        now_ms: T0 + 10_000,
    });
    assert_eq!(names(&after), ["to:failed:board_unreachable", "publish"]);
    assert!(e.board_known() && !e.board_up());
}

#[test]
fn a_held_command_whose_exp_passes_during_the_wait_fails_expired() {
    let mut e = Engine::new(cfg(), vec![slot(1, 5)], T0);
    e.step(Event::Link {
        up: true,
        now_ms: T0,
    });
    let mut c = cmd("a", 1);
    c.expires_at = (T0 / 1000) as i64 + 1;
    send(&mut e, c, T0);
    let up = e.step(Event::Board {
        up: true,
        now_ms: T0 + 2_000,
    });
    assert_eq!(names(&up), ["to:failed:expired", "publish"]);
}

/// Regression: on SIGTERM the runner waited for the dispense in progress, and booking
/// its outcome started the next queued command's motor while the app was exiting.
#[test]
fn once_stopping_the_dispense_in_progress_finishes_and_nothing_new_starts() {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    send(&mut e, cmd("b", 1), T0 + 1);
    e.step(Event::Stop { now_ms: T0 + 2 });
    let done = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::Dispensed {
            drop_detected: Some(true),
        },
        now_ms: T0 + 1_000,
    });
    assert_eq!(names(&done), ["to:succeeded", "publish", "stock-1:1"]);
    assert_eq!(e.queued(), 1, "b stays accepted for the next start");
}

#[test]
fn one_physical_dispense_at_a_time() {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    let b = send(&mut e, cmd("b", 1), T0 + 1);
    assert_eq!(
        names(&b),
        ["insert:accepted", "ack", "publish"],
        "b waits for a"
    );
    assert_eq!(e.queued(), 1);
    let done = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::Dispensed {
            drop_detected: Some(true),
        },
        now_ms: T0 + 2000,
    });
    assert_eq!(
        names(&done),
        [
            "to:succeeded",
            "publish",
            "stock-1:1",
            "to:dispensing",
            "publish",
            "dispense:1"
        ]
    );
    assert_eq!(e.active().map(|j| j.cmd_id.as_str()), Some("b"));
}

/// Command "a" at the board, "b" (expiring at T0 + 5 s) queued behind it; "a" finishes
/// at `done_at`. The engine and the actions of that step.
fn b_expiring_queued_behind_a(done_at: u64) -> (Engine, Vec<Action>) {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    let mut b = cmd("b", 1);
    b.expires_at = (T0 / 1000) as i64 + 5;
    send(&mut e, b, T0);
    let done = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::Dispensed {
            drop_detected: Some(true),
        },
        now_ms: done_at,
    });
    (e, done)
}

#[test]
fn a_queued_command_that_expires_while_waiting_fails_at_its_turn() {
    let (e, done) = b_expiring_queued_behind_a(T0 + 30_000);
    assert_eq!(
        names(&done),
        [
            "to:succeeded",
            "publish",
            "stock-1:1",
            "to:failed:expired",
            "publish"
        ]
    );
    assert!(e.active().is_none());
}

/// `exp` is inclusive, in whole seconds as on arrival: a queued command whose turn
/// comes anywhere in its `exp` second still runs; in the next second it fails `expired`.
#[test]
fn a_queued_command_runs_through_its_exp_second_and_not_a_second_later() {
    // `exp` is in whole seconds, as on arrival: the second it names is still good.
    for (late, want) in [
        (0, "dispense:1"),
        (999, "dispense:1"),
        (1000, "to:failed:expired"),
    ] {
        let (_, done) = b_expiring_queued_behind_a(T0 + 5_000 + late);
        assert!(
            names(&done).contains(&want.to_owned()),
            "{late} ms late: {:?}",
            names(&done)
        );
    }
}

/// A QR session is good until the millisecond its lifetime ends, not including it;
/// then the idle screen stops showing it.
#[test]
fn a_session_expires_exactly_at_the_end_of_its_lifetime() {
    let session_cfg = || EngineConfig {
        require_session: true,
        ..cfg()
    };
    for (at, accepted) in [(59_999, true), (60_000, false)] {
        let mut e = engine_with(session_cfg(), vec![slot(1, 5)]);
        e.step(Event::SessionIssued {
            nonce: "n1".into(),
            now_ms: T0,
        });
        let mut c = cmd("a", 1);
        c.session = Some("n1".into());
        let out = send(&mut e, c, T0 + at);
        let got = names(&out);
        if accepted {
            assert!(got.contains(&"insert:accepted".to_owned()), "{at}: {got:?}");
        } else {
            assert!(got.contains(&"insert:rejected".to_owned()), "{at}: {got:?}");
        }
    }
    let mut e = engine_with(session_cfg(), vec![slot(1, 5)]);
    e.step(Event::SessionIssued {
        nonce: "n1".into(),
        now_ms: T0,
    });
    let shown = |actions: &[Action]| {
        actions.iter().rev().find_map(|a| match a {
            Action::Screen(s) => Some(s.qr_nonce.clone()),
            _ => None,
        })
    };
    let before = e.step(Event::Tick {
        now_ms: T0 + 59_999,
    });
    assert_ne!(shown(&before), Some(None), "still valid: still shown");
    let after = e.step(Event::Tick {
        now_ms: T0 + 60_000,
    });
    assert_eq!(shown(&after), Some(None), "expired: no longer shown");
}

#[test]
fn the_accessors_show_the_board_the_queue_and_the_slots() {
    let mut e = engine();
    assert!(e.board_up());
    assert_eq!(e.queued(), 0);
    send(&mut e, cmd("a", 1), T0);
    send(&mut e, cmd("b", 1), T0);
    assert_eq!(e.queued(), 1, "one at the board, one waiting");
    send(&mut e, cmd("c", 2), T0);
    assert_eq!(e.queued(), 2);
    e.step(Event::Board {
        up: false,
        now_ms: T0,
    });
    assert!(!e.board_up());
    let slots: Vec<u16> = e.inventory().map(|s| s.slot).collect();
    assert_eq!(slots, vec![1, 2, 3]);
}

fn screens(actions: &[Action]) -> Vec<Snapshot> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Screen(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// What the customer sees (invariant 6) through a session, a dispense and a failure:
/// the product by name, the QR code only on the idle screen, the failure screen for
/// exactly `failed_ms`, and a version that grows with every change.
#[test]
fn the_screens_show_the_product_the_qr_code_only_when_idle_and_the_failure_for_its_time() {
    let mut e = engine();
    let mut seen = screens(&e.step(Event::SessionIssued {
        nonce: "n1".into(),
        now_ms: T0,
    }));
    let idle = seen
        .last()
        .cloned()
        .expect("a new nonce changes the screen");
    assert_eq!(idle.screen, Screen::Idle);
    assert_eq!(idle.qr_nonce.as_deref(), Some("n1"));
    let busy = screens(&send(&mut e, cmd("a", 1), T0));
    let dispensing = busy.last().expect("the screen changes").clone();
    assert!(
        matches!(&dispensing.screen, Screen::Dispensing { product, slot: 1, .. } if product == "item 1"),
        "{:?}",
        dispensing.screen
    );
    assert_eq!(dispensing.qr_nonce, None, "no QR code while dispensing");
    seen.extend(busy);
    let failed_at = T0 + 1_000;
    let jam = screens(&e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::Jammed,
        now_ms: failed_at,
    }));
    let failed = jam.last().expect("the failure is shown").clone();
    assert_eq!(
        failed.screen,
        Screen::Failed {
            reason: Reason::Jammed,
            uncertain: false,
            support_code: crate::support::code("a"),
            until_ms: failed_at + 15_000,
        }
    );
    seen.extend(jam);
    let still = e.step(Event::Tick {
        now_ms: failed_at + 14_999,
    });
    assert!(
        screens(&still).is_empty(),
        "the failure stays for failed_ms"
    );
    let back = screens(&e.step(Event::Tick {
        now_ms: failed_at + 15_000,
    }));
    assert_eq!(back.last().map(|s| &s.screen), Some(&Screen::Idle));
    seen.extend(back);
    let versions: Vec<u64> = seen.iter().map(|s| s.version).collect();
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "one more per change: {versions:?}"
    );
    // Version 0 means "no snapshot yet": the first one a fresh engine emits is 1.
    let mut fresh = Engine::new(cfg(), vec![slot(1, 5)], T0);
    let first = screens(&fresh.step(Event::Tick { now_ms: T0 }));
    assert_eq!(first.first().map(|s| s.version), Some(1));
}

/// A next order takes the screen from a failure at once (the next customer must see
/// their own order), but its screens carry the failure's support code until the failure
/// screen would have ended: the customer it failed may still be copying it down.
#[test]
fn an_order_that_cuts_a_failure_short_carries_its_support_code_until_its_time() {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    let failed_at = T0 + 1_000;
    e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::Jammed,
        now_ms: failed_at,
    });
    let next = screens(&send(&mut e, cmd("b", 2), failed_at + 2_000));
    let shown = next.last().expect("the next order takes the screen");
    assert!(
        matches!(shown.screen, Screen::Dispensing { slot: 2, .. }),
        "{:?}",
        shown.screen
    );
    let expected = EarlierFailure {
        support_code: crate::support::code("a"),
        uncertain: false,
        until_ms: failed_at + 15_000,
    };
    assert_eq!(shown.earlier_failure.as_ref(), Some(&expected));
    let done = screens(&e.step(Event::BoardDone {
        cmd_id: "b".into(),
        outcome: Outcome::Dispensed {
            drop_detected: None,
        },
        now_ms: failed_at + 6_000,
    }));
    let take = done.last().expect("take your item");
    assert!(
        matches!(take.screen, Screen::TakeItem { .. }),
        "{:?}",
        take.screen
    );
    assert_eq!(take.earlier_failure.as_ref(), Some(&expected));
    assert!(
        screens(&e.step(Event::Tick {
            now_ms: failed_at + 14_999
        }))
        .is_empty(),
        "unchanged while the failure's time runs"
    );
    let gone = screens(&e.step(Event::Tick {
        now_ms: failed_at + 15_000,
    }));
    let after = gone
        .last()
        .expect("the code goes when the failure's time is up");
    assert!(
        matches!(after.screen, Screen::TakeItem { .. }),
        "{:?}",
        after.screen
    );
    assert_eq!(after.earlier_failure, None);
}

#[test]
fn an_unknown_board_status_is_kept_as_evidence() {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    let done = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::UnknownStatus { code: 0x77 },
        now_ms: T0 + 1_000,
    });
    let evidence = done.iter().find_map(|a| match a {
        Action::Transition { evidence, .. } => Some(evidence.clone()),
        _ => None,
    });
    assert_eq!(
        evidence.and_then(|e| e.board_status).as_deref(),
        Some("unknown_status:77")
    );
}

#[test]
fn a_jam_takes_the_slot_out_of_service() {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    let a = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::Jammed,
        now_ms: T0 + 1,
    });
    assert_eq!(names(&a), ["to:failed:jammed", "publish", "jammed:1"]);
    assert!(matches!(
        last_screen(&a),
        Some(Screen::Failed {
            reason: Reason::Jammed,
            uncertain: false,
            ..
        })
    ));
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("b", 1), T0 + 2)),
        Some(Reason::SlotJammed)
    );
}

/// Regression: a board's success report that came 6 s late (after `report_timeout`)
/// was credited to the next command on the same slot. After an unknown outcome the
/// slot waits for a technician, so no later command there can take that report.
#[test]
fn after_an_unknown_outcome_the_slot_waits_for_a_technician() {
    for outcome in [
        Outcome::NoReply {
            reach: Reach::Acknowledged,
        },
        Outcome::PortGone {
            reach: Reach::Unconfirmed,
        },
        Outcome::UnknownStatus { code: 0x07 },
    ] {
        let mut e = engine();
        send(&mut e, cmd("a", 1), T0);
        let a = e.step(Event::BoardDone {
            cmd_id: "a".into(),
            outcome,
            now_ms: T0 + 30_000,
        });
        assert_eq!(
            names(&a),
            ["to:outcome_unknown:board_no_reply", "publish", "jammed:1"],
            "{outcome:?}"
        );
        assert_eq!(
            rejected_reason(&send(&mut e, cmd("b", 1), T0 + 36_000)),
            Some(Reason::SlotJammed),
            "{outcome:?}"
        );
        // Other slots serve on.
        let c = send(&mut e, cmd("c", 2), T0 + 36_001);
        assert!(names(&c).contains(&"dispense:2".to_owned()), "{outcome:?}");
    }
    // Nothing reached the board: nothing can report late, the slot stays in service.
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    let a = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::NoReply {
            reach: Reach::NotSent,
        },
        now_ms: T0 + 1,
    });
    assert_eq!(names(&a), ["to:failed:board_unreachable", "publish"]);
}

#[test]
fn board_outcomes_map_to_honest_states() {
    use ReplyState::*;
    let cases = [
        (
            Outcome::Dispensed {
                drop_detected: Some(true),
            },
            Succeeded,
            None,
        ),
        (
            Outcome::Dispensed {
                drop_detected: None,
            },
            Succeeded,
            None,
        ),
        (
            Outcome::Dispensed {
                drop_detected: Some(false),
            },
            Failed,
            Some(Reason::NoDropDetected),
        ),
        (Outcome::DoorOpened, Succeeded, None),
        (
            Outcome::DoorNeverOpened,
            Failed,
            Some(Reason::DoorNeverOpened),
        ),
        (
            Outcome::MotorNotStopped,
            Failed,
            Some(Reason::MotorNotStopped),
        ),
        (Outcome::NoSuchSlot, Failed, Some(Reason::SlotUnknown)),
        (Outcome::Terminated, Failed, Some(Reason::Terminated)),
        (
            Outcome::NoReply {
                reach: Reach::NotSent,
            },
            Failed,
            Some(Reason::BoardUnreachable),
        ),
        (
            Outcome::PortGone {
                reach: Reach::NotSent,
            },
            Failed,
            Some(Reason::BoardUnreachable),
        ),
        (
            Outcome::NoReply {
                reach: Reach::Acknowledged,
            },
            OutcomeUnknown,
            Some(Reason::BoardNoReply),
        ),
        (
            Outcome::BadFrame {
                reach: Reach::Unconfirmed,
            },
            OutcomeUnknown,
            Some(Reason::BoardNoReply),
        ),
        (
            Outcome::PortGone {
                reach: Reach::Acknowledged,
            },
            OutcomeUnknown,
            Some(Reason::BoardNoReply),
        ),
        (
            Outcome::UnknownStatus { code: 0x77 },
            OutcomeUnknown,
            Some(Reason::BoardNoReply),
        ),
    ];
    for (outcome, state, reason) in cases {
        let (s, r, _, changes) = judge(&outcome, 1);
        assert_eq!((s, r), (state, reason), "{outcome:?}");
        let decrement = changes.contains(&InventoryChange::Decrement(1));
        assert_eq!(
            decrement,
            s == Succeeded,
            "stock moves only on success: {outcome:?}"
        );
    }
}

#[test]
fn outcome_unknown_shows_an_uncertain_failure() {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    let a = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::NoReply {
            reach: Reach::Acknowledged,
        },
        now_ms: T0 + 1,
    });
    assert!(matches!(
        last_screen(&a),
        Some(Screen::Failed {
            uncertain: true,
            ..
        })
    ));
}

#[test]
fn restart_turns_dispensing_into_outcome_unknown_and_never_runs_the_motor() {
    let mut e = engine();
    let stored = |id: &str, state| StoredCommand {
        cmd_id: id.into(),
        log_id: format!("log-{id}"),
        order_id: format!("order-{id}"),
        slot: Some(1),
        qty: Some(1),
        session: None,
        state,
        reason: None,
        evidence: Evidence::default(),
        last_reply: None,
        received_at: 0,
        updated_at: 0,
    };
    let a = e.step(Event::Recover {
        dispensing: vec![stored("d", ReplyState::Dispensing)],
        accepted: vec![stored("q", ReplyState::Accepted)],
        board_status: Some("doors: none open".into()),
        now_ms: T0,
    });
    assert_eq!(
        names(&a),
        [
            "to:outcome_unknown:interrupted",
            "to:failed:interrupted",
            "publish"
        ]
    );
    let Some(Action::Transition { evidence, .. }) = a.first() else {
        panic!()
    };
    assert_eq!(evidence.board_status.as_deref(), Some("doors: none open"));
}

#[test]
fn a_required_session_must_be_one_the_screen_showed_and_is_used_once() {
    let mut c = cfg();
    c.require_session = true;
    let mut e = engine_with(c, vec![slot(1, 5)]);
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("none", 1), T0)),
        Some(Reason::SessionMismatch)
    );
    e.step(Event::SessionIssued {
        nonce: "n1".into(),
        now_ms: T0,
    });
    let mut ok = cmd("ok", 1);
    ok.session = Some("n1".into());
    assert!(names(&send(&mut e, ok, T0 + 1)).contains(&"dispense:1".to_string()));
    let mut again = cmd("again", 1);
    again.session = Some("n1".into());
    assert_eq!(
        rejected_reason(&send(&mut e, again, T0 + 2)),
        Some(Reason::SessionMismatch)
    );
    e.step(Event::SessionIssued {
        nonce: "n2".into(),
        now_ms: T0,
    });
    let mut late = cmd("late", 1);
    late.session = Some("n2".into());
    assert_eq!(
        rejected_reason(&send(&mut e, late, T0 + 61_000)),
        Some(Reason::SessionMismatch)
    );
}

#[test]
fn while_a_technician_is_in_no_customer_command_moves_a_motor() {
    let mut e = engine_with(cfg(), vec![slot(1, 5)]);
    let a = e.step(Event::Maintenance {
        on: true,
        now_ms: T0,
    });
    assert!(
        a.iter().any(|a| matches!(a, Action::Screen(s)
            if s.screen == Screen::OutOfService { reason: OutOfService::Maintenance, since_ms: T0 })),
        "{a:?}"
    );
    let a = send(&mut e, cmd("m1", 1), T0 + 1);
    assert_eq!(rejected_reason(&a), Some(Reason::Maintenance));
    assert!(
        !names(&a).iter().any(|n| n.starts_with("dispense")),
        "{a:?}"
    );
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::Screen(s) if matches!(s.screen, Screen::Failed { .. }))),
        "the technician's screen is not replaced by a customer failure: {a:?}"
    );
    e.step(Event::Maintenance {
        on: false,
        now_ms: T0 + 2,
    });
    assert!(names(&send(&mut e, cmd("m2", 1), T0 + 3)).contains(&"dispense:1".to_string()));
}

#[test]
fn while_the_disk_is_low_new_commands_are_refused_and_accepted_ones_still_run() {
    let mut e = engine();
    assert!(names(&send(&mut e, cmd("a", 1), T0)).contains(&"dispense:1".to_string()));
    let queued = send(&mut e, cmd("b", 2), T0 + 1);
    assert_eq!(names(&queued), ["insert:accepted", "ack", "publish"]);
    e.step(Event::Disk {
        low: true,
        now_ms: T0 + 2,
    });
    // Refused before anything is promised: journaled as rejected (its id dedupes a
    // redelivery), acknowledged, answered; no motor.
    let refused = send(&mut e, cmd("c", 1), T0 + 3);
    assert_eq!(rejected_reason(&refused), Some(Reason::DiskLow));
    assert_eq!(names(&refused), ["insert:rejected", "ack", "publish"]);
    // The dispense at the board finishes, and the one already accepted still runs.
    let a = e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::Dispensed {
            drop_detected: Some(true),
        },
        now_ms: T0 + 1_000,
    });
    assert_eq!(
        names(&a),
        [
            "to:succeeded",
            "publish",
            "stock-1:1",
            "to:dispensing",
            "publish",
            "dispense:2"
        ]
    );
    let b = e.step(Event::BoardDone {
        cmd_id: "b".into(),
        outcome: Outcome::Dispensed {
            drop_detected: Some(true),
        },
        now_ms: T0 + 2_000,
    });
    assert_eq!(names(&b), ["to:succeeded", "publish", "stock-1:2"]);
    // Once the customer has taken the item, the screen says why nobody else can buy.
    let a = e.step(Event::Tick {
        now_ms: T0 + 12_001,
    });
    assert_eq!(
        last_screen(&a),
        Some(Screen::OutOfService {
            reason: OutOfService::DiskLow,
            since_ms: T0 + 2
        })
    );
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("d", 1), T0 + 12_002)),
        Some(Reason::DiskLow)
    );
    // Space is back: served again.
    e.step(Event::Disk {
        low: false,
        now_ms: T0 + 30_000,
    });
    let served = send(&mut e, cmd("e", 1), T0 + 30_001);
    assert!(
        names(&served).contains(&"dispense:1".to_string()),
        "{served:?}"
    );
}

#[test]
fn a_low_disk_is_out_of_service_at_once_after_maintenance_and_ends_by_itself() {
    let mut e = engine();
    let a = e.step(Event::Disk {
        low: true,
        now_ms: T0 + 10,
    });
    let low = Screen::OutOfService {
        reason: OutOfService::DiskLow,
        since_ms: T0 + 10,
    };
    assert_eq!(last_screen(&a), Some(low.clone()), "no grace period");
    // The same news again changes nothing (the since stays).
    let again = e.step(Event::Disk {
        low: true,
        now_ms: T0 + 20,
    });
    assert_eq!(last_screen(&again), None, "{again:?}");
    // A technician's maintenance comes first (the technician is at the screen), and
    // the maintenance refusal too.
    let m = e.step(Event::Maintenance {
        on: true,
        now_ms: T0 + 30,
    });
    assert!(matches!(
        last_screen(&m),
        Some(Screen::OutOfService {
            reason: OutOfService::Maintenance,
            ..
        })
    ));
    assert_eq!(
        rejected_reason(&send(&mut e, cmd("m", 1), T0 + 31)),
        Some(Reason::Maintenance)
    );
    let m = e.step(Event::Maintenance {
        on: false,
        now_ms: T0 + 40,
    });
    assert_eq!(last_screen(&m), Some(low));
    // A broker outage meanwhile does not hide the disk: the disk is what to fix.
    e.step(Event::Link {
        up: false,
        now_ms: T0 + 50,
    });
    let a = e.step(Event::Tick {
        now_ms: T0 + 10_000,
    });
    assert!(
        matches!(
            last_screen(&a),
            None | Some(Screen::OutOfService {
                reason: OutOfService::DiskLow,
                ..
            })
        ),
        "{a:?}"
    );
    e.step(Event::Link {
        up: true,
        now_ms: T0 + 10_001,
    });
    let back = e.step(Event::Disk {
        low: false,
        now_ms: T0 + 10_002,
    });
    assert_eq!(last_screen(&back), Some(Screen::Idle));
}

#[test]
fn the_screen_goes_out_of_service_only_after_the_grace_period() {
    let mut e = engine();
    let a = e.step(Event::Link {
        up: false,
        now_ms: T0 + 1000,
    });
    assert!(
        matches!(last_screen(&a), None | Some(Screen::Idle)),
        "still idle within the grace period"
    );
    let a = e.step(Event::Tick { now_ms: T0 + 6000 });
    assert_eq!(
        last_screen(&a),
        Some(Screen::OutOfService {
            reason: OutOfService::BrokerDown,
            since_ms: T0 + 1000
        })
    );
    let a = e.step(Event::Link {
        up: true,
        now_ms: T0 + 7000,
    });
    assert_eq!(last_screen(&a), Some(Screen::Idle));
    e.step(Event::Board {
        up: false,
        now_ms: T0 + 8000,
    });
    let a = e.step(Event::Tick {
        now_ms: T0 + 13_000,
    });
    assert_eq!(
        last_screen(&a),
        Some(Screen::OutOfService {
            reason: OutOfService::BoardDown,
            since_ms: T0 + 8000
        })
    );
}

#[test]
fn before_the_first_connection_the_screen_says_starting() {
    let mut e = Engine::new(cfg(), vec![slot(1, 1)], T0);
    let a = e.step(Event::Tick { now_ms: T0 });
    assert!(matches!(
        last_screen(&a),
        Some(Screen::OutOfService {
            reason: OutOfService::Starting,
            ..
        })
    ));
}

#[test]
fn take_your_item_returns_to_idle_after_its_countdown() {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    e.step(Event::BoardDone {
        cmd_id: "a".into(),
        outcome: Outcome::DoorOpened,
        now_ms: T0 + 1000,
    });
    assert!(
        e.step(Event::Tick { now_ms: T0 + 5000 }).is_empty(),
        "still counting down"
    );
    let a = e.step(Event::Tick {
        now_ms: T0 + 11_001,
    });
    assert_eq!(last_screen(&a), Some(Screen::Idle));
}

#[test]
fn a_board_outcome_for_another_command_is_ignored() {
    let mut e = engine();
    send(&mut e, cmd("a", 1), T0);
    let a = e.step(Event::BoardDone {
        cmd_id: "zzz".into(),
        outcome: Outcome::Jammed,
        now_ms: T0,
    });
    assert!(names(&a).is_empty());
    assert_eq!(e.active().map(|j| j.cmd_id.as_str()), Some("a"));
}

#[test]
fn a_technicians_slot_test_is_booked_as_a_customers_dispense_would_be() {
    let mut e = engine();
    let dropped = e.step(Event::SlotTested {
        slot: 1,
        outcome: Outcome::Dispensed {
            drop_detected: Some(true),
        },
        now_ms: T0,
    });
    assert!(dropped.contains(&Action::Inventory(InventoryChange::Decrement(1))));
    let count = |e: &Engine, n: u16| e.inventory().find(|s| s.slot == n).map(|s| s.count);
    assert_eq!(count(&e, 1), Some(4), "the engine's own table follows");
    let jammed = e.step(Event::SlotTested {
        slot: 2,
        outcome: Outcome::Jammed,
        now_ms: T0,
    });
    assert!(jammed.contains(&Action::Inventory(InventoryChange::Jammed(2))));
    assert!(e.inventory().any(|s| s.slot == 2 && s.jammed));
    // No reply, no motor, no command state: a test is not an order.
    let busy = |a: &Action| {
        matches!(
            a,
            Action::Insert { .. }
                | Action::Transition { .. }
                | Action::Dispense(_)
                | Action::Publish
        )
    };
    assert!(!dropped.iter().chain(&jammed).any(busy));
}

fn control(id: &str, kind: CommandKind, slot: u16, count: Option<u32>) -> Command {
    Command {
        kind,
        qty: 0,
        count,
        ..cmd(id, slot)
    }
}

#[test]
fn the_operators_slot_control_is_done_at_once_audited_and_answered_once() {
    let mut e = engine();
    let a = send(
        &mut e,
        control("k-1", CommandKind::SlotDisable, 1, None),
        T0,
    );
    assert_eq!(
        names(&a),
        [
            "enabled:1:false",
            "insert:succeeded",
            "ack",
            "audit:disable_slot:slot 1",
            "publish"
        ]
    );
    let a = send(&mut e, cmd("c-1", 1), T0 + 1);
    assert_eq!(rejected_reason(&a), Some(Reason::SlotDisabled));
    let a = send(
        &mut e,
        control("k-2", CommandKind::SlotEnable, 1, None),
        T0 + 2,
    );
    assert_eq!(names(&a)[0], "enabled:1:true");

    // A restock of the empty slot 3: over its capacity is refused, else the count is set.
    let a = send(
        &mut e,
        control("k-3", CommandKind::SlotSetCount, 3, Some(11)),
        T0 + 3,
    );
    assert_eq!(rejected_reason(&a), Some(Reason::UnsupportedQuantity));
    let a = send(
        &mut e,
        control("k-4", CommandKind::SlotSetCount, 3, Some(7)),
        T0 + 4,
    );
    assert_eq!(
        names(&a),
        [
            "count:3:7",
            "insert:succeeded",
            "ack",
            "audit:restock:slot 3: 0 -> 7",
            "publish"
        ]
    );
    assert_eq!(
        e.inventory().find(|s| s.slot == 3).map(|s| s.count),
        Some(7)
    );
    let a = send(&mut e, cmd("c-2", 3), T0 + 5);
    assert_eq!(names(&a)[0], "insert:accepted", "slot 3 sells again");

    // Telemetry asks nothing of a slot; an unknown slot is refused.
    let a = send(
        &mut e,
        control("k-5", CommandKind::Telemetry, 0, None),
        T0 + 6,
    );
    assert_eq!(
        names(&a),
        ["insert:succeeded", "ack", "publish", "telemetry"]
    );
    let a = send(
        &mut e,
        control("k-6", CommandKind::SlotDisable, 99, None),
        T0 + 7,
    );
    assert_eq!(rejected_reason(&a), Some(Reason::SlotUnknown));
}

#[test]
fn slot_control_waits_for_nobody_but_a_technicians_visit_refuses_it() {
    let mut e = engine();
    e.step(Event::Maintenance {
        on: true,
        now_ms: T0,
    });
    let a = send(
        &mut e,
        control("k-1", CommandKind::SlotSetCount, 1, Some(3)),
        T0 + 1,
    );
    assert_eq!(rejected_reason(&a), Some(Reason::Maintenance));
    // Telemetry is not the slots': it is answered during the visit too.
    let a = send(
        &mut e,
        control("k-2", CommandKind::Telemetry, 0, None),
        T0 + 2,
    );
    assert!(names(&a).contains(&"telemetry".to_owned()));
}
