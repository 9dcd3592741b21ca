//! An in-process VMC board for the fleet simulator: the kiosk calls it through the same
//! [`Board`] trait as a real driver, but there is no serial port, no frame and no I/O
//! thread, so a thousand cabinets fit in one process. It counts every motor action per
//! slot, the number the fleet's reconciliation defends.
//!
//! What it does not exercise (the pty simulator in [`crate::sim`] does): framing,
//! PackNOs, resends, POLL timing, unplugging.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::{
    Board, BoardError, BoardHealth, FrameRecord, MachineStatus, Outcome, Protocol, SlotStatus,
};

/// A board that lives in memory. Every slot `1..=slots` exists and never runs out (the
/// kiosk's own inventory decides what may be sold).
#[derive(Debug)]
pub struct MemoryBoard {
    slots: u16,
    motor_time: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Motor runs per slot.
    by_slot: BTreeMap<u16, u64>,
}

impl MemoryBoard {
    /// A board with slots `1..=slots` whose motor turns for `motor_time` per dispense.
    pub fn new(slots: u16, motor_time: Duration) -> MemoryBoard {
        MemoryBoard {
            slots,
            motor_time,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Motor runs so far, all slots.
    pub fn motor_actions(&self) -> u64 {
        self.lock().by_slot.values().sum()
    }

    /// Motor runs so far, per slot.
    pub fn actions_by_slot(&self) -> BTreeMap<u16, u64> {
        self.lock().by_slot.clone()
    }
}

impl Board for MemoryBoard {
    fn protocol(&self) -> Protocol {
        Protocol::Vmc
    }

    fn dispense(&self, slot: u16) -> Outcome {
        if slot == 0 || slot > self.slots {
            return Outcome::NoSuchSlot;
        }
        // The guard is dropped at the end of the statement, before the motor turns.
        *self.lock().by_slot.entry(slot).or_default() += 1;
        if !self.motor_time.is_zero() {
            // The motor turning: the kiosk calls boards from its blocking pool.
            std::thread::sleep(self.motor_time);
        }
        Outcome::Dispensed {
            drop_detected: Some(true),
        }
    }

    fn unlock(&self, _channel: u16) -> Result<Outcome, BoardError> {
        Err(BoardError::Unsupported {
            protocol: Protocol::Vmc,
            operation: "unlock",
        })
    }

    fn slot_status(&self, slot: u16) -> Result<SlotStatus, BoardError> {
        Ok(if slot == 0 || slot > self.slots {
            SlotStatus::NoSuchSlot
        } else {
            SlotStatus::Ready
        })
    }

    fn machine_status(&self) -> Result<MachineStatus, BoardError> {
        Ok(MachineStatus {
            delivery_door_open: Some(false),
            drop_sensor_ok: Some(true),
            elevator_ok: Some(true),
            open_doors: None,
            raw: "00 00 00".into(),
        })
    }

    fn health(&self) -> BoardHealth {
        BoardHealth {
            protocol: "vmc".into(),
            port: "memory".into(),
            connected: true,
            last_rx_ms_ago: Some(0),
            ..BoardHealth::default()
        }
    }

    fn recent_frames(&self) -> Vec<FrameRecord> {
        Vec::new()
    }

    fn wait_ready(&self, _timeout: Duration) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_motor_runs_per_slot_and_refuses_unknown_slots() {
        let b = MemoryBoard::new(3, Duration::ZERO);
        assert!(b.dispense(2).is_success());
        assert!(b.dispense(2).is_success());
        assert_eq!(b.dispense(4), Outcome::NoSuchSlot);
        assert_eq!(b.dispense(0), Outcome::NoSuchSlot);
        assert_eq!(b.motor_actions(), 2);
        assert_eq!(b.actions_by_slot().get(&2), Some(&2));
        assert_eq!(b.slot_status(3).ok(), Some(SlotStatus::Ready));
        assert_eq!(b.slot_status(9).ok(), Some(SlotStatus::NoSuchSlot));
    }
}
