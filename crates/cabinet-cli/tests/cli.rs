//! `cabinet sim-board` and `cabinet board` working together as separate processes, the way
//! a technician uses them from a shell.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

use cabinet_testkit::SiteConfig;

const BIN: &str = env!("CARGO_BIN_EXE_cabinet");
/// A valid trusted key for configs that never see a command.
const KEY: &str = "OFs-zWo0yl11xXTONdtio_I6LxhKY6V69ovhB51ABFU";

struct Sim {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    path: String,
}

impl Sim {
    fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(BIN)
            .arg("sim-board")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let path = lines.next().unwrap().unwrap();
        Sim {
            child,
            stdin,
            lines,
            path,
        }
    }

    fn stats(&mut self) -> serde_json::Value {
        writeln!(self.stdin, "stats").unwrap();
        serde_json::from_str(&self.lines.next().unwrap().unwrap()).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

/// `cabinet config check FILE`, run to completion.
fn config_check(config: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(["config", "check"])
        .arg(config)
        .output()
        .unwrap()
}

fn board(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(BIN).arg("board").args(args).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sim_board_prints_its_path_first_and_board_dispenses_through_it() {
    let mut sim = Sim::start(&["--protocol", "vmc", "--poll-ms", "20", "--motor-ms", "20"]);
    assert!(sim.path.starts_with("/dev/pts/"), "{}", sim.path);
    let (code, json, err) = board(&["--port", &sim.path, "--protocol", "vmc", "dispense", "11"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["result"]["outcome"]["outcome"], "dispensed");
    assert_eq!(json["result"]["outcome"]["drop_detected"], true);
    assert_eq!(sim.stats()["motor_actions"], 1);
}

#[test]
fn a_jam_injected_from_the_command_line_exits_1_with_the_outcome() {
    let mut sim = Sim::start(&[
        "--protocol",
        "vmc",
        "--poll-ms",
        "20",
        "--motor-ms",
        "20",
        "--fault",
        "jam",
    ]);
    let (code, json, _) = board(&["--port", &sim.path, "--protocol", "vmc", "dispense", "4"]);
    assert_eq!(code, 1);
    assert_eq!(json["result"]["outcome"]["outcome"], "jammed");
    assert_eq!(sim.stats()["motor_actions"], 1);
}

#[test]
fn lock_board_unlock_and_status_from_the_shell() {
    let mut sim = Sim::start(&["--protocol", "lockboard"]);
    let (code, json, err) = board(&[
        "--port",
        &sim.path,
        "--protocol",
        "lockboard",
        "unlock",
        "3",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["result"]["outcome"]["outcome"], "door_opened");
    let (code, json, _) = board(&["--port", &sim.path, "--protocol", "lockboard", "status"]);
    assert_eq!(code, 0);
    assert_eq!(
        json["result"]["machine"]["open_doors"],
        serde_json::json!([3])
    );
    assert_eq!(sim.stats()["unlock_actions"], 1);
}

/// A locker wall from the shell: `--neighbour` puts more boards on the simulated bus, and
/// `cabinet board --address` reaches each; `power N off` silences one board only.
#[test]
fn a_locker_wall_on_one_simulated_bus_from_the_shell() {
    let mut sim = Sim::start(&[
        "--protocol",
        "lockboard",
        "--neighbour",
        "2:24",
        "--neighbour",
        "3:16",
    ]);
    let port = sim.path.clone();
    let unlock = |address: &str, channels: &str, door: &str| {
        board(&[
            "--port",
            &port,
            "--protocol",
            "lockboard",
            "--address",
            address,
            "--channels",
            channels,
            "unlock",
            door,
        ])
    };
    let (code, json, err) = unlock("3", "16", "9");
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["result"]["outcome"]["outcome"], "door_opened");
    let stats = sim.stats();
    assert_eq!(stats["neighbour_unlocks"]["3"]["9"], 1, "{stats}");
    assert_eq!(stats["unlock_actions"], 0, "board 1 unlocked nothing");

    writeln!(sim.stdin, "power 3 off").unwrap();
    let stats = sim.stats(); // answered after the power command: it has been applied
    let (code, _, _) = unlock("3", "16", "10");
    assert_ne!(code, 0, "board 3 has no power");
    let (code, _, err) = unlock("2", "24", "1");
    assert_eq!(code, 0, "board 2 on the same bus: {err}");
    assert_eq!(sim.stats()["neighbour_unlocks"]["2"]["1"], 1, "{stats}");

    for (bad, why) in [
        ("1:24", "this board's own --address"),
        ("32:8", "address 1-31"),
        ("2", "ADDRESS:CHANNELS"),
    ] {
        let out = Command::new(BIN)
            .args(["sim-board", "--protocol", "lockboard", "--neighbour", bad])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{bad}: {err}");
    }
}

/// Commissioning a wall: `scan` asks every address of the bus and lists the boards that
/// answer with their width (a DIP switch set to the wrong address shows here), and a
/// technician names a board of the cabinet's config instead of its port and address.
#[test]
fn a_wall_is_scanned_for_its_addresses_and_a_board_is_named_from_the_config() {
    let mut sim = Sim::start(&[
        "--protocol",
        "lockboard",
        "--neighbour",
        "2:16",
        "--neighbour",
        "5:24",
    ]);
    let port = sim.path.clone();
    let answering = |json: &serde_json::Value| -> Vec<(u64, u64)> {
        json["result"]["answering"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["address"].as_u64().unwrap(),
                    b["channels"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let scan = || board(&["--port", &port, "--protocol", "lockboard", "scan"]);
    let (code, json, err) = scan();
    assert_eq!(code, 0, "{err}");
    assert_eq!(answering(&json), [(1, 24), (2, 16), (5, 24)], "{json}");
    writeln!(sim.stdin, "power 5 off").unwrap();
    let _ = sim.stats(); // answered after the power command: it has been applied
    let (code, json, err) = scan();
    assert_eq!(code, 0, "{err}");
    assert_eq!(answering(&json), [(1, 24), (2, 16)], "{json}");
    let (code, _, err) = board(&["--port", &port, "--protocol", "vmc", "scan"]);
    assert_eq!(code, 2);
    assert!(err.contains("scan is for lock boards"), "{err}");

    // The cabinet's config names the boards; `--board` picks one, its address and
    // channels come from there.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    SiteConfig::new("C001")
        .broker_url("mqtt://127.0.0.1:1")
        .key("k1", KEY)
        .journal_path("journal.sqlite3")
        .logs_dir("logs")
        .lock_board("wall-1", &port, 1, 24)
        .lock_board("wall-2", &port, 2, 16)
        .slot_on(1, "wall-1", 1, "Umbrella", 1, 1)
        .slot_on(2, "wall-2", 3, "Umbrella", 1, 1)
        .write(&config);
    let config = config.to_str().unwrap();
    let (code, json, err) = board(&["--config", config, "--board", "wall-2", "unlock", "3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["result"]["outcome"]["outcome"], "door_opened");
    assert_eq!(sim.stats()["neighbour_unlocks"]["2"]["3"], 1);
    let (code, _, err) = board(&["--config", config, "status"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("lists 2 boards: name one with --board (wall-1, wall-2)"),
        "{err}"
    );
    let (code, _, err) = board(&["--config", config, "--board", "wall-9", "status"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no board \"wall-9\"; its boards: wall-1, wall-2"),
        "{err}"
    );
    let (code, _, err) = board(&["--config", config, "--port", &port, "status"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn errors_name_the_problem() {
    let (code, _, err) = board(&["--port", "/dev/no-such-port", "--protocol", "vmc", "status"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no such serial port /dev/no-such-port"),
        "{err}"
    );

    // A lock board on the line while we expect VMC: no POLL ever arrives.
    let sim = Sim::start(&["--protocol", "lockboard"]);
    let (code, _, err) = board(&[
        "--port",
        &sim.path,
        "--protocol",
        "vmc",
        "--wait",
        "1",
        "status",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no POLL from a VMC board"), "{err}");
    drop(sim);

    // A VMC board on the line while we expect a lock board: bytes, but no valid frame.
    let sim = Sim::start(&["--protocol", "vmc", "--poll-ms", "20"]);
    let (code, _, err) = board(&["--port", &sim.path, "--protocol", "lockboard", "status"]);
    assert_eq!(code, 2);
    assert!(err.contains("wrong protocol or baud rate"), "{err}");
    drop(sim);

    let out = Command::new(BIN)
        .args(["sim-board", "--protocol", "vmc", "--fault", "wobble"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown fault \"wobble\""));
}

#[test]
fn config_check_accepts_the_shipped_example_and_names_bad_fields() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/config.example.toml"
    );
    // The check also looks at the files the config names: give the example its
    // password file (it names /etc/cabinet-kiosk/mqtt-password).
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("mqtt-password");
    std::fs::write(&password, "secret\n").unwrap();
    let provisioned = dir.path().join("example.toml");
    std::fs::write(
        &provisioned,
        std::fs::read_to_string(example).unwrap().replace(
            "\"/etc/cabinet-kiosk/mqtt-password\"",
            &format!("{:?}", password.display().to_string()),
        ),
    )
    .unwrap();
    let out = config_check(&provisioned);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "machine_code = \"C001\"\n[board]\nprotocol = \"vmx\"\n",
    )
    .unwrap();
    let out = config_check(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("board.protocol"), "{err}");
    assert!(err.contains("vmc") && err.contains("lockboard"), "{err}");
}

#[test]
fn keygen_prints_a_public_key_the_config_accepts() {
    let out = Command::new(BIN)
        .args(["keygen", "--kid", "backend-test"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let snippet = json["config_snippet"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, format!("machine_code = \"C001\"\n{snippet}\n")).unwrap();
    let out = config_check(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A password variable that is set but empty is not a password: `cabinet run` refuses to
/// start and names the variable (once, not repeated through the error chain).
#[test]
fn an_empty_password_variable_stops_the_kiosk_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    SiteConfig::new("C001")
        .broker_url("mqtt://127.0.0.1:1")
        .password_env("CABINET_TEST_EMPTY_PASSWORD")
        .key("k1", KEY)
        .board_port("/nonexistent/board")
        .journal_path("journal.sqlite3")
        .logs_dir("logs")
        .write(&config);
    let mut child = Command::new(BIN)
        .args(["run", "--quiet", "--config"])
        .arg(&config)
        .env("CABINET_TEST_EMPTY_PASSWORD", "")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A kiosk that accepted the empty password would run on: stop it and fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the kiosk started with an empty password");
        }
        // Polling a child process's state; there is no exit notification to await.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.matches("CABINET_TEST_EMPTY_PASSWORD").count(),
        1,
        "{stderr}"
    );
}

/// A config whose text is fine but whose files are not: `config check` names each field
/// with what is allowed, and `cabinet run` refuses the same file before it creates its
/// lock file beside the journal (it used to start, fail, and leave `<journal>.lock`).
#[test]
fn config_check_and_run_name_files_the_kiosk_cannot_use_before_any_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("journal-dir")).unwrap();
    std::fs::create_dir(dir.path().join("port-dir")).unwrap();
    std::fs::write(dir.path().join("logs-file"), "").unwrap();
    let config = dir.path().join("config.toml");
    SiteConfig::new("C001")
        .broker_url("mqtt://127.0.0.1:1")
        .password_file("missing-password")
        .key("k1", KEY)
        .board_port(dir.path().join("port-dir"))
        .vmc_report_timeout_secs(100)
        .journal_path("journal-dir")
        .logs_dir("logs-file")
        .write(&config);
    let check = config_check(&config);
    let err = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{err}");
    for needle in [
        "mqtt.password_file: ",
        "does not exist",
        "journal.path: ",
        "is a directory",
        "logs.dir: ",
        "is a regular file",
        "board.port: ",
        "serial device",
        "board.vmc.report_timeout_secs: must be at most 35",
        "TimeoutStopSec",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in:\n{err}");
    }

    let run = Command::new(BIN)
        .args(["run", "--quiet", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run_err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{run_err}");
    assert!(run_err.contains("journal.path: "), "{run_err}");
    assert!(
        !dir.path().join("journal-dir.lock").exists(),
        "a lock file was created beside the bad journal path"
    );
    assert!(
        !dir.path().join("logs-file").is_dir(),
        "the logs path was touched"
    );

    // /dev/null as the journal: a device, not a file the journal can live in.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("path = \"journal-dir\"", "path = \"/dev/null\""),
    )
    .unwrap();
    let check = config_check(&config);
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains("journal.path: /dev/null is a character device"),
        "{err}"
    );
}

/// Regression: `cabinet board` on a port another process holds (the kiosk, another
/// `cabinet board`) said "no such serial port … check the cable". The port is busy: say
/// so, name the holder, keep exit code 2; once released the same command works.
#[test]
fn board_on_a_port_another_process_holds_says_busy_and_names_the_holder() {
    let sim = Sim::start(&["--protocol", "lockboard"]);
    // This test process holds it, opened the way the kiosk's driver opens it.
    let held = cabinet_board::port::open(
        std::path::Path::new(&sim.path),
        9600,
        std::time::Duration::from_millis(10),
    )
    .unwrap();
    let (code, _, err) = board(&["--port", &sim.path, "--protocol", "lockboard", "status"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{} is busy", sim.path)), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(!err.contains("no such serial port"), "{err}");
    drop(held);
    let (code, _, err) = board(&["--port", &sim.path, "--protocol", "lockboard", "status"]);
    assert_eq!(code, 0, "{err}");
}

/// A lock board whose query reply is one byte narrower than `--channels` implies is used
/// as it is (no `board_unreachable`), and the mismatch is said once, however many replies
/// came (here: the door watch after an unlock queries it for seconds).
#[test]
fn a_lock_board_with_a_narrower_reply_works_and_the_mismatch_is_logged_once() {
    let sim = Sim::start(&[
        "--protocol",
        "lockboard",
        "--status-bytes",
        "2",
        "--fault",
        "door-stuck",
    ]);
    let (code, json, err) = board(&[
        "--port",
        &sim.path,
        "--protocol",
        "lockboard",
        "dispense",
        "3",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(json["result"]["outcome"]["outcome"], "door_never_opened");
    assert!(json["health"]["frames_rx"].as_u64().unwrap() > 2, "{json}");
    assert_eq!(
        err.matches("board.lockboard.channels = 24 needs 3").count(),
        1,
        "{err}"
    );
    assert!(err.contains("2 status bytes (channels 1-16)"), "{err}");
}
