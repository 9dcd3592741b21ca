//! `cabinet journal stats | check | prune | export | compact | confirm-fresh-start`: the
//! operator's tools for the journal (docs/OPERATIONS.md, "The journal").
//!
//! Each prints one JSON document on stdout (`export` without `--out` prints JSON Lines)
//! and its errors on stderr. Which ones may run beside the kiosk:
//! - `stats`, `check`, `export` only read, on a read-only connection: nothing is created,
//!   migrated, checkpointed or moved, and the kiosk keeps writing meanwhile (WAL);
//! - `prune` deletes in batches of [`cabinet_core::retention::PRUNE_BATCH`] commands with
//!   a 5 s busy timeout, as the kiosk's own retention pass does (which also gives way to
//!   the kiosk's writes; from another process it cannot see them wait);
//! - `compact` rebuilds the file and refuses while the kiosk holds its instance lock;
//! - `confirm-fresh-start` writes the witness, which a running kiosk notices by itself.
//!
//! Run them as the kiosk's user (`sudo -u cabinet cabinet journal ...`): a file SQLite
//! creates beside the journal (`-wal`, `-shm`) belongs to whoever ran the command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_core::config::Config;
use cabinet_core::instance::{InstanceError, InstanceLock};
use cabinet_core::journal::{Durability, Found, Identity, Journal, RejectionLimits};
use cabinet_core::journal_stats::{FileBytes, JournalReader, disk_free};
use cabinet_core::kiosk::now_ms;
use cabinet_core::retention::Retention;
use cabinet_core::witness::{self, Loss, Verdict, Witness};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Arguments of `cabinet journal`.
#[derive(Debug, Args)]
pub struct JournalArgs {
    #[command(subcommand)]
    what: JournalWhat,
}

/// The config file, for every subcommand.
#[derive(Debug, Args)]
struct ConfigArg {
    /// The cabinet's site config file (e.g. /etc/cabinet-kiosk/config.toml).
    #[arg(long)]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum JournalWhat {
    /// Size, rows, identity and retention settings of the journal (read-only).
    Stats {
        #[command(flatten)]
        c: ConfigArg,
    },
    /// Whether the kiosk would trust the journal: SQLite's integrity check and the
    /// witness, read-only (nothing is created or moved). Exit 0 trusted, 1 not.
    Check {
        #[command(flatten)]
        c: ConfigArg,
        /// Run `PRAGMA integrity_check` (index contents too; slower) instead of the
        /// quick check the kiosk runs at start.
        #[arg(long)]
        full: bool,
    },
    /// Remove finished commands past the config's retention (safe while the kiosk runs).
    Prune {
        #[command(flatten)]
        c: ConfigArg,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// The journal as JSON Lines (header, commands with their transitions, audit,
    /// rejections, pending replies, the inventory, the signed documents in force, end),
    /// read-only and streamed; safe while the kiosk runs.
    Export {
        #[command(flatten)]
        c: ConfigArg,
        /// Write to this file (replaced when complete) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only rows from this time on (unix ms; commands by when they arrived).
        #[arg(long, value_name = "UNIX_MS")]
        since: Option<i64>,
    },
    /// Rebuild the journal file (VACUUM) to give free pages back and switch an old
    /// journal to incremental auto-vacuum. The kiosk must be stopped; needs free space
    /// of about the journal's size.
    Compact {
        #[command(flatten)]
        c: ConfigArg,
    },
    /// Accept the journal now in place (a new one if it is missing or corrupt) after the
    /// kiosk found its journal lost. Audited. Without --yes, only says what it would do.
    ConfirmFreshStart {
        #[command(flatten)]
        c: ConfigArg,
        /// Who confirms (recorded in the journal's audit table and the log).
        #[arg(long)]
        by: String,
        /// Really do it.
        #[arg(long)]
        yes: bool,
    },
}

/// Run `cabinet journal ...`.
pub fn journal(a: JournalArgs) -> anyhow::Result<ExitCode> {
    let config = match &a.what {
        JournalWhat::Stats { c }
        | JournalWhat::Check { c, .. }
        | JournalWhat::Prune { c, .. }
        | JournalWhat::Export { c, .. }
        | JournalWhat::Compact { c }
        | JournalWhat::ConfirmFreshStart { c, .. } => &c.config,
    };
    let config = config.clone();
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", config.display());
            return Ok(ExitCode::from(2));
        }
    };
    if let Err(e) = same_owner(&cfg.journal.path) {
        eprintln!("{e}");
        return Ok(ExitCode::from(2));
    }
    match a.what {
        JournalWhat::Stats { .. } => stats(&cfg),
        JournalWhat::Check { full, .. } => check(&cfg, &config, full),
        JournalWhat::Prune { dry_run, .. } => prune(&cfg, dry_run),
        JournalWhat::Export { out, since, .. } => export(&cfg, out.as_deref(), since),
        JournalWhat::Compact { .. } => compact(&cfg),
        JournalWhat::ConfirmFreshStart { by, yes, .. } => confirm_fresh_start(&cfg, &by, yes),
    }
}

/// Refuses to run as another user than the one owning the journal (or its directory):
/// typically root on a cabinet whose kiosk runs as `cabinet`. A file these commands
/// create beside the journal (SQLite's `-wal` and `-shm`, the lock, a new journal) would
/// belong to that user, and the kiosk could then no longer open its own journal.
pub(crate) fn same_owner(path: &Path) -> anyhow::Result<()> {
    use nix::unistd::{Uid, User, geteuid};
    use std::os::unix::fs::MetadataExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(md) = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(dir))
        .ok()
    else {
        return Ok(());
    };
    let me = geteuid();
    if md.uid() == me.as_raw() {
        return Ok(());
    }
    let owner = User::from_uid(Uid::from_raw(md.uid()))
        .ok()
        .flatten()
        .map_or_else(|| format!("'#{}'", md.uid()), |u| u.name);
    bail!(
        "the journal {} belongs to {owner} and this runs as uid {me}: files SQLite or this \
         command create beside it (-wal, -shm, the lock, a new journal) would not be the \
         kiosk's to open. Run it as the journal's owner: sudo -u {owner} cabinet journal ...",
        path.display()
    )
}

fn print(v: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The retention settings in force, as the config says them.
fn retention_json(cfg: &Config) -> Value {
    let r = Retention::of(&cfg.journal);
    let rej = RejectionLimits::of(&cfg.journal);
    json!({
        "keep_commands_days": cfg.journal.keep_commands_days,
        "max_commands": r.max_commands,
        "max_rejections": rej.max_rows,
        "rejections_max_age_days": cfg.journal.rejections_max_age_days,
    })
}

/// Opens the journal read-only after making sure there is one: a missing or empty file
/// is an error that says so (nothing is created).
fn reader(path: &Path) -> anyhow::Result<JournalReader> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_file() && md.len() > 0 => {}
        Ok(md) if md.is_file() => bail!(
            "{} is empty (0 bytes): the journal was lost; `cabinet journal check` says what to do",
            path.display()
        ),
        Ok(_) => bail!("{} is not a regular file", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "there is no journal at {} (the kiosk creates it at its first start; if it ran \
             before, the journal was lost: `cabinet journal check` says what to do)",
            path.display()
        ),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    }
    let r = JournalReader::open(path)
        .with_context(|| format!("cannot open the journal {}", path.display()))?;
    let version = r
        .schema_version()
        .with_context(|| format!("cannot read the journal {}", path.display()))?;
    if version == 0 {
        bail!(
            "{} is a SQLite file without the journal's tables; `cabinet journal check` says what to do",
            path.display()
        );
    }
    Ok(r)
}

/// Opens an existing, healthy journal for writing (prune, compact). Refuses a missing,
/// empty or corrupt one instead of doing what the kiosk's start does with it (create a
/// new one, set the corrupt one aside): that is for the kiosk or `confirm-fresh-start`.
pub(crate) fn writable(path: &Path) -> anyhow::Result<Journal> {
    let r = reader(path)?;
    if let Some(problem) = r.integrity(false)? {
        bail!(
            "{} fails SQLite's integrity check ({problem}); nothing was changed. See `cabinet journal check`",
            path.display()
        );
    }
    drop(r);
    Journal::open(path).with_context(|| format!("cannot open the journal {}", path.display()))
}

// ------------------------------------------------------------------------- stats

fn stats(cfg: &Config) -> anyhow::Result<ExitCode> {
    let r = reader(&cfg.journal.path)?;
    let t = Instant::now();
    let s = r
        .stats()
        .with_context(|| format!("cannot read the journal {}", cfg.journal.path.display()))?;
    let took = t.elapsed();
    let mut v = serde_json::to_value(&s)?;
    v["retention"] = retention_json(cfg);
    v["took_ms"] = json!(millis(took));
    print(&v)?;
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------------- check

/// What is at the journal's path and what the kiosk would make of it, found without
/// writing anything.
struct Inspection {
    found: Found,
    /// None: no file to check; Some(None): ok; Some(Some(problem)).
    integrity: Option<Option<String>>,
    schema_version: Option<i64>,
    identity: Result<Identity, String>,
    witness: Result<Option<Witness>, String>,
    verdict: Verdict,
}

fn inspect(cfg: &Config, full: bool) -> anyhow::Result<Inspection> {
    let path = &cfg.journal.path;
    let (found, integrity, schema_version, identity) = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            Found::Missing,
            None,
            None,
            Err("no journal file".to_owned()),
        ),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
        Ok(md) if !md.is_file() => bail!("{} is not a regular file", path.display()),
        Ok(md) if md.len() == 0 => (Found::Empty, None, None, Err("empty file".to_owned())),
        Ok(_) => {
            let r = JournalReader::open(path)
                .with_context(|| format!("cannot open the journal {}", path.display()))?;
            match r
                .integrity(full)
                .with_context(|| format!("cannot check the journal {}", path.display()))?
            {
                Some(problem) => (
                    Found::Journal,
                    Some(Some(problem)),
                    None,
                    Err("the file is corrupt".to_owned()),
                ),
                None => {
                    let v = r.schema_version()?;
                    let found = if v == 0 { Found::Empty } else { Found::Journal };
                    let id = r.identity().map_err(|e| e.to_string());
                    (found, Some(None), Some(v), id)
                }
            }
        }
    };
    // A corrupt journal is still where it was: the kiosk's next start moves it aside.
    let corrupt = match &integrity {
        Some(Some(problem)) => Some((path.clone(), problem.clone())),
        _ => None,
    };
    let witness = witness::read(&cfg.journal.witness());
    let verdict = witness::judge_parts(found, corrupt.as_ref(), identity.clone(), witness.clone());
    Ok(Inspection {
        found,
        integrity,
        schema_version,
        identity,
        witness,
        verdict,
    })
}

fn verdict_json(v: &Verdict) -> Value {
    match v {
        Verdict::Trusted => json!("trusted"),
        Verdict::Lost(loss) => {
            let mut j = serde_json::to_value(loss).unwrap_or(Value::Null);
            j["description"] = json!(loss.describe());
            j
        }
    }
}

/// What an operator does about a verdict.
fn what_to_do(v: &Verdict, cfg_path: &Path) -> String {
    let confirm = format!(
        "cabinet journal confirm-fresh-start --config {} --by NAME --yes",
        cfg_path.display()
    );
    match v {
        Verdict::Trusted => "nothing: the kiosk serves with this journal".into(),
        Verdict::Lost(Loss::Corrupt { .. }) => format!(
            "the kiosk refuses commands (journal_unverified); its next start (or `{confirm}`) \
             moves the corrupt file aside as <journal>.corrupt-<time> and starts a new one. \
             Keep the corrupt file for support; confirm the fresh start once you accept what was lost"
        ),
        Verdict::Lost(Loss::WitnessUnreadable { .. }) => format!(
            "the witness file cannot be read, so nothing proves this is the cabinet's journal: \
             restore the witness if you have it; otherwise, if this is the cabinet's own journal, \
             `{confirm}` rewrites it"
        ),
        Verdict::Lost(_) => format!(
            "the kiosk refuses commands (journal_unverified) until a fresh start is confirmed. \
             If a good copy of the journal exists, stop the kiosk, put it back at the journal's \
             path and check again; otherwise `{confirm}`"
        ),
    }
}

fn check(cfg: &Config, config: &Path, full: bool) -> anyhow::Result<ExitCode> {
    let i = inspect(cfg, full)?;
    let integrity = match &i.integrity {
        None => Value::Null,
        Some(None) => json!("ok"),
        Some(Some(problem)) => json!(problem),
    };
    let witness = match &i.witness {
        Ok(Some(w)) => serde_json::to_value(w)?,
        Ok(None) => Value::Null,
        Err(problem) => json!({ "error": problem }),
    };
    let mut out = json!({
        "path": cfg.journal.path,
        "found": i.found,
        "check": if full { "full" } else { "quick" },
        "integrity": integrity,
        "schema_version": i.schema_version,
        "journal": i.identity.as_ref().ok(),
        "witness_path": cfg.journal.witness(),
        "witness": witness,
        "verdict": verdict_json(&i.verdict),
        "what_to_do": what_to_do(&i.verdict, config),
    });
    if i.found == Found::Missing {
        out["note"] = json!(
            "there is no journal file: the kiosk creates one at its start (a first start \
             when there is no witness either)"
        );
    }
    print(&out)?;
    let ok = matches!(i.verdict, Verdict::Trusted) && !matches!(i.integrity, Some(Some(_)));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

// ------------------------------------------------------------------------- prune

fn prune(cfg: &Config, dry_run: bool) -> anyhow::Result<ExitCode> {
    let path = &cfg.journal.path;
    let mut j = writable(path)?;
    let r = Retention::of(&cfg.journal);
    let now = now();
    if dry_run {
        let plan = j.prune_plan(&r, now)?;
        let s = j.stats()?;
        print(&json!({
            "dry_run": true,
            "now_ms": now,
            "would_remove": plan,
            "commands": s.rows.commands,
            "retention": retention_json(cfg),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let before = FileBytes::of(path);
    let t = Instant::now();
    // A short pause between batches lets the kiosk's writes in, as its own pass does.
    let removed = j.prune(&r, now, |_| {
        std::thread::sleep(Duration::from_millis(5));
        true
    })?;
    let took = t.elapsed();
    let s = j.stats()?;
    // Closing the last connection checkpoints the WAL into the file (with the kiosk
    // running, its next checkpoint does).
    drop(j);
    print(&json!({
        "dry_run": false,
        "now_ms": now,
        "removed": removed,
        "took_ms": millis(took),
        "commands": s.rows.commands,
        "commands_pruned_total": s.commands_pruned,
        "file_bytes_before": before,
        "file_bytes_after": FileBytes::of(path),
        "retention": retention_json(cfg),
    }))?;
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------------ export

fn export(cfg: &Config, out: Option<&Path>, since: Option<i64>) -> anyhow::Result<ExitCode> {
    let mut r = reader(&cfg.journal.path)?;
    let t = Instant::now();
    let Some(out) = out else {
        let mut w = std::io::BufWriter::new(std::io::stdout().lock());
        r.export(since, now_ms(), &mut w)?;
        return Ok(ExitCode::SUCCESS);
    };
    // Written beside the target and renamed when complete: a failed export leaves no
    // file that looks like a whole one.
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| -> anyhow::Result<_> {
        let f = std::fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut w = std::io::BufWriter::new(f);
        let counts = r.export(since, now_ms(), &mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&partial, out)
            .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
        Ok(counts)
    })();
    let counts = match result {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    print(&json!({
        "out": out,
        "bytes": std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
        "journal": r.identity().ok(),
        "since_ms": since,
        "exported": counts,
        "took_ms": millis(t.elapsed()),
    }))?;
    Ok(ExitCode::SUCCESS)
}

// ----------------------------------------------------------------------- compact

fn compact(cfg: &Config) -> anyhow::Result<ExitCode> {
    let path = &cfg.journal.path;
    // Before the lock: no lock file beside a journal that is not there.
    drop(reader(path)?);
    // Held until the end, so the kiosk cannot start on a half-rebuilt file meanwhile.
    let _lock = match InstanceLock::for_config(cfg) {
        Ok(l) => l,
        Err(InstanceError::AlreadyRunning { pid, path: lock }) => {
            eprintln!(
                "the kiosk is running (pid {pid}, lock {}): compact rebuilds the whole file and \
                 would block its writes for as long. Stop it first (systemctl stop \
                 cabinet-kiosk, or the kiosk session), then compact. Nothing was changed.",
                lock.display()
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let mut j = writable(path)?;
    let before = j.stats()?;
    // VACUUM writes the rebuilt database through the WAL beside the journal (and a
    // temporary copy in TMPDIR): about the journal's size each.
    let need = before.file_bytes.database;
    if let Some(free) = disk_free(path)
        && free < need
    {
        eprintln!(
            "compact needs about {need} bytes free beside the journal, and {free} are: free \
             some space first. Nothing was changed."
        );
        return Ok(ExitCode::from(1));
    }
    let t = Instant::now();
    j.compact()
        .with_context(|| format!("cannot compact {}", path.display()))?;
    let took = t.elapsed();
    let after = j.stats()?;
    drop(j);
    print(&json!({
        "path": path,
        "took_ms": millis(took),
        "file_bytes_before": before.file_bytes,
        "file_bytes_after": FileBytes::of(path),
        "pages_before": before.page_count,
        "pages_after": after.page_count,
        "freelist_pages_before": before.freelist_pages,
        "auto_vacuum_before": before.auto_vacuum,
        "auto_vacuum_after": after.auto_vacuum,
    }))?;
    Ok(ExitCode::SUCCESS)
}

// ----------------------------------------------------------- confirm-fresh-start

/// What a fresh start means for orders: the kiosk refuses every token issued up to the
/// confirmation plus the clock skew (`journal_unverified`), since the lost journal may
/// have served it. `confirmed_at_s`: the confirmation (unix s), or now for a plan.
fn fresh_start_note(cfg: &Config, confirmed_at_s: i64) -> (i64, String) {
    let skew = cfg.commands.clock_skew_secs;
    let until = confirmed_at_s.saturating_add(skew);
    (
        until,
        format!(
            "what the lost journal recorded is gone (outcomes, replies not yet sent, audit). \
             No command it served can be served again: the kiosk refuses every token issued \
             up to the confirmation + commands.clock_skew_secs ({skew} s) as \
             journal_unverified, so orders signed before then must be sent again as new \
             commands"
        ),
    )
}

/// What `--yes` would do with what is at the journal's path.
fn plan(i: &Inspection, cfg: &Config, by: &str) -> Vec<String> {
    let path = cfg.journal.path.display();
    let mut steps = vec![];
    match (&i.verdict, i.found) {
        (Verdict::Lost(Loss::Corrupt { .. }), _) => {
            steps.push(format!(
                "move the corrupt journal aside as {path}.corrupt-<unix ms> (with its -wal) and create a new, empty journal at {path}"
            ));
        }
        (_, Found::Missing) => steps.push(format!("create a new, empty journal at {path}")),
        (_, Found::Empty) => steps.push(format!("make the empty file {path} a new journal")),
        (_, Found::Journal) => steps.push(format!(
            "keep the journal now at {path}{} as the cabinet's journal",
            i.identity
                .as_ref()
                .map(|id| format!(" (id {}, {} transitions)", id.id, id.high_water))
                .unwrap_or_default()
        )),
    }
    steps.push(format!(
        "write the witness {} naming it",
        cfg.journal.witness().display()
    ));
    steps.push(format!(
        "record journal_fresh_start by {by:?} in its audit table; a running kiosk then serves again within seconds"
    ));
    steps
}

fn confirm_fresh_start(cfg: &Config, by: &str, yes: bool) -> anyhow::Result<ExitCode> {
    if by.trim().is_empty() || by.chars().count() > 32 || by.chars().any(char::is_control) {
        eprintln!("--by: the name of who confirms, 1 to 32 characters, no control characters");
        return Ok(ExitCode::from(2));
    }
    let path = &cfg.journal.path;
    let witness_path = cfg.journal.witness();
    let i = inspect(cfg, false)?;
    let (until, note) = fresh_start_note(cfg, now() / 1000);
    if matches!(i.verdict, Verdict::Trusted) {
        print(&json!({
            "confirmed": false,
            "verdict": "trusted",
            "message": "the journal is trusted: there is nothing to confirm, nothing was written",
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        print(&json!({
            "confirmed": false,
            "verdict": verdict_json(&i.verdict),
            "would": plan(&i, cfg, by),
            "note": note,
            "refuses_tokens_issued_until_s": until,
        }))?;
        eprintln!("refused: nothing was written; add --yes to confirm the fresh start");
        return Ok(ExitCode::from(1));
    }
    // Held while we write, so a kiosk does not start between the check and the witness.
    let (_lock, kiosk_pid) = match InstanceLock::for_config(cfg) {
        Ok(l) => (Some(l), None),
        Err(InstanceError::AlreadyRunning { pid, .. }) => (None, Some(pid)),
        Err(e) => return Err(e.into()),
    };
    if let Some(pid) = &kiosk_pid
        && (i.found != Found::Journal || matches!(i.integrity, Some(Some(_))))
    {
        // The running kiosk still writes to the file it opened; a new one here would
        // not be the one it uses.
        eprintln!(
            "the kiosk (pid {pid}) is running on a journal that is no longer usable at {}: \
             restart it (its start finds the loss and sets a corrupt file aside), then confirm \
             again. Nothing was written.",
            path.display()
        );
        return Ok(ExitCode::from(1));
    }
    // As the kiosk's start does: a corrupt file is set aside, a missing one created.
    let opened = Journal::open_checked(path, Durability::Full)
        .with_context(|| format!("cannot open the journal {}", path.display()))?;
    let set_aside = opened.set_aside.as_ref().map(|(p, _)| p.clone());
    let verdict = witness::judge(&opened, witness::read(&witness_path));
    let Verdict::Lost(loss) = verdict else {
        print(&json!({
            "confirmed": false,
            "verdict": "trusted",
            "message": "the journal is trusted now: there is nothing to confirm, nothing was written",
        }))?;
        return Ok(ExitCode::SUCCESS);
    };
    let mut journal = opened.journal;
    let audit_id = witness::confirm_fresh_start(&witness_path, &mut journal, by, &loss.describe())
        .context("cannot confirm the fresh start")?;
    let confirmed_at = witness::fresh_start_at(&journal).unwrap_or(now() / 1000);
    let (until, note) = fresh_start_note(cfg, confirmed_at);
    print(&json!({
        "confirmed": true,
        "by": by,
        "lost": verdict_json(&Verdict::Lost(loss)),
        "set_aside": set_aside,
        "journal": journal.identity()?,
        "witness_path": witness_path,
        "audit_id": audit_id,
        "kiosk_running": kiosk_pid.is_some(),
        "note": note,
        "refuses_tokens_issued_until_s": until,
    }))?;
    Ok(ExitCode::SUCCESS)
}
