//! The VMC driver: the codec over a port, on its own thread so POLLs are answered within the
//! 100 ms deadline whatever the rest of the app is doing.
//!
//! The board is the master. The I/O thread answers every POLL, with the queued command if
//! there is one (the same bytes and PackNO again if the board did not acknowledge it: a
//! resend, which the board must not execute twice) and with ACK otherwise. It acknowledges
//! every report and drops a report whose PackNO repeats the previous one (the board resent
//! it because our ACK was lost). Callers block on a condition variable until their
//! operation's answer arrives. Those rules themselves — PackNOs, resends, giving up,
//! which report is news and which acknowledges our command — are the pure state machine
//! in `session.rs`, unit-tested frame by frame; this module adds the port, the thread,
//! the clock and the disk.
//!
//! Two habits of real boards shape what counts as an answer:
//! - A board remembers the PackNO it executed last, across our restarts, and silently
//!   skips a frame that repeats it. The PackNOs we may have used are kept on disk
//!   ([`crate::vmc::VmcSettings::packno_file`]), covered before a frame goes out, so a
//!   restarted driver continues after them.
//! - A board sends what it has to say when it has the turn, so a report can come late or
//!   twice. A report that arrived before our command went out belongs to an earlier
//!   command and is dropped; one that arrives after is taken for ours only if it is for
//!   our slot (the engine takes a slot whose report never came out of service, so an
//!   earlier command's late report cannot confirm the next one there).

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::codec::{self, Decoded, Decoder, DispenseStatus, VmcFrame};
use super::session::{PollAnswer, Report, Session, packno_add, packno_distance};
use crate::outcome::millis;
use crate::port::{self, SerialLink};
use crate::{
    Board, BoardError, BoardHealth, BoardSettings, FrameDirection, FrameRecord, LinkFault,
    MachineStatus, Outcome, Protocol, Reach, SlotStatus,
};

/// How long one read blocks; bounds how late shutdown and reconnect are noticed.
const READ_SLICE: Duration = Duration::from_millis(20);
/// How often a vanished port is tried again.
const REOPEN_EVERY: Duration = Duration::from_millis(100);
/// Frames kept for the raw console.
const FRAME_LOG: usize = 256;

/// A VMC board behind a serial port.
#[derive(Debug)]
pub struct VmcBoard {
    inner: Arc<Inner>,
    /// One operation at a time (one physical dispense at a time: docs/ARCHITECTURE.md, "The invariants"). The flag
    /// says whether the PackNO sequence has been synchronised with the board.
    op: Mutex<bool>,
    /// The last PackNO put on the wire, on disk. Used only under `op`.
    packnos: Mutex<PacknoStore>,
    io: Option<JoinHandle<()>>,
}

/// How many PackNOs one write to disk covers (see [`PacknoStore`]).
const PACKNO_RESERVE: u8 = 32;

/// The PackNOs the driver may have put on the wire, kept in a small file so that a
/// restarted driver never repeats the number the board executed last
/// ([`crate::vmc::VmcSettings::packno_file`]).
///
/// The file holds a *reservation* D: every number sent is at or before D, and a restart
/// continues at D + 1, which therefore cannot be the board's last. Sending D + 1 first
/// writes a new D (synced); after each acknowledged frame the reservation is topped up
/// when less than half of it is left. So the write is off the path from a command to
/// its motor byte except when frames outrun the top-ups (never in normal service).
#[derive(Debug)]
struct PacknoStore {
    path: Option<PathBuf>,
    file: Option<std::fs::File>,
    /// The reservation on disk, once written by this run.
    disk: Option<u8>,
    /// A write failed and was logged; later failures are not logged again.
    warned: bool,
}

impl PacknoStore {
    /// Open (or create) the file; returns the store and the reservation it holds, if
    /// valid: the next PackNO must come after it.
    fn open(path: Option<&Path>) -> (PacknoStore, Option<u8>) {
        let mut store = PacknoStore {
            path: path.map(Path::to_path_buf),
            file: None,
            disk: None,
            warned: false,
        };
        let Some(path) = path else {
            return (store, None);
        };
        let stored = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<u8>().ok())
            .filter(|p| *p != 0);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
        {
            Ok(f) => store.file = Some(f),
            Err(e) => store.warn(&e),
        }
        (store, stored)
    }

    /// Before `packno` goes on the wire: make sure the reservation on disk covers it.
    fn before_send(&mut self, packno: u8) {
        if self.file.is_some() && self.disk.is_none_or(|d| packno_add(d, 1) == packno) {
            self.save(packno_add(packno, PACKNO_RESERVE - 1));
        }
    }

    /// After `packno` was acknowledged: renew the reservation while it is not urgent.
    fn top_up(&mut self, packno: u8) {
        if let Some(d) = self.disk
            && packno_distance(packno, d) < PACKNO_RESERVE / 2
        {
            self.save(packno_add(packno, PACKNO_RESERVE));
        }
    }

    /// Write `reservation` durably. A failure is logged (once) and otherwise ignored: it
    /// only matters if the app restarts before the next success.
    fn save(&mut self, reservation: u8) {
        use std::os::unix::fs::FileExt;
        let Some(f) = &self.file else {
            return;
        };
        // Fixed width, written in place: one small write within one disk sector.
        let text = format!("{reservation:03}\n");
        match f
            .write_all_at(text.as_bytes(), 0)
            .and_then(|()| f.sync_data())
        {
            Ok(()) => self.disk = Some(reservation),
            Err(e) => self.warn(&e),
        }
    }

    fn warn(&mut self, e: &std::io::Error) {
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                path = %self.path.as_deref().unwrap_or(Path::new("")).display(),
                error = %e,
                "cannot keep the VMC PackNO on disk: after a restart the board may skip the first command"
            );
        }
    }
}

/// A first PackNO for a driver without a stored one: anything but a fixed number, which
/// would repeat the board's last one whenever the previous run sent as many frames.
fn random_packno() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = nanos ^ std::process::id().rotate_left(16);
    u8::try_from(mixed % 255).unwrap_or(0) + 1
}

#[derive(Debug)]
struct Inner {
    settings: BoardSettings,
    state: Mutex<State>,
    changed: Condvar,
    started: Instant,
}

#[derive(Debug, Default)]
struct State {
    shutdown: bool,
    port_open: bool,
    /// Incremented each time the port goes away, so a waiter can tell.
    port_losses: u64,
    last_poll: Option<Instant>,
    last_rx: Option<Instant>,
    /// PackNOs, the queued command and the reports: the protocol's rules (session.rs).
    session: Session,
    health: BoardHealth,
    frames: VecDeque<FrameRecord>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a thread panicked while holding it; the state is still the
        // best we have, and refusing to serve would strand a customer mid-dispense.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, st: &mut State, dir: FrameDirection, bytes: &[u8], meaning: String) {
        if st.frames.len() == FRAME_LOG {
            st.frames.pop_front();
        }
        st.frames.push_back(FrameRecord {
            dir,
            hex: crate::hex(bytes),
            meaning,
            at_ms: millis(self.started.elapsed()),
            board: None,
        });
    }
}

impl VmcBoard {
    /// Open the port and start answering POLLs.
    pub fn open(settings: &BoardSettings) -> Result<Self, BoardError> {
        let port = port::open(&settings.port, settings.baud(), READ_SLICE)?;
        Self::start(settings, Some(Box::new(port)))
    }

    /// Like [`VmcBoard::open`], but a port that cannot be opened yet is retried in the
    /// background instead of failing.
    pub fn open_lenient(settings: &BoardSettings) -> Result<Self, BoardError> {
        match port::open(&settings.port, settings.baud(), READ_SLICE) {
            Ok(p) => Self::start(settings, Some(Box::new(p))),
            Err(e) => {
                tracing::warn!(error = %e, "board port not available yet; retrying in the background");
                Self::start(settings, None)
            }
        }
    }

    fn start(
        settings: &BoardSettings,
        port: Option<Box<dyn SerialLink>>,
    ) -> Result<Self, BoardError> {
        let opened = port.is_some();
        let (mut packnos, stored) = PacknoStore::open(settings.vmc.packno_file.as_deref());
        // `Session::next_packno` increments before use: the first frame carries stored + 1.
        let next_packno = stored.unwrap_or_else(random_packno);
        // Reserve the first numbers now, at start, rather than in front of a customer.
        packnos.before_send(packno_add(next_packno, 1));
        tracing::debug!(stored, next_packno, "VMC PackNO sequence");
        let inner = Arc::new(Inner {
            settings: settings.clone(),
            state: Mutex::new(State {
                port_open: opened,
                session: Session::new(next_packno, settings.vmc.max_attempts),
                health: BoardHealth {
                    protocol: Protocol::Vmc.to_string(),
                    port: settings.port.display().to_string(),
                    ..BoardHealth::default()
                },
                ..State::default()
            }),
            changed: Condvar::new(),
            started: Instant::now(),
        });
        let thread_inner = Arc::clone(&inner);
        let io = std::thread::Builder::new()
            .name("vmc-io".into())
            .spawn(move || io_loop(&thread_inner, port))
            .map_err(|e| BoardError::Open {
                path: settings.port.display().to_string(),
                message: format!("cannot start I/O thread: {e}"),
            })?;
        Ok(Self {
            inner,
            // With a stored PackNO the sequence is already known to differ from the
            // board's last one: no status query is needed before the first command, which
            // saves a POLL round trip or two at every start.
            op: Mutex::new(stored.is_some()),
            packnos: Mutex::new(packnos),
            io: Some(io),
        })
    }

    /// Send `frame` in place of the next ACK and wait until the board acknowledged it.
    /// On failure, returns the fault and the reach. On success, returns the exchange to pass
    /// to [`Self::wait_report`], so that losing the port at any moment after this call
    /// began is reported as [`LinkFault::PortGone`], even before the report wait starts.
    fn send(&self, make: impl FnOnce(u8) -> VmcFrame) -> Result<Sent, (LinkFault, Reach)> {
        let vmc = &self.inner.settings.vmc;
        let usable = |st: &State| {
            if !st.port_open {
                return Err((LinkFault::PortGone, Reach::NotSent));
            }
            if st.last_poll.is_none_or(|t| t.elapsed() >= vmc.silent_after) {
                // No POLL lately: the board is off or the cable is out. Nothing was sent.
                return Err((LinkFault::NoReply, Reach::NotSent));
            }
            Ok(())
        };
        let packno = {
            let mut st = self.inner.lock();
            usable(&st)?;
            st.session.next_packno()
        };
        // Covered on disk before the frame can reach the wire (normally already); outside
        // the state lock, so the I/O thread keeps answering POLLs while the disk syncs.
        self.packnos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .before_send(packno);
        let mut st = self.inner.lock();
        usable(&st)?;
        let frame = make(packno);
        let slot = match &frame {
            VmcFrame::Dispense { slot, .. } | VmcFrame::CheckSlot { slot, .. } => Some(*slot),
            _ => None,
        };
        st.session.queue(
            codec::encode(&frame, vmc.slot_order),
            frame.describe(),
            slot,
        );
        let losses = st.port_losses;
        let bad_before = st.health.bad_frames;
        // Each attempt waits for one POLL cycle; a silent board ends it via silent_after.
        let deadline = Instant::now() + vmc.silent_after * u32::from(vmc.max_attempts.max(1) + 1);
        loop {
            let progress = st.session.progress();
            let (acked, gave_up, sent) =
                progress.map_or((false, true, false), |p| (p.acked, p.gave_up, p.sent));
            let reach = if sent {
                Reach::Unconfirmed
            } else {
                Reach::NotSent
            };
            if acked {
                st.session.finish();
                drop(st);
                // The motor command is on its way: renewing the reservation now costs it
                // nothing (the report takes a motor run to come).
                self.packnos
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .top_up(packno);
                return Ok(Sent {
                    port_losses: losses,
                });
            }
            if st.port_losses != losses || st.shutdown {
                st.session.finish();
                return Err((LinkFault::PortGone, reach));
            }
            let now = Instant::now();
            if gave_up || now >= deadline {
                st.session.finish();
                st.health.timeouts += 1;
                let fault = if st.health.bad_frames > bad_before {
                    LinkFault::BadFrame
                } else {
                    LinkFault::NoReply
                };
                return Err((fault, reach));
            }
            st = wait(&self.inner, st, deadline - now);
        }
    }

    /// Wait for a report that `pick` accepts (returning `Some`), until `timeout`.
    fn wait_report<T>(
        &self,
        sent: Sent,
        timeout: Duration,
        mut pick: impl FnMut(&VmcFrame) -> Option<T>,
    ) -> Result<T, LinkFault> {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        let losses = sent.port_losses;
        let bad_before = st.health.bad_frames;
        loop {
            while let Some(ev) = st.session.next_report() {
                if let Some(v) = pick(&ev) {
                    return Ok(v);
                }
            }
            if st.port_losses != losses || st.shutdown {
                return Err(LinkFault::PortGone);
            }
            let now = Instant::now();
            if now >= deadline {
                st.health.timeouts += 1;
                return Err(if st.health.bad_frames > bad_before {
                    LinkFault::BadFrame
                } else {
                    LinkFault::NoReply
                });
            }
            st = wait(&self.inner, st, deadline - now);
        }
    }

    /// Take the operation lock, first making sure our next PackNO differs from the last one
    /// the board executed.
    ///
    /// A board compares PackNOs only: after our process restarts, a new command that happens
    /// to reuse the PackNO of the board's last command would be taken for a resend and
    /// silently not executed. So the first exchange of a driver's life is a harmless machine
    /// status query; whether or not the board takes it for a resend, afterwards the board's
    /// last PackNO is that query's, and ours moves on.
    fn op_lock(&self) -> MutexGuard<'_, bool> {
        let mut synced = self.op.lock().unwrap_or_else(|p| p.into_inner());
        if !*synced && let Ok(sent) = self.send(|packno| VmcFrame::MachineStatusRequest { packno })
        {
            let _ = self.wait_report(sent, self.inner.settings.vmc.query_timeout / 4, |ev| {
                matches!(ev, VmcFrame::MachineStatus { .. }).then_some(())
            });
            *synced = true;
        }
        synced
    }
}

/// A frame the board acknowledged, and the port's loss count when sending began.
#[derive(Debug, Clone, Copy)]
struct Sent {
    port_losses: u64,
}

fn wait<'a>(inner: &'a Inner, st: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
    match inner.changed.wait_timeout(st, d) {
        Ok((g, _)) => g,
        Err(p) => p.into_inner().0,
    }
}

impl Board for VmcBoard {
    fn protocol(&self) -> Protocol {
        Protocol::Vmc
    }

    fn dispense(&self, slot: u16) -> Outcome {
        let _one_at_a_time = self.op_lock();
        let vmc = &self.inner.settings.vmc;
        let span = tracing::info_span!("vmc_dispense", slot);
        let _g = span.enter();
        let sent = match self.send(|packno| VmcFrame::Dispense {
            packno,
            drop_sensor: vmc.drop_sensor,
            elevator: vmc.elevator,
            slot,
        }) {
            Ok(sent) => sent,
            Err((fault, reach)) => {
                tracing::warn!(?fault, ?reach, "dispense command not acknowledged");
                return Outcome::link(fault, reach);
            }
        };
        tracing::debug!("dispense acknowledged by board");
        let result = self.wait_report(sent, vmc.report_timeout, |ev| match ev {
            VmcFrame::DispenseReport {
                status, slot: s, ..
            } if *s == slot => {
                if status.is_final() {
                    Some(*status)
                } else {
                    None
                }
            }
            VmcFrame::DispenseReport { slot: s, .. } => {
                tracing::warn!(reported = s, "report for another slot ignored");
                None
            }
            _ => None,
        });
        let outcome = match result {
            Ok(DispenseStatus::Success) => Outcome::Dispensed {
                drop_detected: vmc.drop_sensor.then_some(true),
            },
            Ok(DispenseStatus::NoDrop) => Outcome::Dispensed {
                drop_detected: Some(false),
            },
            Ok(DispenseStatus::Jammed) => Outcome::Jammed,
            Ok(DispenseStatus::MotorNotStopped) => Outcome::MotorNotStopped,
            Ok(DispenseStatus::NoSuchMotor) => Outcome::NoSuchSlot,
            Ok(DispenseStatus::Terminated) => Outcome::Terminated,
            Ok(DispenseStatus::Other(code)) => Outcome::UnknownStatus { code },
            Ok(DispenseStatus::Dispensing) => Outcome::UnknownStatus { code: 0x01 },
            Err(fault) => Outcome::link(fault, Reach::Acknowledged),
        };
        tracing::info!(outcome = outcome.name(), "dispense finished");
        outcome
    }

    fn unlock(&self, _channel: u16) -> Result<Outcome, BoardError> {
        Err(BoardError::Unsupported {
            protocol: Protocol::Vmc,
            operation: "unlock",
        })
    }

    fn slot_status(&self, slot: u16) -> Result<SlotStatus, BoardError> {
        let _one_at_a_time = self.op_lock();
        let sent = self
            .send(|packno| VmcFrame::CheckSlot { packno, slot })
            .map_err(|(f, _)| BoardError::Link(f))?;
        let status = self
            .wait_report(sent, self.inner.settings.vmc.query_timeout, |ev| match ev {
                VmcFrame::SlotStatus {
                    status, slot: s, ..
                } if *s == slot => Some(*status),
                _ => None,
            })
            .map_err(BoardError::Link)?;
        Ok(match status {
            0x01 => SlotStatus::Ready,
            0x02 => SlotStatus::OutOfStock,
            0x03 => SlotStatus::NoSuchSlot,
            0x04 => SlotStatus::Paused,
            0x06 => SlotStatus::DeliveryDoorUnlocked,
            other => SlotStatus::Unknown(other),
        })
    }

    fn machine_status(&self) -> Result<MachineStatus, BoardError> {
        let _one_at_a_time = self.op_lock();
        let sent = self
            .send(|packno| VmcFrame::MachineStatusRequest { packno })
            .map_err(|(f, _)| BoardError::Link(f))?;
        let status = self
            .wait_report(sent, self.inner.settings.vmc.query_timeout, |ev| match ev {
                VmcFrame::MachineStatus { status, .. } => Some(status.clone()),
                _ => None,
            })
            .map_err(BoardError::Link)?;
        Ok(MachineStatus {
            delivery_door_open: status.first().map(|b| *b != 0),
            drop_sensor_ok: status.get(1).map(|b| *b == 0),
            elevator_ok: status.get(2).map(|b| *b == 0),
            open_doors: None,
            raw: crate::hex(&status),
        })
    }

    fn health(&self) -> BoardHealth {
        let st = self.inner.lock();
        let mut h = st.health.clone();
        h.last_rx_ms_ago = st.last_rx.map(|t| millis(t.elapsed()));
        h.connected = st.port_open
            && st
                .last_poll
                .is_some_and(|t| t.elapsed() < self.inner.settings.vmc.silent_after);
        h
    }

    fn recent_frames(&self) -> Vec<FrameRecord> {
        self.inner.lock().frames.iter().cloned().collect()
    }

    fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let silent_after = self.inner.settings.vmc.silent_after;
        let mut st = self.inner.lock();
        loop {
            if st.port_open && st.last_poll.is_some_and(|t| t.elapsed() < silent_after) {
                drop(st);
                // Synchronise PackNOs now rather than in front of the first customer.
                drop(self.op_lock());
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = wait(&self.inner, st, deadline - now);
        }
    }
}

impl Drop for VmcBoard {
    fn drop(&mut self) {
        self.inner.lock().shutdown = true;
        self.inner.changed.notify_all();
        if let Some(io) = self.io.take() {
            let _ = io.join();
        }
    }
}

/// The I/O thread: owns the port, answers POLLs, reopens the port when it comes back.
fn io_loop(inner: &Inner, mut port: Option<Box<dyn SerialLink>>) {
    let settings = &inner.settings;
    let mut decoder = Decoder::new(settings.vmc.slot_order);
    let mut buf = [0u8; 256];
    loop {
        if inner.lock().shutdown {
            return;
        }
        let Some(p) = port.as_mut() else {
            match port::open(&settings.port, settings.baud(), READ_SLICE) {
                Ok(mut p) => {
                    let _ = p.discard_input();
                    decoder = Decoder::new(settings.vmc.slot_order);
                    let mut st = inner.lock();
                    st.port_open = true;
                    st.health.reconnects += 1;
                    tracing::info!(port = %settings.port.display(), "serial port is back");
                    inner.changed.notify_all();
                    drop(st);
                    port = Some(Box::new(p));
                }
                Err(_) => {
                    let st = inner.lock();
                    if !st.shutdown {
                        drop(wait(inner, st, REOPEN_EVERY));
                    }
                }
            }
            continue;
        };
        match p.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                let got_at = Instant::now();
                decoder.push(&buf[..n]);
                while let Some(ev) = decoder.next_event() {
                    if let Err(e) = handle(inner, p.as_mut(), ev, got_at) {
                        tracing::warn!(error = %e, "serial write failed");
                        lose_port(inner, &mut port);
                        break;
                    }
                }
            }
            Err(e) if port::is_gone(&e) => {
                tracing::warn!(error = %e, port = %settings.port.display(), "serial port gone");
                lose_port(inner, &mut port);
            }
            Err(_) => {
                // The line is quiet: a partial frame in the buffer will never complete.
                while decoder.on_idle() {
                    while let Some(ev) = decoder.next_event() {
                        if handle(inner, p.as_mut(), ev, Instant::now()).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
}

fn lose_port(inner: &Inner, port: &mut Option<Box<dyn SerialLink>>) {
    *port = None;
    let mut st = inner.lock();
    st.port_open = false;
    st.port_losses += 1;
    st.last_poll = None;
    inner.changed.notify_all();
}

fn handle(
    inner: &Inner,
    port: &mut dyn SerialLink,
    ev: Decoded,
    got_at: Instant,
) -> std::io::Result<()> {
    let mut st = inner.lock();
    let (frame, raw) = match ev {
        Decoded::Frame(f, raw) => (f, raw),
        Decoded::Error(e, raw) => {
            st.health.bad_frames += 1;
            tracing::warn!(error = %e, frame = %crate::hex(&raw), "bad frame from board dropped");
            inner.record(&mut st, FrameDirection::Rx, &raw, format!("bad frame: {e}"));
            inner.changed.notify_all();
            return Ok(());
        }
    };
    let now = Instant::now();
    st.last_rx = Some(now);
    st.health.frames_rx += 1;
    match frame {
        VmcFrame::Poll => {
            st.last_poll = Some(now);
            let answer = st.session.on_poll();
            let reply: Vec<u8> = match answer {
                PollAnswer::Ack => codec::ACK.to_vec(),
                PollAnswer::Command {
                    bytes,
                    describe,
                    resend,
                    stale_dropped,
                } => {
                    if stale_dropped > 0 {
                        tracing::info!(
                            stale = stale_dropped,
                            "board reports from before this command dropped"
                        );
                    }
                    let what = if resend {
                        st.health.resends += 1;
                        format!("{describe} (resend)")
                    } else {
                        describe
                    };
                    inner.record(&mut st, FrameDirection::Tx, &bytes, what);
                    bytes
                }
            };
            port.write_all(&reply)?;
            st.health.frames_tx += 1;
            st.health.polls_answered += 1;
            let us = u64::try_from(got_at.elapsed().as_micros()).unwrap_or(u64::MAX);
            st.health.poll_reply_max_us = st.health.poll_reply_max_us.max(us);
            inner.changed.notify_all();
        }
        VmcFrame::Ack => {
            inner.record(&mut st, FrameDirection::Rx, &raw, "ACK".into());
            if st.session.on_ack() {
                inner.changed.notify_all();
            }
        }
        other => {
            // Every board frame but POLL and ACK gets an ACK, resends included: the board
            // resends because it missed our previous ACK.
            port.write_all(&codec::ACK)?;
            st.health.frames_tx += 1;
            let describe = other.describe();
            let packno = other.packno();
            match st.session.on_report(other) {
                Report::Repeated => {
                    inner.record(
                        &mut st,
                        FrameDirection::Rx,
                        &raw,
                        format!("{describe} (repeated PackNO, ignored)"),
                    );
                    st.health.duplicate_frames += 1;
                    tracing::debug!(packno, "repeated PackNO from board ignored");
                    return Ok(());
                }
                Report::New { .. } => inner.record(&mut st, FrameDirection::Rx, &raw, describe),
            }
            inner.changed.notify_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packno_arithmetic_wraps_within_1_to_255() {
        assert_eq!(packno_add(1, 1), 2);
        assert_eq!(packno_add(255, 1), 1);
        assert_eq!(packno_add(250, 31), 26);
        assert_eq!(packno_distance(250, 26), 31);
        assert_eq!(packno_distance(7, 7), 0);
        assert_eq!(packno_distance(8, 7), 254);
    }

    /// Whatever was sent before a crash, the next run's first number (reservation + 1)
    /// is none of the last 200 numbers sent, and the file is written once per 16 frames
    /// or less often, never in front of a frame once the reservation is established.
    #[test]
    fn a_restart_never_continues_at_a_number_sent_since_the_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("packno");
        let (mut store, stored) = PacknoStore::open(Some(&path));
        assert_eq!(stored, None);
        let mut next = 200u8;
        store.before_send(packno_add(next, 1));
        let mut sent = Vec::new();
        let mut writes_in_front = 0;
        for _ in 0..1000 {
            next = packno_add(next, 1);
            let before = store.disk;
            store.before_send(next);
            if store.disk != before {
                writes_in_front += 1;
            }
            sent.push(next);
            store.top_up(next);
            let on_disk: u8 = std::fs::read_to_string(&path)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let restart_at = packno_add(on_disk, 1);
            let recent = &sent[sent.len().saturating_sub(200)..];
            assert!(
                !recent.contains(&restart_at),
                "restart at {restart_at} after {next}"
            );
        }
        assert_eq!(writes_in_front, 0, "writes in front of a frame");
    }
}
