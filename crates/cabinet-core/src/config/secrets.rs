//! Secrets the config points to: the MQTT password ([`Secret`], read by
//! [`MqttConfig::load_password`]) and the technicians' PIN hashes ([`PinHash`]), none of
//! which print.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ConfigError, MqttConfig};

/// A secret string (the MQTT password). `Debug` and `Display` print `***` so the value
/// cannot reach a log by accident (secrets never reach a log).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it (the MQTT CONNECT).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A technician's PIN hash (an Argon2 PHC string). Not the PIN, but still a secret: an
/// offline guess of a short PIN against it is cheap enough to matter. `Debug` prints
/// `***` and serializing writes `"[redacted]"`, so neither logs nor a diagnostics bundle
/// built from a serialized config can carry it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct PinHash(String);

impl PinHash {
    /// The PHC string, for the one place that verifies a PIN.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PinHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for PinHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl MqttConfig {
    /// Reads the password from `password_file` (first line, trailing newline removed)
    /// or `password_env`. `Ok(None)` when neither is set (anonymous or cert auth).
    pub fn load_password(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::PasswordFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let line = text.lines().next().unwrap_or_default();
            if line.is_empty() {
                return Err(ConfigError::PasswordFile {
                    path: path.clone(),
                    message: "the file's first line is empty".into(),
                });
            }
            return Ok(Some(Secret::new(line)));
        }
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(s) if !s.is_empty() => Ok(Some(Secret::new(s))),
                _ => Err(ConfigError::PasswordEnv { var: var.clone() }),
            };
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_stars_in_debug_and_display() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
        let pin = PinHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        assert_eq!(format!("{pin:?}"), "***");
        assert_eq!(
            serde_json::to_string(&pin).unwrap(),
            "\"[redacted]\"",
            "serialized (e.g. into a diagnostics bundle) without the hash"
        );
    }
}
