//! A board simulator on the far end of a pseudo-terminal: the same codecs as the drivers,
//! the board's side of both protocols, fault injection on demand, and a count of every
//! physical action (motor runs, unlocks) so tests can assert "at most once physically".
//!
//! The simulator owns the pty master on its own thread. The host opens the slave by path,
//! exactly as it opens a USB-serial adapter. With [`SimConfig::link`] the simulator keeps a
//! stable symlink to the current pty (what the udev rule gives a real cabinet), so
//! [`Simulator::unplug`] and [`Simulator::replug`] look to the host like a cable pulled and
//! plugged back: the path vanishes, then reappears pointing at a new pty.
//!
//! The simulated VMC board plays what real boards do, not what our driver expects: it
//! keeps polling and keeps its PackNO memory while the host is away (a host restart is
//! the host closing and reopening the pty; only a replug powers the board afresh), it can
//! report late, twice or for another slot, and it can lack the machine-status command.
//!
//! The parts: `config` (how the board is built, the faults it can be given), the
//! [`Simulator`] handle (`simulator`), what it shares with the board's thread and the
//! counters ([`SimStats`], `state`), the thread (the cable, plugged or not: `thread`),
//! the pty reads and writes (`wire`), and the board's side of each protocol (`vmc`,
//! `lockboard`).

mod config;
mod lockboard;
mod simulator;
mod state;
mod thread;
mod vmc;
mod wire;

pub use config::{Fault, SimConfig};
pub use simulator::{SimStats, Simulator};
