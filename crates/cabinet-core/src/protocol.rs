//! The MQTT contract with the backend: topics, signed commands, replies, presence and
//! telemetry (written out for backend developers in docs/PROTOCOL.md).
//!
//! This module owns the *meaning* of bytes on the wire and nothing else: no sockets,
//! no clock (callers pass `now`), no journal. The one entry point that decides whether a
//! command may be trusted is [`verify_command`].
//!
//! ## Why a hand-rolled compact JWS instead of the `jsonwebtoken` crate
//!
//! A command is an RFC 7515 compact JWS (`header.payload.signature`, base64url without
//! padding) signed with EdDSA/Ed25519 (RFC 8037), so any backend JWT library can produce
//! it. On the cabinet we verify it with `base64` + `ed25519-dalek` directly because:
//!
//! - the checks must run in a fixed order with one [`Reason`] per failure (size → parse
//!   → `alg` → `kid` → signature → `aud` → `exp`/`iat` → `kind`/`slot`/`qty`), and a
//!   rejection after the signature verified must still hand back the trusted IDs so the
//!   rejected reply carries `cmd_id`/`log_id`. `jsonwebtoken` folds signature, expiry
//!   and audience into one call with its own error kinds and its own order;
//! - only one algorithm is ever accepted, so algorithm negotiation is pure attack
//!   surface (the `alg: none` / HS256-with-public-key family of bugs); here the only
//!   code path is `alg == "EdDSA"` → `verify_strict`;
//! - `jsonwebtoken`'s `rust_crypto` backend brings RSA and P-256 code the cabinet never
//!   uses. The whole parser below is ~80 lines and is fuzzed by the proptests at the end.
//!
//! `verify_strict` (not `verify`) is used so weak public keys and non-canonical
//! signatures are rejected, which keeps a signature from having two valid encodings.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde::{Deserialize, Serialize};

pub use ed25519_dalek::SigningKey;

use crate::reason::Reason;

/// First topic levels, versioned so a v2 contract can live beside v1 on one broker.
pub const TOPIC_PREFIX: &str = "cabinet/v1";

/// Protocol version carried in every JSON message as `v`.
pub const PROTOCOL_VERSION: u8 = 1;

/// The only JWS `alg` accepted (RFC 8037 §3.1).
pub const JWS_ALG: &str = "EdDSA";

/// The only command kind understood today.
pub const KIND_DISPENSE: &str = "dispense";

/// Longest accepted ID (`jti`, `log_id`, `order_id`, `session`, `kid`), in characters
/// (Unicode scalar values, what PROTOCOL.md and the JSON schemas count; `kid` is ASCII,
/// so there characters and bytes agree). IDs go into logs, SQLite and replies; an
/// unbounded ID is a memory and log hazard. A backend that uses CJK order numbers gets
/// the same 128 as one that uses ASCII (at most 512 bytes of UTF-8 per ID).
pub const MAX_ID_LEN: usize = 128;

/// Errors building protocol values from local input (not from the network: network
/// input is judged by [`verify_command`] and yields a [`Rejection`]).
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

/// Errors about keys: decoding configured keys, loading or generating signing keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not base64url without padding (the JWK encoding).
    #[error("not base64url without padding (the encoding of a JWK's `x`/`d`)")]
    NotBase64Url,
    /// Ed25519 keys are exactly 32 raw bytes.
    #[error("must decode to exactly 32 bytes, got {0}")]
    WrongLength(usize),
    /// The bytes are not a valid Ed25519 public key (not a curve point).
    #[error("not a valid Ed25519 public key")]
    NotAPublicKey,
    /// A small-order ("weak") public key, which would let forged signatures verify.
    #[error("weak Ed25519 public key (small order point) is not allowed")]
    WeakKey,
    /// The key ID is empty, too long or has characters unsafe for logs.
    #[error("key id must be 1..=128 characters of [A-Za-z0-9._-]")]
    InvalidKid,
    /// The operating system RNG failed.
    #[error("operating system random number generator failed: {0}")]
    Rng(String),
}

/// Checks a machine code: 1..=64 characters of `[A-Za-z0-9_-]`.
///
/// The code is used as an MQTT topic level, a client ID and a username, so it must
/// never contain `/` (another topic level), `+`/`#` (wildcards that would subscribe
/// to other cabinets' topics, the incident in docs/ARCHITECTURE.md), or anything a broker ACL
/// substitution (`%u`, `${username}`) could misread.
pub fn check_machine_code(code: &str) -> Result<(), ProtocolError> {
    let bad = |why| ProtocolError::InvalidMachineCode {
        code: code.to_owned(),
        why,
    };
    if code.is_empty() || code.len() > 64 {
        return Err(bad("must be 1..=64 characters long"));
    }
    if !code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad(
            "may contain only A-Z, a-z, 0-9, '_' and '-' (no '/', '+', '#')",
        ));
    }
    Ok(())
}

/// The four topics of one cabinet: `cabinet/v1/{machine_code}/{cmd,reply,state,telemetry}`.
///
/// One subtree per cabinet so the broker ACL can say "read only your own `cmd`, write
/// only your own subtree" (docs/PROTOCOL.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Backend → cabinet, QoS 1: signed commands.
    pub cmd: String,
    /// Cabinet → backend, QoS 1: accepted, progress and outcome replies.
    pub reply: String,
    /// Cabinet → backend, retained: birth "online" and last-will "offline".
    pub state: String,
    /// Cabinet → backend: heartbeat, inventory, board health.
    pub telemetry: String,
}

impl Topics {
    /// Builds the topics of a cabinet, refusing machine codes that are not safe as a
    /// single topic level.
    pub fn new(machine_code: &str) -> Result<Topics, ProtocolError> {
        check_machine_code(machine_code)?;
        let base = format!("{TOPIC_PREFIX}/{machine_code}");
        Ok(Topics {
            cmd: format!("{base}/cmd"),
            reply: format!("{base}/reply"),
            state: format!("{base}/state"),
            telemetry: format!("{base}/telemetry"),
        })
    }
}

// ---------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------

/// The public keys this cabinet trusts, by `kid`. The cabinet never holds a private key
/// (except the demo key in demo mode). Several kids allow rotation without downtime.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, VerifyingKey>,
}

impl TrustedKeys {
    /// An empty set; every command is then rejected with `unknown_key`.
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Adds a key from base64url of its raw 32 bytes (a JWK's `x`).
    pub fn insert_base64url(&mut self, kid: &str, x: &str) -> Result<(), KeyError> {
        check_kid(kid)?;
        let key = decode_public_key(x)?;
        self.keys.insert(kid.to_owned(), key);
        Ok(())
    }

    /// Builds the set from the config's `[keys]` table.
    pub fn from_base64url_map(map: &BTreeMap<String, String>) -> Result<TrustedKeys, KeyError> {
        let mut keys = TrustedKeys::new();
        for (kid, x) in map {
            keys.insert_base64url(kid, x)?;
        }
        Ok(keys)
    }

    /// Adds the public half of a signing key (demo mode and tests).
    pub fn insert_signing_key_public(
        &mut self,
        kid: &str,
        key: &SigningKey,
    ) -> Result<(), KeyError> {
        check_kid(kid)?;
        self.keys.insert(kid.to_owned(), key.verifying_key());
        Ok(())
    }

    fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The configured key IDs (for diagnostics; public keys are not secret).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty()
        || kid.len() > MAX_ID_LEN
        || !kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(KeyError::InvalidKid);
    }
    Ok(())
}

/// Decodes an Ed25519 public key from base64url of its raw 32 bytes (a JWK's `x`),
/// rejecting wrong lengths, non-points and weak (small-order) keys.
pub fn decode_public_key(x: &str) -> Result<VerifyingKey, KeyError> {
    let raw = URL_SAFE_NO_PAD
        .decode(x.trim())
        .map_err(|_| KeyError::NotBase64Url)?;
    let bytes: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::WrongLength(raw.len()))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAPublicKey)?;
    if key.is_weak() {
        return Err(KeyError::WeakKey);
    }
    Ok(key)
}

/// Decodes a signing key from base64url of its 32-byte seed (a JWK's `d`).
pub fn decode_signing_key(d: &str) -> Result<SigningKey, KeyError> {
    let raw = URL_SAFE_NO_PAD
        .decode(d.trim())
        .map_err(|_| KeyError::NotBase64Url)?;
    let seed: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::WrongLength(raw.len()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// base64url of the 32-byte seed (a JWK's `d`): the form the CLI writes to a key file.
pub fn encode_signing_key(key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(key.to_bytes())
}

/// base64url of the raw public key (a JWK's `x`): the form the cabinet config takes.
pub fn public_key_base64url(key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes())
}

/// Generates a new Ed25519 key pair from the OS RNG.
///
/// Returns the signing key (its seed is the private half; no `kid` is attached, the
/// operator picks one) and the public key as base64url for the cabinet's `[keys]`.
pub fn generate_keypair() -> Result<(SigningKey, String), KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Rng(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let public = public_key_base64url(&key);
    Ok((key, public))
}

/// A random ID for this run of the app (hex, 128 bits), sent in every reply and in the
/// birth message so the backend can tell a restart (and a possible interrupted
/// dispense) from a reconnect.
pub fn new_boot_id() -> Result<String, KeyError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| KeyError::Rng(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

// ---------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------

/// The JWT claims of a command, as the backend signs them.
///
/// Unknown extra claims are allowed (a backend JWT library may add its own, such as
/// `iss` or `nbf`); an unknown `kind` is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandClaims {
    /// Target machine code. Must equal this cabinet's code (invariant 1).
    pub aud: String,
    /// Command ID: the deduplication key (invariant 2).
    pub jti: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds. The authority on staleness (invariant 4).
    pub exp: i64,
    /// What to do; only `dispense` today.
    pub kind: String,
    /// Slot number in the cabinet's slot map (1-based).
    pub slot: u16,
    /// Items to dispense; only 1 today.
    pub qty: u8,
    /// Backend order ID, echoed in replies.
    pub order_id: String,
    /// Correlation ID for logs from backend through kiosk, serial exchange and reply.
    pub log_id: String,
    /// The QR nonce the customer scanned, when the cabinet requires sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// What a command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Turn one slot's motor (VMC) or open one door (lock board).
    Dispense,
}

/// A command that passed every check of [`verify_command`]: signed by a trusted key,
/// for this cabinet, within its validity window, and sane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `jti`.
    pub cmd_id: String,
    /// `log_id`, carried on every log span and reply for this command.
    pub log_id: String,
    /// `order_id`.
    pub order_id: String,
    /// `kind`.
    pub kind: CommandKind,
    /// `slot`, at least 1 (existence in the slot map is checked by the engine).
    pub slot: u16,
    /// `qty`, exactly 1 today.
    pub qty: u8,
    /// `session`, if present.
    pub session: Option<String>,
    /// `iat`, unix seconds.
    pub issued_at: i64,
    /// `exp`, unix seconds; the engine re-checks it when a queued command's turn comes.
    pub expires_at: i64,
    /// Which trusted key signed it (logged, useful during key rotation).
    pub kid: String,
}

/// IDs read from a command whose signature verified, so that even a rejected command
/// can be answered and logged with its correlation IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIds {
    /// `jti`.
    pub cmd_id: String,
    /// `aud` as signed (on `wrong_target`, the cabinet it was really meant for).
    pub aud: String,
    /// `order_id`, empty if the signed claims did not carry a usable one.
    pub order_id: String,
    /// `log_id`, empty if the signed claims did not carry a usable one.
    pub log_id: String,
    /// `exp` as signed, when the claims carried a whole number: how long a redelivery of
    /// this command could still be accepted, so how long the journal must remember it.
    pub exp: Option<i64>,
}

/// Why a command was not accepted. `trusted` is `Some` only when the signature
/// verified, i.e. when the IDs in it are known to come from the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// The reason code for logs, journal and reply.
    pub reason: Reason,
    /// A short human explanation for the log (never contains the token itself).
    pub detail: String,
    /// The command's IDs, present only if the signature verified. Boxed to keep
    /// `Result<Command, Rejection>` small on the hot path.
    pub trusted: Option<Box<TrustedIds>>,
}

impl Rejection {
    fn untrusted(reason: Reason, detail: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            detail: detail.into(),
            trusted: None,
        }
    }
}

/// Limits applied by [`verify_command`]; from the config's `[commands]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Payloads longer than this are rejected as `oversize` before any parsing.
    pub max_token_bytes: usize,
    /// Allowed clock difference between backend and cabinet, in seconds, applied to
    /// both `exp` and `iat`.
    pub leeway_secs: i64,
    /// The longest `exp - iat` accepted (`lifetime_too_long` beyond it). A command can be
    /// redelivered, replayed or queued only while its token is alive, so this bounds how
    /// long the cabinet must remember a command id to keep "at most once" true.
    pub max_lifetime_secs: i64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            max_token_bytes: 4096,
            leeway_secs: 30,
            max_lifetime_secs: 300,
        }
    }
}

#[derive(Deserialize)]
struct JwsHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 §4.1.11: a recipient must reject critical extensions it does not
    /// understand; we understand none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
    /// RFC 7797 unencoded payloads change what is signed; refuse them.
    #[serde(default)]
    b64: Option<serde_json::Value>,
}

/// A compact JWS split and decoded, signature not yet checked.
struct Compact<'a> {
    header: JwsHeader,
    /// `base64url(header) . base64url(payload)`: the exact bytes that were signed.
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Signature,
}

fn b64_part(part: &str, what: &str) -> Result<Vec<u8>, Rejection> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Rejection::untrusted(Reason::Malformed, format!("{what} is not base64url")))
}

/// Splits and decodes a compact JWS and checks `alg`. No trust is placed in anything yet.
fn parse_compact(token: &str) -> Result<Compact<'_>, Rejection> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::untrusted(
            Reason::Malformed,
            "not a compact JWS (want header.payload.signature)",
        ));
    };
    let header: JwsHeader = serde_json::from_slice(&b64_part(h, "header")?)
        .map_err(|e| Rejection::untrusted(Reason::Malformed, format!("bad JWS header: {e}")))?;
    if header.alg != JWS_ALG {
        return Err(Rejection::untrusted(
            Reason::UnsupportedAlgorithm,
            format!("alg must be EdDSA, got {:?}", truncate(&header.alg)),
        ));
    }
    if header.crit.is_some() || header.b64.is_some() {
        return Err(Rejection::untrusted(
            Reason::Malformed,
            "JWS header extensions (crit, b64) are not supported",
        ));
    }
    let sig = b64_part(s, "signature")?;
    let sig: [u8; 64] = sig.as_slice().try_into().map_err(|_| {
        Rejection::untrusted(
            Reason::BadSignature,
            format!("signature must be 64 bytes, got {}", sig.len()),
        )
    })?;
    // h.len() + 1 + p.len() is within `token`; the split guarantees the '.' is there.
    let signing_input = token.get(..h.len() + 1 + p.len()).unwrap_or_default();
    Ok(Compact {
        header,
        signing_input,
        payload_b64: p,
        signature: Signature::from_bytes(&sig),
    })
}

fn check_signature(c: &Compact<'_>, key: &VerifyingKey) -> Result<(), Rejection> {
    key.verify_strict(c.signing_input.as_bytes(), &c.signature)
        .map_err(|_| Rejection::untrusted(Reason::BadSignature, "signature does not verify"))
}

/// Keeps attacker-chosen strings short in log details.
fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

/// Whether `c` may not appear in an ID. IDs are written into log lines, the journal,
/// replies and the technician's screen, so a character that can break or reorder a line
/// would let a backend bug (or the holder of a key) forge what a log reader sees:
/// - controls (Unicode `Cc`: C0, DEL, C1) such as `\n`, `\r`, ESC;
/// - LINE SEPARATOR and PARAGRAPH SEPARATOR (U+2028, U+2029), which many viewers and
///   JSON-lines tools treat as a line break;
/// - the bidi controls (Unicode property `Bidi_Control`: U+061C, U+200E, U+200F,
///   U+202A–U+202E, U+2066–U+2069), which make a line display in an order other than
///   the one it is stored in ("Trojan Source").
fn forbidden_in_id(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// 1..=[`MAX_ID_LEN`] characters (not bytes: a 50-character CJK order number is fine),
/// none of them [`forbidden_in_id`].
fn id_ok(s: &str) -> bool {
    let mut n = 0usize;
    for c in s.chars() {
        n += 1;
        if n > MAX_ID_LEN || forbidden_in_id(c) {
            return false;
        }
    }
    n > 0
}

/// Best effort: pulls the IDs out of signed claims that failed to deserialize, so a
/// signed-but-malformed command (a backend bug) still gets an answer.
fn ids_from_value(v: &serde_json::Value) -> Option<TrustedIds> {
    let s = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .filter(|s| id_ok(s))
            .map(str::to_owned)
    };
    Some(TrustedIds {
        cmd_id: s("jti")?,
        aud: s("aud")?,
        order_id: s("order_id").unwrap_or_default(),
        log_id: s("log_id").unwrap_or_default(),
        exp: v.get("exp").and_then(serde_json::Value::as_i64),
    })
}

/// Whether a command with this `exp` is stale at `now_unix`, allowing `leeway_secs` of
/// clock skew. The one rule for staleness: the verifier applies it on arrival and the
/// engine again when a queued command's turn at the motor comes, so a command accepted
/// within the skew is not failed as `expired` a moment later for the same clock.
pub fn is_expired(exp: i64, now_unix: i64, leeway_secs: i64) -> bool {
    now_unix > exp.saturating_add(leeway_secs)
}

/// Decides whether a command payload may be trusted and acted on.
///
/// `token` is the raw MQTT payload: the compact JWS as UTF-8 text (surrounding ASCII
/// whitespace is ignored, so `mosquitto_pub -f` with a trailing newline works).
/// `now_unix` is the cabinet's clock in unix seconds.
///
/// Checks, in this order, each failure with its own [`Reason`]:
/// 1. size ≤ `max_token_bytes` (`oversize`), before looking at a single byte;
/// 2. UTF-8, three base64url parts, JSON header (`malformed`);
/// 3. `alg` is exactly `EdDSA` (`unsupported_algorithm`);
/// 4. `kid` names a trusted key (`unknown_key`);
/// 5. the Ed25519 signature verifies (`bad_signature`) — nothing in the claims is read
///    before this point;
/// 6. the claims parse (`malformed`);
/// 7. `aud` equals `my_machine_code` (`wrong_target`);
/// 8. `exp`/`iat` within `leeway_secs` of `now_unix` (`expired`, `not_yet_valid`), and
///    `exp - iat` at most `max_lifetime_secs` (`lifetime_too_long`);
/// 9. `kind`, `slot`, `qty` and ID lengths are sane (`unsupported_kind`,
///    `slot_unknown`, `unsupported_quantity`, `malformed`).
pub fn verify_command(
    token: &[u8],
    keys: &TrustedKeys,
    my_machine_code: &str,
    now_unix: i64,
    opts: &VerifyOptions,
) -> Result<Command, Rejection> {
    if token.len() > opts.max_token_bytes {
        return Err(Rejection::untrusted(
            Reason::Oversize,
            format!(
                "payload is {} bytes, limit is {}",
                token.len(),
                opts.max_token_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(token)
        .map_err(|_| Rejection::untrusted(Reason::Malformed, "payload is not UTF-8"))?
        .trim_ascii();
    let compact = parse_compact(text)?;
    let kid = compact
        .header
        .kid
        .clone()
        .ok_or_else(|| Rejection::untrusted(Reason::UnknownKey, "JWS header has no kid"))?;
    let key = keys.get(&kid).ok_or_else(|| {
        Rejection::untrusted(
            Reason::UnknownKey,
            format!("kid {:?} is not trusted", truncate(&kid)),
        )
    })?;
    check_signature(&compact, key)?;

    // ---- from here on the payload is known to come from the holder of `kid` ----
    let payload = b64_part(compact.payload_b64, "payload")?;
    // Deserialize straight from the bytes (not via `Value`) so duplicate keys such as
    // two `aud`s are an error instead of "last one wins".
    let claims: CommandClaims = match serde_json::from_slice(&payload) {
        Ok(c) => c,
        Err(e) => {
            let trusted = serde_json::from_slice::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| ids_from_value(&v))
                .map(Box::new);
            return Err(Rejection {
                reason: Reason::Malformed,
                detail: format!("bad claims: {e}"),
                trusted,
            });
        }
    };
    let ids_ok = id_ok(&claims.jti) && id_ok(&claims.aud);
    let trusted = ids_ok.then(|| {
        Box::new(TrustedIds {
            cmd_id: claims.jti.clone(),
            aud: claims.aud.clone(),
            order_id: claims.order_id.clone(),
            log_id: claims.log_id.clone(),
            exp: Some(claims.exp),
        })
    });
    let reject = |reason, detail: String| Rejection {
        reason,
        detail,
        trusted: trusted.clone(),
    };
    if !ids_ok {
        return Err(Rejection::untrusted(
            Reason::Malformed,
            "jti and aud must be 1..=128 characters without control, line separator or bidi characters",
        ));
    }
    if claims.aud != my_machine_code {
        return Err(reject(
            Reason::WrongTarget,
            format!(
                "aud is {:?}, this cabinet is {my_machine_code:?}",
                truncate(&claims.aud)
            ),
        ));
    }
    if is_expired(claims.exp, now_unix, opts.leeway_secs) {
        return Err(reject(
            Reason::Expired,
            format!("exp {} is before now {now_unix}", claims.exp),
        ));
    }
    if claims.iat > now_unix.saturating_add(opts.leeway_secs) {
        return Err(reject(
            Reason::NotYetValid,
            format!("iat {} is after now {now_unix}", claims.iat),
        ));
    }
    if claims.exp < claims.iat {
        return Err(reject(Reason::Malformed, "exp is before iat".into()));
    }
    let lifetime = claims.exp.saturating_sub(claims.iat);
    if lifetime > opts.max_lifetime_secs {
        return Err(reject(
            Reason::LifetimeTooLong,
            format!(
                "exp - iat is {lifetime} s, this cabinet allows at most {} s",
                opts.max_lifetime_secs
            ),
        ));
    }
    if claims.kind != KIND_DISPENSE {
        return Err(reject(
            Reason::UnsupportedKind,
            format!("kind {:?} is not supported", truncate(&claims.kind)),
        ));
    }
    if claims.slot == 0 {
        return Err(reject(
            Reason::SlotUnknown,
            "slot numbers start at 1".into(),
        ));
    }
    if claims.qty != 1 {
        return Err(reject(
            Reason::UnsupportedQuantity,
            format!("qty must be 1, got {}", claims.qty),
        ));
    }
    if !id_ok(&claims.order_id)
        || !id_ok(&claims.log_id)
        || claims.session.as_deref().is_some_and(|s| !id_ok(s))
    {
        return Err(reject(
            Reason::Malformed,
            "order_id, log_id and session must be 1..=128 characters without control, \
             line separator or bidi characters"
                .into(),
        ));
    }
    Ok(Command {
        cmd_id: claims.jti,
        log_id: claims.log_id,
        order_id: claims.order_id,
        kind: CommandKind::Dispense,
        slot: claims.slot,
        qty: claims.qty,
        session: claims.session,
        issued_at: claims.iat,
        expires_at: claims.exp,
        kid,
    })
}

/// Signs claims as a compact JWS with header `{"alg":"EdDSA","typ":"JWT","kid":kid}`.
///
/// Used by the CLI (`cabinet send`), demo mode and tests; a real backend does the same
/// with any JWT library that supports EdDSA.
pub fn sign_command(
    claims: &CommandClaims,
    key: &SigningKey,
    kid: &str,
) -> Result<String, ProtocolError> {
    check_kid(kid)?;
    let header = serde_json::json!({ "alg": JWS_ALG, "typ": "JWT", "kid": kid });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
    );
    let sig = key.sign(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    ))
}

// ---------------------------------------------------------------------------------
// Replies, presence, telemetry
// ---------------------------------------------------------------------------------

/// The state of a command, as reported in replies and stored in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyState {
    /// Verified, journaled and acknowledged; waiting for its turn at the motor.
    Accepted,
    /// The motor command is (about to be) on the wire.
    Dispensing,
    /// The board confirmed the dispense. Terminal.
    Succeeded,
    /// The board tried and failed, or the cabinet could not serve it. Terminal.
    Failed,
    /// Refused before any motor moved. Terminal.
    Rejected,
    /// The app restarted during `dispensing`; the motor is never run again. Terminal.
    OutcomeUnknown,
}

impl ReplyState {
    /// Every state.
    pub const ALL: [ReplyState; 6] = [
        ReplyState::Accepted,
        ReplyState::Dispensing,
        ReplyState::Succeeded,
        ReplyState::Failed,
        ReplyState::Rejected,
        ReplyState::OutcomeUnknown,
    ];

    /// True for the states that end a command: exactly one of them is reported per
    /// command (invariant 3).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ReplyState::Succeeded
                | ReplyState::Failed
                | ReplyState::Rejected
                | ReplyState::OutcomeUnknown
        )
    }

    /// Whether a command may move from `self` to `next`.
    ///
    /// `accepted` → `dispensing` or any terminal state (a queued command can still
    /// expire or find its slot jammed); `dispensing` → `succeeded`, `failed` or
    /// `outcome_unknown` (never `rejected`: the motor may already have moved, and never
    /// back to `accepted`); terminal states never change.
    pub fn can_transition_to(self, next: ReplyState) -> bool {
        match self {
            ReplyState::Accepted => next != ReplyState::Accepted,
            ReplyState::Dispensing => matches!(
                next,
                ReplyState::Succeeded | ReplyState::Failed | ReplyState::OutcomeUnknown
            ),
            _ => false,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyState::Accepted => "accepted",
            ReplyState::Dispensing => "dispensing",
            ReplyState::Succeeded => "succeeded",
            ReplyState::Failed => "failed",
            ReplyState::Rejected => "rejected",
            ReplyState::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<ReplyState> {
        ReplyState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for ReplyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The journal stores a command's state with the same enum its replies carry, so the
/// stored state and the last reply can never use different words.
pub type CommandState = ReplyState;

/// What the cabinet observed, so the backend can judge a disputed outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// VMC: did the drop sensor see an item fall? `None` when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_detected: Option<bool>,
    /// Lock board: was the door seen open? `None` when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_open: Option<bool>,
    /// The board's own status, as text (for example `"vmc:03"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_status: Option<String>,
}

/// A reply on `.../reply` (QoS 1). One command gets `accepted`, maybe `dispensing`,
/// and exactly one terminal reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Protocol version, always [`PROTOCOL_VERSION`].
    pub v: u8,
    /// The command's `jti`.
    pub cmd_id: String,
    /// The command's `order_id` (empty if a signed command carried none usable).
    pub order_id: String,
    /// The command's `log_id`, returned so the backend can join logs.
    pub log_id: String,
    /// This cabinet.
    pub machine_code: String,
    /// This run of the app (changes on restart).
    pub boot_id: String,
    /// Where the command is now.
    pub state: ReplyState,
    /// Why, for `failed`, `rejected` and `outcome_unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// What the cabinet saw.
    #[serde(default)]
    pub evidence: Evidence,
    /// When the cabinet produced this reply, unix milliseconds.
    pub at: u64,
    /// Per-boot sequence number, so the backend can order replies of one boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl Reply {
    /// True when this reply reports the command's single outcome.
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// The JSON text sent on the wire.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        Ok(serde_json::to_string(self)?)
    }
}

/// Presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Published retained by the app right after connecting (birth).
    Online,
    /// Registered as the retained last will, and published on clean shutdown.
    Offline,
}

/// The retained message on `.../state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMessage {
    /// Protocol version.
    pub v: u8,
    /// Online or offline.
    pub status: Presence,
    /// This cabinet.
    pub machine_code: String,
    /// This run of the app; a new boot id after "offline" means a restart.
    pub boot_id: String,
    /// App version (`CARGO_PKG_VERSION` of the binary).
    pub version: String,
    /// Unix milliseconds when the message was built (for a last will: when the
    /// connection was opened, since the broker sends it later).
    pub at: u64,
}

/// Board health as seen by the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardHealth {
    /// The serial link answers.
    pub ok: bool,
    /// The board's last status text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One slot's stock, as sent in telemetry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotLevel {
    /// Slot number.
    pub slot: u16,
    /// Items left (goes down only on a confirmed drop).
    pub count: u32,
    /// Items the slot holds when full.
    pub capacity: u32,
    /// Not disabled by a technician.
    pub enabled: bool,
    /// Jammed until a technician clears it.
    pub jammed: bool,
}

/// The heartbeat on `.../telemetry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Protocol version.
    pub v: u8,
    /// This cabinet.
    pub machine_code: String,
    /// This run of the app.
    pub boot_id: String,
    /// Unix milliseconds.
    pub at: u64,
    /// Seconds since the app started.
    pub uptime_secs: u64,
    /// Serial board health.
    pub board: BoardHealth,
    /// Replies waiting in the outbox for a broker acknowledgement.
    pub outbox_pending: u64,
    /// Free bytes on the journal's file system, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free_bytes: Option<u64>,
    /// The journal's file system has less free space than `journal.min_free_mb`: new
    /// commands are refused `disk_low` until space is freed.
    #[serde(default)]
    pub disk_low: bool,
    /// The journal: its size, what it holds, what retention dropped, whether it is
    /// trusted. Absent from cabinets older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalFigures>,
    /// Stock per slot.
    pub inventory: Vec<SlotLevel>,
    /// Technician actions since the previous telemetry message (the journal's audit
    /// table keeps them all; telemetry is QoS 0, so a backend that must not miss one
    /// reads the bundle or `cabinet diag`). Absent when there were none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditEvent>,
}

/// The journal's figures in telemetry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalFigures {
    /// Bytes of the database file plus its write-ahead log.
    pub size_bytes: u64,
    /// Commands held (retention prunes finished ones: `journal.keep_commands_days`,
    /// `journal.max_commands`).
    pub commands: u64,
    /// Refused payloads held (a ring of `journal.max_rejections`).
    pub rejections: u64,
    /// Refused payloads dropped from the ring over the journal's life.
    pub rejections_dropped: u64,
    /// Commands pruned over the journal's life.
    pub commands_pruned: u64,
    /// Why the journal is not trusted (found missing, empty, corrupt or replaced at
    /// start) until someone confirms a fresh start; absent when it is trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unverified: Option<String>,
}

/// One technician action, as telemetry carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at: u64,
    /// Who (the name in the config's `[technicians]`).
    pub technician: String,
    /// `login`, `failed_pin`, `locked_out`, `logout`, `slot_test`, `clear_jam`,
    /// `enable_slot`, `disable_slot`, `restock`, `export`, `exit`, `journal_fresh_start`.
    pub action: String,
    /// Details (slot, counts, outcome, path).
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ME: &str = "GZ-0001";
    const NOW: i64 = 1_750_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn keys() -> TrustedKeys {
        let mut k = TrustedKeys::new();
        k.insert_signing_key_public("k1", &key(1)).unwrap();
        k
    }

    fn claims() -> CommandClaims {
        CommandClaims {
            aud: ME.into(),
            jti: "cmd-1".into(),
            iat: NOW - 5,
            exp: NOW + 60,
            kind: "dispense".into(),
            slot: 11,
            qty: 1,
            order_id: "order-9".into(),
            log_id: "log-abc".into(),
            session: None,
        }
    }

    fn verify(token: &str) -> Result<Command, Rejection> {
        verify_command(
            token.as_bytes(),
            &keys(),
            ME,
            NOW,
            &VerifyOptions::default(),
        )
    }

    fn signed(c: &CommandClaims) -> String {
        sign_command(c, &key(1), "k1").unwrap()
    }

    /// Builds a token from raw header/payload JSON, signed with key 1.
    fn raw_token(header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = key(1).sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn reason(token: &str) -> Reason {
        verify(token).unwrap_err().reason
    }

    #[test]
    fn topics_live_under_the_cabinets_own_versioned_subtree() {
        let t = Topics::new(ME).unwrap();
        assert_eq!(t.cmd, "cabinet/v1/GZ-0001/cmd");
        assert_eq!(t.reply, "cabinet/v1/GZ-0001/reply");
        assert_eq!(t.state, "cabinet/v1/GZ-0001/state");
        assert_eq!(t.telemetry, "cabinet/v1/GZ-0001/telemetry");
    }

    #[test]
    fn machine_codes_with_wildcards_or_slashes_cannot_make_topics() {
        // A '+' or '#' code would subscribe to other cabinets' commands (the incident).
        for bad in ["+", "#", "a/b", "", "a b", "é", &"x".repeat(65)] {
            assert!(Topics::new(bad).is_err(), "{bad:?}");
        }
        assert!(Topics::new(&"x".repeat(64)).is_ok());
        assert!(Topics::new("abc_DEF-123").is_ok());
    }

    #[test]
    fn a_correctly_signed_command_for_this_cabinet_is_accepted() {
        let cmd = verify(&signed(&claims())).unwrap();
        assert_eq!(cmd.cmd_id, "cmd-1");
        assert_eq!(cmd.log_id, "log-abc");
        assert_eq!(cmd.order_id, "order-9");
        assert_eq!(cmd.slot, 11);
        assert_eq!(cmd.qty, 1);
        assert_eq!(cmd.kind, CommandKind::Dispense);
        assert_eq!(cmd.kid, "k1");
        assert_eq!(cmd.expires_at, NOW + 60);
    }

    #[test]
    fn surrounding_whitespace_such_as_a_trailing_newline_is_ignored() {
        let t = format!("  {}\n", signed(&claims()));
        assert!(verify(&t).is_ok());
    }

    #[test]
    fn a_command_for_another_cabinet_is_rejected_with_its_trusted_ids() {
        // Regression for the incident (docs/ARCHITECTURE.md): a command published to a topic
        // several cabinets shared dispensed at the wrong cabinet.
        let mut c = claims();
        c.aud = "XA-0002".into();
        let r = verify(&signed(&c)).unwrap_err();
        assert_eq!(r.reason, Reason::WrongTarget);
        let ids = r.trusted.unwrap();
        assert_eq!(ids.cmd_id, "cmd-1");
        assert_eq!(ids.log_id, "log-abc");
        assert_eq!(ids.aud, "XA-0002");
    }

    /// Attacker-chosen strings reach the logs only as their first 32 characters.
    #[test]
    fn a_foreign_aud_is_logged_truncated() {
        let mut c = claims();
        c.aud = format!("{}{}", "A".repeat(30), "B".repeat(60));
        let r = verify(&signed(&c)).unwrap_err();
        assert_eq!(r.reason, Reason::WrongTarget);
        assert!(
            r.detail.contains(&format!("\"{}BB\"", "A".repeat(30))),
            "{}",
            r.detail
        );
        assert!(!r.detail.contains("BBB"), "{}", r.detail);
    }

    #[test]
    fn aud_comparison_is_exact_not_case_insensitive_or_prefix() {
        for aud in ["gz-0001", "GZ-00011", "GZ-000", " GZ-0001"] {
            let mut c = claims();
            c.aud = aud.into();
            assert_eq!(reason(&signed(&c)), Reason::WrongTarget, "{aud:?}");
        }
    }

    #[test]
    fn an_aud_array_is_malformed_not_accepted() {
        let t = raw_token(
            r#"{"alg":"EdDSA","kid":"k1"}"#,
            &format!(
                r#"{{"aud":["{ME}"],"jti":"c","iat":{NOW},"exp":{},"kind":"dispense","slot":1,"qty":1,"order_id":"o","log_id":"l"}}"#,
                NOW + 10
            ),
        );
        assert_eq!(reason(&t), Reason::Malformed);
    }

    #[test]
    fn expiry_is_enforced_with_the_configured_leeway() {
        let mut c = claims();
        c.iat = NOW - 100;
        c.exp = NOW - 30; // exactly at the edge of the 30 s leeway: still valid
        assert!(verify(&signed(&c)).is_ok());
        c.exp = NOW - 31;
        let r = verify(&signed(&c)).unwrap_err();
        assert_eq!(r.reason, Reason::Expired);
        assert_eq!(r.trusted.unwrap().cmd_id, "cmd-1");
    }

    #[test]
    fn a_command_valid_for_one_instant_is_accepted_and_one_ending_before_it_starts_is_not() {
        let mut c = claims();
        c.iat = NOW;
        c.exp = NOW;
        assert!(verify(&signed(&c)).is_ok(), "exp == iat");
        c.exp = NOW - 1;
        assert_eq!(verify(&signed(&c)).unwrap_err().reason, Reason::Malformed);
    }

    #[test]
    fn only_outcomes_are_terminal_replies() {
        let reply = |state: &str| -> Reply {
            serde_json::from_str(&format!(
                "{{\"v\":1,\"cmd_id\":\"c\",\"order_id\":\"o\",\"log_id\":\"l\",\
                 \"machine_code\":\"GZ-0001\",\"boot_id\":\"b\",\"state\":\"{state}\",\
                 \"evidence\":{{}},\"at\":1}}"
            ))
            .unwrap()
        };
        for (state, terminal) in [
            ("accepted", false),
            ("dispensing", false),
            ("succeeded", true),
            ("failed", true),
            ("rejected", true),
            ("outcome_unknown", true),
        ] {
            assert_eq!(reply(state).is_terminal(), terminal, "{state}");
        }
    }

    #[test]
    fn the_size_limit_is_inclusive() {
        let t = signed(&claims());
        let opts = |max| VerifyOptions {
            max_token_bytes: max,
            ..VerifyOptions::default()
        };
        let check = |max| verify_command(t.as_bytes(), &keys(), ME, NOW, &opts(max));
        assert!(check(t.len()).is_ok(), "exactly at the limit");
        assert_eq!(check(t.len() - 1).unwrap_err().reason, Reason::Oversize);
    }

    #[test]
    fn a_command_issued_in_the_future_beyond_leeway_is_not_yet_valid() {
        let mut c = claims();
        c.iat = NOW + 31;
        c.exp = NOW + 100;
        assert_eq!(reason(&signed(&c)), Reason::NotYetValid);
        c.iat = NOW + 30;
        assert!(verify(&signed(&c)).is_ok());
    }

    #[test]
    fn a_token_may_live_up_to_the_configured_lifetime_and_not_a_second_longer() {
        let opts = VerifyOptions {
            max_lifetime_secs: 120,
            ..VerifyOptions::default()
        };
        for (lifetime, ok) in [(0, true), (120, true), (121, false), (86_400 * 365, false)] {
            let mut c = claims();
            c.iat = NOW - 5;
            c.exp = c.iat + lifetime;
            let got = verify_command(signed(&c).as_bytes(), &keys(), ME, NOW, &opts);
            match got {
                Ok(_) => assert!(ok, "{lifetime} s accepted"),
                Err(r) => {
                    assert!(!ok, "{lifetime} s refused: {}", r.detail);
                    assert_eq!(r.reason, Reason::LifetimeTooLong);
                    // Signed, so the reply carries the command's own ids.
                    assert!(r.trusted.is_some());
                }
            }
        }
    }

    #[test]
    fn exp_before_iat_is_malformed() {
        let mut c = claims();
        c.iat = NOW;
        c.exp = NOW - 1;
        assert_eq!(reason(&signed(&c)), Reason::Malformed);
    }

    /// Regression: a token with `exp` = i64::MAX was accepted, valid forever.
    #[test]
    fn extreme_timestamps_do_not_overflow_and_live_no_longer_than_allowed() {
        let mut c = claims();
        c.exp = i64::MAX;
        c.iat = i64::MIN;
        assert_eq!(reason(&signed(&c)), Reason::LifetimeTooLong);
        let opts = VerifyOptions {
            leeway_secs: i64::MAX,
            ..VerifyOptions::default()
        };
        assert!(verify_command(signed(&claims()).as_bytes(), &keys(), ME, NOW, &opts).is_ok());
    }

    #[test]
    fn alg_none_is_rejected_even_without_a_signature() {
        let input = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap())
        );
        assert_eq!(reason(&input), Reason::UnsupportedAlgorithm);
    }

    #[test]
    fn algorithms_other_than_exactly_eddsa_are_rejected() {
        let payload = serde_json::to_string(&claims()).unwrap();
        for alg in ["HS256", "RS256", "ES256", "eddsa", "EdDSA ", "Ed25519", ""] {
            let t = raw_token(&format!(r#"{{"alg":"{alg}","kid":"k1"}}"#), &payload);
            assert_eq!(reason(&t), Reason::UnsupportedAlgorithm, "{alg:?}");
        }
        let t = raw_token(r#"{"alg":null,"kid":"k1"}"#, &payload);
        assert_eq!(reason(&t), Reason::Malformed);
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let payload = serde_json::to_string(&claims()).unwrap();
        let t = raw_token(r#"{"alg":"EdDSA","kid":"k1","crit":["exp"]}"#, &payload);
        assert_eq!(reason(&t), Reason::Malformed);
        let t = raw_token(r#"{"alg":"EdDSA","kid":"k1","b64":false}"#, &payload);
        assert_eq!(reason(&t), Reason::Malformed);
    }

    #[test]
    fn unknown_or_missing_kid_is_rejected_before_the_signature_is_checked() {
        let t = sign_command(&claims(), &key(1), "other").unwrap();
        let r = verify(&t).unwrap_err();
        assert_eq!(r.reason, Reason::UnknownKey);
        assert!(r.trusted.is_none());
        let t = raw_token(
            r#"{"alg":"EdDSA"}"#,
            &serde_json::to_string(&claims()).unwrap(),
        );
        assert_eq!(reason(&t), Reason::UnknownKey);
    }

    #[test]
    fn a_command_signed_by_an_untrusted_key_under_a_trusted_kid_is_bad_signature() {
        let t = sign_command(&claims(), &key(2), "k1").unwrap();
        let r = verify(&t).unwrap_err();
        assert_eq!(r.reason, Reason::BadSignature);
        assert!(
            r.trusted.is_none(),
            "no claim is trusted before the signature"
        );
    }

    #[test]
    fn changing_any_claim_after_signing_breaks_the_signature() {
        let t = signed(&claims());
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims();
        c.slot = 12;
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap()),
            parts[2]
        );
        assert_eq!(reason(&forged), Reason::BadSignature);
    }

    #[test]
    fn a_wrong_target_command_that_is_also_forged_reports_bad_signature_not_wrong_target() {
        // The signature is checked before any claim is read: an attacker cannot learn
        // or trigger claim-dependent behaviour with an unsigned token.
        let mut c = claims();
        c.aud = "other".into();
        c.exp = NOW - 1000;
        let t = sign_command(&c, &key(2), "k1").unwrap();
        assert_eq!(reason(&t), Reason::BadSignature);
    }

    #[test]
    fn oversize_payloads_are_rejected_before_parsing() {
        let opts = VerifyOptions {
            max_token_bytes: 10,
            ..VerifyOptions::default()
        };
        let t = signed(&claims());
        let r = verify_command(t.as_bytes(), &keys(), ME, NOW, &opts).unwrap_err();
        assert_eq!(r.reason, Reason::Oversize);
        let big = vec![b'a'; 4097];
        assert_eq!(
            verify_command(&big, &keys(), ME, NOW, &VerifyOptions::default())
                .unwrap_err()
                .reason,
            Reason::Oversize
        );
    }

    #[test]
    fn non_utf8_payload_is_malformed() {
        let r = verify_command(
            &[0xff, 0xfe, b'.'],
            &keys(),
            ME,
            NOW,
            &VerifyOptions::default(),
        );
        assert_eq!(r.unwrap_err().reason, Reason::Malformed);
    }

    #[test]
    fn json_instead_of_a_token_is_malformed() {
        let json = serde_json::to_string(&claims()).unwrap();
        assert_eq!(reason(&json), Reason::Malformed);
        assert_eq!(reason(""), Reason::Malformed);
        assert_eq!(reason("a.b"), Reason::Malformed);
        assert_eq!(reason("a.b.c.d"), Reason::Malformed);
    }

    #[test]
    fn padded_or_standard_base64_parts_are_malformed() {
        let t = signed(&claims());
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        parts[0].push('=');
        assert_eq!(reason(&parts.join(".")), Reason::Malformed);
    }

    #[test]
    fn a_truncated_signature_is_bad_signature() {
        let t = signed(&claims());
        let (head, sig) = t.rsplit_once('.').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let short = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&raw[..63]));
        assert_eq!(reason(&short), Reason::BadSignature);
    }

    #[test]
    fn unknown_kind_is_rejected_but_unknown_extra_claims_are_allowed() {
        let mut c = claims();
        c.kind = "refund".into();
        assert_eq!(reason(&signed(&c)), Reason::UnsupportedKind);

        let mut v = serde_json::to_value(claims()).unwrap();
        v["iss"] = "backend".into();
        v["nbf"] = NOW.into();
        let t = raw_token(r#"{"alg":"EdDSA","kid":"k1","typ":"JWT"}"#, &v.to_string());
        assert!(verify(&t).is_ok());
    }

    #[test]
    fn slot_zero_and_qty_other_than_one_are_refused() {
        let mut c = claims();
        c.slot = 0;
        assert_eq!(reason(&signed(&c)), Reason::SlotUnknown);
        let mut c = claims();
        c.qty = 2;
        assert_eq!(reason(&signed(&c)), Reason::UnsupportedQuantity);
        let mut c = claims();
        c.qty = 0;
        assert_eq!(reason(&signed(&c)), Reason::UnsupportedQuantity);
    }

    #[test]
    fn out_of_range_numbers_are_malformed_but_keep_the_trusted_ids() {
        let mut v = serde_json::to_value(claims()).unwrap();
        v["qty"] = 300.into();
        let t = raw_token(r#"{"alg":"EdDSA","kid":"k1"}"#, &v.to_string());
        let r = verify(&t).unwrap_err();
        assert_eq!(r.reason, Reason::Malformed);
        let ids = r.trusted.unwrap();
        assert_eq!(ids.cmd_id, "cmd-1");
        assert_eq!(ids.log_id, "log-abc");
    }

    #[test]
    fn signed_garbage_claims_are_malformed_without_trusted_ids() {
        let t = raw_token(r#"{"alg":"EdDSA","kid":"k1"}"#, "not json");
        let r = verify(&t).unwrap_err();
        assert_eq!(r.reason, Reason::Malformed);
        assert!(r.trusted.is_none());
    }

    #[test]
    fn duplicate_claim_keys_are_malformed() {
        let payload = format!(
            r#"{{"aud":"{ME}","aud":"other","jti":"c","iat":{NOW},"exp":{},"kind":"dispense","slot":1,"qty":1,"order_id":"o","log_id":"l"}}"#,
            NOW + 10
        );
        let t = raw_token(r#"{"alg":"EdDSA","kid":"k1"}"#, &payload);
        assert_eq!(reason(&t), Reason::Malformed);
    }

    #[test]
    fn empty_or_overlong_ids_are_malformed() {
        let mut c = claims();
        c.log_id = String::new();
        assert_eq!(reason(&signed(&c)), Reason::Malformed);
        let mut c = claims();
        c.order_id = "x".repeat(129);
        assert_eq!(reason(&signed(&c)), Reason::Malformed);
        let mut c = claims();
        c.jti = "a\nb".into();
        let r = verify(&signed(&c)).unwrap_err();
        assert_eq!(r.reason, Reason::Malformed);
        assert!(
            r.trusted.is_none(),
            "a jti with control chars must not reach logs"
        );
        let mut c = claims();
        c.session = Some(String::new());
        assert_eq!(reason(&signed(&c)), Reason::Malformed);
    }

    #[test]
    fn id_lengths_are_counted_in_characters_not_bytes() {
        // 50 CJK characters are 150 bytes of UTF-8: within the documented 128 characters.
        let mut c = claims();
        c.jti = "订".repeat(50);
        c.order_id = "单".repeat(MAX_ID_LEN);
        c.log_id = "🧾".repeat(MAX_ID_LEN); // 4 bytes each
        c.session = Some("码".repeat(MAX_ID_LEN));
        let cmd = verify(&signed(&c)).expect("128 characters of any width are accepted");
        assert_eq!(cmd.cmd_id, "订".repeat(50));
        assert_eq!(cmd.order_id.chars().count(), MAX_ID_LEN);
        let mut c = claims();
        c.order_id = "单".repeat(MAX_ID_LEN + 1);
        assert_eq!(reason(&signed(&c)), Reason::Malformed, "129 characters");
        let mut c = claims();
        c.jti = "订".repeat(MAX_ID_LEN + 1);
        let r = verify(&signed(&c)).unwrap_err();
        assert_eq!(r.reason, Reason::Malformed);
        assert!(r.trusted.is_none(), "an overlong jti is not echoed");
    }

    /// Characters that break a log line or reorder how it displays.
    const LINE_FORGING: [char; 16] = [
        '\n', '\r', '\u{1b}', '\u{85}', '\u{2028}', '\u{2029}', '\u{061C}', '\u{200E}', '\u{200F}',
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2069}',
    ];

    #[test]
    fn ids_with_line_separators_or_bidi_controls_are_malformed() {
        for bad in LINE_FORGING.into_iter().chain(['\u{2067}', '\u{2068}']) {
            let id = format!("ok{bad}forged");
            let mut c = claims();
            c.jti = id.clone();
            let r = verify(&signed(&c)).unwrap_err();
            assert_eq!(r.reason, Reason::Malformed, "jti with U+{:04X}", bad as u32);
            assert!(r.trusted.is_none(), "jti with U+{:04X} echoed", bad as u32);
            for field in ["order_id", "log_id", "session"] {
                let mut c = claims();
                match field {
                    "order_id" => c.order_id = id.clone(),
                    "log_id" => c.log_id = id.clone(),
                    _ => c.session = Some(id.clone()),
                }
                assert_eq!(
                    reason(&signed(&c)),
                    Reason::Malformed,
                    "{field} with U+{:04X}",
                    bad as u32
                );
            }
        }
        // Ordinary non-ASCII text, including right-to-left scripts, is fine: only the
        // invisible controls are refused.
        let mut c = claims();
        c.log_id = "طلب-٤٢ / 订单 / заказ".into();
        assert!(verify(&signed(&c)).is_ok());
    }

    #[test]
    fn session_is_carried_through() {
        let mut c = claims();
        c.session = Some("nonce-42".into());
        assert_eq!(
            verify(&signed(&c)).unwrap().session.as_deref(),
            Some("nonce-42")
        );
    }

    #[test]
    fn rfc8037_ed25519_jws_example_verifies() {
        // RFC 8037 Appendix A.1 (key) and A.4 (JWS): proves interoperability with
        // any standard EdDSA JWS producer, independent of our own signer.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let d = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
        let jws = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
                   hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let pk = decode_public_key(x).unwrap();
        assert_eq!(public_key_base64url(&decode_signing_key(d).unwrap()), x);
        let c = parse_compact(jws).unwrap_or_else(|r| panic!("{r}"));
        assert!(check_signature(&c, &pk).is_ok());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(c.payload_b64).unwrap(),
            b"Example of Ed25519 signing"
        );
        // And a one-bit change of the signature fails.
        let tampered = jws.replace("hgyY", "hgyZ");
        let c = parse_compact(&tampered).unwrap_or_else(|r| panic!("{r}"));
        assert!(check_signature(&c, &pk).is_err());
    }

    #[test]
    fn a_token_signed_by_an_independent_jws_implementation_verifies_end_to_end() {
        // Produced once with Node.js `crypto.sign` (not our signer) and the RFC 8037
        // A.1 key, with an extra `iss` claim as backend JWT libraries add. Ed25519 is
        // deterministic, so this vector is stable.
        const TOKEN: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6InJmYzgwMzcifQ.\
            eyJhdWQiOiJHWi0wMDAxIiwianRpIjoiMDE5MGMyZGUtN2YxYS03YjNlLTlhNDEtNWExZjJjM2Q0ZTVmIiwi\
            aWF0IjoxNzUwMDAwMDAwLCJleHAiOjE3NTAwMDAwNjAsImtpbmQiOiJkaXNwZW5zZSIsInNsb3QiOjExLCJx\
            dHkiOjEsIm9yZGVyX2lkIjoiT1JELTIwMjUwNjE1LTAwNDIiLCJsb2dfaWQiOiJsb2ctN2YzYTljIiwiaXNz\
            IjoiYmFja2VuZC5leGFtcGxlIn0.\
            JUMZclhBr0TEz1bK5bJzh9vH7gEQjhXNOsIQQ96UMvMXDVzhqf0EXd-mN2mL6w8ZBjdZqfRaWT_qgtJZtfuVCA";
        let mut trusted = TrustedKeys::new();
        trusted
            .insert_base64url("rfc8037", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let cmd = verify_command(
            TOKEN.as_bytes(),
            &trusted,
            ME,
            NOW + 10,
            &VerifyOptions::default(),
        )
        .unwrap();
        assert_eq!(cmd.cmd_id, "0190c2de-7f1a-7b3e-9a41-5a1f2c3d4e5f");
        assert_eq!(cmd.order_id, "ORD-20250615-0042");
        assert_eq!(cmd.log_id, "log-7f3a9c");
        assert_eq!(cmd.slot, 11);
        assert_eq!(cmd.kid, "rfc8037");
        // The same token at another cabinet is refused.
        let r = verify_command(
            TOKEN.as_bytes(),
            &trusted,
            "XA-0002",
            NOW,
            &VerifyOptions::default(),
        );
        assert_eq!(r.unwrap_err().reason, Reason::WrongTarget);
    }

    #[test]
    fn public_keys_of_the_wrong_length_or_encoding_are_refused() {
        assert_eq!(
            decode_public_key(&URL_SAFE_NO_PAD.encode([1u8; 31])),
            Err(KeyError::WrongLength(31))
        );
        assert_eq!(
            decode_public_key(&URL_SAFE_NO_PAD.encode([1u8; 33])),
            Err(KeyError::WrongLength(33))
        );
        assert_eq!(
            decode_public_key("not base64!"),
            Err(KeyError::NotBase64Url)
        );
        // Standard base64 with padding is not the JWK encoding.
        assert_eq!(
            decode_public_key("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
            Err(KeyError::NotBase64Url)
        );
    }

    #[test]
    fn weak_public_keys_are_refused() {
        // The identity point (y = 1) has small order: any signature would be
        // suspicious under non-strict verification.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            decode_public_key(&URL_SAFE_NO_PAD.encode(identity)),
            Err(KeyError::WeakKey)
        );
    }

    #[test]
    fn generated_keypairs_sign_commands_that_verify_with_the_public_half() {
        let (sk, public) = generate_keypair().unwrap();
        let (sk2, _) = generate_keypair().unwrap();
        assert_ne!(sk.to_bytes(), sk2.to_bytes(), "the RNG must not repeat");
        let mut trusted = TrustedKeys::new();
        trusted.insert_base64url("gen", &public).unwrap();
        let t = sign_command(&claims(), &sk, "gen").unwrap();
        assert!(verify_command(t.as_bytes(), &trusted, ME, NOW, &VerifyOptions::default()).is_ok());
        let round = decode_signing_key(&encode_signing_key(&sk)).unwrap();
        assert_eq!(round.to_bytes(), sk.to_bytes());
    }

    #[test]
    fn kids_with_unsafe_characters_are_refused() {
        let mut k = TrustedKeys::new();
        assert!(k.is_empty());
        let x = public_key_base64url(&key(1));
        assert_eq!(k.insert_base64url("", &x), Err(KeyError::InvalidKid));
        assert_eq!(k.insert_base64url("a b", &x), Err(KeyError::InvalidKid));
        assert_eq!(k.insert_base64url("a\n", &x), Err(KeyError::InvalidKid));
        assert!(k.insert_base64url("backend-2026.01_a", &x).is_ok());
        assert_eq!(
            k.insert_base64url(&"k".repeat(MAX_ID_LEN + 1), &x),
            Err(KeyError::InvalidKid)
        );
        assert!(k.insert_base64url(&"k".repeat(MAX_ID_LEN), &x).is_ok());
        assert!(
            k.insert_base64url(&"k".repeat(MAX_ID_LEN), &x).is_ok(),
            "replaces, not adds"
        );
        assert_eq!(k.len(), 2);
        assert!(!k.is_empty());
        assert_eq!(
            k.kids().collect::<Vec<_>>(),
            ["backend-2026.01_a", "k".repeat(MAX_ID_LEN).as_str()]
        );
        assert!(
            k.insert_base64url("backend-2", &public_key_base64url(&key(2)))
                .is_ok()
        );
        assert_eq!(k.len(), 3, "a rotation keeps several keys");
    }

    #[test]
    fn boot_ids_are_random_hex() {
        let a = new_boot_id().unwrap();
        let b = new_boot_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn reply_json_has_the_documented_shape() {
        let r = Reply {
            v: PROTOCOL_VERSION,
            cmd_id: "cmd-1".into(),
            order_id: "order-9".into(),
            log_id: "log-abc".into(),
            machine_code: ME.into(),
            boot_id: "b".into(),
            state: ReplyState::Failed,
            reason: Some(Reason::NoDropDetected),
            evidence: Evidence {
                drop_detected: Some(false),
                door_open: None,
                board_status: Some("vmc:02".into()),
            },
            at: 1_750_000_000_123,
            seq: Some(7),
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "v": 1, "cmd_id": "cmd-1", "order_id": "order-9", "log_id": "log-abc",
                "machine_code": ME, "boot_id": "b", "state": "failed",
                "reason": "no_drop_detected",
                "evidence": {"drop_detected": false, "board_status": "vmc:02"},
                "at": 1_750_000_000_123u64, "seq": 7
            })
        );
        let back: Reply = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        assert!(back.is_terminal());
    }

    #[test]
    fn only_outcomes_are_terminal() {
        use ReplyState::*;
        assert!(!Accepted.is_terminal());
        assert!(!Dispensing.is_terminal());
        for s in [Succeeded, Failed, Rejected, OutcomeUnknown] {
            assert!(s.is_terminal());
        }
    }

    #[test]
    fn nothing_leaves_a_terminal_state_and_dispensing_never_becomes_rejected() {
        use ReplyState::*;
        for from in ReplyState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ReplyState::ALL {
                assert!(!from.can_transition_to(to), "{from} -> {to}");
            }
        }
        assert!(Accepted.can_transition_to(Dispensing));
        assert!(Accepted.can_transition_to(Rejected));
        assert!(Accepted.can_transition_to(Failed));
        assert!(!Accepted.can_transition_to(Accepted));
        assert!(Dispensing.can_transition_to(Succeeded));
        assert!(Dispensing.can_transition_to(OutcomeUnknown));
        assert!(!Dispensing.can_transition_to(Rejected));
        assert!(!Dispensing.can_transition_to(Accepted));
        assert!(!Dispensing.can_transition_to(Dispensing));
    }

    #[test]
    fn reply_states_use_snake_case_on_the_wire() {
        for s in ReplyState::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
            assert_eq!(ReplyState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ReplyState::parse("done"), None);
    }

    #[test]
    fn state_and_telemetry_messages_serialize() {
        let s = StateMessage {
            v: 1,
            status: Presence::Offline,
            machine_code: ME.into(),
            boot_id: "b".into(),
            version: "0.1.0".into(),
            at: 5,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["status"], "offline");
        let t = Telemetry {
            v: 1,
            machine_code: ME.into(),
            boot_id: "b".into(),
            at: 5,
            uptime_secs: 9,
            board: BoardHealth {
                ok: true,
                status: None,
            },
            outbox_pending: 0,
            disk_free_bytes: Some(1 << 30),
            disk_low: false,
            journal: Some(JournalFigures {
                size_bytes: 1 << 20,
                commands: 12,
                rejections: 3,
                rejections_dropped: 0,
                commands_pruned: 7,
                unverified: None,
            }),
            inventory: vec![SlotLevel {
                slot: 1,
                count: 3,
                capacity: 10,
                enabled: true,
                jammed: false,
            }],
            audit: vec![],
        };
        let json = serde_json::to_string(&t).unwrap();
        assert!(
            !json.contains("audit"),
            "no audit key without actions: {json}"
        );
        let back: Telemetry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        // The disk fields came later: a message without them still parses.
        let mut older: serde_json::Value = serde_json::from_str(&json).unwrap();
        let o = older.as_object_mut().unwrap();
        assert_eq!(
            o.remove("disk_free_bytes"),
            Some(serde_json::json!(1u64 << 30))
        );
        assert_eq!(o.remove("disk_low"), Some(serde_json::json!(false)));
        let back: Telemetry = serde_json::from_value(older).unwrap();
        assert_eq!((back.disk_free_bytes, back.disk_low), (None, false));
        let with = Telemetry {
            audit: vec![AuditEvent {
                at: 6,
                technician: "Li".into(),
                action: "restock".into(),
                detail: "slot 1: 0 -> 10".into(),
            }],
            ..t
        };
        let back: Telemetry = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_verify_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let r = verify_command(&bytes, &keys(), ME, NOW, &VerifyOptions::default());
            prop_assert!(r.is_err());
            prop_assert!(r.unwrap_err().trusted.is_none());
        }

        #[test]
        fn arbitrary_three_part_base64_tokens_never_verify(
            h in proptest::collection::vec(any::<u8>(), 0..80),
            p in proptest::collection::vec(any::<u8>(), 0..200),
            s in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let t = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(h),
                URL_SAFE_NO_PAD.encode(p),
                URL_SAFE_NO_PAD.encode(s)
            );
            prop_assert!(verify(&t).is_err());
        }

        #[test]
        fn any_single_byte_change_to_a_valid_token_is_rejected(idx in 0usize..10_000, byte in any::<u8>()) {
            let t = signed(&claims()).into_bytes();
            let i = idx % t.len();
            prop_assume!(t[i] != byte);
            let mut m = t.clone();
            m[i] = byte;
            // Whitespace at the very ends is trimmed by design; that is not a change
            // to the token itself.
            let trimmed_same = m.trim_ascii() == t.as_slice();
            let r = verify_command(&m, &keys(), ME, NOW, &VerifyOptions::default());
            prop_assert!(r.is_err() || trimmed_same, "accepted a modified token");
        }

        #[test]
        fn an_id_is_accepted_exactly_when_it_has_1_to_128_characters_none_line_forging(
            id in proptest::collection::vec(
                prop_oneof![
                    4 => any::<char>(),
                    2 => proptest::char::range('\u{4E00}', '\u{9FFF}'),
                    1 => proptest::sample::select(LINE_FORGING.to_vec()),
                ],
                0..140,
            ).prop_map(|v| v.into_iter().collect::<String>()),
        ) {
            let mut c = claims();
            c.log_id = id.clone();
            let n = id.chars().count();
            let expect_ok = (1..=MAX_ID_LEN).contains(&n)
                && !id.chars().any(|ch| {
                    ch.is_control()
                        || LINE_FORGING.contains(&ch)
                        || ('\u{2066}'..='\u{2069}').contains(&ch)
                });
            let r = verify(&signed(&c));
            prop_assert_eq!(r.is_ok(), expect_ok, "log_id {:?} ({} chars)", id, n);
            if let Ok(cmd) = r {
                // What reaches a log line stays one line.
                prop_assert_eq!(cmd.log_id.lines().count(), 1);
            }
        }

        #[test]
        fn arbitrary_signed_claims_json_never_panics(payload in "\\PC{0,300}") {
            let t = raw_token(r#"{"alg":"EdDSA","kid":"k1"}"#, &payload);
            let _ = verify(&t);
        }
    }
}
