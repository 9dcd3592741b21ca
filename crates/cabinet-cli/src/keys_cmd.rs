//! `cabinet keys`: the operator gives cabinets a new key set over their own channel
//! (docs/PROTOCOL.md §12): `rotate` signs it with an operator key, publishes it retained
//! on each cabinet's `desired/keys` and waits for each cabinet's `reported`; `status`
//! reads the reports; `reset`, on the cabinet, puts the config file's keys back (a
//! stolen operator key).
//!
//! Exit codes: 0 every cabinet runs the new set; 1 a cabinet refused it (its reason and
//! problems are printed, and the refused set is cleared from the broker); 2 nothing was
//! sent (bad arguments, key or broker); 3 sent, but some cabinet has not reported it in
//! time (an offline cabinet takes it, retained, when it connects: see
//! `cabinet keys status`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use cabinet_core::config::Config;
use cabinet_core::instance::{InstanceError, InstanceLock};
use cabinet_core::journal::DocumentChange;
use cabinet_core::protocol::{self, KIND_KEYS, KeyEntry, KeyRole, KeySetClaims};
use clap::{Args, Subcommand};

use crate::backend_cmd::unix_now;
use crate::journal_cmd::{same_owner, writable};
use crate::push::{self, DocumentArgs};

/// Arguments of `cabinet keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Sign a key set with an operator key, publish it retained to each cabinet and wait
    /// until each reports it in force. The set is whole: a key it does not list is no
    /// longer trusted once a cabinet applies it.
    Rotate(RotateArgs),
    /// Print each cabinet's retained `reported` (the keys in force, the last refusal) as
    /// JSON lines.
    Status(push::StatusArgs),
    /// On the cabinet, with the kiosk stopped: put the config file's `[keys]` and
    /// `[operator_keys]` back in force, for when an operator key was stolen. The reset
    /// set's version stays as the floor, so the broker's retained copy of it (or of any
    /// older set) is refused; the next set must be signed by a key of the file and climb
    /// above it.
    Reset(ResetArgs),
}

/// Arguments of `cabinet keys reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The cabinet's config file (its journal and its keys).
    #[arg(long, default_value = "/etc/cabinet-kiosk/config.toml")]
    config: PathBuf,
    /// Who resets it (recorded in the audit trail).
    #[arg(long)]
    by: String,
    /// Really do it (without it, only say what would change).
    #[arg(long)]
    yes: bool,
}

/// Arguments of `cabinet keys rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    doc: DocumentArgs,
    /// A key that may sign commands, `kid=x` (x: base64url public key, as `cabinet
    /// keygen` prints it); repeat for several.
    #[arg(long = "dispense", value_parser = parse_kid_x)]
    dispense: Vec<(String, String)>,
    /// A key that may sign documents, `kid=x`; repeat for several. Keep the operator key
    /// you sign with unless you mean to hand over to another.
    #[arg(long = "operator", value_parser = parse_kid_x)]
    operator: Vec<(String, String)>,
}

fn parse_kid_x(s: &str) -> Result<(String, String), String> {
    let (kid, x) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: want kid=x (x: base64url public key)"))?;
    let mut probe = protocol::TrustedKeys::new();
    probe
        .insert_base64url(kid, x)
        .map_err(|e| format!("{kid}: {e}"))?;
    Ok((kid.to_owned(), x.to_owned()))
}

/// Run `cabinet keys`.
pub fn keys(a: KeysArgs) -> anyhow::Result<ExitCode> {
    match a.command {
        KeysCommand::Rotate(a) => rotate(a),
        KeysCommand::Status(a) => push::status_cmd(a),
        KeysCommand::Reset(a) => reset(&a),
    }
}

fn reset(a: &ResetArgs) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", a.config.display());
            return Ok(ExitCode::from(2));
        }
    };
    same_owner(&cfg.journal.path)?;
    let file = cfg.trusted_keys()?;
    let file_keys = format!(
        "dispense {}; operator {}",
        file.kids_with(KeyRole::Dispense).join(", "),
        file.kids_with(KeyRole::Operator).join(", ")
    );
    let _lock = match InstanceLock::for_config(&cfg) {
        Ok(l) => l,
        Err(InstanceError::AlreadyRunning { pid, .. }) => {
            eprintln!(
                "the kiosk is running (pid {pid}): stop it first (systemctl stop cabinet-kiosk),                  reset, then start it. Nothing was changed."
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let mut journal = writable(&cfg.journal.path)?;
    let Some(stored) = journal.document(KIND_KEYS)?.filter(|d| d.token.is_some()) else {
        println!(
            "{}",
            serde_json::json!({"reset": false, "why": "the config file's keys are already in force", "keys": file_keys})
        );
        return Ok(ExitCode::SUCCESS);
    };
    let detail = format!(
        "version {} reset to the config file's keys: {file_keys}",
        stored.version
    );
    if !a.yes {
        eprintln!("would {detail}; pass --yes to do it");
        return Ok(ExitCode::from(1));
    }
    journal.put_document(&DocumentChange {
        kind: KIND_KEYS,
        version: stored.version,
        sha256: None,
        token: None,
        by: &a.by,
        actor: &a.by,
        action: "keys_reset",
        detail: &detail,
    })?;
    println!(
        "{}",
        serde_json::json!({"reset": true, "floor": stored.version, "keys": file_keys, "by": a.by})
    );
    eprintln!(
        "done: the next key set must be signed by an operator key of {} and have a version \
         above {}",
        a.config.display(),
        stored.version
    );
    Ok(ExitCode::SUCCESS)
}

fn entries(a: &RotateArgs) -> Vec<KeyEntry> {
    let mut by_kid: BTreeMap<&str, (&str, Vec<KeyRole>)> = BTreeMap::new();
    let roles = [
        (&a.dispense, KeyRole::Dispense),
        (&a.operator, KeyRole::Operator),
    ];
    for (list, role) in roles {
        for (kid, x) in list {
            by_kid.entry(kid).or_insert((x, Vec::new())).1.push(role);
        }
    }
    by_kid
        .into_iter()
        .map(|(kid, (x, roles))| KeyEntry {
            kid: kid.to_owned(),
            x: x.to_owned(),
            roles,
        })
        .collect()
}

fn rotate(a: RotateArgs) -> anyhow::Result<ExitCode> {
    if a.dispense.is_empty() || a.operator.is_empty() {
        bail!(
            "give at least one --dispense and one --operator key: a set without one locks the \
             cabinets out of orders or of the next rotation (they refuse it as invalid)"
        );
    }
    let keys = entries(&a);
    push::push_document(a.doc, KIND_KEYS, |code, version| {
        serde_json::to_value(KeySetClaims {
            kind: KIND_KEYS.to_owned(),
            aud: code.to_owned(),
            iat: unix_now(),
            version,
            keys: keys.clone(),
        })
    })
}
