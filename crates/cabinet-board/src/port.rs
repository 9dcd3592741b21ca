//! The only module that opens serial ports: real devices by path, and pseudo-terminal pairs
//! for the simulator. Everything else sees a [`SerialLink`].
//!
//! Ports are opened exclusively (TIOCEXCL and an exclusive flock), so a second opener — the
//! technician's `cabinet board` while the kiosk runs — is refused. That refusal must say
//! "busy, held by pid N", not "no such port": serialport reports both EBUSY and a lost
//! flock as `NoDevice`, which is why [`open`] sorts its errors itself.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serialport::{ClearBuffer, SerialPort, TTYPort};

use crate::BoardError;

/// A byte stream with a read timeout: what a driver needs from a port.
pub trait SerialLink: Read + Write + Send {
    /// Set how long a read may block before it fails with `TimedOut`.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;
    /// Drop any bytes received but not read yet (stale frames from before we opened).
    fn discard_input(&mut self) -> io::Result<()>;
}

impl SerialLink for TTYPort {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        SerialPort::set_timeout(self, timeout).map_err(io::Error::from)
    }

    fn discard_input(&mut self) -> io::Result<()> {
        SerialPort::clear(self, ClearBuffer::Input).map_err(io::Error::from)
    }
}

/// Open a serial device at `baud` 8N1, exclusively (a second opener gets
/// [`BoardError::PortBusy`], naming the holder when it can be found).
pub fn open(path: &Path, baud: u32, timeout: Duration) -> Result<TTYPort, BoardError> {
    let name = path.to_string_lossy().into_owned();
    if !path.exists() {
        return Err(BoardError::NoSuchPort { path: name });
    }
    serialport::new(name.clone(), baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(timeout)
        .open_native()
        .map_err(|e| classify(name, path.exists(), &e, || holder(path)))
}

/// Sort an open failure. `exists`: whether the path is there now; `holder` is asked only
/// when the port is busy.
fn classify(
    path: String,
    exists: bool,
    e: &serialport::Error,
    holder: impl FnOnce() -> Option<PortHolder>,
) -> BoardError {
    use serialport::ErrorKind as K;
    let description = e.description.to_ascii_lowercase();
    if !exists {
        // Gone between our check and the open: an adapter being unplugged.
        return BoardError::NoSuchPort { path };
    }
    // serialport maps EBUSY (TIOCEXCL: someone has the tty open) and a flock held by
    // another process to `NoDevice`; on a path that exists, that means busy.
    let busy = matches!(e.kind(), K::NoDevice | K::Io(io::ErrorKind::WouldBlock))
        || description.contains("busy")
        || description.contains("unable to acquire");
    if busy {
        return BoardError::PortBusy {
            holder: holder(),
            path,
        };
    }
    match e.kind() {
        K::Io(io::ErrorKind::NotFound) => BoardError::NoSuchPort { path },
        K::Io(io::ErrorKind::PermissionDenied) => BoardError::PermissionDenied { path },
        _ if description.contains("eacces") || description.contains("permission") => {
            BoardError::PermissionDenied { path }
        }
        _ => BoardError::Open {
            path,
            message: e.description.clone(),
        },
    }
}

/// A process that has a serial port open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    /// Its process id.
    pub pid: u32,
    /// Its command name (`/proc/<pid>/comm`), when readable.
    pub command: Option<String>,
}

impl std::fmt::Display for PortHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.command {
            Some(c) => write!(f, "pid {} ({c})", self.pid),
            None => write!(f, "pid {}", self.pid),
        }
    }
}

/// Who has `path` open, as far as this user can see: the owner of the flock on it
/// (`/proc/locks` is readable by everyone, so this works for the technician's own user
/// too), else a process with a descriptor on it (`/proc/<pid>/fd`: our own user's
/// processes, or every process as root).
pub fn holder(path: &Path) -> Option<PortHolder> {
    use std::os::unix::fs::MetadataExt;
    let target = std::fs::metadata(path).ok()?;
    let pid = std::fs::read_to_string("/proc/locks")
        .ok()
        .and_then(|locks| flock_owner(&locks, target.dev(), target.ino()))
        .or_else(|| descriptor_owner(&target))?;
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Some(PortHolder { pid, command })
}

/// The pid holding a flock on the inode `ino` of the filesystem `dev`, from the text of
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 12658 fe:00:5308642 0 EOF`; major and minor
/// in hex, the inode in decimal; a waiter's line has `->` after the number).
fn flock_owner(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = fields.get(5)?.split(':');
        let same = u64::from_str_radix(id.next()?, 16).ok()? == major
            && u64::from_str_radix(id.next()?, 16).ok()? == minor
            && id.next()?.parse::<u64>().ok()? == ino;
        let pid = fields.get(4)?.parse::<u32>().ok()?;
        (same && pid > 0).then_some(pid)
    })
}

/// The lowest pid with a descriptor on the same device (or file) as `target`.
fn descriptor_owner(target: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let same = |m: &std::fs::Metadata| {
        if target.file_type().is_char_device() {
            m.file_type().is_char_device() && m.rdev() == target.rdev()
        } else {
            m.dev() == target.dev() && m.ino() == target.ino()
        }
    };
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.filter_map(Result::ok)
                .any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| same(&m)))
        })
    })
}

/// The board end of a fresh pseudo-terminal, and the path the host end can be opened at.
///
/// The host side is closed right away: the driver opens it by path like a real device. While
/// no host has it open, reads on the board end fail with `BrokenPipe`; the simulator treats
/// that as "cable not connected".
pub fn pty_pair() -> Result<(TTYPort, PathBuf), BoardError> {
    let (master, slave) = TTYPort::pair().map_err(|e| BoardError::Open {
        path: "/dev/ptmx".into(),
        message: e.description,
    })?;
    let path = slave
        .name()
        .map(PathBuf::from)
        .ok_or_else(|| BoardError::Open {
            path: "/dev/ptmx".into(),
            message: "pseudo-terminal has no slave name".into(),
        })?;
    drop(slave);
    // posix_openpt() leaves the master inheritable: a process spawned later (the kiosk in
    // tests) would hold it open, and "unplugging" by closing it would not hang the line up.
    use std::os::fd::AsRawFd;
    nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| BoardError::Open {
        path: "/dev/ptmx".into(),
        message: format!("cannot set close-on-exec: {e}"),
    })?;
    Ok((master, path))
}

/// Whether an I/O error means the port is gone rather than merely quiet.
pub fn is_gone(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn err(kind: serialport::ErrorKind, description: &str) -> serialport::Error {
        serialport::Error::new(kind, description)
    }

    fn someone() -> Option<PortHolder> {
        Some(PortHolder {
            pid: 4242,
            command: Some("cabinet-kiosk".into()),
        })
    }

    #[test]
    fn a_tty_held_exclusively_is_busy_not_missing() {
        // EBUSY from open() on a TIOCEXCL tty, as serialport reports it.
        let e = err(serialport::ErrorKind::NoDevice, "Device or resource busy");
        let out = classify("/dev/ttyUSB0".into(), true, &e, someone);
        assert!(matches!(out, BoardError::PortBusy { .. }), "{out:?}");
        let msg = out.to_string();
        assert!(msg.contains("/dev/ttyUSB0 is busy"), "{msg}");
        assert!(msg.contains("pid 4242 (cabinet-kiosk)"), "{msg}");
        assert!(!msg.contains("no such serial port"), "{msg}");
    }

    #[test]
    fn a_port_another_process_has_flocked_is_busy() {
        // What root gets: TIOCEXCL does not stop root, the exclusive flock does.
        let e = err(
            serialport::ErrorKind::NoDevice,
            "Unable to acquire exclusive lock on serial port",
        );
        assert!(matches!(
            classify("/dev/ttyUSB0".into(), true, &e, || None),
            BoardError::PortBusy { holder: None, .. }
        ));
        let e = err(
            serialport::ErrorKind::Io(io::ErrorKind::WouldBlock),
            "Resource temporarily unavailable",
        );
        assert!(matches!(
            classify("/dev/ttyUSB0".into(), true, &e, || None),
            BoardError::PortBusy { .. }
        ));
    }

    #[test]
    fn busy_without_a_known_holder_says_how_to_find_it() {
        let e = err(serialport::ErrorKind::NoDevice, "Device or resource busy");
        let msg = classify("/dev/ttyUSB0".into(), true, &e, || None).to_string();
        assert!(msg.contains("is busy"), "{msg}");
        assert!(msg.contains("fuser -v /dev/ttyUSB0"), "{msg}");
    }

    #[test]
    fn a_path_that_is_not_there_is_still_no_such_port() {
        let asked = std::cell::Cell::new(false);
        for e in [
            err(serialport::ErrorKind::NoDevice, "Device or resource busy"),
            err(
                serialport::ErrorKind::Io(io::ErrorKind::NotFound),
                "No such file or directory",
            ),
        ] {
            let out = classify("/dev/ttyUSB0".into(), false, &e, || {
                asked.set(true);
                None
            });
            assert!(matches!(out, BoardError::NoSuchPort { .. }), "{out:?}");
        }
        assert!(
            !asked.get(),
            "no holder is looked for when the path is gone"
        );
        let e = err(
            serialport::ErrorKind::Io(io::ErrorKind::NotFound),
            "No such file or directory",
        );
        assert!(matches!(
            classify("/dev/ttyUSB0".into(), true, &e, || None),
            BoardError::NoSuchPort { .. }
        ));
    }

    #[test]
    fn permission_denied_is_still_permission_denied() {
        let e = err(
            serialport::ErrorKind::Io(io::ErrorKind::PermissionDenied),
            "Permission denied",
        );
        assert!(matches!(
            classify("/dev/ttyUSB0".into(), true, &e, || None),
            BoardError::PermissionDenied { .. }
        ));
    }

    #[test]
    fn the_flock_owner_is_read_from_proc_locks() {
        let dev = nix::sys::stat::makedev(0xfe, 0x00);
        let locks = "1: FLOCK  ADVISORY  WRITE 12658 fe:00:5308642 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 777 fe:00:42 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fe:00:42 0 EOF\n\
                     3: POSIX  ADVISORY  WRITE 99 fe:00:7 0 EOF\n";
        assert_eq!(flock_owner(locks, dev, 42), Some(4242));
        assert_eq!(flock_owner(locks, dev, 5308642), Some(12658));
        assert_eq!(flock_owner(locks, dev, 7), None, "not a flock");
        let other = nix::sys::stat::makedev(0x08, 0x01);
        assert_eq!(flock_owner(locks, other, 42), None, "another filesystem");
    }

    #[test]
    fn a_second_open_of_a_held_pty_is_busy_and_names_this_process() {
        let (_master, path) = pty_pair().unwrap();
        let _held = open(&path, 9600, Duration::from_millis(10)).unwrap();
        let err = open(&path, 9600, Duration::from_millis(10)).unwrap_err();
        match &err {
            BoardError::PortBusy { holder, .. } => {
                assert_eq!(holder.as_ref().map(|h| h.pid), Some(std::process::id()));
            }
            other => panic!("expected busy, got {other:?}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }
}
