//! The benchmark's run: its arguments, the steps in the order the module doc lists them,
//! and what it prints (text as it goes, or one JSON object at the end).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use cabinet_core::config::{CLOCK_SKEW_CEILING_SECS, TOKEN_LIFETIME_CEILING_SECS};
use cabinet_core::journal::{Journal, RejectionLimits};
use cabinet_core::retention::{PRUNE_BATCH, Retention};
use clap::Args;

use super::dispense::{dispatch, now_ms};
use super::file::{MIB, auto_vacuum, checkpoint, file_len, rows, size, tree_bytes, wal_path};
use super::fill::{fill, flood};
use super::prune::{prune_alone, prune_beside_dispenses};
use crate::xorshift::XorShift;

/// What the WAL is truncated to after a checkpoint (`journal_size_limit`).
const WAL_LIMIT: u64 = 4 * 1024 * 1024;
/// The B-trees that hold commands: the table, its primary key, its indexes, and the
/// transitions with theirs.
const COMMAND_TREES: &[&str] = &[
    "commands",
    "sqlite_autoindex_commands_1",
    "commands_by_log_id",
    "commands_by_state",
    "commands_by_received",
    "command_transitions",
    "transitions_by_cmd",
];

/// Arguments of `cabinet-lab bench retention`.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Finished commands to fill the journal with.
    #[arg(long, default_value_t = 1_000_000)]
    commands: u64,
    /// Days over which they were received (ending now).
    #[arg(long, default_value_t = 60)]
    days: u64,
    /// Dispenses journaled per latency figure (before, after; during a prune: as many as
    /// the prune lasts, at least this many are not guaranteed).
    #[arg(long, default_value_t = 2_000)]
    dispatches: u32,
    /// Untrusted payloads recorded for the rejections ring figure.
    #[arg(long, default_value_t = 100_000)]
    rejections: u64,
    /// Create the journal file as releases before retention did (`auto_vacuum = NONE`),
    /// as a journal upgraded in the field is. By default the file is created by this
    /// release's code (`auto_vacuum = INCREMENTAL`).
    #[arg(long)]
    legacy_file: bool,
    /// Commands per prune batch beside the dispenses at most (an experiment: the kiosk
    /// uses `PRUNE_BATCH`).
    #[arg(long, default_value_t = PRUNE_BATCH)]
    batch: usize,
    /// Experiment: the pruner does not give way to the engine (as before it did): a
    /// batch runs to its end while a dispense waits.
    #[arg(long)]
    no_give_way: bool,
    /// Fill the journal where it is measured (on disk, slower) instead of on /dev/shm and
    /// copying it over (the file is the same; the fill is set-up, not measured).
    #[arg(long)]
    fill_in_place: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Run the benchmark and print its figures (text as they come, or JSON at the end).
pub fn bench_retention(a: RetentionArgs) -> anyhow::Result<ExitCode> {
    if a.commands == 0 {
        bail!("--commands must be at least 1");
    }
    let text = !a.json;
    let say = |line: String| {
        if text {
            println!("{line}");
        }
    };
    let m = |b: u64| format!("{:.1} MiB", b as f64 / MIB);
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let path_a = dir.path().join("a").join("journal.sqlite3");
    let path_b = dir.path().join("b").join("journal.sqlite3");
    std::fs::create_dir_all(path_a.parent().context("a")?)?;
    std::fs::create_dir_all(path_b.parent().context("b")?)?;
    let mut rng = XorShift::new();

    // 1. The journal of a long life: filled on tmpfs (unless asked otherwise), then
    // copied to the disk twice and synced, so that no write-back of the copy is left
    // for the measurements.
    let shm = Path::new("/dev/shm");
    let scratch = if a.fill_in_place || !shm.is_dir() {
        None
    } else {
        Some(tempfile::tempdir_in(shm).context("cannot create a directory on /dev/shm")?)
    };
    let fill_path = scratch
        .as_ref()
        .map_or_else(|| path_a.clone(), |d| d.path().join("journal.sqlite3"));
    let filled = fill(&fill_path, a.commands, a.days, a.legacy_file)?;
    let mode = auto_vacuum(&fill_path)?;
    let size_full = size(&fill_path)?;
    let rows_full = rows(&fill_path)?;
    let (cmd_bytes_full, _) = tree_bytes(&fill_path, COMMAND_TREES)?;
    for to in [&path_a, &path_b] {
        if *to != fill_path {
            std::fs::copy(&fill_path, to).context("cannot copy the journal")?;
            std::fs::File::open(to)?.sync_all()?;
        }
    }
    drop(scratch);
    let bpc_as_filled = size_full.total() as f64 / rows_full.commands as f64;
    let bpc_trees_filled = cmd_bytes_full as f64 / rows_full.commands as f64;
    say(format!(
        "Journal over a cabinet's life: retention on a journal of {} finished commands",
        a.commands
    ));
    say(format!(
        "  file created by      {} (auto_vacuum = {mode})",
        if a.legacy_file {
            "a release before retention (--legacy-file)"
        } else {
            "this release"
        }
    ));
    say(format!(
        "  filled               {} commands received over {} days, {} transitions, outbox {}, in {:.1} s (synchronous=NORMAL, backdated{})",
        rows_full.commands,
        a.days,
        rows_full.transitions,
        rows_full.outbox,
        filled.as_secs_f64(),
        if scratch_used(a.fill_in_place, shm) {
            "; on /dev/shm, then copied"
        } else {
            ""
        }
    ));
    say(format!("  size                 {}", size_full.mib()));
    say(format!(
        "  bytes per command    {bpc_as_filled:.0} (file / commands); {bpc_trees_filled:.0} in commands + transitions + their indexes"
    ));

    // 2. A dispense's journal work: on an empty journal (this disk's floor today) and
    // on the full one.
    say(
        "Dispense journal work (3 FULL commits: accepted, dispensing, succeeded, with replies)"
            .into(),
    );
    let path_e = dir.path().join("e").join("journal.sqlite3");
    let empty = dispatch(&mut Journal::open(&path_e)?, a.dispatches, &mut rng)?;
    say(format!("  empty journal        {}", empty.text()));
    let mut engine = Journal::open(&path_a)?;
    let before = dispatch(&mut engine, a.dispatches, &mut rng)?;
    say(format!("  before retention     {}", before.text()));

    // 3a. Retention as the kiosk runs it, on the copy, beside dispenses.
    let concurrent = prune_beside_dispenses(&path_b, a.batch.max(1), !a.no_give_way, &mut rng)?;
    let size_b = size(&path_b)?;
    say(format!(
        "  while a prune runs, batches of {} at most{}: {}",
        concurrent.batch,
        if concurrent.give_way {
            ", giving way"
        } else {
            ", not giving way"
        },
        concurrent.during_batches.text()
    ));
    say(format!(
        "    while it hands pages back ({:.1} s): {}",
        concurrent.release_s,
        concurrent.during_release.text()
    ));
    say(format!(
        "    slower than 50 ms / 100 ms / 1 s: {} / {} / {}; failed {}{}",
        concurrent.over_50ms,
        concurrent.over_100ms,
        concurrent.over_1s,
        concurrent.failed,
        concurrent
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    ));
    say(
        "Retention beside them (Journal::prune on a second connection, 5 ms pause between steps)"
            .into(),
    );
    say(format!(
        "  pruned               {} commands + {} transitions in {:.1} s: {:.0} commands/s",
        concurrent.commands,
        concurrent.transitions,
        concurrent.wall_s,
        concurrent.commands as f64 / concurrent.wall_s.max(1e-9),
    ));
    say(format!(
        "  batches              {} of {} at most, {} stopped early for the engine (which waited for the lock {} times): {}",
        concurrent.batches,
        concurrent.batch,
        concurrent.gave_way,
        concurrent.engine_waits,
        concurrent.batch_ms.text()
    ));
    say(format!(
        "  pages handed back    {} steps: {}; {:.1} s",
        concurrent.release_steps,
        concurrent.release_step_ms.text(),
        concurrent.release_s
    ));
    say(format!(
        "  passes that failed   {}{}",
        concurrent.failed_passes,
        concurrent
            .first_pass_error
            .as_deref()
            .map(|e| format!(" (first: {e}; the next pass went on)"))
            .unwrap_or_default()
    ));
    say(format!(
        "  WAL peak {}; after it {}",
        m(concurrent.wal_peak),
        size_b.mib()
    ));

    // 3b. Retention alone, on a second connection (the engine's stays open, idle).
    let now = now_ms();
    let mut alone = prune_alone(&path_a, now)?;
    let size_pruned = size(&path_a)?;
    let rows_pruned = rows(&path_a)?;
    say(format!(
        "Retention alone (Retention::default(): 30 days, 50,000 commands; batches of {PRUNE_BATCH}, no pause)"
    ));
    say(format!(
        "  pruned               {} commands + {} transitions in {:.1} s, {} batches: {:.0} commands/s, {:.0} rows/s; batch p50 {:.1} ms, max {:.1} ms; WAL peak {}",
        alone.commands,
        alone.transitions,
        alone.wall_s,
        alone.batches,
        alone.commands_per_s,
        alone.rows_per_s,
        alone.batch_p50_ms,
        alone.batch_max_ms,
        m(alone.wal_peak)
    ));
    say(format!(
        "  left                 {} commands, {} transitions",
        rows_pruned.commands, rows_pruned.transitions
    ));
    say("Size after retention".into());
    say(format!("  as is                {}", size_pruned.mib()));
    let t = Instant::now();
    engine.release_free_pages()?;
    alone.release_s = t.elapsed().as_secs_f64();
    alone.wal_after_release = file_len(&wal_path(&path_a));
    // The file shrinks when a checkpoint has copied the release back.
    checkpoint(&path_a)?;
    let size_released = size(&path_a)?;
    say(format!(
        "  release_free_pages   {}  ({:.2} s; WAL right after {}; size after a checkpoint)",
        size_released.mib(),
        alone.release_s,
        m(alone.wal_after_release)
    ));
    let after = dispatch(&mut engine, a.dispatches, &mut rng)?;
    // Compacting is for a stopped kiosk: one connection.
    drop(engine);
    let mut j = Journal::open(&path_a)?;
    let t = Instant::now();
    j.compact()?;
    alone.compact_s = t.elapsed().as_secs_f64();
    drop(j);
    let wal_after_compact = file_len(&wal_path(&path_a));
    checkpoint(&path_a)?;
    let size_compacted = size(&path_a)?;
    let mode_compacted = auto_vacuum(&path_a)?;
    say(format!(
        "  compact (VACUUM)     {}  ({:.2} s; WAL before its checkpoint {}; auto_vacuum now {mode_compacted})",
        size_compacted.mib(),
        alone.compact_s,
        m(wal_after_compact)
    ));
    let mut engine = Journal::open(&path_a)?;
    let compacted = dispatch(&mut engine, a.dispatches, &mut rng)?;
    drop(engine);
    checkpoint(&path_a)?;
    let rows_final = rows(&path_a)?;
    let (cmd_bytes_dense, _) = tree_bytes(&path_a, COMMAND_TREES)?;
    let size_final = size(&path_a)?;
    let bpc_dense = cmd_bytes_dense as f64 / rows_final.commands.max(1) as f64;
    say(format!(
        "  bytes per command    {bpc_dense:.0} compacted ({} commands, {} transitions)",
        rows_final.commands, rows_final.transitions
    ));
    say("Dispense journal work after retention".into());
    say(format!(
        "  pruned (auto_vacuum = {mode})   {}",
        after.text()
    ));
    say(format!("  compacted            {}", compacted.text()));

    // 5. The rejections ring, on a fresh journal.
    let path_c = dir.path().join("c").join("journal.sqlite3");
    let fl = flood(&path_c, a.rejections)?;
    let size_c = size(&path_c)?;
    let ring = RejectionLimits::default().max_rows;
    say(format!(
        "Rejections ring (default {ring} rows), untrusted junk through record_rejection"
    ));
    for (n, db, wal) in &fl.sizes {
        say(format!(
            "  after {n:>7} payloads  {} (db {} + wal {})",
            m(db + wal),
            m(*db),
            m(*wal)
        ));
    }
    say(format!(
        "  rows {} (dropped {}), {:.0} bytes per row; after a checkpoint {}; {:.1} s",
        fl.rows,
        fl.dropped,
        fl.bytes_per_row,
        size_c.mib(),
        fl.wall_s
    ));

    // The ceiling of the defaults.
    let r = Retention::default();
    // A command's token is dead at most this long after its arrival (retention.rs).
    let alive_window_s = TOKEN_LIFETIME_CEILING_SECS + 2 * CLOCK_SKEW_CEILING_SECS;
    // Alive rows for one command a second, far above what a cabinet sells.
    let alive_rows = u64::try_from(alive_window_s).unwrap_or(0);
    let ceiling = (r.max_commands + alive_rows) as f64 * bpc_trees_filled
        + ring as f64 * fl.bytes_per_row
        + WAL_LIMIT as f64;
    say("Ceiling of the defaults".into());
    say(format!(
        "  ({} commands + {alive_rows} with a live token at 1 command/s) x {bpc_trees_filled:.0} B + {ring} rejections x {:.0} B + WAL {} = {}",
        r.max_commands,
        fl.bytes_per_row,
        m(WAL_LIMIT),
        m(ceiling as u64)
    ));

    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "journal_retention",
                "commands_filled": a.commands,
                "days": a.days,
                "legacy_file": a.legacy_file,
                "auto_vacuum": mode,
                "fill_s": filled.as_secs_f64(),
                "filled_on_tmpfs": scratch_used(a.fill_in_place, shm),
                "filled": {"size": size_full, "rows": rows_full,
                           "command_tree_bytes": cmd_bytes_full},
                "dispense_empty_journal": empty,
                "dispense_before_retention": before,
                "prune_beside_dispenses": concurrent,
                "size_after_prune_beside_dispenses": size_b,
                "prune_alone": alone,
                "rows_after_prune": rows_pruned,
                "size_after_prune": size_pruned,
                "size_after_release_free_pages": size_released,
                "dispense_after_retention": after,
                "wal_after_compact_before_checkpoint": wal_after_compact,
                "size_after_compact": size_compacted,
                "auto_vacuum_after_compact": mode_compacted,
                "dispense_after_compact": compacted,
                "final": {"size": size_final, "rows": rows_final,
                          "command_tree_bytes": cmd_bytes_dense},
                "bytes_per_command": {"file_as_filled": bpc_as_filled,
                                      "trees_as_filled": bpc_trees_filled,
                                      "trees_compacted": bpc_dense},
                "rejections": fl,
                "rejections_size_final": size_c,
                "ceiling": {"max_commands": r.max_commands, "alive_rows_at_1_per_s": alive_rows,
                            "rejections_ring": ring, "wal_limit": WAL_LIMIT,
                            "bytes": ceiling},
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn scratch_used(fill_in_place: bool, shm: &Path) -> bool {
    !fill_in_place && shm.is_dir()
}
