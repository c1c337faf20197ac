//! Everything a shard decides, without the actor: the matchmaker, when local leftovers spill
//! and where, and what goes to the cluster port. Time is passed in; the actor's handlers
//! are one call each, and tests drive this with explicit time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_ids::{NodeId, TicketId};
use tandem_match::BucketKey;

use super::matchmaker::{Matchmaker, Placed, Ticket};
use super::port::{ClusterPort, RemoteTicket};
use super::spill::SpillScheduler;
use super::stats::ShardStats;
use crate::owners::BucketOwners;

/// A shard's state and decisions.
pub struct ShardCore {
    matchmaker: Matchmaker,
    /// Gauges and counters for `/metrics`, shared with the exporter.
    stats: Arc<ShardStats>,
    /// Where pairings across nodes and spilled tickets go.
    port: Arc<dyn ClusterPort>,
    /// In a cluster: the local tickets by when they are due to spill. A node that runs alone
    /// spills nothing and keeps no schedule.
    spill: Option<SpillScheduler>,
    /// Who owns which bucket cluster-wide, as the cluster last said; `None` until it says
    /// (then nothing spills).
    owners: Option<Arc<BucketOwners>>,
    /// Reused by [`Self::spill_due`].
    due: Vec<(TicketId, BucketKey)>,
}

impl ShardCore {
    /// A shard reporting into `stats` and handing what it cannot finish to `port`; its
    /// local tickets spill after `spill_after` (in a cluster) or never (`None`).
    pub fn new(
        stats: Arc<ShardStats>,
        port: Arc<dyn ClusterPort>,
        spill_after: Option<Duration>,
    ) -> Self {
        Self {
            matchmaker: Matchmaker::new(),
            stats,
            port,
            spill: spill_after.map(SpillScheduler::new),
            owners: None,
            due: Vec::new(),
        }
    }

    /// How often the spill step should run: often enough that a ticket leaves within half
    /// of `spill_after` of its time (`None`: never).
    pub fn spill_every(&self) -> Option<Duration> {
        let spill_after = self.spill.as_ref()?.spill_after();
        Some((spill_after / 2).clamp(Duration::from_millis(1), super::FALLBACK_TICK))
    }

    /// Waiting users.
    pub fn waiting(&self) -> usize {
        self.matchmaker.waiting()
    }

    /// The matchmaker, to read (tests).
    pub fn matchmaker(&self) -> &Matchmaker {
        &self.matchmaker
    }

    /// A local user's ticket: paired with the best waiting candidate, or it waits.
    pub fn place(&mut self, ticket: Ticket, now: Instant) {
        let (id, bucket) = (ticket.info.id, ticket.info.bucket);
        let placed = self.matchmaker.place(ticket, now);
        match placed {
            Placed::Paired(_) => {
                self.stats.matches.fetch_add(1, Ordering::Relaxed);
            }
            Placed::Waiting => {
                if let Some(spill) = &mut self.spill {
                    spill.waiting(id, bucket, now);
                }
            }
            Placed::Stale | Placed::Proposed(_) => {}
        }
        self.settle(now);
    }

    /// A ticket another node spilled here (this node owns its bucket cluster-wide). It never
    /// spills again from here: it is at its owner.
    pub fn place_remote(&mut self, ticket: RemoteTicket, now: Instant) {
        if let Placed::Paired(_) = self.matchmaker.place_remote(ticket, now) {
            self.stats.matches.fetch_add(1, Ordering::Relaxed);
        }
        self.settle(now);
    }

    /// The session withdrew its ticket (leave, next, close).
    pub fn withdraw(&mut self, ticket: TicketId) {
        if !self.matchmaker.withdraw(ticket) {
            // Spilled between the session's withdrawal and this one: follow it.
            self.port.withdrawn(ticket);
        }
        self.publish();
    }

    /// A spilled ticket's home withdrew it; local users are never taken out this way.
    pub fn withdraw_remote(&mut self, ticket: TicketId, now: Instant) {
        self.matchmaker.withdraw_remote(ticket, now);
        self.publish();
    }

    /// Drops the spilled tickets of `node`: all of them (`keep: None`), or all but those of
    /// its instance and epoch `keep` (it restarted or reconnected, and sent those since).
    pub fn drop_home(&mut self, node: &NodeId, keep: Option<(u64, u32)>) {
        let stale = |home: &NodeId, (instance, epoch): (u64, u32)| {
            home == node
                && match keep {
                    None => true,
                    Some((live, current)) => instance != live || epoch < current,
                }
        };
        let dropped = self.matchmaker.take_remote(stale).len();
        if dropped > 0 {
            tracing::info!(node = %node, dropped, "dropped tickets of a node gone");
        }
        self.publish();
    }

    /// Drops every spilled ticket (this node lost the cluster: their homes place them again).
    pub fn drop_remote(&mut self) {
        self.matchmaker.take_remote(|_, _| true);
        self.publish();
    }

    /// Sends every spilled ticket held here back to its home (this node drains).
    pub fn return_remote(&mut self) {
        for ticket in self.matchmaker.take_remote(|_, _| true) {
            self.port.send_home(ticket);
        }
        self.publish();
    }

    /// The cluster's bucket ownership changed.
    pub fn set_owners(&mut self, owners: Arc<BucketOwners>) {
        self.owners = Some(owners);
    }

    /// Places again every user whose interest wait ended by `now`, now open to a random
    /// partner.
    pub fn tick(&mut self, now: Instant) {
        let paired = self.matchmaker.tick(now);
        if paired > 0 {
            self.stats.matches.fetch_add(paired, Ordering::Relaxed);
        }
        self.settle(now);
    }

    /// Sends the local tickets that waited `spill_after` here to their bucket's owner, when
    /// that is another node this node may send to now; the others are looked at again later.
    pub fn spill_due(&mut self, now: Instant) {
        let Some(spill) = &mut self.spill else {
            return;
        };
        spill.due(now, &mut self.due);
        for (ticket, bucket) in self.due.drain(..) {
            if !self.matchmaker.contains(ticket) {
                continue; // Paired or withdrawn meanwhile.
            }
            let target = self.owners.as_deref().and_then(|o| o.spill_target(&bucket));
            let Some(owner) = target else {
                spill.later(ticket, bucket, now);
                continue;
            };
            if let Some(local) = self.matchmaker.take_local(ticket, now) {
                self.port.spill(local, owner.clone());
            }
        }
        self.publish();
    }

    /// After any placement: pairings across nodes go to the port, candidates put back are
    /// tracked for spilling again, and the gauges are published.
    fn settle(&mut self, now: Instant) {
        for pairing in self.matchmaker.take_cross_node() {
            self.port.propose(pairing);
        }
        for (ticket, bucket) in self.matchmaker.take_restored() {
            if let Some(spill) = &mut self.spill {
                spill.waiting(ticket, bucket, now);
            }
        }
        self.publish();
    }

    fn publish(&self) {
        self.stats
            .waiting
            .store(self.matchmaker.waiting() as u64, Ordering::Relaxed);
        self.stats
            .stale_dropped
            .store(self.matchmaker.stale_dropped, Ordering::Relaxed);
    }
}
