//! `cabinet-lab fleet`: N headless kiosks in one process against one real Mosquitto (or,
//! with `--cluster`, a real RabbitMQ cluster on loopback), and a backend that sends
//! signed commands to random cabinets, some of them hostile, then reconciles: every
//! command has exactly one terminal outcome at the backend, and every motor action is
//! one succeeded command of that cabinet.
//!
//! With `--cluster N --kill-node`, one node is killed (SIGKILL, like a power cut) half way
//! through the commands: the cabinets on it fail over to the other nodes
//! (`mqtt.failover_urls`), and the report says how long until every one of them was
//! online again. With `--rolling-restart`, every node in turn is killed, started again
//! and let back into its queues before the next one goes ([`crate::node_kills`]).
//!
//! Each kiosk is the real runner (`kiosk::run`, as `cabinet run` starts it) with its own
//! config, journal on disk (synchronous=FULL) and MQTT connection (persistent session,
//! manual acks). The board is in-process ([`MemoryBoard`]): no pty, no I/O thread, so a
//! thousand cabinets fit on a small machine. The board's byte protocol has its own tests
//! and benchmarks.
//!
//! Hostile commands, each aimed at a random cabinet:
//! - **duplicate**: an earlier command's token published again (same `jti`): no second
//!   dispense, the stored outcome again;
//! - **wrong topic**: signed for one cabinet (`aud`), published to another's topic:
//!   `rejected` / `wrong_target`;
//! - **expired**: `exp` five minutes ago: `rejected` / `expired`;
//! - **forged**: signed with a key the cabinets do not trust (same `kid`): `rejected` /
//!   `bad_signature`, with empty ids (nothing in a forged token is believed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_board::Board;
use cabinet_board::memory::MemoryBoard;
use cabinet_core::config::Config;
use cabinet_core::instance::InstanceLock;
use cabinet_core::kiosk;
use cabinet_core::mqtt::{BackendClient, BackendMessage};
use cabinet_core::protocol::{self, Reply, ReplyState};
use cabinet_core::reason::Reason;
use clap::Args;
use serde::Serialize;
use tokio::sync::watch;

use crate::mosquitto::Broker;
use crate::node_kills::{BACK_ONLINE, Kill, NodeKills, Step};
use crate::orders::{claims, now_s};
use crate::procfs::{cpu_seconds, rss_kib};
use crate::rabbitmq::{BACKEND_ID, Cluster, HijackProbe, SessionQueues};
use crate::xorshift::XorShift;

/// Slots per simulated cabinet; with 1,000 items each (the most a slot may hold).
const SLOTS: u16 = 20;
const PER_SLOT: u32 = 1000;
/// How long the backend waits for the fleet to come online, and for the last outcomes.
const COME_ONLINE: Duration = Duration::from_secs(120);
/// Commands a backend lets wait on one cabinet at a time: half of Mosquitto's default
/// per-session queue (1,000), so the broker never has to drop one.
const MAX_OUTSTANDING: u64 = 500;
/// Outcomes are considered lost (and their commands resent) after this long without a new one.
const QUIET: Duration = Duration::from_secs(5);
/// Rounds of resending lost commands before giving up.
const MAX_RETRY_ROUNDS: u32 = 20;
/// Commands resent per round: Mosquitto queues 1,000 per session by default.
const RETRY_BATCH: usize = 500;

/// Arguments of `cabinet-lab fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Cabinets to run in this process.
    #[arg(long, default_value_t = 10)]
    cabinets: u32,
    /// Commands to send in all (hostile ones included).
    #[arg(long, default_value_t = 2_000)]
    commands: u32,
    /// Aggregate publish rate, commands per second (0: as fast as the broker acks them).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Share of hostile commands (duplicates, wrong topic, expired, forged), 0 to 1.
    #[arg(long, default_value_t = 0.2)]
    hostile: f64,
    /// How long each simulated motor turns, milliseconds.
    #[arg(long, default_value_t = 0)]
    motor_ms: u64,
    /// Keep the cabinets' configs and journals in this directory (default: a temporary one,
    /// removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Restart the broker this many times while the commands go out (SIGTERM and start
    /// again on the same port, as `systemctl restart mosquitto` does).
    #[arg(long, default_value_t = 0)]
    broker_restarts: u32,
    /// Run the broker with persistence (its sessions and queues survive a restart).
    #[arg(long)]
    broker_persistence: bool,
    /// Instead of Mosquitto, run a RabbitMQ cluster of this many nodes (MQTT plugin, one
    /// user per cabinet with the shipped topic permissions); cabinets get every node in
    /// `mqtt.url` + `mqtt.failover_urls`.
    #[arg(long, value_name = "NODES")]
    cluster: Option<usize>,
    /// With --cluster: kill one node (SIGKILL) half way through the commands. The
    /// backend stays on node 1; the last node is killed.
    #[arg(long, requires = "cluster")]
    kill_node: bool,
    /// With --cluster: kill every node in turn (last to first, SIGKILL) and start it
    /// again, each once RabbitMQ says it may go (its session queues keep their majority
    /// or a synchronised mirror without it). Spread over the run; give it enough
    /// commands to last a minute or two.
    #[arg(long, requires = "cluster", conflicts_with = "kill_node")]
    rolling_restart: bool,
    /// With --cluster: what keeps a cabinet's session when a node dies. Quorum queues
    /// (the shipped setting) need three nodes or more; mirrored ones work with two.
    #[arg(long, value_enum, default_value = "quorum", requires = "cluster")]
    session_queues: SessionQueues,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What a fleet run is asked to do.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Cabinets in this process.
    pub cabinets: u32,
    /// Commands in all.
    pub commands: u32,
    /// Aggregate commands per second; 0 = unpaced.
    pub rate: f64,
    /// Share of hostile commands.
    pub hostile: f64,
    /// Motor time per dispense.
    pub motor: Duration,
    /// Where to keep configs and journals.
    pub dir: Option<PathBuf>,
    /// Broker restarts during the run.
    pub broker_restarts: u32,
    /// Broker persistence on.
    pub broker_persistence: bool,
    /// A RabbitMQ cluster of this many nodes instead of Mosquitto.
    pub cluster: Option<usize>,
    /// Kill the cluster's last node half way through.
    pub kill_node: bool,
    /// Kill and restart every node in turn.
    pub rolling_restart: bool,
    /// The cluster's session queues.
    pub session_queues: SessionQueues,
}

/// `cabinet-lab fleet`: run, print the reconciliation and the figures. Exit 0 only when the
/// books balance.
pub fn fleet(a: FleetArgs) -> anyhow::Result<ExitCode> {
    let opts = FleetOptions {
        cabinets: a.cabinets,
        commands: a.commands,
        rate: a.rate,
        hostile: a.hostile,
        motor: Duration::from_millis(a.motor_ms),
        dir: a.dir,
        broker_restarts: a.broker_restarts,
        broker_persistence: a.broker_persistence,
        cluster: a.cluster,
        kill_node: a.kill_node,
        rolling_restart: a.rolling_restart,
        session_queues: a.session_queues,
    };
    let report = run_fleet(&opts)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report.print();
    }
    Ok(if report.reconciled {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Valid,
    Duplicate,
    WrongTopic,
    Expired,
    Forged,
}

/// A command as the backend sent it.
#[derive(Debug)]
struct Sent {
    cmd_id: String,
    /// The cabinet whose topic it was published to.
    to: usize,
    kind: Kind,
    /// The slot it asked for (for a duplicate: not the original's).
    slot: u16,
    at: Instant,
}

/// What the backend saw of one command id.
#[derive(Debug, Default)]
struct Seen {
    terminal: Vec<(ReplyState, Option<Reason>)>,
    first_terminal: Option<Instant>,
    dispensing: Option<Instant>,
}

/// Everything the backend received.
#[derive(Debug, Default)]
struct Inbox {
    by_cmd: HashMap<String, Seen>,
    /// Rejections without ids (untrusted tokens), per cabinet, per reason code.
    anonymous: HashMap<String, BTreeMap<&'static str, u64>>,
    /// (boot id, seq) of each rejection without an id, to drop redeliveries.
    anonymous_seen: HashSet<(String, u64)>,
    online: HashSet<String>,
    /// Command ids that have their first terminal outcome.
    terminal_ids: u64,
    anonymous_total: u64,
    replies: u64,
    /// Outcomes (first terminal reply or anonymous rejection) per cabinet code.
    done: HashMap<String, u64>,
    garbage: u64,
    /// Every "online" and reply of each cabinet, in arrival order: (arrival, the
    /// message's own `at`, unix ms: when the cabinet opened that connection, or made that
    /// reply).
    heard: HashMap<String, Vec<(Instant, u64)>>,
}

impl Inbox {
    /// When the backend first heard from cabinet `code` over a connection made after
    /// `kill`: an "online" of that connection or a reply made after the kill. Either one
    /// proves the cabinet is back; both, because RabbitMQ may drop a presence message
    /// that crosses a leader election.
    fn back_since(&self, code: &str, kill: &Kill) -> Option<Instant> {
        self.heard
            .get(code)?
            .iter()
            .find(|(_, at_ms)| *at_ms >= kill.at_ms)
            .map(|(arrival, _)| *arrival)
    }

    fn record(&mut self, m: &BackendMessage) {
        let code = m.topic.split('/').nth(2).unwrap_or_default().to_owned();
        if m.topic.ends_with("/state") {
            let state = serde_json::from_slice::<serde_json::Value>(&m.payload).ok();
            if let Some(v) = state.filter(|v| v["status"] == "online") {
                let at_ms = v["at"].as_u64().unwrap_or(0);
                self.heard
                    .entry(code.clone())
                    .or_default()
                    .push((m.at, at_ms));
                self.online.insert(code);
            }
            return;
        }
        if !m.topic.ends_with("/reply") {
            return;
        }
        let Ok(r) = serde_json::from_slice::<Reply>(&m.payload) else {
            self.garbage += 1;
            return;
        };
        self.replies += 1;
        self.heard
            .entry(code.clone())
            .or_default()
            .push((m.at, r.at));
        let now = Instant::now();
        if r.cmd_id.is_empty() {
            // A persistent session may deliver a reply twice: one reply is one boot's
            // sequence number.
            if let Some(seq) = r.seq
                && !self.anonymous_seen.insert((r.boot_id.clone(), seq))
            {
                return;
            }
            let reason = r.reason.map_or("none", Reason::code);
            *self
                .anonymous
                .entry(code.clone())
                .or_default()
                .entry(reason)
                .or_default() += 1;
            self.anonymous_total += 1;
            *self.done.entry(code).or_default() += 1;
            return;
        }
        let terminal = r.is_terminal();
        let seen = self.by_cmd.entry(r.cmd_id).or_default();
        if r.state == ReplyState::Dispensing && seen.dispensing.is_none() {
            seen.dispensing = Some(now);
        }
        if terminal {
            if seen.first_terminal.is_none() {
                seen.first_terminal = Some(now);
                self.terminal_ids += 1;
                *self.done.entry(code).or_default() += 1;
            }
            let outcome = (r.state, r.reason);
            if !seen.terminal.contains(&outcome) {
                seen.terminal.push(outcome);
            }
        }
    }
}

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
    fn of(mut v: Vec<u32>) -> Latency {
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
    sent: BTreeMap<Kind, u64>,
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
    fn print(&self) {
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

fn code(i: usize) -> String {
    format!("F{:04}", i + 1)
}

/// The broker(s) a fleet runs against.
enum Net {
    /// One Mosquitto, anonymous.
    One(Broker),
    /// A RabbitMQ cluster, one user per cabinet.
    Cluster(Cluster),
}

impl Net {
    fn urls(&self) -> Vec<String> {
        match self {
            Net::One(b) => vec![format!("mqtt://127.0.0.1:{}", b.port)],
            Net::Cluster(c) => c.urls(),
        }
    }

    /// A cabinet's MQTT password, if the broker wants one.
    fn password(&self, user: &str) -> Option<String> {
        match self {
            Net::One(_) => None,
            Net::Cluster(c) => Some(c.password(user)),
        }
    }

    async fn backend(&self) -> anyhow::Result<BackendClient> {
        match self {
            Net::One(b) => b.backend(BACKEND_ID, "+").await,
            Net::Cluster(c) => c.backend(BACKEND_ID, "+").await,
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Net::One(b) => vec![b.pid()],
            Net::Cluster(c) => c.pids(),
        }
    }
}

fn write_config(
    dir: &Path,
    machine: &str,
    urls: &[String],
    password: Option<String>,
    public: &str,
) -> anyhow::Result<PathBuf> {
    let (url, failover) = urls.split_first().context("no broker URL")?;
    let failover: Vec<String> = failover.iter().map(|u| format!("\"{u}\"")).collect();
    let mut text = format!(
        "machine_code = \"{machine}\"\n\n[mqtt]\nurl = \"{url}\"\nfailover_urls = [{}]\n\
         keepalive_secs = 30\nreconnect_min_ms = 100\nreconnect_max_ms = 2000\n",
        failover.join(", ")
    );
    if let Some(pw) = password {
        let file = dir.join("mqtt-password");
        std::fs::write(&file, pw).with_context(|| format!("cannot write {}", file.display()))?;
        text.push_str(&format!("password_file = \"{}\"\n", file.display()));
    }
    text.push_str(&format!(
        "\n[keys]\nk1 = \"{public}\"\n\n[board]\nprotocol = \"vmc\"\nport = \"/dev/null\"\n\n\
         [journal]\npath = \"journal.sqlite3\"\n\n[logs]\ndir = \"logs\"\n"
    ));
    for s in 1..=SLOTS {
        text.push_str(&format!(
            "\n[[slots]]\nslot = {s}\nproduct = \"P{s}\"\ncapacity = {PER_SLOT}\ninitial_count = {PER_SLOT}\n"
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A thousand cabinets need a few thousand descriptors (journal, WAL, lock, socket each).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Run a fleet and reconcile.
pub fn run_fleet(o: &FleetOptions) -> anyhow::Result<Report> {
    let n = usize::try_from(o.cabinets.max(1))?;
    let capacity = u64::from(o.cabinets.max(1)) * u64::from(SLOTS) * u64::from(PER_SLOT);
    if u64::from(o.commands) * 2 > capacity {
        bail!(
            "--commands {} needs more stock than {} cabinets hold with margin ({} items); add cabinets",
            o.commands,
            n,
            capacity
        );
    }
    if !(0.0..=1.0).contains(&o.hostile) {
        bail!("--hostile must be between 0 and 1, got {}", o.hostile);
    }
    raise_fd_limit();
    let tmp;
    let dir = match &o.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    if o.cluster.is_some() && o.broker_restarts > 0 {
        bail!("--broker-restarts is for the single Mosquitto; with --cluster use --kill-node");
    }
    let mut net = match o.cluster {
        None => Net::One(Broker::start_with(true, o.broker_persistence)?),
        Some(nodes) => Net::Cluster(Cluster::start(
            nodes,
            &(0..n).map(code).collect::<Vec<_>>(),
            o.session_queues,
        )?),
    };
    let broker_pids = net.pids();
    let (key, public) = protocol::generate_keypair()?;
    let (forger, _) = protocol::generate_keypair()?;
    let rt = kiosk::runtime().context("cannot start the async runtime")?;
    let mut backend = rt.block_on(net.backend())?;

    let me = std::process::id();
    let rss_before = rss_kib(me).unwrap_or(0);
    let started = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut boards = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    let mut screens = Vec::with_capacity(n);
    for i in 0..n {
        let cdir = dir.join(code(i));
        std::fs::create_dir_all(&cdir)?;
        let path = write_config(
            &cdir,
            &code(i),
            &net.urls(),
            net.password(&code(i)),
            &public,
        )?;
        let cfg = Config::load(&path).map_err(|e| anyhow::anyhow!("fleet config: {e}"))?;
        let lock = InstanceLock::for_config(&cfg)?;
        let board = Arc::new(MemoryBoard::new(SLOTS, o.motor));
        let (screen_tx, screen_rx) = watch::channel(None);
        screens.push(screen_rx);
        let (_, control_rx) = cabinet_core::control::channel();
        let dyn_board: Arc<dyn Board> = board.clone();
        tasks.push(rt.spawn(kiosk::run(
            cfg,
            lock,
            dyn_board,
            screen_tx,
            control_rx,
            stop_rx.clone(),
        )));
        boards.push(board);
    }
    let mut inbox = Inbox::default();
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + COME_ONLINE;
        while inbox.online.len() < n {
            match tokio::time::timeout_at(deadline, backend.recv()).await {
                Ok(Some(m)) => inbox.record(&m),
                Ok(None) => bail!("the backend lost its broker connection"),
                Err(_) => bail!(
                    "only {} of {n} cabinets came online within {COME_ONLINE:?}",
                    inbox.online.len()
                ),
            }
        }
        anyhow::Ok(())
    })?;
    let all_online = started.elapsed();
    let rss_online = rss_kib(me).unwrap_or(0);
    // On a cluster: may one cabinet's credentials read another's commands?
    let hijack = match &net {
        Net::Cluster(c) if n >= 2 => Some(rt.block_on(c.hijack_probe(&code(0), &code(1)))),
        _ => None,
    };

    // The command run.
    let cpu0 = cpu_seconds(me).unwrap_or(0.0);
    let bcpu0: f64 = broker_pids.iter().filter_map(|p| cpu_seconds(*p)).sum();
    let mut rng = XorShift::new();
    let mut sent: Vec<Sent> = Vec::with_capacity(o.commands as usize);
    // Outcomes each cabinet owes (duplicates owe none of their own).
    let mut expected = vec![0u64; n];
    // Every command with an id, for retries: cmd_id -> (cabinet, token).
    let mut tokens: HashMap<String, (usize, String)> = HashMap::new();
    // Valid commands, for duplicates: (cabinet, cmd_id, token).
    let mut valid_tokens: Vec<(usize, String, String)> = Vec::new();
    let run = now_s();
    let interval = if o.rate > 0.0 {
        Duration::from_secs_f64(1.0 / o.rate)
    } else {
        Duration::ZERO
    };
    let t0 = Instant::now();
    let mut last_send = t0;
    let total = o.commands as usize;
    let restarts = o.broker_restarts as usize;
    let mut restart_at: Vec<usize> = (1..=restarts).map(|k| total * k / (restarts + 1)).collect();
    let mut kills = match o.cluster {
        Some(nodes) if o.rolling_restart => NodeKills::rolling(nodes, total),
        Some(nodes) if o.kill_node => NodeKills::one(nodes, total),
        _ => NodeKills::none(),
    };
    let mut reconnects = 0u32;
    rt.block_on(async {
        let mut next = tokio::time::Instant::now();
        while sent.len() < total {
            if restart_at.first() == Some(&sent.len()) {
                restart_at.remove(0);
                if let Net::One(broker) = &mut net {
                    broker.restart()?;
                }
                backend = reconnect(&net).await?;
                reconnects += 1;
            }
            if let Net::Cluster(cluster) = &mut net
                && kills
                    .step(cluster, sent.len(), |c, k| inbox.back_since(c, k).is_some())
                    .await?
                    == Step::MoveBackend
            {
                backend = reconnect(&net).await?;
                reconnects += 1;
            }
            tokio::select! {
                biased;
                m = backend.recv() => match m {
                    Some(m) => inbox.record(&m),
                    None => {
                        backend = reconnect(&net).await?;
                        reconnects += 1;
                    }
                },
                () = tokio::time::sleep_until(next) => {
                    let i = sent.len();
                    let to = rng.below(n as u64) as usize;
                    // A backend does not pile more on a cabinet than its broker queue
                    // holds: wait for outcomes instead.
                    if expected[to] >= inbox.done.get(&code(to)).copied().unwrap_or(0) + MAX_OUTSTANDING {
                        match backend.recv().await {
                            Some(m) => inbox.record(&m),
                            None => {
                                backend = reconnect(&net).await?;
                                reconnects += 1;
                            }
                        }
                        continue;
                    }
                    let kind = if rng.unit() < o.hostile {
                        [Kind::Duplicate, Kind::WrongTopic, Kind::Expired, Kind::Forged]
                            [rng.below(4) as usize]
                    } else {
                        Kind::Valid
                    };
                    let slot = 1 + rng.below(u64::from(SLOTS)) as u16;
                    let id = format!("fleet-{run}-{i}");
                    let now = now_s();
                    let (cmd_id, to, token) = match kind {
                        Kind::Valid => {
                            let t = protocol::sign_command(&claims(&code(to), &id, slot, now, now + 300), &key, "k1")?;
                            valid_tokens.push((to, id.clone(), t.clone()));
                            (id, to, t)
                        }
                        Kind::Duplicate => match valid_tokens.get(rng.below(valid_tokens.len().max(1) as u64) as usize) {
                            Some((c, jti, t)) => (jti.clone(), *c, t.clone()),
                            None => {
                                next += interval;
                                continue;
                            }
                        },
                        Kind::WrongTopic => {
                            // Signed for `to`, published to the next cabinet (or to a
                            // cabinet that does not exist in a fleet of one).
                            let aud = if n > 1 { code(to) } else { "F9999".to_owned() };
                            let dest = (to + 1) % n;
                            let t = protocol::sign_command(&claims(&aud, &id, slot, now, now + 300), &key, "k1")?;
                            (id, dest, t)
                        }
                        Kind::Expired => {
                            let t = protocol::sign_command(&claims(&code(to), &id, slot, now - 600, now - 300), &key, "k1")?;
                            (id, to, t)
                        }
                        Kind::Forged => {
                            let t = protocol::sign_command(&claims(&code(to), &id, slot, now, now + 300), &forger, "k1")?;
                            (String::new(), to, t)
                        }
                    };
                    let at = Instant::now();
                    // A publish the broker did not acknowledge may or may not have arrived:
                    // recorded as sent all the same, and resent (same id) if no outcome comes.
                    if backend.send_command(&code(to), &token).await.is_err() {
                        backend = reconnect(&net).await?;
                        reconnects += 1;
                    }
                    if kind != Kind::Forged && kind != Kind::Duplicate {
                        tokens.insert(cmd_id.clone(), (to, token));
                    }
                    last_send = Instant::now();
                    if kind != Kind::Duplicate {
                        expected[to] += 1;
                    }
                    sent.push(Sent { cmd_id, to, kind, slot, at });
                    next += interval;
                }
            }
        }
        anyhow::Ok(())
    })?;
    // A rolling restart that outlasted the commands goes on to its end, the outcomes
    // still coming in (each step has its own time bound).
    rt.block_on(async {
        while let Net::Cluster(cluster) = &mut net
            && !kills.finished()
        {
            if kills
                .step(cluster, sent.len(), |c, k| inbox.back_since(c, k).is_some())
                .await?
                == Step::MoveBackend
            {
                backend = reconnect(&net).await?;
                reconnects += 1;
                continue;
            }
            tokio::select! {
                m = backend.recv() => match m {
                    Some(m) => inbox.record(&m),
                    None => {
                        backend = reconnect(&net).await?;
                        reconnects += 1;
                    }
                },
                // Polling the kill plan's probes and checks.
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        anyhow::Ok(())
    })?;

    // Wait for the outcomes: every id'd command terminal, every forged one refused. A
    // broker may drop what it cannot queue (Mosquitto: max_queued_messages per session)
    // and then a backend retries with the same id, as docs/PROTOCOL.md tells it to:
    // the cabinet's journal makes that harmless, and the motor counts below prove it.
    let with_ids = sent.iter().filter(|s| s.kind != Kind::Forged).count() as u64;
    let forged = sent.iter().filter(|s| s.kind == Kind::Forged).count() as u64;
    let mut resent = 0u64;
    rt.block_on(async {
        for _round in 0..=MAX_RETRY_ROUNDS {
            if !settle(&mut backend, &mut inbox, with_ids, forged).await {
                backend = reconnect(&net).await?;
                reconnects += 1;
            }
            let missing: Vec<&(usize, String)> = tokens
                .iter()
                .filter(|(id, _)| inbox.by_cmd.get(*id).is_none_or(|x| x.terminal.is_empty()))
                .map(|(_, t)| t)
                .collect();
            if missing.is_empty() {
                break;
            }
            // In batches a broker can queue for one cabinet.
            for (to, token) in missing.into_iter().take(RETRY_BATCH) {
                if backend.send_command(&code(*to), token).await.is_err() {
                    backend = reconnect(&net).await?;
                    reconnects += 1;
                }
                resent += 1;
                if interval > Duration::ZERO {
                    tokio::time::sleep(interval).await;
                }
            }
        }
        anyhow::Ok(())
    })?;
    // Every cabinet of a killed node must be online again, commands for it or not.
    rt.block_on(async {
        let last_kill = kills.kills().iter().map(|k| k.at).max();
        let deadline =
            tokio::time::Instant::from_std(last_kill.unwrap_or_else(Instant::now) + BACK_ONLINE);
        while kills
            .kills()
            .iter()
            .any(|k| k.displaced.iter().any(|c| inbox.back_since(c, k).is_none()))
        {
            match tokio::time::timeout_at(deadline, backend.recv()).await {
                Ok(Some(m)) => inbox.record(&m),
                Ok(None) => {
                    backend = reconnect(&net).await?;
                    reconnects += 1;
                }
                Err(_) => break,
            }
        }
        anyhow::Ok(())
    })?;
    let last_outcome = inbox
        .by_cmd
        .values()
        .filter_map(|s| s.first_terminal)
        .max()
        .unwrap_or(last_send);
    let run_s = last_outcome.max(last_send).duration_since(t0).as_secs_f64();
    let cpu_fleet = cpu_seconds(me).unwrap_or(0.0) - cpu0;
    // After a restart the broker is another process: its CPU time is not comparable.
    let cpu_broker = if net.pids() == broker_pids {
        broker_pids
            .iter()
            .filter_map(|p| cpu_seconds(*p))
            .sum::<f64>()
            - bcpu0
    } else {
        f64::NAN
    };
    let rss_after = rss_kib(me).unwrap_or(0);
    let broker_rss = net.pids().iter().filter_map(|p| rss_kib(*p)).sum();

    // Stop the kiosks (each publishes "offline" and disconnects).
    let _ = stop_tx.send(true);
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    });
    drop(screens);
    drop(backend);
    drop(rt);
    drop(net);

    Ok(reconcile(
        o,
        &sent,
        &inbox,
        &boards,
        Figures {
            t0,
            last_send,
            run_s,
            all_online,
            rss: [rss_before, rss_online, rss_after],
            cpu: [cpu_fleet, cpu_broker],
            resent,
            restarts: o.broker_restarts,
            reconnects,
            kills,
            broker_rss,
            hijack,
        },
    ))
}

/// A fresh backend connection after the broker went away (it is restarting): retried
/// for up to a minute.
async fn reconnect(net: &Net) -> anyhow::Result<BackendClient> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match net.backend().await {
            Ok(b) => return Ok(b),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("the backend cannot reconnect to the broker"));
            }
            // Backing off between connection attempts to a restarting broker.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Receive until every command has its outcome, or none came for [`QUIET`]. `false` if
/// the connection was lost.
async fn settle(
    backend: &mut BackendClient,
    inbox: &mut Inbox,
    with_ids: u64,
    forged: u64,
) -> bool {
    let mut progress = (inbox.terminal_ids, inbox.anonymous_total);
    let mut quiet_until = tokio::time::Instant::now() + QUIET;
    while inbox.terminal_ids < with_ids || inbox.anonymous_total < forged {
        match tokio::time::timeout_at(quiet_until, backend.recv()).await {
            Ok(Some(m)) => inbox.record(&m),
            Ok(None) => return false,
            Err(_) => return true,
        }
        let now = (inbox.terminal_ids, inbox.anonymous_total);
        if now != progress {
            progress = now;
            quiet_until = tokio::time::Instant::now() + QUIET;
        }
    }
    true
}

struct Figures {
    t0: Instant,
    last_send: Instant,
    run_s: f64,
    all_online: Duration,
    rss: [u64; 3],
    cpu: [f64; 2],
    resent: u64,
    restarts: u32,
    reconnects: u32,
    /// The node kills planned, and as they happened.
    kills: NodeKills,
    broker_rss: u64,
    hijack: Option<HijackProbe>,
}

fn reconcile(
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
            && f.hijack.as_ref().is_none_or(HijackProbe::refused),
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

#[cfg(test)]
mod tests;
