//! `cabinet-lab bench window`: time to first paint and idle footprint of the kiosk window,
//! beside an empty Tauri 2 window built the same way (`bench/empty-window`), in the same
//! run on the same display.
//!
//! One Xvfb for the whole run (`-displayfd`, no fixed display number). Each run starts one
//! binary in its own process group with `CABINET_PRINT_FIRST_PAINT=1`; both binaries print
//! `first-paint-ms <n>` from their `ui_ready` command, which their page invokes two
//! animation frames after it has rendered (the kiosk: its first screen with the core's
//! snapshot). First paint is taken on the harness's clock (spawn → that line on stdout);
//! the binary's own figure (since its `main`) is kept beside it. After `--settle-secs` of
//! idle the harness sums `Rss`, `Pss` and private memory from `/proc/<pid>/smaps_rollup`
//! over the process and all its descendants (the WebKit web and network processes), and
//! the CPU the tree used over the second half of the settle window (idle, past the tail
//! of start-up); then it stops the group (SIGTERM, SIGKILL after 10 s). The two binaries
//! alternate (A B, B A, …) so a slow drift of the machine falls on both. Nothing here
//! asserts on time.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::procfs::{clk_tck, parse_rollup, read_stat};

/// How long a window may take to report its first paint before the run fails.
const FIRST_PAINT_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM → SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
const APP_BIN: &str = "cabinet-kiosk";
const EMPTY_BIN: &str = "empty-tauri-window";
const BUILD_HINT: &str = "build both the same way first: cargo build --release \
                          -p cabinet-kiosk-app -p empty-tauri-window -p cabinet-lab \
                          --features tauri/custom-protocol,cabinet-kiosk-app/demo";

/// Arguments of `cabinet-lab bench window`.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// The kiosk window binary [default: `cabinet-kiosk` next to this `cabinet`].
    #[arg(long)]
    app: Option<PathBuf>,
    /// Arguments for the kiosk binary, split at whitespace. With `--demo` and no
    /// `--demo-dir`, each run gets its own demo directory in a temporary directory.
    #[arg(long, default_value = "--demo", allow_hyphen_values = true)]
    app_args: String,
    /// The empty Tauri 2 window [default: `empty-tauri-window` next to this `cabinet`].
    #[arg(long)]
    empty: Option<PathBuf>,
    /// Runs of each binary.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Idle seconds after first paint before memory is read (idle CPU is measured over
    /// the second half).
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// Do not set the kiosk's WebKit environment (`kiosk.webkit_env` defaults) for both
    /// windows; the kiosk then sets it itself by re-executing, the empty window runs without.
    #[arg(long)]
    bare_env: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Which binary a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    App,
    Empty,
}

impl Which {
    fn label(self) -> &'static str {
        match self {
            Which::App => "app",
            Which::Empty => "empty",
        }
    }
}

/// Memory and idle CPU of one process, or of all processes with one name.
#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss_kb: u64,
    pss_kb: u64,
    /// Private_Clean + Private_Dirty: what only this process holds (PSS also counts a
    /// share of libraries mapped by any other process on the machine).
    uss_kb: u64,
    /// CPU over the second half of the settle window, percent of one core.
    cpu_pct: f64,
    count: u32,
}

/// One run of one binary.
#[derive(Debug)]
struct Run {
    which: Which,
    /// Spawn → `first-paint-ms` line read by the harness.
    paint_harness_ms: f64,
    /// The binary's own figure (since its `main`).
    paint_own_ms: u64,
    total: Mem,
    /// By process name (`app` for the process the harness started).
    by_name: BTreeMap<String, Mem>,
    /// WebKit processes on the machine outside this tree when memory was read. They share
    /// library pages with ours, which lowers our PSS and private figures (not RSS).
    others: u32,
}

/// Run the window benchmark.
pub fn bench_window(a: WindowArgs) -> anyhow::Result<ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let here = std::env::current_exe()
        .context("cannot find my own executable")?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let app = a.app.clone().unwrap_or_else(|| here.join(APP_BIN));
    let empty = a.empty.clone().unwrap_or_else(|| here.join(EMPTY_BIN));
    for bin in [&app, &empty] {
        if !bin.is_file() {
            bail!("{} does not exist; {BUILD_HINT}", bin.display());
        }
    }
    let app_args: Vec<String> = a.app_args.split_whitespace().map(str::to_owned).collect();
    let env: BTreeMap<String, String> = if a.bare_env {
        BTreeMap::new()
    } else {
        cabinet_core::config::default_webkit_env()
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect()
    };
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let xvfb = Xvfb::start().context("cannot start Xvfb (apt-get install xvfb)")?;
    let machine = machine_info();
    let load_before = loadavg();
    let clk_tck = clk_tck();

    let mut runs = Vec::new();
    for i in 0..a.runs {
        let order = if i % 2 == 0 {
            [Which::App, Which::Empty]
        } else {
            [Which::Empty, Which::App]
        };
        for which in order {
            let (bin, mut args) = match which {
                Which::App => (&app, app_args.clone()),
                Which::Empty => (&empty, Vec::new()),
            };
            if which == Which::App
                && args.iter().any(|x| x == "--demo")
                && !args.iter().any(|x| x == "--demo-dir")
            {
                args.push("--demo-dir".into());
                args.push(dir.path().join(format!("demo-{i}")).display().to_string());
            }
            let log = dir.path().join(format!("{}-{i}.stderr", which.label()));
            let run = measure(
                which,
                bin,
                &args,
                &env,
                &xvfb.display,
                &log,
                Duration::from_secs(a.settle_secs),
                clk_tck,
            )
            .with_context(|| format!("run {} of {}", i + 1, bin.display()))?;
            if !a.json {
                eprintln!(
                    "  run {}/{} {:5}  first paint {:6.0} ms (own {:5} ms)  RSS {:6.1} MB  PSS {:6.1} MB  idle CPU {:4.1} %  other WebKit processes {}",
                    i + 1,
                    a.runs,
                    which.label(),
                    run.paint_harness_ms,
                    run.paint_own_ms,
                    mb(run.total.rss_kb),
                    mb(run.total.pss_kb),
                    run.total.cpu_pct,
                    run.others
                );
            }
            runs.push(run);
        }
    }
    let setup = Setup {
        app,
        empty,
        app_args,
        env,
        machine,
        load: (load_before, loadavg()),
    };
    drop(xvfb);
    report(&a, &setup, &runs);
    Ok(ExitCode::SUCCESS)
}

/// Starts `bin`, waits for its first paint, lets it idle, reads its tree's memory and CPU,
/// and stops it.
#[allow(clippy::too_many_arguments)]
fn measure(
    which: Which,
    bin: &Path,
    args: &[String],
    env: &BTreeMap<String, String>,
    display: &str,
    log: &Path,
    settle: Duration,
    clk_tck: f64,
) -> anyhow::Result<Run> {
    let stderr =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .envs(env)
        .env("DISPLAY", display)
        .env("CABINET_PRINT_FIRST_PAINT", "1")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .process_group(0);
    let spawned = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id();
    let result = watch(&mut child, spawned, settle, clk_tck, log);
    let stopped = stop(&mut child, pid);
    let (paint_harness_ms, paint_own_ms, (total, by_name), others) = result?;
    stopped?;
    Ok(Run {
        which,
        paint_harness_ms,
        paint_own_ms,
        total,
        by_name,
        others,
    })
}

type Watched = (f64, u64, (Mem, BTreeMap<String, Mem>), u32);

fn watch(
    child: &mut Child,
    spawned: Instant,
    settle: Duration,
    clk_tck: f64,
    log: &Path,
) -> anyhow::Result<Watched> {
    let pid = child.id();
    let stdout = child
        .stdout
        .take()
        .context("the child's stdout is not a pipe")?;
    let lines = read_lines(stdout);
    let deadline = spawned + FIRST_PAINT_TIMEOUT;
    let (painted_at, own_ms) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok((at, line)) => {
                if let Some(n) = line.strip_prefix("first-paint-ms ") {
                    let own = n
                        .trim()
                        .parse::<u64>()
                        .with_context(|| format!("cannot read the first-paint line {line:?}"))?;
                    break (at, own);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "no first-paint-ms line within {} s; its stderr: {}",
                FIRST_PAINT_TIMEOUT.as_secs(),
                tail(log)
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!(
                "it exited ({}) before its first paint; its stderr: {}",
                child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map_or("still running".into(), |s| s.to_string()),
                tail(log)
            ),
        }
    };
    let paint_ms = painted_at.duration_since(spawned).as_secs_f64() * 1000.0;
    // Idle CPU over the second half of the settle window: the first half still holds the
    // tail of start-up (board and broker connecting, the first screens).
    std::thread::sleep(settle / 2);
    let wall_start = Instant::now();
    let cpu_start: HashMap<u32, u64> = descendants(pid)
        .into_iter()
        .filter_map(|p| Some((p, read_stat(p)?.cpu_ticks)))
        .collect();
    std::thread::sleep(settle - settle / 2);
    let mem = tree_memory(pid, &cpu_start, wall_start, clk_tck)?;
    let others = foreign_webkit(&descendants(pid));
    if let Ok(Some(status)) = child.try_wait() {
        bail!(
            "it exited ({status}) while settling; its stderr: {}",
            tail(log)
        );
    }
    Ok((paint_ms, own_ms, mem, others))
}

/// Lines of the child's stdout with the instant each was read.
fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// SIGTERM to the process group, SIGKILL after [`STOP_GRACE`]; then waits until no
/// descendant outlives it (they may have left the group).
fn stop(child: &mut Child, pid: u32) -> anyhow::Result<()> {
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
fn descendants(pid: u32) -> Vec<u32> {
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
fn tree_memory(
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
fn foreign_webkit(tree: &[u32]) -> u32 {
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

/// Last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        format!("\n    {tail}")
    }
}

/// An Xvfb on a display number it picks itself (`-displayfd`); killed on drop.
#[derive(Debug)]
struct Xvfb {
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

#[derive(Debug)]
struct Machine {
    cpu: String,
    cores: usize,
    mem_total_mb: f64,
    kernel: String,
    os: String,
    webkitgtk: String,
}

fn machine_info() -> Machine {
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

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Median, min, max.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(mut v: Vec<f64>) -> Spread {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    Spread {
        median,
        min: v.first().copied().unwrap_or(0.0),
        max: v.last().copied().unwrap_or(0.0),
    }
}

impl Spread {
    fn json(self) -> serde_json::Value {
        serde_json::json!({"median": self.median, "min": self.min, "max": self.max})
    }
}

/// Memory and CPU of one process name (or the tree) over the runs, in MB and % of a core.
#[derive(Debug, Clone, Copy)]
struct Figures {
    rss_mb: Spread,
    pss_mb: Spread,
    uss_mb: Spread,
    cpu_pct: Spread,
    /// Median number of processes.
    count: f64,
}

impl Figures {
    fn of(runs: &[&Run], mem: &dyn Fn(&Run) -> Mem) -> Figures {
        let col = |f: &dyn Fn(Mem) -> f64| spread(runs.iter().map(|r| f(mem(r))).collect());
        Figures {
            rss_mb: col(&|m| mb(m.rss_kb)),
            pss_mb: col(&|m| mb(m.pss_kb)),
            uss_mb: col(&|m| mb(m.uss_kb)),
            cpu_pct: col(&|m| m.cpu_pct),
            count: col(&|m| f64::from(m.count)).median,
        }
    }

    fn json(self) -> serde_json::Value {
        serde_json::json!({
            "rss_mb": self.rss_mb.json(),
            "pss_mb": self.pss_mb.json(),
            "uss_mb": self.uss_mb.json(),
            "idle_cpu_pct_of_one_core": self.cpu_pct.json(),
            "processes": self.count,
        })
    }
}

/// The figures of one binary over its runs.
#[derive(Debug)]
struct Summary {
    runs: usize,
    paint_harness_ms: Spread,
    paint_own_ms: Spread,
    total: Figures,
    /// By process name (`app` for the process the harness started).
    by_name: BTreeMap<String, Figures>,
}

fn summarize(runs: &[&Run]) -> Summary {
    let mut names: Vec<&String> = runs.iter().flat_map(|r| r.by_name.keys()).collect();
    names.sort();
    names.dedup();
    let by_name = names
        .into_iter()
        .map(|name| {
            let mem = |r: &Run| r.by_name.get(name).copied().unwrap_or_default();
            (name.clone(), Figures::of(runs, &mem))
        })
        .collect();
    Summary {
        runs: runs.len(),
        paint_harness_ms: spread(runs.iter().map(|r| r.paint_harness_ms).collect()),
        paint_own_ms: spread(runs.iter().map(|r| r.paint_own_ms as f64).collect()),
        total: Figures::of(runs, &|r| r.total),
        by_name,
    }
}

/// What the report prints besides the runs.
#[derive(Debug)]
struct Setup {
    app: PathBuf,
    empty: PathBuf,
    app_args: Vec<String>,
    env: BTreeMap<String, String>,
    machine: Machine,
    /// Load average before and after.
    load: (String, String),
}

fn report(a: &WindowArgs, setup: &Setup, runs: &[Run]) {
    let Setup {
        app,
        empty,
        app_args,
        env,
        machine: m,
        load,
    } = setup;
    let pick = |w: Which| runs.iter().filter(|r| r.which == w).collect::<Vec<_>>();
    let s_app = summarize(&pick(Which::App));
    let s_empty = summarize(&pick(Which::Empty));
    let diff = |f: fn(&Summary) -> Spread| f(&s_app).median - f(&s_empty).median;
    let d_paint = diff(|s| s.paint_harness_ms);
    let d_rss = diff(|s| s.total.rss_mb);
    let d_pss = diff(|s| s.total.pss_mb);
    let d_uss = diff(|s| s.total.uss_mb);
    // PSS and private memory fall when another WebKit process on the machine shares our
    // library pages: also give the figures over the runs that had the machine alone.
    let crowded = runs.iter().filter(|r| r.others > 0).count();
    let alone = |w: Which| {
        let v: Vec<&Run> = runs
            .iter()
            .filter(|r| r.which == w && r.others == 0)
            .collect();
        (!v.is_empty()).then(|| summarize(&v))
    };
    let alone = match (alone(Which::App), alone(Which::Empty)) {
        (Some(app), Some(empty)) if crowded > 0 => Some((app, empty)),
        _ => None,
    };
    if a.json {
        let side = |s: &Summary| {
            serde_json::json!({
                "first_paint_harness_ms": s.paint_harness_ms.json(),
                "first_paint_own_ms": s.paint_own_ms.json(),
                "total": s.total.json(),
                "by_process": s.by_name.iter()
                    .map(|(n, f)| (n.clone(), f.json()))
                    .collect::<serde_json::Map<_, _>>(),
            })
        };
        let each: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "binary": r.which.label(),
                    "first_paint_harness_ms": r.paint_harness_ms,
                    "first_paint_own_ms": r.paint_own_ms,
                    "rss_kb": r.total.rss_kb,
                    "pss_kb": r.total.pss_kb,
                    "uss_kb": r.total.uss_kb,
                    "idle_cpu_pct": r.total.cpu_pct,
                    "processes": r.total.count,
                    "other_webkit_processes": r.others,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "bench": "window_first_paint_and_footprint",
                "app": app.display().to_string(),
                "app_args": app_args,
                "empty": empty.display().to_string(),
                "webkit_env": env,
                "runs_each": a.runs,
                "settle_s": a.settle_secs,
                "machine": {
                    "cpu": m.cpu, "cores": m.cores, "mem_total_mb": m.mem_total_mb,
                    "kernel": m.kernel, "os": m.os, "webkitgtk": m.webkitgtk,
                    "loadavg_before": load.0, "loadavg_after": load.1,
                },
                "app_window": side(&s_app),
                "empty_window": side(&s_empty),
                "app_minus_empty_median": {
                    "first_paint_harness_ms": d_paint,
                    "rss_mb": d_rss, "pss_mb": d_pss, "uss_mb": d_uss,
                },
                "runs_with_other_webkit_processes": crowded,
                "runs_alone": alone.as_ref().map(|(app, empty)| serde_json::json!({
                    "app": {"runs": app.runs, "total": app.total.json()},
                    "empty": {"runs": empty.runs, "total": empty.total.json()},
                    "app_minus_empty_median": {
                        "pss_mb": app.total.pss_mb.median - empty.total.pss_mb.median,
                        "uss_mb": app.total.uss_mb.median - empty.total.uss_mb.median,
                    },
                })),
                "runs": each,
            })
        );
        return;
    }
    let range = |s: Spread, unit: &str, prec: usize| {
        format!(
            "{:>8.prec$} {unit}  ({:.prec$} – {:.prec$})",
            s.median, s.min, s.max
        )
    };
    println!("Window: first paint and idle footprint, kiosk vs an empty Tauri 2 window");
    println!("  app      {} {}", app.display(), app_args.join(" "));
    println!("  empty    {}", empty.display());
    println!(
        "  runs     {} each, alternating; settle {} s; Xvfb 1080x1920x24; env {}",
        a.runs,
        a.settle_secs,
        if env.is_empty() {
            "as inherited".to_owned()
        } else {
            env.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
    );
    println!(
        "  machine  {} × {} cores, {:.1} GiB, {}, Linux {}, WebKitGTK {}",
        m.cpu,
        m.cores,
        m.mem_total_mb / 1024.0,
        m.os,
        m.kernel,
        m.webkitgtk
    );
    println!("  load     {} before, {} after", load.0, load.1);
    println!("  medians (min – max); USS = private memory (Private_Clean + Private_Dirty)");
    for (label, s) in [("app", &s_app), ("empty", &s_empty)] {
        let t = s.total;
        println!("  {label}");
        println!(
            "    first paint (harness)  {}",
            range(s.paint_harness_ms, "ms", 0)
        );
        println!(
            "    first paint (own)      {}",
            range(s.paint_own_ms, "ms", 0)
        );
        println!("    RSS total              {}", range(t.rss_mb, "MB", 1));
        println!("    PSS total              {}", range(t.pss_mb, "MB", 1));
        println!("    USS total              {}", range(t.uss_mb, "MB", 1));
        println!(
            "    idle CPU (tree)        {}",
            range(t.cpu_pct, "% of a core", 2)
        );
        for (name, f) in &s.by_name {
            println!(
                "      {name:<21} ×{:<2.0} RSS {:6.1}  PSS {:6.1}  USS {:6.1} MB  CPU {:5.2} %",
                f.count, f.rss_mb.median, f.pss_mb.median, f.uss_mb.median, f.cpu_pct.median
            );
        }
    }
    println!("  app − empty (medians)");
    println!("    first paint            {d_paint:>+8.0} ms");
    println!("    RSS                    {d_rss:>+8.1} MB");
    println!("    PSS                    {d_pss:>+8.1} MB");
    println!("    USS                    {d_uss:>+8.1} MB");
    if crowded > 0 {
        println!(
            "  {crowded} of {} runs had other WebKit processes on the machine: they share library \
             pages with ours, so those runs show lower PSS and USS (RSS is unaffected)",
            runs.len()
        );
    }
    if let Some((app, empty)) = &alone {
        println!(
            "  runs alone on the machine (app {}, empty {}): medians (min – max)",
            app.runs, empty.runs
        );
        for (label, s) in [("app", app), ("empty", empty)] {
            println!("    {label:<5} PSS {}", range(s.total.pss_mb, "MB", 1));
            println!("    {label:<5} USS {}", range(s.total.uss_mb, "MB", 1));
        }
        println!(
            "    app − empty  PSS {:+.1} MB, USS {:+.1} MB",
            app.total.pss_mb.median - empty.total.pss_mb.median,
            app.total.uss_mb.median - empty.total.uss_mb.median
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle() {
        let s = spread(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(spread(vec![4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }
}
