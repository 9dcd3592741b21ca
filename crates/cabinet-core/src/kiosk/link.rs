//! The runner's port to the MQTT link: the five things it asks of a connection. The
//! link's events come the other way, on a channel of [`LinkEvent`]s.
//!
//! In the cabinet this is [`LinkHandle`] (crate::mqtt, over rumqttc); the runner's unit
//! tests put a recorder in its place, so the runner's own logic (what it journals before
//! it acks, what it hands to the link and when) is tested without a broker.

use std::future::Future;

use crate::mqtt::{AckToken, LinkError, LinkHandle};

use super::KioskError;

/// What the runner sends over the broker connection.
pub(crate) trait Link: Send + Sync + 'static {
    /// PUBACK for a command, once it is journaled.
    fn ack(&self, token: AckToken) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// A reply from the outbox, QoS 1; the link reports its PUBACK as
    /// [`LinkEvent::Published`](crate::mqtt::LinkEvent::Published) with `outbox_id`.
    fn publish_reply(
        &self,
        outbox_id: u64,
        topic: &str,
        payload: String,
    ) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// A reply that is not in the outbox (an untrusted payload while the disk is low).
    fn publish_unjournaled_reply(
        &self,
        topic: &str,
        payload: String,
    ) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// A telemetry message.
    fn publish_telemetry(&self, json: String)
    -> impl Future<Output = Result<(), LinkError>> + Send;

    /// What the cabinet runs (retained on `reported`).
    fn publish_reported(&self, json: String) -> impl Future<Output = Result<(), LinkError>> + Send;
}

impl Link for LinkHandle {
    async fn ack(&self, token: AckToken) -> Result<(), LinkError> {
        LinkHandle::ack(self, token).await
    }

    async fn publish_reply(
        &self,
        outbox_id: u64,
        topic: &str,
        payload: String,
    ) -> Result<(), LinkError> {
        LinkHandle::publish_reply(self, outbox_id, topic, payload).await
    }

    async fn publish_unjournaled_reply(
        &self,
        topic: &str,
        payload: String,
    ) -> Result<(), LinkError> {
        LinkHandle::publish_unjournaled_reply(self, topic, payload).await
    }

    async fn publish_telemetry(&self, json: String) -> Result<(), LinkError> {
        LinkHandle::publish_telemetry(self, json).await
    }

    async fn publish_reported(&self, json: String) -> Result<(), LinkError> {
        LinkHandle::publish_reported(self, json).await
    }
}

/// A link that has stopped (the app is shutting down: the link task ends on the same
/// signal as the runner) is not an error of the runner: what it could not send is in the
/// journal (outbox, audit) or will be redelivered (an unacknowledged command), and the
/// runner sees the link's end on its event channel and finishes. Before this, a stop that
/// came while the runner sent a heartbeat or an audit ended the kiosk with an error.
pub(super) fn stopped_is_not_an_error(r: Result<(), LinkError>) -> Result<(), KioskError> {
    match r {
        Err(LinkError::Closed) => {
            tracing::debug!("the MQTT link has stopped: nothing more is sent");
            Ok(())
        }
        other => other.map_err(KioskError::from),
    }
}

/// What the runner knows of the broker connection (for the diagnostics and the
/// outbox: replies are handed to the link only while connected).
#[derive(Debug, Default)]
pub(super) struct Conn {
    pub(super) connected: bool,
    pub(super) connected_since_ms: Option<u64>,
    /// The endpoint of the current (or last) connection, `host:port`.
    pub(super) broker: Option<String>,
    /// When the last command arrived.
    pub(super) last_message_ms: Option<u64>,
    /// When a valid signed command last vouched for our clock.
    pub(super) clock_confirmed_ms: Option<u64>,
}

impl Conn {
    /// Connected to `broker`.
    pub(super) fn up(&mut self, broker: String) {
        self.broker = Some(broker);
        self.connected = true;
        self.connected_since_ms = Some(super::now_ms());
    }

    /// The connection was lost.
    pub(super) fn down(&mut self) {
        self.connected = false;
        self.connected_since_ms = None;
    }
}
