//! What a shard cannot finish on its own node, and the port it hands that to.
//!
//! A shard pairs the users placed on it. Two things are beyond it: a pairing with a user of
//! another node (only that user's home node can claim its seat), and a local user who waited
//! `--spill-after` here without a partner (its ticket goes to the bucket's owner node, where
//! the cluster's leftovers meet). The shard hands both to a [`ClusterPort`] and moves on; it
//! never waits for an answer and never calls cluster code. Whoever runs the cluster
//! implements the port; a node that runs alone has [`Alone`], which is never handed
//! anything a standalone pool can produce.

use std::sync::Arc;

use tandem_ids::{ChatId, NodeId, TicketId};
use tandem_match::TicketInfo;
use tandem_proto::PartnerInfo;

use super::Ticket;
use crate::session::Identity;

/// Where a shard sends what it cannot finish alone. Every call queues and returns at once.
pub trait ClusterPort: Send + Sync + 'static {
    /// A pairing with a user of another node, chosen by this shard: the claim across nodes
    /// makes it real, or puts the local user who still waits back in its pool.
    fn propose(&self, pairing: CrossNode);

    /// A local user's ticket that waited `--spill-after` here, taken out of the pool, for
    /// its bucket's owner node `owner`.
    fn spill(&self, ticket: Ticket, owner: NodeId);

    /// The session withdrew a ticket that was no longer in this shard's pool: it may have
    /// been spilled meanwhile, and its copy at the owner must go.
    fn withdrawn(&self, ticket: TicketId);

    /// A ticket another node spilled here goes back to its home (this node drains).
    fn send_home(&self, ticket: RemoteTicket);
}

/// The port of a node that runs alone: its pools hold only its own users and it knows no
/// owner to spill to, so nothing but a withdrawn ticket's notice ever reaches it.
#[derive(Debug, Default)]
pub struct Alone;

impl ClusterPort for Alone {
    fn propose(&self, pairing: CrossNode) {
        tracing::warn!(?pairing, "a cross-node pairing on a node that runs alone");
    }

    fn spill(&self, ticket: Ticket, owner: NodeId) {
        tracing::warn!(ticket = ?ticket.info.id, %owner, "a spill on a node that runs alone");
    }

    fn withdrawn(&self, _: TicketId) {}

    fn send_home(&self, ticket: RemoteTicket) {
        tracing::warn!(ticket = ?ticket.info.id, "a remote ticket on a node that runs alone");
    }
}

/// A waiting user's ticket away from home.
#[derive(Clone, Debug)]
pub struct RemoteTicket {
    /// The node the user is connected to, which owns the user's seat.
    pub home: NodeId,
    /// The home's process instance and NATS epoch when it sent the ticket: an owner that
    /// learns the home restarted or lost NATS (and so took its tickets back) drops the
    /// tickets of the older instance or epoch only.
    pub instance: u64,
    pub epoch: u32,
    pub info: TicketInfo,
    /// What the partner will be told about this user.
    pub public: PartnerInfo,
    /// Who the user is (never told to the partner).
    pub who: Arc<Identity>,
}

/// A pairing that involves a user of another node: the shard chose it, and the cluster
/// makes it real (or not) with a claim across nodes (docs/cluster.md).
#[derive(Debug)]
pub enum CrossNode {
    /// One side is local: its seat is already reserved for `chat`; the remote side's node
    /// must commit.
    Commit {
        chat: ChatId,
        local: Ticket,
        remote: RemoteTicket,
        local_initiator: bool,
        common_interests: Vec<String>,
    },
    /// Both sides are remote: the first's node reserves, then asks the second's to commit.
    Reserve {
        chat: ChatId,
        first: RemoteTicket,
        second: RemoteTicket,
        common_interests: Vec<String>,
    },
}
