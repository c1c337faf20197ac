//! A node's cluster state as plain code: membership, the tickets it sent away, the seats it
//! holds for pairings across nodes, and what every envelope does to them. Inputs in, time
//! passed in, [`Output`]s out; no actors, no locks, no network.
//!
//! One owner drives it (the [`Coordinator`](super::Coordinator) actor, or a test), one input
//! at a time, and carries out its outputs. An envelope this node sends itself is handled
//! after the input that sent it, never inside it. The only shared state it touches is the
//! users' seats, through the claim operations that make a pairing all or nothing.
//!
//! A ticket waits first on its home node. One that finds no partner there within
//! `--spill-after` is *spilled*: sent to its bucket's owner node, where the cluster's
//! leftovers meet. Seats never leave their home: a pairing across nodes is a claim in two
//! steps (reserve one seat, commit the other, then complete the first), so a user is never
//! paired twice; a step that fails puts the user who still waits back in its home pool.
//! docs/cluster.md walks through each exchange.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_engine::owners::BucketOwners;
use tandem_engine::session::{claim_pair, Claim, Identity, Pairing, Peer, SessionEvent};
use tandem_engine::shard::{CrossNode, RemoteTicket, Ticket};
use tandem_ids::{ChatId, NodeId, SessionId, TicketId};
use tandem_match::BucketKey;
use tandem_proto::{EndReason, PartnerInfo};
use tracing::{debug, info, warn};

use super::membership::{Change, Member, Membership};
use super::{ClusterSettings, ClusterStats};
use crate::bus::{Address, Envelope, NodeStatus, Proposal};

/// What the driver must do after an input, in order.
#[derive(Debug)]
pub enum Output {
    /// Send an envelope to another node (or, for a probe, to this one through the network).
    Send(NodeId, Envelope),
    /// Send an envelope to every node (heartbeats).
    Broadcast(Envelope),
    /// Place a local user's ticket in its home pool again.
    Place(Ticket),
    /// Place a ticket another node spilled here in this node's pool (this node owns its
    /// bucket).
    PlaceRemote(RemoteTicket),
    /// Take a spilled ticket out of this node's pool, at its home's request.
    WithdrawRemote { ticket: TicketId, bucket: BucketKey },
    /// Tell every local shard.
    Shards(ShardOrder),
    /// The shards' new view of who owns which bucket.
    Owners(Arc<BucketOwners>),
    /// A pairing was written into this local session's seat: it should look.
    Wake(Peer),
    /// An event for a session of this node (addressed by id).
    Deliver {
        session: SessionId,
        event: SessionEvent,
    },
    /// Every local session: a chat with a user of this node is over (it died, restarted, or
    /// this node was cut off from it for longer than the node timeout).
    NodeLost(NodeId),
    /// An operator asked this node to drain.
    DrainRequested,
}

/// What every local shard is told to do with the tickets other nodes spilled to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardOrder {
    /// Drop `node`'s tickets: all (`keep: None`), or all but those of its current
    /// `(instance, epoch)`.
    DropHome {
        node: NodeId,
        keep: Option<(u64, u32)>,
    },
    /// Drop every spilled ticket (this node lost the cluster).
    DropRemote,
    /// Send every spilled ticket back to its home (this node drains).
    ReturnRemote,
}

/// How the model makes a [`Peer`] for a session on another node (a link over the bus), so
/// that a pairing written into a local seat can reach its partner.
pub trait RemotePeers: Send + Sync + 'static {
    /// The peer for the session at `address`, of the user `who`.
    fn peer(&self, address: &Address, who: Arc<Identity>) -> Peer;
}

/// What this node counts of itself, for its heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounts {
    /// Shard actors on the node.
    pub shards: u16,
    pub online: u64,
    pub waiting: u64,
    pub matches: u64,
    pub skips: u64,
}

/// A local ticket sent to its bucket's owner on another node.
#[derive(Debug)]
struct Spilled {
    ticket: Ticket,
    owner: NodeId,
    /// When it was sent: after [`ClusterModel::lease`] it is taken back and sent again, so
    /// that a message lost on the way (at-most-once delivery) strands nobody for longer.
    spilled_at: Instant,
}

/// A seat of this node held for a cross-node pairing until the partner's node answers.
#[derive(Debug)]
struct Reservation {
    ticket: Ticket,
    partner: Address,
    /// The partner's node instance, as its ticket or the owner's proposal named it: a
    /// reservation for a node that restarted is kept only if it is for the new instance.
    partner_instance: u64,
    partner_public: PartnerInfo,
    partner_who: Arc<Identity>,
    initiator: bool,
    common_interests: Vec<String>,
    reserved_at: Instant,
    deadline: Instant,
}

/// A node's cluster state.
pub struct ClusterModel {
    me: NodeId,
    settings: ClusterSettings,
    /// Counters and histograms for `/metrics`, shared with the exporter and the bus.
    stats: Arc<ClusterStats>,
    peers: Arc<dyn RemotePeers>,
    membership: Membership,
    /// Local tickets waiting at another node, by ticket.
    spilled: HashMap<TicketId, Spilled>,
    /// Local seats reserved for cross-node pairings, by chat.
    reservations: HashMap<ChatId, Reservation>,
    /// False while the NATS connection is down: then the node pairs only its own users.
    connected: bool,
    draining: bool,
    /// This process: random per start (see [`NodeStatus::instance`]).
    instance: u64,
    /// Counts this node's reconnections to the cluster (see [`NodeStatus::epoch`]).
    epoch: u32,
    /// When the connection was lost, while it is.
    disconnected_at: Option<Instant>,
    /// Envelopes this node sent itself, handled once the input that sent them is done.
    loopback: VecDeque<Envelope>,
    /// The ownership last handed to the shards (they are told only of changes).
    owners: Option<Arc<BucketOwners>>,
}

impl ClusterModel {
    /// The state of node `me` (process `instance`, `shards` shards), not yet connected.
    pub fn new(
        me: NodeId,
        instance: u64,
        shards: u16,
        settings: ClusterSettings,
        stats: Arc<ClusterStats>,
        peers: Arc<dyn RemotePeers>,
    ) -> Self {
        let membership = Membership::new(me.clone(), shards, settings.node_timeout);
        Self {
            me,
            settings,
            stats,
            peers,
            membership,
            spilled: HashMap::new(),
            reservations: HashMap::new(),
            connected: false,
            draining: false,
            instance,
            epoch: 0,
            disconnected_at: None,
            loopback: VecDeque::new(),
            owners: None,
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// How this node behaves in the cluster.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Whether the connection to the cluster is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether this node was cut off for longer than the node timeout by `now`: the others
    /// have declared it dead by then.
    pub fn is_isolated(&self, now: Instant) -> bool {
        self.disconnected_at
            .is_some_and(|since| now.saturating_duration_since(since) >= self.settings.node_timeout)
    }

    /// The other live nodes as this node sees them.
    pub fn members(&self) -> Vec<(NodeId, Member)> {
        (self.membership.others())
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }

    /// Spilled tickets and open reservations.
    pub fn in_flight(&self) -> (usize, usize) {
        (self.spilled.len(), self.reservations.len())
    }

    /// What this node announces, with these counts.
    pub fn status(&self, counts: NodeCounts) -> NodeStatus {
        NodeStatus {
            node: self.me.clone(),
            shards: counts.shards,
            online: counts.online,
            waiting: counts.waiting,
            matches: counts.matches,
            skips: counts.skips,
            draining: self.draining,
            http: self.settings.http.clone(),
            instance: self.instance,
            epoch: self.epoch,
        }
    }

    // ---- from the shards ----

    /// A shard's local ticket that waited `--spill-after`, for `owner`: sent there and
    /// remembered, or, if this node cannot send it now, placed again at home.
    pub fn spill(&mut self, ticket: Ticket, owner: NodeId, now: Instant, out: &mut Vec<Output>) {
        // The shard's view of the owners may be a step behind this one.
        if !self.connected || self.draining || !self.membership.is_live(&owner) || owner == self.me
        {
            self.requeue(ticket, out);
            return self.settle(now, out);
        }
        let remote = ticket.remote(self.me.clone(), self.instance, self.epoch);
        self.spilled.insert(
            ticket.info.id,
            Spilled {
                ticket,
                owner: owner.clone(),
                spilled_at: now,
            },
        );
        self.stats.spilled.fetch_add(1, Ordering::Relaxed);
        self.send(&owner, Envelope::Spill(remote), out);
        self.settle(now, out);
    }

    /// A shard missed a ticket its session withdrew: if it was spilled, its copy at the
    /// owner goes.
    pub fn withdrawn(&mut self, ticket: TicketId, now: Instant, out: &mut Vec<Output>) {
        if let Some(Spilled {
            ticket: t, owner, ..
        }) = self.spilled.remove(&ticket)
        {
            let bucket = t.info.bucket;
            self.send(&owner, Envelope::Withdraw { ticket, bucket }, out);
        }
        self.settle(now, out);
    }

    /// A ticket another node spilled here goes back to its home (this node drains).
    pub fn send_home(&mut self, ticket: RemoteTicket, now: Instant, out: &mut Vec<Output>) {
        let requeue = Envelope::Requeue {
            ticket: ticket.info.id,
        };
        self.send(&ticket.home, requeue, out);
        self.settle(now, out);
    }

    /// Carries out a pairing a shard chose with a user of another node.
    pub fn propose(&mut self, proposal: CrossNode, now: Instant, out: &mut Vec<Output>) {
        match proposal {
            CrossNode::Commit {
                chat,
                local,
                remote,
                local_initiator,
                common_interests,
            } => {
                if !self.membership.is_live(&remote.home) {
                    // Its home is gone (its tickets here are about to be dropped): ours waits
                    // again at once instead of after a timeout.
                    self.release(chat, local, out);
                    return self.settle(now, out);
                }
                // The local seat is reserved already: ask the remote side's node to commit.
                let commit = Proposal {
                    chat,
                    ticket: remote.info.id,
                    partner: Address {
                        node: self.me.clone(),
                        session: local.info.session,
                    },
                    partner_instance: self.instance,
                    partner_ticket: local.info.id,
                    partner_public: local.public.clone(),
                    partner_who: Arc::clone(&local.peer.who),
                    initiator: !local_initiator,
                    common_interests: common_interests.clone(),
                    owner: self.me.clone(),
                };
                self.reservations.insert(
                    chat,
                    Reservation {
                        ticket: local,
                        partner: Address {
                            node: remote.home.clone(),
                            session: remote.info.session,
                        },
                        partner_instance: remote.instance,
                        partner_public: remote.public,
                        partner_who: remote.who,
                        initiator: local_initiator,
                        common_interests,
                        reserved_at: now,
                        deadline: now + self.settings.claim_timeout,
                    },
                );
                self.send(&remote.home, Envelope::Commit(commit), out);
            }
            CrossNode::Reserve {
                chat,
                first,
                second,
                common_interests,
            } => {
                if !self.membership.is_live(&first.home) {
                    if self.membership.is_live(&second.home) {
                        let requeue = Envelope::Requeue {
                            ticket: second.info.id,
                        };
                        self.send(&second.home, requeue, out);
                    }
                    return self.settle(now, out);
                }
                let reserve = Proposal {
                    chat,
                    ticket: first.info.id,
                    partner: Address {
                        node: second.home.clone(),
                        session: second.info.session,
                    },
                    partner_instance: second.instance,
                    partner_ticket: second.info.id,
                    partner_public: second.public,
                    partner_who: second.who,
                    // The one who waited longer makes the WebRTC offer.
                    initiator: true,
                    common_interests,
                    owner: self.me.clone(),
                };
                self.send(&first.home, Envelope::Reserve(reserve), out);
            }
        }
        self.settle(now, out);
    }

    // ---- from the network ----

    /// An envelope from another node (or from this one, through the network).
    pub fn receive(&mut self, envelope: Envelope, now: Instant, out: &mut Vec<Output>) {
        self.handle(envelope, now, out);
        self.settle(now, out);
    }

    fn handle(&mut self, envelope: Envelope, now: Instant, out: &mut Vec<Output>) {
        match envelope {
            Envelope::ToSession { session, event } => out.push(Output::Deliver { session, event }),
            Envelope::Spill(ticket) => out.push(Output::PlaceRemote(ticket)),
            Envelope::Withdraw { ticket, bucket } => {
                out.push(Output::WithdrawRemote { ticket, bucket })
            }
            Envelope::Reserve(proposal) => self.on_reserve(proposal, now, out),
            Envelope::Commit(proposal) => self.on_commit(proposal, out),
            Envelope::Committed { chat, committer } => self.on_committed(chat, committer, now, out),
            Envelope::Refused { chat } => self.on_refused(chat, now, out),
            Envelope::Requeue { ticket } => {
                if let Some(spilled) = self.spilled.remove(&ticket) {
                    // The owner that held it may not be the one that sent this (ownership
                    // moved): make sure no copy is left behind.
                    self.take_back(spilled, out);
                }
            }
            Envelope::Heartbeat(status) => {
                if let Some(change) = self.membership.observe(status, now) {
                    self.apply(vec![change], out);
                }
            }
            Envelope::Drain => {
                info!("drain requested by an operator");
                out.push(Output::DrainRequested);
            }
            // Timed by the receiving side of the bus, which knows the wall clock.
            Envelope::Probe { .. } => {}
        }
    }

    /// The owner paired our spilled ticket with `proposal.partner`: reserve our seat and
    /// ask the partner's node to commit, or pair both here if both are ours.
    fn on_reserve(&mut self, proposal: Proposal, now: Instant, out: &mut Vec<Output>) {
        let Some(Spilled {
            ticket: mine,
            owner,
            ..
        }) = self.spilled.remove(&proposal.ticket)
        else {
            // Withdrawn meanwhile: the partner waits on; its home places it again.
            self.stats.claims_refused.fetch_add(1, Ordering::Relaxed);
            let requeue = Envelope::Requeue {
                ticket: proposal.partner_ticket,
            };
            return self.send(&proposal.partner.node, requeue, out);
        };
        self.forget_copy(&owner, &proposal.owner, &mine, out);
        if proposal.partner.node == self.me {
            return self.pair_here(mine, &proposal, out);
        }
        if !self.membership.is_live(&proposal.partner.node) {
            return self.requeue(mine, out);
        }
        if !mine.seat.reserve(mine.info.id, proposal.chat) {
            self.stats.claims_refused.fetch_add(1, Ordering::Relaxed);
            let requeue = Envelope::Requeue {
                ticket: proposal.partner_ticket,
            };
            return self.send(&proposal.partner.node, requeue, out);
        }
        let commit = Proposal {
            chat: proposal.chat,
            ticket: proposal.partner_ticket,
            partner: Address {
                node: self.me.clone(),
                session: mine.info.session,
            },
            partner_instance: self.instance,
            partner_ticket: mine.info.id,
            partner_public: mine.public.clone(),
            partner_who: Arc::clone(&mine.peer.who),
            initiator: !proposal.initiator,
            common_interests: proposal.common_interests.clone(),
            owner: proposal.owner.clone(),
        };
        self.reservations.insert(
            proposal.chat,
            Reservation {
                ticket: mine,
                partner: proposal.partner.clone(),
                partner_instance: proposal.partner_instance,
                partner_public: proposal.partner_public,
                partner_who: proposal.partner_who,
                initiator: proposal.initiator,
                common_interests: proposal.common_interests,
                reserved_at: now,
                deadline: now + self.settings.claim_timeout,
            },
        );
        self.send(&proposal.partner.node, Envelope::Commit(commit), out);
    }

    /// Both tickets of a proposal are this node's (spilled from two of its shards): claim
    /// the two seats at once, as a shard would.
    fn pair_here(&mut self, first: Ticket, proposal: &Proposal, out: &mut Vec<Output>) {
        let Some(Spilled { ticket: second, .. }) = self.spilled.remove(&proposal.partner_ticket)
        else {
            return self.requeue(first, out);
        };
        let chat = proposal.chat;
        let common = proposal.common_interests.clone();
        let claim = claim_pair(
            (&first.seat, first.info.id),
            (&second.seat, second.info.id),
            || {
                let for_first = Pairing {
                    chat,
                    partner: second.peer.clone(),
                    initiator: true,
                    common_interests: common.clone(),
                    partner_info: second.public.clone(),
                    group: None,
                };
                let for_second = Pairing {
                    chat,
                    partner: first.peer.clone(),
                    initiator: false,
                    common_interests: common,
                    partner_info: first.public.clone(),
                    group: None,
                };
                (for_first, for_second)
            },
        );
        match claim {
            Claim::Paired => {
                out.push(Output::Wake(first.peer.clone()));
                out.push(Output::Wake(second.peer.clone()));
            }
            Claim::FirstStale => self.requeue(second, out),
            Claim::SecondStale => self.requeue(first, out),
            Claim::BothStale => {}
        }
    }

    /// The partner's node reserved its seat: pair ours if it still waits, and answer.
    fn on_commit(&mut self, proposal: Proposal, out: &mut Vec<Output>) {
        let answer = match self.spilled.remove(&proposal.ticket) {
            Some(Spilled {
                ticket: mine,
                owner,
                ..
            }) => {
                self.forget_copy(&owner, &proposal.owner, &mine, out);
                let pairing = Pairing {
                    chat: proposal.chat,
                    partner: self.peers.peer(&proposal.partner, proposal.partner_who),
                    initiator: proposal.initiator,
                    common_interests: proposal.common_interests,
                    partner_info: proposal.partner_public,
                    group: None,
                };
                if mine.seat.claim_single(mine.info.id, pairing) {
                    out.push(Output::Wake(mine.peer.clone()));
                    self.stats.cross_matches.fetch_add(1, Ordering::Relaxed);
                    Envelope::Committed {
                        chat: proposal.chat,
                        committer: Address {
                            node: self.me.clone(),
                            session: mine.info.session,
                        },
                    }
                } else {
                    Envelope::Refused {
                        chat: proposal.chat,
                    }
                }
            }
            None => Envelope::Refused {
                chat: proposal.chat,
            },
        };
        if matches!(answer, Envelope::Refused { .. }) {
            self.stats.claims_refused.fetch_add(1, Ordering::Relaxed);
        }
        self.send(&proposal.partner.node, answer, out);
    }

    /// The owner `proposer` proposed a ticket of ours, taken from its pool: if the ticket
    /// had since been sent to another owner, that copy must go too.
    fn forget_copy(
        &mut self,
        owner: &NodeId,
        proposer: &NodeId,
        ticket: &Ticket,
        out: &mut Vec<Output>,
    ) {
        if owner != proposer && *owner != self.me && self.membership.is_live(owner) {
            let withdraw = Envelope::Withdraw {
                ticket: ticket.info.id,
                bucket: ticket.info.bucket,
            };
            self.send(owner, withdraw, out);
        }
    }

    /// The partner's node paired its side: complete ours, or, if our user moved on
    /// meanwhile (or the reservation expired), end the partner's chat at once.
    fn on_committed(
        &mut self,
        chat: ChatId,
        committer: Address,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if let Some(r) = self.reservations.remove(&chat) {
            self.stats
                .claim_rtt
                .observe(now.saturating_duration_since(r.reserved_at));
            if r.partner != committer {
                // Not the partner this seat was reserved for (a buggy or hostile peer):
                // refuse the pairing; the claimed session is told its chat is over.
                warn!(%chat, "cross-node claim completed by an unexpected session");
                self.release(chat, r.ticket, out);
                return self.end_remote_chat(chat, &committer, out);
            }
            let pairing = Pairing {
                chat,
                partner: self.peers.peer(&r.partner, r.partner_who),
                initiator: r.initiator,
                common_interests: r.common_interests,
                partner_info: r.partner_public,
                group: None,
            };
            if r.ticket.seat.commit_reserved(pairing) {
                out.push(Output::Wake(r.ticket.peer.clone()));
                self.stats.cross_matches.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // The partner was told `matched`; its chat ends as if our user had left at once.
        self.stats
            .claims_compensated
            .fetch_add(1, Ordering::Relaxed);
        debug!(%chat, "cross-node claim completed after this side moved on");
        self.end_remote_chat(chat, &committer, out);
    }

    /// Tells a session on another node that `chat` is over (its partner here is gone).
    fn end_remote_chat(&mut self, chat: ChatId, session: &Address, out: &mut Vec<Output>) {
        let ended = Envelope::ToSession {
            session: session.session,
            event: SessionEvent::PartnerEnded {
                chat,
                reason: EndReason::PartnerDisconnected,
            },
        };
        self.send(&session.node, ended, out);
    }

    /// The partner no longer waited: our reserved seat waits again, at home.
    fn on_refused(&mut self, chat: ChatId, now: Instant, out: &mut Vec<Output>) {
        if let Some(r) = self.reservations.remove(&chat) {
            self.stats
                .claim_rtt
                .observe(now.saturating_duration_since(r.reserved_at));
            self.release(chat, r.ticket, out);
        }
    }

    /// A reservation that will not complete: the seat, if still held, waits again.
    fn release(&mut self, chat: ChatId, ticket: Ticket, out: &mut Vec<Output>) {
        if ticket.seat.release_reserved(chat).is_some() {
            self.requeue(ticket, out);
        }
    }

    /// Places a local ticket in its home pool again, if its user still waits with it.
    fn requeue(&mut self, ticket: Ticket, out: &mut Vec<Output>) {
        if ticket.seat.waits_with(ticket.info.id) {
            self.stats.requeued.fetch_add(1, Ordering::Relaxed);
            out.push(Output::Place(ticket));
        }
    }

    /// Takes a spilled ticket back home: the owner is told to drop its copy (if it lives),
    /// and the user, if still waiting, is placed here again.
    fn take_back(&mut self, spilled: Spilled, out: &mut Vec<Output>) {
        if spilled.owner != self.me && self.membership.is_live(&spilled.owner) {
            let withdraw = Envelope::Withdraw {
                ticket: spilled.ticket.info.id,
                bucket: spilled.ticket.info.bucket,
            };
            self.send(&spilled.owner, withdraw, out);
        }
        self.requeue(spilled.ticket, out);
    }

    /// Sends an envelope to a node; to this node, after the current input.
    fn send(&mut self, to: &NodeId, envelope: Envelope, out: &mut Vec<Output>) {
        if *to == self.me {
            self.loopback.push_back(envelope);
        } else {
            out.push(Output::Send(to.clone(), envelope));
        }
    }

    /// After every input: the envelopes this node sent itself, then the shards' view of the
    /// owners if it changed.
    fn settle(&mut self, now: Instant, out: &mut Vec<Output>) {
        while let Some(envelope) = self.loopback.pop_front() {
            self.handle(envelope, now, out);
        }
        let spilling = self.connected && !self.draining && self.membership.has_others();
        let owners = self.membership.owners(spilling);
        if self.owners.as_deref() != Some(&owners) {
            let owners = Arc::new(owners);
            self.owners = Some(Arc::clone(&owners));
            out.push(Output::Owners(owners));
        }
    }

    // ---- time, connection and membership ----

    /// How long a spilled ticket stays at its owner before its home takes it back and
    /// sends it again (a bound on how long a lost message can strand a user).
    fn lease(&self) -> Duration {
        3 * self.settings.node_timeout
    }

    /// Periodic work: declares silent nodes dead, expires reservations nobody answered,
    /// forgets spilled tickets whose users moved on, takes back those out past their lease.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.connected {
            let changes = self.membership.sweep(now);
            if !changes.is_empty() {
                self.apply(changes, out);
            }
        }
        let expired: Vec<ChatId> = (self.reservations.iter())
            .filter(|(_, r)| r.deadline <= now)
            .map(|(chat, _)| *chat)
            .collect();
        for chat in expired {
            let Some(r) = self.reservations.remove(&chat) else {
                continue;
            };
            self.stats.claims_expired.fetch_add(1, Ordering::Relaxed);
            warn!(%chat, partner = %r.partner.node, "cross-node claim timed out");
            // The partner may have committed and the answer been lost: end its chat (a
            // no-op for a session that is not in it).
            self.end_remote_chat(chat, &r.partner, out);
            self.release(chat, r.ticket, out);
        }
        // Spilled tickets whose users moved on are forgotten; those out longer than the
        // lease come home and go out again.
        let lease = self.lease();
        let back: Vec<TicketId> = (self.spilled.iter())
            .filter(|(id, s)| {
                !s.ticket.seat.waits_with(**id)
                    || now.saturating_duration_since(s.spilled_at) >= lease
            })
            .map(|(id, _)| *id)
            .collect();
        for id in back {
            if let Some(spilled) = self.spilled.remove(&id) {
                self.take_back(spilled, out);
            }
        }
        let live = 1 + self.membership.others().count() as u64;
        self.stats.nodes_live.store(live, Ordering::Relaxed);
        let isolated = u64::from(self.is_isolated(now));
        self.stats.isolated.store(isolated, Ordering::Relaxed);
        self.settle(now, out);
    }

    /// This node's heartbeat, with these counts.
    pub fn heartbeat(&mut self, counts: NodeCounts, out: &mut Vec<Output>) {
        out.push(Output::Broadcast(Envelope::Heartbeat(self.status(counts))));
    }

    /// The connection to the cluster is (back) up.
    pub fn connected(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.connected {
            return;
        }
        self.connected = true;
        self.stats.connected.store(1, Ordering::Relaxed);
        self.stats.isolated.store(0, Ordering::Relaxed);
        if let Some(since) = self.disconnected_at.take() {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            let silence = now.saturating_duration_since(since);
            info!(silence_ms = silence.as_millis() as u64, "NATS is back");
            if silence >= self.settings.node_timeout {
                // The others have declared this node dead by now: they ended their side of
                // every chat with our users and dropped our tickets. End ours to match.
                self.forget_everyone(out);
            }
        }
        self.membership.forgive_silence(now);
        self.settle(now, out);
    }

    /// The connection is down: pair only this node's users until it returns.
    pub fn disconnected(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.connected {
            return;
        }
        self.connected = false;
        // When we are back, the others learn from the new epoch that we took back what we
        // had sent and dropped what we held.
        self.epoch += 1;
        self.disconnected_at = Some(now);
        self.stats.connected.store(0, Ordering::Relaxed);
        warn!("lost NATS: pairing this node's users only until it returns");
        let back: Vec<Spilled> = self.spilled.drain().map(|(_, s)| s).collect();
        for spilled in back {
            self.requeue(spilled.ticket, out);
        }
        out.push(Output::Shards(ShardOrder::DropRemote));
        self.settle(now, out);
    }

    /// After being cut off for longer than the node timeout: every chat with a user of
    /// another node ends here, and seats reserved for one wait again.
    fn forget_everyone(&mut self, out: &mut Vec<Output>) {
        warn!("cut off longer than the node timeout: ending chats with other nodes' users");
        for (id, _) in self.membership.others() {
            out.push(Output::NodeLost(id.clone()));
        }
        let held: Vec<(ChatId, Reservation)> = self.reservations.drain().collect();
        for (chat, r) in held {
            self.release(chat, r.ticket, out);
        }
    }

    /// First step of leaving the cluster: own nothing, spill nothing, and send the tickets
    /// held for other nodes back to their homes. The driver announces the change.
    pub fn begin_drain(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.membership.set_draining();
        // Our own spilled tickets come home (their sessions close with this node anyway),
        // and other nodes' tickets held here are sent back.
        self.bring_home(|_| true, out);
        out.push(Output::Shards(ShardOrder::ReturnRemote));
        self.settle(now, out);
    }

    /// Reacts to changes in the live set.
    fn apply(&mut self, changes: Vec<Change>, out: &mut Vec<Output>) {
        for change in changes {
            match &change {
                Change::Joined(id) => info!(node = %id, "node joined"),
                Change::Draining(id) => info!(node = %id, "node draining"),
                Change::Died(id) => {
                    warn!(node = %id, "node dead");
                    self.stats.nodes_died.fetch_add(1, Ordering::Relaxed);
                }
                Change::Restarted(id) => warn!(node = %id, "node restarted"),
                Change::Reconnected(id, _) => info!(node = %id, "node reconnected to NATS"),
            }
            if let Change::Died(id) | Change::Restarted(id) = &change {
                // Its users are gone: chats with them end.
                out.push(Output::NodeLost(id.clone()));
            }
            if let Change::Died(id) | Change::Restarted(id) | Change::Reconnected(id, _) = &change {
                // Its tickets here go, but for those its current instance sent in its
                // current epoch (a spill can overtake the heartbeat that announces them).
                let keep = match &change {
                    Change::Died(_) => None,
                    _ => (self.membership.status(id)).map(|s| (s.instance, s.epoch)),
                };
                out.push(Output::Shards(ShardOrder::DropHome {
                    node: id.clone(),
                    keep,
                }));
                if !matches!(change, Change::Reconnected(..)) {
                    // Died: every seat held for it waits again; restarted: those held for
                    // its new instance stay.
                    self.release_reservations_with(id, keep.map(|(instance, _)| instance), out);
                }
                // Tickets it held come home (it dropped them, or is gone).
                self.bring_home(|owner| owner == id, out);
            }
        }
        // Ownership may have moved: tickets whose owner changed come home and spill again
        // (to the new owner) if they still find nobody here.
        let owners = self.membership.owners(false);
        let moved: Vec<TicketId> = (self.spilled.iter())
            .filter(|(_, s)| owners.owner(&s.ticket.info.bucket) != Some(&s.owner))
            .map(|(id, _)| *id)
            .collect();
        for id in moved {
            if let Some(spilled) = self.spilled.remove(&id) {
                self.take_back(spilled, out);
            }
        }
    }

    /// Seats held for a partner on node `gone` wait again, at once: nobody there will
    /// answer, but for those held for its instance `live` (it restarted), which are kept.
    ///
    /// Not for a node that reconnected to NATS: it answers every `Commit` (`Refused` for a
    /// ticket it no longer holds), and a reservation may be for one of its new tickets (a
    /// spill can overtake the heartbeat that announces the new epoch): ending it would tell
    /// that user `matched` and then `ended`. Its reservations wait for the answer, or for
    /// the claim timeout if the `Commit` was lost. Nor for a restarted node's new instance,
    /// for the same reason; one held for its old instance goes, since a late `Committed`
    /// from the old process would pair our user with a session that is gone.
    fn release_reservations_with(
        &mut self,
        gone: &NodeId,
        live: Option<u64>,
        out: &mut Vec<Output>,
    ) {
        let held: Vec<ChatId> = (self.reservations.iter())
            .filter(|(_, r)| r.partner.node == *gone && live != Some(r.partner_instance))
            .map(|(chat, _)| *chat)
            .collect();
        for chat in held {
            if let Some(r) = self.reservations.remove(&chat) {
                self.end_remote_chat(chat, &r.partner, out);
                self.release(chat, r.ticket, out);
            }
        }
    }

    /// Places again at home every spilled ticket whose owner `pick` selects.
    fn bring_home(&mut self, pick: impl Fn(&NodeId) -> bool, out: &mut Vec<Output>) {
        let ids: Vec<TicketId> = (self.spilled.iter())
            .filter(|(_, s)| pick(&s.owner))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(spilled) = self.spilled.remove(&id) {
                self.take_back(spilled, out);
            }
        }
    }
}
