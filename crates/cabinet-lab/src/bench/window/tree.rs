//! The process tree a window makes (the binary and the WebKit web and network processes
//! below it): its members, their memory from `smaps_rollup` and their CPU, the WebKit
//! processes outside it, and stopping it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::procfs::{parse_rollup, read_stat};

/// SIGTERM → SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Memory and idle CPU of one process, or of all processes with one name.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Mem {
    pub(super) rss_kb: u64,
    pub(super) pss_kb: u64,
    /// Private_Clean + Private_Dirty: what only this process holds (PSS also counts a
    /// share of libraries mapped by any other process on the machine).
    pub(super) uss_kb: u64,
    /// CPU over the second half of the settle window, percent of one core.
    pub(super) cpu_pct: f64,
    pub(super) count: u32,
}

/// SIGTERM to the process group, SIGKILL after [`STOP_GRACE`]; then waits until no
/// descendant outlives it (they may have left the group).
pub(super) fn stop(child: &mut Child, pid: u32) -> anyhow::Result<()> {
    let tree = descendants(pid);
    signal_group(pid, "TERM");
    let deadline = Instant::now() + STOP_GRACE;
    let mut status = None;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().context("cannot wait for the window")? {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if status.is_none() {
        signal_group(pid, "KILL");
        child.wait().context("cannot wait for the window")?;
    }
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        let left: Vec<u32> = tree
            .iter()
            .copied()
            .filter(|p| *p != pid && Path::new(&format!("/proc/{p}")).exists())
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            for p in &left {
                let _ = Command::new("kill")
                    .args(["-KILL", &p.to_string()])
                    .status();
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_group(pgid: u32, signal: &str) {
    // `kill` the command: the workspace forbids `unsafe`, and this crate has no signal crate.
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// `pid` and every process below it, from the parent pids in `/proc/*/stat`.
pub(super) fn descendants(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(stat) = read_stat(p) {
                children.entry(stat.ppid).or_default().push(p);
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        if let Some(c) = children.get(&tree[i]) {
            tree.extend(c);
        }
        i += 1;
    }
    tree
}

/// The tree's total and per-name memory from `smaps_rollup`, and the CPU each process
/// used since `cpu_start` (its ticks then; a process born since counts from zero).
pub(super) fn tree_memory(
    pid: u32,
    cpu_start: &HashMap<u32, u64>,
    wall_start: Instant,
    clk_tck: f64,
) -> anyhow::Result<(Mem, BTreeMap<String, Mem>)> {
    let mut total = Mem::default();
    let mut by_name: BTreeMap<String, Mem> = BTreeMap::new();
    for p in descendants(pid) {
        let path = format!("/proc/{p}/smaps_rollup");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // A process that has just exited.
            Err(_) if p != pid => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {path}")),
        };
        let (rss, pss, uss) = parse_rollup(&text);
        let ticks = read_stat(p).map_or(0, |s| s.cpu_ticks);
        let wall = wall_start.elapsed().as_secs_f64().max(1e-9);
        let used = ticks.saturating_sub(cpu_start.get(&p).copied().unwrap_or(0));
        let cpu_pct = used as f64 / clk_tck / wall * 100.0;
        let name = if p == pid {
            "app".to_owned()
        } else {
            process_name(p)
        };
        for m in [&mut total, by_name.entry(name).or_default()] {
            m.rss_kb += rss;
            m.pss_kb += pss;
            m.uss_kb += uss;
            m.cpu_pct += cpu_pct;
            m.count += 1;
        }
    }
    Ok((total, by_name))
}

/// WebKit processes running outside `tree` (another app or test on the machine).
pub(super) fn foreign_webkit(tree: &[u32]) -> u32 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let count = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| !tree.contains(p) && process_name(*p).starts_with("WebKit"))
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// The executable's file name from argv[0] (`comm` is cut at 15 characters).
fn process_name(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| {
            let argv0 = c.split(|b| *b == 0).next()?.to_vec();
            let argv0 = String::from_utf8(argv0).ok()?;
            let name = argv0.rsplit('/').next()?.to_owned();
            (!name.is_empty()).then_some(name)
        })
        .or_else(|| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| format!("pid {pid}"))
}

/// Copies `/proc/<pid>/smaps` of every process of the tree to `<prefix>-<process>.smaps`
/// (`--smaps-dir`), creating the directory.
pub(super) fn keep_smaps(pid: u32, prefix: &Path) -> anyhow::Result<()> {
    if let Some(dir) = prefix.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for p in descendants(pid) {
        let name = if p == pid {
            "app".to_owned()
        } else {
            process_name(p)
        };
        // A process that has just exited has nothing left to keep.
        let Ok(text) = std::fs::read(format!("/proc/{p}/smaps")) else {
            continue;
        };
        let to = PathBuf::from(format!("{}-{name}-{p}.smaps", prefix.display()));
        std::fs::write(&to, text).with_context(|| format!("cannot write {}", to.display()))?;
    }
    Ok(())
}
