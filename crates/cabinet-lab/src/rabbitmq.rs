//! A real RabbitMQ cluster (Debian's `rabbitmq-server` with the MQTT plugin) on loopback,
//! for `cabinet-lab fleet --cluster`: every node on free ports, with its own epmd, Erlang
//! cookie, data and logs in a temporary directory; nothing of the machine's own
//! RabbitMQ (ports 4369/5672/1883/25672, `/etc/rabbitmq`) is used or touched.
//!
//! The nodes form one cluster at boot (`cluster_formation.classic_config`) and load one
//! definitions file: a user per cabinet (username = machine code) and a `backend` user,
//! with the vhost and topic permissions of `deploy/rabbitmq/definitions.example.json`,
//! so a cabinet can read only its own `cmd` and write only its own `reply`, `state`,
//! `telemetry`. docs/OPERATIONS.md ("Scaling out") explains each setting.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_core::config::Secret;
use cabinet_core::files::write_private;
use cabinet_core::mqtt::BackendClient;

use crate::loopback::{free_ports, wait_listening};
use sha2::{Digest, Sha256};

/// The fleet backend's client ids start with this (not a cabinet of any node).
pub const BACKEND_ID: &str = "fleet-backend";
/// Where Debian's package puts the server and CLI scripts.
const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";
/// How long one node may take to start (a cold node takes 5-10 s on 2 cores).
const NODE_START: Duration = Duration::from_secs(120);
/// Any single MQTT wait.
const STEP: Duration = Duration::from_secs(10);
/// The longest a `rabbitmqctl` call may take (it starts an Erlang VM of its own).
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// The MQTT settings every node shares, as shipped for operators.
pub const MQTT_CONF: &str = include_str!("../../../deploy/rabbitmq/conf.d/50-cabinet-mqtt.conf");

/// What keeps a cabinet's session (its QoS 1 subscription queue) alive when a node dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionQueues {
    /// Quorum queues (the shipped setting): replicated by majority, so they need three
    /// nodes or more to lose one.
    Quorum,
    /// Classic queues mirrored on every node (`ha-mode: all` policy): work with two
    /// nodes; deprecated by RabbitMQ and gone in 4.0.
    Mirrored,
}

/// The policy that mirrors classic session queues on every node.
pub fn mirrored_sessions_policy() -> serde_json::Value {
    serde_json::json!({
        "vhost": "/", "name": "cabinet-sessions", "pattern": "^mqtt-subscription-",
        "apply-to": "queues", "priority": 0,
        "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"},
    })
}

struct Node {
    name: String,
    amqp: u16,
    dist: u16,
    mqtt: u16,
    dir: PathBuf,
    /// The `rabbitmq-server` script's process (it execs the Erlang VM).
    child: Option<Child>,
}

/// What [`Cluster::hijack_probe`] was allowed to do.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct HijackProbe {
    /// The broker accepted the CONNECT.
    pub connected: bool,
    /// The broker granted the subscription to the victim's `cmd`.
    pub subscribed: bool,
    /// Messages it received.
    pub received: u64,
    /// How the broker ended the connection, if it did.
    pub closed: Option<String>,
}

impl HijackProbe {
    /// The broker did not hand the victim's session to the intruder (it refuses the
    /// CONNECT when the session queue is not the user's), and nothing reached it.
    pub fn refused(&self) -> bool {
        !self.connected && !self.subscribed && self.received == 0
    }
}

/// A running cluster; every node is killed and the directory removed on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    epmd_port: u16,
    epmd: Child,
    nodes: Vec<Node>,
    /// Seed of every user's password.
    secret: [u8; 16],
    queues: SessionQueues,
    /// Where the backend connected last, and a node it must not connect to.
    backend_node: Cell<Option<usize>>,
    leaving: Cell<Option<usize>>,
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ++ sha256(salt ++ password)).
pub fn password_hash(password: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let mut salt = [0u8; 4];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

/// The definitions (users, permissions, topic permissions) for these cabinets and one
/// `backend` user. MQTT topics become routing keys on `amq.topic` with `/` -> `.`.
pub fn definitions(
    cabinets: &[String],
    password: impl Fn(&str) -> String,
) -> anyhow::Result<serde_json::Value> {
    // MQTT needs configure on its session queues, write on them and on amq.topic (to
    // bind and publish) and read on them (to consume). A cabinet gets its own queues only
    // (vhost permissions have no {username}, so the name is spelled out): connecting with
    // another cabinet's client id must not reach that cabinet's queued commands.
    let vhost = |user: &str, queues: &str| {
        serde_json::json!({
            "user": user, "vhost": "/",
            "configure": format!("^{queues}$"),
            "write": format!("^(amq\\.topic|{queues})$"),
            "read": format!("^(amq\\.topic|{queues})$"),
        })
    };
    let user = |name: &str| -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::json!({
            "name": name,
            "password_hash": password_hash(&password(name))?,
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],
        }))
    };
    let mut users = vec![user("backend")?, user("operator")?];
    let mut permissions = vec![
        vhost("backend", "mqtt-subscription-.*"),
        vhost("operator", "mqtt-subscription-.*"),
    ];
    // The operator gives cabinets their signed documents; the backend's order servers
    // cannot (docs/PROTOCOL.md §12).
    let mut topic_permissions = vec![
        serde_json::json!({
            "user": "backend", "vhost": "/", "exchange": "amq.topic",
            "write": "^cabinet\\.v1\\.[^.*#]+\\.cmd$",
            "read": "^cabinet\\.v1\\.([^.*#]+|\\*)\\.(reply|state|telemetry|reported)$",
        }),
        serde_json::json!({
            "user": "operator", "vhost": "/", "exchange": "amq.topic",
            "write": "^cabinet\\.v1\\.[^.*#]+\\.desired\\.[^.*#]+$",
            "read": "^cabinet\\.v1\\.([^.*#]+|\\*)\\.(reported|state)$",
        }),
    ];
    for c in cabinets {
        users.push(user(c)?);
        permissions.push(vhost(c, &format!("mqtt-subscription-{c}qos[01]")));
        topic_permissions.push(serde_json::json!({
            "user": c, "vhost": "/", "exchange": "amq.topic",
            "write": "^cabinet\\.v1\\.{username}\\.(reply|state|telemetry|reported)$",
            "read": "^cabinet\\.v1\\.{username}\\.(cmd|desired\\.(keys|config))$",
        }));
    }
    Ok(serde_json::json!({
        "users": users,
        "vhosts": [{"name": "/"}],
        "permissions": permissions,
        "topic_permissions": topic_permissions,
    }))
}

impl Cluster {
    /// Starts `nodes` nodes with users for `cabinets` and waits until each one takes an
    /// authenticated MQTT connection and subscription.
    pub fn start(
        nodes: usize,
        cabinets: &[String],
        queues: SessionQueues,
    ) -> anyhow::Result<Cluster> {
        if !(2..=5).contains(&nodes) {
            bail!("--cluster must be 2..=5 nodes, got {nodes}");
        }
        let server = Path::new(RABBITMQ_BIN).join("rabbitmq-server");
        if !server.is_file() {
            bail!(
                "{} not found: install Debian's rabbitmq-server (make deps does)",
                server.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("cabinet-rabbitmq.")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let ports = free_ports(1 + 3 * nodes)?;
        let epmd_port = ports[0];
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home)?;
        write_private(&home.join(".erlang.cookie"), &hex(&secret).to_uppercase())?;
        std::fs::write(dir.path().join("enabled_plugins"), "[rabbitmq_mqtt].\n")?;
        std::fs::write(dir.path().join("rabbitmq-env.conf"), "")?;
        std::fs::create_dir_all(dir.path().join("conf.d"))?;

        let mut cluster = Cluster {
            epmd: spawn_epmd(dir.path(), epmd_port)?,
            epmd_port,
            nodes: Vec::with_capacity(nodes),
            secret,
            queues,
            backend_node: Cell::new(None),
            leaving: Cell::new(None),
            dir,
        };
        let mut defs = definitions(cabinets, |u| cluster.password(u))?;
        let mut mqtt_conf = MQTT_CONF.to_owned();
        if queues == SessionQueues::Mirrored {
            defs["policies"] = serde_json::json!([mirrored_sessions_policy()]);
            let quorum = "mqtt.durable_queue_type = quorum";
            if !mqtt_conf.contains(quorum) {
                bail!("the shipped RabbitMQ settings no longer say {quorum:?}");
            }
            mqtt_conf = mqtt_conf.replace(quorum, "mqtt.durable_queue_type = classic");
        }
        let defs_path = cluster.dir.path().join("definitions.json");
        write_private(&defs_path, &serde_json::to_string(&defs)?)?;
        let names: Vec<String> = (1..=nodes)
            .map(|i| format!("cabinet{i}@localhost"))
            .collect();
        let members: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("cluster_formation.classic_config.nodes.{} = {n}\n", i + 1))
            .collect();
        for (i, name) in names.iter().enumerate() {
            let [amqp, dist, mqtt] = [ports[1 + 3 * i], ports[2 + 3 * i], ports[3 + 3 * i]];
            let ndir = cluster.dir.path().join(format!("n{}", i + 1));
            std::fs::create_dir_all(ndir.join("log"))?;
            std::fs::create_dir_all(ndir.join("mnesia"))?;
            std::fs::write(
                ndir.join("rabbitmq.conf"),
                format!(
                    "listeners.tcp.default = 127.0.0.1:{amqp}\n\
                     mqtt.listeners.tcp.default = 127.0.0.1:{mqtt}\n{mqtt_conf}\
                     load_definitions = {}\n\
                     cluster_formation.peer_discovery_backend = classic_config\n{members}\
                     cluster_formation.discovery_retry_limit = 2\n\
                     cluster_formation.discovery_retry_interval = 200\n\
                     log.console = false\nlog.file.level = info\n",
                    defs_path.display()
                ),
            )?;
            cluster.nodes.push(Node {
                name: name.clone(),
                amqp,
                dist,
                mqtt,
                dir: ndir,
                child: None,
            });
        }
        // One node at a time, each joining the ones before it. Classic-config peer
        // discovery takes no lock, so nodes that join at once can race (one CI run had a
        // third node, started with the second, take no MQTT connection in 120 s).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        for i in 0..nodes {
            cluster.spawn(i)?;
            rt.block_on(cluster.wait_ready(i))?;
        }
        // Each node takes MQTT; now make sure they formed one cluster, not N.
        cluster.ctl(0, &["await_online_nodes", &nodes.to_string()])?;
        Ok(cluster)
    }

    /// Every node's MQTT URL, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("mqtt://127.0.0.1:{}", n.mqtt))
            .collect()
    }

    /// The MQTT password of `user` in this cluster.
    pub fn password(&self, user: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(user.as_bytes());
        hex(&h.finalize()[..12])
    }

    fn env(&self, node: &Node, cmd: &mut Command) {
        let d = self.dir.path();
        let loopback = "-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false";
        cmd.env("HOME", d.join("home"))
            .env("RABBITMQ_NODENAME", &node.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", node.amqp.to_string())
            .env("RABBITMQ_DIST_PORT", node.dist.to_string())
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", node.dir.join("rabbitmq.conf"))
            // Not the machine's /etc/rabbitmq/conf.d/*.conf: an empty directory of ours.
            .env("RABBITMQ_CONFIG_FILES", d.join("conf.d").join("*.conf"))
            .env(
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                node.dir.join("advanced.config"),
            )
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", node.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", node.dir.join("log"))
            .env("RABBITMQ_PID_FILE", node.dir.join("beam.pid"))
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", loopback)
            .env("RABBITMQ_CTL_DIST_PORT_MIN", "0")
            .env("RABBITMQ_CTL_DIST_PORT_MAX", "0")
            .env("RABBITMQ_CTL_ERL_ARGS", loopback)
            // The server script then execs the Erlang VM instead of waiting on it as a
            // child: our process is the VM, which `dies_with_us` needs. No notify socket
            // of ours may reach it.
            .env("RUNNING_UNDER_SYSTEMD", "true")
            .env_remove("NOTIFY_SOCKET");
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        let _ = std::fs::remove_file(node.dir.join("beam.pid"));
        let log = std::fs::File::create(node.dir.join("log").join("stdout.log"))?;
        let mut cmd = dies_with_us(&Path::new(RABBITMQ_BIN).join("rabbitmq-server"));
        self.env(node, &mut cmd);
        let child = cmd
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start RabbitMQ node {}", node.name))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// Waits until node `i` takes the backend's MQTT connection and a subscription (its
    /// listener opens before the definitions are loaded and before the cluster-wide
    /// client id registry has a leader, so an open port is not enough).
    async fn wait_ready(&mut self, i: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + NODE_START;
        loop {
            if self.ready_probe(i).await {
                return Ok(());
            }
            let exited = self.exited(i)?;
            let name = &self.nodes[i].name;
            if let Some(status) = exited {
                bail!(
                    "RabbitMQ node {name} exited at start ({status})\n{}",
                    self.log_tails()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "RabbitMQ node {name} took no MQTT connection within {NODE_START:?}\n{}",
                    self.log_tails()
                );
            }
            // Polling a starting Erlang VM: it has nothing to await.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One try at what "ready" means here: node `i` takes the backend's MQTT connection
    /// and a subscription. It owns what it needs, so it can run as a task.
    pub fn ready_probe(&self, i: usize) -> impl Future<Output = bool> + Send + 'static {
        let port = self.nodes[i].mqtt;
        let password = Secret::new(self.password("backend"));
        let client_id = format!("ready-probe-{i}");
        async move {
            match crate::loopback::backend(
                port,
                &client_id,
                Some(("backend", password)),
                false,
                STEP,
            )
            .await
            {
                Ok(mut b) => b.subscribe_cabinet("+").await.is_ok(),
                Err(_) => false,
            }
        }
    }

    /// Node `i`'s exit status if it stopped by itself (a node we killed has none).
    pub fn exited(&mut self, i: usize) -> anyhow::Result<Option<ExitStatus>> {
        Ok(match self.nodes[i].child.as_mut() {
            Some(child) => child.try_wait()?,
            None => None,
        })
    }

    /// Starts node `i` again after a kill. It keeps its data directory, so it rejoins
    /// the cluster as the member it was; [`Cluster::ready_probe`] tells when it serves.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.nodes[i].child.is_some() {
            bail!("node {} is still running", self.nodes[i].name);
        }
        self.spawn(i)
    }

    /// RabbitMQ's own check before a node of a rolling restart goes down: would stopping
    /// node `i` leave a session queue without its majority (quorum queues:
    /// `rabbitmq-queues check_if_node_is_quorum_critical`) or without a synchronised
    /// mirror (`check_if_node_is_mirror_sync_critical`)? `Ok(Ok(()))`: safe to stop;
    /// `Ok(Err(why))`: not yet; `Err`: the check itself could not run. Blocking (it
    /// starts an Erlang VM of its own, bounded by [`CTL_TIMEOUT`]): run it off the runtime.
    pub fn safe_to_stop(
        &self,
        i: usize,
    ) -> impl FnOnce() -> anyhow::Result<Result<(), String>> + Send + 'static {
        let check = match self.queues {
            SessionQueues::Quorum => "check_if_node_is_quorum_critical",
            SessionQueues::Mirrored => "check_if_node_is_mirror_sync_critical",
        };
        let mut cmd = self.cli(i, "rabbitmq-queues");
        cmd.arg(check);
        move || {
            let out = cmd.output().context("cannot run rabbitmq-queues")?;
            Ok(if out.status.success() {
                Ok(())
            } else {
                let why = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                Err(format!("{check} ({}): {}", out.status, why.trim()))
            })
        }
    }

    /// The last lines of every node's log, for an error message: the temporary directory
    /// is gone by the time anyone reads it.
    fn log_tails(&self) -> String {
        const LINES: usize = 25;
        let mut out = String::new();
        for node in &self.nodes {
            for file in [format!("{}.log", node.name), "stdout.log".to_owned()] {
                let path = node.dir.join("log").join(&file);
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                out.push_str(&format!("--- {} {file}, its end:\n", node.name));
                out.push_str(last_lines(&text, LINES));
                out.push('\n');
            }
        }
        out
    }

    /// The node the last [`Cluster::backend`] connection went to.
    pub fn backend_node(&self) -> Option<usize> {
        self.backend_node.get()
    }

    /// From now on [`Cluster::backend`] connects anywhere but node `i` (about to go down).
    pub fn move_backend_off(&self, i: usize) {
        self.leaving.set(Some(i));
    }

    async fn backend_on(&self, i: usize, client_id: &str) -> anyhow::Result<BackendClient> {
        let login = ("backend", Secret::new(self.password("backend")));
        crate::loopback::backend(self.nodes[i].mqtt, client_id, Some(login), true, STEP).await
    }

    /// A backend connection subscribed to `cabinet`'s topics (`"+"`: all), on the first
    /// running node that takes it, other than the one [`Cluster::move_backend_off`] names.
    /// Its session is persistent, so it lives in a quorum (or mirrored) queue like a
    /// cabinet's and what arrives while the backend moves between nodes waits for it: with
    /// a clean session RabbitMQ 3.10 keeps the subscription in a classic queue on one
    /// node, and while that node is down the client id cannot subscribe anywhere else.
    pub async fn backend(&self, client_id: &str, cabinet: &str) -> anyhow::Result<BackendClient> {
        let mut last = None;
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() || self.leaving.get() == Some(i) {
                continue;
            }
            match self.backend_on(i, client_id).await {
                Ok(mut b) => {
                    b.subscribe_cabinet(cabinet).await?;
                    self.backend_node.set(Some(i));
                    return Ok(b);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no RabbitMQ node is running")))
    }

    /// A cabinet's credentials used with another cabinet's client id (clean session off,
    /// the victim's `cmd` subscribed), against node 1, for up to two seconds: what the
    /// broker let it do. The shipped permissions must refuse the victim's session queue
    /// and topic. (The victim's own connection is kicked and comes back: RabbitMQ 3.10
    /// cannot tie a client id to a username.)
    pub async fn hijack_probe(&self, user: &str, victim: &str) -> HijackProbe {
        use rumqttc::{Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
        let mut o = MqttOptions::new(victim, "127.0.0.1", self.nodes[0].mqtt);
        o.set_clean_session(false)
            .set_credentials(user, self.password(user))
            .set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 10);
        let mut probe = HijackProbe::default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let topic = format!("cabinet/v1/{victim}/cmd");
        loop {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Err(_) => break,
                Ok(Err(e)) => {
                    probe.closed = Some(e.to_string());
                    break;
                }
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    probe.connected = true;
                    let _ = client.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                }
                Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                    probe.subscribed = ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, SubscribeReasonCode::Success(_)));
                }
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => probe.received += 1,
                Ok(Ok(_)) => {}
            }
        }
        probe
    }

    /// The Erlang VM's process id of node `i`, while it runs.
    fn beam_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref()?;
        std::fs::read_to_string(self.nodes[i].dir.join("beam.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Process ids of the running nodes' Erlang VMs (for their CPU time).
    pub fn pids(&self) -> Vec<u32> {
        (0..self.nodes.len())
            .filter_map(|i| self.beam_pid(i))
            .collect()
    }

    /// A RabbitMQ CLI `tool` (`rabbitmqctl`, `rabbitmq-queues`) against node `i`, quiet,
    /// bounded by [`CTL_TIMEOUT`] (each starts an Erlang VM of its own).
    fn cli(&self, i: usize, tool: &str) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg(CTL_TIMEOUT.as_secs().to_string())
            .arg(Path::new(RABBITMQ_BIN).join(tool));
        self.env(&self.nodes[i], &mut cmd);
        cmd.arg("--quiet").stdin(Stdio::null());
        cmd
    }

    /// `rabbitmqctl` against node `i`, for at most [`CTL_TIMEOUT`]; its standard output.
    fn ctl(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        let node = &self.nodes[i];
        let out = self
            .cli(i, "rabbitmqctl")
            .args(args)
            .output()
            .context("cannot run rabbitmqctl")?;
        if !out.status.success() {
            bail!(
                "rabbitmqctl {} on {} failed ({}): {}",
                args.join(" "),
                node.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The MQTT client ids connected to node `i`, as the cluster lists them (it lists
    /// every node's connections; the server-side port tells which node holds each).
    pub fn mqtt_clients(&self, i: usize) -> anyhow::Result<Vec<String>> {
        let out = self.ctl(
            i,
            &[
                "--no-table-headers",
                "list_mqtt_connections",
                "client_id",
                "port",
            ],
        )?;
        let port = self.nodes[i].mqtt.to_string();
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut cols = l.split_whitespace();
                let (id, p) = (cols.next()?, cols.next()?);
                (p == port && !id.starts_with(BACKEND_ID)).then(|| id.to_owned())
            })
            .collect())
    }

    /// Kills node `i` at once (SIGKILL to its Erlang VM, like a power cut: no goodbye to
    /// the other nodes or to its clients) and waits until it is gone.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        let pid = self.beam_pid(i);
        let node = &mut self.nodes[i];
        let Some(mut child) = node.child.take() else {
            bail!("node {} is not running", node.name);
        };
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_some() {
                let _ = self.kill(i);
            }
        }
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
    }
}

/// Our own epmd on a free loopback port: the machine's (port 4369) is left alone.
fn spawn_epmd(dir: &Path, port: u16) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join("epmd.log"))?;
    let mut child = dies_with_us(Path::new("epmd"))
        .args(["-port", &port.to_string(), "-address", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start epmd (part of erlang-base)")?;
    wait_listening(&mut child, port, "epmd")?;
    Ok(child)
}

/// A command killed when this process dies (`setpriv --pdeathsig KILL`, util-linux), so
/// a fleet run killed half way leaves no Erlang VM or epmd behind. The signal is bound
/// to the spawning thread: spawn from the thread that owns the cluster.
fn dies_with_us(program: &Path) -> Command {
    let setpriv = Path::new("/usr/bin/setpriv");
    if setpriv.is_file() {
        let mut c = Command::new(setpriv);
        c.args(["--pdeathsig", "KILL"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// The last `n` lines of `text` (all of it if it has fewer), without a final newline.
fn last_lines(text: &str, n: usize) -> &str {
    let text = text.trim_end_matches('\n');
    let start = text
        .rmatch_indices('\n')
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    if n == 0 { "" } else { &text[start..] }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped example is exactly what the cluster test loads, but for the hashes.
    #[test]
    fn the_shipped_definitions_are_the_tested_ones() {
        let shipped: serde_json::Value = serde_json::from_str(include_str!(
            "../../../deploy/rabbitmq/definitions.example.json"
        ))
        .unwrap();
        let mut tested =
            definitions(&["GZ-TIANHE-0001".to_owned()], |u| format!("pw-{u}")).unwrap();
        let hashes = tested["users"].as_array_mut().unwrap();
        for u in hashes {
            u["password_hash"] = shipped["users"][0]["password_hash"].clone();
        }
        assert_eq!(tested, shipped);
    }

    #[test]
    fn a_log_tail_is_the_last_lines() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a\nb\nc\n", 3), "a\nb\nc");
        assert_eq!(last_lines("a\nb\nc\n", 9), "a\nb\nc");
        assert_eq!(last_lines("a\nb\nc\n", 1), "c");
        assert_eq!(last_lines("a\nb\nc\n", 0), "");
        assert_eq!(last_lines("", 5), "");
    }

    #[test]
    fn password_hashes_are_salted_sha256_as_rabbitmq_checks_them() {
        use base64::Engine as _;
        let h = password_hash("secret").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&h)
            .unwrap();
        assert_eq!(raw.len(), 4 + 32);
        let mut d = Sha256::new();
        d.update(&raw[..4]);
        d.update(b"secret");
        assert_eq!(&raw[4..], d.finalize().as_slice());
        assert_ne!(password_hash("secret").unwrap(), h, "a new salt each time");
    }
}
