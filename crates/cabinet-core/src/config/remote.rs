//! What an operator may change remotely, with a signed configuration document
//! (docs/PROTOCOL.md §13), and how it is laid over the site file.
//!
//! Only what a fleet operator changes from afar: the slot map and its products, the
//! screens' name, timeouts, QR link and scan apps, the service contact, the technician's
//! idle logout. Never the broker, the keys, the board's wiring, the journal or the logs:
//! a document that names them is refused, field by field. The result is validated as a
//! whole with the file's own rules ([`Config::validate`]), so a remote slot map is held to
//! exactly what `cabinet config check` would say of the same file.

use serde::{Deserialize, Serialize};

use super::{Config, Problem, ScanApp, SlotConfig};

/// The claims of a configuration document, as the operator signs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigClaims {
    /// Always `config`.
    pub kind: String,
    /// The cabinet it is for.
    pub aud: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Only goes up, per cabinet.
    pub version: u64,
    /// The parts of the config it sets ([`RemoteConfig`]); what it leaves out stays as
    /// the site file says.
    pub config: serde_json::Value,
}

/// The parts of the config a document may set. A section left out keeps the file's; a
/// field left out of a section keeps the file's; `slots`, when given, is the whole slot
/// map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// The whole slot map (`[[slots]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<SlotConfig>>,
    /// Part of `[kiosk]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kiosk: Option<RemoteKiosk>,
    /// `[support]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<RemoteSupport>,
    /// Part of `[maintenance]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<RemoteMaintenance>,
}

/// The `[kiosk]` fields a document may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteKiosk {
    /// `kiosk.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `kiosk.take_item_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_item_secs: Option<u64>,
    /// `kiosk.failed_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_secs: Option<u64>,
    /// `kiosk.out_of_service_grace_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_service_grace_secs: Option<u64>,
    /// `kiosk.qr_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_url: Option<String>,
    /// `kiosk.scan_with`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_with: Option<Vec<ScanApp>>,
}

/// The `[support]` fields a document may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSupport {
    /// `support.phone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// `support.help_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_url: Option<String>,
    /// `support.nearby`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearby: Option<String>,
}

/// The `[maintenance]` fields a document may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteMaintenance {
    /// `maintenance.idle_logout_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_logout_secs: Option<u64>,
}

impl RemoteConfig {
    /// Reads a document's `config`, naming the field of the first thing that does not
    /// fit (a section or field a document may not set, a value of the wrong type).
    pub fn parse(value: &serde_json::Value) -> Result<RemoteConfig, Vec<Problem>> {
        serde_path_to_error::deserialize::<_, RemoteConfig>(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "config".to_owned()
            } else {
                path
            };
            let message = e.into_inner().to_string();
            let message = if message.starts_with("unknown field") {
                format!(
                    "{message}: a configuration document may set only slots, kiosk.name, \
                     kiosk.take_item_secs, kiosk.failed_secs, kiosk.out_of_service_grace_secs, \
                     kiosk.qr_url, kiosk.scan_with, support.phone, support.help_url, \
                     support.nearby and maintenance.idle_logout_secs"
                )
            } else {
                message
            };
            vec![Problem { field, message }]
        })
    }

    /// A short account of what it sets, for the audit trail and the log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(slots) = &self.slots {
            parts.push(format!("{} slots", slots.len()));
        }
        let mut fields = |section: &str, v: serde_json::Value| {
            if let Some(o) = v.as_object().filter(|o| !o.is_empty()) {
                let names: Vec<String> = o.keys().map(|k| format!("{section}.{k}")).collect();
                parts.push(names.join(", "));
            }
        };
        fields(
            "kiosk",
            serde_json::to_value(&self.kiosk).unwrap_or_default(),
        );
        fields(
            "support",
            serde_json::to_value(&self.support).unwrap_or_default(),
        );
        fields(
            "maintenance",
            serde_json::to_value(&self.maintenance).unwrap_or_default(),
        );
        if parts.is_empty() {
            "nothing (the file's settings)".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

impl Config {
    /// This config with `remote` laid over it, validated as a whole with the file's
    /// rules; every problem named by its field.
    pub fn with_remote(&self, remote: &RemoteConfig) -> Result<Config, Vec<Problem>> {
        let mut cfg = self.clone();
        if let Some(slots) = &remote.slots {
            cfg.slots = slots.clone();
        }
        if let Some(k) = &remote.kiosk {
            let c = &mut cfg.kiosk;
            set(&mut c.name, &k.name);
            set(&mut c.take_item_secs, &k.take_item_secs);
            set(&mut c.failed_secs, &k.failed_secs);
            set(
                &mut c.out_of_service_grace_secs,
                &k.out_of_service_grace_secs,
            );
            set(&mut c.qr_url, &k.qr_url);
            set(&mut c.scan_with, &k.scan_with);
        }
        if let Some(s) = &remote.support {
            set(&mut cfg.support.phone, &s.phone);
            set(&mut cfg.support.help_url, &s.help_url);
            set(&mut cfg.support.nearby, &s.nearby);
        }
        if let Some(m) = &remote.maintenance {
            set(&mut cfg.maintenance.idle_logout_secs, &m.idle_logout_secs);
        }
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems)
        }
    }
}

fn set<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *field = v.clone();
    }
}
