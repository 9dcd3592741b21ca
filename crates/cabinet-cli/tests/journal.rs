//! `cabinet journal ...` as an operator runs it: the built binary against a temporary
//! cabinet (config, journal, witness), the journal filled and damaged through
//! cabinet-core and SQLite directly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cabinet_core::Reason;
use cabinet_core::instance::InstanceLock;
use cabinet_core::journal::{Durability, Journal, NewCommand, OutboxMessage};
use cabinet_core::protocol::{Evidence, ReplyState, TrustedIds};
use cabinet_core::witness::{self, Verdict};
use cabinet_testkit::SiteConfig;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cabinet");
const DAY_MS: i64 = 86_400_000;

/// A cabinet's files in a temporary directory.
struct Cab {
    dir: tempfile::TempDir,
    config: PathBuf,
    journal: PathBuf,
    witness: PathBuf,
}

impl Cab {
    fn new() -> Cab {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        SiteConfig::new("C001")
            .broker_url("mqtt://127.0.0.1:1")
            .key("k1", "OFs-zWo0yl11xXTONdtio_I6LxhKY6V69ovhB51ABFU")
            .board_port("/nonexistent/board")
            .journal_path("data/journal.sqlite3")
            .logs_dir("logs")
            .write(&config);
        Cab {
            journal: dir.path().join("data/journal.sqlite3"),
            witness: dir.path().join("data/journal.sqlite3.witness"),
            dir,
            config,
        }
    }

    /// `cabinet journal <args> --config <config>`: exit code, stdout, stderr.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .arg("journal")
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// [`Cab::run`] for the commands that print one JSON document.
    fn json(&self, args: &[&str]) -> (i32, Value) {
        let (code, stdout, stderr) = self.run(args);
        let v = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{stdout}\nstderr: {stderr}"));
        (code, v)
    }

    /// Opens the journal as the kiosk's start does: a trusted journal gets its witness.
    fn start(&self) -> Journal {
        let opened = Journal::open_checked(&self.journal, Durability::Normal).unwrap();
        let verdict = witness::judge(&opened, witness::read(&self.witness));
        assert_eq!(verdict, Verdict::Trusted, "the test cabinet starts trusted");
        witness::write(&self.witness, &opened.journal).unwrap();
        opened.journal
    }

    fn remove_journal(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.journal.display()));
        }
    }

    /// Everything in the WAL written into the database file, and no WAL left.
    fn checkpoint(&self) {
        let c = rusqlite::Connection::open(&self.journal).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    }

    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.journal.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn reply() -> OutboxMessage {
    OutboxMessage {
        topic: "cabinet/v1/C001/reply".into(),
        payload: "{\"state\":\"succeeded\"}".into(),
    }
}

/// A command moved to `state` with its replies acknowledged, received `age_ms` ago
/// with a token long dead (or alive, when `age_ms` is 0).
fn command(j: &mut Journal, id: &str, state: ReplyState, age_ms: i64) {
    let now = i64::try_from(cabinet_core::kiosk::now_ms()).unwrap();
    let at = now - age_ms;
    let nc = NewCommand {
        cmd_id: id.into(),
        log_id: format!("log-{id}"),
        order_id: format!("order-{id}"),
        slot: Some(1),
        qty: Some(1),
        session: None,
        state: if state == ReplyState::Rejected {
            ReplyState::Rejected
        } else {
            ReplyState::Accepted
        },
        reason: (state == ReplyState::Rejected).then_some(Reason::Expired),
        expires_at: Some(at / 1000 + 60),
    };
    j.insert_new_command(&nc, Some(&reply())).unwrap();
    if state == ReplyState::Succeeded {
        for s in [ReplyState::Dispensing, ReplyState::Succeeded] {
            j.transition(id, s, None, &Evidence::default(), Some(&reply()))
                .unwrap();
        }
    }
    for e in j.outbox_pending(100).unwrap() {
        j.outbox_ack(e.id).unwrap();
    }
    let c = rusqlite::Connection::open(j.path()).unwrap();
    c.execute(
        "UPDATE commands SET received_at = ?2, updated_at = ?2 WHERE cmd_id = ?1",
        rusqlite::params![id, at],
    )
    .unwrap();
}

/// `old` succeeded commands 40 days old, `young` from the last hour, one still
/// accepted with its reply waiting, an audit row and a refused payload.
fn populate(j: &mut Journal, old: usize, young: usize) {
    for i in 0..old {
        command(
            j,
            &format!("old-{i:04}"),
            ReplyState::Succeeded,
            40 * DAY_MS,
        );
    }
    for i in 0..young {
        command(
            j,
            &format!("young-{i:04}"),
            ReplyState::Succeeded,
            3_600_000,
        );
    }
    command(j, "refused", ReplyState::Rejected, 40 * DAY_MS);
    let waiting = NewCommand {
        cmd_id: "waiting".into(),
        log_id: "log-waiting".into(),
        order_id: "order-waiting".into(),
        slot: Some(2),
        qty: Some(1),
        session: None,
        state: ReplyState::Accepted,
        reason: None,
        expires_at: Some(9_999_999_999),
    };
    j.insert_new_command(&waiting, Some(&reply())).unwrap();
    j.audit("ana", "restock", "slot 1: 10").unwrap();
    let ids = TrustedIds {
        cmd_id: "forged".into(),
        aud: "C001".into(),
        order_id: "o".into(),
        log_id: "l".into(),
        exp: None,
    };
    j.record_rejection(Reason::BadSignature, b"junk", Some(&ids), "bad signature")
        .unwrap();
}

fn loss(v: &Value) -> &str {
    v["verdict"]["loss"].as_str().unwrap_or("")
}

#[test]
fn stats_on_a_fresh_and_a_populated_journal() {
    let cab = Cab::new();
    let (code, _, err) = cab.run(&["stats"]);
    assert_eq!(code, 2);
    assert!(err.contains("there is no journal at"), "{err}");
    assert!(!cab.journal.exists(), "stats created the journal");

    let mut j = cab.start();
    let id = j.identity().unwrap();
    let (code, v) = cab.json(&["stats"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["journal_id"], id.id.as_str());
    assert_eq!(v["schema_version"], j.schema_version().unwrap());
    assert_eq!(v["rows"]["commands"], 0);
    assert_eq!(v["rows"]["commands_by_state"]["succeeded"], 0);
    assert_eq!(v["auto_vacuum"], "incremental");
    assert!(v["file_bytes"]["database"].as_u64().unwrap() > 0);
    assert!(v["disk_free_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["retention"]["max_commands"], 50_000);
    assert_eq!(v["retention"]["keep_commands_days"], 30);
    assert!(v["oldest_command_ms"].is_null());

    populate(&mut j, 5, 3);
    let (code, v) = cab.json(&["stats"]);
    assert_eq!(code, 0);
    assert_eq!(v["rows"]["commands"], 10);
    assert_eq!(v["rows"]["commands_by_state"]["succeeded"], 8);
    assert_eq!(v["rows"]["commands_by_state"]["rejected"], 1);
    assert_eq!(v["rows"]["commands_by_state"]["accepted"], 1);
    assert_eq!(v["rows"]["command_transitions"], 8 * 3 + 2);
    assert_eq!(v["rows"]["outbox"], 1);
    assert_eq!(v["rows"]["audit"], 1);
    assert_eq!(v["rows"]["rejections"], 1);
    assert_eq!(v["high_water"], 26);
    assert!(v["oldest_command_ms"].as_i64() < v["newest_command_ms"].as_i64());
}

#[test]
fn check_trusts_the_journal_its_witness_names() {
    let cab = Cab::new();
    // No journal and no witness: a first start, nothing created.
    let (code, v) = cab.json(&["check"]);
    assert_eq!((code, v["found"].as_str()), (0, Some("missing")), "{v}");
    assert_eq!(v["verdict"], "trusted");
    assert!(!cab.journal.exists());

    let mut j = cab.start();
    populate(&mut j, 2, 2);
    let (code, v) = cab.json(&["check"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["found"], "journal");
    assert_eq!(v["integrity"], "ok");
    assert_eq!(v["verdict"], "trusted");
    assert_eq!(v["journal"]["id"], j.identity().unwrap().id.as_str());
    assert_eq!(
        v["witness"]["journal"]["id"],
        j.identity().unwrap().id.as_str()
    );
    let (code, v) = cab.json(&["check", "--full"]);
    assert_eq!((code, v["check"].as_str()), (0, Some("full")), "{v}");
}

#[test]
fn check_on_a_deleted_journal_says_missing_and_creates_nothing() {
    let cab = Cab::new();
    drop(cab.start());
    cab.remove_journal();
    let (code, v) = cab.json(&["check"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["found"], "missing");
    assert_eq!(loss(&v), "missing");
    assert!(
        v["what_to_do"]
            .as_str()
            .unwrap()
            .contains("confirm-fresh-start")
    );
    assert!(!cab.journal.exists(), "check created a journal");
}

#[test]
fn check_on_an_emptied_journal_says_empty() {
    let cab = Cab::new();
    drop(cab.start());
    cab.remove_journal();
    std::fs::write(&cab.journal, b"").unwrap();
    let (code, v) = cab.json(&["check"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(loss(&v), "empty");
    assert_eq!(
        std::fs::metadata(&cab.journal).unwrap().len(),
        0,
        "written to"
    );
}

#[test]
fn check_on_a_corrupt_journal_says_so_and_leaves_the_file_as_it_was() {
    let cab = Cab::new();
    let mut j = cab.start();
    populate(&mut j, 50, 10);
    drop(j);
    cab.checkpoint();
    let mut bytes = std::fs::read(&cab.journal).unwrap();
    // Page 1 is the header and schema, page 2 the auto-vacuum pointer map: break the
    // b-tree pages after them.
    let page = 4096;
    assert!(bytes.len() >= 4 * page, "{} bytes", bytes.len());
    for start in (2 * page..bytes.len()).step_by(page) {
        bytes[start..start + 16].fill(0xA5);
    }
    std::fs::write(&cab.journal, &bytes).unwrap();
    let files = cab.files();

    for args in [&["check"][..], &["check", "--full"][..]] {
        let (code, v) = cab.json(args);
        assert_eq!(code, 1, "{v}");
        assert_eq!(v["found"], "journal");
        assert_eq!(loss(&v), "corrupt", "{v}");
        assert_ne!(v["integrity"], "ok");
        assert!(v["integrity"].is_string());
    }
    assert!(
        std::fs::read(&cab.journal).unwrap() == bytes,
        "check changed the file"
    );
    // Nothing moved aside (SQLite's own -shm/-wal of a reader aside).
    let is_ours = |f: &String| !f.ends_with("-shm") && !f.ends_with("-wal");
    assert_eq!(
        cab.files().into_iter().filter(is_ours).collect::<Vec<_>>(),
        files.into_iter().filter(is_ours).collect::<Vec<_>>()
    );
    // Prune and compact refuse it rather than set it aside.
    let (code, _, err) = cab.run(&["prune"]);
    assert_eq!(code, 2);
    assert!(err.contains("integrity check"), "{err}");
    assert!(
        std::fs::read(&cab.journal).unwrap() == bytes,
        "prune changed the file"
    );
}

#[test]
fn prune_dry_run_deletes_nothing_and_prune_removes_old_finished_commands() {
    let cab = Cab::new();
    let mut j = cab.start();
    populate(&mut j, 30, 5);
    drop(j);

    let (code, v) = cab.json(&["prune", "--dry-run"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["dry_run"], true);
    // 30 old succeeded (3 transitions each) and the old refused one (1).
    assert_eq!(v["would_remove"]["commands"], 31);
    assert_eq!(v["would_remove"]["transitions"], 91);
    assert_eq!(v["commands"], 37);
    assert_eq!(v["retention"]["keep_commands_days"], 30);
    let (_, s) = cab.json(&["stats"]);
    assert_eq!(s["rows"]["commands"], 37, "the dry run deleted");
    assert_eq!(s["commands_pruned"], 0);
    assert_eq!(s["rows"]["command_transitions"], 35 * 3 + 2);

    let (code, v) = cab.json(&["prune"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["removed"]["commands"], 31);
    assert_eq!(v["removed"]["transitions"], 91);
    assert_eq!(v["commands"], 6);
    assert_eq!(v["commands_pruned_total"], 31);
    assert!(v["took_ms"].is_u64());
    assert!(v["file_bytes_before"]["total"].as_u64().unwrap() > 0);
    assert!(v["file_bytes_after"]["total"].as_u64().unwrap() > 0);

    let j = Journal::open(&cab.journal).unwrap();
    assert!(j.get_command("old-0000").unwrap().is_none());
    assert!(j.get_command("young-0000").unwrap().is_some());
    assert!(j.get_command("waiting").unwrap().is_some());
    drop(j);
    let (_, v) = cab.json(&["prune", "--dry-run"]);
    assert_eq!(v["would_remove"]["commands"], 0);
}

#[test]
fn export_writes_every_row_as_a_json_line_streamed_to_stdout_or_a_file() {
    let cab = Cab::new();
    let mut j = cab.start();
    populate(&mut j, 20, 5);
    let id = j.identity().unwrap();

    let (code, stdout, err) = cab.run(&["export"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // header, 27 commands, 1 audit, 1 rejection, 1 pending reply, end.
    assert_eq!(lines.len(), 1 + 27 + 1 + 1 + 1 + 1);
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(lines[0]["journal"]["id"], id.id.as_str());
    assert_eq!(lines[0]["schema_version"], j.schema_version().unwrap());
    assert!(lines[0]["exported_at_ms"].as_u64().unwrap() > 0);
    let count = |t: &str| lines.iter().filter(|l| l["type"] == t).count();
    assert_eq!(
        (
            count("command"),
            count("audit"),
            count("rejection"),
            count("outbox")
        ),
        (27, 1, 1, 1)
    );
    let first = &lines[1];
    assert_eq!(first["type"], "command");
    assert_eq!(first["transitions"].as_array().unwrap().len(), 3);
    assert_eq!(first["transitions"][2]["state"], "succeeded");
    let transitions: usize = lines
        .iter()
        .filter_map(|l| l["transitions"].as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(transitions, 25 * 3 + 2);
    let end = lines.last().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["commands"].as_u64()),
        (Some("end"), Some(27))
    );
    assert_eq!(lines[27]["cmd_id"], "waiting", "oldest first");
    assert_eq!(lines[30]["type"], "outbox");
    assert_eq!(lines[30]["cmd_id"], "waiting");

    // To a file, from a time on: the file holds the lines, stdout the summary.
    let out = cab.dir.path().join("export.jsonl");
    let since = i64::try_from(cabinet_core::kiosk::now_ms()).unwrap() - DAY_MS;
    let (code, v) = cab.json(&[
        "export",
        "--out",
        out.to_str().unwrap(),
        "--since",
        &since.to_string(),
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["exported"]["commands"], 6, "{v}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 1 + 6 + 1 + 1 + 1 + 1);
    for l in text.lines() {
        let _: Value = serde_json::from_str(l).unwrap();
    }
    assert_eq!(v["bytes"], text.len());
    assert!(!Path::new(&format!("{}.partial", out.display())).exists());
}

/// A journal from before retention (auto_vacuum none) that held many commands once.
fn bloated(cab: &Cab) {
    std::fs::create_dir_all(cab.journal.parent().unwrap()).unwrap();
    {
        let c = rusqlite::Connection::open(&cab.journal).unwrap();
        c.execute_batch("PRAGMA auto_vacuum = NONE; PRAGMA journal_mode = WAL; CREATE TABLE old_history (x BLOB);")
            .unwrap();
    }
    let mut j = cab.start();
    populate(&mut j, 300, 0);
    drop(j);
    let c = rusqlite::Connection::open(&cab.journal).unwrap();
    c.execute_batch(
        "DELETE FROM command_transitions WHERE cmd_id LIKE 'old-%'; \
         DELETE FROM commands WHERE cmd_id LIKE 'old-%'; \
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
}

#[test]
fn compact_is_refused_while_the_kiosk_runs_and_shrinks_the_file_otherwise() {
    let cab = Cab::new();
    bloated(&cab);
    let (_, s) = cab.json(&["stats"]);
    assert_eq!(s["auto_vacuum"], "none");
    assert!(s["freelist_pages"].as_u64().unwrap() > 10, "{s}");
    let size = std::fs::metadata(&cab.journal).unwrap().len();

    let lock = InstanceLock::acquire(&cab.journal.with_extension("sqlite3.lock")).unwrap();
    let (code, stdout, err) = cab.run(&["compact"]);
    assert_eq!(code, 1, "{stdout}{err}");
    assert!(err.contains("the kiosk is running"), "{err}");
    assert!(err.contains(&std::process::id().to_string()), "{err}");
    assert_eq!(std::fs::metadata(&cab.journal).unwrap().len(), size);
    drop(lock);

    let (code, v) = cab.json(&["compact"]);
    assert_eq!(code, 0, "{v}");
    let after = v["file_bytes_after"]["database"].as_u64().unwrap();
    assert!(after < size / 2, "{size} -> {after}: {v}");
    assert_eq!(v["file_bytes_before"]["database"], size);
    assert_eq!(v["auto_vacuum_before"], "none");
    assert_eq!(v["auto_vacuum_after"], "incremental");
    assert_eq!(std::fs::metadata(&cab.journal).unwrap().len(), after);
    let (code, v) = cab.json(&["check"]);
    assert_eq!(code, 0, "compacted journal not trusted: {v}");
    let (_, s) = cab.json(&["stats"]);
    assert_eq!(
        (s["rows"]["commands"].as_u64(), s["freelist_pages"].as_u64()),
        (Some(2), Some(0))
    );
}

#[test]
fn confirm_fresh_start_writes_nothing_without_yes_and_makes_the_journal_trusted_with_it() {
    let cab = Cab::new();
    let mut j = cab.start();
    populate(&mut j, 3, 0);
    drop(j);

    // Trusted: nothing to confirm, nothing written.
    let witness_before = std::fs::read(&cab.witness).unwrap();
    let (code, v) = cab.json(&["confirm-fresh-start", "--by", "ana", "--yes"]);
    assert_eq!((code, v["confirmed"].as_bool()), (0, Some(false)), "{v}");
    assert_eq!(std::fs::read(&cab.witness).unwrap(), witness_before);

    cab.remove_journal();
    let (code, v) = cab.json(&["confirm-fresh-start", "--by", "ana"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["confirmed"], false);
    assert_eq!(v["verdict"]["loss"], "missing");
    assert!(
        v["would"][0]
            .as_str()
            .unwrap()
            .contains("create a new, empty journal"),
        "{v}"
    );
    assert!(v["note"].as_str().unwrap().contains("issued"), "{v}");
    let now_s = i64::try_from(cabinet_core::kiosk::now_ms() / 1000).unwrap();
    let until = v["refuses_tokens_issued_until_s"].as_i64().unwrap();
    assert!(
        (now_s + 30 - until).abs() <= 2,
        "{until} vs {now_s} + the 30 s skew"
    );
    assert!(!cab.journal.exists(), "a journal was created without --yes");
    assert_eq!(std::fs::read(&cab.witness).unwrap(), witness_before);
    assert!(!cab.journal.with_extension("sqlite3.lock").exists());

    let (code, v) = cab.json(&["confirm-fresh-start", "--by", "ana", "--yes"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["confirmed"], true);
    assert_eq!(v["lost"]["loss"], "missing");
    assert_eq!(v["by"], "ana");
    assert_ne!(std::fs::read(&cab.witness).unwrap(), witness_before);
    assert!(v["refuses_tokens_issued_until_s"].as_i64().unwrap() >= until);

    let (code, c) = cab.json(&["check"]);
    assert_eq!(code, 0, "{c}");
    assert_eq!(c["verdict"], "trusted");
    assert_eq!(c["journal"]["id"], v["journal"]["id"]);
    let j = Journal::open(&cab.journal).unwrap();
    let audit = j.recent_audit(5).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].id, v["audit_id"].as_i64().unwrap());
    assert_eq!(
        (audit[0].technician.as_str(), audit[0].action.as_str()),
        ("ana", "journal_fresh_start")
    );
    assert!(audit[0].detail.contains("missing"), "{}", audit[0].detail);
    // What the kiosk refuses tokens by: the confirmation, recorded in the new journal.
    assert_eq!(
        witness::fresh_start_at(&j).map(|t| t + 30),
        v["refuses_tokens_issued_until_s"].as_i64()
    );
}

#[test]
fn confirm_fresh_start_sets_a_corrupt_journal_aside_like_the_kiosk_start() {
    let cab = Cab::new();
    let mut j = cab.start();
    populate(&mut j, 50, 0);
    drop(j);
    cab.checkpoint();
    let mut bytes = std::fs::read(&cab.journal).unwrap();
    for start in (2 * 4096..bytes.len()).step_by(4096) {
        bytes[start..start + 16].fill(0xA5);
    }
    std::fs::write(&cab.journal, &bytes).unwrap();

    let (code, v) = cab.json(&["confirm-fresh-start", "--by", "ana"]);
    assert_eq!((code, loss(&v)), (1, "corrupt"), "{v}");
    assert!(
        std::fs::read(&cab.journal).unwrap() == bytes,
        "changed without --yes"
    );

    let (code, v) = cab.json(&["confirm-fresh-start", "--by", "ana", "--yes"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["lost"]["loss"], "corrupt");
    let aside = PathBuf::from(v["set_aside"].as_str().unwrap());
    assert!(
        std::fs::read(&aside).unwrap() == bytes,
        "the corrupt file was not kept"
    );
    let (code, c) = cab.json(&["check"]);
    assert_eq!((code, c["verdict"].as_str()), (0, Some("trusted")), "{c}");
}

/// Root (or anyone) running the tools on a journal another user owns would leave files
/// beside it the kiosk cannot open: refused, with the command to run instead.
#[test]
fn the_tools_refuse_to_run_as_another_user_than_the_journals_owner() {
    let cab = Cab::new();
    drop(cab.start());
    let data = cab.journal.parent().unwrap();
    let nobody = 65_432;
    if std::os::unix::fs::chown(&cab.journal, Some(nobody), None).is_err() {
        eprintln!("not root: cannot give the journal to another user, skipped");
        return;
    }
    std::os::unix::fs::chown(data, Some(nobody), None).unwrap();
    let files = cab.files();
    for args in [&["stats"][..], &["check"][..], &["compact"][..]] {
        let (code, stdout, err) = cab.run(args);
        assert_eq!(code, 2, "{args:?}: {stdout}{err}");
        assert!(err.contains("sudo -u '#65432' cabinet journal"), "{err}");
    }
    assert_eq!(cab.files(), files, "a file was created");
}
