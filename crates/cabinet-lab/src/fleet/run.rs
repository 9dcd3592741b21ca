//! One fleet run from start to finish: the broker(s) and the kiosks started, the fleet
//! online, the commands sent (paced, hostile ones mixed in, broker restarts and node
//! kills on the way), the outcomes awaited and lost commands resent, the figures
//! measured, the kiosks stopped, and everything handed to the reconciliation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_board::Board;
use cabinet_board::memory::MemoryBoard;
use cabinet_core::config::Config;
use cabinet_core::instance::InstanceLock;
use cabinet_core::kiosk;
use cabinet_core::protocol;
use tokio::sync::watch;

use super::backend::{Inbox, Kind, Sent, listen, reconnect, settle};
use super::cabinets::{Net, PER_SLOT, SLOTS, code, raise_fd_limit, write_config};
use super::options::FleetOptions;
use super::reconcile::{Figures, reconcile};
use super::report::Report;
use super::rollout::Rollout;
use crate::mosquitto::Broker;
use crate::node_kills::{BACK_ONLINE, NodeKills, Step};
use crate::orders::{claims, now_s};
use crate::procfs::{cpu_seconds, rss_kib};
use crate::rabbitmq::Cluster;
use crate::xorshift::XorShift;

/// How long the backend waits for the fleet to come online, and for the last outcomes.
const COME_ONLINE: Duration = Duration::from_secs(120);
/// Commands a backend lets wait on one cabinet at a time: half of Mosquitto's default
/// per-session queue (1,000), so the broker never has to drop one.
const MAX_OUTSTANDING: u64 = 500;
/// Rounds of resending lost commands before giving up.
const MAX_RETRY_ROUNDS: u32 = 20;
/// Commands resent per round: Mosquitto queues 1,000 per session by default.
const RETRY_BATCH: usize = 500;
/// How long a rollout may go on after the last command.
const ROLLOUT_TAIL: Duration = Duration::from_secs(120);

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
    if o.cluster.is_some() && o.rollout {
        // The cluster's backend user may not write desired/ (the operator's): the shipped
        // permissions keep the order servers from replacing keys.
        bail!("--rollout runs on the single Mosquitto, not with --cluster");
    }
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
    let (operator, operator_public) = protocol::generate_keypair()?;
    let mut rollout = if o.rollout {
        Some(Rollout::new(
            key.clone(),
            operator,
            o.commands as usize / 2,
        )?)
    } else {
        None
    };
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
            &operator_public,
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
            if let Some(r) = rollout.as_mut() {
                let before = r.switched_after();
                r.step(&mut backend, &sent, &inbox, n).await?;
                if before.is_none() && r.switched_after().is_some() {
                    // Signing with the new key now: a duplicate replays only what it signed
                    // (a backend does not resend a token of a key it is about to retire).
                    valid_tokens.clear();
                }
            }
            let (signer, kid) = match &rollout {
                Some(r) => r.signer(),
                None => (&key, "k1"),
            };
            let (signer, kid) = (signer.clone(), kid);
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
                            let t = protocol::sign_command(&claims(&code(to), &id, slot, now, now + 300), &signer, kid)?;
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
                            let t = protocol::sign_command(&claims(&aud, &id, slot, now, now + 300), &signer, kid)?;
                            (id, dest, t)
                        }
                        Kind::Expired => {
                            let t = protocol::sign_command(&claims(&code(to), &id, slot, now - 600, now - 300), &signer, kid)?;
                            (id, to, t)
                        }
                        Kind::Forged => {
                            let t = protocol::sign_command(&claims(&code(to), &id, slot, now, now + 300), &forger, kid)?;
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
            // Polling the kill plan's probes and checks between messages.
            listen(&mut backend, &mut inbox, &net, &mut reconnects).await?;
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
    // A rollout that outlasted the commands goes on to its end, once every command has
    // its outcome (lost ones resent above, with the key that signed them, still
    // trusted): at most ROLLOUT_TAIL more.
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + ROLLOUT_TAIL;
        while let Some(r) = rollout.as_mut()
            && !r.finished()
            && tokio::time::Instant::now() < deadline
        {
            r.step(&mut backend, &sent, &inbox, n).await?;
            // Polling the rollout's checks between messages.
            listen(&mut backend, &mut inbox, &net, &mut reconnects).await?;
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
            rollout: rollout.as_ref().map(|r| r.report(&inbox)),
        },
    ))
}
