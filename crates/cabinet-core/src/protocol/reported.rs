//! What a cabinet reports on `.../reported`: the documents in force (key set,
//! configuration) and the last one it refused, so an operator sees which cabinets run
//! what without asking each.

use serde::{Deserialize, Serialize};

use super::DocumentReason;

/// Where a document in force comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentSource {
    /// The site config file (version 0, or the floor after a reset on site).
    #[default]
    File,
    /// A document signed by an operator key.
    Signed,
}

/// A document in force: its version, where it comes from, who signed it and when it came
/// into force. What `reported` says of the key set and of the configuration alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InForceReport {
    /// The version in force: 0 while the site file's is; for keys after a reset on site,
    /// the reset set's version (a new one must climb above it).
    pub version: u64,
    /// File or signed.
    pub source: DocumentSource,
    /// Hex SHA-256 of the document in force (signed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The operator kid that signed it (signed), or who reset it (keys, after a reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// When it came into force (or was reset), unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<i64>,
}

/// The keys in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysReport {
    /// The key set in force.
    #[serde(flatten)]
    pub in_force: InForceReport,
    /// The kids that may sign commands.
    pub dispense: Vec<String>,
    /// The kids that may sign documents.
    pub operator: Vec<String>,
}

/// The configuration in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReport {
    /// The configuration document in force.
    #[serde(flatten)]
    pub in_force: InForceReport,
    /// A newer version accepted and waiting for the cabinet to be between customers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// When the configuration the journal holds no longer fits the site file (a
    /// technician changed the file): why, each naming its field. The site file's
    /// configuration is then in force until a new document comes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The last document refused since this run of the app started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedReport {
    /// Which topic it came on: `keys` or `config`.
    pub document: String,
    /// Why.
    pub reason: DocumentReason,
    /// One line.
    pub detail: String,
    /// With `invalid`: every rule it broke, each naming its field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Its version, once its signature verified and its claims parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Its signer, once its signature verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Hex SHA-256 of the payload as received (so the operator can tell which push).
    pub sha256: String,
    /// When, unix ms.
    pub at: u64,
}

/// The retained message on `.../reported`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    /// Protocol version.
    pub v: u8,
    /// This cabinet.
    pub machine_code: String,
    /// This run of the app.
    pub boot_id: String,
    /// When it was built, unix ms.
    pub at: u64,
    /// The keys in force.
    pub keys: KeysReport,
    /// The configuration in force.
    pub config: ConfigReport,
    /// The last document refused in this run, if any since the last one applied.
    pub refused: Option<RefusedReport>,
}
