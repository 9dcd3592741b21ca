//! Serial boards of a cabinet: the two wire protocols, their drivers, and a board simulator.
//!
//! Layers, in the order tokio-modbus taught us:
//! - `vmc::codec` / `lockboard::codec`: frame types and pure byte codecs, tested against the
//!   known-good frames of the boards' specifications. No I/O.
//! - [`port`]: the only module that opens serial ports (real devices and pseudo-terminals).
//! - `vmc::driver` / `lockboard::driver`: the codecs over a port, behind the [`Board`] trait.
//! - [`cabinet`]: several boards behind one [`Board`], slots routed to board and channel,
//!   lock boards sharing a port queued on one bus by priority.
//! - [`sim`]: a board that speaks both protocols on the far end of a pty, with fault injection
//!   and a count of every physical action, so tests can prove "at most once physically".
//! - [`memory`]: an in-process VMC board without a port, for the fleet simulator.
//!
//! Nothing here knows about MQTT, the journal or the UI.

pub mod cabinet;
pub mod lockboard;
pub mod memory;
mod outcome;
pub mod port;
pub mod sim;
pub mod vmc;

pub use cabinet::{BoardSpec, Cabinet, NamedHealth, SlotRoute};
pub use outcome::{
    BoardError, BoardHealth, FrameDirection, FrameRecord, LinkFault, MachineStatus, Outcome, Reach,
    SlotStatus, hex,
};

use std::path::PathBuf;
use std::time::Duration;

/// Which wire protocol the cabinet's board speaks (a site setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Spiral-motor vending board, RS-232 57600 8N1, the board polls the host.
    Vmc,
    /// 8A/80 lock board, RS-485 9600 8N1, the host polls the board.
    Lockboard,
}

impl Protocol {
    /// The baud rate the protocol is specified with.
    pub fn default_baud(self) -> u32 {
        match self {
            Protocol::Vmc => 57_600,
            Protocol::Lockboard => 9_600,
        }
    }

    /// The name used in config files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Vmc => "vmc",
            Protocol::Lockboard => "lockboard",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = BoardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vmc" => Ok(Protocol::Vmc),
            "lockboard" => Ok(Protocol::Lockboard),
            other => Err(BoardError::InvalidSetting {
                field: "protocol",
                message: format!("unknown protocol {other:?}; allowed: vmc, lockboard"),
            }),
        }
    }
}

/// What a cabinet does with its board, independent of the wire protocol.
///
/// Every method blocks the calling thread until the board has answered or a timeout has
/// passed; callers in async code use `spawn_blocking`. Implementations serialize operations:
/// one physical action at a time.
///
/// Physical actions return an [`Outcome`] rather than an error, because "the board did not
/// answer" is a normal outcome that must be reported honestly, and the outcome says whether
/// the command may have reached the board ([`Reach`]).
pub trait Board: Send + Sync + std::fmt::Debug {
    /// The protocol this board speaks.
    fn protocol(&self) -> Protocol;

    /// Dispense one item from `slot`: run the spiral motor (VMC) or unlock the slot's door
    /// and watch it open (lock board).
    fn dispense(&self, slot: u16) -> Outcome;

    /// A technician's test of `slot`: the same physical action as [`Board::dispense`],
    /// but a customer's dispense goes first where the board shares its bus.
    fn slot_test(&self, slot: u16) -> Outcome {
        self.dispense(slot)
    }

    /// Unlock one door channel (lock boards only).
    fn unlock(&self, channel: u16) -> Result<Outcome, BoardError>;

    /// Ask the board about one slot.
    fn slot_status(&self, slot: u16) -> Result<SlotStatus, BoardError>;

    /// Ask the board about the whole machine (doors, sensors).
    fn machine_status(&self) -> Result<MachineStatus, BoardError>;

    /// Link health and counters, for out-of-service decisions and diagnostics.
    fn health(&self) -> BoardHealth;

    /// The most recent frames exchanged, oldest first, for the technician's raw console.
    fn recent_frames(&self) -> Vec<FrameRecord>;

    /// Block until the board is talking to us (VMC: POLLs arrive; lock board: a query is
    /// answered) or `timeout` passes. Returns whether it is.
    fn wait_ready(&self, timeout: Duration) -> bool;

    /// `Some(fault)` while the board is known not to answer (a lock board whose last
    /// exchange failed, until a probe hears it again): a dispense would only cost the bus a
    /// timeout, so a [`Cabinet`] fails it as "not sent" instead. `None`: worth trying.
    fn out_of_service(&self) -> Option<LinkFault> {
        None
    }

    /// A cabinet of several boards: each board's health, named. Empty for one board.
    fn boards(&self) -> Vec<NamedHealth> {
        Vec::new()
    }

    /// A cabinet of several boards: the slots whose board is known not to answer now,
    /// ascending (the others still sell). Empty for one board: its health says it all.
    fn unavailable_slots(&self) -> Vec<u16> {
        Vec::new()
    }

    /// A cabinet of several boards: a new slot map is in force, so each slot's board and
    /// channel is now `routes` (refused like at opening when a route names a board that
    /// is not there). One board has nothing to do: a slot's number is its channel.
    fn set_routes(
        &self,
        routes: std::collections::BTreeMap<u16, cabinet::SlotRoute>,
    ) -> Result<(), BoardError> {
        let _ = routes;
        Ok(())
    }
}

/// Everything needed to open a board.
#[derive(Debug, Clone)]
pub struct BoardSettings {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Device path, e.g. `/dev/cabinet-board` (a udev symlink) or a pty path in tests.
    pub port: PathBuf,
    /// Baud rate; `None` means the protocol's default.
    pub baud: Option<u32>,
    /// VMC settings (ignored for lock boards).
    pub vmc: vmc::VmcSettings,
    /// Lock-board settings (ignored for VMC).
    pub lockboard: lockboard::LockSettings,
}

impl BoardSettings {
    /// Settings with protocol defaults for the given port.
    pub fn new(protocol: Protocol, port: impl Into<PathBuf>) -> Self {
        Self {
            protocol,
            port: port.into(),
            baud: None,
            vmc: vmc::VmcSettings::default(),
            lockboard: lockboard::LockSettings::default(),
        }
    }

    /// The baud rate to open the port with.
    pub fn baud(&self) -> u32 {
        self.baud.unwrap_or_else(|| self.protocol.default_baud())
    }
}

/// Open the board described by `settings`.
///
/// Fails only when the port cannot be opened at all (no such port, permission denied, busy);
/// later link faults show up in outcomes and [`BoardHealth`], and the driver reopens the port
/// by itself when it comes back (a USB-serial adapter replugged).
pub fn open(settings: &BoardSettings) -> Result<Box<dyn Board>, BoardError> {
    match settings.protocol {
        Protocol::Vmc => Ok(Box::new(vmc::VmcBoard::open(settings)?)),
        Protocol::Lockboard => Ok(Box::new(lockboard::LockBoard::open(settings)?)),
    }
}

/// Open the board like [`open`], but start even when the port cannot be opened yet (the
/// adapter is unplugged at boot, udev has not created the symlink): the driver keeps
/// trying, and [`Board::health`] says it is down meanwhile. This is what the kiosk uses, so
/// a missing board makes the cabinet "out of service" instead of not starting at all. Fails
/// only on invalid settings.
pub fn open_lenient(settings: &BoardSettings) -> Result<Box<dyn Board>, BoardError> {
    match settings.protocol {
        Protocol::Vmc => Ok(Box::new(vmc::VmcBoard::open_lenient(settings)?)),
        Protocol::Lockboard => Ok(Box::new(lockboard::LockBoard::open_lenient(settings)?)),
    }
}

/// Wire time of `bytes` at `baud` with 8N1 framing (10 bits per byte). A pty has no baud
/// delay, so latency figures add this to be honest about a real cable.
pub fn wire_time(bytes: usize, baud: u32) -> Duration {
    Duration::from_nanos((bytes as u64 * 10 * 1_000_000_000) / u64::from(baud.max(1)))
}
