//! Which node owns a bucket cluster-wide: rendezvous hashing over the live nodes' shards.

use std::hash::{BuildHasher, Hash, Hasher};

use tandem_ids::NodeId;
use tandem_match::{BucketKey, FastHasher};

/// The most shards a node counts with in ownership (its weight), whatever it announces.
pub const MAX_SHARDS: u16 = 256;

/// Which node owns each bucket cluster-wide, as the cluster last told this node: the
/// highest rendezvous score over every live, non-draining (node, shard). Every node computes
/// the same owners from the same live set, and a node that joins or leaves moves only the
/// buckets it wins or held. A value: the cluster hands each shard a copy when the live set
/// changes, and the shard decides where its leftovers go without asking anyone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketOwners {
    me: NodeId,
    /// Live, non-draining nodes (this one too, unless it drains) and their weights, by id.
    nodes: Vec<(NodeId, u16)>,
    /// Whether this node sends tickets away now: it reaches the others and does not drain.
    spilling: bool,
}

impl BucketOwners {
    /// Owners among `nodes` (id and shard count, this node included if it owns buckets);
    /// `spilling` says whether this node may send its leftovers to them now.
    pub fn new(me: NodeId, nodes: impl IntoIterator<Item = (NodeId, u16)>, spilling: bool) -> Self {
        let mut nodes: Vec<(NodeId, u16)> = nodes
            .into_iter()
            .map(|(node, shards)| (node, shards.clamp(1, MAX_SHARDS)))
            .collect();
        nodes.sort();
        nodes.dedup_by(|a, b| a.0 == b.0);
        Self {
            me,
            nodes,
            spilling,
        }
    }

    /// The node that owns `bucket` cluster-wide; `None` only if every node drains.
    pub fn owner(&self, bucket: &BucketKey) -> Option<&NodeId> {
        self.nodes
            .iter()
            .flat_map(|(node, shards)| (0..*shards).map(move |shard| (node, shard)))
            .max_by_key(|(node, shard)| (score(bucket, node, *shard), *node))
            .map(|(node, _)| node)
    }

    /// Where a local ticket of `bucket` that found no partner here should go: its owner,
    /// when that is another node and this node may send tickets away now.
    pub fn spill_target(&self, bucket: &BucketKey) -> Option<&NodeId> {
        if !self.spilling {
            return None;
        }
        self.owner(bucket).filter(|owner| **owner != self.me)
    }
}

/// Rendezvous score of a (node, shard) for a bucket.
fn score(bucket: &BucketKey, node: &NodeId, shard: u16) -> u64 {
    let mut state = std::hash::BuildHasherDefault::<FastHasher>::default().build_hasher();
    bucket.hash(&mut state);
    node.hash(&mut state);
    shard.hash(&mut state);
    // Finish with a strong mix: the fast hasher's low bits alone would favour some nodes.
    splitmix(state.finish())
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
