//! The command token: parsing the compact JWS by hand, [`verify_command`] (the one
//! place that decides whether a command may be trusted) and [`sign_command`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde::Deserialize;

use crate::reason::Reason;

use super::SigningKey;
use super::keys::check_kid;
use super::{
    Command, CommandClaims, CommandKind, KIND_SLOT_SET_COUNT, KIND_TELEMETRY, KeyRole, MAX_ID_LEN,
    ProtocolError, Rejection, TrustedIds, TrustedKeys, VerifyOptions,
};

/// The only JWS `alg` accepted (RFC 8037 §3.1).
pub const JWS_ALG: &str = "EdDSA";

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
pub(super) struct Compact<'a> {
    header: JwsHeader,
    /// `base64url(header) . base64url(payload)`: the exact bytes that were signed.
    signing_input: &'a str,
    pub(super) payload_b64: &'a str,
    signature: Signature,
}

fn b64_part(part: &str, what: &str) -> Result<Vec<u8>, Rejection> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Rejection::untrusted(Reason::Malformed, format!("{what} is not base64url")))
}

/// Splits and decodes a compact JWS and checks `alg`. No trust is placed in anything yet.
pub(super) fn parse_compact(token: &str) -> Result<Compact<'_>, Rejection> {
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

impl Compact<'_> {
    /// The header's `kid`, if any.
    pub(super) fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }
}

pub(super) fn check_signature(c: &Compact<'_>, key: &VerifyingKey) -> Result<(), Rejection> {
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
/// 4. `kid` names a trusted key (`unknown_key`) that may sign commands
///    (`key_not_allowed`: an operator key signs documents, never dispenses);
/// 5. the Ed25519 signature verifies (`bad_signature`) — nothing in the claims is read
///    before this point;
/// 6. the claims parse (`malformed`);
/// 7. `aud` equals `my_machine_code` (`wrong_target`);
/// 8. `exp`/`iat` within `leeway_secs` of `now_unix` (`expired`, `not_yet_valid`), and
///    `exp - iat` at most `max_lifetime_secs` (`lifetime_too_long`);
/// 9. `kind`, `slot`, `qty`, `count` and ID lengths are sane for the kind
///    (`unsupported_kind`, `slot_unknown`, `unsupported_quantity`, `malformed`).
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
    if !key.roles.contains(&KeyRole::Dispense) {
        return Err(Rejection::untrusted(
            Reason::KeyNotAllowed,
            format!("kid {:?} is not a dispense key", truncate(&kid)),
        ));
    }
    check_signature(&compact, &key.key)?;

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
    let Some(kind) = CommandKind::ALL
        .into_iter()
        .find(|k| k.code() == claims.kind)
    else {
        let known: Vec<&str> = CommandKind::ALL.iter().map(|k| k.code()).collect();
        return Err(reject(
            Reason::UnsupportedKind,
            format!(
                "kind {:?} is not supported ({})",
                truncate(&claims.kind),
                known.join(", ")
            ),
        ));
    };
    match kind {
        CommandKind::Dispense | CommandKind::Return => {
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
            if claims.count.is_some() {
                return Err(reject(
                    Reason::Malformed,
                    format!("count is for {KIND_SLOT_SET_COUNT} only"),
                ));
            }
        }
        CommandKind::SlotEnable | CommandKind::SlotDisable | CommandKind::SlotSetCount => {
            if claims.slot == 0 {
                return Err(reject(
                    Reason::SlotUnknown,
                    "slot numbers start at 1".into(),
                ));
            }
            if claims.qty != 0 {
                return Err(reject(
                    Reason::UnsupportedQuantity,
                    format!("{} takes no qty, got {}", kind.code(), claims.qty),
                ));
            }
            if (kind == CommandKind::SlotSetCount) != claims.count.is_some() {
                return Err(reject(
                    Reason::Malformed,
                    format!("count is required for {KIND_SLOT_SET_COUNT}, and for it only"),
                ));
            }
        }
        CommandKind::Telemetry => {
            if claims.slot != 0 || claims.qty != 0 || claims.count.is_some() {
                return Err(reject(
                    Reason::Malformed,
                    format!("{KIND_TELEMETRY} takes no slot, qty or count"),
                ));
            }
        }
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
        kind,
        slot: claims.slot,
        qty: claims.qty,
        count: claims.count,
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
    sign_compact(claims, key, kid)
}

/// Any claims as a compact JWS with header `{"alg":"EdDSA","typ":"JWT","kid":kid}`.
pub(super) fn sign_compact(
    claims: &impl serde::Serialize,
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
