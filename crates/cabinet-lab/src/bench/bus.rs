//! `cabinet-lab bench bus`: a locker wall of five lock boards on one RS-485 bus at 9600
//! baud, through a real pty whose simulated boards hold each reply for the wire time a real
//! line would take. How many unlocks per second the bus carries (with and without health
//! queries running beside them) next to its wire-time limit, and how much a health query
//! delays a customer's unlock.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use cabinet_board::lockboard::{LockFrame, codec};
use cabinet_board::sim::{SimConfig, Simulator};
use cabinet_board::{Board, BoardSettings, BoardSpec, Cabinet, Outcome, Protocol, SlotRoute};
use clap::Args;

use crate::stats::percentile;

const BAUD: u32 = 9_600;
const BOARDS: u8 = 5;
const CHANNELS: u16 = 24;

/// Arguments of `cabinet-lab bench bus`.
#[derive(Debug, Args)]
pub struct BusArgs {
    /// Unlocks per phase.
    #[arg(long, default_value_t = 500)]
    unlocks: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// One phase's figures.
#[derive(Debug, serde::Serialize)]
struct Phase {
    unlocks: u32,
    unlocks_per_s: f64,
    health_queries: u64,
    p50_us: u32,
    p99_us: u32,
    max_us: u32,
}

pub fn bench_bus(a: BusArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let bus = dir.path().join("bus");
    let mut cfg = SimConfig::new(Protocol::Lockboard);
    cfg.link = Some(bus.clone());
    cfg.address = 1;
    cfg.slots = CHANNELS;
    cfg.neighbours = (2..=BOARDS).map(|a| (a, CHANNELS)).collect();
    cfg.wire_baud = Some(BAUD);
    let sim = Simulator::start(cfg).context("cannot start the simulated wall")?;

    let specs: Vec<BoardSpec> = (1..=BOARDS)
        .map(|address| {
            let mut s = BoardSettings::new(Protocol::Lockboard, &bus);
            s.lockboard.address = address;
            s.lockboard.channels = CHANNELS;
            BoardSpec {
                name: format!("wall-{address}"),
                settings: s,
            }
        })
        .collect();
    let mut routes = BTreeMap::new();
    for board in 0..usize::from(BOARDS) {
        for channel in 1..=CHANNELS {
            let slot = u16::try_from(board).unwrap_or(0) * CHANNELS + channel;
            routes.insert(slot, SlotRoute { board, channel });
        }
    }
    let slots: Vec<u16> = routes.keys().copied().collect();
    let cabinet = Arc::new(Cabinet::open_lenient(&specs, routes).context("cannot open the wall")?);
    anyhow::ensure!(
        cabinet.wait_ready(Duration::from_secs(10)),
        "the simulated wall does not answer"
    );

    // One customer at a time: each unlock's latency, idle bus and with health queries.
    let alone = phase(&cabinet, &slots, a.unlocks, 1, false)?;
    let beside_health = phase(&cabinet, &slots, a.unlocks, 1, true)?;
    // Every board busy at once (one thread each): what the bus carries.
    let saturated = phase(&cabinet, &slots, a.unlocks, usize::from(BOARDS), false)?;
    let saturated_health = phase(&cabinet, &slots, a.unlocks, usize::from(BOARDS), true)?;

    let unlock_bytes = codec::encode(&LockFrame::Unlock {
        board: 1,
        channel: 1,
    })
    .len()
        + codec::encode(&LockFrame::unlock_reply(1, 1, true)).len();
    let query_bytes = codec::encode(&LockFrame::Query { board: 1 }).len()
        + codec::encode(&LockFrame::QueryReply {
            board: 1,
            status: vec![0; usize::from(CHANNELS).div_ceil(8)],
        })
        .len();
    let unlock_wire = cabinet_board::wire_time(unlock_bytes, BAUD);
    let query_wire = cabinet_board::wire_time(query_bytes, BAUD);
    let limit = 1.0 / unlock_wire.as_secs_f64();
    let added_p99 = i64::from(beside_health.p99_us) - i64::from(alone.p99_us);
    let stats = sim.stats();
    let unlocked: u64 = stats.unlock_actions
        + stats
            .neighbour_unlocks
            .values()
            .flat_map(|m| m.values())
            .sum::<u64>();

    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "lock_bus",
                "boards": BOARDS, "channels": CHANNELS, "baud": BAUD,
                "unlock_exchange_bytes": unlock_bytes,
                "unlock_wire_us": unlock_wire.as_micros(),
                "query_exchange_bytes": query_bytes,
                "query_wire_us": query_wire.as_micros(),
                "wire_limit_unlocks_per_s": limit,
                "one_customer": alone,
                "one_customer_beside_health": beside_health,
                "all_boards": saturated,
                "all_boards_beside_health": saturated_health,
                "health_adds_to_p99_us": added_p99,
                "unlocks_at_the_boards": unlocked,
            })
        );
    } else {
        println!(
            "Lock-board bus: {BOARDS} boards x {CHANNELS} doors on one pty at {BAUD} baud (wire time played by the boards)"
        );
        println!(
            "  unlock exchange     {unlock_bytes} bytes = {} us on the wire: limit {limit:.1} unlocks/s",
            unlock_wire.as_micros()
        );
        println!(
            "  query exchange      {query_bytes} bytes = {} us on the wire",
            query_wire.as_micros()
        );
        for (name, p) in [
            ("one customer", &alone),
            ("one customer + health", &beside_health),
            ("all boards at once", &saturated),
            ("all boards + health", &saturated_health),
        ] {
            println!(
                "  {name:<22} {:>6.1} unlocks/s ({:.0} % of the wire limit); latency p50 {} us, p99 {} us, max {} us; {} health queries",
                p.unlocks_per_s,
                100.0 * p.unlocks_per_s / limit,
                p.p50_us,
                p.p99_us,
                p.max_us,
                p.health_queries
            );
        }
        println!("  health queries add to one customer's p99: {added_p99} us");
        println!("  unlocks counted at the boards: {unlocked}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `unlocks` unlocks from `customers` threads (each on its own board's doors when there are
/// several), with a health thread asking the whole wall meanwhile when `health`.
fn phase(
    cabinet: &Arc<Cabinet>,
    slots: &[u16],
    unlocks: u32,
    customers: usize,
    health: bool,
) -> anyhow::Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(AtomicU64::new(0));
    let health_thread = health.then(|| {
        let (c, stop, queries) = (Arc::clone(cabinet), Arc::clone(&stop), Arc::clone(&queries));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // The kiosk asks every kiosk.board_check_secs; here back to back: the worst.
                let _ = c.machine_status();
                queries.fetch_add(u64::from(BOARDS), Ordering::Relaxed);
            }
        })
    });
    let per = unlocks / u32::try_from(customers).unwrap_or(1);
    let start = Instant::now();
    let threads: Vec<_> = (0..customers)
        .map(|t| {
            let c = Arc::clone(cabinet);
            // With several customers, thread t keeps to board t's doors.
            let mine: Vec<u16> = if customers == 1 {
                slots.to_vec()
            } else {
                slots
                    .iter()
                    .copied()
                    .filter(|s| usize::from((s - 1) / CHANNELS) == t)
                    .collect()
            };
            std::thread::spawn(move || -> Result<Vec<u32>, String> {
                let mut lat = Vec::with_capacity(per as usize);
                for i in 0..per as usize {
                    let slot = mine[i % mine.len()];
                    let t0 = Instant::now();
                    let out = c.dispense(slot);
                    let us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
                    if out != Outcome::DoorOpened {
                        return Err(format!("slot {slot}: {out:?}"));
                    }
                    lat.push(us);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in threads {
        let got = t
            .join()
            .map_err(|_| anyhow::anyhow!("a customer thread panicked"))?
            .map_err(|e| anyhow::anyhow!("an unlock failed: {e}"))?;
        lat.extend(got);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = health_thread {
        let _ = h.join();
    }
    lat.sort_unstable();
    let done = u32::try_from(lat.len()).unwrap_or(u32::MAX);
    Ok(Phase {
        unlocks: done,
        unlocks_per_s: f64::from(done) / elapsed.as_secs_f64(),
        health_queries: queries.load(Ordering::Relaxed),
        p50_us: percentile(&lat, 50.0),
        p99_us: percentile(&lat, 99.0),
        max_us: lat.last().copied().unwrap_or(0),
    })
}
