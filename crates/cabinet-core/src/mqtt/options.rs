//! How the cabinet connects: [`LinkOptions`] from the config, the packet limits, and the
//! `rumqttc` options for one broker endpoint.

use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

use crate::config::{BrokerUrl, Config, Secret};
use crate::protocol::{PROTOCOL_VERSION, Presence, StateMessage, Topics};

use super::LinkError;

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
pub(super) const REQUEST_CAPACITY: usize = 64;

/// Outgoing QoS 1 publishes in flight at once.
const MAX_INFLIGHT: u16 = 32;

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

    pub(super) fn state_message(&self, status: Presence) -> Vec<u8> {
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

/// TCP_NODELAY on. rumqttc leaves Nagle's algorithm on; a small publish written right
/// after a PUBACK then waits for the broker's delayed ACK, about 40 ms on Linux
/// (`cabinet-lab bench dispatch` measured 45 ms of a 47 ms dispatch). MQTT packets are
/// already whole messages, so there is nothing for Nagle to coalesce.
pub(super) fn no_nagle() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

/// TLS that verifies the broker's certificate (and host name) against `ca_pem` only: a
/// cabinet trusts the CA its operator configured, not whatever the system trusts.
pub(super) fn tls_verified_by(ca_pem: Vec<u8>) -> Transport {
    Transport::tls_with_config(TlsConfiguration::Simple {
        ca: ca_pem,
        alpn: None,
        client_auth: None,
    })
}

/// The `rumqttc` options for one endpoint: everything but the address is the same on
/// every node.
pub(super) fn endpoint_options(
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

pub(super) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
