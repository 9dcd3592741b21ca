//! `cabinet config push` and `cabinet config status`: the operator changes cabinets'
//! configuration over their own channel (docs/PROTOCOL.md §13): the parts of the site
//! config an operator may set (a TOML file of `[[slots]]`, `[kiosk]`, `[support]`,
//! `[maintenance]` fields), signed with an operator key, published retained on each
//! cabinet's `desired/config`; then each cabinet's `reported` (exit codes: `push`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cabinet_core::config::{ConfigClaims, RemoteConfig};
use cabinet_core::protocol::KIND_CONFIG;
use clap::Args;

use crate::backend_cmd::unix_now;
use crate::push::{self, DocumentArgs};

/// Arguments of `cabinet config push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    doc: DocumentArgs,
    /// What to set: a TOML file in the site config's own words, holding only
    /// `[[slots]]` (the whole slot map), `[kiosk]` name, take_item_secs, failed_secs,
    /// out_of_service_grace_secs, qr_url, scan_with, `[support]` phone, help_url, nearby
    /// and `[maintenance]` idle_logout_secs. What it leaves out stays as each cabinet's
    /// file says.
    #[arg(long)]
    set: PathBuf,
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
pub fn push(a: PushArgs) -> anyhow::Result<ExitCode> {
    let config = read_set(&a.set)?;
    push::push_document(a.doc, KIND_CONFIG, |code, version| {
        serde_json::to_value(ConfigClaims {
            kind: KIND_CONFIG.to_owned(),
            aud: code.to_owned(),
            iat: unix_now(),
            version,
            config: config.clone(),
        })
    })
}
