//! A Mosquitto child process on a free loopback port, for the benchmarks and the fleet
//! simulator (the tests have their own harness, crates/cabinet-testkit, a dev-only crate
//! the lab binary cannot use).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::loopback::{free_ports, wait_listening};

/// Any single wait while starting the broker.
const STEP: Duration = Duration::from_secs(15);

/// A Mosquitto child process on a free loopback port; killed on drop.
pub struct Broker {
    dir: tempfile::TempDir,
    /// The loopback port it listens on.
    pub port: u16,
    child: Child,
}

fn mosquitto_bin() -> &'static str {
    ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("mosquitto")
}

impl Broker {
    /// Start Mosquitto (anonymous, no persistence), with `set_tcp_nodelay` as given, and
    /// wait until it listens.
    pub fn start(nodelay: bool) -> anyhow::Result<Broker> {
        Broker::start_with(nodelay, false)
    }

    /// [`Broker::start`], optionally with persistence (sessions, subscriptions and queued
    /// messages saved in its directory when it stops, and loaded when it starts).
    pub fn start_with(nodelay: bool, persistence: bool) -> anyhow::Result<Broker> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let port = free_ports(1)?[0];
        // Run as root, Mosquitto drops to user `mosquitto` unless told otherwise.
        let user = Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(|u| format!("user {u}\n"))
            .unwrap_or_default();
        let persist = if persistence {
            format!(
                "persistence true\npersistence_location {}/\n",
                dir.path().display()
            )
        } else {
            "persistence false\n".to_owned()
        };
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "{user}listener {port} 127.0.0.1\nallow_anonymous true\n{persist}\
                 log_dest stderr\nlog_type error\nset_tcp_nodelay {nodelay}\n"
            ),
        )?;
        let child = spawn(dir.path(), port)?;
        Ok(Broker { dir, port, child })
    }

    /// Stop the broker as `systemctl restart` would (SIGTERM: a persistent broker saves its
    /// state) and start it again on the same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.child = spawn(self.dir.path(), self.port)?;
        Ok(())
    }
}

/// Run Mosquitto with the config in `dir` and wait until it listens on `port`.
fn spawn(dir: &Path, port: u16) -> anyhow::Result<Child> {
    let bin = mosquitto_bin();
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {bin} (is mosquitto installed?)"))?;
    wait_listening(&mut child, port, "mosquitto")?;
    Ok(child)
}

impl Broker {
    /// A backend connection to this broker, subscribed to `cabinet`'s topics (`"+"`: every
    /// cabinet's).
    pub async fn backend(
        &self,
        client_id: &str,
        cabinet: &str,
    ) -> anyhow::Result<cabinet_core::mqtt::BackendClient> {
        let mut b = crate::loopback::backend(self.port, client_id, None, false, STEP).await?;
        b.subscribe_cabinet(cabinet).await?;
        Ok(b)
    }

    /// The broker's process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
