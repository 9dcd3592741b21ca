//! The operator's signed documents at the runner: the key set and the configuration in
//! force, taking new ones from `desired/keys` and `desired/config`, and telling the
//! backend on `reported`.
//!
//! A key set is applied the moment it is journaled, between two messages of the loop:
//! the next command is checked against it, a command already accepted finishes as it
//! was, and the screen never changes (no gap in service during a rotation). A
//! configuration waits until the cabinet is between customers (nothing at the board or
//! queued, no technician's visit), then comes into force with
//! its slot map in one journal transaction; the screen follows at once.

use tracing::{info, info_span, warn};

use crate::config::{Config, ConfigClaims, RemoteConfig};
use crate::journal::{DocumentChange, Journal, JournalError};
use crate::mqtt::Incoming;
use crate::protocol::{
    self, ConfigReport, Document, DocumentReason, DocumentRefusal, DocumentSource, DocumentVerdict,
    InForce, InForceReport, KIND_CONFIG, KIND_KEYS, KeyRole, KeySet, KeySetVerdict, KeysReport,
    MAX_CONFIG_BYTES, PROTOCOL_VERSION, RefusedReport, Reported, TrustedKeys,
};

use super::link::{Link, stopped_is_not_an_error};
use super::{KioskError, Runner, engine_config, now_ms};

fn of_journal(stored: &crate::journal::StoredDocument) -> InForceReport {
    InForceReport {
        version: stored.version,
        source: if stored.sha256.is_some() {
            DocumentSource::Signed
        } else {
            DocumentSource::File
        },
        sha256: stored.sha256.clone(),
        signed_by: stored.signed_by.clone(),
        applied_at: Some(stored.applied_at),
    }
}

fn signed(version: u64, sha256: &str, signed_by: &str) -> InForceReport {
    InForceReport {
        version,
        source: DocumentSource::Signed,
        sha256: Some(sha256.to_owned()),
        signed_by: Some(signed_by.to_owned()),
        applied_at: Some(crate::journal::now_ms()),
    }
}

fn in_force(r: &InForceReport) -> InForce<'_> {
    InForce {
        version: r.version,
        sha256: r.sha256.as_deref(),
    }
}

/// A configuration accepted but waiting for the cabinet to be between customers.
#[derive(Debug)]
struct Pending {
    doc: Document,
    remote: RemoteConfig,
    cfg: Config,
}

/// The documents in force and what waits.
#[derive(Debug)]
pub(super) struct Documents {
    /// What commands and documents are checked against.
    pub(super) keys: TrustedKeys,
    keys_doc: InForceReport,
    /// The site file's config, which a configuration document is laid over.
    file: Config,
    config_doc: InForceReport,
    /// The configuration in force's own problems, when the one the journal holds no
    /// longer fits the site file (then the file's config is in force).
    config_problems: Vec<String>,
    pending: Option<Pending>,
    /// The last document refused in this run, until one is applied.
    refused: Option<RefusedReport>,
}

fn corrupt(what: &str, version: u64, e: &DocumentRefusal) -> KioskError {
    KioskError::Journal(JournalError::Corrupt(format!(
        "the {what} in force (version {version}) cannot be read: {e}"
    )))
}

/// The `config` of a verified configuration document, laid over the site file.
fn config_of(file: &Config, doc: &Document) -> Result<(RemoteConfig, Config), DocumentRefusal> {
    let claims: ConfigClaims = serde_json::from_slice(&doc.claims).map_err(|e| {
        doc.refuse(
            DocumentReason::Malformed,
            format!("bad claims: {e}"),
            Vec::new(),
        )
    })?;
    let named = |problems: Vec<crate::config::Problem>| {
        problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
    };
    let remote = RemoteConfig::parse(&claims.config).map_err(|p| {
        doc.refuse(
            DocumentReason::Invalid,
            "the configuration sets what a document may not",
            named(p),
        )
    })?;
    let cfg = file.with_remote(&remote).map_err(|p| {
        doc.refuse(
            DocumentReason::Invalid,
            "the configuration breaks the rules",
            named(p),
        )
    })?;
    Ok((remote, cfg))
}

impl Documents {
    /// The documents in force at start, and the config in force: the site file's with
    /// the journal's configuration laid over it (the file's alone when that no longer
    /// fits the file, with its problems reported).
    pub(super) fn open(file: Config, journal: &Journal) -> Result<(Documents, Config), KioskError> {
        let mut docs = Documents {
            keys: file.trusted_keys()?,
            keys_doc: InForceReport::default(),
            file: file.clone(),
            config_doc: InForceReport::default(),
            config_problems: Vec::new(),
            pending: None,
            refused: None,
        };
        if let Some(stored) = journal.document(KIND_KEYS)? {
            docs.keys_doc = of_journal(&stored);
            if let Some(token) = &stored.token {
                // Checked when it was accepted; unreadable now means the journal changed
                // under us, and falling back to the file could bring back a removed key.
                let set = protocol::key_set_from_journal(token)
                    .map_err(|e| corrupt("key set", stored.version, &e))?;
                docs.keys = set.keys;
            }
            info!(version = stored.version, "keys in force from the journal");
        }
        let mut cfg = file;
        if let Some(stored) = journal.document(KIND_CONFIG)? {
            docs.config_doc = of_journal(&stored);
            if let Some(token) = &stored.token {
                let doc = Document::from_journal(token)
                    .map_err(|e| corrupt("configuration", stored.version, &e))?;
                match config_of(&docs.file, &doc) {
                    Ok((_, c)) => cfg = c,
                    Err(e) => {
                        warn!(version = stored.version, problems = ?e.problems, "the configuration in force no longer fits the site file: the file's is in force until a new one comes");
                        docs.config_problems = e.problems;
                    }
                }
            }
            info!(
                version = stored.version,
                "configuration in force from the journal"
            );
        }
        Ok((docs, cfg))
    }

    /// The version of the configuration in force (0: the site file's).
    pub(super) fn config_version(&self) -> u64 {
        self.config_doc.version
    }

    /// Whether the slot map in force is an operator's rather than the site file's.
    pub(super) fn remote_slot_map(&self, cfg: &Config) -> bool {
        cfg.slots != self.file.slots
    }

    /// The `reported` message.
    pub(super) fn report(&self, machine_code: &str, boot_id: &str) -> Reported {
        Reported {
            v: PROTOCOL_VERSION,
            machine_code: machine_code.to_owned(),
            boot_id: boot_id.to_owned(),
            at: now_ms(),
            keys: KeysReport {
                in_force: self.keys_doc.clone(),
                dispense: self.keys.kids_with(KeyRole::Dispense),
                operator: self.keys.kids_with(KeyRole::Operator),
            },
            config: ConfigReport {
                in_force: self.config_doc.clone(),
                pending: self.pending.as_ref().map(|p| p.doc.version),
                problems: self.config_problems.clone(),
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

fn sha_of(payload: &[u8]) -> String {
    std::str::from_utf8(payload)
        .map(|t| protocol::document_sha256(t.trim_ascii()))
        .unwrap_or_default()
}

impl<L: Link> Runner<L> {
    /// A zero-byte message on `desired/keys` or `desired/config` is the broker's retained
    /// copy being cleared (an operator taking back a document, as `cabinet keys rotate` and
    /// `config push` do after a refusal; anything else, whitespace too, is a document and
    /// stays retained). It is no document: nothing is refused, nothing changes, nothing is
    /// reported; the journal holds what is in force.
    pub(super) async fn on_cleared(&mut self, inc: Incoming) -> Result<(), KioskError> {
        info!(topic = %inc.topic, "the broker's retained document was cleared: what is in force stays");
        stopped_is_not_an_error(self.link.ack(inc.ack).await)
    }

    /// A key set arrived on `desired/keys`: verify, journal with its audit row, apply,
    /// ack, report. A refused one changes nothing and is reported with its reason.
    pub(super) async fn on_key_set(&mut self, inc: Incoming) -> Result<(), KioskError> {
        let sha256 = sha_of(&inc.payload);
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
            in_force(&self.docs.keys_doc),
        );
        match verdict {
            Ok(KeySetVerdict::InForce) => {
                info!(
                    version = self.docs.keys_doc.version,
                    "key set already in force"
                );
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
                self.queue_audit(&actor, "keys_applied", detail);
                self.docs.keys_doc = signed(set.version, &set.sha256, &set.signed_by);
                self.docs.keys = set.keys;
                self.docs.refused = None;
            }
            Err(refusal) => {
                warn!(reason = refusal.reason.code(), detail = %refusal.detail, problems = ?refusal.problems, version = ?refusal.version, bytes = payload.len(), "key set refused");
                self.docs.refused = Some(refused_report(KIND_KEYS, refusal, sha256));
            }
        }
        Ok(())
    }

    /// A configuration arrived on `desired/config`: verify it, lay it over the site file
    /// and validate the whole; a good one waits for the cabinet to be between customers
    /// (often that is now), a bad one changes nothing and is reported with its problems.
    pub(super) async fn on_config(&mut self, inc: Incoming) -> Result<(), KioskError> {
        let sha256 = sha_of(&inc.payload);
        let span = info_span!("document", kind = KIND_CONFIG, sha256 = %sha256);
        span.in_scope(|| self.take_config(&inc.payload, sha256));
        stopped_is_not_an_error(self.link.ack(inc.ack).await)?;
        if !self.apply_pending_config().await? {
            // Waiting (or refused): say so now; an applied one reports itself.
            self.send_reported().await?;
        }
        Ok(())
    }

    fn take_config(&mut self, payload: &[u8], sha256: String) {
        let verdict = protocol::verify_document(
            payload,
            &self.docs.keys,
            &self.cfg.machine_code,
            KIND_CONFIG,
            MAX_CONFIG_BYTES,
            in_force(&self.docs.config_doc),
        );
        let doc = match verdict {
            Ok(DocumentVerdict::InForce) => {
                info!(
                    version = self.docs.config_doc.version,
                    "configuration already in force"
                );
                return;
            }
            Ok(DocumentVerdict::New(doc)) => doc,
            Err(refusal) => {
                warn!(reason = refusal.reason.code(), detail = %refusal.detail, version = ?refusal.version, bytes = payload.len(), "configuration refused");
                self.docs.refused = Some(refused_report(KIND_CONFIG, refusal, sha256));
                return;
            }
        };
        if self
            .docs
            .pending
            .as_ref()
            .is_some_and(|p| p.doc.version >= doc.version)
        {
            let waiting = self.docs.pending.as_ref().map_or(0, |p| p.doc.version);
            let refusal = doc.refuse(
                DocumentReason::StaleVersion,
                format!(
                    "version {} is not above version {waiting}, which waits to come into force",
                    doc.version
                ),
                Vec::new(),
            );
            warn!(reason = refusal.reason.code(), detail = %refusal.detail, "configuration refused");
            self.docs.refused = Some(refused_report(KIND_CONFIG, refusal, sha256));
            return;
        }
        match config_of(&self.docs.file, &doc) {
            Ok((remote, cfg)) => {
                info!(version = doc.version, signed_by = %doc.signed_by, sets = %remote.describe(), "configuration accepted: it comes into force between customers");
                self.docs.pending = Some(Pending {
                    doc: *doc,
                    remote,
                    cfg,
                });
            }
            Err(refusal) => {
                warn!(reason = refusal.reason.code(), detail = %refusal.detail, problems = ?refusal.problems, version = ?refusal.version, "configuration refused");
                self.docs.refused = Some(refused_report(KIND_CONFIG, refusal, sha256));
            }
        }
    }

    /// Puts the waiting configuration in force if the cabinet is between customers:
    /// journaled with its slot map and audit row in one transaction, then the engine, the
    /// board's routes and the screen. Returns whether it did (and reported it).
    pub(super) async fn apply_pending_config(&mut self) -> Result<bool, KioskError> {
        if self.docs.pending.is_none()
            || self.desk.technician().is_some()
            || !self.engine.between_customers()
        {
            return Ok(false);
        }
        let Some(Pending { doc, remote, cfg }) = self.docs.pending.take() else {
            return Ok(false);
        };
        let span = info_span!("document", kind = KIND_CONFIG, version = doc.version);
        let _g = span.enter();
        if !cfg.boards.is_empty()
            && let Err(e) = self.board.board.set_routes(super::board::slot_routes(&cfg))
        {
            // The board refused the new wiring (validated already, so a bug): keep the old.
            warn!(error = %e, "the board refused the new slot map: the configuration is not applied");
            self.docs.refused = Some(refused_report(
                KIND_CONFIG,
                doc.refuse(DocumentReason::Invalid, e.to_string(), Vec::new()),
                doc.sha256.clone(),
            ));
            drop(_g);
            self.send_reported().await?;
            return Ok(true);
        }
        let detail = format!("version {}: {}", doc.version, remote.describe());
        let actor = format!("operator:{}", doc.signed_by);
        let (slot_map, _) = cfg.inventory_slot_map();
        let slots = self.journal.put_document_with_slots(
            &DocumentChange {
                kind: KIND_CONFIG,
                version: doc.version,
                sha256: Some(&doc.sha256),
                token: Some(&doc.token),
                by: &doc.signed_by,
                actor: &actor,
                action: "config_applied",
                detail: &detail,
            },
            Some(&slot_map),
        )?;
        info!(signed_by = %doc.signed_by, sets = %remote.describe(), added = ?slots.added, changed = ?slots.changed, removed = ?slots.removed, "configuration in force");
        self.queue_audit(&actor, "config_applied", detail);
        self.docs.config_doc = signed(doc.version, &doc.sha256, &doc.signed_by);
        self.docs.config_problems.clear();
        self.docs.refused = None;
        let ecfg = engine_config(&cfg, &self.boot_id, doc.version);
        self.cfg = cfg;
        let inventory = self.journal.inventory()?;
        drop(_g);
        let actions = self.engine.reconfigure(ecfg, inventory, now_ms());
        self.exec(actions, None).await?;
        self.send_reported().await?;
        Ok(true)
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
