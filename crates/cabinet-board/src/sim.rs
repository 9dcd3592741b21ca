//! A board simulator on the far end of a pseudo-terminal: the same codecs as the drivers,
//! the board's side of both protocols, fault injection on demand, and a count of every
//! physical action (motor runs, unlocks) so tests can assert "at most once physically".
//!
//! The simulator owns the pty master on its own thread. The host opens the slave by path,
//! exactly as it opens a USB-serial adapter. With [`SimConfig::link`] the simulator keeps a
//! stable symlink to the current pty (what the udev rule gives a real cabinet), so
//! [`Simulator::unplug`] and [`Simulator::replug`] look to the host like a cable pulled and
//! plugged back: the path vanishes, then reappears pointing at a new pty.
//!
//! The simulated VMC board plays what real boards do, not what our driver expects: it
//! keeps polling and keeps its PackNO memory while the host is away (a host restart is
//! the host closing and reopening the pty; only a replug powers the board afresh), it can
//! report late, twice or for another slot, and it can lack the machine-status command.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serialport::{SerialPort, TTYPort};

use crate::lockboard::DoorPolarity;
use crate::lockboard::codec::{self as lock, LockDecoded, LockDecoder, LockFrame, Side};
use crate::vmc::codec::{self as vmc, Decoded, Decoder, DispenseStatus, SlotOrder, VmcFrame};
use crate::{BoardError, Protocol, port};

/// How the simulated board is built.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Which protocol to speak.
    pub protocol: Protocol,
    /// Keep a symlink here pointing at the current pty (removed while unplugged).
    pub link: Option<PathBuf>,
    /// Slots (VMC motors 1..=slots) or channels (lock board) that exist.
    pub slots: u16,
    /// Items per slot at start (VMC check-slot answers "out of stock" at 0).
    pub stock: u32,
    /// VMC: time between POLLs (the spec says about 200 ms).
    pub poll_interval: Duration,
    /// VMC: the host must answer a POLL within this (100 ms).
    pub host_deadline: Duration,
    /// VMC: slot byte order.
    pub slot_order: SlotOrder,
    /// VMC: time the motor runs between "dispensing" and the final report.
    pub motor_time: Duration,
    /// Lock board: bus address 1–31.
    pub address: u8,
    /// Lock board: door sensor polarity.
    pub polarity: DoorPolarity,
    /// Lock board: status bytes in a query reply. `None`: one per 8 channels of `slots`,
    /// as the protocol implies; boards in the field send one more or one fewer, and a
    /// narrower reply leaves the last channels out.
    pub status_bytes: Option<usize>,
    /// Record every POLL reply latency (for the benchmark).
    pub record_latencies: bool,
    /// VMC: record when the first byte of each new host Dispense frame was read (for the
    /// dispatch benchmark); see [`Simulator::take_dispense_times`].
    pub record_dispense_times: bool,
    /// VMC: the board knows the machine-status command (0x53). Without it the board
    /// acknowledges the frame and does nothing else: it neither answers nor takes the
    /// frame's PackNO as its last, as boards without that command do.
    pub machine_status: bool,
}

impl SimConfig {
    /// A board with protocol defaults: 60 VMC slots or 24 lock channels.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            link: None,
            slots: match protocol {
                Protocol::Vmc => 60,
                Protocol::Lockboard => 24,
            },
            stock: 10,
            poll_interval: Duration::from_millis(200),
            host_deadline: Duration::from_millis(100),
            slot_order: SlotOrder::BigEndian,
            motor_time: Duration::from_millis(300),
            address: 1,
            polarity: DoorPolarity::OpenIs11,
            status_bytes: None,
            record_latencies: false,
            record_dispense_times: false,
            machine_status: true,
        }
    }
}

/// A fault to inject. Faults stay on until cleared, except [`Fault::BadChecksum`], which
/// corrupts a number of frames and then wears off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// VMC: motors jam (status 03).
    Jam,
    /// VMC: motors do not stop (status 04).
    MotorNotStopped,
    /// VMC: the motor turns but the drop sensor sees nothing (status 05).
    NoDropDetected,
    /// Lock board: the lock releases but the door stays shut.
    DoorStuck,
    /// VMC: the board acknowledges and runs the motor but never reports the outcome.
    /// Lock board: the board ignores every frame.
    NoReply,
    /// The board says nothing at all (powered off; VMC stops polling).
    Silent,
    /// Corrupt the checksum of the next N frames the board sends (POLLs excepted).
    BadChecksum(u32),
    /// Delay replies (lock board) or the final dispense report (VMC) by this long.
    SlowReply(Duration),
    /// VMC: lose the board's first ACK of each command (so the host resends the same
    /// PackNO) and send every report twice with the same PackNO.
    RepeatedPackNo,
    /// VMC: send every final dispense report a second time, as a new frame with its own
    /// PackNO, at the board's next turn (a board that reports again).
    ReportTwice,
    /// VMC: the final dispense report names the next slot instead of the one dispensed.
    ReportWrongSlot,
}

impl std::str::FromStr for Fault {
    type Err = String;
    /// Parse `jam`, `motor-not-stopped`, `no-drop`, `door-stuck`, `no-reply`, `silent`,
    /// `bad-checksum[=N]`, `slow-reply=MS`, `repeated-packno`, `report-twice`,
    /// `report-wrong-slot`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, arg) = s.split_once('=').map_or((s, None), |(n, a)| (n, Some(a)));
        let num = |a: Option<&str>, default: Option<u64>| -> Result<u64, String> {
            match a {
                Some(a) => a
                    .trim_end_matches("ms")
                    .parse()
                    .map_err(|_| format!("{name}: {a:?} is not a number")),
                None => default.ok_or_else(|| format!("{name} needs a value, e.g. {name}=1600")),
            }
        };
        Ok(match name.replace('_', "-").as_str() {
            "jam" => Fault::Jam,
            "motor-not-stopped" => Fault::MotorNotStopped,
            "no-drop" | "no-drop-detected" => Fault::NoDropDetected,
            "door-stuck" => Fault::DoorStuck,
            "no-reply" => Fault::NoReply,
            "silent" => Fault::Silent,
            "bad-checksum" => {
                Fault::BadChecksum(u32::try_from(num(arg, Some(1))?).unwrap_or(u32::MAX))
            }
            "slow-reply" => Fault::SlowReply(Duration::from_millis(num(arg, None)?)),
            "repeated-packno" => Fault::RepeatedPackNo,
            "report-twice" => Fault::ReportTwice,
            "report-wrong-slot" => Fault::ReportWrongSlot,
            other => {
                return Err(format!(
                    "unknown fault {other:?}; allowed: jam, motor-not-stopped, no-drop, door-stuck, \
                     no-reply, silent, bad-checksum[=N], slow-reply=MS, repeated-packno, \
                     report-twice, report-wrong-slot"
                ));
            }
        })
    }
}

#[derive(Debug, Clone, Default)]
struct Faults {
    jam: bool,
    motor_not_stopped: bool,
    no_drop: bool,
    door_stuck: bool,
    no_reply: bool,
    silent: bool,
    bad_checksum: u32,
    slow_reply: Option<Duration>,
    repeated_packno: bool,
    report_twice: bool,
    report_wrong_slot: bool,
}

/// What the simulator has seen and done.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SimStats {
    /// Motor runs started (VMC), resends excluded. The number tests defend.
    pub motor_actions: u64,
    /// Unlocks performed (lock board).
    pub unlock_actions: u64,
    /// Physical actions per slot/channel.
    pub actions_by_slot: BTreeMap<u16, u64>,
    /// VMC: POLLs sent.
    pub polls_sent: u64,
    /// VMC: POLLs answered by the host (in time or not).
    pub poll_replies: u64,
    /// VMC: host answers later than the deadline.
    pub missed_deadlines: u64,
    /// VMC: slowest host answer to a POLL, microseconds.
    pub poll_reply_max_us: u64,
    /// Frames from the host carrying a PackNO the board had already executed.
    pub host_resends_seen: u64,
    /// ACKs received from the host (POLL answers included).
    pub host_acks: u64,
    /// VMC: reports (dispense, slot, machine status) the board sent, resends excluded.
    pub reports_sent: u64,
    /// Good frames received from the host.
    pub frames_rx: u64,
    /// Frames from the host with a bad checksum or shape.
    pub bad_frames_rx: u64,
    /// Whether the pty is currently "plugged in".
    pub plugged: bool,
    /// Current pty path.
    pub pty: String,
}

#[derive(Debug)]
struct Ctl {
    faults: Faults,
    stats: SimStats,
    shutdown: bool,
    want_plugged: bool,
    doors: Vec<bool>,
    stock: BTreeMap<u16, u32>,
    latencies: Vec<u32>,
    dispense_times: Vec<(u16, Instant)>,
}

#[derive(Debug)]
struct Shared {
    cfg: SimConfig,
    ctl: Mutex<Ctl>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ctl> {
        self.ctl.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulated board. Dropping it stops the board and closes the pty.
#[derive(Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Create the pty and start serving.
    pub fn start(cfg: SimConfig) -> Result<Self, BoardError> {
        let (master, pty) = port::pty_pair()?;
        if let Some(link) = &cfg.link {
            relink(link, Some(&pty))?;
        }
        let slots = cfg.slots;
        let shared = Arc::new(Shared {
            ctl: Mutex::new(Ctl {
                faults: Faults::default(),
                stats: SimStats {
                    plugged: true,
                    pty: pty.display().to_string(),
                    ..SimStats::default()
                },
                shutdown: false,
                want_plugged: true,
                doors: vec![false; usize::from(slots)],
                stock: (1..=slots).map(|s| (s, cfg.stock)).collect(),
                latencies: Vec::new(),
                dispense_times: Vec::new(),
            }),
            cfg,
            changed: Condvar::new(),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("board-sim".into())
            .spawn(move || run(&s, master))
            .map_err(|e| BoardError::Open {
                path: "board-sim".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The path the host should open: the symlink if configured, else the pty itself.
    pub fn path(&self) -> PathBuf {
        match &self.shared.cfg.link {
            Some(l) => l.clone(),
            None => PathBuf::from(&self.shared.lock().stats.pty),
        }
    }

    /// Turn a fault on.
    pub fn set_fault(&self, fault: Fault) {
        let mut c = self.shared.lock();
        let f = &mut c.faults;
        match fault {
            Fault::Jam => f.jam = true,
            Fault::MotorNotStopped => f.motor_not_stopped = true,
            Fault::NoDropDetected => f.no_drop = true,
            Fault::DoorStuck => f.door_stuck = true,
            Fault::NoReply => f.no_reply = true,
            Fault::Silent => f.silent = true,
            Fault::BadChecksum(n) => f.bad_checksum = n,
            Fault::SlowReply(d) => f.slow_reply = Some(d),
            Fault::RepeatedPackNo => f.repeated_packno = true,
            Fault::ReportTwice => f.report_twice = true,
            Fault::ReportWrongSlot => f.report_wrong_slot = true,
        }
        tracing::info!(?fault, "simulator fault on");
    }

    /// Turn every fault off.
    pub fn clear_faults(&self) {
        self.shared.lock().faults = Faults::default();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.shared.lock().stats.clone()
    }

    /// Take the recorded POLL reply latencies (microseconds), if recording was configured.
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut self.shared.lock().latencies)
    }

    /// Take the recorded (slot, first byte read) of every new host Dispense frame (resends
    /// excluded), oldest first, if [`SimConfig::record_dispense_times`] was set.
    pub fn take_dispense_times(&self) -> Vec<(u16, Instant)> {
        std::mem::take(&mut self.shared.lock().dispense_times)
    }

    /// Block until `pred` holds for the counters or `timeout` passes; returns whether it held.
    /// This is how tests synchronise with the board: on its state, never on sleeps.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&SimStats) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut c = self.shared.lock();
        loop {
            if pred(&c.stats) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = match self.shared.changed.wait_timeout(c, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Set a lock channel's door open or closed (a customer closing it).
    pub fn set_door(&self, channel: u16, open: bool) {
        let mut c = self.shared.lock();
        if let Some(d) = usize::from(channel)
            .checked_sub(1)
            .and_then(|i| c.doors.get_mut(i))
        {
            *d = open;
        }
    }

    /// Set the stock of a VMC slot.
    pub fn set_stock(&self, slot: u16, count: u32) {
        self.shared.lock().stock.insert(slot, count);
    }

    /// Pull the cable: the pty closes and the path disappears. Returns once done.
    pub fn unplug(&self) {
        self.set_plugged(false);
    }

    /// Plug a cable back in: a new pty, the symlink pointing at it. Returns once done.
    pub fn replug(&self) {
        self.set_plugged(true);
    }

    fn set_plugged(&self, want: bool) {
        self.shared.lock().want_plugged = want;
        self.shared.changed.notify_all();
        self.wait_until(Duration::from_secs(5), |s| s.plugged == want);
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(link) = &self.shared.cfg.link {
            let _ = std::fs::remove_file(link);
        }
    }
}

fn relink(link: &Path, target: Option<&Path>) -> Result<(), BoardError> {
    let err = |e: std::io::Error| BoardError::Open {
        path: link.display().to_string(),
        message: format!("cannot update simulator link: {e}"),
    };
    match std::fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(t) = target {
        std::os::unix::fs::symlink(t, link).map_err(err)?;
    }
    Ok(())
}

/// The simulator thread: cable management, then one protocol step at a time.
fn run(shared: &Shared, master: TTYPort) {
    let cfg = &shared.cfg;
    let mut port = Some(master);
    let mut model = Model::new(cfg);
    loop {
        {
            let mut c = shared.lock();
            if c.shutdown {
                return;
            }
            if c.want_plugged != port.is_some() {
                if c.want_plugged {
                    match port::pty_pair() {
                        Ok((m, path)) => {
                            if let Some(link) = &cfg.link
                                && let Err(e) = relink(link, Some(&path))
                            {
                                tracing::warn!(error = %e, "simulator relink failed");
                            }
                            c.stats.pty = path.display().to_string();
                            port = Some(m);
                            model = Model::new(cfg);
                        }
                        Err(e) => tracing::warn!(error = %e, "simulator cannot create a pty"),
                    }
                } else {
                    port = None;
                    if let Some(link) = &cfg.link {
                        let _ = relink(link, None);
                    }
                }
                c.stats.plugged = port.is_some();
                shared.changed.notify_all();
            }
            if port.is_none() {
                // Unplugged: nothing to do until told otherwise.
                let _ = shared.changed.wait_timeout(c, Duration::from_millis(50));
                continue;
            }
        }
        if let Some(p) = port.as_mut() {
            model.step(shared, p);
        }
    }
}

/// Per-connection protocol state.
#[derive(Debug)]
enum Model {
    Vmc(VmcModel),
    Lock(LockDecoder),
}

impl Model {
    fn new(cfg: &SimConfig) -> Self {
        match cfg.protocol {
            Protocol::Vmc => Model::Vmc(VmcModel::new(cfg)),
            Protocol::Lockboard => Model::Lock(LockDecoder::new(
                Side::FromHost,
                usize::from(cfg.slots).div_ceil(8),
            )),
        }
    }

    fn step(&mut self, shared: &Shared, port: &mut TTYPort) {
        match self {
            Model::Vmc(m) => m.step(shared, port),
            Model::Lock(d) => lock_step(shared, d, port),
        }
    }
}

/// Read whatever arrives within `timeout`. `None`: nothing (or no host on the other end).
fn read_some(port: &mut TTYPort, timeout: Duration, buf: &mut [u8]) -> Option<usize> {
    let _ = port.set_timeout(timeout.max(Duration::from_millis(1)));
    match port.read(buf) {
        Ok(n) if n > 0 => Some(n),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => None,
        Err(_) => {
            // No host has the other end open (BrokenPipe). A real board keeps talking into
            // the void; we idle briefly instead of spinning.
            std::thread::sleep(timeout.min(Duration::from_millis(10)));
            None
        }
    }
}

fn send(shared: &Shared, port: &mut TTYPort, mut bytes: Vec<u8>, corruptible: bool) {
    if corruptible {
        let mut c = shared.lock();
        if c.faults.bad_checksum > 0 {
            c.faults.bad_checksum -= 1;
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x5A;
            }
        }
    }
    // A write error means no host is connected: the frame is lost, as on a real cable.
    let _ = port.write_all(&bytes);
}

#[derive(Debug)]
struct Pending {
    due: Instant,
    frame: VmcFrame,
}

#[derive(Debug)]
struct VmcModel {
    decoder: Decoder,
    next_poll: Instant,
    poll_sent: Option<Instant>,
    board_packno: u8,
    last_host_packno: Option<u8>,
    queue: VecDeque<Pending>,
    /// A report sent but not yet acknowledged by the host: resent at the next turn.
    unacked: Option<Vec<u8>>,
    /// Send this report once more after it was acknowledged (repeated-PackNO fault).
    repeat: Option<Vec<u8>>,
    /// We "lost" our ACK of a command: keep POLLing (no reports) until the host resends it,
    /// so the resend path is exercised deterministically (repeated-PackNO fault).
    await_resend: bool,
    /// When the read that began the decoder's pending (incomplete) frame returned.
    partial_since: Option<Instant>,
}

impl VmcModel {
    fn new(cfg: &SimConfig) -> Self {
        Self {
            decoder: Decoder::new(cfg.slot_order),
            next_poll: Instant::now(),
            poll_sent: None,
            board_packno: 0,
            last_host_packno: None,
            queue: VecDeque::new(),
            unacked: None,
            repeat: None,
            await_resend: false,
            partial_since: None,
        }
    }

    fn packno(&mut self) -> u8 {
        self.board_packno = if self.board_packno == 255 {
            1
        } else {
            self.board_packno + 1
        };
        self.board_packno
    }

    fn step(&mut self, shared: &Shared, port: &mut TTYPort) {
        let cfg = &shared.cfg;
        let now = Instant::now();
        let silent = shared.lock().faults.silent;
        if now >= self.next_poll && !silent {
            self.next_poll = now + cfg.poll_interval;
            // The board's turn: resend an unacknowledged report, else send a due report,
            // else POLL.
            if let Some(bytes) = self.unacked.clone() {
                send(shared, port, bytes, true);
            } else if let Some(bytes) = self.repeat.take() {
                send(shared, port, bytes, true);
            } else if !self.await_resend && self.queue.front().is_some_and(|p| p.due <= now) {
                if let Some(p) = self.queue.pop_front() {
                    let frame = with_packno(p.frame, self.packno());
                    let bytes = vmc::encode(&frame, cfg.slot_order);
                    if shared.lock().faults.repeated_packno {
                        self.repeat = Some(bytes.clone());
                    }
                    self.unacked = Some(bytes.clone());
                    send(shared, port, bytes, true);
                    shared.lock().stats.reports_sent += 1;
                    shared.changed.notify_all();
                }
            } else {
                send(shared, port, vmc::POLL.to_vec(), false);
                self.poll_sent = Some(Instant::now());
                shared.lock().stats.polls_sent += 1;
                shared.changed.notify_all();
            }
        }
        let mut buf = [0u8; 256];
        let wait = self
            .next_poll
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(20));
        let Some(n) = read_some(port, wait, &mut buf) else {
            return;
        };
        let got = Instant::now();
        // The first byte of a frame that began in an earlier read arrived back then.
        let mut first_byte = match self.partial_since {
            Some(t) if self.decoder.pending() > 0 => t,
            _ => got,
        };
        self.decoder.push(&buf[..n]);
        while let Some(ev) = self.decoder.next_event() {
            self.handle(shared, port, ev, got, first_byte);
            // Any further frame in this buffer began in this read.
            first_byte = got;
        }
        self.partial_since = (self.decoder.pending() > 0).then_some(first_byte);
    }

    fn handle(
        &mut self,
        shared: &Shared,
        port: &mut TTYPort,
        ev: Decoded,
        got: Instant,
        first_byte: Instant,
    ) {
        let cfg = &shared.cfg;
        let frame = match ev {
            Decoded::Frame(f, _) => f,
            Decoded::Error(..) => {
                shared.lock().stats.bad_frames_rx += 1;
                shared.changed.notify_all();
                return;
            }
        };
        let mut c = shared.lock();
        c.stats.frames_rx += 1;
        // Is this the host's answer to our POLL, and was it in time?
        let mut late = false;
        if let Some(sent) = self.poll_sent.take() {
            let us = u64::try_from(got.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
            c.stats.poll_replies += 1;
            c.stats.poll_reply_max_us = c.stats.poll_reply_max_us.max(us);
            if cfg.record_latencies {
                c.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            if got.duration_since(sent) > cfg.host_deadline {
                c.stats.missed_deadlines += 1;
                late = true;
            }
        }
        match frame {
            VmcFrame::Ack => {
                c.stats.host_acks += 1;
                self.unacked = None;
            }
            VmcFrame::Poll => {}
            f if late => {
                // The board moved on after the deadline; the host has to resend.
                tracing::debug!(frame = %f.describe(), "host answered too late; ignored");
            }
            VmcFrame::Dispense {
                packno,
                drop_sensor,
                slot,
                ..
            } => {
                if self.last_host_packno == Some(packno) {
                    c.stats.host_resends_seen += 1;
                    self.await_resend = false;
                    drop(c);
                    send(shared, port, vmc::ACK.to_vec(), true);
                    shared.changed.notify_all();
                    return;
                }
                self.last_host_packno = Some(packno);
                if cfg.record_dispense_times {
                    c.dispense_times.push((slot, first_byte));
                }
                let lose_ack = c.faults.repeated_packno;
                let now = Instant::now();
                if slot == 0 || slot > cfg.slots {
                    self.queue.push_back(Pending {
                        due: now,
                        frame: report(DispenseStatus::NoSuchMotor, slot),
                    });
                } else {
                    c.stats.motor_actions += 1;
                    *c.stats.actions_by_slot.entry(slot).or_default() += 1;
                    let f = c.faults.clone();
                    if !f.no_reply {
                        self.queue.push_back(Pending {
                            due: now,
                            frame: report(DispenseStatus::Dispensing, slot),
                        });
                        let status = if f.jam {
                            DispenseStatus::Jammed
                        } else if f.motor_not_stopped {
                            DispenseStatus::MotorNotStopped
                        } else if f.no_drop && drop_sensor {
                            DispenseStatus::NoDrop
                        } else {
                            if let Some(s) = c.stock.get_mut(&slot) {
                                *s = s.saturating_sub(1);
                            }
                            DispenseStatus::Success
                        };
                        let due = now + cfg.motor_time + f.slow_reply.unwrap_or_default();
                        let reported = if f.report_wrong_slot {
                            slot % cfg.slots + 1
                        } else {
                            slot
                        };
                        self.queue.push_back(Pending {
                            due,
                            frame: report(status, reported),
                        });
                        if f.report_twice {
                            // Queued behind the first: it goes out at the board's next turn
                            // with a PackNO of its own, so the host cannot drop it as a resend.
                            self.queue.push_back(Pending {
                                due,
                                frame: report(status, reported),
                            });
                        }
                    }
                }
                drop(c);
                if lose_ack {
                    self.await_resend = true;
                } else {
                    send(shared, port, vmc::ACK.to_vec(), true);
                }
            }
            VmcFrame::CheckSlot { packno, slot } => {
                let resend = self.last_host_packno == Some(packno);
                self.last_host_packno = Some(packno);
                if resend {
                    c.stats.host_resends_seen += 1;
                } else {
                    let status = match c.stock.get(&slot) {
                        None => 0x03,
                        Some(0) => 0x02,
                        Some(_) => 0x01,
                    };
                    self.queue.push_back(Pending {
                        due: Instant::now(),
                        frame: VmcFrame::SlotStatus {
                            packno: 0,
                            status,
                            slot,
                        },
                    });
                }
                drop(c);
                send(shared, port, vmc::ACK.to_vec(), true);
            }
            VmcFrame::MachineStatusRequest { .. } if !cfg.machine_status => {
                // A board without this command: ACK, nothing else, PackNO not remembered.
                drop(c);
                send(shared, port, vmc::ACK.to_vec(), true);
            }
            VmcFrame::MachineStatusRequest { packno } => {
                let resend = self.last_host_packno == Some(packno);
                self.last_host_packno = Some(packno);
                if resend {
                    c.stats.host_resends_seen += 1;
                } else {
                    self.queue.push_back(Pending {
                        due: Instant::now(),
                        frame: VmcFrame::MachineStatus {
                            packno: 0,
                            status: vec![0, 0, 0],
                        },
                    });
                }
                drop(c);
                send(shared, port, vmc::ACK.to_vec(), true);
            }
            other => {
                tracing::debug!(frame = %other.describe(), "simulator ignores frame");
            }
        }
        shared.changed.notify_all();
    }
}

fn report(status: DispenseStatus, slot: u16) -> VmcFrame {
    VmcFrame::DispenseReport {
        packno: 0,
        status,
        slot,
    }
}

fn with_packno(frame: VmcFrame, p: u8) -> VmcFrame {
    match frame {
        VmcFrame::DispenseReport { status, slot, .. } => VmcFrame::DispenseReport {
            packno: p,
            status,
            slot,
        },
        VmcFrame::SlotStatus { status, slot, .. } => VmcFrame::SlotStatus {
            packno: p,
            status,
            slot,
        },
        VmcFrame::MachineStatus { status, .. } => VmcFrame::MachineStatus { packno: p, status },
        other => other,
    }
}

fn lock_step(shared: &Shared, decoder: &mut LockDecoder, port: &mut TTYPort) {
    let cfg = &shared.cfg;
    let mut buf = [0u8; 64];
    let Some(n) = read_some(port, Duration::from_millis(20), &mut buf) else {
        return;
    };
    decoder.push(&buf[..n]);
    while let Some(ev) = decoder.next_event() {
        let frame = match ev {
            LockDecoded::Frame(f, _) => f,
            LockDecoded::Error(..) => {
                shared.lock().stats.bad_frames_rx += 1;
                shared.changed.notify_all();
                continue;
            }
        };
        let mut c = shared.lock();
        c.stats.frames_rx += 1;
        if c.faults.no_reply || c.faults.silent || frame.board() != cfg.address {
            shared.changed.notify_all();
            continue;
        }
        let reply = match frame {
            LockFrame::Unlock { board, channel } => {
                let Some(i) = usize::from(channel)
                    .checked_sub(1)
                    .filter(|i| *i < c.doors.len())
                else {
                    continue; // no such channel: a real board stays quiet
                };
                c.stats.unlock_actions += 1;
                *c.stats
                    .actions_by_slot
                    .entry(u16::from(channel))
                    .or_default() += 1;
                if !c.faults.door_stuck {
                    c.doors[i] = true;
                }
                let sensor_on = cfg.polarity.sensor(c.doors[i]);
                LockFrame::unlock_reply(board, channel, sensor_on)
            }
            LockFrame::Query { board } => {
                let sensors: Vec<bool> = c
                    .doors
                    .iter()
                    .map(|open| cfg.polarity.sensor(*open))
                    .collect();
                let width = cfg
                    .status_bytes
                    .unwrap_or_else(|| usize::from(cfg.slots).div_ceil(8));
                LockFrame::QueryReply {
                    board,
                    status: lock::status_bytes(&sensors, width),
                }
            }
            _ => continue,
        };
        let slow = c.faults.slow_reply;
        drop(c);
        shared.changed.notify_all();
        if let Some(d) = slow {
            // The board itself is slow: this delay is the fault being simulated.
            std::thread::sleep(d);
        }
        send(shared, port, lock::encode(&reply), true);
    }
}
