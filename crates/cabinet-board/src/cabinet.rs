//! A cabinet of several boards: a locker wall of lock boards daisy-chained on one or more
//! RS-485 buses, a vending board beside a lock board for the doors, or any mix.
//!
//! [`Cabinet`] is itself a [`Board`] whose slots are the cabinet's: each slot is routed to
//! one board and one channel (lock board) or motor (VMC) on it. Lock boards that share a
//! port share one [`Bus`], which runs one exchange at a time in priority order; boards on
//! different buses run in parallel. A board that stopped answering takes only its own slots
//! out of service: their dispenses fail as "not sent" without touching the bus, until a
//! health probe (with backoff) hears the board again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::lockboard::{Bus, LockBoard};
use crate::{
    Board, BoardError, BoardHealth, BoardSettings, FrameRecord, MachineStatus, Outcome, Protocol,
    Reach, SlotStatus,
};

/// One board of a cabinet, as the site config names it.
#[derive(Debug, Clone)]
pub struct BoardSpec {
    /// The name slots and evidence use, e.g. `wall-a`.
    pub name: String,
    /// How to reach and drive it.
    pub settings: BoardSettings,
}

/// Where one slot of the cabinet is: a board (by its index in the specs) and the channel
/// or motor number on that board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRoute {
    /// Index into the cabinet's boards.
    pub board: usize,
    /// Lock-board channel or VMC motor number, from 1.
    pub channel: u16,
}

/// One board's health, named, for diagnostics and the technician's panel.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NamedHealth {
    /// The board's name in the config.
    pub name: String,
    /// Its RS-485 address (lock boards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<u8>,
    /// The cabinet slots it drives, ascending.
    pub slots: Vec<u16>,
    /// Its link health.
    #[serde(flatten)]
    pub health: BoardHealth,
}

#[derive(Debug)]
struct Member {
    name: String,
    address: Option<u8>,
    board: Arc<dyn Board>,
}

/// Several boards behind one [`Board`]: see the module docs.
#[derive(Debug)]
pub struct Cabinet {
    members: Vec<Member>,
    /// Replaced whole when a new slot map comes into force ([`Board::set_routes`]).
    routes: RwLock<BTreeMap<u16, SlotRoute>>,
    /// How many boards there are, for checking new routes.
    specs: Vec<BoardSpec>,
}

impl Cabinet {
    /// Open every board in `specs`, lock boards that share a port on one [`Bus`]. Like
    /// [`crate::open_lenient`], a port that is not there yet is opened on first use. Fails
    /// on invalid settings: a VMC board sharing a port with another board, two lock boards
    /// at one address on one bus, boards of one bus at different speeds, a route to a board
    /// that is not in `specs`.
    pub fn open_lenient(
        specs: &[BoardSpec],
        routes: BTreeMap<u16, SlotRoute>,
    ) -> Result<Cabinet, BoardError> {
        check_wiring(specs, &routes)?;
        let mut buses: BTreeMap<PathBuf, Arc<Bus>> = BTreeMap::new();
        let mut members = Vec::with_capacity(specs.len());
        for spec in specs {
            let s = &spec.settings;
            let (board, address): (Arc<dyn Board>, _) = match s.protocol {
                Protocol::Vmc => (Arc::from(crate::open_lenient(s)?), None),
                Protocol::Lockboard => {
                    s.lockboard.validate()?;
                    let bus = buses
                        .entry(s.port.clone())
                        .or_insert_with(|| Arc::new(Bus::open_lenient(&s.port, s.baud())));
                    let board = LockBoard::on_bus(s, Arc::clone(bus))?;
                    (Arc::new(board), Some(s.lockboard.address))
                }
            };
            members.push(Member {
                name: spec.name.clone(),
                address,
                board,
            });
        }
        Ok(Cabinet {
            members,
            routes: RwLock::new(routes),
            specs: specs.to_vec(),
        })
    }

    fn routes(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u16, SlotRoute>> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn route_of(&self, slot: u16) -> Option<SlotRoute> {
        self.routes().get(&slot).copied()
    }

    /// The board and channel behind `slot`.
    pub fn route(&self, slot: u16) -> Option<(&str, u16)> {
        let r = self.route_of(slot)?;
        Some((self.members[r.board].name.as_str(), r.channel))
    }

    fn act(&self, slot: u16, test: bool) -> Outcome {
        let Some(r) = self.route_of(slot) else {
            return Outcome::NoSuchSlot;
        };
        let m = &self.members[r.board];
        let span = tracing::info_span!("board", board = %m.name, channel = r.channel);
        let _g = span.enter();
        if let Some(fault) = m.board.out_of_service() {
            tracing::warn!(
                ?fault,
                "the slot's board is not answering: not sent (its slots are out of service)"
            );
            return Outcome::link(fault, Reach::NotSent);
        }
        if test {
            m.board.slot_test(r.channel)
        } else {
            m.board.dispense(r.channel)
        }
    }
}

/// The settings errors [`Cabinet::open_lenient`] refuses, named after the config's fields.
fn check_wiring(specs: &[BoardSpec], routes: &BTreeMap<u16, SlotRoute>) -> Result<(), BoardError> {
    let invalid = |message: String| BoardError::InvalidSetting {
        field: "boards",
        message,
    };
    for (i, a) in specs.iter().enumerate() {
        for b in &specs[i + 1..] {
            if a.name == b.name {
                return Err(invalid(format!("two boards are named {:?}", a.name)));
            }
            if a.settings.port != b.settings.port {
                continue;
            }
            let port = a.settings.port.display();
            if a.settings.protocol == Protocol::Vmc || b.settings.protocol == Protocol::Vmc {
                return Err(invalid(format!(
                    "{:?} and {:?} share {port}, but a VMC board needs its port to itself",
                    a.name, b.name
                )));
            }
            if a.settings.lockboard.address == b.settings.lockboard.address {
                return Err(invalid(format!(
                    "{:?} and {:?} are both at address {} on {port}",
                    a.name, b.name, a.settings.lockboard.address
                )));
            }
            if a.settings.baud() != b.settings.baud() {
                return Err(invalid(format!(
                    "{:?} ({} baud) and {:?} ({} baud) share {port}: one bus has one speed",
                    a.name,
                    a.settings.baud(),
                    b.name,
                    b.settings.baud()
                )));
            }
        }
    }
    if let Some((slot, _)) = routes.iter().find(|(_, r)| r.board >= specs.len()) {
        return Err(invalid(format!(
            "slot {slot} is routed to a board that is not there"
        )));
    }
    Ok(())
}

impl Board for Cabinet {
    /// A cabinet with any lock board is asked for its health (lock boards must be polled);
    /// a cabinet of VMC boards proves itself with their POLLs.
    fn protocol(&self) -> Protocol {
        if self
            .members
            .iter()
            .any(|m| m.board.protocol() == Protocol::Lockboard)
        {
            Protocol::Lockboard
        } else {
            Protocol::Vmc
        }
    }

    fn dispense(&self, slot: u16) -> Outcome {
        self.act(slot, false)
    }

    fn slot_test(&self, slot: u16) -> Outcome {
        self.act(slot, true)
    }

    /// `channel` is a cabinet slot here: the cabinet's channels are its slots.
    fn unlock(&self, channel: u16) -> Result<Outcome, BoardError> {
        let Some(r) = self.route_of(channel) else {
            return Ok(Outcome::NoSuchSlot);
        };
        self.members[r.board].board.unlock(r.channel)
    }

    fn slot_status(&self, slot: u16) -> Result<SlotStatus, BoardError> {
        let Some(r) = self.route_of(slot) else {
            return Ok(SlotStatus::NoSuchSlot);
        };
        self.members[r.board].board.slot_status(r.channel)
    }

    /// Every board asked in turn (boards on one bus queue there anyway); open doors are
    /// given as cabinet slots. Fails only when no board answered.
    fn machine_status(&self) -> Result<MachineStatus, BoardError> {
        let mut merged = MachineStatus::default();
        let mut raw = Vec::new();
        let mut first_error = None;
        let mut answered = false;
        for (i, m) in self.members.iter().enumerate() {
            match m.board.machine_status() {
                Ok(s) => {
                    answered = true;
                    raw.push(format!("{}: {}", m.name, s.raw));
                    if let Some(doors) = s.open_doors {
                        let open = merged.open_doors.get_or_insert_with(Vec::new);
                        open.extend(self.routes().iter().filter_map(|(slot, r)| {
                            (r.board == i && doors.contains(&r.channel)).then_some(*slot)
                        }));
                    }
                    merged.delivery_door_open = merged.delivery_door_open.or(s.delivery_door_open);
                    merged.drop_sensor_ok = merged.drop_sensor_ok.or(s.drop_sensor_ok);
                    merged.elevator_ok = merged.elevator_ok.or(s.elevator_ok);
                }
                Err(e) => {
                    raw.push(format!("{}: {e}", m.name));
                    first_error.get_or_insert(e);
                }
            }
        }
        if !answered && let Some(e) = first_error {
            return Err(e);
        }
        if let Some(open) = merged.open_doors.as_mut() {
            open.sort_unstable();
        }
        merged.raw = raw.join("; ");
        Ok(merged)
    }

    /// The cabinet's summary: the sum of the boards' counters, and "connected" while at
    /// least one board answers (it can still sell that board's slots; see
    /// [`Board::boards`] for each one).
    fn health(&self) -> BoardHealth {
        let all: Vec<BoardHealth> = self.members.iter().map(|m| m.board.health()).collect();
        let mut h = BoardHealth {
            protocol: self.protocol().to_string(),
            port: all
                .iter()
                .map(|h| h.port.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", "),
            connected: all.iter().any(|h| h.connected),
            last_rx_ms_ago: all.iter().filter_map(|h| h.last_rx_ms_ago).min(),
            ..BoardHealth::default()
        };
        for b in &all {
            h.frames_rx += b.frames_rx;
            h.frames_tx += b.frames_tx;
            h.bad_frames += b.bad_frames;
            h.duplicate_frames += b.duplicate_frames;
            h.resends += b.resends;
            h.timeouts += b.timeouts;
            h.reconnects = h.reconnects.max(b.reconnects);
            h.polls_answered += b.polls_answered;
            h.poll_reply_max_us = h.poll_reply_max_us.max(b.poll_reply_max_us);
        }
        h
    }

    /// Every board's recent frames, each named with its board.
    fn recent_frames(&self) -> Vec<FrameRecord> {
        let mut frames: Vec<FrameRecord> = self
            .members
            .iter()
            .flat_map(|m| {
                m.board.recent_frames().into_iter().map(|mut f| {
                    f.board = Some(m.name.clone());
                    f
                })
            })
            .collect();
        frames.sort_by_key(|f| f.at_ms);
        frames
    }

    /// Waits for all boards at once, until each answers or `timeout` passes (a dead board
    /// is found out at start, not at its first customer); ready when at least one is.
    fn wait_ready(&self, timeout: Duration) -> bool {
        std::thread::scope(|s| {
            let waits: Vec<_> = self
                .members
                .iter()
                .map(|m| s.spawn(|| m.board.wait_ready(timeout)))
                .collect();
            // The scope joins the waits `any` does not get to.
            waits.into_iter().any(|w| w.join().unwrap_or(false))
        })
    }

    /// Each board's health, in config order.
    fn boards(&self) -> Vec<NamedHealth> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| NamedHealth {
                name: m.name.clone(),
                address: m.address,
                slots: self
                    .routes()
                    .iter()
                    .filter(|(_, r)| r.board == i)
                    .map(|(slot, _)| *slot)
                    .collect(),
                health: m.board.health(),
            })
            .collect()
    }

    /// The slots whose board is known not to answer now: out of service until it does.
    fn unavailable_slots(&self) -> Vec<u16> {
        self.routes()
            .iter()
            .filter(|(_, r)| self.members[r.board].board.out_of_service().is_some())
            .map(|(slot, _)| *slot)
            .collect()
    }

    /// Checked as at opening (a route to a board that is not there is refused), then
    /// swapped whole: a dispense reads the routes once, so it runs on the old map or the
    /// new, never half of each.
    fn set_routes(&self, routes: BTreeMap<u16, SlotRoute>) -> Result<(), BoardError> {
        check_wiring(&self.specs, &routes)?;
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = routes;
        Ok(())
    }

    fn out_of_service(&self) -> Option<crate::LinkFault> {
        let faults: Vec<_> = self
            .members
            .iter()
            .map(|m| m.board.out_of_service())
            .collect();
        if faults.iter().all(Option::is_some) {
            faults.into_iter().flatten().next()
        } else {
            None
        }
    }
}
