//! A real window under test: a private Xvfb on a display number it picks itself,
//! `tauri-driver` (with WebKitGTK's `WebKitWebDriver`) on free loopback ports, and a W3C
//! WebDriver session with the calls the tests need.
//!
//! Prerequisites: Xvfb, `WebKitWebDriver` (Debian package `webkit2gtk-driver`),
//! `tauri-driver` (`cargo install tauri-driver --locked --version '^2'`, found on `PATH` or
//! in `$CARGO_HOME/bin` / `~/.cargo/bin`). A missing tool fails the test with what to
//! install; it is never skipped silently. Every process is stopped by a `Drop` guard, also
//! when an assertion fails.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::port::{Attempt, start_on_free_ports};

/// Longest wait for any one state of the window or the driver.
pub const WAIT: Duration = Duration::from_secs(30);
/// The W3C WebDriver element reference key.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `name` on `PATH`, else in the extra directories.
pub fn find_tool(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tauri_driver_path() -> PathBuf {
    let mut extra = vec![];
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        extra.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        extra.push(PathBuf::from(home).join(".cargo").join("bin"));
    }
    find_tool("tauri-driver", &extra).unwrap_or_else(|| {
        panic!(
            "tauri-driver not found on PATH, in $CARGO_HOME/bin or ~/.cargo/bin: `make test` \
             installs it (or run `cargo install tauri-driver --locked --version '^2'`)"
        )
    })
}

/// A system tool on `PATH` or in `/usr/bin`; panics naming the Debian `package` if missing.
pub fn system_tool(name: &str, package: &str) -> PathBuf {
    find_tool(name, &[PathBuf::from("/usr/bin")]).unwrap_or_else(|| {
        panic!("{name} not found: `make test` installs it (Debian package `{package}`)")
    })
}

/// Polls `probe` every 50 ms until it returns `Ok`, or panics after `timeout` with `what`
/// and the last `Err` it returned.
pub fn poll<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within {timeout:?} (last seen: {last})"
                );
            }
        }
        // Polling a remote state (the page, a process); there is nothing to await.
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- Xvfb -----------------------------------------------------------------------------

/// A private X server (1080×1920, the cabinet's portrait screen, unless sized), on a
/// display number it picks itself (`-displayfd`: no fixed number to collide on); killed
/// on drop.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    /// `:N`, for `DISPLAY`.
    pub display: String,
}

impl Xvfb {
    /// Starts a 1080×1920 screen with its stderr in `log`; waits for its display number.
    pub fn start(log: &Path) -> Xvfb {
        Xvfb::start_sized(log, 1080, 1920)
    }

    /// Starts a `width`×`height` screen with its stderr in `log`.
    pub fn start_sized(log: &Path, width: u32, height: u32) -> Xvfb {
        let screen = format!("{width}x{height}x24");
        let bin = system_tool("Xvfb", "xvfb");
        // `-displayfd 1`: Xvfb picks a free display and writes its number to our pipe.
        let mut child = Command::new(bin)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                &screen,
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start Xvfb");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let number = line.trim();
        let mut x = Xvfb {
            child,
            display: String::new(),
        };
        assert!(
            !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
            "Xvfb did not report a display number (got {line:?}); see {}",
            log.display()
        );
        x.display = format!(":{number}");
        x
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- a window manager ------------------------------------------------------------------

/// The window managers a desktop cabinet or a technician's laptop may run (a cabinet
/// usually runs none). They differ where the kiosk's window cares: Metacity (GNOME's
/// lineage, like Mutter) honours a window's Motif hints and offers no minimise when told
/// not to; Openbox ignores those hints for minimise and close, and minimises on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wm {
    /// Metacity: reads Motif hints, offers only what they allow.
    Metacity,
    /// Openbox: offers minimise and close whatever the hints say.
    Openbox,
}

impl Wm {
    /// The program, which is also its Debian package.
    pub fn program(self) -> &'static str {
        match self {
            Wm::Metacity => "metacity",
            Wm::Openbox => "openbox",
        }
    }
}

/// A window manager on an X display; killed on drop.
#[derive(Debug)]
pub struct WindowManager {
    child: Child,
}

impl WindowManager {
    /// Starts `wm` on `display` with its output in `log`; waits until it has taken the
    /// screen (it names itself on the root window, `_NET_SUPPORTING_WM_CHECK`).
    pub fn start(wm: Wm, display: &str, log: &Path) -> WindowManager {
        let bin = system_tool(wm.program(), wm.program());
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(bin)
            .arg("--sm-disable")
            .env("DISPLAY", display)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", wm.program()));
        let mut it = WindowManager { child };
        poll("the window manager takes the screen", WAIT, || {
            if let Some(st) = it.child.try_wait().unwrap() {
                panic!(
                    "{} exited early ({st}); see {}",
                    wm.program(),
                    log.display()
                );
            }
            let root = x_property(display, "-root", "_NET_SUPPORTING_WM_CHECK");
            if root.contains("window id") {
                Ok(())
            } else {
                Err(root)
            }
        });
        it
    }
}

impl Drop for WindowManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `xprop` of one property of `window` (`-root`, or an X window id) on `display`: its line
/// as xprop prints it, or what went wrong.
pub fn x_property(display: &str, window: &str, property: &str) -> String {
    let xprop = system_tool("xprop", "x11-utils");
    let mut cmd = Command::new(xprop);
    cmd.env("DISPLAY", display);
    if window == "-root" {
        cmd.arg("-root");
    } else {
        cmd.args(["-id", window]);
    }
    match cmd.arg(property).stdin(Stdio::null()).output() {
        Ok(out) => {
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr)
        }
        Err(e) => format!("xprop: {e}"),
    }
}

// ---- tauri-driver ---------------------------------------------------------------------

/// tauri-driver in its own process group, with WebKitWebDriver (and the app it starts) in
/// the same group: stopping tauri-driver alone would leave its child running, so drop kills
/// the whole group.
#[derive(Debug)]
pub struct Driver {
    child: Child,
    port: u16,
}

/// What tauri-driver prints (and then keeps running) when its port is taken.
const PORT_TAKEN: &str = "can not listen to address";

impl Driver {
    /// Starts tauri-driver on `display` with its output in `log`, on free ports (new ones
    /// if a port was taken before it bound it); waits until it answers `/status`.
    pub fn start(display: &str, log: &Path) -> Driver {
        let bin = tauri_driver_path();
        let native = system_tool("WebKitWebDriver", "webkit2gtk-driver");
        start_on_free_ports(2, |ports| {
            let (port, native_port) = (ports[0], ports[1]);
            let out = std::fs::File::create(log).unwrap();
            let child = Command::new(&bin)
                .arg("--port")
                .arg(port.to_string())
                .arg("--native-port")
                .arg(native_port.to_string())
                .arg("--native-driver")
                .arg(&native)
                .env("DISPLAY", display)
                .env("GDK_BACKEND", "x11")
                .env_remove("WAYLAND_DISPLAY")
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut d = Driver { child, port };
            let agent = agent(Duration::from_secs(2));
            let url = format!("http://127.0.0.1:{port}/status");
            let up = poll("tauri-driver answers /status", WAIT, || {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                if said.contains(PORT_TAKEN) {
                    return Ok(Err(said.trim().to_owned()));
                }
                if let Some(st) = d.child.try_wait().unwrap() {
                    panic!("tauri-driver exited early: {st}");
                }
                match agent.get(&url).call() {
                    Ok(r) if r.status().is_success() => Ok(Ok(())),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            });
            match up {
                Ok(()) => Attempt::Up(d),
                // Dropping `d` kills the group.
                Err(said) => Attempt::PortTaken(format!("tauri-driver: {said}")),
            }
        })
    }

    /// Its process id, which is also its process group's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client for the driver: plain HTTP to loopback, no proxy, HTTP errors
/// as responses (the driver's error body says what went wrong).
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

// ---- WebDriver session --------------------------------------------------------------

/// One WebDriver session: the app's window. Deleted on drop (which closes the app).
#[derive(Debug)]
pub struct Session {
    agent: ureq::Agent,
    base: String,
}

impl Session {
    /// Starts `application` with `args` through the driver (`tauri:options`).
    pub fn start(driver: &Driver, application: &str, args: &[&str]) -> Session {
        let agent = agent(Duration::from_secs(60));
        let caps = json!({"capabilities": {"alwaysMatch": {"tauri:options": {
            "application": application,
            "args": args,
        }}}});
        let root = format!("http://127.0.0.1:{}", driver.port);
        let v = send(&agent, "POST", &format!("{root}/session"), Some(&caps))
            .unwrap_or_else(|e| panic!("cannot start the app through tauri-driver: {e}"));
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"));
        Session {
            agent,
            base: format!("{root}/session/{id}"),
        }
    }

    /// One command of the session (`path` after `/session/<id>`); its `value`.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        send(&self.agent, method, &format!("{}{path}", self.base), body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// Runs `script` (a function body) in the page.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// What `script` returns, as text (`""` for null).
    pub fn text(&self, script: &str) -> String {
        match self.js(script, json!([])) {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// The element reference of the first match of `css`.
    pub fn element(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {css}: {v}"))
            .to_owned()
    }

    /// Clicks `css`.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), Some(&json!({})));
    }

    /// Presses on `css` for `hold` with the W3C actions API (a touch-and-hold).
    pub fn long_press(&self, css: &str, hold: Duration) {
        let id = self.element(css);
        let actions = json!({"actions": [{
            "type": "pointer",
            "id": "finger",
            "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: id}, "x": 0, "y": 0},
                {"type": "pointerDown", "button": 0},
                {"type": "pause", "duration": hold.as_millis() as u64},
                {"type": "pointerUp", "button": 0},
            ],
        }]});
        self.call("POST", "/actions", Some(&actions));
        self.call("DELETE", "/actions", None);
    }

    /// Whether `css`'s first match is displayed.
    pub fn displayed(&self, css: &str) -> bool {
        let id = self.element(css);
        self.call("GET", &format!("/element/{id}/displayed"), None)
            .as_bool()
            .unwrap()
    }

    /// Saves the window as a PNG at `path`.
    pub fn screenshot(&self, path: &Path) {
        // WebKit's snapshot waits for the page's next rendering update, and a kiosk page
        // at rest schedules none (it writes to the DOM only what changed). A two-second
        // animation of an invisible difference keeps frames coming while it is taken.
        self.js(
            "document.body.animate([{opacity: 1}, {opacity: 0.999}, {opacity: 1}], {duration: 2000});",
            json!([]),
        );
        let v = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("screenshot is base64 text"))
            .expect("screenshot is valid base64");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::write(path, png).unwrap();
    }

    /// Waits until the window covers the whole screen (a kiosk is fullscreen) and has
    /// painted a frame: input sent before that can be lost.
    pub fn wait_window_up(&self) {
        poll("the window covers the screen", WAIT, || {
            let v = self.js(
                "return [innerWidth, innerHeight, screen.width, screen.height]",
                json!([]),
            );
            if v[0] == v[2] && v[1] == v[3] {
                Ok(())
            } else {
                Err(format!(
                    "[innerWidth, innerHeight, screen.width, screen.height] = {v}"
                ))
            }
        });
        self.next_frames();
    }

    /// Returns after two animation frames (they run only while the page is painted).
    pub fn next_frames(&self) {
        self.call(
            "POST",
            "/execute/async",
            Some(&json!({
                "script": "const done = arguments[arguments.length - 1];\
                           requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                "args": [],
            })),
        );
    }

    /// Clicks `css` with WebDriver and checks that the click reached the page (a capturing
    /// listener counts clicks on it). A synthetic click can be lost while the window is still
    /// being mapped or resized: only then, and at most twice, it is sent again; a click that
    /// arrived is never repeated (the button may toggle).
    pub fn click_delivered(&self, css: &str) {
        const COUNT: &str = r#"
            const css = arguments[0];
            if (!window.__wdClicks) {
                window.__wdClicks = {};
                document.addEventListener('click', (e) => {
                    for (const sel of Object.keys(window.__wdClicks)) {
                        if (e.target.closest(sel)) window.__wdClicks[sel] += 1;
                    }
                }, true);
            }
            if (!(css in window.__wdClicks)) window.__wdClicks[css] = 0;
            return window.__wdClicks[css];
        "#;
        let count = || self.js(COUNT, json!([css])).as_u64().unwrap();
        let before = count();
        for attempt in 1..=3 {
            self.click(css);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if count() > before {
                    return;
                }
                // Polling the page; nothing to await.
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!(
                "click on {css} did not reach the page (attempt {attempt}); sending it again"
            );
        }
        panic!("three WebDriver clicks on {css} never reached the page");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closes the window and ends the app; the driver's group kill is the backstop.
        let quick = agent(Duration::from_secs(10));
        let _ = send(&quick, "DELETE", &self.base, None);
    }
}

/// One WebDriver request; `Ok(value)` or `Err` with the driver's error and message.
fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let result = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        ("POST", Some(b)) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(b.to_string().as_bytes()),
        _ => panic!("unsupported request {method} {url}"),
    };
    let mut resp = result.map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("HTTP {status}, not JSON ({e}): {text}"))?;
    if status.is_success() {
        Ok(v["value"].clone())
    } else {
        Err(format!(
            "HTTP {status}: {} {}",
            v["value"]["error"], v["value"]["message"]
        ))
    }
}
