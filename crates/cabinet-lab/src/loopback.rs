//! What the broker harnesses (`mosquitto`, `rabbitmq`) share: free loopback ports, a
//! child process that must start listening, and a backend client on a loopback port.

use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_core::config::{Secret, parse_broker_url};
use cabinet_core::mqtt::{BackendClient, BackendOptions};

/// How long a child process may take to open its port.
const LISTEN_WAIT: Duration = Duration::from_secs(15);

/// `n` distinct free loopback ports (all bound at once, then released).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Waits until the child process `name` listens on loopback `port`; kills it if it does
/// not in time.
pub fn wait_listening(child: &mut Child, port: u16, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + LISTEN_WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.try_wait()? {
            bail!("{name} exited at start: {st}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{name} did not listen on port {port} in time");
        }
        // Waiting for a child process to open its port; there is nothing to await.
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A backend connection to the broker on loopback `port`, as `username`/`password` when
/// given, keeping its session if `persistent`; each broker operation waits at most
/// `timeout`.
pub async fn backend(
    port: u16,
    client_id: &str,
    login: Option<(&str, Secret)>,
    persistent: bool,
    timeout: Duration,
) -> anyhow::Result<BackendClient> {
    let url = format!("mqtt://127.0.0.1:{port}");
    let (username, password) = match login {
        Some((u, p)) => (Some(u.to_owned()), Some(p)),
        None => (None, None),
    };
    Ok(BackendClient::connect(BackendOptions {
        client_id: client_id.into(),
        username,
        password,
        broker: parse_broker_url(&url).map_err(|e| anyhow::anyhow!("{e}"))?,
        ca_pem: None,
        timeout,
        persistent_session: persistent,
    })
    .await?)
}
