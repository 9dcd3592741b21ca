//! The [`Simulator`] handle: it starts the board's thread, turns faults on and off, moves
//! doors and stock, pulls and plugs the cable, and reads the counters ([`SimStats`]) that
//! tests wait on; and the state it shares with the thread.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::{Fault, Faults, SimConfig};
use super::state::{Ctl, Neighbour, Shared, relink};
use super::thread::run;
use crate::{BoardError, port};

pub use super::state::SimStats;

/// A running simulated board. Dropping it stops the board and closes the pty.
#[derive(Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Create the pty and start serving.
    pub fn start(cfg: SimConfig) -> Result<Self, BoardError> {
        let (master, pty) = port::pty_pair()?;
        if let Some(link) = &cfg.link {
            relink(link, Some(&pty))?;
        }
        let slots = cfg.slots;
        let shared = Arc::new(Shared {
            ctl: Mutex::new(Ctl {
                faults: Faults::default(),
                stats: SimStats {
                    plugged: true,
                    pty: pty.display().to_string(),
                    ..SimStats::default()
                },
                shutdown: false,
                want_plugged: true,
                doors: vec![false; usize::from(slots)],
                neighbours: cfg
                    .neighbours
                    .iter()
                    .map(|&(address, channels)| {
                        let doors = vec![false; usize::from(channels)];
                        (
                            address,
                            Neighbour {
                                doors,
                                powered: true,
                            },
                        )
                    })
                    .collect(),
                stock: (1..=slots).map(|s| (s, cfg.stock)).collect(),
                latencies: Vec::new(),
                dispense_times: Vec::new(),
            }),
            cfg,
            changed: Condvar::new(),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("board-sim".into())
            .spawn(move || run(&s, master))
            .map_err(|e| BoardError::Open {
                path: "board-sim".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The path the host should open: the symlink if configured, else the pty itself.
    pub fn path(&self) -> PathBuf {
        match &self.shared.cfg.link {
            Some(l) => l.clone(),
            None => PathBuf::from(&self.shared.lock().stats.pty),
        }
    }

    /// Turn a fault on.
    pub fn set_fault(&self, fault: Fault) {
        self.switch(fault, true);
        tracing::info!(?fault, "simulator fault on");
    }

    /// Turn one fault off (its kind: the argument of a `BadChecksum` or `SlowReply` is
    /// ignored), leaving the others as they are.
    pub fn clear_fault(&self, fault: Fault) {
        self.switch(fault, false);
        tracing::info!(?fault, "simulator fault off");
    }

    fn switch(&self, fault: Fault, on: bool) {
        let mut c = self.shared.lock();
        let f = &mut c.faults;
        match fault {
            Fault::Jam => f.jam = on,
            Fault::MotorNotStopped => f.motor_not_stopped = on,
            Fault::NoDropDetected => f.no_drop = on,
            Fault::DoorStuck => f.door_stuck = on,
            Fault::NoReply => f.no_reply = on,
            Fault::Silent => f.silent = on,
            Fault::BadChecksum(n) => f.bad_checksum = if on { n } else { 0 },
            Fault::SlowReply(d) => f.slow_reply = on.then_some(d),
            Fault::RepeatedPackNo => f.repeated_packno = on,
            Fault::ReportTwice => f.report_twice = on,
            Fault::ReportWrongSlot => f.report_wrong_slot = on,
            Fault::AnswersAs(a) => f.answers_as = on.then_some(a),
        }
    }

    /// Turn every fault off.
    pub fn clear_faults(&self) {
        self.shared.lock().faults = Faults::default();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.shared.lock().stats.clone()
    }

    /// Lock board: every unlock on the bus so far as (address, channel, count), this
    /// board's and its neighbours', in address and channel order.
    pub fn unlocks(&self) -> Vec<(u8, u16, u64)> {
        let stats = self.stats();
        let own = self.shared.cfg.address;
        let mut all: Vec<(u8, u16, u64)> = stats
            .actions_by_slot
            .iter()
            .map(|(ch, n)| (own, *ch, *n))
            .collect();
        for (board, by_channel) in &stats.neighbour_unlocks {
            all.extend(by_channel.iter().map(|(ch, n)| (*board, *ch, *n)));
        }
        all.sort_unstable();
        all
    }

    /// Take the recorded POLL reply latencies (microseconds), if recording was configured.
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut self.shared.lock().latencies)
    }

    /// Take the recorded (slot, first byte read) of every new host Dispense frame (resends
    /// excluded), oldest first, if [`SimConfig::record_dispense_times`] was set.
    pub fn take_dispense_times(&self) -> Vec<(u16, Instant)> {
        std::mem::take(&mut self.shared.lock().dispense_times)
    }

    /// Block until `pred` holds for the counters or `timeout` passes; returns whether it held.
    /// This is how tests synchronise with the board: on its state, never on sleeps.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&SimStats) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut c = self.shared.lock();
        loop {
            if pred(&c.stats) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = match self.shared.changed.wait_timeout(c, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Set a lock channel's door open or closed (a customer closing it).
    pub fn set_door(&self, channel: u16, open: bool) {
        let mut c = self.shared.lock();
        if let Some(d) = usize::from(channel)
            .checked_sub(1)
            .and_then(|i| c.doors.get_mut(i))
        {
            *d = open;
        }
    }

    /// Power a neighbouring lock board on the bus off (it goes silent, as a dead or
    /// unplugged board does; the bus and this board carry on) or back on.
    pub fn power_neighbour(&self, address: u8, on: bool) {
        if let Some(n) = self.shared.lock().neighbours.get_mut(&address) {
            n.powered = on;
        }
    }

    /// Set a neighbouring lock board's door open or closed.
    pub fn set_neighbour_door(&self, address: u8, channel: u16, open: bool) {
        let mut c = self.shared.lock();
        if let Some(d) = c.neighbours.get_mut(&address).and_then(|n| {
            usize::from(channel)
                .checked_sub(1)
                .and_then(|i| n.doors.get_mut(i))
        }) {
            *d = open;
        }
    }

    /// Set the stock of a VMC slot.
    pub fn set_stock(&self, slot: u16, count: u32) {
        self.shared.lock().stock.insert(slot, count);
    }

    /// Pull the cable: the pty closes and the path disappears. Returns once done.
    pub fn unplug(&self) {
        self.set_plugged(false);
    }

    /// Plug a cable back in: a new pty, the symlink pointing at it. Returns once done.
    pub fn replug(&self) {
        self.set_plugged(true);
    }

    fn set_plugged(&self, want: bool) {
        self.shared.lock().want_plugged = want;
        self.shared.changed.notify_all();
        self.wait_until(Duration::from_secs(5), |s| s.plugged == want);
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(link) = &self.shared.cfg.link {
            let _ = std::fs::remove_file(link);
        }
    }
}
