//! A shard: an actor that owns part of the waiting pool (the buckets that hash to it) and
//! pairs the tickets placed on it.
//!
//! - [`Matchmaker`]: the pool plus the claim step, plain code: the policy picks a candidate
//!   and the seats' claim makes the pair real;
//! - [`SpillScheduler`]: when local leftovers are due at their bucket's owner node;
//! - [`ShardCore`]: everything the shard decides, time passed in;
//! - [`ClusterPort`]: where the shard hands what it cannot finish on this node;
//! - this file: the messages a shard takes, and the actor that runs the core on its thread.
//!
//! A shard never talks to sockets, never waits on another shard, and never calls cluster
//! code: it only hands things to its port.

mod claimant;
mod core;
mod matchmaker;
mod port;
mod spill;
mod spy;
mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Message};
use tandem_ids::{NodeId, TicketId};

pub use self::claimant::Claimant;
pub use self::core::ShardCore;
pub use self::matchmaker::{Matchmaker, Placed, Ticket};
pub use self::port::{Alone, ClusterPort, CrossNode, RemoteTicket};
pub use self::spill::{SpillScheduler, RECHECK};
pub use self::stats::ShardStats;
use crate::owners::BucketOwners;

/// Put a ticket in this shard's pool (pairing it at once if someone compatible waits).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Place(pub Ticket);

/// Take a ticket out of this shard's pool: its wait ended (leave, next, disconnect).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Withdraw(pub TicketId);

/// Put a ticket spilled by another node in this shard's pool: this node owns its bucket
/// cluster-wide.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PlaceRemote(pub RemoteTicket);

/// Drop the spilled tickets of a node that died, restarted or lost NATS: all of them
/// (`keep: None`), or all but those sent by its current instance in its current epoch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropHome {
    pub node: NodeId,
    /// `(instance, epoch)` of the tickets still valid.
    pub keep: Option<(u64, u32)>,
}

/// Take a spilled ticket out of this shard's pool, at its home's request: only entries of
/// other nodes, never a local user's.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WithdrawRemote(pub TicketId);

/// Send every spilled ticket held here back to its home (this node drains).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReturnRemote;

/// Drop every spilled ticket (this node lost NATS: their homes will place them again).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropRemote;

/// The cluster's bucket ownership changed: where this shard's leftovers go from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetOwners(pub Arc<BucketOwners>);

/// How often a shard looks for users whose interest wait has ended: the fallback to a random
/// partner happens within this much of the configured time.
pub const FALLBACK_TICK: Duration = Duration::from_millis(20);

/// The shard actor: runs its [`ShardCore`] on its own thread.
pub struct Shard {
    core: ShardCore,
}

impl Shard {
    /// A shard around its core.
    pub fn new(core: ShardCore) -> Self {
        Self { core }
    }
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(FALLBACK_TICK, |shard, _| shard.core.tick(Instant::now()));
        if let Some(every) = self.core.spill_every() {
            ctx.run_interval(every, |shard, _| shard.core.spill_due(Instant::now()));
        }
    }
}

impl Handler<Place> for Shard {
    type Result = ();

    fn handle(&mut self, Place(ticket): Place, _: &mut Self::Context) {
        self.core.place(ticket, Instant::now());
    }
}

impl Handler<PlaceRemote> for Shard {
    type Result = ();

    fn handle(&mut self, PlaceRemote(ticket): PlaceRemote, _: &mut Self::Context) {
        self.core.place_remote(ticket, Instant::now());
    }
}

impl Handler<Withdraw> for Shard {
    type Result = ();

    fn handle(&mut self, Withdraw(ticket): Withdraw, _: &mut Self::Context) {
        self.core.withdraw(ticket);
    }
}

impl Handler<WithdrawRemote> for Shard {
    type Result = ();

    fn handle(&mut self, WithdrawRemote(ticket): WithdrawRemote, _: &mut Self::Context) {
        self.core.withdraw_remote(ticket, Instant::now());
    }
}

impl Handler<DropHome> for Shard {
    type Result = ();

    fn handle(&mut self, DropHome { node, keep }: DropHome, _: &mut Self::Context) {
        self.core.drop_home(&node, keep);
    }
}

impl Handler<DropRemote> for Shard {
    type Result = ();

    fn handle(&mut self, _: DropRemote, _: &mut Self::Context) {
        self.core.drop_remote();
    }
}

impl Handler<ReturnRemote> for Shard {
    type Result = ();

    fn handle(&mut self, _: ReturnRemote, _: &mut Self::Context) {
        self.core.return_remote();
    }
}

impl Handler<SetOwners> for Shard {
    type Result = ();

    fn handle(&mut self, SetOwners(owners): SetOwners, _: &mut Self::Context) {
        self.core.set_owners(owners);
    }
}
