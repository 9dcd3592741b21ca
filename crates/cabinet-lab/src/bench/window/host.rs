//! The host the runs share: one Xvfb on a display number it picks itself, and what the
//! report says about the machine (CPU, memory, kernel, OS, WebKitGTK, load).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// An Xvfb on a display number it picks itself (`-displayfd`); killed on drop.
#[derive(Debug)]
pub(super) struct Xvfb {
    child: Child,
    pub(super) display: String,
}

impl Xvfb {
    pub(super) fn start() -> anyhow::Result<Xvfb> {
        // -displayfd 1: Xvfb writes the display number it found free to its stdout.
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1080x1920x24",
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
