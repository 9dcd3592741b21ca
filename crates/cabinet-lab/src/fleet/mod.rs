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
//! manual acks). The board is in-process ([`MemoryBoard`](cabinet_board::memory::MemoryBoard)): no pty, no I/O thread, so a
//! thousand cabinets fit on a small machine. The board's byte protocol has its own tests
//! and benchmarks.
//!
//! Hostile commands, each aimed at a random cabinet:
//! - **duplicate**: an earlier command's token published again (same `jti`): no second
//!   dispense, the stored outcome again;
//! - **wrong topic**: signed for one cabinet (`aud`), published to another's topic:
//!   `rejected` / `wrong_target`;
//! - **expired**: `exp` five minutes ago: `rejected` / `expired`;
//! - **forged**: signed with a key the cabinets do not trust (the `kid` of the real one): `rejected` /
//!   `bad_signature`, with empty ids (nothing in a forged token is believed).
//!
//! The parts: [`cli`] (the command line), [`options`] (what a run is asked to do), [`cabinets`] (the
//! cabinets a run starts and the broker or cluster they connect to), [`run`] (one run
//! from start to finish), [`backend`] (what the backend sent and heard), [`reconcile`]
//! (the grading), [`report`] (what a run says about itself) and [`rollout`] (a key rotation
//! and a configuration pushed to the whole fleet during the run, `--rollout`).

mod backend;
mod cabinets;
mod cli;
mod options;
mod reconcile;
mod report;
mod rollout;
mod run;
#[cfg(test)]
mod tests;

pub use cli::{FleetArgs, fleet};
