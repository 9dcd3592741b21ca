//! UI-free core of the cabinet kiosk.
//!
//! Everything that decides whether a motor may move lives here, away from Tauri,
//! MQTT sockets and serial ports, so it can be tested step by step:
//!
//! - [`reason`]: the one list of reason codes shared by logs, replies and screens.
//! - [`config`]: embedded defaults + the site file + `validate()`.
//! - [`protocol`]: the MQTT contract (topics, signed commands, replies, presence).
//! - [`mqtt`]: the broker link (the only module of the shipped code that touches `rumqttc`).
//! - [`journal`]: the durable SQLite record that makes "at most once physically" and
//!   "exactly one outcome reported" survive crashes and power cuts.
//! - [`instance`]: one kiosk process per cabinet.

pub mod audit;
pub mod config;
pub mod control;
pub mod engine;
mod export;
pub mod files;
mod hooks;
pub mod instance;
pub mod journal;
pub mod journal_stats;
pub mod kiosk;
pub mod logs;
pub mod mqtt;
pub mod names_font;
pub mod protocol;
pub mod qr;
pub mod reason;
pub mod retention;
pub mod screen;
pub mod support;
pub mod systemd;
pub mod technician;
pub mod upkeep;
pub mod witness;

pub use reason::Reason;
