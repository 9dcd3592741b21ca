//! `cabinet-lab bench footprint`: the headless kiosk as a cabinet runs it (`cabinet run`, a
//! separate process, release build) against a real Mosquitto and the VMC simulator on a
//! pty at the real board's POLL cadence: time from start to subscribed, to ready and to the
//! first dispense on the wire, then resident memory and CPU while it idles.
//!
//! "Subscribed" is when the backend receives the kiosk's retained "online" birth: the
//! kiosk sends SUBSCRIBE before the birth on the same connection, so the broker has the
//! subscription by then and a command published now reaches the cabinet.
//!
//! "Ready" is subscribed *and* the board answering: the moment the kiosk tells systemd
//! `READY=1` (read here from a notify socket of our own). Before each start a signed
//! command waits in the cabinet's broker session, as orders do while a cabinet restarts;
//! "first dispense" is when the simulated board reads the first byte of its motor command.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_board::Protocol;
use cabinet_board::sim::{SimConfig, Simulator};
use cabinet_core::protocol;
use clap::Args;

use super::dispatch::{MACHINE, sign, write_config};
use crate::loopback::live_online;
use crate::mosquitto::Broker;
use crate::procfs::{cpu_seconds, parse_rollup, rss_kib, status_field};

/// The open-source locker client measured on this machine (issue 8): idle RSS and start
/// to subscribed.
const REFERENCE_RSS_KIB: u64 = 72 * 1024;
const REFERENCE_START_MS: f64 = 600.0;

/// Arguments of `cabinet-lab bench footprint`.
#[derive(Debug, Args)]
pub struct FootprintArgs {
    /// Starts to time (the median is reported).
    #[arg(long, default_value_t = 5)]
    starts: u32,
    /// Seconds of idling to measure RSS and CPU over.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Milliseconds between the simulated board's POLLs (the real board: ~200).
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    /// The `cabinet` binary to measure (default: the one beside this program).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Finished commands put in the journal before the first start: a cabinet's journal
    /// after months (start-up checks and reads the whole file, so memory may grow with it).
    #[arg(long, default_value_t = 0)]
    history: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// A `cabinet run` child, stopped with SIGTERM (and killed if it ignores it) on drop.
struct Kiosk(Child);

impl Kiosk {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Kiosk {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            // Waiting for a child to exit; there is nothing to await.
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run the benchmark and print its figures.
pub fn bench_footprint(a: FootprintArgs) -> anyhow::Result<ExitCode> {
    let bin = match a.binary {
        Some(b) => b,
        None => crate::beside_me("cabinet")?,
    };
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let broker = Broker::start(true)?;
    let link = dir.path().join("board");
    let mut sc = SimConfig::new(Protocol::Vmc);
    sc.link = Some(link.clone());
    sc.poll_interval = Duration::from_millis(a.poll_ms.max(1));
    sc.record_dispense_times = true;
    let sim = Simulator::start(sc).context("cannot start the simulator")?;
    let (key, public) = protocol::generate_keypair()?;
    let cfg = write_config(dir.path(), broker.port, &public, &link, 10);
    if a.history > 0 {
        // write_config names the journal relative to the config's directory.
        super::journal::fill_history(&dir.path().join("journal.sqlite3"), a.history)?;
    }
    let journal_kib =
        std::fs::metadata(dir.path().join("journal.sqlite3")).map_or(0, |m| m.len()) >> 10;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut starts_ms = Vec::new();
    let mut ready_ms = Vec::new();
    let mut dispense_ms = Vec::new();
    let mut last = None;
    // Start 0 only creates the cabinet's broker session (a command published before the
    // cabinet ever connected would not be queued for it); it is not timed.
    for i in 0..=a.starts.max(1) {
        // Each start: a fresh backend session (so the retained birth of the previous
        // start is not mistaken for this one), then spawn and wait for this boot's birth.
        let mut backend = rt.block_on(broker.backend(&format!("bench-footprint-{i}"), MACHINE))?;
        // Drop last start's kiosk first (it publishes "offline" as it goes).
        drop(last.take());
        if i > 0 {
            // An order waiting in the cabinet's session while it is down.
            let token = sign(&key, &format!("footprint-{i}"), 1 + (i % 10) as u16)?;
            rt.block_on(backend.send_command(MACHINE, &token))?;
        }
        sim.take_dispense_times();
        let notify = NotifyWatch::bind(dir.path(), i)?;
        let t0 = Instant::now();
        let child = Command::new(&bin)
            .args(["run", "--quiet", "--config"])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &notify.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let kiosk = Kiosk(child);
        let online = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), live_online(&mut backend))
                .await
                .ok()
                .flatten()
                .map(|()| t0.elapsed())
        });
        let Some(online) = online else {
            bail!("the kiosk never came online (start {i})");
        };
        let Some(ready) = notify.ready_after(t0) else {
            bail!("the kiosk never told systemd it was ready (start {i})");
        };
        if i > 0 {
            let ok = sim.wait_until(STEP, |s| s.motor_actions >= u64::from(i));
            let first = sim.take_dispense_times().first().map(|(_, at)| *at);
            let Some(at) = first.filter(|_| ok) else {
                bail!("the waiting order never reached the board (start {i})");
            };
            starts_ms.push(online.as_secs_f64() * 1000.0);
            ready_ms.push(ready.as_secs_f64() * 1000.0);
            dispense_ms.push(at.saturating_duration_since(t0).as_secs_f64() * 1000.0);
        }
        last = Some(kiosk);
    }
    let Some(kiosk) = last else {
        bail!("no kiosk ran");
    };
    let pid = kiosk.pid();
    // Let start-up work (journal migration check, first health check) finish.
    std::thread::sleep(Duration::from_secs(3));
    let rss0 = rss_kib(pid).unwrap_or(0);
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let polls0 = sim.stats().poll_replies;
    let t_idle = Instant::now();
    let mut rss_max = rss0;
    while t_idle.elapsed() < Duration::from_secs(a.idle_secs) {
        // Sampling once a second; this is a measurement loop, not synchronisation.
        std::thread::sleep(Duration::from_secs(1));
        rss_max = rss_max.max(rss_kib(pid).unwrap_or(0));
    }
    let idle = t_idle.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    let rss1 = rss_kib(pid).unwrap_or(0);
    // Proportional set size: shared pages divided among their users.
    let pss = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map_or(0, |t| parse_rollup(&t).1);
    let n_threads = status_field(pid, "Threads").unwrap_or(0);
    let anon = status_field(pid, "RssAnon").unwrap_or(0);
    let file = status_field(pid, "RssFile").unwrap_or(0);
    let polls = sim.stats().poll_replies - polls0;
    drop(kiosk);
    let median = median_of(&starts_ms);
    let ready_median = median_of(&ready_ms);
    let dispense_median = median_of(&dispense_ms);
    let cpu_pct = cpu / idle * 100.0;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "headless_footprint",
                "binary": bin.display().to_string(),
                "history_commands": a.history,
                "journal_kib_at_first_start": journal_kib,
                "start_to_subscribed_ms": {"median": median, "all": starts_ms},
                "start_to_ready_ms": {"median": ready_median, "all": ready_ms},
                "start_to_first_dispense_ms": {"median": dispense_median, "all": dispense_ms},
                "idle_s": idle,
                "poll_ms": a.poll_ms,
                "polls_answered_while_idle": polls,
                "idle_cpu_percent_of_one_core": cpu_pct,
                "rss_kib": {"start_of_idle": rss0, "end_of_idle": rss1, "max": rss_max},
                "pss_kib": pss,
                "rss_anon_kib": anon,
                "rss_file_kib": file,
                "threads": n_threads,
                "reference": {"rss_kib": REFERENCE_RSS_KIB, "start_to_subscribed_ms": REFERENCE_START_MS},
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("Headless kiosk footprint: `cabinet run` against Mosquitto and the VMC simulator");
    println!("  binary               {}", bin.display());
    println!(
        "  journal              {} finished commands at the first start ({journal_kib} KiB)",
        a.history
    );
    println!(
        "  start -> subscribed  median {median:.1} ms over {} starts {:?}  (reference client: {REFERENCE_START_MS:.0} ms, {:.1}x)",
        starts_ms.len(),
        starts_ms
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>(),
        REFERENCE_START_MS / median.max(0.001)
    );
    println!(
        "  start -> ready       median {ready_median:.1} ms {:?}  (subscribed and the board answering: systemd READY=1)",
        ready_ms
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
    );
    println!(
        "  start -> 1st motor   median {dispense_median:.1} ms {:?}  (an order waiting in the broker, its motor command on the wire)",
        dispense_ms
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
    );
    println!(
        "  idle {idle:.0} s           CPU {cpu_pct:.3} % of one core ({cpu:.2} s), answering {polls} POLLs ({} ms cadence)",
        a.poll_ms
    );
    println!(
        "  RSS                  {rss0} KiB at start of idle, {rss1} KiB at end, max {rss_max} KiB  (reference client: {REFERENCE_RSS_KIB} KiB, {:.1}x)",
        REFERENCE_RSS_KIB as f64 / rss_max.max(1) as f64
    );
    println!(
        "  of which             {anon} KiB anonymous (heap, stacks), {file} KiB file-backed (the binary, libraries)"
    );
    println!("  PSS                  {pss} KiB; {n_threads} threads");
    Ok(ExitCode::SUCCESS)
}

/// Any single wait for the board in this benchmark.
const STEP: Duration = Duration::from_secs(30);

fn median_of(v: &[f64]) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// A systemd notify socket of our own: a thread notes when `READY=1` arrives.
struct NotifyWatch {
    path: PathBuf,
    ready: std::sync::mpsc::Receiver<Instant>,
}

impl NotifyWatch {
    fn bind(dir: &std::path::Path, i: u32) -> anyhow::Result<NotifyWatch> {
        let path = dir.join(format!("notify-{i}.sock"));
        let sock = std::os::unix::net::UnixDatagram::bind(&path)
            .with_context(|| format!("cannot bind {}", path.display()))?;
        sock.set_read_timeout(Some(STEP))?;
        let (tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let at = Instant::now();
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.lines().any(|l| l == "READY=1") {
                    let _ = tx.send(at);
                    return;
                }
            }
        });
        Ok(NotifyWatch { path, ready })
    }

    /// How long after `t0` the kiosk said READY=1 (waits up to [`STEP`]).
    fn ready_after(&self, t0: Instant) -> Option<Duration> {
        self.ready
            .recv_timeout(STEP)
            .ok()
            .map(|at| at.saturating_duration_since(t0))
    }
}
