//! The cabinets a fleet runs and the broker(s) they connect to: each cabinet's machine
//! code and config file (its slots and stock, its broker URLs and password), and the file
//! descriptors a thousand of them need.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cabinet_core::mqtt::BackendClient;

use crate::mosquitto::Broker;
use crate::rabbitmq::{BACKEND_ID, Cluster};

/// Slots per simulated cabinet; with 1,000 items each (the most a slot may hold).
pub(super) const SLOTS: u16 = 20;
pub(super) const PER_SLOT: u32 = 1000;

pub(super) fn code(i: usize) -> String {
    format!("F{:04}", i + 1)
}

/// The broker(s) a fleet runs against.
pub(super) enum Net {
    /// One Mosquitto, anonymous.
    One(Broker),
    /// A RabbitMQ cluster, one user per cabinet.
    Cluster(Cluster),
}

impl Net {
    pub(super) fn urls(&self) -> Vec<String> {
        match self {
            Net::One(b) => vec![format!("mqtt://127.0.0.1:{}", b.port)],
            Net::Cluster(c) => c.urls(),
        }
    }

    /// A cabinet's MQTT password, if the broker wants one.
    pub(super) fn password(&self, user: &str) -> Option<String> {
        match self {
            Net::One(_) => None,
            Net::Cluster(c) => Some(c.password(user)),
        }
    }

    /// The backend's connection: every cabinet's replies, presence, telemetry and
    /// `reported`.
    pub(super) async fn backend(&self) -> anyhow::Result<BackendClient> {
        let mut b = match self {
            Net::One(b) => b.backend(BACKEND_ID, "+").await?,
            Net::Cluster(c) => c.backend(BACKEND_ID, "+").await?,
        };
        b.subscribe_reported("+").await?;
        Ok(b)
    }

    pub(super) fn pids(&self) -> Vec<u32> {
        match self {
            Net::One(b) => vec![b.pid()],
            Net::Cluster(c) => c.pids(),
        }
    }
}

pub(super) fn write_config(
    dir: &Path,
    machine: &str,
    urls: &[String],
    password: Option<String>,
    public: &str,
    operator: &str,
) -> anyhow::Result<PathBuf> {
    let (url, failover) = urls.split_first().context("no broker URL")?;
    let failover: Vec<String> = failover.iter().map(|u| format!("\"{u}\"")).collect();
    let mut text = format!(
        "machine_code = \"{machine}\"\n\n[mqtt]\nurl = \"{url}\"\nfailover_urls = [{}]\n\
         keepalive_secs = 30\nreconnect_min_ms = 100\nreconnect_max_ms = 2000\n",
        failover.join(", ")
    );
    if let Some(pw) = password {
        let file = dir.join("mqtt-password");
        std::fs::write(&file, pw).with_context(|| format!("cannot write {}", file.display()))?;
        text.push_str(&format!("password_file = \"{}\"\n", file.display()));
    }
    text.push_str(&format!(
        "\n[keys]\nk1 = \"{public}\"\n\n[operator_keys]\nops = \"{operator}\"\n\n[board]\nprotocol = \"vmc\"\nport = \"/dev/null\"\n\n\
         [journal]\npath = \"journal.sqlite3\"\n\n[logs]\ndir = \"logs\"\n"
    ));
    for s in 1..=SLOTS {
        text.push_str(&format!(
            "\n[[slots]]\nslot = {s}\nproduct = \"P{s}\"\ncapacity = {PER_SLOT}\ninitial_count = {PER_SLOT}\n"
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A thousand cabinets need a few thousand descriptors (journal, WAL, lock, socket each).
pub(super) fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
