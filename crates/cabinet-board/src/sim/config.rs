//! How a simulated board is built ([`SimConfig`]) and the faults it can be given
//! ([`Fault`], parsed from the names `cabinet sim-board --fault` takes), with the
//! switches the board's thread reads them as.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::Protocol;
use crate::lockboard::DoorPolarity;
use crate::vmc::codec::SlotOrder;

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
    /// Lock board: the other lock boards on the same RS-485 bus (a locker wall), as
    /// (address, channels). Each answers only frames addressed to it, with its own doors;
    /// an address no board has stays silent, as on a real bus. Empty: this board alone.
    /// The faults above are this board's; a neighbour can only lose power
    /// ([`Simulator::power_neighbour`](super::Simulator::power_neighbour)).
    pub neighbours: Vec<(u8, u16)>,
    /// Record every POLL reply latency (for the benchmark).
    pub record_latencies: bool,
    /// VMC: record when the first byte of each new host Dispense frame was read (for the
    /// dispatch benchmark); see
    /// [`Simulator::take_dispense_times`](super::Simulator::take_dispense_times).
    pub record_dispense_times: bool,
    /// VMC: the board knows the machine-status command (0x53). Without it the board
    /// acknowledges the frame and does nothing else: it neither answers nor takes the
    /// frame's PackNO as its last, as boards without that command do.
    pub machine_status: bool,
    /// Lock board: play a real line at this baud (8N1). A pty carries bytes at once, so
    /// each reply waits for the time the request and the reply would have taken on the
    /// wire; the bus stays busy meanwhile, as a half-duplex bus does. `None`: no delay.
    pub wire_baud: Option<u32>,
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
            neighbours: Vec::new(),
            record_latencies: false,
            record_dispense_times: false,
            machine_status: true,
            wire_baud: None,
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
    /// Lock board: the board acts on the frames sent to its address but its replies carry
    /// this address instead (a board with a mis-set DIP switch that still hears its own).
    AnswersAs(u8),
}

impl std::str::FromStr for Fault {
    type Err = String;
    /// Parse `jam`, `motor-not-stopped`, `no-drop`, `door-stuck`, `no-reply`, `silent`,
    /// `bad-checksum[=N]`, `slow-reply=MS`, `repeated-packno`, `report-twice`,
    /// `report-wrong-slot`, `answers-as=ADDR`.
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
            "answers-as" => Fault::AnswersAs(
                u8::try_from(num(arg, None)?).map_err(|_| "answers-as: an address is 0-255")?,
            ),
            other => {
                return Err(format!(
                    "unknown fault {other:?}; allowed: jam, motor-not-stopped, no-drop, door-stuck, \
                     no-reply, silent, bad-checksum[=N], slow-reply=MS, repeated-packno, \
                     report-twice, report-wrong-slot, answers-as=ADDR"
                ));
            }
        })
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Faults {
    pub(super) jam: bool,
    pub(super) motor_not_stopped: bool,
    pub(super) no_drop: bool,
    pub(super) door_stuck: bool,
    pub(super) no_reply: bool,
    pub(super) silent: bool,
    pub(super) bad_checksum: u32,
    pub(super) slow_reply: Option<Duration>,
    pub(super) repeated_packno: bool,
    pub(super) report_twice: bool,
    pub(super) report_wrong_slot: bool,
    pub(super) answers_as: Option<u8>,
}
