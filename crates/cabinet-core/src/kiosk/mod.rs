//! The kiosk runner: the one task that drives the [`Engine`] and performs its actions
//! against the journal, the MQTT link and the board.
//!
//! ```text
//!   MqttLink task ──LinkEvent──▶ ┐
//!   board worker ──outcome────▶ ├─▶ Runner::run ── Engine::step ──▶ actions ─▶ journal / ack / publish / board
//!   desk, timers (tick, beat) ─▶ ┘                                           └─▶ screen watch channel
//! ```
//!
//! The subscription lives as long as this task, whatever the screen shows: a screen
//! that crashes or reloads never takes the cabinet off its topic. Physical board calls
//! block, so they run on the blocking pool and come back as events; everything else is
//! sequential, which is what makes "look up the command id, then insert it" race-free.
//!
//! A journal write that fails stops the kiosk (the error is returned): without the
//! journal it can promise neither "at most once" nor "exactly one reply", and a restart
//! (systemd) recovers from what the journal holds.
//!
//! One job a file: this file holds the loop and the link's events; [`actions`] performs
//! the engine's actions; [`outbox`] is the window of replies in the link's hands;
//! [`board`] runs the motor and the health checks; [`desk`] is the technician's;
//! [`diagnostics`] and [`telemetry`] say how the cabinet is; [`documents`] holds the
//! key set and the configuration in force and takes the operator's new ones (signed
//! documents); [`service`] is READY,
//! the journal's disk and its trust; [`link`] is the port the runner sends through,
//! which the unit tests ([`tests`]) replace with a recorder.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cabinet_board::Board;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, info, info_span, warn};

use crate::config::Config;
use crate::control::Control;
use crate::engine::{Engine, EngineConfig, Event, SlotSite};
use crate::hooks::{CrashPoint, Hooks};
use crate::instance::InstanceLock;
use crate::journal::{Journal, JournalError};
use crate::mqtt::{LinkError, LinkEvent, LinkOptions, MqttLink};
use crate::protocol::{self, ReplyState, Topics};
use crate::screen::Snapshot;
use crate::systemd::Notifier;
use crate::upkeep::Upkeep;
use crate::witness::{self, Loss};

mod actions;
mod board;
mod desk;
mod diagnostics;
mod documents;
mod link;
mod outbox;
mod service;
mod telemetry;
#[cfg(test)]
mod tests;

pub use board::{board_settings, entry_settings, open_board, packno_path};
pub use diagnostics::status_path;

use board::BoardWorker;
use desk::Desk;
use diagnostics::Exports;
use documents::Documents;
use link::{Conn, Link};
use outbox::Outbox;
use service::Service;

/// The app version reported in the birth message and telemetry.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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
/// Each slot's board, channel and kind, for the engine's evidence and stock rules.
fn slot_sites(cfg: &Config, doors: &BTreeSet<u16>) -> BTreeMap<u16, SlotSite> {
    let places = cfg.slot_places();
    cfg.slots
        .iter()
        .map(|s| {
            let place = places.get(&s.slot);
            let site = SlotSite {
                board: place.map(|p| cfg.boards[p.board].name.clone()),
                channel: place.map(|p| p.channel),
                door: doors.contains(&s.slot),
            };
            (s.slot, site)
        })
        .collect()
}

/// What the engine needs of the config in force.
fn engine_config(cfg: &Config, boot_id: &str, config_version: u64) -> EngineConfig {
    EngineConfig {
        machine_code: cfg.machine_code.clone(),
        cabinet_name: cfg.kiosk.name.clone(),
        boot_id: boot_id.to_owned(),
        require_session: cfg.commands.require_session,
        session_lifetime_ms: cfg.commands.session_lifetime_secs * 1000,
        take_item_ms: cfg.kiosk.take_item_secs * 1000,
        failed_ms: cfg.kiosk.failed_secs * 1000,
        out_of_service_grace_ms: cfg.kiosk.out_of_service_grace_secs * 1000,
        clock_skew_secs: cfg.commands.clock_skew_secs,
        // A margin over the runner's own first check (which waits this long for the
        // board), so that check's answer normally decides; this is the backstop.
        board_start_wait_ms: (cfg.kiosk.board_start_wait_secs + 2) * 1000,
        sites: slot_sites(cfg, &cfg.door_slots()),
        config_version,
        info: Arc::new(crate::screen::CabinetInfo::from_config(cfg)),
    }
}

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
    let result = async {
        let opts = LinkOptions::from_config(&cfg, boot_id.clone(), VERSION)?;
        let (mqtt, link, events) = MqttLink::new(opts)?;
        let link_task = Some(tokio::spawn(mqtt.run(shutdown.clone()).in_current_span()));
        let ports = Ports {
            link,
            events,
            link_task,
            screen,
            control,
            shutdown,
        };
        Runner::open(cfg, board, boot_id, ports)?
            .start()
            .await?
            .run()
            .await
    }
    .instrument(span)
    .await;
    drop(lock);
    result
}

/// Where a technician's answer goes.
type Answer =
    tokio::sync::oneshot::Sender<Result<crate::control::TechAnswer, crate::control::TechError>>;

/// What the runner talks to besides the board: the link (its port and its events), the
/// screen, the technician's requests and the stop signal.
struct Ports<L> {
    link: L,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    /// The link's own task, given a moment to say goodbye at the end.
    link_task: Option<tokio::task::JoinHandle<()>>,
    screen: watch::Sender<Option<Snapshot>>,
    control: mpsc::Receiver<Control>,
    shutdown: watch::Receiver<bool>,
}

struct Runner<L: Link> {
    cfg: Config,
    journal: Journal,
    engine: Engine,
    topics: Topics,
    /// The keys in force and the operator's documents.
    docs: Documents,
    verify: protocol::VerifyOptions,
    boot_id: String,
    started: Instant,
    link: L,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    link_task: Option<tokio::task::JoinHandle<()>>,
    screen: watch::Sender<Option<Snapshot>>,
    shutdown: watch::Receiver<bool>,
    control: mpsc::Receiver<Control>,
    control_open: bool,
    /// The motor and the health checks.
    board: BoardWorker,
    /// Replies in the link's hands.
    outbox: Outbox,
    /// What the runner knows of the broker connection.
    conn: Conn,
    /// The technician's login, session and actions.
    desk: Desk,
    /// Diagnostics bundles being written.
    exports: Exports,
    /// READY, the journal's disk, the witness.
    service: Service,
    hooks: Hooks,
    /// Retention passes and the witness (crate::upkeep).
    upkeep: Upkeep,
    /// Why the journal is not trusted, until someone confirms a fresh start.
    journal_loss: Option<Loss>,
}

impl<L: Link> Runner<L> {
    /// Opens the journal and builds the engine; nothing is sent yet.
    fn open(
        cfg: Config,
        board: Arc<dyn Board>,
        boot_id: String,
        ports: Ports<L>,
    ) -> Result<Runner<L>, KioskError> {
        let (mut journal, journal_loss) = crate::upkeep::open_at_start(&cfg)?;
        journal.set_rejection_limits(crate::journal::RejectionLimits::of(&cfg.journal));
        // The documents in force, and the config in force: the file's, with the
        // operator's configuration (if one is in force) laid over it.
        let (docs, cfg) = Documents::open(cfg, &journal)?;
        // The inventory follows the slot map in force, the operator's or the file's: a
        // product renamed or a capacity changed in the file shows at the next start, and
        // a slot taken out of it is no longer sold (refused `slot_unknown`); live counts
        // stay, cut to the capacity. A door holds one item whatever capacity the file
        // gives it.
        let (slot_map, wide) = cfg.inventory_slot_map();
        if !wide.is_empty() {
            warn!(slots = ?wide, "doors hold one item: a capacity above one is read as 1");
        }
        let change = journal.apply_slot_map(&slot_map)?;
        if !change.is_empty() {
            info!(added = ?change.added, changed = ?change.changed, removed = ?change.removed,
                "the inventory follows the slot map in force");
        }
        if docs.remote_slot_map(&cfg) && !cfg.boards.is_empty() {
            board
                .set_routes(board::slot_routes(&cfg))
                .map_err(|e| KioskError::Setup(format!("the slot map in force: {e}")))?;
        }
        let desk = Desk::open(&journal)?;
        let topics =
            Topics::new(&cfg.machine_code).map_err(|e| KioskError::Setup(e.to_string()))?;
        let verify = cfg.verify_options();
        let ecfg = engine_config(&cfg, &boot_id, docs.config_version());
        let engine = Engine::new(ecfg, journal.inventory()?, now_ms());
        let upkeep = Upkeep::new(&cfg, journal.lock_waits());
        let board = BoardWorker::new(board, upkeep.motor_flag());
        info!(version = VERSION, journal = %cfg.journal.path.display(), board = %cfg.board.port.display(), "kiosk starting");
        Ok(Runner {
            cfg,
            journal,
            engine,
            topics,
            docs,
            verify,
            boot_id,
            started: Instant::now(),
            link: ports.link,
            events: ports.events,
            link_task: ports.link_task,
            screen: ports.screen,
            shutdown: ports.shutdown,
            control: ports.control,
            control_open: true,
            board,
            outbox: Outbox::default(),
            conn: Conn::default(),
            desk,
            exports: Exports::new(),
            service: Service::new(Notifier::from_env()),
            hooks: Hooks::from_env(),
            upkeep,
            journal_loss,
        })
    }

    /// Start-up: the journal's trust, then the previous run's unfinished commands.
    async fn start(mut self) -> Result<Runner<L>, KioskError> {
        if let Some(loss) = &self.journal_loss {
            self.service.notify.status(&format!(
                "out of service: journal unverified: {}",
                loss.describe()
            ));
        }
        let fresh_start_at = witness::fresh_start_at(&self.journal);
        if self.journal_loss.is_some() || fresh_start_at.is_some() {
            let actions = self.engine.step(Event::JournalTrust {
                trusted: self.journal_loss.is_none(),
                fresh_start_at,
                now_ms: now_ms(),
            });
            self.exec(actions, None).await?;
        }
        self.recover().await?;
        Ok(self)
    }

    /// Commands the previous run left unfinished get their one honest outcome.
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
            let board = Arc::clone(&self.board.board);
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

    /// The loop: until the stop signal (or the link's end).
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
                Some((cmd_id, outcome)) = self.board.done_rx.recv() => {
                    self.hooks.crash(CrashPoint::MotorDone);
                    let actions = self.engine.step(Event::BoardDone { cmd_id, outcome, now_ms: now_ms() });
                    self.exec(actions, None).await?;
                }
                Some(checked) = self.board.health_rx.recv() => {
                    self.board.checked();
                    let up = checked.up;
                    self.board_health(up);
                    let actions = self.engine.step(Event::Board { up, now_ms: now_ms() });
                    self.exec(actions, None).await?;
                    self.slots_unreachable(checked.unreachable).await?;
                }
                _ = tick.tick() => {
                    self.service.hang_hook(&self.hooks);
                    // Pinged from this loop: a runner stuck anywhere stops the pings.
                    self.service.notify.watchdog();
                    self.check_disk().await?;
                    let actions = self.engine.step(Event::Tick { now_ms: now_ms() });
                    self.exec(actions, None).await?;
                    self.apply_pending_config().await?;
                    self.look_at_witness().await?;
                    self.check_idle_logout().await?;
                    self.send_audit().await?;
                }
                Some((technician, slot, outcome, reply)) = self.desk.test_done_rx.recv() => {
                    let answer = self.slot_test_done(&technician, slot, outcome).await;
                    let _ = reply.send(answer);
                    self.send_audit().await?;
                }
                Some((technician, written, reply)) = self.exports.done_rx.recv() => {
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

    /// A board check, unless one is running (the answer comes back on `health_rx`).
    fn start_board_check(&mut self, first: bool) {
        let busy = self.engine.active().is_some();
        let every = Duration::from_secs(self.cfg.kiosk.board_check_secs.max(1));
        let start_wait = Duration::from_secs(self.cfg.kiosk.board_start_wait_secs);
        self.board.start_check(first, busy, every, start_wait);
    }

    /// On shutdown: let a running dispense finish and journal its outcome (the outbox keeps
    /// the reply for the next start if it cannot be published now).
    async fn finish(mut self) -> Result<(), KioskError> {
        self.service.notify.stopping();
        let actions = self.engine.step(Event::Stop { now_ms: now_ms() });
        self.exec(actions, None).await?;
        if self.engine.active().is_some() {
            info!("shutting down: waiting for the dispense in progress");
            // The board's own timeout of the protocol in use, plus the margin: the budget
            // the binaries and the systemd units are sized for (Config::stop_budget).
            let wait = self.cfg.stop_dispense_wait();
            if let Ok(Some((cmd_id, outcome))) =
                tokio::time::timeout(wait, self.board.done_rx.recv()).await
            {
                let actions = self.engine.step(Event::BoardDone {
                    cmd_id,
                    outcome,
                    now_ms: now_ms(),
                });
                // The link may already have stopped (same signal): a publish that cannot
                // go out is not an error (`link::stopped_is_not_an_error`), the outbox
                // keeps the reply for the next start, and the bookkeeping after it runs.
                self.exec(actions, None).await?;
            }
        }
        if let Some(task) = self.link_task.as_mut() {
            let goodbye = Duration::from_secs(crate::config::LINK_GOODBYE_SECS);
            let _ = tokio::time::timeout(goodbye, task).await;
        }
        info!("kiosk stopped");
        Ok(())
    }

    async fn on_link_event(&mut self, ev: LinkEvent) -> Result<(), KioskError> {
        match ev {
            LinkEvent::Incoming(inc)
                if inc.payload.is_empty()
                    && (inc.topic == self.topics.desired_keys
                        || inc.topic == self.topics.desired_config) =>
            {
                self.on_cleared(inc).await?;
            }
            LinkEvent::Incoming(inc) if inc.topic == self.topics.desired_keys => {
                self.on_key_set(inc).await?;
            }
            LinkEvent::Incoming(inc) if inc.topic == self.topics.desired_config => {
                self.on_config(inc).await?;
            }
            LinkEvent::Incoming(inc) => {
                let now = now_ms();
                self.conn.last_message_ms = Some(now);
                let now_s = i64::try_from(now / 1000).unwrap_or(i64::MAX);
                let verdict = protocol::verify_command(
                    &inc.payload,
                    &self.docs.keys,
                    &self.cfg.machine_code,
                    now_s,
                    &self.verify,
                );
                if verdict.is_ok() {
                    // A signed command whose iat/exp window holds `now` (within the skew):
                    // the backend's clock vouches for ours.
                    self.conn.clock_confirmed_ms = Some(now);
                }
                let (cmd_id, log_id, order_id) = match &verdict {
                    Ok(c) => (c.cmd_id.clone(), c.log_id.clone(), c.order_id.clone()),
                    Err(r) => r
                        .trusted
                        .as_ref()
                        .map(|t| (t.cmd_id.clone(), t.log_id.clone(), t.order_id.clone()))
                        .unwrap_or_default(),
                };
                // The support code a failure screen would show: grep the logs with either.
                let support_code = crate::support::code(&cmd_id);
                let span = info_span!("command", %log_id, %cmd_id, %order_id, %support_code);
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
                self.conn.up(broker);
                if !session_present {
                    // The broker lost our session and rumqttc dropped its queue.
                    self.outbox.session_lost();
                }
                self.flush().await?;
                self.heartbeat().await?;
            }
            LinkEvent::Subscribed => {
                info!(topic = %self.topics.cmd, "subscribed");
                self.service.subscribed = true;
                // Only now can a command reach us: on a first connection (no session on
                // the broker yet) one published between CONNACK and SUBACK is dropped by
                // the broker, so the QR code waits for the subscription, not the CONNACK.
                let actions = self.engine.step(Event::Link {
                    up: true,
                    now_ms: now_ms(),
                });
                self.exec(actions, None).await?;
                self.maybe_ready();
                self.send_reported().await?;
            }
            LinkEvent::Disconnected { error } => {
                warn!(%error, "broker connection lost");
                self.service.subscribed = false;
                self.service
                    .notify
                    .status(&format!("broker connection lost: {error}"));
                self.conn.down();
                let actions = self.engine.step(Event::Link {
                    up: false,
                    now_ms: now_ms(),
                });
                self.exec(actions, None).await?;
            }
            LinkEvent::Published(id) => {
                let id = i64::try_from(id).unwrap_or(i64::MAX);
                self.outbox.published(&mut self.journal, id)?;
                self.flush().await?;
            }
        }
        Ok(())
    }
}
