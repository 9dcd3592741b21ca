//! Replies: a command's states and the transitions between them, and the reply
//! message that reports them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::reason::Reason;

use super::ProtocolError;

/// The state of a command, as reported in replies and stored in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyState {
    /// Verified, journaled and acknowledged; waiting for its turn at the motor.
    Accepted,
    /// The motor command is (about to be) on the wire.
    Dispensing,
    /// The board confirmed the dispense. Terminal.
    Succeeded,
    /// The board tried and failed, or the cabinet could not serve it. Terminal.
    Failed,
    /// Refused before any motor moved. Terminal.
    Rejected,
    /// The app restarted during `dispensing`; the motor is never run again. Terminal.
    OutcomeUnknown,
}

impl ReplyState {
    /// Every state.
    pub const ALL: [ReplyState; 6] = [
        ReplyState::Accepted,
        ReplyState::Dispensing,
        ReplyState::Succeeded,
        ReplyState::Failed,
        ReplyState::Rejected,
        ReplyState::OutcomeUnknown,
    ];

    /// True for the states that end a command: exactly one of them is reported per
    /// command (invariant 3).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ReplyState::Succeeded
                | ReplyState::Failed
                | ReplyState::Rejected
                | ReplyState::OutcomeUnknown
        )
    }

    /// Whether a command may move from `self` to `next`.
    ///
    /// `accepted` → `dispensing` or any terminal state (a queued command can still
    /// expire or find its slot jammed); `dispensing` → `succeeded`, `failed` or
    /// `outcome_unknown` (never `rejected`: the motor may already have moved, and never
    /// back to `accepted`); terminal states never change.
    pub fn can_transition_to(self, next: ReplyState) -> bool {
        match self {
            ReplyState::Accepted => next != ReplyState::Accepted,
            ReplyState::Dispensing => matches!(
                next,
                ReplyState::Succeeded | ReplyState::Failed | ReplyState::OutcomeUnknown
            ),
            _ => false,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyState::Accepted => "accepted",
            ReplyState::Dispensing => "dispensing",
            ReplyState::Succeeded => "succeeded",
            ReplyState::Failed => "failed",
            ReplyState::Rejected => "rejected",
            ReplyState::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<ReplyState> {
        ReplyState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for ReplyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The journal stores a command's state with the same enum its replies carry, so the
/// stored state and the last reply can never use different words.
pub type CommandState = ReplyState;

/// What the cabinet observed, so the backend can judge a disputed outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// VMC: did the drop sensor see an item fall? `None` when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_detected: Option<bool>,
    /// Lock board: was the door seen open? `None` when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_open: Option<bool>,
    /// The board's own status, as text (for example `"vmc:03"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_status: Option<String>,
    /// Cabinets with several boards: the board that acted (its `name` in the cabinet's
    /// config, e.g. `"wall-2"`). Absent on one-board cabinets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// With `board`: the channel (lock board) or motor (VMC) that slot is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u16>,
}

/// A reply on `.../reply` (QoS 1). One command gets `accepted`, maybe `dispensing`,
/// and exactly one terminal reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Protocol version, always [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).
    pub v: u8,
    /// The command's `jti`.
    pub cmd_id: String,
    /// The command's `order_id` (empty if a signed command carried none usable).
    pub order_id: String,
    /// The command's `log_id`, returned so the backend can join logs.
    pub log_id: String,
    /// This cabinet.
    pub machine_code: String,
    /// This run of the app (changes on restart).
    pub boot_id: String,
    /// Where the command is now.
    pub state: ReplyState,
    /// Why, for `failed`, `rejected` and `outcome_unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// What the cabinet saw.
    #[serde(default)]
    pub evidence: Evidence,
    /// When the cabinet produced this reply, unix milliseconds.
    pub at: u64,
    /// Per-boot sequence number, so the backend can order replies of one boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl Reply {
    /// True when this reply reports the command's single outcome.
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// The JSON text sent on the wire.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        Ok(serde_json::to_string(self)?)
    }
}
