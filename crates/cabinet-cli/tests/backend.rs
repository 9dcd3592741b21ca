//! `cabinet send` against a real Mosquitto with the shipped ACL, the cabinet side
//! played by the cabinet's own `MqttLink` (docs/PROTOCOL.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cabinet_core::Reason;
use cabinet_core::config::{Secret, parse_broker_url};
use cabinet_core::mqtt::{LinkEvent, LinkOptions, MqttLink};
use cabinet_core::protocol::{
    self, Evidence, PROTOCOL_VERSION, Reply, ReplyState, SigningKey, TrustedKeys, VerifyOptions,
};
use cabinet_testkit::{Broker, STEP, password};
use tokio::sync::watch;

const KID: &str = "test-1";

fn write_key(dir: &Path) -> (SigningKey, std::path::PathBuf) {
    let (key, _public) = protocol::generate_keypair().unwrap();
    let path = dir.join("backend.key");
    std::fs::write(&path, protocol::encode_signing_key(&key) + "\n").unwrap();
    (key, path)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// How the fake cabinet answers a verified command.
#[derive(Clone, Copy)]
enum Behaviour {
    AcceptThenSucceed,
    RejectSlotEmpty,
    Silent,
}

/// Runs C001's real `MqttLink`; returns once it is subscribed to its `cmd` topic.
async fn fake_cabinet(broker: &Broker, key: &SigningKey, how: Behaviour) -> watch::Sender<bool> {
    let opts = LinkOptions {
        machine_code: "C001".into(),
        username: "C001".into(),
        password: Some(Secret::new(password("C001"))),
        brokers: vec![parse_broker_url(&broker.url()).unwrap()],
        ca_pem: None,
        keepalive: Duration::from_secs(5),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(1),
        boot_id: "boot-test".into(),
        version: "test".into(),
    };
    let mut keys = TrustedKeys::new();
    keys.insert_signing_key_public(KID, key).unwrap();
    let (link, handle, mut events) = MqttLink::new(opts).unwrap();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(link.run(stop_rx));
    loop {
        let ev = tokio::time::timeout(STEP, events.recv()).await.unwrap();
        if matches!(ev, Some(LinkEvent::Subscribed)) {
            break;
        }
    }
    tokio::spawn(async move {
        let mut outbox = 0;
        while let Some(ev) = events.recv().await {
            let LinkEvent::Incoming(inc) = ev else {
                continue;
            };
            if matches!(how, Behaviour::Silent) {
                continue;
            }
            let cmd = protocol::verify_command(
                &inc.payload,
                &keys,
                "C001",
                unix_now(),
                &VerifyOptions::default(),
            )
            .expect("cabinet send signs a valid command");
            handle.ack(inc.ack).await.unwrap();
            let replies: &[(ReplyState, Option<bool>, Option<Reason>)] = match how {
                Behaviour::RejectSlotEmpty => {
                    &[(ReplyState::Rejected, None, Some(Reason::SlotEmpty))]
                }
                _ => &[
                    (ReplyState::Accepted, None, None),
                    (ReplyState::Succeeded, Some(true), None),
                ],
            };
            for &(state, drop, reason) in replies {
                outbox += 1;
                let reply = Reply {
                    v: PROTOCOL_VERSION,
                    cmd_id: cmd.cmd_id.clone(),
                    order_id: cmd.order_id.clone(),
                    log_id: cmd.log_id.clone(),
                    machine_code: "C001".into(),
                    boot_id: "boot-test".into(),
                    state,
                    reason,
                    evidence: Evidence {
                        drop_detected: drop,
                        ..Evidence::default()
                    },
                    at: 1,
                    seq: Some(outbox),
                };
                let topic = handle.topics().reply.clone();
                handle
                    .publish_reply(outbox, &topic, reply.to_json().unwrap())
                    .await
                    .unwrap();
            }
        }
    });
    stop
}

/// Runs `cabinet send` on a blocking thread (the fake cabinet keeps running).
async fn cabinet_send(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cabinet"))
            .arg("send")
            .args(args)
            .env("TEST_MQTT_PW", password("backend"))
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn base_args(broker: &Broker, key: &Path) -> Vec<String> {
    [
        "--broker",
        &broker.url(),
        "--cabinet",
        "C001",
        "--slot",
        "3",
        "--key",
        key.to_str().unwrap(),
        "--kid",
        KID,
        "--password-env",
        "TEST_MQTT_PW",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_prints_every_reply_and_exits_0_on_succeeded() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, key_file) = write_key(dir.path());
    let _stop = fake_cabinet(&broker, &key, Behaviour::AcceptThenSucceed).await;

    let mut args = base_args(&broker, &key_file);
    args.extend(
        [
            "--cmd-id", "cmd-ok-1", "--log-id", "log-ok-1", "--wait", "20s",
        ]
        .map(String::from),
    );
    let out = cabinet_send(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<&str> = lines.iter().map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["accepted", "succeeded"]);
    for v in &lines {
        assert_eq!(v["cmd_id"], "cmd-ok-1");
        assert_eq!(v["log_id"], "log-ok-1");
        assert_eq!(v["machine_code"], "C001");
    }
    assert_eq!(lines[1]["evidence"]["drop_detected"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_exits_3_and_says_to_retry_with_the_same_cmd_id_when_no_outcome_arrives() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, key_file) = write_key(dir.path());
    let _stop = fake_cabinet(&broker, &key, Behaviour::Silent).await;

    // The password from a file this time (first line only).
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{}\n", password("backend"))).unwrap();
    let mut args = base_args(&broker, &key_file);
    let i = args.iter().position(|a| a == "--password-env").unwrap();
    args.drain(i..i + 2);
    args.extend(
        [
            "--password-file",
            pw_file.to_str().unwrap(),
            "--cmd-id",
            "cmd-silent-1",
            "--wait",
            "1s",
        ]
        .map(String::from),
    );
    let started = Instant::now();
    let out = cabinet_send(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(started.elapsed() < STEP, "took {:?}", started.elapsed());
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("UNKNOWN"), "{stderr}");
    assert!(stderr.contains("--cmd-id cmd-silent-1"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_with_wrong_credentials_sends_nothing_and_exits_2() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let (_key, key_file) = write_key(dir.path());
    let mut args = base_args(&broker, &key_file);
    args.extend(["--username", "C002", "--wait", "1s"].map(String::from));
    let out = cabinet_send(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn print_token_signs_a_command_the_cabinet_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (key, key_file) = write_key(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_cabinet"))
        .args(["send", "--print-token", "--cabinet", "C001", "--slot", "7"])
        .args(["--kid", KID, "--session", "qr-1", "--cmd-id", "c-7"])
        .arg("--key")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let mut keys = TrustedKeys::new();
    keys.insert_signing_key_public(KID, &key).unwrap();
    let cmd = protocol::verify_command(
        token.as_bytes(),
        &keys,
        "C001",
        unix_now(),
        &VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(cmd.slot, 7);
    assert_eq!(cmd.cmd_id, "c-7");
    assert_eq!(cmd.session.as_deref(), Some("qr-1"));
    assert!(cmd.expires_at - cmd.issued_at == 60);
    // Another cabinet refuses it.
    let r = protocol::verify_command(
        token.as_bytes(),
        &keys,
        "C002",
        unix_now(),
        &VerifyOptions::default(),
    );
    assert_eq!(r.unwrap_err().reason, Reason::WrongTarget);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_exits_1_on_a_rejected_reply_and_prints_its_reason() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, key_file) = write_key(dir.path());
    let _stop = fake_cabinet(&broker, &key, Behaviour::RejectSlotEmpty).await;
    let mut args = base_args(&broker, &key_file);
    args.extend(["--wait", "20s"].map(String::from));
    let out = cabinet_send(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "rejected");
    assert_eq!(v["reason"], "slot_empty");
    // Fresh random ids were generated and echoed.
    assert_eq!(v["cmd_id"].as_str().unwrap().len(), 32);
    assert!(v["log_id"].as_str().unwrap().starts_with("log-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_a_cabinets_presence_as_a_json_line() {
    use std::io::BufRead as _;
    let broker = Broker::start();
    let (key, _) = protocol::generate_keypair().unwrap();
    let _stop = fake_cabinet(&broker, &key, Behaviour::Silent).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cabinet"))
        .args(["watch", "--broker", &broker.url(), "--cabinet", "+"])
        .args(["--password-env", "TEST_MQTT_PW"])
        .env("TEST_MQTT_PW", password("backend"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let line = tokio::task::spawn_blocking(move || rx.recv_timeout(STEP))
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let v: serde_json::Value = serde_json::from_str(&line.expect("a line in time")).unwrap();
    assert_eq!(v["topic"], "cabinet/v1/C001/state");
    assert_eq!(v["kind"], "state");
    // Retained if the birth reached the broker before `watch` subscribed, live otherwise.
    assert_eq!(v["payload"]["status"], "online");
    assert_eq!(v["payload"]["boot_id"], "boot-test");
}

/// Lines of a child's pipe, as they come, on a thread of their own.
fn line_channel(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next line from `rx` that `pred` accepts, within `within`; `None` if none came.
async fn line_matching(
    rx: std::sync::mpsc::Receiver<String>,
    within: Duration,
    pred: impl Fn(&str) -> bool + Send + 'static,
) -> (Option<String>, std::sync::mpsc::Receiver<String>) {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if pred(&l) => return (Some(l), rx),
                Ok(_) => {}
                Err(_) => return (None, rx),
            }
        }
    })
    .await
    .unwrap()
}

/// A broker restart used to end `cabinet watch` ("run it again"); it now reconnects and
/// goes on printing: a reply the cabinet sends after the restart shows up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reconnects_after_a_broker_restart_and_keeps_printing() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, key_file) = write_key(dir.path());
    let _stop = fake_cabinet(&broker, &key, Behaviour::AcceptThenSucceed).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cabinet"))
        .args(["watch", "--broker", &broker.url(), "--cabinet", "C001"])
        .args(["--password-env", "TEST_MQTT_PW"])
        .env("TEST_MQTT_PW", password("backend"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = line_channel(child.stdout.take().unwrap());
    let stderr = line_channel(child.stderr.take().unwrap());
    let (first, stdout) = line_matching(stdout, STEP, |l| l.contains("\"state\"")).await;
    assert!(
        first.is_some(),
        "watch printed the cabinet's presence first"
    );

    broker.restart();
    let (note, _stderr) = line_matching(stderr, 3 * STEP, |l| l.starts_with("reconnected")).await;
    if note.is_none() {
        let _ = child.kill();
        let status = child.wait().unwrap();
        panic!("watch did not reconnect after the broker restart (it exited: {status})");
    }
    // The cabinet reconnects by itself; retrying with the same id until it answers is
    // what PROTOCOL.md tells backends to do, and each try is bounded by --wait.
    let mut args = base_args(&broker, &key_file);
    args.extend(["--cmd-id", "cmd-after-restart", "--wait", "5s"].map(String::from));
    let mut sent = false;
    for _ in 0..6 {
        if cabinet_send(args.clone()).await.status.code() == Some(0) {
            sent = true;
            break;
        }
    }
    assert!(sent, "the fake cabinet answered after the restart");
    let (reply, _) = line_matching(stdout, STEP, |l| l.contains("cmd-after-restart")).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&reply.expect("watch printed the reply sent after the restart"))
            .unwrap();
    assert_eq!(v["kind"], "reply");
    assert_eq!(v["topic"], "cabinet/v1/C001/reply");
    assert_eq!(v["payload"]["cmd_id"], "cmd-after-restart");
}
