//! A cabinet of several boards against the simulator over real pseudo-terminals: a locker
//! wall of three lock boards on one bus, and a vending board on a second port.
//!
//! Every test asserts the cabinet's outcome and the simulators' per-board action counts:
//! the counts prove each slot reached its own board, once. Tests share the pty subsystem
//! and time-sensitive deadlines, so they run one at a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cabinet_board::sim::{Fault, SimConfig, Simulator};
use cabinet_board::{
    Board, BoardError, BoardSettings, BoardSpec, Cabinet, Outcome, Protocol, Reach, SlotRoute,
};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wide: a board that is there answers within milliseconds.
const READY: Duration = Duration::from_secs(10);

/// Slots 1-24 are board 1's doors, 25-48 board 2's, 49-64 board 3's (16 doors), 101-110
/// the vending board's motors 1-10.
const WALL: [(&str, u8, u16, u16); 3] = [
    ("wall-1", 1, 24, 0),
    ("wall-2", 2, 24, 24),
    ("wall-3", 3, 16, 48),
];
const VEND_FIRST: u16 = 101;

struct Rig {
    /// Plays board 2, with boards 1 and 3 beside it on the bus.
    wall: Simulator,
    vend: Simulator,
    cabinet: Cabinet,
    _dir: tempfile::TempDir,
}

fn lock_spec(name: &str, bus: &Path, address: u8, channels: u16) -> BoardSpec {
    let mut s = BoardSettings::new(Protocol::Lockboard, bus);
    s.lockboard.address = address;
    s.lockboard.channels = channels;
    s.lockboard.door_open_timeout = Duration::from_millis(300);
    s.lockboard.query_interval = Duration::from_millis(50);
    BoardSpec {
        name: name.into(),
        settings: s,
    }
}

fn vend_spec(port: &Path) -> BoardSpec {
    let mut s = BoardSettings::new(Protocol::Vmc, port);
    s.vmc.report_timeout = Duration::from_secs(2);
    s.vmc.silent_after = Duration::from_millis(500);
    BoardSpec {
        name: "vend".into(),
        settings: s,
    }
}

fn routes() -> BTreeMap<u16, SlotRoute> {
    let mut r = BTreeMap::new();
    for (board, (_, _, channels, first)) in WALL.iter().enumerate() {
        for channel in 1..=*channels {
            r.insert(first + channel, SlotRoute { board, channel });
        }
    }
    for channel in 1..=10 {
        r.insert(VEND_FIRST - 1 + channel, SlotRoute { board: 3, channel });
    }
    r
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let vmc = dir.path().join("vmc");
    let mut w = SimConfig::new(Protocol::Lockboard);
    w.link = Some(bus.clone());
    w.address = 2;
    w.slots = 24;
    w.neighbours = vec![(1, 24), (3, 16)];
    let wall = Simulator::start(w).unwrap();
    let mut v = SimConfig::new(Protocol::Vmc);
    v.link = Some(vmc.clone());
    v.poll_interval = Duration::from_millis(20);
    v.motor_time = Duration::from_millis(30);
    let vend = Simulator::start(v).unwrap();
    let mut specs: Vec<BoardSpec> = WALL
        .iter()
        .map(|(name, address, channels, _)| lock_spec(name, &bus, *address, *channels))
        .collect();
    specs.push(vend_spec(&vmc));
    let cabinet = Cabinet::open_lenient(&specs, routes()).unwrap();
    assert!(cabinet.wait_ready(READY), "no board answered");
    Rig {
        wall,
        vend,
        cabinet,
        _dir: dir,
    }
}

#[test]
fn each_slot_reaches_its_own_board_and_channel_once_on_both_buses() {
    let _s = serial();
    let r = rig();
    assert_eq!(r.cabinet.route(30), Some(("wall-2", 6)));
    assert_eq!(r.cabinet.dispense(5), Outcome::DoorOpened);
    assert_eq!(r.cabinet.dispense(30), Outcome::DoorOpened);
    assert_eq!(r.cabinet.dispense(64), Outcome::DoorOpened);
    assert_eq!(
        r.cabinet.dispense(VEND_FIRST + 2),
        Outcome::Dispensed {
            drop_detected: Some(true)
        }
    );
    assert_eq!(r.wall.unlocks(), [(1, 5, 1), (2, 6, 1), (3, 16, 1)]);
    let vend = r.vend.stats();
    assert_eq!(vend.motor_actions, 1);
    assert_eq!(vend.actions_by_slot.get(&3), Some(&1));

    // Open doors come back as the cabinet's slots, whichever board they are on.
    let status = r.cabinet.machine_status().unwrap();
    assert_eq!(status.open_doors, Some(vec![5, 30, 64]));
    // A slot the config does not have is nobody's: nothing is sent anywhere.
    assert_eq!(r.cabinet.dispense(65), Outcome::NoSuchSlot);
    assert_eq!(r.cabinet.dispense(VEND_FIRST + 10), Outcome::NoSuchSlot);
    assert_eq!(r.wall.unlocks().len(), 3);
    assert_eq!(r.vend.stats().motor_actions, 1);

    let boards = r.cabinet.boards();
    let names: Vec<(&str, Option<u8>, usize, bool)> = boards
        .iter()
        .map(|b| {
            (
                b.name.as_str(),
                b.address,
                b.slots.len(),
                b.health.connected,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("wall-1", Some(1), 24, true),
            ("wall-2", Some(2), 24, true),
            ("wall-3", Some(3), 16, true),
            ("vend", None, 10, true),
        ]
    );
    assert!(r.cabinet.health().connected);

    // The technician's frame log says which board each frame was with: wall-2's unlock of
    // channel 6 is wall-2's, not its neighbours' on the same wire.
    let frames = r.cabinet.recent_frames();
    let with = |board: &str| {
        frames
            .iter()
            .filter(|f| f.board.as_deref() == Some(board))
            .count()
    };
    for board in ["wall-1", "wall-2", "wall-3", "vend"] {
        assert!(with(board) > 0, "no frames named {board}");
    }
    assert_eq!(
        with("wall-1") + with("wall-2") + with("wall-3") + with("vend"),
        frames.len()
    );
}

#[test]
fn a_board_without_power_takes_only_its_own_slots_out_until_it_answers_again() {
    let _s = serial();
    let r = rig();
    r.wall.power_neighbour(3, false);
    // The first unlock after it died is written before anyone knows: its outcome is
    // honest about that.
    assert_eq!(
        r.cabinet.dispense(50),
        Outcome::NoReply {
            reach: Reach::Unconfirmed
        }
    );
    // From then on its slots fail at once, unsent, and the bus stays free for the others.
    let frames_before = r.wall.stats().frames_rx;
    assert_eq!(
        r.cabinet.dispense(51),
        Outcome::NoReply {
            reach: Reach::NotSent
        }
    );
    assert_eq!(
        r.wall.stats().frames_rx,
        frames_before,
        "nothing went on the bus"
    );
    assert_eq!(
        r.cabinet.unavailable_slots(),
        (49..=64).collect::<Vec<u16>>()
    );
    assert_eq!(r.cabinet.dispense(7), Outcome::DoorOpened);
    assert_eq!(r.cabinet.dispense(40), Outcome::DoorOpened);
    assert!(matches!(
        r.cabinet.dispense(VEND_FIRST),
        Outcome::Dispensed { .. }
    ));
    assert!(r.cabinet.health().connected, "the cabinet still sells");
    let status = r.cabinet.machine_status().unwrap();
    assert_eq!(
        status.open_doors,
        Some(vec![7, 40]),
        "the others still report"
    );
    assert_eq!(r.wall.unlocks(), [(1, 7, 1), (2, 16, 1)]);

    // Power back: a probe (after its backoff) hears it, and its slots sell again.
    r.wall.power_neighbour(3, true);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !r.cabinet.unavailable_slots().is_empty() {
        assert!(Instant::now() < deadline, "board 3 never came back");
        let _ = r.cabinet.machine_status();
        // Pacing between health checks, as the kiosk's check interval does.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(r.cabinet.dispense(52), Outcome::DoorOpened);
    assert_eq!(r.wall.unlocks(), [(1, 7, 1), (2, 16, 1), (3, 4, 1)]);
}

#[test]
fn unplugging_the_vending_board_leaves_the_wall_selling() {
    let _s = serial();
    let r = rig();
    r.vend.unplug();
    let out = r.cabinet.dispense(VEND_FIRST + 1);
    assert!(
        matches!(out, Outcome::PortGone { .. } | Outcome::NoReply { .. }),
        "{out:?}"
    );
    assert_eq!(r.vend.stats().motor_actions, 0);
    assert_eq!(r.cabinet.dispense(1), Outcome::DoorOpened);
    assert_eq!(r.cabinet.dispense(25), Outcome::DoorOpened);
    assert_eq!(r.cabinet.dispense(49), Outcome::DoorOpened);
    assert_eq!(r.wall.unlocks(), [(1, 1, 1), (2, 1, 1), (3, 1, 1)]);
}

/// Board 2 hears its own frames and acts on them, but signs its replies as board 9. Its
/// replies are not its answers: the unlock is unconfirmed (never "opened"), it is never
/// sent again, and its slots go out of service.
#[test]
fn a_board_answering_as_another_address_is_refused() {
    let _s = serial();
    let r = rig();
    r.wall.set_fault(Fault::AnswersAs(9));
    assert_eq!(
        r.cabinet.dispense(26),
        Outcome::NoReply {
            reach: Reach::Unconfirmed
        }
    );
    assert_eq!(r.wall.unlocks(), [(2, 2, 1)], "sent once, never repeated");
    assert_eq!(
        r.cabinet.unavailable_slots(),
        (25..=48).collect::<Vec<u16>>()
    );
    assert_eq!(r.cabinet.dispense(2), Outcome::DoorOpened);
}

#[test]
fn wiring_a_bus_cannot_have_is_refused_naming_the_boards() {
    let bus = Path::new("/dev/cabinet-bus-1");
    let open = |specs: &[BoardSpec]| match Cabinet::open_lenient(specs, BTreeMap::new()) {
        Err(BoardError::InvalidSetting { message, .. }) => message,
        other => panic!("{other:?}"),
    };
    let same_address = open(&[lock_spec("a", bus, 3, 24), lock_spec("b", bus, 3, 16)]);
    assert!(
        same_address.contains("\"a\" and \"b\" are both at address 3 on /dev/cabinet-bus-1"),
        "{same_address}"
    );
    let vmc_on_bus = open(&[lock_spec("a", bus, 1, 24), vend_spec(bus)]);
    assert!(
        vmc_on_bus.contains("a VMC board needs its port to itself"),
        "{vmc_on_bus}"
    );
    let mut fast = lock_spec("b", bus, 2, 24);
    fast.settings.baud = Some(19_200);
    let speeds = open(&[lock_spec("a", bus, 1, 24), fast]);
    assert!(speeds.contains("one bus has one speed"), "{speeds}");
}
