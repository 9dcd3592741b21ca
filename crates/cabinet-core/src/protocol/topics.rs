//! Topics: the machine code's rules and the topic names built from it.

use super::ProtocolError;

/// First topic levels, versioned so a v2 contract can live beside v1 on one broker.
pub const TOPIC_PREFIX: &str = "cabinet/v1";

/// Protocol version carried in every JSON message as `v`.
pub const PROTOCOL_VERSION: u8 = 1;

/// Checks a machine code: 1..=64 characters of `[A-Za-z0-9_-]`.
///
/// The code is used as an MQTT topic level, a client ID and a username, so it must
/// never contain `/` (another topic level), `+`/`#` (wildcards that would subscribe
/// to other cabinets' topics, the incident in docs/ARCHITECTURE.md), or anything a broker ACL
/// substitution (`%u`, `${username}`) could misread.
pub fn check_machine_code(code: &str) -> Result<(), ProtocolError> {
    let bad = |why| ProtocolError::InvalidMachineCode {
        code: code.to_owned(),
        why,
    };
    if code.is_empty() || code.len() > 64 {
        return Err(bad("must be 1..=64 characters long"));
    }
    if !code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad(
            "may contain only A-Z, a-z, 0-9, '_' and '-' (no '/', '+', '#')",
        ));
    }
    Ok(())
}

/// The topics of one cabinet: `cabinet/v1/{machine_code}/{cmd,reply,state,telemetry}`,
/// the operator's signed documents under `desired/` and the cabinet's `reported`.
///
/// One subtree per cabinet so the broker ACL can say "read only your own `cmd`, write
/// only your own subtree" (docs/PROTOCOL.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Backend → cabinet, QoS 1: signed commands.
    pub cmd: String,
    /// Cabinet → backend, QoS 1: accepted, progress and outcome replies.
    pub reply: String,
    /// Cabinet → backend, retained: birth "online" and last-will "offline".
    pub state: String,
    /// Cabinet → backend: heartbeat, inventory, board health.
    pub telemetry: String,
    /// Operator → cabinet, retained, QoS 1: the signed key set.
    pub desired_keys: String,
    /// Operator → cabinet, retained, QoS 1: the signed configuration.
    pub desired_config: String,
    /// Cabinet → backend, retained, QoS 1: the documents in force and the last refusal.
    pub reported: String,
}

impl Topics {
    /// Builds the topics of a cabinet, refusing machine codes that are not safe as a
    /// single topic level.
    pub fn new(machine_code: &str) -> Result<Topics, ProtocolError> {
        check_machine_code(machine_code)?;
        let base = format!("{TOPIC_PREFIX}/{machine_code}");
        Ok(Topics {
            cmd: format!("{base}/cmd"),
            reply: format!("{base}/reply"),
            state: format!("{base}/state"),
            telemetry: format!("{base}/telemetry"),
            desired_keys: format!("{base}/desired/keys"),
            desired_config: format!("{base}/desired/config"),
            reported: format!("{base}/reported"),
        })
    }
}
