//! [`MqttLink`]: the task that drives `rumqttc`'s event loop, (re)connects, fails over,
//! forwards commands and says goodbye on shutdown; and [`LinkHandle`], the consumer's
//! side (acks released in arrival order, publishing), with the [`LinkEvent`]s it receives.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS,
    Request, SubscribeFilter,
};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::protocol::{Presence, Topics};

use super::failover::{Retry, endpoint_order, jitter};
use super::options::{REQUEST_CAPACITY, endpoint_options, no_nagle};
use super::{LinkError, LinkOptions};

/// How long shutdown waits for the "offline" PUBACK and the DISCONNECT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

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

/// A message received on this cabinet's `cmd` topic or one of its `desired/` topics.
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
    /// A command or a document arrived (its `topic` says which).
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

    /// One SUBSCRIBE for `cmd` and the operator's documents, so one SUBACK says the
    /// cabinet hears everything meant for it.
    async fn subscribe_cmd(&self) -> Result<(), LinkError> {
        let _g = self.send_lock.lock().await;
        let filters = [
            &self.topics.cmd,
            &self.topics.desired_keys,
            &self.topics.desired_config,
        ]
        .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
        self.client
            .subscribe_many(filters)
            .await
            .map_err(|_| LinkError::Closed)
    }

    /// Publishes what the cabinet runs on its `reported` topic (QoS 1, retained: the
    /// backend reads the latest whenever it subscribes).
    pub async fn publish_reported(&self, payload: impl Into<Vec<u8>>) -> Result<(), LinkError> {
        let topic = self.topics.reported.clone();
        self.publish(Tag::Other, &topic, QoS::AtLeastOnce, true, payload.into())
            .await
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
        let t = &self.handle.topics;
        let is_cmd = p.topic == t.cmd || p.topic == t.desired_keys || p.topic == t.desired_config;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
