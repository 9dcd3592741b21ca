//! The headless demo (`cabinet-demo`) as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cabinet-demo");

/// Runs `cabinet-demo ARGS --dir DIR` to its end, asserts it succeeded, returns stdout.
fn run(args: &[&str], dir: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The headless demo is the whole product on one machine: embedded broker, simulated
/// board, demo key. Two scans in a row also prove the idle screen gets a fresh QR nonce
/// after the first was used (the demo cabinet requires sessions).
#[test]
fn the_headless_demo_dispenses_each_scan_and_the_motor_count_follows() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run(&["--scans", "2"], dir.path());
    assert_eq!(stdout.matches("→ succeeded").count(), 2, "{stdout}");
    assert!(
        stdout.contains("the board's motor count went 0 → 2"),
        "{stdout}"
    );
    assert!(stdout.contains("[screen] dispensing: "), "{stdout}");
    assert!(dir.path().join("journal.sqlite3").exists());
}

/// The demo's locker wall: five scans open five doors, the fifth on the second board of
/// the bus, and the log says which board opened it; then a customer puts a rental back
/// into the door just emptied.
#[test]
fn the_headless_demo_wall_opens_a_door_per_scan_across_its_boards() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run(
        &["--layout", "wall", "--scans", "5", "--returns", "1"],
        dir.path(),
    );
    assert_eq!(stdout.matches("→ succeeded").count(), 6, "{stdout}");
    assert!(
        stdout.contains("the wall's door unlocks went 0 → 6"),
        "{stdout}"
    );
    // The rental goes back into the door the fifth customer emptied.
    assert!(
        stdout.contains("return 1/1: door 5 (雨伞 Umbrella)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[screen] put the 雨伞 Umbrella back in door 5"),
        "{stdout}"
    );
    assert!(
        stdout.contains("scan 5/5: slot 5 (雨伞 Umbrella)"),
        "{stdout}"
    );
    // Eleven doors hold an item at start (the last is sold out); each opened door is
    // empty after (a door holds one item): seven left before the fifth scan.
    assert!(stdout.contains("(11 of 12 slots available)"), "{stdout}");
    assert!(stdout.contains("(7 of 12 slots available)"), "{stdout}");
    let logs: String = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("wall-2"),
        "the log names the board that acted"
    );
}

/// A demo layout the demo does not have is refused, naming the ones it has.
#[test]
fn an_unknown_demo_layout_is_refused_naming_the_layouts() {
    let out = Command::new(BIN)
        .args(["--layout", "tower", "--scans", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"vending\" or \"wall\""), "{stderr}");
}
