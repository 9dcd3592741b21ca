//! `cabinet config push` and `cabinet config status`: the operator changes cabinets'
//! configuration over their own channel (docs/PROTOCOL.md §13): the parts of the site
//! config an operator may set (a TOML file of `[[slots]]`, `[kiosk]`, `[support]`,
//! `[maintenance]` fields), signed with an operator key, published retained on each
//! cabinet's `desired/config`; then each cabinet's `reported` (exit codes: `push`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use cabinet_core::config::{ConfigClaims, RemoteConfig};
use cabinet_core::protocol::{self, KIND_CONFIG};
use clap::Args;

use crate::backend_cmd::{BrokerArgs, parse_duration, runtime, unix_now};
use crate::push::{self, Push};

/// Arguments of `cabinet config push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// A cabinet to give it to (its machine code, signed in as `aud`); repeat for several.
    #[arg(long = "cabinet", required = true)]
    cabinets: Vec<String>,
    /// What to set: a TOML file in the site config's own words, holding only
    /// `[[slots]]` (the whole slot map), `[kiosk]` name, take_item_secs, failed_secs,
    /// out_of_service_grace_secs, qr_url, scan_with, `[support]` phone, help_url, nearby
    /// and `[maintenance]` idle_logout_secs. What it leaves out stays as each cabinet's
    /// file says.
    #[arg(long)]
    set: PathBuf,
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

/// Arguments of `cabinet config status`.
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

/// The `--set` file as a document's `config`, refused here already when it sets what a
/// document may not (each cabinet checks the rest against its own file).
fn read_set(path: &PathBuf) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --set {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("--set {} is not valid TOML", path.display()))?;
    let value = serde_json::to_value(&table).context("--set cannot be sent as JSON")?;
    if let Err(problems) = RemoteConfig::parse(&value) {
        let list: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        bail!("--set {}: {}", path.display(), list.join("; "));
    }
    Ok(value)
}

/// Run `cabinet config push`.
pub fn push(mut a: PushArgs) -> anyhow::Result<ExitCode> {
    a.broker.default_user = "operator";
    push::check_cabinets(&a.cabinets)?;
    let config = read_set(&a.set)?;
    let key = push::operator_key(&a.operator_key)?;
    let sign = |code: &str, version: u64| {
        let claims = ConfigClaims {
            kind: KIND_CONFIG.to_owned(),
            aud: code.to_owned(),
            iat: unix_now(),
            version,
            config: config.clone(),
        };
        protocol::sign_document(&claims, &key, &a.operator_kid).context("cannot sign")
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
        kind: KIND_CONFIG,
        version: a.version,
        wait: a.wait,
    };
    runtime()?.block_on(push.run(sign))
}

/// Run `cabinet config status`.
pub fn status(mut a: StatusArgs) -> anyhow::Result<ExitCode> {
    a.broker.default_user = "operator";
    runtime()?.block_on(push::status(&a.broker, &a.cabinets, a.wait))
}
