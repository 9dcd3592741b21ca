//! The MQTT link against a real Mosquitto using the shipped `deploy/mosquitto/acl` and
//! the settings of `deploy/mosquitto/mosquitto.conf` (cabinets on the cabinets' listener),
//! or a stock Mosquitto where a test is about a broker set up without them.
//! Each test starts its own broker on its own ports, so they run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::time::Duration;

use cabinet_core::config::{BrokerUrl, Secret};
use cabinet_core::mqtt::{Incoming, LinkEvent, LinkHandle, LinkOptions, MqttLink};
use cabinet_core::protocol::{self, CommandClaims, Presence, StateMessage};
use cabinet_testkit::mosquitto::{Broker, Client, Msg, STEP, password, shipped_setting};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

struct Link {
    handle: LinkHandle,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    /// Events skipped by [`Link::wait`], kept for later waits.
    backlog: VecDeque<LinkEvent>,
}

/// The cabinets' listener: what a cabinet connects to with the shipped config.
fn endpoint(broker: &Broker) -> BrokerUrl {
    BrokerUrl {
        tls: false,
        host: "127.0.0.1".into(),
        port: broker.cabinet_port(),
    }
}

fn options(brokers: &[&Broker], code: &str) -> LinkOptions {
    LinkOptions {
        machine_code: code.into(),
        username: code.into(),
        password: Some(Secret::new(password(code))),
        brokers: brokers.iter().map(|b| endpoint(b)).collect(),
        ca_pem: None,
        keepalive: Duration::from_secs(5),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        boot_id: format!("boot-{code}"),
        version: "0.1.0-test".into(),
    }
}

impl Link {
    /// Starts the link and waits until it is connected and subscribed.
    async fn start(broker: &Broker, code: &str) -> (Link, bool) {
        let (l, session_present, _) = Link::start_on(&[broker], code).await;
        (l, session_present)
    }

    /// Starts a link with several endpoints; also returns the `host:port` it reached.
    async fn start_on(brokers: &[&Broker], code: &str) -> (Link, bool, String) {
        Link::start_with(options(brokers, code)).await
    }

    async fn start_with(opts: LinkOptions) -> (Link, bool, String) {
        let (link, handle, events) = MqttLink::new(opts).unwrap();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(link.run(rx));
        let mut l = Link {
            handle,
            events,
            task,
            stop,
            backlog: VecDeque::new(),
        };
        let (session_present, reached) = l.connected_to().await;
        l.wait(|e| matches!(e, LinkEvent::Subscribed).then_some(()))
            .await;
        (l, session_present, reached)
    }

    /// Waits (up to [`STEP`] in all) for the first event `f` accepts; the others stay in
    /// the backlog. The bound is on the whole wait, not on each event: a link stuck in a
    /// reconnect loop produces events forever and must still fail the test.
    async fn wait<T>(&mut self, f: impl Fn(&LinkEvent) -> Option<T>) -> T {
        if let Some(i) = self.backlog.iter().position(|e| f(e).is_some()) {
            let e = self.backlog.remove(i).unwrap();
            return f(&e).unwrap();
        }
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| {
                    let n = self.backlog.len();
                    panic!(
                        "the awaited link event did not come within {STEP:?}; meanwhile {n} \
                         others, the last: {:?}",
                        self.backlog
                            .iter()
                            .skip(n.saturating_sub(3))
                            .collect::<Vec<_>>()
                    )
                })
                .expect("link running");
            if let Some(t) = f(&e) {
                return t;
            }
            self.backlog.push_back(e);
        }
    }

    /// Connection events received so far (and kept in the backlog): a link that stayed
    /// up has none.
    fn reconnects(&mut self) -> Vec<LinkEvent> {
        while let Ok(e) = self.events.try_recv() {
            self.backlog.push_back(e);
        }
        self.backlog
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    LinkEvent::Disconnected { .. } | LinkEvent::Connected { .. }
                )
            })
            .cloned()
            .collect()
    }

    async fn connected(&mut self) -> bool {
        self.connected_to().await.0
    }

    /// The next ConnAck: whether the session was kept, and the endpoint's `host:port`.
    async fn connected_to(&mut self) -> (bool, String) {
        self.wait(|e| match e {
            LinkEvent::Connected {
                session_present,
                broker,
            } => Some((*session_present, broker.clone())),
            _ => None,
        })
        .await
    }

    async fn incoming(&mut self) -> Incoming {
        self.wait(|e| match e {
            LinkEvent::Incoming(i) => Some(i.clone()),
            _ => None,
        })
        .await
    }

    async fn published(&mut self) -> u64 {
        self.wait(|e| match e {
            LinkEvent::Published(id) => Some(*id),
            _ => None,
        })
        .await
    }

    /// Returns once every request made so far (acks included) has reached the broker:
    /// requests leave in order, so once a reply published now is acknowledged, all before
    /// it are through. Crashing without this races the acks.
    async fn settle(&mut self, id: u64) {
        self.handle
            .publish_reply(id, "cabinet/v1/C001/reply", b"r".to_vec())
            .await
            .unwrap();
        assert_eq!(self.published().await, id);
    }

    /// Kills the link without a clean DISCONNECT (like a crash or power cut).
    async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn state(m: &Msg) -> StateMessage {
    serde_json::from_slice(&m.payload).expect("state message json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receives_commands_announces_birth_and_leaves_a_retained_will() {
    let broker = Broker::start();
    let mut watcher = Client::connect(&broker, "watcher", "backend").await;
    watcher.subscribe("cabinet/v1/C001/state").await;

    let (mut link, _) = Link::start(&broker, "C001").await;
    let birth = state(&watcher.next().await);
    assert_eq!(birth.status, Presence::Online);
    assert_eq!(birth.boot_id, "boot-C001");
    assert_eq!(birth.version, "0.1.0-test");

    // A late subscriber gets the birth as a retained message.
    let mut late = Client::connect(&broker, "late", "backend").await;
    late.subscribe("cabinet/v1/C001/state").await;
    let m = late.next().await;
    assert!(m.retain, "birth must be retained");
    assert_eq!(state(&m).status, Presence::Online);

    let mut backend = Client::connect(&broker, "backend", "backend").await;
    backend
        .publish("cabinet/v1/C001/cmd", b"token-1", false)
        .await;
    let cmd = link.incoming().await;
    assert_eq!(cmd.payload, b"token-1");
    assert_eq!(cmd.topic, "cabinet/v1/C001/cmd");
    assert!(!cmd.dup);
    link.handle.ack(cmd.ack).await.unwrap();

    link.crash().await;
    let will = state(&watcher.next().await);
    assert_eq!(will.status, Presence::Offline);
    assert_eq!(will.boot_id, "boot-C001");
    let mut later = Client::connect(&broker, "later", "backend").await;
    later.subscribe("cabinet/v1/C001/state").await;
    let m = later.next().await;
    assert!(m.retain, "will must be retained");
    assert_eq!(state(&m).status, Presence::Offline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_shutdown_publishes_offline() {
    let broker = Broker::start();
    let mut watcher = Client::connect(&broker, "watcher", "backend").await;
    watcher.subscribe("cabinet/v1/C001/state").await;
    let (link, _) = Link::start(&broker, "C001").await;
    assert_eq!(state(&watcher.next().await).status, Presence::Online);
    link.stop.send(true).unwrap();
    tokio::time::timeout(STEP, link.task)
        .await
        .expect("link stops in time")
        .unwrap();
    assert_eq!(state(&watcher.next().await).status, Presence::Offline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_command_is_redelivered_with_dup_and_acked_one_is_not() {
    let broker = Broker::start();
    let mut backend = Client::connect(&broker, "backend", "backend").await;
    let (mut link, _) = Link::start(&broker, "C001").await;

    backend.publish("cabinet/v1/C001/cmd", b"A", false).await;
    let a = link.incoming().await;
    assert_eq!(a.payload, b"A");
    link.handle.ack(a.ack).await.unwrap();
    backend.publish("cabinet/v1/C001/cmd", b"B", false).await;
    let b = link.incoming().await;
    assert_eq!(b.payload, b"B");
    // Not acked; A's PUBACK has reached the broker.
    link.settle(1).await;
    link.crash().await;

    let (mut link, session_present) = Link::start(&broker, "C001").await;
    assert!(session_present, "persistent session expected");
    let again = link.incoming().await;
    assert_eq!(again.payload, b"B", "A was acked and must not come back");
    assert!(again.dup, "redelivery must carry dup");
    backend.publish("cabinet/v1/C001/cmd", b"C", false).await;
    let c = link.incoming().await;
    assert_eq!(c.payload, b"C");
    assert!(!c.dup);
    link.handle.ack(again.ack).await.unwrap();
    link.handle.ack(c.ack).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_keeps_cabinets_in_their_own_subtree() {
    let broker = Broker::start();
    let mut backend = Client::connect(&broker, "backend", "backend").await;
    backend.subscribe("cabinet/v1/+/reply").await;
    let (mut link, _) = Link::start(&broker, "C001").await;

    // A C001 client trying to listen to C002's commands: the SUBACK is granted anyway,
    // but nothing is delivered.
    let mut probe = Client::connect(&broker, "probe", "C001").await;
    probe.subscribe("cabinet/v1/C002/cmd").await;
    probe.subscribe("cabinet/v1/C001/cmd").await;

    backend
        .publish("cabinet/v1/C002/cmd", b"for-C002", false)
        .await;
    // A cabinet may not command itself either.
    probe
        .publish("cabinet/v1/C001/cmd", b"self-made", false)
        .await;
    backend
        .publish("cabinet/v1/C001/cmd", b"for-C001", false)
        .await;

    let got = link.incoming().await;
    assert_eq!(got.payload, b"for-C001");
    let seen = probe.next().await;
    assert_eq!(seen.topic, "cabinet/v1/C001/cmd");
    assert_eq!(seen.payload, b"for-C001");
    link.handle.ack(got.ack).await.unwrap();

    // Denied publishes vanish silently (the broker still acks them)...
    link.handle
        .publish_reply(1, "cabinet/v1/C002/reply", b"forged".to_vec())
        .await
        .unwrap();
    assert_eq!(link.published().await, 1);
    // ...so prove it with an allowed one behind it: only that one arrives.
    link.handle
        .publish_reply(2, "cabinet/v1/C001/reply", b"genuine".to_vec())
        .await
        .unwrap();
    assert_eq!(link.published().await, 2);
    let m = backend.next().await;
    assert_eq!(m.topic, "cabinet/v1/C001/reply");
    assert_eq!(m.payload, b"genuine");
    backend.assert_empty();
}

/// Only the operator gives a cabinet its documents, retained, and a cabinet hears only
/// its own; only the cabinet writes its `reported`, which backend and operator read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_operator_gives_a_cabinet_its_documents_and_only_the_cabinet_reports() {
    let broker = Broker::start();
    let mut operator = Client::connect(&broker, "operator", "operator").await;
    operator.subscribe("cabinet/v1/+/reported").await;
    operator
        .publish("cabinet/v1/C002/desired/keys", b"for-C002", true)
        .await;
    // Retained before the cabinet connects: it gets the document when it subscribes.
    operator
        .publish("cabinet/v1/C001/desired/keys", b"for-C001", true)
        .await;
    // Denied publishes vanish (were they allowed, each would replace the retained one):
    // the backend, another cabinet, the cabinet itself.
    let mut backend = Client::connect(&broker, "backend", "backend").await;
    backend
        .publish("cabinet/v1/C001/desired/keys", b"from-backend", true)
        .await;
    let mut c002 = Client::connect(&broker, "C002", "C002").await;
    c002.publish("cabinet/v1/C001/desired/keys", b"from-C002", true)
        .await;
    c002.publish("cabinet/v1/C001/reported", b"forged-report", true)
        .await;
    let mut c001 = Client::connect(&broker, "self", "C001").await;
    c001.publish("cabinet/v1/C001/desired/keys", b"self-made", true)
        .await;
    let (mut link, _) = Link::start(&broker, "C001").await;
    let got = link.incoming().await;
    assert_eq!(got.topic, "cabinet/v1/C001/desired/keys");
    assert_eq!(got.payload, b"for-C001");
    link.handle.ack(got.ack).await.unwrap();

    link.handle
        .publish_reported(b"genuine".to_vec())
        .await
        .unwrap();
    let m = operator.next().await;
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("cabinet/v1/C001/reported", b"genuine".as_slice())
    );
    operator.assert_empty();
    // The one retained document a newcomer finds for C001 is the operator's.
    let mut probe = Client::connect(&broker, "probe", "operator").await;
    probe.subscribe("cabinet/v1/C001/reported").await;
    assert_eq!(probe.next().await.payload, b"genuine");
    probe.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_confirmed_and_the_link_survives_a_broker_restart() {
    let mut broker = Broker::start();
    let mut backend = Client::connect(&broker, "backend", "backend").await;
    backend.subscribe("cabinet/v1/C001/reply").await;
    let (mut link, _) = Link::start(&broker, "C001").await;

    link.handle
        .publish_reply(7, "cabinet/v1/C001/reply", b"outcome".to_vec())
        .await
        .unwrap();
    assert_eq!(link.published().await, 7);
    assert_eq!(backend.next().await.payload, b"outcome");
    drop(backend);

    tokio::task::block_in_place(|| broker.restart());
    link.wait(|e| matches!(e, LinkEvent::Disconnected { .. }).then_some(()))
        .await;
    let _session_present = link.connected().await;
    link.wait(|e| matches!(e, LinkEvent::Subscribed).then_some(()))
        .await;

    let mut backend = Client::connect(&broker, "backend", "backend").await;
    backend.subscribe("cabinet/v1/C001/reply").await;
    backend
        .publish("cabinet/v1/C001/cmd", b"after-restart", false)
        .await;
    let cmd = link.incoming().await;
    assert_eq!(cmd.payload, b"after-restart");
    link.handle.ack(cmd.ack).await.unwrap();
    link.handle
        .publish_reply(8, "cabinet/v1/C001/reply", b"outcome-2".to_vec())
        .await
        .unwrap();
    assert_eq!(link.published().await, 8);
    assert_eq!(backend.next().await.payload, b"outcome-2");
}

/// Two brokers standing in for two cluster nodes: when the node in use dies, the link
/// moves to the other one, resubscribes and takes commands there; when that one dies
/// too, it comes back to the first. (Separate Mosquittos share no session; a real
/// cluster does, see `cabinet-lab fleet --cluster`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_endpoint_resubscribes_and_comes_back() {
    let mut brokers = [Broker::start(), Broker::start()];
    let (mut link, _, reached) = {
        let [a, b] = &brokers;
        Link::start_on(&[a, b], "C001").await
    };
    let at = |b: &Broker| format!("127.0.0.1:{}", b.cabinet_port());
    let first = brokers.iter().position(|b| at(b) == reached).unwrap();
    let other = 1 - first;

    for (down, up) in [(first, other), (other, first)] {
        if down == other {
            tokio::task::block_in_place(|| brokers[first].restart());
        }
        tokio::task::block_in_place(|| brokers[down].stop());
        link.wait(|e| matches!(e, LinkEvent::Disconnected { .. }).then_some(()))
            .await;
        let (_, now) = link.connected_to().await;
        assert_eq!(now, at(&brokers[up]), "the link moved to the live endpoint");
        link.wait(|e| matches!(e, LinkEvent::Subscribed).then_some(()))
            .await;

        let mut backend = Client::connect(&brokers[up], "backend", "backend").await;
        backend.subscribe("cabinet/v1/C001/state").await;
        let birth = backend.next().await;
        assert_eq!(
            state(&birth).status,
            Presence::Online,
            "birth on the new node"
        );
        backend
            .publish("cabinet/v1/C001/cmd", format!("via-{up}").as_bytes(), false)
            .await;
        let cmd = link.incoming().await;
        assert_eq!(cmd.payload, format!("via-{up}").as_bytes());
        link.handle.ack(cmd.ack).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_endpoint_costs_no_backoff_round() {
    // Whatever endpoint C001 starts on, one of the two is dead from the start; the link
    // still ends up connected to the live one, without waiting out a backoff (a minute
    // here, far beyond the wait for the connection).
    let live = Broker::start();
    let mut dead = Broker::start();
    dead.stop();
    for order in [[&live, &dead], [&dead, &live]] {
        let mut opts = options(&order, "C001");
        opts.reconnect_min = Duration::from_secs(60);
        opts.reconnect_max = Duration::from_secs(60);
        let (link, _, reached) = Link::start_with(opts).await;
        assert_eq!(reached, format!("127.0.0.1:{}", live.cabinet_port()));
        link.crash().await;
    }
}

/// A signed command for `code`, as a backend sends it (the link does not judge it; the
/// kiosk's end-to-end test shows such a command served after the same large payloads).
fn signed_command(code: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (key, _) = protocol::generate_keypair().unwrap();
    let claims = CommandClaims {
        aud: code.into(),
        jti: format!("cmd-{now}"),
        iat: now,
        exp: now + 60,
        kind: "dispense".into(),
        slot: 1,
        qty: 1,
        order_id: "order-1".into(),
        log_id: "log-1".into(),
        session: None,
        count: None,
    };
    protocol::sign_command(&claims, &key, "k1")
        .unwrap()
        .into_bytes()
}

/// Regression: one large message took a cabinet offline for good. The link refused any
/// packet above 256 KiB by dropping the connection, and a broker without a size limit
/// (Mosquitto's default takes payloads up to 256 MB) redelivered the message on every
/// reconnect, forever; nothing queued behind it ever arrived. Now the link takes any
/// packet MQTT can frame and hands it to the verifier, which refuses it as `oversize`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_of_300_kb_and_2_mb_on_a_broker_without_a_limit_are_delivered_and_the_link_stays_up()
 {
    let broker = Broker::start_stock();
    let mut backend = Client::connect(&broker, "backend", "backend").await;
    let (mut link, _) = Link::start(&broker, "C001").await;

    let payloads = [
        vec![b'x'; 300_000],
        vec![b'y'; 2_000_000],
        signed_command("C001"),
    ];
    for p in &payloads {
        backend.publish("cabinet/v1/C001/cmd", p, false).await;
    }
    for p in &payloads {
        let cmd = link.incoming().await;
        assert_eq!(
            cmd.payload.len(),
            p.len(),
            "payloads arrive whole and in order"
        );
        assert!(
            cmd.payload == *p,
            "the {} byte payload arrived changed",
            p.len()
        );
        assert!(!cmd.dup, "delivered once, not again after a reconnect");
        link.handle.ack(cmd.ack).await.unwrap();
    }
    let reconnects = link.reconnects();
    assert!(
        reconnects.is_empty(),
        "the link reconnected: {reconnects:?}"
    );

    // The acks went out: the broker does not deliver any of them again after a restart
    // of the cabinet, only what is new. (Crashing before they reached the broker raced
    // them: the 300 KB payload came back now and then.)
    link.settle(1).await;
    link.crash().await;
    let (mut link, session_present) = Link::start(&broker, "C001").await;
    assert!(session_present);
    backend.publish("cabinet/v1/C001/cmd", b"next", false).await;
    let next = link.incoming().await.payload;
    assert!(
        next == b"next",
        "an acknowledged payload came back ({} bytes) instead of the new one",
        next.len()
    );
}

/// The shipped `message_size_limit` lets the largest command a cabinet can be configured
/// to take through (`commands.max_payload_bytes` goes up to 65,536, CONFIG.md) and stops
/// anything larger at the broker: Mosquitto acknowledges it to the publisher and delivers
/// it to nobody, so it never costs a cabinet anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_broker_limit_passes_the_largest_valid_command_and_drops_anything_larger() {
    let limit: usize = shipped_setting("message_size_limit")
        .expect("deploy/mosquitto/mosquitto.conf sets message_size_limit")
        .parse()
        .expect("message_size_limit in bytes");
    assert!(
        limit >= 65_536,
        "message_size_limit {limit} is below the largest valid command (65,536 bytes)"
    );
    let broker = Broker::start();
    let mut backend = Client::connect(&broker, "backend", "backend").await;
    let (mut link, _) = Link::start(&broker, "C001").await;

    backend
        .publish("cabinet/v1/C001/cmd", &vec![b'x'; limit], false)
        .await;
    let cmd = link.incoming().await;
    assert_eq!(cmd.payload.len(), limit);
    link.handle.ack(cmd.ack).await.unwrap();

    backend
        .publish("cabinet/v1/C001/cmd", &vec![b'y'; limit + 1], false)
        .await;
    backend
        .publish("cabinet/v1/C001/cmd", b"after", false)
        .await;
    let cmd = link.incoming().await;
    assert_eq!(
        cmd.payload, b"after",
        "a payload above the shipped limit reached the cabinet"
    );
    link.handle.ack(cmd.ack).await.unwrap();
}

/// Regression: with the shipped config of before, cabinet C001's password used with
/// client id `C002` got C002's persistent session (`session_present`), silently took the
/// commands queued in it (the ACL kept them from the intruder, and from C002 for good),
/// and kicked the real C002 off on every try. The cabinets' listener now makes the client
/// id the username (`use_username_as_clientid`): C001's password only ever opens C001's
/// session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cabinets_password_with_another_cabinets_client_id_gets_neither_its_session_nor_its_commands_nor_kicks_it_off()
 {
    let broker = Broker::start();
    let mut backend = Client::connect(&broker, "backend", "backend").await;

    // C002 has a persistent session and is away: its commands wait in the session.
    let (c002, _) = Link::start(&broker, "C002").await;
    c002.crash().await;
    backend
        .publish("cabinet/v1/C002/cmd", b"queued-1", false)
        .await;
    backend
        .publish("cabinet/v1/C002/cmd", b"queued-2", false)
        .await;

    // C001's credentials with C002's client id, clean session off, on the cabinets'
    // listener (where a leaked cabinet password gets in).
    let (mut intruder, session_present) =
        Client::connect_to(broker.cabinet_port(), "C002", "C001", false).await;
    assert!(
        !session_present,
        "C001's password was handed C002's session; broker config:\n{}",
        broker.config()
    );
    // A session's queued messages follow the CONNACK at once, before anything of a
    // later subscription: once C001's own command arrives, nothing of C002's came.
    intruder.subscribe("cabinet/v1/C001/cmd").await;
    backend
        .publish("cabinet/v1/C001/cmd", b"for-C001", false)
        .await;
    let first = intruder.next().await;
    assert_eq!(
        (first.topic.as_str(), first.payload.as_slice()),
        ("cabinet/v1/C001/cmd", b"for-C001".as_slice())
    );
    drop(intruder);

    // C002 comes back to its session with both commands still in it.
    let (mut c002, session_present) = Link::start(&broker, "C002").await;
    assert!(session_present, "C002's session was taken over or lost");
    for want in [b"queued-1", b"queued-2"] {
        let cmd = c002.incoming().await;
        assert_eq!(cmd.payload, want);
        c002.handle.ack(cmd.ack).await.unwrap();
    }

    // The intruder tries again while C002 is online: C002 stays connected and serving.
    let (_intruder, _) = Client::connect_to(broker.cabinet_port(), "C002", "C001", false).await;
    backend.publish("cabinet/v1/C002/cmd", b"live", false).await;
    let cmd = c002.incoming().await;
    assert_eq!(cmd.payload, b"live");
    c002.handle.ack(cmd.ack).await.unwrap();
    let reconnects = c002.reconnects();
    assert!(reconnects.is_empty(), "C002 was kicked off: {reconnects:?}");
}
