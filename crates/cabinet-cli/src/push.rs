//! What `cabinet keys` and `cabinet config push` share: the operator's key, publishing a
//! signed document retained to each cabinet, and waiting for each cabinet's `reported`.
//!
//! Exit codes: 0 every cabinet runs it; 1 a cabinet refused it (reason and problems on
//! stderr; its retained copy is cleared from the broker); 2 nothing was sent; 3 sent, but
//! some cabinet has not reported it in force in time (off, or a configuration waiting for
//! the cabinet to be between customers: it comes into force by itself).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use cabinet_core::mqtt::BackendClient;
use cabinet_core::protocol::{self, KIND_KEYS, Reported, SigningKey, Topics};
use clap::Args;

use crate::backend_cmd::{BrokerArgs, parse_duration, runtime};

/// What pushing any document takes: the broker, the cabinets, the operator's key and the
/// version.
#[derive(Debug, Args)]
pub struct DocumentArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// A cabinet to give it to (its machine code, signed in as `aud`); repeat for several.
    #[arg(long = "cabinet", required = true)]
    cabinets: Vec<String>,
    /// The operator's private key file (as written by `cabinet keygen --out`).
    #[arg(long)]
    operator_key: PathBuf,
    /// The operator key's kid: a key the cabinets trust as an operator key.
    #[arg(long)]
    operator_kid: String,
    /// The document's version; it must be above the one each cabinet runs. Default: one
    /// above the highest version the cabinets report.
    #[arg(long)]
    version: Option<u64>,
    /// How long to wait for each cabinet's report: 30s, 2m or seconds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    wait: Duration,
    /// Only print the signed document for each cabinet (needs --version; no broker).
    #[arg(long)]
    print_token: bool,
}

/// Arguments of `cabinet keys status` and `cabinet config status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// A cabinet to ask about; repeat for several.
    #[arg(long = "cabinet", required = true)]
    cabinets: Vec<String>,
    /// How long to wait for each cabinet's retained report.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    wait: Duration,
}

/// Signs a document of `kind` for each cabinet with `claims(cabinet, version)` and pushes
/// it (or, with `--print-token`, prints it), as the operator (default broker user).
pub(crate) fn push_document(
    mut a: DocumentArgs,
    kind: &'static str,
    claims: impl Fn(&str, u64) -> serde_json::Result<serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    a.broker.default_user = "operator";
    check_cabinets(&a.cabinets)?;
    let key = operator_key(&a.operator_key)?;
    let sign = |code: &str, version: u64| {
        protocol::sign_document(&claims(code, version)?, &key, &a.operator_kid)
            .context("cannot sign")
    };
    if a.print_token {
        let Some(version) = a.version else {
            bail!("--print-token needs --version (no broker is asked for the current one)");
        };
        for code in &a.cabinets {
            println!("{}", sign(code, version)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let push = Push {
        broker: &a.broker,
        cabinets: &a.cabinets,
        kind,
        version: a.version,
        wait: a.wait,
    };
    runtime()?.block_on(push.run(sign))
}

/// `status`: each cabinet's retained `reported`, as the operator.
pub(crate) fn status_cmd(mut a: StatusArgs) -> anyhow::Result<ExitCode> {
    a.broker.default_user = "operator";
    runtime()?.block_on(status(&a.broker, &a.cabinets, a.wait))
}

/// Exit code: published, but not every cabinet reported it in force in time.
pub(crate) const EXIT_NOT_REPORTED: u8 = 3;

/// How long to wait for the retained reports that give the next version.
const BASELINE_WAIT: Duration = Duration::from_secs(2);

/// Reads the operator's private key (as `cabinet keygen --out` writes it).
fn operator_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --operator-key {}", path.display()))?;
    protocol::decode_signing_key(&text).with_context(|| {
        format!(
            "--operator-key {} is not a private key as written by `cabinet keygen --out`",
            path.display()
        )
    })
}

/// Checks each `--cabinet`.
fn check_cabinets(codes: &[String]) -> anyhow::Result<()> {
    for code in codes {
        protocol::check_machine_code(code).with_context(|| format!("--cabinet {code}"))?;
    }
    Ok(())
}

/// The retained reports of `codes`, as far as they arrive within `wait`.
async fn reports(
    client: &mut BackendClient,
    codes: &[String],
    wait: Duration,
) -> BTreeMap<String, Reported> {
    let mut got = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    while got.len() < codes.len() {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, client.recv()).await else {
            break;
        };
        if let Ok(r) = serde_json::from_slice::<Reported>(&msg.payload)
            && codes.contains(&r.machine_code)
            && Topics::new(&r.machine_code).is_ok_and(|t| t.reported == msg.topic)
        {
            got.insert(r.machine_code.clone(), r);
        }
    }
    got
}

/// One push: a document of `kind` for each cabinet, signed by `sign(code, version)`.
struct Push<'a> {
    broker: &'a BrokerArgs,
    cabinets: &'a [String],
    /// `keys` or `config`.
    kind: &'static str,
    /// `None`: one above the highest the cabinets report.
    version: Option<u64>,
    wait: Duration,
}

/// The part of a report about `kind`: (version in force, its hash, a waiting version).
fn of_kind(r: &Reported, kind: &str) -> (u64, Option<String>, Option<u64>) {
    if kind == KIND_KEYS {
        (
            r.keys.in_force.version,
            r.keys.in_force.sha256.clone(),
            None,
        )
    } else {
        let c = &r.config;
        (c.in_force.version, c.in_force.sha256.clone(), c.pending)
    }
}

impl Push<'_> {
    /// Publishes and waits; the exit code as the module docs say.
    async fn run(
        &self,
        sign: impl Fn(&str, u64) -> anyhow::Result<String>,
    ) -> anyhow::Result<ExitCode> {
        let mut client = self.broker.connect_only().await?;
        for code in self.cabinets {
            client.subscribe_reported(code).await?;
        }
        let version = match self.version {
            Some(v) => v,
            None => {
                let before = reports(&mut client, self.cabinets, BASELINE_WAIT).await;
                let Some(v) = before.values().map(|r| of_kind(r, self.kind).0).max() else {
                    bail!(
                        "no cabinet reported within {BASELINE_WAIT:?}, so the next version is \
                         unknown: pass --version (above any version these cabinets ran)"
                    );
                };
                v + 1
            }
        };
        let mut pending: BTreeMap<String, String> = BTreeMap::new();
        for code in self.cabinets {
            let token = sign(code, version)?;
            let sent = if self.kind == KIND_KEYS {
                client.send_key_set(code, &token).await
            } else {
                client.send_config(code, &token).await
            };
            sent.with_context(|| format!("publishing the {} document for {code}", self.kind))?;
            pending.insert(code.clone(), protocol::document_sha256(&token));
        }
        eprintln!(
            "{} version {version} published to {} cabinet(s); waiting up to {:?} for their reports",
            self.kind,
            pending.len(),
            self.wait
        );
        let mut refused = false;
        let mut waiting = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + self.wait;
        while !pending.is_empty() {
            let Ok(Some(msg)) = tokio::time::timeout_at(deadline, client.recv()).await else {
                break;
            };
            let Ok(r) = serde_json::from_slice::<Reported>(&msg.payload) else {
                continue;
            };
            let Some(sha) = pending.get(&r.machine_code) else {
                continue;
            };
            let (_, in_force, waits) = of_kind(&r, self.kind);
            if in_force.as_ref() == Some(sha) {
                println!("{}", serde_json::to_string(&r)?);
                pending.remove(&r.machine_code);
            } else if let Some(no) = r
                .refused
                .as_ref()
                .filter(|no| &no.sha256 == sha && no.document == self.kind)
            {
                refused = true;
                eprintln!(
                    "{} refused the {} document: {} ({}){}",
                    r.machine_code,
                    self.kind,
                    no.reason,
                    no.detail,
                    if no.problems.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", no.problems.join("; "))
                    }
                );
                println!("{}", serde_json::to_string(&r)?);
                pending.remove(&r.machine_code);
                // Left retained, the broker would hand it over again at every connection,
                // and the cabinet refuse it again (and a cabinet with a new journal might
                // even take it). The cabinet runs what its journal holds.
                match client.clear_document(&r.machine_code, self.kind).await {
                    Ok(()) => eprintln!(
                        "{}: the refused document is cleared from the broker; the cabinet \
                         keeps what it runs",
                        r.machine_code
                    ),
                    Err(e) => eprintln!(
                        "{}: could not clear the refused document from the broker ({e}): it \
                         stays retained and is refused again at each connection until a \
                         good one replaces it",
                        r.machine_code
                    ),
                }
            } else if waits == Some(version) && waiting.insert(r.machine_code.clone(), ()).is_none()
            {
                eprintln!(
                    "{}: accepted, waiting for the customer being served to finish",
                    r.machine_code
                );
            }
        }
        client.disconnect().await;
        if !pending.is_empty() {
            eprintln!(
                "not reported in force within {:?}: {}. The document is retained on the broker: \
                 a cabinet that is off takes it when it connects, and one serving a customer \
                 when it is done (`status` shows when it has)",
                self.wait,
                pending.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            return Ok(ExitCode::from(EXIT_NOT_REPORTED));
        }
        Ok(if refused {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// Prints each cabinet's retained `reported` as a JSON line (exit 3 for a cabinet that
/// sent none within `wait`).
async fn status(
    broker: &BrokerArgs,
    cabinets: &[String],
    wait: Duration,
) -> anyhow::Result<ExitCode> {
    check_cabinets(cabinets)?;
    let mut client = broker.connect_only().await?;
    for code in cabinets {
        client.subscribe_reported(code).await?;
    }
    let got = reports(&mut client, cabinets, wait).await;
    client.disconnect().await;
    for r in got.values() {
        println!("{}", serde_json::to_string(r)?);
    }
    let missing: Vec<&str> = cabinets
        .iter()
        .filter(|c| !got.contains_key(*c))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "no report from {} within {wait:?} (never connected since reports began?)",
        missing.join(", ")
    );
    Ok(ExitCode::from(EXIT_NOT_REPORTED))
}
