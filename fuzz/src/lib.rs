//! What the fuzz targets (`fuzz_targets/`) and the seed corpus writer (`examples/seeds.rs`)
//! share: the fixed keys a target opens and verifies with, and the layout of the frame
//! guard's input. A seed made with these is one the targets read as intended.

use std::sync::Arc;
use std::time::Duration;

use tandem_proto::MAX_FRAME_BYTES;
use tandem_server::cluster::seal::{ClusterKey, Seal};
use tandem_server::entitlement::EntitlementKey;
use tandem_server::session::JoinRules;

/// The cluster key the `envelope` target opens with (base64 of 32 bytes, not secret).
pub const CLUSTER_KEY: &str = "ZnV6ei1rZXktZm9yLXRhbmRlbS1mdXp6LXRhcmdldHM=";

/// The subject sealed envelopes travel on, their associated data.
pub const SUBJECT: &str = "tandem.fuzz.node.a";

/// The entitlement secret of the `client_msg` target's join rules: a seed's token signed
/// with it reaches the premium branches of the preferences check.
pub const ENTITLEMENT_SECRET: &str = "fuzz-entitlement-secret";

/// A seal under [`CLUSTER_KEY`].
pub fn seal() -> Seal {
    Seal::new(&ClusterKey::parse(CLUSTER_KEY).expect("a 32-byte base64 key"))
}

/// A node's join rules, with entitlements verified under [`ENTITLEMENT_SECRET`].
pub fn join_rules() -> JoinRules {
    JoinRules {
        entitlements: Some(Arc::new(EntitlementKey::new(ENTITLEMENT_SECRET))),
        default_interest_wait: Duration::from_secs(5),
        max_interest_wait: Duration::from_secs(60),
    }
}

/// The `frames` target's input: one byte for the frame limit, two for the way the stream
/// is cut into chunks, then the bytes of the stream.
#[derive(Clone, Copy, Debug)]
pub struct FramesInput<'a> {
    /// The frame (and message) limit the guard checks against.
    pub max_frame: usize,
    /// Seeds the chunk lengths of the third way of cutting the stream.
    pub cuts: u16,
    /// The bytes a client sends.
    pub stream: &'a [u8],
}

impl<'a> FramesInput<'a> {
    /// Reads an input; `None` when it is shorter than its three leading bytes.
    ///
    /// A limit byte with its top bit set stands for the server's limit ([`MAX_FRAME_BYTES`]);
    /// others for a small limit of 8 bytes per unit (0 to 1,016), so that short inputs
    /// cross it too.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&[limit, a, b], stream) = data.split_first_chunk::<3>()?;
        Some(Self {
            max_frame: if limit & 0x80 != 0 {
                MAX_FRAME_BYTES
            } else {
                usize::from(limit) * 8
            },
            cuts: u16::from_le_bytes([a, b]),
            stream,
        })
    }

    /// The bytes that [`parse`](Self::parse) reads back as `stream` under the server's
    /// limit, cut by `cuts`.
    pub fn encode(cuts: u16, stream: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80];
        out.extend_from_slice(&cuts.to_le_bytes());
        out.extend_from_slice(stream);
        out
    }

    /// The stream cut into chunks of 1 to 64 bytes, their lengths drawn from `cuts`.
    pub fn chunks(&self) -> impl Iterator<Item = &'a [u8]> {
        // xorshift16: no allocation, and every seed but 0 gives a long cycle.
        let mut state = self.cuts | 1;
        let mut rest = self.stream;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            state ^= state << 7;
            state ^= state >> 9;
            state ^= state << 8;
            let len = (usize::from(state) % 64 + 1).min(rest.len());
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            Some(chunk)
        })
    }
}
