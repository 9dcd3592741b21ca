//! The lock board ("8A/80" protocol): lockers and rental cabinets.
//!
//! RS-485, 9600 8N1, the host is the master and addresses one of up to 31 boards on the bus;
//! each answers within 1.5 s. There is no jam code: "unlocked but the door never opened" is
//! found by watching the door sensor after the unlock.

mod bus;
pub mod codec;
mod driver;

pub use bus::{Bus, Priority};
pub use codec::{DoorPolarity, LockDecoder, LockFrame, Side};
pub use driver::LockBoard;

use std::time::Duration;

/// Site settings of a lock board.
#[derive(Debug, Clone)]
pub struct LockSettings {
    /// Board address on the RS-485 bus, 1–31.
    pub address: u8,
    /// Number of channels (doors) on the board; sets the status-byte count of a query reply.
    pub channels: u16,
    /// Which sensor state means "door open".
    pub polarity: DoorPolarity,
    /// How long the board has to answer one frame.
    pub reply_timeout: Duration,
    /// After an unlock, how long to wait for the door sensor to report the door open.
    pub door_open_timeout: Duration,
    /// How often to query the doors while waiting.
    pub query_interval: Duration,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self {
            address: 1,
            channels: 24,
            polarity: DoorPolarity::OpenIs11,
            reply_timeout: Duration::from_millis(1500),
            door_open_timeout: Duration::from_secs(5),
            query_interval: Duration::from_millis(200),
        }
    }
}

impl LockSettings {
    /// Check ranges; the error names the setting and what is allowed.
    pub fn validate(&self) -> Result<(), crate::BoardError> {
        if !(1..=31).contains(&self.address) {
            return Err(crate::BoardError::InvalidSetting {
                field: "board.address",
                message: format!("{} is out of range; allowed: 1 to 31", self.address),
            });
        }
        if !(1..=248).contains(&self.channels) {
            return Err(crate::BoardError::InvalidSetting {
                field: "board.channels",
                message: format!("{} is out of range; allowed: 1 to 248", self.channels),
            });
        }
        Ok(())
    }

    /// Status bytes in a query reply: one per 8 channels.
    pub fn status_bytes(&self) -> usize {
        usize::from(self.channels).div_ceil(8)
    }
}
