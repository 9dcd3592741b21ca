//! What the customer's screen shows: one snapshot, published by the engine on a watch
//! channel and rendered by whatever UI is attached (the Tauri window, or nothing at all:
//! the kiosk works the same headless — the incident's second cause was a subscription
//! that lived only while a screen was open).

use serde::Serialize;

use crate::config::{BoardProtocol, Config, ScanApp};
use crate::reason::Reason;

/// Why the cabinet is out of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfService {
    /// The broker link has been down longer than the grace period.
    BrokerDown,
    /// The serial board has been unreachable longer than the grace period.
    BoardDown,
    /// A technician is working on the cabinet.
    Maintenance,
    /// The journal was found missing, empty, corrupt or replaced at start; a technician
    /// must confirm a fresh start.
    JournalUnverified,
    /// The journal's file system is short of free space (`journal.min_free_mb`); back
    /// in service by itself once space is freed.
    DiskLow,
    /// The app is starting and has not reached the broker yet.
    Starting,
}

/// One screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum Screen {
    /// Ready: show the QR code (its content comes with the snapshot).
    Idle,
    /// A command was accepted and waits for the board.
    Accepted {
        /// Slot.
        slot: u16,
        /// Product name from the slot map.
        product: String,
        /// Support code (the command's log id).
        log_id: String,
    },
    /// The motor is running / the lock is open.
    Dispensing {
        /// Slot.
        slot: u16,
        /// Product name.
        product: String,
        /// Support code.
        log_id: String,
        /// When the board was told, unix ms (for a progress indication).
        since_ms: u64,
    },
    /// Done: take your item.
    TakeItem {
        /// Slot.
        slot: u16,
        /// Product name.
        product: String,
        /// Back to idle at this time, unix ms (countdown).
        until_ms: u64,
    },
    /// A return: the door is open for the rented item to be put back and the door closed.
    PutBack {
        /// Slot (the door).
        slot: u16,
        /// Product name (what is being returned).
        product: String,
        /// Back to idle at this time, unix ms (countdown).
        until_ms: u64,
    },
    /// Not dispensed (or not confirmed).
    Failed {
        /// Why, as a reason code (the UI words it in the customer's language).
        reason: Reason,
        /// True when the board may have moved (outcome unknown): the UI must not promise
        /// "you will not be charged" but "we are checking; you will not be charged for an
        /// item you did not receive".
        uncertain: bool,
        /// Support code ([`crate::support::code`] of the command's `cmd_id`): short,
        /// and the backend, the logs and the technician's search find the command by it.
        support_code: String,
        /// Back to idle at this time, unix ms.
        until_ms: u64,
    },
    /// No QR code: the cabinet cannot serve anyone right now.
    OutOfService {
        /// Why.
        reason: OutOfService,
        /// Since when, unix ms.
        since_ms: u64,
    },
}

/// A failure whose screen an order took over before it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EarlierFailure {
    /// Its support code.
    pub support_code: String,
    /// Whether its outcome is unknown (see [`Screen::Failed`]).
    pub uncertain: bool,
    /// When its screen would have ended, unix ms.
    pub until_ms: u64,
}

/// One slot as the idle screen lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Slot number (VMC motor / lock channel).
    pub slot: u16,
    /// Product name from the slot map.
    pub product: String,
    /// Items left, per the journal.
    pub count: u32,
    /// Whether a command for this slot would be served now (enabled, not jammed, in
    /// stock). The screen greys out the others.
    pub available: bool,
}

/// Everything the UI needs to render, in one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// This cabinet.
    pub machine_code: String,
    /// The site name for the header (`kiosk.name`), empty for none.
    pub cabinet_name: String,
    /// The slot map with live stock, in slot order.
    pub items: Vec<Item>,
    /// What to show.
    #[serde(flatten)]
    pub screen: Screen,
    /// Whether the broker link is up right now.
    pub link_up: bool,
    /// Whether the board answers right now.
    pub board_up: bool,
    /// Commands waiting behind the current one.
    pub queued: usize,
    /// On the idle screen: the current QR nonce (the QR encodes the cabinet and this;
    /// a command's `session` must match a recent one when the cabinet requires it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_nonce: Option<String>,
    /// On an order's screens: a failure the order cut short, so the customer it failed
    /// can still read its support code (until that screen would have ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earlier_failure: Option<EarlierFailure>,
    /// The version of the operator's configuration in force (0: the site file's). When
    /// it changes, the screens' words for the cabinet ([`CabinetInfo`]) may have too.
    pub config_version: u64,
    /// The screens' words for the cabinet under that configuration (read with the
    /// window's `cabinet_info`, not sent with every snapshot).
    #[serde(skip)]
    pub info: std::sync::Arc<CabinetInfo>,
    /// Monotonic counter, so a UI can tell a new snapshot from a repeat.
    pub version: u64,
}

/// What the screens show that does not change while the app runs: the config's words
/// for customers. The page asks for it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CabinetInfo {
    /// What kind of board, so the screens word it right: `vmc` (a slot and a tray) or
    /// `lockboard` (doors).
    pub board: BoardProtocol,
    /// The operator's service phone (`support.phone`), empty for none.
    pub support_phone: String,
    /// The operator's help page (`support.help_url`), empty for none.
    pub help_url: String,
    /// Where the nearest other cabinet is (`support.nearby`), empty for none.
    pub nearby: String,
    /// The apps to scan with (`kiosk.scan_with`), in order.
    pub scan_with: Vec<ScanApp>,
    /// What the QR code encodes (`kiosk.qr_url`); empty for `cabinet:{code}:{nonce}`.
    #[serde(skip)]
    pub qr_url: String,
}

impl CabinetInfo {
    /// A cabinet with a VMC board and nothing configured for customers.
    pub fn plain() -> Self {
        CabinetInfo {
            board: BoardProtocol::Vmc,
            support_phone: String::new(),
            help_url: String::new(),
            nearby: String::new(),
            scan_with: Vec::new(),
            qr_url: String::new(),
        }
    }

    /// The config's words for customers.
    pub fn from_config(cfg: &Config) -> Self {
        CabinetInfo {
            board: cfg.board.protocol,
            support_phone: cfg.support.phone.clone(),
            help_url: cfg.support.help_url.clone(),
            nearby: cfg.support.nearby.clone(),
            scan_with: cfg.kiosk.scan_with.clone(),
            qr_url: cfg.kiosk.qr_url.clone(),
        }
    }
}
