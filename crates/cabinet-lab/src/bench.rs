//! `cabinet-lab bench ...`: benchmarks that print figures. Nothing here asserts on time; the
//! figures go into docs/BENCHMARKS.md with the command that produced them.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_board::sim::{SimConfig, Simulator};
use cabinet_board::vmc::VmcBoard;
use cabinet_board::{Board, BoardSettings, Protocol};
use clap::{Args, Subcommand};

use crate::stats::percentile;

/// Arguments of `cabinet-lab bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// VMC POLL reply latency through a real pty, measured at the simulated board.
    Board {
        /// POLLs to measure.
        #[arg(long, default_value_t = 20_000)]
        polls: u64,
        /// Milliseconds between POLLs (the real board: ~200; shorter makes the run quicker
        /// and the host busier).
        #[arg(long, default_value_t = 2)]
        poll_ms: u64,
        /// Dispense commands per second issued meanwhile (0 = POLLs only).
        #[arg(long, default_value_t = 50)]
        dispense_rate: u32,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Dispatch latency: backend publish (QoS 1) -> first byte of the dispense frame at the
    /// simulated board, through a real Mosquitto and the in-process kiosk, with its floor
    /// (broker round trip, journal fsyncs, POLL wait, wire time) measured in the same run.
    Dispatch {
        /// Dispense commands to measure (sent one at a time).
        #[arg(long, default_value_t = 5_000)]
        commands: u32,
        /// Milliseconds between the simulated board's POLLs (the real board: ~200).
        #[arg(long, default_value_t = 2)]
        poll_ms: u64,
        /// Experiment: leave Mosquitto's sockets at its default, Nagle's algorithm on
        /// (the shipped deploy/mosquitto/mosquitto.conf sets `set_tcp_nodelay true`).
        #[arg(long)]
        broker_nagle: bool,
        /// Experiment: extra idle time before each publish, on top of the random pause of
        /// up to one POLL interval (e.g. 60 lets TCP delayed ACKs fire in between).
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
        /// Fill the kiosk's journal with this many finished commands before the run
        /// (0, 100000, 1000000: the latency must not grow with history).
        #[arg(long, default_value_t = 0)]
        history: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A locker wall of five lock boards on one 9600-baud bus: unlocks per second beside
    /// the wire-time limit, with and without health queries, and the delay a health query
    /// adds to a customer's unlock.
    Bus(bus::BusArgs),
    /// Journal commits of a dispense with synchronous=FULL (shipped) against NORMAL.
    Journal {
        /// Dispenses to journal with each setting (six commits each).
        #[arg(long, default_value_t = 5_000)]
        commands: u32,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The technician's search by support code: how long hashing the newest command ids
    /// of a full journal takes (the cabinet is in maintenance meanwhile).
    SupportSearch {
        /// Finished commands in the journal (the search looks at the newest 100,000).
        #[arg(long, default_value_t = 100_000)]
        history: u64,
        /// Searches to time.
        #[arg(long, default_value_t = 20)]
        searches: u32,
    },
    /// The journal over a cabinet's life: a million finished commands, retention run on
    /// them (alone, and beside dispenses), the size before and after, the rejections
    /// ring under a flood, and the size ceiling of the defaults.
    Retention(retention::RetentionArgs),
    /// The fleet simulator at several sizes, one process per size: sustained commands/s,
    /// p99 latency and memory per cabinet.
    Scale(scale::ScaleArgs),
    /// Headless kiosk (`cabinet run`): start -> subscribed, then idle RSS and CPU.
    Footprint(footprint::FootprintArgs),
    /// Time to first paint and idle memory (RSS, PSS) of the kiosk window and its WebKit
    /// processes, beside an empty Tauri 2 window built the same way, on a private Xvfb.
    Window(window::WindowArgs),
}

/// Run a benchmark.
pub fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    match a.what {
        BenchWhat::Board {
            polls,
            poll_ms,
            dispense_rate,
            json,
        } => bench_board(polls, poll_ms, dispense_rate, json),
        BenchWhat::Dispatch {
            commands,
            poll_ms,
            broker_nagle,
            pause_ms,
            history,
            json,
        } => dispatch::bench_dispatch(commands, poll_ms, !broker_nagle, pause_ms, history, json),
        BenchWhat::Bus(args) => bus::bench_bus(args),
        BenchWhat::Journal { commands, json } => journal::bench_journal(commands, json),
        BenchWhat::SupportSearch { history, searches } => {
            journal::bench_support_search(history, searches)
        }
        BenchWhat::Retention(args) => retention::bench_retention(args),
        BenchWhat::Scale(args) => scale::bench_scale(args),
        BenchWhat::Footprint(args) => footprint::bench_footprint(args),
        BenchWhat::Window(args) => window::bench_window(args),
    }
}

fn bench_board(polls: u64, poll_ms: u64, rate: u32, json: bool) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let link = dir.path().join("board");
    let mut cfg = SimConfig::new(Protocol::Vmc);
    cfg.link = Some(link.clone());
    cfg.poll_interval = Duration::from_millis(poll_ms.max(1));
    cfg.motor_time = Duration::from_millis(5);
    cfg.record_latencies = true;
    cfg.stock = u32::MAX;
    let deadline = cfg.host_deadline;
    let sim = Simulator::start(cfg).context("cannot start the simulator")?;
    let board = VmcBoard::open(&BoardSettings::new(Protocol::Vmc, &link))?;
    if !board.wait_ready(Duration::from_secs(5)) {
        bail!("the simulated board never polled");
    }
    let _ = sim.take_latencies();
    let start_polls = sim.stats().poll_replies;
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let mut dispensed = 0u64;
    std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut n = 0u64;
            if rate == 0 {
                return n;
            }
            let every = Duration::from_secs(1) / rate;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let _ = board.dispense(1 + (n % 60) as u16);
                n += 1;
                next += every;
                // Pacing the load generator, not synchronisation.
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            n
        });
        let target = start_polls + polls;
        sim.wait_until(
            Duration::from_secs(polls * poll_ms.max(1) / 1000 * 4 + 60),
            |st| st.poll_replies >= target,
        );
        stop.store(true, Ordering::Relaxed);
        dispensed = load.join().unwrap_or(0);
    });
    let elapsed = started.elapsed();
    let mut lat = sim.take_latencies();
    lat.sort_unstable();
    let stats = sim.stats();
    let missed = lat
        .iter()
        .filter(|us| u128::from(**us) > deadline.as_micros())
        .count();
    let (p50, p99, max) = (
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(0),
    );
    // A pty has no baud delay: on a real cable POLL (5 bytes) and the answer (5 bytes for
    // ACK, 10 for a dispense) add wire time at 57600 baud.
    let wire_us = cabinet_board::wire_time(10, 57_600).as_micros();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "vmc_poll_reply",
                "polls": lat.len(),
                "poll_interval_ms": poll_ms,
                "dispense_rate_per_s": rate,
                "dispenses_done": dispensed,
                "motor_actions": stats.motor_actions,
                "p50_us": p50, "p99_us": p99, "max_us": max,
                "deadline_us": deadline.as_micros(),
                "missed_deadlines": missed,
                "wire_time_poll_plus_ack_us": wire_us,
                "elapsed_s": elapsed.as_secs_f64(),
            })
        );
    } else {
        println!("VMC POLL reply latency (simulated board -> pty -> driver -> pty -> board)");
        println!("  polls measured     {}", lat.len());
        println!(
            "  poll interval      {poll_ms} ms, dispenses meanwhile {dispensed} ({rate}/s target)"
        );
        println!("  p50 / p99 / max    {p50} us / {p99} us / {max} us");
        println!(
            "  deadline           {} us; missed {missed}",
            deadline.as_micros()
        );
        println!(
            "  headroom at p99    {:.0}x",
            deadline.as_micros() as f64 / f64::from(p99.max(1))
        );
        println!("  + wire time on a real cable (POLL+ACK, 57600 8N1): {wire_us} us");
        println!("  elapsed            {:.1} s", elapsed.as_secs_f64());
    }
    drop(board);
    drop(sim);
    Ok(ExitCode::SUCCESS)
}

mod bus;
mod dispatch;
mod footprint;
mod journal;
mod retention;
mod scale;
mod window;
