//! Retention run to completion on a full journal: alone (batch by batch, no pause: its
//! throughput), and as the kiosk runs it, on a second connection that gives way to the
//! engine's, beside dispenses (their latency while it runs).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use cabinet_core::journal::{Durability, Journal};
use cabinet_core::retention::{PRUNE_BATCH, Retention, Step};

use super::dispense::{Ids, Lat, dispense, now_ms, pace, release_outbox, us};
use super::file::{count, file_len, wal_path};
use crate::xorshift::XorShift;

/// The pause `cabinet_core::upkeep` makes between two batches.
const BETWEEN_BATCHES: Duration = Duration::from_millis(5);

/// Retention alone, batch by batch as [`Journal::prune`] makes them but without pauses
/// and without the final release, so the size before it can be seen.
#[derive(Debug, Default, serde::Serialize)]
pub(super) struct Alone {
    pub(super) commands: u64,
    pub(super) transitions: u64,
    pub(super) batches: u64,
    pub(super) wall_s: f64,
    pub(super) commands_per_s: f64,
    pub(super) rows_per_s: f64,
    pub(super) batch_p50_ms: f64,
    pub(super) batch_max_ms: f64,
    pub(super) wal_peak: u64,
    pub(super) release_s: f64,
    pub(super) wal_after_release: u64,
    pub(super) compact_s: f64,
}

pub(super) fn prune_alone(path: &Path, now: i64) -> anyhow::Result<Alone> {
    let r = Retention::default();
    let mut p = Journal::open_with(path, Durability::Full)?;
    let mut out = Alone::default();
    let mut batch_ms = Vec::new();
    let t0 = Instant::now();
    loop {
        let tb = Instant::now();
        let b = p.prune_batch(&r, now, PRUNE_BATCH)?;
        batch_ms.push(tb.elapsed().as_secs_f64() * 1000.0);
        out.commands += b.commands;
        out.transitions += b.transitions;
        out.batches += 1;
        out.wal_peak = out.wal_peak.max(file_len(&wal_path(path)));
        if b.commands < PRUNE_BATCH as u64 {
            break;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    out.wall_s = wall;
    out.commands_per_s = out.commands as f64 / wall;
    out.rows_per_s = (out.commands + out.transitions) as f64 / wall;
    batch_ms.sort_by(f64::total_cmp);
    out.batch_p50_ms = batch_ms[batch_ms.len() / 2];
    out.batch_max_ms = batch_ms.last().copied().unwrap_or(0.0);
    Ok(out)
}

/// Retention as the kiosk runs it, beside dispenses.
#[derive(Debug, Default, serde::Serialize)]
pub(super) struct Concurrent {
    pub(super) batch: usize,
    /// The pruner gave way to the engine (as the kiosk's does).
    pub(super) give_way: bool,
    /// Times the engine's connection waited for the write lock during the prune.
    pub(super) engine_waits: u64,
    /// Batches that stopped early for the engine.
    pub(super) gave_way: u64,
    pub(super) commands: u64,
    pub(super) transitions: u64,
    pub(super) wall_s: f64,
    /// Batches (each followed by the pause), their duration.
    pub(super) batches: u64,
    pub(super) batch_ms: Spread,
    /// The steps that hand free pages back after the batches (incremental auto-vacuum
    /// only), their duration, and how long that phase took.
    pub(super) release_steps: u64,
    pub(super) release_step_ms: Spread,
    pub(super) release_s: f64,
    /// Dispenses that began while batches ran, and while pages were handed back.
    pub(super) during_batches: Lat,
    pub(super) during_release: Lat,
    /// Dispenses slower than 50 ms, 100 ms, 1 s (both phases).
    pub(super) over_50ms: u64,
    pub(super) over_100ms: u64,
    pub(super) over_1s: u64,
    /// Dispenses that failed (the write lock not obtained within the busy timeout).
    pub(super) failed: u64,
    pub(super) first_error: Option<String>,
    /// Prune passes that failed (then the next one ran).
    pub(super) failed_passes: u64,
    pub(super) first_pass_error: Option<String>,
    pub(super) wal_peak: u64,
}

/// p50, p99 and max of durations in ms.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub(super) struct Spread {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    fn of(spans: &[(Instant, Instant)]) -> Spread {
        let mut ms: Vec<f64> = spans
            .iter()
            .map(|(a, b)| b.duration_since(*a).as_secs_f64() * 1000.0)
            .collect();
        if ms.is_empty() {
            return Spread::default();
        }
        ms.sort_by(f64::total_cmp);
        let at = |p: usize| ms[(ms.len() * p).div_ceil(100).clamp(1, ms.len()) - 1];
        Spread {
            p50: at(50),
            p99: at(99),
            max: ms[ms.len() - 1],
        }
    }

    pub(super) fn text(&self) -> String {
        format!(
            "p50 {:.1} / p99 {:.1} / max {:.1} ms",
            self.p50, self.p99, self.max
        )
    }
}

pub(super) fn prune_beside_dispenses(
    path: &Path,
    batch: usize,
    give_way: bool,
    rng: &mut XorShift,
) -> anyhow::Result<Concurrent> {
    let mut engine = Journal::open(path)?;
    // Opened before the prune starts: opening checks the file, which takes a while.
    // Then made what the kiosk's pass uses: a second connection that gives way to the
    // engine's.
    let mut pruner = Journal::open_with(path, Durability::Full)?;
    let waits = engine.lock_waits();
    if give_way {
        pruner.give_way_to(engine.lock_waits());
    }
    let started = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let mut out = Concurrent {
        batch,
        give_way,
        ..Concurrent::default()
    };
    let mut samples: Vec<(Instant, u32, u32)> = Vec::new();
    let transitions_before = count(path, "SELECT COUNT(*) FROM command_transitions")?;
    let start_ms = now_ms();
    let waits_before = waits.count();
    let (pruned, steps, t_start, t_end) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            // (start, end, step) of each step of the prune: its batches, then the steps
            // that hand free pages back.
            let mut steps: Vec<(Instant, Instant, Step)> = Vec::new();
            let now = now_ms();
            let t0 = Instant::now();
            let mut step_start = t0;
            started.store(true, Ordering::Release);
            let mut between = |step: Step| {
                steps.push((step_start, Instant::now(), step));
                std::thread::sleep(BETWEEN_BATCHES);
                step_start = Instant::now();
                true
            };
            let r = Retention::default();
            // A pass that fails (the write lock not obtained within the busy timeout)
            // is followed by the next, as in the kiosk (every 5 minutes there).
            let mut failed: Vec<String> = Vec::new();
            while failed.len() < 20 {
                match pruner.prune_in_batches_of(&r, now, batch, &mut between) {
                    Ok(_) => break,
                    Err(e) => failed.push(e.to_string()),
                }
            }
            let t1 = Instant::now();
            done.store(true, Ordering::Release);
            (failed, steps, t0, t1)
        });
        while !started.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let mut i = 0u32;
        while !done.load(Ordering::Acquire) {
            pace(rng);
            let t = Instant::now();
            match dispense(&mut engine, &Ids::new(rng), 1 + (i % 60) as u16, None) {
                Ok((two, three)) => samples.push((t, us(two), us(three))),
                Err(e) => {
                    out.failed += 1;
                    out.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
            if let Err(e) = release_outbox(&mut engine) {
                out.failed += 1;
                out.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            out.wal_peak = out.wal_peak.max(file_len(&wal_path(path)));
            i += 1;
        }
        h.join()
            .map_err(|_| anyhow::anyhow!("the prune thread panicked"))
    })?;
    let pass_errors = pruned;
    out.failed_passes = pass_errors.len() as u64;
    out.first_pass_error = pass_errors.first().cloned();
    if pass_errors.len() >= 20 {
        bail!("the prune failed 20 times: {pass_errors:?}");
    }
    out.engine_waits = waits.count() - waits_before;
    out.commands = pruner.commands_pruned()?;
    let transitions_after = count(path, "SELECT COUNT(*) FROM command_transitions")?;
    let added = count(
        path,
        &format!("SELECT COUNT(*) FROM command_transitions WHERE at >= {start_ms}"),
    )?;
    out.transitions = u64::try_from(transitions_before + added - transitions_after).unwrap_or(0);
    out.wall_s = t_end.duration_since(t_start).as_secs_f64();
    let batches: Vec<(Instant, Instant)> = steps
        .iter()
        .filter(|s| matches!(s.2, Step::Batch { .. }))
        .map(|s| (s.0, s.1))
        .collect();
    let released: Vec<(Instant, Instant)> = steps
        .iter()
        .filter(|s| s.2 == Step::Released)
        .map(|s| (s.0, s.1))
        .collect();
    out.batches = batches.len() as u64;
    out.gave_way = steps
        .iter()
        .filter(|s| matches!(s.2, Step::Batch { gave_way: true, .. }))
        .count() as u64;
    out.batch_ms = Spread::of(&batches);
    out.release_steps = released.len() as u64;
    out.release_step_ms = Spread::of(&released);
    // The release begins when the last batch ends.
    let release_from = batches.last().map_or(t_end, |s| s.1);
    out.release_s = t_end.duration_since(release_from).as_secs_f64();
    let phase = |from: Instant, to: Instant| -> Vec<(u32, u32)> {
        samples
            .iter()
            .filter(|s| s.0 >= from && s.0 < to)
            .map(|s| (s.1, s.2))
            .collect()
    };
    let during = phase(t_start, t_end);
    for (_, three) in &during {
        out.over_50ms += u64::from(*three > 50_000);
        out.over_100ms += u64::from(*three > 100_000);
        out.over_1s += u64::from(*three > 1_000_000);
    }
    out.during_batches = Lat::of(&phase(t_start, release_from));
    out.during_release = Lat::of(&phase(release_from, t_end));
    Ok(out)
}
