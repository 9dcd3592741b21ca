//! What a screen may ask of the running kiosk: the technician's side.
//!
//! The UI holds a [`ControlHandle`]; the kiosk runner owns the other end and answers each
//! request between its other events, so a technician's action is ordered with commands
//! and board outcomes like everything else (and lands in the journal's audit table).
//! Nothing here moves a motor for a customer; while a technician is logged in the engine
//! refuses customer commands (`maintenance`) and the screen says "out of service".

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::technician::{self, Attempt};

/// A request to the runner. Built by [`ControlHandle`]; the runner answers on `reply`.
#[derive(Debug)]
pub enum Control {
    /// Step 1 of a login: is entry open, and what is this technician's PIN hash? The
    /// slow hash check then runs off the runner (step 2 reports its result).
    BeginLogin {
        /// Name as chosen on the screen.
        technician: String,
        /// `Ok(hash)` to check the PIN against, or the attempt's final answer.
        reply: oneshot::Sender<Result<String, Attempt>>,
    },
    /// Step 2: the PIN matched or not.
    FinishLogin {
        /// Name.
        technician: String,
        /// Whether the PIN matched the hash from step 1.
        pin_ok: bool,
        /// What the technician sees.
        reply: oneshot::Sender<Attempt>,
    },
    /// The technician touched the screen (pushes the automatic logout back).
    Activity,
    /// Leave maintenance; the cabinet returns to service.
    Logout {
        /// Done.
        reply: oneshot::Sender<()>,
    },
    /// Who is in, and whether entry is locked.
    Status {
        /// The answer.
        reply: oneshot::Sender<TechStatus>,
    },
    /// A technician's action (logged-in technicians only; audited).
    Tech {
        /// What.
        action: TechAction,
        /// The answer.
        reply: oneshot::Sender<Result<TechAnswer, TechError>>,
    },
    /// The live health of the cabinet, for a logged-in technician only.
    Diagnostics {
        /// The answer, or [`TechError::NotLoggedIn`].
        reply: oneshot::Sender<Result<Diagnostics, TechError>>,
    },
}

/// What a technician can change or look at (each needs a logged-in technician). The
/// page sends these as JSON tagged by `action` (`{"action": "set_count", "slot": 1,
/// "count": 10}`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum TechAction {
    /// Run the motor of (or unlock) one slot, as a customer dispense would.
    SlotTest {
        /// Slot.
        slot: u16,
    },
    /// The slot table (product, count, capacity, enabled, jammed).
    Slots,
    /// Put a jammed slot back in service.
    ClearJam {
        /// Slot.
        slot: u16,
    },
    /// Take a slot out of service or put it back.
    SetEnabled {
        /// Slot.
        slot: u16,
        /// In service?
        enabled: bool,
    },
    /// After refilling: the items now in the slot.
    SetCount {
        /// Slot.
        slot: u16,
        /// Items now in it (at most its capacity).
        count: u32,
    },
    /// The last `n` commands, or those `find` names: a support code as the customer
    /// reads it off the screen (`K7MX-3QP0`, forgiving case and look-alikes), else a
    /// `log_id` (exact, then ignoring case).
    Commands {
        /// How many.
        n: usize,
        /// A support code or a log id.
        find: Option<String>,
    },
    /// The last serial frames, newest last.
    Frames,
    /// The last `n` technician actions.
    Audit {
        /// How many.
        n: usize,
    },
    /// Where a bundle could go: mounted removable media (under `/media`, `/run/media`,
    /// `/mnt`).
    ExportTargets,
    /// Write a diagnostics bundle into `dir` (e.g. a USB stick's mount point).
    Export {
        /// Target directory (must exist).
        dir: std::path::PathBuf,
    },
    /// The technician closes the app (systemd starts it again in production).
    Exit,
    /// Accept the journal found at start as this cabinet's journal although it was
    /// missing, empty, corrupt or replaced (crate::witness); audited. Commands the lost
    /// journal saw could be served again while their tokens are valid.
    ConfirmFreshStart,
}

/// A command as the technician's panel lists it: the journal's row and the support
/// code the customer saw.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRow {
    /// [`crate::support::code`] of its `cmd_id`.
    pub support_code: String,
    /// The journal's row.
    #[serde(flatten)]
    pub command: crate::journal::StoredCommand,
}

impl From<crate::journal::StoredCommand> for CommandRow {
    fn from(command: crate::journal::StoredCommand) -> Self {
        CommandRow {
            support_code: crate::support::code(&command.cmd_id),
            command,
        }
    }
}

/// The answer to a [`TechAction`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TechAnswer {
    /// Done, nothing to show.
    Done,
    /// A slot test: what the board reported.
    SlotTest {
        /// Slot.
        slot: u16,
        /// The board's outcome.
        outcome: cabinet_board::Outcome,
    },
    /// The slot table after the change.
    Slots {
        /// All slots.
        slots: Vec<crate::journal::SlotInventory>,
    },
    /// Commands.
    Commands {
        /// Newest first.
        commands: Vec<CommandRow>,
    },
    /// Serial frames.
    Frames {
        /// Oldest first.
        frames: Vec<cabinet_board::FrameRecord>,
    },
    /// Technician actions.
    Audit {
        /// Newest first.
        entries: Vec<AuditRow>,
    },
    /// Mounted removable media.
    ExportTargets {
        /// Mount points.
        dirs: Vec<String>,
    },
    /// Where the bundle went.
    Exported {
        /// The bundle's directory.
        path: String,
        /// Its files.
        files: Vec<String>,
    },
}

/// One row of the technician's audit view: the journal's row (`id`, `at`, `technician`,
/// `action`, `detail`) and its detail read back for the panel to word (`note`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    /// The journal's row.
    #[serde(flatten)]
    pub entry: crate::journal::AuditEntry,
    /// Its detail, read back.
    pub note: crate::audit::AuditNote,
}

impl From<crate::journal::AuditEntry> for AuditRow {
    fn from(entry: crate::journal::AuditEntry) -> Self {
        let note = crate::audit::AuditNote::read(&entry.action, &entry.detail);
        AuditRow { entry, note }
    }
}

/// Why a technician action was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TechError {
    /// Nobody is logged in.
    #[error("no technician is logged in")]
    NotLoggedIn,
    /// Something else is using the board or the journal; try again when it is done.
    #[error("busy: {0}")]
    Busy(Refusal),
    /// The request cannot be done as asked.
    #[error("{0}")]
    Invalid(Refusal),
    /// It failed (the detail is technical: for a support ticket, in English).
    #[error("{0}")]
    Failed(String),
}

impl TechError {
    /// A stable code for the UI.
    pub fn code(&self) -> &'static str {
        match self {
            TechError::NotLoggedIn => "not_logged_in",
            TechError::Busy(_) => "busy",
            TechError::Invalid(_) => "invalid",
            TechError::Failed(_) => "failed",
        }
    }

    /// What the panel words in the technician's language (`why` and its fields), when
    /// the action was refused rather than failed.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            TechError::Busy(r) | TechError::Invalid(r) => Some(r),
            TechError::NotLoggedIn | TechError::Failed(_) => None,
        }
    }
}

/// Why the runner refused a technician's action. Serialized as `{"why": ..., fields}`:
/// the panel has a sentence for each `why` (ui/strings.js, `refusals`); the English
/// `Display` is for the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Refusal {
    /// A slot test is running.
    #[error("a slot test is running")]
    SlotTestRunning,
    /// A customer's dispense is finishing.
    #[error("a customer's dispense is finishing")]
    DispenseFinishing,
    /// An export is being written.
    #[error("an export is being written")]
    ExportRunning,
    /// The slot is not in the slot map.
    #[error("slot {slot} is not in the slot map")]
    UnknownSlot {
        /// The slot asked for.
        slot: u16,
    },
    /// More than the slot holds.
    #[error("slot {slot} holds at most {capacity}")]
    OverCapacity {
        /// The slot.
        slot: u16,
        /// What it holds when full.
        capacity: u32,
    },
    /// The journal is trusted: there is no fresh start to confirm.
    #[error("the journal is trusted: there is nothing to confirm")]
    NothingToConfirm,
    /// Slot tests, exports and confirmations have their own requests (a caller's bug).
    #[error("this action has its own request")]
    OwnRequest,
}

/// The cabinet's live health: what the diagnostics screen and `cabinet diag` show.
/// Holds no secret (no password, no PIN hash, no key material).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Diagnostics {
    /// App version.
    pub version: String,
    /// This cabinet.
    pub machine_code: String,
    /// This run of the app.
    pub boot_id: String,
    /// Unix ms when this was taken.
    pub at_ms: u64,
    /// Seconds since the app started.
    pub uptime_secs: u64,
    /// Whether the clock looks right: later than the time this app was built. A cabinet
    /// without a real-time clock battery boots in 1970 until NTP answers, and every
    /// command's `exp` check depends on the clock.
    pub clock_plausible: bool,
    /// The last time (unix ms) the backend's clock vouched for ours: a signed command
    /// arrived whose validity window (`iat`..`exp`, within the allowed skew) held this
    /// clock's time. `None` since start until the first such command.
    #[serde(default)]
    pub clock_confirmed_ms: Option<u64>,
    /// The broker link.
    pub link: LinkDiagnostics,
    /// The serial board, as its driver counts it.
    pub board: cabinet_board::BoardHealth,
    /// Whether the engine treats the board as usable.
    pub board_up: bool,
    /// A cabinet of several boards: each one's health, named (empty for one board).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boards: Vec<cabinet_board::NamedHealth>,
    /// A cabinet of several boards: the slots whose board does not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable_slots: Vec<u16>,
    /// The journal on disk.
    pub journal: JournalDiagnostics,
    /// Who is logged in.
    pub technician: Option<String>,
}

/// The broker link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LinkDiagnostics {
    /// Broker URL (credentials are never part of it).
    pub broker: String,
    /// The topic the cabinet listens on.
    pub subscription: String,
    /// Connected right now.
    pub connected: bool,
    /// Since when (unix ms), while connected.
    pub connected_since_ms: Option<u64>,
    /// The last message received on the command topic (unix ms).
    pub last_message_ms: Option<u64>,
    /// Replies waiting for the broker's acknowledgement.
    pub outbox_pending: u64,
}

/// The journal on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct JournalDiagnostics {
    /// Its path.
    pub path: String,
    /// Bytes of the database file plus its write-ahead log.
    pub size_bytes: u64,
    /// Free bytes on its file system (for an unprivileged user), if known.
    pub disk_free_bytes: Option<u64>,
    /// Its file system has less free space than `journal.min_free_mb`: new commands are
    /// refused `disk_low` until space is freed.
    #[serde(default)]
    pub disk_low: bool,
    /// Refused payloads dropped from the journal's bounded record of them, over its life.
    pub rejections_dropped: u64,
    /// Why the journal is not trusted (found missing, empty, corrupt or replaced at
    /// start), until a technician confirms a fresh start; `None` when it is.
    #[serde(default)]
    pub unverified: Option<String>,
    /// The same, for a screen to word in its own language.
    #[serde(default)]
    pub loss: Option<crate::witness::Loss>,
}

/// The technician side of the screen, for the UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TechStatus {
    /// The technicians the config knows (the PIN pad offers these names).
    pub technicians: Vec<String>,
    /// Who is logged in, if anyone.
    pub logged_in: Option<String>,
    /// Entry refused until this time (unix ms), while locked out.
    pub locked_until_ms: Option<u64>,
    /// Automatic logout after this long without a touch.
    pub idle_logout_secs: u64,
}

/// The runner has stopped (the app is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the kiosk core is not running")]
pub struct KioskGone;

/// The UI's end of the control channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<Control>,
}

/// A new control channel: give the receiver to `kiosk::run`, keep the handle.
pub fn channel() -> (ControlHandle, mpsc::Receiver<Control>) {
    let (tx, rx) = mpsc::channel(16);
    (ControlHandle { tx }, rx)
}

impl ControlHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Result<T, KioskGone> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| KioskGone)?;
        rx.await.map_err(|_| KioskGone)
    }

    /// A PIN attempt for `technician`. The Argon2 check runs on the blocking pool, not
    /// on the runner, so commands and board events are not held up by it.
    pub async fn login(&self, technician: &str, pin: &str) -> Result<Attempt, KioskGone> {
        let begin = self
            .ask(|reply| Control::BeginLogin {
                technician: technician.to_owned(),
                reply,
            })
            .await?;
        let hash = match begin {
            Ok(hash) => hash,
            Err(answer) => return Ok(answer),
        };
        let pin = pin.to_owned();
        let pin_ok = tokio::task::spawn_blocking(move || technician::verify_pin(&hash, &pin))
            .await
            .unwrap_or(false);
        self.ask(|reply| Control::FinishLogin {
            technician: technician.to_owned(),
            pin_ok,
            reply,
        })
        .await
    }

    /// The technician touched the screen.
    pub async fn activity(&self) -> Result<(), KioskGone> {
        self.tx.send(Control::Activity).await.map_err(|_| KioskGone)
    }

    /// Log out and return the cabinet to service.
    pub async fn logout(&self) -> Result<(), KioskGone> {
        self.ask(|reply| Control::Logout { reply }).await
    }

    /// Who is in, and whether entry is locked.
    pub async fn status(&self) -> Result<TechStatus, KioskGone> {
        self.ask(|reply| Control::Status { reply }).await
    }

    /// A technician's action (slot test, restock, search, export, exit...).
    pub async fn tech(
        &self,
        action: TechAction,
    ) -> Result<Result<TechAnswer, TechError>, KioskGone> {
        self.ask(|reply| Control::Tech { action, reply }).await
    }

    /// The live health of the cabinet (technicians only).
    pub async fn diagnostics(&self) -> Result<Result<Diagnostics, TechError>, KioskGone> {
        self.ask(|reply| Control::Diagnostics { reply }).await
    }
}
