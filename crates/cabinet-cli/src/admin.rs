//! `cabinet config check` and `cabinet keygen`: provisioning helpers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cabinet_core::config::{Config, ConfigError};
use cabinet_core::protocol;
use clap::{Args, Subcommand};

/// Arguments of `cabinet config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    what: ConfigWhat,
}

#[derive(Debug, Subcommand)]
enum ConfigWhat {
    /// Load and validate a site config file, and check the files and devices it names as
    /// `cabinet run` would find them; print every problem with its field.
    Check {
        /// The site config file (e.g. /etc/cabinet-kiosk/config.toml).
        file: PathBuf,
    },
    /// The operator's remote configuration: sign the parts of the config an operator may
    /// set (a TOML file), publish it retained to each cabinet, wait for each one's report.
    /// Exit 0 in force everywhere, 1 refused, 2 nothing sent, 3 not in force in time.
    Push(crate::config_push::PushArgs),
    /// Print each cabinet's retained `reported` (the configuration and keys in force, the
    /// last refusal) as JSON lines.
    Status(crate::push::StatusArgs),
}

/// Run `cabinet config ...`. Exit 0: valid; 1: invalid (problems on stderr).
pub fn config(a: ConfigArgs) -> anyhow::Result<ExitCode> {
    match a.what {
        ConfigWhat::Push(p) => crate::config_push::push(p),
        ConfigWhat::Status(s) => crate::push::status_cmd(s),
        // The same checks `cabinet run` and the window app make before they start, so
        // "valid" means the kiosk will start with this file on this machine.
        ConfigWhat::Check { file } => match Config::load_for_start(&file) {
            Ok(cfg) => {
                let keys = cfg.trusted_keys().map(|k| k.len()).unwrap_or(0);
                let boards = if cfg.boards.is_empty() {
                    format!(
                        "board {} on {}",
                        cfg.board.protocol.as_str(),
                        cfg.board.port.display()
                    )
                } else {
                    let buses: std::collections::BTreeSet<_> =
                        cfg.boards.iter().map(|b| &b.port).collect();
                    format!(
                        "{} boards on {} port{}",
                        cfg.boards.len(),
                        buses.len(),
                        if buses.len() == 1 { "" } else { "s" }
                    )
                };
                println!(
                    "{}: valid (machine {}, {boards}, {} trusted key{})",
                    file.display(),
                    cfg.machine_code,
                    keys,
                    if keys == 1 { "" } else { "s" }
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(ConfigError::Invalid(problems)) => {
                eprintln!("{}: {} problem(s):", file.display(), problems.len());
                for p in problems {
                    eprintln!("  {p}");
                }
                Ok(ExitCode::from(1))
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(1))
            }
        },
    }
}

/// Arguments of `cabinet keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Key id (`kid`) the backend puts in the JWS header; cabinets look the key up by it.
    #[arg(long, default_value = "backend-1")]
    kid: String,
    /// Write the private key (base64url seed, mode 0600) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Generate an Ed25519 signing key pair for the backend (cabinets get the public half).
pub fn keygen(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    let (key, public) = protocol::generate_keypair().context("cannot generate a key")?;
    let private = protocol::encode_signing_key(&key);
    if let Some(path) = &a.out {
        cabinet_core::files::write_private(path, &private)
            .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    }
    let out = serde_json::json!({
        "kid": a.kid,
        "public_key": public,
        "private_key": if a.out.is_some() { serde_json::Value::Null } else { private.into() },
        "private_key_file": a.out.as_ref().map(|p| p.display().to_string()),
        "config_snippet": format!("[keys]\n{} = \"{}\"", a.kid, public),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `cabinet pin-hash`.
#[derive(Debug, Args)]
pub struct PinHashArgs {
    /// The technician's name, as shown on the diagnostics screen and in the audit log.
    #[arg(long)]
    name: String,
}

/// Hash a technician's PIN (read from stdin, so it stays out of shell history) and print
/// the `[technicians]` line for the config.
pub fn pin_hash(a: PinHashArgs) -> anyhow::Result<ExitCode> {
    use std::io::BufRead;
    if a.name.is_empty() || a.name.chars().count() > 32 || a.name.chars().any(char::is_control) {
        eprintln!("--name: 1 to 32 characters, no control characters");
        return Ok(ExitCode::from(2));
    }
    eprintln!("PIN for {} (4-12 digits), then Enter:", a.name);
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the PIN from stdin")?;
    let pin = line.trim_end_matches(['\r', '\n']);
    let hash = match cabinet_core::technician::hash_pin(pin) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let name = toml::Value::String(a.name.clone()).to_string();
    println!("[technicians]\n{name} = \"{hash}\"");
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `cabinet diag`.
#[derive(Debug, Args)]
pub struct DiagArgs {
    /// The cabinet's site config file.
    #[arg(long)]
    config: PathBuf,
    /// How many recent commands, audit entries and rejections to include.
    #[arg(long, default_value_t = 20)]
    recent: usize,
}

/// The diagnostics a technician sees on the screen, as JSON, for a cabinet without a
/// working screen: whether the kiosk runs, its latest live health (the status file it
/// rewrites every heartbeat), the slot table, recent commands, the audit log and
/// refused payloads from the journal, and the config with its secrets redacted.
pub fn diag(a: DiagArgs) -> anyhow::Result<ExitCode> {
    use cabinet_core::instance::{InstanceError, InstanceLock};
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", a.config.display());
            return Ok(ExitCode::from(2));
        }
    };
    // Whether a kiosk holds the cabinet (the lock is released again at once).
    let running = match InstanceLock::for_config(&cfg) {
        Ok(_) => serde_json::json!({"running": false}),
        Err(InstanceError::AlreadyRunning { pid, .. }) => {
            serde_json::json!({"running": true, "pid": pid})
        }
        Err(e) => serde_json::json!({"running": null, "error": e.to_string()}),
    };
    let status_path = cabinet_core::kiosk::status_path(&cfg);
    let live = match std::fs::read(&status_path) {
        Ok(bytes) => match serde_json::from_slice::<cabinet_core::control::Diagnostics>(&bytes) {
            Ok(d) => {
                let age = cabinet_core::kiosk::now_ms().saturating_sub(d.at_ms) / 1000;
                serde_json::json!({"age_secs": age, "diagnostics": d})
            }
            Err(e) => serde_json::json!({"error": format!("unreadable status file: {e}")}),
        },
        Err(e) => serde_json::json!({"error": format!("{}: {e}", status_path.display())}),
    };
    let journal = cabinet_core::journal::Journal::open(&cfg.journal.path)
        .with_context(|| format!("cannot open the journal {}", cfg.journal.path.display()))?;
    let out = serde_json::json!({
        "machine_code": cfg.machine_code,
        "kiosk": running,
        "live": live,
        "inventory": journal.inventory()?,
        "outbox_pending": journal.outbox_len()?,
        "recent_commands": journal.recent_commands(a.recent)?,
        "audit": journal.recent_audit(a.recent)?,
        "rejections": journal.recent_rejections(a.recent)?,
        "config": cfg,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
