//! `cabinet sim-board` and `cabinet board`: a simulated board on a pty, and a console that
//! drives a real or simulated board.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use cabinet_board::lockboard::DoorPolarity;
use cabinet_board::sim::{Fault, SimConfig, Simulator};
use cabinet_board::vmc::SlotOrder;
use cabinet_board::{BoardError, BoardSettings, Outcome, Protocol};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

/// Protocol names on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProtocolArg {
    /// Spiral-motor vending board.
    Vmc,
    /// 8A/80 lock board.
    Lockboard,
}

impl From<ProtocolArg> for Protocol {
    fn from(p: ProtocolArg) -> Self {
        match p {
            ProtocolArg::Vmc => Protocol::Vmc,
            ProtocolArg::Lockboard => Protocol::Lockboard,
        }
    }
}

/// Slot byte order on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OrderArg {
    /// High byte first.
    Big,
    /// Low byte first.
    Little,
}

impl From<OrderArg> for SlotOrder {
    fn from(o: OrderArg) -> Self {
        match o {
            OrderArg::Big => SlotOrder::BigEndian,
            OrderArg::Little => SlotOrder::LittleEndian,
        }
    }
}

/// Door polarity on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolarityArg {
    /// Sensor on (11) means open.
    #[value(name = "open_is_11")]
    OpenIs11,
    /// Sensor off (00) means open.
    #[value(name = "open_is_00")]
    OpenIs00,
}

impl From<PolarityArg> for DoorPolarity {
    fn from(p: PolarityArg) -> Self {
        match p {
            PolarityArg::OpenIs11 => DoorPolarity::OpenIs11,
            PolarityArg::OpenIs00 => DoorPolarity::OpenIs00,
        }
    }
}

/// Arguments of `cabinet sim-board`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Protocol to speak.
    #[arg(long, value_enum)]
    protocol: ProtocolArg,
    /// Fault to inject from the start (repeatable): jam, motor-not-stopped, no-drop,
    /// door-stuck, no-reply, silent, bad-checksum[=N], slow-reply=MS, repeated-packno,
    /// report-twice, report-wrong-slot, answers-as=ADDR (lock board: replies carry another
    /// address).
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<Fault>,
    /// Also keep a stable symlink to the pty here (like the udev rule on a cabinet).
    #[arg(long)]
    link: Option<PathBuf>,
    /// Number of slots (VMC motors) or channels (lock board).
    #[arg(long)]
    slots: Option<u16>,
    /// VMC: milliseconds between POLLs.
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    /// VMC: milliseconds a motor runs.
    #[arg(long, default_value_t = 300)]
    motor_ms: u64,
    /// VMC: slot byte order.
    #[arg(long, value_enum, default_value = "big")]
    slot_order: OrderArg,
    /// Lock board: bus address.
    #[arg(long, default_value_t = 1)]
    address: u8,
    /// Lock board: door sensor polarity.
    #[arg(long, value_enum, default_value = "open_is_11")]
    polarity: PolarityArg,
    /// Lock board: status bytes in a query reply, 1-31 (default: one per 8 channels), to
    /// play a board whose reply is wider or narrower than its channel count.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=31))]
    status_bytes: Option<u8>,
    /// Lock board: another lock board on the same bus, ADDRESS:CHANNELS (repeatable: a
    /// locker wall). Each answers only its own address; `power ADDRESS off` silences one.
    #[arg(long = "neighbour", value_parser = parse_neighbour)]
    neighbours: Vec<(u8, u16)>,
}

fn parse_fault(s: &str) -> Result<Fault, String> {
    s.parse()
}

/// `ADDRESS:CHANNELS`, address 1-31, channels 1-248.
fn parse_neighbour(s: &str) -> Result<(u8, u16), String> {
    let usage = || format!("{s:?}: expected ADDRESS:CHANNELS, address 1-31, channels 1-248");
    let (a, c) = s.split_once(':').ok_or_else(usage)?;
    let address: u8 = a.trim().parse().map_err(|_| usage())?;
    let channels: u16 = c.trim().parse().map_err(|_| usage())?;
    if !(1..=31).contains(&address) || !(1..=248).contains(&channels) {
        return Err(usage());
    }
    Ok((address, channels))
}

/// Run a simulated board until SIGINT/SIGTERM (or `quit` on stdin).
pub fn sim_board(a: SimArgs) -> anyhow::Result<ExitCode> {
    let protocol: Protocol = a.protocol.into();
    let mut cfg = SimConfig::new(protocol);
    cfg.link = a.link.clone();
    if let Some(n) = a.slots {
        cfg.slots = n;
    }
    cfg.poll_interval = Duration::from_millis(a.poll_ms.max(1));
    cfg.motor_time = Duration::from_millis(a.motor_ms);
    cfg.slot_order = a.slot_order.into();
    cfg.address = a.address;
    cfg.polarity = a.polarity.into();
    cfg.status_bytes = a.status_bytes.map(usize::from);
    if let Some(&(n, _)) = a.neighbours.iter().find(|(n, _)| *n == a.address) {
        anyhow::bail!("--neighbour {n}: that is this board's own --address");
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(&(n, _)) = a.neighbours.iter().find(|(n, _)| !seen.insert(*n)) {
        anyhow::bail!("--neighbour {n}: two boards at one address on one bus");
    }
    cfg.neighbours = a.neighbours.clone();
    let sim = Simulator::start(cfg).context("cannot start the board simulator")?;
    for f in &a.faults {
        sim.set_fault(*f);
    }
    // First line: the path to open. Tests and scripts read exactly this line.
    println!("{}", sim.path().display());
    std::io::stdout().flush()?;
    eprintln!(
        "simulating a {protocol} board on {} (pty {}); stop with Ctrl-C; type `help` for commands",
        sim.path().display(),
        sim.stats().pty
    );

    let (tx, rx) = mpsc::channel::<String>();
    let stop = tx.clone();
    ctrlc::set_handler(move || {
        let _ = stop.send("quit".into());
    })
    .context("cannot install the signal handler")?;
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        // stdin closed (e.g. started in the background): keep serving until a signal.
    });
    while let Ok(line) = rx.recv() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["quit" | "exit"] => break,
            ["stats"] => println!("{}", serde_json::to_string(&sim.stats())?),
            ["clear"] => sim.clear_faults(),
            ["unplug"] => sim.unplug(),
            ["replug"] => sim.replug(),
            ["fault", name] => match name.parse::<Fault>() {
                Ok(f) => sim.set_fault(f),
                Err(e) => eprintln!("{e}"),
            },
            ["door", ch, state @ ("open" | "closed")] => match ch.parse() {
                Ok(ch) => sim.set_door(ch, *state == "open"),
                Err(_) => eprintln!("door: {ch:?} is not a channel number"),
            },
            ["power", address, state @ ("on" | "off")] => match address.parse() {
                Ok(n) => sim.power_neighbour(n, *state == "on"),
                Err(_) => eprintln!("power: {address:?} is not a board address"),
            },
            ["stock", slot, n] => match (slot.parse(), n.parse()) {
                (Ok(s), Ok(n)) => sim.set_stock(s, n),
                _ => eprintln!("stock: usage `stock SLOT COUNT`"),
            },
            _ => eprintln!(
                "commands: stats | fault NAME | clear | unplug | replug | door CH open|closed | \
                 power ADDRESS on|off | stock SLOT N | quit"
            ),
        }
        std::io::stdout().flush()?;
    }
    eprintln!("final stats: {}", serde_json::to_string(&sim.stats())?);
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `cabinet board`.
#[derive(Debug, Args)]
pub struct BoardArgs {
    /// Take the board's settings (port, protocol, address, channels, polarity, timeouts)
    /// from the cabinet's config instead of the options below.
    #[arg(long, conflicts_with_all = ["port", "protocol"])]
    config: Option<PathBuf>,
    /// With --config of a cabinet of several boards: the `[[boards]]` entry to talk to.
    #[arg(long = "board", requires = "config", value_name = "NAME")]
    board_name: Option<String>,
    /// Serial port path (e.g. /dev/cabinet-board, /dev/ttyUSB0, or what sim-board printed).
    #[arg(long, required_unless_present = "config")]
    port: Option<PathBuf>,
    /// Protocol the board speaks.
    #[arg(long, value_enum, required_unless_present = "config")]
    protocol: Option<ProtocolArg>,
    /// Baud rate (default: 57600 for vmc, 9600 for lockboard).
    #[arg(long)]
    baud: Option<u32>,
    /// VMC: slot byte order.
    #[arg(long, value_enum, default_value = "big")]
    slot_order: OrderArg,
    /// VMC: do not ask the board to use its drop sensor.
    #[arg(long)]
    no_drop_sensor: bool,
    /// Lock board: bus address 1-31.
    #[arg(long, default_value_t = 1)]
    address: u8,
    /// Lock board: channels on the board.
    #[arg(long, default_value_t = 24)]
    channels: u16,
    /// Lock board: door sensor polarity.
    #[arg(long, value_enum, default_value = "open_is_11")]
    polarity: PolarityArg,
    /// Seconds to wait for the board to start talking.
    #[arg(long, default_value_t = 3)]
    wait: u64,
    /// `scan`: how long each address has to answer, in milliseconds.
    #[arg(long, default_value_t = 300)]
    scan_reply_ms: u64,
    #[command(subcommand)]
    action: BoardAction,
}

/// What to do with the board.
#[derive(Debug, Subcommand)]
pub enum BoardAction {
    /// Dispense one item (VMC: run the motor; lock board: unlock and watch the door).
    Dispense {
        /// Slot number.
        slot: u16,
    },
    /// Unlock one door channel (lock boards).
    Unlock {
        /// Channel number.
        channel: u16,
    },
    /// Read machine status, or one slot's status.
    Status {
        /// Slot to read; without it, the whole machine.
        slot: Option<u16>,
    },
    /// Lock boards: ask every address 1-31 on the bus which boards answer, and how many
    /// doors each reports (commissioning a wall: a DIP switch set wrong shows here).
    Scan,
}

/// The settings `cabinet board` talks with: from the config's board (`--config`, with
/// `--board NAME` when it has several), or from the command line.
fn settings_of(a: &BoardArgs) -> anyhow::Result<BoardSettings> {
    if let Some(path) = &a.config {
        let cfg = cabinet_core::config::Config::load(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let names = || {
            cfg.boards
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return match (&a.board_name, cfg.boards.is_empty()) {
            (None, true) => Ok(cabinet_core::kiosk::board_settings(&cfg)),
            (Some(name), true) => bail!(
                "{} has no [[boards]], so no board {name:?}: leave --board out",
                path.display()
            ),
            (None, false) => bail!(
                "{} lists {} boards: name one with --board ({})",
                path.display(),
                cfg.boards.len(),
                names()
            ),
            (Some(name), false) => match cfg.boards.iter().find(|b| &b.name == name) {
                Some(entry) => Ok(cabinet_core::kiosk::entry_settings(&cfg, entry)),
                None => bail!(
                    "{} has no board {name:?}; its boards: {}",
                    path.display(),
                    names()
                ),
            },
        };
    }
    let (Some(port), Some(protocol)) = (&a.port, a.protocol) else {
        bail!("give --port and --protocol, or --config");
    };
    let mut settings = BoardSettings::new(protocol.into(), port);
    settings.baud = a.baud;
    settings.vmc.slot_order = a.slot_order.into();
    settings.vmc.drop_sensor = !a.no_drop_sensor;
    settings.lockboard.address = a.address;
    settings.lockboard.channels = a.channels;
    settings.lockboard.polarity = a.polarity.into();
    Ok(settings)
}

/// `scan`: every address of a lock boards' bus, one query each, one at a time.
fn scan(settings: &BoardSettings, reply: Duration) -> anyhow::Result<ExitCode> {
    use cabinet_board::Board;
    use cabinet_board::lockboard::{Bus, LockBoard};
    if settings.protocol != Protocol::Lockboard {
        bail!(
            "scan is for lock boards on an RS-485 bus; a VMC board has its port to itself \
             (use `status`)"
        );
    }
    let bus =
        std::sync::Arc::new(Bus::open(&settings.port, settings.baud()).map_err(explain_open)?);
    let mut answering = Vec::new();
    for address in 1..=31u8 {
        let mut s = settings.clone();
        s.lockboard.address = address;
        s.lockboard.reply_timeout = reply;
        let board = LockBoard::on_bus(&s, std::sync::Arc::clone(&bus))?;
        if let Ok(m) = board.machine_status() {
            // The reply's status bytes, one per eight doors.
            let status_bytes = m.raw.split_whitespace().count();
            answering.push(json!({
                "address": address,
                "status_bytes": status_bytes,
                "channels": status_bytes * 8,
                "open_doors": m.open_doors,
            }));
        }
    }
    let found = !answering.is_empty();
    let out = json!({
        "protocol": settings.protocol,
        "port": settings.port.display().to_string(),
        "action": "scan",
        "result": {"answering": answering, "ok": found},
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    if !found {
        eprintln!(
            "no lock board answered on {} at any address 1-31: check power, the A/B wires \
             and the baud rate",
            settings.port.display()
        );
    }
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Drive a board once and print JSON. Exit 0: done; 1: the board reported a failure;
/// 2: the board could not be reached.
pub fn board(a: BoardArgs) -> anyhow::Result<ExitCode> {
    let settings = settings_of(&a)?;
    if let BoardAction::Scan = a.action {
        return scan(&settings, Duration::from_millis(a.scan_reply_ms));
    }
    let protocol = settings.protocol;
    let port = settings.port.clone();
    let board = cabinet_board::open(&settings).map_err(explain_open)?;
    if protocol == Protocol::Vmc && !board.wait_ready(Duration::from_secs(a.wait)) {
        let h = board.health();
        if h.bad_frames > 0 {
            bail!(
                "bytes arrive on {} but no valid VMC POLL: wrong protocol or baud rate? \
                 (try --protocol lockboard, or --baud)",
                port.display()
            );
        }
        bail!(
            "no POLL from a VMC board on {} within {} s: is the board powered, the cable in, \
             and the protocol right (try --protocol lockboard)?",
            port.display(),
            a.wait
        );
    }
    let (action, value) = match a.action {
        BoardAction::Dispense { slot } => ("dispense", outcome_json(board.dispense(slot), slot)),
        BoardAction::Unlock { channel } => match board.unlock(channel) {
            Ok(o) => ("unlock", outcome_json(o, channel)),
            Err(BoardError::Unsupported { .. }) => {
                bail!("unlock is for lock boards; a VMC board dispenses: use `dispense {channel}`")
            }
            Err(e) => return Err(e.into()),
        },
        BoardAction::Status { slot: Some(slot) } => match board.slot_status(slot) {
            Ok(s) => ("status", json!({"slot": slot, "status": s, "ok": true})),
            Err(e) => bail!(explain_link(&e, &port, protocol)),
        },
        BoardAction::Status { slot: None } => match board.machine_status() {
            Ok(m) => ("status", json!({"machine": m, "ok": true})),
            Err(e) => bail!(explain_link(&e, &port, protocol)),
        },
        // Scanned on a bus of its own before this board was opened.
        BoardAction::Scan => return Ok(ExitCode::SUCCESS),
    };
    let ok = value.get("ok").and_then(|v| v.as_bool()).unwrap_or(false);
    let reached = value
        .get("reached_board")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let out = json!({
        "protocol": protocol,
        "port": port.display().to_string(),
        "action": action,
        "result": value,
        "health": board.health(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if ok {
        ExitCode::SUCCESS
    } else if reached {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    })
}

fn outcome_json(o: Outcome, slot: u16) -> serde_json::Value {
    json!({
        "slot": slot,
        "outcome": o,
        "ok": o.is_success(),
        "motor_may_have_moved": o.motor_may_have_moved(),
        "reached_board": o.motor_may_have_moved() || !matches!(o, Outcome::NoReply{..} | Outcome::PortGone{..} | Outcome::BadFrame{..}),
    })
}

fn explain_open(e: BoardError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn explain_link(e: &BoardError, port: &std::path::Path, protocol: Protocol) -> String {
    match e {
        BoardError::Link(cabinet_board::LinkFault::NoReply) => format!(
            "no reply from the {protocol} board on {}: check power, cable, address and protocol",
            port.display()
        ),
        BoardError::Link(cabinet_board::LinkFault::BadFrame) => format!(
            "only corrupt frames from {}: wrong protocol or baud rate, or a noisy cable",
            port.display()
        ),
        BoardError::Link(cabinet_board::LinkFault::PortGone) => {
            format!("serial port {} went away: check the cable", port.display())
        }
        other => other.to_string(),
    }
}
