//! The lock board's side: it answers unlocks and door queries addressed to it, opens the
//! door unless it is stuck, counts each unlock, and plays the lock board's faults (no
//! reply, silence, slow replies).

use std::time::Duration;

use serialport::TTYPort;

use super::state::Shared;
use super::wire::{read_some, send};
use crate::lockboard::codec::{self as lock, LockDecoded, LockDecoder, LockFrame};

pub(super) fn lock_step(shared: &Shared, decoder: &mut LockDecoder, port: &mut TTYPort) {
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
