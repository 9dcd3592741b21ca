//! VMC frames and their byte codec: pure functions, no I/O.
//!
//! Frame layout: `FA FB | CMD | LEN | PackNO Text… | XOR`, where LEN counts
//! the bytes after it up to (not including) the checksum, and the checksum is the XOR of
//! every byte from `FA` on. POLL and ACK have LEN 0 and no PackNO.

use serde::{Deserialize, Serialize};

/// First sync byte.
pub const STX1: u8 = 0xFA;
/// Second sync byte.
pub const STX2: u8 = 0xFB;
/// Board → host: "your turn" (answer within 100 ms).
pub const CMD_POLL: u8 = 0x41;
/// Either way: "received".
pub const CMD_ACK: u8 = 0x42;
/// Host → board: check one slot.
pub const CMD_CHECK_SLOT: u8 = 0x01;
/// Board → host: slot status.
pub const CMD_SLOT_STATUS: u8 = 0x02;
/// Board → host: dispense status report.
pub const CMD_DISPENSE_REPORT: u8 = 0x04;
/// Host → board: dispense.
pub const CMD_DISPENSE: u8 = 0x06;
/// Host → board: machine status request.
pub const CMD_MACHINE_STATUS: u8 = 0x53;
/// Board → host: machine status report.
pub const CMD_MACHINE_REPORT: u8 = 0x54;

/// Longest LEN we accept. The protocol's frames are a handful of bytes; anything longer is
/// line noise and must not make the decoder wait for 255 bytes before resynchronising.
pub const MAX_LEN: usize = 64;

/// The POLL frame, `FA FB 41 00 40`.
pub const POLL: [u8; 5] = [0xFA, 0xFB, 0x41, 0x00, 0x40];
/// The ACK frame, `FA FB 42 00 43`.
pub const ACK: [u8; 5] = [0xFA, 0xFB, 0x42, 0x00, 0x43];

/// Byte order of 2-byte slot numbers on the wire (a site setting: boards differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SlotOrder {
    /// High byte first (`00 0B` is slot 11), as in the specification's examples.
    #[default]
    #[serde(rename = "big")]
    BigEndian,
    /// Low byte first (`0B 00` is slot 11).
    #[serde(rename = "little")]
    LittleEndian,
}

impl SlotOrder {
    fn put(self, slot: u16) -> [u8; 2] {
        match self {
            SlotOrder::BigEndian => slot.to_be_bytes(),
            SlotOrder::LittleEndian => slot.to_le_bytes(),
        }
    }

    fn get(self, b: [u8; 2]) -> u16 {
        match self {
            SlotOrder::BigEndian => u16::from_be_bytes(b),
            SlotOrder::LittleEndian => u16::from_le_bytes(b),
        }
    }
}

/// Status byte of a 0x04 dispense report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DispenseStatus {
    /// 01: the motor is running.
    Dispensing,
    /// 02: done (with the drop sensor on: the item fell past it).
    Success,
    /// 03: the motor jammed.
    Jammed,
    /// 04: the motor did not stop at its home position.
    MotorNotStopped,
    /// 05: the motor turned but the drop sensor saw nothing. The specification's list has no code for
    /// this; 05 is the gap in it and what our simulator sends. A board that signals it
    /// differently needs its code mapped here.
    NoDrop,
    /// 06: no such motor.
    NoSuchMotor,
    /// FF: purchase terminated.
    Terminated,
    /// Anything else.
    Other(u8),
}

impl DispenseStatus {
    /// From the wire byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x01 => Self::Dispensing,
            0x02 => Self::Success,
            0x03 => Self::Jammed,
            0x04 => Self::MotorNotStopped,
            0x05 => Self::NoDrop,
            0x06 => Self::NoSuchMotor,
            0xFF => Self::Terminated,
            other => Self::Other(other),
        }
    }

    /// To the wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Dispensing => 0x01,
            Self::Success => 0x02,
            Self::Jammed => 0x03,
            Self::MotorNotStopped => 0x04,
            Self::NoDrop => 0x05,
            Self::NoSuchMotor => 0x06,
            Self::Terminated => 0xFF,
            Self::Other(b) => b,
        }
    }

    /// Whether more reports follow for this dispense.
    pub fn is_final(self) -> bool {
        self != Self::Dispensing
    }
}

/// A decoded VMC frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmcFrame {
    /// Board → host: your turn.
    Poll,
    /// Received.
    Ack,
    /// Host → board: dispense from `slot`.
    Dispense {
        /// Packet number 1–255; a repeat is a resend.
        packno: u8,
        /// Use the drop sensor.
        drop_sensor: bool,
        /// Use the elevator.
        elevator: bool,
        /// Slot number.
        slot: u16,
    },
    /// Board → host: dispense progress or result.
    DispenseReport {
        /// Packet number 1–255; a repeat is a resend.
        packno: u8,
        /// What happened.
        status: DispenseStatus,
        /// Slot number.
        slot: u16,
    },
    /// Host → board: check a slot.
    CheckSlot {
        /// Packet number.
        packno: u8,
        /// Slot number.
        slot: u16,
    },
    /// Board → host: slot status (01 normal, 02 out of stock, 03 no such slot, 04 paused,
    /// 06 delivery door unlocked).
    SlotStatus {
        /// Packet number.
        packno: u8,
        /// Status byte.
        status: u8,
        /// Slot number.
        slot: u16,
    },
    /// Host → board: machine status request.
    MachineStatusRequest {
        /// Packet number.
        packno: u8,
    },
    /// Board → host: machine status. Our board profile sends three bytes: delivery door
    /// (00 closed, 01 open), drop sensor (00 ok), elevator (00 ok); extra bytes are kept.
    MachineStatus {
        /// Packet number.
        packno: u8,
        /// Status bytes.
        status: Vec<u8>,
    },
    /// A command this codec does not model; kept so it can be acknowledged and logged.
    Other {
        /// Command byte.
        cmd: u8,
        /// Everything between LEN and the checksum.
        data: Vec<u8>,
    },
}

impl VmcFrame {
    /// The PackNO, for frames that carry one.
    pub fn packno(&self) -> Option<u8> {
        match self {
            VmcFrame::Poll | VmcFrame::Ack | VmcFrame::Other { .. } => None,
            VmcFrame::Dispense { packno, .. }
            | VmcFrame::DispenseReport { packno, .. }
            | VmcFrame::CheckSlot { packno, .. }
            | VmcFrame::SlotStatus { packno, .. }
            | VmcFrame::MachineStatusRequest { packno }
            | VmcFrame::MachineStatus { packno, .. } => Some(*packno),
        }
    }

    /// A short human description for logs and the raw console.
    pub fn describe(&self) -> String {
        match self {
            VmcFrame::Poll => "POLL".into(),
            VmcFrame::Ack => "ACK".into(),
            VmcFrame::Dispense {
                packno,
                slot,
                drop_sensor,
                ..
            } => {
                format!("DISPENSE slot {slot} pack {packno} drop-sensor {drop_sensor}")
            }
            VmcFrame::DispenseReport {
                packno,
                status,
                slot,
            } => {
                format!("REPORT slot {slot} pack {packno} {status:?}")
            }
            VmcFrame::CheckSlot { packno, slot } => format!("CHECK slot {slot} pack {packno}"),
            VmcFrame::SlotStatus {
                packno,
                status,
                slot,
            } => {
                format!("SLOT slot {slot} pack {packno} status {status:02x}")
            }
            VmcFrame::MachineStatusRequest { packno } => format!("STATUS? pack {packno}"),
            VmcFrame::MachineStatus { packno, status } => {
                format!("STATUS pack {packno} {}", crate::hex(status))
            }
            VmcFrame::Other { cmd, data } => format!("CMD {cmd:02x} {}", crate::hex(data)),
        }
    }
}

/// Why bytes did not make a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The XOR did not match: the frame is dropped, the sender will resend.
    #[error("bad checksum: expected {expected:02x}, got {got:02x}")]
    BadChecksum {
        /// What the bytes add up to.
        expected: u8,
        /// What the frame carried.
        got: u8,
    },
    /// LEN does not fit the command.
    #[error("command {cmd:02x} with wrong length {len}")]
    BadLength {
        /// Command byte.
        cmd: u8,
        /// LEN byte.
        len: usize,
    },
    /// LEN over [`MAX_LEN`].
    #[error("length {0} too long")]
    TooLong(usize),
    /// PackNO 0 is not allowed (1–255).
    #[error("packet number 0")]
    ZeroPackNo,
}

/// LEN of the commands whose length is fixed by the protocol.
fn fixed_len(cmd: u8) -> Option<usize> {
    match cmd {
        CMD_POLL | CMD_ACK => Some(0),
        CMD_DISPENSE => Some(5),
        CMD_DISPENSE_REPORT | CMD_SLOT_STATUS => Some(4),
        CMD_CHECK_SLOT => Some(3),
        CMD_MACHINE_STATUS => Some(1),
        _ => None,
    }
}

/// XOR of all bytes.
pub fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// Encode a frame to bytes.
pub fn encode(frame: &VmcFrame, order: SlotOrder) -> Vec<u8> {
    let (cmd, data): (u8, Vec<u8>) = match frame {
        VmcFrame::Poll => (CMD_POLL, vec![]),
        VmcFrame::Ack => (CMD_ACK, vec![]),
        VmcFrame::Dispense {
            packno,
            drop_sensor,
            elevator,
            slot,
        } => {
            let s = order.put(*slot);
            (
                CMD_DISPENSE,
                vec![
                    *packno,
                    u8::from(*drop_sensor),
                    u8::from(*elevator),
                    s[0],
                    s[1],
                ],
            )
        }
        VmcFrame::DispenseReport {
            packno,
            status,
            slot,
        } => {
            let s = order.put(*slot);
            (
                CMD_DISPENSE_REPORT,
                vec![*packno, status.to_byte(), s[0], s[1]],
            )
        }
        VmcFrame::CheckSlot { packno, slot } => {
            let s = order.put(*slot);
            (CMD_CHECK_SLOT, vec![*packno, s[0], s[1]])
        }
        VmcFrame::SlotStatus {
            packno,
            status,
            slot,
        } => {
            let s = order.put(*slot);
            (CMD_SLOT_STATUS, vec![*packno, *status, s[0], s[1]])
        }
        VmcFrame::MachineStatusRequest { packno } => (CMD_MACHINE_STATUS, vec![*packno]),
        VmcFrame::MachineStatus { packno, status } => {
            let mut d = vec![*packno];
            d.extend_from_slice(status);
            (CMD_MACHINE_REPORT, d)
        }
        VmcFrame::Other { cmd, data } => (*cmd, data.clone()),
    };
    let mut out = Vec::with_capacity(data.len() + 5);
    out.extend_from_slice(&[STX1, STX2, cmd, data.len() as u8]);
    out.extend_from_slice(&data);
    out.push(xor(&out));
    out
}

/// Decode the body of a frame whose checksum already matched.
pub fn decode_body(cmd: u8, data: &[u8], order: SlotOrder) -> Result<VmcFrame, FrameError> {
    let need = |n: usize| {
        if data.len() == n {
            Ok(())
        } else {
            Err(FrameError::BadLength {
                cmd,
                len: data.len(),
            })
        }
    };
    let packno = || match data.first() {
        Some(0) => Err(FrameError::ZeroPackNo),
        Some(p) => Ok(*p),
        None => Err(FrameError::BadLength { cmd, len: 0 }),
    };
    let slot = |i: usize| order.get([data[i], data[i + 1]]);
    Ok(match cmd {
        CMD_POLL => {
            need(0)?;
            VmcFrame::Poll
        }
        CMD_ACK => {
            need(0)?;
            VmcFrame::Ack
        }
        CMD_DISPENSE => {
            need(5)?;
            VmcFrame::Dispense {
                packno: packno()?,
                drop_sensor: data[1] != 0,
                elevator: data[2] != 0,
                slot: slot(3),
            }
        }
        CMD_DISPENSE_REPORT => {
            need(4)?;
            VmcFrame::DispenseReport {
                packno: packno()?,
                status: DispenseStatus::from_byte(data[1]),
                slot: slot(2),
            }
        }
        CMD_CHECK_SLOT => {
            need(3)?;
            VmcFrame::CheckSlot {
                packno: packno()?,
                slot: slot(1),
            }
        }
        CMD_SLOT_STATUS => {
            need(4)?;
            VmcFrame::SlotStatus {
                packno: packno()?,
                status: data[1],
                slot: slot(2),
            }
        }
        CMD_MACHINE_STATUS => {
            need(1)?;
            VmcFrame::MachineStatusRequest { packno: packno()? }
        }
        CMD_MACHINE_REPORT => VmcFrame::MachineStatus {
            packno: packno()?,
            status: data[1..].to_vec(),
        },
        other => VmcFrame::Other {
            cmd: other,
            data: data.to_vec(),
        },
    })
}

/// An event out of the streaming decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A frame with a good checksum and a known shape, and its raw bytes.
    Frame(VmcFrame, Vec<u8>),
    /// Bytes that looked like a frame but were not one; already skipped.
    Error(FrameError, Vec<u8>),
}

/// Streaming decoder: push bytes as they arrive in any chunking, pop frames.
///
/// Garbage before a sync pair is skipped silently; a frame with a bad checksum or shape is
/// reported once and skipped by one byte, so a real frame hidden inside noise is still found.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    order: SlotOrder,
}

impl Decoder {
    /// A decoder for boards with the given slot byte order.
    pub fn new(order: SlotOrder) -> Self {
        Self {
            buf: Vec::with_capacity(64),
            order,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The line went quiet with a partial frame buffered: it will never complete, so drop
    /// its first byte and let [`Decoder::next_event`] look for a frame in the rest. Returns
    /// whether anything was dropped.
    pub fn on_idle(&mut self) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        self.buf.drain(..1);
        true
    }

    /// Bytes buffered but not yet decoded.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, or `None` until more bytes arrive.
    pub fn next_event(&mut self) -> Option<Decoded> {
        // Find the sync pair.
        let start = self.buf.windows(2).position(|w| w == [STX1, STX2]);
        match start {
            None => {
                // Keep a trailing FA: it may be the first half of a sync pair.
                let keep = usize::from(self.buf.last() == Some(&STX1));
                let drop = self.buf.len() - keep;
                self.buf.drain(..drop);
                return None;
            }
            Some(i) => {
                self.buf.drain(..i);
            }
        }
        if self.buf.len() < 4 {
            return None;
        }
        let len = usize::from(self.buf[3]);
        if let Some(want) = fixed_len(self.buf[2])
            && want != len
        {
            // Known command, impossible length: noise. Fail now instead of waiting for
            // bytes that would swallow the next real frame.
            let raw = self.buf[..4].to_vec();
            self.buf.drain(..1);
            return Some(Decoded::Error(
                FrameError::BadLength { cmd: raw[2], len },
                raw,
            ));
        }
        if len > MAX_LEN {
            let raw = self.buf[..4].to_vec();
            self.buf.drain(..1);
            return Some(Decoded::Error(FrameError::TooLong(len), raw));
        }
        let total = len + 5;
        if self.buf.len() < total {
            return None;
        }
        let expected = xor(&self.buf[..total - 1]);
        let got = self.buf[total - 1];
        if expected != got {
            let raw = self.buf[..total].to_vec();
            self.buf.drain(..1);
            return Some(Decoded::Error(
                FrameError::BadChecksum { expected, got },
                raw,
            ));
        }
        let raw: Vec<u8> = self.buf.drain(..total).collect();
        let cmd = raw[2];
        Some(match decode_body(cmd, &raw[4..total - 1], self.order) {
            Ok(frame) => Decoded::Frame(frame, raw),
            Err(e) => Decoded::Error(e, raw),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BE: SlotOrder = SlotOrder::BigEndian;

    #[test]
    fn poll_and_ack_match_the_spec_bytes() {
        assert_eq!(encode(&VmcFrame::Poll, BE), POLL);
        assert_eq!(encode(&VmcFrame::Ack, BE), ACK);
    }

    #[test]
    fn dispense_slot_11_packno_1_matches_the_spec_example() {
        let f = VmcFrame::Dispense {
            packno: 1,
            drop_sensor: true,
            elevator: false,
            slot: 11,
        };
        assert_eq!(
            encode(&f, BE),
            [0xFA, 0xFB, 0x06, 0x05, 0x01, 0x01, 0x00, 0x00, 0x0B, 0x09]
        );
    }

    #[test]
    fn success_report_example_decodes() {
        let mut d = Decoder::new(BE);
        d.push(&[0xFA, 0xFB, 0x04, 0x04, 0x01, 0x02, 0x00, 0x0B, 0x09]);
        let Some(Decoded::Frame(f, _)) = d.next_event() else {
            panic!("no frame")
        };
        assert_eq!(
            f,
            VmcFrame::DispenseReport {
                packno: 1,
                status: DispenseStatus::Success,
                slot: 11
            }
        );
        assert_eq!(d.next_event(), None);
    }

    #[test]
    fn little_endian_boards_put_the_low_slot_byte_first() {
        let f = VmcFrame::Dispense {
            packno: 1,
            drop_sensor: true,
            elevator: false,
            slot: 11,
        };
        let bytes = encode(&f, SlotOrder::LittleEndian);
        assert_eq!(&bytes[7..9], &[0x0B, 0x00]);
        let mut d = Decoder::new(SlotOrder::LittleEndian);
        d.push(&bytes);
        assert_eq!(d.next_event(), Some(Decoded::Frame(f, bytes)));
    }

    #[test]
    fn every_frame_kind_round_trips() {
        let frames = [
            VmcFrame::Poll,
            VmcFrame::Ack,
            VmcFrame::Dispense {
                packno: 255,
                drop_sensor: false,
                elevator: true,
                slot: 0x1234,
            },
            VmcFrame::DispenseReport {
                packno: 7,
                status: DispenseStatus::Jammed,
                slot: 3,
            },
            VmcFrame::DispenseReport {
                packno: 8,
                status: DispenseStatus::Other(0x77),
                slot: 3,
            },
            VmcFrame::CheckSlot {
                packno: 9,
                slot: 60,
            },
            VmcFrame::SlotStatus {
                packno: 10,
                status: 0x02,
                slot: 60,
            },
            VmcFrame::MachineStatusRequest { packno: 11 },
            VmcFrame::MachineStatus {
                packno: 12,
                status: vec![0, 0, 1],
            },
            VmcFrame::Other {
                cmd: 0x70,
                data: vec![1, 2, 3],
            },
        ];
        for f in frames {
            let bytes = encode(&f, BE);
            let mut d = Decoder::new(BE);
            d.push(&bytes);
            assert_eq!(
                d.next_event(),
                Some(Decoded::Frame(f.clone(), bytes)),
                "{f:?}"
            );
        }
    }

    #[test]
    fn a_corrupt_checksum_is_reported_and_the_next_frame_still_decodes() {
        let mut bytes = encode(&VmcFrame::Poll, BE);
        bytes[4] ^= 0xFF;
        bytes.extend_from_slice(&ACK);
        let mut d = Decoder::new(BE);
        d.push(&bytes);
        assert!(matches!(
            d.next_event(),
            Some(Decoded::Error(FrameError::BadChecksum { .. }, _))
        ));
        assert!(matches!(
            d.next_event(),
            Some(Decoded::Frame(VmcFrame::Ack, _))
        ));
        assert_eq!(d.next_event(), None);
    }

    #[test]
    fn garbage_before_a_frame_is_skipped() {
        let mut d = Decoder::new(BE);
        d.push(&[0x00, 0xFA, 0x13, 0xFB, 0xFA]);
        assert_eq!(d.next_event(), None);
        d.push(&POLL[1..]);
        assert!(matches!(
            d.next_event(),
            Some(Decoded::Frame(VmcFrame::Poll, _))
        ));
    }

    #[test]
    fn packno_zero_is_rejected() {
        let bytes = encode(&VmcFrame::CheckSlot { packno: 0, slot: 1 }, BE);
        let mut d = Decoder::new(BE);
        d.push(&bytes);
        assert!(matches!(
            d.next_event(),
            Some(Decoded::Error(FrameError::ZeroPackNo, _))
        ));
    }

    #[test]
    fn an_absurd_length_does_not_stall_the_decoder() {
        let mut d = Decoder::new(BE);
        d.push(&[0xFA, 0xFB, 0x70, 0xF0]);
        assert!(matches!(
            d.next_event(),
            Some(Decoded::Error(FrameError::TooLong(0xF0), _))
        ));
        d.push(&POLL);
        assert!(matches!(
            d.next_event(),
            Some(Decoded::Frame(VmcFrame::Poll, _))
        ));
    }

    #[test]
    fn wrong_length_for_a_known_command_is_an_error_not_a_panic() {
        let bytes = encode(
            &VmcFrame::Other {
                cmd: CMD_DISPENSE,
                data: vec![1, 2],
            },
            BE,
        );
        let mut d = Decoder::new(BE);
        d.push(&bytes);
        assert!(matches!(
            d.next_event(),
            Some(Decoded::Error(FrameError::BadLength { .. }, _))
        ));
    }
}
