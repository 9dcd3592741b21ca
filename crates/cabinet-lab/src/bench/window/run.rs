//! The runs of `cabinet-lab bench window`: its arguments, the two binaries in alternation,
//! and one run of one binary, from spawn to its first-paint line and through the settle
//! window to its tree's memory and CPU.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::field::{Field, MAX_ORDERS};
use super::host::{Display, loadavg, machine_info};
use super::model::{Run, Which, WindowArgs};
use super::report::{Setup, mb, report};
use super::tree::{Mem, descendants, foreign_webkit, keep_smaps, stop, tree_memory};
use crate::procfs::{clk_tck, read_stat};

/// How long a window may take to report its first paint before the run fails.
const FIRST_PAINT_TIMEOUT: Duration = Duration::from_secs(60);
const APP_BIN: &str = "cabinet-kiosk";
const EMPTY_BIN: &str = "empty-tauri-window";
const BUILD_HINT: &str = "build both the same way first: cargo build --release \
                          -p cabinet-kiosk-app -p empty-tauri-window -p cabinet-lab \
                          --features tauri/custom-protocol,cabinet-kiosk-app/demo";

/// Run the window benchmark.
pub fn bench_window(a: WindowArgs) -> anyhow::Result<ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let here = std::env::current_exe()
        .context("cannot find my own executable")?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let app = a.app.clone().unwrap_or_else(|| here.join(APP_BIN));
    let empty = a.empty.clone().unwrap_or_else(|| here.join(EMPTY_BIN));
    for bin in [&app, &empty] {
        if !bin.is_file() {
            bail!("{} does not exist; {BUILD_HINT}", bin.display());
        }
    }
    if a.orders > MAX_ORDERS {
        bail!("--orders: at most {MAX_ORDERS} (the field's stock for one run)");
    }
    let app_args: Vec<String> = a.app_args.split_whitespace().map(str::to_owned).collect();
    let mut env: BTreeMap<String, String> = if a.bare_env {
        BTreeMap::new()
    } else {
        cabinet_core::config::default_webkit_env()
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect()
    };
    for (k, v) in &a.envs {
        if v.is_empty() {
            env.remove(k);
        } else {
            env.insert(k.clone(), v.clone());
        }
    }
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut field = if a.field {
        Some(Field::start(dir.path(), a.chinese_names)?)
    } else {
        None
    };
    let display = Display::start(a.display)?;
    let machine = machine_info();
    let load_before = loadavg();
    let clk_tck = clk_tck();

    let mut runs = Vec::new();
    for i in 0..a.runs {
        let order = if i % 2 == 0 {
            [Which::App, Which::Empty]
        } else {
            [Which::Empty, Which::App]
        };
        for which in order {
            let (bin, mut args) = match (which, &field) {
                (Which::App, Some(f)) => (&app, f.app_args(i)?),
                (Which::App, None) => (&app, app_args.clone()),
                (Which::Empty, _) => (&empty, Vec::new()),
            };
            // Orders only for the kiosk, and only with --field.
            let serve = match (which, field.as_mut()) {
                (Which::App, Some(f)) if a.orders > 0 => {
                    f.listen(i)?;
                    Some(f)
                }
                _ => None,
            };
            if which == Which::App
                && args.iter().any(|x| x == "--demo")
                && !args.iter().any(|x| x == "--demo-dir")
            {
                args.push("--demo-dir".into());
                args.push(dir.path().join(format!("demo-{i}")).display().to_string());
            }
            let log = dir.path().join(format!("{}-{i}.stderr", which.label()));
            let smaps = a
                .smaps_dir
                .as_ref()
                .map(|d| d.join(format!("{}-{i}", which.label())));
            let run = measure(
                which,
                bin,
                &args,
                &env,
                &display,
                &log,
                Duration::from_secs(a.settle_secs),
                clk_tck,
                smaps.as_deref(),
                serve.map(|f| (f, a.orders)),
            )
            .with_context(|| format!("run {} of {}", i + 1, bin.display()))?;
            if !a.json {
                eprintln!(
                    "  run {}/{} {:5}  first paint {:6.0} ms (own {:5} ms)  RSS {:6.1} MB  PSS {:6.1} MB  idle CPU {:4.1} %  other WebKit processes {}",
                    i + 1,
                    a.runs,
                    which.label(),
                    run.paint_harness_ms,
                    run.paint_own_ms,
                    mb(run.total.rss_kb),
                    mb(run.total.pss_kb),
                    run.total.cpu_pct,
                    run.others
                );
            }
            runs.push(run);
        }
    }
    let setup = Setup {
        app,
        empty,
        app_args: if a.field {
            vec!["--config <the run's site config>".into()]
        } else {
            app_args
        },
        kiosk: match (a.field, a.orders) {
            (false, _) => "as started by its arguments".into(),
            (true, n) => format!(
                "field: Mosquitto and the VMC simulator, {} names, {n} order(s) served before \
                 the settle window",
                if a.chinese_names {
                    "Chinese"
                } else {
                    "English"
                }
            ),
        },
        env,
        display: display.label(),
        machine,
        load: (load_before, loadavg()),
    };
    drop(display);
    report(&a, &setup, &runs);
    Ok(ExitCode::SUCCESS)
}

/// Starts `bin`, waits for its first paint, lets it idle, reads its tree's memory and CPU,
/// and stops it.
#[allow(clippy::too_many_arguments)]
fn measure(
    which: Which,
    bin: &Path,
    args: &[String],
    env: &BTreeMap<String, String>,
    display: &Display,
    log: &Path,
    settle: Duration,
    clk_tck: f64,
    smaps: Option<&Path>,
    serve: Option<(&mut Field, u32)>,
) -> anyhow::Result<Run> {
    let stderr =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new(bin);
    display.apply(&mut cmd);
    cmd.args(args)
        .envs(env)
        .env("CABINET_PRINT_FIRST_PAINT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .process_group(0);
    let spawned = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id();
    let result = watch(&mut child, spawned, settle, clk_tck, log, smaps, serve);
    let stopped = stop(&mut child, pid);
    let (paint_harness_ms, paint_own_ms, (total, by_name), others) = result?;
    stopped?;
    Ok(Run {
        which,
        paint_harness_ms,
        paint_own_ms,
        total,
        by_name,
        others,
    })
}

type Watched = (f64, u64, (Mem, BTreeMap<String, Mem>), u32);

fn watch(
    child: &mut Child,
    spawned: Instant,
    settle: Duration,
    clk_tck: f64,
    log: &Path,
    smaps: Option<&Path>,
    serve: Option<(&mut Field, u32)>,
) -> anyhow::Result<Watched> {
    let pid = child.id();
    let stdout = child
        .stdout
        .take()
        .context("the child's stdout is not a pipe")?;
    let lines = read_lines(stdout);
    let deadline = spawned + FIRST_PAINT_TIMEOUT;
    let (painted_at, own_ms) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok((at, line)) => {
                if let Some(n) = line.strip_prefix("first-paint-ms ") {
                    let own = n
                        .trim()
                        .parse::<u64>()
                        .with_context(|| format!("cannot read the first-paint line {line:?}"))?;
                    break (at, own);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "no first-paint-ms line within {} s; its stderr: {}",
                FIRST_PAINT_TIMEOUT.as_secs(),
                tail(log)
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!(
                "it exited ({}) before its first paint; its stderr: {}",
                child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map_or("still running".into(), |s| s.to_string()),
                tail(log)
            ),
        }
    };
    let paint_ms = painted_at.duration_since(spawned).as_secs_f64() * 1000.0;
    if let Some((field, orders)) = serve {
        field
            .serve(orders)
            .with_context(|| format!("serving {orders} orders; its stderr: {}", tail(log)))?;
    }
    // Idle CPU over the second half of the settle window: the first half still holds the
    // tail of start-up (board and broker connecting, the first screens).
    std::thread::sleep(settle / 2);
    let wall_start = Instant::now();
    let cpu_start: HashMap<u32, u64> = descendants(pid)
        .into_iter()
        .filter_map(|p| Some((p, read_stat(p)?.cpu_ticks)))
        .collect();
    std::thread::sleep(settle - settle / 2);
    let mem = tree_memory(pid, &cpu_start, wall_start, clk_tck)?;
    if let Some(prefix) = smaps {
        keep_smaps(pid, prefix)?;
    }
    let others = foreign_webkit(&descendants(pid));
    if let Ok(Some(status)) = child.try_wait() {
        bail!(
            "it exited ({status}) while settling; its stderr: {}",
            tail(log)
        );
    }
    Ok((paint_ms, own_ms, mem, others))
}

/// Lines of the child's stdout with the instant each was read.
fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        format!("\n    {tail}")
    }
}
