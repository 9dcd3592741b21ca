//! The journal's upkeep while the kiosk runs: opening it at start against its witness,
//! and, every few minutes, a retention pass and a fresh witness.
//!
//! Retention runs on its own SQLite connection on the blocking pool, never on the
//! runner's task, in batches of at most [`crate::retention::PRUNE_BATCH`] commands.
//! A batch gives way to the engine: as soon as the engine's connection waits for the
//! write lock, the batch stops deleting, commits what it has, and leaves the lock alone
//! for [`crate::retention::AFTER_GIVING_WAY`]; so a command that arrives during a batch
//! waits for one commit, not for the batch. While a motor runs the pass waits between
//! batches, so pruning never holds the write lock when a dispense's outcome is being
//! journaled (measured in docs/BENCHMARKS.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::journal::{Durability, Journal, JournalError, LockWaits};
use crate::retention::{Pruned, Retention};
use crate::witness::{self, Loss, Verdict};

/// Time between retention passes.
pub const PASS_EVERY: Duration = Duration::from_secs(300);

/// The first pass, this long after start: the start (and the commands a broker queued
/// for it) comes first.
pub const FIRST_PASS_AFTER: Duration = Duration::from_secs(30);

/// A pass waits at most this long for a running motor between two batches, then stops
/// (the next pass goes on).
const MOTOR_WAIT: Duration = Duration::from_secs(120);

/// Pause between two batches, so the engine's writes interleave.
const BETWEEN_BATCHES: Duration = Duration::from_millis(5);

/// Opens the journal as the kiosk does at start and judges it against its witness: the
/// journal, and the loss if it cannot be trusted. A trusted journal's witness is
/// rewritten at once (a failure to write it is logged, not fatal: the journal is fine).
pub fn open_at_start(cfg: &Config) -> Result<(Journal, Option<Loss>), JournalError> {
    let opened = Journal::open_checked(&cfg.journal.path, Durability::Full)?;
    let witness_path = cfg.journal.witness();
    let verdict = witness::judge(&opened, witness::read(&witness_path));
    if let Some((aside, problem)) = &opened.set_aside {
        error!(journal = %cfg.journal.path.display(), set_aside = %aside.display(), problem, "the journal failed its integrity check: kept aside, a new one was created");
    }
    let journal = opened.journal;
    match verdict {
        Verdict::Trusted => {
            if let Err(e) = witness::write(&witness_path, &journal) {
                warn!(error = %e, "could not write the journal witness");
            }
            Ok((journal, None))
        }
        Verdict::Lost(loss) => {
            error!(
                journal = %cfg.journal.path.display(),
                witness = %witness_path.display(),
                loss = %loss.describe(),
                "the journal cannot be trusted: every command is refused (journal_unverified) until a technician confirms a fresh start"
            );
            Ok((journal, Some(loss)))
        }
    }
}

/// What a pass did.
#[derive(Debug)]
pub struct PassReport {
    /// Removed rows, or why the pass failed.
    pub pruned: Result<Pruned, JournalError>,
    /// How long it took.
    pub took: Duration,
    /// A witness write that failed.
    pub witness_error: Option<String>,
}

/// The runner's handle on retention passes.
#[derive(Debug)]
pub struct Upkeep {
    path: PathBuf,
    witness: PathBuf,
    retention: Retention,
    /// The pass's own connection, lent to the blocking task while a pass runs.
    conn: Option<Journal>,
    /// A pass is running.
    running: bool,
    /// Set by the dispense task while the board runs a motor.
    motor: Arc<AtomicBool>,
    /// The engine connection's waits for the write lock: a batch stops as soon as they
    /// move.
    engine_waits: LockWaits,
    done_tx: mpsc::UnboundedSender<(Option<Journal>, PassReport)>,
    done_rx: mpsc::UnboundedReceiver<(Option<Journal>, PassReport)>,
}

impl Upkeep {
    /// Upkeep for the journal in `cfg` (already opened by [`open_at_start`]), giving
    /// way to the engine's connection (its [`Journal::lock_waits`]).
    pub fn new(cfg: &Config, engine_waits: LockWaits) -> Upkeep {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Upkeep {
            path: cfg.journal.path.clone(),
            witness: cfg.journal.witness(),
            retention: Retention::of(&cfg.journal),
            conn: None,
            running: false,
            motor: Arc::new(AtomicBool::new(false)),
            engine_waits,
            done_tx,
            done_rx,
        }
    }

    /// The flag the dispense task sets while a motor runs.
    pub fn motor_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.motor)
    }

    /// Where the witness lives.
    pub fn witness_path(&self) -> &std::path::Path {
        &self.witness
    }

    /// Starts a pass on the blocking pool unless one is running. `trusted`: whether the
    /// witness may be rewritten afterwards (never while the journal is unverified).
    pub fn start_pass(&mut self, trusted: bool) {
        if self.running {
            return;
        }
        let conn = match self.conn.take() {
            Some(c) => c,
            None => match Journal::open_again(&self.path) {
                Ok(mut c) => {
                    c.give_way_to(self.engine_waits.clone());
                    c
                }
                Err(e) => {
                    warn!(error = %e, "retention: cannot open a second connection to the journal");
                    return;
                }
            },
        };
        self.running = true;
        let retention = self.retention;
        let motor = Arc::clone(&self.motor);
        let witness_path = self.witness.clone();
        let tx = self.done_tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn;
            let t0 = Instant::now();
            let now = crate::journal::now_ms();
            let pruned = conn.prune(&retention, now, |_| between_batches(&motor));
            let witness_error = (trusted && pruned.is_ok())
                .then(|| witness::write(&witness_path, &conn).err())
                .flatten()
                .map(|e| e.to_string());
            let report = PassReport {
                pruned,
                took: t0.elapsed(),
                witness_error,
            };
            // A connection whose pass failed is dropped; the next pass opens a new one.
            let keep = report.pruned.is_ok().then_some(conn);
            let _ = tx.send((keep, report));
        });
    }

    /// The next finished pass (for the runner's `select!`).
    pub async fn finished(&mut self) -> Option<PassReport> {
        let (conn, report) = self.done_rx.recv().await?;
        self.conn = conn;
        self.running = false;
        Some(report)
    }
}

/// Between two batches: a short pause, and while a motor runs, a wait for it (at most
/// [`MOTOR_WAIT`]; `false` ends the pass).
fn between_batches(motor: &AtomicBool) -> bool {
    std::thread::sleep(BETWEEN_BATCHES);
    let t0 = Instant::now();
    while motor.load(Ordering::Acquire) {
        if t0.elapsed() > MOTOR_WAIT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Logs a finished pass.
pub fn log_pass(report: &PassReport) {
    match &report.pruned {
        Ok(p) if p.commands > 0 => info!(
            commands = p.commands,
            transitions = p.transitions,
            took_ms = report.took.as_millis() as u64,
            "retention: pruned old commands"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "retention pass failed; the next one retries"),
    }
    if let Some(e) = &report.witness_error {
        warn!(error = %e, "could not refresh the journal witness");
    }
}
