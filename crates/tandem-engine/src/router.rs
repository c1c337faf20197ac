//! The router: which shard owns a bucket on this node.
//!
//! On a node every bucket is owned by one of the local shards, chosen by hashing the bucket
//! key: that shard holds the bucket's local part, and, on the node that owns the bucket
//! cluster-wide ([`BucketOwners`](crate::owners::BucketOwners)), the tickets other nodes
//! spilled to it. Sessions only ever talk to the router.

use std::hash::BuildHasher;

use actix::Addr;
use tandem_ids::TicketId;
use tandem_match::{BucketKey, FastHasher};

use crate::shard::{Place, PlaceRemote, RemoteTicket, Shard, Ticket, Withdraw, WithdrawRemote};

/// Routes tickets to the shard that owns their bucket.
#[derive(Clone)]
pub struct Router {
    shards: Vec<Addr<Shard>>,
}

impl Router {
    /// A router over these local shards (at least one).
    pub fn new(shards: Vec<Addr<Shard>>) -> Self {
        assert!(!shards.is_empty(), "a router needs a shard");
        Self { shards }
    }

    /// The index of the shard that owns `bucket`.
    pub fn owner(&self, bucket: &BucketKey) -> usize {
        let hash = std::hash::BuildHasherDefault::<FastHasher>::default().hash_one(bucket);
        // The high bits of a multiplicative hash are the well-mixed ones.
        ((hash >> 32) % self.shards.len() as u64) as usize
    }

    /// Sends a ticket to its bucket's owner.
    pub fn place(&self, ticket: Ticket) {
        let owner = self.owner(&ticket.info.bucket);
        self.shards[owner].do_send(Place(ticket));
    }

    /// Places a ticket spilled by another node on the local shard of its bucket (this node
    /// owns the bucket cluster-wide).
    pub fn place_remote(&self, ticket: RemoteTicket) {
        let owner = self.owner(&ticket.info.bucket);
        self.shards[owner].do_send(PlaceRemote(ticket));
    }

    /// Withdraws a spilled ticket held here, at its home's request.
    pub fn withdraw_remote(&self, ticket: TicketId, bucket: &BucketKey) {
        self.shards[self.owner(bucket)].do_send(WithdrawRemote(ticket));
    }

    /// Withdraws a ticket from its bucket's owner.
    pub fn withdraw(&self, ticket: TicketId, bucket: &BucketKey) {
        self.shards[self.owner(bucket)].do_send(Withdraw(ticket));
    }

    /// The local shards.
    pub fn shards(&self) -> &[Addr<Shard>] {
        &self.shards
    }
}
