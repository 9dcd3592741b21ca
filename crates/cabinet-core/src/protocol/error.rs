//! [`ProtocolError`]: errors building protocol values from local input.

use super::KeyError;

/// Errors building protocol values from local input (not from the network: network
/// input is judged by [`verify_command`](super::verify_command) and yields a [`Rejection`](super::Rejection)).
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The machine code would make an unsafe or ambiguous topic.
    #[error("invalid machine code {code:?}: {why}")]
    InvalidMachineCode {
        /// What was given.
        code: String,
        /// What is allowed.
        why: &'static str,
    },
    /// A key could not be decoded or generated.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// JSON encoding failed (only possible for non-string map keys; kept for honesty).
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}
