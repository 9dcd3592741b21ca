//! Site config files (`config.toml`) for tests, built from typed sections and serialized
//! with `toml`: a path with a quote in it, a product name in Chinese or a PIN hash are
//! written correctly without anybody escaping them by hand.
//!
//! Like a real site file, it holds only what the test sets: every field is optional and
//! left out when unset, and the kiosk fills in the rest from its embedded defaults when it
//! loads the file. The sections mirror `cabinet_core::config` (its enums are used as they
//! are); unknown fields are refused on reading, as the kiosk refuses them.
//!
//! ```
//! use cabinet_testkit::SiteConfig;
//!
//! let site = SiteConfig::new("C001")
//!     .broker_url("mqtt://127.0.0.1:1883")
//!     .journal_path("journal.sqlite3");
//! assert!(site.to_toml().contains("[journal]"));
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cabinet_core::config::{BoardEntry, BoardProtocol, ByteOrder, DoorPolarity, ScanApp};
use serde::{Deserialize, Serialize};

/// A section of optional fields, each left out of the file when `None`.
macro_rules! section {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident: $ty:ty),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )+
        }
    };
}

section! {
    /// `[mqtt]`.
    Mqtt {
        /// `mqtt.url`.
        url: String,
        /// `mqtt.failover_urls`.
        failover_urls: Vec<String>,
        /// `mqtt.username`.
        username: String,
        /// `mqtt.password_file` (relative: to the config file's directory).
        password_file: PathBuf,
        /// `mqtt.password_env`.
        password_env: String,
        /// `mqtt.ca_file`.
        ca_file: PathBuf,
        /// `mqtt.keepalive_secs`.
        keepalive_secs: u64,
        /// `mqtt.reconnect_min_ms`.
        reconnect_min_ms: u64,
        /// `mqtt.reconnect_max_ms`.
        reconnect_max_ms: u64,
    }
}

section! {
    /// `[commands]`.
    Commands {
        /// `commands.max_payload_bytes`.
        max_payload_bytes: usize,
        /// `commands.clock_skew_secs`.
        clock_skew_secs: i64,
        /// `commands.max_token_lifetime_secs`.
        max_token_lifetime_secs: i64,
        /// `commands.require_session`.
        require_session: bool,
        /// `commands.session_lifetime_secs`.
        session_lifetime_secs: u64,
    }
}

section! {
    /// `[board]`; its tables come after its values, as TOML needs.
    Board {
        /// `board.protocol`.
        protocol: BoardProtocol,
        /// `board.port`.
        port: PathBuf,
        /// `[board.vmc]`.
        vmc: Vmc,
        /// `[board.lockboard]`.
        lockboard: Lockboard,
    }
}

section! {
    /// `[board.vmc]`.
    Vmc {
        /// `board.vmc.baud`.
        baud: u32,
        /// `board.vmc.slot_byte_order`.
        slot_byte_order: ByteOrder,
        /// `board.vmc.drop_sensor`.
        drop_sensor: bool,
        /// `board.vmc.report_timeout_secs`.
        report_timeout_secs: u64,
    }
}

section! {
    /// `[board.lockboard]`.
    Lockboard {
        /// `board.lockboard.baud`.
        baud: u32,
        /// `board.lockboard.address`.
        address: u8,
        /// `board.lockboard.channels`.
        channels: u16,
        /// `board.lockboard.door_polarity`.
        door_polarity: DoorPolarity,
        /// `board.lockboard.reply_timeout_ms`.
        reply_timeout_ms: u64,
        /// `board.lockboard.door_open_timeout_secs`.
        door_open_timeout_secs: u64,
    }
}

section! {
    /// `[journal]`.
    Journal {
        /// `journal.path` (relative: to the config file's directory).
        path: PathBuf,
        /// `journal.max_rejections`.
        max_rejections: u64,
        /// `journal.rejections_max_age_days`.
        rejections_max_age_days: u64,
        /// `journal.keep_commands_days`.
        keep_commands_days: u64,
        /// `journal.max_commands`.
        max_commands: u64,
        /// `journal.min_free_mb`.
        min_free_mb: u64,
        /// `journal.witness_path`.
        witness_path: PathBuf,
    }
}

section! {
    /// `[logs]`.
    Logs {
        /// `logs.dir` (relative: to the config file's directory).
        dir: PathBuf,
        /// `logs.retention_days`.
        retention_days: u32,
        /// `logs.json`.
        json: bool,
        /// `logs.level`.
        level: String,
    }
}

section! {
    /// `[kiosk]`.
    Kiosk {
        /// `kiosk.name`.
        name: String,
        /// `kiosk.heartbeat_secs`.
        heartbeat_secs: u64,
        /// `kiosk.take_item_secs`.
        take_item_secs: u64,
        /// `kiosk.failed_secs`.
        failed_secs: u64,
        /// `kiosk.out_of_service_grace_secs`.
        out_of_service_grace_secs: u64,
        /// `kiosk.board_check_secs`.
        board_check_secs: u64,
        /// `kiosk.board_start_wait_secs`.
        board_start_wait_secs: u64,
        /// `kiosk.qr_url`.
        qr_url: String,
        /// `kiosk.scan_with`.
        scan_with: Vec<ScanApp>,
        /// `[kiosk.webkit_env]`.
        webkit_env: BTreeMap<String, String>,
    }
}

section! {
    /// `[support]`.
    Support {
        /// `support.phone`.
        phone: String,
        /// `support.help_url`.
        help_url: String,
        /// `support.nearby`.
        nearby: String,
    }
}

section! {
    /// `[maintenance]`.
    Maintenance {
        /// `maintenance.max_failures`.
        max_failures: u32,
        /// `maintenance.lockout_secs`.
        lockout_secs: u64,
        /// `maintenance.lockout_max_secs`.
        lockout_max_secs: u64,
        /// `maintenance.idle_logout_secs`.
        idle_logout_secs: u64,
    }
}

/// One `[[slots]]` entry (every field but `board` and `channel` is required there).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// `slot`: the number commands use.
    pub slot: u16,
    /// `board`: the `[[boards]]` entry that drives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// `channel`: its channel or motor on that board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u16>,
    /// `product`.
    pub product: String,
    /// `capacity`.
    pub capacity: u32,
    /// `initial_count`.
    pub initial_count: u32,
}

/// A `[[boards]]` entry with only its name, protocol and port set.
fn board_entry(name: &str, protocol: BoardProtocol, port: PathBuf) -> BoardEntry {
    BoardEntry {
        name: name.to_owned(),
        protocol,
        port,
        address: None,
        channels: None,
        baud: None,
        door_polarity: None,
        reply_timeout_ms: None,
        door_open_timeout_secs: None,
        slot_byte_order: None,
        drop_sensor: None,
        report_timeout_secs: None,
    }
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// A site config file: the sections a test set, in the order TOML needs (the one plain
/// value first, then the tables). Build it with the methods below, or set a field of a
/// section directly for what they do not cover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// `machine_code`.
    pub machine_code: String,
    /// `[mqtt]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mqtt: Mqtt,
    /// `[keys]`: key id → base64url public key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// `[operator_keys]`: key id → base64url public key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operator_keys: BTreeMap<String, String>,
    /// `[commands]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub commands: Commands,
    /// `[board]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub board: Board,
    /// `[[boards]]`: a cabinet of several boards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boards: Vec<BoardEntry>,
    /// `[[slots]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<Slot>,
    /// `[journal]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub journal: Journal,
    /// `[logs]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub logs: Logs,
    /// `[kiosk]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub kiosk: Kiosk,
    /// `[technicians]`: name → PIN hash (`cabinet_core::technician::hash_pin`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub technicians: BTreeMap<String, String>,
    /// `[maintenance]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub maintenance: Maintenance,
    /// `[support]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub support: Support,
}

impl SiteConfig {
    /// A site file with only `machine_code` set.
    pub fn new(machine_code: &str) -> SiteConfig {
        SiteConfig {
            machine_code: machine_code.to_owned(),
            ..SiteConfig::default()
        }
    }

    /// The cabinet the end-to-end and window tests run: `machine_code` on the broker at
    /// `broker_url` (password in the file `password` beside the config), trusting `public`
    /// as `k1`, a VMC board on `board_port`, the journal and logs beside the config, debug
    /// logging, a heartbeat every second and out of service after one. Quick to notice a
    /// lost broker (keepalive 5 s, reconnect 100 ms to 1 s). Slots are the test's.
    pub fn test_cabinet(
        machine_code: &str,
        broker_url: &str,
        public: &str,
        board_port: impl Into<PathBuf>,
    ) -> SiteConfig {
        SiteConfig::new(machine_code)
            .broker_url(broker_url)
            .password_file("password")
            .keepalive_secs(5)
            .reconnect_ms(100, 1000)
            .key("k1", public)
            .board_protocol(BoardProtocol::Vmc)
            .board_port(board_port)
            .journal_path("journal.sqlite3")
            .logs_dir("logs")
            .log_level("debug")
            .heartbeat_secs(1)
            .out_of_service_grace_secs(1)
    }

    /// `mqtt.url`.
    pub fn broker_url(mut self, url: &str) -> Self {
        self.mqtt.url = Some(url.to_owned());
        self
    }

    /// `mqtt.password_file`.
    pub fn password_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.mqtt.password_file = Some(path.into());
        self
    }

    /// `mqtt.password_env`.
    pub fn password_env(mut self, var: &str) -> Self {
        self.mqtt.password_env = Some(var.to_owned());
        self
    }

    /// `mqtt.keepalive_secs`.
    pub fn keepalive_secs(mut self, secs: u64) -> Self {
        self.mqtt.keepalive_secs = Some(secs);
        self
    }

    /// `mqtt.reconnect_min_ms` and `mqtt.reconnect_max_ms`.
    pub fn reconnect_ms(mut self, min: u64, max: u64) -> Self {
        self.mqtt.reconnect_min_ms = Some(min);
        self.mqtt.reconnect_max_ms = Some(max);
        self
    }

    /// A trusted key: `[keys] kid = "public"`.
    pub fn key(mut self, kid: &str, public: &str) -> Self {
        self.keys.insert(kid.to_owned(), public.to_owned());
        self
    }

    /// A trusted operator key: `[operator_keys] kid = "public"`.
    pub fn operator_key(mut self, kid: &str, public: &str) -> Self {
        self.operator_keys.insert(kid.to_owned(), public.to_owned());
        self
    }

    /// `board.protocol`.
    pub fn board_protocol(mut self, protocol: BoardProtocol) -> Self {
        self.board.protocol = Some(protocol);
        self
    }

    /// `board.port`.
    pub fn board_port(mut self, port: impl Into<PathBuf>) -> Self {
        self.board.port = Some(port.into());
        self
    }

    /// `board.vmc.report_timeout_secs`.
    pub fn vmc_report_timeout_secs(mut self, secs: u64) -> Self {
        self.board.vmc.get_or_insert_default().report_timeout_secs = Some(secs);
        self
    }

    /// A `[[boards]]` lock board: `name` at `address` on the bus `port`, with `channels`
    /// doors.
    pub fn lock_board(
        mut self,
        name: &str,
        port: impl Into<PathBuf>,
        address: u8,
        channels: u16,
    ) -> Self {
        self.boards.push(BoardEntry {
            address: Some(address),
            channels: Some(channels),
            ..board_entry(name, BoardProtocol::Lockboard, port.into())
        });
        self
    }

    /// A `[[boards]]` VMC board `name` on `port`.
    pub fn vmc_board(mut self, name: &str, port: impl Into<PathBuf>) -> Self {
        self.boards
            .push(board_entry(name, BoardProtocol::Vmc, port.into()));
        self
    }

    /// A `[[slots]]` entry driven by `channel` of the `[[boards]]` entry `board`.
    pub fn slot_on(
        mut self,
        slot: u16,
        board: &str,
        channel: u16,
        product: &str,
        capacity: u32,
        initial_count: u32,
    ) -> Self {
        self.slots.push(Slot {
            slot,
            board: Some(board.to_owned()),
            channel: Some(channel),
            product: product.to_owned(),
            capacity,
            initial_count,
        });
        self
    }

    /// A `[[slots]]` entry.
    pub fn slot(mut self, slot: u16, product: &str, capacity: u32, initial_count: u32) -> Self {
        self.slots.push(Slot {
            slot,
            product: product.to_owned(),
            capacity,
            initial_count,
            ..Slot::default()
        });
        self
    }

    /// `journal.path`.
    pub fn journal_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.journal.path = Some(path.into());
        self
    }

    /// `logs.dir`.
    pub fn logs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.logs.dir = Some(dir.into());
        self
    }

    /// `logs.level`.
    pub fn log_level(mut self, level: &str) -> Self {
        self.logs.level = Some(level.to_owned());
        self
    }

    /// `kiosk.heartbeat_secs`.
    pub fn heartbeat_secs(mut self, secs: u64) -> Self {
        self.kiosk.heartbeat_secs = Some(secs);
        self
    }

    /// `kiosk.out_of_service_grace_secs`.
    pub fn out_of_service_grace_secs(mut self, secs: u64) -> Self {
        self.kiosk.out_of_service_grace_secs = Some(secs);
        self
    }

    /// A technician: `[technicians] name = "PIN hash"`.
    pub fn technician(mut self, name: &str, pin_hash: &str) -> Self {
        self.technicians
            .insert(name.to_owned(), pin_hash.to_owned());
        self
    }

    /// `maintenance.lockout_secs`.
    pub fn lockout_secs(mut self, secs: u64) -> Self {
        self.maintenance.lockout_secs = Some(secs);
        self
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a site config serializes to TOML")
    }

    /// Writes the file at `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_toml())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Reads a site file (one this wrote, or a hand-written one with known fields).
    pub fn read(path: &Path) -> SiteConfig {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Rewrites the site file at `path` through `f`.
    pub fn edit(path: &Path, f: impl FnOnce(&mut SiteConfig)) {
        let mut site = SiteConfig::read(path);
        f(&mut site);
        site.write(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cabinet_core::config::Config;

    const KEY: &str = "OFs-zWo0yl11xXTONdtio_I6LxhKY6V69ovhB51ABFU";

    /// What the end-to-end tests write, with every builder method used once.
    fn everything(dir: &Path) -> SiteConfig {
        let hash = cabinet_core::technician::hash_pin("97531").unwrap();
        SiteConfig::test_cabinet(
            "C001",
            "mqtt://127.0.0.1:1883",
            KEY,
            dir.join("board \"quoted\""),
        )
        .vmc_report_timeout_secs(20)
        .slot(1, "可乐 Cola", 10, 5)
        .slot(2, "Water", 10, 5)
        .technician("李工", &hash)
        .lockout_secs(600)
    }

    #[test]
    fn the_builders_file_loads_and_validates_through_cabinet_core() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let site = everything(dir.path());
        site.write(&path);
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{}", site.to_toml()));
        assert_eq!(cfg.machine_code, "C001");
        assert_eq!(cfg.mqtt.url, "mqtt://127.0.0.1:1883");
        assert_eq!(cfg.mqtt.password_file, Some(dir.path().join("password")));
        assert_eq!(cfg.mqtt.keepalive_secs, 5);
        assert_eq!(
            (cfg.mqtt.reconnect_min_ms, cfg.mqtt.reconnect_max_ms),
            (100, 1000)
        );
        assert_eq!(cfg.keys["k1"], KEY);
        assert_eq!(cfg.board.protocol, BoardProtocol::Vmc);
        assert_eq!(cfg.board.port, dir.path().join("board \"quoted\""));
        assert_eq!(cfg.board.vmc.report_timeout_secs, 20);
        assert_eq!(cfg.slots.len(), 2);
        assert_eq!(cfg.slots[0].product, "可乐 Cola");
        assert_eq!(cfg.journal.path, dir.path().join("journal.sqlite3"));
        assert_eq!(cfg.logs.dir, dir.path().join("logs"));
        assert_eq!(cfg.logs.level, "debug");
        assert_eq!(cfg.kiosk.heartbeat_secs, 1);
        assert_eq!(cfg.kiosk.out_of_service_grace_secs, 1);
        assert_eq!(
            cfg.technicians["李工"].expose(),
            site.technicians["李工"].as_str()
        );
        assert_eq!(cfg.maintenance.lockout_secs, 600);
        assert!(cfg.validate().is_empty());
        // What is not set comes from the embedded defaults, as with a real site file.
        let defaults =
            Config::from_toml_str(&SiteConfig::new("C001").key("k1", KEY).to_toml()).unwrap();
        assert_eq!(cfg.commands, defaults.commands);
    }

    #[test]
    fn every_section_set_by_hand_loads_too() {
        let mut site = SiteConfig::new("C001")
            .broker_url("mqtts://broker")
            .key("k1", KEY);
        site.mqtt.failover_urls = Some(vec!["mqtts://node2:8884".into()]);
        site.mqtt.ca_file = Some("/etc/ca.pem".into());
        site.mqtt.username = Some("cab".into());
        site.commands.require_session = Some(true);
        site.board.lockboard = Some(Lockboard {
            door_polarity: Some(DoorPolarity::OpenIs00),
            channels: Some(16),
            ..Lockboard::default()
        });
        site.board.vmc = Some(Vmc {
            slot_byte_order: Some(ByteOrder::Little),
            ..Vmc::default()
        });
        site.kiosk.webkit_env = Some(BTreeMap::from([("A_VAR".into(), "1".into())]));
        site.journal.min_free_mb = Some(2);
        site.maintenance.idle_logout_secs = Some(10);
        let cfg = Config::from_toml_str(&site.to_toml())
            .unwrap_or_else(|e| panic!("{e}\n{}", site.to_toml()));
        assert_eq!(cfg.mqtt.failover_urls, ["mqtts://node2:8884"]);
        assert!(cfg.commands.require_session);
        assert_eq!(cfg.board.lockboard.door_polarity, DoorPolarity::OpenIs00);
        assert_eq!(cfg.board.lockboard.channels, 16);
        assert_eq!(cfg.board.vmc.slot_byte_order, ByteOrder::Little);
        assert_eq!(cfg.kiosk.webkit_env["A_VAR"], "1");
        assert_eq!(cfg.journal.min_free_mb, 2);
        assert_eq!(cfg.maintenance.idle_logout_secs, 10);
    }

    #[test]
    fn a_written_file_reads_back_and_edits_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let site = everything(dir.path());
        site.write(&path);
        assert_eq!(SiteConfig::read(&path), site);
        SiteConfig::edit(&path, |s| {
            s.keys.insert("ops".into(), KEY.into());
            s.slots[0].capacity = 3;
        });
        let edited = SiteConfig::read(&path);
        assert_eq!(edited.slots[0].capacity, 3);
        assert_eq!(edited.keys.len(), 2);
    }

    #[test]
    fn unset_sections_are_left_out() {
        assert_eq!(
            SiteConfig::new("C001").to_toml(),
            "machine_code = \"C001\"\n"
        );
    }
}
