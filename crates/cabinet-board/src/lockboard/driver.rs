//! The lock-board driver: request/reply on the caller's thread, one transaction at a time.
//!
//! Unlocking is physical, so it is sent once and never repeated: if its reply is lost or
//! corrupt, the driver asks the board for the door states instead (a read-only query) and
//! decides from what the door sensor says.
//!
//! A query reply's width is the board's word on how many doors it reports: the driver
//! takes the width the board sends (and expects it from then on), and a channel beyond
//! it is unknown: its door cannot be watched, so it is never unlocked (`NoSuchSlot`,
//! nothing sent) and its status reads `DoorUnknown`. A width that disagrees with
//! `board.lockboard.channels` is logged once, with both numbers.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::bus::{Bus, Priority, READ_SLICE, Turn};
use super::codec::{self, LockDecoded, LockDecoder, LockFrame, Side};
use crate::outcome::millis;
use crate::port;
use crate::{
    Board, BoardError, BoardHealth, BoardSettings, FrameDirection, FrameRecord, LinkFault,
    MachineStatus, Outcome, Protocol, Reach, SlotStatus,
};

/// Silence that ends a frame. At 9600 baud bytes come ~1 ms apart, but USB-serial adapters
/// hand them over in bursts up to ~16 ms apart; a reply narrower than expected is only
/// known to be complete after such a gap.
const IDLE_GAP: Duration = Duration::from_millis(50);
const FRAME_LOG: usize = 256;
/// After an unanswered unlock, this many unanswered door queries in a row end the watch.
const GIVE_UP_AFTER_UNANSWERED: u32 = 3;
/// A board that stopped answering is probed again after this, then twice as long after
/// each further missed probe up to [`PROBE_BACKOFF_MAX`]: a dead board costs its bus one
/// timed-out exchange per probe, which is time the boards beside it cannot use.
const PROBE_BACKOFF_MIN: Duration = Duration::from_secs(1);
const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A lock board on an RS-485 bus, alone or beside others (see [`Bus`]).
#[derive(Debug)]
pub struct LockBoard {
    settings: BoardSettings,
    started: Instant,
    bus: Arc<Bus>,
    /// Held for a whole unlock and its door watch: one physical action at a time.
    action: Mutex<()>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    health: BoardHealth,
    last_ok: Option<Instant>,
    frames: VecDeque<FrameRecord>,
    /// Transactions failed since the last answered one.
    failures: u32,
    /// How the last failed transaction failed.
    last_fault: LinkFault,
    /// While the board is silent: no health query before this.
    next_probe: Option<Instant>,
    /// Health probes missed in a row: the backoff's exponent.
    probes_missed: u32,
    /// Status bytes in the board's last query reply: the width expected from then on.
    reply_width: Option<usize>,
    /// The reply width a mismatch with the configured channels was last logged for.
    width_logged: Option<usize>,
}

/// Why a transaction failed, and whether the request got onto the wire.
struct Failed {
    fault: LinkFault,
    written: bool,
}

impl LockBoard {
    /// Open the port as a bus of its own. The board is not contacted until the first
    /// operation.
    pub fn open(settings: &BoardSettings) -> Result<Self, BoardError> {
        settings.lockboard.validate()?;
        let bus = Bus::open(&settings.port, settings.baud())?;
        Self::on_bus(settings, Arc::new(bus))
    }

    /// Like [`LockBoard::open`], but a port that cannot be opened yet is opened on first
    /// use instead of failing.
    pub fn open_lenient(settings: &BoardSettings) -> Result<Self, BoardError> {
        settings.lockboard.validate()?;
        let bus = Bus::open_lenient(&settings.port, settings.baud());
        Self::on_bus(settings, Arc::new(bus))
    }

    /// The board at `settings.lockboard.address` on a bus it shares with others. The
    /// settings' port and baud must be the bus's.
    pub fn on_bus(settings: &BoardSettings, bus: Arc<Bus>) -> Result<Self, BoardError> {
        settings.lockboard.validate()?;
        if settings.port != bus.path() || settings.baud() != bus.baud() {
            return Err(BoardError::InvalidSetting {
                field: "board.port",
                message: format!(
                    "board {} is set to {} at {} baud, but its bus is {} at {} baud",
                    settings.lockboard.address,
                    settings.port.display(),
                    settings.baud(),
                    bus.path().display(),
                    bus.baud()
                ),
            });
        }
        bus.attach();
        Ok(Self {
            settings: settings.clone(),
            started: Instant::now(),
            bus,
            action: Mutex::new(()),
            state: Mutex::new(State {
                health: BoardHealth {
                    protocol: Protocol::Lockboard.to_string(),
                    port: settings.port.display().to_string(),
                    ..BoardHealth::default()
                },
                last_ok: None,
                frames: VecDeque::new(),
                failures: 0,
                last_fault: LinkFault::NoReply,
                next_probe: None,
                probes_missed: 0,
                reply_width: None,
                width_logged: None,
            }),
        })
    }

    /// The bus this board is on.
    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    fn lock(&self) -> MutexGuard<'_, State> {
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

    /// Write `request` in a turn on the bus at `priority` and wait for the reply `pick`
    /// accepts. A health query to a board that has gone silent waits for its next probe
    /// time and fails without touching the bus until then.
    fn transact<T>(
        &self,
        priority: Priority,
        request: &LockFrame,
        pick: impl FnMut(&LockFrame) -> Option<T>,
    ) -> Result<T, Failed> {
        if priority == Priority::Health {
            let st = self.lock();
            if st.next_probe.is_some_and(|t| Instant::now() < t) {
                return Err(Failed {
                    fault: st.last_fault,
                    written: false,
                });
            }
        }
        let mut turn = self.bus.turn(priority);
        let mut st = self.lock();
        let r = self.exchange(&mut turn, &mut st, request, pick);
        drop(turn);
        match &r {
            Ok(_) => {
                if st.failures > 0 {
                    tracing::info!(
                        board = self.settings.lockboard.address,
                        "lock board answers again"
                    );
                }
                st.failures = 0;
                st.probes_missed = 0;
                st.next_probe = None;
                st.last_ok = Some(Instant::now());
            }
            Err(f) => {
                st.failures += 1;
                st.last_fault = f.fault;
                // Only missed probes lengthen the wait: an unlock's door watch fails many
                // exchanges in a row, but that is one silence, not many.
                if priority == Priority::Health {
                    st.probes_missed = st.probes_missed.saturating_add(1);
                }
                // Alone on its bus, a silent board stalls nobody: ask it whenever asked.
                st.next_probe = (self.bus.boards() > 1).then(|| {
                    let backoff = PROBE_BACKOFF_MIN
                        .saturating_mul(1 << st.probes_missed.min(5))
                        .min(PROBE_BACKOFF_MAX);
                    Instant::now() + backoff
                });
            }
        }
        r
    }

    fn exchange<T>(
        &self,
        turn: &mut Turn<'_>,
        st: &mut State,
        request: &LockFrame,
        mut pick: impl FnMut(&LockFrame) -> Option<T>,
    ) -> Result<T, Failed> {
        let ls = &self.settings.lockboard;
        let bytes = codec::encode(request);
        let Some(port) = turn.port() else {
            return Err(Failed {
                fault: LinkFault::PortGone,
                written: false,
            });
        };
        // A reply that arrived after an earlier timeout (ours or another board's) must not
        // answer this request.
        let _ = port.discard_input();
        if let Err(e) = port.write_all(&bytes) {
            tracing::warn!(error = %e, "serial write failed");
            turn.lost();
            return Err(Failed {
                fault: LinkFault::PortGone,
                written: false,
            });
        }
        st.health.frames_tx += 1;
        self.record(st, FrameDirection::Tx, &bytes, request.describe());

        let deadline = Instant::now() + ls.reply_timeout;
        let width = st.reply_width.unwrap_or_else(|| ls.status_bytes());
        let mut decoder = LockDecoder::new(Side::FromBoard, width);
        let mut bad = false;
        let mut good = false;
        let mut bytes_seen = false;
        let mut buf = [0u8; 64];
        loop {
            let now = Instant::now();
            if now >= deadline {
                st.health.timeouts += 1;
                // Bytes that never made a frame: wrong protocol or baud, or a noisy line.
                let fault = if bad || (bytes_seen && !good) {
                    LinkFault::BadFrame
                } else {
                    LinkFault::NoReply
                };
                return Err(Failed {
                    fault,
                    written: true,
                });
            }
            let Some(port) = turn.port() else {
                return Err(Failed {
                    fault: LinkFault::PortGone,
                    written: true,
                });
            };
            // With a partial frame buffered, a short silence is news: the frame is over.
            let slice = if decoder.pending() > 0 {
                IDLE_GAP
            } else {
                READ_SLICE * 5
            };
            let _ = port.set_read_timeout((deadline - now).min(slice));
            let n = match port.read(&mut buf) {
                Ok(n) => n,
                Err(e) if port::is_gone(&e) => {
                    tracing::warn!(error = %e, "serial port gone");
                    turn.lost();
                    return Err(Failed {
                        fault: LinkFault::PortGone,
                        written: true,
                    });
                }
                Err(_) => 0,
            };
            if n > 0 {
                bytes_seen = true;
                decoder.push(&buf[..n]);
            } else if decoder.pending() == 0 || !decoder.on_idle() {
                continue;
            }
            while let Some(ev) = decoder.next_event() {
                match ev {
                    LockDecoded::Error(e, raw) => {
                        bad = true;
                        st.health.bad_frames += 1;
                        tracing::warn!(error = %e, frame = %crate::hex(&raw), "bad frame from board dropped");
                        self.record(st, FrameDirection::Rx, &raw, format!("bad frame: {e}"));
                    }
                    LockDecoded::Frame(f, raw) => {
                        good = true;
                        self.record(st, FrameDirection::Rx, &raw, f.describe());
                        if f.board() != ls.address {
                            tracing::warn!(
                                asked = ls.address,
                                answered = f.board(),
                                "a reply from another address is not this board's answer"
                            );
                            continue;
                        }
                        st.health.frames_rx += 1;
                        if let Some(v) = pick(&f) {
                            return Ok(v);
                        }
                    }
                }
            }
        }
    }

    fn query(&self, priority: Priority) -> Result<Vec<u8>, Failed> {
        let ls = &self.settings.lockboard;
        let query = LockFrame::Query { board: ls.address };
        let status = self.transact(priority, &query, |f| match f {
            LockFrame::QueryReply { status, .. } => Some(status.clone()),
            _ => None,
        })?;
        let width = status.len();
        let mut st = self.lock();
        st.reply_width = Some(width);
        if width != ls.status_bytes() && st.width_logged != Some(width) {
            st.width_logged = Some(width);
            tracing::warn!(
                board = ls.address,
                port = %self.settings.port.display(),
                reply_status_bytes = width,
                configured_channels = ls.channels,
                "{}",
                width_mismatch(ls.channels, width)
            );
        }
        Ok(status)
    }

    /// The door state of `channel`, `None` when the reply does not carry it.
    fn door_open(&self, status: &[u8], channel: u16) -> Option<bool> {
        codec::channel_sensor(status, channel).map(|s| self.settings.lockboard.polarity.is_open(s))
    }

    fn do_unlock(&self, channel: u16, priority: Priority) -> Outcome {
        let ls = &self.settings.lockboard;
        let span = tracing::info_span!("lock_unlock", channel, board = ls.address);
        let _g = span.enter();
        let Ok(ch) = u8::try_from(channel) else {
            return Outcome::NoSuchSlot;
        };
        if channel == 0 || channel > ls.channels {
            return Outcome::NoSuchSlot;
        }
        let _action = self.action.lock().unwrap_or_else(|p| p.into_inner());
        // Channels 1-8 are in every reply; for a later one, learn the board's reply width
        // first (a read-only query), since a door the replies do not carry cannot be watched.
        if self.lock().reply_width.is_none() && channel > 8 {
            let _ = self.query(priority);
        }
        let reply_width = self.lock().reply_width;
        if let Some(width) = reply_width
            && usize::from(channel) > width * 8
        {
            tracing::warn!(
                reply_status_bytes = width,
                "channel {channel} is not in the board's status replies (channels 1-{}): \
                 its door cannot be watched, so it is not unlocked",
                width * 8
            );
            return Outcome::NoSuchSlot;
        }
        let unlock = LockFrame::Unlock {
            board: ls.address,
            channel: ch,
        };
        let reply = self.transact(priority, &unlock, |f| match f {
            LockFrame::UnlockReply { channel: c, .. } if *c == ch => f.sensor_on(),
            _ => None,
        });
        let (mut reach, mut fault) = match reply {
            Ok(sensor_on) => {
                if ls.polarity.is_open(sensor_on) {
                    tracing::info!("unlocked, door open");
                    return Outcome::DoorOpened;
                }
                (Reach::Acknowledged, None)
            }
            Err(Failed { fault, written }) => {
                if !written {
                    return Outcome::link(fault, Reach::NotSent);
                }
                tracing::warn!(
                    ?fault,
                    "no good unlock reply; asking the board for the doors"
                );
                (Reach::Unconfirmed, Some(fault))
            }
        };
        // Watch the door sensor (never unlock again: that would be a second physical action).
        let deadline = Instant::now() + ls.door_open_timeout;
        let mut unanswered = 0;
        loop {
            match self.query(priority) {
                Ok(status) => {
                    unanswered = 0;
                    if self.door_open(&status, channel) == Some(true) {
                        tracing::info!("door opened");
                        return Outcome::DoorOpened;
                    }
                }
                Err(Failed { fault: f, .. }) => {
                    if f == LinkFault::PortGone {
                        return Outcome::PortGone { reach };
                    }
                    fault = Some(f);
                    unanswered += 1;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // A board that answered neither the unlock nor the queries since is gone (power
            // lost): waiting out the door timeout would only keep the customer waiting.
            if reach == Reach::Unconfirmed && unanswered >= GIVE_UP_AFTER_UNANSWERED {
                tracing::warn!(
                    unanswered,
                    "the board answers nothing: giving up the door watch"
                );
                break;
            }
            // Pacing between queries on a half-duplex bus, not synchronisation.
            std::thread::sleep(ls.query_interval.min(deadline - now));
        }
        if reach == Reach::Acknowledged {
            tracing::warn!("unlocked but the door never opened");
            return Outcome::DoorNeverOpened;
        }
        reach = Reach::Unconfirmed;
        Outcome::link(fault.unwrap_or(LinkFault::NoReply), reach)
    }
}

impl Board for LockBoard {
    fn protocol(&self) -> Protocol {
        Protocol::Lockboard
    }

    fn dispense(&self, slot: u16) -> Outcome {
        self.do_unlock(slot, Priority::Dispense)
    }

    fn slot_test(&self, slot: u16) -> Outcome {
        self.do_unlock(slot, Priority::SlotTest)
    }

    fn unlock(&self, channel: u16) -> Result<Outcome, BoardError> {
        Ok(self.do_unlock(channel, Priority::SlotTest))
    }

    fn slot_status(&self, slot: u16) -> Result<SlotStatus, BoardError> {
        if slot == 0 || slot > self.settings.lockboard.channels {
            return Ok(SlotStatus::NoSuchSlot);
        }
        let status = self
            .query(Priority::Health)
            .map_err(|f| BoardError::Link(f.fault))?;
        Ok(match self.door_open(&status, slot) {
            Some(true) => SlotStatus::DoorOpen,
            Some(false) => SlotStatus::DoorClosed,
            // Configured, but narrower than the board's reply: the board does not say.
            None => SlotStatus::DoorUnknown,
        })
    }

    fn machine_status(&self) -> Result<MachineStatus, BoardError> {
        let status = self
            .query(Priority::Health)
            .map_err(|f| BoardError::Link(f.fault))?;
        let open = (1..=self.settings.lockboard.channels)
            .filter(|ch| self.door_open(&status, *ch) == Some(true))
            .collect();
        Ok(MachineStatus {
            open_doors: Some(open),
            raw: crate::hex(&status),
            ..MachineStatus::default()
        })
    }

    fn health(&self) -> BoardHealth {
        let st = self.lock();
        let mut h = st.health.clone();
        h.last_rx_ms_ago = st.last_ok.map(|t| millis(t.elapsed()));
        h.reconnects = self.bus.reconnects();
        // The host is the master: the board counts as up if the port is open and its last
        // transaction was answered. The engine queries periodically to keep this fresh.
        h.connected = self.bus.is_open() && st.last_ok.is_some() && st.failures == 0;
        h
    }

    fn recent_frames(&self) -> Vec<FrameRecord> {
        self.lock().frames.iter().cloned().collect()
    }

    fn out_of_service(&self) -> Option<LinkFault> {
        let st = self.lock();
        (st.failures > 0).then_some(st.last_fault)
    }

    fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            // Waiting for the board is asking it now, whatever its probe backoff says.
            self.lock().next_probe = None;
            if self.query(Priority::Health).is_ok() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // The host is the master: asking again is the only way to find out. A vanished
            // port fails at once, so pace the retries.
            std::thread::sleep(self.settings.lockboard.query_interval.min(deadline - now));
        }
    }
}

/// What a query reply `width` status bytes wide means next to `channels` configured
/// channels, and what to do about it: the one line a technician needs.
fn width_mismatch(channels: u16, width: usize) -> String {
    let expected = usize::from(channels).div_ceil(8);
    let reported = width * 8;
    let consequence = if width < expected {
        format!(
            "channels {}-{channels} are not in its replies and are refused as unknown; if the \
             board has no more doors, set board.lockboard.channels (`cabinet board \
             --channels`) to {reported} or fewer",
            reported + 1
        )
    } else {
        format!(
            "the reply's channels {}-{reported} are ignored; if the board has more doors, raise \
             board.lockboard.channels (`cabinet board --channels`)",
            usize::from(channels) + 1
        )
    };
    format!(
        "the lock board answers with {width} status bytes (channels 1-{reported}), but \
         board.lockboard.channels = {channels} needs {expected}; using the board's {width}: \
         {consequence}"
    )
}

#[cfg(test)]
mod tests {
    use super::width_mismatch;

    #[test]
    fn a_narrower_reply_names_both_numbers_the_field_and_the_unknown_channels() {
        let m = width_mismatch(24, 2);
        assert!(m.contains("2 status bytes (channels 1-16)"), "{m}");
        assert!(m.contains("board.lockboard.channels = 24 needs 3"), "{m}");
        assert!(m.contains("channels 17-24 are not in its replies"), "{m}");
    }

    #[test]
    fn a_wider_reply_names_the_ignored_channels() {
        let m = width_mismatch(24, 4);
        assert!(m.contains("4 status bytes (channels 1-32)"), "{m}");
        assert!(m.contains("board.lockboard.channels = 24 needs 3"), "{m}");
        assert!(m.contains("channels 25-32 are ignored"), "{m}");
    }
}
