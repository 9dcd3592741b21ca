//! The operator's signed documents at the runner: which keys are in force, taking a new
//! key set from `desired/keys`, and telling the backend on `reported`.
//!
//! A key set is applied the moment it is journaled, between two messages of the loop:
//! the next command is checked against it, a command already accepted finishes as it
//! was, and the screen never changes (no gap in service during a rotation).

use tracing::{info, info_span, warn};

use crate::config::Config;
use crate::journal::{DocumentChange, Journal};
use crate::mqtt::Incoming;
use crate::protocol::{
    self, DocumentRefusal, InForce, KIND_KEYS, KeyRole, KeySet, KeySetVerdict, KeysReport,
    KeysSource, PROTOCOL_VERSION, RefusedReport, Reported, TrustedKeys,
};

use super::link::{Link, stopped_is_not_an_error};
use super::{KioskError, Runner, now_ms};

/// The keys in force and where they came from.
#[derive(Debug)]
pub(super) struct Documents {
    /// What commands and documents are checked against.
    pub(super) keys: TrustedKeys,
    /// The config file's keys: in force until a key set is applied, and again after a
    /// reset on site.
    version: u64,
    source: KeysSource,
    sha256: Option<String>,
    signed_by: Option<String>,
    applied_at: Option<i64>,
    /// The last document refused in this run, until one is applied.
    refused: Option<RefusedReport>,
}

impl Documents {
    /// The keys in force at start: the journal's key set if one was applied, else the
    /// config file's.
    pub(super) fn open(cfg: &Config, journal: &Journal) -> Result<Documents, KioskError> {
        let file = cfg.trusted_keys()?;
        let mut docs = Documents {
            keys: file,
            version: 0,
            source: KeysSource::File,
            sha256: None,
            signed_by: None,
            applied_at: None,
            refused: None,
        };
        if let Some(stored) = journal.document(KIND_KEYS)? {
            docs.version = stored.version;
            docs.applied_at = Some(stored.applied_at);
            docs.signed_by = stored.signed_by;
            if let Some(token) = stored.token {
                // Checked when it was accepted; unreadable now means the journal changed
                // under us, and falling back to the file could bring back a removed key.
                let set = protocol::key_set_from_journal(&token).map_err(|e| {
                    KioskError::Journal(crate::journal::JournalError::Corrupt(format!(
                        "the key set in force (version {}) cannot be read: {e}",
                        stored.version
                    )))
                })?;
                docs.keys = set.keys;
                docs.sha256 = stored.sha256;
                docs.source = KeysSource::Signed;
            }
            info!(version = docs.version, source = ?docs.source, "keys in force from the journal");
        }
        Ok(docs)
    }

    fn in_force(&self) -> InForce<'_> {
        InForce {
            version: self.version,
            sha256: self.sha256.as_deref(),
        }
    }

    fn apply(&mut self, set: KeySet) {
        self.keys = set.keys;
        self.version = set.version;
        self.source = KeysSource::Signed;
        self.sha256 = Some(set.sha256);
        self.signed_by = Some(set.signed_by);
        self.applied_at = Some(crate::journal::now_ms());
        self.refused = None;
    }

    /// The `reported` message.
    pub(super) fn report(&self, machine_code: &str, boot_id: &str) -> Reported {
        Reported {
            v: PROTOCOL_VERSION,
            machine_code: machine_code.to_owned(),
            boot_id: boot_id.to_owned(),
            at: now_ms(),
            keys: KeysReport {
                version: self.version,
                source: self.source,
                sha256: self.sha256.clone(),
                signed_by: self.signed_by.clone(),
                applied_at: self.applied_at,
                dispense: self.keys.kids_with(KeyRole::Dispense),
                operator: self.keys.kids_with(KeyRole::Operator),
            },
            refused: self.refused.clone(),
        }
    }
}

/// The audit detail of a key set: its version and the kids of each role.
fn describe(set: &KeySet) -> String {
    format!(
        "version {}: dispense {}; operator {}",
        set.version,
        set.keys.kids_with(KeyRole::Dispense).join(", "),
        set.keys.kids_with(KeyRole::Operator).join(", ")
    )
}

impl<L: Link> Runner<L> {
    /// A key set arrived on `desired/keys`: verify, journal with its audit row, apply,
    /// ack, report. A refused one changes nothing and is reported with its reason.
    pub(super) async fn on_key_set(&mut self, inc: Incoming) -> Result<(), KioskError> {
        let sha256 = std::str::from_utf8(&inc.payload)
            .map(|t| protocol::document_sha256(t.trim_ascii()))
            .unwrap_or_default();
        let span = info_span!("document", kind = KIND_KEYS, sha256 = %sha256);
        span.in_scope(|| self.take_key_set(&inc.payload, sha256))?;
        stopped_is_not_an_error(self.link.ack(inc.ack).await)?;
        self.send_reported().await
    }

    fn take_key_set(&mut self, payload: &[u8], sha256: String) -> Result<(), KioskError> {
        let verdict = protocol::verify_key_set(
            payload,
            &self.docs.keys,
            &self.cfg.machine_code,
            self.docs.in_force(),
        );
        match verdict {
            Ok(KeySetVerdict::InForce) => {
                info!(version = self.docs.version, "key set already in force");
            }
            Ok(KeySetVerdict::New(set)) => {
                let detail = describe(&set);
                let actor = format!("operator:{}", set.signed_by);
                self.journal.put_document(&DocumentChange {
                    kind: KIND_KEYS,
                    version: set.version,
                    sha256: Some(&set.sha256),
                    token: Some(&set.token),
                    by: &set.signed_by,
                    actor: &actor,
                    action: "keys_applied",
                    detail: &detail,
                })?;
                info!(version = set.version, signed_by = %set.signed_by, keys = %detail, "key set applied");
                self.docs.apply(*set);
            }
            Err(refusal) => {
                warn!(reason = refusal.reason.code(), detail = %refusal.detail, problems = ?refusal.problems, version = ?refusal.version, bytes = payload.len(), "key set refused");
                self.docs.refused = Some(refused_report(KIND_KEYS, refusal, sha256));
            }
        }
        Ok(())
    }

    /// Publishes `reported` (on every connection, and after every document).
    pub(super) async fn send_reported(&mut self) -> Result<(), KioskError> {
        let report = self.docs.report(&self.cfg.machine_code, &self.boot_id);
        let json = serde_json::to_string(&report).unwrap_or_default();
        stopped_is_not_an_error(self.link.publish_reported(json).await)
    }
}

fn refused_report(kind: &str, r: DocumentRefusal, sha256: String) -> RefusedReport {
    RefusedReport {
        document: kind.to_owned(),
        reason: r.reason,
        detail: r.detail,
        problems: r.problems,
        version: r.version,
        signed_by: r.signed_by,
        sha256,
        at: now_ms(),
    }
}
