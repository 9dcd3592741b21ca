//! The simulator's end of the cable: reading what the host sends, and sending frames
//! (corrupted on purpose when the `bad-checksum` fault asks for it).

use std::io::{Read, Write};
use std::time::Duration;

use serialport::{SerialPort, TTYPort};

use super::state::Shared;

/// Read whatever arrives within `timeout`. `None`: nothing (or no host on the other end).
pub(super) fn read_some(port: &mut TTYPort, timeout: Duration, buf: &mut [u8]) -> Option<usize> {
    let _ = port.set_timeout(timeout.max(Duration::from_millis(1)));
    match port.read(buf) {
        Ok(n) if n > 0 => Some(n),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => None,
        Err(_) => {
            // No host has the other end open (BrokenPipe). A real board keeps talking into
            // the void; we idle briefly instead of spinning.
            std::thread::sleep(timeout.min(Duration::from_millis(10)));
            None
        }
    }
}

pub(super) fn send(shared: &Shared, port: &mut TTYPort, mut bytes: Vec<u8>, corruptible: bool) {
    if corruptible {
        let mut c = shared.lock();
        if c.faults.bad_checksum > 0 {
            c.faults.bad_checksum -= 1;
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x5A;
            }
        }
    }
    // A write error means no host is connected: the frame is lost, as on a real cable.
    let _ = port.write_all(&bytes);
}
