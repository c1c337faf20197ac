//! The cluster: many nodes pairing and relaying over NATS, local first.
//!
//! - [`membership`]: who is alive (heartbeats) and who owns a bucket (rendezvous hashing);
//! - [`model`]: a node's cluster state as plain code: the tickets it sent away, the seats it
//!   holds for pairings across nodes, and what every envelope does to them;
//! - [`coordinator`]: the one actor that owns the model and sends cluster envelopes;
//! - [`wire`]: the versioned bincode form of the inter-node [`Envelope`](crate::bus::Envelope)s;
//! - [`nats`]: the NATS side ([`NatsBus`], the node's inbox, the operator commands).
//!
//! A ticket waits first on its home node. One that finds no partner there within
//! `--spill-after` is *spilled*: sent to its bucket's owner node, where the cluster's
//! leftovers meet. Seats never leave their home: a pairing across nodes is a claim in two
//! steps (reserve one seat, commit the other, then complete the first), so a user is never
//! paired twice. docs/cluster.md walks through each exchange.

pub mod config;
pub mod coordinator;
pub mod membership;
pub mod model;
pub mod nats;
pub mod seal;
#[cfg(test)]
mod sim;
pub mod stats;
pub mod wire;

use std::time::Duration;

pub use self::config::ClusterArgs;
pub use self::coordinator::{ClusterHandle, ClusterView, Coordinator};
pub use self::membership::{Change, Member, Membership};
pub use self::model::{ClusterModel, NodeCounts, Output, ShardOrder};
pub use self::nats::NatsBus;
pub use self::stats::ClusterStats;

/// How a node behaves in a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// The cluster's name: every subject starts with `tandem.<name>.`.
    pub name: String,
    /// How long a ticket waits on its home node before going to its bucket's owner.
    pub spill_after: Duration,
    /// How often the node announces itself.
    pub heartbeat: Duration,
    /// A node silent this long is dead.
    pub node_timeout: Duration,
    /// How long a reserved seat waits for the partner node's answer.
    pub claim_timeout: Duration,
    /// Where this node serves HTTP, as told to operators.
    pub http: String,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            name: "tandem".into(),
            spill_after: Duration::from_millis(20),
            heartbeat: Duration::from_millis(500),
            node_timeout: Duration::from_millis(2000),
            claim_timeout: Duration::from_millis(2000),
            http: String::new(),
        }
    }
}
