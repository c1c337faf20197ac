//! Who is in the cluster, and who owns a bucket: pure state, time passed in.
//!
//! Every node hears every heartbeat and computes the same answers from them: a node silent
//! for `timeout` is dead; a bucket's global owner is chosen by rendezvous hashing over the
//! live, non-draining shards, so a node that joins or leaves moves only the buckets it wins
//! or held ([`BucketOwners`]). The owner is a node; on it, the bucket's local shard keeps the
//! spilled tickets beside its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tandem_engine::owners::BucketOwners;
use tandem_ids::NodeId;
use tandem_match::BucketKey;

use crate::bus::NodeStatus;

/// The most nodes one node keeps track of (a bound against a buggy or hostile publisher
/// inventing names).
pub const MAX_NODES: usize = 1024;

/// A node as last heard.
#[derive(Clone, Debug)]
pub struct Member {
    pub status: NodeStatus,
    pub last_seen: Instant,
    /// Matches per second over the last two heartbeats.
    pub matches_per_sec: f64,
}

/// What changed in the live set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Joined(NodeId),
    /// Silent too long, or gone from the cluster.
    Died(NodeId),
    /// Started draining: it keeps its chats but owns no buckets.
    Draining(NodeId),
    /// Restarted under the same id: everything of the old instance is gone (as if it
    /// died: its chats end, its tickets go, seats held for its users wait again), and the
    /// new one joined (seats held for the new instance's users stay held, where the seat
    /// knows the instance it was held for).
    Restarted(NodeId),
    /// Reconnected to NATS (now in this epoch): it dropped the tickets it held for others
    /// and took back the ones it had sent away before.
    Reconnected(NodeId, u32),
}

/// The cluster as this node sees it.
#[derive(Debug)]
pub struct Membership {
    me: NodeId,
    my_shards: u16,
    /// A node silent this long is dead.
    timeout: Duration,
    /// Other nodes by id (ordered, so every listing is stable).
    others: BTreeMap<NodeId, Member>,
    /// Whether this node drains (then it owns nothing).
    draining: bool,
}

impl Membership {
    /// A cluster of one: this node.
    pub fn new(me: NodeId, my_shards: u16, timeout: Duration) -> Self {
        Self {
            me,
            my_shards: my_shards.max(1),
            timeout,
            others: BTreeMap::new(),
            draining: false,
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// Records a heartbeat (this node's own are ignored).
    pub fn observe(&mut self, status: NodeStatus, now: Instant) -> Option<Change> {
        if status.node == self.me {
            return None;
        }
        let id = status.node.clone();
        let full = self.others.len() >= MAX_NODES;
        match self.others.get_mut(&id) {
            Some(member) => {
                let secs = now
                    .saturating_duration_since(member.last_seen)
                    .as_secs_f64();
                if secs > 0.0 {
                    let delta = status.matches.saturating_sub(member.status.matches);
                    member.matches_per_sec = delta as f64 / secs;
                }
                let change = if status.instance != member.status.instance {
                    Some(Change::Restarted(id))
                } else if status.epoch != member.status.epoch {
                    Some(Change::Reconnected(id, status.epoch))
                } else if status.draining && !member.status.draining {
                    Some(Change::Draining(id))
                } else {
                    None
                };
                member.status = status;
                member.last_seen = now;
                change
            }
            None if full => None,
            None => {
                let draining = status.draining;
                self.others.insert(
                    id.clone(),
                    Member {
                        status,
                        last_seen: now,
                        matches_per_sec: 0.0,
                    },
                );
                // A node first heard while already draining owns nothing either way.
                (!draining).then_some(Change::Joined(id))
            }
        }
    }

    /// Declares dead (and forgets) every node silent for `timeout` by `now`.
    pub fn sweep(&mut self, now: Instant) -> Vec<Change> {
        let timeout = self.timeout;
        let dead: Vec<NodeId> = self
            .others
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.last_seen) >= timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            self.others.remove(id);
        }
        dead.into_iter().map(Change::Died).collect()
    }

    /// After this node could not hear anyone (its NATS connection was down), everyone gets
    /// a fresh `timeout` to be heard again before being declared dead.
    pub fn forgive_silence(&mut self, now: Instant) {
        for member in self.others.values_mut() {
            member.last_seen = now;
        }
    }

    /// Marks this node as draining: it gives up every bucket.
    pub fn set_draining(&mut self) {
        self.draining = true;
    }

    /// Whether `node` is this node or a live one.
    pub fn is_live(&self, node: &NodeId) -> bool {
        *node == self.me || self.others.contains_key(node)
    }

    /// What `node` last announced, if it is live.
    pub fn status(&self, node: &NodeId) -> Option<&NodeStatus> {
        self.others.get(node).map(|m| &m.status)
    }

    /// Whether any other node is live.
    pub fn has_others(&self) -> bool {
        !self.others.is_empty()
    }

    /// The other live nodes.
    pub fn others(&self) -> impl Iterator<Item = (&NodeId, &Member)> {
        self.others.iter()
    }

    /// Who owns which bucket, by this view: every live, non-draining node (this one too,
    /// unless it drains). `spilling` says whether this node may send tickets away now.
    pub fn owners(&self, spilling: bool) -> BucketOwners {
        let mine = (!self.draining).then(|| (self.me.clone(), self.my_shards));
        let theirs = self
            .others
            .iter()
            .filter(|(_, m)| !m.status.draining)
            .map(|(id, m)| (id.clone(), m.status.shards));
        BucketOwners::new(self.me.clone(), mine.into_iter().chain(theirs), spilling)
    }

    /// The node that owns `bucket` cluster-wide (see [`BucketOwners::owner`]); `None` only
    /// if every node drains.
    pub fn owner(&self, bucket: &BucketKey) -> Option<NodeId> {
        self.owners(false).owner(bucket).cloned()
    }
}

#[cfg(test)]
mod tests {
    use tandem_match::{Lang, Mode};

    use super::*;

    fn status(node: &str, shards: u16) -> NodeStatus {
        NodeStatus::new(NodeId(node.into()), shards, 1)
    }

    fn buckets() -> Vec<BucketKey> {
        let langs = [
            "en", "de", "fr", "es", "pt", "ru", "ja", "zh", "ar", "hi", "it", "pl",
        ];
        let mut out = Vec::new();
        for mode in [Mode::Text, Mode::Video] {
            for lang in langs {
                for suffix in ["", "a", "b", "c", "d", "e", "f", "g"] {
                    out.push(BucketKey {
                        mode,
                        lang: Lang::parse(&format!("{lang}{suffix}")).unwrap(),
                    });
                }
            }
        }
        out
    }

    #[test]
    fn every_node_computes_the_same_owner() {
        let now = Instant::now();
        let views: Vec<Membership> = ["a", "b", "c"]
            .iter()
            .map(|me| {
                let mut m = Membership::new(NodeId(me.to_string()), 2, Duration::from_secs(2));
                for other in ["a", "b", "c"] {
                    m.observe(status(other, 2), now);
                }
                m
            })
            .collect();
        for bucket in buckets() {
            let owners: Vec<_> = views.iter().map(|v| v.owner(&bucket)).collect();
            assert!(owners.windows(2).all(|w| w[0] == w[1]), "{bucket:?}");
        }
    }

    #[test]
    fn a_joining_node_takes_only_buckets_it_wins_and_shares_are_fair() {
        let now = Instant::now();
        let mut m = Membership::new(NodeId("a".into()), 2, Duration::from_secs(2));
        m.observe(status("b", 2), now);
        let before: Vec<_> = buckets().iter().map(|b| m.owner(b)).collect();
        m.observe(status("c", 2), now);
        let after: Vec<_> = buckets().iter().map(|b| m.owner(b)).collect();
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(
                    a.as_ref().unwrap().0,
                    "c",
                    "a bucket moved between old nodes"
                );
                moved += 1;
            }
        }
        let n = buckets().len();
        // About a third moves to the newcomer; nothing else moves.
        assert!(moved > n / 5 && moved < n / 2, "{moved} of {n} moved");
    }

    #[test]
    fn silent_nodes_die_draining_nodes_own_nothing() {
        let t0 = Instant::now();
        let mut m = Membership::new(NodeId("a".into()), 1, Duration::from_secs(2));
        assert_eq!(
            m.observe(status("b", 1), t0),
            Some(Change::Joined(NodeId("b".into())))
        );
        assert!(m.sweep(t0 + Duration::from_millis(1999)).is_empty());
        assert_eq!(
            m.sweep(t0 + Duration::from_secs(2)),
            vec![Change::Died(NodeId("b".into()))]
        );
        assert!(!m.has_others());

        let mut draining = status("c", 4);
        m.observe(draining.clone(), t0);
        draining.draining = true;
        assert_eq!(
            m.observe(draining, t0),
            Some(Change::Draining(NodeId("c".into())))
        );
        for bucket in buckets() {
            assert_eq!(m.owner(&bucket).unwrap().0, "a");
        }
        m.set_draining();
        assert_eq!(m.owner(&buckets()[0]), None);
    }

    #[test]
    fn silence_is_forgiven_after_this_node_was_cut_off() {
        let t0 = Instant::now();
        let mut m = Membership::new(NodeId("a".into()), 1, Duration::from_secs(2));
        m.observe(status("b", 1), t0);
        m.forgive_silence(t0 + Duration::from_secs(5));
        assert!(m.sweep(t0 + Duration::from_secs(6)).is_empty());
        assert!(m.is_live(&NodeId("b".into())));
    }
}
