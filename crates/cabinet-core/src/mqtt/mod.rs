//! The MQTT link: the only module of the shipped code that talks to `rumqttc` (the lab
//! and the tests use it directly, to play backends and brokers' clients).
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
//!
//! One file per concern, all re-exported here so every item keeps its
//! `crate::mqtt::` path:
//! - `options`: [`LinkOptions`], packet limits, one endpoint's `rumqttc` options;
//! - `link`: [`MqttLink`], the event loop's task, and [`LinkHandle`] with its events;
//! - `failover`: endpoint order and backoff; `error`: [`LinkError`];
//! - `backend`: [`BackendClient`].

mod backend;
mod error;
mod failover;
mod link;
mod options;

pub use backend::{BackendClient, BackendError, BackendMessage, BackendOptions};
pub use error::LinkError;
pub use link::{AckToken, Incoming, LinkEvent, LinkHandle, MqttLink};
pub use options::{LinkOptions, MAX_INCOMING_PACKET_BYTES, MAX_OUTGOING_PACKET_BYTES};
