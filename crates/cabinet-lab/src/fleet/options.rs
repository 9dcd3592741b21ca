//! What a fleet run is asked to do ([`FleetOptions`]): built from the command line
//! (`cli.rs`) or by the tests, read by the run and its grading.

use std::path::PathBuf;
use std::time::Duration;

use crate::rabbitmq::SessionQueues;

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
    /// Half way through, rotate every cabinet's keys and push a configuration
    /// (`fleet::rollout`).
    pub rollout: bool,
}
