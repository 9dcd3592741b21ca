//! The lock boards' side: each board on the bus answers the unlocks and door queries
//! addressed to it, opens the door unless it is stuck, and counts each unlock; an address
//! no board has stays silent. This board ([`SimConfig::address`](super::SimConfig)) plays
//! the lock board's faults (no reply, silence, slow replies); its neighbours on the bus
//! can lose power.

use std::time::Duration;

use serialport::TTYPort;

use super::state::{Ctl, Shared};
use super::wire::{read_some, send};
use crate::lockboard::DoorPolarity;
use crate::lockboard::codec::{self as lock, LockDecoded, LockDecoder, LockFrame};

pub(super) fn lock_step(shared: &Shared, decoder: &mut LockDecoder, port: &mut TTYPort) {
    let mut buf = [0u8; 64];
    let Some(n) = read_some(port, Duration::from_millis(20), &mut buf) else {
        return;
    };
    decoder.push(&buf[..n]);
    while let Some(ev) = decoder.next_event() {
        let (frame, request_len) = match ev {
            LockDecoded::Frame(f, raw) => (f, raw.len()),
            LockDecoded::Error(..) => {
                shared.lock().stats.bad_frames_rx += 1;
                shared.changed.notify_all();
                continue;
            }
        };
        let mut c = shared.lock();
        c.stats.frames_rx += 1;
        let answer = answer(shared, &mut c, frame);
        let slow = c.faults.slow_reply;
        drop(c);
        shared.changed.notify_all();
        let Some((reply, ours)) = answer else {
            continue;
        };
        if let Some(d) = slow.filter(|_| ours) {
            // The board itself is slow: this delay is the fault being simulated.
            std::thread::sleep(d);
        }
        let bytes = lock::encode(&reply);
        if let Some(baud) = shared.cfg.wire_baud {
            // The line's own time, request and reply: what a pty leaves out.
            std::thread::sleep(crate::wire_time(request_len + bytes.len(), baud));
        }
        send(shared, port, bytes, true);
    }
}

/// The reply of the board `frame` is addressed to, if one answers, and whether that board
/// is this one (whose faults apply) rather than a neighbour.
fn answer(shared: &Shared, c: &mut Ctl, frame: LockFrame) -> Option<(LockFrame, bool)> {
    let cfg = &shared.cfg;
    let address = frame.board();
    if address == cfg.address {
        if c.faults.no_reply || c.faults.silent {
            return None;
        }
        let width = cfg
            .status_bytes
            .unwrap_or_else(|| usize::from(cfg.slots).div_ceil(8));
        let stuck = c.faults.door_stuck;
        let (mut reply, opened) = board_reply(&mut c.doors, cfg.polarity, width, stuck, frame)?;
        if let Some(a) = c.faults.answers_as {
            reply = readdress(reply, a);
        }
        if let Some(channel) = opened {
            c.stats.unlock_actions += 1;
            *c.stats.actions_by_slot.entry(channel).or_default() += 1;
        }
        return Some((reply, true));
    }
    let n = c.neighbours.get_mut(&address).filter(|n| n.powered)?;
    let width = n.doors.len().div_ceil(8);
    let (reply, opened) = board_reply(&mut n.doors, cfg.polarity, width, false, frame)?;
    if let Some(channel) = opened {
        let by_channel = c.stats.neighbour_unlocks.entry(address).or_default();
        *by_channel.entry(channel).or_default() += 1;
    }
    Some((reply, false))
}

/// `reply` as if sent by the board at `address`.
fn readdress(reply: LockFrame, address: u8) -> LockFrame {
    match reply {
        LockFrame::Unlock { channel, .. } => LockFrame::Unlock {
            board: address,
            channel,
        },
        LockFrame::UnlockReply {
            channel, status, ..
        } => LockFrame::UnlockReply {
            board: address,
            channel,
            status,
        },
        LockFrame::Query { .. } => LockFrame::Query { board: address },
        LockFrame::QueryReply { status, .. } => LockFrame::QueryReply {
            board: address,
            status,
        },
    }
}

/// One board's reply to a frame addressed to it, with the channel it unlocked; `None`
/// for a frame it does not answer (a channel it lacks: a real board stays quiet).
fn board_reply(
    doors: &mut [bool],
    polarity: DoorPolarity,
    width: usize,
    stuck: bool,
    frame: LockFrame,
) -> Option<(LockFrame, Option<u16>)> {
    match frame {
        LockFrame::Unlock { board, channel } => {
            let i = usize::from(channel)
                .checked_sub(1)
                .filter(|i| *i < doors.len())?;
            if !stuck {
                doors[i] = true;
            }
            let reply = LockFrame::unlock_reply(board, channel, polarity.sensor(doors[i]));
            Some((reply, Some(u16::from(channel))))
        }
        LockFrame::Query { board } => {
            let sensors: Vec<bool> = doors.iter().map(|open| polarity.sensor(*open)).collect();
            let status = lock::status_bytes(&sensors, width);
            Some((LockFrame::QueryReply { board, status }, None))
        }
        _ => None,
    }
}
