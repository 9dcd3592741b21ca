//! 8A/80 frames and their byte codec: pure functions, no I/O.
//!
//! - Unlock: `8A board channel 11 BCC`, reply `8A board channel status BCC`
//!   (status 11 / 00 = door sensor on / off).
//! - Query all: `80 board 00 33 BCC`, reply `80 board status-bytes… 33 BCC`; the last status
//!   byte holds channels 1–8 (bit 0 = channel 1), the byte before it 9–16, and so on.
//! - BCC = XOR of every earlier byte of the frame.
//!
//! Requests and replies share shapes (an unlock and its reply look alike), so a decoder is
//! told which side's frames it reads.
//!
//! A query reply carries no length byte, and boards in the field do not always send as
//! many status bytes as their configured channel count implies. The board-side decoder
//! therefore prefers the width it is told to expect, but accepts a reply of any width
//! from 1 to [`MAX_STATUS_BYTES`] whose `33 BCC` tail checks out: a wider one as soon as
//! its bytes are in, a narrower one once the line goes quiet ([`LockDecoder::on_idle`]),
//! because only silence shows that a shorter frame is the whole reply.

use serde::{Deserialize, Serialize};

/// Header of unlock frames.
pub const UNLOCK: u8 = 0x8A;
/// Header of query frames.
pub const QUERY: u8 = 0x80;
/// Unlock command byte and "sensor on" status.
pub const ON: u8 = 0x11;
/// "Sensor off" status.
pub const OFF: u8 = 0x00;
/// Query command byte.
pub const QUERY_CMD: u8 = 0x33;
/// The widest query reply the board-side decoder accepts, in status bytes: 248 channels,
/// the most a board address can have.
pub const MAX_STATUS_BYTES: usize = 31;

/// Which sensor reading means "door open" (boards are wired both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DoorPolarity {
    /// Sensor on (status 11, bit set) means open.
    #[default]
    #[serde(rename = "open_is_11")]
    OpenIs11,
    /// Sensor off (status 00, bit clear) means open.
    #[serde(rename = "open_is_00")]
    OpenIs00,
}

impl DoorPolarity {
    /// Whether a sensor reading means the door is open.
    pub fn is_open(self, sensor_on: bool) -> bool {
        match self {
            DoorPolarity::OpenIs11 => sensor_on,
            DoorPolarity::OpenIs00 => !sensor_on,
        }
    }

    /// The sensor reading for a door state.
    pub fn sensor(self, open: bool) -> bool {
        self.is_open(open)
    }
}

/// A decoded lock-board frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockFrame {
    /// Host → board: unlock one channel.
    Unlock {
        /// Board address.
        board: u8,
        /// Channel, 1-based.
        channel: u8,
    },
    /// Board → host: unlock done; door sensor state.
    UnlockReply {
        /// Board address.
        board: u8,
        /// Channel.
        channel: u8,
        /// Status byte: 11 door sensor on, 00 off (see [`LockFrame::sensor_on`]).
        status: u8,
    },
    /// Host → board: report all channels.
    Query {
        /// Board address.
        board: u8,
    },
    /// Board → host: sensor bits of all channels.
    QueryReply {
        /// Board address.
        board: u8,
        /// Status bytes as sent (last byte = channels 1–8).
        status: Vec<u8>,
    },
}

impl LockFrame {
    /// An unlock reply with the sensor reading as a status byte.
    pub fn unlock_reply(board: u8, channel: u8, sensor_on: bool) -> Self {
        LockFrame::UnlockReply {
            board,
            channel,
            status: if sensor_on { ON } else { OFF },
        }
    }

    /// For an unlock reply: whether the door sensor is on. Status bytes other than 11 read
    /// as off, the safe side (we then ask the board for the doors).
    pub fn sensor_on(&self) -> Option<bool> {
        match self {
            LockFrame::UnlockReply { status, .. } => Some(*status == ON),
            _ => None,
        }
    }

    /// The board address the frame is for / from.
    pub fn board(&self) -> u8 {
        match self {
            LockFrame::Unlock { board, .. }
            | LockFrame::UnlockReply { board, .. }
            | LockFrame::Query { board }
            | LockFrame::QueryReply { board, .. } => *board,
        }
    }

    /// Short human description for logs and the raw console.
    pub fn describe(&self) -> String {
        match self {
            LockFrame::Unlock { board, channel } => format!("UNLOCK board {board} ch {channel}"),
            LockFrame::UnlockReply {
                board,
                channel,
                status,
            } => {
                format!("UNLOCKED board {board} ch {channel} status {status:02x}")
            }
            LockFrame::Query { board } => format!("QUERY board {board}"),
            LockFrame::QueryReply { board, status } => {
                format!("STATUS board {board} {}", crate::hex(status))
            }
        }
    }
}

/// Sensor state of `channel` (1-based) in a query reply's status bytes.
pub fn channel_sensor(status: &[u8], channel: u16) -> Option<bool> {
    let idx = usize::from(channel.checked_sub(1)?);
    let byte_from_end = idx / 8;
    let byte = status
        .len()
        .checked_sub(1 + byte_from_end)
        .map(|i| status[i])?;
    Some(byte & (1 << (idx % 8)) != 0)
}

/// Status bytes for `sensors[i]` = channel i+1 (the simulator's side of [`channel_sensor`]).
pub fn status_bytes(sensors: &[bool], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    for (i, on) in sensors.iter().enumerate() {
        let from_end = i / 8;
        if *on && from_end < n {
            out[n - 1 - from_end] |= 1 << (i % 8);
        }
    }
    out
}

/// XOR of all bytes.
pub fn bcc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

/// Encode a frame.
pub fn encode(frame: &LockFrame) -> Vec<u8> {
    let mut out = match frame {
        LockFrame::Unlock { board, channel } => vec![UNLOCK, *board, *channel, ON],
        LockFrame::UnlockReply {
            board,
            channel,
            status,
        } => vec![UNLOCK, *board, *channel, *status],
        LockFrame::Query { board } => vec![QUERY, *board, 0x00, QUERY_CMD],
        LockFrame::QueryReply { board, status } => {
            let mut v = vec![QUERY, *board];
            v.extend_from_slice(status);
            v.push(QUERY_CMD);
            v
        }
    };
    out.push(bcc(&out));
    out
}

/// Which side's frames a decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Frames the host sends (the simulator decodes these).
    FromHost,
    /// Frames the board sends (the driver decodes these).
    FromBoard,
}

/// Why bytes did not make a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockFrameError {
    /// BCC mismatch.
    #[error("bad checksum: expected {expected:02x}, got {got:02x}")]
    BadChecksum {
        /// What the bytes add up to.
        expected: u8,
        /// What the frame carried.
        got: u8,
    },
    /// The frame's fixed bytes are wrong (e.g. no 33 before the BCC).
    #[error("malformed frame")]
    Malformed,
}

/// An event out of the streaming decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockDecoded {
    /// A good frame and its bytes.
    Frame(LockFrame, Vec<u8>),
    /// Skipped bytes that looked like a frame.
    Error(LockFrameError, Vec<u8>),
}

/// Streaming decoder for one side of the bus.
#[derive(Debug)]
pub struct LockDecoder {
    side: Side,
    status_bytes: usize,
    buf: Vec<u8>,
    /// Set by [`LockDecoder::on_idle`]: the next event to hand out (a narrower reply the
    /// silence completed, or the report of a broken one).
    idle_event: Option<IdleEvent>,
}

#[derive(Debug, Clone, Copy)]
enum IdleEvent {
    /// The first `n` bytes are a complete query reply.
    Frame(usize),
    /// The first `n` bytes were a query reply of the expected length that did not check
    /// out; report them, then drop one byte.
    Broken(usize),
}

/// Where a query reply starting at the front of the buffer ends, as far as we can tell.
enum Span {
    /// A good reply of this many bytes.
    Frame(usize),
    /// Not decidable yet: more bytes may complete a wider reply.
    Wait,
    /// No width up to the widest accepted makes a good reply.
    Bad,
}

impl LockDecoder {
    /// A decoder for `side`; `status_bytes` is the query reply width to expect (one byte per
    /// 8 channels). Board-side decoders accept other widths too (see the module docs).
    pub fn new(side: Side, status_bytes: usize) -> Self {
        Self {
            side,
            status_bytes: status_bytes.max(1),
            buf: Vec::with_capacity(32),
            idle_event: None,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered that have not made an event yet (a partial frame, or noise).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The line went quiet with bytes buffered. A query reply narrower than expected that
    /// is complete is handed out by the next [`LockDecoder::next_event`]; anything else
    /// loses its first byte so the rest can be searched again (reported as a bad frame if
    /// it was a query reply of the expected length that did not check out). Returns
    /// whether anything changed.
    pub fn on_idle(&mut self) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        if self.at_query_reply() {
            let expected = self.status_bytes + 4;
            let complete = match self.reply_span() {
                Span::Frame(total) => Some(total),
                Span::Wait | Span::Bad => (5..expected).find(|t| self.reply_ends_at(*t)),
            };
            if let Some(total) = complete {
                self.idle_event = Some(IdleEvent::Frame(total));
                return true;
            }
            if self.buf.len() >= expected {
                self.idle_event = Some(IdleEvent::Broken(expected));
                return true;
            }
        }
        self.buf.drain(..1);
        true
    }

    /// The next complete event, or `None` until more bytes arrive.
    pub fn next_event(&mut self) -> Option<LockDecoded> {
        match self.idle_event.take() {
            Some(IdleEvent::Frame(total)) if self.reply_ends_at(total) => {
                return Some(self.take_frame(total));
            }
            Some(IdleEvent::Broken(total)) if self.buf.len() >= total => {
                return Some(self.broken(total));
            }
            _ => {}
        }
        let start = self.buf.iter().position(|b| *b == UNLOCK || *b == QUERY);
        match start {
            None => {
                self.buf.clear();
                return None;
            }
            Some(i) => {
                self.buf.drain(..i);
            }
        }
        if self.at_query_reply() {
            return match self.reply_span() {
                Span::Frame(total) => Some(self.take_frame(total)),
                Span::Wait => None,
                Span::Bad => Some(self.broken(self.status_bytes + 4)),
            };
        }
        let total = 5;
        if self.buf.len() < total {
            return None;
        }
        if bcc(&self.buf[..total - 1]) != self.buf[total - 1] {
            return Some(self.broken(total));
        }
        Some(self.take_frame(total))
    }

    fn at_query_reply(&self) -> bool {
        self.side == Side::FromBoard && self.buf.first() == Some(&QUERY)
    }

    /// Whether the first `total` bytes are a query reply: `80 board status… 33 BCC` with
    /// at least one status byte and a good BCC.
    fn reply_ends_at(&self, total: usize) -> bool {
        total >= 5
            && self.buf.len() >= total
            && self.buf[total - 2] == QUERY_CMD
            && bcc(&self.buf[..total - 1]) == self.buf[total - 1]
    }

    /// Decide on the query reply at the front. The expected width wins when it checks out;
    /// a narrower one is taken once the expected length has arrived without a good frame;
    /// wider ones are tried shortest first as their bytes arrive. Every decision depends on
    /// the bytes alone, never on how they were chunked.
    fn reply_span(&self) -> Span {
        let expected = self.status_bytes + 4;
        if self.buf.len() < expected {
            return Span::Wait;
        }
        if self.reply_ends_at(expected) {
            return Span::Frame(expected);
        }
        if let Some(total) = (5..expected).find(|t| self.reply_ends_at(*t)) {
            return Span::Frame(total);
        }
        let widest = self.status_bytes.max(MAX_STATUS_BYTES) + 4;
        for total in expected + 1..=widest {
            if self.buf.len() < total {
                return Span::Wait;
            }
            if self.reply_ends_at(total) {
                return Span::Frame(total);
            }
        }
        Span::Bad
    }

    /// Report the first `total` bytes as a bad frame and drop one byte, so a frame that
    /// starts inside them is still found.
    fn broken(&mut self, total: usize) -> LockDecoded {
        let raw = self.buf[..total].to_vec();
        let expected = bcc(&raw[..total - 1]);
        let got = raw[total - 1];
        self.buf.drain(..1);
        let error = if expected != got {
            LockFrameError::BadChecksum { expected, got }
        } else {
            LockFrameError::Malformed
        };
        LockDecoded::Error(error, raw)
    }

    /// The first `total` bytes (checksum good) as a frame, or as malformed.
    fn take_frame(&mut self, total: usize) -> LockDecoded {
        let raw = self.buf[..total].to_vec();
        let frame = match (raw[0], self.side) {
            (UNLOCK, Side::FromHost) if raw[3] == ON => Some(LockFrame::Unlock {
                board: raw[1],
                channel: raw[2],
            }),
            (UNLOCK, Side::FromBoard) => Some(LockFrame::UnlockReply {
                board: raw[1],
                channel: raw[2],
                status: raw[3],
            }),
            (QUERY, Side::FromHost) if raw[2] == 0x00 && raw[3] == QUERY_CMD => {
                Some(LockFrame::Query { board: raw[1] })
            }
            (QUERY, Side::FromBoard) if raw[total - 2] == QUERY_CMD => {
                Some(LockFrame::QueryReply {
                    board: raw[1],
                    status: raw[2..total - 2].to_vec(),
                })
            }
            _ => None,
        };
        match frame {
            Some(f) => {
                self.buf.drain(..total);
                LockDecoded::Frame(f, raw)
            }
            None => {
                self.buf.drain(..1);
                LockDecoded::Error(LockFrameError::Malformed, raw)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(side: Side, n: usize, bytes: &[u8]) -> Option<LockDecoded> {
        let mut d = LockDecoder::new(side, n);
        d.push(bytes);
        d.next_event()
    }

    #[test]
    fn unlock_board_1_channel_1_matches_the_spec_example() {
        assert_eq!(
            encode(&LockFrame::Unlock {
                board: 1,
                channel: 1
            }),
            [0x8A, 0x01, 0x01, 0x11, 0x9B]
        );
    }

    #[test]
    fn query_board_1_matches_the_spec_example() {
        assert_eq!(
            encode(&LockFrame::Query { board: 1 }),
            [0x80, 0x01, 0x00, 0x33, 0xB2]
        );
    }

    #[test]
    fn the_simulator_side_decodes_the_spec_examples() {
        assert!(matches!(
            one(Side::FromHost, 3, &[0x8A, 0x01, 0x01, 0x11, 0x9B]),
            Some(LockDecoded::Frame(
                LockFrame::Unlock {
                    board: 1,
                    channel: 1
                },
                _
            ))
        ));
        assert!(matches!(
            one(Side::FromHost, 3, &[0x80, 0x01, 0x00, 0x33, 0xB2]),
            Some(LockDecoded::Frame(LockFrame::Query { board: 1 }, _))
        ));
    }

    #[test]
    fn unlock_reply_carries_the_door_sensor() {
        let on = encode(&LockFrame::unlock_reply(3, 7, true));
        assert_eq!(on[..4], [0x8A, 0x03, 0x07, 0x11]);
        assert_eq!(
            one(Side::FromBoard, 3, &on),
            Some(LockDecoded::Frame(LockFrame::unlock_reply(3, 7, true), on))
        );
        let off = encode(&LockFrame::unlock_reply(3, 7, false));
        assert_eq!(off[3], 0x00);
    }

    #[test]
    fn query_reply_last_byte_is_channels_1_to_8() {
        // 24 channels: 3 status bytes; channel 1 and channel 9 and channel 24 on.
        let mut sensors = vec![false; 24];
        sensors[0] = true;
        sensors[8] = true;
        sensors[23] = true;
        let status = status_bytes(&sensors, 3);
        assert_eq!(status, vec![0x80, 0x01, 0x01]);
        assert_eq!(channel_sensor(&status, 1), Some(true));
        assert_eq!(channel_sensor(&status, 2), Some(false));
        assert_eq!(channel_sensor(&status, 9), Some(true));
        assert_eq!(channel_sensor(&status, 24), Some(true));
        assert_eq!(channel_sensor(&status, 25), None);
        assert_eq!(channel_sensor(&status, 0), None);
        let bytes = encode(&LockFrame::QueryReply {
            board: 1,
            status: status.clone(),
        });
        assert_eq!(bytes.len(), 7);
        assert_eq!(
            one(Side::FromBoard, 3, &bytes),
            Some(LockDecoded::Frame(
                LockFrame::QueryReply { board: 1, status },
                bytes
            ))
        );
    }

    #[test]
    fn a_corrupt_reply_is_reported_and_resync_finds_the_next_frame() {
        let mut bytes = encode(&LockFrame::unlock_reply(1, 1, true));
        bytes[4] ^= 0x01;
        let good = encode(&LockFrame::unlock_reply(1, 2, false));
        bytes.extend_from_slice(&good);
        let mut d = LockDecoder::new(Side::FromBoard, 3);
        d.push(&bytes);
        assert!(matches!(
            d.next_event(),
            Some(LockDecoded::Error(LockFrameError::BadChecksum { .. }, _))
        ));
        let mut last = None;
        while let Some(ev) = d.next_event() {
            last = Some(ev);
        }
        assert_eq!(
            last,
            Some(LockDecoded::Frame(
                LockFrame::unlock_reply(1, 2, false),
                good
            ))
        );
    }

    #[test]
    fn a_reply_one_byte_wider_than_expected_decodes_with_the_boards_width() {
        // Expecting 24 channels (3 bytes); the board sends 4. Channel 1 and 25 on.
        let mut sensors = vec![false; 32];
        sensors[0] = true;
        sensors[24] = true;
        let status = status_bytes(&sensors, 4);
        assert_eq!(status, vec![0x01, 0x00, 0x00, 0x01]);
        let bytes = encode(&LockFrame::QueryReply {
            board: 1,
            status: status.clone(),
        });
        assert_eq!(
            one(Side::FromBoard, 3, &bytes),
            Some(LockDecoded::Frame(
                LockFrame::QueryReply { board: 1, status },
                bytes
            ))
        );
    }

    #[test]
    fn a_reply_one_byte_narrower_decodes_once_the_line_goes_idle() {
        // Expecting 3 bytes; the board sends 2 (channels 1-16), channel 9 on.
        let status = vec![0x01, 0x00];
        let bytes = encode(&LockFrame::QueryReply {
            board: 1,
            status: status.clone(),
        });
        let mut d = LockDecoder::new(Side::FromBoard, 3);
        d.push(&bytes);
        // Until the line is quiet, the reply may still be the expected one, arriving late.
        assert_eq!(d.next_event(), None);
        assert!(d.on_idle());
        let ev = d.next_event();
        assert_eq!(
            ev,
            Some(LockDecoded::Frame(
                LockFrame::QueryReply {
                    board: 1,
                    status: status.clone()
                },
                bytes
            ))
        );
        assert_eq!(channel_sensor(&status, 9), Some(true));
        assert_eq!(channel_sensor(&status, 1), Some(false));
        assert_eq!(channel_sensor(&status, 17), None, "not in the reply");
        assert_eq!(d.pending(), 0);
        assert!(!d.on_idle());
    }

    #[test]
    fn the_expected_width_wins_when_a_narrower_reading_also_checks_out() {
        // 80 01 81 00 33 | 33 00: the first six bytes are also a good 2-byte reply (status
        // 81 00, BCC 33). The expected 3-byte reading is the one the board meant.
        let status = vec![0x81, 0x00, 0x33];
        let bytes = encode(&LockFrame::QueryReply {
            board: 1,
            status: status.clone(),
        });
        assert_eq!(bytes, [0x80, 0x01, 0x81, 0x00, 0x33, 0x33, 0x00]);
        let mut d = LockDecoder::new(Side::FromBoard, 3);
        d.push(&bytes[..6]);
        assert_eq!(d.next_event(), None, "waits for the expected length");
        d.push(&bytes[6..]);
        assert_eq!(
            d.next_event(),
            Some(LockDecoded::Frame(
                LockFrame::QueryReply { board: 1, status },
                bytes.to_vec()
            ))
        );
    }

    #[test]
    fn a_corrupt_reply_of_the_expected_width_is_reported_when_the_line_goes_idle() {
        let mut bytes = encode(&LockFrame::QueryReply {
            board: 1,
            status: vec![0, 0, 4],
        });
        bytes[6] ^= 0x5A;
        let mut d = LockDecoder::new(Side::FromBoard, 3);
        d.push(&bytes);
        // It might still be a wider reply whose tail has not arrived.
        assert_eq!(d.next_event(), None);
        assert!(d.on_idle());
        assert!(matches!(
            d.next_event(),
            Some(LockDecoded::Error(LockFrameError::BadChecksum { .. }, raw)) if raw == bytes
        ));
    }

    #[test]
    fn garbage_after_a_query_header_fails_once_no_width_can_fit() {
        let mut bytes = vec![0x80, 0x01];
        bytes.extend(std::iter::repeat_n(0x00, MAX_STATUS_BYTES + 2));
        let good = encode(&LockFrame::unlock_reply(1, 2, true));
        bytes.extend_from_slice(&good);
        let mut d = LockDecoder::new(Side::FromBoard, 3);
        d.push(&bytes);
        // Without waiting for the line to go quiet: the widest reply cannot end there.
        assert!(matches!(d.next_event(), Some(LockDecoded::Error(..))));
        let mut last = None;
        while let Some(ev) = d.next_event() {
            last = Some(ev);
        }
        assert_eq!(
            last,
            Some(LockDecoded::Frame(
                LockFrame::unlock_reply(1, 2, true),
                good
            ))
        );
    }

    #[test]
    fn polarity_flips_the_meaning_of_the_sensor() {
        assert!(DoorPolarity::OpenIs11.is_open(true));
        assert!(!DoorPolarity::OpenIs11.is_open(false));
        assert!(DoorPolarity::OpenIs00.is_open(false));
        assert!(!DoorPolarity::OpenIs00.is_open(true));
    }
}
