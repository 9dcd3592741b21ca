//! The VMC host's side of the conversation, without the wire: which PackNO a command
//! carries, what answers a POLL, when a command counts as received, when to give up on
//! it, and which board reports are news. The driver (`driver.rs`) owns the port, the
//! clock and the locks, and asks this state machine at each frame; everything here is
//! pure and tested frame by frame.
//!
//! The rules, as a real board plays them:
//! - The board is the master. Our one queued command goes out as the answer to a POLL;
//!   until the board acknowledges it (ACK, or a report that can only be about it), each
//!   next POLL gets the same bytes with the same PackNO again — a resend the board must not
//!   execute twice — up to `max_attempts` sends, after which we give up.
//! - Every board frame but POLL and ACK is acknowledged, resends included (the board resends
//!   because it missed our ACK). A report whose PackNO repeats the board's previous one is
//!   such a resend: acknowledged, not news.
//! - Reports that arrived before our command first went out are about an earlier command
//!   (late, or sent twice): they are dropped when it goes out, never taken for its answer.

use std::collections::VecDeque;

use super::codec::VmcFrame;

/// `p` advanced by `n` in the PackNO cycle 1..=255.
pub(super) fn packno_add(p: u8, n: u8) -> u8 {
    let v = (u16::from(p.max(1)) - 1 + u16::from(n)) % 255 + 1;
    u8::try_from(v).unwrap_or(1)
}

/// Steps forward from `from` to `to` in the PackNO cycle (0 when equal).
pub(super) fn packno_distance(from: u8, to: u8) -> u8 {
    let d = (i16::from(to.max(1)) - i16::from(from.max(1))).rem_euclid(255);
    u8::try_from(d).unwrap_or(0)
}

/// The command waiting for the board.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outgoing {
    bytes: Vec<u8>,
    describe: String,
    /// The slot a dispense or slot query is about: a report for it acknowledges it.
    slot: Option<u16>,
    sends: u8,
    acked: bool,
    gave_up: bool,
}

/// What to write in answer to a POLL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PollAnswer {
    /// Nothing queued (or given up on): ACK.
    Ack,
    /// Our command: these bytes, for the first time or again.
    Command {
        bytes: Vec<u8>,
        describe: String,
        resend: bool,
        /// Reports dropped because they came before the command first went out.
        stale_dropped: usize,
    },
}

/// What a board frame other than POLL and ACK is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Report {
    /// Its PackNO repeats the board's previous one: a resend, already seen.
    Repeated,
    /// News, kept for the operation in progress; `acknowledges` when it proves the
    /// board received our command (its ACK may have been lost).
    New { acknowledges: bool },
}

/// Where the queued command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Progress {
    /// Sent at least once.
    pub sent: bool,
    /// The board acknowledged it.
    pub acked: bool,
    /// Sent `max_attempts` times without an acknowledgement.
    pub gave_up: bool,
}

/// The host's session with one board.
#[derive(Debug, Clone, Default)]
pub(super) struct Session {
    /// The PackNO last given to a command (the next one comes after it).
    last_packno: u8,
    /// The PackNO of the board's last report that carried one.
    last_board_packno: Option<u8>,
    outgoing: Option<Outgoing>,
    /// Reports for the operation in progress, deduplicated, oldest first.
    reports: VecDeque<VmcFrame>,
    max_attempts: u8,
}

impl Session {
    /// A session whose first command carries `last_packno + 1`.
    pub fn new(last_packno: u8, max_attempts: u8) -> Session {
        Session {
            last_packno,
            last_board_packno: None,
            outgoing: None,
            reports: VecDeque::new(),
            max_attempts: max_attempts.max(1),
        }
    }

    /// The PackNO for the next command: 1..=255, never 0, one after the last.
    pub fn next_packno(&mut self) -> u8 {
        self.last_packno = if self.last_packno == 255 {
            1
        } else {
            self.last_packno + 1
        };
        self.last_packno
    }

    /// Queues a command (its encoded bytes) for the next POLL, replacing any other, and
    /// forgets the reports of the previous operation.
    pub fn queue(&mut self, bytes: Vec<u8>, describe: String, slot: Option<u16>) {
        self.reports.clear();
        self.outgoing = Some(Outgoing {
            bytes,
            describe,
            slot,
            sends: 0,
            acked: false,
            gave_up: false,
        });
    }

    /// Where the queued command stands (`None`: nothing queued).
    pub fn progress(&self) -> Option<Progress> {
        self.outgoing.as_ref().map(|o| Progress {
            sent: o.sends > 0,
            acked: o.acked,
            gave_up: o.gave_up,
        })
    }

    /// Drops the queued command (answered, given up, or the port went away).
    pub fn finish(&mut self) {
        self.outgoing = None;
    }

    /// A POLL arrived: what to answer.
    pub fn on_poll(&mut self) -> PollAnswer {
        let max = self.max_attempts.max(1);
        let Some(out) = self.outgoing.as_mut().filter(|o| !o.acked && !o.gave_up) else {
            return PollAnswer::Ack;
        };
        if out.sends >= max {
            out.gave_up = true;
            return PollAnswer::Ack;
        }
        let resend = out.sends > 0;
        out.sends += 1;
        let answer = PollAnswer::Command {
            bytes: out.bytes.clone(),
            describe: out.describe.clone(),
            resend,
            stale_dropped: if resend { 0 } else { self.reports.len() },
        };
        if !resend {
            // Our command goes out now: whatever the board reported before this moment is
            // about an earlier command, never ours.
            self.reports.clear();
        }
        answer
    }

    /// The board sent ACK: our command, if sent, is received. `true` when that is news.
    pub fn on_ack(&mut self) -> bool {
        match self.outgoing.as_mut().filter(|o| o.sends > 0 && !o.acked) {
            Some(out) => {
                out.acked = true;
                true
            }
            None => false,
        }
    }

    /// Any other board frame (to be acknowledged on the wire whatever this says).
    pub fn on_report(&mut self, frame: VmcFrame) -> Report {
        let packno = frame.packno();
        if packno.is_some() && packno == self.last_board_packno {
            return Report::Repeated;
        }
        if packno.is_some() {
            self.last_board_packno = packno;
        }
        let slot_of = match &frame {
            VmcFrame::DispenseReport { slot, .. } | VmcFrame::SlotStatus { slot, .. } => {
                Some(*slot)
            }
            _ => None,
        };
        let is_machine = matches!(frame, VmcFrame::MachineStatus { .. });
        let mut acknowledges = false;
        if let Some(out) = self.outgoing.as_mut().filter(|o| o.sends > 0)
            && ((slot_of.is_some() && slot_of == out.slot) || (is_machine && out.slot.is_none()))
        {
            acknowledges = !out.acked;
            out.acked = true;
        }
        self.reports.push_back(frame);
        Report::New { acknowledges }
    }

    /// The oldest report not yet taken.
    pub fn next_report(&mut self) -> Option<VmcFrame> {
        self.reports.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmc::codec::DispenseStatus;

    fn dispense_queued(s: &mut Session, slot: u16) -> u8 {
        let p = s.next_packno();
        s.queue(vec![0xFA, p], format!("dispense {slot}"), Some(slot));
        p
    }

    fn report(packno: u8, slot: u16) -> VmcFrame {
        VmcFrame::DispenseReport {
            packno,
            status: DispenseStatus::Success,
            slot,
        }
    }

    fn sent(a: &PollAnswer) -> (Vec<u8>, bool) {
        match a {
            PollAnswer::Command { bytes, resend, .. } => (bytes.clone(), *resend),
            PollAnswer::Ack => panic!("expected our command, got ACK"),
        }
    }

    #[test]
    fn packnos_run_1_to_255_and_never_0() {
        let mut s = Session::new(254, 3);
        assert_eq!(s.next_packno(), 255);
        assert_eq!(s.next_packno(), 1);
        let mut s = Session::new(0, 3);
        assert_eq!(s.next_packno(), 1);
        assert_eq!(packno_add(250, 10), 5);
        assert_eq!(packno_distance(250, 5), 10);
        assert_eq!(packno_distance(7, 7), 0);
    }

    #[test]
    fn an_unacknowledged_command_goes_out_again_with_the_same_bytes_then_is_given_up() {
        let mut s = Session::new(10, 3);
        assert_eq!(s.on_poll(), PollAnswer::Ack, "nothing queued");
        dispense_queued(&mut s, 11);
        let first = sent(&s.on_poll());
        assert!(!first.1);
        assert_eq!(sent(&s.on_poll()), (first.0.clone(), true));
        assert_eq!(sent(&s.on_poll()), (first.0, true));
        // Three sends: the fourth POLL gives up and gets a plain ACK.
        assert_eq!(s.on_poll(), PollAnswer::Ack);
        assert_eq!(
            s.progress(),
            Some(Progress {
                sent: true,
                acked: false,
                gave_up: true
            })
        );
        // A late ACK after giving up changes nothing.
        assert!(s.on_ack());
        s.finish();
        assert_eq!(s.progress(), None);
        assert_eq!(s.on_poll(), PollAnswer::Ack);
    }

    #[test]
    fn an_ack_before_the_command_went_out_is_not_ours() {
        let mut s = Session::new(10, 3);
        dispense_queued(&mut s, 11);
        assert!(!s.on_ack(), "an ACK for an earlier exchange");
        assert_eq!(s.progress().map(|p| p.acked), Some(false));
        sent(&s.on_poll());
        assert!(s.on_ack());
        assert!(!s.on_ack(), "the second ACK is not news");
        assert_eq!(s.on_poll(), PollAnswer::Ack, "acknowledged: not sent again");
    }

    #[test]
    fn a_report_for_our_slot_acknowledges_a_command_whose_ack_was_lost() {
        let mut s = Session::new(10, 3);
        dispense_queued(&mut s, 11);
        sent(&s.on_poll());
        // A report for another slot is news but not ours.
        assert_eq!(
            s.on_report(report(40, 12)),
            Report::New {
                acknowledges: false
            }
        );
        assert_eq!(
            s.on_report(report(41, 11)),
            Report::New { acknowledges: true }
        );
        assert_eq!(s.progress().map(|p| p.acked), Some(true));
        assert_eq!(s.next_report(), Some(report(40, 12)));
        assert_eq!(s.next_report(), Some(report(41, 11)));
        assert_eq!(s.next_report(), None);
    }

    #[test]
    fn a_machine_status_acknowledges_a_machine_query_only() {
        let mut s = Session::new(10, 3);
        let p = s.next_packno();
        s.queue(vec![p], "machine status?".into(), None);
        sent(&s.on_poll());
        let status = VmcFrame::MachineStatus {
            packno: 50,
            status: vec![0, 0, 0],
        };
        assert_eq!(
            s.on_report(status.clone()),
            Report::New { acknowledges: true }
        );
        // The same for a slot query: a machine status is not its answer.
        dispense_queued(&mut s, 3);
        sent(&s.on_poll());
        let mut later = status;
        if let VmcFrame::MachineStatus { packno, .. } = &mut later {
            *packno = 51;
        }
        assert_eq!(
            s.on_report(later),
            Report::New {
                acknowledges: false
            }
        );
    }

    #[test]
    fn a_report_whose_packno_repeats_the_previous_one_is_a_resend_not_news() {
        let mut s = Session::new(10, 3);
        dispense_queued(&mut s, 11);
        sent(&s.on_poll());
        assert_eq!(
            s.on_report(report(41, 11)),
            Report::New { acknowledges: true }
        );
        assert_eq!(s.on_report(report(41, 11)), Report::Repeated);
        assert_eq!(s.next_report(), Some(report(41, 11)));
        assert_eq!(s.next_report(), None, "the resend was not kept");
        // A new PackNO is news again, even with the same content.
        assert!(matches!(s.on_report(report(42, 11)), Report::New { .. }));
    }

    #[test]
    fn reports_from_before_our_command_went_out_are_dropped_when_it_does() {
        let mut s = Session::new(10, 3);
        dispense_queued(&mut s, 11);
        // A late report about the previous command on this slot, before our first send.
        assert_eq!(
            s.on_report(report(30, 11)),
            Report::New {
                acknowledges: false
            }
        );
        match s.on_poll() {
            PollAnswer::Command {
                resend,
                stale_dropped,
                ..
            } => assert_eq!((resend, stale_dropped), (false, 1)),
            PollAnswer::Ack => panic!("our command should go out"),
        }
        assert_eq!(s.next_report(), None, "the late report is never ours");
        // Once sent, reports are kept through resends.
        let status = VmcFrame::SlotStatus {
            packno: 31,
            status: 1,
            slot: 2,
        };
        s.on_report(status.clone());
        sent(&s.on_poll());
        assert_eq!(s.next_report(), Some(status));
    }

    #[test]
    fn queueing_a_command_forgets_the_previous_operations_reports() {
        let mut s = Session::new(10, 3);
        dispense_queued(&mut s, 11);
        sent(&s.on_poll());
        s.on_report(report(41, 11));
        s.finish();
        dispense_queued(&mut s, 12);
        assert_eq!(s.next_report(), None);
    }
}
