//! One RS-485 bus and the lock boards daisy-chained on it.
//!
//! The bus is half-duplex and the host is its only master, so one frame exchange at a time
//! crosses it. Each exchange takes a [`Turn`]; waiting turns are served by [`Priority`]
//! (a customer's unlock first, then a technician's slot test, then health queries), in
//! arrival order within one priority. A turn lasts one request and its reply, never a
//! whole unlock: the door watch after an unlock takes a turn per query, so a health query
//! slips in between them and never delays a dispense by more than the one exchange already
//! on the wire.
//!
//! The bus owns the port: it opens it (again, after a USB-serial adapter was replugged)
//! and counts the reconnects; the boards own everything about themselves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::BoardError;
use crate::port::{self, SerialLink};

/// How long one read on the port blocks; the drivers shorten it per read.
pub(super) const READ_SLICE: Duration = Duration::from_millis(20);

/// Who is asking for the bus. Lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A customer's unlock and the door watch that follows it.
    Dispense,
    /// A technician's slot test or unlock.
    SlotTest,
    /// A read-only query for the health check, diagnostics or the panel.
    Health,
}

/// One serial bus: a port and the queue of exchanges waiting for it.
#[derive(Debug)]
pub struct Bus {
    path: PathBuf,
    baud: u32,
    gate: Mutex<Gate>,
    turn_free: Condvar,
    link: Mutex<Link>,
    /// Read without waiting for the exchange on the wire (health is asked any time).
    open: AtomicBool,
    reconnects: AtomicU64,
    boards: AtomicUsize,
}

#[derive(Debug, Default)]
struct Gate {
    busy: bool,
    /// Waiting turns by (priority, arrival); the first is served next.
    waiting: BTreeSet<(Priority, u64)>,
    arrivals: u64,
}

pub(super) struct Link {
    port: Option<Box<dyn SerialLink>>,
    /// Whether the port was open before, so a reopen counts as a reconnect.
    was_open: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("open", &self.port.is_some())
            .finish()
    }
}

impl Bus {
    /// Open the bus's port now; fails when it cannot be opened.
    pub fn open(path: &Path, baud: u32) -> Result<Bus, BoardError> {
        let port = port::open(path, baud, READ_SLICE)?;
        Ok(Bus::with_port(path, baud, Some(Box::new(port))))
    }

    /// Like [`Bus::open`], but a port that cannot be opened yet (the adapter is unplugged
    /// at boot) is opened on the first exchange instead.
    pub fn open_lenient(path: &Path, baud: u32) -> Bus {
        let port = match port::open(path, baud, READ_SLICE) {
            Ok(p) => Some(Box::new(p) as Box<dyn SerialLink>),
            Err(e) => {
                tracing::warn!(port = %path.display(), error = %e, "bus port not available yet; retrying on use");
                None
            }
        };
        Bus::with_port(path, baud, port)
    }

    fn with_port(path: &Path, baud: u32, port: Option<Box<dyn SerialLink>>) -> Bus {
        Bus {
            path: path.to_path_buf(),
            baud,
            gate: Mutex::new(Gate::default()),
            turn_free: Condvar::new(),
            open: AtomicBool::new(port.is_some()),
            reconnects: AtomicU64::new(0),
            boards: AtomicUsize::new(0),
            link: Mutex::new(Link {
                was_open: port.is_some(),
                port,
            }),
        }
    }

    /// The bus's device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bus's baud rate: every board on it speaks this one.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// Whether the port is open (an unplugged adapter is not).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// How many boards are on the bus.
    pub fn boards(&self) -> usize {
        self.boards.load(Ordering::Relaxed)
    }

    /// A board joins the bus.
    pub(super) fn attach(&self) {
        self.boards.fetch_add(1, Ordering::Relaxed);
    }

    /// Times the port came back after it was lost.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    fn lock_gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_link(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for the bus: returns when no exchange is on it and no earlier or more urgent
    /// turn is waiting. The turn ends when the returned [`Turn`] is dropped.
    pub(super) fn turn(&self, priority: Priority) -> Turn<'_> {
        let mut gate = self.lock_gate();
        gate.arrivals += 1;
        let me = (priority, gate.arrivals);
        gate.waiting.insert(me);
        // Waiters re-check on any change; a new arrival is one (and tests wait for it).
        self.turn_free.notify_all();
        while gate.busy || gate.waiting.first() != Some(&me) {
            gate = self.turn_free.wait(gate).unwrap_or_else(|p| p.into_inner());
        }
        gate.waiting.remove(&me);
        gate.busy = true;
        drop(gate);
        Turn {
            bus: self,
            link: self.lock_link(),
        }
    }
}

/// The bus, held for one exchange.
pub(super) struct Turn<'a> {
    bus: &'a Bus,
    link: MutexGuard<'a, Link>,
}

impl Turn<'_> {
    /// The open port, opening it first if it was lost; `None` while it cannot be opened.
    pub(super) fn port(&mut self) -> Option<&mut Box<dyn SerialLink>> {
        let link = &mut *self.link;
        if link.port.is_none() {
            let p = port::open(&self.bus.path, self.bus.baud, READ_SLICE).ok()?;
            if link.was_open {
                self.bus.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            link.was_open = true;
            self.bus.open.store(true, Ordering::Relaxed);
            tracing::info!(port = %self.bus.path.display(), "serial port is back");
            link.port = Some(Box::new(p));
        }
        link.port.as_mut()
    }

    /// The port failed (unplugged): close it, to be reopened by a later turn.
    pub(super) fn lost(&mut self) {
        self.link.port = None;
        self.bus.open.store(false, Ordering::Relaxed);
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut gate = self.bus.lock_gate();
        gate.busy = false;
        drop(gate);
        self.bus.turn_free.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    fn bus() -> Arc<Bus> {
        Arc::new(Bus::with_port(Path::new("/nonexistent/bus"), 9600, None))
    }

    /// Queue a turn at `priority` behind the held one, and return once it waits.
    fn queue(bus: &Arc<Bus>, priority: Priority, served: &mpsc::Sender<Priority>) {
        let before = bus.lock_gate().waiting.len();
        let (b, tx) = (Arc::clone(bus), served.clone());
        std::thread::spawn(move || {
            let _t = b.turn(priority);
            let _ = tx.send(priority);
        });
        let mut gate = bus.lock_gate();
        while gate.waiting.len() == before {
            gate = bus.turn_free.wait(gate).unwrap();
        }
    }

    #[test]
    fn waiting_turns_are_served_dispense_first_then_tests_then_health_in_arrival_order() {
        let bus = bus();
        let (tx, rx) = mpsc::channel();
        let held = bus.turn(Priority::Health);
        queue(&bus, Priority::Health, &tx);
        queue(&bus, Priority::SlotTest, &tx);
        queue(&bus, Priority::Dispense, &tx);
        queue(&bus, Priority::Dispense, &tx);
        drop(held);
        let order: Vec<Priority> = (0..4).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(
            order,
            [
                Priority::Dispense,
                Priority::Dispense,
                Priority::SlotTest,
                Priority::Health
            ]
        );
    }

    #[test]
    fn a_lost_port_on_a_path_that_is_gone_stays_closed() {
        let bus = bus();
        let mut t = bus.turn(Priority::Health);
        assert!(t.port().is_none());
        t.lost();
        drop(t);
        assert!(!bus.is_open());
        assert_eq!(bus.reconnects(), 0);
    }
}
