//! `cabinet-lab bench journal`: what synchronous=FULL costs against NORMAL, on the commits a
//! dispense really makes, on this disk. And the history filler for `bench dispatch
//! --history N`.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use cabinet_core::journal::{Durability, Inserted, Journal, NewCommand, OutboxMessage};
use cabinet_core::protocol::{Evidence, ReplyState};

use crate::stats::percentile;

/// A reply the size the kiosk writes.
fn reply(state: &str) -> OutboxMessage {
    OutboxMessage {
        topic: "cabinet/v1/C001/reply".into(),
        payload: format!(
            "{{\"v\":1,\"cmd_id\":\"{x}\",\"order_id\":\"{x}\",\"log_id\":\"{x}\",\
             \"machine_code\":\"C001\",\"boot_id\":\"{x}\",\"state\":\"{state}\",\
             \"evidence\":{{}},\"at\":1764000000000,\"seq\":1}}",
            x = "0123456789abcdef0123456789abcdef"
        ),
    }
}

fn new_command(id: &str, slot: u16) -> NewCommand {
    NewCommand {
        cmd_id: id.into(),
        log_id: format!("log-{id}"),
        order_id: format!("order-{id}"),
        slot: Some(slot),
        qty: Some(1),
        session: None,
        state: ReplyState::Accepted,
        reason: None,
        expires_at: None,
    }
}

/// Per-commit latencies (µs) and the wall time of one durability's run.
struct Run {
    commits: Vec<u32>,
    per_command: Vec<u32>,
    wall: Duration,
}

/// The commits of one successful dispense, as the kiosk makes them: `accepted` with its
/// reply, `dispensing` with its reply, `succeeded` with its reply, and the three outbox
/// rows released as their PUBACKs arrive.
fn one_run(path: &Path, durability: Durability, n: u32) -> anyhow::Result<Run> {
    let mut j = Journal::open_with(path, durability)?;
    let (accepted, dispensing, succeeded) =
        (reply("accepted"), reply("dispensing"), reply("succeeded"));
    let mut commits = Vec::with_capacity(n as usize * 6);
    let mut per_command = Vec::with_capacity(n as usize);
    let us = |t: Instant| u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
    let started = Instant::now();
    for i in 0..n {
        let id = format!("j-{i}");
        let c0 = Instant::now();
        let t = Instant::now();
        let inserted =
            j.insert_new_command(&new_command(&id, 1 + (i % 60) as u16), Some(&accepted))?;
        commits.push(us(t));
        anyhow::ensure!(
            matches!(inserted, Inserted::New),
            "command {id} existed already"
        );
        for (state, msg) in [
            (ReplyState::Dispensing, &dispensing),
            (ReplyState::Succeeded, &succeeded),
        ] {
            let t = Instant::now();
            j.transition(&id, state, None, &Evidence::default(), Some(msg))?;
            commits.push(us(t));
        }
        for entry in j.outbox_pending(8)? {
            let t = Instant::now();
            j.outbox_ack(entry.id)?;
            commits.push(us(t));
        }
        per_command.push(us(c0));
    }
    Ok(Run {
        commits,
        per_command,
        wall: started.elapsed(),
    })
}

/// Fill a journal with `n` finished commands (accepted → dispensing → succeeded, with
/// transitions, outbox empty), fast (synchronous=NORMAL: this is set-up, not the path
/// being measured). Returns how long it took.
pub fn fill_history(path: &Path, n: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut j = Journal::open_with(path, Durability::Normal)?;
    for i in 0..n {
        let id = format!("history-{i:08}-0123456789abcdef");
        j.insert_new_command(&new_command(&id, 1 + (i % 60) as u16), None)?;
        j.transition(
            &id,
            ReplyState::Dispensing,
            None,
            &Evidence::default(),
            None,
        )?;
        j.transition(&id, ReplyState::Succeeded, None, &Evidence::default(), None)?;
    }
    Ok(started.elapsed())
}

fn summary(mut v: Vec<u32>) -> (u32, u32, u32) {
    v.sort_unstable();
    (
        percentile(&v, 50.0),
        percentile(&v, 99.0),
        v.last().copied().unwrap_or(0),
    )
}

/// Run the benchmark and print its figures.
pub fn bench_journal(commands: u32, json: bool) -> anyhow::Result<ExitCode> {
    let commands = commands.max(1);
    // The same disk the cabinet's journal would be on (not tmpfs): fsyncs are real.
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut rows = Vec::new();
    for (name, d) in [("FULL", Durability::Full), ("NORMAL", Durability::Normal)] {
        let r = one_run(&dir.path().join(format!("{name}.sqlite3")), d, commands)?;
        let rate = r.commits.len() as f64 / r.wall.as_secs_f64();
        let n_commits = r.commits.len();
        rows.push((
            name,
            n_commits,
            rate,
            summary(r.commits),
            summary(r.per_command),
        ));
    }
    if json {
        let runs: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, n, rate, c, p)| {
                serde_json::json!({
                    "synchronous": name,
                    "commits": n,
                    "commits_per_s": rate,
                    "commit_us": {"p50": c.0, "p99": c.1, "max": c.2},
                    "six_commits_of_one_dispense_us": {"p50": p.0, "p99": p.1, "max": p.2},
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"bench": "journal_synchronous", "commands": commands, "runs": runs})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Journal commits, WAL: synchronous=FULL (shipped) vs NORMAL, {commands} dispenses each"
    );
    println!("  (6 commits per dispense: accepted, dispensing, succeeded + 3 outbox releases)");
    let ms = |v: u32| format!("{:.3} ms", f64::from(v) / 1000.0);
    for (name, n, rate, c, p) in &rows {
        println!(
            "  {name:<6}  {n} commits, {rate:.0} commits/s; commit p50 {} / p99 {} / max {}; one dispense p50 {} / p99 {}",
            ms(c.0),
            ms(c.1),
            ms(c.2),
            ms(p.0),
            ms(p.1)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Times [`Journal::find_by_support_code`] as the technician's panel calls it (the
/// newest 100,000 commands) on a journal of `history` finished commands: the code of a
/// command spread through the history each time, then one that matches nothing.
pub fn bench_support_search(history: u64, searches: u32) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let path = dir.path().join("journal.sqlite3");
    let filled = fill_history(&path, history)?;
    let j = Journal::open_with(&path, Durability::Full)?;
    let mut hits = Vec::new();
    for k in 0..u64::from(searches.max(1)) {
        let id = format!(
            "history-{:08}-0123456789abcdef",
            (k * 7919) % history.max(1)
        );
        let code = cabinet_core::support::code(&id);
        let started = Instant::now();
        let found = j.find_by_support_code(&code, 100_000)?;
        hits.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        if history <= 100_000 {
            anyhow::ensure!(
                found.iter().any(|c| c.cmd_id == id),
                "the search missed {id}"
            );
        }
    }
    let started = Instant::now();
    let none = j.find_by_support_code("ZZZZ-ZZZZ", 100_000)?;
    let miss = started.elapsed();
    let (p50, _, max) = summary(hits);
    println!(
        "Support-code search: journal of {history} finished commands (filled in {:.1} s)",
        filled.as_secs_f64()
    );
    println!(
        "  {searches} searches: p50 {:.1} ms, max {:.1} ms; a code that matches nothing: {:.1} ms ({} found)",
        f64::from(p50) / 1000.0,
        f64::from(max) / 1000.0,
        miss.as_secs_f64() * 1000.0,
        none.len()
    );
    Ok(ExitCode::SUCCESS)
}
