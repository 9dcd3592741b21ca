//! `cabinet-lab bench retention`: the journal over a cabinet's life. In one run, side by side:
//!
//! 1. a journal filled with N finished commands (default 1,000,000): received over the
//!    last 60 days, tokens long expired, every reply acknowledged — as the kiosk writes
//!    them (accepted → dispensing → succeeded, each with its reply), filled with
//!    synchronous=NORMAL because it is set-up, then backdated in one statement; its size;
//! 2. the journal work of a dispense on it (insert `accepted` + `dispensing` +
//!    `succeeded`, each with its reply, each a synchronous=FULL commit), before retention;
//! 3. retention ([`Retention::default`]) run to completion on a second connection: on one
//!    copy alone (throughput), and on an identical copy as the kiosk runs it
//!    ([`Journal::prune`] from another thread, giving way to the engine's connection,
//!    a 5 ms pause between batches as `cabinet_core::upkeep` makes) while dispenses are
//!    journaled on the engine's connection (their latency with and without a prune
//!    running);
//! 4. the size after retention: as is, after [`Journal::release_free_pages`], after
//!    [`Journal::compact`]; the dispense's journal work on the pruned journal;
//! 5. bytes per command and per refused payload, a journal after 100,000 untrusted
//!    payloads through [`Journal::record_rejection`] with the default ring, and the size
//!    ceiling of the defaults.
//!
//! Everything runs on the same disk as a cabinet's journal would be (a temp dir, not
//! tmpfs): fsyncs are real.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use cabinet_core::Reason;
use cabinet_core::config::{CLOCK_SKEW_CEILING_SECS, TOKEN_LIFETIME_CEILING_SECS};
use cabinet_core::journal::{
    Durability, Inserted, Journal, NewCommand, OutboxMessage, RejectionLimits,
};
use cabinet_core::protocol::{Evidence, ReplyState};
use cabinet_core::retention::{PRUNE_BATCH, Retention, Step};
use clap::Args;
use rusqlite::{Connection, OpenFlags, params};

use crate::stats::percentile;
use crate::xorshift::XorShift;

const DAY_MS: i64 = 86_400_000;
const MIB: f64 = 1024.0 * 1024.0;
/// The pause `cabinet_core::upkeep` makes between two batches.
const BETWEEN_BATCHES: Duration = Duration::from_millis(5);
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn hex_id(rng: &mut XorShift) -> String {
    format!("{:016x}{:016x}", rng.below(u64::MAX), rng.below(u64::MAX))
}

/// A command's IDs, random as a backend makes them.
struct Ids {
    cmd: String,
    log: String,
    order: String,
}

impl Ids {
    fn new(rng: &mut XorShift) -> Ids {
        Ids {
            cmd: hex_id(rng),
            log: hex_id(rng),
            order: hex_id(rng),
        }
    }

    fn command(&self, slot: u16, expires_at: Option<i64>) -> NewCommand {
        NewCommand {
            cmd_id: self.cmd.clone(),
            log_id: self.log.clone(),
            order_id: self.order.clone(),
            slot: Some(slot),
            qty: Some(1),
            session: None,
            state: ReplyState::Accepted,
            reason: None,
            expires_at,
        }
    }

    /// A reply as the kiosk writes it (same fields, same lengths).
    fn reply(&self, state: &str, seq: u64, evidence: &str) -> OutboxMessage {
        OutboxMessage {
            topic: "cabinet/v1/C001/reply".into(),
            payload: format!(
                "{{\"v\":1,\"cmd_id\":\"{}\",\"order_id\":\"{}\",\"log_id\":\"{}\",\
                 \"machine_code\":\"C001\",\"boot_id\":\"0123456789abcdef0123456789abcdef\",\
                 \"state\":\"{state}\",\"evidence\":{evidence},\"at\":1764000000000,\"seq\":{seq}}}",
                self.cmd, self.order, self.log
            ),
        }
    }
}

fn dispensed() -> Evidence {
    Evidence {
        drop_detected: Some(true),
        door_open: None,
        board_status: Some("dispensed".into()),
    }
}

const DISPENSED_JSON: &str = r#"{"drop_detected":true,"board_status":"dispensed"}"#;

/// Journals one dispense as the kiosk does: `accepted` (with its reply), `dispensing`
/// (with its reply) — the two commits before the motor — and `succeeded` (with its
/// evidence and reply). Returns the time of the first two commits and of all three.
/// The replies are then released as their PUBACKs would (not timed).
fn dispense(
    j: &mut Journal,
    ids: &Ids,
    slot: u16,
    expires_at: Option<i64>,
) -> anyhow::Result<(Duration, Duration)> {
    let t0 = Instant::now();
    let inserted = j.insert_new_command(
        &ids.command(slot, expires_at),
        Some(&ids.reply("accepted", 1, "{}")),
    )?;
    anyhow::ensure!(
        matches!(inserted, Inserted::New),
        "command {} existed already",
        ids.cmd
    );
    j.transition(
        &ids.cmd,
        ReplyState::Dispensing,
        None,
        &Evidence::default(),
        Some(&ids.reply("dispensing", 2, "{}")),
    )?;
    let two = t0.elapsed();
    j.transition(
        &ids.cmd,
        ReplyState::Succeeded,
        None,
        &dispensed(),
        Some(&ids.reply("succeeded", 3, DISPENSED_JSON)),
    )?;
    let three = t0.elapsed();
    Ok((two, three))
}

fn release_outbox(j: &mut Journal) -> anyhow::Result<()> {
    for e in j.outbox_pending(16)? {
        j.outbox_ack(e.id)?;
    }
    Ok(())
}

/// File sizes and what SQLite says about the file.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Size {
    db: u64,
    wal: u64,
    page_size: i64,
    pages: i64,
    free_pages: i64,
}

impl Size {
    fn total(&self) -> u64 {
        self.db + self.wal
    }

    fn mib(&self) -> String {
        format!(
            "{:.1} MiB (db {:.1} + wal {:.1}; {} pages, {} free)",
            self.total() as f64 / MIB,
            self.db as f64 / MIB,
            self.wal as f64 / MIB,
            self.pages,
            self.free_pages
        )
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn reader(path: &Path) -> anyhow::Result<Connection> {
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

fn size(path: &Path) -> anyhow::Result<Size> {
    let c = reader(path)?;
    let q = |sql: &str| -> anyhow::Result<i64> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
    Ok(Size {
        page_size: q("PRAGMA page_size")?,
        pages: q("PRAGMA page_count")?,
        free_pages: q("PRAGMA freelist_count")?,
        db: file_len(path),
        wal: file_len(&wal_path(path)),
    })
}

fn auto_vacuum(path: &Path) -> anyhow::Result<&'static str> {
    let v: i64 = reader(path)?.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    Ok(match v {
        0 => "NONE",
        1 => "FULL",
        2 => "INCREMENTAL",
        _ => "?",
    })
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Rows {
    commands: i64,
    transitions: i64,
    outbox: i64,
    rejections: i64,
}

fn rows(path: &Path) -> anyhow::Result<Rows> {
    let c = reader(path)?;
    let q = |t: &str| -> anyhow::Result<i64> {
        Ok(c.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?)
    };
    Ok(Rows {
        commands: q("commands")?,
        transitions: q("command_transitions")?,
        outbox: q("outbox")?,
        rejections: q("rejections")?,
    })
}

/// Bytes of pages (and of payload in them) held by these B-trees (SQLite's `dbstat`).
fn tree_bytes(path: &Path, trees: &[&str]) -> anyhow::Result<(u64, u64)> {
    let c = reader(path)?;
    let mut pages = 0u64;
    let mut payload = 0u64;
    let mut st = c.prepare(
        "SELECT COALESCE(SUM(pgsize), 0), COALESCE(SUM(payload), 0) FROM dbstat WHERE name = ?1",
    )?;
    for t in trees {
        let (p, l): (i64, i64) = st.query_row([t], |r| Ok((r.get(0)?, r.get(1)?)))?;
        pages += u64::try_from(p).unwrap_or(0);
        payload += u64::try_from(l).unwrap_or(0);
    }
    Ok((pages, payload))
}

fn checkpoint(path: &Path) -> anyhow::Result<()> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(30))?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Fills `path` with `n` finished commands received over the last `days` days.
fn fill(path: &Path, n: u64, days: u64, legacy: bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    if legacy {
        // What releases before retention created: no auto_vacuum. Writing a table fixes
        // it for the file's life (only VACUUM changes it afterwards).
        let c = Connection::open(path)?;
        c.execute_batch(
            "PRAGMA auto_vacuum = NONE; PRAGMA journal_mode = WAL; \
             CREATE TABLE before_retention (x); DROP TABLE before_retention;",
        )?;
    }
    let span = i64::try_from(days).unwrap_or(60) * DAY_MS;
    let step = (span / i64::try_from(n.max(1)).unwrap_or(i64::MAX)).max(1);
    let first = now_ms() - span;
    let mut rng = XorShift::new();
    {
        let mut j = Journal::open_with(path, Durability::Normal)?;
        // The broker acknowledges replies as they go: released in bulk every thousand
        // commands (one DELETE instead of three commits a command), so the outbox stays
        // small as in the field and its pages are reused.
        let acks = Connection::open(path)?;
        acks.pragma_update(None, "synchronous", "NORMAL")?;
        for i in 0..n {
            let at = first + i64::try_from(i).unwrap_or(0) * step;
            let ids = Ids::new(&mut rng);
            // Tokens valid for two minutes: long dead.
            dispense(&mut j, &ids, 1 + (i % 60) as u16, Some(at / 1000 + 120))?;
            if i % 1000 == 999 {
                acks.execute("DELETE FROM outbox", [])?;
            }
        }
    }
    // Backdate: received `step` ms apart from 60 days ago, finished 3 s after arrival;
    // every reply acknowledged. The index on received_at is rebuilt rather than updated
    // row by row (which would leave it fragmented).
    let mut c = Connection::open(path)?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    let tx = c.transaction()?;
    tx.execute_batch("DROP INDEX commands_by_received")?;
    tx.execute(
        "UPDATE commands SET received_at = ?1 + (rowid - 1) * ?2, \
         updated_at = ?1 + (rowid - 1) * ?2 + 3000",
        params![first, step],
    )?;
    tx.execute(
        "UPDATE command_transitions SET at = (SELECT c.received_at FROM commands c \
         WHERE c.cmd_id = command_transitions.cmd_id) \
         + CASE state WHEN 'accepted' THEN 0 WHEN 'dispensing' THEN 200 ELSE 3000 END",
        [],
    )?;
    tx.execute("DELETE FROM outbox", [])?;
    tx.execute_batch("CREATE INDEX commands_by_received ON commands(received_at)")?;
    tx.commit()?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(started.elapsed())
}

/// p50, p99, max (µs) of the dispense journal work.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Lat {
    n: usize,
    p50_us: u32,
    p99_us: u32,
    max_us: u32,
    /// The two commits before the motor only.
    before_motor_p50_us: u32,
    before_motor_p99_us: u32,
    before_motor_max_us: u32,
}

impl Lat {
    fn of(samples: &[(u32, u32)]) -> Lat {
        let mut three: Vec<u32> = samples.iter().map(|s| s.1).collect();
        let mut two: Vec<u32> = samples.iter().map(|s| s.0).collect();
        three.sort_unstable();
        two.sort_unstable();
        Lat {
            n: samples.len(),
            p50_us: percentile(&three, 50.0),
            p99_us: percentile(&three, 99.0),
            max_us: three.last().copied().unwrap_or(0),
            before_motor_p50_us: percentile(&two, 50.0),
            before_motor_p99_us: percentile(&two, 99.0),
            before_motor_max_us: two.last().copied().unwrap_or(0),
        }
    }

    fn text(&self) -> String {
        let ms = |v: u32| f64::from(v) / 1000.0;
        format!(
            "p50 {:.2} / p99 {:.2} / max {:.2} ms (2 commits before the motor: p50 {:.2} / p99 {:.2} / max {:.2} ms; n = {})",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.max_us),
            ms(self.before_motor_p50_us),
            ms(self.before_motor_p99_us),
            ms(self.before_motor_max_us),
            self.n
        )
    }
}

/// A random pause below 2 ms between dispenses, so that, during a prune, they meet its
/// batches at random phases (pacing, not synchronisation).
fn pace(rng: &mut XorShift) {
    std::thread::sleep(rng.duration_below(Duration::from_millis(2)));
}

/// `n` dispenses on the engine's connection.
fn dispatch(j: &mut Journal, n: u32, rng: &mut XorShift) -> anyhow::Result<Lat> {
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..n {
        pace(rng);
        let (two, three) = dispense(j, &Ids::new(rng), 1 + (i % 60) as u16, None)?;
        samples.push((us(two), us(three)));
        release_outbox(j)?;
    }
    Ok(Lat::of(&samples))
}

/// Retention alone, batch by batch as [`Journal::prune`] makes them but without pauses
/// and without the final release, so the size before it can be seen.
#[derive(Debug, Default, serde::Serialize)]
struct Alone {
    commands: u64,
    transitions: u64,
    batches: u64,
    wall_s: f64,
    commands_per_s: f64,
    rows_per_s: f64,
    batch_p50_ms: f64,
    batch_max_ms: f64,
    wal_peak: u64,
    release_s: f64,
    wal_after_release: u64,
    compact_s: f64,
}

fn prune_alone(path: &Path, now: i64) -> anyhow::Result<Alone> {
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
struct Concurrent {
    batch: usize,
    /// The pruner gave way to the engine (as the kiosk's does).
    give_way: bool,
    /// Times the engine's connection waited for the write lock during the prune.
    engine_waits: u64,
    /// Batches that stopped early for the engine.
    gave_way: u64,
    commands: u64,
    transitions: u64,
    wall_s: f64,
    /// Batches (each followed by the pause), their duration.
    batches: u64,
    batch_ms: Spread,
    /// The steps that hand free pages back after the batches (incremental auto-vacuum
    /// only), their duration, and how long that phase took.
    release_steps: u64,
    release_step_ms: Spread,
    release_s: f64,
    /// Dispenses that began while batches ran, and while pages were handed back.
    during_batches: Lat,
    during_release: Lat,
    /// Dispenses slower than 50 ms, 100 ms, 1 s (both phases).
    over_50ms: u64,
    over_100ms: u64,
    over_1s: u64,
    /// Dispenses that failed (the write lock not obtained within the busy timeout).
    failed: u64,
    first_error: Option<String>,
    /// Prune passes that failed (then the next one ran).
    failed_passes: u64,
    first_pass_error: Option<String>,
    wal_peak: u64,
}

fn count(path: &Path, sql: &str) -> anyhow::Result<i64> {
    Ok(reader(path)?.query_row(sql, [], |r| r.get(0))?)
}

/// p50, p99 and max of durations in ms.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
struct Spread {
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

    fn text(&self) -> String {
        format!(
            "p50 {:.1} / p99 {:.1} / max {:.1} ms",
            self.p50, self.p99, self.max
        )
    }
}

fn prune_beside_dispenses(
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

/// The rejections ring under a flood of junk.
#[derive(Debug, Default, serde::Serialize)]
struct Flood {
    recorded: u64,
    /// (payloads recorded, db bytes, wal bytes) along the way.
    sizes: Vec<(u64, u64, u64)>,
    rows: i64,
    dropped: u64,
    bytes_per_row: f64,
    wall_s: f64,
}

fn flood(path: &Path, n: u64) -> anyhow::Result<Flood> {
    let mut j = Journal::open_with(path, Durability::Normal)?;
    j.set_rejection_limits(RejectionLimits::default());
    let mut rng = XorShift::new();
    let mut out = Flood::default();
    let marks = [1_000, 10_000, 20_000, 50_000, 100_000, n];
    let t0 = Instant::now();
    for i in 1..=n {
        // Junk of a token's size: not a JWS.
        let payload = format!("junk-{i}-{}", "x".repeat(300 + rng.below(100) as usize));
        j.record_rejection(Reason::Malformed, payload.as_bytes(), None, "not a JWS")?;
        if marks.contains(&i) && out.sizes.last().map(|s| s.0) != Some(i) {
            out.sizes
                .push((i, file_len(path), file_len(&wal_path(path))));
        }
    }
    out.wall_s = t0.elapsed().as_secs_f64();
    out.recorded = n;
    out.dropped = j.rejections_dropped()?;
    drop(j);
    let r = rows(path)?;
    out.rows = r.rejections;
    let (pages, _) = tree_bytes(path, &["rejections"])?;
    out.bytes_per_row = pages as f64 / r.rejections.max(1) as f64;
    Ok(out)
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
