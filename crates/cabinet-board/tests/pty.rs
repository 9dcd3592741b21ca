//! Drivers against the simulator over a real pseudo-terminal, one fault at a time.
//!
//! Every test asserts the driver's outcome *and* the simulator's action count: the count is
//! what proves "at most once physically". Tests share the pty subsystem and time-sensitive
//! deadlines, so they run one at a time (the `ONE_AT_A_TIME` lock).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;
use std::time::Duration;

use cabinet_board::lockboard::{DoorPolarity, LockBoard};
use cabinet_board::sim::{Fault, SimConfig, Simulator};
use cabinet_board::vmc::{SlotOrder, VmcBoard};
use cabinet_board::{Board, BoardSettings, MachineStatus, Outcome, Protocol, Reach, SlotStatus};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

const READY: Duration = Duration::from_secs(5);

struct Vmc {
    sim: Simulator,
    board: VmcBoard,
    _dir: tempfile::TempDir,
}

/// A VMC board polling every 20 ms with a 30 ms motor, behind a stable symlink.
fn vmc_with(tweak: impl FnOnce(&mut SimConfig, &mut BoardSettings)) -> Vmc {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(Protocol::Vmc);
    cfg.link = Some(dir.path().join("board"));
    cfg.poll_interval = Duration::from_millis(20);
    cfg.motor_time = Duration::from_millis(30);
    let mut settings = BoardSettings::new(Protocol::Vmc, dir.path().join("board"));
    settings.vmc.report_timeout = Duration::from_secs(2);
    settings.vmc.silent_after = Duration::from_millis(500);
    tweak(&mut cfg, &mut settings);
    let sim = Simulator::start(cfg).unwrap();
    let board = VmcBoard::open(&settings).unwrap();
    assert!(board.wait_ready(READY), "board never polled");
    Vmc {
        sim,
        board,
        _dir: dir,
    }
}

fn vmc() -> Vmc {
    vmc_with(|_, _| {})
}

#[test]
fn vmc_dispense_runs_the_motor_once_and_sees_the_drop() {
    let _s = serial();
    let v = vmc();
    assert_eq!(
        v.board.dispense(11),
        Outcome::Dispensed {
            drop_detected: Some(true)
        }
    );
    let stats = v.sim.stats();
    assert_eq!(stats.motor_actions, 1);
    assert_eq!(stats.actions_by_slot.get(&11), Some(&1));
    assert_eq!(stats.host_resends_seen, 0);
}

#[test]
fn vmc_without_drop_sensor_reports_no_drop_evidence() {
    let _s = serial();
    let v = vmc_with(|_, s| s.vmc.drop_sensor = false);
    assert_eq!(
        v.board.dispense(3),
        Outcome::Dispensed {
            drop_detected: None
        }
    );
    assert_eq!(v.sim.stats().motor_actions, 1);
}

#[test]
fn vmc_jam_is_reported_as_jammed() {
    let _s = serial();
    let v = vmc();
    v.sim.set_fault(Fault::Jam);
    assert_eq!(v.board.dispense(5), Outcome::Jammed);
    assert_eq!(v.sim.stats().motor_actions, 1);
}

#[test]
fn vmc_motor_not_stopped_is_reported() {
    let _s = serial();
    let v = vmc();
    v.sim.set_fault(Fault::MotorNotStopped);
    assert_eq!(v.board.dispense(5), Outcome::MotorNotStopped);
    assert_eq!(v.sim.stats().motor_actions, 1);
}

#[test]
fn vmc_no_drop_detected_is_a_dispense_without_a_drop() {
    let _s = serial();
    let v = vmc();
    v.sim.set_fault(Fault::NoDropDetected);
    let out = v.board.dispense(5);
    assert_eq!(
        out,
        Outcome::Dispensed {
            drop_detected: Some(false)
        }
    );
    assert!(!out.is_success());
    assert_eq!(v.sim.stats().motor_actions, 1);
}

#[test]
fn vmc_unknown_motor_moves_nothing() {
    let _s = serial();
    let v = vmc();
    assert_eq!(v.board.dispense(99), Outcome::NoSuchSlot);
    assert_eq!(v.sim.stats().motor_actions, 0);
}

#[test]
fn vmc_board_that_never_reports_is_outcome_unknown_after_the_motor_ran() {
    let _s = serial();
    let v = vmc_with(|_, s| s.vmc.report_timeout = Duration::from_millis(500));
    v.sim.set_fault(Fault::NoReply);
    let out = v.board.dispense(7);
    assert_eq!(
        out,
        Outcome::NoReply {
            reach: Reach::Acknowledged
        }
    );
    assert!(out.is_unknown());
    assert_eq!(v.sim.stats().motor_actions, 1);
}

#[test]
fn vmc_silent_board_gets_nothing_sent() {
    let _s = serial();
    let v = vmc();
    v.sim.set_fault(Fault::Silent);
    let out = v.board.dispense(7);
    assert_eq!(
        out,
        Outcome::NoReply {
            reach: Reach::NotSent
        }
    );
    assert!(!out.motor_may_have_moved());
    assert_eq!(v.sim.stats().motor_actions, 0);
    assert!(!v.board.health().connected);
}

#[test]
fn vmc_corrupt_ack_is_recovered_by_the_report_and_dispenses_once() {
    let _s = serial();
    let v = vmc();
    v.sim.set_fault(Fault::BadChecksum(1));
    // The board's ACK of our dispense is corrupted; its "dispensing" report that follows
    // proves it got the command, so the host neither resends nor gives up.
    assert_eq!(
        v.board.dispense(2),
        Outcome::Dispensed {
            drop_detected: Some(true)
        }
    );
    assert_eq!(v.sim.stats().motor_actions, 1);
    assert_eq!(v.board.health().bad_frames, 1);
}

#[test]
fn vmc_persistently_corrupt_board_is_bad_frame_with_unconfirmed_reach() {
    let _s = serial();
    let v = vmc();
    v.sim.set_fault(Fault::BadChecksum(u32::MAX));
    let out = v.board.dispense(2);
    assert_eq!(
        out,
        Outcome::BadFrame {
            reach: Reach::Unconfirmed
        }
    );
    assert!(out.is_unknown());
    // The board executed the command; every frame it sent back was corrupt.
    assert_eq!(v.sim.stats().motor_actions, 1);
    assert!(v.board.health().bad_frames >= 2);
}

#[test]
fn vmc_slow_report_just_under_the_timeout_succeeds() {
    let _s = serial();
    let v = vmc_with(|_, s| s.vmc.report_timeout = Duration::from_millis(1500));
    v.sim
        .set_fault(Fault::SlowReply(Duration::from_millis(1100)));
    assert_eq!(
        v.board.dispense(4),
        Outcome::Dispensed {
            drop_detected: Some(true)
        }
    );
    assert_eq!(v.sim.stats().motor_actions, 1);
}

#[test]
fn vmc_slow_report_past_the_timeout_is_outcome_unknown() {
    let _s = serial();
    let v = vmc_with(|_, s| s.vmc.report_timeout = Duration::from_millis(500));
    v.sim
        .set_fault(Fault::SlowReply(Duration::from_millis(1000)));
    assert_eq!(
        v.board.dispense(4),
        Outcome::NoReply {
            reach: Reach::Acknowledged
        }
    );
    assert_eq!(v.sim.stats().motor_actions, 1);
}

#[test]
fn vmc_repeated_packno_never_dispenses_twice_in_either_direction() {
    let _s = serial();
    let v = vmc();
    v.sim.set_fault(Fault::RepeatedPackNo);
    assert_eq!(
        v.board.dispense(9),
        Outcome::Dispensed {
            drop_detected: Some(true)
        }
    );
    // The board's repeated report went out before any later POLL, so once the next
    // command has been answered the host has seen (and ignored) it.
    assert_eq!(v.board.slot_status(9).unwrap(), SlotStatus::Ready);
    let stats = v.sim.stats();
    assert_eq!(
        stats.motor_actions, 1,
        "a repeated PackNO leaves the count at one"
    );
    assert_eq!(
        stats.host_resends_seen, 1,
        "the host resent with the same PackNO"
    );
    assert_eq!(v.board.health().resends, 1);
    assert!(
        v.board.health().duplicate_frames >= 1,
        "the host ignored the repeated report"
    );
}

#[test]
fn vmc_dispense_times_record_each_new_dispense_frame_once() {
    let _s = serial();
    let v = vmc_with(|c, _| c.record_dispense_times = true);
    let before = std::time::Instant::now();
    for slot in [3, 5] {
        assert!(matches!(v.board.dispense(slot), Outcome::Dispensed { .. }));
    }
    // A resend (same PackNO) is not a new dispense frame.
    v.sim.set_fault(Fault::RepeatedPackNo);
    assert!(matches!(v.board.dispense(7), Outcome::Dispensed { .. }));
    assert_eq!(v.sim.stats().host_resends_seen, 1);
    let times = v.sim.take_dispense_times();
    let slots: Vec<u16> = times.iter().map(|(s, _)| *s).collect();
    assert_eq!(slots, vec![3, 5, 7]);
    assert!(
        times.iter().all(|(_, t)| *t >= before),
        "instants of this run"
    );
    assert!(times.windows(2).all(|w| w[0].1 <= w[1].1), "oldest first");
    assert!(v.sim.take_dispense_times().is_empty(), "taken, not copied");
}

#[test]
fn vmc_unplug_mid_dispense_is_port_gone_and_replug_recovers() {
    let _s = serial();
    let v = vmc_with(|c, _| c.motor_time = Duration::from_secs(10));
    std::thread::scope(|scope| {
        let inflight = scope.spawn(|| v.board.dispense(1));
        assert!(v.sim.wait_until(READY, |s| s.motor_actions == 1));
        // The board ACKs the command, then sends a "dispensing" report: once the host has
        // ACKed a frame sent after the motor started, it has read the board's ACK too.
        let acks = v.sim.stats().host_acks;
        assert!(v.sim.wait_until(READY, |s| s.host_acks > acks));
        v.sim.unplug();
        assert_eq!(
            inflight.join().unwrap(),
            Outcome::PortGone {
                reach: Reach::Acknowledged
            }
        );
    });
    assert!(!v.board.health().connected);
    assert_eq!(
        v.board.dispense(1),
        Outcome::PortGone {
            reach: Reach::NotSent
        }
    );
    v.sim.replug();
    assert!(v.board.wait_ready(READY), "driver did not reopen the port");
    assert_eq!(v.board.health().reconnects, 1);
    v.sim.clear_faults();
    assert_eq!(v.sim.stats().motor_actions, 1);
}

#[test]
fn vmc_little_endian_boards_dispense_the_right_slot() {
    let _s = serial();
    let v = vmc_with(|c, s| {
        c.slot_order = SlotOrder::LittleEndian;
        s.vmc.slot_order = SlotOrder::LittleEndian;
    });
    assert!(v.board.dispense(11).is_success());
    assert_eq!(v.sim.stats().actions_by_slot.get(&11), Some(&1));
}

#[test]
fn vmc_slot_and_machine_status_are_read_without_moving_anything() {
    let _s = serial();
    let v = vmc();
    v.sim.set_stock(4, 0);
    assert_eq!(v.board.slot_status(3).unwrap(), SlotStatus::Ready);
    assert_eq!(v.board.slot_status(4).unwrap(), SlotStatus::OutOfStock);
    assert_eq!(v.board.slot_status(99).unwrap(), SlotStatus::NoSuchSlot);
    let m = v.board.machine_status().unwrap();
    assert_eq!(m.delivery_door_open, Some(false));
    assert_eq!(m.drop_sensor_ok, Some(true));
    assert_eq!(v.sim.stats().motor_actions, 0);
    assert!(v.board.unlock(1).is_err());
    assert!(!v.board.recent_frames().is_empty());
}

/// Regression: after an app restart the driver numbered its frames the same way every
/// time, so the first dispense could repeat the PackNO the board executed last and be
/// silently skipped as a resend (`board_no_reply`). A board without the machine-status
/// command defeats the old fix (a status query first), so the number must come from disk.
#[test]
fn vmc_a_restarted_driver_never_repeats_the_packno_the_board_executed_last() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(Protocol::Vmc);
    cfg.link = Some(dir.path().join("board"));
    cfg.poll_interval = Duration::from_millis(20);
    cfg.motor_time = Duration::from_millis(30);
    cfg.machine_status = false;
    let sim = Simulator::start(cfg).unwrap();
    let mut settings = BoardSettings::new(Protocol::Vmc, dir.path().join("board"));
    settings.vmc.report_timeout = Duration::from_secs(2);
    settings.vmc.silent_after = Duration::from_millis(500);
    settings.vmc.query_timeout = Duration::from_millis(200);
    settings.vmc.packno_file = Some(dir.path().join("packno"));
    for run in 1..=4u64 {
        // A new driver is what a restarted app has; the board keeps its memory.
        let board = VmcBoard::open(&settings).unwrap();
        assert!(board.wait_ready(READY), "run {run}: board never polled");
        assert_eq!(
            board.dispense(3),
            Outcome::Dispensed {
                drop_detected: Some(true)
            },
            "run {run}: the first dispense after a restart"
        );
        drop(board);
        let stats = sim.stats();
        assert_eq!(stats.motor_actions, run, "run {run}");
        assert_eq!(stats.host_resends_seen, 0, "run {run}: a PackNO repeated");
    }
    let stored = std::fs::read_to_string(dir.path().join("packno")).unwrap();
    assert!(stored.trim().parse::<u8>().is_ok(), "{stored:?}");
}

/// Regression: a board that sends its final report twice (a new frame each time) had the
/// second copy credited to the next command on the same slot, which then "succeeded"
/// before its own motor had finished. Here the next command jams: it must say so.
#[test]
fn vmc_a_report_sent_twice_never_confirms_the_next_command() {
    let _s = serial();
    let v = vmc();
    v.sim.set_fault(Fault::ReportTwice);
    assert_eq!(
        v.board.dispense(5),
        Outcome::Dispensed {
            drop_detected: Some(true)
        }
    );
    v.sim.clear_faults();
    v.sim.set_fault(Fault::Jam);
    assert_eq!(v.board.dispense(5), Outcome::Jammed);
    assert_eq!(v.sim.stats().motor_actions, 2);
}

#[test]
fn vmc_a_report_for_another_slot_never_confirms_a_dispense() {
    let _s = serial();
    let v = vmc();
    v.sim.set_fault(Fault::ReportWrongSlot);
    assert_eq!(
        v.board.dispense(5),
        Outcome::NoReply {
            reach: Reach::Acknowledged
        }
    );
    assert_eq!(v.sim.stats().motor_actions, 1);
}

struct Lock {
    sim: Simulator,
    board: LockBoard,
    _dir: tempfile::TempDir,
}

/// A lock board driver's settings for the port at `path`, with the tests' short door and
/// query times.
fn lock_settings(path: std::path::PathBuf) -> BoardSettings {
    let mut settings = BoardSettings::new(Protocol::Lockboard, path);
    settings.lockboard.door_open_timeout = Duration::from_millis(300);
    settings.lockboard.query_interval = Duration::from_millis(50);
    settings
}

fn lock_with(tweak: impl FnOnce(&mut SimConfig, &mut BoardSettings)) -> Lock {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(Protocol::Lockboard);
    cfg.link = Some(dir.path().join("board"));
    let mut settings = lock_settings(dir.path().join("board"));
    tweak(&mut cfg, &mut settings);
    let sim = Simulator::start(cfg).unwrap();
    let board = LockBoard::open(&settings).unwrap();
    Lock {
        sim,
        board,
        _dir: dir,
    }
}

fn lock() -> Lock {
    lock_with(|_, _| {})
}

#[test]
fn lock_unlock_opens_the_door_once() {
    let _s = serial();
    let l = lock();
    assert_eq!(l.board.dispense(3), Outcome::DoorOpened);
    let stats = l.sim.stats();
    assert_eq!(stats.unlock_actions, 1);
    assert_eq!(stats.actions_by_slot.get(&3), Some(&1));
    let m: MachineStatus = l.board.machine_status().unwrap();
    assert_eq!(m.open_doors, Some(vec![3]));
    assert!(l.board.health().connected);
}

#[test]
fn lock_stuck_door_is_door_never_opened() {
    let _s = serial();
    let l = lock();
    l.sim.set_fault(Fault::DoorStuck);
    assert_eq!(l.board.dispense(3), Outcome::DoorNeverOpened);
    assert_eq!(
        l.sim.stats().unlock_actions,
        1,
        "the unlock is never repeated"
    );
}

#[test]
fn lock_board_that_never_answers_unlocked_nothing() {
    let _s = serial();
    let l = lock();
    l.sim.set_fault(Fault::NoReply);
    let out = l.board.dispense(3);
    assert_eq!(
        out,
        Outcome::NoReply {
            reach: Reach::Unconfirmed
        }
    );
    assert_eq!(l.sim.stats().unlock_actions, 0);
    assert!(!l.board.health().connected);
}

#[test]
fn lock_corrupt_unlock_reply_is_resolved_by_query_not_by_unlocking_again() {
    let _s = serial();
    let l = lock();
    l.sim.set_fault(Fault::BadChecksum(1));
    assert_eq!(l.board.dispense(5), Outcome::DoorOpened);
    assert_eq!(l.sim.stats().unlock_actions, 1);
    assert_eq!(l.board.health().bad_frames, 1);
}

#[test]
fn lock_slow_reply_just_under_the_timeout_is_accepted() {
    let _s = serial();
    let l = lock();
    l.sim
        .set_fault(Fault::SlowReply(Duration::from_millis(1300)));
    assert_eq!(l.board.dispense(2), Outcome::DoorOpened);
    assert_eq!(l.sim.stats().unlock_actions, 1);
}

#[test]
fn lock_slow_reply_past_the_timeout_is_unconfirmed_and_never_repeated() {
    let _s = serial();
    let l = lock();
    l.sim
        .set_fault(Fault::SlowReply(Duration::from_millis(1700)));
    let out = l.board.dispense(2);
    assert_eq!(
        out,
        Outcome::NoReply {
            reach: Reach::Unconfirmed
        }
    );
    assert!(out.is_unknown());
    assert_eq!(l.sim.stats().unlock_actions, 1);
}

#[test]
fn lock_channel_past_the_board_is_refused_without_sending() {
    let _s = serial();
    let l = lock();
    assert_eq!(l.board.dispense(25), Outcome::NoSuchSlot);
    assert_eq!(l.board.dispense(0), Outcome::NoSuchSlot);
    assert_eq!(l.sim.stats().frames_rx, 0);
}

#[test]
fn lock_unplug_and_replug() {
    let _s = serial();
    let l = lock();
    assert_eq!(l.board.dispense(1), Outcome::DoorOpened);
    l.sim.unplug();
    let out = l.board.dispense(2);
    assert!(
        matches!(
            out,
            Outcome::PortGone {
                reach: Reach::NotSent | Reach::Unconfirmed
            }
        ),
        "{out:?}"
    );
    assert_eq!(
        l.board.dispense(2),
        Outcome::PortGone {
            reach: Reach::NotSent
        }
    );
    l.sim.replug();
    assert_eq!(l.board.dispense(2), Outcome::DoorOpened);
    assert_eq!(l.board.health().reconnects, 1);
    assert_eq!(l.sim.stats().unlock_actions, 2);
}

#[test]
fn lock_inverted_polarity_reads_doors_the_other_way() {
    let _s = serial();
    let l = lock_with(|c, s| {
        c.polarity = DoorPolarity::OpenIs00;
        s.lockboard.polarity = DoorPolarity::OpenIs00;
    });
    assert_eq!(l.board.slot_status(4).unwrap(), SlotStatus::DoorClosed);
    assert_eq!(l.board.dispense(4), Outcome::DoorOpened);
    assert_eq!(l.board.slot_status(4).unwrap(), SlotStatus::DoorOpen);
    l.sim.set_door(4, false);
    assert_eq!(l.board.slot_status(4).unwrap(), SlotStatus::DoorClosed);
}

#[test]
fn lock_board_at_another_address_is_not_ours() {
    let _s = serial();
    let l = lock_with(|c, _| c.address = 2);
    assert!(matches!(l.board.dispense(1), Outcome::NoReply { .. }));
    assert_eq!(l.sim.stats().unlock_actions, 0);
}

/// A locker wall: boards 1 (24 doors), 2 (24, the simulator's own) and 3 (16) on one
/// RS-485 bus. A driver for any one address unlocks that board's door and no other
/// board's; an address no board has gets silence; a board without power takes only
/// itself away.
#[test]
fn lock_wall_on_one_bus_each_board_answers_only_its_own_address() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(Protocol::Lockboard);
    cfg.link = Some(dir.path().join("bus"));
    cfg.address = 2;
    cfg.neighbours = vec![(1, 24), (3, 16)];
    let sim = Simulator::start(cfg).unwrap();
    let driver = |address: u8, channels: u16| {
        let mut s = lock_settings(dir.path().join("bus"));
        s.lockboard.address = address;
        s.lockboard.channels = channels;
        LockBoard::open(&s).unwrap()
    };

    // One driver at a time holds the port, as the kiosk's one bus worker will.
    {
        let b2 = driver(2, 24);
        assert_eq!(b2.dispense(5), Outcome::DoorOpened);
    }
    let stats = sim.stats();
    assert_eq!(stats.unlock_actions, 1);
    assert_eq!(stats.actions_by_slot.get(&5), Some(&1));
    assert!(stats.neighbour_unlocks.is_empty(), "{stats:?}");

    {
        let b1 = driver(1, 24);
        assert_eq!(b1.dispense(7), Outcome::DoorOpened);
        let b1_doors = b1.machine_status().unwrap().open_doors;
        assert_eq!(b1_doors, Some(vec![7]), "board 1 reads its own doors only");
    }
    {
        // Two status bytes: a 16-door board's reply.
        let b3 = driver(3, 16);
        sim.set_neighbour_door(3, 16, true);
        assert_eq!(b3.machine_status().unwrap().open_doors, Some(vec![16]));
        assert_eq!(b3.dispense(2), Outcome::DoorOpened);
    }
    let stats = sim.stats();
    assert_eq!(stats.unlock_actions, 1, "this board still unlocked once");
    let by_board: Vec<(u8, Vec<(u16, u64)>)> = stats
        .neighbour_unlocks
        .iter()
        .map(|(b, m)| (*b, m.iter().map(|(c, n)| (*c, *n)).collect()))
        .collect();
    assert_eq!(by_board, vec![(1, vec![(7, 1)]), (3, vec![(2, 1)])]);

    // No board at address 4: silence, nothing unlocked anywhere.
    {
        let b4 = driver(4, 24);
        assert!(matches!(b4.dispense(1), Outcome::NoReply { .. }));
    }
    // Board 3 loses power: it goes silent; board 2 on the same bus carries on.
    sim.power_neighbour(3, false);
    {
        let b3 = driver(3, 16);
        assert!(matches!(b3.dispense(3), Outcome::NoReply { .. }));
    }
    {
        let b2 = driver(2, 24);
        assert_eq!(b2.dispense(6), Outcome::DoorOpened);
    }
    let stats = sim.stats();
    assert_eq!(stats.unlock_actions, 2);
    let unlocks: u64 = stats
        .neighbour_unlocks
        .values()
        .flat_map(|m| m.values())
        .sum();
    assert_eq!(unlocks, 2, "no unlock at the silent or missing addresses");
}

#[test]
fn opening_a_missing_port_names_it() {
    let settings = BoardSettings::new(Protocol::Vmc, "/dev/no-such-board");
    let err = cabinet_board::open(&settings).unwrap_err().to_string();
    assert!(
        err.contains("no such serial port /dev/no-such-board"),
        "{err}"
    );
}

/// Regression: a healthy board whose query reply was one status byte wider than 24
/// channels need was taken for garbage: marked down, every command refused.
#[test]
fn lock_board_replying_one_byte_wider_is_up_unlocks_and_reads_its_doors() {
    let _s = serial();
    let l = lock_with(|c, _| c.status_bytes = Some(4));
    assert!(l.board.wait_ready(READY), "board never answered a query");
    assert!(l.board.health().connected);
    assert_eq!(l.board.dispense(3), Outcome::DoorOpened);
    assert_eq!(l.sim.stats().unlock_actions, 1);
    // Channel 20 sits in the third byte from the end, not the second: bit order kept.
    l.sim.set_door(20, true);
    assert_eq!(l.board.slot_status(3).unwrap(), SlotStatus::DoorOpen);
    assert_eq!(l.board.slot_status(4).unwrap(), SlotStatus::DoorClosed);
    assert_eq!(l.board.slot_status(20).unwrap(), SlotStatus::DoorOpen);
    assert_eq!(l.board.slot_status(21).unwrap(), SlotStatus::DoorClosed);
    let m = l.board.machine_status().unwrap();
    assert_eq!(m.open_doors, Some(vec![3, 20]));
    assert_eq!(m.raw, "00 08 00 04");
    assert!(l.board.health().connected);
    assert_eq!(l.board.health().bad_frames, 0);
}

/// Regression: the same with a reply one byte narrower (16 channels' worth). Channels
/// 17-24 are not in the replies: their doors read unknown and they are never unlocked.
#[test]
fn lock_board_replying_one_byte_narrower_is_up_and_unlocks_the_channels_it_reports() {
    let _s = serial();
    let l = lock_with(|c, _| c.status_bytes = Some(2));
    assert!(l.board.wait_ready(READY), "board never answered a query");
    assert!(l.board.health().connected);
    assert_eq!(l.board.dispense(3), Outcome::DoorOpened);
    assert_eq!(l.board.dispense(12), Outcome::DoorOpened);
    l.sim.set_door(16, true);
    assert_eq!(l.board.slot_status(12).unwrap(), SlotStatus::DoorOpen);
    assert_eq!(l.board.slot_status(13).unwrap(), SlotStatus::DoorClosed);
    assert_eq!(l.board.slot_status(16).unwrap(), SlotStatus::DoorOpen);
    assert_eq!(l.board.slot_status(17).unwrap(), SlotStatus::DoorUnknown);
    let m = l.board.machine_status().unwrap();
    assert_eq!(m.open_doors, Some(vec![3, 12, 16]));
    assert_eq!(m.raw, "88 04");
    let frames_before = l.sim.stats().frames_rx;
    assert_eq!(l.board.dispense(20), Outcome::NoSuchSlot);
    let stats = l.sim.stats();
    assert_eq!(stats.unlock_actions, 2, "channel 20 was never unlocked");
    assert_eq!(stats.frames_rx, frames_before, "nothing was sent for it");
    assert!(l.board.health().connected);
    assert_eq!(l.board.health().bad_frames, 0);
}

/// A fresh driver asked to unlock a channel past 8 learns the reply width first, so a
/// channel the board does not report is refused before anything is sent to unlock it.
#[test]
fn lock_unlock_of_a_channel_beyond_a_narrower_reply_is_refused_on_first_use() {
    let _s = serial();
    let l = lock_with(|c, _| c.status_bytes = Some(2));
    assert_eq!(l.board.dispense(20), Outcome::NoSuchSlot);
    assert_eq!(l.sim.stats().unlock_actions, 0);
    assert_eq!(l.board.dispense(10), Outcome::DoorOpened);
    assert_eq!(l.sim.stats().unlock_actions, 1);
}
