//! Broker endpoints: `mqtt.url` and `mqtt.failover_urls` parsed into [`BrokerUrl`]s.

use super::{Config, ConfigError, Problem};

/// A parsed `mqtt.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`.
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Parses `mqtt://host[:port]` / `mqtts://host[:port]`, with an optional trailing `/`.
///
/// Credentials in the URL are refused: the URL is logged, the password must not be.
pub fn parse_broker_url(url: &str) -> Result<BrokerUrl, String> {
    const HELP: &str = "must be mqtt://host[:port] or mqtts://host[:port]";
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else {
        return Err(format!("{HELP} (got {url:?})"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(
            "must not contain credentials; use mqtt.username and mqtt.password_file".into(),
        );
    }
    if rest.contains(['/', '?', '#']) {
        return Err(format!("{HELP}, without a path (got {url:?})"));
    }
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or_else(|| format!("{HELP} (unclosed '[' in {url:?})"))?;
        (h, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.contains([' ', '[', ']']) {
        return Err(format!("{HELP} (missing or bad host in {url:?})"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("port must be 1..=65535 (got {p:?})")),
        },
    };
    Ok(BrokerUrl {
        tls,
        host: host.to_owned(),
        port,
    })
}

impl Config {
    /// The MQTT username: `mqtt.username`, or the machine code when left out.
    pub fn mqtt_username(&self) -> &str {
        self.mqtt.username.as_deref().unwrap_or(&self.machine_code)
    }

    /// The parsed broker URL.
    pub fn broker(&self) -> Result<BrokerUrl, ConfigError> {
        parse_broker_url(&self.mqtt.url).map_err(|message| {
            ConfigError::Invalid(vec![Problem {
                field: "mqtt.url".into(),
                message,
            }])
        })
    }

    /// Every broker endpoint: `mqtt.url`, then `mqtt.failover_urls` in order.
    pub fn brokers(&self) -> Result<Vec<BrokerUrl>, ConfigError> {
        let mut all = vec![self.broker()?];
        for (i, u) in self.mqtt.failover_urls.iter().enumerate() {
            all.push(parse_broker_url(u).map_err(|message| {
                ConfigError::Invalid(vec![Problem {
                    field: format!("mqtt.failover_urls[{i}]"),
                    message,
                }])
            })?);
        }
        Ok(all)
    }
}
