//! Free loopback ports.
//!
//! A port found free here is free only until somebody else binds it: between this call and
//! the child process's `bind` another test (or anything on the machine) can take it. So
//! whoever hands such a port to a child process starts it through
//! [`start_on_free_ports`], which picks new ports and tries again when the child reports
//! the address taken ([`crate::mosquitto::Broker`], `webdriver::Driver`): no caller races.

use std::net::TcpListener;

/// How many times [`start_on_free_ports`] tries before it gives up: a port stolen three
/// times in a row is no longer a race but a machine out of ports.
pub const ATTEMPTS: usize = 5;

/// A loopback port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr()
        .expect("local address of a bound socket")
        .port()
}

/// Whether process `pid` itself listens on loopback TCP `port` (its own socket, from
/// `/proc/net/tcp` and its `/proc/<pid>/fd`). A successful connect is not proof: when the
/// port was taken, the connect reaches whoever took it while the child is still on its
/// way to failing.
pub fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local_address rem_address st ... inode (10th); 0A is LISTEN.
            (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// What one start-up attempt came to.
#[derive(Debug)]
pub enum Attempt<T> {
    /// Started and listening.
    Up(T),
    /// One of its ports was taken before it could bind it: try again with new ones.
    PortTaken(String),
}

/// Runs `start` with `n` fresh free ports until it does not report [`Attempt::PortTaken`];
/// panics after [`ATTEMPTS`] such reports, with the last one.
pub fn start_on_free_ports<T>(n: usize, mut start: impl FnMut(&[u16]) -> Attempt<T>) -> T {
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        // Distinct ports: all bound at once before any is released.
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("local address").port())
            .collect();
        drop(listeners);
        match start(&ports) {
            Attempt::Up(t) => return t,
            Attempt::PortTaken(why) => {
                eprintln!("port taken between finding and binding it ({why}); new ports");
                last = why;
            }
        }
    }
    panic!("{ATTEMPTS} start-ups in a row found a port taken; the last: {last}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_tells_our_own_listener_from_another_ones() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listens(std::process::id(), port));
        assert!(!listens(std::process::id(), free_port()));
        assert!(!listens(1, port), "pid 1 does not hold our socket");
    }

    #[test]
    fn a_taken_port_is_retried_on_new_ports() {
        let mut seen = Vec::new();
        let got = start_on_free_ports(2, |ports| {
            assert_eq!(ports.len(), 2);
            assert_ne!(ports[0], ports[1], "ports of one attempt are distinct");
            seen.push(ports.to_vec());
            if seen.len() < 3 {
                Attempt::PortTaken("Address already in use".into())
            } else {
                Attempt::Up(ports[0])
            }
        });
        assert_eq!(seen.len(), 3);
        assert_eq!(got, seen[2][0]);
    }

    #[test]
    #[should_panic(expected = "start-ups in a row found a port taken")]
    fn a_port_taken_every_time_fails_the_test() {
        start_on_free_ports(1, |_| Attempt::<()>::PortTaken("taken".into()));
    }
}
