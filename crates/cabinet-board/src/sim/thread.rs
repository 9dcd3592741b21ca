//! The simulator's thread: the cable (a new pty and link on replug, none while unplugged),
//! then one protocol step at a time; and the pty reads and writes both boards share
//! (a checksum-corrupting fault applied on the way out).

use std::time::Duration;

use serialport::TTYPort;

use super::config::SimConfig;
use super::lockboard::lock_step;
use super::state::{Shared, relink};
use super::vmc::VmcModel;
use crate::lockboard::codec::{LockDecoder, Side};
use crate::{Protocol, port};

/// The simulator thread: cable management, then one protocol step at a time.
pub(super) fn run(shared: &Shared, master: TTYPort) {
    let cfg = &shared.cfg;
    let mut port = Some(master);
    let mut model = Model::new(cfg);
    loop {
        {
            let mut c = shared.lock();
            if c.shutdown {
                return;
            }
            if c.want_plugged != port.is_some() {
                if c.want_plugged {
                    match port::pty_pair() {
                        Ok((m, path)) => {
                            if let Some(link) = &cfg.link
                                && let Err(e) = relink(link, Some(&path))
                            {
                                tracing::warn!(error = %e, "simulator relink failed");
                            }
                            c.stats.pty = path.display().to_string();
                            port = Some(m);
                            model = Model::new(cfg);
                        }
                        Err(e) => tracing::warn!(error = %e, "simulator cannot create a pty"),
                    }
                } else {
                    port = None;
                    if let Some(link) = &cfg.link {
                        let _ = relink(link, None);
                    }
                }
                c.stats.plugged = port.is_some();
                shared.changed.notify_all();
            }
            if port.is_none() {
                // Unplugged: nothing to do until told otherwise.
                let _ = shared.changed.wait_timeout(c, Duration::from_millis(50));
                continue;
            }
        }
        if let Some(p) = port.as_mut() {
            model.step(shared, p);
        }
    }
}

/// Per-connection protocol state.
#[derive(Debug)]
enum Model {
    Vmc(VmcModel),
    Lock(LockDecoder),
}

impl Model {
    fn new(cfg: &SimConfig) -> Self {
        match cfg.protocol {
            Protocol::Vmc => Model::Vmc(VmcModel::new(cfg)),
            Protocol::Lockboard => Model::Lock(LockDecoder::new(
                Side::FromHost,
                usize::from(cfg.slots).div_ceil(8),
            )),
        }
    }

    fn step(&mut self, shared: &Shared, port: &mut TTYPort) {
        match self {
            Model::Vmc(m) => m.step(shared, port),
            Model::Lock(d) => lock_step(shared, d, port),
        }
    }
}
