use rusqlite::Connection;

use crate::config::SlotConfig;
use crate::protocol::CommandKind;
use crate::protocol::{Command, Evidence, ReplyState, TrustedIds};
use crate::reason::Reason;

use super::schema::MIGRATIONS;
use super::*;

fn open_tmp() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("sub/dir/journal.sqlite3")).unwrap();
    (dir, j)
}

fn cmd(id: &str) -> Command {
    Command {
        cmd_id: id.into(),
        log_id: format!("log-{id}"),
        order_id: format!("order-{id}"),
        kind: CommandKind::Dispense,
        slot: 3,
        qty: 1,
        count: None,
        session: Some("nonce".into()),
        issued_at: 0,
        expires_at: 60,
        kid: "k1".into(),
    }
}

/// `id` stored as accepted and moved to dispensing, without replies.
fn accepted_then_dispensing(j: &mut Journal, id: &str) {
    j.insert_new_command(&NewCommand::accepted(&cmd(id)), None)
        .unwrap();
    j.transition(id, ReplyState::Dispensing, None, &Evidence::default(), None)
        .unwrap();
}

fn reply(text: &str) -> OutboxMessage {
    OutboxMessage {
        topic: "cabinet/v1/GZ-1/reply".into(),
        payload: format!("{{\"state\":\"{text}\"}}"),
    }
}

fn slot_cfg(slot: u16, count: u32) -> SlotConfig {
    SlotConfig {
        slot,
        board: None,
        channel: None,
        product: format!("P{slot}"),
        capacity: 10,
        initial_count: count,
    }
}

#[test]
fn open_creates_parent_directories_and_uses_wal_with_full_sync() {
    let (dir, j) = open_tmp();
    assert!(dir.path().join("sub/dir/journal.sqlite3").exists());
    let mode: String = j
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = j
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL guards the motor");
    assert_eq!(j.schema_version().unwrap(), MIGRATIONS.len() as i64);
}

#[test]
fn settings_survive_reopening_and_a_version_1_journal_gains_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    {
        // A journal as the first release left it: only migration 1.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let mut j = Journal::open(&path).unwrap();
    assert_eq!(j.setting("gate").unwrap(), None);
    j.set_setting("gate", "a").unwrap();
    j.set_setting("gate", "b").unwrap();
    drop(j);
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.setting("gate").unwrap().as_deref(), Some("b"));
    assert_eq!(j.schema_version().unwrap(), MIGRATIONS.len() as i64);
}

#[test]
fn a_new_command_is_stored_with_its_first_transition_and_reply() {
    let (_d, mut j) = open_tmp();
    let r = j
        .insert_new_command(&NewCommand::accepted(&cmd("c1")), Some(&reply("accepted")))
        .unwrap();
    assert_eq!(r, Inserted::New);
    let c = j.get_command("c1").unwrap().unwrap();
    assert_eq!(c.state, ReplyState::Accepted);
    assert_eq!(c.slot, Some(3));
    assert_eq!(c.log_id, "log-c1");
    assert_eq!(c.session.as_deref(), Some("nonce"));
    assert_eq!(
        c.last_reply.as_deref(),
        Some(reply("accepted").payload.as_str())
    );
    assert_eq!(j.transitions("c1").unwrap().len(), 1);
    let out = j.outbox_pending(10).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].cmd_id.as_deref(), Some("c1"));
}

/// The journal's timestamps are the wall clock in milliseconds (the technician's
/// command list and the diagnostics bundle show them).
#[test]
fn commands_are_stamped_with_the_wall_clock() {
    let (_d, mut j) = open_tmp();
    let before = now_ms();
    accepted_then_dispensing(&mut j, "c1");
    let after = now_ms();
    let c = j.get_command("c1").unwrap().unwrap();
    assert!(before > 1_700_000_000_000, "milliseconds since 1970");
    for t in [c.received_at, c.updated_at] {
        assert!(
            (before..=after).contains(&t),
            "{t} not in {before}..={after}"
        );
    }
}

#[test]
fn a_duplicate_insert_returns_the_stored_command_and_writes_nothing() {
    let (_d, mut j) = open_tmp();
    j.insert_new_command(&NewCommand::accepted(&cmd("c1")), Some(&reply("accepted")))
        .unwrap();
    j.transition(
        "c1",
        ReplyState::Dispensing,
        None,
        &Evidence::default(),
        None,
    )
    .unwrap();
    let mut again = NewCommand::accepted(&cmd("c1"));
    again.slot = Some(9); // a redelivery can never change what is stored
    match j
        .insert_new_command(&again, Some(&reply("accepted")))
        .unwrap()
    {
        Inserted::Duplicate(stored) => {
            assert_eq!(stored.state, ReplyState::Dispensing);
            assert_eq!(stored.slot, Some(3));
        }
        Inserted::New => panic!("a redelivered command ID must be a duplicate"),
    }
    assert_eq!(
        j.outbox_pending(10).unwrap().len(),
        1,
        "no second reply enqueued"
    );
    assert_eq!(j.transitions("c1").unwrap().len(), 2);
}

#[test]
fn a_trusted_rejection_is_stored_so_redelivery_gets_the_same_answer() {
    let (_d, mut j) = open_tmp();
    let ids = TrustedIds {
        cmd_id: "c9".into(),
        aud: "GZ-1".into(),
        order_id: "o".into(),
        log_id: "l".into(),
        exp: None,
    };
    let nc = NewCommand::rejected(&ids, Reason::Expired);
    j.insert_new_command(&nc, Some(&reply("rejected"))).unwrap();
    let Inserted::Duplicate(s) = j.insert_new_command(&nc, None).unwrap() else {
        panic!("expected duplicate");
    };
    assert_eq!(s.state, ReplyState::Rejected);
    assert_eq!(s.reason, Some(Reason::Expired));
    assert_eq!(s.slot, None);
    assert_eq!(
        s.last_reply.as_deref(),
        Some(reply("rejected").payload.as_str())
    );
}

#[test]
fn new_commands_cannot_start_in_dispensing_or_succeeded() {
    let (_d, mut j) = open_tmp();
    for st in [ReplyState::Dispensing, ReplyState::Succeeded] {
        let mut nc = NewCommand::accepted(&cmd("c1"));
        nc.state = st;
        assert!(matches!(
            j.insert_new_command(&nc, None),
            Err(JournalError::IllegalInitialState(_))
        ));
    }
    assert!(j.get_command("c1").unwrap().is_none());
    // A control command (no qty: it moves nothing) is done at once.
    let mut done = NewCommand::accepted(&cmd("c2"));
    done.state = ReplyState::Succeeded;
    done.qty = None;
    assert!(matches!(
        j.insert_new_command(&done, None),
        Ok(Inserted::New)
    ));
}

#[test]
fn transition_updates_state_evidence_and_enqueues_the_reply_together() {
    let (_d, mut j) = open_tmp();
    j.insert_new_command(&NewCommand::accepted(&cmd("c1")), None)
        .unwrap();
    j.transition(
        "c1",
        ReplyState::Dispensing,
        None,
        &Evidence::default(),
        Some(&reply("dispensing")),
    )
    .unwrap();
    let ev = Evidence {
        drop_detected: Some(true),
        door_open: None,
        board_status: Some("vmc:02".into()),
        // A cabinet of several boards: the row says which one acted.
        board: Some("vend".into()),
        channel: Some(7),
    };
    let c = j
        .transition(
            "c1",
            ReplyState::Succeeded,
            None,
            &ev,
            Some(&reply("succeeded")),
        )
        .unwrap();
    assert_eq!(c.state, ReplyState::Succeeded);
    assert_eq!(c.evidence, ev);
    assert_eq!(
        c.last_reply.as_deref(),
        Some(reply("succeeded").payload.as_str())
    );
    let states: Vec<_> = j
        .transitions("c1")
        .unwrap()
        .into_iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(
        states,
        [
            ReplyState::Accepted,
            ReplyState::Dispensing,
            ReplyState::Succeeded
        ]
    );
    let out: Vec<_> = j
        .outbox_pending(10)
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(
        out,
        [reply("dispensing").payload, reply("succeeded").payload]
    );
}

#[test]
fn an_illegal_transition_changes_nothing_and_enqueues_nothing() {
    let (_d, mut j) = open_tmp();
    accepted_then_dispensing(&mut j, "c1");
    j.transition(
        "c1",
        ReplyState::Succeeded,
        None,
        &Evidence::default(),
        None,
    )
    .unwrap();
    for to in [
        ReplyState::Dispensing,
        ReplyState::Failed,
        ReplyState::OutcomeUnknown,
        ReplyState::Accepted,
    ] {
        let e = j
            .transition(
                "c1",
                to,
                Some(Reason::Jammed),
                &Evidence::default(),
                Some(&reply("x")),
            )
            .unwrap_err();
        assert!(matches!(e, JournalError::IllegalTransition { .. }), "{e}");
    }
    assert_eq!(
        j.get_command("c1").unwrap().unwrap().state,
        ReplyState::Succeeded
    );
    assert!(j.outbox_pending(10).unwrap().is_empty());
    assert_eq!(j.transitions("c1").unwrap().len(), 3);
}

#[test]
fn dispensing_can_never_become_rejected_or_go_back_to_accepted() {
    let (_d, mut j) = open_tmp();
    accepted_then_dispensing(&mut j, "c1");
    for to in [
        ReplyState::Rejected,
        ReplyState::Accepted,
        ReplyState::Dispensing,
    ] {
        assert!(
            j.transition("c1", to, None, &Evidence::default(), None)
                .is_err(),
            "{to}"
        );
    }
}

#[test]
fn transition_of_an_unknown_command_is_an_error() {
    let (_d, mut j) = open_tmp();
    assert!(matches!(
        j.transition("nope", ReplyState::Failed, None, &Evidence::default(), None),
        Err(JournalError::UnknownCommand(_))
    ));
}

#[test]
fn reopening_after_drop_keeps_commands_outbox_inventory_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    {
        let mut j = Journal::open(&path).unwrap();
        j.insert_new_command(&NewCommand::accepted(&cmd("c1")), Some(&reply("accepted")))
            .unwrap();
        j.transition(
            "c1",
            ReplyState::Dispensing,
            None,
            &Evidence::default(),
            None,
        )
        .unwrap();
        j.seed_inventory(&[slot_cfg(3, 5)]).unwrap();
        j.audit("tech-7", "restock", "slot 3 to 5").unwrap();
    }
    let j = Journal::open(&path).unwrap();
    assert_eq!(
        j.get_command("c1").unwrap().unwrap().state,
        ReplyState::Dispensing
    );
    assert_eq!(j.outbox_pending(10).unwrap().len(), 1);
    assert_eq!(j.inventory().unwrap()[0].count, 5);
    assert_eq!(j.recent_audit(5).unwrap()[0].technician, "tech-7");
}

#[test]
fn startup_recovery_finds_commands_left_dispensing_and_marks_them_outcome_unknown() {
    // The crash-mid-dispense case: on restart the command is found
    // in `dispensing`, reported as outcome_unknown, and can never dispense again.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    {
        let mut j = Journal::open(&path).unwrap();
        for id in ["a", "b", "c"] {
            j.insert_new_command(&NewCommand::accepted(&cmd(id)), None)
                .unwrap();
        }
        j.transition(
            "b",
            ReplyState::Dispensing,
            None,
            &Evidence::default(),
            None,
        )
        .unwrap();
        // process "dies" here
    }
    let mut j = Journal::open(&path).unwrap();
    let stuck = j.commands_in_state(ReplyState::Dispensing).unwrap();
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0].cmd_id, "b");
    j.transition(
        "b",
        ReplyState::OutcomeUnknown,
        Some(Reason::Interrupted),
        &Evidence::default(),
        Some(&reply("outcome_unknown")),
    )
    .unwrap();
    assert!(
        j.commands_in_state(ReplyState::Dispensing)
            .unwrap()
            .is_empty()
    );
    assert!(
        j.transition(
            "b",
            ReplyState::Dispensing,
            None,
            &Evidence::default(),
            None
        )
        .is_err()
    );
    let accepted: Vec<_> = j
        .commands_in_state(ReplyState::Accepted)
        .unwrap()
        .into_iter()
        .map(|c| c.cmd_id)
        .collect();
    assert_eq!(accepted, ["a", "c"]);
}

#[test]
fn migrations_are_idempotent_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    drop(Journal::open(&path).unwrap());
    drop(Journal::open(&path).unwrap());
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.schema_version().unwrap(), MIGRATIONS.len() as i64);
}

#[test]
fn a_journal_from_a_newer_app_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    {
        let j = Journal::open(&path).unwrap();
        j.conn.pragma_update(None, "user_version", 99).unwrap();
    }
    assert!(matches!(
        Journal::open(&path),
        Err(JournalError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn outbox_is_delivered_in_insertion_order_and_ack_removes_exactly_one() {
    let (_d, mut j) = open_tmp();
    let ids: Vec<i64> = (0..5)
        .map(|i| j.enqueue(None, &reply(&format!("m{i}"))).unwrap())
        .collect();
    let pending = j.outbox_pending(3).unwrap();
    assert_eq!(pending.iter().map(|e| e.id).collect::<Vec<_>>(), ids[..3]);
    assert!(j.outbox_ack(ids[1]).unwrap());
    assert!(!j.outbox_ack(ids[1]).unwrap(), "a second ack is harmless");
    let left: Vec<_> = j
        .outbox_pending(10)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, [ids[0], ids[2], ids[3], ids[4]]);
    assert_eq!(j.outbox_len().unwrap(), 4);
}

#[test]
fn unacknowledged_replies_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    {
        let mut j = Journal::open(&path).unwrap();
        j.enqueue(Some("c1"), &reply("succeeded")).unwrap();
        let acked = j.enqueue(Some("c2"), &reply("failed")).unwrap();
        j.outbox_ack(acked).unwrap();
    }
    let j = Journal::open(&path).unwrap();
    let p = j.outbox_pending(10).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].cmd_id.as_deref(), Some("c1"));
}

#[test]
fn recent_commands_are_newest_first_and_find_by_log_id_works() {
    let (_d, mut j) = open_tmp();
    for id in ["a", "b", "c"] {
        j.insert_new_command(&NewCommand::accepted(&cmd(id)), None)
            .unwrap();
    }
    let recent: Vec<_> = j
        .recent_commands(2)
        .unwrap()
        .into_iter()
        .map(|c| c.cmd_id)
        .collect();
    assert_eq!(recent, ["c", "b"]);
    let found = j.find_by_log_id("log-b").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].cmd_id, "b");
    assert!(j.find_by_log_id("log-zzz").unwrap().is_empty());
    assert!(
        j.find_by_log_id("LOG-B").unwrap().is_empty(),
        "exact is exact"
    );
    let typed = j.find_by_log_id_nocase("LOG-B").unwrap();
    assert_eq!(typed.len(), 1);
    assert_eq!(typed[0].cmd_id, "b");
}

#[test]
fn seeding_inserts_missing_slots_only_and_keeps_live_counts() {
    let (_d, mut j) = open_tmp();
    assert_eq!(
        j.seed_inventory(&[slot_cfg(1, 5), slot_cfg(2, 7)]).unwrap(),
        2
    );
    j.decrement_on_drop(1).unwrap();
    // Restart with the same config plus a new slot: slot 1 keeps its live count.
    assert_eq!(
        j.seed_inventory(&[slot_cfg(1, 5), slot_cfg(2, 7), slot_cfg(3, 1)])
            .unwrap(),
        1
    );
    let inv = j.inventory().unwrap();
    assert_eq!(
        inv.iter().map(|s| (s.slot, s.count)).collect::<Vec<_>>(),
        [(1, 4), (2, 7), (3, 1)]
    );
    assert!(inv.iter().all(|s| s.enabled && !s.jammed));
}

#[test]
fn decrement_on_drop_never_goes_below_zero() {
    let (_d, mut j) = open_tmp();
    j.seed_inventory(&[slot_cfg(1, 1)]).unwrap();
    assert_eq!(j.decrement_on_drop(1).unwrap(), 0);
    assert_eq!(j.decrement_on_drop(1).unwrap(), 0);
    assert!(matches!(
        j.decrement_on_drop(42),
        Err(JournalError::UnknownSlot(42))
    ));
}

#[test]
fn restock_refuses_counts_above_capacity() {
    let (_d, mut j) = open_tmp();
    j.seed_inventory(&[slot_cfg(1, 0)]).unwrap();
    j.set_count(1, 10).unwrap();
    assert_eq!(j.slot(1).unwrap().unwrap().count, 10);
    assert!(matches!(
        j.set_count(1, 11),
        Err(JournalError::OverCapacity { .. })
    ));
    assert!(matches!(
        j.set_count(5, 1),
        Err(JournalError::UnknownSlot(5))
    ));
}

#[test]
fn a_door_holds_one_item_whatever_the_config_or_an_older_journal_said() {
    let (_d, mut j) = open_tmp();
    // Slot 1 seeded as a spiral of 10 with 7 left, 2 empty, 3 already a loaded door.
    j.seed_inventory(&[slot_cfg(1, 7), slot_cfg(2, 0), slot_cfg(3, 1)])
        .unwrap();
    j.doors_hold_one(&[3]).unwrap();
    assert_eq!(j.doors_hold_one(&[1, 2, 3]).unwrap(), [1, 2]);
    let rows: Vec<(u32, u32)> = j
        .inventory()
        .unwrap()
        .iter()
        .map(|s| (s.capacity, s.count))
        .collect();
    assert_eq!(rows, [(1, 1), (1, 0), (1, 1)]);
    // Nothing left to correct; a restock loads a door, never beyond one.
    assert!(j.doors_hold_one(&[1, 2, 3]).unwrap().is_empty());
    j.set_count(2, 1).unwrap();
    assert!(matches!(
        j.set_count(2, 2),
        Err(JournalError::OverCapacity { .. })
    ));
}

#[test]
fn jammed_and_disabled_slots_report_why_they_cannot_dispense() {
    let (_d, mut j) = open_tmp();
    j.seed_inventory(&[slot_cfg(1, 3), slot_cfg(2, 0)]).unwrap();
    assert_eq!(j.slot(1).unwrap().unwrap().unavailable_reason(), None);
    assert_eq!(
        j.slot(2).unwrap().unwrap().unavailable_reason(),
        Some(Reason::SlotEmpty)
    );
    j.set_jammed(1, true).unwrap();
    assert_eq!(
        j.slot(1).unwrap().unwrap().unavailable_reason(),
        Some(Reason::SlotJammed)
    );
    j.set_enabled(1, false).unwrap();
    assert_eq!(
        j.slot(1).unwrap().unwrap().unavailable_reason(),
        Some(Reason::SlotDisabled)
    );
    j.set_enabled(1, true).unwrap();
    j.set_jammed(1, false).unwrap();
    assert_eq!(j.slot(1).unwrap().unwrap().unavailable_reason(), None);
    assert!(matches!(
        j.set_jammed(9, true),
        Err(JournalError::UnknownSlot(9))
    ));
    assert!(j.slot(9).unwrap().is_none());
}

#[test]
fn audit_entries_come_back_newest_first() {
    let (_d, mut j) = open_tmp();
    j.audit("t1", "login", "").unwrap();
    j.audit("t1", "clear_jam", "slot 4").unwrap();
    let a = j.recent_audit(10).unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].action, "clear_jam");
    assert_eq!(a[0].detail, "slot 4");
    assert_eq!(j.recent_audit(1).unwrap().len(), 1);
}

#[test]
fn a_flood_of_junk_keeps_the_rejections_to_their_bound_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    let mut j = Journal::open(&path).unwrap();
    j.set_rejection_limits(RejectionLimits {
        max_rows: 200,
        max_age_ms: 86_400_000,
    });
    let junk = |i: u32| format!("junk {i} {}", "x".repeat(300));
    let mut size_at_bound = 0;
    for i in 0..2_000u32 {
        j.record_rejection(Reason::Malformed, junk(i).as_bytes(), None, "not a JWS")
            .unwrap();
        if i == 400 {
            j.conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
            size_at_bound = std::fs::metadata(&path).unwrap().len();
        }
    }
    let rows: i64 = j
        .conn
        .query_row("SELECT COUNT(*) FROM rejections", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 200);
    assert_eq!(j.rejections_dropped().unwrap(), 1_800);
    // The newest are the ones kept.
    assert_eq!(
        j.recent_rejections(1).unwrap()[0].payload_len,
        junk(1_999).len() as u64
    );
    j.conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(
        size <= size_at_bound,
        "the file grew from {size_at_bound} to {size} bytes past the bound"
    );
    // Rows older than the age bound go at the next rejection, whatever the count.
    j.conn
        .execute("UPDATE rejections SET at = at - 2 * 86400000", [])
        .unwrap();
    j.record_rejection(Reason::Malformed, b"new", None, "not a JWS")
        .unwrap();
    assert_eq!(j.recent_rejections(1_000).unwrap().len(), 1);
    assert_eq!(j.rejections_dropped().unwrap(), 2_000);
}

#[test]
fn an_untrusted_payload_and_its_reply_commit_together_without_changing_the_sync_level() {
    let (_d, mut j) = open_tmp();
    let sync = |j: &Journal| -> i64 {
        j.conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(sync(&j), 2, "FULL");
    let reply = OutboxMessage {
        topic: "cabinet/v1/C001/reply".into(),
        payload: "{\"state\":\"rejected\"}".into(),
    };
    j.record_untrusted(Reason::Malformed, b"junk", "not a JWS", &reply)
        .unwrap();
    assert_eq!(sync(&j), 2, "FULL again after the commit");
    assert_eq!(j.recent_rejections(10).unwrap().len(), 1);
    let out = j.outbox_pending(10).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].cmd_id.as_deref(), out[0].payload.as_str()),
        (None, reply.payload.as_str())
    );
}

#[test]
fn rejections_store_a_hash_and_length_never_the_payload() {
    let (_d, mut j) = open_tmp();
    let payload = b"forged.token.SECRET-LOOKING-BODY";
    j.record_rejection(
        Reason::BadSignature,
        payload,
        None,
        "signature does not verify",
    )
    .unwrap();
    let ids = TrustedIds {
        cmd_id: "c1".into(),
        aud: "other".into(),
        order_id: "o".into(),
        log_id: "l1".into(),
        exp: None,
    };
    j.record_rejection(Reason::WrongTarget, b"x", Some(&ids), "aud")
        .unwrap();
    let r = j.recent_rejections(10).unwrap();
    assert_eq!(r[0].reason, Reason::WrongTarget);
    assert_eq!(r[0].log_id.as_deref(), Some("l1"));
    assert_eq!(r[1].reason, Reason::BadSignature);
    assert_eq!(r[1].payload_len, payload.len() as u64);
    assert_eq!(r[1].payload_sha256.len(), 64);
    assert!(r[1].cmd_id.is_none());
    // The body is nowhere in the database file's rejections table.
    let n: i64 = j
        .conn
        .query_row(
            "SELECT COUNT(*) FROM rejections WHERE detail LIKE '%SECRET%' OR payload_sha256 LIKE '%SECRET%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn sha256_of_the_empty_payload_matches_the_known_vector() {
    let (_d, mut j) = open_tmp();
    j.record_rejection(Reason::Malformed, b"", None, "empty")
        .unwrap();
    assert_eq!(
        j.recent_rejections(1).unwrap()[0].payload_sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
