//! The matchmaker: the pool plus the claim step, everything a shard does to pair the users
//! placed on it, without the actor. The policy ([`WaitingPool`]) picks a candidate; the
//! seats' claim makes the pair real; a pairing with a user of another node is left for the
//! cluster ([`CrossNode`]).

use std::sync::Arc;
use std::time::Instant;

use tandem_ids::{ChatId, NodeId, TicketId};
use tandem_match::{BucketKey, TicketInfo, Waiting, WaitingPool};
use tandem_proto::PartnerInfo;

use super::claimant::Claimant;
use super::port::{CrossNode, RemoteTicket};
use super::spy;
use crate::session::{claim_pair, Claim, Pairing, Peer, Seat, SessionEvent};

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
            who: Arc::clone(&self.peer.who),
        }
    }
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
            who,
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
            who,
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
                (
                    Claimant::Local { seat, .. },
                    Claimant::Remote {
                        home,
                        tag,
                        public,
                        who,
                    },
                ) => {
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
                        who: Arc::clone(who),
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
                (
                    Claimant::Remote {
                        home,
                        tag,
                        public,
                        who,
                    },
                    Claimant::Local { seat, peer, .. },
                ) => {
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
                            who: Arc::clone(who),
                        },
                        local_initiator: false,
                        common_interests: common,
                    });
                    return Placed::Proposed(chat);
                }
                (
                    Claimant::Remote { .. },
                    Claimant::Remote {
                        home,
                        tag,
                        public,
                        who,
                    },
                ) => {
                    let Claimant::Remote {
                        home: first_home,
                        tag: first_tag,
                        public: first_public,
                        who: first_who,
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
                            who: first_who,
                        },
                        second: RemoteTicket {
                            home: home.clone(),
                            instance: tag.0,
                            epoch: tag.1,
                            info,
                            public: public.clone(),
                            who: Arc::clone(who),
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
                Claimant::Remote {
                    home,
                    tag,
                    public,
                    who,
                } => Some(RemoteTicket {
                    home,
                    instance: tag.0,
                    epoch: tag.1,
                    info: entry.ticket,
                    public,
                    who,
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
