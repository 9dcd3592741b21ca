//! The VMC board's side: it POLLs on its own clock, queues its reports (dispensing, the
//! outcome, slot and machine status) for its next turns, resends a report until the host
//! ACKs it, remembers the host's last PackNO, and plays the VMC faults (jams, late,
//! repeated, doubled or misdirected reports, a board without machine status).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serialport::TTYPort;

use super::config::SimConfig;
use super::state::Shared;
use super::wire::{read_some, send};
use crate::vmc::codec::{self as vmc, Decoded, Decoder, DispenseStatus, VmcFrame};

#[derive(Debug)]
struct Pending {
    due: Instant,
    frame: VmcFrame,
}

#[derive(Debug)]
pub(super) struct VmcModel {
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
    pub(super) fn new(cfg: &SimConfig) -> Self {
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

    pub(super) fn step(&mut self, shared: &Shared, port: &mut TTYPort) {
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
