//! The headless demo (`cabinet-demo`) as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cabinet-demo");

/// The headless demo is the whole product on one machine: embedded broker, simulated
/// board, demo key. Two scans in a row also prove the idle screen gets a fresh QR nonce
/// after the first was used (the demo cabinet requires sessions).
#[test]
fn the_headless_demo_dispenses_each_scan_and_the_motor_count_follows() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--scans", "2", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("→ succeeded").count(), 2, "{stdout}");
    assert!(
        stdout.contains("the board's motor count went 0 → 2"),
        "{stdout}"
    );
    assert!(stdout.contains("[screen] dispensing: "), "{stdout}");
    assert!(dir.path().join("journal.sqlite3").exists());
}
