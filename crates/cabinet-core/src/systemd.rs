//! Telling systemd how the kiosk is doing (sd_notify(3), without libsystemd): `READY=1`
//! once the cabinet can serve (subscribed and the board answered), `WATCHDOG=1` from the
//! runner's own loop, `STATUS=` lines for `systemctl status`, `STOPPING=1` on the way out.
//!
//! The watchdog pings come from the runner's tick, not from a separate timer task: a
//! runner stuck in a call that never returns stops pinging, and systemd restarts the
//! service (`WatchdogSec=` in the unit). Outside systemd (`NOTIFY_SOCKET` unset) every
//! call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

/// Where the notifications go.
#[derive(Debug)]
enum Target {
    Path(PathBuf),
    /// Linux abstract socket (`NOTIFY_SOCKET=@name`).
    Abstract(Vec<u8>),
}

/// A connection to the service manager's notification socket, if there is one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, Target)>,
    watchdog_every: Option<Duration>,
    last_ping: Option<Instant>,
    ready: bool,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, as systemd sets them for a
    /// `Type=notify` service. The watchdog is pinged at half its timeout, and only when
    /// `WATCHDOG_PID` is unset, this process or its parent.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|s| {
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()).to_vec();
            let target = match bytes.first() {
                Some(b'/') => Target::Path(PathBuf::from(s)),
                Some(b'@') => Target::Abstract(bytes[1..].to_vec()),
                _ => {
                    warn!(socket = ?s, "NOTIFY_SOCKET is neither a path nor @abstract; not notifying");
                    return None;
                }
            };
            match UnixDatagram::unbound() {
                Ok(sock) => Some((sock, target)),
                Err(e) => {
                    warn!(error = %e, "cannot create the notification socket");
                    None
                }
            }
        });
        // systemd names the unit's main process. The window app runs under a kiosk
        // compositor (cage), which is the main process and passes the environment on:
        // its child pings for it (the unit says NotifyAccess=all).
        let ours = std::env::var("WATCHDOG_PID").ok().is_none_or(|p| {
            let p = p.trim();
            p == std::process::id().to_string()
                || p == std::os::unix::process::parent_id().to_string()
        });
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|us| *us > 0 && ours && target.is_some())
            .map(|us| Duration::from_micros(us / 2));
        Notifier {
            target,
            watchdog_every,
            last_ping: None,
            ready: false,
        }
    }

    /// Whether a service manager is listening.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often the watchdog wants a ping (half `WATCHDOG_USEC`), if it is on.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }

    fn send(&self, msg: &str) {
        let Some((sock, target)) = &self.target else {
            return;
        };
        let sent = match target {
            Target::Path(p) => sock.send_to(msg.as_bytes(), p).map(|_| ()),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| sock.send_to_addr(msg.as_bytes(), &addr))
                    .map(|_| ())
            }
        };
        match sent {
            Ok(()) => debug!(msg, "notified the service manager"),
            Err(e) => warn!(error = %e, msg, "cannot notify the service manager"),
        }
    }

    /// `READY=1`, once: the cabinet is subscribed and its board answers.
    pub fn ready(&mut self, status: &str) {
        if !self.ready {
            self.ready = true;
            self.send(&format!("READY=1\nSTATUS={status}"));
            self.last_ping = Some(Instant::now());
        }
    }

    /// Whether `READY=1` went out.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// A line for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    /// `WATCHDOG=1` if the watchdog is on and half its timeout has passed since the last.
    /// Call it from the loop whose liveness it vouches for.
    pub fn watchdog(&mut self) {
        let Some(every) = self.watchdog_every else {
            return;
        };
        if self.last_ping.is_none_or(|t| t.elapsed() >= every) {
            self.last_ping = Some(Instant::now());
            self.send("WATCHDOG=1");
        }
    }

    /// `STOPPING=1`: a clean shutdown has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn listener() -> (tempfile::TempDir, UnixDatagram, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (dir, sock, path)
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn notifier(path: &std::path::Path, every: Option<Duration>) -> Notifier {
        Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                Target::Path(path.to_owned()),
            )),
            watchdog_every: every,
            last_ping: None,
            ready: false,
        }
    }

    #[test]
    fn ready_goes_out_once_with_a_status() {
        let (_d, sock, path) = listener();
        let mut n = notifier(&path, None);
        n.ready("serving");
        n.ready("serving");
        n.status("out of service: board");
        assert_eq!(recv(&sock), "READY=1\nSTATUS=serving");
        assert_eq!(recv(&sock), "STATUS=out of service: board");
        assert!(n.is_ready());
    }

    #[test]
    fn watchdog_pings_at_most_once_per_interval() {
        let (_d, sock, path) = listener();
        let mut n = notifier(&path, Some(Duration::from_secs(3600)));
        n.watchdog();
        n.watchdog();
        n.stopping();
        assert_eq!(recv(&sock), "WATCHDOG=1");
        assert_eq!(
            recv(&sock),
            "STOPPING=1\nSTATUS=stopping",
            "the second ping was not due"
        );
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        let mut n = Notifier {
            target: None,
            watchdog_every: None,
            last_ping: None,
            ready: false,
        };
        assert!(!n.enabled());
        n.ready("x");
        n.watchdog();
        n.stopping();
    }
}
