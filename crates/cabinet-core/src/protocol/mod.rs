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
//! - the checks must run in a fixed order with one [`Reason`](crate::Reason) per failure (size → parse
//!   → `alg` → `kid` → signature → `aud` → `exp`/`iat` → `kind`/`slot`/`qty`), and a
//!   rejection after the signature verified must still hand back the trusted IDs so the
//!   rejected reply carries `cmd_id`/`log_id`. `jsonwebtoken` folds signature, expiry
//!   and audience into one call with its own error kinds and its own order;
//! - only one algorithm is ever accepted, so algorithm negotiation is pure attack
//!   surface (the `alg: none` / HS256-with-public-key family of bugs); here the only
//!   code path is `alg == "EdDSA"` → `verify_strict`;
//! - `jsonwebtoken`'s `rust_crypto` backend brings RSA and P-256 code the cabinet never
//!   uses. The whole parser (`verify`) is ~80 lines and is fuzzed by the proptests in
//!   `tests`.
//!
//! `verify_strict` (not `verify`) is used so weak public keys and non-canonical
//! signatures are rejected, which keeps a signature from having two valid encodings.
//!
//! One file per concern, all re-exported here so every item keeps its
//! `crate::protocol::` path:
//! - `topics`: machine codes and topic names;
//! - `keys`: trusted keys and key encodings;
//! - `commands`: claims, verified commands, trusted IDs, rejections;
//! - `verify`: the compact JWS, [`verify_command`] and [`sign_command`];
//! - `documents`: the operator's signed documents (key sets), [`verify_key_set`];
//! - `replies`: command states and replies; `telemetry`: presence and telemetry;
//! - `reported`: what the cabinet runs, on `reported`;
//! - `error`: [`ProtocolError`].

mod commands;
mod documents;
mod error;
mod keys;
mod replies;
mod reported;
mod telemetry;
mod topics;
mod verify;

pub use ed25519_dalek::SigningKey;

pub use commands::{
    Command, CommandClaims, CommandKind, KIND_DISPENSE, KIND_RETURN, KIND_SLOT_DISABLE,
    KIND_SLOT_ENABLE, KIND_SLOT_SET_COUNT, KIND_TELEMETRY, MAX_ID_LEN, Rejection, TrustedIds,
    VerifyOptions,
};
pub use documents::{
    Document, DocumentReason, DocumentRefusal, DocumentVerdict, InForce, KIND_CONFIG, KIND_KEYS,
    KeyEntry, KeySet, KeySetClaims, KeySetVerdict, MAX_CONFIG_BYTES, MAX_KEY_SET_BYTES,
    MAX_KEYS_IN_SET, document_sha256, key_set_from_journal, sign_document, verify_document,
    verify_key_set,
};
pub use error::ProtocolError;
pub use keys::{
    KeyError, KeyRole, TrustedKeys, decode_public_key, decode_signing_key, encode_signing_key,
    generate_keypair, new_boot_id, public_key_base64url,
};
pub use replies::{CommandState, Evidence, Reply, ReplyState};
pub use reported::{
    ConfigReport, DocumentSource, InForceReport, KeysReport, RefusedReport, Reported,
};
pub use telemetry::{
    AuditEvent, BoardHealth, JournalFigures, Presence, SlotLevel, StateMessage, Telemetry,
};
pub use topics::{PROTOCOL_VERSION, TOPIC_PREFIX, Topics, check_machine_code};
pub use verify::{JWS_ALG, is_expired, sign_command, verify_command};

#[cfg(test)]
mod tests;
