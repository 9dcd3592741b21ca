//! The kiosk's configuration: embedded defaults merged with the site file, then
//! validated as a whole.
//!
//! Loading happens in three steps, each with its own kind of error message:
//! 1. TOML syntax of the site file (`line/column` from the TOML parser);
//! 2. shape: the merged tables deserialize into [`Config`]; an unknown key or a value
//!    of the wrong type names its field path (`board.vmc.baud`), because a typo in a
//!    field technician's file must not silently fall back to a default;
//! 3. [`Config::validate`]: every range and cross-field rule, reporting *all* problems
//!    at once, each naming its field and saying what is allowed.
//!
//! Secrets are never stored in the config itself: `mqtt.password_file` or
//! `mqtt.password_env` say where the password is, and [`MqttConfig::load_password`]
//! returns it as a [`Secret`] that prints as `***`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::{self, TrustedKeys, VerifyOptions};

/// Most entries in `mqtt.failover_urls`.
pub const MAX_FAILOVER_URLS: usize = 15;

/// `TimeoutStopSec` of the shipped systemd units (`deploy/systemd/*.service`): how long
/// systemd lets the kiosk stop before it kills it. [`Config::validate`] refuses a board
/// timeout whose [`Config::stop_budget`] does not fit in it (a test keeps this equal to
/// the unit files), because a kill in the middle of a dispense turns an outcome the board
/// was about to report into `outcome_unknown`.
pub const UNIT_STOP_TIMEOUT_SECS: u64 = 60;

/// Added to the longest dispense when the kiosk stops: the VMC board's ACK round and
/// resends before its report window opens (under 3 s), and journaling the outcome.
pub const STOP_MARGIN_SECS: u64 = 10;

/// The MQTT link's goodbye on stop (the `offline` presence and a clean disconnect).
pub const LINK_GOODBYE_SECS: u64 = 5;

/// What a binary allows beyond [`Config::stop_budget`] before it gives up on the core
/// (the core's own bounds fire first), and what the unit allows beyond that for the
/// process to exit (the window's teardown, flushing logs).
pub const STOP_GRACE_SECS: u64 = 5;

/// The embedded defaults. Every field without a safe default is left out (see the
/// file's header); a test proves the rest is complete.
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// Errors loading the configuration or the secrets it points to.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The site file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The site file (or the embedded defaults) is not valid TOML.
    #[error("{origin} is not valid TOML: {message}")]
    Syntax {
        /// Which text: the file path or "embedded defaults".
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The config has the wrong shape or breaks validation rules; all problems found.
    #[error("invalid config ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, Problems(.0))]
    Invalid(Vec<Problem>),
    /// `mqtt.password_file` could not be read or is empty.
    #[error("cannot read MQTT password from {path}: {message}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        message: String,
    },
    /// `mqtt.password_env` names a variable that is not set, empty or not UTF-8.
    #[error("MQTT password environment variable {var} is not set, empty or not UTF-8")]
    PasswordEnv {
        /// The variable name.
        var: String,
    },
}

/// One problem in the config: which field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted field path, such as `board.protocol` or `slots[2].capacity`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// A secret string (the MQTT password). `Debug` and `Display` print `***` so the value
/// cannot reach a log by accident (secrets never reach a log).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it (the MQTT CONNECT).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A technician's PIN hash (an Argon2 PHC string). Not the PIN, but still a secret: an
/// offline guess of a short PIN against it is cheap enough to matter. `Debug` prints
/// `***` and serializing writes `"[redacted]"`, so neither logs nor a diagnostics bundle
/// built from a serialized config can carry it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct PinHash(String);

impl PinHash {
    /// The PHC string, for the one place that verifies a PIN.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PinHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for PinHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

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
    /// Limits on incoming commands.
    pub commands: CommandsConfig,
    /// The serial motor/lock board.
    pub board: BoardConfig,
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
    /// The window app only: WebKitGTK rendering fallbacks, set in the app's environment
    /// *only when the variable is not already set* (so an operator can always override
    /// them per cabinet). An empty value means "leave unset". The default turns off the
    /// DMA-BUF renderer, which shows a blank window on many kiosk GPUs and in VMs.
    pub webkit_env: BTreeMap<String, String>,
}

/// Whether `s` is a usable environment variable name.
fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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
    /// Slot number as in commands (VMC motor number / lock board channel), from 1.
    pub slot: u16,
    /// Product name for the screen and diagnostics.
    pub product: String,
    /// Items the slot holds when full.
    pub capacity: u32,
    /// Count used only when the slot is first seeded into the journal; afterwards the
    /// journal (restocks, confirmed drops) is the truth.
    pub initial_count: u32,
}

/// The longest `commands.max_token_lifetime_secs` any configuration may set. With
/// [`CLOCK_SKEW_CEILING_SECS`] it bounds how long after its arrival any command could be
/// delivered again and accepted, whatever the configuration was then: retention relies
/// on it (crate::retention).
pub const TOKEN_LIFETIME_CEILING_SECS: i64 = 3600;

/// The largest `commands.clock_skew_secs` any configuration may set.
pub const CLOCK_SKEW_CEILING_SECS: i64 = 600;

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

/// A parsed `mqtt.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`.
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Parses `mqtt://host[:port]` / `mqtts://host[:port]`, with an optional trailing `/`.
///
/// Credentials in the URL are refused: the URL is logged, the password must not be.
pub fn parse_broker_url(url: &str) -> Result<BrokerUrl, String> {
    const HELP: &str = "must be mqtt://host[:port] or mqtts://host[:port]";
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else {
        return Err(format!("{HELP} (got {url:?})"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(
            "must not contain credentials; use mqtt.username and mqtt.password_file".into(),
        );
    }
    if rest.contains(['/', '?', '#']) {
        return Err(format!("{HELP}, without a path (got {url:?})"));
    }
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or_else(|| format!("{HELP} (unclosed '[' in {url:?})"))?;
        (h, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.contains([' ', '[', ']']) {
        return Err(format!("{HELP} (missing or bad host in {url:?})"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("port must be 1..=65535 (got {p:?})")),
        },
    };
    Ok(BrokerUrl {
        tls,
        host: host.to_owned(),
        port,
    })
}

/// Merges `over` into `base`, table by table: nested tables merge recursively, every
/// other value (including arrays such as `[[slots]]`) is replaced whole.
/// `kiosk.webkit_env` as the embedded defaults set it (for the demo, which has no site
/// file when the window app starts).
pub fn default_webkit_env() -> BTreeMap<String, String> {
    let table = parse_table(DEFAULTS_TOML, "embedded defaults").unwrap_or_default();
    table
        .get("kiosk")
        .and_then(|k| k.get("webkit_env"))
        .and_then(|w| w.as_table())
        .map(|w| {
            w.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
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

    /// Reads the site file at `path`, merges it over the embedded defaults and
    /// validates. Relative paths inside the file (`password_file`, `ca_file`,
    /// `journal.path`, `logs.dir`) are taken relative to the file's directory, so a
    /// config and its neighbours can be moved together.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let cfg = Config::read(path)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// [`Config::load`] plus [`Config::check_host`]: everything that can be known
    /// before the kiosk starts, all problems at once. The one check `cabinet config
    /// check`, `cabinet run` and the window app share, so a file the check calls valid
    /// does not then fail to start; it runs before the instance lock is taken, so a bad
    /// `journal.path` leaves no lock file behind.
    pub fn load_for_start(path: &Path) -> Result<Config, ConfigError> {
        let cfg = Config::read(path)?;
        let mut problems = cfg.validate();
        problems.extend(cfg.check_host());
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Reads, merges and shapes the site file, with relative paths resolved; no rules.
    fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &path.display().to_string())?;
        if let Some(dir) = path.parent() {
            cfg.resolve_relative_paths(dir);
        }
        Ok(cfg)
    }

    /// Merges `site_toml` over the embedded defaults and validates.
    pub fn from_toml_str(site_toml: &str) -> Result<Config, ConfigError> {
        let cfg = Config::parse(site_toml, "config")?;
        cfg.check()?;
        Ok(cfg)
    }

    fn parse(site_toml: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut table = parse_table(DEFAULTS_TOML, "embedded defaults")?;
        merge(&mut table, parse_table(site_toml, origin)?);
        serde_path_to_error::deserialize::<_, Config>(table).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "(top level)".to_owned()
            } else {
                path
            };
            ConfigError::Invalid(vec![Problem {
                field,
                // toml appends "in `table`" on a second line; the field path says it.
                message: e
                    .into_inner()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            }])
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        let problems = self.validate();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn resolve_relative_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = dir.join(&*p);
            }
        };
        if let Some(p) = self.mqtt.password_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.mqtt.ca_file.as_mut() {
            fix(p);
        }
        fix(&mut self.journal.path);
        if let Some(w) = &mut self.journal.witness_path {
            fix(w);
        }
        fix(&mut self.logs.dir);
    }

    /// Checks every rule and returns all problems (empty = valid).
    pub fn validate(&self) -> Vec<Problem> {
        let mut v = Validator::default();

        // machine_code
        if self.machine_code.is_empty() {
            v.add(
                "machine_code",
                "is required: this cabinet's code, 1..=64 characters of A-Z a-z 0-9 _ -",
            );
        } else if let Err(protocol::ProtocolError::InvalidMachineCode { why, .. }) =
            protocol::check_machine_code(&self.machine_code)
        {
            v.add("machine_code", why);
        }

        // [mqtt]
        let m = &self.mqtt;
        let broker = parse_broker_url(&m.url);
        if let Err(e) = &broker {
            v.add("mqtt.url", e);
        }
        if m.failover_urls.len() > MAX_FAILOVER_URLS {
            v.add(
                "mqtt.failover_urls",
                &format!("at most {MAX_FAILOVER_URLS} entries (put a load balancer or one DNS name in front of a larger cluster)"),
            );
        }
        let mut seen = Vec::with_capacity(m.failover_urls.len() + 1);
        if let Ok(b) = &broker {
            seen.push(b.clone());
        }
        for (i, u) in m.failover_urls.iter().enumerate() {
            let field = format!("mqtt.failover_urls[{i}]");
            match parse_broker_url(u) {
                Err(e) => v.add(&field, &e),
                Ok(b) if seen.contains(&b) => v.add(
                    &field,
                    &format!("repeats an endpoint already listed (got {u:?})"),
                ),
                Ok(b) => {
                    if let Ok(first) = &broker
                        && first.tls != b.tls
                    {
                        v.add(
                            &field,
                            &format!(
                                "must use the same scheme as mqtt.url ({}://) so one CA and one set of credentials fit every node (got {u:?})",
                                if first.tls { "mqtts" } else { "mqtt" }
                            ),
                        );
                    }
                    seen.push(b);
                }
            }
        }
        if let Some(u) = &m.username
            && (u.is_empty() || u.len() > 256 || u.chars().any(char::is_control))
        {
            v.add(
                "mqtt.username",
                "must be 1..=256 characters without control characters (or left out to use the machine code)",
            );
        }
        if m.password_file.is_some() && m.password_env.is_some() {
            v.add(
                "mqtt.password_env",
                "set either mqtt.password_file or mqtt.password_env, not both",
            );
        }
        if let Some(e) = &m.password_env
            && !is_env_name(e)
        {
            v.add(
                "mqtt.password_env",
                "must be an environment variable name (A-Z, a-z, 0-9, _)",
            );
        }
        if let Some(p) = &m.password_file
            && p.as_os_str().is_empty()
        {
            v.add(
                "mqtt.password_file",
                "must not be empty (leave it out instead)",
            );
        }
        match (&broker, &m.ca_file) {
            (Ok(b), None) if b.tls => v.add(
                "mqtt.ca_file",
                "is required with mqtts:// (a PEM CA bundle; for a public CA use /etc/ssl/certs/ca-certificates.crt)",
            ),
            (Ok(b), Some(_)) if !b.tls => v.add(
                "mqtt.ca_file",
                "is only used with mqtts://; remove it or change mqtt.url to mqtts://",
            ),
            _ => {}
        }
        v.range("mqtt.keepalive_secs", m.keepalive_secs, 5, 3600);
        v.range("mqtt.reconnect_min_ms", m.reconnect_min_ms, 100, 60_000);
        v.range("mqtt.reconnect_max_ms", m.reconnect_max_ms, 1000, 600_000);
        if m.reconnect_max_ms < m.reconnect_min_ms {
            v.add(
                "mqtt.reconnect_max_ms",
                "must be at least mqtt.reconnect_min_ms",
            );
        }

        // [keys]
        if self.keys.is_empty() {
            v.add(
                "keys",
                "at least one trusted public key is required: kid = \"base64url of the 32-byte Ed25519 public key\" (a JWK's x)",
            );
        }
        for (kid, x) in &self.keys {
            let mut one = TrustedKeys::new();
            if let Err(e) = one.insert_base64url(kid, x) {
                v.add(&format!("keys.{kid}"), &e.to_string());
            }
        }

        // [commands]
        let c = &self.commands;
        v.range(
            "commands.max_payload_bytes",
            c.max_payload_bytes as u64,
            256,
            65_536,
        );
        v.range_i(
            "commands.clock_skew_secs",
            c.clock_skew_secs,
            0,
            CLOCK_SKEW_CEILING_SECS,
        );
        // The hard maximum: an hour. Backends sign when the customer scans and a cabinet
        // serves within seconds, so even a restart and a broker outage fit in minutes.
        v.range_i(
            "commands.max_token_lifetime_secs",
            c.max_token_lifetime_secs,
            10,
            TOKEN_LIFETIME_CEILING_SECS,
        );
        v.range(
            "commands.session_lifetime_secs",
            c.session_lifetime_secs,
            10,
            3600,
        );

        // [board]
        let b = &self.board;
        if !b.port.is_absolute() {
            v.add(
                "board.port",
                "must be an absolute device path, such as /dev/cabinet-board",
            );
        }
        v.baud("board.vmc.baud", b.vmc.baud);
        v.range(
            "board.vmc.report_timeout_secs",
            b.vmc.report_timeout_secs,
            1,
            300,
        );
        self.check_stop_budget(&mut v);
        v.baud("board.lockboard.baud", b.lockboard.baud);
        v.range("board.lockboard.address", b.lockboard.address.into(), 1, 31);
        v.range(
            "board.lockboard.channels",
            b.lockboard.channels.into(),
            1,
            128,
        );
        v.range(
            "board.lockboard.reply_timeout_ms",
            b.lockboard.reply_timeout_ms,
            100,
            10_000,
        );
        v.range(
            "board.lockboard.door_open_timeout_secs",
            b.lockboard.door_open_timeout_secs,
            1,
            600,
        );

        // [[slots]]
        let mut seen = BTreeSet::new();
        for (i, s) in self.slots.iter().enumerate() {
            let f = |name: &str| format!("slots[{i}].{name}");
            if s.slot == 0 {
                v.add(&f("slot"), "must be at least 1");
            } else if !seen.insert(s.slot) {
                v.add(
                    &f("slot"),
                    &format!("slot {} appears more than once", s.slot),
                );
            }
            if b.protocol == BoardProtocol::Lockboard && s.slot > b.lockboard.channels {
                v.add(
                    &f("slot"),
                    &format!(
                        "must be at most board.lockboard.channels ({}) with the lock board",
                        b.lockboard.channels
                    ),
                );
            }
            if s.product.trim().is_empty() || s.product.chars().count() > 64 {
                v.add(&f("product"), "must be 1..=64 characters");
            }
            v.range(&f("capacity"), s.capacity.into(), 1, 1000);
            if s.initial_count > s.capacity {
                v.add(
                    &f("initial_count"),
                    &format!("must be at most capacity ({})", s.capacity),
                );
            }
        }

        // [kiosk]
        v.range("kiosk.heartbeat_secs", self.kiosk.heartbeat_secs, 1, 3600);
        v.range("kiosk.take_item_secs", self.kiosk.take_item_secs, 1, 600);
        v.range("kiosk.failed_secs", self.kiosk.failed_secs, 1, 600);
        v.range(
            "kiosk.out_of_service_grace_secs",
            self.kiosk.out_of_service_grace_secs,
            0,
            600,
        );
        v.range(
            "kiosk.board_check_secs",
            self.kiosk.board_check_secs,
            1,
            600,
        );
        v.range(
            "kiosk.board_start_wait_secs",
            self.kiosk.board_start_wait_secs,
            1,
            120,
        );
        // [technicians], [maintenance]
        for (name, hash) in &self.technicians {
            let field = format!("technicians.{name}");
            if name.is_empty() || name.chars().count() > 32 || name.chars().any(|c| c.is_control())
            {
                v.add(
                    &field,
                    "a technician name is 1 to 32 characters, no control characters",
                );
            }
            if let Err(why) = crate::technician::check_pin_hash(hash.expose()) {
                v.add(&field, &why);
            }
        }
        let m = &self.maintenance;
        v.range(
            "maintenance.max_failures",
            u64::from(m.max_failures),
            1,
            100,
        );
        v.range("maintenance.lockout_secs", m.lockout_secs, 1, 86_400);
        v.range(
            "maintenance.lockout_max_secs",
            m.lockout_max_secs,
            1,
            604_800,
        );
        if m.lockout_max_secs < m.lockout_secs {
            v.add(
                "maintenance.lockout_max_secs",
                "must be at least maintenance.lockout_secs",
            );
        }
        v.range("maintenance.idle_logout_secs", m.idle_logout_secs, 10, 3600);
        for (name, value) in &self.kiosk.webkit_env {
            if !is_env_name(name) {
                v.add(
                    &format!("kiosk.webkit_env.{name}"),
                    "must be an environment variable name (A-Z, a-z, 0-9, _; not starting with a digit)",
                );
            }
            if value.contains('\0') {
                v.add(
                    &format!("kiosk.webkit_env.{name}"),
                    "must not contain a NUL character",
                );
            }
        }

        // [journal], [logs]
        v.range(
            "journal.max_rejections",
            self.journal.max_rejections,
            100,
            1_000_000,
        );
        v.range(
            "journal.rejections_max_age_days",
            self.journal.rejections_max_age_days,
            1,
            365,
        );
        v.range(
            "journal.keep_commands_days",
            self.journal.keep_commands_days,
            1,
            3650,
        );
        v.range(
            "journal.max_commands",
            self.journal.max_commands,
            1_000,
            10_000_000,
        );
        v.range("journal.min_free_mb", self.journal.min_free_mb, 1, 100_000);
        if self
            .journal
            .witness_path
            .as_ref()
            .is_some_and(|w| w.as_os_str().is_empty() || *w == self.journal.path)
        {
            v.add(
                "journal.witness_path",
                "must be a file path other than journal.path (or left out for <journal.path>.witness)",
            );
        }
        if self.journal.path.as_os_str().is_empty() {
            v.add("journal.path", "must not be empty");
        }
        if self.logs.dir.as_os_str().is_empty() {
            v.add("logs.dir", "must not be empty");
        }
        v.range(
            "logs.retention_days",
            self.logs.retention_days.into(),
            1,
            365,
        );
        if !log_filter_ok(&self.logs.level) {
            v.add(
                "logs.level",
                "must be one of: trace, debug, info, warn, error, or directives like \"info,cabinet_core=debug\"",
            );
        }
        v.problems
    }

    /// The longest a dispense already under way can still take: the VMC board's
    /// report timeout; for the lock board the unlock's reply, the wait for the door and
    /// the last door query's reply.
    pub fn dispense_bound(&self) -> Duration {
        let b = &self.board;
        match b.protocol {
            BoardProtocol::Vmc => Duration::from_secs(b.vmc.report_timeout_secs),
            BoardProtocol::Lockboard => {
                Duration::from_secs(b.lockboard.door_open_timeout_secs)
                    + 2 * Duration::from_millis(b.lockboard.reply_timeout_ms)
            }
        }
    }

    /// How long the kiosk, once told to stop, waits for a dispense in progress to end
    /// and journals its outcome: [`Config::dispense_bound`] + [`STOP_MARGIN_SECS`].
    pub fn stop_dispense_wait(&self) -> Duration {
        self.dispense_bound() + Duration::from_secs(STOP_MARGIN_SECS)
    }

    /// The whole stop of the kiosk core: the dispense wait and the link's goodbye
    /// ([`LINK_GOODBYE_SECS`]). Both binaries wait this plus [`STOP_GRACE_SECS`] for the
    /// core; the shipped units allow [`UNIT_STOP_TIMEOUT_SECS`], which
    /// [`Config::validate`] keeps at least this plus twice the grace.
    pub fn stop_budget(&self) -> Duration {
        self.stop_dispense_wait() + Duration::from_secs(LINK_GOODBYE_SECS)
    }

    /// How long a binary (`cabinet run`, the window app) waits for the core once it
    /// asked it to stop: the core's [`Config::stop_budget`] plus [`STOP_GRACE_SECS`], so
    /// the core's own bounds end the wait, not this one. Within the units'
    /// `TimeoutStopSec` by [`Config::validate`], so systemd does not kill a kiosk that is
    /// still journaling a dispense.
    pub fn stop_timeout(&self) -> Duration {
        self.stop_budget() + Duration::from_secs(STOP_GRACE_SECS)
    }

    /// The stop budget must fit in the shipped units' `TimeoutStopSec`, or systemd kills
    /// a kiosk that is waiting for a board to report a dispense. Named on the timeout of
    /// the protocol in use; skipped while that timeout is out of its range (already
    /// reported).
    fn check_stop_budget(&self, v: &mut Validator) {
        let b = &self.board;
        let fits = |c: &Config| {
            c.stop_timeout() + Duration::from_secs(STOP_GRACE_SECS)
                <= Duration::from_secs(UNIT_STOP_TIMEOUT_SECS)
        };
        if fits(self) {
            return;
        }
        // The largest value of the field that fits, for the message.
        let overhead = STOP_MARGIN_SECS + LINK_GOODBYE_SECS + 2 * STOP_GRACE_SECS;
        let why = format!(
            "on stop the kiosk lets a dispense in progress end, which takes up to this timeout + {overhead} s, \
             and the shipped systemd units allow {UNIT_STOP_TIMEOUT_SECS} s (TimeoutStopSec) before they kill it"
        );
        match b.protocol {
            BoardProtocol::Vmc if (1..=300).contains(&b.vmc.report_timeout_secs) => {
                let max = UNIT_STOP_TIMEOUT_SECS.saturating_sub(overhead);
                v.add(
                    "board.vmc.report_timeout_secs",
                    &format!(
                        "must be at most {max} (got {}): {why}",
                        b.vmc.report_timeout_secs
                    ),
                );
            }
            BoardProtocol::Lockboard
                if (1..=600).contains(&b.lockboard.door_open_timeout_secs)
                    && (100..=10_000).contains(&b.lockboard.reply_timeout_ms) =>
            {
                let replies = (2 * b.lockboard.reply_timeout_ms).div_ceil(1000);
                let max = UNIT_STOP_TIMEOUT_SECS.saturating_sub(overhead + replies);
                v.add(
                    "board.lockboard.door_open_timeout_secs",
                    &format!(
                        "must be at most {max} with board.lockboard.reply_timeout_ms = {} (got {}): {why} \
                         (plus two replies)",
                        b.lockboard.reply_timeout_ms, b.lockboard.door_open_timeout_secs
                    ),
                );
            }
            _ => {}
        }
    }

    /// What can be checked on this machine before the kiosk starts (the files and
    /// devices the config names), each problem naming its field and what is allowed.
    /// [`Config::validate`] checks the text alone; this looks at the file system and
    /// the environment as the kiosk will see them, so run it as the kiosk's user (the
    /// units' `ExecStartPre` does). Fields that `validate` already refuses are skipped.
    ///
    /// Missing things that the kiosk creates or waits for are fine: the journal's file
    /// and directories, the logs directory, and the board port (a USB adapter that is
    /// unplugged means "out of service" until it comes back).
    pub fn check_host(&self) -> Vec<Problem> {
        let mut v = Validator::default();
        let m = &self.mqtt;
        if let Some(p) = m
            .password_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let allowed = "must be a readable file whose first line is the MQTT password";
            match std::fs::metadata(p) {
                Err(e) => v.add(
                    "mqtt.password_file",
                    &format!("{}: {} ({allowed})", p.display(), io_why(&e)),
                ),
                Ok(md) if !md.is_file() => v.add(
                    "mqtt.password_file",
                    &format!("{} is {} ({allowed})", p.display(), kind_of(&md)),
                ),
                Ok(_) => {
                    if let Err(ConfigError::PasswordFile { message, .. }) = m.load_password() {
                        v.add(
                            "mqtt.password_file",
                            &format!("{}: {message} ({allowed})", p.display()),
                        );
                    }
                }
            }
        }
        if let Some(var) = m.password_env.as_deref().filter(|e| is_env_name(e))
            && m.password_file.is_none()
            && m.load_password().is_err()
        {
            v.add(
                "mqtt.password_env",
                &format!(
                    "the variable {var} is not set, empty or not UTF-8 in this environment \
                     (the kiosk reads the MQTT password from it; set it where the kiosk runs, \
                     e.g. Environment= in the unit)"
                ),
            );
        }
        if let Some(p) = &m.ca_file {
            match std::fs::metadata(p) {
                Err(e) => v.add(
                    "mqtt.ca_file",
                    &format!(
                        "{}: {} (must be a readable PEM file)",
                        p.display(),
                        io_why(&e)
                    ),
                ),
                Ok(md) if !md.is_file() => v.add(
                    "mqtt.ca_file",
                    &format!(
                        "{} is {} (must be a readable PEM file)",
                        p.display(),
                        kind_of(&md)
                    ),
                ),
                Ok(_) => {
                    if let Err(e) = std::fs::File::open(p) {
                        v.add(
                            "mqtt.ca_file",
                            &format!(
                                "{}: {} (must be a readable PEM file)",
                                p.display(),
                                io_why(&e)
                            ),
                        );
                    }
                }
            }
        }

        let journal = &self.journal.path;
        if !journal.as_os_str().is_empty() {
            let allowed = "must be a regular file (the SQLite journal) or not exist yet, \
                           in a directory that exists or can be created";
            match std::fs::metadata(journal) {
                Ok(md) if !md.is_file() => v.add(
                    "journal.path",
                    &format!("{} is {} ({allowed})", journal.display(), kind_of(&md)),
                ),
                Ok(_) => {}
                Err(e) if missing(&e) => {
                    if let Some(why) = creatable(journal) {
                        v.add(
                            "journal.path",
                            &format!("{}: {why} ({allowed})", journal.display()),
                        );
                    }
                }
                Err(e) => v.add(
                    "journal.path",
                    &format!("{}: {} ({allowed})", journal.display(), io_why(&e)),
                ),
            }
            // The instance lock beside it is the first file the kiosk creates.
            let lock = self.journal.beside(".lock");
            if let Ok(md) = std::fs::metadata(&lock)
                && !md.is_file()
            {
                v.add(
                    "journal.path",
                    &format!(
                        "{} (the kiosk's lock file) is {}: remove it, it must be a regular file",
                        lock.display(),
                        kind_of(&md)
                    ),
                );
            }
        }

        let logs = &self.logs.dir;
        if !logs.as_os_str().is_empty() {
            let allowed = "must be a directory, or not exist yet under a directory";
            match std::fs::metadata(logs) {
                Ok(md) if !md.is_dir() => v.add(
                    "logs.dir",
                    &format!("{} is {} ({allowed})", logs.display(), kind_of(&md)),
                ),
                Ok(_) => {}
                Err(e) if missing(&e) => {
                    if let Some(why) = creatable(logs) {
                        v.add(
                            "logs.dir",
                            &format!("{}: {why} ({allowed})", logs.display()),
                        );
                    }
                }
                Err(e) => v.add(
                    "logs.dir",
                    &format!("{}: {} ({allowed})", logs.display(), io_why(&e)),
                ),
            }
        }

        let port = &self.board.port;
        if port.is_absolute() {
            use std::os::unix::fs::FileTypeExt as _;
            // Missing is allowed: an unplugged adapter's udev symlink comes back with it.
            if let Ok(md) = std::fs::metadata(port)
                && !md.file_type().is_char_device()
            {
                v.add(
                    "board.port",
                    &format!(
                        "{} is {} (must be a serial device: a character device such as the \
                         board's udev symlink, or not exist while the adapter is unplugged)",
                        port.display(),
                        kind_of(&md)
                    ),
                );
            }
        }
        v.problems
    }

    /// The MQTT username: `mqtt.username`, or the machine code when left out.
    pub fn mqtt_username(&self) -> &str {
        self.mqtt.username.as_deref().unwrap_or(&self.machine_code)
    }

    /// The parsed broker URL.
    pub fn broker(&self) -> Result<BrokerUrl, ConfigError> {
        parse_broker_url(&self.mqtt.url).map_err(|message| {
            ConfigError::Invalid(vec![Problem {
                field: "mqtt.url".into(),
                message,
            }])
        })
    }

    /// Every broker endpoint: `mqtt.url`, then `mqtt.failover_urls` in order.
    pub fn brokers(&self) -> Result<Vec<BrokerUrl>, ConfigError> {
        let mut all = vec![self.broker()?];
        for (i, u) in self.mqtt.failover_urls.iter().enumerate() {
            all.push(parse_broker_url(u).map_err(|message| {
                ConfigError::Invalid(vec![Problem {
                    field: format!("mqtt.failover_urls[{i}]"),
                    message,
                }])
            })?);
        }
        Ok(all)
    }

    /// The trusted keys from `[keys]`.
    pub fn trusted_keys(&self) -> Result<TrustedKeys, ConfigError> {
        TrustedKeys::from_base64url_map(&self.keys).map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                field: "keys".into(),
                message: e.to_string(),
            }])
        })
    }

    /// Limits for [`protocol::verify_command`].
    pub fn verify_options(&self) -> VerifyOptions {
        VerifyOptions {
            max_token_bytes: self.commands.max_payload_bytes,
            leeway_secs: self.commands.clock_skew_secs,
            max_lifetime_secs: self.commands.max_token_lifetime_secs,
        }
    }
}

impl MqttConfig {
    /// Reads the password from `password_file` (first line, trailing newline removed)
    /// or `password_env`. `Ok(None)` when neither is set (anonymous or cert auth).
    pub fn load_password(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::PasswordFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let line = text.lines().next().unwrap_or_default();
            if line.is_empty() {
                return Err(ConfigError::PasswordFile {
                    path: path.clone(),
                    message: "the file's first line is empty".into(),
                });
            }
            return Ok(Some(Secret::new(line)));
        }
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(s) if !s.is_empty() => Ok(Some(Secret::new(s))),
                _ => Err(ConfigError::PasswordEnv { var: var.clone() }),
            };
        }
        Ok(None)
    }

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

/// "a directory", "a character device", ... for messages about a path.
fn kind_of(md: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = md.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The path is not there: it, or a directory on the way, does not exist (or a file
/// stands where a directory would have to be, which [`creatable`] then names).
fn missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// An I/O error without the "(os error N)" noise.
fn io_why(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Why `path` (which does not exist) could not be created with its missing parent
/// directories, or `None` when its nearest existing ancestor is a directory.
fn creatable(path: &Path) -> Option<String> {
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(d) {
            Ok(md) if md.is_dir() => return None,
            Ok(md) => {
                return Some(format!(
                    "{} is {}, so nothing can be created under it",
                    d.display(),
                    kind_of(&md)
                ));
            }
            Err(e) if missing(&e) => dir = d.parent(),
            Err(e) => return Some(format!("{}: {}", d.display(), io_why(&e))),
        }
    }
    // A relative path with no existing ancestor lives in the current directory.
    None
}

/// Accepts a level or comma-separated `target=level` directives (the subset of
/// tracing-subscriber's `EnvFilter` syntax a technician needs).
fn log_filter_ok(s: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    !s.trim().is_empty()
        && s.split(',').all(|d| {
            let d = d.trim();
            let level = d.rsplit_once('=').map_or(d, |(target, l)| {
                if target.is_empty()
                    || !target
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
                {
                    ""
                } else {
                    l
                }
            });
            LEVELS.contains(&level.to_ascii_lowercase().as_str())
        })
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn add(&mut self, field: &str, message: &str) {
        self.problems.push(Problem {
            field: field.to_owned(),
            message: message.to_owned(),
        });
    }

    fn range(&mut self, field: &str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.add(field, &format!("must be in {min}..={max} (got {value})"));
        }
    }

    fn range_i(&mut self, field: &str, value: i64, min: i64, max: i64) {
        if !(min..=max).contains(&value) {
            self.add(field, &format!("must be in {min}..={max} (got {value})"));
        }
    }

    fn baud(&mut self, field: &str, value: u32) {
        const BAUDS: [u32; 8] = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200];
        if !BAUDS.contains(&value) {
            self.add(
                field,
                &format!(
                    "must be one of: 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200 (got {value})"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_listed_on_its_own_line() {
        let p = |field: &str, message: &str| Problem {
            field: field.into(),
            message: message.into(),
        };
        let one = ConfigError::Invalid(vec![p("board.protocol", "must be vmc or lockboard")]);
        assert_eq!(
            one.to_string(),
            "invalid config (1 problem):\n  - board.protocol: must be vmc or lockboard"
        );
        let two = ConfigError::Invalid(vec![p("a", "x"), p("b", "y")]);
        assert_eq!(
            two.to_string(),
            "invalid config (2 problems):\n  - a: x\n  - b: y"
        );
    }

    /// The RFC 8037 A.1 example public key: valid, and fine for tests only (its
    /// private half is published in the RFC).
    const KEY: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn minimal() -> String {
        format!("machine_code = \"GZ-0001\"\n[keys]\nbackend-1 = \"{KEY}\"\n")
    }

    fn problems(toml: &str) -> Vec<Problem> {
        match Config::from_toml_str(toml) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn fields(toml: &str) -> Vec<String> {
        problems(toml).into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn the_lockout_policy_is_in_milliseconds() {
        let cfg = Config::from_toml_str(&format!(
            "{}[maintenance]\nmax_failures = 4\nlockout_secs = 45\nlockout_max_secs = 7200\n",
            minimal()
        ))
        .unwrap();
        let p = cfg.lockout_policy();
        assert_eq!(
            (p.max_failures, p.first_lockout_ms, p.max_lockout_ms),
            (4, 45_000, 7_200_000)
        );
    }

    #[test]
    fn the_mqtt_username_must_be_1_to_256_characters_without_control_characters() {
        // TOML string literals.
        for (name, ok) in [
            ("\"\"".to_owned(), false),
            (format!("\"{}\"", "u".repeat(256)), true),
            (format!("\"{}\"", "u".repeat(257)), false),
            ("\"a\\u0007b\"".to_owned(), false),
            ("\"cabinet-7\"".to_owned(), true),
        ] {
            let toml = format!("{}[mqtt]\nusername = {name}\n", minimal());
            let bad = Config::from_toml_str(&toml).is_err();
            assert_eq!(bad, !ok, "{name:?}");
            if bad {
                assert_eq!(fields(&toml), ["mqtt.username"], "{name:?}");
            }
        }
    }

    #[test]
    fn reconnect_max_may_equal_min_but_not_be_below_it() {
        let at = |min: u64, max: u64| {
            format!(
                "{}[mqtt]\nreconnect_min_ms = {min}\nreconnect_max_ms = {max}\n",
                minimal()
            )
        };
        assert!(Config::from_toml_str(&at(2000, 2000)).is_ok());
        assert_eq!(fields(&at(3000, 2000)), ["mqtt.reconnect_max_ms"]);
    }

    #[test]
    fn relative_paths_follow_the_config_file_and_absolute_or_empty_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.toml");
        std::fs::write(
            &path,
            format!(
                "{}[journal]\npath = \"data/journal.sqlite3\"\n[logs]\ndir = \"/var/log/x\"\n",
                minimal()
            ),
        )
        .unwrap();
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.journal.path, dir.path().join("data/journal.sqlite3"));
        assert_eq!(cfg.logs.dir, PathBuf::from("/var/log/x"));
        // An empty path is a mistake to report, not the config's directory.
        std::fs::write(
            &path,
            format!("{}[mqtt]\npassword_file = \"\"\n", minimal()),
        )
        .unwrap();
        match Config::load(&path) {
            Err(ConfigError::Invalid(p)) => {
                assert!(p.iter().any(|p| p.field == "mqtt.password_file"), "{p:?}")
            }
            other => panic!("an empty password_file was accepted: {other:?}"),
        }
    }

    #[test]
    fn lock_board_slots_go_up_to_the_channel_count_and_vmc_slots_are_not_limited_by_it() {
        let with = |protocol: &str, slot: u16| {
            format!(
                "{}[board]\nprotocol = \"{protocol}\"\n[board.lockboard]\nchannels = 16\n\
                 [[slots]]\nslot = {slot}\nproduct = \"p\"\ncapacity = 1\ninitial_count = 1\n",
                minimal()
            )
        };
        assert!(Config::from_toml_str(&with("lockboard", 16)).is_ok());
        assert_eq!(fields(&with("lockboard", 17)), ["slots[0].slot"]);
        assert!(Config::from_toml_str(&with("vmc", 17)).is_ok());
    }

    #[test]
    fn products_and_technician_names_have_length_bounds() {
        let product = |name: &str| {
            format!(
                "{}[[slots]]\nslot = 1\nproduct = \"{name}\"\ncapacity = 1\ninitial_count = 1\n",
                minimal()
            )
        };
        assert!(Config::from_toml_str(&product(&"p".repeat(64))).is_ok());
        assert_eq!(fields(&product(&"p".repeat(65))), ["slots[0].product"]);
        assert_eq!(fields(&product(" ")), ["slots[0].product"]);

        let phc = crate::technician::hash_pin("2468").unwrap();
        let tech = |name: &str| format!("{}[technicians]\n\"{name}\" = \"{phc}\"\n", minimal());
        assert!(Config::from_toml_str(&tech(&"t".repeat(32))).is_ok());
        for bad in ["t".repeat(33), String::new(), "a\\u0007b".to_owned()] {
            let p = problems(&tech(&bad));
            assert_eq!(p.len(), 1, "{bad:?}: {p:?}");
            assert!(p[0].field.starts_with("technicians."), "{p:?}");
        }
    }

    #[test]
    fn the_longest_lockout_may_equal_the_first_but_not_be_shorter() {
        let with = |first: u64, max: u64| {
            format!(
                "{}[maintenance]\nlockout_secs = {first}\nlockout_max_secs = {max}\n",
                minimal()
            )
        };
        assert!(Config::from_toml_str(&with(60, 60)).is_ok());
        assert_eq!(fields(&with(60, 59)), ["maintenance.lockout_max_secs"]);
    }

    #[test]
    fn verify_limits_and_keepalive_come_from_the_config() {
        let cfg = Config::from_toml_str(&format!(
            "{}[commands]\nmax_payload_bytes = 2048\nclock_skew_secs = 10\n[mqtt]\nkeepalive_secs = 45\n",
            minimal()
        ))
        .unwrap();
        let v = cfg.verify_options();
        assert_eq!((v.max_token_bytes, v.leeway_secs), (2048, 10));
        assert_eq!(cfg.mqtt.keepalive(), Duration::from_secs(45));
    }

    #[test]
    fn a_password_env_that_is_set_gives_its_value() {
        // PATH is set and not empty in any environment the tests run in; setting a
        // variable of our own would need `unsafe` (forbidden in this workspace).
        let cfg = Config::from_toml_str(&format!("{}[mqtt]\npassword_env = \"PATH\"\n", minimal()))
            .unwrap();
        let pw = cfg.mqtt.load_password().unwrap().unwrap();
        assert_eq!(pw.expose(), std::env::var("PATH").unwrap());
    }

    #[test]
    fn the_clock_skew_is_0_to_600_seconds() {
        let skew = |v: i64| format!("{}[commands]\nclock_skew_secs = {v}\n", minimal());
        assert!(Config::from_toml_str(&skew(0)).is_ok());
        assert!(Config::from_toml_str(&skew(600)).is_ok());
        for bad in [-1, 601] {
            assert_eq!(fields(&skew(bad)), ["commands.clock_skew_secs"], "{bad}");
        }
    }

    #[test]
    fn embedded_defaults_cover_every_field() {
        // Only machine_code and one key are added; every other field must come from
        // defaults.toml, or deserialization would fail with "missing field".
        let cfg = Config::from_toml_str(&minimal()).unwrap();
        assert_eq!(cfg.machine_code, "GZ-0001");
        assert_eq!(cfg.commands.max_payload_bytes, 4096);
        assert_eq!(cfg.board.protocol, BoardProtocol::Vmc);
        assert_eq!(cfg.board.baud(), 57600);
        assert_eq!(cfg.board.lockboard.baud, 9600);
        assert_eq!(cfg.mqtt_username(), "GZ-0001");
        assert!(cfg.slots.is_empty());
        assert_eq!(cfg.validate(), vec![]);
    }

    #[test]
    fn the_defaults_alone_parse_and_only_lack_machine_code_and_keys() {
        let f = fields("");
        assert_eq!(f, vec!["machine_code".to_owned(), "keys".to_owned()]);
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config.example.toml");
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!cfg.slots.is_empty());
        assert!(cfg.journal.path.is_absolute());
    }

    #[test]
    fn site_values_override_defaults_table_by_table() {
        let cfg = Config::from_toml_str(&format!(
            "{}\n[board]\nprotocol = \"lockboard\"\n[board.lockboard]\naddress = 3\n",
            minimal()
        ))
        .unwrap();
        assert_eq!(cfg.board.protocol, BoardProtocol::Lockboard);
        assert_eq!(cfg.board.lockboard.address, 3);
        // untouched siblings keep their defaults
        assert_eq!(cfg.board.lockboard.channels, 8);
        assert_eq!(cfg.board.port, PathBuf::from("/dev/cabinet-board"));
        assert_eq!(cfg.board.baud(), 9600, "lock board default baud");
    }

    #[test]
    fn slots_in_the_site_file_replace_the_default_list() {
        let cfg = Config::from_toml_str(&format!(
            "{}\n[[slots]]\nslot = 1\nproduct = \"Umbrella\"\ncapacity = 5\ninitial_count = 5\n\
             [[slots]]\nslot = 2\nproduct = \"Charger\"\ncapacity = 8\ninitial_count = 0\n",
            minimal()
        ))
        .unwrap();
        assert_eq!(cfg.slots.len(), 2);
        assert_eq!(cfg.slots[1].product, "Charger");
    }

    #[test]
    fn unknown_keys_are_an_error_naming_the_key_and_its_table() {
        let p = problems(&format!("{}\n[board]\nprotocl = \"vmc\"\n", minimal()));
        assert_eq!(p.len(), 1);
        let text = p[0].to_string();
        assert!(text.contains("board"), "{text}");
        assert!(text.contains("protocl"), "{text}");

        let p = problems(&format!("{}\nmachine_cod = \"x\"\n", minimal()));
        assert!(p[0].to_string().contains("machine_cod"), "{}", p[0]);
    }

    #[test]
    fn a_bad_enum_value_names_the_field_and_the_allowed_values() {
        let p = problems(&format!("{}\n[board]\nprotocol = \"modbus\"\n", minimal()));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "board.protocol");
        assert!(
            p[0].message.contains("must be one of: vmc, lockboard"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn webkit_fallbacks_default_on_and_can_be_blanked_or_extended_per_site() {
        assert_eq!(
            default_webkit_env().get("WEBKIT_DISABLE_DMABUF_RENDERER"),
            Some(&"1".to_owned())
        );
        let cfg = Config::from_toml_str(&format!(
            "{}\n[kiosk.webkit_env]\nWEBKIT_DISABLE_DMABUF_RENDERER = \"\"\nWEBKIT_DISABLE_COMPOSITING_MODE = \"1\"\n",
            minimal()
        ))
        .unwrap();
        assert_eq!(cfg.kiosk.webkit_env["WEBKIT_DISABLE_DMABUF_RENDERER"], "");
        assert_eq!(cfg.kiosk.webkit_env["WEBKIT_DISABLE_COMPOSITING_MODE"], "1");
        let p = problems(&format!(
            "{}\n[kiosk.webkit_env]\n\"BAD NAME\" = \"1\"\n",
            minimal()
        ));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "kiosk.webkit_env.BAD NAME");
    }

    #[test]
    fn technician_pin_hashes_are_checked_and_never_printed() {
        let phc = crate::technician::hash_pin("2468").unwrap();
        let cfg = Config::from_toml_str(&format!(
            "{}\n[technicians]\n\"Li Wei\" = \"{phc}\"\n",
            minimal()
        ))
        .unwrap();
        assert_eq!(cfg.technicians["Li Wei"].expose(), phc);
        assert!(!format!("{cfg:?}").contains(&phc), "Debug shows the hash");
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(
            !json.contains(&phc) && json.contains("[redacted]"),
            "{json}"
        );

        let bad = "$argon2id$not-really";
        let p = problems(&format!(
            "{}\n[technicians]\nzhang = \"{bad}\"\n[maintenance]\nlockout_secs = 0\n",
            minimal()
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].field, "technicians.zhang");
        assert!(!p[0].message.contains(bad), "{}", p[0].message);
        assert_eq!(p[1].field, "maintenance.lockout_secs");
    }

    #[test]
    fn a_wrong_type_names_the_field_path() {
        let p = problems(&format!("{}\n[board.vmc]\nbaud = \"fast\"\n", minimal()));
        assert_eq!(p[0].field, "board.vmc.baud");
    }

    #[test]
    fn toml_syntax_errors_are_reported_as_syntax() {
        assert!(matches!(
            Config::from_toml_str("machine_code = "),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn validate_reports_all_problems_at_once_with_field_paths() {
        let toml = r#"
            machine_code = "GZ/0001"
            [mqtt]
            url = "http://broker"
            keepalive_secs = 1
            reconnect_min_ms = 5000
            reconnect_max_ms = 1000
            [keys]
            short = "AAAA"
            [commands]
            max_payload_bytes = 10
            [board]
            port = "ttyUSB0"
            [board.lockboard]
            address = 0
            channels = 200
            [board.vmc]
            baud = 12345
            [logs]
            retention_days = 0
            level = "loud"
        "#;
        let f = fields(toml);
        for expected in [
            "machine_code",
            "mqtt.url",
            "mqtt.keepalive_secs",
            "mqtt.reconnect_max_ms",
            "keys.short",
            "commands.max_payload_bytes",
            "board.port",
            "board.vmc.baud",
            "board.lockboard.address",
            "board.lockboard.channels",
            "logs.retention_days",
            "logs.level",
        ] {
            assert!(
                f.iter().any(|x| x == expected),
                "missing {expected} in {f:?}"
            );
        }
    }

    #[test]
    fn range_messages_say_what_is_allowed() {
        let p = problems(&format!("{}\n[board.lockboard]\naddress = 32\n", minimal()));
        assert_eq!(
            p[0].to_string(),
            "board.lockboard.address: must be in 1..=31 (got 32)"
        );
    }

    #[test]
    fn journal_min_free_mb_defaults_to_64_and_is_bounded() {
        let cfg = Config::from_toml_str(&minimal()).unwrap();
        assert_eq!(cfg.journal.min_free_mb, 64);
        assert_eq!(cfg.journal.min_free_bytes(), 64 * 1024 * 1024);
        for (value, ok) in [(0, false), (1, true), (100_000, true), (100_001, false)] {
            let toml = format!("{}\n[journal]\nmin_free_mb = {value}\n", minimal());
            if ok {
                let cfg = Config::from_toml_str(&toml).unwrap();
                assert_eq!(cfg.journal.min_free_mb, value);
            } else {
                assert_eq!(
                    problems(&toml)[0].to_string(),
                    format!("journal.min_free_mb: must be in 1..=100000 (got {value})")
                );
            }
        }
    }

    #[test]
    fn machine_codes_with_mqtt_wildcards_are_refused() {
        for code in ["+", "#", "a/b", "a b", &"x".repeat(65)] {
            let f = fields(&format!(
                "machine_code = \"{code}\"\n[keys]\nk = \"{KEY}\"\n"
            ));
            assert_eq!(f, vec!["machine_code".to_owned()], "{code:?}");
        }
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        use base64::Engine as _;
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 31]);
        let p = problems(&format!("machine_code = \"m\"\n[keys]\nk = \"{short}\"\n"));
        assert_eq!(p[0].field, "keys.k");
        assert!(p[0].message.contains("32 bytes"), "{}", p[0].message);
    }

    #[test]
    fn password_file_and_env_together_are_refused() {
        let f = fields(&format!(
            "{}\n[mqtt]\npassword_file = \"/etc/pw\"\npassword_env = \"PW\"\n",
            minimal()
        ));
        assert_eq!(f, vec!["mqtt.password_env".to_owned()]);
    }

    #[test]
    fn mqtts_requires_a_ca_file_and_mqtt_refuses_one() {
        let f = fields(&format!(
            "{}\n[mqtt]\nurl = \"mqtts://broker\"\n",
            minimal()
        ));
        assert_eq!(f, vec!["mqtt.ca_file".to_owned()]);
        let f = fields(&format!(
            "{}\n[mqtt]\nurl = \"mqtt://broker\"\nca_file = \"/ca.pem\"\n",
            minimal()
        ));
        assert_eq!(f, vec!["mqtt.ca_file".to_owned()]);
        let cfg = Config::from_toml_str(&format!(
            "{}\n[mqtt]\nurl = \"mqtts://broker\"\nca_file = \"/ca.pem\"\n",
            minimal()
        ))
        .unwrap();
        assert_eq!(
            cfg.broker().unwrap(),
            BrokerUrl {
                tls: true,
                host: "broker".into(),
                port: 8883
            }
        );
    }

    #[test]
    fn failover_urls_follow_url_in_order() {
        let cfg = Config::from_toml_str(&format!(
            "{}\n[mqtt]\nurl = \"mqtt://node1\"\nfailover_urls = [\"mqtt://node2:1884\", \"mqtt://[::1]\"]\n",
            minimal()
        ))
        .unwrap();
        let hosts: Vec<(String, u16)> = cfg
            .brokers()
            .unwrap()
            .into_iter()
            .map(|b| (b.host, b.port))
            .collect();
        assert_eq!(
            hosts,
            [
                ("node1".to_owned(), 1883),
                ("node2".to_owned(), 1884),
                ("::1".to_owned(), 1883)
            ]
        );
        // Without failover_urls the list is just `url`.
        let cfg = Config::from_toml_str(&minimal()).unwrap();
        assert_eq!(cfg.brokers().unwrap(), vec![cfg.broker().unwrap()]);
    }

    #[test]
    fn bad_failover_urls_are_named_by_index() {
        let p = problems(&format!(
            "{}\n[mqtt]\nurl = \"mqtt://node1\"\nfailover_urls = [\"mqtt://node2\", \"tcp://node3\", \"mqtt://node1:1883/\", \"mqtts://node4\"]\n",
            minimal()
        ));
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "mqtt.failover_urls[1]",
                "mqtt.failover_urls[2]",
                "mqtt.failover_urls[3]"
            ]
        );
        assert!(
            p[0].message.contains("mqtt://host[:port]"),
            "{}",
            p[0].message
        );
        assert!(p[1].message.contains("repeats"), "{}", p[1].message);
        assert!(p[2].message.contains("same scheme"), "{}", p[2].message);
    }

    #[test]
    fn failover_urls_are_capped() {
        let urls = |n: usize| {
            (0..n)
                .map(|i| format!("\"mqtt://node{i}:1884\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let at_cap = format!(
            "{}\n[mqtt]\nfailover_urls = [{}]\n",
            minimal(),
            urls(MAX_FAILOVER_URLS)
        );
        assert!(Config::from_toml_str(&at_cap).is_ok());
        let over = format!(
            "{}\n[mqtt]\nfailover_urls = [{}]\n",
            minimal(),
            urls(MAX_FAILOVER_URLS + 1)
        );
        assert_eq!(fields(&over), vec!["mqtt.failover_urls".to_owned()]);
    }

    #[test]
    fn broker_urls_parse_with_default_and_explicit_ports() {
        let b = parse_broker_url("mqtt://10.0.0.5").unwrap();
        assert_eq!((b.tls, b.host.as_str(), b.port), (false, "10.0.0.5", 1883));
        let b = parse_broker_url("mqtt://broker.example:11883/").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("broker.example", 11883));
        let b = parse_broker_url("mqtts://[::1]:8884").unwrap();
        assert_eq!((b.tls, b.host.as_str(), b.port), (true, "::1", 8884));
        let b = parse_broker_url("mqtt://[fe80::1]").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("fe80::1", 1883));
        for bad in [
            "tcp://broker",
            "mqtt://",
            "mqtt://broker:0",
            "mqtt://broker:70000",
            "mqtt://broker/topic",
            "mqtt://user:pw@broker",
            "mqtt://[::1",
            "broker:1883",
        ] {
            assert!(parse_broker_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_because_urls_are_logged() {
        let e = parse_broker_url("mqtt://u:secret@broker").unwrap_err();
        assert!(
            !e.contains("secret"),
            "the message must not echo the password: {e}"
        );
    }

    #[test]
    fn duplicate_slots_and_counts_over_capacity_are_refused() {
        let f = fields(&format!(
            "{}\n[[slots]]\nslot = 1\nproduct = \"A\"\ncapacity = 5\ninitial_count = 6\n\
             [[slots]]\nslot = 1\nproduct = \"\"\ncapacity = 0\ninitial_count = 0\n",
            minimal()
        ));
        assert_eq!(
            f,
            vec![
                "slots[0].initial_count".to_owned(),
                "slots[1].slot".to_owned(),
                "slots[1].product".to_owned(),
                "slots[1].capacity".to_owned(),
            ]
        );
    }

    #[test]
    fn lockboard_slots_must_fit_the_channel_count() {
        let f = fields(&format!(
            "{}\n[board]\nprotocol = \"lockboard\"\n\
             [[slots]]\nslot = 9\nproduct = \"A\"\ncapacity = 1\ninitial_count = 1\n",
            minimal()
        ));
        assert_eq!(f, vec!["slots[0].slot".to_owned()]);
    }

    #[test]
    fn log_levels_accept_levels_and_directives() {
        for ok in [
            "info",
            "DEBUG",
            "info,cabinet_core=debug",
            "warn,rumqttc::state=trace",
        ] {
            assert!(log_filter_ok(ok), "{ok}");
        }
        for bad in ["", "loud", "info,", "=debug", "a b=info"] {
            assert!(!log_filter_ok(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_print_as_stars_in_debug_and_display() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
        let pin = PinHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        assert_eq!(format!("{pin:?}"), "***");
        assert_eq!(
            serde_json::to_string(&pin).unwrap(),
            "\"[redacted]\"",
            "serialized (e.g. into a diagnostics bundle) without the hash"
        );
    }

    #[test]
    fn password_is_read_from_the_first_line_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let cfg = Config::from_toml_str(&format!(
            "{}\n[mqtt]\npassword_file = \"{}\"\n",
            minimal(),
            pw.display()
        ))
        .unwrap();
        let secret = cfg.mqtt.load_password().unwrap().unwrap();
        assert_eq!(secret.expose(), "s3cret");
        // The config itself never holds the password, so printing it is safe.
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    fn an_empty_or_missing_password_file_is_an_error_without_content() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "\n").unwrap();
        let mut m = Config::from_toml_str(&minimal()).unwrap().mqtt;
        m.password_file = Some(pw);
        assert!(matches!(
            m.load_password(),
            Err(ConfigError::PasswordFile { .. })
        ));
        m.password_file = Some(dir.path().join("missing"));
        assert!(matches!(
            m.load_password(),
            Err(ConfigError::PasswordFile { .. })
        ));
    }

    #[test]
    fn an_unset_password_env_is_an_error_and_none_means_no_password() {
        let mut m = Config::from_toml_str(&minimal()).unwrap().mqtt;
        assert_eq!(m.load_password().unwrap(), None);
        m.password_env = Some("CABINET_TEST_SURELY_UNSET_VAR_9F2".into());
        assert!(matches!(
            m.load_password(),
            Err(ConfigError::PasswordEnv { .. })
        ));
    }

    #[test]
    fn load_resolves_relative_paths_against_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(
            &file,
            format!(
                "{}\n[journal]\npath = \"data/journal.sqlite3\"\n[mqtt]\npassword_file = \"pw\"\n",
                minimal()
            ),
        )
        .unwrap();
        let cfg = Config::load(&file).unwrap();
        assert_eq!(cfg.journal.path, dir.path().join("data/journal.sqlite3"));
        assert_eq!(cfg.mqtt.password_file, Some(dir.path().join("pw")));
        assert_eq!(cfg.logs.dir, PathBuf::from("/var/log/cabinet-kiosk"));
    }

    #[test]
    fn a_missing_site_file_is_a_read_error_naming_the_path() {
        let e = Config::load(Path::new("/nonexistent/site.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/site.toml"));
    }

    #[test]
    fn verify_options_and_trusted_keys_come_from_the_config() {
        let cfg = Config::from_toml_str(&minimal()).unwrap();
        let o = cfg.verify_options();
        assert_eq!(o.max_token_bytes, 4096);
        assert_eq!(o.leeway_secs, 30);
        assert_eq!(o.max_lifetime_secs, 300);
        assert_eq!(cfg.trusted_keys().unwrap().len(), 1);
    }

    /// A config whose files all live in `dir` and are fine on this machine.
    fn host_ok(dir: &Path) -> Config {
        std::fs::write(dir.join("pw"), "s3cret\n").unwrap();
        let mut cfg = Config::from_toml_str(&minimal()).unwrap();
        cfg.mqtt.password_file = Some(dir.join("pw"));
        cfg.journal.path = dir.join("data/journal.sqlite3");
        cfg.logs.dir = dir.join("logs");
        cfg.board.port = dir.join("board-unplugged");
        cfg
    }

    fn host_fields(cfg: &Config) -> Vec<String> {
        cfg.check_host().into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn host_checks_pass_when_the_kiosk_can_create_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = host_ok(dir.path());
        assert_eq!(
            cfg.check_host(),
            vec![],
            "missing journal, logs and port are fine"
        );
        // /dev/null is a character device: a port may be any such device.
        let mut cfg = cfg;
        cfg.board.port = PathBuf::from("/dev/null");
        assert_eq!(cfg.check_host(), vec![]);
    }

    #[test]
    fn a_password_file_that_is_missing_a_directory_or_empty_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = host_ok(dir.path());
        cfg.mqtt.password_file = Some(dir.path().join("missing"));
        let p = cfg.check_host();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "mqtt.password_file");
        assert!(p[0].message.contains("does not exist"), "{}", p[0].message);
        assert!(p[0].message.contains("readable file"), "{}", p[0].message);
        cfg.mqtt.password_file = Some(dir.path().to_path_buf());
        let p = cfg.check_host();
        assert_eq!(host_fields(&cfg), ["mqtt.password_file"]);
        assert!(p[0].message.contains("is a directory"), "{}", p[0].message);
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        cfg.mqtt.password_file = Some(dir.path().join("empty"));
        let p = cfg.check_host();
        assert_eq!(host_fields(&cfg), ["mqtt.password_file"]);
        assert!(!p[0].message.contains("s3cret"));
    }

    #[test]
    fn an_unset_password_variable_is_named_before_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = host_ok(dir.path());
        cfg.mqtt.password_file = None;
        cfg.mqtt.password_env = Some("CABINET_TEST_SURELY_UNSET_VAR_7C1".into());
        let p = cfg.check_host();
        assert_eq!(host_fields(&cfg), ["mqtt.password_env"]);
        assert!(
            p[0].message.contains("CABINET_TEST_SURELY_UNSET_VAR_7C1"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn a_journal_that_is_a_directory_a_device_or_under_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = host_ok(dir.path());
        cfg.journal.path = dir.path().to_path_buf();
        let p = cfg.check_host();
        assert_eq!(host_fields(&cfg), ["journal.path"]);
        assert!(p[0].message.contains("is a directory"), "{}", p[0].message);
        assert!(p[0].message.contains("regular file"), "{}", p[0].message);
        cfg.journal.path = PathBuf::from("/dev/null");
        let p = cfg.check_host();
        assert_eq!(host_fields(&cfg), ["journal.path"]);
        assert!(
            p[0].message.contains("character device"),
            "{}",
            p[0].message
        );
        std::fs::write(dir.path().join("plain"), "").unwrap();
        cfg.journal.path = dir.path().join("plain/deeper/journal.sqlite3");
        let p = cfg.check_host();
        assert_eq!(host_fields(&cfg), ["journal.path"]);
        assert!(
            p[0].message.contains("plain is a regular file"),
            "{}",
            p[0].message
        );
        // An existing journal is fine; a directory where its lock file goes is not.
        cfg.journal.path = dir.path().join("j.sqlite3");
        std::fs::write(&cfg.journal.path, "").unwrap();
        assert_eq!(cfg.check_host(), vec![]);
        std::fs::create_dir(dir.path().join("j.sqlite3.lock")).unwrap();
        assert_eq!(host_fields(&cfg), ["journal.path"]);
    }

    #[test]
    fn a_logs_dir_that_is_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = host_ok(dir.path());
        std::fs::write(dir.path().join("logfile"), "").unwrap();
        cfg.logs.dir = dir.path().join("logfile");
        let p = cfg.check_host();
        assert_eq!(host_fields(&cfg), ["logs.dir"]);
        assert!(
            p[0].message.contains("is a regular file"),
            "{}",
            p[0].message
        );
        cfg.logs.dir = dir.path().join("logfile/sub");
        assert_eq!(host_fields(&cfg), ["logs.dir"]);
    }

    #[test]
    fn a_board_port_that_is_a_directory_or_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = host_ok(dir.path());
        cfg.board.port = dir.path().to_path_buf();
        let p = cfg.check_host();
        assert_eq!(host_fields(&cfg), ["board.port"]);
        assert!(p[0].message.contains("is a directory"), "{}", p[0].message);
        assert!(p[0].message.contains("serial device"), "{}", p[0].message);
        cfg.board.port = dir.path().join("pw");
        assert_eq!(host_fields(&cfg), ["board.port"]);
    }

    #[test]
    fn every_host_problem_is_reported_at_once_by_load_for_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("logs"), "").unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(
            &file,
            format!(
                "{}[mqtt]\npassword_file = \"nope\"\n[board]\nport = \"{}\"\n\
                 [board.vmc]\nreport_timeout_secs = 100\n\
                 [journal]\npath = \"/dev/null\"\n[logs]\ndir = \"logs\"\n",
                minimal(),
                dir.path().display()
            ),
        )
        .unwrap();
        let Err(ConfigError::Invalid(p)) = Config::load_for_start(&file) else {
            panic!("expected problems");
        };
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "board.vmc.report_timeout_secs",
                "mqtt.password_file",
                "journal.path",
                "logs.dir",
                "board.port"
            ]
        );
        // Config::load alone checks only the text (cabinet diag reads broken cabinets).
        assert_eq!(
            problems_of(Config::load(&file)),
            ["board.vmc.report_timeout_secs"]
        );
    }

    fn problems_of(r: Result<Config, ConfigError>) -> Vec<String> {
        match r {
            Err(ConfigError::Invalid(p)) => p.into_iter().map(|p| p.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_board_timeout_that_outlasts_the_units_stop_timeout_is_refused() {
        // The defaults fit, with the stop budget they give.
        let cfg = Config::from_toml_str(&minimal()).unwrap();
        assert_eq!(cfg.stop_budget(), Duration::from_secs(30 + 10 + 5));
        let max =
            UNIT_STOP_TIMEOUT_SECS - STOP_MARGIN_SECS - LINK_GOODBYE_SECS - 2 * STOP_GRACE_SECS;
        let vmc = |secs: u64| format!("{}[board.vmc]\nreport_timeout_secs = {secs}\n", minimal());
        assert!(Config::from_toml_str(&vmc(max)).is_ok(), "{max} fits");
        let p = problems(&vmc(max + 1));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "board.vmc.report_timeout_secs");
        assert!(
            p[0].message.contains(&format!("at most {max}")),
            "{}",
            p[0].message
        );
        assert!(p[0].message.contains("TimeoutStopSec"), "{}", p[0].message);
        // Out of range altogether: one problem, the range.
        assert_eq!(fields(&vmc(301)), ["board.vmc.report_timeout_secs"]);
        // A lock board's dispense is its door wait and two replies; the VMC timeout
        // does not matter there.
        let lock = |door: u64| {
            format!(
                "{}[board]\nprotocol = \"lockboard\"\n[board.vmc]\nreport_timeout_secs = 300\n\
                 [board.lockboard]\ndoor_open_timeout_secs = {door}\nreply_timeout_ms = 1500\n",
                minimal()
            )
        };
        assert!(Config::from_toml_str(&lock(max - 3)).is_ok());
        let p = problems(&lock(max - 2));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "board.lockboard.door_open_timeout_secs");
        assert!(
            p[0].message.contains(&format!("at most {}", max - 3)),
            "{}",
            p[0].message
        );
    }

    /// One budget for both binaries, from the config: the core waits for a dispense in
    /// progress as long as the board may take, the binaries wait for the core a little
    /// longer, and systemd longer still; for every valid board timeout.
    #[test]
    fn the_stop_waits_nest_inside_each_other_and_inside_the_units_timeout() {
        let unit = Duration::from_secs(UNIT_STOP_TIMEOUT_SECS);
        for protocol in ["vmc", "lockboard"] {
            for secs in [1, 10, 30, 32, 35, 36, 100, 300] {
                let text = format!(
                    "{}[board]\nprotocol = \"{protocol}\"\n[board.vmc]\nreport_timeout_secs = {secs}\n\
                     [board.lockboard]\ndoor_open_timeout_secs = {secs}\n",
                    minimal()
                );
                let Ok(cfg) = Config::from_toml_str(&text) else {
                    continue;
                };
                let dispense = cfg.dispense_bound();
                assert!(dispense >= Duration::from_secs(secs), "{protocol} {secs}");
                assert!(cfg.stop_dispense_wait() > dispense);
                assert!(cfg.stop_budget() > cfg.stop_dispense_wait());
                assert!(cfg.stop_timeout() > cfg.stop_budget());
                assert!(
                    cfg.stop_timeout() < unit,
                    "{protocol} {secs}: {:?}",
                    cfg.stop_timeout()
                );
            }
        }
        // The defaults: a 30 s report timeout, 50 s for the binaries, 60 s for systemd.
        let cfg = Config::from_toml_str(&minimal()).unwrap();
        assert_eq!(cfg.stop_timeout(), Duration::from_secs(50));
    }

    #[test]
    fn the_shipped_units_allow_the_stop_timeout_the_budget_is_checked_against() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd");
        let mut units = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "service") {
                continue;
            }
            units += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let values: Vec<&str> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("TimeoutStopSec="))
                .collect();
            assert_eq!(
                values,
                [UNIT_STOP_TIMEOUT_SECS.to_string().as_str()],
                "{}",
                path.display()
            );
        }
        assert_eq!(units, 2, "both shipped units checked");
    }

    #[test]
    fn the_config_round_trips_through_toml() {
        // Diagnostics can show the effective config; it must read back identically.
        let cfg = Config::from_toml_str(&minimal()).unwrap();
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap(), cfg);
    }
}
