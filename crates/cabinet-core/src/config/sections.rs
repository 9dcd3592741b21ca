//! The config's tables (`[kiosk]`, `[mqtt]`, `[board]`, `[[slots]]`, ...) as typed
//! structs, their enums, and the values derived from them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::{KeyRole, TrustedKeys, VerifyOptions};

use super::{ConfigError, PinHash, Problem};

/// The whole configuration. Build it with [`Config::load`] or [`Config::from_toml_str`],
/// which always validate; a `Config` you hold has passed [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This cabinet's identity: the `aud` every command must carry, the topic level,
    /// the MQTT client ID and (by default) username. `[A-Za-z0-9_-]{1,64}`.
    #[serde(default)]
    pub machine_code: String,
    /// Broker connection.
    pub mqtt: MqttConfig,
    /// Trusted command-signing public keys: `kid = "base64url of 32 bytes"`.
    pub keys: BTreeMap<String, String>,
    /// Trusted operator keys, which sign the key sets the cabinet is given over MQTT:
    /// `kid = "base64url of 32 bytes"`. Empty: the cabinet's keys change only here.
    /// Once a signed key set is in force it replaces both tables (docs/PROTOCOL.md §12).
    pub operator_keys: BTreeMap<String, String>,
    /// Limits on incoming commands.
    pub commands: CommandsConfig,
    /// The serial motor/lock board; with `[[boards]]`, the defaults of each board's settings.
    pub board: BoardConfig,
    /// A cabinet of several boards (a locker wall, a vending board beside a lock board);
    /// empty: the one board of `[board]` (see `config::boards`).
    pub boards: Vec<super::BoardEntry>,
    /// The slot map; seeds the journal's inventory on first start.
    pub slots: Vec<SlotConfig>,
    /// The on-disk journal.
    pub journal: JournalConfig,
    /// Log files.
    pub logs: LogsConfig,
    /// The kiosk's behaviour: screens, heartbeat, health checks.
    pub kiosk: KioskConfig,
    /// Technicians who may open the diagnostics screen: name → PIN hash
    /// (`cabinet pin-hash`). Empty: nobody can (the screen's gesture does nothing).
    pub technicians: BTreeMap<String, PinHash>,
    /// Technician entry: lockout after wrong PINs, automatic logout.
    pub maintenance: MaintenanceConfig,
    /// How a customer reaches the operator: on the failure and out-of-service screens.
    pub support: SupportConfig,
}

/// `[support]`: the operator's service contact, shown to customers on the failure and
/// out-of-service screens. Every field may be empty (then it is not shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportConfig {
    /// Service phone number as the customer dials it (`400-123-4567`): digits, spaces,
    /// `+ - ( )`, at most 32 characters.
    pub phone: String,
    /// A help page (`https://`, at most 300 characters); the screens show a QR code of it
    /// next to the support code.
    pub help_url: String,
    /// Where the nearest other cabinet is, shown when this one is out of service
    /// (`B1 电梯旁 · B1, by the lifts`), at most 80 characters.
    pub nearby: String,
}

/// `[maintenance]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Wrong PINs in a row before entry locks.
    pub max_failures: u32,
    /// The first lockout; each further one (without a correct PIN between) doubles.
    pub lockout_secs: u64,
    /// The longest lockout.
    pub lockout_max_secs: u64,
    /// A technician who has not touched the screen for this long is logged out and the
    /// cabinet returns to service.
    pub idle_logout_secs: u64,
}

/// `[kiosk]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskConfig {
    /// Name shown on the idle screen (e.g. the site), empty for none.
    pub name: String,
    /// Telemetry heartbeat period on `.../telemetry`.
    pub heartbeat_secs: u64,
    /// How long "take your item" stays on screen.
    pub take_item_secs: u64,
    /// How long the failure screen (with the support code) stays on screen.
    pub failed_secs: u64,
    /// How long the broker or board may be down before the screen shows "out of service".
    pub out_of_service_grace_secs: u64,
    /// How often the board's health is checked (a lock board is queried this often when
    /// idle; a VMC board proves itself with its POLLs).
    pub board_check_secs: u64,
    /// At start, how long the first board check may take before a board that has not
    /// answered counts as down. Until then the board's state is unknown, not down:
    /// commands that arrive meanwhile (those a broker queued while the app was
    /// restarting come within ~30 ms of connecting, a VMC board's first POLLs after
    /// ~200 ms) are journaled, acknowledged and held, then served once it answers.
    pub board_start_wait_secs: u64,
    /// What the idle screen's QR code encodes: an `https://` link that the operator's
    /// mini-program or web page answers, with `{machine_code}` and `{nonce}` in it
    /// (`https://m.example.com/c/{machine_code}?s={nonce}`). Empty: the plain
    /// `cabinet:{machine_code}:{nonce}`, which only the operator's own app reads.
    pub qr_url: String,
    /// The apps the idle screen tells customers to scan with, in the order named
    /// (`["wechat", "alipay"]`). Empty: "scan with your phone".
    pub scan_with: Vec<ScanApp>,
    /// The window app only: WebKitGTK rendering fallbacks, set in the app's environment
    /// *only when the variable is not already set* (so an operator can always override
    /// them per cabinet). An empty value means "leave unset". The default turns off the
    /// DMA-BUF renderer, which shows a blank window on many kiosk GPUs and in VMs.
    pub webkit_env: BTreeMap<String, String>,
}

/// `[mqtt]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` or `mqtts://host[:port]` (ports default to 1883 / 8883).
    pub url: String,
    /// More nodes of the same broker cluster. With these, `url` and `failover_urls`
    /// form one list: the cabinet starts on the entry its machine code picks (so a fleet
    /// spreads over the nodes), stays on whichever entry works, and moves to the next
    /// one when a connection fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_urls: Vec<String>,
    /// Defaults to the machine code, so ACLs can use `%u` / `${username}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the password (first line). Not together with `password_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password. Not together with `password_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// PEM CA bundle to verify the broker; required with `mqtts://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// MQTT keep-alive; also how fast the broker notices a dead cabinet and publishes
    /// its last will.
    pub keepalive_secs: u64,
    /// First reconnect delay; doubles (with jitter) up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    pub reconnect_max_ms: u64,
}

/// `[commands]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    /// Payloads longer than this are rejected as `oversize` before parsing.
    pub max_payload_bytes: usize,
    /// Allowed clock difference with the backend, applied to `exp` and `iat`.
    pub clock_skew_secs: i64,
    /// The longest token lifetime (`exp - iat`) accepted; longer ones are refused as
    /// `lifetime_too_long`. Bounds how long a command can be redelivered or replayed,
    /// and so how long its id must be remembered.
    pub max_token_lifetime_secs: i64,
    /// When true, a command must carry the QR `session` the customer scanned.
    pub require_session: bool,
    /// How long a QR session nonce stays valid after it is shown.
    pub session_lifetime_secs: u64,
}

/// `[board]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// Which byte protocol the board speaks.
    pub protocol: BoardProtocol,
    /// Serial device path; use the stable udev symlink, not `/dev/ttyUSB0`.
    pub port: PathBuf,
    /// Settings used when `protocol = "vmc"`.
    pub vmc: VmcConfig,
    /// Settings used when `protocol = "lockboard"`.
    pub lockboard: LockboardConfig,
}

/// `[board.vmc]`: spiral-motor vending board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmcConfig {
    /// RS-232 speed; the VMC protocol specifies 57600 8N1.
    pub baud: u32,
    /// Byte order of the 2-byte slot number; varies between boards.
    pub slot_byte_order: ByteOrder,
    /// Ask the board to use its drop sensor (success then means "item fell").
    pub drop_sensor: bool,
    /// How long to wait for the board's dispense report before `board_no_reply`.
    pub report_timeout_secs: u64,
}

/// `[board.lockboard]`: "8A/80" locker board on RS-485.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockboardConfig {
    /// RS-485 speed; the protocol specifies 9600 8N1.
    pub baud: u32,
    /// Board address on the bus, 1..=31.
    pub address: u8,
    /// Number of doors (channels) on the board.
    pub channels: u16,
    /// Which status byte means "door open".
    pub door_polarity: DoorPolarity,
    /// How long to wait for a reply frame (the protocol says 1.5 s).
    pub reply_timeout_ms: u64,
    /// After unlocking, how long to wait for the door sensor to show "open" before
    /// reporting `door_never_opened`.
    pub door_open_timeout_secs: u64,
}

/// One `[[slots]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    /// Slot number as in commands, from 1. With the one `[board]`, it is the VMC motor
    /// number or lock-board channel.
    pub slot: u16,
    /// With `[[boards]]`: the board that drives the slot (its `name`); may be left out
    /// when there is only one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// With `[[boards]]`: the channel (lock board) or motor (VMC) on that board.
    /// Default: the slot number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u16>,
    /// Product name for the screen and diagnostics.
    pub product: String,
    /// Items the slot holds when full.
    pub capacity: u32,
    /// Count used only when the slot is first seeded into the journal; afterwards the
    /// journal (restocks, confirmed drops) is the truth.
    pub initial_count: u32,
}

/// `[journal]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// SQLite file; its directory is created if missing.
    pub path: PathBuf,
    /// Refused payloads kept (hash, length, reason), newest first; older ones are
    /// dropped and counted, so a flood of junk has a fixed cost on disk.
    pub max_rejections: u64,
    /// Refused payloads older than this are dropped too.
    pub rejections_max_age_days: u64,
    /// Finished commands are kept at least this long (the technician's command search,
    /// the diagnostics bundle), unless there are more than `max_commands`.
    pub keep_commands_days: u64,
    /// At most this many commands are kept once their tokens have expired; the oldest
    /// go first (crate::retention).
    pub max_commands: u64,
    /// Free space (MiB) the journal's file system must keep. Below it the cabinet
    /// refuses new commands (`disk_low`) and stops recording junk payloads, so the
    /// journal's writes for a dispense already promised always fit; it serves again
    /// once a quarter more than this is free.
    pub min_free_mb: u64,
    /// The witness file: evidence outside the journal that it existed
    /// (crate::witness). Default: `<path>.witness`; put it on another partition to
    /// survive losing the journal's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_path: Option<PathBuf>,
}

impl JournalConfig {
    /// A file that belongs to the journal and lives beside it: `<path><suffix>` (the
    /// instance lock, the status file, the VMC PackNO reservation).
    pub fn beside(&self, suffix: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }

    /// Where the witness lives: `witness_path`, or `<path>.witness`.
    pub fn witness(&self) -> PathBuf {
        self.witness_path
            .clone()
            .unwrap_or_else(|| self.beside(".witness"))
    }

    /// `min_free_mb` in bytes: below this much free space the cabinet refuses new
    /// commands (`disk_low`).
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mb.saturating_mul(1024 * 1024)
    }
}

/// `[logs]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// Directory of the daily rolling log files.
    pub dir: PathBuf,
    /// Days of log files kept.
    pub retention_days: u32,
    /// JSON lines instead of human-readable text.
    pub json: bool,
    /// A tracing filter: a level (`info`) or directives (`info,cabinet_core=debug`).
    pub level: String,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every allowed value, as written in the config.
            pub const ALLOWED: &'static [&'static str] = &[$($text),+];

            /// The value as written in the config.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> &'static str { v.as_str() }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                match s.as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("must be one of: {} (got {s:?})", Self::ALLOWED.join(", "))),
                }
            }
        }
    };
}

string_enum! {
    /// `board.protocol`.
    BoardProtocol {
        /// Spiral-motor vending board ("VMC" protocol), 57600 8N1.
        Vmc = "vmc",
        /// "8A/80" lock board, 9600 8N1.
        Lockboard = "lockboard",
    }
}

string_enum! {
    /// An entry of `kiosk.scan_with`.
    ScanApp {
        /// WeChat (微信).
        Wechat = "wechat",
        /// Alipay (支付宝).
        Alipay = "alipay",
        /// UnionPay's app (云闪付).
        Unionpay = "unionpay",
    }
}

string_enum! {
    /// `board.vmc.slot_byte_order`.
    ByteOrder {
        /// Most significant byte first (slot 11 = `00 0B`).
        Big = "big",
        /// Least significant byte first (slot 11 = `0B 00`).
        Little = "little",
    }
}

string_enum! {
    /// `board.lockboard.door_polarity`.
    DoorPolarity {
        /// Status byte `0x11` means the door is open.
        OpenIs11 = "open_is_11",
        /// Status byte `0x00` means the door is open.
        OpenIs00 = "open_is_00",
    }
}

impl Config {
    /// The lockout policy of `[maintenance]`.
    pub fn lockout_policy(&self) -> crate::technician::LockoutPolicy {
        crate::technician::LockoutPolicy {
            max_failures: self.maintenance.max_failures,
            first_lockout_ms: self.maintenance.lockout_secs * 1000,
            max_lockout_ms: self.maintenance.lockout_max_secs * 1000,
        }
    }
}

impl Config {
    /// The trusted keys of the file: `[keys]` may sign commands, `[operator_keys]` key
    /// sets. The keys in force until a signed key set replaces them.
    pub fn trusted_keys(&self) -> Result<TrustedKeys, ConfigError> {
        let mut keys = TrustedKeys::new();
        let tables = [
            ("keys", &self.keys, KeyRole::Dispense),
            ("operator_keys", &self.operator_keys, KeyRole::Operator),
        ];
        for (table, map, role) in tables {
            for (kid, x) in map {
                keys.insert_with_role(kid, x, role).map_err(|e| {
                    ConfigError::Invalid(vec![Problem {
                        field: format!("{table}.{kid}"),
                        message: e.to_string(),
                    }])
                })?;
            }
        }
        Ok(keys)
    }

    /// Limits for [`protocol::verify_command`](crate::protocol::verify_command).
    pub fn verify_options(&self) -> VerifyOptions {
        VerifyOptions {
            max_token_bytes: self.commands.max_payload_bytes,
            leeway_secs: self.commands.clock_skew_secs,
            max_lifetime_secs: self.commands.max_token_lifetime_secs,
        }
    }
}

impl MqttConfig {
    /// Keep-alive as a duration.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs)
    }
}

impl BoardConfig {
    /// The baud rate of the selected protocol.
    pub fn baud(&self) -> u32 {
        match self.protocol {
            BoardProtocol::Vmc => self.vmc.baud,
            BoardProtocol::Lockboard => self.lockboard.baud,
        }
    }
}
