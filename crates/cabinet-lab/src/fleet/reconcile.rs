//! The grading of a fleet run: the commands sent, the outcomes the backend heard and the
//! motor runs each board counted, reconciled into a [`Report`]. The books balance (every
//! command one terminal outcome, every motor run one succeeded command of that cabinet
//! and slot, every hostile command refused as it deserved, every displaced cabinet back)
//! or the run fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cabinet_board::memory::MemoryBoard;
use cabinet_core::protocol::ReplyState;
use cabinet_core::reason::Reason;

use super::backend::{Inbox, Kind, Sent};
use super::cabinets::code;
use super::options::FleetOptions;
use super::report::{KillReport, Latency, Report};
use super::rollout::RolloutReport;
use crate::node_kills::{BACK_ONLINE, NodeKills};
use crate::rabbitmq::HijackProbe;

/// What a run measured besides the books, for the [`Report`].
pub(super) struct Figures {
    pub(super) t0: Instant,
    pub(super) last_send: Instant,
    pub(super) run_s: f64,
    pub(super) all_online: Duration,
    pub(super) rss: [u64; 3],
    pub(super) cpu: [f64; 2],
    pub(super) resent: u64,
    pub(super) restarts: u32,
    pub(super) reconnects: u32,
    /// The node kills planned, and as they happened.
    pub(super) kills: NodeKills,
    pub(super) broker_rss: u64,
    pub(super) hijack: Option<HijackProbe>,
    /// `--rollout`'s figures.
    pub(super) rollout: Option<RolloutReport>,
}

/// Grade a run: the books and the figures, as one [`Report`].
pub(super) fn reconcile(
    o: &FleetOptions,
    sent: &[Sent],
    inbox: &Inbox,
    boards: &[Arc<MemoryBoard>],
    f: Figures,
) -> Report {
    let n = boards.len();
    let mut by_kind: BTreeMap<Kind, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut missing = 0;
    let mut conflicting = 0;
    let mut unexpected = 0;
    let mut succeeded_per_cabinet = vec![0u64; n];
    let mut succeeded_per_slot: HashMap<(usize, u16), u64> = HashMap::new();
    let mut wrong_cabinet = 0;
    let mut forged_per_cabinet: HashMap<String, u64> = HashMap::new();
    let mut terminal_us = Vec::new();
    let mut dispensing_us = Vec::new();
    let us =
        |a: Instant, b: Instant| u32::try_from(b.duration_since(a).as_micros()).unwrap_or(u32::MAX);
    for s in sent {
        *by_kind.entry(s.kind).or_default() += 1;
        match s.kind {
            Kind::Forged => {
                *forged_per_cabinet.entry(code(s.to)).or_default() += 1;
                continue;
            }
            // The original command is reconciled on its own; a duplicate must not have
            // added an outcome (checked there) or a motor action (checked below).
            Kind::Duplicate => continue,
            _ => {}
        }
        if s.kind == Kind::WrongTopic
            && inbox.by_cmd.get(&s.cmd_id).is_some_and(|x| {
                x.dispensing.is_some()
                    || x.terminal
                        .iter()
                        .any(|(st, _)| *st == ReplyState::Succeeded)
            })
        {
            wrong_cabinet += 1;
        }
        let Some(seen) = inbox
            .by_cmd
            .get(&s.cmd_id)
            .filter(|x| !x.terminal.is_empty())
        else {
            missing += 1;
            continue;
        };
        if seen.terminal.len() > 1 {
            conflicting += 1;
        }
        let Some(&(state, reason)) = seen.terminal.first() else {
            continue;
        };
        let label = match reason {
            Some(r) => format!("{}/{}", state.as_str(), r.code()),
            None => state.as_str().to_owned(),
        };
        *outcomes.entry(label).or_default() += 1;
        match s.kind {
            Kind::Valid => {
                if state == ReplyState::Succeeded {
                    succeeded_per_cabinet[s.to] += 1;
                    *succeeded_per_slot.entry((s.to, s.slot)).or_default() += 1;
                }
                if let Some(t) = seen.first_terminal {
                    terminal_us.push(us(s.at, t));
                }
                if let Some(t) = seen.dispensing {
                    dispensing_us.push(us(s.at, t));
                }
            }
            Kind::WrongTopic if reason != Some(Reason::WrongTarget) => unexpected += 1,
            Kind::Expired if reason != Some(Reason::Expired) => unexpected += 1,
            _ => {}
        }
        if s.kind != Kind::Valid && state != ReplyState::Rejected {
            unexpected += 1;
        }
    }
    let mut anonymous: BTreeMap<String, u64> = BTreeMap::new();
    for reasons in inbox.anonymous.values() {
        for (r, k) in reasons {
            *anonymous.entry(format!("rejected/{r}")).or_default() += k;
        }
        if reasons.keys().any(|r| *r != "bad_signature") {
            unexpected += 1;
        }
    }
    // Forged tokens cannot be retried (nothing identifies them), so one the broker
    // dropped has no refusal. More refusals than forgeries: a broker that lost a node or
    // restarted delivers at least once, so it may hand the cabinet a forged token twice,
    // and nothing in an untrusted token deduplicates it. Without such a disruption it
    // would be the cabinet's fault.
    let disrupted = !f.kills.kills().is_empty() || f.restarts > 0;
    let mut forged_unanswered = 0;
    let mut forged_refused_twice = 0;
    for (cab, k) in &forged_per_cabinet {
        let bad = inbox
            .anonymous
            .get(cab)
            .and_then(|r| r.get("bad_signature"))
            .copied()
            .unwrap_or(0);
        if bad > *k {
            if disrupted {
                forged_refused_twice += bad - k;
            } else {
                unexpected += 1;
            }
        }
        forged_unanswered += k.saturating_sub(bad);
    }
    // Each board read once: its motor runs per slot.
    let runs: Vec<BTreeMap<u16, u64>> = boards.iter().map(|b| b.actions_by_slot()).collect();
    let mut motor = 0;
    let mut mismatch = 0;
    let mut double = 0;
    for (i, by_slot) in runs.iter().enumerate() {
        let m: u64 = by_slot.values().sum();
        motor += m;
        if m != succeeded_per_cabinet[i] {
            mismatch += 1;
        }
        for (slot, r) in by_slot {
            let ok = succeeded_per_slot.get(&(i, *slot)).copied().unwrap_or(0);
            double += r.saturating_sub(ok);
        }
    }
    let without_motor: u64 = succeeded_per_slot
        .iter()
        .map(|((cab, slot), ok)| ok.saturating_sub(runs[*cab].get(slot).copied().unwrap_or(0)))
        .sum();
    let succeeded: u64 = succeeded_per_cabinet.iter().sum();
    let total = sent.len() as f64;
    let send_s = f.last_send.duration_since(f.t0).as_secs_f64();
    let [rss_before, rss_online, rss_after] = f.rss;
    let mut back_us = Vec::new();
    let mut kill_reports = Vec::new();
    for k in f.kills.kills() {
        let mut back = Vec::new();
        let mut not_back = Vec::new();
        for c in &k.displaced {
            match inbox.back_since(c, k) {
                Some(t) if t.duration_since(k.at) <= BACK_ONLINE => back.push(us(k.at, t)),
                _ => not_back.push(c.clone()),
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        kill_reports.push(KillReport {
            node: k.node + 1,
            after_commands: k.after_commands,
            displaced: k.displaced.len(),
            back_online: back.len(),
            not_back,
            back_online_max_ms: back.iter().max().map(|us| f64::from(*us) / 1000.0),
            rejoined_ms: k.rejoined.map(ms),
            next_safe_ms: k.next_safe.map(ms),
        });
        back_us.extend(back);
    }
    let displaced: u64 = f
        .kills
        .kills()
        .iter()
        .map(|k| k.displaced.len() as u64)
        .sum();
    let displaced_back = back_us.len() as u64;
    Report {
        cabinets: n as u32,
        sent: by_kind,
        outcomes,
        anonymous_rejections: anonymous,
        missing,
        conflicting,
        unexpected,
        motor_actions: motor,
        succeeded,
        motor_mismatch_cabinets: mismatch,
        double_dispenses: double,
        wrong_cabinet_dispenses: wrong_cabinet,
        succeeded_without_motor: without_motor,
        resent: f.resent,
        broker_restarts: f.restarts,
        backend_reconnects: f.reconnects,
        cluster_nodes: o.cluster.unwrap_or(0),
        session_queues: o.cluster.map(|_| o.session_queues),
        node_kills: f.kills.kills().len() as u32,
        kills: kill_reports,
        displaced_cabinets: displaced,
        displaced_back_online: displaced_back,
        back_online: Latency::of(back_us),
        hijack_probe: f.hijack.clone(),
        rollout: f.rollout.clone(),
        broker_persistence: o.broker_persistence,
        forged_unanswered,
        forged_refused_twice,
        reconciled: missing == 0
            && conflicting == 0
            && double == 0
            && wrong_cabinet == 0
            && without_motor == 0
            && unexpected == 0
            && mismatch == 0
            && displaced_back == displaced
            && f.kills.kills().len() == f.kills.planned()
            // Kills that found no cabinet on their node checked nothing.
            && (f.kills.planned() == 0 || displaced > 0)
            && f.hijack.as_ref().is_none_or(HijackProbe::refused)
            // A rollout must reach every cabinet, and no cabinet may refuse a document.
            && f.rollout.as_ref().is_none_or(|r| {
                r.rotated_ms.is_some() && r.cabinets_done == n && r.refused == 0
            }),
        rate_requested: o.rate,
        rate_sent: if send_s > 0.0 { total / send_s } else { 0.0 },
        rate_sustained: if f.run_s > 0.0 { total / f.run_s } else { 0.0 },
        terminal_latency: Latency::of(terminal_us),
        dispensing_latency: Latency::of(dispensing_us),
        all_online_s: f.all_online.as_secs_f64(),
        rss_before_kib: rss_before,
        rss_online_kib: rss_online,
        rss_after_kib: rss_after,
        rss_per_cabinet_kib: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        cpu_fleet_cores: if f.run_s > 0.0 {
            f.cpu[0] / f.run_s
        } else {
            0.0
        },
        cpu_broker_cores: if f.run_s > 0.0 {
            f.cpu[1] / f.run_s
        } else {
            0.0
        },
        run_s: f.run_s,
        broker_rss_kib: f.broker_rss,
    }
}
