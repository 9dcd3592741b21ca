//! What can go wrong loading a config: [`ConfigError`] and the [`Problem`]s it lists.

use std::fmt;
use std::path::PathBuf;

/// Errors loading the configuration or the secrets it points to.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The site file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The site file (or the embedded defaults) is not valid TOML.
    #[error("{origin} is not valid TOML: {message}")]
    Syntax {
        /// Which text: the file path or "embedded defaults".
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The config has the wrong shape or breaks validation rules; all problems found.
    #[error("invalid config ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, Problems(.0))]
    Invalid(Vec<Problem>),
    /// `mqtt.password_file` could not be read or is empty.
    #[error("cannot read MQTT password from {path}: {message}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        message: String,
    },
    /// `mqtt.password_env` names a variable that is not set, empty or not UTF-8.
    #[error("MQTT password environment variable {var} is not set, empty or not UTF-8")]
    PasswordEnv {
        /// The variable name.
        var: String,
    },
}

/// One problem in the config: which field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted field path, such as `board.protocol` or `slots[2].capacity`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}
