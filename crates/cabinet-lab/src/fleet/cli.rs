//! The command line of `cabinet-lab fleet`: its arguments, the options a run is asked
//! to do, and the exit code (0 only when the books balance).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::options::FleetOptions;
use super::run::run_fleet;
use crate::rabbitmq::SessionQueues;

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
    /// Half way through the commands, rotate every cabinet's dispense key and push a
    /// configuration over their own channel (signed, retained documents), as an operator
    /// does, and report how long until the whole fleet runs them. The books must still
    /// balance: no order refused or doubled by the change. One Mosquitto only.
    #[arg(long, conflicts_with = "cluster")]
    rollout: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
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
        rollout: a.rollout,
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
