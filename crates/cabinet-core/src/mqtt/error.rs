//! [`LinkError`]: what can go wrong setting up or using the link.

use crate::config::ConfigError;
use crate::protocol::ProtocolError;

/// Why the link could not be built or a request could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Invalid machine code / topics.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The CA file for `mqtts://` could not be read.
    #[error("cannot read CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        message: String,
    },
    /// `mqtts://` without a CA file.
    #[error("mqtts:// needs mqtt.ca_file")]
    MissingCa,
    /// No broker endpoint at all.
    #[error("no broker endpoint configured")]
    NoBroker,
    /// The link task has stopped.
    #[error("the MQTT link has stopped")]
    Closed,
}
