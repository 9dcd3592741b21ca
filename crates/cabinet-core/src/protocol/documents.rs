//! The cabinet's signed documents: the key set it trusts and the configuration an
//! operator changes remotely.
//!
//! A document is a compact JWS like a command (the same `alg`, the same parser), but
//! signed by an **operator** key, with no `exp`: it stays in force until a document with
//! a higher `version` replaces it. The backend publishes it retained on
//! `cabinet/v1/{machine_code}/desired/{kind}`, so a cabinet that was off gets the latest
//! one when it connects; the broker hands the same document again on every connection,
//! so a document already in force is recognised by its version and hash, not applied
//! twice. A version at or below the one in force is refused: a replay of an old key set
//! cannot bring back a key the operator removed.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::reason::Reason;

use super::keys::check_kid;
use super::verify::{check_signature, parse_compact, sign_compact};
use super::{KeyRole, ProtocolError, SigningKey, TrustedKeys};

/// The `kind` of a key set document.
pub const KIND_KEYS: &str = "keys";

/// The `kind` of a configuration document.
pub const KIND_CONFIG: &str = "config";

/// The largest configuration document accepted, in bytes: the shipped broker's message
/// limit (deploy/mosquitto/mosquitto.conf), room for a slot map of some 500 slots.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// The most keys a key set may list: a rotation needs two of each role at a time;
/// sixteen leaves room for several backends without making the set a memory hazard.
pub const MAX_KEYS_IN_SET: usize = 16;

/// The largest key set document accepted, in bytes: sixteen keys with 128-character kids
/// fit in about 6 KiB of JWS.
pub const MAX_KEY_SET_BYTES: usize = 16 * 1024;

/// Why a document was refused: the wire codes of `reported.refused.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentReason {
    /// Larger than the cabinet accepts for this kind; not parsed.
    Oversize,
    /// Not a compact JWS, or claims of the wrong shape.
    Malformed,
    /// `alg` is not `EdDSA`.
    UnsupportedAlgorithm,
    /// `kid` names no trusted key.
    UnknownKey,
    /// `kid` names a trusted key without the operator role (a dispense key).
    KeyNotAllowed,
    /// The signature does not verify.
    BadSignature,
    /// The claims' `kind` is not the topic's (a config signed as a key set, say).
    WrongKind,
    /// `aud` names another cabinet.
    WrongTarget,
    /// `version` is not above the one in force (a replay or a rollback), or reuses it
    /// for another content.
    StaleVersion,
    /// Signed and current, but its content breaks a rule (`problems` says which).
    Invalid,
}

impl DocumentReason {
    /// Every reason, in declaration order (docs/schema/reported.schema.json lists them).
    pub const ALL: [DocumentReason; 10] = [
        DocumentReason::Oversize,
        DocumentReason::Malformed,
        DocumentReason::UnsupportedAlgorithm,
        DocumentReason::UnknownKey,
        DocumentReason::KeyNotAllowed,
        DocumentReason::BadSignature,
        DocumentReason::WrongKind,
        DocumentReason::WrongTarget,
        DocumentReason::StaleVersion,
        DocumentReason::Invalid,
    ];

    /// The wire code.
    pub fn code(self) -> &'static str {
        match self {
            DocumentReason::Oversize => "oversize",
            DocumentReason::Malformed => "malformed",
            DocumentReason::UnsupportedAlgorithm => "unsupported_algorithm",
            DocumentReason::UnknownKey => "unknown_key",
            DocumentReason::KeyNotAllowed => "key_not_allowed",
            DocumentReason::BadSignature => "bad_signature",
            DocumentReason::WrongKind => "wrong_kind",
            DocumentReason::WrongTarget => "wrong_target",
            DocumentReason::StaleVersion => "stale_version",
            DocumentReason::Invalid => "invalid",
        }
    }

    fn of(reason: Reason) -> DocumentReason {
        match reason {
            Reason::Oversize => DocumentReason::Oversize,
            Reason::UnsupportedAlgorithm => DocumentReason::UnsupportedAlgorithm,
            Reason::UnknownKey => DocumentReason::UnknownKey,
            Reason::KeyNotAllowed => DocumentReason::KeyNotAllowed,
            Reason::BadSignature => DocumentReason::BadSignature,
            _ => DocumentReason::Malformed,
        }
    }
}

impl std::fmt::Display for DocumentReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A refused document: why, a short detail for the log, every rule it broke, and its
/// version when the claims could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct DocumentRefusal {
    /// The code reported back.
    pub reason: DocumentReason,
    /// One line for the log and the report.
    pub detail: String,
    /// With `invalid`: each rule broken, naming its field.
    pub problems: Vec<String>,
    /// The document's `version`, once its signature verified and its claims parsed.
    pub version: Option<u64>,
    /// The kid that signed it, once its signature verified.
    pub signed_by: Option<String>,
}

impl DocumentRefusal {
    fn new(reason: DocumentReason, detail: impl Into<String>) -> DocumentRefusal {
        DocumentRefusal {
            reason,
            detail: detail.into(),
            problems: Vec::new(),
            version: None,
            signed_by: None,
        }
    }
}

/// One key of a key set: its name, its public key and what it may sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The `kid` tokens name it by: 1..=128 of `[A-Za-z0-9._-]`.
    pub kid: String,
    /// base64url (no padding) of the raw 32-byte Ed25519 public key (a JWK's `x`).
    pub x: String,
    /// `dispense`, `operator` or both.
    pub roles: Vec<KeyRole>,
}

/// The claims of a key set document, as the operator signs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySetClaims {
    /// Always `keys`.
    pub kind: String,
    /// The cabinet it is for.
    pub aud: String,
    /// Issued at, unix seconds (informational: a document has no expiry).
    pub iat: i64,
    /// Only goes up, per cabinet; the cabinet refuses any version at or below the one in
    /// force.
    pub version: u64,
    /// The whole set: keys not listed are no longer trusted once it is applied.
    pub keys: Vec<KeyEntry>,
}

/// A key set that passed every check of [`verify_key_set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    /// Its version.
    pub version: u64,
    /// The keys it trusts.
    pub keys: TrustedKeys,
    /// The operator kid that signed it.
    pub signed_by: String,
    /// `iat`.
    pub issued_at: i64,
    /// Hex SHA-256 of the token as received (trimmed): what `reported` names it by.
    pub sha256: String,
    /// The token itself, kept in the journal.
    pub token: String,
}

/// What is in force now, as a new document is compared against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InForce<'a> {
    /// Its version (0 for what the config file says).
    pub version: u64,
    /// Its hash (`None` for what the config file says).
    pub sha256: Option<&'a str>,
}

/// What a key set document turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySetVerdict {
    /// A new key set, to be journaled and applied.
    New(Box<KeySet>),
    /// The very document in force (the broker's retained copy, again on a reconnect).
    InForce,
}

/// A document whose signature, kind, target and version passed: its content is still
/// to be checked by whoever knows its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its version.
    pub version: u64,
    /// The operator kid that signed it.
    pub signed_by: String,
    /// `iat`.
    pub issued_at: i64,
    /// Hex SHA-256 of the token as received (trimmed).
    pub sha256: String,
    /// The token itself, kept in the journal.
    pub token: String,
    /// The decoded claims (JSON), for the kind's own parser.
    pub claims: Vec<u8>,
}

/// What a signed document turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentVerdict {
    /// A new document of its kind, its content still to be checked.
    New(Box<Document>),
    /// The very document in force.
    InForce,
}

/// The claims every document carries.
#[derive(Deserialize)]
struct Envelope {
    kind: String,
    aud: String,
    iat: i64,
    version: u64,
}

/// Hex SHA-256 of a document as the cabinet names it.
pub fn document_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The checks every document passes before its content is read, in this order: size
/// (`oversize`); a compact JWS (`malformed`) with `alg` EdDSA (`unsupported_algorithm`);
/// `kid` trusted (`unknown_key`) **as an operator key** (`key_not_allowed`); the signature
/// (`bad_signature`); `kind`, `aud`, `iat` and `version` present (`malformed`); `kind` is
/// `kind` (`wrong_kind`); `aud` (`wrong_target`); `version` above the one in force
/// (`stale_version`; the same version with the same hash is
/// [`DocumentVerdict::InForce`]).
pub fn verify_document(
    token: &[u8],
    trusted: &TrustedKeys,
    machine_code: &str,
    kind: &str,
    max_bytes: usize,
    in_force: InForce<'_>,
) -> Result<DocumentVerdict, DocumentRefusal> {
    if token.len() > max_bytes {
        return Err(DocumentRefusal::new(
            DocumentReason::Oversize,
            format!(
                "{} bytes, a {kind} document may have at most {max_bytes}",
                token.len()
            ),
        ));
    }
    let text = std::str::from_utf8(token)
        .map_err(|_| DocumentRefusal::new(DocumentReason::Malformed, "not UTF-8"))?
        .trim_ascii();
    let sha256 = document_sha256(text);
    let (kid, payload) = verify_operator_signature(text, trusted)?;
    let env: Envelope = serde_json::from_slice(&payload).map_err(|e| DocumentRefusal {
        signed_by: Some(kid.clone()),
        ..DocumentRefusal::new(DocumentReason::Malformed, format!("bad claims: {e}"))
    })?;
    let refuse = |reason, detail: String| DocumentRefusal {
        version: Some(env.version),
        signed_by: Some(kid.clone()),
        ..DocumentRefusal::new(reason, detail)
    };
    if env.kind != kind {
        return Err(refuse(
            DocumentReason::WrongKind,
            format!("kind is {:?}, this topic takes {kind:?}", short(&env.kind)),
        ));
    }
    if env.aud != machine_code {
        return Err(refuse(
            DocumentReason::WrongTarget,
            format!(
                "aud is {:?}, this cabinet is {machine_code:?}",
                short(&env.aud)
            ),
        ));
    }
    if env.version == in_force.version && in_force.sha256 == Some(sha256.as_str()) {
        return Ok(DocumentVerdict::InForce);
    }
    if env.version <= in_force.version {
        return Err(refuse(
            DocumentReason::StaleVersion,
            format!(
                "version {} is not above the version in force, {}",
                env.version, in_force.version
            ),
        ));
    }
    Ok(DocumentVerdict::New(Box::new(Document {
        version: env.version,
        signed_by: kid,
        issued_at: env.iat,
        sha256,
        token: text.to_owned(),
        claims: payload,
    })))
}

impl Document {
    /// A refusal of this document's content.
    pub fn refuse(
        &self,
        reason: DocumentReason,
        detail: impl Into<String>,
        problems: Vec<String>,
    ) -> DocumentRefusal {
        DocumentRefusal {
            problems,
            version: Some(self.version),
            signed_by: Some(self.signed_by.clone()),
            ..DocumentRefusal::new(reason, detail)
        }
    }

    /// Reads back a document the journal accepted earlier (its signature was checked then,
    /// against the keys in force at the time, which may since have been rotated away).
    pub fn from_journal(token: &str) -> Result<Document, DocumentRefusal> {
        let compact = parse_compact(token)
            .map_err(|r| DocumentRefusal::new(DocumentReason::of(r.reason), r.detail))?;
        let kid = compact.kid().unwrap_or_default().to_owned();
        let payload = URL_SAFE_NO_PAD.decode(compact.payload_b64).map_err(|_| {
            DocumentRefusal::new(DocumentReason::Malformed, "payload is not base64url")
        })?;
        let env: Envelope = serde_json::from_slice(&payload).map_err(|e| {
            DocumentRefusal::new(DocumentReason::Malformed, format!("bad claims: {e}"))
        })?;
        Ok(Document {
            version: env.version,
            signed_by: kid,
            issued_at: env.iat,
            sha256: document_sha256(token),
            token: token.to_owned(),
            claims: payload,
        })
    }
}

/// Decides whether a key set document may replace the keys in force: the checks of
/// [`verify_document`] (kind `keys`, at most [`MAX_KEY_SET_BYTES`]), then the set's shape
/// (`malformed`: an unknown role, a missing field) and rules (`invalid`: every problem
/// named — valid keys, unique kids, roles given, at least one dispense key and one
/// operator key, at most [`MAX_KEYS_IN_SET`]).
pub fn verify_key_set(
    token: &[u8],
    trusted: &TrustedKeys,
    machine_code: &str,
    in_force: InForce<'_>,
) -> Result<KeySetVerdict, DocumentRefusal> {
    let doc = match verify_document(
        token,
        trusted,
        machine_code,
        KIND_KEYS,
        MAX_KEY_SET_BYTES,
        in_force,
    )? {
        DocumentVerdict::InForce => return Ok(KeySetVerdict::InForce),
        DocumentVerdict::New(doc) => doc,
    };
    key_set_of(&doc).map(|set| KeySetVerdict::New(Box::new(set)))
}

/// The key set a verified document carries.
fn key_set_of(doc: &Document) -> Result<KeySet, DocumentRefusal> {
    let claims: KeySetClaims = serde_json::from_slice(&doc.claims).map_err(|e| {
        doc.refuse(
            DocumentReason::Malformed,
            format!("bad claims: {e}"),
            Vec::new(),
        )
    })?;
    let keys = key_set_rules(&claims.keys).map_err(|problems| {
        doc.refuse(
            DocumentReason::Invalid,
            "the key set breaks the rules",
            problems,
        )
    })?;
    Ok(KeySet {
        version: doc.version,
        keys,
        signed_by: doc.signed_by.clone(),
        issued_at: doc.issued_at,
        sha256: doc.sha256.clone(),
        token: doc.token.clone(),
    })
}

/// Reads back a key set the journal accepted earlier (its signature was checked then,
/// against the keys in force at the time, which may since have been rotated away).
pub fn key_set_from_journal(token: &str) -> Result<KeySet, DocumentRefusal> {
    key_set_of(&Document::from_journal(token)?)
}

/// The JWS checks every document shares, up to and including the signature: returns the
/// signing kid and the decoded payload.
fn verify_operator_signature(
    text: &str,
    trusted: &TrustedKeys,
) -> Result<(String, Vec<u8>), DocumentRefusal> {
    let compact = parse_compact(text)
        .map_err(|r| DocumentRefusal::new(DocumentReason::of(r.reason), r.detail))?;
    let kid = compact
        .kid()
        .ok_or_else(|| DocumentRefusal::new(DocumentReason::UnknownKey, "JWS header has no kid"))?
        .to_owned();
    let key = trusted.get(&kid).ok_or_else(|| {
        DocumentRefusal::new(
            DocumentReason::UnknownKey,
            format!("kid {:?} is not trusted", short(&kid)),
        )
    })?;
    if !key.roles.contains(&KeyRole::Operator) {
        return Err(DocumentRefusal::new(
            DocumentReason::KeyNotAllowed,
            format!(
                "kid {:?} is not an operator key: only an operator key signs documents",
                short(&kid)
            ),
        ));
    }
    check_signature(&compact, &key.key)
        .map_err(|r| DocumentRefusal::new(DocumentReason::of(r.reason), r.detail))?;
    let payload = URL_SAFE_NO_PAD
        .decode(compact.payload_b64)
        .map_err(|_| DocumentRefusal::new(DocumentReason::Malformed, "payload is not base64url"))?;
    Ok((kid, payload))
}

/// The rules of a key set's content, every broken one named by its field.
fn key_set_rules(entries: &[KeyEntry]) -> Result<TrustedKeys, Vec<String>> {
    let mut problems = Vec::new();
    let mut keys = TrustedKeys::new();
    let mut seen = BTreeSet::new();
    if entries.len() > MAX_KEYS_IN_SET {
        problems.push(format!(
            "keys: {} keys, at most {MAX_KEYS_IN_SET}",
            entries.len()
        ));
    }
    for (i, e) in entries.iter().enumerate() {
        let field = format!("keys[{i}]");
        if check_kid(&e.kid).is_err() {
            problems.push(format!(
                "{field}.kid: must be 1..=128 characters of [A-Za-z0-9._-]"
            ));
            continue;
        }
        if !seen.insert(e.kid.as_str()) {
            problems.push(format!("{field}.kid: {:?} is listed twice", e.kid));
            continue;
        }
        if e.roles.is_empty() {
            problems.push(format!(
                "{field}.roles: at least one of \"dispense\", \"operator\""
            ));
        }
        for role in &e.roles {
            if let Err(err) = keys.insert_with_role(&e.kid, &e.x, *role) {
                problems.push(format!("{field}.x: {err}"));
                break;
            }
        }
    }
    for role in KeyRole::ALL {
        if problems.is_empty() && keys.kids_with(role).is_empty() {
            problems.push(format!(
                "keys: no {} key: {}",
                role.code(),
                match role {
                    KeyRole::Dispense => "the cabinet would refuse every order",
                    KeyRole::Operator => "the cabinet could never be given keys again",
                }
            ));
        }
    }
    if problems.is_empty() {
        Ok(keys)
    } else {
        Err(problems)
    }
}

/// Signs a document's claims with an operator key: a compact JWS with header
/// `{"alg":"EdDSA","typ":"JWT","kid":kid}` (what `cabinet keys rotate` publishes).
pub fn sign_document(
    claims: &impl Serialize,
    key: &SigningKey,
    kid: &str,
) -> Result<String, ProtocolError> {
    sign_compact(claims, key, kid)
}

/// Keeps attacker-chosen strings short in details.
fn short(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::super::{CommandClaims, VerifyOptions, public_key_base64url, verify_command};
    use super::*;

    const ME: &str = "GZ-0001";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// The file's keys: `sales-1` (seed 1) signs commands, `ops-1` (seed 9) documents.
    fn file_keys() -> TrustedKeys {
        let mut k = TrustedKeys::new();
        k.insert_signing_key_public("sales-1", &key(1)).unwrap();
        k.insert_signing_key_with_role("ops-1", &key(9), KeyRole::Operator)
            .unwrap();
        k
    }

    fn entry(kid: &str, seed: u8, roles: &[KeyRole]) -> KeyEntry {
        KeyEntry {
            kid: kid.into(),
            x: public_key_base64url(&key(seed)),
            roles: roles.to_vec(),
        }
    }

    /// Version `version`: `sales-2` (seed 2) for commands, `ops-1` kept.
    fn rotation(version: u64) -> KeySetClaims {
        KeySetClaims {
            kind: KIND_KEYS.into(),
            aud: ME.into(),
            iat: 1_750_000_000,
            version,
            keys: vec![
                entry("sales-2", 2, &[KeyRole::Dispense]),
                entry("ops-1", 9, &[KeyRole::Operator]),
            ],
        }
    }

    fn file() -> InForce<'static> {
        InForce {
            version: 0,
            sha256: None,
        }
    }

    fn check(token: &str, in_force: InForce<'_>) -> Result<KeySetVerdict, DocumentRefusal> {
        verify_key_set(token.as_bytes(), &file_keys(), ME, in_force)
    }

    fn refused(token: &str, in_force: InForce<'_>) -> DocumentRefusal {
        check(token, in_force).expect_err("must be refused")
    }

    fn new_set(v: KeySetVerdict) -> KeySet {
        match v {
            KeySetVerdict::New(set) => *set,
            KeySetVerdict::InForce => panic!("expected a new key set"),
        }
    }

    fn command_signed_by(seed: u8, kid: &str) -> String {
        let claims = CommandClaims {
            aud: ME.into(),
            jti: "c-1".into(),
            iat: 1_750_000_000,
            exp: 1_750_000_060,
            kind: "dispense".into(),
            slot: 1,
            qty: 1,
            order_id: "o-1".into(),
            log_id: "l-1".into(),
            session: None,
            count: None,
        };
        super::super::sign_command(&claims, &key(seed), kid).unwrap()
    }

    #[test]
    fn an_operator_signed_rotation_replaces_the_keys() {
        let token = sign_document(&rotation(1), &key(9), "ops-1").unwrap();
        let set = new_set(check(&token, file()).unwrap());
        assert_eq!(set.version, 1);
        assert_eq!(set.signed_by, "ops-1");
        assert_eq!(set.keys.kids_with(KeyRole::Dispense), ["sales-2"]);
        assert_eq!(set.keys.kids_with(KeyRole::Operator), ["ops-1"]);
        assert_eq!(set.sha256, document_sha256(&token));
        // The new key signs dispenses, the old one is gone, the operator key may not.
        let opts = VerifyOptions::default();
        let now = 1_750_000_010;
        assert!(
            verify_command(
                command_signed_by(2, "sales-2").as_bytes(),
                &set.keys,
                ME,
                now,
                &opts
            )
            .is_ok()
        );
        let old = verify_command(
            command_signed_by(1, "sales-1").as_bytes(),
            &set.keys,
            ME,
            now,
            &opts,
        );
        assert_eq!(old.unwrap_err().reason, Reason::UnknownKey);
        let op = verify_command(
            command_signed_by(9, "ops-1").as_bytes(),
            &set.keys,
            ME,
            now,
            &opts,
        );
        assert_eq!(op.unwrap_err().reason, Reason::KeyNotAllowed);
        // What the journal keeps reads back as the same set.
        assert_eq!(key_set_from_journal(&set.token).unwrap(), set);
    }

    #[test]
    fn a_key_set_signed_by_a_dispense_key_or_a_stranger_is_refused() {
        let by_sales = sign_document(&rotation(1), &key(1), "sales-1").unwrap();
        assert_eq!(
            refused(&by_sales, file()).reason,
            DocumentReason::KeyNotAllowed
        );
        let by_stranger = sign_document(&rotation(1), &key(7), "ops-7").unwrap();
        assert_eq!(
            refused(&by_stranger, file()).reason,
            DocumentReason::UnknownKey
        );
        let forged = sign_document(&rotation(1), &key(7), "ops-1").unwrap();
        assert_eq!(
            refused(&forged, file()).reason,
            DocumentReason::BadSignature
        );
    }

    #[test]
    fn versions_only_go_up_and_the_document_in_force_is_recognised() {
        let v3 = sign_document(&rotation(3), &key(9), "ops-1").unwrap();
        let sha = document_sha256(&v3);
        let now = InForce {
            version: 3,
            sha256: Some(&sha),
        };
        assert_eq!(check(&v3, now).unwrap(), KeySetVerdict::InForce);
        // The same version with other content, an older one: refused with their version.
        let mut other = rotation(3);
        other.iat += 1;
        let other = sign_document(&other, &key(9), "ops-1").unwrap();
        let r = refused(&other, now);
        assert_eq!(
            (r.reason, r.version),
            (DocumentReason::StaleVersion, Some(3))
        );
        let v2 = sign_document(&rotation(2), &key(9), "ops-1").unwrap();
        assert_eq!(refused(&v2, now).reason, DocumentReason::StaleVersion);
        assert!(check(&sign_document(&rotation(4), &key(9), "ops-1").unwrap(), now).is_ok());
    }

    #[test]
    fn another_cabinets_or_another_kinds_document_is_refused() {
        let mut c = rotation(1);
        c.aud = "GZ-0002".into();
        let t = sign_document(&c, &key(9), "ops-1").unwrap();
        assert_eq!(refused(&t, file()).reason, DocumentReason::WrongTarget);
        let mut c = rotation(1);
        c.kind = "config".into();
        let t = sign_document(&c, &key(9), "ops-1").unwrap();
        assert_eq!(refused(&t, file()).reason, DocumentReason::WrongKind);
        // A dispense command on the keys topic, even signed by the operator key.
        let t = command_signed_by(9, "ops-1");
        assert_eq!(refused(&t, file()).reason, DocumentReason::Malformed);
    }

    #[test]
    fn a_set_that_would_lock_the_cabinet_out_is_refused_with_every_problem() {
        let mut c = rotation(1);
        c.keys = vec![entry("sales-2", 2, &[KeyRole::Dispense])];
        let r = refused(&sign_document(&c, &key(9), "ops-1").unwrap(), file());
        assert_eq!(r.reason, DocumentReason::Invalid);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(
            r.problems[0].contains("no operator key"),
            "{:?}",
            r.problems
        );

        c.keys = vec![
            entry("ops-1", 9, &[KeyRole::Operator]),
            entry("ops-1", 9, &[KeyRole::Dispense]),
            entry("bad kid", 2, &[KeyRole::Dispense]),
            entry("sales-3", 3, &[]),
            KeyEntry {
                kid: "sales-4".into(),
                x: "AAAA".into(),
                roles: vec![KeyRole::Dispense],
            },
        ];
        let r = refused(&sign_document(&c, &key(9), "ops-1").unwrap(), file());
        let fields: Vec<&str> = r
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            fields,
            ["keys[1].kid", "keys[2].kid", "keys[3].roles", "keys[4].x"],
            "{:?}",
            r.problems
        );

        c.keys = (0..=MAX_KEYS_IN_SET as u8)
            .map(|i| entry(&format!("k{i}"), i + 20, &KeyRole::ALL))
            .collect();
        let r = refused(&sign_document(&c, &key(9), "ops-1").unwrap(), file());
        assert!(
            r.problems[0].starts_with("keys: 17 keys"),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn an_unknown_role_or_a_huge_document_is_refused_before_it_is_used() {
        let t = sign_document(
            &serde_json::json!({"kind": "keys", "aud": ME, "iat": 1, "version": 1,
                "keys": [{"kid": "x", "x": "y", "roles": ["root"]}]}),
            &key(9),
            "ops-1",
        )
        .unwrap();
        let r = refused(&t, file());
        assert_eq!(r.reason, DocumentReason::Malformed);
        assert!(r.detail.contains("root"), "{}", r.detail);
        let huge = "a".repeat(MAX_KEY_SET_BYTES + 1);
        assert_eq!(refused(&huge, file()).reason, DocumentReason::Oversize);
        assert_eq!(
            refused("not a jws", file()).reason,
            DocumentReason::Malformed
        );
    }
}
