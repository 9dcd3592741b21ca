//! The board worker: the motor and the health checks, off the runner's loop.
//!
//! Board calls block (a serial exchange, a motor that turns for seconds), so each runs on
//! the blocking pool and its answer comes back on a channel the runner selects on. One
//! health check at a time; a lock board is only queried every `kiosk.board_check_secs`
//! and never while it is unlocking a door.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cabinet_board::{Board, BoardSettings, Outcome, Protocol};
use tokio::sync::mpsc;
use tracing::{info, info_span};

use crate::config::{BoardProtocol, ByteOrder, Config, DoorPolarity};
use crate::engine::Job;

/// Board settings from the config.
pub fn board_settings(cfg: &Config) -> BoardSettings {
    let protocol = match cfg.board.protocol {
        BoardProtocol::Vmc => Protocol::Vmc,
        BoardProtocol::Lockboard => Protocol::Lockboard,
    };
    let mut s = BoardSettings::new(protocol, &cfg.board.port);
    s.baud = Some(cfg.board.baud());
    s.vmc.slot_order = match cfg.board.vmc.slot_byte_order {
        ByteOrder::Big => cabinet_board::vmc::SlotOrder::BigEndian,
        ByteOrder::Little => cabinet_board::vmc::SlotOrder::LittleEndian,
    };
    s.vmc.drop_sensor = cfg.board.vmc.drop_sensor;
    s.vmc.report_timeout = Duration::from_secs(cfg.board.vmc.report_timeout_secs);
    s.vmc.packno_file = Some(packno_path(cfg));
    s.lockboard.address = cfg.board.lockboard.address;
    s.lockboard.channels = cfg.board.lockboard.channels;
    s.lockboard.polarity = match cfg.board.lockboard.door_polarity {
        DoorPolarity::OpenIs11 => cabinet_board::lockboard::DoorPolarity::OpenIs11,
        DoorPolarity::OpenIs00 => cabinet_board::lockboard::DoorPolarity::OpenIs00,
    };
    s.lockboard.reply_timeout = Duration::from_millis(cfg.board.lockboard.reply_timeout_ms);
    s.lockboard.door_open_timeout = Duration::from_secs(cfg.board.lockboard.door_open_timeout_secs);
    s
}

/// The board as the kiosk opens it: lenient, so a missing adapter means "out of service"
/// rather than a failed start.
pub fn open_board(cfg: &Config) -> Result<Arc<dyn Board>, cabinet_board::BoardError> {
    Ok(Arc::from(cabinet_board::open_lenient(&board_settings(
        cfg,
    ))?))
}

/// Where the VMC driver keeps its PackNO reservation: `<journal>.vmc-packno`, beside the
/// journal because it belongs to the same cabinet's life (a board remembers its last
/// PackNO across our restarts; see `cabinet_board::vmc::VmcSettings::packno_file`).
pub fn packno_path(cfg: &Config) -> std::path::PathBuf {
    cfg.journal.beside(".vmc-packno")
}

/// The board and the channels its blocking calls answer on.
pub(super) struct BoardWorker {
    pub(super) board: Arc<dyn Board>,
    done_tx: mpsc::UnboundedSender<(String, Outcome)>,
    /// A customer's dispense finished: `(cmd_id, outcome)`.
    pub(super) done_rx: mpsc::UnboundedReceiver<(String, Outcome)>,
    health_tx: mpsc::UnboundedSender<bool>,
    /// A health check answered: up or not.
    pub(super) health_rx: mpsc::UnboundedReceiver<bool>,
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
            let _ = tx.send(up);
        });
    }
}
