//! A shard: an actor that owns part of the waiting pool (the buckets that hash to it) and
//! pairs the tickets placed on it.
//!
//! The pairing step itself is [`Matchmaker`], plain code that the actor wraps: the policy
//! ([`WaitingPool`]) picks a candidate and the seats' claim makes the pair real. A shard never
//! talks to sockets and never waits on another shard.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Message};

use crate::ids::{ChatId, TicketId};
use crate::matching::{TicketInfo, Waiting, WaitingPool};
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

/// The per-entry payload a shard keeps in its pool.
#[derive(Debug)]
pub struct Claimant {
    seat: Arc<Seat>,
    peer: Peer,
    public: PartnerInfo,
}

/// What became of a placed ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Paired with a waiting user; both seats hold the pairing and both were told.
    Paired(ChatId),
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
}

impl Matchmaker {
    /// An empty matchmaker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waiting users.
    pub fn waiting(&self) -> usize {
        self.pool.len()
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
        while let Some(candidate) = self.pool.take_partner(&info, now) {
            let chat = ChatId::random();
            let common = info.interests.overlap(&candidate.ticket.interests);
            let claim = claim_pair(
                (&candidate.payload.seat, candidate.ticket.id),
                (&seat, info.id),
                || {
                    // The one who waited longer makes the WebRTC offer.
                    let for_candidate = Pairing {
                        chat,
                        partner: peer.clone(),
                        initiator: true,
                        common_interests: common.clone(),
                        partner_info: public.clone(),
                    };
                    let for_newcomer = Pairing {
                        chat,
                        partner: candidate.payload.peer.clone(),
                        initiator: false,
                        common_interests: common,
                        partner_info: candidate.payload.public.clone(),
                    };
                    (for_candidate, for_newcomer)
                },
            );
            match claim {
                Claim::Paired => {
                    candidate.payload.peer.send(SessionEvent::SeatChanged);
                    peer.send(SessionEvent::SeatChanged);
                    return Placed::Paired(chat);
                }
                Claim::FirstStale => self.stale_dropped += 1,
                Claim::SecondStale => {
                    self.pool.restore(candidate, now);
                    return Placed::Stale;
                }
                Claim::BothStale => {
                    self.stale_dropped += 1;
                    return Placed::Stale;
                }
            }
        }
        self.pool.insert(
            Waiting {
                ticket: info,
                payload: Claimant { seat, peer, public },
            },
            now,
        );
        Placed::Waiting
    }

    /// Places again every user whose interest wait ended by `now`, now open to a random
    /// partner. Returns the pairs made.
    pub fn tick(&mut self, now: Instant) -> u64 {
        let mut paired = 0;
        while let Some(due) = self.pool.take_due_fallback(now) {
            let Claimant { seat, peer, public } = due.payload;
            let ticket = Ticket {
                info: due.ticket,
                seat,
                peer,
                public,
            };
            if let Placed::Paired(_) = self.place(ticket, now) {
                paired += 1;
            }
        }
        paired
    }

    /// Takes a ticket out; `false` if it was not here (already paired or dropped).
    pub fn withdraw(&mut self, ticket: TicketId) -> bool {
        self.pool.remove(ticket).is_some()
    }
}

/// The shard actor.
pub struct Shard {
    matchmaker: Matchmaker,
    /// Gauges and counters for `/metrics`, shared with the exporter.
    stats: Arc<ShardStats>,
}

impl Shard {
    /// A shard reporting into `stats`.
    pub fn new(stats: Arc<ShardStats>) -> Self {
        Self {
            matchmaker: Matchmaker::new(),
            stats,
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
}

/// How often a shard looks for users whose interest wait has ended: the fallback to a random
/// partner happens within this much of the configured time.
pub const FALLBACK_TICK: Duration = Duration::from_millis(20);

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(FALLBACK_TICK, |shard, _| {
            let paired = shard.matchmaker.tick(Instant::now());
            if paired > 0 {
                shard.stats.matches.fetch_add(paired, Ordering::Relaxed);
                shard.publish();
            }
        });
    }
}

impl Handler<Place> for Shard {
    type Result = ();

    fn handle(&mut self, Place(ticket): Place, _: &mut Self::Context) {
        if let Placed::Paired(_) = self.matchmaker.place(ticket, Instant::now()) {
            self.stats.matches.fetch_add(1, Ordering::Relaxed);
        }
        self.publish();
    }
}

impl Handler<Withdraw> for Shard {
    type Result = ();

    fn handle(&mut self, Withdraw(ticket): Withdraw, _: &mut Self::Context) {
        self.matchmaker.withdraw(ticket);
        self.publish();
    }
}
