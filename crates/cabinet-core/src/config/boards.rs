//! `[[boards]]`: a cabinet of several boards, and the slot map that names them.
//!
//! Without `[[boards]]` the cabinet has the one board of `[board]`, and a slot's number is
//! its channel or motor: the configs of one-board cabinets load as they always did. With
//! `[[boards]]`, each entry is a board (its protocol, port and, for a lock board, its
//! RS-485 address and door count), `[board.vmc]` and `[board.lockboard]` give the settings
//! an entry does not set, and each `[[slots]]` entry says which board and which channel
//! drive it. Lock boards that share a port are one bus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::sections::{
    BoardProtocol, ByteOrder, Config, DoorPolarity, LockboardConfig, SlotConfig, VmcConfig,
};
use super::validate::Validator;

/// One `[[boards]]` entry. Settings left out come from `[board.vmc]` or `[board.lockboard]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardEntry {
    /// The name slots use (`board = "wall-a"`) and evidence shows: `[A-Za-z0-9_-]{1,32}`.
    pub name: String,
    /// Which byte protocol the board speaks.
    pub protocol: BoardProtocol,
    /// Serial device path; lock boards with the same port are on one RS-485 bus.
    pub port: PathBuf,
    /// Lock board: its address on the bus (the DIP switches), 1..=31. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<u8>,
    /// Lock board: its doors (channels). Default: `board.lockboard.channels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u16>,
    /// Serial speed. Default: `board.vmc.baud` or `board.lockboard.baud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
    /// Lock board. Default: `board.lockboard.door_polarity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_polarity: Option<DoorPolarity>,
    /// Lock board. Default: `board.lockboard.reply_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_timeout_ms: Option<u64>,
    /// Lock board. Default: `board.lockboard.door_open_timeout_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_open_timeout_secs: Option<u64>,
    /// VMC board. Default: `board.vmc.slot_byte_order`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_byte_order: Option<ByteOrder>,
    /// VMC board. Default: `board.vmc.drop_sensor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_sensor: Option<bool>,
    /// VMC board. Default: `board.vmc.report_timeout_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_timeout_secs: Option<u64>,
}

impl BoardEntry {
    /// This board's lock-board settings: its own where set, `[board.lockboard]`'s otherwise.
    pub fn lockboard(&self, defaults: &LockboardConfig) -> LockboardConfig {
        LockboardConfig {
            baud: self.baud.unwrap_or(defaults.baud),
            address: self.address.unwrap_or(defaults.address),
            channels: self.channels.unwrap_or(defaults.channels),
            door_polarity: self.door_polarity.unwrap_or(defaults.door_polarity),
            reply_timeout_ms: self.reply_timeout_ms.unwrap_or(defaults.reply_timeout_ms),
            door_open_timeout_secs: self
                .door_open_timeout_secs
                .unwrap_or(defaults.door_open_timeout_secs),
        }
    }

    /// This board's VMC settings: its own where set, `[board.vmc]`'s otherwise.
    pub fn vmc(&self, defaults: &VmcConfig) -> VmcConfig {
        VmcConfig {
            baud: self.baud.unwrap_or(defaults.baud),
            slot_byte_order: self.slot_byte_order.unwrap_or(defaults.slot_byte_order),
            drop_sensor: self.drop_sensor.unwrap_or(defaults.drop_sensor),
            report_timeout_secs: self
                .report_timeout_secs
                .unwrap_or(defaults.report_timeout_secs),
        }
    }

    /// The speed of this board's port.
    pub fn baud_with(&self, cfg: &Config) -> u32 {
        match self.protocol {
            BoardProtocol::Vmc => self.vmc(&cfg.board.vmc).baud,
            BoardProtocol::Lockboard => self.lockboard(&cfg.board.lockboard).baud,
        }
    }

    /// How many channels (doors) the board has; `None` for a VMC board (its motor
    /// numbers are the board's business).
    pub fn channel_count(&self, cfg: &Config) -> Option<u16> {
        (self.protocol == BoardProtocol::Lockboard)
            .then(|| self.lockboard(&cfg.board.lockboard).channels)
    }
}

/// Where a slot is: the index of its board in `[[boards]]` and its channel there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPlace {
    /// Index into `Config::boards`.
    pub board: usize,
    /// Lock-board channel or VMC motor number.
    pub channel: u16,
}

impl Config {
    /// The slot map of a cabinet with `[[boards]]`: slot → board and channel. A slot
    /// without `board` is on the only board; without `channel`, its channel is its number.
    /// Slots that name no board of the config are left out (validation names them).
    pub fn slot_places(&self) -> BTreeMap<u16, SlotPlace> {
        self.slots
            .iter()
            .filter_map(|s| {
                let board = match &s.board {
                    Some(name) => self.boards.iter().position(|b| &b.name == name)?,
                    None if self.boards.len() == 1 => 0,
                    None => return None,
                };
                Some((
                    s.slot,
                    SlotPlace {
                        board,
                        channel: s.channel.unwrap_or(s.slot),
                    },
                ))
            })
            .collect()
    }

    /// The slots that are lock-board doors: every slot of a one-board lock-board cabinet,
    /// and with `[[boards]]` the slots on lock boards. A door holds one item.
    pub fn door_slots(&self) -> BTreeSet<u16> {
        if self.boards.is_empty() {
            if self.board.protocol != BoardProtocol::Lockboard {
                return BTreeSet::new();
            }
            return self.slots.iter().map(|s| s.slot).collect();
        }
        self.slot_places()
            .into_iter()
            .filter(|(_, p)| self.boards[p.board].protocol == BoardProtocol::Lockboard)
            .map(|(slot, _)| slot)
            .collect()
    }

    /// The slot map the journal's inventory follows: `slots`, with each door's capacity
    /// (and `initial_count`) read as 1 whatever the file or document gave it; and the
    /// doors that were given more, for a warning.
    pub fn inventory_slot_map(&self) -> (Vec<SlotConfig>, Vec<u16>) {
        let doors = self.door_slots();
        let mut wide = Vec::new();
        let slots = self
            .slots
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if doors.contains(&s.slot) && s.capacity > 1 {
                    wide.push(s.slot);
                    s.capacity = 1;
                    s.initial_count = s.initial_count.min(1);
                }
                s
            })
            .collect();
        (slots, wide)
    }

    /// The rules of `[[boards]]` and of the slot map that names them.
    pub(super) fn check_boards(&self, v: &mut Validator) {
        if self.boards.is_empty() {
            for (i, s) in self.slots.iter().enumerate() {
                for (field, set) in [
                    ("board", s.board.is_some()),
                    ("channel", s.channel.is_some()),
                ] {
                    if set {
                        v.add(
                            &format!("slots[{i}].{field}"),
                            "is for cabinets with [[boards]]; with the one [board], a slot's \
                             number is its channel or motor",
                        );
                    }
                }
            }
            return;
        }
        if self.boards.len() > 64 {
            v.add("boards", "at most 64 boards");
        }
        for (i, b) in self.boards.iter().enumerate() {
            self.check_board(v, i, b);
        }
        self.check_buses(v);
        self.check_slot_map(v);
    }

    fn check_board(&self, v: &mut Validator, i: usize, b: &BoardEntry) {
        let f = |name: &str| format!("boards[{i}].{name}");
        let name_ok = (1..=32).contains(&b.name.len())
            && b.name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !name_ok {
            v.add(&f("name"), "must be 1..=32 characters of A-Z a-z 0-9 _ -");
        } else if self.boards[..i].iter().any(|o| o.name == b.name) {
            v.add(&f("name"), &format!("{:?} names two boards", b.name));
        }
        if !b.port.is_absolute() {
            v.add(
                &f("port"),
                "must be an absolute device path, such as /dev/cabinet-bus-1",
            );
        }
        let baud = b.baud_with(self);
        v.baud(&f("baud"), baud);
        match b.protocol {
            BoardProtocol::Lockboard => {
                let lock = b.lockboard(&self.board.lockboard);
                match b.address {
                    None => v.add(
                        &f("address"),
                        "is required for a lock board: its RS-485 address (DIP switches), 1..=31",
                    ),
                    Some(a) => v.range(&f("address"), a.into(), 1, 31),
                }
                v.range(&f("channels"), lock.channels.into(), 1, 128);
                v.range(&f("reply_timeout_ms"), lock.reply_timeout_ms, 100, 10_000);
                v.range(
                    &f("door_open_timeout_secs"),
                    lock.door_open_timeout_secs,
                    1,
                    600,
                );
                for (field, set) in [
                    ("slot_byte_order", b.slot_byte_order.is_some()),
                    ("drop_sensor", b.drop_sensor.is_some()),
                    ("report_timeout_secs", b.report_timeout_secs.is_some()),
                ] {
                    if set {
                        v.add(&f(field), "is a VMC board's setting, not a lock board's");
                    }
                }
            }
            BoardProtocol::Vmc => {
                let vmc = b.vmc(&self.board.vmc);
                v.range(&f("report_timeout_secs"), vmc.report_timeout_secs, 1, 300);
                for (field, set) in [
                    ("address", b.address.is_some()),
                    ("channels", b.channels.is_some()),
                    ("door_polarity", b.door_polarity.is_some()),
                    ("reply_timeout_ms", b.reply_timeout_ms.is_some()),
                    ("door_open_timeout_secs", b.door_open_timeout_secs.is_some()),
                ] {
                    if set {
                        v.add(&f(field), "is a lock board's setting, not a VMC board's");
                    }
                }
            }
        }
    }

    /// Boards that share a port are one bus: lock boards only, at distinct addresses,
    /// at one speed. Each problem is named on the later board.
    fn check_buses(&self, v: &mut Validator) {
        for (j, b) in self.boards.iter().enumerate() {
            let Some((_, a)) = self.boards[..j]
                .iter()
                .enumerate()
                .find(|(_, a)| a.port == b.port)
            else {
                continue;
            };
            let port = b.port.display();
            if a.protocol == BoardProtocol::Vmc || b.protocol == BoardProtocol::Vmc {
                v.add(
                    &format!("boards[{j}].port"),
                    &format!(
                        "{port} is also {:?}'s: a VMC board needs its port to itself (RS-232, \
                         not a shared RS-485 bus)",
                        a.name
                    ),
                );
                continue;
            }
            if b.baud_with(self) != a.baud_with(self) {
                v.add(
                    &format!("boards[{j}].baud"),
                    &format!(
                        "{} on the bus {port}, where {:?} is at {}: one bus has one speed",
                        b.baud_with(self),
                        a.name,
                        a.baud_with(self)
                    ),
                );
            }
            if let Some(other) = self.boards[..j]
                .iter()
                .find(|o| o.port == b.port && o.address.is_some() && o.address == b.address)
            {
                v.add(
                    &format!("boards[{j}].address"),
                    &format!(
                        "{} on {port} is also {:?}'s: two boards at one address answer together",
                        b.address.unwrap_or_default(),
                        other.name
                    ),
                );
            }
        }
    }

    fn check_slot_map(&self, v: &mut Validator) {
        let mut taken: BTreeMap<(usize, u16), u16> = BTreeMap::new();
        let names = self
            .boards
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        for (i, s) in self.slots.iter().enumerate() {
            let f = |name: &str| format!("slots[{i}].{name}");
            let board = match &s.board {
                Some(name) => match self.boards.iter().position(|b| &b.name == name) {
                    Some(b) => b,
                    None => {
                        v.add(
                            &f("board"),
                            &format!("{name:?} is not in [[boards]]; allowed: {names}"),
                        );
                        continue;
                    }
                },
                None if self.boards.len() == 1 => 0,
                None => {
                    v.add(
                        &f("board"),
                        &format!("is required with several [[boards]]; allowed: {names}"),
                    );
                    continue;
                }
            };
            let channel = s.channel.unwrap_or(s.slot);
            let b = &self.boards[board];
            if channel == 0 {
                v.add(&f("channel"), "must be at least 1");
                continue;
            }
            // Today's one-board lock cabinets may say more (their doors are read as
            // holding one); a new slot map says what a door is.
            if b.protocol == BoardProtocol::Lockboard && s.capacity > 1 {
                v.add(
                    &f("capacity"),
                    &format!(
                        "{} on {:?}'s door: a door holds one item (capacity = 1)",
                        s.capacity, b.name
                    ),
                );
            }
            if let Some(count) = b.channel_count(self)
                && channel > count
            {
                v.add(
                    &f("channel"),
                    &format!(
                        "channel {channel} is beyond {:?}, which has {count} channels",
                        b.name
                    ),
                );
            }
            if let Some(other) = taken.insert((board, channel), s.slot) {
                v.add(
                    &f("channel"),
                    &format!(
                        "{:?} channel {channel} already drives slot {other}: two slots on one \
                         channel",
                        b.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    const KEY: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn cfg(rest: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!(
            "machine_code = \"GZ-0001\"\n[keys]\nk = \"{KEY}\"\n{rest}"
        ))
    }

    /// `(field, message)` of every problem.
    fn problems(rest: &str) -> Vec<(String, String)> {
        match cfg(rest) {
            Err(ConfigError::Invalid(p)) => p.into_iter().map(|p| (p.field, p.message)).collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    fn slot(n: u16, board: &str, channel: u16) -> String {
        format!(
            "[[slots]]\nslot = {n}\nboard = \"{board}\"\nchannel = {channel}\nproduct = \"p\"\n\
             capacity = 1\ninitial_count = 1\n"
        )
    }

    const WALL: &str = "[[boards]]\nname = \"wall-a\"\nprotocol = \"lockboard\"\n\
        port = \"/dev/cabinet-bus-1\"\naddress = 1\n\
        [[boards]]\nname = \"wall-b\"\nprotocol = \"lockboard\"\n\
        port = \"/dev/cabinet-bus-1\"\naddress = 2\nchannels = 16\n\
        [[boards]]\nname = \"vend\"\nprotocol = \"vmc\"\nport = \"/dev/cabinet-vmc\"\n";

    #[test]
    fn a_locker_wall_and_a_vending_board_load_with_each_slot_on_its_board() {
        let c = cfg(&format!(
            "{WALL}{}{}{}",
            slot(1, "wall-a", 8),
            slot(2, "wall-b", 16),
            slot(3, "vend", 11)
        ))
        .unwrap();
        let places = c.slot_places();
        let got: Vec<(u16, usize, u16)> = places
            .iter()
            .map(|(s, p)| (*s, p.board, p.channel))
            .collect();
        assert_eq!(got, [(1, 0, 8), (2, 1, 16), (3, 2, 11)]);
        // The lock boards' slots are doors, the VMC board's a spiral.
        assert_eq!(c.door_slots().into_iter().collect::<Vec<_>>(), [1, 2]);
        // Settings left out come from [board.lockboard] / [board.vmc].
        assert_eq!(c.boards[0].lockboard(&c.board.lockboard).channels, 8);
        assert_eq!(c.boards[1].lockboard(&c.board.lockboard).channels, 16);
        assert_eq!(c.boards[2].vmc(&c.board.vmc).baud, 57_600);
    }

    #[test]
    fn every_inconsistency_of_the_wiring_and_the_slot_map_is_named() {
        let bad = format!(
            "{WALL}\
             [[boards]]\nname = \"wall-c\"\nprotocol = \"lockboard\"\n\
             port = \"/dev/cabinet-bus-1\"\naddress = 2\nbaud = 19200\n\
             [[boards]]\nname = \"vend-2\"\nprotocol = \"vmc\"\nport = \"/dev/cabinet-bus-1\"\n\
             [[boards]]\nname = \"wall-d\"\nprotocol = \"lockboard\"\nport = \"/dev/x\"\n\
             drop_sensor = true\n\
             {}{}{}{}{}",
            slot(1, "wall-a", 5),
            slot(2, "wall-a", 5),
            slot(3, "wall-b", 17),
            slot(4, "wall-z", 1),
            slot(5, "wall-b", 3).replace("capacity = 1", "capacity = 4"),
        );
        let p = problems(&bad);
        let has = |field: &str, words: &str| {
            assert!(
                p.iter().any(|(f, m)| f == field && m.contains(words)),
                "no {field}: {words} in {p:#?}"
            );
        };
        has("boards[3].baud", "one bus has one speed");
        has(
            "boards[3].address",
            "2 on /dev/cabinet-bus-1 is also \"wall-b\"'s",
        );
        has("boards[4].port", "a VMC board needs its port to itself");
        has("boards[5].address", "is required for a lock board");
        has("boards[5].drop_sensor", "is a VMC board's setting");
        has(
            "slots[1].channel",
            "\"wall-a\" channel 5 already drives slot 1",
        );
        has(
            "slots[2].channel",
            "channel 17 is beyond \"wall-b\", which has 16 channels",
        );
        has(
            "slots[3].board",
            "\"wall-z\" is not in [[boards]]; allowed: wall-a, wall-b, vend",
        );
        has(
            "slots[4].capacity",
            "4 on \"wall-b\"'s door: a door holds one item",
        );
        assert_eq!(p.len(), 9, "{p:#?}");
    }

    #[test]
    fn several_boards_need_each_slot_to_name_one_and_one_board_does_not() {
        let unnamed = "[[slots]]\nslot = 3\nproduct = \"p\"\ncapacity = 1\ninitial_count = 1\n";
        let p = problems(&format!("{WALL}{unnamed}"));
        assert_eq!(p[0].0, "slots[0].board");
        assert!(
            p[0].1.contains("is required with several [[boards]]"),
            "{p:?}"
        );
        let one = "[[boards]]\nname = \"wall\"\nprotocol = \"lockboard\"\n\
                   port = \"/dev/cabinet-bus-1\"\naddress = 7\n";
        let c = cfg(&format!("{one}{unnamed}")).unwrap();
        let place = c.slot_places()[&3];
        assert_eq!((place.board, place.channel), (0, 3));
    }

    #[test]
    fn a_one_board_config_refuses_the_several_board_fields() {
        let p = problems(&slot(1, "wall-a", 1));
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["slots[0].board", "slots[0].channel"]);
    }

    #[test]
    fn the_stop_budget_follows_the_slowest_board_and_names_its_field() {
        let c = cfg(WALL).unwrap();
        // The lock boards' 30 s door wait + 2 × 1.5 s replies beat the VMC board's 30 s.
        assert_eq!(c.dispense_bound(), std::time::Duration::from_secs(33));
        let slow = WALL.replace(
            "channels = 16\n",
            "channels = 16\ndoor_open_timeout_secs = 40\n",
        );
        let p = problems(&slow);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "boards[1].door_open_timeout_secs");
        assert!(
            p[0].1.contains("with boards[1].reply_timeout_ms = 1500"),
            "{p:?}"
        );
    }
}
