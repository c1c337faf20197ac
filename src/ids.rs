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

/// A client's long-lived identity, kept by the client (cookie `tandem_id` or `?client_id=`)
/// and used for bans and rate limits. 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct ClientId(String);

impl ClientId {
    /// The longest client id accepted from a client.
    pub const MAX_LEN: usize = 64;

    /// A fresh random client id (128 bits, hex).
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// Accepts a client-supplied id if it is well formed; anything else is ignored by the
    /// caller, which then issues a fresh one.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
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

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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
        assert!(ClientId::parse("abc-DEF_123").is_some());
        assert!(ClientId::parse("").is_none());
        assert!(ClientId::parse("a b").is_none());
        assert!(ClientId::parse("é").is_none());
        assert!(ClientId::parse(&"a".repeat(65)).is_none());
    }
}
