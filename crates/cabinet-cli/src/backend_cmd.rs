//! `cabinet send` and `cabinet watch`: the backend's side of the MQTT contract, for
//! backend developers and technicians (docs/PROTOCOL.md).
//!
//! `send` signs a real dispense command, publishes it and waits for the cabinet's single
//! outcome. Exit codes: 0 succeeded; 1 failed, rejected or outcome_unknown; 2 nothing
//! was sent (bad arguments, key or broker); 3 sent, but no outcome arrived in time (the
//! outcome is unknown: retry with the same `--cmd-id`, which the cabinet dedupes).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use cabinet_core::config::{Secret, parse_broker_url};
use cabinet_core::mqtt::{BackendClient, BackendMessage, BackendOptions};
use cabinet_core::protocol::{self, CommandClaims, CommandKind, ReplyState, Topics};
use clap::Args;

/// Exit code: a command was published but no terminal reply arrived in time.
const EXIT_NO_OUTCOME: u8 = 3;

/// How to reach and log in to the broker (as the backend).
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Broker URL: mqtt://host[:1883] or mqtts://host[:8883] (then also --ca-file).
    #[arg(long)]
    broker: Option<String>,
    /// MQTT username; the shipped ACLs give `backend` the backend's rights and
    /// `operator` the right to give cabinets documents (default: `backend`; `operator`
    /// for `cabinet keys`).
    #[arg(long)]
    username: Option<String>,
    /// The username when `--username` is not given.
    #[arg(skip = "backend")]
    pub(crate) default_user: &'static str,
    /// Read the MQTT password from this file (first line).
    #[arg(long, conflicts_with = "password_env")]
    password_file: Option<PathBuf>,
    /// Read the MQTT password from this environment variable.
    #[arg(long)]
    password_env: Option<String>,
    /// PEM CA bundle that signed the broker's certificate (for mqtts://).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// MQTT client id (default: a fresh random `cabinet-cli-...`).
    #[arg(long)]
    client_id: Option<String>,
}

impl BrokerArgs {
    fn username(&self) -> String {
        self.username
            .clone()
            .unwrap_or_else(|| self.default_user.to_owned())
    }

    fn options(&self) -> anyhow::Result<BackendOptions> {
        let Some(url) = &self.broker else {
            bail!("--broker is required (e.g. --broker mqtt://127.0.0.1:1883)");
        };
        let broker = parse_broker_url(url).map_err(|e| anyhow::anyhow!("--broker {url:?}: {e}"))?;
        let password = match (&self.password_file, &self.password_env) {
            (Some(f), _) => Some(Secret::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read --password-file {}", f.display()))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            )),
            (None, Some(var)) => Some(Secret::new(std::env::var(var).with_context(|| {
                format!("--password-env {var}: the environment variable is not set")
            })?)),
            (None, None) => None,
        };
        let ca_pem = match (&self.ca_file, broker.tls) {
            (Some(f), true) => Some(
                std::fs::read(f)
                    .with_context(|| format!("cannot read --ca-file {}", f.display()))?,
            ),
            (None, true) => bail!("{url} uses TLS: pass --ca-file with the broker's CA (PEM)"),
            (_, false) => None,
        };
        let client_id = match &self.client_id {
            Some(id) => id.clone(),
            None => format!("cabinet-cli-{}", &random_hex()?[..12]),
        };
        Ok(BackendOptions {
            client_id,
            username: Some(self.username()),
            password,
            broker,
            ca_pem,
            timeout: Duration::from_secs(10),
            persistent_session: false,
        })
    }

    async fn connect(&self, cabinet: &str) -> anyhow::Result<BackendClient> {
        let mut client = self.connect_only().await?;
        client.subscribe_cabinet(cabinet).await?;
        Ok(client)
    }

    /// Connects without subscribing to anything.
    pub(crate) async fn connect_only(&self) -> anyhow::Result<BackendClient> {
        let opts = self.options()?;
        let broker = self.broker.clone().unwrap_or_default();
        BackendClient::connect(opts).await.with_context(|| {
            format!(
                "cannot connect to {broker} as {:?} (check --broker, --username and the password)",
                self.username()
            )
        })
    }
}

/// Arguments of `cabinet send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Target cabinet's machine code (signed into the token as `aud`).
    #[arg(long)]
    cabinet: String,
    /// Slot to dispense from (1-based), the door to open for a return, or the slot to
    /// control; not for `telemetry`.
    #[arg(long)]
    slot: Option<u16>,
    /// `dispense` (sell the slot's item), `return` (open an empty locker door for a
    /// rented item to be put back), or the operator's control of a slot:
    /// `slot-enable`, `slot-disable`, `slot-set-count` (with --count), `telemetry` (a
    /// telemetry message now).
    #[arg(long, value_enum, default_value = "dispense")]
    kind: KindArg,
    /// `slot-set-count`: the slot's new count after a restock.
    #[arg(long)]
    count: Option<u32>,
    /// Private key file as written by `cabinet keygen --out` (base64url Ed25519 seed).
    #[arg(long)]
    key: PathBuf,
    /// Key id in the JWS header; the cabinet's `[keys]` must have it.
    #[arg(long, default_value = "backend-1")]
    kid: String,
    /// How long the command stays valid (`exp` = now + this): 30s, 2m, 500ms or seconds.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    expires_in: Duration,
    /// The QR session nonce the customer scanned (when the cabinet requires one).
    #[arg(long)]
    session: Option<String>,
    /// Backend order id, echoed in replies (default: a fresh random id).
    #[arg(long)]
    order_id: Option<String>,
    /// Correlation id for logs (default: a fresh random id).
    #[arg(long)]
    log_id: Option<String>,
    /// Command id (`jti`, the dedup key). To retry, pass the SAME id again.
    #[arg(long)]
    cmd_id: Option<String>,
    /// How long to wait for the terminal reply: 30s, 2m, 500ms or seconds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    wait: Duration,
    /// Only print the signed token (no broker needed) and exit.
    #[arg(long)]
    print_token: bool,
}

/// A command's `kind` on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    /// Sell the slot's item.
    Dispense,
    /// Open an empty locker door for a rented item to be put back.
    Return,
    /// Put a slot back in service.
    SlotEnable,
    /// Take a slot out of service.
    SlotDisable,
    /// Set a slot's count after a restock (--count).
    SlotSetCount,
    /// Ask for a telemetry message now.
    Telemetry,
}

impl KindArg {
    fn kind(self) -> CommandKind {
        match self {
            KindArg::Dispense => CommandKind::Dispense,
            KindArg::Return => CommandKind::Return,
            KindArg::SlotEnable => CommandKind::SlotEnable,
            KindArg::SlotDisable => CommandKind::SlotDisable,
            KindArg::SlotSetCount => CommandKind::SlotSetCount,
            KindArg::Telemetry => CommandKind::Telemetry,
        }
    }
}

/// Run `cabinet send`.
pub fn send(a: SendArgs) -> anyhow::Result<ExitCode> {
    let key_text = std::fs::read_to_string(&a.key)
        .with_context(|| format!("cannot read --key {}", a.key.display()))?;
    let key = protocol::decode_signing_key(&key_text).with_context(|| {
        format!(
            "--key {} is not a private key as written by `cabinet keygen --out`",
            a.key.display()
        )
    })?;
    protocol::check_machine_code(&a.cabinet).context("--cabinet")?;
    let now = unix_now();
    let expires = a.expires_in.as_secs_f64().ceil().max(1.0) as i64;
    let cmd_id = match a.cmd_id.clone() {
        Some(id) => id,
        None => random_hex()?,
    };
    let kind = a.kind.kind();
    let slot = match (kind, a.slot) {
        (CommandKind::Telemetry, None) => 0,
        (CommandKind::Telemetry, Some(_)) => bail!("--kind telemetry takes no --slot"),
        (_, Some(slot)) => slot,
        (_, None) => bail!("--slot is required for --kind {}", kind.code()),
    };
    if (kind == CommandKind::SlotSetCount) != a.count.is_some() {
        bail!("--count goes with --kind slot-set-count, and only with it");
    }
    let claims = CommandClaims {
        aud: a.cabinet.clone(),
        jti: cmd_id.clone(),
        iat: now,
        exp: now + expires,
        kind: kind.code().to_owned(),
        slot,
        qty: u8::from(!kind.is_control()),
        order_id: match a.order_id.clone() {
            Some(id) => id,
            None => format!("order-{}", &random_hex()?[..16]),
        },
        log_id: match a.log_id.clone() {
            Some(id) => id,
            None => format!("log-{}", &random_hex()?[..16]),
        },
        session: a.session.clone(),
        count: a.count,
    };
    let token = protocol::sign_command(&claims, &key, &a.kid).context("cannot sign")?;
    if a.print_token {
        println!("{token}");
        return Ok(ExitCode::SUCCESS);
    }
    let rt = runtime()?;
    rt.block_on(send_and_wait(&a, &claims, &token))
}

async fn send_and_wait(
    a: &SendArgs,
    claims: &CommandClaims,
    token: &str,
) -> anyhow::Result<ExitCode> {
    let topics = Topics::new(&a.cabinet)?;
    // Subscribe before publishing so no reply can slip past.
    let mut client = a.broker.connect(&a.cabinet).await?;
    eprintln!(
        "sending {} cmd_id={} log_id={} order_id={} to {} slot {} (valid {}s, waiting {:?})",
        claims.kind,
        claims.jti,
        claims.log_id,
        claims.order_id,
        a.cabinet,
        claims.slot,
        claims.exp - claims.iat,
        a.wait
    );
    let deadline = tokio::time::Instant::now() + a.wait;
    if let Err(e) = client.send_command(&a.cabinet, token).await {
        eprintln!("error: publishing failed: {e}");
        no_outcome(&claims.jti, "the broker did not confirm the command");
        return Ok(ExitCode::from(EXIT_NO_OUTCOME));
    }
    let mut seen = HashSet::new();
    loop {
        let msg = match tokio::time::timeout_at(deadline, client.recv()).await {
            Err(_) => {
                no_outcome(
                    &claims.jti,
                    &format!("no terminal reply within {:?}", a.wait),
                );
                client.disconnect().await;
                return Ok(ExitCode::from(EXIT_NO_OUTCOME));
            }
            Ok(None) => {
                no_outcome(&claims.jti, "the connection to the broker was lost");
                return Ok(ExitCode::from(EXIT_NO_OUTCOME));
            }
            Ok(Some(m)) => m,
        };
        if msg.topic == topics.state {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&msg.payload)
                && v["status"] == "offline"
            {
                eprintln!(
                    "note: {} is offline; the command waits in its broker session until it \
                     reconnects (and is refused as expired after exp)",
                    a.cabinet
                );
            }
            continue;
        }
        if msg.topic != topics.reply {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&msg.payload) else {
            eprintln!("warning: a reply that is not JSON was ignored");
            continue;
        };
        if v["cmd_id"] == "" && v["state"] == "rejected" {
            // Untrusted commands are answered without IDs; this may well be ours.
            eprintln!(
                "warning: {} rejected a command it could not trust (reason {}); if that \
                 was this one, check --key and --kid against the cabinet's [keys]",
                a.cabinet, v["reason"]
            );
            continue;
        }
        if v["cmd_id"] != claims.jti.as_str() {
            continue;
        }
        let Some(state) = v["state"].as_str().and_then(ReplyState::parse) else {
            eprintln!("warning: a reply without a known state was ignored: {v}");
            continue;
        };
        // QoS 1 may deliver a reply twice; one line per state.
        if !seen.insert(state) {
            continue;
        }
        println!("{v}");
        if state.is_terminal() {
            client.disconnect().await;
            return Ok(match state {
                ReplyState::Succeeded => ExitCode::SUCCESS,
                ReplyState::OutcomeUnknown => {
                    eprintln!(
                        "outcome_unknown: the cabinet restarted mid-dispense and cannot tell \
                         whether the item dropped. Do not charge automatically; flag the \
                         order for review. Never resend it with a new --cmd-id."
                    );
                    ExitCode::from(1)
                }
                _ => ExitCode::from(1),
            });
        }
    }
}

fn no_outcome(cmd_id: &str, what: &str) {
    eprintln!(
        "{what}: the outcome is UNKNOWN (the cabinet may still dispense, or may already \
         have). Retry with the SAME id, which is safe because the cabinet dedupes it: \
         --cmd-id {cmd_id}"
    );
}

/// Arguments of `cabinet watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Machine code to watch, or `+` for every cabinet.
    #[arg(long, default_value = "+")]
    cabinet: String,
}

/// Run `cabinet watch`: print replies, presence and telemetry as JSON lines until Ctrl-C.
///
/// The first connection must work (a wrong URL or password is an error to fix, exit 2);
/// a connection lost after that (a broker restart, a network hiccup, a cluster node
/// going down) is made again with backoff ([`WatchBackoff`]) and the lines go on, so a
/// technician watching a cabinet through a broker restart does not have to notice and
/// start it again. What was published while it was away is not shown (a clean session,
/// as a fresh watch would have); stderr says when that gap begins and ends.
pub fn watch(a: WatchArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let (stop_tx, mut stop) = tokio::sync::mpsc::unbounded_channel();
        ctrlc::set_handler(move || {
            let _ = stop_tx.send(());
        })
        .context("cannot install the Ctrl-C handler")?;
        let mut client = a.broker.connect(&a.cabinet).await?;
        eprintln!(
            "watching cabinet/v1/{}/{{reply,state,telemetry}}; Ctrl-C to stop",
            a.cabinet
        );
        loop {
            loop {
                tokio::select! {
                    _ = stop.recv() => {
                        client.disconnect().await;
                        return Ok(ExitCode::SUCCESS);
                    }
                    m = client.recv() => match m {
                        Some(m) => println!("{}", watch_line(&m)),
                        None => break,
                    }
                }
            }
            eprintln!(
                "the connection to the broker was lost; reconnecting (messages published \
                 until then are not shown)"
            );
            let mut backoff = WatchBackoff::default();
            client = loop {
                let wait = backoff.next_wait();
                let attempt = async {
                    tokio::time::sleep(wait).await;
                    a.broker.connect(&a.cabinet).await
                };
                tokio::select! {
                    _ = stop.recv() => return Ok(ExitCode::SUCCESS),
                    r = attempt => match r {
                        Ok(c) => break c,
                        Err(e) => eprintln!("reconnecting failed: {e:#}"),
                    }
                }
            };
            eprintln!("reconnected; watching cabinet/v1/{}/... again", a.cabinet);
        }
    })
}

/// The pauses before `watch`'s reconnection attempts: none before the first (a dropped
/// connection to a live broker comes back at once), then 0.5 s doubling up to 10 s, so
/// a broker that is down for minutes is not hammered and one that comes back is found
/// within 10 s.
#[derive(Debug, Default)]
struct WatchBackoff {
    next: Option<Duration>,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(10);

    fn next_wait(&mut self) -> Duration {
        let wait = self.next.unwrap_or(Duration::ZERO);
        self.next = Some(match self.next {
            None => Self::FIRST,
            Some(d) => (d * 2).min(Self::MAX),
        });
        wait
    }
}

/// One `watch` output line: `{"topic", "kind", "payload"}`.
fn watch_line(m: &BackendMessage) -> serde_json::Value {
    let kind = m.topic.rsplit('/').next().unwrap_or("");
    let payload = serde_json::from_slice::<serde_json::Value>(&m.payload)
        .unwrap_or_else(|_| String::from_utf8_lossy(&m.payload).into_owned().into());
    let mut v = serde_json::json!({ "topic": m.topic, "kind": kind, "payload": payload });
    if m.retain {
        v["retained"] = true.into();
    }
    v
}

/// Parses `500ms`, `30s`, `2m` or plain seconds (`45`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a duration; use e.g. 500ms, 30s, 2m or 45");
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(bad),
        _ => Err(bad()),
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn random_hex() -> anyhow::Result<String> {
    protocol::new_boot_id().context("cannot generate a random id")
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_ms_s_m_and_plain_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "s", "1h", "-1", "1.5s", "10 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn watch_reconnects_at_once_then_backs_off_to_ten_seconds() {
        let mut b = WatchBackoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [0, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    }

    #[test]
    fn watch_lines_carry_parsed_json_or_the_raw_string() {
        let m = BackendMessage {
            topic: "cabinet/v1/C001/state".into(),
            payload: br#"{"status":"online"}"#.to_vec(),
            retain: true,
            at: std::time::Instant::now(),
        };
        let v = watch_line(&m);
        assert_eq!(v["kind"], "state");
        assert_eq!(v["payload"]["status"], "online");
        assert_eq!(v["retained"], true);
        let m = BackendMessage {
            topic: "cabinet/v1/C001/telemetry".into(),
            payload: b"not json".to_vec(),
            retain: false,
            at: std::time::Instant::now(),
        };
        assert_eq!(watch_line(&m)["payload"], "not json");
    }
}
