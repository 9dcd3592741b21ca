//! A dispense's journal work, as the kiosk does it (three synchronous=FULL commits, each
//! with its reply, the replies then released as their PUBACKs would), and its latency
//! over many dispenses.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cabinet_core::journal::{Inserted, Journal, NewCommand, OutboxMessage};
use cabinet_core::protocol::{Evidence, ReplyState};

use crate::stats::percentile;
use crate::xorshift::XorShift;

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(super) fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn hex_id(rng: &mut XorShift) -> String {
    format!("{:016x}{:016x}", rng.below(u64::MAX), rng.below(u64::MAX))
}

/// A command's IDs, random as a backend makes them.
pub(super) struct Ids {
    cmd: String,
    log: String,
    order: String,
}

impl Ids {
    pub(super) fn new(rng: &mut XorShift) -> Ids {
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
        ..Evidence::default()
    }
}

const DISPENSED_JSON: &str = r#"{"drop_detected":true,"board_status":"dispensed"}"#;

/// Journals one dispense as the kiosk does: `accepted` (with its reply), `dispensing`
/// (with its reply) — the two commits before the motor — and `succeeded` (with its
/// evidence and reply). Returns the time of the first two commits and of all three.
/// The replies are then released as their PUBACKs would (not timed).
pub(super) fn dispense(
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

pub(super) fn release_outbox(j: &mut Journal) -> anyhow::Result<()> {
    for e in j.outbox_pending(16)? {
        j.outbox_ack(e.id)?;
    }
    Ok(())
}

/// p50, p99, max (µs) of the dispense journal work.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(super) struct Lat {
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
    pub(super) fn of(samples: &[(u32, u32)]) -> Lat {
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

    pub(super) fn text(&self) -> String {
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
pub(super) fn pace(rng: &mut XorShift) {
    std::thread::sleep(rng.duration_below(Duration::from_millis(2)));
}

/// `n` dispenses on the engine's connection.
pub(super) fn dispatch(j: &mut Journal, n: u32, rng: &mut XorShift) -> anyhow::Result<Lat> {
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..n {
        pace(rng);
        let (two, three) = dispense(j, &Ids::new(rng), 1 + (i % 60) as u16, None)?;
        samples.push((us(two), us(three)));
        release_outbox(j)?;
    }
    Ok(Lat::of(&samples))
}
