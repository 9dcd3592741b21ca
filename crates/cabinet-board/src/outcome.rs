//! What a board operation can come to. These types are the vocabulary the dispense engine
//! maps onto reply states and reason codes, so they keep two questions apart:
//! did the command reach the board ([`Reach`]), and what physically happened ([`Outcome`]).

use serde::Serialize;
use std::time::Duration;

use crate::Protocol;

/// How far a command got before the operation ended.
///
/// The engine needs this to tell "failed, the motor certainly did not move" (safe to say
/// "you will not be charged") from "outcome unknown" (the motor may have moved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Never written to the port: nothing can have moved.
    NotSent,
    /// Written, but the board never confirmed it: it may or may not have acted.
    Unconfirmed,
    /// The board confirmed receipt: assume it acted.
    Acknowledged,
}

/// A link-level fault, for operations that read rather than act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkFault {
    /// The board did not answer in time.
    NoReply,
    /// Only frames with a wrong checksum or shape came back.
    BadFrame,
    /// The port disappeared (adapter unplugged, pty closed).
    PortGone,
}

/// The outcome of a physical action (dispense or unlock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The motor ran to completion. `drop_detected` is `Some` only when the drop sensor was
    /// in use: `Some(true)` the item fell past it, `Some(false)` the motor turned but nothing
    /// fell (the item is probably stuck). `None`: no sensor, the board's word is all we have.
    Dispensed {
        /// Drop-sensor evidence, when there is a sensor.
        drop_detected: Option<bool>,
    },
    /// The lock released and the door sensor saw the door open.
    DoorOpened,
    /// The lock was released (the board confirmed) but the door sensor never saw the door
    /// open within the timeout: a stuck door, or a customer who walked away.
    DoorNeverOpened,
    /// The motor jammed (VMC status 03). The slot needs a technician.
    Jammed,
    /// The motor did not stop at its home position (VMC status 04).
    MotorNotStopped,
    /// The board has no such motor or channel (VMC status 06, or a channel past the board's
    /// count); nothing moved.
    NoSuchSlot,
    /// The board terminated the purchase (VMC status FF).
    Terminated,
    /// The board reported a status code this driver does not know.
    UnknownStatus {
        /// The raw status byte.
        code: u8,
    },
    /// No answer in time.
    NoReply {
        /// How far the command got.
        reach: Reach,
    },
    /// Only corrupt frames came back.
    BadFrame {
        /// How far the command got.
        reach: Reach,
    },
    /// The port went away.
    PortGone {
        /// How far the command got.
        reach: Reach,
    },
}

impl Outcome {
    /// Whether the item reached the customer as far as the board can tell.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::Dispensed {
                drop_detected: None | Some(true)
            } | Outcome::DoorOpened
        )
    }

    /// Whether the board may have moved something. `false` means it is safe to tell the
    /// customer nothing happened.
    pub fn motor_may_have_moved(&self) -> bool {
        match self {
            Outcome::NoReply { reach }
            | Outcome::BadFrame { reach }
            | Outcome::PortGone { reach } => *reach != Reach::NotSent,
            Outcome::NoSuchSlot => false,
            _ => true,
        }
    }

    /// Whether the outcome is a link fault where the board never told us what happened.
    pub fn is_unknown(&self) -> bool {
        matches!(
            self,
            Outcome::NoReply { .. } | Outcome::BadFrame { .. } | Outcome::PortGone { .. }
        ) && self.motor_may_have_moved()
    }

    /// A stable snake_case name, for logs and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Dispensed { .. } => "dispensed",
            Outcome::DoorOpened => "door_opened",
            Outcome::DoorNeverOpened => "door_never_opened",
            Outcome::Jammed => "jammed",
            Outcome::MotorNotStopped => "motor_not_stopped",
            Outcome::NoSuchSlot => "no_such_slot",
            Outcome::Terminated => "terminated",
            Outcome::UnknownStatus { .. } => "unknown_status",
            Outcome::NoReply { .. } => "no_reply",
            Outcome::BadFrame { .. } => "bad_frame",
            Outcome::PortGone { .. } => "port_gone",
        }
    }

    pub(crate) fn link(fault: LinkFault, reach: Reach) -> Outcome {
        match fault {
            LinkFault::NoReply => Outcome::NoReply { reach },
            LinkFault::BadFrame => Outcome::BadFrame { reach },
            LinkFault::PortGone => Outcome::PortGone { reach },
        }
    }
}

/// What the board says about one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// Ready to dispense.
    Ready,
    /// VMC 0x02 status 02: the board thinks the slot is empty.
    OutOfStock,
    /// VMC 0x02 status 03, or a lock channel past the board's count.
    NoSuchSlot,
    /// VMC 0x02 status 04: the slot is paused on the board.
    Paused,
    /// VMC 0x02 status 06: the delivery door is unlocked.
    DeliveryDoorUnlocked,
    /// Lock board: the slot's door is open.
    DoorOpen,
    /// Lock board: the slot's door is closed.
    DoorClosed,
    /// Lock board: a configured channel the board's status reply does not carry (the
    /// board answers with fewer status bytes than the channel count needs).
    DoorUnknown,
    /// A status byte this driver does not know.
    Unknown(u8),
}

/// What the board says about the whole machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MachineStatus {
    /// VMC: whether the delivery door is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_door_open: Option<bool>,
    /// VMC: whether the drop sensor works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_sensor_ok: Option<bool>,
    /// VMC: whether the elevator works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elevator_ok: Option<bool>,
    /// Lock board: channels whose door sensor reads "open" (after polarity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_doors: Option<Vec<u16>>,
    /// The status bytes as the board sent them, hex, for the technician.
    pub raw: String,
}

/// Errors that are not outcomes: bad settings, unsupported operations, ports that cannot be
/// opened, and link faults of read-only queries.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The port path does not exist.
    #[error("no such serial port {path}: check the cable and the board.port setting")]
    NoSuchPort {
        /// The path tried.
        path: String,
    },
    /// The user running the app may not open the port.
    #[error(
        "permission denied opening {path}: add the user to the port's group (dialout) or install the udev rule"
    )]
    PermissionDenied {
        /// The path tried.
        path: String,
    },
    /// Another process holds the port (the kiosk, another `cabinet board`, a terminal).
    #[error("serial port {path} is busy: {}", busy_detail(.path, .holder.as_ref()))]
    PortBusy {
        /// The path tried.
        path: String,
        /// Who holds it, when that could be found out.
        holder: Option<crate::port::PortHolder>,
    },
    /// Any other failure opening or configuring the port.
    #[error("cannot open serial port {path}: {message}")]
    Open {
        /// The path tried.
        path: String,
        /// What the OS said.
        message: String,
    },
    /// A read-only query failed on the link.
    #[error("board link fault: {0:?}")]
    Link(LinkFault),
    /// The operation does not exist in this protocol.
    #[error("{operation} is not supported by the {protocol} protocol")]
    Unsupported {
        /// The protocol in use.
        protocol: Protocol,
        /// What was asked.
        operation: &'static str,
    },
    /// A setting or argument is out of range.
    #[error("invalid {field}: {message}")]
    InvalidSetting {
        /// The setting's name.
        field: &'static str,
        /// What is allowed.
        message: String,
    },
}

/// The rest of a "port busy" message: who holds it and what to do.
fn busy_detail(path: &str, holder: Option<&crate::port::PortHolder>) -> String {
    let who = match holder {
        Some(h) => format!("{h} has it open"),
        None => format!("another process has it open (`fuser -v {path}` as root names it)"),
    };
    format!(
        "{who}; stop that process first (a running kiosk holds its board: \
         `systemctl stop cabinet-kiosk` or `cabinet-headless`)"
    )
}

/// Link health and counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct BoardHealth {
    /// Protocol name.
    pub protocol: String,
    /// Port path.
    pub port: String,
    /// Whether the port is open and the board has been heard from recently.
    pub connected: bool,
    /// Time since the last valid frame from the board.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rx_ms_ago: Option<u64>,
    /// Valid frames received.
    pub frames_rx: u64,
    /// Frames sent.
    pub frames_tx: u64,
    /// Frames dropped for a wrong checksum or shape.
    pub bad_frames: u64,
    /// Frames the board repeated with an already-seen PackNO (ignored).
    pub duplicate_frames: u64,
    /// Times the driver resent a command the board had not acknowledged.
    pub resends: u64,
    /// Replies that did not come in time.
    pub timeouts: u64,
    /// Times the port was reopened after it went away.
    pub reconnects: u64,
    /// VMC: POLLs answered.
    pub polls_answered: u64,
    /// VMC: slowest POLL answer, from the POLL's last byte read to our answer written.
    pub poll_reply_max_us: u64,
}

/// Direction of a frame in the technician's raw console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameDirection {
    /// Host to board.
    Tx,
    /// Board to host.
    Rx,
}

/// One frame exchanged, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameRecord {
    /// Direction.
    pub dir: FrameDirection,
    /// The bytes, hex.
    pub hex: String,
    /// What the codec made of it.
    pub meaning: String,
    /// Milliseconds since the driver started.
    pub at_ms: u64,
    /// On a cabinet of several boards: the board (its config name) that sent or got it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
}

/// Lower-case hex with spaces, the way technicians read frames (`fa fb 41 00 40`).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
