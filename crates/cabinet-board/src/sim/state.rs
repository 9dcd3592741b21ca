//! The state the handle ([`super::Simulator`]) and the board's thread share: the
//! counters tests wait on ([`SimStats`]), the faults and the physical world (doors,
//! stock, the cable), and the stable link to the pty.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

use super::config::{Faults, SimConfig};
use crate::BoardError;

/// What the simulator has seen and done.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SimStats {
    /// Motor runs started (VMC), resends excluded. The number tests defend.
    pub motor_actions: u64,
    /// Unlocks performed (lock board).
    pub unlock_actions: u64,
    /// Physical actions per slot/channel.
    pub actions_by_slot: BTreeMap<u16, u64>,
    /// Lock board: unlocks by the other boards on the bus
    /// ([`SimConfig::neighbours`]), by address, then channel.
    pub neighbour_unlocks: BTreeMap<u8, BTreeMap<u16, u64>>,
    /// VMC: POLLs sent.
    pub polls_sent: u64,
    /// VMC: POLLs answered by the host (in time or not).
    pub poll_replies: u64,
    /// VMC: host answers later than the deadline.
    pub missed_deadlines: u64,
    /// VMC: slowest host answer to a POLL, microseconds.
    pub poll_reply_max_us: u64,
    /// Frames from the host carrying a PackNO the board had already executed.
    pub host_resends_seen: u64,
    /// ACKs received from the host (POLL answers included).
    pub host_acks: u64,
    /// VMC: reports (dispense, slot, machine status) the board sent, resends excluded.
    pub reports_sent: u64,
    /// Good frames received from the host.
    pub frames_rx: u64,
    /// Frames from the host with a bad checksum or shape.
    pub bad_frames_rx: u64,
    /// Whether the pty is currently "plugged in".
    pub plugged: bool,
    /// Current pty path.
    pub pty: String,
}

#[derive(Debug)]
pub(super) struct Ctl {
    pub(super) faults: Faults,
    pub(super) stats: SimStats,
    pub(super) shutdown: bool,
    pub(super) want_plugged: bool,
    pub(super) doors: Vec<bool>,
    pub(super) neighbours: BTreeMap<u8, Neighbour>,
    pub(super) stock: BTreeMap<u16, u32>,
    pub(super) latencies: Vec<u32>,
    pub(super) dispense_times: Vec<(u16, Instant)>,
}

/// Another lock board on the bus: its doors, and whether it has power.
#[derive(Debug)]
pub(super) struct Neighbour {
    pub(super) doors: Vec<bool>,
    pub(super) powered: bool,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) cfg: SimConfig,
    pub(super) ctl: Mutex<Ctl>,
    pub(super) changed: Condvar,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Ctl> {
        self.ctl.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) fn relink(link: &Path, target: Option<&Path>) -> Result<(), BoardError> {
    let err = |e: std::io::Error| BoardError::Open {
        path: link.display().to_string(),
        message: format!("cannot update simulator link: {e}"),
    };
    match std::fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(t) = target {
        std::os::unix::fs::symlink(t, link).map_err(err)?;
    }
    Ok(())
}
