//! Upgrade from the release before retention: a journal written by that release's own
//! binary (schema 2, `auto_vacuum = NONE`) is opened by this code, migrated to the current schema (4),
//! and every row that matters is still there, read through the journal's API; retention
//! then judges the old rows (no `expires_at`) by when they were received.
//!
//! The journal is `tests/fixtures/journal-schema2.sql`, a `sqlite3 .dump` of a real
//! journal: `cabinet` at 59b31ed (`cabinet run` against Mosquitto and `cabinet
//! sim-board`) was sent one command that succeeded, one refused `slot_empty`, one that
//! failed on a jam, one for another cabinet, one expired, hostile payloads (a forged
//! signature, junk, a bad signature length, an oversize payload), and one command whose
//! `succeeded` reply the broker never acknowledged (Mosquitto stopped with SIGSTOP during
//! the dispense), then stopped. The exact commands are in `tests/fixtures/README.md`.
//! `.dump` does not keep `PRAGMA user_version`: it was 2, and is set here after loading.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use cabinet_core::config::{CLOCK_SKEW_CEILING_SECS, TOKEN_LIFETIME_CEILING_SECS};
use cabinet_core::journal::{Journal, StoredCommand};
use cabinet_core::protocol::ReplyState;
use cabinet_core::retention::{Pruned, Retention};
use rusqlite::Connection;

const FIXTURE: &str = include_str!("fixtures/journal-schema2.sql");

/// The oldest and the newest `received_at` in the fixture (unix ms).
const FIRST_RECEIVED: i64 = 1_796_306_905_802;
const LAST_RECEIVED: i64 = 1_796_306_958_675;

/// Loads the dump into a new file at `path`, as that release left it.
fn load(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "auto_vacuum", "NONE").unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(FIXTURE).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
}

fn upgraded() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    load(&path);
    let j = Journal::open(&path).unwrap();
    (dir, j)
}

/// A second connection, for what the journal's API does not show.
fn sql(j: &Journal) -> Connection {
    Connection::open(j.path()).unwrap()
}

fn command(j: &Journal, id: &str) -> StoredCommand {
    j.get_command(id)
        .unwrap()
        .unwrap_or_else(|| panic!("{id} is gone"))
}

fn reason(c: &StoredCommand) -> Option<&'static str> {
    c.reason.map(|r| r.code())
}

/// The state (and reason) of every transition of `id`, in order.
fn history(j: &Journal, id: &str) -> Vec<(&'static str, Option<&'static str>)> {
    j.transitions(id)
        .unwrap()
        .into_iter()
        .map(|t| (t.state.as_str(), t.reason.map(|r| r.code())))
        .collect()
}

#[test]
fn the_fixture_is_a_schema_2_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    load(&path);
    let conn = Connection::open(&path).unwrap();
    let has_expires_at: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('commands') WHERE name = 'expires_at'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(has_expires_at, 0);
    let settings: i64 = conn
        .query_row("SELECT COUNT(*) FROM settings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(settings, 0, "that release wrote no setting in this run");
}

#[test]
fn opening_migrates_to_4_and_gives_the_journal_an_identity_and_no_documents() {
    let (_dir, j) = upgraded();
    assert_eq!(j.schema_version().unwrap(), 4);
    // Step 4: the operator's documents; none yet, so the config file's keys are in force.
    assert_eq!(j.document("keys").unwrap(), None);
    assert_eq!(j.document("config").unwrap(), None);
    let id = j.identity().unwrap();
    assert_eq!(id.id.len(), 32);
    assert!(id.id.chars().all(|c| c.is_ascii_hexdigit()));
    // Given at the upgrade, not at the journal's (unknown) creation.
    assert!(id.created_at_ms > LAST_RECEIVED, "{id:?}");
    // Twelve transitions were ever written.
    assert_eq!(id.high_water, 12);
    // Stable: opening again does not give a new one.
    let path = j.path().to_owned();
    drop(j);
    assert_eq!(Journal::open(&path).unwrap().identity().unwrap().id, id.id);
    // The file keeps the auto_vacuum it was created with.
    let av: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(av, 0);
}

#[test]
fn every_command_survives_with_its_state_reason_evidence_reply_and_transitions() {
    let (_dir, j) = upgraded();
    let n: i64 = sql(&j)
        .query_row("SELECT COUNT(*) FROM commands", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 6);

    let ok = command(&j, "fx-ok-1");
    assert_eq!(
        (ok.log_id.as_str(), ok.order_id.as_str()),
        ("log-ok-1", "order-ok-1")
    );
    assert_eq!(
        (ok.slot, ok.qty, ok.session.as_deref()),
        (Some(1), Some(1), None)
    );
    assert_eq!((ok.state, reason(&ok)), (ReplyState::Succeeded, None));
    assert_eq!(ok.evidence.drop_detected, Some(true));
    assert_eq!(ok.evidence.board_status.as_deref(), Some("dispensed"));
    assert_eq!(
        (ok.received_at, ok.updated_at),
        (FIRST_RECEIVED, 1_796_306_906_273)
    );
    let reply: serde_json::Value = serde_json::from_str(ok.last_reply.as_deref().unwrap()).unwrap();
    assert_eq!(reply["state"], "succeeded");
    assert_eq!(reply["seq"], 3);
    assert_eq!(reply["evidence"]["drop_detected"], true);
    assert_eq!(
        history(&j, "fx-ok-1"),
        [
            ("accepted", None),
            ("dispensing", None),
            ("succeeded", None)
        ]
    );
    let at: Vec<i64> = j
        .transitions("fx-ok-1")
        .unwrap()
        .iter()
        .map(|t| t.at)
        .collect();
    assert_eq!(at, [FIRST_RECEIVED, 1_796_306_905_838, 1_796_306_906_273]);

    let empty = command(&j, "fx-empty-2");
    assert_eq!(
        (empty.state, reason(&empty), empty.slot),
        (ReplyState::Rejected, Some("slot_empty"), None)
    );
    assert_eq!(
        history(&j, "fx-empty-2"),
        [("rejected", Some("slot_empty"))]
    );

    let jam = command(&j, "fx-jam-3");
    assert_eq!(
        (jam.state, reason(&jam), jam.slot),
        (ReplyState::Failed, Some("jammed"), Some(3))
    );
    assert_eq!(jam.evidence.board_status.as_deref(), Some("jammed"));
    assert_eq!(jam.evidence.drop_detected, None);
    assert_eq!(
        history(&j, "fx-jam-3"),
        [
            ("accepted", None),
            ("dispensing", None),
            ("failed", Some("jammed"))
        ]
    );

    for (id, code) in [
        ("fx-elsewhere-6", "wrong_target"),
        ("fx-expired-4", "expired"),
    ] {
        let c = command(&j, id);
        assert_eq!(
            (c.state, reason(&c)),
            (ReplyState::Rejected, Some(code)),
            "{id}"
        );
        assert_eq!(history(&j, id), [("rejected", Some(code))], "{id}");
        let reply: serde_json::Value =
            serde_json::from_str(c.last_reply.as_deref().unwrap()).unwrap();
        assert_eq!(reply["reason"], code, "{id}");
    }

    let unacked = command(&j, "fx-unacked-7");
    assert_eq!(unacked.state, ReplyState::Succeeded);
    assert_eq!(unacked.received_at, LAST_RECEIVED);
    assert_eq!(history(&j, "fx-unacked-7").len(), 3);

    // A redelivery of any of them is still a duplicate: deduplication survived.
    assert_eq!(
        j.find_by_log_id("log-jam-3").unwrap(),
        vec![command(&j, "fx-jam-3")]
    );
    assert!(
        j.commands_in_state(ReplyState::Dispensing)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn old_commands_have_no_expiry_and_the_new_column_is_there() {
    let (_dir, j) = upgraded();
    let (rows, with_exp): (i64, i64) = sql(&j)
        .query_row(
            "SELECT COUNT(*), COUNT(expires_at) FROM commands",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, with_exp), (6, 0));
    let index: i64 = sql(&j)
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = 'outbox_by_cmd'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index, 1);
}

#[test]
fn the_outbox_inventory_rejections_and_empty_audit_survive() {
    let (_dir, j) = upgraded();

    let outbox = j.outbox_pending(10).unwrap();
    assert_eq!(outbox.len(), 1);
    let o = &outbox[0];
    assert_eq!(o.id, 17);
    assert_eq!(o.cmd_id.as_deref(), Some("fx-unacked-7"));
    assert_eq!(o.topic, "cabinet/v1/FX-0001/reply");
    assert_eq!(o.created_at, 1_796_306_959_146);
    let reply: serde_json::Value = serde_json::from_str(&o.payload).unwrap();
    assert_eq!(
        (reply["state"].as_str(), reply["seq"].as_u64()),
        (Some("succeeded"), Some(17))
    );
    // New rows go after the old ones (AUTOINCREMENT kept its counter).
    let mut j = j;
    let next = j
        .enqueue(
            None,
            &cabinet_core::journal::OutboxMessage {
                topic: "t".into(),
                payload: "{}".into(),
            },
        )
        .unwrap();
    assert_eq!(next, 18);

    let inv: Vec<_> = j
        .inventory()
        .unwrap()
        .into_iter()
        .map(|s| (s.slot, s.product, s.capacity, s.count, s.enabled, s.jammed))
        .collect();
    assert_eq!(
        inv,
        [
            (1, "Umbrella".to_owned(), 10, 8, true, false),
            (2, "Power bank".to_owned(), 8, 0, true, false),
            (3, "Phone charger".to_owned(), 12, 12, true, true),
        ]
    );

    let rej: Vec<_> = j
        .recent_rejections(10)
        .unwrap()
        .into_iter()
        .rev()
        .map(|r| (r.id, r.reason.code(), r.payload_len, r.cmd_id, r.detail))
        .collect();
    assert_eq!(
        rej,
        [
            (
                1,
                "bad_signature",
                360,
                None,
                "signature does not verify".to_owned()
            ),
            (
                2,
                "malformed",
                24,
                None,
                "not a compact JWS (want header.payload.signature)".to_owned()
            ),
            (
                3,
                "bad_signature",
                29,
                None,
                "signature must be 64 bytes, got 3".to_owned()
            ),
            (
                4,
                "malformed",
                268,
                None,
                "not a compact JWS (want header.payload.signature)".to_owned()
            ),
            (
                5,
                "oversize",
                5000,
                None,
                "payload is 5000 bytes, limit is 4096".to_owned()
            ),
        ]
    );
    assert_eq!(
        j.recent_rejections(10).unwrap()[4].payload_sha256,
        "78ca93a2ce9a3e304a2e014b75bd107d73c26d03c0e19f4ab66175c156793f34"
    );
    assert_eq!(j.rejections_dropped().unwrap(), 0);

    // That release had no technician entry on a headless cabinet: no audit rows, and the
    // table still takes them.
    assert!(j.recent_audit(10).unwrap().is_empty());
    assert_eq!(j.audit("tech-1", "login", "").unwrap(), 1);

    // Settings: only what migration 3 added.
    let keys: Vec<String> = sql(&j)
        .prepare("SELECT key FROM settings ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys, ["journal_created_at", "journal_id"]);
}

/// When retention may first prune a command received at `at` whose `exp` is unknown
/// (retention.rs): once no token of any cabinet could still be alive.
fn dead_after(at: i64) -> i64 {
    (at / 1000 + TOKEN_LIFETIME_CEILING_SECS + CLOCK_SKEW_CEILING_SECS) * 1000
        + CLOCK_SKEW_CEILING_SECS * 1000
}

#[test]
fn retention_judges_old_rows_by_when_they_were_received() {
    let (_dir, mut j) = upgraded();
    let r = Retention::default();
    // Now (the fixture's day): nothing is old enough, and six commands are far below the
    // count.
    assert_eq!(
        j.prune_plan(&r, LAST_RECEIVED + 60_000).unwrap(),
        Pruned::default()
    );
    // By the count alone (keep nothing by age): no command is pruned while a token
    // received with it could be alive, judged from received_at since exp is unknown.
    let by_count = Retention {
        keep_ms: 0,
        max_commands: 1,
    };
    assert_eq!(
        j.prune_plan(&by_count, dead_after(FIRST_RECEIVED)).unwrap(),
        Pruned::default()
    );
    assert_eq!(
        j.prune_plan(&by_count, dead_after(FIRST_RECEIVED) + 1)
            .unwrap(),
        Pruned {
            commands: 1,
            transitions: 3
        }
    );
    // Far in the future: every finished command goes but the one whose reply the broker
    // never acknowledged.
    let later = LAST_RECEIVED + 365 * 86_400_000;
    let plan = j.prune_plan(&r, later).unwrap();
    assert_eq!(
        plan,
        Pruned {
            commands: 5,
            transitions: 9
        }
    );
    assert_eq!(j.prune(&r, later, |_| true).unwrap(), plan);
    let left: Vec<String> = sql(&j)
        .prepare("SELECT cmd_id FROM commands")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, ["fx-unacked-7"]);
    assert_eq!(history(&j, "fx-unacked-7").len(), 3);
    assert!(j.transitions("fx-ok-1").unwrap().is_empty());
    assert_eq!(j.outbox_pending(10).unwrap().len(), 1);
    assert_eq!(j.commands_pruned().unwrap(), 5);
    // The AUTOINCREMENT counter does not go back: the witness's high-water mark holds.
    assert_eq!(j.identity().unwrap().high_water, 12);

    // A journal from before retention gives its pages back only when compacted, which
    // also switches it to incremental auto-vacuum; nothing is lost on the way.
    j.compact().unwrap();
    let av: i64 = sql(&j)
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(av, 2);
    assert_eq!(command(&j, "fx-unacked-7").state, ReplyState::Succeeded);
    assert_eq!(j.recent_rejections(10).unwrap().len(), 5);
    assert_eq!(j.inventory().unwrap().len(), 3);
}
