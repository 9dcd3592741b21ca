//! What the broker harnesses (`mosquitto`, `rabbitmq`) share: free loopback ports, a
//! child process that must start listening, and a backend client on a loopback port with
//! what the benchmarks wait for on it (a kiosk's live birth, a command's terminal reply).

use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_core::config::{Secret, parse_broker_url};
use cabinet_core::mqtt::{BackendClient, BackendOptions};
use cabinet_core::protocol::Reply;

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

/// Waits until a cabinet's live "online" birth arrives (`None` if the connection ends).
/// Live messages arrive with retain off; a retained one is an earlier start's.
pub async fn live_online(backend: &mut BackendClient) -> Option<()> {
    while let Some(m) = backend.recv().await {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
        if m.topic.ends_with("/state") && v["status"] == "online" && !m.retain {
            return Some(());
        }
    }
    None
}

/// The terminal reply of `cmd_id`, within `wait`.
pub async fn terminal_reply(
    backend: &mut BackendClient,
    cmd_id: &str,
    wait: Duration,
) -> Option<Reply> {
    let replies = async {
        while let Some(m) = backend.recv().await {
            if m.topic.ends_with("/reply")
                && let Ok(r) = serde_json::from_slice::<Reply>(&m.payload)
                && r.cmd_id == cmd_id
                && r.is_terminal()
            {
                return Some(r);
            }
        }
        None
    };
    tokio::time::timeout(wait, replies).await.ok().flatten()
}
