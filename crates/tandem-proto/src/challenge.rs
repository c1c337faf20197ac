//! The proof-of-work challenge of `welcome.challenge`: an ALTCHA v2 challenge, field for
//! field, so that ALTCHA's own widgets and solvers can solve it. The client echoes it back,
//! unchanged, inside its `join.proof`; the server checks its signature over the parameters
//! (their JSON with keys sorted), so a client cannot lower the work asked of it.

use serde::{Deserialize, Serialize};

/// A challenge and the server's signature of its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Challenge {
    pub parameters: ChallengeParameters,
    /// HMAC-SHA-256 of the parameters, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What to solve: find the counter whose key, derived with `algorithm` from the password
/// `nonce ‖ counter` (4 bytes, big-endian) and `salt` in `cost` iterations, begins with
/// `keyPrefix`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct ChallengeParameters {
    /// `PBKDF2/SHA-256`.
    pub algorithm: String,
    /// Iterations of the key derivation per counter tried.
    pub cost: u32,
    /// Unix seconds after which a solution is refused.
    #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Bytes of the derived key.
    #[serde(rename = "keyLength")]
    pub key_length: u32,
    /// The hex prefix the derived key must begin with.
    #[serde(rename = "keyPrefix")]
    pub key_prefix: String,
    /// The server's HMAC of the expected key, hex (lets it check a solution without
    /// deriving the key again).
    #[serde(
        rename = "keySignature",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub key_signature: Option<String>,
    /// Random, hex; also what makes each challenge one of a kind.
    pub nonce: String,
    /// Random, hex.
    pub salt: String,
    /// What the challenge is bound to, signed with the rest: `a`, a keyed hash of the
    /// address it was issued to (a solution counts only from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<std::collections::BTreeMap<String, String>>,
}
