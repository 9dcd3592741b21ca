//! The runner without a broker: a recorder in the link's place ([`Recorder`]), a board
//! whose motor the test releases ([`HeldBoard`]), a real journal on disk. What is
//! tested here is the runner's own logic: what it journals before it acks, which replies
//! it hands to the link and when, what a stopped link does to it, how a technician's
//! slot test reaches the stock. The wire (rumqttc, Mosquitto) is tested elsewhere.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cabinet_board::{
    BoardError, BoardHealth, FrameRecord, MachineStatus, Outcome, Protocol, SlotStatus,
};
use ed25519_dalek::SigningKey;
use serde_json::Value;
use tokio::sync::oneshot;

use super::*;
use crate::control::{TechAction, TechAnswer};
use crate::mqtt::{AckToken, Incoming};
use crate::protocol::{CommandClaims, sign_command};
use crate::screen::Screen;

/// Long enough for any busy machine; the tests never wait for it to pass.
const PATIENCE: Duration = Duration::from_secs(60);

/// What the runner handed to the link.
#[derive(Debug)]
enum Sent {
    /// A PUBACK, and how many commands and rejections the journal held at that moment.
    Ack {
        token: AckToken,
        commands: i64,
        rejections: i64,
    },
    /// An outbox reply.
    Reply { id: u64, body: Value },
    /// A reply that is not in the outbox.
    Unjournaled(Value),
    /// Telemetry.
    Telemetry(Value),
    /// What the cabinet runs (the `reported` topic).
    Reported(Value),
}

/// The link port, recording; `closed` makes every call fail as a stopped link does.
struct Recorder {
    tx: mpsc::UnboundedSender<Sent>,
    journal: std::path::PathBuf,
    closed: bool,
}

impl Recorder {
    fn count(&self, table: &str) -> i64 {
        let Ok(db) = rusqlite::Connection::open(&self.journal) else {
            return -1;
        };
        db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap_or(-1)
    }

    fn send(&self, s: Sent) -> Result<(), LinkError> {
        if self.closed {
            return Err(LinkError::Closed);
        }
        let _ = self.tx.send(s);
        Ok(())
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

impl Link for Recorder {
    async fn ack(&self, token: AckToken) -> Result<(), LinkError> {
        let (commands, rejections) = (self.count("commands"), self.count("rejections"));
        self.send(Sent::Ack {
            token,
            commands,
            rejections,
        })
    }

    async fn publish_reply(&self, id: u64, _topic: &str, payload: String) -> Result<(), LinkError> {
        self.send(Sent::Reply {
            id,
            body: json(&payload),
        })
    }

    async fn publish_unjournaled_reply(
        &self,
        _topic: &str,
        payload: String,
    ) -> Result<(), LinkError> {
        self.send(Sent::Unjournaled(json(&payload)))
    }

    async fn publish_telemetry(&self, payload: String) -> Result<(), LinkError> {
        self.send(Sent::Telemetry(json(&payload)))
    }

    async fn publish_reported(&self, payload: String) -> Result<(), LinkError> {
        self.send(Sent::Reported(json(&payload)))
    }
}

/// A board whose every dispense waits until the test releases it (or, unheld, drops at
/// once), counting motor runs.
#[derive(Debug, Default)]
struct HeldBoard {
    held: AtomicBool,
    release: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    runs: AtomicU64,
}

impl HeldBoard {
    /// From now on, each dispense waits for one send on the returned channel.
    fn hold(&self) -> std::sync::mpsc::Sender<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.release.lock().unwrap() = Some(rx);
        self.held.store(true, Ordering::SeqCst);
        tx
    }
}

impl Board for HeldBoard {
    fn protocol(&self) -> Protocol {
        Protocol::Vmc
    }
    fn dispense(&self, _slot: u16) -> Outcome {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if self.held.load(Ordering::SeqCst)
            && let Some(rx) = self.release.lock().unwrap().as_ref()
        {
            let _ = rx.recv_timeout(PATIENCE);
        }
        Outcome::Dispensed {
            drop_detected: None,
        }
    }
    fn machine_status(&self) -> Result<MachineStatus, BoardError> {
        Ok(MachineStatus::default())
    }
    fn unlock(&self, _channel: u16) -> Result<Outcome, BoardError> {
        Err(BoardError::Unsupported {
            protocol: Protocol::Vmc,
            operation: "unlock",
        })
    }
    fn slot_status(&self, _slot: u16) -> Result<SlotStatus, BoardError> {
        Ok(SlotStatus::Ready)
    }
    fn health(&self) -> BoardHealth {
        BoardHealth {
            protocol: "vmc".into(),
            port: "held".into(),
            connected: true,
            ..BoardHealth::default()
        }
    }
    fn recent_frames(&self) -> Vec<FrameRecord> {
        Vec::new()
    }
    fn wait_ready(&self, _timeout: Duration) -> bool {
        true
    }
}

const SITE: &str = r#"
machine_code = "GZ-0001"

# Replaced by the test's own key (this is RFC 8037's published example).
[keys]
rfc-8037 = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"

[commands]
require_session = false

[kiosk]
heartbeat_secs = 3600

[[slots]]
slot = 1
product = "Water"
capacity = 10
initial_count = 5

[[slots]]
slot = 2
product = "Tea"
capacity = 10
initial_count = 5
"#;

/// A running runner and the test's ends of its channels.
struct Kiosk {
    events: mpsc::UnboundedSender<LinkEvent>,
    sent: mpsc::UnboundedReceiver<Sent>,
    control: mpsc::Sender<Control>,
    screen: watch::Receiver<Option<Snapshot>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), KioskError>>,
    board: Arc<HeldBoard>,
    key: SigningKey,
    seq: u64,
    journal: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Kiosk {
    async fn start(closed: bool) -> Kiosk {
        Kiosk::start_with(closed, |_| {}).await
    }

    async fn start_with(closed: bool, tweak: impl FnOnce(&mut Config)) -> Kiosk {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = protocol::generate_keypair().unwrap();
        let mut cfg = Config::from_toml_str(SITE).unwrap();
        cfg.keys = [("backend-1".to_owned(), public)].into();
        cfg.journal.path = dir.path().join("journal.sqlite");
        cfg.logs.dir = dir.path().join("logs");
        tweak(&mut cfg);
        let journal = cfg.journal.path.clone();
        let (tx, sent) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (screen_tx, screen) = watch::channel(None);
        let (control, control_rx) = mpsc::channel(8);
        let (stop, shutdown) = watch::channel(false);
        let board = Arc::new(HeldBoard::default());
        let ports = Ports {
            link: Recorder {
                tx,
                journal: journal.clone(),
                closed,
            },
            events,
            link_task: None,
            screen: screen_tx,
            control: control_rx,
            shutdown,
        };
        let runner_board: Arc<dyn Board> = board.clone();
        let task = tokio::spawn(async move {
            Runner::open(cfg, runner_board, "boot-1".into(), ports)?
                .start()
                .await?
                .run()
                .await
        });
        Kiosk {
            events: events_tx,
            sent,
            control,
            screen,
            stop,
            task,
            board,
            key,
            seq: 0,
            journal,
            _dir: dir,
        }
    }

    fn event(&self, ev: LinkEvent) {
        self.events.send(ev).unwrap();
    }

    fn connect(&self, session_present: bool) {
        self.event(LinkEvent::Connected {
            session_present,
            broker: "127.0.0.1:1883".into(),
        });
        self.event(LinkEvent::Subscribed);
    }

    fn payload(&mut self, payload: Vec<u8>, dup: bool) -> AckToken {
        self.seq += 1;
        let ack = AckToken::for_test(self.seq);
        self.event(LinkEvent::Incoming(Incoming {
            payload,
            dup,
            topic: "cabinet/GZ-0001/cmd".into(),
            ack,
        }));
        ack
    }

    fn command(&mut self, cmd_id: &str, slot: u16, dup: bool) -> AckToken {
        let key = self.key.clone();
        self.command_signed(cmd_id, slot, dup, &key, "backend-1")
    }

    /// A key set (or anything) on the cabinet's `desired/keys` topic.
    fn key_set(&mut self, token: &str) -> AckToken {
        self.seq += 1;
        let ack = AckToken::for_test(self.seq);
        self.event(LinkEvent::Incoming(Incoming {
            payload: token.as_bytes().to_vec(),
            dup: false,
            topic: "cabinet/v1/GZ-0001/desired/keys".into(),
            ack,
        }));
        ack
    }

    /// The next `reported` message.
    async fn reported(&mut self) -> Value {
        loop {
            if let Sent::Reported(v) = self.next_any().await {
                return v;
            }
        }
    }

    fn command_signed(
        &mut self,
        cmd_id: &str,
        slot: u16,
        dup: bool,
        key: &SigningKey,
        kid: &str,
    ) -> AckToken {
        let now = i64::try_from(now_ms() / 1000).unwrap();
        let claims = CommandClaims {
            aud: "GZ-0001".into(),
            jti: cmd_id.into(),
            iat: now,
            exp: now + 300,
            kind: "dispense".into(),
            slot,
            qty: 1,
            order_id: format!("order-{cmd_id}"),
            log_id: format!("log-{cmd_id}"),
            session: None,
            count: None,
        };
        let token = sign_command(&claims, key, kid).unwrap();
        self.payload(token.into_bytes(), dup)
    }

    /// The next thing handed to the link, telemetry included.
    async fn next_any(&mut self) -> Sent {
        tokio::time::timeout(PATIENCE, self.sent.recv())
            .await
            .expect("the runner handed nothing to the link in time")
            .expect("the runner stopped")
    }

    /// The next thing handed to the link that is not telemetry nor a report.
    async fn next(&mut self) -> Sent {
        loop {
            match self.next_any().await {
                Sent::Telemetry(_) | Sent::Reported(_) => continue,
                other => return other,
            }
        }
    }

    async fn reply(&mut self) -> (u64, Value) {
        match self.next().await {
            Sent::Reply { id, body } => (id, body),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    async fn ack(&mut self) -> (AckToken, i64, i64) {
        match self.next().await {
            Sent::Ack {
                token,
                commands,
                rejections,
            } => (token, commands, rejections),
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    async fn screen_is(&mut self, want: impl Fn(&Screen) -> bool) {
        let seen = tokio::time::timeout(
            PATIENCE,
            self.screen
                .wait_for(|s| s.as_ref().is_some_and(|s| want(&s.screen))),
        )
        .await;
        assert!(matches!(seen, Ok(Ok(_))), "the screen never showed it");
    }

    async fn tech(&self, action: TechAction) -> Result<TechAnswer, crate::control::TechError> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Control::Tech { action, reply })
            .await
            .unwrap();
        tokio::time::timeout(PATIENCE, answer)
            .await
            .unwrap()
            .unwrap()
    }

    async fn stop(
        self,
    ) -> (
        Result<(), KioskError>,
        std::path::PathBuf,
        tempfile::TempDir,
    ) {
        self.stop.send_replace(true);
        let result = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the runner did not stop")
            .expect("the runner panicked");
        (result, self.journal, self._dir)
    }
}

fn state(body: &Value) -> &str {
    body["state"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_journaled_before_its_ack_and_answered_in_order() {
    let mut k = Kiosk::start(false).await;
    k.connect(true);
    let sent = k.command("c-1", 1, false);
    let (token, commands, _) = k.ack().await;
    assert_eq!(token, sent);
    assert_eq!(
        commands, 1,
        "the command is in the journal before its PUBACK"
    );
    let mut states = Vec::new();
    for _ in 0..3 {
        let (_, body) = k.reply().await;
        assert_eq!(body["cmd_id"], "c-1");
        assert_eq!(body["log_id"], "log-c-1", "the log id flows into the reply");
        states.push(state(&body).to_owned());
    }
    assert_eq!(states, ["accepted", "dispensing", "succeeded"]);
    assert_eq!(k.board.runs.load(Ordering::SeqCst), 1);
    let (result, _, _) = k.stop().await;
    result.unwrap();
}

/// The site file's slot map is in force at every start, not only at the first: a product
/// renamed or a capacity lowered in the file shows, a slot taken out of it is no longer
/// sold, a new one is stocked with its `initial_count`, and live counts stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_follows_the_site_files_slot_map_at_each_start() {
    let mut k = Kiosk::start(false).await;
    k.connect(true);
    k.command("c-1", 1, false);
    k.ack().await;
    for _ in 0..3 {
        let (_, body) = k.reply().await;
        assert_ne!(state(&body), "rejected", "{body}");
    }
    let (result, journal, dir) = k.stop().await;
    result.unwrap();

    let mut k = Kiosk::start_with(false, |cfg| {
        cfg.journal.path = journal.clone();
        cfg.slots[0].product = "Sparkling water".into();
        cfg.slots[0].capacity = 3;
        cfg.slots.truncate(1);
        cfg.slots.push(crate::config::SlotConfig {
            slot: 3,
            board: None,
            channel: None,
            product: "Juice".into(),
            capacity: 8,
            initial_count: 2,
        });
    })
    .await;
    // Any screen: the runner has opened the journal.
    k.screen_is(|_| true).await;
    let db = rusqlite::Connection::open(&journal).unwrap();
    let rows: Vec<(i64, String, i64, i64)> = db
        .prepare("SELECT slot, product, capacity, count FROM inventory ORDER BY slot")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (1, "Sparkling water".to_owned(), 3, 3),
            (3, "Juice".to_owned(), 8, 2)
        ],
        "slot 1 (4 left after the sale) cut to its new capacity, slot 2 gone, slot 3 new"
    );
    k.connect(true);
    k.command("c-2", 2, false);
    // The first run's replies go again first (the recorder never confirms them).
    let body = loop {
        if let Sent::Reply { body, .. } = k.next().await
            && body["cmd_id"] == "c-2"
        {
            break body;
        }
    };
    assert_eq!(state(&body), "rejected", "{body}");
    assert_eq!(body["reason"], "slot_unknown", "{body}");
    let (result, _, _) = k.stop().await;
    result.unwrap();
    drop(dir);
}

/// Connected is not listening: on a first connection the broker holds no subscription
/// for the kiosk, and a command published before the SUBACK is dropped. The QR code
/// (the idle screen) waits for the subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_qr_code_waits_for_the_subscription_not_the_connection() {
    let mut k = Kiosk::start(false).await;
    k.event(LinkEvent::Connected {
        session_present: false,
        broker: "127.0.0.1:1883".into(),
    });
    // The heartbeat goes out while the runner handles the connection: by then the
    // screen would have turned idle if the connection alone were enough.
    loop {
        if let Sent::Telemetry(_) = k.next_any().await {
            break;
        }
    }
    let before = k.screen.borrow().as_ref().map(|s| s.screen.clone());
    assert!(
        !matches!(before, Some(Screen::Idle)),
        "idle before the subscription: {before:?}"
    );
    k.event(LinkEvent::Subscribed);
    k.screen_is(|s| matches!(s, Screen::Idle)).await;
    k.stop().await.0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_command_runs_the_motor_once_and_gets_its_stored_reply_again() {
    let mut k = Kiosk::start(false).await;
    k.connect(true);
    k.command("c-1", 1, false);
    k.ack().await;
    for _ in 0..3 {
        k.reply().await;
    }
    k.command("c-1", 1, true);
    let (_, commands, _) = k.ack().await;
    assert_eq!(commands, 1, "no second row");
    let (_, body) = k.reply().await;
    assert_eq!(state(&body), "succeeded", "the stored reply, again");
    assert_eq!(k.board.runs.load(Ordering::SeqCst), 1, "one motor run");
    k.stop().await.0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_payload_is_recorded_before_its_ack_and_answered_without_ids() {
    let mut k = Kiosk::start(false).await;
    k.connect(true);
    k.payload(b"not a token".to_vec(), false);
    let (_, commands, rejections) = k.ack().await;
    assert_eq!((commands, rejections), (0, 1));
    let (_, body) = k.reply().await;
    assert_eq!(state(&body), "rejected");
    assert_eq!(body["cmd_id"], "", "no words put in a real command's mouth");
    assert_eq!(k.board.runs.load(Ordering::SeqCst), 0);
    k.stop().await.0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_disk_is_low_a_stranger_is_answered_once_outside_the_journal() {
    // More free space than any disk has: low from the first sample on.
    let mut k = Kiosk::start_with(false, |cfg| cfg.journal.min_free_mb = u64::MAX >> 24).await;
    k.screen_is(|s| matches!(s, Screen::OutOfService { .. }))
        .await;
    k.connect(true);
    k.payload(b"junk".to_vec(), false);
    let Sent::Unjournaled(body) = k.next().await else {
        panic!("expected the answer outside the outbox");
    };
    assert_eq!(state(&body), "rejected");
    let (_, _, rejections) = k.ack().await;
    assert_eq!(rejections, 0, "nothing a stranger sends costs disk");
    // A signed order is refused and journaled: its refusal is a promise kept.
    k.command("c-1", 1, false);
    let (_, commands, _) = k.ack().await;
    assert_eq!(commands, 1);
    let (_, body) = k.reply().await;
    assert_eq!(
        (state(&body), body["reason"].as_str()),
        ("rejected", Some("disk_low"))
    );
    assert_eq!(k.board.runs.load(Ordering::SeqCst), 0);
    k.stop().await.0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_32_replies_are_in_the_links_hands_until_the_broker_acknowledges() {
    let mut k = Kiosk::start(false).await;
    k.connect(true);
    let n = outbox::MAX_IN_FLIGHT + 8;
    for _ in 0..n {
        k.payload(b"junk".to_vec(), false);
    }
    let mut ids = Vec::new();
    let mut acks = 0;
    while acks < n {
        match k.next().await {
            Sent::Ack { .. } => acks += 1,
            Sent::Reply { id, .. } => ids.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    // The last payload's flush follows its ack; the next event is handled after it.
    k.event(LinkEvent::Published(ids[0]));
    let (next, _) = k.reply().await;
    assert_eq!(ids.len(), outbox::MAX_IN_FLIGHT, "a full window, no more");
    assert!(
        !ids.contains(&next),
        "the freed place goes to a row not yet handed"
    );
    // One more payload: its reply waits, the window is full again.
    k.payload(b"junk".to_vec(), false);
    k.ack().await;
    k.event(LinkEvent::Published(ids[1]));
    let (after, _) = k.reply().await;
    assert!(after > next, "oldest first");
    k.stop().await.0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_of_a_lost_session_go_again_after_the_reconnect() {
    let mut k = Kiosk::start(false).await;
    k.connect(true);
    let release = k.board.hold();
    k.command("c-1", 2, false);
    k.ack().await;
    let (accepted, _) = k.reply().await;
    let (dispensing, _) = k.reply().await;
    k.event(LinkEvent::Disconnected {
        error: "test".into(),
    });
    // The board's answer comes on a channel of its own: release it only once the runner
    // has seen the link go down (a payload after the event is acked after it).
    k.payload(b"junk".to_vec(), false);
    k.ack().await;
    release.send(()).unwrap();
    // The outcome is journaled while the link is down (the screen says so)...
    k.screen_is(|s| matches!(s, Screen::TakeItem { .. })).await;
    // ...and the broker comes back without our session: every unacknowledged reply
    // goes again, oldest first, the outcome last.
    k.connect(false);
    let mut again = Vec::new();
    for _ in 0..4 {
        let (id, body) = k.reply().await;
        again.push((id, state(&body).to_owned()));
    }
    assert_eq!(again[0], (accepted, "accepted".to_owned()));
    assert_eq!(again[1], (dispensing, "dispensing".to_owned()));
    assert_eq!(
        again[2].1, "rejected",
        "the junk's answer, also never acknowledged"
    );
    assert_eq!(again[3].1, "succeeded");
    k.stop().await.0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_has_stopped_is_not_an_error_and_the_journal_keeps_the_replies() {
    let mut k = Kiosk::start(true).await;
    k.connect(true);
    k.command("c-1", 1, false);
    // The command still runs: acks and publishes fail as a stopped link's do.
    k.screen_is(|s| matches!(s, Screen::TakeItem { .. })).await;
    let (result, journal, _dir) = k.stop().await;
    result.expect("a stopped link does not fail the runner");
    let j = Journal::open(&journal).unwrap();
    let stored = j.get_command("c-1").unwrap().expect("journaled");
    assert_eq!(stored.state, ReplyState::Succeeded);
    assert_eq!(
        j.outbox_len().unwrap(),
        3,
        "every reply waits for the next start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_test_books_its_stock_through_the_engine_and_is_audited() {
    let mut k = Kiosk::start(false).await;
    k.connect(true);
    let (reply, logged) = oneshot::channel();
    k.control
        .send(Control::FinishLogin {
            technician: "ana".into(),
            pin_ok: true,
            reply,
        })
        .await
        .unwrap();
    logged.await.unwrap();
    let answer = k.tech(TechAction::SlotTest { slot: 1 }).await.unwrap();
    assert!(matches!(answer, TechAnswer::SlotTest { slot: 1, .. }));
    // The journal's stock and the engine's (telemetry reports the engine's) agree.
    let Ok(TechAnswer::Slots { slots }) = k.tech(TechAction::Slots).await else {
        panic!("no slot table");
    };
    assert_eq!(slots.iter().find(|s| s.slot == 1).map(|s| s.count), Some(4));
    let telemetry = loop {
        if let Sent::Telemetry(t) = k.next_any().await
            && t["audit"]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["action"] == "slot_test"))
        {
            break t;
        }
    };
    let slot1 = telemetry["inventory"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["slot"] == 1).cloned())
        .unwrap();
    assert_eq!(slot1["count"], 4);
    assert_eq!(k.board.runs.load(Ordering::SeqCst), 1);
    k.stop().await.0.unwrap();
}

/// A rotation over the cabinet's own channel, without a restart: the key set is
/// journaled (with its audit row) before its ack, the next command is checked against it,
/// and a key set the cabinet must not take changes nothing and is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_key_set_rotates_the_dispense_key_without_a_restart() {
    let ops = SigningKey::from_bytes(&[9; 32]);
    let ops_public = protocol::public_key_base64url(&ops);
    let mut k = Kiosk::start_with(false, |cfg| {
        cfg.operator_keys = [("ops-1".to_owned(), ops_public.clone())].into();
    })
    .await;
    k.connect(true);
    let first = k.reported().await;
    assert_eq!(first["keys"]["version"], 0);
    assert_eq!(first["keys"]["source"], "file");
    assert_eq!(first["keys"]["dispense"], serde_json::json!(["backend-1"]));

    let (new_key, new_public) = protocol::generate_keypair().unwrap();
    let set = |version: u64, keys: Vec<protocol::KeyEntry>| protocol::KeySetClaims {
        kind: "keys".into(),
        aud: "GZ-0001".into(),
        iat: 1,
        version,
        keys,
    };
    let entry = |kid: &str, x: &str, role| protocol::KeyEntry {
        kid: kid.into(),
        x: x.into(),
        roles: vec![role],
    };
    let v1 = set(
        1,
        vec![
            entry("backend-2", &new_public, protocol::KeyRole::Dispense),
            entry("ops-1", &ops_public, protocol::KeyRole::Operator),
        ],
    );
    // Signed by the dispense key: refused, nothing changes.
    let by_sales = protocol::sign_document(&v1, &k.key, "backend-1").unwrap();
    k.key_set(&by_sales);
    k.ack().await;
    let r = k.reported().await;
    assert_eq!(r["keys"]["version"], 0);
    assert_eq!(r["refused"]["reason"], "key_not_allowed");
    // The operator clears the broker's retained copy (an empty message): no document, so
    // nothing is refused and the refusal stays what it was (a reconnect's report says).
    k.key_set("");
    k.ack().await;
    k.connect(true);
    let r = k.reported().await;
    assert_eq!(
        (&r["keys"]["version"], &r["refused"]["reason"]),
        (&serde_json::json!(0), &serde_json::json!("key_not_allowed")),
        "{r}"
    );

    k.screen_is(|s| matches!(s, Screen::Idle)).await;
    let token = protocol::sign_document(&v1, &ops, "ops-1").unwrap();
    k.key_set(&token);
    k.ack().await;
    let r = k.reported().await;
    assert_eq!(r["keys"]["version"], 1);
    // No gap in service: the cabinet is still selling (the QR code may have been
    // replaced meanwhile; the screen never left "idle").
    let shown = k.screen.borrow().as_ref().map(|s| s.screen.clone());
    assert_eq!(shown, Some(Screen::Idle));
    assert_eq!(r["keys"]["source"], "signed");
    assert_eq!(r["keys"]["dispense"], serde_json::json!(["backend-2"]));
    assert_eq!(
        r["refused"],
        Value::Null,
        "an applied set clears the refusal"
    );
    // The broker's retained copy again (a reconnect): in force already, no new audit row.
    k.key_set(&token);
    k.ack().await;
    assert_eq!(k.reported().await["keys"]["version"], 1);

    // The old key is no longer trusted; the new one is, in the same run.
    let old = k.key.clone();
    k.command_signed("c-old", 1, false, &old, "backend-1");
    k.ack().await;
    let (_, body) = k.reply().await;
    assert_eq!(
        (state(&body), body["reason"].as_str()),
        ("rejected", Some("unknown_key"))
    );
    k.command_signed("c-new", 1, false, &new_key, "backend-2");
    k.ack().await;
    let (_, body) = k.reply().await;
    assert_eq!(state(&body), "accepted");

    let (result, journal, _dir) = k.stop().await;
    result.unwrap();
    let j = crate::journal::Journal::open(&journal).unwrap();
    let audit = j.recent_audit(10).unwrap();
    let applied: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "keys_applied")
        .collect();
    assert_eq!(applied.len(), 1, "{audit:?}");
    assert_eq!(applied[0].technician, "operator:ops-1");
    assert_eq!(
        applied[0].detail,
        "version 1: dispense backend-2; operator ops-1"
    );
    assert_eq!(j.document("keys").unwrap().unwrap().version, 1);
}

/// A configuration over the cabinet's own channel: one that breaks the rules is refused
/// with every problem named and changes nothing; a good one pushed while a dispense runs
/// waits for it to end, then comes into force with its slot map, the screen following.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_configuration_waits_for_the_dispense_and_then_changes_the_slot_map() {
    let ops = SigningKey::from_bytes(&[9; 32]);
    let ops_public = protocol::public_key_base64url(&ops);
    let mut k = Kiosk::start_with(false, |cfg| {
        cfg.operator_keys = [("ops-1".to_owned(), ops_public.clone())].into();
        // "Take your item" after the dispense: the customer is still there until it ends.
        cfg.kiosk.take_item_secs = 1;
    })
    .await;
    k.connect(true);
    assert_eq!(k.reported().await["config"]["version"], 0);
    let doc = |version: u64, config: Value| {
        let claims = crate::config::ConfigClaims {
            kind: "config".into(),
            aud: "GZ-0001".into(),
            iat: 1,
            version,
            config,
        };
        protocol::sign_document(&claims, &ops, "ops-1").unwrap()
    };
    let config_doc = |k: &mut Kiosk, token: &str| {
        k.seq += 1;
        let ack = AckToken::for_test(k.seq);
        k.event(LinkEvent::Incoming(Incoming {
            payload: token.as_bytes().to_vec(),
            dup: false,
            topic: "cabinet/v1/GZ-0001/desired/config".into(),
            ack,
        }));
    };

    // Every problem, by field, and nothing else changes.
    config_doc(
        &mut k,
        &doc(
            1,
            serde_json::json!({"kiosk": {"take_item_secs": 0},
                "slots": [{"slot": 1, "product": "Water", "capacity": 10, "initial_count": 20}],
                "mqtt": {"url": "mqtt://evil"}}),
        ),
    );
    k.ack().await;
    let r = k.reported().await;
    assert_eq!(r["refused"]["reason"], "invalid", "{r}");
    assert!(
        r["refused"]["problems"][0]
            .as_str()
            .unwrap()
            .contains("mqtt"),
        "{r}"
    );
    config_doc(
        &mut k,
        &doc(
            1,
            serde_json::json!({"kiosk": {"take_item_secs": 0},
                "slots": [{"slot": 1, "product": "Water", "capacity": 10, "initial_count": 20}]}),
        ),
    );
    k.ack().await;
    let r = k.reported().await;
    let problems: Vec<&str> = r["refused"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().split(':').next().unwrap())
        .collect();
    assert_eq!(
        problems,
        ["slots[0].initial_count", "kiosk.take_item_secs"],
        "{r}"
    );
    assert_eq!(r["config"]["version"], 0);
    // Its retained copy cleared: nothing changes, the refusal is still the one reported.
    config_doc(&mut k, "");
    k.ack().await;
    k.connect(true);
    let r = k.reported().await;
    assert_eq!(
        (&r["config"]["version"], &r["refused"]["reason"]),
        (&serde_json::json!(0), &serde_json::json!("invalid")),
        "{r}"
    );

    // A dispense at the board: the good configuration waits for it.
    let release = k.board.hold();
    k.command("c-1", 2, false);
    k.ack().await;
    assert_eq!(state(&k.reply().await.1), "accepted");
    assert_eq!(state(&k.reply().await.1), "dispensing");
    config_doc(
        &mut k,
        &doc(
            2,
            serde_json::json!({"kiosk": {"name": "Gate B", "take_item_secs": 1},
                "slots": [{"slot": 1, "product": "Sparkling water", "capacity": 10, "initial_count": 5},
                          {"slot": 3, "product": "Juice", "capacity": 8, "initial_count": 8}]}),
        ),
    );
    k.ack().await;
    let r = k.reported().await;
    assert_eq!(
        (
            r["config"]["version"].as_u64(),
            r["config"]["pending"].as_u64()
        ),
        (Some(0), Some(2)),
        "{r}"
    );
    assert_eq!(
        k.screen.borrow().as_ref().unwrap().cabinet_name,
        "",
        "not during the dispense"
    );
    release.send(()).unwrap();
    assert_eq!(
        state(&k.reply().await.1),
        "succeeded",
        "finished under the old config"
    );
    let r = k.reported().await;
    assert_eq!(r["config"]["version"], 2, "{r}");
    assert_eq!(r["config"].get("pending"), None, "{r}");
    k.screen_is(|_| true).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let snap = k.screen.borrow().clone().unwrap();
        if snap.cabinet_name == "Gate B" {
            let items: Vec<(u16, &str)> = snap
                .items
                .iter()
                .map(|i| (i.slot, i.product.as_str()))
                .collect();
            assert_eq!(items, [(1, "Sparkling water"), (3, "Juice")]);
            assert_eq!(snap.config_version, 2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the screen never followed"
        );
        k.screen.changed().await.unwrap();
    }
    // Slot 2 is gone: refused slot_unknown. Slot 3 sells.
    k.command("c-2", 2, false);
    k.ack().await;
    let (_, body) = k.reply().await;
    assert_eq!(
        (state(&body), body["reason"].as_str()),
        ("rejected", Some("slot_unknown"))
    );
    k.command("c-3", 3, false);
    k.ack().await;
    release.send(()).unwrap();
    let states: Vec<String> = [k.reply().await.1, k.reply().await.1, k.reply().await.1]
        .iter()
        .map(|b| state(b).to_owned())
        .collect();
    assert_eq!(states, ["accepted", "dispensing", "succeeded"]);
    let (result, journal, _dir) = k.stop().await;
    result.unwrap();
    let j = crate::journal::Journal::open(&journal).unwrap();
    let audit = j.recent_audit(10).unwrap();
    assert!(
        audit.iter().any(|a| a.action == "config_applied"
            && a.technician == "operator:ops-1"
            && a.detail
                .starts_with("version 2: 2 slots; kiosk.name, kiosk.take_item_secs")),
        "{audit:?}"
    );
}
