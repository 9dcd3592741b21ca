//! The backend side of the contract: [`BackendClient`], a small client for tools
//! (`cabinet send`/`watch`) and tests that publishes commands and receives replies,
//! presence and telemetry.

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::config::{BrokerUrl, Secret};
use crate::protocol::{ProtocolError, Topics};

use super::options::{REQUEST_CAPACITY, no_nagle, tls_verified_by};
use super::{MAX_INCOMING_PACKET_BYTES, MAX_OUTGOING_PACKET_BYTES};

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
    /// A signed document kind a cabinet does not take.
    #[error("no document kind {0:?}: `keys` or `config`")]
    UnknownDocument(String),
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
        self.subscribe_topics(
            code_or_plus,
            &["reply", "state", "telemetry"],
            QoS::AtLeastOnce,
        )
        .await
    }

    /// Subscribes to `reported` of one cabinet, or of every cabinet with `"+"` (the
    /// operator's view: which documents each cabinet runs), and waits for the SubAck. The
    /// broker then hands over each cabinet's retained report.
    ///
    /// At QoS 0: a report is retained state, the latest always there to read again, and
    /// QoS 0 keeps it out of the broker's queue of QoS 1 messages for this session
    /// (Mosquitto's `max_queued_messages`, 1,000 as shipped). When a fleet of 1,000
    /// cabinets reconnects at once, each sends its presence and its report; both at QoS 1
    /// overflowed that queue and the broker dropped presence messages (found by
    /// `cabinet-lab fleet --cabinets 1000`).
    pub async fn subscribe_reported(&mut self, code_or_plus: &str) -> Result<(), BackendError> {
        self.subscribe_topics(code_or_plus, &["reported"], QoS::AtMostOnce)
            .await
    }

    async fn subscribe_topics(
        &mut self,
        code_or_plus: &str,
        topics: &[&str],
        qos: QoS,
    ) -> Result<(), BackendError> {
        if code_or_plus != "+" {
            crate::protocol::check_machine_code(code_or_plus)?;
        }
        let filters: Vec<String> = topics
            .iter()
            .map(|t| format!("{}/{code_or_plus}/{t}", crate::protocol::TOPIC_PREFIX))
            .collect();
        self.client
            .subscribe_many(
                filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), qos)),
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
        self.publish_confirmed(topics.cmd, false, token, "publishing the command")
            .await
    }

    /// Publishes a signed key set to `cabinet/v1/{machine_code}/desired/keys` (QoS 1,
    /// **retained**, so a cabinet that is off gets it when it connects) and waits for the
    /// broker's PUBACK. The cabinet's `reported` says whether it took it.
    pub async fn send_key_set(
        &mut self,
        machine_code: &str,
        token: &str,
    ) -> Result<(), BackendError> {
        let topics = Topics::new(machine_code)?;
        self.publish_confirmed(topics.desired_keys, true, token, "publishing the key set")
            .await
    }

    /// Publishes a signed configuration to `cabinet/v1/{machine_code}/desired/config`,
    /// as [`BackendClient::send_key_set`] does a key set.
    pub async fn send_config(
        &mut self,
        machine_code: &str,
        token: &str,
    ) -> Result<(), BackendError> {
        let topics = Topics::new(machine_code)?;
        self.publish_confirmed(
            topics.desired_config,
            true,
            token,
            "publishing the configuration",
        )
        .await
    }

    /// Clears the broker's retained document of `kind` (`keys` or `config`) for
    /// `machine_code`: an empty retained message (QoS 1), which a cabinet takes as no
    /// document at all. For a document a cabinet refused, so that it is not handed over
    /// and refused again at every connection; the cabinet keeps what it runs.
    pub async fn clear_document(
        &mut self,
        machine_code: &str,
        kind: &str,
    ) -> Result<(), BackendError> {
        let topics = Topics::new(machine_code)?;
        let topic = match kind {
            crate::protocol::KIND_KEYS => topics.desired_keys,
            crate::protocol::KIND_CONFIG => topics.desired_config,
            other => return Err(BackendError::UnknownDocument(other.to_owned())),
        };
        self.publish_confirmed(topic, true, "", "clearing a retained document")
            .await
    }

    async fn publish_confirmed(
        &mut self,
        topic: String,
        retain: bool,
        payload: &str,
        doing: &'static str,
    ) -> Result<(), BackendError> {
        // The request channel is full when the broker stops acknowledging (a cluster
        // node that lost its quorum): that is a timeout too, not a wait forever.
        let publish =
            self.client
                .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec());
        tokio::time::timeout(self.timeout, publish)
            .await
            .map_err(|_| BackendError::Timeout(self.timeout, doing))?
            .map_err(|e| BackendError::Connection(e.to_string()))?;
        loop {
            if let Ctl::PubAck = self.next_ctl(doing).await? {
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
