//! The backend's side of a fleet run: the commands it sends (hostile kinds included), what
//! it hears back (replies, refusals without ids, presence), and how it waits for the last
//! outcomes and connects again after losing its broker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use cabinet_core::mqtt::{BackendClient, BackendMessage};
use cabinet_core::protocol::{Reply, ReplyState, Reported};
use cabinet_core::reason::Reason;
use serde::Serialize;

use super::cabinets::Net;
use crate::node_kills::Kill;

/// Outcomes are considered lost (and their commands resent) after this long without a new one.
pub(super) const QUIET: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Kind {
    Valid,
    Duplicate,
    WrongTopic,
    Expired,
    Forged,
}

/// A command as the backend sent it.
#[derive(Debug)]
pub(super) struct Sent {
    pub(super) cmd_id: String,
    /// The cabinet whose topic it was published to.
    pub(super) to: usize,
    pub(super) kind: Kind,
    /// The slot it asked for (for a duplicate: not the original's).
    pub(super) slot: u16,
    pub(super) at: Instant,
}

/// What the backend saw of one command id.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) terminal: Vec<(ReplyState, Option<Reason>)>,
    pub(super) first_terminal: Option<Instant>,
    pub(super) dispensing: Option<Instant>,
}

/// Everything the backend received.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    pub(super) by_cmd: HashMap<String, Seen>,
    /// Rejections without ids (untrusted tokens), per cabinet, per reason code.
    pub(super) anonymous: HashMap<String, BTreeMap<&'static str, u64>>,
    /// (boot id, seq) of each rejection without an id, to drop redeliveries.
    anonymous_seen: HashSet<(String, u64)>,
    pub(super) online: HashSet<String>,
    /// Command ids that have their first terminal outcome.
    terminal_ids: u64,
    anonymous_total: u64,
    replies: u64,
    /// Outcomes (first terminal reply or anonymous rejection) per cabinet code.
    pub(super) done: HashMap<String, u64>,
    garbage: u64,
    /// Every "online" and reply of each cabinet, in arrival order: (arrival, the
    /// message's own `at`, unix ms: when the cabinet opened that connection, or made that
    /// reply).
    heard: HashMap<String, Vec<(Instant, u64)>>,
    /// Each cabinet's latest `reported`: (key set version, configuration version).
    pub(super) reported: HashMap<String, (u64, u64)>,
    /// Documents a cabinet refused: (cabinet, the document's hash).
    pub(super) documents_refused: HashSet<(String, String)>,
}

impl Inbox {
    /// When the backend first heard from cabinet `code` over a connection made after
    /// `kill`: an "online" of that connection or a reply made after the kill. Either one
    /// proves the cabinet is back; both, because RabbitMQ may drop a presence message
    /// that crosses a leader election.
    pub(super) fn back_since(&self, code: &str, kill: &Kill) -> Option<Instant> {
        self.heard
            .get(code)?
            .iter()
            .find(|(_, at_ms)| *at_ms >= kill.at_ms)
            .map(|(arrival, _)| *arrival)
    }

    pub(super) fn record(&mut self, m: &BackendMessage) {
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
        if m.topic.ends_with("/reported") {
            record_reported(&mut self.reported, &mut self.documents_refused, &m.payload);
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

/// A fresh backend connection after the broker went away (it is restarting): retried
/// for up to a minute.
pub(super) async fn reconnect(net: &Net) -> anyhow::Result<BackendClient> {
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

/// Records the next message, or returns after [`LISTEN_TICK`] without one (for a caller
/// that polls its own checks between messages); connects again if the broker went away.
pub(super) async fn listen(
    backend: &mut BackendClient,
    inbox: &mut Inbox,
    net: &Net,
    reconnects: &mut u32,
) -> anyhow::Result<()> {
    tokio::select! {
        m = backend.recv() => match m {
            Some(m) => inbox.record(&m),
            None => {
                *backend = reconnect(net).await?;
                *reconnects += 1;
            }
        },
        () = tokio::time::sleep(LISTEN_TICK) => {}
    }
    Ok(())
}

/// How long [`listen`] waits for a message.
const LISTEN_TICK: Duration = Duration::from_millis(50);

/// Receive until every command has its outcome, or none came for [`QUIET`]. `false` if
/// the connection was lost.
pub(super) async fn settle(
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

/// What the backend keeps of each cabinet's `reported`: (key set version, configuration
/// version), and each document refused (cabinet, hash of the document).
fn record_reported(
    reported: &mut HashMap<String, (u64, u64)>,
    refused: &mut HashSet<(String, String)>,
    payload: &[u8],
) {
    let Ok(r) = serde_json::from_slice::<Reported>(payload) else {
        return;
    };
    if let Some(no) = &r.refused {
        refused.insert((r.machine_code.clone(), no.sha256.clone()));
    }
    let e = reported.entry(r.machine_code).or_default();
    *e = (
        e.0.max(r.keys.in_force.version),
        e.1.max(r.config.in_force.version),
    );
}
