//! Sealed envelopes: every payload a node (or an operator command) puts on NATS is
//! encrypted and authenticated with the cluster key (`--cluster-key`, 32 random bytes, the
//! same on every node), so a NATS client without it can neither read a chat line nor forge
//! a heartbeat, a claim, a relay or a drain.
//!
//! The cipher is ChaCha20-Poly1305. Each sender (a node process, or one operator command)
//! draws a random 128-bit salt when it starts and seals under its own key, HKDF-SHA256 of the
//! cluster key and that salt; nonces are the sender's message counter. Nonces therefore never
//! repeat under one key without a salt collision (2^-128), however many messages and
//! restarts a cluster sees. The subject is the associated data: an envelope sealed for one
//! node's inbox is refused on any other subject.
//!
//! A sealed payload: `[1][salt: 16][counter: 8, big-endian][ciphertext][tag: 16]`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use parking_lot::Mutex;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// The layout of a sealed payload this node writes and reads.
const SEALED: u8 = 1;
const SALT: usize = 16;
const COUNTER: usize = 8;
const HEAD: usize = 1 + SALT + COUNTER;
const TAG: usize = 16;

/// Senders' keys kept for opening; beyond it the table starts over (a key is re-derived in
/// about a microsecond).
const KEYS_KEPT: usize = 1024;

/// The cluster key, as `--cluster-key` gives it.
#[derive(Clone)]
pub struct ClusterKey([u8; 32]);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// Why a cluster key is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("--cluster-key must be base64 (as `openssl rand -base64 32` prints)")]
    NotBase64,
    #[error("--cluster-key must be 32 bytes (base64 of 32 random bytes), not {0}")]
    Length(usize),
}

impl ClusterKey {
    /// The key written in base64.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Length(bytes.len()))?;
        Ok(Self(key))
    }

    /// A fresh random key, in base64 (for `tandem cluster key`).
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .expect("the system's random source works");
        STANDARD.encode(key)
    }
}

/// Why a payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed envelope")]
    Unsealed,
    #[error("sealed with another key, for another subject, or altered")]
    Forged,
}

/// Seals what this process sends and opens what it receives.
pub struct Seal {
    master: ring::hkdf::Prk,
    salt: [u8; SALT],
    key: LessSafeKey,
    counter: AtomicU64,
    /// Other senders' keys, by salt.
    keys: Mutex<HashMap<[u8; SALT], LessSafeKey>>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(..)")
    }
}

fn derive(master: &ring::hkdf::Prk, salt: &[u8; SALT]) -> LessSafeKey {
    let mut key = [0u8; 32];
    master
        .expand(&[b"tandem envelope key", salt.as_slice()], HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut key))
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key"))
}

fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

impl Seal {
    /// A sender and opener under `key`, with a salt of its own.
    pub fn new(key: &ClusterKey) -> Self {
        let master = Salt::new(HKDF_SHA256, b"tandem cluster").extract(&key.0);
        let mut salt = [0u8; SALT];
        SystemRandom::new()
            .fill(&mut salt)
            .expect("the system's random source works");
        Self {
            key: derive(&master, &salt),
            master,
            salt,
            counter: AtomicU64::new(0),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// `payload` sealed for `subject`.
    pub fn seal(&self, subject: &str, payload: &[u8]) -> Vec<u8> {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::with_capacity(HEAD + payload.len() + TAG);
        out.push(SEALED);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&counter.to_be_bytes());
        let mut body = payload.to_vec();
        self.key
            .seal_in_place_append_tag(nonce(counter), Aad::from(subject.as_bytes()), &mut body)
            .expect("a payload under 256 GiB");
        out.extend_from_slice(&body);
        out
    }

    /// The payload inside `sealed`, received on `subject`.
    pub fn open(&self, subject: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEAD + TAG || sealed[0] != SEALED {
            return Err(SealError::Unsealed);
        }
        let salt: [u8; SALT] = sealed[1..1 + SALT].try_into().expect("16 bytes");
        let counter = u64::from_be_bytes(sealed[1 + SALT..HEAD].try_into().expect("8 bytes"));
        let mut body = sealed[HEAD..].to_vec();
        let opened = {
            let mut keys = self.keys.lock();
            if keys.len() >= KEYS_KEPT && !keys.contains_key(&salt) {
                keys.clear();
            }
            let key = keys
                .entry(salt)
                .or_insert_with(|| derive(&self.master, &salt));
            key.open_in_place(nonce(counter), Aad::from(subject.as_bytes()), &mut body)
                .map(|plain| plain.len())
        };
        let len = opened.map_err(|_| SealError::Forged)?;
        body.truncate(len);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ClusterKey {
        ClusterKey::parse(&ClusterKey::generate()).unwrap()
    }

    #[test]
    fn what_one_node_seals_another_with_the_key_opens_and_nothing_else_does() {
        let key = key();
        let (a, b) = (Seal::new(&key), Seal::new(&key));
        let sealed = a.seal("tandem.t.node.b", b"a chat line");
        assert!(!sealed.windows(4).any(|w| w == b"chat"), "not readable");
        assert_eq!(b.open("tandem.t.node.b", &sealed).unwrap(), b"a chat line");
        assert_eq!(a.open("tandem.t.node.b", &sealed).unwrap(), b"a chat line");
        // Another subject, another key, any altered byte, or no seal at all: refused.
        assert_eq!(b.open("tandem.t.node.c", &sealed), Err(SealError::Forged));
        let stranger = Seal::new(&self::key());
        assert_eq!(
            stranger.open("tandem.t.node.b", &sealed),
            Err(SealError::Forged)
        );
        for at in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[at] ^= 1;
            assert!(b.open("tandem.t.node.b", &altered).is_err(), "byte {at}");
        }
        assert_eq!(
            b.open("tandem.t.node.b", b"\x02plain"),
            Err(SealError::Unsealed)
        );
        assert_eq!(b.open("tandem.t.node.b", &[]), Err(SealError::Unsealed));
    }

    #[test]
    fn two_senders_never_share_a_key_and_nonce() {
        let key = key();
        let (a, b) = (Seal::new(&key), Seal::new(&key));
        let (x, y) = (a.seal("s", b"same"), b.seal("s", b"same"));
        assert_eq!(
            x[1 + SALT..HEAD],
            y[1 + SALT..HEAD],
            "both start at counter 0"
        );
        assert_ne!(x[1..1 + SALT], y[1..1 + SALT], "under salts of their own");
        assert_ne!(x[HEAD..], y[HEAD..]);
        let again = a.seal("s", b"same");
        assert_ne!(again[HEAD..], x[HEAD..], "the counter moved on");
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert_eq!(
            ClusterKey::parse("not base64!").err(),
            Some(KeyError::NotBase64)
        );
        assert_eq!(
            ClusterKey::parse("c2hvcnQ=").err(),
            Some(KeyError::Length(5))
        );
        assert!(ClusterKey::parse(&ClusterKey::generate()).is_ok());
    }
}
