//! What a cabinet publishes besides replies: presence on `.../state` and telemetry.

use serde::{Deserialize, Serialize};

/// Presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Published retained by the app right after connecting (birth).
    Online,
    /// Registered as the retained last will, and published on clean shutdown.
    Offline,
}

/// The retained message on `.../state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMessage {
    /// Protocol version.
    pub v: u8,
    /// Online or offline.
    pub status: Presence,
    /// This cabinet.
    pub machine_code: String,
    /// This run of the app; a new boot id after "offline" means a restart.
    pub boot_id: String,
    /// App version (`CARGO_PKG_VERSION` of the binary).
    pub version: String,
    /// Unix milliseconds when the message was built (for a last will: when the
    /// connection was opened, since the broker sends it later).
    pub at: u64,
}

/// Board health as seen by the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardHealth {
    /// The board is up as the dispense decisions see it (the engine's view, not a
    /// fresher reading they have not seen).
    pub ok: bool,
    /// The serial link in one line: `"{protocol} on {port}: rx N tx N bad N timeouts N"`
    /// (frames received, sent, bad, and exchanges that timed out since start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A cabinet of several boards: the slots whose board does not answer, ascending.
    /// They are refused `board_unreachable`; the rest of the cabinet sells. Absent when
    /// every board answers (and always with one board: `ok` says it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable_slots: Vec<u16>,
}

/// One slot's stock, as sent in telemetry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotLevel {
    /// Slot number.
    pub slot: u16,
    /// Items left (goes down only on a confirmed drop).
    pub count: u32,
    /// Items the slot holds when full.
    pub capacity: u32,
    /// Not disabled by a technician.
    pub enabled: bool,
    /// Jammed until a technician clears it.
    pub jammed: bool,
}

/// The heartbeat on `.../telemetry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Protocol version.
    pub v: u8,
    /// This cabinet.
    pub machine_code: String,
    /// This run of the app.
    pub boot_id: String,
    /// Unix milliseconds.
    pub at: u64,
    /// Seconds since the app started.
    pub uptime_secs: u64,
    /// Serial board health.
    pub board: BoardHealth,
    /// Replies waiting in the outbox for a broker acknowledgement.
    pub outbox_pending: u64,
    /// Free bytes on the journal's file system, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free_bytes: Option<u64>,
    /// The journal's file system has less free space than `journal.min_free_mb`: new
    /// commands are refused `disk_low` until space is freed.
    #[serde(default)]
    pub disk_low: bool,
    /// The journal: its size, what it holds, what retention dropped, whether it is
    /// trusted. Absent from cabinets older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalFigures>,
    /// Stock per slot.
    pub inventory: Vec<SlotLevel>,
    /// Technician actions since the previous telemetry message (the journal's audit
    /// table keeps them all; telemetry is QoS 0, so a backend that must not miss one
    /// reads the bundle or `cabinet diag`). Absent when there were none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditEvent>,
}

/// The journal's figures in telemetry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalFigures {
    /// Bytes of the database file plus its write-ahead log.
    pub size_bytes: u64,
    /// Commands held (retention prunes finished ones: `journal.keep_commands_days`,
    /// `journal.max_commands`).
    pub commands: u64,
    /// Refused payloads held (a ring of `journal.max_rejections`).
    pub rejections: u64,
    /// Refused payloads dropped from the ring over the journal's life.
    pub rejections_dropped: u64,
    /// Commands pruned over the journal's life.
    pub commands_pruned: u64,
    /// Why the journal is not trusted (found missing, empty, corrupt or replaced at
    /// start) until someone confirms a fresh start; absent when it is trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unverified: Option<String>,
}

/// One technician action, as telemetry carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at: u64,
    /// Who (the name in the config's `[technicians]`).
    pub technician: String,
    /// `login`, `failed_pin`, `locked_out`, `logout`, `slot_test`, `clear_jam`,
    /// `enable_slot`, `disable_slot`, `restock`, `export`, `exit`, `journal_fresh_start`.
    pub action: String,
    /// Details (slot, counts, outcome, path).
    pub detail: String,
}
