//! The MQTT link: the only module that talks to `rumqttc`.
//!
//! Shaped like `rumqttc` itself: [`MqttLink::new`] returns the link (which owns the
//! event loop and must be driven by [`MqttLink::run`] on one task), a cloneable
//! [`LinkHandle`] for requests, and a receiver of [`LinkEvent`]s for the consumer.
//!
//! What the link guarantees (docs/PROTOCOL.md §1–2):
//!
//! - client id = username = machine code, persistent session (clean session off),
//!   retained "offline" last will on `.../state`, retained "online" birth and a QoS 1
//!   subscription to `.../cmd` on **every** ConnAck (a broker may have lost the session);
//! - manual acks: a command's PUBACK goes out only when the consumer calls
//!   [`LinkHandle::ack`] (after journaling it), and acks are released in arrival order
//!   whatever order the consumer acks in;
//! - [`LinkHandle::publish_reply`] reports [`LinkEvent::Published`] when the broker's
//!   PUBACK for it arrives. `rumqttc` forgets unsent publishes when the broker has no
//!   session, so the consumer keeps the outbox and replays it on every
//!   [`LinkEvent::Connected`];
//! - reconnects with exponential backoff and jitter; on shutdown publishes "offline"
//!   and disconnects cleanly;
//! - fails over between the nodes of a broker cluster (`mqtt.failover_urls`): it orders
//!   the endpoints by its machine code (rendezvous hashing), starts on its first, stays
//!   on whichever endpoint works, tries its next one at once when a connection fails,
//!   and backs off only after every endpoint has failed in a row. Client id, credentials, will and clean-session-off go
//!   to every node alike, so a cluster that kept the session hands it back.
//!
//! The link never parses payloads: oversize or garbage commands, of any size MQTT can
//! frame, are forwarded to the verifier, which rejects them with a reason (see
//! [`MAX_INCOMING_PACKET_BYTES`]).
//!
//! The other side of the contract lives here too, so `rumqttc` stays in one module:
//! [`BackendClient`] (clean session, publishes commands, receives replies, presence and
//! telemetry) for `cabinet send`/`cabinet watch` and for tests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet,
    Publish, QoS, Request, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{BrokerUrl, Config, ConfigError, Secret};
use crate::protocol::{PROTOCOL_VERSION, Presence, ProtocolError, StateMessage, Topics};

/// Largest MQTT packet taken from the broker: the largest MQTT can frame (a remaining
/// length of 268,435,455 bytes plus at most 5 bytes of fixed header), so this limit never
/// fires.
///
/// Why no lower limit: rumqttc answers a packet above its limit by dropping the
/// connection, and the broker redelivers the unacknowledged message on every reconnect,
/// forever (a 300 KB payload against the old 256 KiB limit took a cabinet offline for
/// good, with every command behind it). Whatever the broker delivers must reach the
/// verifier, which refuses it as `oversize` and so gets it acknowledged. Brokers are told
/// to stop such messages before they get here (`message_size_limit` in the shipped
/// Mosquitto config, docs/OPERATIONS.md).
///
/// What it costs: rumqttc 0.25's codec (`framed.rs`, `mqttbytes::check`) reserves the
/// whole declared length in its read buffer as soon as it has parsed a fixed header, and
/// then fills it as bytes arrive. So a message of N bytes takes N bytes of address space
/// from its first bytes (pages are touched as the bytes come in), plus one copy of N when
/// the link hands the payload to the verifier; both are freed once it is refused. At
/// MQTT's maximum that is about 512 MB for a moment, which a broker that sets no limit
/// can make a cabinet pay; a broker with the shipped limit never sends more than 64 KiB.
pub const MAX_INCOMING_PACKET_BYTES: usize = 268_435_455 + 5;

/// Largest MQTT packet sent. The cabinet's own messages are small (a reply is well under
/// 2 KiB, telemetry about 65 bytes per slot): a packet above this is a bug, refused here
/// rather than sent.
pub const MAX_OUTGOING_PACKET_BYTES: usize = 256 * 1024;

/// Capacity of `rumqttc`'s request channel.
const REQUEST_CAPACITY: usize = 64;

/// Outgoing QoS 1 publishes in flight at once.
const MAX_INFLIGHT: u16 = 32;

/// How long shutdown waits for the "offline" PUBACK and the DISCONNECT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Why the link could not be built or a request could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Invalid machine code / topics.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The CA file for `mqtts://` could not be read.
    #[error("cannot read CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        message: String,
    },
    /// `mqtts://` without a CA file.
    #[error("mqtts:// needs mqtt.ca_file")]
    MissingCa,
    /// No broker endpoint at all.
    #[error("no broker endpoint configured")]
    NoBroker,
    /// The link task has stopped.
    #[error("the MQTT link has stopped")]
    Closed,
}

/// Everything the link needs. Build it with [`LinkOptions::from_config`].
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// This cabinet; also the MQTT client id.
    pub machine_code: String,
    /// MQTT username (the machine code unless configured otherwise).
    pub username: String,
    /// MQTT password, if any.
    pub password: Option<Secret>,
    /// Broker endpoints, in configured order (at least one; all nodes of one broker
    /// or cluster).
    pub brokers: Vec<BrokerUrl>,
    /// PEM CA bundle, required when any endpoint uses TLS.
    pub ca_pem: Option<Vec<u8>>,
    /// MQTT keep-alive (at least one second).
    pub keepalive: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// This run of the app, sent in birth and will.
    pub boot_id: String,
    /// App version, sent in birth and will.
    pub version: String,
}

impl LinkOptions {
    /// Options from a validated config; reads the password and CA files.
    pub fn from_config(
        cfg: &Config,
        boot_id: impl Into<String>,
        version: impl Into<String>,
    ) -> Result<LinkOptions, LinkError> {
        let brokers = cfg.brokers()?;
        let tls = brokers.iter().any(|b| b.tls);
        let ca_pem = match (&cfg.mqtt.ca_file, tls) {
            (Some(path), true) => Some(std::fs::read(path).map_err(|e| LinkError::CaFile {
                path: path.clone(),
                message: e.to_string(),
            })?),
            (None, true) => return Err(LinkError::MissingCa),
            (_, false) => None,
        };
        Ok(LinkOptions {
            machine_code: cfg.machine_code.clone(),
            username: cfg.mqtt_username().to_owned(),
            password: cfg.mqtt.load_password()?,
            brokers,
            ca_pem,
            keepalive: cfg.mqtt.keepalive(),
            reconnect_min: Duration::from_millis(cfg.mqtt.reconnect_min_ms),
            reconnect_max: Duration::from_millis(cfg.mqtt.reconnect_max_ms),
            boot_id: boot_id.into(),
            version: version.into(),
        })
    }

    fn state_message(&self, status: Presence) -> Vec<u8> {
        let msg = StateMessage {
            v: PROTOCOL_VERSION,
            status,
            machine_code: self.machine_code.clone(),
            boot_id: self.boot_id.clone(),
            version: self.version.clone(),
            at: now_millis(),
        };
        // A struct of strings and integers always serializes.
        serde_json::to_vec(&msg).unwrap_or_default()
    }
}

/// Proof that a command was received; give it back to [`LinkHandle::ack`] once the
/// command is journaled. Tokens from before a reconnect are ignored (the broker
/// redelivers those messages with `dup = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckToken {
    connection: u64,
    seq: u64,
}

#[cfg(test)]
impl AckToken {
    /// A token as the link would give it, for the runner's tests (crate::kiosk).
    pub(crate) fn for_test(seq: u64) -> AckToken {
        AckToken { connection: 0, seq }
    }
}

/// A message received on this cabinet's `cmd` topic.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Raw payload, unparsed (may be oversize or garbage).
    pub payload: Vec<u8>,
    /// The broker says it may have delivered this before.
    pub dup: bool,
    /// The topic it arrived on.
    pub topic: String,
    /// Give back to [`LinkHandle::ack`] after journaling.
    pub ack: AckToken,
}

/// What the link tells its consumer.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// ConnAck received. Replay the unacknowledged outbox now (`rumqttc` drops its own
    /// queue when `session_present` is false).
    Connected {
        /// The broker kept our session.
        session_present: bool,
        /// The endpoint this connection went to, `host:port`.
        broker: String,
    },
    /// The broker acknowledged the `cmd` subscription of this connection.
    Subscribed,
    /// The connection was lost (reported once per lost connection).
    Disconnected {
        /// Why.
        error: String,
    },
    /// A command arrived.
    Incoming(Incoming),
    /// The broker acknowledged the reply published with this outbox id.
    Published(u64),
}

/// What an outgoing publish was, in the order they entered `rumqttc`'s channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Reply(u64),
    Offline,
    Other,
}

#[derive(Debug)]
struct AckEntry {
    seq: u64,
    publish: Publish,
    acked: bool,
}

#[derive(Debug, Default)]
struct Shared {
    /// Tags of publishes sent to `rumqttc`, not yet seen as `Outgoing::Publish`.
    sent: VecDeque<Tag>,
    /// Current connection number (bumped on every ConnAck).
    connection: u64,
    next_seq: u64,
    /// Incoming QoS 1 publishes of this connection, in arrival order.
    acks: VecDeque<AckEntry>,
}

impl Shared {
    /// Marks a token acked and returns the publishes that may now be acked, in order.
    fn release(&mut self, token: AckToken) -> Vec<Publish> {
        if token.connection != self.connection {
            debug!(
                seq = token.seq,
                "ack token from an earlier connection ignored"
            );
            return Vec::new();
        }
        if let Some(e) = self.acks.iter_mut().find(|e| e.seq == token.seq) {
            e.acked = true;
        }
        let mut ready = Vec::new();
        while self.acks.front().is_some_and(|e| e.acked) {
            if let Some(e) = self.acks.pop_front() {
                ready.push(e.publish);
            }
        }
        ready
    }
}

/// Cloneable handle to the link: publish replies and telemetry, ack commands.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    client: AsyncClient,
    /// Held while sending to `rumqttc`, so `shared.sent` order = channel order and acks
    /// leave in order. Never taken by the polling task.
    send_lock: Arc<tokio::sync::Mutex<()>>,
    shared: Arc<Mutex<Shared>>,
    topics: Arc<Topics>,
}

/// TCP_NODELAY on. rumqttc leaves Nagle's algorithm on; a small publish written right
/// after a PUBACK then waits for the broker's delayed ACK, about 40 ms on Linux
/// (`cabinet-lab bench dispatch` measured 45 ms of a 47 ms dispatch). MQTT packets are
/// already whole messages, so there is nothing for Nagle to coalesce.
fn no_nagle() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

/// TLS that verifies the broker's certificate (and host name) against `ca_pem` only: a
/// cabinet trusts the CA its operator configured, not whatever the system trusts.
fn tls_verified_by(ca_pem: Vec<u8>) -> Transport {
    Transport::tls_with_config(TlsConfiguration::Simple {
        ca: ca_pem,
        alpn: None,
        client_auth: None,
    })
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LinkHandle {
    /// The cabinet's topics.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Acks a received command (call after it is journaled). The PUBACK leaves when
    /// every command received before it on this connection has been acked too.
    pub async fn ack(&self, token: AckToken) -> Result<(), LinkError> {
        let _g = self.send_lock.lock().await;
        let ready = lock(&self.shared).release(token);
        for p in ready {
            self.client.ack(&p).await.map_err(|_| LinkError::Closed)?;
        }
        Ok(())
    }

    /// Publishes a reply (QoS 1, not retained). [`LinkEvent::Published`] with
    /// `outbox_id` follows when the broker acknowledges it; if the connection drops
    /// first, replay it after the next [`LinkEvent::Connected`].
    pub async fn publish_reply(
        &self,
        outbox_id: u64,
        topic: &str,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), LinkError> {
        self.publish(
            Tag::Reply(outbox_id),
            topic,
            QoS::AtLeastOnce,
            false,
            payload.into(),
        )
        .await
    }

    /// Publishes a reply that is not in the outbox (QoS 1, not retained): sent once, on
    /// this connection, and not replayed. For the answer to an untrusted payload while
    /// the journal's disk is low, when nothing a stranger sends may cost disk.
    pub async fn publish_unjournaled_reply(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), LinkError> {
        self.publish(Tag::Other, topic, QoS::AtLeastOnce, false, payload.into())
            .await
    }

    /// Publishes telemetry on this cabinet's telemetry topic (QoS 0, not retained).
    pub async fn publish_telemetry(&self, payload: impl Into<Vec<u8>>) -> Result<(), LinkError> {
        let topic = self.topics.telemetry.clone();
        self.publish(Tag::Other, &topic, QoS::AtMostOnce, false, payload.into())
            .await
    }

    async fn publish(
        &self,
        tag: Tag,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), LinkError> {
        let _g = self.send_lock.lock().await;
        lock(&self.shared).sent.push_back(tag);
        if self
            .client
            .publish(topic, qos, retain, payload)
            .await
            .is_err()
        {
            lock(&self.shared).sent.pop_back();
            return Err(LinkError::Closed);
        }
        Ok(())
    }

    async fn subscribe_cmd(&self) -> Result<(), LinkError> {
        let _g = self.send_lock.lock().await;
        self.client
            .subscribe(self.topics.cmd.clone(), QoS::AtLeastOnce)
            .await
            .map_err(|_| LinkError::Closed)
    }

    async fn disconnect(&self) -> Result<(), LinkError> {
        let _g = self.send_lock.lock().await;
        self.client
            .disconnect()
            .await
            .map_err(|_| LinkError::Closed)
    }
}

/// The link: owns the `rumqttc` event loop. Drive it with [`MqttLink::run`].
pub struct MqttLink {
    eventloop: EventLoop,
    handle: LinkHandle,
    events: mpsc::UnboundedSender<LinkEvent>,
    opts: LinkOptions,
    /// One set of options per endpoint; only the address differs.
    endpoints: Vec<MqttOptions>,
    /// This cabinet's order of the endpoints (indexes into `endpoints`).
    order: Vec<usize>,
    /// Position in `order` of the endpoint the event loop connects to.
    current: usize,
}

impl std::fmt::Debug for MqttLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttLink")
            .field("machine_code", &self.opts.machine_code)
            .field("brokers", &self.opts.brokers)
            .finish_non_exhaustive()
    }
}

impl MqttLink {
    /// Builds the link, its handle and the event receiver. Nothing connects until
    /// [`MqttLink::run`] is polled.
    pub fn new(
        opts: LinkOptions,
    ) -> Result<(MqttLink, LinkHandle, mpsc::UnboundedReceiver<LinkEvent>), LinkError> {
        let topics = Topics::new(&opts.machine_code)?;
        let endpoints = opts
            .brokers
            .iter()
            .map(|b| endpoint_options(&opts, &topics, b))
            .collect::<Result<Vec<_>, _>>()?;
        let order = endpoint_order(&opts.machine_code, endpoints.len());
        let Some(mo) = order.first().and_then(|&i| endpoints.get(i)).cloned() else {
            return Err(LinkError::NoBroker);
        };
        let (client, mut eventloop) = AsyncClient::new(mo, REQUEST_CAPACITY);
        eventloop.set_network_options(no_nagle());
        let handle = LinkHandle {
            client,
            send_lock: Arc::new(tokio::sync::Mutex::new(())),
            shared: Arc::new(Mutex::new(Shared::default())),
            topics: Arc::new(topics),
        };
        let (events, rx) = mpsc::unbounded_channel();
        Ok((
            MqttLink {
                eventloop,
                handle: handle.clone(),
                events,
                opts,
                endpoints,
                order,
                current: 0,
            },
            handle,
            rx,
        ))
    }

    /// `host:port` of the endpoint the event loop connects to.
    fn endpoint(&self) -> String {
        let (host, port) = self.eventloop.mqtt_options.broker_address();
        format!("{host}:{port}")
    }

    /// Points the event loop at the next endpoint; its next poll connects there.
    fn fail_over(&mut self) {
        if self.endpoints.len() < 2 {
            return;
        }
        let from = self.endpoint();
        self.current = (self.current + 1) % self.order.len();
        self.eventloop.mqtt_options = self.endpoints[self.order[self.current]].clone();
        info!(%from, to = %self.endpoint(), "failing over to the next broker endpoint");
    }

    /// Runs until `shutdown` turns true (or its sender is dropped), then publishes the
    /// retained "offline" state and disconnects cleanly.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let span = info_span!(
            "mqtt",
            machine_code = %self.opts.machine_code,
            tls = self.opts.brokers.iter().any(|b| b.tls),
        );
        async move {
            let mut st = PollState::default();
            let mut retry = Retry::new(self.opts.reconnect_min, self.opts.reconnect_max);
            loop {
                if *shutdown.borrow() {
                    break;
                }
                tokio::select! {
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            break;
                        }
                    }
                    ev = self.eventloop.poll() => match ev {
                        Ok(ev) => {
                            if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                                retry.connected(std::time::Instant::now());
                            }
                            self.on_event(ev, &mut st);
                        }
                        Err(e) => {
                            self.on_error(&e, &mut st);
                            self.fail_over();
                            let Some(backoff) =
                                retry.failed(std::time::Instant::now(), self.endpoints.len())
                            else {
                                // Another node may be up: try it at once.
                                continue;
                            };
                            let delay = jitter(backoff);
                            debug!(delay_ms = delay.as_millis() as u64, "reconnecting after backoff");
                            tokio::select! {
                                _ = tokio::time::sleep(delay) => {}
                                _ = shutdown.changed() => {}
                            }
                        }
                    }
                }
            }
            self.shutdown(st).await;
        }
        .instrument(span)
        .await;
    }

    fn emit(&self, ev: LinkEvent) {
        // The consumer dropping its receiver is its business; nothing to do.
        let _ = self.events.send(ev);
    }

    fn on_error(&mut self, e: &ConnectionError, st: &mut PollState) {
        // rumqttc has moved its in-flight publishes (pkid != 0) and the requests still in
        // its channel (pkid 0, whose tags are at the front of `sent`) into `pending`. It
        // resends them if the broker kept the session and drops them otherwise.
        st.fresh_in_pending = self
            .eventloop
            .pending
            .iter()
            .filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
            .count();
        {
            // Commands of the lost connection come back with dup = true.
            let mut sh = lock(&self.handle.shared);
            sh.connection += 1;
            sh.acks.clear();
        }
        let broker = self.endpoint();
        if st.connected {
            warn!(%broker, error = %e, "connection lost");
            st.connected = false;
            self.emit(LinkEvent::Disconnected {
                error: e.to_string(),
            });
        } else {
            warn!(%broker, error = %e, "connect failed");
        }
    }

    fn on_event(&mut self, ev: Event, st: &mut PollState) {
        match ev {
            Event::Incoming(Packet::ConnAck(ack)) => {
                let session_present = ack.session_present;
                let broker = self.endpoint();
                info!(%broker, session_present, "connected");
                st.connected = true;
                {
                    let mut sh = lock(&self.handle.shared);
                    sh.connection += 1;
                    sh.acks.clear();
                    if !session_present {
                        // rumqttc dropped its pending queue: those publishes will never
                        // show up as Outgoing::Publish; the consumer replays the outbox.
                        let n = st.fresh_in_pending.min(sh.sent.len());
                        sh.sent.drain(..n);
                        st.inflight.clear();
                    }
                }
                st.fresh_in_pending = 0;
                st.collision = None;
                st.sub_pkid = None;
                self.emit(LinkEvent::Connected {
                    session_present,
                    broker,
                });
                // Never await the request channel from the polling task.
                let h = self.handle.clone();
                let birth = self.opts.state_message(Presence::Online);
                tokio::spawn(
                    async move {
                        if h.subscribe_cmd().await.is_err() {
                            return;
                        }
                        let topic = h.topics.state.clone();
                        let _ = h
                            .publish(Tag::Other, &topic, QoS::AtLeastOnce, true, birth)
                            .await;
                    }
                    .in_current_span(),
                );
            }
            Event::Outgoing(Outgoing::Subscribe(pkid)) => st.sub_pkid = Some(pkid),
            Event::Incoming(Packet::SubAck(ack)) if st.sub_pkid == Some(ack.pkid) => {
                debug!(return_codes = ?ack.return_codes, "subscribed to cmd");
                self.emit(LinkEvent::Subscribed);
            }
            Event::Incoming(Packet::Publish(p)) => self.on_publish(p),
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if pkid != 0 && st.inflight.contains_key(&pkid) {
                    debug!(pkid, "publish retransmitted");
                    return;
                }
                let tag = if st.collision.is_some_and(|(c, _)| c == pkid) {
                    st.collision.take().map(|(_, t)| t)
                } else {
                    lock(&self.handle.shared).sent.pop_front()
                };
                if pkid != 0
                    && let Some(tag) = tag
                {
                    st.inflight.insert(pkid, tag);
                }
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                let tag = lock(&self.handle.shared).sent.pop_front();
                st.collision = tag.map(|t| (pkid, t));
            }
            Event::Incoming(Packet::PubAck(ack)) => match st.inflight.remove(&ack.pkid) {
                Some(Tag::Reply(id)) => {
                    debug!(outbox_id = id, pkid = ack.pkid, "reply acknowledged");
                    self.emit(LinkEvent::Published(id));
                }
                Some(Tag::Offline) => st.offline_acked = true,
                _ => {}
            },
            Event::Outgoing(Outgoing::Disconnect) => st.disconnect_sent = true,
            _ => {}
        }
    }

    fn on_publish(&mut self, p: Publish) {
        let is_cmd = p.topic == self.handle.topics.cmd;
        let token = {
            let mut sh = lock(&self.handle.shared);
            let seq = sh.next_seq;
            sh.next_seq += 1;
            let token = AckToken {
                connection: sh.connection,
                seq,
            };
            if p.qos != QoS::AtMostOnce {
                // The PUBACK needs only the packet id and QoS. Without the payload, a
                // large message is held once (in `Incoming`), not twice, while it waits
                // for the journal.
                let mut publish = p.clone();
                publish.payload.clear();
                sh.acks.push_back(AckEntry {
                    seq,
                    publish,
                    acked: false,
                });
            }
            token
        };
        if is_cmd {
            debug!(
                pkid = p.pkid,
                dup = p.dup,
                bytes = p.payload.len(),
                "command received"
            );
            self.emit(LinkEvent::Incoming(Incoming {
                payload: p.payload.to_vec(),
                dup: p.dup,
                topic: p.topic,
                ack: token,
            }));
        } else {
            warn!(topic = %p.topic, "publish on an unexpected topic acknowledged and ignored");
            let h = self.handle.clone();
            tokio::spawn(async move {
                let _ = h.ack(token).await;
            });
        }
    }

    async fn shutdown(mut self, mut st: PollState) {
        if !st.connected {
            info!("stopped (not connected)");
            return;
        }
        info!("shutting down: publishing offline state");
        let h = self.handle.clone();
        let offline = self.opts.state_message(Presence::Offline);
        tokio::spawn(async move {
            let topic = h.topics.state.clone();
            let _ = h
                .publish(Tag::Offline, &topic, QoS::AtLeastOnce, true, offline)
                .await;
        });
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let mut disconnect_requested = false;
        while !st.disconnect_sent {
            if st.offline_acked && !disconnect_requested {
                disconnect_requested = true;
                let h = self.handle.clone();
                tokio::spawn(async move {
                    let _ = h.disconnect().await;
                });
            }
            match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                Ok(Ok(ev)) => self.on_event(ev, &mut st),
                Ok(Err(e)) => {
                    warn!(error = %e, "connection lost during shutdown");
                    break;
                }
                Err(_) => {
                    warn!("shutdown grace period over; closing the connection");
                    break;
                }
            }
        }
        info!("stopped");
    }
}

/// The order in which a cabinet tries the endpoints: highest random weight first
/// (rendezvous hashing of the machine code with each endpoint's position, FNV-1a). So a
/// fleet spreads evenly over a cluster's nodes, each cabinet always starts on the same
/// one, and the cabinets of a dead node spread evenly over the others instead of all
/// landing on the next one in the list.
fn endpoint_order(machine_code: &str, n: usize) -> Vec<usize> {
    let weight = |i: usize| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in machine_code.bytes().chain((i as u64).to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // FNV's low bits mix poorly: finish with a multiply-xorshift.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(weight(i)));
    order
}

/// The `rumqttc` options for one endpoint: everything but the address is the same on
/// every node.
fn endpoint_options(
    opts: &LinkOptions,
    topics: &Topics,
    broker: &BrokerUrl,
) -> Result<MqttOptions, LinkError> {
    let mut mo = MqttOptions::new(opts.machine_code.clone(), broker.host.clone(), broker.port);
    mo.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(opts.keepalive.max(Duration::from_secs(1)))
        .set_max_packet_size(MAX_INCOMING_PACKET_BYTES, MAX_OUTGOING_PACKET_BYTES)
        .set_inflight(MAX_INFLIGHT)
        .set_last_will(LastWill::new(
            topics.state.clone(),
            opts.state_message(Presence::Offline),
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(pw) = &opts.password {
        mo.set_credentials(opts.username.clone(), pw.expose());
    }
    if broker.tls {
        let ca = opts.ca_pem.clone().ok_or(LinkError::MissingCa)?;
        mo.set_transport(tls_verified_by(ca));
    }
    Ok(mo)
}

#[derive(Debug, Default)]
struct PollState {
    connected: bool,
    /// Outgoing QoS 1 publishes awaiting PUBACK, by packet id.
    inflight: HashMap<u16, Tag>,
    /// A publish `rumqttc` parked on a packet id collision.
    collision: Option<(u16, Tag)>,
    /// Fresh publishes (tags at the front of `sent`) moved into rumqttc's `pending`.
    fresh_in_pending: usize,
    /// Packet id of this connection's cmd SUBSCRIBE.
    sub_pkid: Option<u16>,
    offline_acked: bool,
    disconnect_sent: bool,
}

/// A connection that lasted this long was a working one: its loss starts a fresh round
/// (first retry at once, backoff from the minimum). A shorter one counts as a failure,
/// so a broker that accepts and then drops the cabinet (a duplicate client id, an ACL
/// that disconnects) is retried with a growing backoff, not in a tight loop.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// When to connect again: at once to the next endpoint while some endpoint of this round
/// has not failed yet; after an exponential backoff once every endpoint failed in a row.
#[derive(Debug)]
struct Retry {
    min: Duration,
    max: Duration,
    backoff: Duration,
    failed_in_row: usize,
    up_since: Option<std::time::Instant>,
}

impl Retry {
    fn new(min: Duration, max: Duration) -> Retry {
        Retry {
            min,
            max,
            backoff: min,
            failed_in_row: 0,
            up_since: None,
        }
    }

    /// ConnAck received at `now`.
    fn connected(&mut self, now: std::time::Instant) {
        self.up_since = Some(now);
    }

    /// A connection or an attempt failed at `now`, with `endpoints` in all. `None`: try
    /// the next endpoint now; `Some(d)`: wait about `d` first.
    fn failed(&mut self, now: std::time::Instant, endpoints: usize) -> Option<Duration> {
        if self
            .up_since
            .take()
            .is_some_and(|t| now.duration_since(t) >= STABLE_AFTER)
        {
            self.backoff = self.min;
            self.failed_in_row = 0;
        }
        self.failed_in_row += 1;
        if self.failed_in_row < endpoints {
            return None;
        }
        self.failed_in_row = 0;
        let d = self.backoff;
        self.backoff = (self.backoff * 2).min(self.max);
        Some(d)
    }
}

/// A delay between `d / 2` and `d`.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 8];
    let r = match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => u64::from(now_millis() as u32),
    };
    let half = d / 2;
    let span = half.as_millis() as u64;
    if span == 0 {
        return d;
    }
    half + Duration::from_millis(r % (span + 1))
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------
// The backend side: a small client for tools (`cabinet send`/`watch`) and tests
// ---------------------------------------------------------------------------------

/// Everything [`BackendClient::connect`] needs. Unlike a cabinet, the backend uses a
/// clean session: it is a tool that waits for replies while it runs, not a device that
/// must receive commands sent while it was offline.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// MQTT client id; must be unique on the broker (a second connection with the same
    /// id kicks the first off).
    pub client_id: String,
    /// MQTT username (`backend` in the shipped ACLs), if the broker wants one.
    pub username: Option<String>,
    /// MQTT password, if any.
    pub password: Option<Secret>,
    /// Broker address.
    pub broker: BrokerUrl,
    /// PEM CA bundle, required when `broker.tls`.
    pub ca_pem: Option<Vec<u8>>,
    /// How long connect, subscribe and publish may each wait for the broker.
    pub timeout: Duration,
    /// Keep the session across connections (clean session off): the broker queues what
    /// arrives while this client is away and delivers it on its return, with the same
    /// `client_id`. Messages may then come twice; replies carry `boot_id` + `seq`.
    pub persistent_session: bool,
}

/// A message the backend received on one of the cabinet topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendMessage {
    /// The full topic, e.g. `cabinet/v1/C001/reply`.
    pub topic: String,
    /// Raw payload (JSON from a well-behaved cabinet, but never trust that).
    pub payload: Vec<u8>,
    /// The broker delivered it from its retained store (e.g. the last `state`).
    pub retain: bool,
    /// When the connection task read it off the socket (a consumer busy elsewhere may
    /// take it from the channel much later).
    pub at: std::time::Instant,
}

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Invalid machine code (or a wildcard where only a code is allowed).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// `mqtts://` without a CA file.
    #[error("mqtts:// needs a CA file (--ca-file)")]
    MissingCa,
    /// The broker refused the connection (bad credentials, not authorized, ...).
    #[error("the broker refused the connection: {0}")]
    Refused(String),
    /// The connection could not be made or was lost.
    #[error("MQTT connection failed: {0}")]
    Connection(String),
    /// The broker refused a subscription (usually the ACL: wrong username).
    #[error("the broker refused the subscription to {0} (check the username and the ACL)")]
    SubscribeRefused(String),
    /// The broker did not answer within [`BackendOptions::timeout`].
    #[error("no answer from the broker within {0:?} while {1}")]
    Timeout(Duration, &'static str),
}

#[derive(Debug)]
enum Ctl {
    ConnAck,
    SubAck(Vec<rumqttc::SubscribeReasonCode>),
    PubAck,
    Error(BackendError),
}

/// A backend MQTT client: publishes signed commands and receives replies, presence and
/// telemetry. One task owns the `rumqttc` event loop; it stops when the client is
/// dropped or the connection is lost (the client does not reconnect: a tool reports the
/// failure and the operator reruns it, retrying with the same command id).
#[derive(Debug)]
pub struct BackendClient {
    client: AsyncClient,
    ctl: mpsc::UnboundedReceiver<Ctl>,
    messages: mpsc::UnboundedReceiver<BackendMessage>,
    task: tokio::task::JoinHandle<()>,
    timeout: Duration,
}

impl BackendClient {
    /// Connects and waits for the broker's ConnAck.
    pub async fn connect(opts: BackendOptions) -> Result<BackendClient, BackendError> {
        let mut mo = MqttOptions::new(
            opts.client_id.clone(),
            opts.broker.host.clone(),
            opts.broker.port,
        );
        // Incoming as large as MQTT allows, for the cabinet's reason: a cabinet's
        // password can publish any size on that cabinet's reply/state/telemetry topics,
        // which this client subscribes to, and a limit here would turn one such message
        // into a disconnect that a persistent session redelivers on every reconnect.
        mo.set_clean_session(!opts.persistent_session)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MAX_INCOMING_PACKET_BYTES, MAX_OUTGOING_PACKET_BYTES);
        if let Some(user) = &opts.username {
            let pw = opts.password.as_ref().map(Secret::expose).unwrap_or("");
            mo.set_credentials(user.clone(), pw);
        }
        if opts.broker.tls {
            let ca = opts.ca_pem.clone().ok_or(BackendError::MissingCa)?;
            mo.set_transport(tls_verified_by(ca));
        }
        let (client, mut eventloop) = AsyncClient::new(mo, REQUEST_CAPACITY);
        eventloop.set_network_options(no_nagle());
        let (ctl_tx, ctl) = mpsc::unbounded_channel();
        let (msg_tx, messages) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let ctl = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Ctl::ConnAck,
                    Ok(Event::Incoming(Packet::SubAck(ack))) => Ctl::SubAck(ack.return_codes),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Ctl::PubAck,
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = msg_tx.send(BackendMessage {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            at: std::time::Instant::now(),
                        });
                        continue;
                    }
                    Ok(_) => continue,
                    Err(ConnectionError::ConnectionRefused(code)) => {
                        let _ = ctl_tx.send(Ctl::Error(BackendError::Refused(format!("{code:?}"))));
                        return;
                    }
                    Err(e) => {
                        let _ = ctl_tx.send(Ctl::Error(BackendError::Connection(e.to_string())));
                        return;
                    }
                };
                if ctl_tx.send(ctl).is_err() {
                    return;
                }
            }
        });
        let mut c = BackendClient {
            client,
            ctl,
            messages,
            task,
            timeout: opts.timeout,
        };
        match c.next_ctl("connecting").await? {
            Ctl::ConnAck => Ok(c),
            other => Err(BackendError::Connection(format!(
                "unexpected first packet {other:?}"
            ))),
        }
    }

    async fn next_ctl(&mut self, doing: &'static str) -> Result<Ctl, BackendError> {
        match tokio::time::timeout(self.timeout, self.ctl.recv()).await {
            Err(_) => Err(BackendError::Timeout(self.timeout, doing)),
            Ok(None) => Err(BackendError::Connection("connection task stopped".into())),
            Ok(Some(Ctl::Error(e))) => Err(e),
            Ok(Some(c)) => Ok(c),
        }
    }

    /// Subscribes (QoS 1) to `reply`, `state` and `telemetry` of one cabinet, or of
    /// every cabinet with `"+"`, and waits for the SubAck. Subscribe *before* sending a
    /// command so its replies cannot slip past.
    pub async fn subscribe_cabinet(&mut self, code_or_plus: &str) -> Result<(), BackendError> {
        if code_or_plus != "+" {
            crate::protocol::check_machine_code(code_or_plus)?;
        }
        let filters: Vec<String> = ["reply", "state", "telemetry"]
            .iter()
            .map(|t| format!("{}/{code_or_plus}/{t}", crate::protocol::TOPIC_PREFIX))
            .collect();
        self.client
            .subscribe_many(
                filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)),
            )
            .await
            .map_err(|e| BackendError::Connection(e.to_string()))?;
        loop {
            if let Ctl::SubAck(codes) = self.next_ctl("subscribing").await? {
                if let Some(i) = codes
                    .iter()
                    .position(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    return Err(BackendError::SubscribeRefused(
                        filters.get(i).cloned().unwrap_or_default(),
                    ));
                }
                return Ok(());
            }
        }
    }

    /// Publishes a signed command token to `cabinet/v1/{machine_code}/cmd` (QoS 1, not
    /// retained) and waits for the broker's PUBACK. The PUBACK means the *broker* has
    /// it, not that a cabinet received it: the cabinet's replies say that.
    pub async fn send_command(
        &mut self,
        machine_code: &str,
        token: &str,
    ) -> Result<(), BackendError> {
        let topics = Topics::new(machine_code)?;
        // The request channel is full when the broker stops acknowledging (a cluster
        // node that lost its quorum): that is a timeout too, not a wait forever.
        let publish = self.client.publish(
            topics.cmd,
            QoS::AtLeastOnce,
            false,
            token.as_bytes().to_vec(),
        );
        tokio::time::timeout(self.timeout, publish)
            .await
            .map_err(|_| BackendError::Timeout(self.timeout, "publishing the command"))?
            .map_err(|e| BackendError::Connection(e.to_string()))?;
        loop {
            if let Ctl::PubAck = self.next_ctl("publishing the command").await? {
                return Ok(());
            }
        }
    }

    /// The next message on a subscribed topic; `None` once the connection is lost.
    pub async fn recv(&mut self) -> Option<BackendMessage> {
        self.messages.recv().await
    }

    /// Disconnects cleanly (best effort) and stops the connection task.
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.task).await;
    }
}

impl Drop for BackendClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_endpoint_backs_off_exponentially_until_a_stable_connection() {
        let ms = Duration::from_millis;
        let t0 = std::time::Instant::now();
        let mut r = Retry::new(ms(500), ms(3000));
        let waits: Vec<_> = (0..5).map(|_| r.failed(t0, 1)).collect();
        assert_eq!(
            waits,
            [
                Some(ms(500)),
                Some(ms(1000)),
                Some(ms(2000)),
                Some(ms(3000)),
                Some(ms(3000))
            ]
        );
        // A connection that dropped right away does not reset the backoff...
        r.connected(t0);
        assert_eq!(r.failed(t0 + ms(100), 1), Some(ms(3000)));
        // ...one that worked for a while does.
        r.connected(t0);
        assert_eq!(r.failed(t0 + STABLE_AFTER, 1), Some(ms(500)));
    }

    #[test]
    fn several_endpoints_are_tried_at_once_then_backed_off_as_a_round() {
        let ms = Duration::from_millis;
        let t0 = std::time::Instant::now();
        let mut r = Retry::new(ms(100), ms(1000));
        let waits: Vec<_> = (0..6).map(|_| r.failed(t0, 3)).collect();
        assert_eq!(
            waits,
            [None, None, Some(ms(100)), None, None, Some(ms(200))]
        );
        // A node dies under a working connection: the next node at once.
        r.connected(t0);
        assert_eq!(r.failed(t0 + STABLE_AFTER, 3), None);
        // A broker that accepts and drops the cabinet over and over: still a round, and
        // the backoff grows instead of a tight loop between the nodes.
        let mut flapping = Vec::new();
        for _ in 0..6 {
            r.connected(t0);
            flapping.push(r.failed(t0 + ms(10), 3));
        }
        assert_eq!(
            flapping,
            [None, Some(ms(100)), None, None, Some(ms(200)), None]
        );
    }

    fn within_10_percent(per: &[u32], what: &str) {
        let even = per.iter().sum::<u32>() / per.len() as u32;
        for count in per {
            assert!(
                count.abs_diff(even) * 10 < even,
                "{what}: {per:?} is not within 10 % of {even} each"
            );
        }
    }

    #[test]
    fn a_fleet_spreads_evenly_over_the_endpoints_and_so_does_a_dead_ones_share() {
        assert_eq!(endpoint_order("C001", 0), Vec::<usize>::new());
        assert_eq!(endpoint_order("C001", 1), [0]);
        for n in 2..=4 {
            let orders: Vec<Vec<usize>> = (0..6000)
                .map(|i| endpoint_order(&format!("C{i:04}"), n))
                .collect();
            let mut first = vec![0u32; n];
            for o in &orders {
                let mut sorted = o.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "each endpoint once");
                first[o[0]] += 1;
            }
            within_10_percent(&first, &format!("{n} endpoints, first choice"));
            if n > 2 {
                // The cabinets that start on node 0 move evenly to the others when it dies.
                let mut second = vec![0u32; n];
                for o in orders.iter().filter(|o| o[0] == 0) {
                    second[o[1]] += 1;
                }
                within_10_percent(&second[1..], &format!("{n} endpoints, node 0's share"));
            }
        }
        // The same cabinet always has the same order.
        assert_eq!(endpoint_order("C001", 3), endpoint_order("C001", 3));
    }

    fn publish(pkid: u16) -> Publish {
        let mut p = Publish::new("t", QoS::AtLeastOnce, vec![1]);
        p.pkid = pkid;
        p
    }

    fn shared_with(n: u64) -> Shared {
        let mut sh = Shared::default();
        for seq in 0..n {
            sh.acks.push_back(AckEntry {
                seq,
                publish: publish(seq as u16 + 1),
                acked: false,
            });
        }
        sh.next_seq = n;
        sh
    }

    #[test]
    fn acks_are_released_in_arrival_order() {
        let mut sh = shared_with(3);
        let t = |seq| AckToken { connection: 0, seq };
        assert!(sh.release(t(1)).is_empty(), "ack 2 must wait for ack 1");
        assert!(sh.release(t(2)).is_empty());
        let out: Vec<u16> = sh.release(t(0)).iter().map(|p| p.pkid).collect();
        assert_eq!(out, vec![1, 2, 3]);
        assert!(sh.acks.is_empty());
    }

    #[test]
    fn tokens_from_an_earlier_connection_are_ignored() {
        let mut sh = shared_with(1);
        sh.connection = 2;
        assert!(
            sh.release(AckToken {
                connection: 1,
                seq: 0
            })
            .is_empty()
        );
        assert_eq!(sh.acks.len(), 1);
    }

    #[test]
    fn jitter_stays_between_half_and_full() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_millis(1000));
        }
    }
}
