//! Test harness: a real Mosquitto on free loopback ports, configured with the shipped
//! `deploy/mosquitto/acl` and the settings of the shipped `deploy/mosquitto/mosquitto.conf`
//! (read from the file, so a change there is a change here), plus a `rumqttc` client
//! playing the backend.
//!
//! Each broker gets free ports through [`crate::port::start_on_free_ports`]: when a port
//! was taken between finding and binding it, Mosquitto exits saying so and the broker
//! starts again on new ones.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::port::{Attempt, listens, start_on_free_ports};

/// Cabinets and backend known to the broker: (username, password).
pub const USERS: [(&str, &str); 4] = [
    ("C001", "pw-C001"),
    ("C002", "pw-C002"),
    ("backend", "pw-backend"),
    ("operator", "pw-operator"),
];

/// Password of a harness user.
pub fn password(user: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .expect("known user")
}

/// How long any await in the tests may take.
pub const STEP: Duration = Duration::from_secs(10);

/// A Mosquitto process owned by the test; killed on drop.
#[derive(Debug)]
pub struct Broker {
    dir: tempfile::TempDir,
    /// The backends' listener (see [`Broker::port`]).
    port: u16,
    /// The cabinets' listener (see [`Broker::cabinet_port`]).
    cabinet_port: u16,
    child: Option<Child>,
    /// A second, TLS-only listener (see [`Broker::start_with_tls`]).
    tls_port: Option<u16>,
}

/// Keys of the shipped config that name this host's files, users or addresses: the
/// harness has its own (or, for TLS, [`Broker::start_with_tls`]'s), so these lines are
/// left out. Every other line applies as shipped.
const SITE_SPECIFIC: [&str; 12] = [
    "user",
    "persistence_location",
    "password_file",
    "acl_file",
    "pid_file",
    "log_dest",
    "include_dir",
    "certfile",
    "keyfile",
    "cafile",
    "capath",
    "crlfile",
];

/// The shipped `deploy/mosquitto/mosquitto.conf` without its site-specific lines: the
/// lines before the first `listener` (global settings) and the lines of each listener,
/// in order (`deploy/mosquitto/mosquitto.conf` says: the cabinets' first, then the
/// backends').
#[derive(Debug)]
struct Shipped {
    global: Vec<String>,
    listeners: Vec<Vec<String>>,
}

impl Shipped {
    fn read() -> Shipped {
        let path = shipped_conf_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("shipped config {}: {e}", path.display()));
        let mut shipped = Shipped {
            global: Vec::new(),
            listeners: Vec::new(),
        };
        for line in text.lines().map(str::trim) {
            let key = line.split_whitespace().next().unwrap_or("");
            if key.is_empty() || key.starts_with('#') || SITE_SPECIFIC.contains(&key) {
                continue;
            }
            if key == "listener" {
                shipped.listeners.push(Vec::new());
            } else if let Some(l) = shipped.listeners.last_mut() {
                l.push(line.to_owned());
            } else {
                shipped.global.push(line.to_owned());
            }
        }
        assert_eq!(
            shipped.listeners.len(),
            2,
            "{} must have two listeners, the cabinets' and then the backends'",
            path.display()
        );
        shipped
    }
}

impl Broker {
    /// Starts Mosquitto with the shipped settings (`deploy/mosquitto/mosquitto.conf`):
    /// the cabinets' listener on [`Broker::cabinet_port`], the backends' on
    /// [`Broker::port`], both on free loopback ports, and the shipped limits; waits until
    /// it accepts connections.
    pub fn start() -> Broker {
        Broker::start_inner(false, Some(Shipped::read()))
    }

    /// Mosquitto as Debian installs it, plus only the shipped ACL and passwords: one
    /// listener for everybody ([`Broker::port`] = [`Broker::cabinet_port`]), no message
    /// size limit (Mosquitto's default takes payloads up to 256 MB), client ids not tied
    /// to usernames. What a cabinet meets on a broker that was set up without our config.
    pub fn start_stock() -> Broker {
        Broker::start_inner(false, None)
    }

    /// Like [`Broker::start`], plus a TLS listener with the cabinets' listener settings
    /// on a third port, with a server certificate for `localhost`/`127.0.0.1` signed by a
    /// CA generated here with OpenSSL ([`Broker::ca_file`]).
    pub fn start_with_tls() -> Broker {
        Broker::start_inner(true, Some(Shipped::read()))
    }

    /// The TLS listener's port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("started with TLS")
    }

    /// The CA that signed the TLS listener's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_inner(tls: bool, shipped: Option<Shipped>) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let passwd = dir.path().join("passwd");
        for (i, (user, pw)) in USERS.iter().enumerate() {
            let mut cmd = Command::new("mosquitto_passwd");
            cmd.arg("-b");
            if i == 0 {
                cmd.arg("-c");
            }
            let st = cmd
                .arg(&passwd)
                .arg(user)
                .arg(pw)
                .stdout(Stdio::null())
                .status()
                .expect("run mosquitto_passwd");
            assert!(st.success(), "mosquitto_passwd failed");
        }
        let acl = acl_path();
        assert!(acl.is_file(), "shipped ACL missing: {}", acl.display());
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if tls {
            make_certs(dir.path());
        }
        // As root, Mosquitto drops to user `mosquitto` unless told otherwise, and then
        // cannot read our tempdir.
        let global = format!(
            "user {user}\nallow_anonymous false\n\
             password_file {passwd}\nacl_file {acl}\npersistence true\n\
             persistence_location {data}/\nlog_dest stderr\nlog_type error\nlog_type warning\n",
            user = current_user(),
            passwd = passwd.display(),
            acl = acl.display(),
            data = data.display(),
        );
        let conf_path = dir.path().join("mosquitto.conf");
        // Ports: the backends', then (shipped) the cabinets', then (TLS) the TLS one.
        let n = 1 + usize::from(shipped.is_some()) + usize::from(tls);
        let (ports, child) = start_on_free_ports(n, |ports| {
            let port = ports[0];
            let cabinet_port = if shipped.is_some() { ports[1] } else { port };
            let tls_port = tls.then(|| ports[n - 1]);
            let conf = config_text(
                &global,
                shipped.as_ref(),
                port,
                cabinet_port,
                tls_port.map(|p| (p, dir.path())),
            );
            std::fs::write(&conf_path, conf).unwrap();
            match spawn(&conf_path, ports) {
                Ok(child) => Attempt::Up(((port, cabinet_port, tls_port), child)),
                Err(taken) => Attempt::PortTaken(taken),
            }
        });
        let (port, cabinet_port, tls_port) = ports;
        Broker {
            dir,
            port,
            cabinet_port,
            tls_port,
            child: Some(child),
        }
    }

    /// The backends' listener (stable across [`Broker::restart`]): client ids are free,
    /// as the shipped backends' listener has them. Cabinets connect here too in the tests
    /// that are not about the listeners (a cabinet's client id is its username anyway).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT` of [`Broker::port`].
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The cabinets' listener, with the shipped cabinets' listener settings (the client
    /// id is the username); [`Broker::port`] on a [`Broker::start_stock`] broker.
    pub fn cabinet_port(&self) -> u16 {
        self.cabinet_port
    }

    /// `mqtt://127.0.0.1:PORT` of [`Broker::cabinet_port`].
    pub fn cabinet_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.cabinet_port)
    }

    /// Every line of the config Mosquitto runs with (to show what a test ran against).
    pub fn config(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.conf")).unwrap_or_default()
    }

    /// Every port it listens on.
    fn ports(&self) -> Vec<u16> {
        let mut ports = vec![self.port];
        if self.cabinet_port != self.port {
            ports.push(self.cabinet_port);
        }
        ports.extend(self.tls_port);
        ports
    }

    /// Graceful stop (SIGTERM, so the persistence file is written), waits for exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + STEP;
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts it again on the same ports with the same persistence directory (clients
    /// know these ports: a port taken meanwhile fails the test, it cannot move).
    pub fn restart(&mut self) {
        self.stop();
        let conf = self.dir.path().join("mosquitto.conf");
        let child = spawn(&conf, &self.ports())
            .unwrap_or_else(|taken| panic!("mosquitto cannot restart on its ports: {taken}"));
        self.child = Some(child);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The whole `mosquitto.conf`: `global` settings, then the listeners on these ports with
/// the shipped settings (or one bare listener for a stock broker), then the TLS listener
/// with the certificates in its directory.
fn config_text(
    global: &str,
    shipped: Option<&Shipped>,
    port: u16,
    cabinet_port: u16,
    tls: Option<(u16, &Path)>,
) -> String {
    let mut conf = global.to_owned();
    let listener = |conf: &mut String, port: u16, lines: &[String]| {
        conf.push_str(&format!("listener {port} 127.0.0.1\n"));
        for l in lines {
            conf.push_str(l);
            conf.push('\n');
        }
    };
    match shipped {
        None => listener(&mut conf, port, &[]),
        Some(shipped) => {
            for l in &shipped.global {
                conf.push_str(l);
                conf.push('\n');
            }
            listener(&mut conf, cabinet_port, &shipped.listeners[0]);
            listener(&mut conf, port, &shipped.listeners[1]);
        }
    }
    if let Some((tls_port, dir)) = tls {
        let cabinets = shipped.map(|s| s.listeners[0].clone());
        listener(&mut conf, tls_port, &cabinets.unwrap_or_default());
        conf.push_str(&format!(
            "cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n",
            d = dir.display()
        ));
    }
    conf
}

/// Runs Mosquitto with the config at `conf` and waits until every one of `ports` accepts
/// connections. `Err` when it exited because one of them was taken (its log says
/// "Address already in use"): the caller picks new ports. Any other failure fails the
/// test. Its log goes on to this process's stderr, as an inherited stderr would.
fn spawn(conf: &Path, ports: &[u16]) -> Result<Child, String> {
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mosquitto (is it installed?)");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Not eprintln!: that would be captured by the test harness, and an
                // inherited stderr never was.
                let _ = writeln!(std::io::stderr().lock(), "{line}");
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            // Its stderr ends with it: the whole log is in.
            let _ = reader.join();
            let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if log.contains("Address already in use") {
                return Err(format!("mosquitto on {ports:?}: {}", log.trim()));
            }
            panic!("mosquitto exited early: {st}\n{log}");
        }
        // Its own listening sockets, not just something answering on these ports.
        if ports.iter().all(|p| listens(child.id(), *p)) {
            return Ok(child);
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {ports:?} in time"
        );
        // Waiting for a child process to open its ports; there is nothing to await.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A throwaway CA and a server certificate for localhost / 127.0.0.1, with OpenSSL.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let st = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert!(st.success(), "openssl {args:?} failed");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cabinet-test-ca",
        ],
    ]
    .concat());
    run(&[
        &["req"],
        &ec[..],
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The shipped ACL, `deploy/mosquitto/acl` at the workspace root, found from this crate's
/// directory.
pub fn acl_path() -> PathBuf {
    deploy_file("deploy/mosquitto/acl")
}

/// The shipped broker config, `deploy/mosquitto/mosquitto.conf`.
pub fn shipped_conf_path() -> PathBuf {
    deploy_file("deploy/mosquitto/mosquitto.conf")
}

/// The value of a global setting in the shipped broker config (`message_size_limit`, ...).
pub fn shipped_setting(key: &str) -> Option<String> {
    Shipped::read().global.iter().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some(key)).then(|| words.collect::<Vec<_>>().join(" "))
    })
}

fn deploy_file(rel: &str) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|d| d.join(rel))
        .find(|p| p.is_file())
        .unwrap_or_else(|| here.join("../..").join(rel))
}

/// A message seen by a [`Client`].
#[derive(Debug, Clone)]
pub struct Msg {
    /// The topic it was published on.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Whether the broker delivered it as a retained message.
    pub retain: bool,
}

/// A plain `rumqttc` client (clean session, auto acks), e.g. the backend.
#[derive(Debug)]
pub struct Client {
    /// The `rumqttc` client, for what the methods here do not cover.
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Msg>,
    subacks: mpsc::UnboundedReceiver<()>,
    pubacks: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Connects as `user` with client id `id` to the backends' listener, clean session;
    /// waits for the ConnAck.
    pub async fn connect(broker: &Broker, id: &str, user: &str) -> Client {
        Client::connect_to(broker.port(), id, user, true).await.0
    }

    /// Connects to the listener on `port` as `user` with client id `id`; waits for the
    /// ConnAck and returns whether the broker handed over an existing session.
    pub async fn connect_to(
        port: u16,
        id: &str,
        user: &str,
        clean_session: bool,
    ) -> (Client, bool) {
        let mut mo = MqttOptions::new(id, "127.0.0.1", port);
        mo.set_credentials(user, password(user));
        mo.set_clean_session(clean_session);
        // Outgoing up to 16 MiB: tests publish payloads far above any limit on purpose.
        mo.set_max_packet_size(1 << 20, 16 << 20);
        let (client, mut el) = AsyncClient::new(mo, 16);
        let (tx, rx) = mpsc::unbounded_channel();
        let (stx, subacks) = mpsc::unbounded_channel();
        let (ptx, pubacks) = mpsc::unbounded_channel();
        let (ctx, mut crx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        let _ = ctx.send(ack.session_present);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Msg {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = stx.send(());
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = ptx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let session_present = tokio::time::timeout(STEP, crx.recv())
            .await
            .expect("connack in time")
            .expect("connack");
        (
            Client {
                client,
                rx,
                subacks,
                pubacks,
                task,
            },
            session_present,
        )
    }

    /// Subscribes (QoS 1) and waits for the SubAck.
    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        tokio::time::timeout(STEP, self.subacks.recv())
            .await
            .expect("suback in time")
            .expect("suback");
    }

    /// Publishes QoS 1 and waits for the broker's PubAck.
    pub async fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .await
            .unwrap();
        tokio::time::timeout(STEP, self.pubacks.recv())
            .await
            .expect("puback in time")
            .expect("puback");
    }

    /// Next message, or panic after [`STEP`].
    pub async fn next(&mut self) -> Msg {
        tokio::time::timeout(STEP, self.rx.recv())
            .await
            .expect("message in time")
            .expect("client running")
    }

    /// Every message received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            out.push(m);
        }
        out
    }

    /// Nothing is queued right now (call after a later message proved ordering).
    pub fn assert_empty(&mut self) {
        if let Ok(m) = self.rx.try_recv() {
            panic!(
                "unexpected message on {}: {:?}",
                m.topic,
                String::from_utf8_lossy(&m.payload)
            );
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    fn accepts(port: u16) -> bool {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    #[test]
    fn it_listens_on_both_ports_restarts_on_them_and_dies_with_its_owner() {
        let mut b = Broker::start();
        assert_ne!(b.port(), b.cabinet_port());
        assert!(accepts(b.port()) && accepts(b.cabinet_port()));
        let ports = (b.port(), b.cabinet_port());
        b.restart();
        assert_eq!((b.port(), b.cabinet_port()), ports);
        assert!(accepts(b.port()) && accepts(b.cabinet_port()));
        let pid = b.child.as_ref().unwrap().id();
        drop(b);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "still running"
        );
    }

    #[test]
    fn a_port_taken_before_mosquitto_binds_it_is_a_retry_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let thief = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = thief.local_addr().unwrap().port();
        let global = format!(
            "user {}\nallow_anonymous true\nlog_dest stderr\nlog_type error\n",
            current_user()
        );
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, config_text(&global, None, taken, taken, None)).unwrap();
        let why = spawn(&conf, &[taken]).expect_err("the port is taken");
        assert!(why.contains("Address already in use"), "{why}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backend_hears_what_a_cabinet_publishes_under_the_shipped_acl() {
        let b = Broker::start();
        let mut backend = Client::connect(&b, "kit-backend", "backend").await;
        backend.subscribe("cabinet/v1/C001/reply").await;
        let (mut cabinet, _) = Client::connect_to(b.cabinet_port(), "C001", "C001", true).await;
        cabinet
            .publish("cabinet/v1/C001/reply", b"hello", false)
            .await;
        let m = backend.next().await;
        assert_eq!(m.topic, "cabinet/v1/C001/reply");
        assert_eq!(m.payload, b"hello");
    }
}
