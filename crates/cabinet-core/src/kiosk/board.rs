//! The board worker: the motor and the health checks, off the runner's loop.
//!
//! Board calls block (a serial exchange, a motor that turns for seconds), so each runs on
//! the blocking pool and its answer comes back on a channel the runner selects on. One
//! health check at a time; a lock board is only queried every `kiosk.board_check_secs`
//! and never while it is unlocking a door.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cabinet_board::{Board, BoardSettings, BoardSpec, Cabinet, Outcome, Protocol, SlotRoute};
use tokio::sync::mpsc;
use tracing::{info, info_span};

use crate::config::{
    BoardEntry, BoardProtocol, ByteOrder, Config, DoorPolarity, LockboardConfig, VmcConfig,
};
use crate::engine::Job;

/// Board settings from the config: the one board of `[board]`.
pub fn board_settings(cfg: &Config) -> BoardSettings {
    let b = &cfg.board;
    let mut s = settings_of(b.protocol, &b.port, &b.vmc, &b.lockboard);
    s.vmc.packno_file = Some(packno_path(cfg));
    s
}

/// The settings of one board of `[[boards]]`, its own where set and `[board.vmc]` /
/// `[board.lockboard]`'s otherwise. A VMC board keeps its PackNO in a file of its own.
pub fn entry_settings(cfg: &Config, entry: &BoardEntry) -> BoardSettings {
    let vmc = entry.vmc(&cfg.board.vmc);
    let lock = entry.lockboard(&cfg.board.lockboard);
    let mut s = settings_of(entry.protocol, &entry.port, &vmc, &lock);
    s.vmc.packno_file = Some(cfg.journal.beside(&format!(".vmc-packno.{}", entry.name)));
    s
}

fn settings_of(
    protocol: BoardProtocol,
    port: &std::path::Path,
    vmc: &VmcConfig,
    lock: &LockboardConfig,
) -> BoardSettings {
    let protocol = match protocol {
        BoardProtocol::Vmc => Protocol::Vmc,
        BoardProtocol::Lockboard => Protocol::Lockboard,
    };
    let mut s = BoardSettings::new(protocol, port);
    s.baud = Some(match protocol {
        Protocol::Vmc => vmc.baud,
        Protocol::Lockboard => lock.baud,
    });
    s.vmc.slot_order = match vmc.slot_byte_order {
        ByteOrder::Big => cabinet_board::vmc::SlotOrder::BigEndian,
        ByteOrder::Little => cabinet_board::vmc::SlotOrder::LittleEndian,
    };
    s.vmc.drop_sensor = vmc.drop_sensor;
    s.vmc.report_timeout = Duration::from_secs(vmc.report_timeout_secs);
    s.lockboard.address = lock.address;
    s.lockboard.channels = lock.channels;
    s.lockboard.polarity = match lock.door_polarity {
        DoorPolarity::OpenIs11 => cabinet_board::lockboard::DoorPolarity::OpenIs11,
        DoorPolarity::OpenIs00 => cabinet_board::lockboard::DoorPolarity::OpenIs00,
    };
    s.lockboard.reply_timeout = Duration::from_millis(lock.reply_timeout_ms);
    s.lockboard.door_open_timeout = Duration::from_secs(lock.door_open_timeout_secs);
    s
}

/// The board as the kiosk opens it: lenient, so a missing adapter means "out of service"
/// rather than a failed start. With `[[boards]]`, a [`Cabinet`] of them, each slot routed
/// to its board and channel.
pub fn open_board(cfg: &Config) -> Result<Arc<dyn Board>, cabinet_board::BoardError> {
    if cfg.boards.is_empty() {
        return Ok(Arc::from(cabinet_board::open_lenient(&board_settings(
            cfg,
        ))?));
    }
    let specs: Vec<BoardSpec> = cfg
        .boards
        .iter()
        .map(|e| BoardSpec {
            name: e.name.clone(),
            settings: entry_settings(cfg, e),
        })
        .collect();
    Ok(Arc::new(Cabinet::open_lenient(&specs, slot_routes(cfg))?))
}

/// Each slot's board (by its index in `[[boards]]`) and channel, as a [`Cabinet`] routes.
pub(super) fn slot_routes(cfg: &Config) -> BTreeMap<u16, SlotRoute> {
    cfg.slot_places()
        .into_iter()
        .map(|(slot, p)| {
            let route = SlotRoute {
                board: p.board,
                channel: p.channel,
            };
            (slot, route)
        })
        .collect()
}

/// Where the VMC driver keeps its PackNO reservation: `<journal>.vmc-packno`, beside the
/// journal because it belongs to the same cabinet's life (a board remembers its last
/// PackNO across our restarts; see `cabinet_board::vmc::VmcSettings::packno_file`).
pub fn packno_path(cfg: &Config) -> std::path::PathBuf {
    cfg.journal.beside(".vmc-packno")
}

/// What a health check found.
#[derive(Debug)]
pub(super) struct Checked {
    /// The cabinet can sell (with several boards: at least one answers).
    pub(super) up: bool,
    /// With several boards: the slots of those that do not answer.
    pub(super) unreachable: Vec<u16>,
}

/// The board and the channels its blocking calls answer on.
pub(super) struct BoardWorker {
    pub(super) board: Arc<dyn Board>,
    done_tx: mpsc::UnboundedSender<(String, Outcome)>,
    /// A customer's dispense finished: `(cmd_id, outcome)`.
    pub(super) done_rx: mpsc::UnboundedReceiver<(String, Outcome)>,
    health_tx: mpsc::UnboundedSender<Checked>,
    /// A health check answered.
    pub(super) health_rx: mpsc::UnboundedReceiver<Checked>,
    health_in_flight: bool,
    last_lock_query: Option<Instant>,
    /// Set while the motor turns: retention waits between its batches (crate::upkeep).
    motor: Arc<AtomicBool>,
}

impl BoardWorker {
    pub(super) fn new(board: Arc<dyn Board>, motor: Arc<AtomicBool>) -> BoardWorker {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (health_tx, health_rx) = mpsc::unbounded_channel();
        BoardWorker {
            board,
            done_tx,
            done_rx,
            health_tx,
            health_rx,
            health_in_flight: false,
            last_lock_query: None,
            motor,
        }
    }

    /// Runs the motor on the blocking pool; the outcome comes back on `done_rx`.
    pub(super) fn dispense(&self, job: Job) {
        let board = Arc::clone(&self.board);
        let tx = self.done_tx.clone();
        let motor = Arc::clone(&self.motor);
        let span = info_span!("dispense", log_id = %job.log_id, cmd_id = %job.cmd_id, order_id = %job.order_id, support_code = %crate::support::code(&job.cmd_id), slot = job.slot);
        tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            info!("motor command");
            motor.store(true, Ordering::Release);
            let outcome = board.dispense(job.slot);
            motor.store(false, Ordering::Release);
            info!(outcome = outcome.name(), "board outcome");
            let _ = tx.send((job.cmd_id, outcome));
        });
    }

    /// A health check answered (`health_rx`): the next may start.
    pub(super) fn checked(&mut self) {
        self.health_in_flight = false;
    }

    /// Checks the board without blocking the loop; the answer comes back on `health_rx`.
    /// `first`: the check at start, which waits (bounded by `start_wait`) for the board's
    /// first answer. `busy`: a dispense is at the board.
    pub(super) fn start_check(
        &mut self,
        first: bool,
        busy: bool,
        lock_every: Duration,
        start_wait: Duration,
    ) {
        if self.health_in_flight {
            return;
        }
        if self.board.protocol() == Protocol::Lockboard && !first {
            if self
                .last_lock_query
                .is_some_and(|t| t.elapsed() < lock_every)
            {
                return;
            }
            self.last_lock_query = Some(Instant::now());
        }
        let board = Arc::clone(&self.board);
        let tx = self.health_tx.clone();
        self.health_in_flight = true;
        tokio::task::spawn_blocking(move || {
            let up = match board.protocol() {
                // At start, wait (bounded) for the board's first answer: until then the
                // engine holds commands instead of refusing them. A VMC board proves itself
                // with its POLLs (and its PackNOs are synchronised); a lock board answers
                // a query.
                _ if first => board.wait_ready(start_wait),
                Protocol::Vmc => board.health().connected,
                // A lock board must be asked; not while it is unlocking a door.
                Protocol::Lockboard if busy => board.health().connected,
                Protocol::Lockboard => board.machine_status().is_ok(),
            };
            let unreachable = board.unavailable_slots();
            let _ = tx.send(Checked { up, unreachable });
        });
    }
}
