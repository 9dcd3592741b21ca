//! The host the runs share: the display (a headless Weston with its kiosk shell, or an
//! Xvfb), and what the report says about the machine (CPU, memory, kernel, OS, WebKitGTK,
//! load).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::model::DisplayKind;

/// Window size of both displays: the portrait 1080×1920 of a cabinet's screen.
const WIDTH: u32 = 1080;
const HEIGHT: u32 = 1920;
/// How long Weston may take to open its socket.
const WESTON_START: Duration = Duration::from_secs(20);

/// The display both windows of a run are shown on, for the whole benchmark.
#[derive(Debug)]
pub(super) enum Display {
    X11(Xvfb),
    Wayland(Weston),
}

impl Display {
    pub(super) fn start(kind: DisplayKind) -> anyhow::Result<Display> {
        Ok(match kind {
            DisplayKind::X11 => {
                Display::X11(Xvfb::start().context("cannot start Xvfb (apt-get install xvfb)")?)
            }
            DisplayKind::Wayland => Display::Wayland(
                Weston::start().context("cannot start Weston (apt-get install weston)")?,
            ),
        })
    }

    /// Points a window's command at this display, and GTK at its backend.
    pub(super) fn apply(&self, cmd: &mut Command) {
        match self {
            Display::X11(x) => {
                cmd.env("DISPLAY", &x.display)
                    .env("GDK_BACKEND", "x11")
                    .env_remove("WAYLAND_DISPLAY");
            }
            Display::Wayland(w) => {
                cmd.env("WAYLAND_DISPLAY", &w.socket)
                    .env("XDG_RUNTIME_DIR", w.runtime.path())
                    .env("GDK_BACKEND", "wayland")
                    .env_remove("DISPLAY");
            }
        }
    }

    /// What the report calls it.
    pub(super) fn label(&self) -> String {
        match self {
            Display::X11(_) => format!("Xvfb {WIDTH}x{HEIGHT}x24"),
            Display::Wayland(_) => format!("Weston headless {WIDTH}x{HEIGHT}, kiosk shell"),
        }
    }
}

/// A headless Weston (pixman renderer) with its kiosk shell, which shows each window
/// full-screen as the cabinet's compositor (cage) does, in a runtime directory of its own;
/// killed on drop.
#[derive(Debug)]
pub(super) struct Weston {
    child: Child,
    runtime: tempfile::TempDir,
    socket: String,
}

impl Weston {
    fn start() -> anyhow::Result<Weston> {
        let runtime = tempfile::Builder::new()
            .prefix("cabinet-lab-wayland-")
            .tempdir()
            .context("cannot create a runtime directory")?;
        let socket = "wayland-bench".to_owned();
        let log: PathBuf = runtime.path().join("weston.log");
        let mut child = Command::new("weston")
            .arg("--backend=headless-backend.so")
            .arg(format!("--width={WIDTH}"))
            .arg(format!("--height={HEIGHT}"))
            .arg("--shell=kiosk-shell.so")
            .arg(format!("--socket={socket}"))
            .arg("--idle-time=0")
            .arg("--no-config")
            .arg(format!("--log={}", log.display()))
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run weston")?;
        // Weston creates its socket once it listens; until then, or its exit, poll.
        let path = runtime.path().join(&socket);
        let deadline = Instant::now() + WESTON_START;
        while !path.exists() {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                bail!(
                    "weston did not open its socket ({}): {}",
                    exited.map_or("still starting".into(), |s| s.to_string()),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Weston {
            child,
            runtime,
            socket,
        })
    }
}

impl Drop for Weston {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Xvfb on a display number it picks itself (`-displayfd`); killed on drop.
#[derive(Debug)]
pub(super) struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> anyhow::Result<Xvfb> {
        // -displayfd 1: Xvfb writes the display number it found free to its stdout.
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                &format!("{WIDTH}x{HEIGHT}x24"),
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run Xvfb")?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| BufReader::new(out).read_line(&mut line));
        let number = line.trim().parse::<u32>().ok();
        let Some(number) = number else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("Xvfb did not report a display number (read {read:?}: {line:?})");
        };
        Ok(Xvfb {
            child,
            display: format!(":{number}"),
        })
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The machine the runs are on, as the report names it.
#[derive(Debug)]
pub(super) struct Machine {
    pub(super) cpu: String,
    pub(super) cores: usize,
    pub(super) mem_total_mb: f64,
    pub(super) kernel: String,
    pub(super) os: String,
    pub(super) webkitgtk: String,
}

pub(super) fn machine_info() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_owned());
    let meminfo = read("/proc/meminfo");
    let mem_total_mb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or_else(|| "unknown".into(), |v| v.trim_matches('"').to_owned());
    let webkitgtk = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "libwebkit2gtk-4.1-0"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown (no dpkg entry for libwebkit2gtk-4.1-0)".into());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total_mb,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        os,
        webkitgtk,
    }
}

pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
