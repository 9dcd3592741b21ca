//! A TCP relay between the demo kiosk and the embedded broker. The demo's "drop the
//! broker" control cuts it: the embedded broker cannot be stopped, and a relay cut looks
//! to the kiosk like the real thing (its connection reset, new ones refused), while the
//! demo backend, connected to the broker directly, stays up.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

/// The relay: listens on a free loopback port, forwards to the broker while up.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    up: AtomicBool,
    /// Both ends of every relayed connection, to cut them all at once.
    open: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn cut_all(&self) {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(PoisonError::into_inner));
        for s in open {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Relay {
    /// Starts relaying to `broker` on a free loopback port.
    pub fn start(broker: SocketAddr) -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            up: AtomicBool::new(true),
            open: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        thread::Builder::new()
            .name("demo-relay".into())
            .spawn(move || {
                for client in listener.incoming().flatten() {
                    if !s.up.load(Ordering::Acquire) {
                        // Refused as a dead broker would: closed at once.
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    if let Err(e) = relay(&s, client, broker) {
                        tracing::warn!(error = %e, "demo relay: cannot reach the broker");
                    }
                }
            })?;
        Ok(Relay { addr, shared })
    }

    /// Where the kiosk connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the relay passes connections.
    pub fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Acquire)
    }

    /// Cuts every connection and refuses new ones (`false`), or passes them again.
    pub fn set_up(&self, up: bool) {
        self.shared.up.store(up, Ordering::Release);
        if !up {
            self.shared.cut_all();
        }
        tracing::info!(
            up,
            "demo: broker link {}",
            if up { "restored" } else { "dropped" }
        );
    }
}

fn relay(shared: &Arc<Shared>, client: TcpStream, broker: SocketAddr) -> io::Result<()> {
    let upstream = TcpStream::connect(broker)?;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    {
        let mut open = shared.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.push(client.try_clone()?);
        open.push(upstream.try_clone()?);
    }
    pipe(client.try_clone()?, upstream.try_clone()?)?;
    pipe(upstream, client)?;
    Ok(())
}

/// Copies `from` to `to` on a thread of its own; when either side ends, both do.
fn pipe(mut from: TcpStream, mut to: TcpStream) -> io::Result<()> {
    thread::Builder::new()
        .name("demo-relay-pipe".into())
        .spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// An echo server standing in for the broker.
    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    fn round_trip(s: &mut TcpStream) -> io::Result<Vec<u8>> {
        s.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf)?;
        Ok(buf.to_vec())
    }

    #[test]
    fn passes_while_up_cuts_when_dropped_and_passes_again_when_restored() {
        let relay = Relay::start(echo()).unwrap();
        let mut a = TcpStream::connect(relay.addr()).unwrap();
        assert_eq!(round_trip(&mut a).unwrap(), b"ping");

        relay.set_up(false);
        assert!(!relay.is_up());
        // The open connection is cut: reads see its end.
        let mut buf = [0u8; 1];
        assert!(matches!(a.read(&mut buf), Ok(0) | Err(_)), "still open");
        // A new one is accepted by the socket but closed at once.
        let mut b = TcpStream::connect(relay.addr()).unwrap();
        assert!(round_trip(&mut b).is_err(), "a dropped broker answered");

        relay.set_up(true);
        let mut c = TcpStream::connect(relay.addr()).unwrap();
        assert_eq!(round_trip(&mut c).unwrap(), b"ping");
    }
}
