//! The only module that opens serial ports: real devices by path, and pseudo-terminal pairs
//! for the simulator. Everything else sees a [`SerialLink`].

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

/// Open a serial device at `baud` 8N1, exclusively (a second opener gets "in use").
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
        .map_err(|e| classify(name, e))
}

fn classify(path: String, e: serialport::Error) -> BoardError {
    match e.kind() {
        serialport::ErrorKind::NoDevice => BoardError::NoSuchPort { path },
        serialport::ErrorKind::Io(io::ErrorKind::NotFound) => BoardError::NoSuchPort { path },
        serialport::ErrorKind::Io(io::ErrorKind::PermissionDenied) => {
            BoardError::PermissionDenied { path }
        }
        serialport::ErrorKind::Io(io::ErrorKind::WouldBlock) => BoardError::PortBusy { path },
        _ if e.description.contains("EBUSY") || e.description.contains("busy") => {
            BoardError::PortBusy { path }
        }
        _ if e.description.contains("EACCES") || e.description.contains("ermission") => {
            BoardError::PermissionDenied { path }
        }
        _ => BoardError::Open {
            path,
            message: e.description,
        },
    }
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
