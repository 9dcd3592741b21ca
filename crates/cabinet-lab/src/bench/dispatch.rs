//! `cabinet-lab bench dispatch`: backend publish → first byte of the dispense frame at the
//! board, through everything the field has except the cable: a real Mosquitto (started
//! here on a free loopback port), the kiosk runner in-process on a tokio runtime with a
//! real journal (synchronous=FULL, as shipped), the VMC driver, and the board simulator
//! on a pty. The floor is measured in the same run: the bare broker round trip, the
//! journal's two fsynced commits, the wait for the board's next POLL and (reported
//! separately, a pty has none) the frame's wire time.
//!
//! Nothing here asserts on time. Commands go one at a time: publish, wait until the
//! simulator has seen the dispense frame, wait for the terminal reply, then a random
//! pause of up to one POLL interval so each command meets the POLL cycle at a random phase
//! (a closed loop would otherwise lock onto one phase and bias the POLL wait).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_board::Protocol;
use cabinet_board::sim::{SimConfig, Simulator};
use cabinet_core::config::Config;
use cabinet_core::journal::{Journal, NewCommand, OutboxMessage};
use cabinet_core::kiosk;
use cabinet_core::mqtt::BackendClient;
use cabinet_core::protocol::{self, Evidence, ReplyState, SigningKey};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

use crate::loopback::terminal_reply;
use crate::mosquitto::Broker;
use crate::orders::{claims, now_s};
use crate::stats::percentile;
use crate::xorshift::XorShift;

pub(super) const MACHINE: &str = "C001";
const SLOTS: u16 = 60;
const VMC_BAUD: u32 = 57_600;
/// Dispense frame: FA FB 06 05 PackNO sensor elevator slot-hi slot-lo XOR.
const DISPENSE_FRAME_BYTES: usize = 10;
/// Any single wait in the benchmark (a broken setup fails, it does not hang).
const STEP: Duration = Duration::from_secs(15);

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// p50, p99, max of unsorted microsecond samples.
fn summary(v: &mut [u32]) -> (u32, u32, u32) {
    v.sort_unstable();
    (
        percentile(v, 50.0),
        percentile(v, 99.0),
        v.last().copied().unwrap_or(0),
    )
}

pub(super) fn sign(key: &SigningKey, id: &str, slot: u16) -> anyhow::Result<String> {
    let now = now_s();
    let claims = claims(MACHINE, id, slot, now, now + 120);
    Ok(protocol::sign_command(&claims, key, "k1")?)
}

/// The state of `cmd_id`'s terminal reply, within `wait`.
async fn terminal_state(
    backend: &mut BackendClient,
    cmd_id: &str,
    wait: Duration,
) -> Option<ReplyState> {
    terminal_reply(backend, cmd_id, wait).await.map(|r| r.state)
}

pub(super) fn write_config(
    dir: &Path,
    port: u16,
    public: &str,
    link: &Path,
    per_slot: u32,
) -> PathBuf {
    let mut slots = String::new();
    for s in 1..=SLOTS {
        slots.push_str(&format!(
            "[[slots]]\nslot = {s}\nproduct = \"P{s}\"\ncapacity = {per_slot}\ninitial_count = {per_slot}\n"
        ));
    }
    let text = format!(
        r#"machine_code = "{MACHINE}"
{slots}
[mqtt]
url = "mqtt://127.0.0.1:{port}"
keepalive_secs = 30
reconnect_min_ms = 100
reconnect_max_ms = 1000
[keys]
k1 = "{public}"
[board]
protocol = "vmc"
port = "{link}"
[board.vmc]
report_timeout_secs = 10
[journal]
path = "journal.sqlite3"
[logs]
dir = "logs"
"#,
        link = link.display(),
    );
    let path = dir.join("config.toml");
    // Errors surface when the config is loaded.
    let _ = std::fs::write(&path, text);
    path
}

/// Floor (a): publish (QoS 1) → delivery to a second connection subscribed at QoS 1, with a
/// payload the size of a command token.
async fn broker_round_trip(port: u16, payload_len: usize, n: u32) -> anyhow::Result<Vec<u32>> {
    let connect = |id: &str| {
        let mut mo = MqttOptions::new(id, "127.0.0.1", port);
        mo.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(mo, 64);
        // The same socket options as the app's connections (TCP_NODELAY).
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        el.set_network_options(net);
        (client, el)
    };
    let (sub, mut sub_loop) = connect("bench-rtt-sub");
    let (publ, mut pub_loop) = connect("bench-rtt-pub");
    let (rx_tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let (ctl_tx, mut ctl) = mpsc::unbounded_channel::<&'static str>();
    let ctl_tx2 = ctl_tx.clone();
    let sub_task = tokio::spawn(async move {
        loop {
            match sub_loop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    let _ = rx_tx.send(Instant::now());
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ctl_tx.send("suback");
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let pub_task = tokio::spawn(async move {
        loop {
            match pub_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    let _ = ctl_tx2.send("puback");
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let topic = "bench/round-trip";
    sub.subscribe(topic, QoS::AtLeastOnce).await?;
    expect(&mut ctl, "suback").await?;
    let payload = vec![b'x'; payload_len];
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t0 = Instant::now();
        publ.publish(topic, QoS::AtLeastOnce, false, payload.clone())
            .await?;
        let Ok(Some(t1)) = tokio::time::timeout(STEP, rx.recv()).await else {
            bail!("round-trip message not delivered in time");
        };
        expect(&mut ctl, "puback").await?;
        out.push(us(t1.duration_since(t0)));
    }
    sub_task.abort();
    pub_task.abort();
    Ok(out)
}

async fn expect(ctl: &mut mpsc::UnboundedReceiver<&'static str>, what: &str) -> anyhow::Result<()> {
    loop {
        match tokio::time::timeout(STEP, ctl.recv()).await {
            Ok(Some(w)) if w == what => return Ok(()),
            Ok(Some(_)) => continue,
            _ => bail!("no {what} from the broker in time"),
        }
    }
}

/// Floor (b): the two synchronous=FULL commits the path makes before the motor command:
/// insert `accepted` (with its reply) and the transition to `dispensing` (with its reply).
fn journal_commits(dir: &Path, n: u32) -> anyhow::Result<Vec<u32>> {
    let mut j = Journal::open(&dir.join("floor.sqlite3"))?;
    // A reply the size the kiosk writes.
    let msg = OutboxMessage {
        topic: format!("cabinet/v1/{MACHINE}/reply"),
        payload: format!(
            "{{\"v\":1,\"cmd_id\":\"{x}\",\"order_id\":\"{x}\",\"log_id\":\"{x}\",\
             \"machine_code\":\"{MACHINE}\",\"boot_id\":\"{x}\",\"state\":\"accepted\",\
             \"evidence\":{{}},\"at\":1764000000000,\"seq\":1}}",
            x = "0123456789abcdef0123456789abcdef"
        ),
    };
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let id = format!("floor-{i}");
        let cmd = NewCommand {
            cmd_id: id.clone(),
            log_id: format!("log-{i}"),
            order_id: format!("order-{i}"),
            slot: Some(1),
            qty: Some(1),
            session: None,
            state: ReplyState::Accepted,
            reason: None,
            expires_at: None,
        };
        let t0 = Instant::now();
        j.insert_new_command(&cmd, Some(&msg))?;
        j.transition(
            &id,
            ReplyState::Dispensing,
            None,
            &Evidence::default(),
            Some(&msg),
        )?;
        out.push(us(t0.elapsed()));
    }
    Ok(out)
}

struct Dispatched {
    first_byte: Vec<u32>,
    terminal: Vec<u32>,
    not_succeeded: u32,
    warmup: u32,
    token_len: usize,
    elapsed: Duration,
}

/// Send `n` commands one at a time; latencies to the first motor byte and to the reply.
fn dispatch(
    rt: &Runtime,
    sim: &Simulator,
    backend: &mut BackendClient,
    key: &SigningKey,
    n: u32,
    poll: Duration,
    pause: Duration,
) -> anyhow::Result<Dispatched> {
    // Warm-up: until the kiosk is subscribed and has seen the board, commands are lost or
    // refused; retry (new ids) until one succeeds.
    let mut warmup = 0u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        warmup += 1;
        let id = format!("warmup-{warmup}-{}", now_s());
        let token = sign(key, &id, 1)?;
        rt.block_on(backend.send_command(MACHINE, &token))?;
        let state = rt.block_on(terminal_state(backend, &id, Duration::from_secs(2)));
        if state == Some(ReplyState::Succeeded) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the kiosk never completed a warm-up dispense (last: {state:?})");
        }
        // Retrying the warm-up; the kiosk is still connecting or checking the board.
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = sim.take_dispense_times();
    let run = now_s();
    let mut jitter = XorShift::new();
    let mut first_byte = Vec::with_capacity(n as usize);
    let mut terminal = Vec::with_capacity(n as usize);
    let mut not_succeeded = 0u32;
    let mut token_len = 0;
    let started = Instant::now();
    for i in 0..n {
        let slot = 1 + u16::try_from(i % u32::from(SLOTS)).unwrap_or(0);
        let id = format!("bench-{run}-{i}");
        let token = sign(key, &id, slot)?;
        token_len = token.len();
        // Meet the POLL cycle at a random phase (pacing, not synchronisation).
        std::thread::sleep(pause + jitter.duration_below(poll));
        let before = sim.stats().motor_actions;
        let t0 = Instant::now();
        rt.block_on(backend.send_command(MACHINE, &token))?;
        if !sim.wait_until(STEP, |st| st.motor_actions > before) {
            bail!("command {id} (slot {slot}) never reached the board");
        }
        let times = sim.take_dispense_times();
        let Some((_, t1)) = times.iter().rev().find(|(s, _)| *s == slot) else {
            bail!("the simulator recorded no dispense frame for slot {slot}");
        };
        first_byte.push(us(t1.saturating_duration_since(t0)));
        let state = rt.block_on(terminal_state(backend, &id, STEP));
        terminal.push(us(t0.elapsed()));
        match state {
            Some(ReplyState::Succeeded) => {}
            Some(_) => not_succeeded += 1,
            None => bail!("no terminal reply for {id} within {STEP:?}"),
        }
    }
    Ok(Dispatched {
        first_byte,
        terminal,
        not_succeeded,
        warmup,
        token_len,
        elapsed: started.elapsed(),
    })
}

/// Run the benchmark and print its figures.
pub fn bench_dispatch(
    commands: u32,
    poll_ms: u64,
    broker_nodelay: bool,
    pause_ms: u64,
    history: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let commands = commands.max(1);
    let poll = Duration::from_millis(poll_ms.max(1));
    // Same disk as the cabinet's journal would be on (not tmpfs): fsyncs are real.
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let broker = Broker::start(broker_nodelay)?;
    let link = dir.path().join("board");
    let mut sc = SimConfig::new(Protocol::Vmc);
    sc.link = Some(link.clone());
    sc.slots = SLOTS;
    sc.stock = u32::MAX;
    sc.poll_interval = poll;
    sc.motor_time = Duration::from_millis(1);
    sc.record_dispense_times = true;
    let sim = Simulator::start(sc).context("cannot start the simulator")?;

    let (key, public) = protocol::generate_keypair()?;
    let per_slot = (commands / u32::from(SLOTS) + 10).min(1000);
    let cfg_path = write_config(dir.path(), broker.port, &public, &link, per_slot);
    let cfg = Config::load(&cfg_path).map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
    if commands / u32::from(SLOTS) + 1 > per_slot {
        bail!("--commands {commands} needs more stock than a slot may hold (1000 x {SLOTS})");
    }
    let filled = super::journal::fill_history(&cfg.journal.path, history)?;
    let journal_mib = std::fs::metadata(&cfg.journal.path).map_or(0, |m| m.len()) >> 20;
    // Board and runtime exactly as `cabinet run` builds them.
    let board = kiosk::open_board(&cfg).context("invalid board settings")?;
    let rt = kiosk::runtime().context("cannot start the async runtime")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (screen_tx, _screen_rx) = watch::channel(None);
    let lock = cabinet_core::instance::InstanceLock::for_config(&cfg)?;
    let (_, control_rx) = cabinet_core::control::channel();
    let kiosk_task = rt.spawn(kiosk::run(
        cfg,
        lock,
        Arc::clone(&board),
        screen_tx,
        control_rx,
        stop_rx,
    ));

    let mut backend = rt.block_on(broker.backend("bench-backend", MACHINE))?;

    let pause = Duration::from_millis(pause_ms);
    let d = dispatch(&rt, &sim, &mut backend, &key, commands, poll, pause)?;

    // The floor, same run, same machine, kiosk still idling on its POLLs.
    let mut rtt = rt.block_on(broker_round_trip(broker.port, d.token_len, commands))?;
    let mut fsync = journal_commits(dir.path(), commands)?;

    let _ = stop_tx.send(true);
    let _ = rt.block_on(async { tokio::time::timeout(STEP, kiosk_task).await });
    drop(backend);
    drop(board);
    drop(sim);
    drop(rt);
    drop(broker);

    let mut first = d.first_byte;
    let mut term = d.terminal;
    let (m50, m99, mmax) = summary(&mut first);
    let (t50, t99, tmax) = summary(&mut term);
    let (a50, a99, amax) = summary(&mut rtt);
    let (b50, b99, bmax) = summary(&mut fsync);
    let wire = us(cabinet_board::wire_time(DISPENSE_FRAME_BYTES, VMC_BAUD));
    // The POLL wait is uniform over one interval: mean/median half of it, p99 0.99 of it.
    let d50 = us(poll / 2);
    let d99 = us(poll.mul_f64(0.99));
    let floor50 = a50 + b50 + d50;
    let floor99 = a99 + b99 + d99;
    let ratio = |m: u32, f: u32| f64::from(m) / f64::from(f.max(1));
    if json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "dispatch_publish_to_first_motor_byte",
                "commands": commands,
                "poll_interval_ms": poll_ms,
                "broker_tcp_nodelay": broker_nodelay,
                "extra_pause_ms": pause_ms,
                "history_commands": history,
                "journal_mib_at_start": journal_mib,
                "motor_ms": 1,
                "warmup_commands": d.warmup,
                "not_succeeded": d.not_succeeded,
                "token_bytes": d.token_len,
                "first_motor_byte_us": {"p50": m50, "p99": m99, "max": mmax},
                "terminal_reply_us": {"p50": t50, "p99": t99, "max": tmax},
                "floor": {
                    "broker_round_trip_us": {"p50": a50, "p99": a99, "max": amax},
                    "journal_two_full_commits_us": {"p50": b50, "p99": b99, "max": bmax},
                    "poll_wait_us": {"p50": d50, "p99": d99},
                    "wire_time_dispense_frame_us": wire,
                    "floor_us": {"p50": floor50, "p99": floor99},
                },
                "ratio_measured_over_floor": {"p50": ratio(m50, floor50), "p99": ratio(m99, floor99)},
                "with_wire_time_us": {"p50": m50 + wire, "p99": m99 + wire},
                "elapsed_s": d.elapsed.as_secs_f64(),
            })
        );
    } else {
        let ms = |v: u32| format!("{:.2} ms", f64::from(v) / 1000.0);
        println!("Dispatch latency: backend publish (QoS 1) -> first byte of the dispense frame");
        println!("  at the simulated board (real Mosquitto, in-process kiosk, journal FULL, pty)");
        println!(
            "  commands           {commands} (one at a time, slots 1..={SLOTS}; {} warm-up; {} not succeeded)",
            d.warmup, d.not_succeeded
        );
        println!(
            "  POLL interval      {poll_ms} ms, motor 1 ms, token {} bytes, broker TCP_NODELAY {}, extra pause {pause_ms} ms",
            d.token_len, broker_nodelay
        );
        println!(
            "  first motor byte   p50 {} / p99 {} / max {}",
            ms(m50),
            ms(m99),
            ms(mmax)
        );
        println!(
            "  terminal reply     p50 {} / p99 {} / max {}  (publish -> backend has the outcome)",
            ms(t50),
            ms(t99),
            ms(tmax)
        );
        println!("Floor (same run):");
        println!(
            "  a broker round trip          p50 {} / p99 {} / max {}",
            ms(a50),
            ms(a99),
            ms(amax)
        );
        println!(
            "  b journal 2 FULL commits     p50 {} / p99 {} / max {}",
            ms(b50),
            ms(b99),
            ms(bmax)
        );
        println!(
            "  d wait for the next POLL     p50 {} / p99 {}  (uniform over {poll_ms} ms)",
            ms(d50),
            ms(d99)
        );
        println!(
            "  floor a+b+d                  p50 {} / p99 {}",
            ms(floor50),
            ms(floor99)
        );
        println!(
            "  c wire time, 10 B @ 57600    {}  (not on a pty: add it for a real cable)",
            ms(wire)
        );
        println!(
            "  measured / floor             p50 {:.2}x / p99 {:.2}x",
            ratio(m50, floor50),
            ratio(m99, floor99)
        );
        println!(
            "  on a real cable (+c)         p50 {} / p99 {}",
            ms(m50 + wire),
            ms(m99 + wire)
        );
        println!(
            "  history            {history} finished commands in the journal at start ({journal_mib} MiB, filled in {:.1} s)",
            filled.as_secs_f64()
        );
        println!("  elapsed            {:.1} s", d.elapsed.as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}
