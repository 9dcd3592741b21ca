//! The MQTT link against a real Mosquitto using the shipped `deploy/mosquitto/acl`.
//! Each test starts its own broker on its own port, so they run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::VecDeque;
use std::time::Duration;

use cabinet_core::config::{BrokerUrl, Secret};
use cabinet_core::mqtt::{Incoming, LinkEvent, LinkHandle, LinkOptions, MqttLink};
use cabinet_core::protocol::{Presence, StateMessage};
use support::{Broker, Client, STEP, password};
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

fn endpoint(broker: &Broker) -> BrokerUrl {
    BrokerUrl {
        tls: false,
        host: "127.0.0.1".into(),
        port: broker.port(),
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

    async fn next(&mut self) -> LinkEvent {
        tokio::time::timeout(STEP, self.events.recv())
            .await
            .expect("link event in time")
            .expect("link running")
    }

    /// Waits for the first event `f` accepts; the others stay in the backlog.
    async fn wait<T>(&mut self, f: impl Fn(&LinkEvent) -> Option<T>) -> T {
        if let Some(i) = self.backlog.iter().position(|e| f(e).is_some()) {
            let e = self.backlog.remove(i).unwrap();
            return f(&e).unwrap();
        }
        loop {
            let e = self.next().await;
            if let Some(t) = f(&e) {
                return t;
            }
            self.backlog.push_back(e);
        }
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

    /// Kills the link without a clean DISCONNECT (like a crash or power cut).
    async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn state(m: &support::Msg) -> StateMessage {
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

    // The link never judges payloads: an oversize one reaches the verifier.
    let big = vec![b'x'; 100 * 1024];
    backend.publish("cabinet/v1/C001/cmd", &big, false).await;
    let cmd = link.incoming().await;
    assert_eq!(cmd.payload.len(), big.len());
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
    // Not acked. Requests leave in order: once this reply is acknowledged, A's PUBACK
    // has gone out before it.
    link.handle
        .publish_reply(1, "cabinet/v1/C001/reply", b"r".to_vec())
        .await
        .unwrap();
    assert_eq!(link.published().await, 1);
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
/// cluster does, see `cabinet fleet --cluster`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_endpoint_resubscribes_and_comes_back() {
    let mut brokers = [Broker::start(), Broker::start()];
    let (mut link, _, reached) = {
        let [a, b] = &brokers;
        Link::start_on(&[a, b], "C001").await
    };
    let at = |b: &Broker| format!("127.0.0.1:{}", b.port());
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
        assert_eq!(reached, format!("127.0.0.1:{}", live.port()));
        link.crash().await;
    }
}
