//! Retention: what the journal forgets, and when.
//!
//! The journal's promise is deduplication: a command ID is served at most once. A
//! command can only be delivered again *and accepted* while its token is alive, and a
//! token's life is bounded on arrival: `iat` at most the clock skew ahead, `exp - iat`
//! at most the configured lifetime, neither of which any configuration can set above its
//! ceiling ([`TOKEN_LIFETIME_CEILING_SECS`], [`CLOCK_SKEW_CEILING_SECS`]). So a command
//! received at `t` is dead, for good, after
//!
//! ```text
//! min(exp, t + lifetime ceiling + skew ceiling) + skew ceiling
//! ```
//!
//! (about 80 minutes at most; with a 5-minute token, 15 minutes after `exp`). A redelivery
//! after that is refused `expired` by the verifier whether or not the journal remembers it.
//!
//! A command row is pruned (with its transitions) only when all of these hold:
//! - its state is terminal (`succeeded`, `failed`, `rejected`, `outcome_unknown`);
//! - its token is dead (above);
//! - the broker acknowledged every reply about it (nothing for it in the outbox);
//! - it is older than `journal.keep_commands_days` (what the technician's command search
//!   and the diagnostics bundle promise), **or** it is not among the newest
//!   `journal.max_commands` commands.
//!
//! So the commands table holds at most `max_commands` rows plus the commands whose
//! tokens are still alive. Refused payloads are bounded separately, as a ring
//! ([`crate::journal::RejectionLimits`]).
//!
//! Pruning runs in small batches ([`PRUNE_BATCH`]) on its own connection, off the
//! kiosk's event loop, stops a batch as soon as the engine's connection waits for the
//! write lock ([`Journal::give_way_to`]), and pauses while a motor runs (crate::kiosk).

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::config::{CLOCK_SKEW_CEILING_SECS, JournalConfig, TOKEN_LIFETIME_CEILING_SECS};
use crate::journal::{Journal, JournalError};

/// Commands deleted per transaction at most. A batch's commit writes and fsyncs the
/// index pages its deletes touched (random command ids: scattered pages), so its cost
/// grows with its size: 100 commands took ~30 ms on the CI machine's disk, 500 took
/// ~150 ms (docs/BENCHMARKS.md). A batch on a connection that gives way to the engine's
/// ([`Journal::give_way_to`]) also stops early, as soon as the engine waits.
pub const PRUNE_BATCH: usize = 100;

/// After a batch that gave way, the pruner leaves the lock alone this long: a command's
/// first commits come in quick succession and each would otherwise meet the next batch.
pub const AFTER_GIVING_WAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Pages handed back to the file system per step after a prune: each step holds the
/// write lock for about a millisecond.
const VACUUM_STEP_PAGES: u32 = 256;

/// The setting that counts pruned commands over the journal's life.
const COMMANDS_PRUNED: &str = "commands_pruned";

/// What retention keeps (`[journal]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Commands whose last change is older than this (ms) go; younger ones stay while they
    /// are among the newest `max_commands`.
    pub keep_ms: u64,
    /// Beyond this many commands the oldest go, even if younger than `keep_ms`.
    pub max_commands: u64,
}

impl Retention {
    /// What a site config keeps (`[journal]`).
    pub fn of(cfg: &JournalConfig) -> Retention {
        Retention {
            keep_ms: cfg.keep_commands_days.saturating_mul(86_400_000),
            max_commands: cfg.max_commands,
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_ms: 30 * 86_400_000,
            max_commands: 50_000,
        }
    }
}

/// What one prune (or its dry run) removed or would remove.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Command rows.
    pub commands: u64,
    /// Their transition rows.
    pub transitions: u64,
}

/// A step of [`Journal::prune`], as its `between` callback is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A batch: what it removed, and whether it stopped early because the engine waited
    /// for the write lock.
    Batch {
        /// Removed rows.
        pruned: Pruned,
        /// Stopped early for the engine.
        gave_way: bool,
    },
    /// Free pages handed back to the file system.
    Released,
}

/// One batch: what it removed, whether more may be left, and whether it stopped early
/// for the engine.
#[derive(Debug, Clone, Copy)]
struct Batch {
    pruned: Pruned,
    more: bool,
    gave_way: bool,
}

impl Pruned {
    fn add(&mut self, other: Pruned) {
        self.commands += other.commands;
        self.transitions += other.transitions;
    }
}

/// The WHERE clause of a prunable command. Parameters: ?1 now (ms), ?2 keep-before (ms),
/// ?3 count cutoff (received_at below it is outside the newest `max_commands`), ?4
/// [`ALIVE_AFTER_ARRIVAL_SECS`], ?5 [`SKEW_MS`].
///
/// The unary `+` on `state` keeps SQLite from answering a batch's `ORDER BY received_at
/// LIMIT n` through `commands_by_state`: that plan collects every finished command and
/// sorts them all for each batch (1.3–1.7 s a batch on a journal of a million commands,
/// measured by `cabinet-lab bench retention`), where walking `commands_by_received` from the
/// oldest stops after `n` prunable rows (0.3 ms).
const PRUNABLE: &str = "+state IN ('succeeded', 'failed', 'rejected', 'outcome_unknown') \
     AND MIN(COALESCE(expires_at, 9000000000000), received_at / 1000 + ?4) * 1000 + ?5 < ?1 \
     AND (updated_at < ?2 OR received_at < ?3) \
     AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.cmd_id = commands.cmd_id)";

/// Seconds after arrival past which no token can be alive, and the skew allowed after
/// `exp` (see the module docs).
const ALIVE_AFTER_ARRIVAL_SECS: i64 = TOKEN_LIFETIME_CEILING_SECS + CLOCK_SKEW_CEILING_SECS;
const SKEW_MS: i64 = CLOCK_SKEW_CEILING_SECS * 1000;

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Journal {
    /// `received_at` of the oldest command among the newest `max_commands`: commands
    /// received before it are beyond the count.
    fn count_cutoff(&mut self, max_commands: u64) -> Result<i64, JournalError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT received_at FROM commands ORDER BY received_at DESC LIMIT 1 OFFSET ?1",
            )?
            .query_row([as_i64(max_commands.saturating_sub(1))], |r| r.get(0))
            .optional()?
            .unwrap_or(i64::MIN))
    }

    fn prune_params(&mut self, r: &Retention, now_ms: i64) -> Result<[i64; 5], JournalError> {
        Ok([
            now_ms,
            now_ms.saturating_sub(as_i64(r.keep_ms)),
            self.count_cutoff(r.max_commands)?,
            ALIVE_AFTER_ARRIVAL_SECS,
            SKEW_MS,
        ])
    }

    /// What [`Journal::prune_batch`] would remove if run until nothing is left.
    pub fn prune_plan(&mut self, r: &Retention, now_ms: i64) -> Result<Pruned, JournalError> {
        let p = self.prune_params(r, now_ms)?;
        let (commands, transitions): (i64, i64) = self.conn().query_row(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM((SELECT COUNT(*) FROM command_transitions t \
                 WHERE t.cmd_id = commands.cmd_id)), 0) FROM commands WHERE {PRUNABLE}"
            ),
            params![p[0], p[1], p[2], p[3], p[4]],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(Pruned {
            commands: u64::try_from(commands).unwrap_or(0),
            transitions: u64::try_from(transitions).unwrap_or(0),
        })
    }

    /// Deletes up to `max` prunable commands, oldest first, with their transitions, in
    /// one transaction, and counts them (`commands_pruned`). On a connection that gives
    /// way to another ([`Journal::give_way_to`]), the batch stops deleting and commits as
    /// soon as that connection waits for the write lock.
    pub fn prune_batch(
        &mut self,
        r: &Retention,
        now_ms: i64,
        max: usize,
    ) -> Result<Pruned, JournalError> {
        Ok(self.batch(r, now_ms, max)?.pruned)
    }

    fn batch(&mut self, r: &Retention, now_ms: i64, max: usize) -> Result<Batch, JournalError> {
        let engine = self.give_way().cloned();
        let waits_before = engine.as_ref().map(|w| w.count());
        self.batch_until(r, now_ms, max, || {
            engine.as_ref().map(|w| w.count()) != waits_before
        })
    }

    /// [`Journal::prune_batch`], stopping (and committing) once `give_way` says so; it is
    /// asked before each command but the first.
    fn batch_until(
        &mut self,
        r: &Retention,
        now_ms: i64,
        max: usize,
        mut give_way: impl FnMut() -> bool,
    ) -> Result<Batch, JournalError> {
        let p = self.prune_params(r, now_ms)?;
        // Found outside the write lock: on a large journal the scan takes a while and
        // the engine must not wait for it. Each row is checked again under the lock.
        let ids: Vec<String> = self
            .conn()
            .prepare_cached(&format!(
                "SELECT cmd_id FROM commands WHERE {PRUNABLE} ORDER BY received_at LIMIT ?6"
            ))?
            .query_map(
                params![p[0], p[1], p[2], p[3], p[4], as_i64(max as u64)],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        let mut batch = Batch {
            pruned: Pruned::default(),
            more: ids.len() >= max,
            gave_way: false,
        };
        if ids.is_empty() {
            return Ok(batch);
        }
        let tx = self
            .conn()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut still = tx.prepare_cached(&format!(
                "SELECT 1 FROM commands WHERE cmd_id = ?6 AND {PRUNABLE}"
            ))?;
            let mut del_t =
                tx.prepare_cached("DELETE FROM command_transitions WHERE cmd_id = ?1")?;
            let mut del_c = tx.prepare_cached("DELETE FROM commands WHERE cmd_id = ?1")?;
            for id in &ids {
                // The engine waits for the lock: what is deleted so far is committed now
                // (at least one command, so that every batch makes progress).
                if batch.pruned.commands > 0 && give_way() {
                    batch.gave_way = true;
                    batch.more = true;
                    break;
                }
                if !still.exists(params![p[0], p[1], p[2], p[3], p[4], id])? {
                    continue;
                }
                batch.pruned.transitions += del_t.execute([id])? as u64;
                batch.pruned.commands += del_c.execute([id])? as u64;
            }
        }
        if batch.pruned.commands > 0 {
            tx.prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, CAST(?2 AS TEXT)) \
                 ON CONFLICT(key) DO UPDATE SET \
                 value = CAST(CAST(value AS INTEGER) + ?2 AS TEXT)",
            )?
            .execute(params![COMMANDS_PRUNED, as_i64(batch.pruned.commands)])?;
        }
        tx.commit()?;
        // Copy the batch's pages into the database now, on this connection, without
        // blocking writers: otherwise the engine's next commit finds a WAL over the
        // auto-checkpoint threshold and copies them itself, before it returns.
        self.conn()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(batch)
    }

    /// Prunes everything prunable, batch after batch, calling `between` after each batch
    /// (the kiosk pauses there while a motor runs; return `false` to stop early). A batch
    /// that gave way is followed by a pause of [`AFTER_GIVING_WAY`] first. Then hands
    /// freed pages back to the file system, a few at a time with `between` after each
    /// step, when the journal allows it (incremental auto-vacuum).
    pub fn prune(
        &mut self,
        r: &Retention,
        now_ms: i64,
        between: impl FnMut(Step) -> bool,
    ) -> Result<Pruned, JournalError> {
        self.prune_in_batches_of(r, now_ms, PRUNE_BATCH, between)
    }

    /// [`Journal::prune`] with batches of at most `batch` commands (for benchmarks).
    pub fn prune_in_batches_of(
        &mut self,
        r: &Retention,
        now_ms: i64,
        batch: usize,
        mut between: impl FnMut(Step) -> bool,
    ) -> Result<Pruned, JournalError> {
        let mut total = Pruned::default();
        loop {
            let b = self.batch(r, now_ms, batch.max(1))?;
            total.add(b.pruned);
            let step = Step::Batch {
                pruned: b.pruned,
                gave_way: b.gave_way,
            };
            if !b.more || !between(step) {
                break;
            }
            if b.gave_way {
                std::thread::sleep(AFTER_GIVING_WAY);
            }
        }
        if total.commands > 0 {
            while self.release_free_pages_step(VACUUM_STEP_PAGES)? && between(Step::Released) {}
        }
        Ok(total)
    }

    /// Gives all free pages back to the file system (`PRAGMA incremental_vacuum`), for
    /// journals created with `auto_vacuum = INCREMENTAL`; a no-op for older ones. Holds
    /// the write lock throughout: the kiosk uses [`Journal::prune`], which goes in steps.
    pub fn release_free_pages(&mut self) -> Result<(), JournalError> {
        while self.release_free_pages_step(u32::MAX)? {}
        Ok(())
    }

    /// One step of [`Journal::release_free_pages`]: at most `pages` pages; `true` while
    /// free pages remain that a next step could release.
    fn release_free_pages_step(&mut self, pages: u32) -> Result<bool, JournalError> {
        let conn = self.conn();
        let auto: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        // 2 = INCREMENTAL; NONE and FULL have nothing to do here.
        if auto != 2 {
            return Ok(false);
        }
        let before: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        if before == 0 {
            return Ok(false);
        }
        let mut st = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
        drop(rows);
        drop(st);
        let after: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        Ok(after > 0 && after < before)
    }

    /// Commands pruned over the journal's life.
    pub fn commands_pruned(&self) -> Result<u64, JournalError> {
        Ok(self
            .setting(COMMANDS_PRUNED)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Rebuilds the file (`VACUUM`), switching it to incremental auto-vacuum: the way
    /// to shrink a journal created before retention existed. Needs free space of about
    /// the journal's size and blocks writers while it runs: for `cabinet journal compact`
    /// with the kiosk stopped.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        let conn = self.conn();
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.execute_batch("VACUUM")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Durability, NewCommand, OutboxMessage};
    use crate::protocol::{Evidence, ReplyState};

    const DAY: i64 = 86_400_000;

    fn open_tmp() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        // Retention does not depend on how hard commits are synced; the fill is faster.
        let j =
            Journal::open_with(&dir.path().join("journal.sqlite3"), Durability::Normal).unwrap();
        (dir, j)
    }

    fn reply() -> OutboxMessage {
        OutboxMessage {
            topic: "cabinet/v1/GZ-1/reply".into(),
            payload: "{}".into(),
        }
    }

    /// A command received at `at` (unix ms) whose token expires at `exp` (unix s), moved
    /// to `state` (accepted → dispensing → succeeded, or rejected), with every reply
    /// acknowledged unless `pending`.
    fn command(j: &mut Journal, id: &str, at: i64, exp: Option<i64>, state: ReplyState) {
        let start = if state == ReplyState::Rejected {
            ReplyState::Rejected
        } else {
            ReplyState::Accepted
        };
        let nc = NewCommand {
            cmd_id: id.into(),
            log_id: format!("l-{id}"),
            order_id: format!("o-{id}"),
            slot: Some(1),
            qty: Some(1),
            session: None,
            state: start,
            reason: None,
            expires_at: exp,
        };
        j.insert_new_command(&nc, Some(&reply())).unwrap();
        if matches!(state, ReplyState::Dispensing | ReplyState::Succeeded) {
            j.transition(id, ReplyState::Dispensing, None, &Evidence::default(), None)
                .unwrap();
        }
        if state == ReplyState::Succeeded {
            j.transition(id, ReplyState::Succeeded, None, &Evidence::default(), None)
                .unwrap();
        }
        for e in j.outbox_pending(100).unwrap() {
            j.outbox_ack(e.id).unwrap();
        }
        j.conn()
            .execute(
                "UPDATE commands SET received_at = ?2, updated_at = ?2 WHERE cmd_id = ?1",
                params![id, at],
            )
            .unwrap();
    }

    fn ids(j: &mut Journal) -> Vec<String> {
        j.conn()
            .prepare("SELECT cmd_id FROM commands ORDER BY cmd_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn old_finished_commands_go_with_their_transitions_and_the_rest_stays() {
        let (_d, mut j) = open_tmp();
        let now = 100 * DAY;
        let old = now - 31 * DAY;
        let exp = |at: i64| Some(at / 1000 + 60);
        command(&mut j, "old-done", old, exp(old), ReplyState::Succeeded);
        command(&mut j, "old-refused", old, exp(old), ReplyState::Rejected);
        command(&mut j, "old-waiting", old, exp(old), ReplyState::Accepted);
        command(&mut j, "old-motor", old, exp(old), ReplyState::Dispensing);
        command(
            &mut j,
            "young-done",
            now - DAY,
            exp(now - DAY),
            ReplyState::Succeeded,
        );
        // Its reply is still waiting for the broker.
        command(&mut j, "old-unsent", old, exp(old), ReplyState::Succeeded);
        j.enqueue(Some("old-unsent"), &reply()).unwrap();

        let r = Retention::default();
        let plan = j.prune_plan(&r, now).unwrap();
        assert_eq!(
            plan,
            Pruned {
                commands: 2,
                transitions: 4
            }
        );
        assert_eq!(j.prune(&r, now, |_| true).unwrap(), plan);
        assert_eq!(
            ids(&mut j),
            ["old-motor", "old-unsent", "old-waiting", "young-done"]
        );
        assert!(j.transitions("old-done").unwrap().is_empty());
        assert_eq!(j.commands_pruned().unwrap(), 2);
        assert_eq!(j.prune_plan(&r, now).unwrap(), Pruned::default());
    }

    #[test]
    fn beyond_the_count_the_oldest_go_but_never_while_their_token_lives() {
        let (_d, mut j) = open_tmp();
        let now = 100 * DAY;
        let r = Retention {
            keep_ms: 30 * DAY as u64,
            max_commands: 3,
        };
        // Ten young commands, a minute apart, tokens long dead.
        for i in 0..10 {
            let at = now - 3 * 3_600_000 + i * 60_000;
            command(
                &mut j,
                &format!("c{i}"),
                at,
                Some(at / 1000 + 60),
                ReplyState::Succeeded,
            );
        }
        // Two more whose tokens are alive: received a minute ago, exp in 4 minutes.
        for i in 10..12 {
            command(
                &mut j,
                &format!("c{i}"),
                now - 60_000,
                Some(now / 1000 + 240),
                ReplyState::Succeeded,
            );
        }
        assert_eq!(j.prune(&r, now, |_| true).unwrap().commands, 9);
        // The newest three are kept by the count; none with a live token was touched.
        assert_eq!(ids(&mut j), ["c10", "c11", "c9"]);
    }

    #[test]
    fn a_command_without_a_known_exp_is_kept_until_no_token_could_be_alive() {
        let (_d, mut j) = open_tmp();
        let r = Retention {
            keep_ms: 0,
            max_commands: 1_000,
        };
        let at = 50 * DAY;
        // Journaled before exp was recorded, or a signed rejection whose exp was absurd.
        command(&mut j, "no-exp", at, None, ReplyState::Rejected);
        command(&mut j, "far-exp", at, Some(i64::MAX), ReplyState::Rejected);
        let alive = at + (TOKEN_LIFETIME_CEILING_SECS + 2 * CLOCK_SKEW_CEILING_SECS) * 1000;
        assert_eq!(j.prune(&r, alive, |_| true).unwrap().commands, 0);
        assert_eq!(j.prune(&r, alive + 1, |_| true).unwrap().commands, 2);
    }

    #[test]
    fn a_journal_created_by_this_version_gives_the_pruned_pages_back() {
        let (_d, mut j) = open_tmp();
        let now = 100 * DAY;
        for i in 0..3_000 {
            let at = now - 40 * DAY + i;
            command(
                &mut j,
                &format!("c{i:05}"),
                at,
                Some(at / 1000),
                ReplyState::Succeeded,
            );
        }
        let pages = |j: &mut Journal| -> i64 {
            j.conn()
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap()
        };
        let full = pages(&mut j);
        let mut steps = 0;
        let pruned = j
            .prune(&Retention::default(), now, |_| {
                steps += 1;
                true
            })
            .unwrap();
        assert_eq!(pruned.commands, 3_000);
        let after = pages(&mut j);
        assert!(after * 4 < full, "{full} pages before, {after} after");
        assert!(steps >= 6, "each full batch yields: {steps}");
    }

    #[test]
    fn a_batch_walks_the_arrival_index_instead_of_sorting_every_finished_command() {
        let (_d, mut j) = open_tmp();
        let plan: Vec<String> = j
            .conn()
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT cmd_id FROM commands WHERE {PRUNABLE} \
                 ORDER BY received_at LIMIT ?6"
            ))
            .unwrap()
            .query_map(params![1, 1, 1, 1, 1, 500], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|l| l.contains("USING INDEX commands_by_received"))
                && !plan.iter().any(|l| l.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }

    #[test]
    fn pruning_stops_between_batches_when_asked() {
        let (_d, mut j) = open_tmp();
        let now = 100 * DAY;
        for i in 0..(PRUNE_BATCH + 10) {
            let at = now - 40 * DAY + i as i64;
            command(
                &mut j,
                &format!("c{i:04}"),
                at,
                Some(at / 1000),
                ReplyState::Rejected,
            );
        }
        let mut asked = 0;
        let first = j
            .prune(&Retention::default(), now, |_| {
                asked += 1;
                false
            })
            .unwrap();
        assert_eq!((first.commands, asked), (PRUNE_BATCH as u64, 1));
        let rest = j.prune(&Retention::default(), now, |_| true).unwrap();
        assert_eq!(rest.commands, 10);
    }

    fn old_refused(j: &mut Journal, n: usize, now: i64) {
        for i in 0..n {
            let at = now - 40 * DAY + i as i64;
            command(
                j,
                &format!("c{i:04}"),
                at,
                Some(at / 1000),
                ReplyState::Rejected,
            );
        }
    }

    #[test]
    fn a_batch_that_gives_way_commits_what_it_deleted_and_says_more_is_left() {
        let (_d, mut j) = open_tmp();
        let now = 100 * DAY;
        old_refused(&mut j, 20, now);
        let mut asked = 0;
        let b = j
            .batch_until(&Retention::default(), now, 10, || {
                asked += 1;
                asked == 3
            })
            .unwrap();
        // Asked before the 2nd, 3rd and 4th command: stops after three, committed.
        assert_eq!((b.pruned.commands, b.gave_way, b.more), (3, true, true));
        assert_eq!(ids(&mut j).len(), 17);
        assert_eq!(j.commands_pruned().unwrap(), 3);
        // Never asked to give way: a full batch, and more left.
        let b = j
            .batch_until(&Retention::default(), now, 10, || false)
            .unwrap();
        assert_eq!((b.pruned.commands, b.gave_way, b.more), (10, false, true));
        let b = j
            .batch_until(&Retention::default(), now, 10, || false)
            .unwrap();
        assert_eq!((b.pruned.commands, b.more), (7, false));
    }

    /// The engine's connection counts a real wait for the lock (what a pruner giving
    /// way to it watches).
    #[test]
    fn the_engine_waiting_for_the_lock_moves_its_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite3");
        let mut engine = Journal::open(&path).unwrap();
        let now = 100 * DAY;
        old_refused(&mut engine, 30, now);
        let waits = engine.lock_waits();
        assert_eq!(waits.count(), 0);

        // Another connection holds the write lock; the engine's write waits for it.
        let mut holder = Journal::open_again(&path).unwrap();
        let tx = holder
            .conn()
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let writer = std::thread::spawn(move || {
            let r = engine.set_setting("probe", "1");
            (engine, r)
        });
        while waits.count() == 0 {
            std::thread::yield_now();
        }
        tx.commit().unwrap();
        let (engine, wrote) = writer.join().unwrap();
        // Released within milliseconds of the wait starting, far inside BUSY_TIMEOUT.
        wrote.unwrap();
        assert_eq!(waits.count(), 1);

        // A pruner giving way to the engine, whose count does not move meanwhile:
        // full batches.
        let mut pruner = Journal::open_again(&path).unwrap();
        pruner.give_way_to(engine.lock_waits());
        let b = pruner.batch(&Retention::default(), now, 5).unwrap();
        assert_eq!((b.pruned.commands, b.gave_way), (5, false));
    }
}
