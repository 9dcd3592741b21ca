//! Keys: the trusted Ed25519 public keys by `kid`, and encoding, decoding and
//! generating keys.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::MAX_ID_LEN;
use super::SigningKey;

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
    /// One kid names two different keys.
    #[error("kid {0:?} names two different keys")]
    KidTwice(String),
    /// The operating system RNG failed.
    #[error("operating system random number generator failed: {0}")]
    Rng(String),
}

/// What a trusted key may sign. A key may hold both roles, though an operator keeps them
/// apart: the dispense key lives on the backend's order servers, the operator key with
/// whoever runs the fleet (docs/PROTOCOL.md, "Keys and their roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Commands (`dispense`, `return`).
    Dispense,
    /// The cabinet's documents: key sets (and configuration).
    Operator,
}

impl KeyRole {
    /// Both roles, in wire order.
    pub const ALL: [KeyRole; 2] = [KeyRole::Dispense, KeyRole::Operator];

    /// The wire name.
    pub fn code(self) -> &'static str {
        match self {
            KeyRole::Dispense => "dispense",
            KeyRole::Operator => "operator",
        }
    }
}

/// One trusted key and what it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TrustedKey {
    pub(super) key: VerifyingKey,
    pub(super) roles: BTreeSet<KeyRole>,
}

/// The public keys this cabinet trusts, by `kid`, each with its roles. The cabinet never
/// holds a private key (except the demo key in demo mode). Several kids allow rotation
/// without downtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: BTreeMap<String, TrustedKey>,
}

impl TrustedKeys {
    /// An empty set; every command is then rejected with `unknown_key`.
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Adds a dispense key from base64url of its raw 32 bytes (a JWK's `x`).
    pub fn insert_base64url(&mut self, kid: &str, x: &str) -> Result<(), KeyError> {
        self.insert_with_role(kid, x, KeyRole::Dispense)
    }

    /// Adds `role` to the key `kid` (base64url of its raw 32 bytes). The same kid with
    /// another key is refused: one name, one key.
    pub fn insert_with_role(&mut self, kid: &str, x: &str, role: KeyRole) -> Result<(), KeyError> {
        check_kid(kid)?;
        let key = decode_public_key(x)?;
        self.add(kid, key, role)
    }

    fn add(&mut self, kid: &str, key: VerifyingKey, role: KeyRole) -> Result<(), KeyError> {
        match self.keys.get_mut(kid) {
            Some(known) if known.key != key => Err(KeyError::KidTwice(kid.to_owned())),
            Some(known) => {
                known.roles.insert(role);
                Ok(())
            }
            None => {
                let roles = BTreeSet::from([role]);
                self.keys.insert(kid.to_owned(), TrustedKey { key, roles });
                Ok(())
            }
        }
    }

    /// Builds the set from the config's `[keys]` table (dispense keys).
    pub fn from_base64url_map(map: &BTreeMap<String, String>) -> Result<TrustedKeys, KeyError> {
        let mut keys = TrustedKeys::new();
        for (kid, x) in map {
            keys.insert_base64url(kid, x)?;
        }
        Ok(keys)
    }

    /// Adds the public half of a signing key as a dispense key (demo mode and tests).
    pub fn insert_signing_key_public(
        &mut self,
        kid: &str,
        key: &SigningKey,
    ) -> Result<(), KeyError> {
        self.insert_signing_key_with_role(kid, key, KeyRole::Dispense)
    }

    /// Adds the public half of a signing key with `role` (demo mode and tests).
    pub fn insert_signing_key_with_role(
        &mut self,
        kid: &str,
        key: &SigningKey,
        role: KeyRole,
    ) -> Result<(), KeyError> {
        check_kid(kid)?;
        self.add(kid, key.verifying_key(), role)
    }

    pub(super) fn get(&self, kid: &str) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }

    /// Whether `kid` is trusted with `role`.
    pub fn allows(&self, kid: &str, role: KeyRole) -> bool {
        self.keys.get(kid).is_some_and(|k| k.roles.contains(&role))
    }

    /// The kids trusted with `role`.
    pub fn kids_with(&self, role: KeyRole) -> Vec<String> {
        self.keys
            .iter()
            .filter(|(_, k)| k.roles.contains(&role))
            .map(|(kid, _)| kid.clone())
            .collect()
    }

    /// Each key as (kid, base64url public key, roles): what a key set document lists.
    pub fn entries(&self) -> Vec<(String, String, Vec<KeyRole>)> {
        self.keys
            .iter()
            .map(|(kid, k)| {
                let x = URL_SAFE_NO_PAD.encode(k.key.to_bytes());
                (kid.clone(), x, k.roles.iter().copied().collect())
            })
            .collect()
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

pub(super) fn check_kid(kid: &str) -> Result<(), KeyError> {
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
