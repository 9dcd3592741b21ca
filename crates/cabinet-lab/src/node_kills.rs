//! Node kills during a fleet run on a RabbitMQ cluster: one node killed half way through
//! the commands (`--kill-node`), or every node in turn, each started again and let back
//! into its queues before the next one goes (`--rolling-restart`): an operator's
//! rolling upgrade, except that each node dies by SIGKILL instead of a clean stop.
//!
//! The fleet's send loop calls [`NodeKills::step`] between commands. It does not wait on
//! a node: readiness probes and RabbitMQ's health checks run as tasks, and `step` only
//! looks at whether they finished. The one blocking call is the broker's connection list
//! just before a kill (a `rabbitmqctl` run, about a second), once per kill and before the
//! kill's clock starts.

use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinHandle;

use crate::rabbitmq::Cluster;

/// The promise: every cabinet of a killed node is back on another node (the backend hears
/// from it over a new connection) within this long of the kill, or the run fails.
/// (Measured: under a second for one kill, a few seconds in a rolling restart;
/// RELIABILITY.md.) A rolling restart also waits this long at most before it starts the
/// killed node again.
pub const BACK_ONLINE: Duration = Duration::from_secs(10);

/// How long after its kill a restarted node may take to serve MQTT again (a two-node
/// mirrored cluster's second node takes 105-109 s: RELIABILITY.md).
const REJOIN: Duration = Duration::from_secs(240);
/// How long RabbitMQ may call the next node critical before the run gives up.
const SAFE_TO_STOP: Duration = Duration::from_secs(120);
/// Pause between two readiness probes or two health checks.
const RETRY: Duration = Duration::from_millis(250);

/// One node kill, as it happened.
#[derive(Debug)]
pub struct Kill {
    /// Node index (0-based).
    pub node: usize,
    /// When the SIGKILL went out.
    pub at: Instant,
    /// The same, unix milliseconds (to compare with the `at` of a cabinet's messages).
    pub at_ms: u64,
    /// Commands sent before it.
    pub after_commands: usize,
    /// Cabinets connected to the node when it died (the broker's own list).
    pub displaced: Vec<String>,
    /// Kill -> the restarted node took an MQTT connection again.
    pub rejoined: Option<Duration>,
    /// Node back -> RabbitMQ said the next node may go (rolling restarts).
    pub next_safe: Option<Duration>,
}

enum Phase {
    /// The next kill waits for its command.
    Due,
    /// A node is down (rolling restarts); it is started again once its cabinets are back
    /// elsewhere.
    Down,
    /// Restarted; probing until it serves MQTT.
    Rejoining {
        probe: Option<JoinHandle<bool>>,
        next_try: Instant,
    },
    /// Before the next kill: RabbitMQ's check that the next node may go.
    Checking {
        since: Instant,
        check: Option<JoinHandle<anyhow::Result<Result<(), String>>>>,
        next_try: Instant,
        last: String,
    },
    Done,
}

/// What the fleet must do after a [`NodeKills::step`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Nothing.
    Going,
    /// Connect the backend again: its node goes next, and [`Cluster::backend`] now
    /// avoids it.
    MoveBackend,
}

/// The kills planned for a run and those done so far.
pub struct NodeKills {
    /// (node, command index it is due at), in order.
    plan: Vec<(usize, usize)>,
    restart: bool,
    phase: Phase,
    done: Vec<Kill>,
}

impl NodeKills {
    /// No kill.
    pub fn none() -> NodeKills {
        NodeKills {
            plan: Vec::new(),
            restart: false,
            phase: Phase::Done,
            done: Vec::new(),
        }
    }

    /// `--kill-node`: the last node dies half way through `commands` and stays dead.
    pub fn one(nodes: usize, commands: usize) -> NodeKills {
        NodeKills {
            plan: vec![(nodes - 1, commands / 2)],
            restart: false,
            phase: Phase::Due,
            done: Vec::new(),
        }
    }

    /// `--rolling-restart`: every node, last to first (the backend's node 1 last), each
    /// due at the next of `nodes` evenly spaced points of the run and restarted before
    /// the next goes. A kill whose predecessor is not back yet waits for it.
    pub fn rolling(nodes: usize, commands: usize) -> NodeKills {
        NodeKills {
            plan: (0..nodes)
                .map(|k| (nodes - 1 - k, commands * (k + 1) / (nodes + 1)))
                .collect(),
            restart: true,
            phase: Phase::Due,
            done: Vec::new(),
        }
    }

    /// The kills so far.
    pub fn kills(&self) -> &[Kill] {
        &self.done
    }

    /// Kills planned in all.
    pub fn planned(&self) -> usize {
        self.plan.len()
    }

    /// Every planned kill done and, with restarts, every node serving again.
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Moves the plan on: `sent` commands are out, and `back(code, kill)` says whether
    /// cabinet `code` has been heard from over a connection made after `kill`.
    pub async fn step(
        &mut self,
        cluster: &mut Cluster,
        sent: usize,
        back: impl Fn(&str, &Kill) -> bool,
    ) -> anyhow::Result<Step> {
        let now = Instant::now();
        match &mut self.phase {
            Phase::Done => {}
            Phase::Due => {
                let Some(&(node, due)) = self.plan.get(self.done.len()) else {
                    self.phase = Phase::Done;
                    return Ok(Step::Going);
                };
                if sent < due {
                    return Ok(Step::Going);
                }
                // A backend is a client like the cabinets, but the one measuring: it
                // moves first, so that it sees every cabinet of the node come back.
                if cluster.backend_node() == Some(node) {
                    cluster.move_backend_off(node);
                    return Ok(Step::MoveBackend);
                }
                let displaced = cluster.mqtt_clients(node)?;
                // The clock starts with the SIGKILL: a cabinet may be back on another node
                // before the node's process has been reaped.
                let at = Instant::now();
                let at_ms = cabinet_core::kiosk::now_ms();
                cluster.kill(node)?;
                eprintln!(
                    "fleet: killed RabbitMQ node {} after {sent} commands ({} cabinets on it)",
                    node + 1,
                    displaced.len()
                );
                self.done.push(Kill {
                    node,
                    at,
                    at_ms,
                    after_commands: sent,
                    displaced,
                    rejoined: None,
                    next_safe: None,
                });
                self.phase = if self.restart {
                    Phase::Down
                } else {
                    self.after_kill()
                };
            }
            Phase::Down => {
                let Some(kill) = self.done.last() else {
                    bail!("a node is down with no kill on record");
                };
                let all_back = kill.displaced.iter().all(|c| back(c, kill));
                if all_back || now.duration_since(kill.at) > BACK_ONLINE {
                    cluster.restart(kill.node)?;
                    eprintln!("fleet: restarting RabbitMQ node {}", kill.node + 1);
                    self.phase = Phase::Rejoining {
                        probe: None,
                        next_try: now,
                    };
                }
            }
            Phase::Rejoining { probe, next_try } => {
                let Some(kill) = self.done.last_mut() else {
                    bail!("a node is rejoining with no kill on record");
                };
                if let Some(p) = probe.take_if(|p| p.is_finished()) {
                    if p.await? {
                        kill.rejoined = Some(kill.at.elapsed());
                        eprintln!(
                            "fleet: RabbitMQ node {} serves MQTT again, {:?} after its kill",
                            kill.node + 1,
                            kill.at.elapsed()
                        );
                        self.phase = self.after_kill();
                        return Ok(Step::Going);
                    }
                    *next_try = now + RETRY;
                }
                if probe.is_none() && now >= *next_try {
                    if let Some(status) = cluster.exited(kill.node)? {
                        bail!(
                            "RabbitMQ node {} exited when restarted ({status})",
                            kill.node + 1
                        );
                    }
                    if now.duration_since(kill.at) > REJOIN {
                        bail!(
                            "RabbitMQ node {} took no MQTT connection within {REJOIN:?} of its kill",
                            kill.node + 1
                        );
                    }
                    *probe = Some(tokio::spawn(cluster.ready_probe(kill.node)));
                }
            }
            Phase::Checking {
                since,
                check,
                next_try,
                last,
            } => {
                let Some(&(next, _)) = self.plan.get(self.done.len()) else {
                    self.phase = Phase::Done;
                    return Ok(Step::Going);
                };
                if let Some(c) = check.take_if(|c| c.is_finished()) {
                    match c.await? {
                        Ok(Ok(())) => {
                            if let Some(kill) = self.done.last_mut() {
                                kill.next_safe = Some(since.elapsed());
                            }
                            eprintln!(
                                "fleet: RabbitMQ says node {} may go ({:?} after the last one came back)",
                                next + 1,
                                since.elapsed()
                            );
                            self.phase = Phase::Due;
                            return Ok(Step::Going);
                        }
                        Ok(Err(why)) => *last = why,
                        Err(e) => *last = format!("{e:#}"),
                    }
                    *next_try = now + RETRY;
                }
                if check.is_none() && now >= *next_try {
                    if now.duration_since(*since) > SAFE_TO_STOP {
                        bail!(
                            "RabbitMQ still calls node {} critical after {SAFE_TO_STOP:?}: {last}",
                            next + 1
                        );
                    }
                    *check = Some(tokio::task::spawn_blocking(cluster.safe_to_stop(next)));
                }
            }
        }
        Ok(Step::Going)
    }

    /// After a kill (and its restart, if any): check the next node, or done.
    fn after_kill(&self) -> Phase {
        if self.done.len() >= self.plan.len() {
            Phase::Done
        } else if self.restart {
            Phase::Checking {
                since: Instant::now(),
                check: None,
                next_try: Instant::now(),
                last: "not checked yet".into(),
            }
        } else {
            Phase::Due
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_kill_is_the_last_node_half_way() {
        let k = NodeKills::one(3, 400);
        assert_eq!(k.plan, vec![(2, 200)]);
        assert!(!k.restart);
        assert!(!k.finished());
    }

    #[test]
    fn a_rolling_restart_takes_every_node_last_to_first_at_even_points() {
        let k = NodeKills::rolling(3, 400);
        assert_eq!(k.plan, vec![(2, 100), (1, 200), (0, 300)]);
        assert!(k.restart);
        let k = NodeKills::rolling(2, 300);
        assert_eq!(k.plan, vec![(1, 100), (0, 200)]);
    }

    #[test]
    fn no_kill_is_finished_from_the_start() {
        let k = NodeKills::none();
        assert!(k.finished());
        assert_eq!(k.planned(), 0);
    }
}
