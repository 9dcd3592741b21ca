//! Test harness: a real Mosquitto on a free loopback port, configured with the shipped
//! `deploy/mosquitto/acl`, plus a `rumqttc` client playing the backend.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// Cabinets and backend known to the broker: (username, password).
pub const USERS: [(&str, &str); 3] = [
    ("C001", "pw-C001"),
    ("C002", "pw-C002"),
    ("backend", "pw-backend"),
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
    port: u16,
    child: Option<Child>,
    /// A second, TLS-only listener (see [`Broker::start_with_tls`]).
    tls_port: Option<u16>,
}

impl Broker {
    /// Starts Mosquitto on a free loopback port, waits until it accepts connections.
    pub fn start() -> Broker {
        Broker::start_inner(false)
    }

    /// Like [`Broker::start`], plus a TLS listener on a second port with a server
    /// certificate for `localhost`/`127.0.0.1` signed by a CA generated here with OpenSSL
    /// ([`Broker::ca_file`]).
    pub fn start_with_tls() -> Broker {
        Broker::start_inner(true)
    }

    /// The TLS listener's port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("started with TLS")
    }

    /// The CA that signed the TLS listener's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_inner(tls: bool) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
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
        // As root, Mosquitto drops to user `mosquitto` unless told otherwise, and then
        // cannot read our tempdir.
        let conf = format!(
            "user {user}\nset_tcp_nodelay true\nlistener {port} 127.0.0.1\nallow_anonymous false\n\
             password_file {passwd}\nacl_file {acl}\npersistence true\n\
             persistence_location {data}/\nlog_dest stderr\nlog_type error\nlog_type warning\n",
            user = current_user(),
            passwd = passwd.display(),
            acl = acl.display(),
            data = data.display(),
        );
        let mut conf = conf;
        let tls_port = tls.then(|| {
            let tls_port = free_port();
            make_certs(dir.path());
            conf.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n",
                d = dir.path().display()
            ));
            tls_port
        });
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            dir,
            port,
            tls_port,
            child: None,
        };
        b.spawn();
        b
    }

    /// The port it listens on (stable across [`Broker::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + STEP;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mosquitto exited early: {st}");
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

    /// Starts it again on the same port with the same persistence directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
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

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The shipped ACL, `deploy/mosquitto/acl` at the workspace root, found from the including
/// crate's directory (`crates/<name>` or `src-tauri`).
pub fn acl_path() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|d| d.join("deploy/mosquitto/acl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| here.join("../../deploy/mosquitto/acl"))
}

/// A message seen by a [`Client`].
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// A plain `rumqttc` client (clean session, auto acks), e.g. the backend.
#[derive(Debug)]
pub struct Client {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Msg>,
    subacks: mpsc::UnboundedReceiver<()>,
    pubacks: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Connects as `user` with client id `id`; waits for the ConnAck.
    pub async fn connect(broker: &Broker, id: &str, user: &str) -> Client {
        let mut mo = MqttOptions::new(id, "127.0.0.1", broker.port());
        mo.set_credentials(user, password(user));
        mo.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(mo, 16);
        let (tx, rx) = mpsc::unbounded_channel();
        let (stx, subacks) = mpsc::unbounded_channel();
        let (ptx, pubacks) = mpsc::unbounded_channel();
        let (ctx, mut crx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = ctx.send(());
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
        tokio::time::timeout(STEP, crx.recv())
            .await
            .expect("connack in time")
            .expect("connack");
        Client {
            client,
            rx,
            subacks,
            pubacks,
            task,
        }
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
