//! `--rollout`: a key rotation and a configuration pushed to every cabinet while the
//! orders go on, as an operator does it (docs/PROTOCOL.md §12, "A rotation, step by
//! step"), and the time until the whole fleet runs them.
//!
//! Half way through the commands the operator publishes, retained, to every cabinet: key
//! set version 1 (the old dispense key `k1`, the new `k2`, the operator key) and
//! configuration version 1 (a new screen name). Once every cabinet reports both, the
//! backend signs with `k2` from then on. Once every command signed with `k1` has its
//! outcome, the operator publishes key set version 2 (`k2` and the operator key only).
//! The run's books must still balance: no order refused or doubled by the change.

use std::time::Instant;

use anyhow::Context;
use cabinet_core::config::ConfigClaims;
use cabinet_core::mqtt::BackendClient;
use cabinet_core::protocol::{
    self, KIND_CONFIG, KIND_KEYS, KeyEntry, KeyRole, KeySetClaims, SigningKey,
};
use serde::Serialize;

use super::backend::{Inbox, Kind, Sent};
use super::cabinets::code;
use crate::orders::now_s;

/// The operator key's kid in the fleet's configs.
pub(super) const OPERATOR_KID: &str = "ops";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not yet half way.
    Waiting,
    /// Key set 1 and configuration 1 published; waiting for every cabinet to run them.
    Trusting,
    /// Signing with `k2`; waiting for every `k1` command's outcome.
    Draining,
    /// Key set 2 published; waiting for every cabinet to run it.
    Removing,
    /// Every cabinet runs key set 2 and configuration 1.
    Done,
}

/// The rollout's figures, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RolloutReport {
    /// Commands sent before it started.
    pub after_commands: usize,
    /// From the first publish until every cabinet reported key set 1 and configuration 1.
    pub both_in_force_ms: Option<f64>,
    /// From then (the backend signing with the new key) until every command signed with
    /// the old key had its outcome.
    pub drained_ms: Option<f64>,
    /// From the first publish until every cabinet reported key set 2 (the old key gone).
    pub rotated_ms: Option<f64>,
    /// Cabinets that reported key set 2 and configuration 1 at the end.
    pub cabinets_done: usize,
    /// Documents any cabinet refused (each one a failure).
    pub refused: u64,
    /// Documents published (3 per cabinet).
    pub published: u64,
}

/// The rollout as it goes.
pub(super) struct Rollout {
    k1: SigningKey,
    k2: SigningKey,
    ops: SigningKey,
    phase: Phase,
    start_after: usize,
    started: Option<Instant>,
    both: Option<Instant>,
    drained: Option<Instant>,
    rotated: Option<Instant>,
    /// Sent commands before the backend switched to `k2`.
    k1_commands: usize,
    published: u64,
}

impl Rollout {
    /// A rollout after `start_after` commands, rotating from `k1`.
    pub(super) fn new(
        k1: SigningKey,
        ops: SigningKey,
        start_after: usize,
    ) -> anyhow::Result<Rollout> {
        let (k2, _) = protocol::generate_keypair()?;
        Ok(Rollout {
            k1,
            k2,
            ops,
            phase: Phase::Waiting,
            start_after,
            started: None,
            both: None,
            drained: None,
            rotated: None,
            k1_commands: 0,
            published: 0,
        })
    }

    /// The dispense key the backend signs with now, and its kid.
    pub(super) fn signer(&self) -> (&SigningKey, &'static str) {
        match self.phase {
            Phase::Waiting | Phase::Trusting => (&self.k1, "k1"),
            _ => (&self.k2, "k2"),
        }
    }

    /// Whether the backend has switched to the new key since `signed_before` commands
    /// were sent (duplicates then replay only what the new key signed).
    pub(super) fn switched_after(&self) -> Option<usize> {
        (!matches!(self.phase, Phase::Waiting | Phase::Trusting)).then_some(self.k1_commands)
    }

    pub(super) fn finished(&self) -> bool {
        self.phase == Phase::Done
    }

    fn entry(kid: &str, key: &SigningKey, role: KeyRole) -> KeyEntry {
        KeyEntry {
            kid: kid.to_owned(),
            x: protocol::public_key_base64url(key),
            roles: vec![role],
        }
    }

    async fn publish_keys(
        &mut self,
        backend: &mut BackendClient,
        n: usize,
        version: u64,
        with_k1: bool,
    ) -> anyhow::Result<()> {
        let mut keys = vec![
            Rollout::entry("k2", &self.k2, KeyRole::Dispense),
            Rollout::entry(OPERATOR_KID, &self.ops, KeyRole::Operator),
        ];
        if with_k1 {
            keys.push(Rollout::entry("k1", &self.k1, KeyRole::Dispense));
        }
        for i in 0..n {
            let claims = KeySetClaims {
                kind: KIND_KEYS.into(),
                aud: code(i),
                iat: now_s(),
                version,
                keys: keys.clone(),
            };
            let token = protocol::sign_document(&claims, &self.ops, OPERATOR_KID)?;
            backend
                .send_key_set(&code(i), &token)
                .await
                .with_context(|| format!("publishing key set {version} to {}", code(i)))?;
            self.published += 1;
        }
        Ok(())
    }

    async fn publish_config(
        &mut self,
        backend: &mut BackendClient,
        n: usize,
    ) -> anyhow::Result<()> {
        for i in 0..n {
            let claims = ConfigClaims {
                kind: KIND_CONFIG.into(),
                aud: code(i),
                iat: now_s(),
                version: 1,
                config: serde_json::json!({"kiosk": {"name": "Rollout 1"}}),
            };
            let token = protocol::sign_document(&claims, &self.ops, OPERATOR_KID)?;
            backend
                .send_config(&code(i), &token)
                .await
                .with_context(|| format!("publishing the configuration to {}", code(i)))?;
            self.published += 1;
        }
        Ok(())
    }

    /// One step: start half way, switch keys once the fleet trusts both, drop the old key
    /// once its commands are answered, finish once the fleet runs the new set.
    pub(super) async fn step(
        &mut self,
        backend: &mut BackendClient,
        sent: &[Sent],
        inbox: &Inbox,
        n: usize,
    ) -> anyhow::Result<()> {
        let all = |keys: u64, config: u64| {
            inbox.reported.len() >= n
                && inbox
                    .reported
                    .values()
                    .all(|&(k, c)| k >= keys && c >= config)
        };
        match self.phase {
            Phase::Waiting if sent.len() >= self.start_after => {
                self.started = Some(Instant::now());
                self.publish_keys(backend, n, 1, true).await?;
                self.publish_config(backend, n).await?;
                self.phase = Phase::Trusting;
            }
            Phase::Trusting if all(1, 1) => {
                self.both = Some(Instant::now());
                self.k1_commands = sent.len();
                self.phase = Phase::Draining;
            }
            Phase::Draining => {
                let answered = sent[..self.k1_commands]
                    .iter()
                    .filter(|s| s.kind != Kind::Forged && s.kind != Kind::Duplicate)
                    .all(|s| {
                        inbox
                            .by_cmd
                            .get(&s.cmd_id)
                            .is_some_and(|x| !x.terminal.is_empty())
                    });
                if answered {
                    self.drained = Some(Instant::now());
                    self.publish_keys(backend, n, 2, false).await?;
                    self.phase = Phase::Removing;
                }
            }
            Phase::Removing if all(2, 1) => {
                self.rotated = Some(Instant::now());
                self.phase = Phase::Done;
            }
            _ => {}
        }
        Ok(())
    }

    /// What it measured.
    pub(super) fn report(&self, inbox: &Inbox) -> RolloutReport {
        let ms = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(b.duration_since(a).as_secs_f64() * 1000.0),
            _ => None,
        };
        RolloutReport {
            after_commands: self.start_after,
            both_in_force_ms: ms(self.started, self.both),
            drained_ms: ms(self.both, self.drained),
            rotated_ms: ms(self.started, self.rotated),
            cabinets_done: inbox
                .reported
                .values()
                .filter(|&&(k, c)| k >= 2 && c >= 1)
                .count(),
            refused: inbox.documents_refused.len() as u64,
            published: self.published,
        }
    }
}
