//! `cabinet-demo`: the zero-setup demo without a window (for machines with no display,
//! and as a smoke test of the whole path). The same core as `cabinet run` and the window
//! app, on this crate's demo environment (embedded broker, simulated board on a pty, demo
//! key). The customer screen is printed as text; Enter plays a scan. Its own binary, so
//! the shipped `cabinet` carries no demo broker.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use cabinet_core::instance::InstanceLock;
use cabinet_core::protocol::{Reply, ReplyState};
use cabinet_core::screen::{Screen, Snapshot};
use cabinet_core::{kiosk, logs};
use cabinet_demo::{Demo, DemoBackend, DemoOptions, Layout, Scan};
use clap::Parser;
use tokio::sync::{broadcast, watch};

/// The zero-setup demo, headless: embedded broker, simulated board, demo key; the screen
/// is printed as text and Enter plays a customer's scan.
#[derive(Debug, Parser)]
#[command(name = "cabinet-demo", version, about)]
struct DemoArgs {
    /// Play this many scans one after another, print the outcome of each and exit
    /// (0 when every one was dispensed and the board's motor count, or the wall's door
    /// unlocks, rose by as many).
    /// Without it: press Enter to scan, `q` Enter to quit.
    #[arg(long)]
    scans: Option<u32>,
    /// With --scans on the wall: then play this many customers putting a rental back
    /// (a signed `return` for the door the last scan emptied, or another empty door).
    #[arg(long, default_value_t = 0, requires = "scans")]
    returns: u32,
    /// Keep the demo's config, journal and logs here instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// `vending` (one VMC board, six spiral slots) or `wall` (a locker wall: three lock
    /// boards on one RS-485 bus, one item behind each door).
    #[arg(long, default_value = "vending")]
    layout: Layout,
}

fn main() -> ExitCode {
    match demo(DemoArgs::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run the headless demo.
fn demo(a: DemoArgs) -> anyhow::Result<ExitCode> {
    if a.returns > 0 && a.layout != Layout::Wall {
        bail!("--returns is for --layout wall: only a locker door takes an item back");
    }
    let demo = Demo::start(DemoOptions {
        dir: a.dir,
        layout: a.layout,
        ..DemoOptions::default()
    })?;
    let cfg = demo.config().clone();
    let lock = InstanceLock::for_config(&cfg)?;
    let _logs = logs::init(&cfg.logs, false).context("cannot start logging")?;
    println!(
        "demo cabinet {} · broker mqtt://{} · board {} · logs {}",
        cfg.machine_code,
        demo.broker(),
        cfg.board.port.display(),
        cfg.logs.dir.display()
    );
    let board = kiosk::open_board(&cfg).context("invalid board settings")?;
    let rt = kiosk::runtime().context("cannot start the async runtime")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (screen_tx, screen_rx) = watch::channel(None);
    let (_, control_rx) = cabinet_core::control::channel();
    let core = rt.spawn(kiosk::run(cfg, lock, board, screen_tx, control_rx, stop_rx));
    rt.spawn(print_screens(screen_rx.clone()));

    let result = rt.block_on(async {
        let backend = demo.backend().await?;
        match a.scans {
            Some(n) => scripted(&demo, &backend, screen_rx, n, a.returns).await,
            None => interactive(&backend, screen_rx).await,
        }
    });
    let _ = stop_tx.send(true);
    let stopped = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), core).await });
    match stopped {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("the kiosk stopped with an error"),
        Ok(Err(e)) => bail!("the kiosk task failed: {e}"),
        Err(_) => bail!("the kiosk did not stop within 10 s"),
    }
    result
}

/// `--scans N [--returns M]`: scan, wait for the outcome, N times, then M returns; then
/// check the motor count (or the wall's door unlocks).
async fn scripted(
    demo: &Demo,
    backend: &DemoBackend,
    mut screen: watch::Receiver<Option<Snapshot>>,
    n: u32,
    returns: u32,
) -> anyhow::Result<ExitCode> {
    let before = demo.actions();
    let mut dispensed = 0u32;
    for i in 1..=n + returns {
        let idle = wait_idle(&mut screen, Duration::from_secs(30)).await?;
        let mut replies = backend.replies();
        let scan = if i <= n {
            let scan = backend.scan(&idle).await?;
            println!(
                "scan {i}/{n}: slot {} ({}), support code {}",
                scan.slot,
                scan.product,
                cabinet_core::support::code(&scan.cmd_id)
            );
            scan
        } else {
            let scan = backend.give_back(&idle).await?;
            println!(
                "return {}/{returns}: door {} ({}), support code {}",
                i - n,
                scan.slot,
                scan.product,
                cabinet_core::support::code(&scan.cmd_id)
            );
            scan
        };
        let outcome = wait_outcome(&mut replies, &scan, Duration::from_secs(60)).await?;
        println!(
            "  → {}{}",
            outcome.state.as_str(),
            outcome
                .reason
                .map(|r| format!(" ({})", r.code()))
                .unwrap_or_default()
        );
        if outcome.state == ReplyState::Succeeded {
            dispensed += 1;
        }
    }
    let after = demo.actions();
    let what = match demo.layout() {
        Layout::Vending => "the board's motor count",
        Layout::Wall => "the wall's door unlocks",
    };
    let n = n + returns;
    if returns == 0 {
        println!("dispensed {dispensed} of {n}; {what} went {before} → {after}");
    } else {
        println!("served {dispensed} of {n} (returns included); {what} went {before} → {after}");
    }
    Ok(if dispensed == n && after - before == u64::from(n) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Enter scans, `q` quits; outcomes are printed as they arrive.
async fn interactive(
    backend: &DemoBackend,
    screen: watch::Receiver<Option<Snapshot>>,
) -> anyhow::Result<ExitCode> {
    println!(
        "press Enter to scan the QR code, r Enter to return a rental (the wall), \
         q Enter (or Ctrl-D) to quit"
    );
    let mut replies = backend.replies();
    tokio::spawn(async move {
        loop {
            match replies.recv().await {
                Ok(text) => {
                    if let Ok(r) = serde_json::from_str::<Reply>(&text)
                        && r.is_terminal()
                    {
                        println!(
                            "  reply {}: {}{}",
                            r.log_id,
                            r.state.as_str(),
                            r.reason
                                .map(|x| format!(" ({})", x.code()))
                                .unwrap_or_default()
                        );
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let (stop_tx, mut stop) = watch::channel(false);
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(true);
    })
    .context("cannot install the signal handler")?;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                if line.trim().eq_ignore_ascii_case("q") {
                    break;
                }
                let snap = screen.borrow().clone();
                let Some(snap) = snap else {
                    println!("  the kiosk has not drawn a screen yet");
                    continue;
                };
                if line.trim().eq_ignore_ascii_case("r") {
                    match backend.give_back(&snap).await {
                        Ok(s) => println!("  returning to door {} ({}), support code {}", s.slot, s.product, cabinet_core::support::code(&s.cmd_id)),
                        Err(e) => println!("  cannot return: {e:#}"),
                    }
                    continue;
                }
                match backend.scan(&snap).await {
                    Ok(s) => println!("  scanned: slot {} ({}), support code {}", s.slot, s.product, cabinet_core::support::code(&s.cmd_id)),
                    Err(e) => println!("  cannot scan: {e:#}"),
                }
            }
            _ = stop.changed() => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_idle(
    screen: &mut watch::Receiver<Option<Snapshot>>,
    within: Duration,
) -> anyhow::Result<Snapshot> {
    let found = tokio::time::timeout(
        within,
        screen.wait_for(|s| {
            s.as_ref().is_some_and(|s| {
                s.screen == Screen::Idle && s.qr_nonce.is_some() && s.link_up && s.board_up
            })
        }),
    )
    .await;
    match found {
        Ok(Ok(s)) => (*s)
            .clone()
            .context("the kiosk published no screen (a bug)"),
        Ok(Err(_)) => bail!("the kiosk stopped"),
        Err(_) => bail!(
            "the cabinet did not become ready within {} s",
            within.as_secs()
        ),
    }
}

async fn wait_outcome(
    replies: &mut broadcast::Receiver<String>,
    scan: &Scan,
    within: Duration,
) -> anyhow::Result<Reply> {
    let found = tokio::time::timeout(within, async {
        loop {
            match replies.recv().await {
                Ok(text) => {
                    if let Ok(r) = serde_json::from_str::<Reply>(&text)
                        && r.cmd_id == scan.cmd_id
                        && r.is_terminal()
                    {
                        return Ok(r);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => bail!("the demo backend stopped"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        bail!(
            "no outcome for {} within {} s",
            scan.log_id,
            within.as_secs()
        )
    })
}

/// One line per screen change, as a customer would see it.
async fn print_screens(mut screen: watch::Receiver<Option<Snapshot>>) {
    let mut last = String::new();
    while screen.changed().await.is_ok() {
        let Some(s) = screen.borrow_and_update().clone() else {
            continue;
        };
        let line = match &s.screen {
            Screen::Idle => format!(
                "idle: scan the QR code ({} of {} slots available)",
                s.items.iter().filter(|i| i.available).count(),
                s.items.len()
            ),
            Screen::Accepted { slot, product, .. } => {
                format!("accepted: {product}, slot {slot}")
            }
            Screen::Dispensing { slot, product, .. } => {
                format!("dispensing: {product}, slot {slot}")
            }
            Screen::TakeItem { product, .. } => format!("take your item: {product}"),
            Screen::PutBack { product, slot, .. } => {
                format!("put the {product} back in door {slot} and close it")
            }
            Screen::Failed {
                reason,
                uncertain,
                support_code,
                ..
            } => format!(
                "failed{}: {} (support code {support_code})",
                if *uncertain {
                    ", outcome uncertain"
                } else {
                    ""
                },
                reason.code()
            ),
            Screen::OutOfService { reason, .. } => format!("out of service: {reason:?}"),
        };
        if line != last {
            println!("[screen] {line}");
            last = line;
        }
    }
}
