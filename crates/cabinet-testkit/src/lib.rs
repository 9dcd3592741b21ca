//! Test support for the workspace's integration tests, never shipped (`publish = false`,
//! only ever a `[dev-dependency]`):
//!
//! - [`mosquitto`]: a real Mosquitto with the shipped ACL and settings on free loopback
//!   ports, and a `rumqttc` client playing the backend;
//! - [`port`]: the one free-port helper, and why its callers retry;
//! - [`config`]: site config files built from typed sections and serialized with `toml`;
//! - [`schema`]: the reply JSON Schema and a validator for the keywords it uses;
//! - `webdriver` (feature `webdriver`): Xvfb, tauri-driver and a WebDriver session.
//!
//! A test kit fails the test that uses it: every helper here panics with what went wrong
//! instead of returning an error the test would unwrap anyway.
#![warn(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod config;
pub mod mosquitto;
pub mod port;
pub mod schema;
#[cfg(feature = "webdriver")]
pub mod webdriver;

pub use config::SiteConfig;
pub use mosquitto::{Broker, Client, Msg, STEP, password};
