//! The real window, driven like a customer would see it: the `cabinet-kiosk` binary under
//! its own Xvfb, through `tauri-driver` and WebKitGTK's WebDriver, against a real Mosquitto
//! (free loopback port, shipped ACL) and the board simulator on a real pty.
//!
//! What it proves, on the real page in the real webview (not the mock runtime):
//!
//! - the window covers the whole screen, whatever its size; a cabinet that boots without
//!   its broker shows `out_of_service` (reason `starting`), then idle once the broker is
//!   there;
//! - the idle screen shows the cabinet name, a loaded QR code, the slot list, and no demo
//!   button outside demo mode; the context menu is blocked;
//! - a signed command sent by the backend walks the window through `dispensing` (held by
//!   the simulator's slow report) and `take_item`, the motor runs exactly once, and the
//!   backend gets `succeeded`;
//! - a jammed motor shows `failed` with the command's short support code, the operator's
//!   phone and a QR code of the help page; a next order takes the screen at once but
//!   carries the failure's code along;
//! - a stopped broker shows `out_of_service` (reason `broker_down`), and the window comes
//!   back to idle when the broker returns;
//! - every customer and technician screen fits every panel size a cabinet ships with
//!   ([`SIZES`]) in both languages, with the longest content a site may give it: nothing
//!   outside the window, nothing clipped, nothing to scroll but the long lists, every
//!   button a fingertip's size ([`OVERFLOW`]);
//! - the language button switches every screen between zh-CN and en; the choice lasts a
//!   customer's visit: it outlives a QR code replaced while the customer pays, and falls
//!   back to zh-CN once that code is dead, back at idle after an order, and when a next
//!   order replaces a finished one.
//!
//! Every screen is saved in both languages as `target/screenshots/<name>-<lang>.png`
//! (workspace `target/`; names in [`SHOTS`]), for people to look at. Synchronisation is by
//! polling the page's `<body data-screen>` (and the rendered text) with deadlines, never by
//! sleeping. The `accepted` screen is not photographed: the engine starts the motor in the
//! same step that accepts a command, so no snapshot ever shows it while the board is free.
//! About 30 s in all, most of it the hold times below.
//!
//! Prerequisites (`make test` installs them): Xvfb, `WebKitWebDriver` (Debian package
//! `webkit2gtk-driver`), `tauri-driver` (`cargo install tauri-driver --locked --version
//! '^2'`, found on `PATH` or in `$CARGO_HOME/bin` / `~/.cargo/bin`), Mosquitto, and a CJK
//! font (`fonts-noto-cjk`) for readable Chinese screenshots. A missing tool fails the test
//! with what to install; it is never skipped silently.
//!
//! Every process started here (Xvfb, tauri-driver with WebKitWebDriver and the app in its
//! process group, Mosquitto) is stopped by a `Drop` guard, also when an assertion fails.
//! On failure the kiosk's log files, journal, config and the driver's output are kept and
//! their directory is printed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cabinet_board::Protocol;
use cabinet_board::sim::{Fault, SimConfig, Simulator};
use cabinet_core::config::ScanApp;
use cabinet_core::protocol::{self, CommandClaims, SigningKey};
use cabinet_testkit::webdriver::{
    Driver, Session, WindowManager, Wm, Xvfb, poll, system_tool, x_property,
};
use cabinet_testkit::{Broker, Client, SiteConfig, password};
use serde_json::{Value, json};

/// The app under test.
const APP: &str = env!("CARGO_BIN_EXE_cabinet-kiosk");
/// Longest wait for any one state (a failing test fails, it does not hang).
const WAIT: Duration = Duration::from_secs(30);
/// The cabinet name in the header (`kiosk.name`): Chinese, so the screenshots show CJK.
const CABINET_NAME: &str = "天河一号柜";
/// What an operator renames it to over its own channel, with characters the first name
/// has not.
const RENAMED: &str = "海珠二号柜";
/// The operator's key id in the site config.
const OPERATOR_KID: &str = "ops";
/// How long the simulator holds back the dispense report, so `dispensing` stays on screen
/// while it is photographed in both languages.
const DISPENSE_HOLD: Duration = Duration::from_secs(8);
/// `kiosk.take_item_secs`: long enough for two screenshots.
const RESULT_SECS: u64 = 8;
/// `kiosk.failed_secs`: the screenshots, then a next order sent while it is still shown,
/// whose screens carry the failure's code until this ends (the test never waits for it).
const FAILED_SECS: u64 = 300;
/// `support.phone`: the operator's contact on the failure and out-of-service screens.
const SUPPORT_PHONE: &str = "400-820-8820";
/// `commands.session_lifetime_secs`: the idle QR code is replaced every 5 s (half of it),
/// so the test sees the language outlive one replacement and end at the next.
const SESSION_SECS: u64 = 10;
/// The screenshots this test writes, each as `<name>-zh-CN.png` and `<name>-en.png`.
const SHOTS: [&str; 6] = [
    "out_of_service-starting",
    "idle",
    "dispensing",
    "take_item",
    "failed",
    "out_of_service",
];
/// The technician in the test config, and the PIN whose hash the config holds.
const TECH_NAME: &str = "李工";
/// Twelve digits, so a search of the logs for it cannot hit a timestamp or an id by chance.
const TECH_PIN: &str = "246801357913";
/// The technician test's screenshots.
const TECH_SHOTS: [&str; 3] = [
    "tech-pin-zh-CN",
    "tech-locked-zh-CN",
    "tech-maintenance-zh-CN",
];
/// The technician views' screenshots.
const VIEW_SHOTS: [&str; 5] = [
    "tech-slots-zh-CN",
    "tech-commands-zh-CN",
    "tech-frames-zh-CN",
    "tech-audit-zh-CN",
    "tech-export-zh-CN",
];
/// The demo test's screenshots (one language).
#[cfg(feature = "demo")]
const DEMO_SHOTS: [&str; 4] = [
    "demo-idle-zh-CN",
    "demo-take_item-zh-CN",
    "demo-controls-zh-CN",
    "demo-failed-zh-CN",
];
/// The demo wall test's screenshots.
#[cfg(feature = "demo")]
const WALL_SHOTS: [&str; 2] = ["demo-wall-boards-zh-CN", "demo-wall-slots-zh-CN"];
/// One window at a time: two Xvfb + WebKit stacks on a 2-core machine make both slow.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `<workspace>/target/screenshots`, created, without the files of an earlier run (so a
/// failed run leaves no stale picture that looks current).
fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir.canonicalize().unwrap()
}

/// The pid of the `cabinet-kiosk` process in tauri-driver's process group `group`.
fn app_pid(group: u32) -> u32 {
    in_group(group, "cabinet-kiosk")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no cabinet-kiosk process in process group {group}"))
}

/// The web process has not opened the system's CJK font: every name on screen came from
/// the page's font or the names font (a character from neither keeps 2-4 MB of that
/// 19 MB file's pages in memory).
fn no_system_cjk(driver: &Driver) {
    let web = in_group(driver.pid(), "WebKitWebProces");
    assert!(!web.is_empty(), "no web process found");
    for pid in web {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap_or_else(|e| panic!("cannot read the web process {pid}'s maps: {e}"));
        assert!(
            !maps.contains("NotoSansCJK"),
            "the web process {pid} maps the system's CJK font"
        );
    }
}

/// The page's names fonts: one or two (the one before the newest stays until the next),
/// each loaded.
fn names_fonts_loaded(s: &Session) {
    let states = s.js(
        "return Array.from(document.fonts).filter(f => \
         f.family.replace(/\"/g, '') === 'Kiosk Names').map(f => f.status)",
        json!([]),
    );
    let states = states.as_array().expect("an array");
    assert!(
        (1..=2).contains(&states.len()) && states.iter().all(|st| st == "loaded"),
        "names fonts: {states:?}"
    );
}

/// The processes in process group `group` whose name starts with `comm` (the kernel cuts
/// names at 15 bytes: `WebKitWebProces`).
fn in_group(group: u32, comm: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some((name, rest)) = stat.split_once(") ") else {
            continue;
        };
        let pgrp = rest
            .split_whitespace()
            .nth(2)
            .and_then(|g| g.parse::<u32>().ok());
        let name = name.split_once('(').map_or("", |(_, n)| n);
        if name.starts_with(comm) && pgrp == Some(group) {
            found.push(pid);
        }
    }
    found
}

// ---- the kiosk's page ----------------------------------------------------------------

/// The app's window with the kiosk's config at `config`.
fn open_app(driver: &Driver, config: &Path) -> Session {
    open_app_with(driver, &["--config", config.to_str().unwrap()])
}

/// The app's window, started with `args`.
fn open_app_with(driver: &Driver, args: &[&str]) -> Session {
    Session::start(driver, APP, args)
}

/// What the tests read and do on the kiosk's own page (the generic WebDriver calls are in
/// cabinet-testkit).
trait KioskPage {
    fn screen(&self) -> String;
    fn lang(&self) -> String;
    fn open_pin_pad(&self);
    fn enter_pin(&self, pin: &str) -> String;
    fn wait_screen(&self, screen: &str);
    fn wait_screen_within(&self, screen: &str, timeout: Duration);
    fn wait_rendered(&self, lang: &str);
    fn set_lang(&self, lang: &str);
    fn shoot_both(&self, screen: &str, name: &str, dir: &Path) -> Duration;
    fn shot(&self, path: &Path);
    fn record_changes(&self, var: &str, target: &str, options: &str, value: &str) -> Recorded;
}

/// What [`KioskPage::record_changes`] collects: `window.<var>`, read when asked.
struct Recorded(String);

impl Recorded {
    fn read<T: serde::de::DeserializeOwned>(&self, s: &Session) -> Vec<T> {
        serde_json::from_value(s.js(&format!("return window.{}", self.0), json!([]))).unwrap()
    }
}

/// Every visible text on the page whose contrast with what is behind it is under WCAG
/// AA's 4.5:1, as `tag#id.class "text" ratio` (the colours as composed: the element's
/// and its ancestors' opacity, the backgrounds stacked from the root down; a text under
/// an overlay is not judged).
const LOW_CONTRAST: &str = r#"
const rgba = (c) => {
  const m = c.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
};
const over = (t, u) => ({
  r: t.r * t.a + u.r * (1 - t.a), g: t.g * t.a + u.g * (1 - t.a), b: t.b * t.a + u.b * (1 - t.a), a: 1,
});
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
};
const low = [];
for (const el of document.querySelectorAll('body *')) {
  const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
  const st = getComputedStyle(el);
  if (!own || el.getClientRects().length === 0 || st.visibility !== 'visible') continue;
  // Under an overlay (the technician's panel) a text is not seen at all.
  const box = el.getBoundingClientRect();
  const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  if (top && !el.contains(top) && !top.contains(el)) continue;
  const chain = [];
  for (let e = el; e; e = e.parentElement) chain.unshift(e);
  let bg = { r: 255, g: 255, b: 255, a: 1 };
  let opacity = 1;
  for (const e of chain) {
    const cs = getComputedStyle(e);
    const c = rgba(cs.backgroundColor);
    if (c && c.a > 0) bg = over(c, bg);
    opacity *= Number(cs.opacity);
  }
  const c = rgba(st.color);
  const fg = over({ ...c, a: c.a * opacity }, bg);
  const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  const ratio = (hi + 0.05) / (lo + 0.05);
  if (ratio < 4.5) {
    const cls = typeof el.className === 'string' && el.className ? '.' + el.className.split(' ').join('.') : '';
    low.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${cls} "${el.textContent.trim().slice(0, 24)}" ${ratio.toFixed(2)}`);
  }
}
return low;
"#;

impl KioskPage for Session {
    fn screen(&self) -> String {
        self.text("return document.body.dataset.screen || ''")
    }

    fn lang(&self) -> String {
        self.text("return document.documentElement.lang")
    }

    /// The technician's gesture: a 3-second press on the top-left corner, then waits for
    /// the PIN pad.
    fn open_pin_pad(&self) {
        let corner = self.record_changes(
            "__corner",
            "document.getElementById('tech-corner')",
            "{attributes: true}",
            "document.getElementById('tech-corner').classList.contains('holding')",
        );
        self.long_press("#tech-corner", Duration::from_millis(3300));
        poll("the PIN pad", WAIT, || {
            let st = self.text("return document.getElementById('tech').dataset.state || ''");
            if st == "pin" { Ok(()) } else { Err(st) }
        });
        // The hold was shown while it counted, and is gone once the pad is open.
        let mut corner: Vec<bool> = corner.read(self);
        corner.dedup();
        assert_eq!(
            corner,
            [true, false],
            "the corner's hold ring: shown, then gone"
        );
    }

    /// Types `pin` on the PIN pad and presses OK; returns `#tech-msg`'s result once the
    /// core's answer arrived (`""` when logged in). The page counts answers in
    /// `#tech-msg[data-seq]`.
    fn enter_pin(&self, pin: &str) -> String {
        let seq = || self.text("return document.getElementById('tech-msg').dataset.seq || '0'");
        let before = seq();
        for d in pin.chars() {
            self.click(&format!("#pinpad button[data-digit='{d}']"));
        }
        self.click("#pin-ok");
        poll("the PIN answer", WAIT, || {
            let now = seq();
            if now != before { Ok(()) } else { Err(now) }
        });
        self.text("return document.getElementById('tech-msg').dataset.result || ''")
    }

    /// Waits until `<body data-screen>` is `screen`.
    fn wait_screen(&self, screen: &str) {
        self.wait_screen_within(screen, WAIT);
    }

    fn wait_screen_within(&self, screen: &str, timeout: Duration) {
        poll(&format!("screen {screen}"), timeout, || {
            let now = self.screen();
            if now == screen { Ok(()) } else { Err(now) }
        });
    }

    /// Waits until the current screen is drawn in `lang`: `<html lang>`, its section shown,
    /// its heading in that script, and what each screen fetches asynchronously present;
    /// then two animation frames, so the screenshot shows it painted.
    fn wait_rendered(&self, lang: &str) {
        const READY: &str = r#"
            const lang = arguments[0];
            const screen = document.body.dataset.screen || '';
            if (document.documentElement.lang !== lang) return 'lang ' + document.documentElement.lang;
            const sec = document.getElementById('screen-' + screen);
            if (!sec || sec.getClientRects().length === 0) return 'section of ' + screen + ' not shown';
            const h = sec.querySelector('h1');
            const title = h ? h.textContent.trim() : '';
            if (!title) return 'empty heading on ' + screen;
            if (/[\u3400-\u9fff]/.test(title) !== (lang === 'zh-CN')) return 'heading not in ' + lang + ': ' + title;
            if (screen === 'idle') {
                const qr = document.getElementById('qr');
                const modules = qr.querySelector('svg path');
                if (!modules || !modules.getAttribute('d') || qr.getBoundingClientRect().width === 0) return 'QR not drawn';
            }
            if (screen === 'failed') {
                const r = sec.querySelector('[data-f=reason_text]');
                if (!r || !r.textContent.trim()) return 'no reason text';
            }
            return 'ok';
        "#;
        poll(&format!("screen drawn in {lang}"), WAIT, || {
            let v = self.js(READY, json!([lang]));
            if v == "ok" {
                Ok(())
            } else {
                Err(v.to_string())
            }
        });
        self.next_frames();
    }

    /// Switches the language with the header button (if needed) and waits until drawn.
    fn set_lang(&self, lang: &str) {
        if self.lang() != lang {
            self.click_delivered("#lang");
        }
        self.wait_rendered(lang);
    }

    /// Saves the current screen, which must be `screen`, in the current language and then
    /// in the other one (switched with the button), as `<name>-<lang>.png`. The screen is
    /// checked again after each shot, so a file is never named after a screen it missed.
    /// Returns how long it took (the hold times must leave a wide margin over it).
    fn shoot_both(&self, screen: &str, name: &str, dir: &Path) -> Duration {
        let started = Instant::now();
        let first = self.lang();
        let second = if first == "zh-CN" { "en" } else { "zh-CN" };
        for lang in [first.as_str(), second] {
            self.set_lang(lang);
            assert_eq!(
                self.screen(),
                screen,
                "screen changed before the {lang} shot"
            );
            self.shot(&dir.join(format!("{name}-{lang}.png")));
            assert_eq!(
                self.screen(),
                screen,
                "screen changed by the end of the {lang} shot ({:?} after the first): \
                 raise DISPENSE_HOLD / RESULT_SECS / FAILED_SECS",
                started.elapsed()
            );
        }
        started.elapsed()
    }

    /// Checks every visible text's contrast (WCAG AA, 4.5:1), then saves a screenshot.
    fn shot(&self, path: &Path) {
        let low: Vec<String> = serde_json::from_value(self.js(LOW_CONTRAST, json!([]))).unwrap();
        assert!(
            low.is_empty(),
            "{}: text under 4.5:1 contrast: {low:#?}",
            path.display()
        );
        self.screenshot(path);
    }

    /// From now on, appends `value` (a JS expression) to `window.<var>` each time
    /// `target` changes as the MutationObserver `options` say.
    fn record_changes(&self, var: &str, target: &str, options: &str, value: &str) -> Recorded {
        self.js(
            &format!(
                "window.{var} = []; \
                 new MutationObserver(() => window.{var}.push({value})).observe({target}, {options}); \
                 return null"
            ),
            json!([]),
        );
        Recorded(var.to_owned())
    }
}

// ---- broker, board, backend -----------------------------------------------------------

/// Broker, simulated board, keys, config and the backend's MQTT client. On failure the
/// directory (kiosk logs, journal, config, driver output) is kept and printed.
struct Rig {
    dir: tempfile::TempDir,
    broker: Broker,
    sim: Simulator,
    key: SigningKey,
    /// The operator's key (`[operator_keys]`), which signs configuration documents.
    operator: SigningKey,
    config: PathBuf,
    backend: Option<Client>,
    next_id: u32,
    rt: tokio::runtime::Runtime,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(|_| {})
    }

    /// A rig whose site config `edit` changes after the defaults are set.
    fn with(edit: impl FnOnce(&mut SiteConfig)) -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start();
        let mut sc = SimConfig::new(Protocol::Vmc);
        sc.link = Some(dir.path().join("board"));
        sc.poll_interval = Duration::from_millis(20);
        sc.motor_time = Duration::from_millis(200);
        let sim = Simulator::start(sc).unwrap();
        let (key, public) = protocol::generate_keypair().unwrap();
        let (operator, operator_public) = protocol::generate_keypair().unwrap();
        std::fs::write(dir.path().join("password"), password("C001")).unwrap();
        let config = dir.path().join("config.toml");
        let mut site =
            SiteConfig::test_cabinet("C001", &broker.url(), &public, dir.path().join("board"))
                .vmc_report_timeout_secs(30)
                .operator_key(OPERATOR_KID, &operator_public)
                .slot(1, "可乐 Cola", 10, 5)
                .slot(2, "矿泉水 Water", 10, 5)
                .technician(
                    TECH_NAME,
                    &cabinet_core::technician::hash_pin(TECH_PIN).unwrap(),
                )
                // Ten minutes: the test sees the lockout refuse the right PIN however slow the
                // machine (a 2 s lockout once ran out before the PIN was typed). It never waits
                // for the end.
                .lockout_secs(600);
        site.kiosk.name = Some(CABINET_NAME.into());
        site.kiosk.take_item_secs = Some(RESULT_SECS);
        site.kiosk.failed_secs = Some(FAILED_SECS);
        // What a site configures for its customers: the operator's https link in the QR
        // code, the apps to scan with, a service phone and a help page.
        site.kiosk.qr_url = Some("https://m.example.com/c/{machine_code}?s={nonce}".into());
        site.kiosk.scan_with = Some(vec![ScanApp::Wechat, ScanApp::Alipay]);
        site.support.phone = Some(SUPPORT_PHONE.into());
        site.support.help_url = Some("https://help.example.com/cabinet/C001".into());
        site.support.nearby = Some("B1 层电梯旁 · B1, by the lifts".into());
        site.commands.session_lifetime_secs = Some(SESSION_SECS);
        site.maintenance.lockout_max_secs = Some(1200);
        edit(&mut site);
        site.write(&config);
        Rig {
            dir,
            broker,
            sim,
            key,
            operator,
            config,
            backend: None,
            next_id: 0,
            rt,
        }
    }

    /// Connects the backend (clean session: call it while the broker stays up) and
    /// subscribes to C001's replies and heartbeats.
    fn connect_backend(&mut self) {
        let mut backend = self.rt.block_on(Client::connect(
            &self.broker,
            "backend-webdriver",
            "backend",
        ));
        self.rt.block_on(async {
            backend.subscribe("cabinet/v1/C001/reply").await;
            backend.subscribe("cabinet/v1/C001/telemetry").await;
        });
        self.backend = Some(backend);
    }

    /// Publishes a configuration document of `version` setting `config`, signed by the
    /// operator, retained on C001's `desired/config`, as the operator's broker user.
    fn push_config(&mut self, version: u64, config: Value) {
        let claims = cabinet_core::config::ConfigClaims {
            kind: "config".into(),
            aud: "C001".into(),
            iat: now_s(),
            version,
            config,
        };
        let token = protocol::sign_document(&claims, &self.operator, OPERATOR_KID).unwrap();
        self.rt.block_on(async {
            let mut operator =
                Client::connect(&self.broker, "operator-webdriver", "operator").await;
            operator
                .publish("cabinet/v1/C001/desired/config", token.as_bytes(), true)
                .await;
        });
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Waits for a heartbeat saying the board answers: before that, a command would be
    /// refused (honestly) with `board_unreachable`.
    fn await_board_ok(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no heartbeat with board ok");
            let m = self.rt.block_on(self.backend.as_mut().unwrap().next());
            let v: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
            if m.topic.ends_with("/telemetry") && v["board"]["ok"] == true {
                return;
            }
        }
    }

    /// Waits for a heartbeat whose inventory shows `slot` holding `count`; returns it.
    fn await_stock(&mut self, slot: u16, count: u32) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "no telemetry with slot {slot} = {count}"
            );
            let m = self.rt.block_on(self.backend.as_mut().unwrap().next());
            let v: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
            if m.topic.ends_with("/telemetry")
                && v["inventory"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|s| s["slot"] == slot && s["count"] == count))
            {
                return v;
            }
        }
    }

    /// Signs and publishes a dispense command for `slot`; returns (cmd_id, log_id).
    fn send_dispense(&mut self, slot: u16) -> (String, String) {
        self.next_id += 1;
        let n = self.next_id;
        let claims = CommandClaims {
            aud: "C001".into(),
            jti: format!("cmd-{n}-{}", now_s()),
            iat: now_s(),
            exp: now_s() + 120,
            kind: "dispense".into(),
            slot,
            qty: 1,
            order_id: format!("order-{n}"),
            log_id: format!("LOG-{n}-{}", now_s() % 100_000),
            session: None,
            count: None,
        };
        let token = protocol::sign_command(&claims, &self.key, "k1").unwrap();
        let backend = self.backend.as_mut().unwrap();
        self.rt
            .block_on(backend.publish("cabinet/v1/C001/cmd", token.as_bytes(), false));
        (claims.jti, claims.log_id)
    }

    /// Waits for the terminal reply for `cmd_id` and asserts its state.
    fn await_terminal(&mut self, cmd_id: &str, expected: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no terminal reply for {cmd_id}");
            let m = self.rt.block_on(self.backend.as_mut().unwrap().next());
            if !m.topic.ends_with("/reply") {
                continue;
            }
            let v: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
            if v["cmd_id"] != cmd_id
                || matches!(v["state"].as_str(), Some("accepted" | "dispensing"))
            {
                continue;
            }
            assert_eq!(v["state"], expected, "terminal reply for {cmd_id}: {v}");
            return v;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // The client's task runs on the runtime: stop it first.
        drop(self.backend.take());
        if std::thread::panicking() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
            eprintln!(
                "test failed; kiosk logs (logs/), journal, config and driver output \
                 (webdriver.log, xvfb.log) kept in {}",
                kept.display()
            );
        }
    }
}

// ---- the tour -------------------------------------------------------------------------

/// The technician's PIN hash as the test config holds it (what must never be shown,
/// logged or exported).
fn pin_hash_in(config: &Path) -> String {
    SiteConfig::read(config).technicians[TECH_NAME].clone()
}

/// Removes this test's pictures from an earlier run.
fn clear_shots(dir: &Path, names: impl IntoIterator<Item = String>) {
    for name in names {
        let _ = std::fs::remove_file(dir.join(format!("{name}.png")));
    }
}

#[test]
fn every_customer_screen_in_the_real_window_in_both_languages() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let shots = screenshots_dir();
    clear_shots(
        &shots,
        SHOTS
            .iter()
            .flat_map(|n| ["zh-CN", "en"].map(|l| format!("{n}-{l}"))),
    );
    let mut rig = Rig::new();
    let phase = |what: &str| eprintln!("[{:>6.2?}] {what}", started.elapsed());

    // --- out of service while starting: the cabinet boots without its broker ------------
    rig.broker.stop();
    let xvfb = Xvfb::start(&rig.path("xvfb.log"));
    let driver = Driver::start(&xvfb.display, &rig.path("webdriver.log"));
    let s = open_app(&driver, &rig.config);
    s.wait_window_up();
    phase("window up");
    s.wait_screen("out_of_service");
    assert_eq!(s.text("return document.body.dataset.oos || ''"), "starting");
    assert_eq!(s.lang(), "zh-CN", "the page starts in Chinese");
    let took = s.shoot_both("out_of_service", "out_of_service-starting", &shots);
    phase(&format!("out_of_service (starting) shot in {took:.1?}"));
    s.set_lang("zh-CN");
    rig.broker.restart();
    rig.connect_backend();

    // --- idle -----------------------------------------------------------------------------
    rig.await_board_ok();
    s.wait_screen("idle");
    phase("idle");
    s.wait_rendered("zh-CN");
    assert_eq!(
        s.text("return document.getElementById('cabinet').textContent.trim()"),
        CABINET_NAME
    );
    // The Chinese names are drawn from the font the app cut for them: the web process
    // never opened the system's CJK file (a few names from it kept ~2.4 MB of its pages).
    names_fonts_loaded(&s);
    no_system_cjk(&driver);
    // An operator renames the cabinet over its own channel while the window runs: the
    // idle screen follows, its new characters drawn from a names font cut again.
    rig.push_config(1, json!({"kiosk": {"name": RENAMED}}));
    poll("the renamed cabinet on screen", WAIT, || {
        let shown = s.text("return document.getElementById('cabinet').textContent.trim()");
        if shown == RENAMED {
            Ok(())
        } else {
            Err(format!("#cabinet says {shown:?}"))
        }
    });
    s.next_frames();
    names_fonts_loaded(&s);
    no_system_cjk(&driver);
    let qr = s.text("return document.querySelector('#qr svg path')?.getAttribute('d') || ''");
    assert!(
        qr.starts_with('M'),
        "the idle QR's modules are drawn inline, got {qr:.40}"
    );
    let slots = s.js(
        "return Array.from(document.querySelectorAll('#items li[data-slot]'), li => li.dataset.slot)",
        json!([]),
    );
    assert_eq!(slots, json!(["1", "2"]), "idle lists the slot map");
    assert!(
        !s.displayed("#demo-scan"),
        "the demo button is hidden outside demo mode"
    );
    let blocked = s.js(
        "const e = new MouseEvent('contextmenu', {bubbles: true, cancelable: true});\
         return !document.body.dispatchEvent(e)",
        json!([]),
    );
    assert_eq!(blocked, true, "the context menu is blocked");
    let took = s.shoot_both("idle", "idle", &shots);
    phase(&format!("idle shot in {took:.1?}"));

    // The app set its WebKit settings (kiosk.webkit_env defaults) for itself, and a second
    // start on the same cabinet is refused before it opens a window.
    let app_pid = app_pid(driver.pid());
    let environ = std::fs::read(format!("/proc/{app_pid}/environ")).unwrap();
    for wanted in ["WEBKIT_DISABLE_DMABUF_RENDERER=1", "JSC_useJIT=0"] {
        assert!(
            environ.split(|b| *b == 0).any(|kv| kv == wanted.as_bytes()),
            "the app runs with {wanted}"
        );
    }
    let second = Command::new(APP)
        .arg("--config")
        .arg(&rig.config)
        .env("DISPLAY", &xvfb.display)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "second instance: {err}");
    assert!(
        err.contains("already running") && err.contains(&app_pid.to_string()),
        "{err}"
    );

    // --- the language lasts the visit ------------------------------------------------------
    // A customer picks English and pays on the phone: the first QR replacement keeps it
    // (the code they scanned is still valid), the one after (that code is dead) ends it.
    // Replacements before the click are recorded in Chinese and skipped.
    s.set_lang("zh-CN");
    // `<html lang>` at every replacement of the idle QR code.
    let qr_langs = s.record_changes(
        "__qrLangs",
        "document.getElementById('qr')",
        "{childList: true}",
        "document.documentElement.lang",
    );
    s.set_lang("en");
    let langs = poll(
        "the language back to zh-CN at a QR replacement",
        WAIT,
        || {
            let all: Vec<String> = qr_langs.read(&s);
            let after_click: Vec<String> = all.into_iter().skip_while(|l| l == "zh-CN").collect();
            if after_click.iter().any(|l| l == "zh-CN") {
                Ok(after_click)
            } else {
                Err(format!("{after_click:?}"))
            }
        },
    );
    let english = langs.iter().take_while(|l| *l == "en").count();
    assert!(
        (1..=2).contains(&english) && langs.get(english).map(String::as_str) == Some("zh-CN"),
        "English kept through one QR replacement (two if one was under way at the click), \
         then zh-CN: {langs:?}"
    );
    s.wait_rendered("zh-CN");
    phase("the language outlived a QR replacement and ended with its code");

    // --- dispensing -> take_item -----------------------------------------------------------
    let motors = rig.sim.stats().motor_actions;
    rig.sim.set_fault(Fault::SlowReply(DISPENSE_HOLD));
    let (cmd1, _) = rig.send_dispense(1);
    s.wait_screen("dispensing");
    let took = s.shoot_both("dispensing", "dispensing", &shots);
    phase(&format!("dispensing shot in {took:.1?}"));
    s.wait_screen_within("take_item", DISPENSE_HOLD + WAIT);
    rig.sim.clear_faults();
    let took = s.shoot_both("take_item", "take_item", &shots);
    phase(&format!("take_item shot in {took:.1?}"));
    assert!(
        rig.sim
            .wait_until(WAIT, |st| st.motor_actions == motors + 1),
        "the motor ran once"
    );
    rig.await_terminal(&cmd1, "succeeded");
    assert_eq!(rig.sim.stats().motor_actions, motors + 1, "and only once");
    // End the session in English: back at idle the page must be Chinese again.
    s.set_lang("en");
    s.wait_screen("idle");
    s.wait_rendered("zh-CN");
    phase("idle again, in zh-CN");

    // --- failed (jammed) -------------------------------------------------------------------
    rig.sim.set_fault(Fault::Jam);
    let (cmd2, log2) = rig.send_dispense(2);
    s.wait_screen("failed");
    let code = s.text(
        "const c = document.querySelector('.support .code'); return c ? c.textContent.trim() : ''",
    );
    let expected = cabinet_core::support::code(&cmd2);
    assert_eq!(code, expected, "the support code is the command's ({log2})");
    let help = s.js(
        "const sec = document.getElementById('screen-failed');         const svg = sec.querySelector('.help-qr svg');         return [sec.querySelector('.phone').textContent, svg ? svg.getBoundingClientRect().width : 0]",
        json!([]),
    );
    assert!(
        help[0].as_str().is_some_and(|p| p.contains(SUPPORT_PHONE)) && help[1].as_f64() > Some(0.0),
        "the operator's phone and help page's QR code beside the code: {help}"
    );
    let took = s.shoot_both("failed", "failed", &shots);
    phase(&format!("failed shot in {took:.1?}"));
    rig.await_terminal(&cmd2, "failed");
    rig.sim.clear_faults();
    // A next order while the failure is still on screen is a next customer: the language
    // chosen on the failed screen does not carry over, though no idle screen comes between.
    s.set_lang("en");
    // `<screen>:<lang>` at every screen change.
    // `<screen>:<lang>:<the earlier failure's strip>` at every screen change.
    let screens = s.record_changes(
        "__screens",
        "document.body",
        "{attributes: true, attributeFilter: ['data-screen']}",
        "document.body.dataset.screen + ':' + document.documentElement.lang + ':' \
         + (document.getElementById('earlier').hidden ? '' : document.getElementById('earlier').textContent)",
    );
    let (cmd3, _) = rig.send_dispense(1);
    rig.await_terminal(&cmd3, "succeeded");
    let screens: Vec<String> = screens.read(&s);
    let first = screens.first().map(String::as_str).unwrap_or_default();
    assert!(
        first.starts_with("dispensing:zh-CN:") || first.starts_with("take_item:zh-CN:"),
        "the next order's first screen, in zh-CN, with no idle before it: {screens:?}"
    );
    // It took the screen from the failure, but the failure's code stays in sight.
    assert!(
        first.ends_with(&expected),
        "the next order's screen carries the failure's code {expected}: {screens:?}"
    );
    s.wait_screen("idle");
    s.wait_rendered("zh-CN");
    phase("a next order in zh-CN, then idle");

    // --- out of service: the broker goes away ----------------------------------------------
    rig.broker.stop();
    s.wait_screen("out_of_service");
    assert_eq!(
        s.text("return document.body.dataset.oos || ''"),
        "broker_down"
    );
    let took = s.shoot_both("out_of_service", "out_of_service", &shots);
    phase(&format!("out_of_service (broker_down) shot in {took:.1?}"));
    s.set_lang("en");
    rig.broker.restart();
    s.wait_screen("idle");
    s.wait_rendered("zh-CN");
    phase("idle after the broker came back, in zh-CN");
    // Through every screen of an order, in both languages: still nothing from the
    // system's CJK file.
    no_system_cjk(&driver);

    drop(s);
    drop(driver);
    drop(xvfb);
    eprintln!(
        "screenshots in {} ({:.1?} in all)",
        shots.display(),
        started.elapsed()
    );
}

/// `make demo`'s window: the embedded broker, simulated board and demo key come up by
/// themselves; "simulate scan" plays a customer and the motor count on screen goes up by
/// one through dispensing and take-your-item. Its controls unplug the board and drop the
/// broker (out of service, then back), jam the motors (a failure with a support code),
/// and its technician gets in with the PIN the controls show. Only with the `demo`
/// feature (`make test` runs it in a pass of its own: the shipped app has no demo).
#[cfg(feature = "demo")]
#[test]
fn the_demo_window_dispenses_breaks_and_mends_and_lets_its_technician_in() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let shots = screenshots_dir();
    clear_shots(&shots, DEMO_SHOTS.map(String::from));
    let demo = DemoWindow::open("vending");
    let s = &demo.s;
    s.wait_rendered("zh-CN");
    s.shot(&shots.join(format!("{}.png", DEMO_SHOTS[0])));

    s.click("#demo-scan");
    s.wait_screen("dispensing");
    s.wait_screen("take_item");
    demo.await_count("1");
    s.wait_rendered("zh-CN");
    s.shot(&shots.join(format!("{}.png", DEMO_SHOTS[1])));
    let journal = demo.dir.join("journal.sqlite3");
    assert!(
        journal.exists(),
        "the demo journals to {}",
        journal.display()
    );
    s.wait_screen("idle");

    // The demo's controls: its technician's PIN, and three things to break and mend.
    s.click("#demo-open");
    poll("the demo controls", WAIT, || {
        let t = s.text("return document.getElementById('demo-tech').textContent");
        if s.displayed("#demo-panel") && t.contains(cabinet_demo::TECHNICIAN_PIN) {
            Ok(())
        } else {
            Err(t)
        }
    });
    s.next_frames();
    s.shot(&shots.join(format!("{}.png", DEMO_SHOTS[2])));
    let toggle = |fault: &str, on: bool| {
        s.click(&format!("#demo-panel [data-fault='{fault}']"));
        let want = if on { "1" } else { "0" };
        poll(&format!("{fault} {want}"), WAIT, || {
            let v = s.text(&format!(
                "return document.querySelector(\"#demo-panel [data-fault='{fault}']\").dataset.on"
            ));
            if v == want { Ok(()) } else { Err(v) }
        });
    };
    let oos_for = |why: &str| {
        s.wait_screen("out_of_service");
        assert_eq!(s.text("return document.body.dataset.oos || ''"), why);
    };
    toggle("unplug", true);
    oos_for("board_down");
    toggle("unplug", false);
    s.wait_screen("idle");
    toggle("broker", true);
    oos_for("broker_down");
    toggle("broker", false);
    s.wait_screen("idle");

    // Jammed motors: the next scan fails with a short support code.
    toggle("jam", true);
    s.click("#demo-close");
    s.click("#demo-scan");
    s.wait_screen("failed");
    let code = s.text("return document.querySelector('.support .code').textContent");
    assert!(
        cabinet_core::support::parse(&code).as_deref() == Some(code.as_str()),
        "a support code on the failure screen: {code:?}"
    );
    s.wait_rendered("zh-CN");
    s.shot(&shots.join(format!("{}.png", DEMO_SHOTS[3])));
    // The demo technician gets in with the PIN the demo shows (and out again).
    s.open_pin_pad();
    assert_eq!(s.enter_pin(cabinet_demo::TECHNICIAN_PIN), "");
    s.wait_screen("out_of_service");
    s.click("#tech-logout");
}

/// The demo's locker wall (three lock boards on one simulated RS-485 bus): a scan opens a
/// door and the wall counts it; with the middle board's power cut, the technician's panel
/// shows that board down and its doors "board not answering" while the others stay up,
/// the slot table names each slot's board, the frames tab shows one board's frames; and
/// back in service the wall still sells from the boards that answer.
#[cfg(feature = "demo")]
#[test]
fn the_demo_wall_sells_and_its_panel_shows_each_board_and_the_one_without_power() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let shots = screenshots_dir();
    clear_shots(&shots, WALL_SHOTS.map(String::from));
    let demo = DemoWindow::open("wall");
    let s = &demo.s;
    // A scan opens a door of the wall (slot 1, wall-1's channel 1).
    s.click("#demo-scan");
    s.wait_screen("take_item");
    demo.await_count("1");
    s.wait_screen("idle");

    // Cut wall-2's power from the demo controls (the button only the wall has).
    s.click("#demo-open");
    poll("the wall's power control", WAIT, || {
        if s.displayed("#demo-panel [data-fault='power_off']") {
            Ok(())
        } else {
            Err("hidden".into())
        }
    });
    s.click("#demo-panel [data-fault='power_off']");
    poll("wall-2 without power", WAIT, || {
        let v = s.text(
            "return document.querySelector(\"#demo-panel [data-fault='power_off']\").dataset.on",
        );
        if v == "1" { Ok(()) } else { Err(v) }
    });
    s.click("#demo-close");

    // The technician's health tab: a line a board, wall-2 down, the others up.
    s.open_pin_pad();
    assert_eq!(s.enter_pin(cabinet_demo::TECHNICIAN_PIN), "");
    let ups = || {
        s.text(
            "return [...document.querySelectorAll('#boards tr[data-board]')]\
             .map(r => r.dataset.board + '=' + r.dataset.up).join(' ')",
        )
    };
    poll("wall-2 down on the health tab", WAIT, || {
        let v = ups();
        if v == "wall-1=1 wall-2=0 wall-3=1" {
            Ok(())
        } else {
            Err(v)
        }
    });
    s.next_frames();
    s.shot(&shots.join(format!("{}.png", WALL_SHOTS[0])));

    // Slots: each names its board; wall-2's doors are the ones not answering; the door
    // sold above holds nothing now, and a door holds one.
    s.click("#tech-tabs button[data-tab='slots']");
    let row = |slot: u16| {
        s.js(
            "const r = document.querySelector(`#slots tr[data-slot='${arguments[0]}']`);\
             return r ? [...r.children].map(td => td.dataset.state || td.textContent) : null;",
            json!([slot]),
        )
    };
    poll("the wall's slot table", WAIT, || {
        let (one, five, nine) = (row(1), row(5), row(9));
        let ok = one.get(2) == Some(&json!("wall-1"))
            && one.get(3) == Some(&json!("0 / 1"))
            && five.get(2) == Some(&json!("wall-2"))
            && five.get(4) == Some(&json!("unreachable"))
            && nine.get(2) == Some(&json!("wall-3"))
            && nine.get(4) == Some(&json!("ok"));
        if ok {
            Ok(())
        } else {
            Err(format!("{one} {five} {nine}"))
        }
    });
    s.next_frames();
    s.shot(&shots.join(format!("{}.png", WALL_SHOTS[1])));

    // Frames: a button a board; choosing wall-3 shows only wall-3's frames.
    s.click("#tech-tabs button[data-tab='frames']");
    poll("a board button each on the frames tab", WAIT, || {
        let v = s.text(
            "return [...document.querySelectorAll('#frame-boards button')]\
             .map(b => b.dataset.board).join(',')",
        );
        if v == ",wall-1,wall-2,wall-3" {
            Ok(())
        } else {
            Err(v)
        }
    });
    s.click("#frame-boards button[data-board='wall-3']");
    poll("only wall-3's frames", WAIT, || {
        let v = s.text(
            "const rows = [...document.querySelectorAll('#frames tr')];\
             return rows.length + ':' + [...new Set(rows.map(r => r.dataset.board))].join(',')",
        );
        if v != "0:" && v.ends_with(":wall-3") {
            Ok(())
        } else {
            Err(v)
        }
    });

    // Back in service, the wall still sells (wall-1's next door).
    s.click("#tech-logout");
    s.wait_screen("idle");
    s.click("#demo-scan");
    s.wait_screen("take_item");
    demo.await_count("2");
    // A customer brings a rental back: the door just emptied opens for it.
    s.wait_screen("idle");
    s.click("#demo-return");
    s.wait_screen("put_back");
    let title = s.text("return document.querySelector('#screen-put_back h1').textContent");
    assert!(title.contains("2 号柜门"), "{title}");
    demo.await_count("3");
}

/// The demo's window (`--demo --demo-layout LAYOUT`) on an Xvfb of its own, in service
/// and ready to scan. Dropped in field order: the window, the driver, the display, then
/// the directory (kept and printed when the test fails).
#[cfg(feature = "demo")]
struct DemoWindow {
    s: Session,
    _driver: Driver,
    _xvfb: Xvfb,
    /// The demo's directory (config, journal, logs).
    dir: PathBuf,
    _keep: KeepOnPanic,
}

#[cfg(feature = "demo")]
impl DemoWindow {
    fn open(layout: &str) -> DemoWindow {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("cabinet-demo-{layout}-"))
            .tempdir()
            .unwrap();
        let keep = KeepOnPanic(Some(tmp));
        let base = keep.0.as_ref().unwrap().path().to_path_buf();
        let dir = base.join("demo");
        let xvfb = Xvfb::start(&base.join("xvfb.log"));
        let driver = Driver::start(&xvfb.display, &base.join("webdriver.log"));
        let s = open_app_with(
            &driver,
            &[
                "--demo",
                "--demo-dir",
                dir.to_str().unwrap(),
                "--demo-layout",
                layout,
            ],
        );
        s.wait_window_up();
        let w = DemoWindow {
            s,
            _driver: driver,
            _xvfb: xvfb,
            dir,
            _keep: keep,
        };
        // In service (idle: broker and board up), the scan button and the counter shown.
        poll("the demo ready to scan", WAIT, || {
            let c = w.count();
            if w.s.screen() == "idle" && w.s.displayed("#demo-scan") && c == "0" {
                Ok(())
            } else {
                Err(format!("screen={} count={c:?}", w.s.screen()))
            }
        });
        w
    }

    /// What the screen's counter of motor runs (or door openings) says.
    fn count(&self) -> String {
        self.s
            .text("return document.getElementById('demo-count').dataset.count || ''")
    }

    fn await_count(&self, want: &str) {
        poll(&format!("the demo's counter at {want}"), WAIT, || {
            let c = self.count();
            if c == want { Ok(()) } else { Err(c) }
        });
    }
}

/// Keeps the directory (and prints it) when the test fails.
#[cfg(feature = "demo")]
struct KeepOnPanic(Option<tempfile::TempDir>);

#[cfg(feature = "demo")]
impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("kept for inspection: {}", dir.keep().display());
        }
    }
}

/// The technician's way in: a 3-second press on the top-left corner opens the PIN pad;
/// the right PIN puts the cabinet in maintenance, where customer commands are refused;
/// logging out returns it to service; then five wrong PINs lock entry, and even the right
/// PIN is refused. Every step is in the journal's audit table, and neither the PIN nor its
/// hash reaches a log file. The lockout lasts ten minutes here, so no machine is too slow
/// to see it; that the right PIN opens once it ends is checked where the test does not
/// wait for a clock (cabinet-core: the gate's unit tests and tests/technician.rs).
#[test]
fn a_technician_gets_in_with_the_right_pin_only_and_the_cabinet_pauses_meanwhile() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let shots = screenshots_dir();
    clear_shots(&shots, TECH_SHOTS.map(String::from));
    let mut rig = Rig::new();
    rig.connect_backend();
    let xvfb = Xvfb::start(&rig.path("xvfb.log"));
    let driver = Driver::start(&xvfb.display, &rig.path("webdriver.log"));
    let s = open_app(&driver, &rig.config);
    s.wait_window_up();
    rig.await_board_ok();
    s.wait_screen("idle");
    let tech_state = || s.text("return document.getElementById('tech').dataset.state || ''");

    // A short press does nothing; a 3-second one opens the PIN pad.
    s.long_press("#tech-corner", Duration::from_millis(300));
    s.next_frames();
    assert_eq!(tech_state(), "", "a short press must not open the PIN pad");
    s.open_pin_pad();
    s.wait_rendered("zh-CN");
    // The technicians' names too come from the names font.
    assert!(
        s.text("return document.getElementById('tech').textContent")
            .contains(TECH_NAME),
        "the PIN pad names the technician"
    );
    no_system_cjk(&driver);
    s.shot(&shots.join(format!("{}.png", TECH_SHOTS[0])));

    assert_eq!(s.enter_pin(TECH_PIN), "", "the right PIN opens");
    assert_eq!(tech_state(), "in");
    s.wait_screen("out_of_service");
    assert_eq!(
        s.text("return document.body.dataset.oos || ''"),
        "maintenance"
    );
    // The live health, from the core (refreshed every 2 s while the panel is open).
    poll("the diagnostics table", WAIT, || {
        let t = s.text("return document.getElementById('diag').textContent");
        if t.contains("cabinet/v1/C001/cmd") && t.contains("售货机主板（VMC）") {
            Ok(())
        } else {
            Err(t)
        }
    });
    s.wait_rendered("zh-CN");
    s.shot(&shots.join(format!("{}.png", TECH_SHOTS[2])));
    let page = s.text("return document.documentElement.outerHTML");
    let pin_hash = pin_hash_in(&rig.config);
    assert!(!page.contains(&pin_hash), "the PIN hash is on the screen");
    assert!(
        !page.contains(password("C001")),
        "the broker password is on the screen"
    );

    // A customer's command while the technician is in: refused, no motor.
    let motors = rig.sim.stats().motor_actions;
    let (cmd, _) = rig.send_dispense(1);
    let reply = rig.await_terminal(&cmd, "rejected");
    assert_eq!(reply["reason"], "maintenance", "{reply}");
    assert_eq!(rig.sim.stats().motor_actions, motors);

    s.click("#tech-logout");
    s.wait_screen("idle");
    assert_eq!(tech_state(), "");

    // Five wrong PINs lock entry; while locked, even the right PIN is refused.
    s.open_pin_pad();
    for left in (1..5).rev() {
        assert_eq!(s.enter_pin("0000"), "wrong", "{left} tries left");
        let msg = s.text("return document.getElementById('tech-msg').textContent");
        assert!(msg.contains(&left.to_string()), "{msg}");
    }
    assert_eq!(s.enter_pin("1111"), "locked", "the fifth wrong PIN locks");
    s.shot(&shots.join(format!("{}.png", TECH_SHOTS[1])));
    assert_eq!(
        s.enter_pin(TECH_PIN),
        "locked",
        "while locked, even the right PIN is refused"
    );
    assert_eq!(tech_state(), "pin", "still on the PIN pad");
    drop(s);

    // The audit trail, and no secret in the logs.
    let journal = cabinet_core::journal::Journal::open(&rig.path("journal.sqlite3")).unwrap();
    let actions: Vec<String> = journal
        .recent_audit(100)
        .unwrap()
        .into_iter()
        .rev()
        .map(|a| {
            assert_eq!(a.technician, TECH_NAME);
            a.action
        })
        .collect();
    let expected: Vec<String> = ["login", "logout"]
        .into_iter()
        .chain(std::iter::repeat_n("failed_pin", 5))
        .chain(["locked_out"])
        .map(String::from)
        .collect();
    assert_eq!(actions, expected);
    let logs = std::fs::read_dir(rig.path("logs"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(logs.contains("technician logged in"), "the login is logged");
    assert!(!logs.contains(&pin_hash), "the PIN hash reached a log");
    assert!(
        !logs.contains(password("C001")),
        "the broker password reached a log"
    );
    assert!(!logs.contains(TECH_PIN), "the PIN reached a log");
}

/// The diagnostics views against the simulator: a slot test runs the motor once and
/// shows the board's outcome; a restock reaches the backend as telemetry; a customer's
/// support code finds its command; the frame console shows the serial exchange; the
/// export writes a bundle without secrets; every action is audited with the technician's
/// name; and "close the app" is a technician action that ends the process.
#[test]
fn a_technician_tests_a_slot_restocks_finds_a_command_and_exports_a_bundle() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let shots = screenshots_dir();
    clear_shots(&shots, VIEW_SHOTS.map(String::from));
    let mut rig = Rig::new();
    rig.connect_backend();
    let xvfb = Xvfb::start(&rig.path("xvfb.log"));
    let driver = Driver::start(&xvfb.display, &rig.path("webdriver.log"));
    let s = open_app(&driver, &rig.config);
    s.wait_window_up();
    rig.await_board_ok();
    s.wait_screen("idle");
    let app = app_pid(driver.pid());

    // A customer's command first: its log id is the support code the technician searches.
    let (cmd, log_id) = rig.send_dispense(2);
    rig.await_terminal(&cmd, "succeeded");
    s.wait_screen("take_item");

    s.open_pin_pad();
    assert_eq!(s.enter_pin(TECH_PIN), "");
    let result_seq = || s.text("return document.getElementById('tech-result').dataset.seq || '0'");
    let after = |before: String| {
        poll("the technician's action to finish", WAIT, || {
            let now = result_seq();
            if now != before { Ok(()) } else { Err(now) }
        })
    };

    // Slots: a test run of slot 1.
    s.click("#tech-tabs button[data-tab='slots']");
    poll("the slot table", WAIT, || {
        let n = s.js(
            "return document.querySelectorAll('#slots tr[data-slot]').length",
            json!([]),
        );
        if n == json!(2) {
            Ok(())
        } else {
            Err(n.to_string())
        }
    });
    let motors = rig.sim.stats().motor_actions;
    let before = result_seq();
    // A slot is a line; tapping it chooses it for the bar above the list.
    s.click("#slots tr[data-slot='1'] td:nth-child(2)");
    s.click("#slot-bar button[data-op='test']");
    after(before);
    assert_eq!(
        s.text("return document.getElementById('tech-result').dataset.outcome || ''"),
        "dispensed"
    );
    assert_eq!(
        rig.sim.stats().motor_actions,
        motors + 1,
        "the slot test ran the motor once"
    );

    // Restock slot 2 (5 at start, one sold above) to 9 with the bar's buttons (no
    // keyboard on a kiosk): fill up to its capacity of 10, one less. The backend hears.
    s.click("#slots tr[data-slot='2'] td:nth-child(2)");
    s.click("#slot-bar button[data-op='fill']");
    s.click("#slot-bar button[data-op='minus']");
    assert_eq!(
        s.text("return document.getElementById('slot-count').dataset.value"),
        "9"
    );
    let before = result_seq();
    s.click("#slot-bar button[data-op='save']");
    after(before);
    let telemetry = rig.await_stock(2, 9);
    // The technician's action reaches the backend with the same telemetry message.
    let audit = telemetry["audit"].as_array().cloned().unwrap_or_default();
    assert!(
        audit
            .iter()
            .any(|a| a["action"] == "restock" && a["technician"] == TECH_NAME),
        "{telemetry}"
    );
    s.wait_rendered("zh-CN");
    s.shot(&shots.join(format!("{}.png", VIEW_SHOTS[0])));

    // Commands: find the customer's command by its support code, typed on the on-screen
    // keyboard as a technician would (no keyboard on a kiosk), without its dash and with
    // a letter O for each zero (a customer reading it out): still the one command.
    s.click("#tech-tabs button[data-tab='commands']");
    let code = cabinet_core::support::code(&cmd);
    let typed: String = code
        .chars()
        .filter(|c| *c != '-')
        .map(|c| if c == '0' { 'O' } else { c })
        .collect();
    for key in typed.chars() {
        s.click(&format!("#osk button[data-key='{key}']"));
    }
    assert_eq!(
        s.text("return document.getElementById('cmd-log-id').value"),
        typed
    );
    s.click("#cmd-search button[type='submit']");
    let found = |what: &str, want: Value| {
        poll(what, WAIT, || {
            let rows = s.js(
                "return Array.from(document.querySelectorAll('#commands tr'), r => [r.dataset.code, r.dataset.logId])",
                json!([]),
            );
            if rows == want {
                Ok(())
            } else {
                Err(rows.to_string())
            }
        })
    };
    found(
        "the command found by its support code",
        json!([[code, log_id]]),
    );
    // A log id from the backend's side finds it too.
    s.js(
        "document.getElementById('cmd-log-id').value = arguments[0]",
        json!([log_id]),
    );
    s.click("#cmd-search button[type='submit']");
    found("the command found by its log id", json!([[code, log_id]]));
    s.shot(&shots.join(format!("{}.png", VIEW_SHOTS[1])));

    // Frames: the serial exchange, decoded.
    s.click("#tech-tabs button[data-tab='frames']");
    poll("serial frames", WAIT, || {
        let t = s.text("return document.getElementById('frames').textContent");
        if t.contains("fa fb") { Ok(()) } else { Err(t) }
    });
    s.shot(&shots.join(format!("{}.png", VIEW_SHOTS[2])));

    // Export to a "USB stick". Its path can be typed on the panel's own keyboard
    // (lower case, ⇧ for upper case); the test's temporary one is then set directly.
    let usb = tempfile::tempdir().unwrap();
    s.click("#tech-tabs button[data-tab='export']");
    s.js(
        "document.getElementById('export-dir').value = ''",
        json!([]),
    );
    for key in ["/", "m", "n", "t", "/", "⇧", "U", "S", "B", "⇧", "1"] {
        s.click(&format!("#osk-path button[data-key='{key}']"));
    }
    assert_eq!(
        s.text("return document.getElementById('export-dir').value"),
        "/mnt/USB1"
    );
    s.js(
        "document.getElementById('export-dir').value = arguments[0]",
        json!([usb.path().to_str().unwrap()]),
    );
    s.click("#export-form button[type='submit']");
    let bundle = poll("the bundle", WAIT, || {
        let p = s.text("return document.getElementById('export-result').dataset.path || ''");
        if p.is_empty() {
            Err(s.text("return document.getElementById('tech-result').textContent"))
        } else {
            Ok(p)
        }
    });
    s.shot(&shots.join(format!("{}.png", VIEW_SHOTS[4])));
    let bundle = PathBuf::from(bundle);
    assert!(bundle.starts_with(usb.path()), "{}", bundle.display());
    let mut everything = String::new();
    for name in [
        "diagnostics.json",
        "config.json",
        "journal.json",
        "frames.json",
    ] {
        let text =
            std::fs::read_to_string(bundle.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        everything.push_str(&text);
    }
    assert!(
        everything.contains(&log_id),
        "the journal extract has the command"
    );
    assert!(
        everything.contains("[redacted]"),
        "the config's PIN hash is redacted"
    );
    let logs: Vec<_> = std::fs::read_dir(bundle.join("logs"))
        .unwrap()
        .flatten()
        .collect();
    assert!(!logs.is_empty(), "the bundle has the log files");
    for l in &logs {
        everything.push_str(&std::fs::read_to_string(l.path()).unwrap());
    }
    let pin_hash = pin_hash_in(&rig.config);
    assert!(
        !everything.contains(&pin_hash),
        "the PIN hash is in the bundle"
    );
    assert!(
        !everything.contains(password("C001")),
        "the broker password is in the bundle"
    );
    assert!(!everything.contains(TECH_PIN), "the PIN is in the bundle");

    // Audit: every action, by name.
    s.click("#tech-tabs button[data-tab='audit']");
    poll("the audit view", WAIT, || {
        let actions = s.js(
            "return Array.from(document.querySelectorAll('#audit tr'), r => r.dataset.action)",
            json!([]),
        );
        let want = json!(["export", "restock", "slot_test", "login"]);
        if actions == want {
            Ok(())
        } else {
            Err(actions.to_string())
        }
    });
    // The details in the panel's language, not the journal's English text (which
    // telemetry carries for the backend: "slot 2: 4 -> 9").
    let details = s.js(
        "return Array.from(document.querySelectorAll('#audit tr'), r => r.cells[3].textContent)",
        json!([]),
    );
    assert_eq!(details[1], "货道 2：4 → 9", "{details}");
    assert_eq!(details[2], "货道 1：已出货", "{details}");
    s.shot(&shots.join(format!("{}.png", VIEW_SHOTS[3])));

    // Closing the app is a technician action that takes two taps: the first only arms
    // it; after the second the process ends.
    let label = || s.text("return document.getElementById('tech-exit').textContent");
    let first = label();
    s.click("#tech-exit");
    poll("the exit button armed", WAIT, || {
        let now = label();
        if now != first { Ok(()) } else { Err(now) }
    });
    assert!(
        std::fs::read_to_string(format!("/proc/{app}/stat")).is_ok_and(|st| !st.contains(") Z ")),
        "one tap closes nothing"
    );
    s.click("#tech-exit");
    poll("the app to exit", WAIT, || {
        if std::path::Path::new(&format!("/proc/{app}")).exists()
            && !std::fs::read_to_string(format!("/proc/{app}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
        {
            Err("still running".to_owned())
        } else {
            Ok(())
        }
    });
    let journal = cabinet_core::journal::Journal::open(&rig.path("journal.sqlite3")).unwrap();
    let last = journal.recent_audit(1).unwrap();
    assert_eq!(last[0].action, "exit");
    assert_eq!(last[0].technician, TECH_NAME);
}

/// A journal lost between two runs (its witness names a journal that is gone): the
/// window says out of service at once; the technician's health tab says why and takes
/// two taps to confirm a fresh start, which is audited, and the QR code comes back.
/// Every line the kiosk logged so far (all of its daily files in the rig's `logs/`).
fn kiosk_log(rig: &Rig) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(rig.path("logs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        all += &std::fs::read_to_string(entry.path()).unwrap_or_default();
    }
    all
}

/// The kiosk on an 800×480 screen under `wm`, at its idle screen: the rig, the screen, the
/// window manager, the driver, the page, and the kiosk's X window id.
fn kiosk_under(wm: Wm) -> (Rig, Xvfb, WindowManager, Driver, Session, String) {
    let rig = Rig::new();
    let xvfb = Xvfb::start_sized(&rig.path("xvfb.log"), 800, 480);
    let manager = WindowManager::start(wm, &xvfb.display, &rig.path("wm.log"));
    let driver = Driver::start(&xvfb.display, &rig.path("webdriver.log"));
    let s = open_app(&driver, &rig.config);
    s.wait_screen("idle");
    let window = poll(
        "the window manager manages the kiosk's window",
        WAIT,
        || {
            let list = x_property(&xvfb.display, "-root", "_NET_CLIENT_LIST");
            list.split(['#', ','])
                .skip(1)
                .map(str::trim)
                .find(|id| x_property(&xvfb.display, id, "_NET_WM_NAME").contains("Cabinet Kiosk"))
                .map(str::to_owned)
                .ok_or(list)
        },
    );
    (rig, xvfb, manager, driver, s, window)
}

#[test]
fn a_window_manager_that_reads_hints_offers_no_minimise_close_or_move() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_rig, xvfb, _wm, _driver, _s, window) = kiosk_under(Wm::Metacity);
    // What the window manager offers on the window (its menu, Alt+Space, its keys).
    let allowed = poll("the window manager says what it offers", WAIT, || {
        let a = x_property(&xvfb.display, &window, "_NET_WM_ALLOWED_ACTIONS");
        if a.contains("_NET_WM_ACTION") {
            Ok(a)
        } else {
            Err(a)
        }
    });
    for action in ["MINIMIZE", "CLOSE", "MOVE", "RESIZE"] {
        assert!(
            !allowed.contains(&format!("_NET_WM_ACTION_{action}")),
            "the window manager offers {action}: {allowed}"
        );
    }
}

#[test]
fn a_window_manager_that_minimises_anyway_sees_the_window_come_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (rig, xvfb, _wm, _driver, s, window) = kiosk_under(Wm::Openbox);
    // What a script or a task bar asks (ICCCM's WM_CHANGE_STATE), and Openbox does.
    let st = Command::new(system_tool("xdotool", "xdotool"))
        .args(["windowminimize", &window])
        .env("DISPLAY", &xvfb.display)
        .status()
        .unwrap();
    assert!(st.success(), "xdotool windowminimize: {st}");
    poll("the kiosk sees it was minimised", WAIT, || {
        if kiosk_log(&rig).contains("the window was minimised") {
            Ok(())
        } else {
            Err("not in the kiosk's log".to_owned())
        }
    });
    poll("the window is back on the screen", WAIT, || {
        let state = x_property(&xvfb.display, &window, "WM_STATE");
        if state.contains("Normal") {
            Ok(())
        } else {
            Err(state)
        }
    });
    assert_eq!(s.screen(), "idle", "the page carries on");
}

#[test]
fn a_lost_journal_is_out_of_service_until_a_technician_confirms_a_fresh_start() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = Rig::new();
    rig.connect_backend();
    let journal_path = rig.path("journal.sqlite3");
    {
        let j = cabinet_core::journal::Journal::open(&journal_path).unwrap();
        cabinet_core::witness::write(&rig.path("journal.sqlite3.witness"), &j).unwrap();
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", journal_path.display()));
    }
    let xvfb = Xvfb::start(&rig.path("xvfb.log"));
    let driver = Driver::start(&xvfb.display, &rig.path("webdriver.log"));
    let s = open_app(&driver, &rig.config);
    s.wait_window_up();
    s.wait_screen("out_of_service");
    assert_eq!(
        s.text("return document.body.dataset.oos || ''"),
        "journal_unverified"
    );

    s.open_pin_pad();
    assert_eq!(s.enter_pin(TECH_PIN), "", "the right PIN opens");
    let loss = || {
        s.text("return document.getElementById('journal-loss').hidden ? '' : document.getElementById('journal-loss-text').textContent")
    };
    let why = poll("the journal's loss on the health tab", WAIT, || {
        let t = loss();
        // In the panel's language (the core's English is for logs and telemetry).
        if t.contains("日志库文件不见了") {
            Ok(t)
        } else {
            Err(t)
        }
    });
    assert!(!why.is_empty());
    let label = || s.text("return document.getElementById('confirm-fresh').textContent");
    let first = label();
    s.click("#confirm-fresh");
    assert_ne!(label(), first, "the first tap only arms the confirmation");
    assert_eq!(
        s.text("return document.body.dataset.oos || ''"),
        "journal_unverified",
        "one tap confirms nothing"
    );
    s.click("#confirm-fresh");
    poll("the loss gone from the health tab", WAIT, || {
        let t = loss();
        if t.is_empty() { Ok(()) } else { Err(t) }
    });
    s.click("#tech-logout");
    // In service again (tokens issued before the confirmation stay refused: engine
    // tests cover that rule).
    s.wait_screen("idle");
    drop(s);

    let journal = cabinet_core::journal::Journal::open(&journal_path).unwrap();
    let confirmed = journal
        .recent_audit(20)
        .unwrap()
        .into_iter()
        .find(|a| a.action == "journal_fresh_start")
        .expect("the confirmation is audited");
    assert_eq!(confirmed.technician, TECH_NAME);
}

// ---- every screen at every panel size -------------------------------------------------

/// The panel sizes cabinets ship with: 7" and 10" landscape panels, a laptop-class one,
/// a landscape monitor, and the portrait totem this app was first drawn for.
const SIZES: [(u32, u32); 5] = [
    (800, 480),
    (1024, 600),
    (1280, 800),
    (1920, 1080),
    (1080, 1920),
];

/// The smallest a control may be: a fingertip (WCAG 2.5.5's 44 CSS px).
const MIN_TOUCH_PX: u32 = 44;

/// The smallest QR code a phone reads from arm's length on every panel here.
const MIN_QR_PX: u32 = 160;

/// Everything on screen that does not fit, as `what: why`: an element's box outside the
/// window; an element that clips or scrolls its content (text cut off, or essentials a
/// customer would have to scroll to), except the lists marked `data-scroll`, which may
/// scroll up and down but not sideways and must themselves fit; a button smaller than a
/// fingertip (`arguments[0]` px). SVG internals are the QR code's modules, judged as one
/// box.
const OVERFLOW: &str = r#"
const minTouch = arguments[0];
const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
const name = (el) => {
  const cls = typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).join('.') : '';
  const text = (el.textContent || '').trim().slice(0, 24);
  return `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${cls}${text ? ' "' + text + '"' : ''}`;
};
const bad = [];
for (const el of document.querySelectorAll('body, body *')) {
  if (el.getClientRects().length === 0) continue;
  const st = getComputedStyle(el);
  if (st.visibility !== 'visible') continue;
  if (el.parentElement && el.parentElement.closest('svg')) continue;
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  const inList = el.parentElement && el.parentElement.closest('[data-scroll]');
  if (!inList && (r.left < -1 || r.top < -1 || r.right > vw + 1 || r.bottom > vh + 1)) {
    bad.push(`${name(el)}: box ${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.width)}x${Math.round(r.height)} outside ${vw}x${vh}`);
  }
  const clips = st.overflowX !== 'visible' || st.overflowY !== 'visible';
  const wide = el.scrollWidth > el.clientWidth + 1;
  const tall = el.scrollHeight > el.clientHeight + 1;
  if (el.hasAttribute('data-scroll')) {
    if (wide) bad.push(`${name(el)}: list ${el.scrollWidth} px wide in ${el.clientWidth}`);
  } else if (clips && el !== document.body && el !== document.documentElement && (wide || tall)) {
    bad.push(`${name(el)}: content ${el.scrollWidth}x${el.scrollHeight} cut to ${el.clientWidth}x${el.clientHeight}`);
  } else if ((el === document.body || el === document.documentElement) && (wide || tall)) {
    bad.push(`${name(el).slice(0, 12)}: page ${el.scrollWidth}x${el.scrollHeight} in ${vw}x${vh}`);
  }
  if (el.tagName === 'BUTTON' && !inList && (r.width < minTouch || r.height < minTouch)) {
    bad.push(`${name(el)}: button ${Math.round(r.width)}x${Math.round(r.height)}, under ${minTouch} px`);
  }
}
return bad;
"#;

/// Products with the longest names a site is likely to give, in both scripts, some sold
/// out: what the slot lists and the order screens must fit.
const LONG_NAMES: [&str; 6] = [
    "农夫山泉 天然矿泉水 550ml",
    "Coca-Cola Zero Sugar 330 ml can",
    "康师傅 红烧牛肉面 桶装",
    "Sandwich",
    "维他柠檬茶",
    "Oatly Barista Edition Oat Drink 1 L",
];

/// A command id of the common shape (a UUID); the screens show its support code.
const UUID_CMD_ID: &str = "3f9c2a7e-5b1d-4e8a-9c6f-0d2b7a41e5c3";

/// The help page's QR code must stay scannable off the screen: at least this many pixels.
const MIN_HELP_QR_PX: u32 = 110;

/// The screens whose words differ on a locker (doors, not a tray).
const LOCKER_SHOTS: [&str; 3] = ["dispensing", "take_item", "failed"];

/// Runs `body` in the page with its module `module` as `m` and `arg` as `arg`, and
/// waits for it (it may return a promise).
fn in_module(s: &Session, module: &str, body: &str, arg: &Value) {
    let r = s.call(
        "POST",
        "/execute/async",
        Some(&json!({
            "script": format!(
                "const done = arguments[arguments.length - 1]; const arg = arguments[0];\
                 import('./{module}').then((m) => {body})\
                   .then(() => done('ok'), (e) => done(String(e)));"
            ),
            "args": [arg],
        })),
    );
    assert_eq!(r, "ok", "{module}: {body} with {arg}");
}

/// Makes the page word its screens for `board` (`vmc`, `lockboard`), as `cabinet_info`
/// would say for a cabinet with that board.
fn set_board(s: &Session, board: &str) {
    let body = "{ m.state.info.board = arg; m.state.itemsKey = ''; }";
    in_module(s, "page.js", body, &json!(board));
}

/// Draws `snap` (a snapshot the core could publish) through the page's own entry for
/// snapshots, as if the core had sent it.
fn show_snapshot(s: &Session, snap: &Value) {
    in_module(s, "app.js", "m.onSnapshot(arg)", snap);
}

/// The screens a customer can see, as the core would publish them (after `base`, the
/// idle snapshot on screen), each with the longest content it may carry; named for the
/// screenshots.
fn customer_snapshots(base: &Value) -> Vec<(&'static str, Value)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let long = LONG_NAMES[5];
    let code = cabinet_core::support::code(UUID_CMD_ID);
    // A failure the order on screen cut short: its code rides along.
    let earlier = json!({"support_code": code, "uncertain": false, "until_ms": now + 3_600_000});
    let mut version = base["version"].as_u64().unwrap() + 1_000;
    let mut with = |fields: Value| {
        let mut snap = base.clone();
        for (k, v) in fields.as_object().unwrap() {
            snap[k] = v.clone();
        }
        snap.as_object_mut().unwrap().remove("qr_nonce");
        version += 1;
        snap["version"] = json!(version);
        snap
    };
    vec![
        (
            "accepted",
            with(json!({"screen": "accepted", "slot": 30, "product": long, "log_id": UUID_CMD_ID})),
        ),
        (
            "dispensing",
            with(
                json!({"screen": "dispensing", "slot": 30, "product": long, "log_id": UUID_CMD_ID, "since_ms": now, "earlier_failure": earlier}),
            ),
        ),
        (
            "take_item",
            with(
                json!({"screen": "take_item", "slot": 30, "product": long, "until_ms": now + 3_600_000, "earlier_failure": earlier}),
            ),
        ),
        (
            "put_back",
            with(
                json!({"screen": "put_back", "slot": 30, "product": long, "until_ms": now + 3_600_000}),
            ),
        ),
        (
            "failed",
            with(
                json!({"screen": "failed", "reason": "jammed", "uncertain": false, "support_code": code, "until_ms": now + 3_600_000}),
            ),
        ),
        (
            "uncertain",
            with(
                json!({"screen": "failed", "reason": "board_no_reply", "uncertain": true, "support_code": code, "until_ms": now + 3_600_000}),
            ),
        ),
        (
            "out_of_service",
            with(
                json!({"screen": "out_of_service", "reason": "board_down", "since_ms": now, "board_up": false}),
            ),
        ),
        (
            "out_of_service-starting",
            with(
                json!({"screen": "out_of_service", "reason": "starting", "since_ms": now, "link_up": false}),
            ),
        ),
    ]
}

trait Fits {
    fn assert_fits(&self, what: &str);
}

impl Fits for Session {
    /// Fails with every element that does not fit the window (see [`OVERFLOW`]).
    fn assert_fits(&self, what: &str) {
        let bad: Vec<String> =
            serde_json::from_value(self.js(OVERFLOW, json!([MIN_TOUCH_PX]))).unwrap();
        assert!(bad.is_empty(), "{what}: does not fit: {bad:#?}");
    }
}

#[test]
fn every_screen_fits_every_panel_size_in_both_languages() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.2?}] {what}", started.elapsed());
    let shots = screenshots_dir().join("sizes");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    // A full cabinet: 30 slots of long names, some sold out. The idle QR code stays put
    // for the whole test (an hour's session lifetime), so the core publishes nothing new
    // while the page shows the made-up snapshots below.
    let mut rig = Rig::with(|site| {
        site.slots = (1..=30u16)
            .map(|n| cabinet_testkit::config::Slot {
                slot: n,
                product: LONG_NAMES[usize::from(n) % LONG_NAMES.len()].to_owned(),
                capacity: 10,
                initial_count: if n % 7 == 0 { 0 } else { u32::from(n % 10) + 1 },
                ..Default::default()
            })
            .collect();
        site.commands.session_lifetime_secs = Some(3_600);
    });
    rig.connect_backend();

    for (i, (w, h)) in SIZES.into_iter().enumerate() {
        let size = format!("{w}x{h}");
        let xvfb = Xvfb::start_sized(&rig.path("xvfb.log"), w, h);
        let driver = Driver::start(&xvfb.display, &rig.path("webdriver.log"));
        let s = open_app(&driver, &rig.config);
        s.wait_window_up();
        if i == 0 {
            // One command in the journal, so the technician's command list has a row.
            rig.await_board_ok();
            let (cmd, _) = rig.send_dispense(1);
            rig.await_terminal(&cmd, "succeeded");
        }
        s.wait_screen_within("idle", Duration::from_secs(RESULT_SECS) + WAIT);
        let shot = |name: &str, lang: &str| {
            s.assert_fits(&format!("{size} {name} {lang}"));
            s.shot(&shots.join(format!("{size}-{name}-{lang}.png")));
        };

        // --- the customer's screens -------------------------------------------------------
        for lang in ["zh-CN", "en"] {
            s.set_lang(lang);
            let qr = s.js(
                "const r = document.querySelector('#qr svg').getBoundingClientRect();\
                 return Math.round(Math.min(r.width, r.height))",
                json!([]),
            );
            assert!(
                qr.as_u64().unwrap() >= u64::from(MIN_QR_PX),
                "{size}: the QR code is {qr} px across, under {MIN_QR_PX}"
            );
            shot("idle", lang);
        }
        let base = s.js(
            "return window.__TAURI__.core.invoke('get_snapshot')",
            json!([]),
        );
        // Each screen as a vending machine words it, then as a locker does (the page's
        // board kind switched: its wording only, the layout is the same).
        for board in ["vmc", "lockboard"] {
            set_board(&s, board);
            for (name, snap) in customer_snapshots(&base) {
                if board == "lockboard" && !LOCKER_SHOTS.contains(&name) {
                    continue;
                }
                let screen = snap["screen"].as_str().unwrap().to_owned();
                show_snapshot(&s, &snap);
                s.wait_screen(&screen);
                for lang in ["zh-CN", "en"] {
                    s.set_lang(lang);
                    assert_eq!(s.screen(), screen, "{size} {name}: the core drew over it");
                    if screen == "failed" {
                        let qr = s.js(
                            "const r = document.querySelector('#screen-failed .help-qr svg').getBoundingClientRect();\
                             return Math.round(Math.min(r.width, r.height))",
                            json!([]),
                        );
                        assert!(
                            qr.as_u64().unwrap_or(0) >= u64::from(MIN_HELP_QR_PX),
                            "{size}: the help page's QR code is {qr} px across, under {MIN_HELP_QR_PX}"
                        );
                    }
                    if board == "lockboard" && (screen == "take_item" || screen == "put_back") {
                        // A locker names the door that opened, not a tray.
                        let title = s.text(&format!(
                            "return document.querySelector('#screen-{screen} h1').textContent"
                        ));
                        let door = if lang == "en" {
                            "Door 30"
                        } else {
                            "30 号柜门"
                        };
                        assert!(title.contains(door), "{size} {lang}: {title}");
                    }
                    if snap.get("earlier_failure").is_some() {
                        assert!(
                            s.displayed("#earlier"),
                            "{size} {name}: the earlier failure's code is not shown"
                        );
                    }
                    let name = if board == "vmc" {
                        name.to_owned()
                    } else {
                        format!("locker-{name}")
                    };
                    shot(&name, lang);
                }
            }
        }
        set_board(&s, "vmc");
        phase(&format!("{size}: customer screens"));

        // --- the technician's ---------------------------------------------------------------
        show_snapshot(&s, &base);
        for lang in ["zh-CN", "en"] {
            s.wait_screen("idle");
            s.set_lang(lang);
            s.open_pin_pad();
            s.wait_rendered(lang);
            shot("tech-pin", lang);
            assert_eq!(s.enter_pin(TECH_PIN), "", "{size}: the right PIN opens");
            s.wait_screen("out_of_service");
            for tab in ["health", "slots", "commands", "frames", "audit", "export"] {
                s.click(&format!("#tech-tabs button[data-tab='{tab}']"));
                poll(&format!("the {tab} tab filled"), WAIT, || {
                    let rows = s.js(
                        "const t = document.querySelector('#tech-panel .tab:not([hidden])');\
                         return t ? t.querySelectorAll('tr, button').length : 0",
                        json!([]),
                    );
                    if rows.as_u64().unwrap_or(0) > 0 {
                        Ok(())
                    } else {
                        Err(rows.to_string())
                    }
                });
                if tab == "slots" && lang == "zh-CN" {
                    // A slot test: the frames and audit tabs then have rows, and the
                    // panel shows its result line.
                    s.click("#slots tr[data-slot='1'] td:nth-child(2)");
                    s.click("#slot-bar button[data-op='test']");
                    poll("the slot test's outcome", WAIT, || {
                        let o = s.text(
                            "return document.getElementById('tech-result').dataset.outcome || ''",
                        );
                        if o.is_empty() { Err(o) } else { Ok(()) }
                    });
                }
                s.next_frames();
                shot(&format!("tech-{tab}"), lang);
            }
            s.click("#tech-logout");
        }
        phase(&format!("{size}: technician screens"));
        drop(s);
        drop(driver);
        drop(xvfb);
    }
    eprintln!(
        "screenshots in {} ({:.1?} in all)",
        shots.display(),
        started.elapsed()
    );
}
