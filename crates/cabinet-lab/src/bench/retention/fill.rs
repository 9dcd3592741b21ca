//! The journals the benchmark measures, made as a long life would make them: finished
//! commands received over weeks (filled, then backdated), and a flood of untrusted junk
//! through the rejections ring.

use std::path::Path;
use std::time::{Duration, Instant};

use cabinet_core::Reason;
use cabinet_core::journal::{Durability, Journal, RejectionLimits};
use rusqlite::{Connection, params};

use super::dispense::{Ids, dispense, now_ms};
use super::file::{file_len, rows, tree_bytes, wal_path};
use crate::xorshift::XorShift;

const DAY_MS: i64 = 86_400_000;

/// Fills `path` with `n` finished commands received over the last `days` days.
pub(super) fn fill(path: &Path, n: u64, days: u64, legacy: bool) -> anyhow::Result<Duration> {
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

/// The rejections ring under a flood of junk.
#[derive(Debug, Default, serde::Serialize)]
pub(super) struct Flood {
    pub(super) recorded: u64,
    /// (payloads recorded, db bytes, wal bytes) along the way.
    pub(super) sizes: Vec<(u64, u64, u64)>,
    pub(super) rows: i64,
    pub(super) dropped: u64,
    pub(super) bytes_per_row: f64,
    pub(super) wall_s: f64,
}

pub(super) fn flood(path: &Path, n: u64) -> anyhow::Result<Flood> {
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
