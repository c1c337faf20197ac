//! Identifiers that cross the wire: sessions, chats, tickets, clients and nodes.
//!
//! 64-bit ids are written as 16 lower-case hex digits in JSON, because JavaScript numbers
//! lose precision above 2^53; bincode frames carry them as plain `u64`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, bincode::Encode, bincode::Decode)]
        pub struct $name(pub u64);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(rand::random())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:016x})"), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                u64::from_str_radix(s, 16).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                if text.is_empty() || text.len() > 16 {
                    return Err(serde::de::Error::custom(concat!(
                        stringify!($name),
                        " must be 1 to 16 hex digits"
                    )));
                }
                text.parse().map_err(|_| {
                    serde::de::Error::custom(concat!(stringify!($name), " must be hex digits"))
                })
            }
        }
    };
}

hex_id!(
    /// One WebSocket connection; unique in the cluster (random 64 bits).
    SessionId
);
hex_id!(
    /// One chat between two sessions; both sides see the same id.
    ChatId
);

/// One stay in the waiting pool. A session takes a new ticket for every join, next and
/// re-roll, so a stale ticket (left in a pool after its wait ended) never matches the new wait.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TicketId(pub u64);

impl TicketId {
    /// The next ticket id of this process: unique here, and in a cluster too, because each
    /// process counts from its own random start (two nodes would have to issue ~2^40 tickets
    /// from starts closer than that, a 2^-23 chance per pair of nodes, to meet).
    pub fn next() -> Self {
        static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let start = *START.get_or_init(rand::random);
        Self(start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

/// A client's long-lived identity: issued and signed by the server (a node accepts only ids
/// a node of its cluster issued), kept by the client in the `tandem_id` cookie or sent back
/// as `?client_id=`, and used for bans, reports and rate limits. Never shown to partners.
///
/// `Display` and `Debug` show only its first characters, so that logs can tell clients
/// apart without holding what would let anyone act as one; [`ClientId::as_str`] is the
/// whole id, for the client itself.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientId(String);

impl ClientId {
    /// The longest client id accepted from a client.
    pub const MAX_LEN: usize = 64;

    /// How many characters logs show.
    const SHORT: usize = 8;

    /// A well-formed id (1 to 64 of `A-Z a-z 0-9 _ - .`); whether a node issued it is for
    /// the issuer to check.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        ok.then(|| Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first characters, for logs.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(Self::SHORT)]
    }

    /// A 64-bit key for the pool's "never pair these two": the first 16 hex digits of an
    /// issued id (its random part), or a hash of any other.
    pub fn key(&self) -> u64 {
        match self.0.get(..16).map(|hex| u64::from_str_radix(hex, 16)) {
            Some(Ok(key)) => key,
            _ => fnv1a(self.0.as_bytes()),
        }
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.short())
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({}…)", self.short())
    }
}

/// A device hint: a random id the web page keeps in local storage and sends at the
/// handshake. Weak (a user can clear it), but what a browser offers of "the same device".
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceId(String);

impl DeviceId {
    /// A well-formed device id (8 to 64 of `A-Z a-z 0-9 _ -`); anything else is ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = (8..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.0[..8])
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

/// FNV-1a, for a stable key of an id that is not hex.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A node of the cluster. A single node without NATS has a random one too.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(pub String);

impl NodeId {
    /// A random node id: `n-` and 8 hex digits.
    pub fn random() -> Self {
        Self(format!("n-{:08x}", rand::random::<u32>()))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_round_trip_through_json_as_strings() {
        let chat = ChatId(0x00ab_cdef_0123_4567);
        let json = serde_json::to_string(&chat).unwrap();
        assert_eq!(json, "\"00abcdef01234567\"");
        assert_eq!(serde_json::from_str::<ChatId>(&json).unwrap(), chat);
    }

    #[test]
    fn hex_ids_reject_numbers_and_junk() {
        assert!(serde_json::from_str::<ChatId>("12").is_err());
        assert!(serde_json::from_str::<ChatId>("\"xyz\"").is_err());
        assert!(serde_json::from_str::<ChatId>("\"\"").is_err());
        assert!(serde_json::from_str::<ChatId>("\"00000000000000001\"").is_err());
    }

    #[test]
    fn client_ids_accept_only_safe_characters() {
        assert!(ClientId::parse("abc-DEF_123.x").is_some());
        assert!(ClientId::parse("").is_none());
        assert!(ClientId::parse("a b").is_none());
        assert!(ClientId::parse("é").is_none());
        assert!(ClientId::parse(&"a".repeat(65)).is_none());
    }

    #[test]
    fn client_ids_show_only_their_start_and_key_by_their_random_part() {
        let id = ClientId::parse("0123456789abcdef0123456789abcdef.signature").unwrap();
        assert_eq!(id.to_string(), "01234567…");
        assert!(!format!("{id:?}").contains("signature"));
        assert_eq!(id.key(), 0x0123_4567_89ab_cdef);
        let other = ClientId::parse("not-hex").unwrap();
        assert_eq!(other.key(), ClientId::parse("not-hex").unwrap().key());
        assert_ne!(other.key(), ClientId::parse("not-hey").unwrap().key());
    }

    #[test]
    fn device_ids_are_8_to_64_safe_characters() {
        assert!(DeviceId::parse("d3v1ce-id_").is_some());
        assert!(DeviceId::parse("short").is_none());
        assert!(DeviceId::parse("with space!").is_none());
        assert_eq!(
            DeviceId::parse("abcdefghij").unwrap().to_string(),
            "abcdefgh…"
        );
    }
}
