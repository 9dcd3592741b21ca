//! The zero-setup demo: everything a cabinet needs, on one machine, with nothing installed.
//!
//! [`Demo::start`] brings up
//! - an MQTT broker in-process (rumqttd) on a free loopback port,
//! - the board simulator on a real pseudo-terminal (the same VMC byte protocol a real
//!   board speaks), behind a symlink like the udev one,
//! - a fresh Ed25519 demo signing key, trusted by the demo config only,
//! - a config file (`config.toml` in the demo directory) for a cabinet with a slot map,
//!   requiring the QR session nonce like a production site should.
//!
//! The kiosk then runs unchanged on that config (headless: this crate's `cabinet-demo`
//! binary; or the window, `cabinet-kiosk --demo`, built with its `demo` feature). [`DemoBackend::scan`] plays the backend's part of a customer
//! scanning the QR code: it takes the nonce the screen shows, signs a dispense command
//! with the demo key, and publishes it on the cabinet's topic, exactly as a backend
//! would (docs/PROTOCOL.md). Nothing here is used outside the demo; tests use a real
//! Mosquitto.
//!
//! The demo also lets a viewer break things ([`Demo::set_fault`]): jam the motors, unplug
//! the board, drop the broker (the kiosk reaches the broker through a [`Relay`] the demo
//! can cut), and it has a technician, [`TECHNICIAN`] with [`TECHNICIAN_PIN`], so the
//! maintenance panel can be opened to clear the jam.
//!
//! [`Layout::Wall`] builds a locker wall instead: three lock boards daisy-chained on one
//! simulated RS-485 bus, one item behind each door, and one more thing to break: a board
//! that loses power takes only its own doors out of sale.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use cabinet_board::Protocol;
use cabinet_board::sim::{Fault, SimConfig, Simulator};
use cabinet_core::config::{Config, parse_broker_url};
use cabinet_core::mqtt::{BackendClient, BackendOptions};
use cabinet_core::protocol::{self, CommandClaims, CommandKind, SigningKey};
use cabinet_core::screen::{Screen, Snapshot};
use tokio::sync::{broadcast, mpsc, oneshot};

mod relay;

pub use relay::Relay;

/// The demo cabinet's code.
pub const MACHINE_CODE: &str = "DEMO-0001";
/// The demo's technician (the screen shows the name and the PIN in demo mode only).
pub const TECHNICIAN: &str = "演示 Demo";
/// The demo technician's PIN.
pub const TECHNICIAN_PIN: &str = "2468";

/// What a demo viewer can break, and mend again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemoFault {
    /// The motors jam: the next order fails and its slot goes out of service until the
    /// technician clears the jam.
    Jam,
    /// The board is unplugged: no POLLs, no answers; out of service after the grace.
    /// On the wall: the bus's adapter, so no board answers.
    Unplug,
    /// The broker is gone: the kiosk's connection is cut and new ones refused.
    Broker,
    /// The wall only: the middle board ([`WALL_POWERED_OFF`]) loses power. Its doors are
    /// unavailable; the rest of the wall keeps selling. Nothing on a vending cabinet.
    PowerOff,
}

/// Which [`DemoFault`]s are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DemoFaults {
    /// Motors jam.
    pub jam: bool,
    /// Board unplugged.
    pub unplug: bool,
    /// Broker dropped.
    pub broker: bool,
    /// The wall's middle board without power.
    pub power_off: bool,
}

/// What the demo cabinet is built as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// A vending cabinet: one VMC board, six spiral slots.
    #[default]
    Vending,
    /// A locker wall: three 16-door lock boards at addresses 1–3 on one RS-485 bus, four
    /// doors of each in use ([`WALL`]), one item behind each door.
    Wall,
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vending" => Ok(Layout::Vending),
            "wall" => Ok(Layout::Wall),
            other => Err(format!(
                "unknown demo layout {other:?}: \"vending\" or \"wall\""
            )),
        }
    }
}

/// The demo wall's boards: (name, RS-485 address, the product behind its doors).
pub const WALL: &[(&str, u8, &str)] = &[
    ("wall-1", 1, "充电宝 Power bank"),
    ("wall-2", 2, "雨伞 Umbrella"),
    ("wall-3", 3, "头盔 Bike helmet"),
];
/// Doors in use on each wall board (channels 1..=4 of 16); slots are numbered along the
/// wall: wall-1's doors are slots 1–4, wall-2's 5–8, wall-3's 9–12.
pub const WALL_DOORS: u16 = 4;
/// Channels each wall board has.
const WALL_CHANNELS: u16 = 16;
/// The wall board that [`DemoFault::PowerOff`] cuts.
pub const WALL_POWERED_OFF: &str = "wall-2";
/// The `kid` of the demo signing key.
pub const KEY_ID: &str = "demo";

/// The demo cabinet's slot map: (product, items at start).
const PRODUCTS: &[(&str, u32)] = &[
    ("雨伞 Umbrella", 5),
    ("充电宝 Power bank", 4),
    ("矿泉水 Water", 8),
    ("口罩 Face masks", 6),
    ("数据线 USB-C cable", 3),
    ("纸巾 Tissues", 0),
];

/// How the demo is set up.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the config, journal, logs and board symlink go; a temporary directory
    /// (removed at exit) when `None`.
    pub dir: Option<PathBuf>,
    /// How long the simulated motor turns (long enough to see the dispensing screen).
    pub motor_time: Duration,
    /// A vending cabinet or a locker wall.
    pub layout: Layout,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            dir: None,
            motor_time: Duration::from_millis(2500),
            layout: Layout::Vending,
        }
    }
}

/// A running demo environment. Dropping it stops the simulator (the broker thread has no
/// shutdown and ends with the process).
#[derive(Debug)]
pub struct Demo {
    _tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    config_path: PathBuf,
    config: Config,
    broker: SocketAddr,
    relay: Relay,
    sim: Simulator,
    layout: Layout,
    key: SigningKey,
    faults: std::sync::Mutex<DemoFaults>,
}

impl Demo {
    /// Starts the broker and the simulator and writes the config. Call once per process
    /// (the embedded broker cannot be stopped).
    pub fn start(opts: DemoOptions) -> anyhow::Result<Demo> {
        let (tmp, dir) = match opts.dir {
            Some(d) => {
                std::fs::create_dir_all(&d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
                (None, d)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("cabinet-demo-")
                    .tempdir()
                    .context("cannot create a temporary directory")?;
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        let broker = start_broker().context("cannot start the embedded broker")?;
        let relay = Relay::start(broker).context("cannot start the demo's broker relay")?;

        let link = dir.join("board");
        let sc = match opts.layout {
            Layout::Vending => {
                let mut sc = SimConfig::new(Protocol::Vmc);
                sc.slots = u16::try_from(PRODUCTS.len()).unwrap_or(u16::MAX);
                sc.stock = PRODUCTS.iter().map(|p| p.1).max().unwrap_or(0);
                sc.motor_time = opts.motor_time;
                sc
            }
            Layout::Wall => {
                // The first board is the simulator's own; the others share its pty, each
                // answering only its address, as boards on one twisted pair do.
                let mut sc = SimConfig::new(Protocol::Lockboard);
                sc.slots = WALL_CHANNELS;
                sc.address = WALL[0].1;
                sc.neighbours = WALL[1..]
                    .iter()
                    .map(|(_, address, _)| (*address, WALL_CHANNELS))
                    .collect();
                sc
            }
        };
        let mut sc = sc;
        sc.link = Some(link.clone());
        let sim = Simulator::start(sc).context("cannot start the board simulator")?;

        let (key, public) = protocol::generate_keypair().context("cannot make a demo key")?;
        let config_path = dir.join("config.toml");
        let pin_hash = cabinet_core::technician::hash_pin(TECHNICIAN_PIN)
            .map_err(|e| anyhow::anyhow!("cannot hash the demo PIN: {e}"))?;
        let text = config_text(opts.layout, &dir, relay.addr(), &public, &link, &pin_hash);
        std::fs::write(&config_path, text)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let config = Config::load(&config_path)
            .map_err(|e| anyhow::anyhow!("the demo config is invalid (a bug): {e}"))?;
        Ok(Demo {
            _tmp: tmp,
            dir,
            config_path,
            config,
            broker,
            relay,
            sim,
            layout: opts.layout,
            key,
            faults: std::sync::Mutex::new(DemoFaults::default()),
        })
    }

    /// Breaks (`on`) or mends one thing.
    pub fn set_fault(&self, fault: DemoFault, on: bool) {
        let mut faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match fault {
            // A lock board has no motor: on the wall, wall-1's doors stick shut.
            DemoFault::Jam if self.layout == Layout::Wall => {
                toggle(&self.sim, Fault::DoorStuck, on);
                faults.jam = on;
            }
            DemoFault::Jam => {
                toggle(&self.sim, Fault::Jam, on);
                faults.jam = on;
            }
            DemoFault::PowerOff => {
                if let Some((_, address, _)) =
                    WALL.iter().find(|(name, ..)| *name == WALL_POWERED_OFF)
                    && self.layout == Layout::Wall
                {
                    self.sim.power_neighbour(*address, !on);
                    faults.power_off = on;
                }
            }
            DemoFault::Unplug => {
                toggle(&self.sim, Fault::Silent, on);
                faults.unplug = on;
            }
            DemoFault::Broker => {
                self.relay.set_up(!on);
                faults.broker = on;
            }
        }
    }

    /// Which faults are on.
    pub fn faults(&self) -> DemoFaults {
        *self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A vending cabinet or a locker wall.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// What the simulated boards have done for customers so far: motor runs on the
    /// vending board, door unlocks on the wall (every board's).
    pub fn actions(&self) -> u64 {
        match self.layout {
            Layout::Vending => self.sim.stats().motor_actions,
            Layout::Wall => self.sim.unlocks().iter().map(|(_, _, n)| n).sum(),
        }
    }

    /// The demo cabinet's config (already validated).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The config file the kiosk can be started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The demo directory (journal, logs, board symlink).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The embedded broker's address (the kiosk connects through the relay; the
    /// demo backend directly).
    pub fn broker(&self) -> SocketAddr {
        self.broker
    }

    /// The simulated board (its motor count is what a demo viewer watches go up).
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// Connects the demo backend to the embedded broker and subscribes to the cabinet's
    /// replies. Must run inside a Tokio runtime; the returned handle can be cloned.
    pub async fn backend(&self) -> anyhow::Result<DemoBackend> {
        let url = format!("mqtt://{}", self.broker);
        let broker = parse_broker_url(&url).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        let id = protocol::new_boot_id().context("cannot make a client id")?;
        let mut client = BackendClient::connect(BackendOptions {
            client_id: format!("demo-backend-{}", &id[..8.min(id.len())]),
            username: Some("demo-backend".into()),
            password: None,
            broker,
            ca_pem: None,
            timeout: Duration::from_secs(5),
            persistent_session: false,
        })
        .await
        .context("the demo backend cannot reach the embedded broker")?;
        client
            .subscribe_cabinet(MACHINE_CODE)
            .await
            .context("the demo backend cannot subscribe")?;
        let (tx, rx) = mpsc::channel(8);
        let (replies, _) = broadcast::channel(64);
        let actor = Actor {
            client,
            key: self.key.clone(),
            last_slot: 0,
            replies: replies.clone(),
        };
        tokio::spawn(actor.run(rx));
        Ok(DemoBackend { tx, replies })
    }
}

/// What one simulated scan sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Slot asked for.
    pub slot: u16,
    /// Its product.
    pub product: String,
    /// The command id (`jti`).
    pub cmd_id: String,
    /// The command's `log_id`.
    pub log_id: String,
}

/// The demo backend: signs and publishes commands, and passes on the cabinet's replies.
#[derive(Debug, Clone)]
pub struct DemoBackend {
    tx: mpsc::Sender<Request>,
    replies: broadcast::Sender<String>,
}

impl DemoBackend {
    /// Plays a customer scanning the QR code on `screen` (the kiosk's current snapshot):
    /// picks the next slot the screen lists as available and sends a signed dispense
    /// command carrying the screen's nonce. Fails when the screen is not idle (no QR
    /// code to scan) or nothing is left to dispense.
    pub async fn scan(&self, screen: &Snapshot) -> anyhow::Result<Scan> {
        self.ask(screen, CommandKind::Dispense).await
    }

    /// Plays a customer bringing a rental back (the wall): picks an empty door the
    /// screen lists and sends a signed `return` for it with the screen's nonce.
    pub async fn give_back(&self, screen: &Snapshot) -> anyhow::Result<Scan> {
        self.ask(screen, CommandKind::Return).await
    }

    async fn ask(&self, screen: &Snapshot, kind: CommandKind) -> anyhow::Result<Scan> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((screen.clone(), kind, tx))
            .await
            .map_err(|_| anyhow::anyhow!("the demo backend has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the demo backend has stopped"))?
    }

    /// Every reply payload the cabinet publishes from now on (JSON text).
    pub fn replies(&self) -> broadcast::Receiver<String> {
        self.replies.subscribe()
    }
}

/// A scan or a return to play on a screen, and where its answer goes.
type Request = (Snapshot, CommandKind, oneshot::Sender<anyhow::Result<Scan>>);

struct Actor {
    client: BackendClient,
    key: SigningKey,
    last_slot: u16,
    replies: broadcast::Sender<String>,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        loop {
            tokio::select! {
                req = rx.recv() => {
                    let Some((screen, kind, answer)) = req else { break };
                    let result = self.scan(&screen, kind).await;
                    let _ = answer.send(result);
                }
                msg = self.client.recv() => {
                    let Some(msg) = msg else {
                        tracing::warn!("demo backend: the broker connection is gone");
                        break;
                    };
                    if msg.topic.ends_with("/reply") {
                        let text = String::from_utf8_lossy(&msg.payload).into_owned();
                        tracing::info!(reply = %text, "demo backend: reply");
                        let _ = self.replies.send(text);
                    }
                }
            }
        }
    }

    async fn scan(&mut self, screen: &Snapshot, kind: CommandKind) -> anyhow::Result<Scan> {
        let Screen::Idle = screen.screen else {
            bail!("the screen shows no QR code right now; wait for the idle screen");
        };
        let Some(nonce) = screen.qr_nonce.clone() else {
            bail!("the idle screen has no QR nonce yet");
        };
        let item = match kind {
            CommandKind::Dispense => {
                let available: Vec<_> = screen.items.iter().filter(|i| i.available).collect();
                let Some(item) = available
                    .iter()
                    .find(|i| i.slot > self.last_slot)
                    .or_else(|| available.first())
                else {
                    bail!("every slot is empty or disabled; restart the demo to refill it");
                };
                self.last_slot = item.slot;
                *item
            }
            // The door the last customer emptied, else the first empty one.
            CommandKind::Return => {
                let empty: Vec<_> = screen.items.iter().filter(|i| i.count == 0).collect();
                let Some(item) = empty
                    .iter()
                    .find(|i| i.slot == self.last_slot)
                    .or_else(|| empty.first())
                else {
                    bail!("every door holds its item: nothing to return into");
                };
                *item
            }
            other => bail!("a customer's scan is a dispense or a return, not {other:?}"),
        };
        let rand = protocol::new_boot_id().context("cannot make an id")?;
        let now = unix_now();
        let claims = CommandClaims {
            aud: MACHINE_CODE.into(),
            jti: format!("demo-{rand}"),
            iat: now,
            exp: now + 60,
            kind: kind.code().into(),
            slot: item.slot,
            qty: 1,
            order_id: format!("order-{}", &rand[..12.min(rand.len())]),
            log_id: format!("D{}", rand[..8.min(rand.len())].to_uppercase()),
            session: Some(nonce),
            count: None,
        };
        let token = protocol::sign_command(&claims, &self.key, KEY_ID).context("cannot sign")?;
        self.client
            .send_command(MACHINE_CODE, &token)
            .await
            .context("cannot publish the command")?;
        tracing::info!(log_id = %claims.log_id, cmd_id = %claims.jti, slot = item.slot, "demo backend: command sent");
        Ok(Scan {
            slot: item.slot,
            product: item.product.clone(),
            cmd_id: claims.jti,
            log_id: claims.log_id,
        })
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn toggle(sim: &Simulator, fault: Fault, on: bool) {
    if on {
        sim.set_fault(fault);
    } else {
        sim.clear_fault(fault);
    }
}

fn config_text(
    layout: Layout,
    dir: &Path,
    broker: SocketAddr,
    public_key: &str,
    board: &Path,
    pin_hash: &str,
) -> String {
    let q = |p: &Path| toml_string(&p.display().to_string());
    let mut s = format!(
        "# Written by the demo at start; the kiosk runs on it unchanged.\n\
         machine_code = \"{MACHINE_CODE}\"\n\n\
         [mqtt]\nurl = \"mqtt://{broker}\"\nkeepalive_secs = 10\nreconnect_min_ms = 200\nreconnect_max_ms = 2000\n\n\
         [keys]\n{KEY_ID} = \"{public_key}\"\n\n\
         [commands]\nrequire_session = true\nsession_lifetime_secs = 120\n\n\
         [board]\nprotocol = \"{}\"\nport = {}\n\n\
         [journal]\npath = {}\n\n\
         [logs]\ndir = {}\nlevel = \"info,rumqttd=warn\"\n\n\
         [kiosk]\nname = \"演示柜 Demo cabinet\"\ntake_item_secs = 8\nfailed_secs = 20\n\n\
         [support]\nphone = \"400-000-0000\"\nhelp_url = \"https://example.com/help\"\n\
         nearby = \"演示：附近柜机的位置 · Demo: where the next cabinet is\"\n\n\
         [technicians]\n{} = {}\n",
        match layout {
            Layout::Vending => "vmc",
            Layout::Wall => "lockboard",
        },
        q(board),
        q(&dir.join("journal.sqlite3")),
        q(&dir.join("logs")),
        toml_string(TECHNICIAN),
        toml_string(pin_hash),
    );
    if layout == Layout::Wall {
        for (name, address, _) in WALL {
            s.push_str(&format!(
                "\n[[boards]]\nname = \"{name}\"\nprotocol = \"lockboard\"\nport = {}\n\
                 address = {address}\nchannels = {WALL_CHANNELS}\n",
                q(board)
            ));
        }
        let mut slot = 0;
        for (name, _, product) in WALL {
            for channel in 1..=WALL_DOORS {
                slot += 1;
                // The wall's last door starts empty: a sold-out door on the screen.
                let count = u32::from(slot < WALL_DOORS * 3);
                s.push_str(&format!(
                    "\n[[slots]]\nslot = {slot}\nboard = \"{name}\"\nchannel = {channel}\n\
                     product = {}\ncapacity = 1\ninitial_count = {count}\n",
                    toml_string(product)
                ));
            }
        }
        return s;
    }
    for (i, (product, count)) in PRODUCTS.iter().enumerate() {
        s.push_str(&format!(
            "\n[[slots]]\nslot = {}\nproduct = {}\ncapacity = 10\ninitial_count = {count}\n",
            i + 1,
            toml_string(product)
        ));
    }
    s
}

/// A TOML basic string (paths may hold quotes or backslashes).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Starts rumqttd on a free loopback port and waits until it accepts connections.
fn start_broker() -> anyhow::Result<SocketAddr> {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
        l.local_addr().context("no local address")?
    };
    let text = format!(
        "id = 0\n\
         [router]\nmax_connections = 64\nmax_outgoing_packet_count = 200\n\
         max_segment_size = 1048576\nmax_segment_count = 10\n\
         [v4.1]\nname = \"demo\"\nlisten = \"{addr}\"\nnext_connection_delay_ms = 1\n\
         [v4.1.connections]\nconnection_timeout_ms = 60000\nmax_payload_size = 20480\n\
         max_inflight_count = 100\ndynamic_filters = true\n"
    );
    let config: rumqttd::Config =
        toml::from_str(&text).context("the embedded broker's config is invalid (a bug)")?;
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded demo broker stopped");
            }
        })
        .context("cannot start the broker thread")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("the embedded broker did not start listening on {addr} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_demo_config_is_valid_requires_sessions_and_has_its_technician() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = protocol::generate_keypair().unwrap();
        let hash = cabinet_core::technician::hash_pin(TECHNICIAN_PIN).unwrap();
        let text = config_text(
            Layout::Vending,
            dir.path(),
            "127.0.0.1:1883".parse().unwrap(),
            &public,
            &dir.path().join("bo\"ard"),
            &hash,
        );
        let cfg = Config::from_toml_str(&text).unwrap();
        assert_eq!(cfg.machine_code, MACHINE_CODE);
        assert!(cfg.commands.require_session);
        assert_eq!(cfg.slots.len(), PRODUCTS.len());
        assert_eq!(cfg.board.port, dir.path().join("bo\"ard"));
        let techs: Vec<&String> = cfg.technicians.keys().collect();
        assert_eq!(techs, [TECHNICIAN]);
        assert!(!cfg.support.phone.is_empty());
    }

    #[test]
    fn the_demo_wall_is_three_boards_on_one_bus_with_one_item_behind_each_door() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = protocol::generate_keypair().unwrap();
        let hash = cabinet_core::technician::hash_pin(TECHNICIAN_PIN).unwrap();
        let bus = dir.path().join("board");
        let text = config_text(
            Layout::Wall,
            dir.path(),
            "127.0.0.1:1883".parse().unwrap(),
            &public,
            &bus,
            &hash,
        );
        let cfg = Config::from_toml_str(&text).unwrap();
        let names: Vec<(&str, Option<u8>)> = cfg
            .boards
            .iter()
            .map(|b| (b.name.as_str(), b.address))
            .collect();
        assert_eq!(
            names,
            [
                ("wall-1", Some(1)),
                ("wall-2", Some(2)),
                ("wall-3", Some(3))
            ]
        );
        assert!(cfg.boards.iter().all(|b| b.port == bus));
        let places = cfg.slot_places();
        assert_eq!(places.len(), 12);
        assert_eq!((places[&5].board, places[&5].channel), (1, 1));
        assert_eq!(cfg.door_slots().len(), 12);
        assert!(cfg.slots.iter().all(|s| s.capacity == 1));
        let stocked = cfg.slots.iter().filter(|s| s.initial_count == 1).count();
        assert_eq!(stocked, 11, "the last door starts sold out");
        assert_eq!("wall".parse::<Layout>(), Ok(Layout::Wall));
        assert!("tower".parse::<Layout>().unwrap_err().contains("\"wall\""));
    }
}
