//! The spiral-motor vending board ("VMC" protocol).
//!
//! RS-232, 57600 8N1. The board is the master: it sends POLL about every 200 ms and the
//! host must answer within 100 ms, with ACK or with one queued command.

pub mod codec;
mod driver;
mod session;

pub use codec::{Decoder, DispenseStatus, FrameError, SlotOrder, VmcFrame};
pub use driver::VmcBoard;

use std::path::PathBuf;
use std::time::Duration;

/// Site settings of a VMC board.
#[derive(Debug, Clone)]
pub struct VmcSettings {
    /// Byte order of the 2-byte slot number; it varies between boards.
    pub slot_order: SlotOrder,
    /// Ask the board to use its drop sensor (dispense byte 2).
    pub drop_sensor: bool,
    /// Ask the board to use its elevator (dispense byte 3).
    pub elevator: bool,
    /// How long to wait for the final status report after the board acknowledged a
    /// dispense. Spiral motors take a few seconds; elevators longer.
    pub report_timeout: Duration,
    /// How long to wait for a slot/machine status report.
    pub query_timeout: Duration,
    /// How many POLLs may pass without the board acknowledging our command before we give
    /// up on it.
    pub max_attempts: u8,
    /// Without a POLL for this long the board counts as unreachable.
    pub silent_after: Duration,
    /// Where the driver keeps a reservation of the PackNOs it may put on the wire,
    /// covering every frame before it goes out. A board remembers the PackNO it executed last across
    /// our restarts and takes a frame with the same number for a resend, silently not
    /// executing it; starting after the stored number makes that impossible. `None`: a
    /// random first PackNO (a 1-in-255 chance of a collision per start; fine for a
    /// technician's one-off command, not for a cabinet).
    pub packno_file: Option<PathBuf>,
}

impl Default for VmcSettings {
    fn default() -> Self {
        Self {
            slot_order: SlotOrder::BigEndian,
            drop_sensor: true,
            elevator: false,
            report_timeout: Duration::from_secs(30),
            query_timeout: Duration::from_secs(2),
            max_attempts: 3,
            silent_after: Duration::from_secs(1),
            packno_file: None,
        }
    }
}
