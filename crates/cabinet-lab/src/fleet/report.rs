//! What a fleet run says about itself: the [`Report`] (reconciliation and figures, as
//! JSON or text), its latencies and the account of each node kill.

use std::collections::BTreeMap;

use serde::Serialize;

use super::backend::{Kind, QUIET};
use super::cabinets::code;
use crate::node_kills::BACK_ONLINE;
use crate::rabbitmq::{HijackProbe, SessionQueues};

/// Percentiles in milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Worst.
    pub max_ms: f64,
}

impl Latency {
    pub(super) fn of(mut v: Vec<u32>) -> Latency {
        v.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        Latency {
            n: v.len(),
            p50_ms: ms(crate::stats::percentile(&v, 50.0)),
            p99_ms: ms(crate::stats::percentile(&v, 99.0)),
            max_ms: ms(v.last().copied().unwrap_or(0)),
        }
    }
}

/// One node kill in a fleet run.
#[derive(Debug, Serialize)]
pub struct KillReport {
    /// The node (1-based).
    pub node: usize,
    /// Commands sent before the kill.
    pub after_commands: usize,
    /// Cabinets connected to it when it died.
    pub displaced: usize,
    /// Of those, online again elsewhere within [`BACK_ONLINE`].
    pub back_online: usize,
    /// Those that were not.
    pub not_back: Vec<String>,
    /// The last of them, after the kill.
    pub back_online_max_ms: Option<f64>,
    /// Kill -> the restarted node served MQTT again (rolling restarts).
    pub rejoined_ms: Option<f64>,
    /// Node served again -> RabbitMQ let the next node go (rolling restarts).
    pub next_safe_ms: Option<f64>,
}

/// The outcome of a fleet run: reconciliation and figures.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Cabinets run.
    pub cabinets: u32,
    /// Commands sent, by kind.
    pub(super) sent: BTreeMap<Kind, u64>,
    /// Terminal outcomes of the commands with ids, e.g. `succeeded`, `rejected/expired`.
    pub outcomes: BTreeMap<String, u64>,
    /// Rejections without ids (forged tokens), by reason.
    pub anonymous_rejections: BTreeMap<String, u64>,
    /// Commands (with ids) that never got a terminal outcome.
    pub missing: u64,
    /// Commands that got two different terminal outcomes.
    pub conflicting: u64,
    /// Hostile commands whose outcome was not the refusal they deserved.
    pub unexpected: u64,
    /// Motor actions counted by the boards.
    pub motor_actions: u64,
    /// Succeeded commands (each must be exactly one motor action of its cabinet).
    pub succeeded: u64,
    /// Cabinets whose motor count differs from their succeeded commands.
    pub motor_mismatch_cabinets: u64,
    /// Motor runs beyond the succeeded commands of that cabinet and slot: a command
    /// dispensed twice (or a motor run for no command at all).
    pub double_dispenses: u64,
    /// Commands signed for one cabinet, published on another's topic, that the receiving
    /// cabinet dispensed (reported `dispensing` or `succeeded`).
    pub wrong_cabinet_dispenses: u64,
    /// Succeeded commands without their motor run at that cabinet and slot.
    pub succeeded_without_motor: u64,
    /// Commands resent (same id) because no outcome came: lost by the broker, not the cabinet.
    pub resent: u64,
    /// Broker restarts during the run.
    pub broker_restarts: u32,
    /// Whether the broker kept its state across restarts.
    pub broker_persistence: bool,
    /// Times the backend had to connect again.
    pub backend_reconnects: u32,
    /// RabbitMQ cluster nodes (0: one Mosquitto).
    pub cluster_nodes: usize,
    /// The cluster's session queues (null without a cluster).
    pub session_queues: Option<SessionQueues>,
    /// Cluster nodes killed during the run.
    pub node_kills: u32,
    /// Each kill: which node, what it displaced, how fast everything came back.
    pub kills: Vec<KillReport>,
    /// Cabinets connected to a node when it was killed (the broker's own list), all
    /// kills together.
    pub displaced_cabinets: u64,
    /// Displaced cabinets the backend heard from over a connection made after the kill
    /// (their "online" or a reply) within [`BACK_ONLINE`] of it.
    pub displaced_back_online: u64,
    /// SIGKILL -> the first such message from each displaced cabinet at the backend.
    pub back_online: Latency,
    /// On a cluster: the first cabinet's credentials with the second's client id.
    pub hijack_probe: Option<HijackProbe>,
    /// Forged commands without a refusal (dropped by the broker before any cabinet saw them).
    pub forged_unanswered: u64,
    /// Refusals without ids beyond the forged commands a cabinet was sent: a token the
    /// broker delivered twice after losing a node or restarting (counted, not a failure,
    /// only then).
    pub forged_refused_twice: u64,
    /// `--rollout`: the key rotation and configuration pushed to the fleet during the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::rollout::RolloutReport>,
    /// Whether the books balance.
    pub reconciled: bool,
    /// Requested aggregate rate, commands/s (0 = unpaced).
    pub rate_requested: f64,
    /// Commands sent per second, first to last publish.
    pub rate_sent: f64,
    /// Commands answered per second: all sent / (first publish -> last terminal outcome).
    pub rate_sustained: f64,
    /// Valid commands: publish -> terminal reply at the backend.
    pub terminal_latency: Latency,
    /// Valid commands: publish -> `dispensing` reply (the cabinet committed to the motor).
    pub dispensing_latency: Latency,
    /// Process start of the kiosks -> every cabinet's "online" at the backend.
    pub all_online_s: f64,
    /// Resident memory of this process before the kiosks started, KiB.
    pub rss_before_kib: u64,
    /// ... once every cabinet was online, KiB.
    pub rss_online_kib: u64,
    /// ... after the last command, KiB.
    pub rss_after_kib: u64,
    /// (after - before) / cabinets, KiB.
    pub rss_per_cabinet_kib: f64,
    /// CPU time of this process (kiosks, boards, backend driver) during the command run,
    /// as a share of one core.
    pub cpu_fleet_cores: f64,
    /// CPU time of Mosquitto during the command run, as a share of one core (null when the
    /// broker was restarted).
    pub cpu_broker_cores: f64,
    /// Seconds from the first publish to the last terminal outcome.
    pub run_s: f64,
    /// Resident memory of the broker process(es) still running after the last command,
    /// KiB (every cluster node's Erlang VM summed).
    pub broker_rss_kib: u64,
}

impl Report {
    pub(super) fn print(&self) {
        println!(
            "Fleet: {} cabinets (real kiosk runners, in-process boards) on {}",
            self.cabinets,
            if self.cluster_nodes > 0 {
                "a RabbitMQ cluster"
            } else {
                "one Mosquitto"
            }
        );
        let sent: Vec<String> = self
            .sent
            .iter()
            .map(|(k, n)| format!("{n} {}", serde_json::to_string(k).unwrap_or_default()))
            .collect();
        println!(
            "  sent                 {}",
            sent.join(", ").replace('"', "")
        );
        let counts = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  outcomes (with ids)  {}", counts(&self.outcomes));
        println!(
            "  rejected without ids {}",
            counts(&self.anonymous_rejections)
        );
        println!(
            "  motor actions        {} for {} succeeded commands; cabinets off by any: {}",
            self.motor_actions, self.succeeded, self.motor_mismatch_cabinets
        );
        println!(
            "  dispenses            {} double, {} for the wrong cabinet, {} succeeded without a motor run (per cabinet and slot)",
            self.double_dispenses, self.wrong_cabinet_dispenses, self.succeeded_without_motor
        );
        println!(
            "  missing outcomes     {}; conflicting outcomes {}; hostile commands not refused as expected {}",
            self.missing, self.conflicting, self.unexpected
        );
        println!(
            "  resent (same id)     {} after no outcome for {:?}; forged without a refusal {}",
            self.resent, QUIET, self.forged_unanswered
        );
        if self.forged_refused_twice > 0 {
            println!(
                "  forged refused twice {} (delivered twice by a broker that lost a node or restarted)",
                self.forged_refused_twice
            );
        }
        if self.cluster_nodes > 0 {
            println!(
                "  cluster              {} RabbitMQ nodes, {} session queues; {} killed; backend reconnects {}",
                self.cluster_nodes,
                serde_json::to_string(&self.session_queues)
                    .unwrap_or_default()
                    .replace('"', ""),
                self.node_kills,
                self.backend_reconnects
            );
        }
        if let Some(p) = &self.hijack_probe {
            println!(
                "  hijack probe         {}'s credentials with {}'s client id: connected {}, subscribed {}, received {}{}",
                code(0),
                code(1),
                p.connected,
                p.subscribed,
                p.received,
                p.closed
                    .as_deref()
                    .map(|c| format!(", closed: {c}"))
                    .unwrap_or_default()
            );
        }
        if self.node_kills > 0 {
            println!(
                "  failover             {} of {} cabinets on a killed node back within {:?} (heard from over a new connection): p50 {:.0} / max {:.0} ms after the kill",
                self.displaced_back_online,
                self.displaced_cabinets,
                BACK_ONLINE,
                self.back_online.p50_ms,
                self.back_online.max_ms
            );
        }
        for k in &self.kills {
            let mut line = format!(
                "    node {} killed after {} commands: {} of {} cabinets back",
                k.node, k.after_commands, k.back_online, k.displaced
            );
            if let Some(v) = k.back_online_max_ms {
                line += &format!(", the last {v:.0} ms after the kill");
            }
            if !k.not_back.is_empty() {
                line += &format!(" (not back: {})", k.not_back.join(", "));
            }
            if let Some(v) = k.rejoined_ms {
                line += &format!("; node serving again {v:.0} ms after the kill");
            }
            if let Some(v) = k.next_safe_ms {
                line += &format!("; next node safe to stop {v:.0} ms after that");
            }
            println!("{line}");
        }
        if self.broker_restarts > 0 {
            println!(
                "  broker restarts      {} (persistence {}); backend reconnects {}",
                self.broker_restarts,
                if self.broker_persistence { "on" } else { "off" },
                self.backend_reconnects
            );
        }
        if let Some(r) = &self.rollout {
            let ms = |x: Option<f64>| x.map_or("never".to_owned(), |v| format!("{v:.0} ms"));
            println!(
                "  rollout              after {} commands, {} documents: key set 1 + configuration 1 in force everywhere {}, old key's orders answered {} later, key set 2 everywhere {}; {} of {} cabinets done, {} refused",
                r.after_commands,
                r.published,
                ms(r.both_in_force_ms),
                ms(r.drained_ms),
                ms(r.rotated_ms),
                r.cabinets_done,
                self.cabinets,
                r.refused
            );
        }
        println!(
            "  reconciled           {}",
            if self.reconciled { "yes" } else { "NO" }
        );
        println!(
            "  rate                 requested {:.0}/s, sent {:.0}/s, sustained {:.0}/s over {:.1} s",
            self.rate_requested, self.rate_sent, self.rate_sustained, self.run_s
        );
        let l = |x: &Latency| {
            format!(
                "p50 {:.2} / p99 {:.2} / max {:.2} ms (n={})",
                x.p50_ms, x.p99_ms, x.max_ms, x.n
            )
        };
        println!("  publish -> terminal  {}", l(&self.terminal_latency));
        println!("  publish -> dispensing {}", l(&self.dispensing_latency));
        println!(
            "  all online after     {:.0} ms",
            self.all_online_s * 1000.0
        );
        println!(
            "  RSS                  {} KiB before, {} online, {} after; {:.0} KiB per cabinet",
            self.rss_before_kib, self.rss_online_kib, self.rss_after_kib, self.rss_per_cabinet_kib
        );
        println!(
            "  CPU during the run   fleet {:.2} cores, broker {:.2} cores (of 2)",
            self.cpu_fleet_cores, self.cpu_broker_cores
        );
        println!(
            "  broker RSS           {} KiB after the run",
            self.broker_rss_kib
        );
    }
}
