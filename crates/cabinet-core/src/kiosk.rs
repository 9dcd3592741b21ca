//! The kiosk runner: the one task that drives the [`Engine`] and performs its actions
//! against the journal, the MQTT link and the board.
//!
//! ```text
//!   MqttLink task ──LinkEvent──▶ ┐
//!   board thread ──outcome────▶ ├─▶ run() ── step() ──▶ actions ─▶ journal / ack / publish / board
//!   timers (tick, heartbeat) ──▶ ┘                                      └─▶ screen watch channel
//! ```
//!
//! The subscription lives as long as this task, whatever the screen shows (the incident's
//! second cause). Physical board calls block, so they run on the blocking pool and come
//! back as events; everything else is sequential, which is what makes "look up the
//! command id, then insert it" race-free.
//!
//! A journal write that fails stops the kiosk (the error is returned): without the
//! journal it can promise neither "at most once" nor "exactly one reply", and a restart
//! (systemd) recovers from what the journal holds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cabinet_board::{Board, BoardSettings, Protocol};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, info, info_span, warn};

use crate::config::{BoardProtocol, ByteOrder, Config, DoorPolarity};
use crate::control::{
    Control, Diagnostics, JournalDiagnostics, LinkDiagnostics, TechAction, TechAnswer, TechError,
    TechStatus,
};
use crate::engine::{Action, Engine, EngineConfig, Event, InventoryChange, Job};
use crate::hooks::{CrashPoint, Hooks};
use crate::instance::InstanceLock;
use crate::journal::{Journal, JournalError, OutboxMessage};
use crate::journal_stats::{FileBytes, disk_free};
use crate::mqtt::{AckToken, LinkError, LinkEvent, LinkHandle, LinkOptions, MqttLink};
use crate::protocol::{self, PROTOCOL_VERSION, ReplyState, SlotLevel, Telemetry, Topics};
use crate::screen::{Screen, Snapshot};
use crate::systemd::Notifier;
use crate::technician::{Attempt, Gate};
use crate::upkeep::Upkeep;
use crate::witness::{self, Loss};

/// The app version reported in the birth message and telemetry.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Outbox replies handed to the link at once.
const MAX_IN_FLIGHT: usize = 32;

/// Why the kiosk stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum KioskError {
    /// The journal failed: the kiosk cannot keep its promises without it.
    #[error("journal: {0}")]
    Journal(JournalError),
    /// The MQTT link could not be built or has stopped.
    #[error("mqtt: {0}")]
    Link(LinkError),
    /// Config problems found at start.
    #[error("config: {0}")]
    Config(crate::config::ConfigError),
    /// Protocol set-up (topics, keys, boot id).
    #[error("{0}")]
    Setup(String),
}

// By hand rather than `#[from]`: the message already carries the inner error, and a
// `source()` as well would print it twice in an error chain ("mqtt: X: X").
impl From<JournalError> for KioskError {
    fn from(e: JournalError) -> Self {
        KioskError::Journal(e)
    }
}

impl From<LinkError> for KioskError {
    fn from(e: LinkError) -> Self {
        KioskError::Link(e)
    }
}

impl From<crate::config::ConfigError> for KioskError {
    fn from(e: crate::config::ConfigError) -> Self {
        KioskError::Config(e)
    }
}

/// A link that has stopped (the app is shutting down: the link task ends on the same
/// signal as the runner) is not an error of the runner: what it could not send is in the
/// journal (outbox, audit) or will be redelivered (an unacknowledged command), and the
/// runner sees the link's end on its event channel and finishes. Before this, a stop that
/// came while the runner sent a heartbeat or an audit ended the kiosk with an error.
fn link_stopped_is_not_an_error(r: Result<(), LinkError>) -> Result<(), KioskError> {
    match r {
        Err(LinkError::Closed) => {
            tracing::debug!("the MQTT link has stopped: nothing more is sent");
            Ok(())
        }
        other => other.map_err(KioskError::from),
    }
}

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

/// The runtime the kiosk runs on (two workers: the target boards are small).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kiosk")
        .build()
}

/// Wall clock, unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A fresh QR session nonce: 16 random hex digits (64 bits).
fn new_nonce() -> Result<String, KioskError> {
    let id = protocol::new_boot_id().map_err(|e| KioskError::Setup(e.to_string()))?;
    Ok(id.chars().take(16).collect())
}

/// Run the kiosk until `shutdown` turns true. Screen snapshots go to `screen`. `lock`
/// (from [`InstanceLock::for_config`]) proves no other kiosk runs on this journal; take
/// it before opening the window or the board.
///
/// `control` carries the technician's requests from the screen ([`crate::control`]); a
/// headless kiosk passes the receiver of a channel whose handle it drops.
pub async fn run(
    cfg: Config,
    lock: InstanceLock,
    board: Arc<dyn Board>,
    screen: watch::Sender<Option<Snapshot>>,
    control: mpsc::Receiver<Control>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), KioskError> {
    let boot_id = protocol::new_boot_id().map_err(|e| KioskError::Setup(e.to_string()))?;
    let span = info_span!("kiosk", machine_code = %cfg.machine_code, boot_id = %boot_id);
    let result = Runner::start(cfg, board, screen, control, shutdown, boot_id)
        .instrument(span.clone())
        .await?
        .run()
        .instrument(span)
        .await;
    drop(lock);
    result
}

struct Runner {
    cfg: Config,
    board: Arc<dyn Board>,
    journal: Journal,
    engine: Engine,
    topics: Topics,
    keys: protocol::TrustedKeys,
    verify: protocol::VerifyOptions,
    boot_id: String,
    started: Instant,
    handle: LinkHandle,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    link_task: tokio::task::JoinHandle<()>,
    screen: watch::Sender<Option<Snapshot>>,
    shutdown: watch::Receiver<bool>,
    board_tx: mpsc::UnboundedSender<(String, cabinet_board::Outcome)>,
    board_rx: mpsc::UnboundedReceiver<(String, cabinet_board::Outcome)>,
    health_tx: mpsc::UnboundedSender<bool>,
    health_rx: mpsc::UnboundedReceiver<bool>,
    health_in_flight: bool,
    last_lock_query: Option<Instant>,
    connected: bool,
    handed: HashSet<i64>,
    hooks: Hooks,
    control: mpsc::Receiver<Control>,
    control_open: bool,
    gate: Gate,
    tech: Option<TechSession>,
    connected_since_ms: Option<u64>,
    /// The endpoint of the current (or last) connection, `host:port`.
    broker: Option<String>,
    last_message_ms: Option<u64>,
    clock_confirmed_ms: Option<u64>,
    tech_busy: bool,
    /// Technician actions not yet sent in telemetry.
    pending_audit: Vec<protocol::AuditEvent>,
    tech_done_tx: mpsc::UnboundedSender<SlotTestDone>,
    tech_done_rx: mpsc::UnboundedReceiver<SlotTestDone>,
    /// Diagnostics exports come back here from the blocking pool (see `start_export`).
    export_done_tx: mpsc::UnboundedSender<ExportDone>,
    export_done_rx: mpsc::UnboundedReceiver<ExportDone>,
    /// An export is being written: one at a time, so a hung USB stick holds one thread.
    exporting: bool,
    /// The journal's file system is short of space (`journal.min_free_mb`, with
    /// hysteresis: see [`disk_is_low`]).
    disk_low: bool,
    /// When the free space was last sampled.
    disk_checked: Option<Instant>,
    /// Untrusted payloads answered but not recorded in this low-disk period.
    unrecorded_rejections: u64,
    /// systemd: READY once subscribed and the board answered, WATCHDOG from the tick.
    notify: Notifier,
    subscribed: bool,
    board_up: bool,
    /// Retention passes and the witness (crate::upkeep).
    upkeep: Upkeep,
    /// Why the journal is not trusted, until someone confirms a fresh start.
    journal_loss: Option<Loss>,
    /// When the witness was last looked at while the journal is not trusted (a fresh
    /// start confirmed with `cabinet journal confirm-fresh-start` shows up there).
    witness_looked: Instant,
}

/// A technician's slot test finished on the blocking pool.
type SlotTestDone = (
    String,
    u16,
    cabinet_board::Outcome,
    tokio::sync::oneshot::Sender<Result<TechAnswer, TechError>>,
);

/// A technician's diagnostics export finished on the blocking pool: who asked, where the
/// bundle went and its files (or why not), and who waits for the answer.
type ExportDone = (
    String,
    Result<(std::path::PathBuf, Vec<String>), String>,
    tokio::sync::oneshot::Sender<Result<TechAnswer, TechError>>,
);

/// 2026-01-01T00:00:00Z: a clock before this is certainly wrong (this code did not
/// exist yet). Used for `Diagnostics::clock_plausible`.
const BUILD_EPOCH_FLOOR_SECS: u64 = 1_767_225_600;

/// Where the VMC driver keeps its PackNO reservation: `<journal>.vmc-packno`, beside the
/// journal because it belongs to the same cabinet's life (a board remembers its last
/// PackNO across our restarts; see `cabinet_board::vmc::VmcSettings::packno_file`).
pub fn packno_path(cfg: &Config) -> std::path::PathBuf {
    cfg.journal.beside(".vmc-packno")
}

/// Where the running kiosk keeps its latest [`Diagnostics`]: `<journal>.status.json`.
pub fn status_path(cfg: &Config) -> std::path::PathBuf {
    cfg.journal.beside(".status.json")
}

/// Mount points under `/media`, `/run/media` and `/mnt` (where USB sticks appear), from
/// `/proc/self/mounts`.
fn removable_mounts() -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut dirs: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        // /proc/self/mounts escapes spaces as \040.
        .map(|d| d.replace("\\040", " "))
        .filter(|d| {
            ["/media/", "/run/media/", "/mnt/"]
                .iter()
                .any(|p| d.starts_with(p))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Whether the journal's disk counts as low, given whether it did at the last sample:
/// below `min` free bytes; once low, until a quarter more than `min` is free again, so
/// a file system hovering at the threshold does not flap in and out of service.
fn disk_is_low(was_low: bool, free: u64, min: u64) -> bool {
    if was_low {
        free < min.saturating_add(min / 4)
    } else {
        free < min
    }
}

/// The journal setting that keeps the technician lockout.
const GATE_KEY: &str = "technician_gate";

/// A technician who is logged in.
#[derive(Debug)]
struct TechSession {
    name: String,
    last_activity: Instant,
}

impl Runner {
    async fn start(
        cfg: Config,
        board: Arc<dyn Board>,
        screen: watch::Sender<Option<Snapshot>>,
        control: mpsc::Receiver<Control>,
        shutdown: watch::Receiver<bool>,
        boot_id: String,
    ) -> Result<Runner, KioskError> {
        let (mut journal, journal_loss) = crate::upkeep::open_at_start(&cfg)?;
        journal.set_rejection_limits(crate::journal::RejectionLimits::of(&cfg.journal));
        journal.seed_inventory(&cfg.slots)?;
        // A lockout outlives a restart: power-cycling the cabinet must not buy more tries.
        let gate = journal
            .setting(GATE_KEY)?
            .and_then(|v| serde_json::from_str::<Gate>(&v).ok())
            .unwrap_or_default();
        let topics =
            Topics::new(&cfg.machine_code).map_err(|e| KioskError::Setup(e.to_string()))?;
        let keys = cfg.trusted_keys()?;
        let verify = cfg.verify_options();
        let ecfg = EngineConfig {
            machine_code: cfg.machine_code.clone(),
            cabinet_name: cfg.kiosk.name.clone(),
            boot_id: boot_id.clone(),
            require_session: cfg.commands.require_session,
            session_lifetime_ms: cfg.commands.session_lifetime_secs * 1000,
            take_item_ms: cfg.kiosk.take_item_secs * 1000,
            failed_ms: cfg.kiosk.failed_secs * 1000,
            out_of_service_grace_ms: cfg.kiosk.out_of_service_grace_secs * 1000,
            clock_skew_secs: cfg.commands.clock_skew_secs,
            // A margin over the runner's own first check (which waits this long for the
            // board), so that check's answer normally decides; this is the backstop.
            board_start_wait_ms: (cfg.kiosk.board_start_wait_secs + 2) * 1000,
        };
        let engine = Engine::new(ecfg, journal.inventory()?, now_ms());
        let upkeep = Upkeep::new(&cfg, journal.lock_waits());
        let opts = LinkOptions::from_config(&cfg, boot_id.clone(), VERSION)?;
        let (link, handle, events) = MqttLink::new(opts)?;
        let link_task = tokio::spawn(link.run(shutdown.clone()).in_current_span());
        let (board_tx, board_rx) = mpsc::unbounded_channel();
        let (health_tx, health_rx) = mpsc::unbounded_channel();
        let (tech_done_tx, tech_done_rx) = mpsc::unbounded_channel();
        let (export_done_tx, export_done_rx) = mpsc::unbounded_channel();
        info!(version = VERSION, journal = %cfg.journal.path.display(), board = %cfg.board.port.display(), "kiosk starting");
        let mut r = Runner {
            cfg,
            board,
            journal,
            engine,
            topics,
            keys,
            verify,
            boot_id,
            started: Instant::now(),
            handle,
            events,
            link_task,
            screen,
            shutdown,
            board_tx,
            board_rx,
            health_tx,
            health_rx,
            health_in_flight: false,
            last_lock_query: None,
            connected: false,
            handed: HashSet::new(),
            hooks: Hooks::from_env(),
            control,
            control_open: true,
            gate,
            tech: None,
            connected_since_ms: None,
            broker: None,
            last_message_ms: None,
            clock_confirmed_ms: None,
            tech_busy: false,
            pending_audit: Vec::new(),
            tech_done_tx,
            tech_done_rx,
            export_done_tx,
            export_done_rx,
            exporting: false,
            disk_low: false,
            disk_checked: None,
            unrecorded_rejections: 0,
            notify: Notifier::from_env(),
            subscribed: false,
            board_up: false,
            upkeep,
            journal_loss,
            witness_looked: Instant::now(),
        };
        if let Some(loss) = &r.journal_loss {
            r.notify.status(&format!(
                "out of service: journal unverified: {}",
                loss.describe()
            ));
        }
        let fresh_start_at = witness::fresh_start_at(&r.journal);
        if r.journal_loss.is_some() || fresh_start_at.is_some() {
            let actions = r.engine.step(Event::JournalTrust {
                trusted: r.journal_loss.is_none(),
                fresh_start_at,
                now_ms: now_ms(),
            });
            r.exec(actions, None).await?;
        }
        r.recover().await?;
        Ok(r)
    }

    /// Start-up: commands the previous run left unfinished get their one honest outcome.
    async fn recover(&mut self) -> Result<(), KioskError> {
        let dispensing = self.journal.commands_in_state(ReplyState::Dispensing)?;
        let accepted = self.journal.commands_in_state(ReplyState::Accepted)?;
        let mut board_status = None;
        if !dispensing.is_empty() {
            warn!(
                count = dispensing.len(),
                "commands were dispensing when the app stopped: reporting outcome_unknown, never re-running the motor"
            );
            // Read the board for evidence (door states, machine status); never a motor command.
            let board = Arc::clone(&self.board);
            let status = tokio::task::spawn_blocking(move || {
                board.wait_ready(Duration::from_secs(3));
                board.machine_status()
            })
            .await;
            board_status = match status {
                Ok(Ok(m)) => serde_json::to_string(&m).ok(),
                Ok(Err(e)) => Some(format!("board status unavailable: {e}")),
                Err(_) => None,
            };
        }
        let actions = self.engine.step(Event::Recover {
            dispensing,
            accepted,
            board_status,
            now_ms: now_ms(),
        });
        self.exec(actions, None).await
    }

    async fn run(mut self) -> Result<(), KioskError> {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut heartbeat =
            tokio::time::interval(Duration::from_secs(self.cfg.kiosk.heartbeat_secs.max(1)));
        // A VMC board's health is a memory read (its POLLs prove it), so look often: the
        // cabinet is back in service within a second of a replug. A lock board must be
        // queried over the bus; that happens every `kiosk.board_check_secs`.
        let mut board_check = tokio::time::interval(Duration::from_millis(500));
        let rotate = Duration::from_secs((self.cfg.commands.session_lifetime_secs / 2).max(5));
        let mut qr = tokio::time::interval(rotate);
        let mut upkeep = tokio::time::interval_at(
            tokio::time::Instant::now() + crate::upkeep::FIRST_PASS_AFTER,
            crate::upkeep::PASS_EVERY,
        );
        for t in [
            &mut tick,
            &mut heartbeat,
            &mut board_check,
            &mut qr,
            &mut upkeep,
        ] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        self.start_board_check(true);
        self.check_disk().await?;
        loop {
            tokio::select! {
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        break;
                    }
                }
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_link_event(ev).await?,
                    None => {
                        warn!("MQTT link task ended");
                        break;
                    }
                },
                Some((cmd_id, outcome)) = self.board_rx.recv() => {
                    self.hooks.crash(CrashPoint::MotorDone);
                    let actions = self.engine.step(Event::BoardDone { cmd_id, outcome, now_ms: now_ms() });
                    self.exec(actions, None).await?;
                }
                Some(up) = self.health_rx.recv() => {
                    self.health_in_flight = false;
                    self.board_health(up);
                    let actions = self.engine.step(Event::Board { up, now_ms: now_ms() });
                    self.exec(actions, None).await?;
                }
                _ = tick.tick() => {
                    self.hang_hook();
                    // Pinged from this loop: a runner stuck anywhere stops the pings.
                    self.notify.watchdog();
                    self.check_disk().await?;
                    let actions = self.engine.step(Event::Tick { now_ms: now_ms() });
                    self.exec(actions, None).await?;
                    self.look_at_witness().await?;
                    self.check_idle_logout().await?;
                    self.send_audit().await?;
                }
                Some((technician, slot, outcome, reply)) = self.tech_done_rx.recv() => {
                    let answer = self.slot_test_done(&technician, slot, outcome);
                    let _ = reply.send(answer);
                    self.send_audit().await?;
                }
                Some((technician, written, reply)) = self.export_done_rx.recv() => {
                    let answer = self.export_done(&technician, written);
                    let _ = reply.send(answer);
                    self.send_audit().await?;
                }
                req = self.control.recv(), if self.control_open => match req {
                    Some(req) => {
                        self.on_control(req).await?;
                        self.send_audit().await?;
                    }
                    None => self.control_open = false,
                },
                _ = heartbeat.tick() => self.heartbeat().await?,
                _ = upkeep.tick() => self.upkeep.start_pass(self.journal_loss.is_none()),
                Some(report) = self.upkeep.finished() => crate::upkeep::log_pass(&report),
                _ = board_check.tick() => self.start_board_check(false),
                _ = qr.tick() => {
                    let actions = self.engine.step(Event::SessionIssued { nonce: new_nonce()?, now_ms: now_ms() });
                    self.exec(actions, None).await?;
                }
            }
        }
        self.finish().await
    }

    /// The board check's answer, for systemd: READY waits for it, STATUS reports a loss.
    fn board_health(&mut self, up: bool) {
        if up != self.board_up {
            self.board_up = up;
            if up {
                self.maybe_ready();
            } else {
                self.notify.status("board not answering: out of service");
            }
        }
    }

    /// Samples the journal's free space (at most once a second) and tells the engine
    /// when it crosses `journal.min_free_mb` ([`disk_is_low`]). While low, new commands
    /// are refused `disk_low` and untrusted payloads are not recorded, so the reserve is
    /// left for the few small writes of a dispense already promised: a full disk used to
    /// end the kiosk mid-dispense ("database or disk is full").
    async fn check_disk(&mut self) -> Result<(), KioskError> {
        let second = Duration::from_secs(1);
        if self.disk_checked.is_some_and(|t| t.elapsed() < second) {
            return Ok(());
        }
        self.disk_checked = Some(Instant::now());
        // Unknown (statvfs failed): the last verdict stands.
        let Some(free) = disk_free(&self.cfg.journal.path) else {
            return Ok(());
        };
        let min = self.cfg.journal.min_free_bytes();
        let low = disk_is_low(self.disk_low, free, min);
        if low == self.disk_low {
            return Ok(());
        }
        self.disk_low = low;
        if low {
            warn!(
                free_bytes = free,
                threshold_bytes = min,
                "journal disk space low: new commands are refused disk_low until space is freed"
            );
            self.notify.status(&format!(
                "out of service: journal disk space low ({free} bytes free, journal.min_free_mb is {} MiB)",
                self.cfg.journal.min_free_mb
            ));
        } else {
            info!(
                free_bytes = free,
                threshold_bytes = min,
                unrecorded_rejections = self.unrecorded_rejections,
                "journal disk space back: in service"
            );
            self.unrecorded_rejections = 0;
            self.notify
                .status(&format!("journal disk space back ({free} bytes free)"));
            self.maybe_ready();
        }
        let actions = self.engine.step(Event::Disk {
            low,
            now_ms: now_ms(),
        });
        self.exec(actions, None).await?;
        // The backend hears it now rather than at the next heartbeat.
        self.heartbeat().await
    }

    /// `READY=1` the first time the cabinet is subscribed and its board answers.
    fn maybe_ready(&mut self) {
        if !(self.subscribed && self.board_up) {
            return;
        }
        let status = format!(
            "serving: subscribed to {}, board answering",
            self.topics.cmd
        );
        if self.notify.is_ready() {
            // While the disk is low the status says so (check_disk), not "serving".
            if !self.disk_low {
                self.notify.status(&status);
            }
        } else {
            info!("ready: subscribed and the board answers");
            self.notify.ready(&status);
        }
    }

    /// The watchdog test's hook ([`Hooks::hang_when`]).
    fn hang_hook(&self) {
        if let Some(path) = &self.hooks.hang_when
            && path.exists()
        {
            warn!("test hook: the runner hangs now");
            self.notify.status("test hook: runner hung");
            loop {
                std::thread::park();
            }
        }
    }

    /// On shutdown: let a running dispense finish and journal its outcome (the outbox keeps
    /// the reply for the next start if it cannot be published now).
    async fn finish(mut self) -> Result<(), KioskError> {
        self.notify.stopping();
        let actions = self.engine.step(Event::Stop { now_ms: now_ms() });
        self.exec(actions, None).await?;
        if self.engine.active().is_some() {
            info!("shutting down: waiting for the dispense in progress");
            // The board's own timeout of the protocol in use, plus the margin: the budget
            // the binaries and the systemd units are sized for (Config::stop_budget).
            let wait = self.cfg.stop_dispense_wait();
            if let Ok(Some((cmd_id, outcome))) =
                tokio::time::timeout(wait, self.board_rx.recv()).await
            {
                let actions = self.engine.step(Event::BoardDone {
                    cmd_id,
                    outcome,
                    now_ms: now_ms(),
                });
                // The link may already have stopped (same signal): a publish that cannot
                // go out is not an error (`link_stopped_is_not_an_error`), the outbox
                // keeps the reply for the next start, and the bookkeeping after it runs.
                self.exec(actions, None).await?;
            }
        }
        let goodbye = Duration::from_secs(crate::config::LINK_GOODBYE_SECS);
        let _ = tokio::time::timeout(goodbye, &mut self.link_task).await;
        info!("kiosk stopped");
        Ok(())
    }

    async fn on_link_event(&mut self, ev: LinkEvent) -> Result<(), KioskError> {
        match ev {
            LinkEvent::Incoming(inc) => {
                let now = now_ms();
                self.last_message_ms = Some(now);
                let now_s = i64::try_from(now / 1000).unwrap_or(i64::MAX);
                let verdict = protocol::verify_command(
                    &inc.payload,
                    &self.keys,
                    &self.cfg.machine_code,
                    now_s,
                    &self.verify,
                );
                if verdict.is_ok() {
                    // A signed command whose iat/exp window holds `now` (within the skew):
                    // the backend's clock vouches for ours.
                    self.clock_confirmed_ms = Some(now);
                }
                let (cmd_id, log_id, order_id) = match &verdict {
                    Ok(c) => (c.cmd_id.clone(), c.log_id.clone(), c.order_id.clone()),
                    Err(r) => r
                        .trusted
                        .as_ref()
                        .map(|t| (t.cmd_id.clone(), t.log_id.clone(), t.order_id.clone()))
                        .unwrap_or_default(),
                };
                let span = info_span!("command", %log_id, %cmd_id, %order_id);
                async {
                    match &verdict {
                        Ok(c) => info!(slot = c.slot, dup = inc.dup, kid = %c.kid, "command received"),
                        Err(r) => warn!(reason = r.reason.code(), detail = %r.detail, bytes = inc.payload.len(), "command rejected"),
                    }
                    let existing = if cmd_id.is_empty() { None } else { self.journal.get_command(&cmd_id)? };
                    if existing.is_some() {
                        info!("duplicate command id: answering with the stored reply");
                    }
                    let payload = inc.payload;
                    let actions = self.engine.step(Event::Command { verdict, existing, now_ms: now });
                    self.exec_with_payload(actions, Some(inc.ack), &payload).await
                }
                .instrument(span)
                .await?;
            }
            LinkEvent::Connected {
                session_present,
                broker,
            } => {
                info!(%broker, session_present, "broker connected");
                self.broker = Some(broker);
                self.connected = true;
                self.connected_since_ms = Some(now_ms());
                if !session_present {
                    // The broker lost our session and rumqttc dropped its queue.
                    self.handed.clear();
                }
                let actions = self.engine.step(Event::Link {
                    up: true,
                    now_ms: now_ms(),
                });
                self.exec(actions, None).await?;
                self.flush().await?;
                self.heartbeat().await?;
            }
            LinkEvent::Subscribed => {
                info!(topic = %self.topics.cmd, "subscribed");
                self.subscribed = true;
                self.maybe_ready();
            }
            LinkEvent::Disconnected { error } => {
                warn!(%error, "broker connection lost");
                self.subscribed = false;
                self.notify
                    .status(&format!("broker connection lost: {error}"));
                self.connected = false;
                self.connected_since_ms = None;
                let actions = self.engine.step(Event::Link {
                    up: false,
                    now_ms: now_ms(),
                });
                self.exec(actions, None).await?;
            }
            LinkEvent::Published(id) => {
                let id = i64::try_from(id).unwrap_or(i64::MAX);
                self.journal.outbox_ack(id)?;
                self.handed.remove(&id);
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn exec(
        &mut self,
        actions: Vec<Action>,
        ack: Option<AckToken>,
    ) -> Result<(), KioskError> {
        self.exec_with_payload(actions, ack, &[]).await
    }

    async fn exec_with_payload(
        &mut self,
        actions: Vec<Action>,
        mut ack: Option<AckToken>,
        payload: &[u8],
    ) -> Result<(), KioskError> {
        let mut actions = std::collections::VecDeque::from(actions);
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Insert { cmd, reply } => {
                    let msg = self.outbox_message(&reply);
                    self.journal.insert_new_command(&cmd, Some(&msg))?;
                    if cmd.state == ReplyState::Accepted {
                        self.hooks.crash(CrashPoint::Accepted);
                    }
                }
                Action::Transition {
                    cmd_id,
                    to,
                    reason,
                    evidence,
                    reply,
                } => {
                    let msg = self.outbox_message(&reply);
                    self.journal
                        .transition(&cmd_id, to, reason, &evidence, Some(&msg))?;
                    if to == ReplyState::Dispensing {
                        self.hooks.crash(CrashPoint::Dispensing);
                    } else if to.is_terminal() {
                        self.hooks.crash(CrashPoint::Outcome);
                    }
                    info!(
                        state = to.as_str(),
                        reason = reason.map(|r| r.code()),
                        "state"
                    );
                }
                Action::RecordRejection {
                    reason,
                    detail,
                    reply,
                } => {
                    let msg = self.outbox_message(&reply);
                    if self.disk_low {
                        self.unrecorded_rejection(reason, &detail);
                        // Answered once, outside the outbox: a stranger's payloads must not
                        // spend the reserve a promised dispense needs.
                        if self.connected {
                            link_stopped_is_not_an_error(
                                self.handle
                                    .publish_unjournaled_reply(&msg.topic, msg.payload)
                                    .await,
                            )?;
                        }
                    } else {
                        self.journal
                            .record_untrusted(reason, payload, &detail, &msg)?;
                    }
                }
                Action::Ack => {
                    if let Some(t) = ack.take() {
                        link_stopped_is_not_an_error(self.handle.ack(t).await)?;
                    }
                }
                Action::Resend { cmd_id, reply_json } => {
                    let msg = OutboxMessage {
                        topic: self.topics.reply.clone(),
                        payload: reply_json,
                    };
                    self.journal.enqueue(Some(&cmd_id), &msg)?;
                }
                Action::Publish => self.flush().await?,
                Action::Dispense(job) => self.dispense(job),
                Action::Inventory(InventoryChange::Decrement(slot)) => {
                    let left = self.journal.decrement_on_drop(slot)?;
                    info!(slot, left, "stock");
                }
                Action::Inventory(InventoryChange::Jammed(slot)) => {
                    self.journal.set_jammed(slot, true)?;
                    warn!(
                        slot,
                        "slot taken out of service until a technician clears it"
                    );
                }
                Action::Screen(snap) => {
                    info!(screen = ?snap.screen, link_up = snap.link_up, board_up = snap.board_up, "screen");
                    // An idle screen always shows a QR code: when the last nonce was
                    // used by a scan (one scan, one dispense) or expired, issue the next
                    // one now instead of at the next rotation.
                    let needs_nonce = snap.screen == Screen::Idle && snap.qr_nonce.is_none();
                    self.screen.send_replace(Some(snap));
                    if needs_nonce {
                        actions.extend(self.engine.step(Event::SessionIssued {
                            nonce: new_nonce()?,
                            now_ms: now_ms(),
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    /// While the disk is low, an untrusted payload is answered but not recorded: said
    /// once per low period, then counted (logged when the space is back).
    fn unrecorded_rejection(&mut self, reason: crate::reason::Reason, detail: &str) {
        if self.unrecorded_rejections == 0 {
            warn!(
                reason = reason.code(),
                detail,
                "journal disk space low: untrusted payloads are answered but not recorded until space is freed"
            );
        }
        self.unrecorded_rejections += 1;
    }

    fn outbox_message(&self, reply: &protocol::Reply) -> OutboxMessage {
        // Serializing our own struct cannot fail; an empty payload would still be visible.
        let payload = reply.to_json().unwrap_or_default();
        OutboxMessage {
            topic: self.topics.reply.clone(),
            payload,
        }
    }

    /// Run the motor on the blocking pool; the outcome comes back as an event.
    fn dispense(&self, job: Job) {
        let board = Arc::clone(&self.board);
        let tx = self.board_tx.clone();
        let motor = self.upkeep.motor_flag();
        let span = info_span!("dispense", log_id = %job.log_id, cmd_id = %job.cmd_id, order_id = %job.order_id, slot = job.slot);
        tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            info!("motor command");
            // Retention waits between its batches while this is set (crate::upkeep).
            motor.store(true, std::sync::atomic::Ordering::Release);
            let outcome = board.dispense(job.slot);
            motor.store(false, std::sync::atomic::Ordering::Release);
            info!(outcome = outcome.name(), "board outcome");
            let _ = tx.send((job.cmd_id, outcome));
        });
    }

    /// Hand pending outbox replies to the link, oldest first.
    async fn flush(&mut self) -> Result<(), KioskError> {
        if !self.connected {
            return Ok(());
        }
        let room = MAX_IN_FLIGHT.saturating_sub(self.handed.len());
        if room == 0 {
            return Ok(());
        }
        let pending = self.journal.outbox_pending(MAX_IN_FLIGHT * 2)?;
        let fresh: Vec<_> = pending
            .into_iter()
            .filter(|e| !self.handed.contains(&e.id))
            .take(room)
            .collect();
        for entry in fresh {
            let id = u64::try_from(entry.id).unwrap_or(0);
            let handed = self
                .handle
                .publish_reply(id, &entry.topic, entry.payload)
                .await;
            if handed.is_err() {
                // Stopping: the row stays in the outbox for the next start.
                return link_stopped_is_not_an_error(handed);
            }
            self.handed.insert(entry.id);
        }
        Ok(())
    }

    /// Check the board without blocking the loop; the answer comes back on `health_rx`.
    fn start_board_check(&mut self, first: bool) {
        if self.health_in_flight {
            return;
        }
        if self.board.protocol() == Protocol::Lockboard && !first {
            let every = Duration::from_secs(self.cfg.kiosk.board_check_secs.max(1));
            if self.last_lock_query.is_some_and(|t| t.elapsed() < every) {
                return;
            }
            self.last_lock_query = Some(Instant::now());
        }
        let board = Arc::clone(&self.board);
        let busy = self.engine.active().is_some();
        let start_wait = Duration::from_secs(self.cfg.kiosk.board_start_wait_secs);
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

    // ------------------------------------------------------------- technicians

    async fn on_control(&mut self, req: Control) -> Result<(), KioskError> {
        match req {
            Control::BeginLogin { technician, reply } => {
                let now = now_ms();
                let answer = if let Some(until_ms) = self.gate.locked(now) {
                    Err(Attempt::LockedOut { until_ms })
                } else if let Some(hash) = self.cfg.technicians.get(&technician) {
                    Ok(hash.expose().to_owned())
                } else {
                    Err(self.login_failed(&technician, now)?)
                };
                let _ = reply.send(answer);
            }
            Control::FinishLogin {
                technician,
                pin_ok,
                reply,
            } => {
                let now = now_ms();
                let answer = if let Some(until_ms) = self.gate.locked(now) {
                    Attempt::LockedOut { until_ms }
                } else if pin_ok {
                    self.gate.on_success();
                    self.save_gate()?;
                    self.audit(&technician, "login", "")?;
                    info!(technician = %technician, "technician logged in: cabinet in maintenance");
                    self.tech = Some(TechSession {
                        name: technician.clone(),
                        last_activity: Instant::now(),
                    });
                    let actions = self.engine.step(Event::Maintenance {
                        on: true,
                        now_ms: now,
                    });
                    self.exec(actions, None).await?;
                    Attempt::LoggedIn { technician }
                } else {
                    self.login_failed(&technician, now)?
                };
                let _ = reply.send(answer);
            }
            Control::Activity => {
                if let Some(t) = &mut self.tech {
                    t.last_activity = Instant::now();
                }
            }
            Control::Logout { reply } => {
                self.logout("logout").await?;
                let _ = reply.send(());
            }
            Control::Tech { action, reply } => {
                let Some(technician) = self.tech.as_ref().map(|t| t.name.clone()) else {
                    let _ = reply.send(Err(TechError::NotLoggedIn));
                    return Ok(());
                };
                if let TechAction::SlotTest { slot } = action {
                    // Answered when the board is done (see slot_test_done).
                    if let Err(e) = self.start_slot_test(&technician, slot, reply) {
                        warn!(error = %e, "slot test refused");
                    }
                    return Ok(());
                }
                if let TechAction::Export { dir } = action {
                    // Answered when the files are written (see export_done).
                    self.start_export(&technician, dir, reply);
                    return Ok(());
                }
                if let TechAction::ConfirmFreshStart = action {
                    let answer = self.confirm_fresh_start(&technician).await;
                    let _ = reply.send(answer);
                    return Ok(());
                }
                let exit = matches!(action, TechAction::Exit);
                let answer = self.tech_action(&technician, action);
                let _ = reply.send(answer);
                if exit {
                    info!(technician = %technician, "technician closes the app");
                }
            }
            Control::Diagnostics { reply } => {
                let answer = match self.tech {
                    Some(_) => Ok(self.diagnostics()?),
                    None => Err(TechError::NotLoggedIn),
                };
                let _ = reply.send(answer);
            }
            Control::Status { reply } => {
                let _ = reply.send(TechStatus {
                    technicians: self.cfg.technicians.keys().cloned().collect(),
                    logged_in: self.tech.as_ref().map(|t| t.name.clone()),
                    locked_until_ms: self.gate.locked(now_ms()),
                    idle_logout_secs: self.cfg.maintenance.idle_logout_secs,
                });
            }
        }
        Ok(())
    }

    fn start_slot_test(
        &mut self,
        technician: &str,
        slot: u16,
        reply: tokio::sync::oneshot::Sender<Result<TechAnswer, TechError>>,
    ) -> Result<(), TechError> {
        let refuse = |reply: tokio::sync::oneshot::Sender<_>, e: TechError| {
            let _ = reply.send(Err(e.clone()));
            Err(e)
        };
        if self.tech_busy {
            return refuse(reply, TechError::Busy("a slot test is running".into()));
        }
        if self.engine.active().is_some() {
            return refuse(
                reply,
                TechError::Busy("a customer's dispense is finishing".into()),
            );
        }
        if !self.cfg.slots.iter().any(|s| s.slot == slot) {
            return refuse(
                reply,
                TechError::Invalid(format!("slot {slot} is not in the slot map")),
            );
        }
        self.tech_busy = true;
        let board = Arc::clone(&self.board);
        let tx = self.tech_done_tx.clone();
        let technician = technician.to_owned();
        let span = info_span!("slot_test", technician = %technician, slot);
        tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            info!("technician slot test: motor command");
            let outcome = board.dispense(slot);
            info!(
                outcome = outcome.name(),
                "technician slot test: board outcome"
            );
            let _ = tx.send((technician, slot, outcome, reply));
        });
        Ok(())
    }

    fn slot_test_done(
        &mut self,
        technician: &str,
        slot: u16,
        outcome: cabinet_board::Outcome,
    ) -> Result<TechAnswer, TechError> {
        self.tech_busy = false;
        let failed = |e: JournalError| TechError::Failed(e.to_string());
        self.audit(
            technician,
            "slot_test",
            &format!("slot {slot}: {}", outcome.name()),
        )
        .map_err(failed)?;
        // Same bookkeeping as a customer's dispense: an item that left the slot is gone
        // from the stock, a jam takes the slot out of service.
        let (_, _, _, changes) = crate::engine::judge(&outcome, slot);
        for change in changes {
            match change {
                InventoryChange::Decrement(s) => {
                    self.journal.decrement_on_drop(s).map_err(failed)?;
                }
                InventoryChange::Jammed(s) => self.journal.set_jammed(s, true).map_err(failed)?,
            }
        }
        self.slot_changed(slot).map_err(failed)?;
        Ok(TechAnswer::SlotTest { slot, outcome })
    }

    /// Tells the engine the journal's new row for `slot` (and redraws the screen).
    fn slot_changed(&mut self, slot: u16) -> Result<(), JournalError> {
        if let Some(row) = self.journal.slot(slot)? {
            let actions = self.engine.step(Event::SlotUpdated {
                slot: row,
                now_ms: now_ms(),
            });
            for a in actions {
                if let Action::Screen(snap) = a {
                    self.screen.send_replace(Some(snap));
                }
            }
        }
        Ok(())
    }

    fn tech_action(
        &mut self,
        technician: &str,
        action: TechAction,
    ) -> Result<TechAnswer, TechError> {
        let failed = |e: JournalError| TechError::Failed(e.to_string());
        let slots = |j: &Journal| {
            j.inventory()
                .map(|slots| TechAnswer::Slots { slots })
                .map_err(failed)
        };
        match action {
            TechAction::SlotTest { .. } => Err(TechError::Invalid("slot tests run apart".into())),
            TechAction::Slots => slots(&self.journal),
            TechAction::ClearJam { slot } => {
                self.known_slot(slot)?;
                self.journal.set_jammed(slot, false).map_err(failed)?;
                self.slot_edited(technician, slot, "clear_jam", &format!("slot {slot}"))
            }
            TechAction::SetEnabled { slot, enabled } => {
                self.known_slot(slot)?;
                self.journal.set_enabled(slot, enabled).map_err(failed)?;
                let what = if enabled {
                    "enable_slot"
                } else {
                    "disable_slot"
                };
                self.slot_edited(technician, slot, what, &format!("slot {slot}"))
            }
            TechAction::SetCount { slot, count } => {
                let capacity = self.known_slot(slot)?;
                if count > capacity {
                    return Err(TechError::Invalid(format!(
                        "slot {slot} holds at most {capacity}"
                    )));
                }
                let before = self
                    .journal
                    .slot(slot)
                    .map_err(failed)?
                    .map(|s| s.count)
                    .unwrap_or(0);
                self.journal.set_count(slot, count).map_err(failed)?;
                info!(technician = %technician, slot, before, count, "restock");
                self.slot_edited(
                    technician,
                    slot,
                    "restock",
                    &format!("slot {slot}: {before} -> {count}"),
                )
            }
            TechAction::Commands { n, log_id } => {
                let commands = match log_id.as_deref().map(str::trim) {
                    Some(id) if !id.is_empty() => {
                        let exact = self.journal.find_by_log_id(id).map_err(failed)?;
                        if exact.is_empty() {
                            self.journal.find_by_log_id_nocase(id).map_err(failed)?
                        } else {
                            exact
                        }
                    }
                    _ => self
                        .journal
                        .recent_commands(n.clamp(1, 500))
                        .map_err(failed)?,
                };
                Ok(TechAnswer::Commands { commands })
            }
            TechAction::Frames => Ok(TechAnswer::Frames {
                frames: self.board.recent_frames(),
            }),
            TechAction::Audit { n } => Ok(TechAnswer::Audit {
                entries: self.journal.recent_audit(n.clamp(1, 500)).map_err(failed)?,
            }),
            TechAction::ExportTargets => Ok(TechAnswer::ExportTargets {
                dirs: removable_mounts(),
            }),
            TechAction::Export { .. } => Err(TechError::Invalid("exports run apart".into())),
            TechAction::ConfirmFreshStart => {
                Err(TechError::Invalid("confirmations run apart".into()))
            }
            TechAction::Exit => {
                self.audit(technician, "exit", "").map_err(failed)?;
                Ok(TechAnswer::Done)
            }
        }
    }

    /// After a technician changed `slot` in the journal: audit it, tell the engine, and
    /// answer with the slot table. The runner sends the audit (and with it the new stock)
    /// in telemetry right after the action.
    fn slot_edited(
        &mut self,
        technician: &str,
        slot: u16,
        action: &str,
        detail: &str,
    ) -> Result<TechAnswer, TechError> {
        let failed = |e: JournalError| TechError::Failed(e.to_string());
        self.audit(technician, action, detail).map_err(failed)?;
        self.slot_changed(slot).map_err(failed)?;
        Ok(TechAnswer::Slots {
            slots: self.journal.inventory().map_err(failed)?,
        })
    }

    /// The slot's capacity, or why the slot cannot be changed.
    fn known_slot(&self, slot: u16) -> Result<u32, TechError> {
        self.cfg
            .slots
            .iter()
            .find(|s| s.slot == slot)
            .map(|s| s.capacity)
            .ok_or_else(|| TechError::Invalid(format!("slot {slot} is not in the slot map")))
    }

    /// Starts a diagnostics bundle for `dir`: the live health, the config with its
    /// secrets redacted, a journal extract and the last serial frames are gathered here
    /// (memory and journal reads), and the files, with a copy of the log files, are
    /// written on the blocking pool (crate::export), so a slow or hung USB stick never
    /// holds up the loop. The technician is answered from `export_done`. Nothing in the
    /// bundle is secret.
    fn start_export(
        &mut self,
        technician: &str,
        dir: std::path::PathBuf,
        reply: tokio::sync::oneshot::Sender<Result<TechAnswer, TechError>>,
    ) {
        if self.exporting {
            let _ = reply.send(Err(TechError::Busy("an export is being written".into())));
            return;
        }
        let bundle = match self.export_contents(dir) {
            Ok(b) => b,
            Err(e) => {
                let _ = reply.send(Err(TechError::Failed(format!(
                    "cannot gather the bundle: {e}"
                ))));
                return;
            }
        };
        self.exporting = true;
        let tx = self.export_done_tx.clone();
        let technician = technician.to_owned();
        let span = info_span!("export", technician = %technician);
        tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            let written = bundle.write();
            if let Err(e) = &written {
                warn!(error = %e, "diagnostics export failed");
            }
            let _ = tx.send((technician, written, reply));
        });
    }

    /// What goes into the bundle, read now so it is one moment's picture.
    fn export_contents(
        &self,
        dir: std::path::PathBuf,
    ) -> Result<crate::export::Bundle, Box<dyn std::error::Error>> {
        Ok(crate::export::Bundle {
            dir,
            name: format!("cabinet-{}-{}", self.cfg.machine_code, now_ms()),
            files: vec![
                (
                    "diagnostics.json",
                    serde_json::to_value(self.diagnostics()?)?,
                ),
                ("config.json", serde_json::to_value(&self.cfg)?),
                (
                    "journal.json",
                    serde_json::json!({
                        "inventory": self.journal.inventory()?,
                        "outbox_pending": self.journal.outbox_len()?,
                        "commands": self.journal.recent_commands(500)?,
                        "audit": self.journal.recent_audit(500)?,
                        "rejections": self.journal.recent_rejections(500)?,
                    }),
                ),
                (
                    "frames.json",
                    serde_json::to_value(self.board.recent_frames())?,
                ),
            ],
            logs_dir: self.cfg.logs.dir.clone(),
        })
    }

    /// An export came back from the blocking pool: audit it (as every technician
    /// action) and say where it went.
    fn export_done(
        &mut self,
        technician: &str,
        written: Result<(std::path::PathBuf, Vec<String>), String>,
    ) -> Result<TechAnswer, TechError> {
        self.exporting = false;
        let (path, files) = written.map_err(TechError::Failed)?;
        self.audit(technician, "export", &path.display().to_string())
            .map_err(|e| TechError::Failed(e.to_string()))?;
        Ok(TechAnswer::Exported {
            path: path.display().to_string(),
            files,
        })
    }

    /// Sends technician actions to the backend now (in a telemetry message) rather than
    /// at the next heartbeat.
    async fn send_audit(&mut self) -> Result<(), KioskError> {
        if self.pending_audit.is_empty() {
            return Ok(());
        }
        self.heartbeat().await
    }

    /// Records a technician action in the journal's audit table and queues it for the
    /// next telemetry message.
    fn audit(&mut self, technician: &str, action: &str, detail: &str) -> Result<i64, JournalError> {
        let id = self.journal.audit(technician, action, detail)?;
        self.pending_audit.push(protocol::AuditEvent {
            at: now_ms(),
            technician: technician.to_owned(),
            action: action.to_owned(),
            detail: detail.to_owned(),
        });
        Ok(id)
    }

    /// Writes the live health beside the journal (`<journal>.status.json`, replaced
    /// atomically) every heartbeat, so `cabinet diag` can show it from another process.
    /// Best effort: a full disk must not stop the kiosk over a status file.
    fn write_status(&self) {
        let Ok(diag) = self.diagnostics() else { return };
        let Ok(json) = serde_json::to_vec_pretty(&diag) else {
            return;
        };
        let path = status_path(&self.cfg);
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let written = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            warn!(path = %path.display(), error = %e, "cannot write the status file");
        }
    }

    /// The technician screen's broker line: the configured URL, or with failover
    /// endpoints the one in use (or last used) and how many are configured.
    fn broker_diagnostics(&self) -> String {
        let m = &self.cfg.mqtt;
        let n = 1 + m.failover_urls.len();
        if n == 1 {
            return m.url.clone();
        }
        let scheme = if m.url.starts_with("mqtts://") {
            "mqtts"
        } else {
            "mqtt"
        };
        match &self.broker {
            Some(b) => format!("{scheme}://{b} ({n} endpoints configured)"),
            None => format!("{} ({n} endpoints configured)", m.url),
        }
    }

    /// The live health, as the diagnostics screen shows it.
    fn diagnostics(&self) -> Result<Diagnostics, KioskError> {
        let now = now_ms();
        let path = &self.cfg.journal.path;
        Ok(Diagnostics {
            version: VERSION.to_owned(),
            machine_code: self.cfg.machine_code.clone(),
            boot_id: self.boot_id.clone(),
            at_ms: now,
            uptime_secs: self.started.elapsed().as_secs(),
            clock_plausible: now / 1000 >= BUILD_EPOCH_FLOOR_SECS,
            clock_confirmed_ms: self.clock_confirmed_ms,
            link: LinkDiagnostics {
                broker: self.broker_diagnostics(),
                subscription: self.topics.cmd.clone(),
                connected: self.connected,
                connected_since_ms: self.connected_since_ms,
                last_message_ms: self.last_message_ms,
                outbox_pending: self.journal.outbox_len()?,
            },
            board: self.board.health(),
            board_up: self.engine.board_up(),
            journal: JournalDiagnostics {
                path: path.display().to_string(),
                size_bytes: FileBytes::of(path).total,
                disk_free_bytes: disk_free(path),
                disk_low: self.disk_low,
                rejections_dropped: self.journal.rejections_dropped().unwrap_or(0),
                unverified: self.journal_loss.as_ref().map(Loss::describe),
            },
            technician: self.tech.as_ref().map(|t| t.name.clone()),
        })
    }

    /// While the journal is not trusted: every two seconds, whether someone confirmed a
    /// fresh start from outside (`cabinet journal confirm-fresh-start` rewrites the
    /// witness and audits it).
    async fn look_at_witness(&mut self) -> Result<(), KioskError> {
        if self.journal_loss.is_none() || self.witness_looked.elapsed() < Duration::from_secs(2) {
            return Ok(());
        }
        self.witness_looked = Instant::now();
        if witness::names(self.upkeep.witness_path(), &self.journal) {
            info!("a fresh start of the journal was confirmed outside the app");
            self.journal_trusted().await?;
        }
        Ok(())
    }

    /// The journal is trusted again: back in service.
    async fn journal_trusted(&mut self) -> Result<(), KioskError> {
        self.journal_loss = None;
        self.notify
            .status("serving: the journal's fresh start was confirmed");
        let actions = self.engine.step(Event::JournalTrust {
            trusted: true,
            fresh_start_at: witness::fresh_start_at(&self.journal),
            now_ms: now_ms(),
        });
        self.exec(actions, None).await
    }

    /// A technician confirms a fresh start from the diagnostics screen.
    async fn confirm_fresh_start(&mut self, technician: &str) -> Result<TechAnswer, TechError> {
        let Some(loss) = &self.journal_loss else {
            return Err(TechError::Invalid(
                "the journal is trusted: there is nothing to confirm".into(),
            ));
        };
        let described = loss.describe();
        let path = self.upkeep.witness_path().to_owned();
        witness::confirm_fresh_start(&path, &mut self.journal, technician, &described)
            .map_err(|e| TechError::Failed(e.to_string()))?;
        // Audited in the journal by confirm_fresh_start; telemetry carries it too.
        self.pending_audit.push(protocol::AuditEvent {
            at: now_ms(),
            technician: technician.to_owned(),
            action: "journal_fresh_start".to_owned(),
            detail: described,
        });
        self.journal_trusted()
            .await
            .map_err(|e| TechError::Failed(e.to_string()))?;
        Ok(TechAnswer::Done)
    }

    /// A wrong PIN (or a name the config does not know): count it, audit it, persist.
    fn login_failed(&mut self, technician: &str, now: u64) -> Result<Attempt, KioskError> {
        let policy = self.cfg.lockout_policy();
        let attempt = self.gate.on_failure(&policy, now);
        self.save_gate()?;
        self.audit(technician, "failed_pin", "")?;
        if let Attempt::LockedOut { until_ms } = attempt {
            let secs = until_ms.saturating_sub(now) / 1000;
            self.audit(technician, "locked_out", &format!("{secs} s"))?;
            warn!(technician = %technician, lock_secs = secs, "technician entry locked after wrong PINs");
        } else {
            warn!(technician = %technician, "wrong technician PIN");
        }
        Ok(attempt)
    }

    fn save_gate(&mut self) -> Result<(), KioskError> {
        let json = serde_json::to_string(&self.gate).unwrap_or_default();
        self.journal.set_setting(GATE_KEY, &json)?;
        Ok(())
    }

    async fn logout(&mut self, why: &str) -> Result<(), KioskError> {
        let Some(t) = self.tech.take() else {
            return Ok(());
        };
        self.audit(&t.name, "logout", why)?;
        info!(technician = %t.name, why, "technician logged out: cabinet back in service");
        let actions = self.engine.step(Event::Maintenance {
            on: false,
            now_ms: now_ms(),
        });
        self.exec(actions, None).await
    }

    async fn check_idle_logout(&mut self) -> Result<(), KioskError> {
        let idle = Duration::from_secs(self.cfg.maintenance.idle_logout_secs);
        if self
            .tech
            .as_ref()
            .is_some_and(|t| t.last_activity.elapsed() >= idle)
        {
            self.logout("idle").await?;
        }
        Ok(())
    }

    /// The journal's figures for telemetry.
    fn journal_figures(&self) -> Result<protocol::JournalFigures, KioskError> {
        let (commands, rejections) = self.journal.rows_held()?;
        Ok(protocol::JournalFigures {
            size_bytes: FileBytes::of(&self.cfg.journal.path).total,
            commands,
            rejections,
            rejections_dropped: self.journal.rejections_dropped()?,
            commands_pruned: self.journal.commands_pruned()?,
            unverified: self.journal_loss.as_ref().map(Loss::describe),
        })
    }

    async fn heartbeat(&mut self) -> Result<(), KioskError> {
        self.write_status();
        if !self.connected {
            return Ok(());
        }
        let health = self.board.health();
        let t = Telemetry {
            v: PROTOCOL_VERSION,
            machine_code: self.cfg.machine_code.clone(),
            boot_id: self.boot_id.clone(),
            at: now_ms(),
            uptime_secs: self.started.elapsed().as_secs(),
            board: protocol::BoardHealth {
                // What dispense decisions use, not a fresher reading they have not seen.
                ok: self.engine.board_up(),
                status: Some(format!(
                    "{} on {}: rx {} tx {} bad {} timeouts {}",
                    health.protocol,
                    health.port,
                    health.frames_rx,
                    health.frames_tx,
                    health.bad_frames,
                    health.timeouts
                )),
            },
            outbox_pending: self.journal.outbox_len()?,
            disk_free_bytes: disk_free(&self.cfg.journal.path),
            disk_low: self.disk_low,
            journal: Some(self.journal_figures()?),
            inventory: self
                .engine
                .inventory()
                .map(|s| SlotLevel {
                    slot: s.slot,
                    count: s.count,
                    capacity: s.capacity,
                    enabled: s.enabled,
                    jammed: s.jammed,
                })
                .collect(),
            audit: std::mem::take(&mut self.pending_audit),
        };
        if let Ok(json) = serde_json::to_string(&t) {
            link_stopped_is_not_an_error(self.handle.publish_telemetry(json).await)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_is_low_below_the_threshold_and_back_only_a_quarter_above_it() {
        let min: u64 = 64 << 20;
        assert!(!disk_is_low(false, min, min));
        assert!(disk_is_low(false, min - 1, min));
        // Once low, the threshold alone is not enough: no flapping around it.
        assert!(disk_is_low(true, min, min));
        assert!(disk_is_low(true, min + min / 4 - 1, min));
        assert!(!disk_is_low(true, min + min / 4, min));
        assert!(!disk_is_low(true, u64::MAX, u64::MAX), "no overflow");
    }
}
