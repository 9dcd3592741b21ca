//! Technician entry against the real runner (in-process `kiosk::run` with a real Mosquitto
//! and the board simulator on a pty), through the same `ControlHandle` the window uses:
//! the lockout outlives a restart, and an idle technician is logged out and the cabinet
//! returns to service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cabinet_board::Protocol;
use cabinet_board::sim::{SimConfig, Simulator};
use cabinet_core::config::{BoardProtocol, Config};
use cabinet_core::control::{self, ControlHandle, TechAction, TechError};
use cabinet_core::instance::InstanceLock;
use cabinet_core::journal::Journal;
use cabinet_core::screen::{OutOfService, Screen, Snapshot};
use cabinet_core::technician::{Attempt, hash_pin};
use cabinet_core::{kiosk, protocol};
use cabinet_testkit::{Broker, SiteConfig, password};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const PIN: &str = "97531";
const NAME: &str = "Zhang";
const WAIT: Duration = Duration::from_secs(30);

fn write_config(dir: &Path, broker: &Broker, board: &Path) -> Config {
    let (_, public) = protocol::generate_keypair().unwrap();
    std::fs::write(dir.join("password"), password("C001")).unwrap();
    let path = dir.join("config.toml");
    let mut site = SiteConfig::new("C001")
        .broker_url(&broker.url())
        .password_file("password")
        .reconnect_ms(100, 1000)
        .key("k1", &public)
        .board_protocol(BoardProtocol::Vmc)
        .board_port(board)
        .slot(1, "Cola", 10, 5)
        .journal_path("journal.sqlite3")
        .logs_dir("logs")
        .technician(NAME, &hash_pin(PIN).unwrap())
        .lockout_secs(600);
    site.maintenance.idle_logout_secs = Some(10);
    site.write(&path);
    Config::load(&path).unwrap()
}

struct Running {
    control: ControlHandle,
    screen: watch::Receiver<Option<Snapshot>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), kiosk::KioskError>>,
}

fn start(cfg: &Config) -> Running {
    let lock = InstanceLock::for_config(cfg).unwrap();
    let board = Arc::from(cabinet_board::open_lenient(&kiosk::board_settings(cfg)).unwrap());
    let (control, control_rx) = control::channel();
    let (screen_tx, screen) = watch::channel(None);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(kiosk::run(
        cfg.clone(),
        lock,
        board,
        screen_tx,
        control_rx,
        stop_rx,
    ));
    Running {
        control,
        screen,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the kiosk stops")
            .unwrap()
            .unwrap();
    }

    async fn wait_screen(&mut self, pred: impl Fn(&Screen) -> bool) {
        tokio::time::timeout(
            WAIT,
            self.screen
                .wait_for(|s| s.as_ref().is_some_and(|s| pred(&s.screen))),
        )
        .await
        .expect("screen in time")
        .unwrap();
    }
}

fn sim(dir: &Path) -> Simulator {
    let mut sc = SimConfig::new(Protocol::Vmc);
    sc.link = Some(dir.join("board"));
    sc.poll_interval = Duration::from_millis(20);
    Simulator::start(sc).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_outlives_a_restart_and_refuses_even_the_right_pin() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let _sim = sim(dir.path());
    let cfg = write_config(dir.path(), &broker, &dir.path().join("board"));

    let k = start(&cfg);
    for left in (1..5).rev() {
        assert_eq!(
            k.control.login(NAME, "0000").await.unwrap(),
            Attempt::WrongPin { tries_left: left }
        );
    }
    let locked = k.control.login(NAME, "0000").await.unwrap();
    let Attempt::LockedOut { until_ms } = locked else {
        panic!("expected a lockout, got {locked:?}")
    };
    assert!(until_ms > kiosk::now_ms() + 590_000, "600 s");
    // An unknown name counts as a wrong PIN too (no way around the gate).
    assert!(matches!(
        k.control.login("Nobody", PIN).await.unwrap(),
        Attempt::LockedOut { .. }
    ));
    k.stop().await;

    let k = start(&cfg);
    let st = k.control.status().await.unwrap();
    assert_eq!(st.locked_until_ms, Some(until_ms), "the lockout survived");
    assert_eq!(
        k.control.login(NAME, PIN).await.unwrap(),
        Attempt::LockedOut { until_ms }
    );
    assert_eq!(st.logged_in, None);
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_technician_is_logged_out_and_the_cabinet_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let _sim = sim(dir.path());
    let cfg = write_config(dir.path(), &broker, &dir.path().join("board"));
    let mut k = start(&cfg);
    k.wait_screen(|s| *s == Screen::Idle).await;
    assert_eq!(
        k.control.login(NAME, PIN).await.unwrap(),
        Attempt::LoggedIn {
            technician: NAME.into()
        }
    );
    k.wait_screen(|s| {
        matches!(
            s,
            Screen::OutOfService {
                reason: OutOfService::Maintenance,
                ..
            }
        )
    })
    .await;
    assert!(k.control.diagnostics().await.unwrap().is_ok());
    // idle_logout_secs = 10: nobody touches the screen.
    k.wait_screen(|s| *s == Screen::Idle).await;
    assert_eq!(k.control.status().await.unwrap().logged_in, None);
    assert!(
        k.control.diagnostics().await.unwrap().is_err(),
        "diagnostics are for a logged-in technician only"
    );
    k.stop().await;
    let journal = Journal::open(&cfg.journal.path).unwrap();
    let last = &journal.recent_audit(1).unwrap()[0];
    assert_eq!(
        (
            last.technician.as_str(),
            last.action.as_str(),
            last.detail.as_str()
        ),
        (NAME, "logout", "idle")
    );
}

/// Opens `fifo` for writing (which waits for its reader), writes `text` and closes it,
/// on a thread of its own: what lets a blocked export finish.
fn drain(fifo: &Path, text: &'static str) -> std::thread::JoinHandle<()> {
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || {
        use std::io::Write as _;
        let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
        w.write_all(text.as_bytes()).unwrap();
    })
}

/// A diagnostics export that cannot finish its file work (a slow or hung USB stick;
/// here a log "file" that is a named pipe nobody writes yet, so copying it waits) does
/// not hold up the runner: it keeps answering while the export waits, refuses a second
/// export, and the first answers, audited, once the pipe is drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_keeps_serving_while_a_diagnostics_export_is_blocked() {
    use cabinet_core::control::{TechAction, TechAnswer, TechError};
    let dir = tempfile::tempdir().unwrap();
    let usb = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let _sim = sim(dir.path());
    let cfg = write_config(dir.path(), &broker, &dir.path().join("board"));
    std::fs::create_dir_all(&cfg.logs.dir).unwrap();
    let fifo = cfg.logs.dir.join("cabinet.2026-01-01.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut k = start(&cfg);
    k.wait_screen(|s| *s == Screen::Idle).await;
    assert!(matches!(
        k.control.login(NAME, PIN).await.unwrap(),
        Attempt::LoggedIn { .. }
    ));

    let control = k.control.clone();
    let target = usb.path().to_path_buf();
    let export =
        tokio::spawn(async move { control.tech(TechAction::Export { dir: target }).await });
    // The control channel is in order: this is answered after the runner took the export.
    let status = tokio::time::timeout(WAIT, k.control.status()).await;
    let Ok(status) = status else {
        drain(&fifo, "").join().unwrap();
        panic!("the runner stopped answering while the export waits for its files");
    };
    assert_eq!(status.unwrap().logged_in.as_deref(), Some(NAME));
    assert!(k.control.diagnostics().await.unwrap().is_ok());
    assert!(
        !export.is_finished(),
        "the export cannot be done: its log copy waits for the pipe"
    );
    assert!(matches!(
        k.control
            .tech(TechAction::Export {
                dir: usb.path().to_path_buf()
            })
            .await
            .unwrap(),
        Err(TechError::Busy(_))
    ));

    let writer = drain(&fifo, "the last lines\n");
    let answer = tokio::time::timeout(WAIT, export)
        .await
        .expect("the export answers once its files are written")
        .unwrap()
        .unwrap();
    writer.join().unwrap();
    let Ok(TechAnswer::Exported { path, files }) = answer else {
        panic!("expected the bundle, got {answer:?}");
    };
    assert!(
        files.contains(&"logs/cabinet.2026-01-01.log".to_owned()),
        "{files:?}"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&path).join("logs/cabinet.2026-01-01.log")).unwrap(),
        "the last lines\n"
    );
    // Answered once the runner has booked the export (audit row and telemetry).
    assert!(k.control.status().await.is_ok());
    k.stop().await;
    let journal = Journal::open(&cfg.journal.path).unwrap();
    let last = &journal.recent_audit(1).unwrap()[0];
    assert_eq!(
        (last.action.as_str(), last.detail.as_str()),
        ("export", path.as_str())
    );
}

/// When a lockout is over, the right PIN opens again. Checked here rather than in the
/// window test, without a race: the test waits until the runner itself says the lockout
/// is over, and a lockout can only get longer, never come back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_lockout_is_over_the_right_pin_opens() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let _sim = sim(dir.path());
    write_config(dir.path(), &broker, &dir.path().join("board"));
    let file = dir.path().join("config.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("lockout_secs = 600", "lockout_secs = 1");
    std::fs::write(&file, text).unwrap();
    let cfg = Config::load(&file).unwrap();
    assert_eq!(cfg.maintenance.lockout_secs, 1);
    let k = start(&cfg);
    for _ in 0..4 {
        assert!(matches!(
            k.control.login(NAME, "0000").await.unwrap(),
            Attempt::WrongPin { .. }
        ));
    }
    assert!(matches!(
        k.control.login(NAME, "0000").await.unwrap(),
        Attempt::LockedOut { .. }
    ));
    let deadline = tokio::time::Instant::now() + WAIT;
    while k.control.status().await.unwrap().locked_until_ms.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a 1 s lockout did not end"
        );
        // Polling the runner's view of the clock; there is no "lockout over" event.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        k.control.login(NAME, PIN).await.unwrap(),
        Attempt::LoggedIn {
            technician: NAME.into()
        }
    );
    // The runner has the technician logged in (and has booked the login).
    assert_eq!(
        k.control.status().await.unwrap().logged_in.as_deref(),
        Some(NAME)
    );
    k.stop().await;
}

/// A journal deleted between two runs: the cabinet is out of service, the technician's
/// diagnostics say why, and the technician's confirmation (audited) brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_journal_waits_for_a_technician_to_confirm_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let _sim = sim(dir.path());
    let cfg = write_config(dir.path(), &broker, &dir.path().join("board"));
    let mut k = start(&cfg);
    k.wait_screen(|s| *s == Screen::Idle).await;
    k.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", cfg.journal.path.display()));
    }

    let mut k = start(&cfg);
    let unverified = |s: &Screen| {
        matches!(
            s,
            Screen::OutOfService {
                reason: OutOfService::JournalUnverified,
                ..
            }
        )
    };
    k.wait_screen(unverified).await;
    assert_eq!(
        k.control.login(NAME, PIN).await.unwrap(),
        Attempt::LoggedIn {
            technician: NAME.into()
        }
    );
    // Logged in, the reason that matters stays on the screen.
    k.wait_screen(unverified).await;
    let d = k.control.diagnostics().await.unwrap().unwrap();
    let why = d.journal.unverified.expect("diagnostics say why");
    assert!(why.contains("missing"), "{why}");

    let done = k.control.tech(TechAction::ConfirmFreshStart).await.unwrap();
    assert!(done.is_ok(), "{done:?}");
    let d = k.control.diagnostics().await.unwrap().unwrap();
    assert_eq!(d.journal.unverified, None);
    let again = k.control.tech(TechAction::ConfirmFreshStart).await.unwrap();
    assert!(
        matches!(again, Err(TechError::Invalid(_))),
        "nothing left to confirm: {again:?}"
    );
    k.control.logout().await.unwrap();
    k.wait_screen(|s| *s == Screen::Idle).await;
    k.stop().await;

    let journal = Journal::open(&cfg.journal.path).unwrap();
    let confirmed = journal
        .recent_audit(10)
        .unwrap()
        .into_iter()
        .find(|a| a.action == "journal_fresh_start")
        .expect("the confirmation is audited");
    assert_eq!(confirmed.technician, NAME);
    assert!(confirmed.detail.contains("missing"), "{}", confirmed.detail);
    drop(journal);
    // And the next start trusts the journal.
    let mut k = start(&cfg);
    k.wait_screen(|s| *s == Screen::Idle).await;
    k.stop().await;
}
