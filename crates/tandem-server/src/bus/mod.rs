//! The bus: how nodes reach each other. One trait, two implementations:
//! [`NatsBus`](crate::cluster::NatsBus), the cluster's, and [`LocalBus`], for several nodes
//! in one process. A node that runs alone has none. Sessions and shards never see which one
//! carries their events: a partner on another node is just a
//! [`Peer`](tandem_engine::session::Peer) whose link is a [`RemoteLink`].
//!
//! Envelopes here are the inter-node vocabulary, kept apart from the client protocol and
//! from actor messages. A networked bus encodes them (bincode, behind a version byte).

mod local;

use std::sync::Arc;

pub use local::LocalBus;
use tandem_engine::session::{Identity, SessionEvent, SessionLink};
use tandem_engine::shard::RemoteTicket;
use tandem_ids::{ChatId, NodeId, SessionId, TicketId};
use tandem_match::BucketKey;
use tandem_proto::PartnerInfo;

/// What one node sends another. This is the in-memory form; [`crate::cluster::wire`] is its
/// versioned bincode form on NATS. docs/cluster.md describes each and who sends it when.
#[derive(Clone, Debug)]
pub enum Envelope {
    /// An event for a session connected to the receiving node (a relay, a chat's end).
    ToSession {
        session: SessionId,
        event: SessionEvent,
    },
    /// A ticket that found no partner on its home node in time, for the bucket's global
    /// owner, where the cluster's leftovers meet.
    Spill(RemoteTicket),
    /// The home node withdraws a spilled ticket: its wait ended (leave, next, close).
    Withdraw { ticket: TicketId, bucket: BucketKey },
    /// The owner paired two spilled tickets: the receiver (home of the first) reserves its
    /// user's seat and asks the partner's node to commit.
    Reserve(Proposal),
    /// The receiver (home of the second) pairs its user if it still waits, and answers.
    Commit(Proposal),
    /// The committing node paired its user: the reserving node completes its side.
    Committed { chat: ChatId, committer: Address },
    /// The committing node's user no longer waited: the reserved seat waits again.
    Refused { chat: ChatId },
    /// A spilled ticket goes back to its home node, which places it again if it still
    /// waits (its proposed partner was gone, or its owner changed).
    Requeue { ticket: TicketId },
    /// Membership: a node's periodic announcement of itself, to every node.
    Heartbeat(NodeStatus),
    /// An operator asks the receiving node to drain (`tandem cluster drain`).
    Drain,
    /// A node's probe of its own round trip through NATS.
    Probe { sent_at_us: u64 },
}

/// A session anywhere in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub node: NodeId,
    pub session: SessionId,
}

/// A cross-node pairing, as sent to one side's node.
#[derive(Clone, Debug)]
pub struct Proposal {
    pub chat: ChatId,
    /// The receiving side's ticket (its session is `ticket`'s on the receiving node).
    pub ticket: TicketId,
    /// The other side.
    pub partner: Address,
    /// The instance of the partner's node that the partner's ticket came from: a seat
    /// reserved for it survives that node's restart only if this is the new instance.
    /// Read from a `Reserve`; a `Commit` carries it too, and its committer does not need it.
    pub partner_instance: u64,
    pub partner_ticket: TicketId,
    pub partner_public: PartnerInfo,
    /// Whether the receiving side makes the WebRTC offer.
    pub initiator: bool,
    pub common_interests: Vec<String>,
    /// The node whose pool paired the two tickets: its copies are gone already, so the
    /// receiver withdraws its ticket only from another owner it was sent to since.
    pub owner: NodeId,
    /// Who the partner is (for a report; never told to the receiving side's user).
    pub partner_who: Arc<Identity>,
}

/// What a node says of itself in its heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node: NodeId,
    /// Shard actors on the node (its weight in bucket ownership).
    pub shards: u16,
    /// Users connected.
    pub online: u64,
    /// Users waiting in the node's pools (its own and spilled ones it owns).
    pub waiting: u64,
    /// Pairings made by the node's shards since it started.
    pub matches: u64,
    /// `next`s that ended a chat on the node since it started.
    pub skips: u64,
    /// Draining nodes own no buckets and accept no users.
    pub draining: bool,
    /// Where the node serves HTTP and WebSocket.
    pub http: String,
    /// Random per process: a node restarted under the same id is a new instance, whose
    /// sessions and tickets are all gone.
    pub instance: u64,
    /// Counts the node's NATS reconnections: after one, it has dropped the tickets it held
    /// for others and placed its own at home again, and the others must do likewise.
    pub epoch: u32,
}

impl NodeStatus {
    /// A node that has counted nothing yet (its first heartbeat; tests).
    pub fn new(node: NodeId, shards: u16, instance: u64) -> Self {
        Self {
            node,
            shards,
            online: 0,
            waiting: 0,
            matches: 0,
            skips: 0,
            draining: false,
            http: String::new(),
            instance,
            epoch: 0,
        }
    }
}

/// Node-to-node transport.
pub trait Bus: Send + Sync + 'static {
    /// Sends an envelope to `to`'s inbox without waiting. At most once, and in order for
    /// each (sender, receiver) pair, as core NATS delivers.
    fn send(&self, to: &NodeId, envelope: Envelope);

    /// Sends an envelope to every node (heartbeats), this one included.
    fn broadcast(&self, envelope: Envelope);
}

/// A link to a session on another node: events go through the bus to that node's inbox.
pub struct RemoteLink {
    pub node: NodeId,
    pub session: SessionId,
    pub bus: Arc<dyn Bus>,
}

impl SessionLink for RemoteLink {
    fn deliver(&self, event: SessionEvent) {
        self.bus.send(
            &self.node,
            Envelope::ToSession {
                session: self.session,
                event,
            },
        );
    }

    fn remote_node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}
