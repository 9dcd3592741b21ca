//! [`Config::validate`]: every range and cross-field rule of the text alone, all
//! problems at once, each naming its field and what is allowed.

use std::collections::BTreeSet;

use crate::protocol::{self, KeyRole, TrustedKeys};

use super::{BoardProtocol, Config, Problem, parse_broker_url};

/// Most entries in `mqtt.failover_urls`.
pub const MAX_FAILOVER_URLS: usize = 15;

/// Whether `s` is a usable environment variable name.
pub(super) fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The longest `commands.max_token_lifetime_secs` any configuration may set. With
/// [`CLOCK_SKEW_CEILING_SECS`] it bounds how long after its arrival any command could be
/// delivered again and accepted, whatever the configuration was then: retention relies
/// on it (crate::retention).
pub const TOKEN_LIFETIME_CEILING_SECS: i64 = 3600;

/// The largest `commands.clock_skew_secs` any configuration may set.
pub const CLOCK_SKEW_CEILING_SECS: i64 = 600;

impl Config {
    /// Checks every rule and returns all problems (empty = valid).
    pub fn validate(&self) -> Vec<Problem> {
        let mut v = Validator::default();

        // machine_code
        if self.machine_code.is_empty() {
            v.add(
                "machine_code",
                "is required: this cabinet's code, 1..=64 characters of A-Z a-z 0-9 _ -",
            );
        } else if let Err(protocol::ProtocolError::InvalidMachineCode { why, .. }) =
            protocol::check_machine_code(&self.machine_code)
        {
            v.add("machine_code", why);
        }

        // [mqtt]
        let m = &self.mqtt;
        let broker = parse_broker_url(&m.url);
        if let Err(e) = &broker {
            v.add("mqtt.url", e);
        }
        if m.failover_urls.len() > MAX_FAILOVER_URLS {
            v.add(
                "mqtt.failover_urls",
                &format!("at most {MAX_FAILOVER_URLS} entries (put a load balancer or one DNS name in front of a larger cluster)"),
            );
        }
        let mut seen = Vec::with_capacity(m.failover_urls.len() + 1);
        if let Ok(b) = &broker {
            seen.push(b.clone());
        }
        for (i, u) in m.failover_urls.iter().enumerate() {
            let field = format!("mqtt.failover_urls[{i}]");
            match parse_broker_url(u) {
                Err(e) => v.add(&field, &e),
                Ok(b) if seen.contains(&b) => v.add(
                    &field,
                    &format!("repeats an endpoint already listed (got {u:?})"),
                ),
                Ok(b) => {
                    if let Ok(first) = &broker
                        && first.tls != b.tls
                    {
                        v.add(
                            &field,
                            &format!(
                                "must use the same scheme as mqtt.url ({}://) so one CA and one set of credentials fit every node (got {u:?})",
                                if first.tls { "mqtts" } else { "mqtt" }
                            ),
                        );
                    }
                    seen.push(b);
                }
            }
        }
        if let Some(u) = &m.username
            && (u.is_empty() || u.len() > 256 || u.chars().any(char::is_control))
        {
            v.add(
                "mqtt.username",
                "must be 1..=256 characters without control characters (or left out to use the machine code)",
            );
        }
        if m.password_file.is_some() && m.password_env.is_some() {
            v.add(
                "mqtt.password_env",
                "set either mqtt.password_file or mqtt.password_env, not both",
            );
        }
        if let Some(e) = &m.password_env
            && !is_env_name(e)
        {
            v.add(
                "mqtt.password_env",
                "must be an environment variable name (A-Z, a-z, 0-9, _)",
            );
        }
        if let Some(p) = &m.password_file
            && p.as_os_str().is_empty()
        {
            v.add(
                "mqtt.password_file",
                "must not be empty (leave it out instead)",
            );
        }
        match (&broker, &m.ca_file) {
            (Ok(b), None) if b.tls => v.add(
                "mqtt.ca_file",
                "is required with mqtts:// (a PEM CA bundle; for a public CA use /etc/ssl/certs/ca-certificates.crt)",
            ),
            (Ok(b), Some(_)) if !b.tls => v.add(
                "mqtt.ca_file",
                "is only used with mqtts://; remove it or change mqtt.url to mqtts://",
            ),
            _ => {}
        }
        v.range("mqtt.keepalive_secs", m.keepalive_secs, 5, 3600);
        v.range("mqtt.reconnect_min_ms", m.reconnect_min_ms, 100, 60_000);
        v.range("mqtt.reconnect_max_ms", m.reconnect_max_ms, 1000, 600_000);
        if m.reconnect_max_ms < m.reconnect_min_ms {
            v.add(
                "mqtt.reconnect_max_ms",
                "must be at least mqtt.reconnect_min_ms",
            );
        }

        // [keys]
        if self.keys.is_empty() {
            v.add(
                "keys",
                "at least one trusted public key is required: kid = \"base64url of the 32-byte Ed25519 public key\" (a JWK's x)",
            );
        }
        for (kid, x) in &self.keys {
            let mut one = TrustedKeys::new();
            if let Err(e) = one.insert_base64url(kid, x) {
                v.add(&format!("keys.{kid}"), &e.to_string());
            }
        }
        // [operator_keys]
        for (kid, x) in &self.operator_keys {
            let mut one = TrustedKeys::new();
            if let Err(e) = one.insert_with_role(kid, x, KeyRole::Operator) {
                v.add(&format!("operator_keys.{kid}"), &e.to_string());
            } else if self
                .keys
                .get(kid)
                .is_some_and(|other| other.trim() != x.trim())
            {
                v.add(
                    &format!("operator_keys.{kid}"),
                    &format!(
                        "names another key than keys.{kid}: one kid, one key (give the operator key its own kid)"
                    ),
                );
            }
        }

        // [commands]
        let c = &self.commands;
        v.range(
            "commands.max_payload_bytes",
            c.max_payload_bytes as u64,
            256,
            65_536,
        );
        v.range_i(
            "commands.clock_skew_secs",
            c.clock_skew_secs,
            0,
            CLOCK_SKEW_CEILING_SECS,
        );
        // The hard maximum: an hour. Backends sign when the customer scans and a cabinet
        // serves within seconds, so even a restart and a broker outage fit in minutes.
        v.range_i(
            "commands.max_token_lifetime_secs",
            c.max_token_lifetime_secs,
            10,
            TOKEN_LIFETIME_CEILING_SECS,
        );
        v.range(
            "commands.session_lifetime_secs",
            c.session_lifetime_secs,
            10,
            3600,
        );

        // [board]
        let b = &self.board;
        if !b.port.is_absolute() {
            v.add(
                "board.port",
                "must be an absolute device path, such as /dev/cabinet-board",
            );
        }
        v.baud("board.vmc.baud", b.vmc.baud);
        v.range(
            "board.vmc.report_timeout_secs",
            b.vmc.report_timeout_secs,
            1,
            300,
        );
        self.check_stop_budget(&mut v);
        v.baud("board.lockboard.baud", b.lockboard.baud);
        v.range("board.lockboard.address", b.lockboard.address.into(), 1, 31);
        v.range(
            "board.lockboard.channels",
            b.lockboard.channels.into(),
            1,
            128,
        );
        v.range(
            "board.lockboard.reply_timeout_ms",
            b.lockboard.reply_timeout_ms,
            100,
            10_000,
        );
        v.range(
            "board.lockboard.door_open_timeout_secs",
            b.lockboard.door_open_timeout_secs,
            1,
            600,
        );

        // [[slots]]
        let mut seen = BTreeSet::new();
        for (i, s) in self.slots.iter().enumerate() {
            let f = |name: &str| format!("slots[{i}].{name}");
            if s.slot == 0 {
                v.add(&f("slot"), "must be at least 1");
            } else if !seen.insert(s.slot) {
                v.add(
                    &f("slot"),
                    &format!("slot {} appears more than once", s.slot),
                );
            }
            if self.boards.is_empty()
                && b.protocol == BoardProtocol::Lockboard
                && s.slot > b.lockboard.channels
            {
                v.add(
                    &f("slot"),
                    &format!(
                        "must be at most board.lockboard.channels ({}) with the lock board",
                        b.lockboard.channels
                    ),
                );
            }
            if s.product.trim().is_empty() || s.product.chars().count() > 64 {
                v.add(&f("product"), "must be 1..=64 characters");
            }
            v.range(&f("capacity"), s.capacity.into(), 1, 1000);
            if s.initial_count > s.capacity {
                v.add(
                    &f("initial_count"),
                    &format!("must be at most capacity ({})", s.capacity),
                );
            }
        }

        // [[boards]] and the slot map that names them
        self.check_boards(&mut v);

        // [kiosk]
        v.range("kiosk.heartbeat_secs", self.kiosk.heartbeat_secs, 1, 3600);
        v.range("kiosk.take_item_secs", self.kiosk.take_item_secs, 1, 600);
        v.range("kiosk.failed_secs", self.kiosk.failed_secs, 1, 600);
        v.range(
            "kiosk.out_of_service_grace_secs",
            self.kiosk.out_of_service_grace_secs,
            0,
            600,
        );
        v.range(
            "kiosk.board_check_secs",
            self.kiosk.board_check_secs,
            1,
            600,
        );
        v.range(
            "kiosk.board_start_wait_secs",
            self.kiosk.board_start_wait_secs,
            1,
            120,
        );
        if !self.kiosk.qr_url.is_empty()
            && let Err(why) = crate::qr::check_url_template(&self.kiosk.qr_url)
        {
            v.add("kiosk.qr_url", &why);
        }
        let apps = &self.kiosk.scan_with;
        if apps.iter().enumerate().any(|(i, a)| apps[..i].contains(a)) {
            v.add("kiosk.scan_with", "names an app twice");
        }

        // [support]
        let support = &self.support;
        if support.phone.chars().count() > 32
            || !support
                .phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-()".contains(c))
        {
            v.add(
                "support.phone",
                "at most 32 characters of digits, spaces and + - ( )",
            );
        }
        if !support.help_url.is_empty()
            && (!support.help_url.starts_with("https://")
                || support.help_url.len() <= "https://".len()
                || support.help_url.chars().count() > 300
                || support
                    .help_url
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()))
        {
            v.add(
                "support.help_url",
                "an https:// link of at most 300 characters, without spaces",
            );
        }
        if support.nearby.chars().count() > 80 || support.nearby.chars().any(char::is_control) {
            v.add(
                "support.nearby",
                "at most 80 characters, no control characters",
            );
        }

        // [technicians], [maintenance]
        for (name, hash) in &self.technicians {
            let field = format!("technicians.{name}");
            if name.is_empty() || name.chars().count() > 32 || name.chars().any(|c| c.is_control())
            {
                v.add(
                    &field,
                    "a technician name is 1 to 32 characters, no control characters",
                );
            }
            if let Err(why) = crate::technician::check_pin_hash(hash.expose()) {
                v.add(&field, &why);
            }
        }
        let m = &self.maintenance;
        v.range(
            "maintenance.max_failures",
            u64::from(m.max_failures),
            1,
            100,
        );
        v.range("maintenance.lockout_secs", m.lockout_secs, 1, 86_400);
        v.range(
            "maintenance.lockout_max_secs",
            m.lockout_max_secs,
            1,
            604_800,
        );
        if m.lockout_max_secs < m.lockout_secs {
            v.add(
                "maintenance.lockout_max_secs",
                "must be at least maintenance.lockout_secs",
            );
        }
        v.range("maintenance.idle_logout_secs", m.idle_logout_secs, 10, 3600);
        for (name, value) in &self.kiosk.webkit_env {
            if !is_env_name(name) {
                v.add(
                    &format!("kiosk.webkit_env.{name}"),
                    "must be an environment variable name (A-Z, a-z, 0-9, _; not starting with a digit)",
                );
            }
            if value.contains('\0') {
                v.add(
                    &format!("kiosk.webkit_env.{name}"),
                    "must not contain a NUL character",
                );
            }
        }

        // [journal], [logs]
        v.range(
            "journal.max_rejections",
            self.journal.max_rejections,
            100,
            1_000_000,
        );
        v.range(
            "journal.rejections_max_age_days",
            self.journal.rejections_max_age_days,
            1,
            365,
        );
        v.range(
            "journal.keep_commands_days",
            self.journal.keep_commands_days,
            1,
            3650,
        );
        v.range(
            "journal.max_commands",
            self.journal.max_commands,
            1_000,
            10_000_000,
        );
        v.range("journal.min_free_mb", self.journal.min_free_mb, 1, 100_000);
        if self
            .journal
            .witness_path
            .as_ref()
            .is_some_and(|w| w.as_os_str().is_empty() || *w == self.journal.path)
        {
            v.add(
                "journal.witness_path",
                "must be a file path other than journal.path (or left out for <journal.path>.witness)",
            );
        }
        if self.journal.path.as_os_str().is_empty() {
            v.add("journal.path", "must not be empty");
        }
        if self.logs.dir.as_os_str().is_empty() {
            v.add("logs.dir", "must not be empty");
        }
        v.range(
            "logs.retention_days",
            self.logs.retention_days.into(),
            1,
            365,
        );
        if !log_filter_ok(&self.logs.level) {
            v.add(
                "logs.level",
                "must be one of: trace, debug, info, warn, error, or directives like \"info,cabinet_core=debug\"",
            );
        }
        v.problems
    }
}

/// Accepts a level or comma-separated `target=level` directives: what
/// tracing-subscriber's `Targets` filter parses (logs.rs), and all a technician needs.
pub(super) fn log_filter_ok(s: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    !s.trim().is_empty()
        && s.split(',').all(|d| {
            let d = d.trim();
            let level = d.rsplit_once('=').map_or(d, |(target, l)| {
                if target.is_empty()
                    || !target
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
                {
                    ""
                } else {
                    l
                }
            });
            LEVELS.contains(&level.to_ascii_lowercase().as_str())
        })
}

#[derive(Default)]
pub(super) struct Validator {
    pub(super) problems: Vec<Problem>,
}

impl Validator {
    pub(super) fn add(&mut self, field: &str, message: &str) {
        self.problems.push(Problem {
            field: field.to_owned(),
            message: message.to_owned(),
        });
    }

    pub(super) fn range(&mut self, field: &str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.add(field, &format!("must be in {min}..={max} (got {value})"));
        }
    }

    fn range_i(&mut self, field: &str, value: i64, min: i64, max: i64) {
        if !(min..=max).contains(&value) {
            self.add(field, &format!("must be in {min}..={max} (got {value})"));
        }
    }

    pub(super) fn baud(&mut self, field: &str, value: u32) {
        const BAUDS: [u32; 8] = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200];
        if !BAUDS.contains(&value) {
            self.add(
                field,
                &format!(
                    "must be one of: 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200 (got {value})"
                ),
            );
        }
    }
}
