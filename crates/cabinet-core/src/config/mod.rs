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
//!
//! One file per concern, all re-exported here so every item keeps its
//! `crate::config::` path:
//! - `sections`: the tables as typed structs and what they derive;
//! - `boards`: `[[boards]]`, a cabinet of several boards, and the slot map naming them;
//! - `load`: the embedded defaults, merging the site file, shaping;
//! - `validate`: the rules of the text alone; `host`: the checks on this machine;
//! - `stop`: the stop budget and the units' `TimeoutStopSec`;
//! - `remote`: what a signed configuration document may set, laid over the file;
//! - `broker`: broker URLs; `secrets`: the password and PIN hashes; `error`: errors.

mod boards;
mod broker;
mod error;
mod host;
mod load;
mod remote;
mod secrets;
mod sections;
mod stop;
mod validate;

pub use boards::{BoardEntry, SlotPlace};
pub use broker::{BrokerUrl, parse_broker_url};
pub use error::{ConfigError, Problem};
pub use load::{DEFAULTS_TOML, default_webkit_env};
pub use remote::{ConfigClaims, RemoteConfig, RemoteKiosk, RemoteMaintenance, RemoteSupport};
pub use secrets::{PinHash, Secret};
pub use sections::{
    BoardConfig, BoardProtocol, ByteOrder, CommandsConfig, Config, DoorPolarity, JournalConfig,
    KioskConfig, LockboardConfig, LogsConfig, MaintenanceConfig, MqttConfig, ScanApp, SlotConfig,
    SupportConfig, VmcConfig,
};
pub use stop::{LINK_GOODBYE_SECS, STOP_GRACE_SECS, STOP_MARGIN_SECS, UNIT_STOP_TIMEOUT_SECS};
pub use validate::{CLOCK_SKEW_CEILING_SECS, MAX_FAILOVER_URLS, TOKEN_LIFETIME_CEILING_SECS};

#[cfg(test)]
mod tests;
