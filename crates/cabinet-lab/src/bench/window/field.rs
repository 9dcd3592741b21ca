//! `--field`: the kiosk window as a cabinet runs it, instead of its demo. Its own site
//! config (three products and a site name, in English or with `--chinese-names` in
//! Chinese) against a Mosquitto started here and the VMC simulator on a pty, a fresh
//! journal for each run. With `--orders N` the harness plays the backend after the first
//! paint: it waits for this run's kiosk to come online, sends N signed dispense orders
//! through the broker one after another, each to its `succeeded` reply, and lets the
//! "take your item" screen go back to idle; then the settle window starts. So the
//! footprint after serving customers (buffers, caches and fonts the idle screen never
//! needed) is one command, not a figure taken by hand.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cabinet_board::Protocol;
use cabinet_board::sim::{SimConfig, Simulator};
use cabinet_core::mqtt::BackendClient;
use cabinet_core::protocol::{self, ReplyState, SigningKey};
use cabinet_core::reason::Reason;

use crate::loopback::{live_online, terminal_reply};
use crate::mosquitto::Broker;
use crate::orders::{claims, now_s};

const MACHINE: &str = "GZ-TIANHE-0001";
const KID: &str = "backend-1";
/// The products: slot, English name, Chinese name.
const PRODUCTS: [(u16, &str, &str); 3] = [
    (1, "Umbrella", "雨伞"),
    (2, "Power bank", "充电宝"),
    (11, "Phone charger", "手机充电器"),
];
const SITE: (&str, &str) = ("Tianhe Metro Station, exit B", "天河地铁站 B 出口");
/// Items per slot in each run's journal: `--orders` is at most three times this.
const STOCK: u32 = 50;
/// "Take your item" after a dispense (the shipped default, written out): the screen is
/// idle again after it.
const TAKE_ITEM_SECS: u64 = 10;
/// Any single wait: the kiosk online, one order's terminal reply.
const STEP: Duration = Duration::from_secs(30);
/// Before the board's first answer the cabinet refuses orders `board_unreachable`; the
/// order is sent again (a new one) this long after.
const NOT_READY_PAUSE: Duration = Duration::from_millis(500);

/// The most orders one run can serve.
pub(super) const MAX_ORDERS: u32 = STOCK * PRODUCTS.len() as u32;

/// The broker, the board and the backend's key of the field runs.
pub(super) struct Field {
    broker: Broker,
    // Kept alive for the runs: the board the kiosks talk to.
    _sim: Simulator,
    key: SigningKey,
    public: String,
    link: PathBuf,
    dir: PathBuf,
    chinese: bool,
    rt: tokio::runtime::Runtime,
    backend: Option<BackendClient>,
    sent: u32,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field")
            .field("broker_port", &self.broker.port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Field {
    /// Starts Mosquitto and the simulator; the runs' files go in `dir`.
    pub(super) fn start(dir: &Path, chinese: bool) -> anyhow::Result<Field> {
        let broker = Broker::start(true)?;
        let link = dir.join("board");
        let mut sc = SimConfig::new(Protocol::Vmc);
        sc.link = Some(link.clone());
        sc.slots = 20;
        // The board's own stock outlasts every run's orders.
        sc.stock = u32::MAX / 2;
        let sim = Simulator::start(sc).context("cannot start the board simulator")?;
        let (key, public) = protocol::generate_keypair()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Field {
            broker,
            _sim: sim,
            key,
            public,
            link,
            dir: dir.to_path_buf(),
            chinese,
            rt,
            backend: None,
            sent: 0,
        })
    }

    /// The kiosk's arguments for run `run`: a site config of its own (its own journal and
    /// logs, so every run starts as a fresh cabinet).
    pub(super) fn app_args(&self, run: u32) -> anyhow::Result<Vec<String>> {
        let path = self.dir.join(format!("site-{run}.toml"));
        let text = site_config(
            self.broker.port,
            &self.public,
            &self.link,
            &self.dir.join(format!("journal-{run}.sqlite3")),
            &self.dir.join(format!("logs-{run}")),
            self.chinese,
        )?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(vec!["--config".into(), path.display().to_string()])
    }

    /// Before a run that serves orders starts its kiosk: a backend session of its own,
    /// so it hears this run's kiosk come online (not an earlier run's retained birth).
    pub(super) fn listen(&mut self, run: u32) -> anyhow::Result<()> {
        let backend = self
            .rt
            .block_on(self.broker.backend(&format!("bench-window-{run}"), MACHINE))?;
        self.backend = Some(backend);
        Ok(())
    }

    /// After the first paint: waits for the kiosk online, serves `orders` one after
    /// another (each to `succeeded`), then waits out the "take your item" screen.
    pub(super) fn serve(&mut self, orders: u32) -> anyhow::Result<()> {
        let Some(mut backend) = self.backend.take() else {
            bail!("no backend session: listen() before the kiosk starts");
        };
        let (key, sent) = (&self.key, &mut self.sent);
        let result = self.rt.block_on(async {
            if tokio::time::timeout(STEP, live_online(&mut backend))
                .await
                .ok()
                .flatten()
                .is_none()
            {
                bail!("the kiosk did not come online within {STEP:?}");
            }
            for n in 0..orders {
                let slot = PRODUCTS[n as usize % PRODUCTS.len()].0;
                one_order(&mut backend, key, sent, slot).await?;
            }
            anyhow::Ok(())
        });
        self.rt.block_on(backend.disconnect());
        result?;
        std::thread::sleep(Duration::from_secs(TAKE_ITEM_SECS + 1));
        Ok(())
    }
}

/// One order for `slot`, to its `succeeded` reply (sent again while the board is not
/// answering yet).
async fn one_order(
    backend: &mut BackendClient,
    key: &SigningKey,
    sent: &mut u32,
    slot: u16,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP;
    loop {
        *sent += 1;
        let id = format!("bench-window-{sent}");
        let now = now_s();
        let token = protocol::sign_command(&claims(MACHINE, &id, slot, now, now + 120), key, KID)?;
        backend.send_command(MACHINE, &token).await?;
        let reply = terminal_reply(backend, &id, STEP)
            .await
            .with_context(|| format!("no terminal reply to {id} within {STEP:?}"))?;
        match (reply.state, reply.reason) {
            (ReplyState::Succeeded, _) => return Ok(()),
            (ReplyState::Rejected, Some(Reason::BoardUnreachable)) if Instant::now() < deadline => {
                tokio::time::sleep(NOT_READY_PAUSE).await;
            }
            (state, reason) => bail!(
                "the order for slot {slot} ended {state:?} ({})",
                reason.map_or("no reason", Reason::code)
            ),
        }
    }
}

/// The run's site config, as a technician would write it.
fn site_config(
    port: u16,
    public: &str,
    link: &Path,
    journal: &Path,
    logs: &Path,
    chinese: bool,
) -> anyhow::Result<String> {
    use toml::{Table, Value};
    let name = |en: &str, zh: &str| Value::from(if chinese { zh } else { en });
    let table = |pairs: Vec<(&str, Value)>| -> Value {
        Value::Table(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    };
    let path = |p: &Path| Value::from(p.display().to_string());
    let slots = PRODUCTS
        .iter()
        .map(|&(slot, en, zh)| {
            table(vec![
                ("slot", i64::from(slot).into()),
                ("product", name(en, zh)),
                ("capacity", i64::from(STOCK).into()),
                ("initial_count", i64::from(STOCK).into()),
            ])
        })
        .collect::<Vec<_>>();
    let mut config = Table::new();
    config.insert("machine_code".into(), MACHINE.into());
    config.insert("slots".into(), slots.into());
    config.insert(
        "mqtt".into(),
        table(vec![("url", format!("mqtt://127.0.0.1:{port}").into())]),
    );
    config.insert("keys".into(), table(vec![(KID, public.into())]));
    config.insert(
        "board".into(),
        table(vec![("protocol", "vmc".into()), ("port", path(link))]),
    );
    config.insert(
        "kiosk".into(),
        table(vec![
            ("name", name(SITE.0, SITE.1)),
            ("take_item_secs", (TAKE_ITEM_SECS as i64).into()),
        ]),
    );
    config.insert("journal".into(), table(vec![("path", path(journal))]));
    config.insert("logs".into(), table(vec![("dir", path(logs))]));
    Ok(toml::to_string(&config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config the field runs write is one the kiosk accepts, with the names asked for.
    #[test]
    fn the_site_config_loads_with_its_products() {
        let dir = tempfile::tempdir().unwrap();
        for chinese in [false, true] {
            let text = site_config(
                1883,
                &protocol::generate_keypair().unwrap().1,
                &dir.path().join("board"),
                &dir.path().join("journal.sqlite3"),
                &dir.path().join("logs"),
                chinese,
            )
            .unwrap();
            let path = dir.path().join("site.toml");
            std::fs::write(&path, &text).unwrap();
            let cfg =
                cabinet_core::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let products: Vec<&str> = cfg.slots.iter().map(|s| s.product.as_str()).collect();
            assert_eq!(products.len(), 3);
            assert_eq!(products[0], if chinese { "雨伞" } else { "Umbrella" });
            assert_eq!(cfg.machine_code, MACHINE);
        }
    }
}
