//! A shard: an actor that owns part of the waiting pool (the buckets that hash to it) and
//! pairs the tickets placed on it.
//!
//! The pairing step itself is [`Matchmaker`], plain code that the actor wraps: the policy
//! ([`WaitingPool`]) picks a candidate and the seats' claim makes the pair real. A shard never
//! talks to sockets and never waits on another shard.

mod spy;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Message};

use crate::bus::RemoteTicket;
use crate::cluster::Cluster;
use crate::ids::{ChatId, NodeId, TicketId};
use crate::matching::{BucketKey, TicketInfo, Waiting, WaitingPool};
use crate::metrics::ShardStats;
use crate::protocol::PartnerInfo;
use crate::session::{claim_pair, Claim, Pairing, Peer, Seat, SessionEvent};

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

/// A waiting user, as placed on a shard.
#[derive(Debug)]
pub struct Ticket {
    /// What the policy needs.
    pub info: TicketInfo,
    /// What the claim needs.
    pub seat: Arc<Seat>,
    /// How to tell the session it was paired.
    pub peer: Peer,
    /// What the partner will be told about this user.
    pub public: PartnerInfo,
}

impl Ticket {
    /// The ticket as sent to another node.
    pub fn remote(&self, home: NodeId, instance: u64, epoch: u32) -> RemoteTicket {
        RemoteTicket {
            home,
            instance,
            epoch,
            info: self.info.clone(),
            public: self.public.clone(),
        }
    }
}

/// The per-entry payload a shard keeps in its pool.
#[derive(Debug)]
pub enum Claimant {
    /// A user of this node: its seat can be claimed here and now.
    Local {
        seat: Arc<Seat>,
        peer: Peer,
        public: PartnerInfo,
    },
    /// A user of another node, spilled here; only its home can claim its seat.
    Remote {
        home: NodeId,
        /// The home's (instance, epoch) when it sent the ticket.
        tag: (u64, u32),
        public: PartnerInfo,
    },
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

/// What became of a placed ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Paired with a waiting user; both seats hold the pairing and both were told.
    Paired(ChatId),
    /// Paired with a user of another node, pending the claim across nodes
    /// ([`Matchmaker::take_cross_node`]).
    Proposed(ChatId),
    /// Nobody compatible waits: it waits now.
    Waiting,
    /// Its session no longer waits with it; dropped.
    Stale,
}

/// The pool plus the claim step: everything a shard does, without the actor.
#[derive(Debug, Default)]
pub struct Matchmaker {
    pool: WaitingPool<Claimant>,
    /// Candidates dropped because their session had moved on (left, re-queued, closed).
    pub stale_dropped: u64,
    /// Pairings with users of other nodes, for the driver to carry out.
    cross_node: Vec<CrossNode>,
    /// Spy mode's waiting room.
    spy: spy::SpyPool,
    /// Local candidates put back after a failed claim, for the driver to track again (in a
    /// cluster, so that they too are spilled if they keep waiting).
    restored: Vec<(TicketId, BucketKey)>,
}

impl Matchmaker {
    /// An empty matchmaker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waiting users.
    pub fn waiting(&self) -> usize {
        self.pool.len() + self.spy.len()
    }

    /// The tickets waiting (for checks and tests; not for the hot path).
    pub fn tickets(&self) -> impl Iterator<Item = &TicketInfo> {
        self.pool.tickets()
    }

    /// Pairs the ticket with the best waiting candidate that can still be claimed, or lets
    /// it wait. Candidates found stale on the way are dropped for good.
    pub fn place(&mut self, ticket: Ticket, now: Instant) -> Placed {
        let Ticket {
            info,
            seat,
            peer,
            public,
        } = ticket;
        if !seat.waits_with(info.id) {
            return Placed::Stale;
        }
        if info.spy.is_on() {
            let grouped = self.spy.place(Waiting {
                ticket: info,
                payload: Claimant::Local { seat, peer, public },
            });
            self.stale_dropped += grouped.stale;
            return match grouped.chats.last() {
                Some(&chat) => Placed::Paired(chat),
                None => Placed::Waiting,
            };
        }
        self.place_entry(info, Claimant::Local { seat, peer, public }, now)
    }

    /// Places a ticket spilled by another node (this node owns its bucket).
    pub fn place_remote(&mut self, ticket: RemoteTicket, now: Instant) -> Placed {
        let RemoteTicket {
            home,
            instance,
            epoch,
            info,
            public,
        } = ticket;
        if self.pool.contains(info.id) {
            // A ticket id already here (a duplicate, or a peer's collision with a local
            // ticket): never let it replace the entry.
            return Placed::Stale;
        }
        let claimant = Claimant::Remote {
            home,
            tag: (instance, epoch),
            public,
        };
        self.place_entry(info, claimant, now)
    }

    /// Takes out a spilled ticket at its home's request; local entries are left alone.
    pub fn withdraw_remote(&mut self, ticket: TicketId, now: Instant) -> bool {
        match self.pool.remove(ticket) {
            Some(entry) if matches!(entry.payload, Claimant::Local { .. }) => {
                self.pool.restore(entry, now);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn place_entry(&mut self, info: TicketInfo, claimant: Claimant, now: Instant) -> Placed {
        while let Some(candidate) = self.pool.take_partner(&info, now) {
            let chat = ChatId::random();
            let common = info.interests.overlap(&candidate.ticket.interests);
            // The one who waited longer (the candidate) makes the WebRTC offer.
            match (&candidate.payload, &claimant) {
                (Claimant::Local { .. }, Claimant::Local { .. }) => {
                    match pair_locally(&candidate, &info, &claimant, chat, common) {
                        Claim::Paired => return Placed::Paired(chat),
                        Claim::FirstStale => self.stale_dropped += 1,
                        Claim::SecondStale => {
                            self.restored
                                .push((candidate.ticket.id, candidate.ticket.bucket));
                            self.pool.restore(candidate, now);
                            return Placed::Stale;
                        }
                        Claim::BothStale => {
                            self.stale_dropped += 1;
                            return Placed::Stale;
                        }
                    }
                }
                (Claimant::Local { seat, .. }, Claimant::Remote { home, tag, public }) => {
                    if !seat.reserve(candidate.ticket.id, chat) {
                        self.stale_dropped += 1;
                        continue;
                    }
                    let remote = RemoteTicket {
                        home: home.clone(),
                        instance: tag.0,
                        epoch: tag.1,
                        info,
                        public: public.clone(),
                    };
                    self.cross_node.push(CrossNode::Commit {
                        chat,
                        local: into_ticket(candidate),
                        remote,
                        local_initiator: true,
                        common_interests: common,
                    });
                    return Placed::Proposed(chat);
                }
                (Claimant::Remote { home, tag, public }, Claimant::Local { seat, peer, .. }) => {
                    if !seat.reserve(info.id, chat) {
                        self.pool.restore(candidate, now);
                        return Placed::Stale;
                    }
                    let Claimant::Local { public: mine, .. } = &claimant else {
                        unreachable!("matched above")
                    };
                    self.cross_node.push(CrossNode::Commit {
                        chat,
                        local: Ticket {
                            info,
                            seat: Arc::clone(seat),
                            peer: peer.clone(),
                            public: mine.clone(),
                        },
                        remote: RemoteTicket {
                            home: home.clone(),
                            instance: tag.0,
                            epoch: tag.1,
                            info: candidate.ticket,
                            public: public.clone(),
                        },
                        local_initiator: false,
                        common_interests: common,
                    });
                    return Placed::Proposed(chat);
                }
                (Claimant::Remote { .. }, Claimant::Remote { home, tag, public }) => {
                    let Claimant::Remote {
                        home: first_home,
                        tag: first_tag,
                        public: first_public,
                    } = candidate.payload
                    else {
                        unreachable!("matched above")
                    };
                    self.cross_node.push(CrossNode::Reserve {
                        chat,
                        first: RemoteTicket {
                            home: first_home,
                            instance: first_tag.0,
                            epoch: first_tag.1,
                            info: candidate.ticket,
                            public: first_public,
                        },
                        second: RemoteTicket {
                            home: home.clone(),
                            instance: tag.0,
                            epoch: tag.1,
                            info,
                            public: public.clone(),
                        },
                        common_interests: common,
                    });
                    return Placed::Proposed(chat);
                }
            }
        }
        self.pool.insert(
            Waiting {
                ticket: info,
                payload: claimant,
            },
            now,
        );
        Placed::Waiting
    }

    /// The local candidates put back in the pool since the last call.
    pub fn take_restored(&mut self) -> std::vec::Drain<'_, (TicketId, BucketKey)> {
        self.restored.drain(..)
    }

    /// The pairings with users of other nodes chosen since the last call.
    pub fn take_cross_node(&mut self) -> std::vec::Drain<'_, CrossNode> {
        self.cross_node.drain(..)
    }

    /// Whether this ticket waits here.
    pub fn contains(&self, ticket: TicketId) -> bool {
        self.pool.contains(ticket)
    }

    /// Takes a waiting user of this node out of the pool, to send its ticket to the bucket's
    /// owner; `None` if it is not waiting here (paired, withdrawn) or is not local.
    pub fn take_local(&mut self, ticket: TicketId, now: Instant) -> Option<Ticket> {
        match self.pool.remove(ticket) {
            Some(entry) if matches!(entry.payload, Claimant::Local { .. }) => {
                Some(into_ticket(entry))
            }
            Some(entry) => {
                // Not ours to send away: put it back where it was.
                self.pool.restore(entry, now);
                None
            }
            None => None,
        }
    }

    /// Takes out the spilled tickets that `pick` selects by home and (instance, epoch).
    pub fn take_remote(&mut self, pick: impl Fn(&NodeId, (u64, u32)) -> bool) -> Vec<RemoteTicket> {
        let ids = self.pool.ids_where(
            |w| matches!(&w.payload, Claimant::Remote { home, tag, .. } if pick(home, *tag)),
        );
        ids.into_iter()
            .filter_map(|id| self.pool.remove(id))
            .filter_map(|entry| match entry.payload {
                Claimant::Remote { home, tag, public } => Some(RemoteTicket {
                    home,
                    instance: tag.0,
                    epoch: tag.1,
                    info: entry.ticket,
                    public,
                }),
                Claimant::Local { .. } => None,
            })
            .collect()
    }

    /// Places again every user whose interest wait ended by `now`, now open to a random
    /// partner. Returns the pairs made.
    pub fn tick(&mut self, now: Instant) -> u64 {
        let mut paired = 0;
        while let Some(due) = self.pool.take_due_fallback(now) {
            let placed = match due.payload {
                Claimant::Local { seat, peer, public } => self.place(
                    Ticket {
                        info: due.ticket,
                        seat,
                        peer,
                        public,
                    },
                    now,
                ),
                remote @ Claimant::Remote { .. } => self.place_entry(due.ticket, remote, now),
            };
            if let Placed::Paired(_) = placed {
                paired += 1;
            }
        }
        paired
    }

    /// Takes a ticket out; `false` if it was not here (already paired or dropped).
    pub fn withdraw(&mut self, ticket: TicketId) -> bool {
        self.pool.remove(ticket).is_some() || self.spy.remove(ticket)
    }
}

/// Claims two local users' seats together and tells both.
fn pair_locally(
    candidate: &Waiting<Claimant>,
    info: &TicketInfo,
    newcomer: &Claimant,
    chat: ChatId,
    common: Vec<String>,
) -> Claim {
    let (
        Claimant::Local {
            seat: candidate_seat,
            peer: candidate_peer,
            public: candidate_public,
        },
        Claimant::Local { seat, peer, public },
    ) = (&candidate.payload, newcomer)
    else {
        unreachable!("both local")
    };
    let claim = claim_pair(
        (candidate_seat, candidate.ticket.id),
        (seat, info.id),
        || {
            let for_candidate = Pairing {
                chat,
                partner: peer.clone(),
                initiator: true,
                common_interests: common.clone(),
                partner_info: public.clone(),
                group: None,
            };
            let for_newcomer = Pairing {
                chat,
                partner: candidate_peer.clone(),
                initiator: false,
                common_interests: common,
                partner_info: candidate_public.clone(),
                group: None,
            };
            (for_candidate, for_newcomer)
        },
    );
    if claim == Claim::Paired {
        candidate_peer.send(SessionEvent::SeatChanged);
        peer.send(SessionEvent::SeatChanged);
    }
    claim
}

/// A local pool entry as a ticket again.
fn into_ticket(entry: Waiting<Claimant>) -> Ticket {
    let Claimant::Local { seat, peer, public } = entry.payload else {
        unreachable!("only local entries become tickets")
    };
    Ticket {
        info: entry.ticket,
        seat,
        peer,
        public,
    }
}

/// The shard actor.
pub struct Shard {
    matchmaker: Matchmaker,
    /// Gauges and counters for `/metrics`, shared with the exporter.
    stats: Arc<ShardStats>,
    /// In a cluster: where leftovers go and cross-node pairings are carried out.
    cluster: Option<Arc<Cluster>>,
    /// Local tickets in the order they started waiting here, to send the ones that waited
    /// `spill_after` to their bucket's owner (ids already gone are skipped).
    arrivals: VecDeque<(Instant, TicketId, BucketKey)>,
    /// Local tickets that could not be spilled when due (this node owns their bucket, or is
    /// cut off), by when to look again: ownership may move. Kept apart from `arrivals` so
    /// that both stay in time order, and looked at every [`RECHECK`], not every tick, so a
    /// bucket owner with many waiting users does not churn through them.
    rechecks: VecDeque<(Instant, TicketId, BucketKey)>,
}

/// How long a ticket that could not be spilled waits before the shard looks again.
const RECHECK: Duration = Duration::from_secs(1);

impl Shard {
    /// A shard reporting into `stats`, alone or in a cluster.
    pub fn new(stats: Arc<ShardStats>, cluster: Option<Arc<Cluster>>) -> Self {
        Self {
            matchmaker: Matchmaker::new(),
            stats,
            cluster,
            arrivals: VecDeque::new(),
            rechecks: VecDeque::new(),
        }
    }

    fn publish(&self) {
        self.stats
            .waiting
            .store(self.matchmaker.waiting() as u64, Ordering::Relaxed);
        self.stats
            .stale_dropped
            .store(self.matchmaker.stale_dropped, Ordering::Relaxed);
    }

    /// Counts a placement and hands cross-node pairings to the cluster.
    fn placed(&mut self, placed: Placed, ticket: TicketId, bucket: BucketKey, now: Instant) {
        match placed {
            Placed::Paired(_) => {
                self.stats.matches.fetch_add(1, Ordering::Relaxed);
            }
            Placed::Waiting if self.cluster.is_some() => {
                self.arrivals.push_back((now, ticket, bucket))
            }
            Placed::Waiting | Placed::Stale | Placed::Proposed(_) => {}
        }
        self.carry_out_cross_node(now);
    }

    /// Tracks again the local candidates the matchmaker put back.
    fn track_restored(&mut self, now: Instant) {
        if self.cluster.is_none() {
            self.matchmaker.take_restored();
            return;
        }
        for (ticket, bucket) in self.matchmaker.take_restored() {
            self.arrivals.push_back((now, ticket, bucket));
        }
    }

    fn carry_out_cross_node(&mut self, now: Instant) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        for proposal in self.matchmaker.take_cross_node() {
            cluster.propose(proposal, now);
        }
    }

    /// Sends the local tickets that waited `spill_after` here to their bucket's global owner,
    /// when that is another node.
    fn spill(&mut self, now: Instant) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let spill_after = cluster.settings.spill_after;
        let mut not_now = Vec::new();
        while let Some(&(since, ticket, bucket)) = self.arrivals.front() {
            if now.saturating_duration_since(since) < spill_after {
                break;
            }
            self.arrivals.pop_front();
            if let Some(ticket) = self.try_spill(&cluster, ticket, bucket, now) {
                not_now.push(ticket);
            }
        }
        while let Some(&(due, ticket, bucket)) = self.rechecks.front() {
            if due > now {
                break;
            }
            self.rechecks.pop_front();
            if let Some(ticket) = self.try_spill(&cluster, ticket, bucket, now) {
                not_now.push(ticket);
            }
        }
        for (ticket, bucket) in not_now {
            self.rechecks.push_back((now + RECHECK, ticket, bucket));
        }
    }

    /// Spills a local ticket still waiting here to its bucket's owner; returns it when it
    /// cannot go now (this node owns the bucket, or is cut off from the others).
    fn try_spill(
        &mut self,
        cluster: &Cluster,
        ticket: TicketId,
        bucket: BucketKey,
        now: Instant,
    ) -> Option<(TicketId, BucketKey)> {
        if !self.matchmaker.contains(ticket) {
            return None; // Paired or withdrawn meanwhile.
        }
        let Some(owner) = cluster.spill_target(&bucket) else {
            return Some((ticket, bucket));
        };
        if let Some(local) = self.matchmaker.take_local(ticket, now) {
            if let Err(local) = cluster.spill(local, owner, now) {
                // Cut off from NATS meanwhile: it waits on here.
                let placed = self.matchmaker.place(*local, now);
                if let Placed::Paired(_) = placed {
                    self.stats.matches.fetch_add(1, Ordering::Relaxed);
                }
                return (placed == Placed::Waiting).then_some((ticket, bucket));
            }
        }
        None
    }
}

/// How often a shard looks for users whose interest wait has ended: the fallback to a random
/// partner happens within this much of the configured time.
pub const FALLBACK_TICK: Duration = Duration::from_millis(20);

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(FALLBACK_TICK, |shard, _| {
            let now = Instant::now();
            let paired = shard.matchmaker.tick(now);
            shard.carry_out_cross_node(now);
            shard.track_restored(now);
            if paired > 0 {
                shard.stats.matches.fetch_add(paired, Ordering::Relaxed);
                shard.publish();
            }
        });
        if let Some(cluster) = &self.cluster {
            let every =
                (cluster.settings.spill_after / 2).clamp(Duration::from_millis(1), FALLBACK_TICK);
            ctx.run_interval(every, |shard, _| {
                shard.spill(Instant::now());
                shard.publish();
            });
        }
    }
}

impl Handler<Place> for Shard {
    type Result = ();

    fn handle(&mut self, Place(ticket): Place, _: &mut Self::Context) {
        let now = Instant::now();
        let (id, bucket) = (ticket.info.id, ticket.info.bucket);
        let placed = self.matchmaker.place(ticket, now);
        self.placed(placed, id, bucket, now);
        self.track_restored(now);
        self.publish();
    }
}

impl Handler<PlaceRemote> for Shard {
    type Result = ();

    fn handle(&mut self, PlaceRemote(ticket): PlaceRemote, _: &mut Self::Context) {
        let now = Instant::now();
        let placed = self.matchmaker.place_remote(ticket, now);
        // A remote ticket never spills again from here: it is at its owner.
        if let Placed::Paired(_) = placed {
            self.stats.matches.fetch_add(1, Ordering::Relaxed);
        }
        self.carry_out_cross_node(now);
        self.track_restored(now);
        self.publish();
    }
}

impl Handler<Withdraw> for Shard {
    type Result = ();

    fn handle(&mut self, Withdraw(ticket): Withdraw, _: &mut Self::Context) {
        if !self.matchmaker.withdraw(ticket) {
            if let Some(cluster) = &self.cluster {
                // Spilled between the session's withdrawal and this one: follow it.
                cluster.withdraw_spilled(ticket);
            }
        }
        self.publish();
    }
}

impl Handler<WithdrawRemote> for Shard {
    type Result = ();

    fn handle(&mut self, WithdrawRemote(ticket): WithdrawRemote, _: &mut Self::Context) {
        self.matchmaker.withdraw_remote(ticket, Instant::now());
        self.publish();
    }
}

impl Handler<DropHome> for Shard {
    type Result = ();

    fn handle(&mut self, DropHome { node, keep }: DropHome, _: &mut Self::Context) {
        let stale = |home: &NodeId, (instance, epoch): (u64, u32)| {
            *home == node
                && match keep {
                    None => true,
                    Some((live, current)) => instance != live || epoch < current,
                }
        };
        let dropped = self.matchmaker.take_remote(stale).len();
        if dropped > 0 {
            tracing::info!(node = %node, dropped, "dropped tickets of a dead node");
        }
        self.publish();
    }
}

impl Handler<DropRemote> for Shard {
    type Result = ();

    fn handle(&mut self, _: DropRemote, _: &mut Self::Context) {
        self.matchmaker.take_remote(|_, _| true);
        self.publish();
    }
}

impl Handler<ReturnRemote> for Shard {
    type Result = ();

    fn handle(&mut self, _: ReturnRemote, _: &mut Self::Context) {
        if let Some(cluster) = &self.cluster {
            for ticket in self.matchmaker.take_remote(|_, _| true) {
                cluster.return_home(&ticket);
            }
        }
        self.publish();
    }
}
