//! What a command is: the signed claims, the verified [`Command`], the IDs that can be
//! trusted even when it is refused, and why it was refused.

use serde::{Deserialize, Serialize};

use crate::reason::Reason;

/// The `kind` of a customer's order: sell one item of a slot.
pub const KIND_DISPENSE: &str = "dispense";
/// The `kind` of a command that opens an empty door for a customer to put a rented item
/// back (lock boards only).
pub const KIND_RETURN: &str = "return";
/// The `kind` of a command that puts a slot back in service (as a technician's "enable").
pub const KIND_SLOT_ENABLE: &str = "slot_enable";
/// The `kind` of a command that takes a slot out of service (as a technician's "disable").
pub const KIND_SLOT_DISABLE: &str = "slot_disable";
/// The `kind` of a command that sets a slot's count after a restock (`count` claim).
pub const KIND_SLOT_SET_COUNT: &str = "slot_set_count";
/// The `kind` of a command that asks for a telemetry message now.
pub const KIND_TELEMETRY: &str = "telemetry";

/// Longest accepted ID (`jti`, `log_id`, `order_id`, `session`, `kid`), in characters
/// (Unicode scalar values, what PROTOCOL.md and the JSON schemas count; `kid` is ASCII,
/// so there characters and bytes agree). IDs go into logs, SQLite and replies; an
/// unbounded ID is a memory and log hazard. A backend that uses CJK order numbers gets
/// the same 128 as one that uses ASCII (at most 512 bytes of UTF-8 per ID).
pub const MAX_ID_LEN: usize = 128;

/// The JWT claims of a command, as the backend signs them.
///
/// Unknown extra claims are allowed (a backend JWT library may add its own, such as
/// `iss` or `nbf`); an unknown `kind` is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandClaims {
    /// Target machine code. Must equal this cabinet's code (invariant 1).
    pub aud: String,
    /// Command ID: the deduplication key (invariant 2).
    pub jti: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds. The authority on staleness (invariant 4).
    pub exp: i64,
    /// What to do; only `dispense` today.
    pub kind: String,
    /// Slot number in the cabinet's slot map (1-based); absent (0) for `telemetry`.
    #[serde(default)]
    pub slot: u16,
    /// Items to dispense; only 1 today. Absent (0) for the slot-control kinds.
    #[serde(default)]
    pub qty: u8,
    /// `slot_set_count`: the slot's new count (at most its capacity). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Backend order ID, echoed in replies.
    pub order_id: String,
    /// Correlation ID for logs from backend through kiosk, serial exchange and reply.
    pub log_id: String,
    /// The QR nonce the customer scanned, when the cabinet requires sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// What a command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Turn one slot's motor (VMC) or open one door (lock board).
    Dispense,
    /// Open one empty door for a rented item to be put back; the door is loaded after.
    Return,
    /// Put a slot back in service.
    SlotEnable,
    /// Take a slot out of service.
    SlotDisable,
    /// Set a slot's count (`count`) after a restock.
    SlotSetCount,
    /// Send a telemetry message now.
    Telemetry,
}

impl CommandKind {
    /// The wire name.
    pub fn code(self) -> &'static str {
        match self {
            CommandKind::Dispense => KIND_DISPENSE,
            CommandKind::Return => KIND_RETURN,
            CommandKind::SlotEnable => KIND_SLOT_ENABLE,
            CommandKind::SlotDisable => KIND_SLOT_DISABLE,
            CommandKind::SlotSetCount => KIND_SLOT_SET_COUNT,
            CommandKind::Telemetry => KIND_TELEMETRY,
        }
    }

    /// Every kind, in wire order.
    pub const ALL: [CommandKind; 6] = [
        CommandKind::Dispense,
        CommandKind::Return,
        CommandKind::SlotEnable,
        CommandKind::SlotDisable,
        CommandKind::SlotSetCount,
        CommandKind::Telemetry,
    ];

    /// A command that moves nothing and is answered at once: the operator's control of
    /// the cabinet (slots, counts, telemetry), not a customer's order.
    pub fn is_control(self) -> bool {
        !matches!(self, CommandKind::Dispense | CommandKind::Return)
    }
}

/// A command that passed every check of [`verify_command`](super::verify_command): signed by a trusted key,
/// for this cabinet, within its validity window, and sane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `jti`.
    pub cmd_id: String,
    /// `log_id`, carried on every log span and reply for this command.
    pub log_id: String,
    /// `order_id`.
    pub order_id: String,
    /// `kind`.
    pub kind: CommandKind,
    /// `slot`, at least 1 (existence in the slot map is checked by the engine).
    pub slot: u16,
    /// `qty`, exactly 1 for a dispense or a return, 0 otherwise.
    pub qty: u8,
    /// `count`, for `slot_set_count`.
    pub count: Option<u32>,
    /// `session`, if present.
    pub session: Option<String>,
    /// `iat`, unix seconds.
    pub issued_at: i64,
    /// `exp`, unix seconds; the engine re-checks it when a queued command's turn comes.
    pub expires_at: i64,
    /// Which trusted key signed it (logged, useful during key rotation).
    pub kid: String,
}

/// IDs read from a command whose signature verified, so that even a rejected command
/// can be answered and logged with its correlation IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIds {
    /// `jti`.
    pub cmd_id: String,
    /// `aud` as signed (on `wrong_target`, the cabinet it was really meant for).
    pub aud: String,
    /// `order_id`, empty if the signed claims did not carry a usable one.
    pub order_id: String,
    /// `log_id`, empty if the signed claims did not carry a usable one.
    pub log_id: String,
    /// `exp` as signed, when the claims carried a whole number: how long a redelivery of
    /// this command could still be accepted, so how long the journal must remember it.
    pub exp: Option<i64>,
}

/// Why a command was not accepted. `trusted` is `Some` only when the signature
/// verified, i.e. when the IDs in it are known to come from the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// The reason code for logs, journal and reply.
    pub reason: Reason,
    /// A short human explanation for the log (never contains the token itself).
    pub detail: String,
    /// The command's IDs, present only if the signature verified. Boxed to keep
    /// `Result<Command, Rejection>` small on the hot path.
    pub trusted: Option<Box<TrustedIds>>,
}

impl Rejection {
    pub(super) fn untrusted(reason: Reason, detail: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            detail: detail.into(),
            trusted: None,
        }
    }
}

/// Limits applied by [`verify_command`](super::verify_command); from the config's `[commands]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Payloads longer than this are rejected as `oversize` before any parsing.
    pub max_token_bytes: usize,
    /// Allowed clock difference between backend and cabinet, in seconds, applied to
    /// both `exp` and `iat`.
    pub leeway_secs: i64,
    /// The longest `exp - iat` accepted (`lifetime_too_long` beyond it). A command can be
    /// redelivered, replayed or queued only while its token is alive, so this bounds how
    /// long the cabinet must remember a command id to keep "at most once" true.
    pub max_lifetime_secs: i64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            max_token_bytes: 4096,
            leeway_secs: 30,
            max_lifetime_secs: 300,
        }
    }
}
