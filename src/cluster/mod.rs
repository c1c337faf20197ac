//! The cluster: many nodes pairing and relaying over NATS, local first.
//!
//! - [`membership`]: who is alive (heartbeats) and who owns a bucket (rendezvous hashing);
//! - [`wire`]: the versioned bincode form of the inter-node [`Envelope`]s;
//! - [`nats`]: the NATS side ([`NatsBus`], the node's inbox, heartbeats, operator commands);
//! - this file: [`Cluster`], a node's cluster state: the tickets it sent away, the seats it
//!   holds for pairings across nodes, and the handling of every envelope.
//!
//! A ticket waits first on its home node. One that finds no partner there within
//! `--spill-after` is *spilled*: sent to its bucket's owner node, where the cluster's
//! leftovers meet. Seats never leave their home: a pairing across nodes is a claim in two
//! steps (reserve one seat, commit the other, then complete the first), so a user is never
//! paired twice; a step that fails puts the user who still waits back in its home pool.
//! docs/cluster.md walks through each exchange.

pub mod config;
pub mod membership;
pub mod nats;
pub mod stats;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tracing::{debug, info, warn};

pub use self::config::ClusterArgs;
pub use self::membership::{Change, Member, Membership};
pub use self::nats::NatsBus;
pub use self::stats::ClusterStats;

use crate::bus::{Address, Bus, Envelope, NodeStatus, Proposal, RemoteLink, RemoteTicket};
use crate::ids::{ChatId, NodeId, TicketId};
use crate::matching::BucketKey;
use crate::node::Node;
use crate::protocol::{EndReason, PartnerInfo};
use crate::session::{claim_pair, Claim, Pairing, Peer, SessionEvent};
use crate::shard::{CrossNode, DropHome, DropRemote, Ticket};

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

/// A local ticket sent to its bucket's owner on another node.
struct Spilled {
    ticket: Ticket,
    owner: NodeId,
    /// When it was sent: after [`Cluster::lease`] it is taken back and sent again, so that a
    /// message lost on the way (at-most-once delivery) strands nobody for longer.
    spilled_at: Instant,
}

/// A seat of this node held for a cross-node pairing until the partner's node answers.
struct Reservation {
    ticket: Ticket,
    partner: Address,
    /// The partner's node instance, as its ticket or the owner's proposal named it (unknown
    /// only from a node that predates the field): a reservation for a node that restarted
    /// is kept only if it is for the new instance.
    partner_instance: Option<u64>,
    partner_public: PartnerInfo,
    initiator: bool,
    common_interests: Vec<String>,
    reserved_at: Instant,
    deadline: Instant,
}

/// A node's cluster state. Every method is quick and never waits on the network: sends go
/// to the bus, which queues them.
pub struct Cluster {
    pub me: NodeId,
    pub settings: ClusterSettings,
    pub stats: Arc<ClusterStats>,
    bus: Arc<dyn Bus>,
    membership: RwLock<Membership>,
    /// Local tickets waiting at another node, by ticket.
    spilled: Mutex<HashMap<TicketId, Spilled>>,
    /// Local seats reserved for cross-node pairings, by chat.
    reservations: Mutex<HashMap<ChatId, Reservation>>,
    /// False while the NATS connection is down: then the node pairs only its own users.
    connected: AtomicBool,
    draining: AtomicBool,
    /// This process (see [`NodeStatus::instance`]).
    instance: u64,
    epoch: AtomicU32,
    /// Set once the node exists (the node owns the cluster state, the shards share it).
    node: OnceLock<Weak<Node>>,
    /// Wakes the server when an operator asks this node to drain.
    drain_requested: tokio::sync::Notify,
    /// Matches counted at the previous heartbeat, for the rate in `cluster status`.
    last_matches: AtomicU64,
    /// When the NATS connection was lost, while it is.
    disconnected_at: Mutex<Option<Instant>>,
}

impl Cluster {
    /// Cluster state for node `me` with `shards` shards, sending through `bus` and counting
    /// into `stats` (shared with the bus).
    pub fn new(
        me: NodeId,
        shards: usize,
        settings: ClusterSettings,
        bus: Arc<dyn Bus>,
        stats: Arc<ClusterStats>,
    ) -> Self {
        let membership = Membership::new(
            me.clone(),
            u16::try_from(shards).unwrap_or(u16::MAX),
            settings.node_timeout,
        );
        Self {
            me,
            settings,
            stats,
            bus,
            membership: RwLock::new(membership),
            spilled: Mutex::new(HashMap::new()),
            reservations: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            instance: rand::random(),
            epoch: AtomicU32::new(0),
            node: OnceLock::new(),
            drain_requested: tokio::sync::Notify::new(),
            last_matches: AtomicU64::new(0),
            disconnected_at: Mutex::new(None),
        }
    }

    /// Ties the state to its node, once the node exists.
    pub fn attach(&self, node: &Arc<Node>) {
        let _ = self.node.set(Arc::downgrade(node));
    }

    fn node(&self) -> Option<Arc<Node>> {
        self.node.get().and_then(Weak::upgrade)
    }

    /// Whether the NATS connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// The cluster as this node sees it (for `cluster status` and the dashboard).
    pub fn members(&self) -> Vec<(NodeId, Member)> {
        self.membership
            .read()
            .others()
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }

    // ---- called by shards ----

    /// Where a local ticket of `bucket` that waited `spill_after` should go: its owner, if
    /// that is another node and this node can reach it.
    pub fn spill_target(&self, bucket: &BucketKey) -> Option<NodeId> {
        if !self.is_connected() || self.draining.load(Ordering::Relaxed) {
            return None;
        }
        let membership = self.membership.read();
        if !membership.has_others() {
            return None;
        }
        membership
            .owner(bucket)
            .filter(|owner| **owner != self.me)
            .cloned()
    }

    /// Sends a local ticket to its bucket's owner, remembering it to claim its seat later;
    /// gives it back if NATS is down.
    pub fn spill(&self, ticket: Ticket, owner: NodeId, now: Instant) -> Result<(), Box<Ticket>> {
        // Under the lock: a disconnection takes every spilled ticket back under it too, so
        // none is sent in an epoch the owner will drop; and the send (a non-blocking queue)
        // happens before anything can remove the entry and send its Withdraw.
        let mut spilled = self.spilled.lock();
        if !self.is_connected() {
            return Err(Box::new(ticket));
        }
        let remote = ticket.remote(
            self.me.clone(),
            self.instance,
            self.epoch.load(Ordering::Relaxed),
        );
        spilled.insert(
            ticket.info.id,
            Spilled {
                ticket,
                owner: owner.clone(),
                spilled_at: now,
            },
        );
        self.stats.spilled.fetch_add(1, Ordering::Relaxed);
        self.bus.send(&owner, Envelope::Spill(remote));
        Ok(())
    }

    /// How long a spilled ticket stays at its owner before its home takes it back and
    /// sends it again (a bound on how long a lost message can strand a user).
    fn lease(&self) -> Duration {
        3 * self.settings.node_timeout
    }

    /// Takes a spilled ticket back home: the owner is told to drop its copy (if it lives),
    /// and the user, if still waiting, is placed here again.
    fn take_back(&self, node: &Node, spilled: Spilled) {
        if spilled.owner != self.me && self.membership.read().is_live(&spilled.owner) {
            self.bus.send(
                &spilled.owner,
                Envelope::Withdraw {
                    ticket: spilled.ticket.info.id,
                    bucket: spilled.ticket.info.bucket,
                },
            );
        }
        self.requeue(node, spilled.ticket);
    }

    /// Whether `node` is this one or a live one.
    fn is_live(&self, node: &NodeId) -> bool {
        self.membership.read().is_live(node)
    }

    /// The session withdrew a ticket that its shard had spilled: tell the owner.
    pub fn withdraw_spilled(&self, ticket: TicketId) {
        let spilled = self.spilled.lock().remove(&ticket);
        if let Some(Spilled {
            ticket: t, owner, ..
        }) = spilled
        {
            self.send(
                &owner,
                Envelope::Withdraw {
                    ticket,
                    bucket: t.info.bucket,
                },
            );
        }
    }

    /// Carries out a pairing a shard chose with a user of another node.
    pub fn propose(&self, proposal: CrossNode, now: Instant) {
        match proposal {
            CrossNode::Commit {
                chat,
                local,
                remote,
                local_initiator,
                common_interests,
            } => {
                if !self.is_live(&remote.home) {
                    // Its home is gone (its tickets here are about to be dropped): ours waits
                    // again at once instead of after a timeout.
                    if let Some(node) = self.node() {
                        self.release(&node, chat, local);
                    }
                    return;
                }
                // The local seat is reserved already: ask the remote side's node to commit.
                let commit = Proposal {
                    chat,
                    ticket: remote.info.id,
                    partner: Address {
                        node: self.me.clone(),
                        session: local.info.session,
                    },
                    partner_instance: Some(self.instance),
                    partner_ticket: local.info.id,
                    partner_public: local.public.clone(),
                    initiator: !local_initiator,
                    common_interests: common_interests.clone(),
                };
                self.hold(
                    chat,
                    Reservation {
                        ticket: local,
                        partner: Address {
                            node: remote.home.clone(),
                            session: remote.info.session,
                        },
                        partner_instance: Some(remote.instance),
                        partner_public: remote.public,
                        initiator: local_initiator,
                        common_interests,
                        reserved_at: now,
                        deadline: now + self.settings.claim_timeout,
                    },
                );
                self.send(&remote.home, Envelope::Commit(commit));
            }
            CrossNode::Reserve {
                chat,
                first,
                second,
                common_interests,
            } => {
                if !self.is_live(&first.home) {
                    if self.is_live(&second.home) {
                        self.send(
                            &second.home,
                            Envelope::Requeue {
                                ticket: second.info.id,
                            },
                        );
                    }
                    return;
                }
                let reserve = Proposal {
                    chat,
                    ticket: first.info.id,
                    partner: Address {
                        node: second.home.clone(),
                        session: second.info.session,
                    },
                    partner_instance: Some(second.instance),
                    partner_ticket: second.info.id,
                    partner_public: second.public,
                    // The one who waited longer makes the WebRTC offer.
                    initiator: true,
                    common_interests,
                };
                self.send(&first.home, Envelope::Reserve(reserve));
            }
        }
    }

    fn hold(&self, chat: ChatId, reservation: Reservation) {
        self.reservations.lock().insert(chat, reservation);
    }

    /// Takes out the reservations that `pick` selects.
    fn take_reservations(&self, pick: impl Fn(&Reservation) -> bool) -> Vec<(ChatId, Reservation)> {
        let mut reservations = self.reservations.lock();
        let chats: Vec<ChatId> = reservations
            .iter()
            .filter(|(_, r)| pick(r))
            .map(|(chat, _)| *chat)
            .collect();
        chats
            .into_iter()
            .filter_map(|chat| reservations.remove(&chat).map(|r| (chat, r)))
            .collect()
    }

    // ---- envelopes from other nodes ----

    /// Handles a cluster envelope addressed to this node.
    pub fn receive(&self, envelope: Envelope, now: Instant) {
        let Some(node) = self.node() else {
            return;
        };
        match envelope {
            Envelope::ToSession { session, event } => {
                node.sessions.deliver(session, event);
            }
            Envelope::Spill(ticket) => node.router.place_remote(ticket),
            Envelope::Withdraw { ticket, bucket } => node.router.withdraw_remote(ticket, &bucket),
            Envelope::Reserve(proposal) => self.on_reserve(&node, proposal, now),
            Envelope::Commit(proposal) => self.on_commit(proposal),
            Envelope::Committed { chat, committer } => self.on_committed(chat, committer, now),
            Envelope::Refused { chat } => self.on_refused(&node, chat, now),
            Envelope::Requeue { ticket } => {
                let spilled = self.spilled.lock().remove(&ticket);
                if let Some(spilled) = spilled {
                    // The owner that held it may not be the one that sent this (ownership
                    // moved): make sure no copy is left behind.
                    self.take_back(&node, spilled);
                }
            }
            Envelope::Heartbeat(status) => {
                let change = self.membership.write().observe(status, now);
                if let Some(change) = change {
                    self.apply(&node, vec![change]);
                }
            }
            Envelope::Drain => {
                info!("drain requested by an operator");
                self.drain_requested.notify_one();
            }
            Envelope::Probe { sent_at_us } => {
                let rtt = wire::unix_micros().saturating_sub(sent_at_us);
                self.stats.nats_rtt.observe(Duration::from_micros(rtt));
            }
        }
    }

    /// The owner paired our spilled ticket with `proposal.partner`: reserve our seat and
    /// ask the partner's node to commit, or pair both here if both are ours.
    fn on_reserve(&self, node: &Node, proposal: Proposal, now: Instant) {
        let mine = self.spilled.lock().remove(&proposal.ticket);
        let Some(Spilled {
            ticket: mine,
            owner,
            ..
        }) = mine
        else {
            // Withdrawn meanwhile: the partner waits on; its home places it again.
            self.stats.claims_refused.fetch_add(1, Ordering::Relaxed);
            return self.send(
                &proposal.partner.node,
                Envelope::Requeue {
                    ticket: proposal.partner_ticket,
                },
            );
        };
        self.forget_copy(&owner, &mine);
        if proposal.partner.node == self.me {
            return self.pair_here(node, mine, &proposal);
        }
        if !self.is_live(&proposal.partner.node) {
            return self.requeue(node, mine);
        }
        if !mine.seat.reserve(mine.info.id, proposal.chat) {
            self.stats.claims_refused.fetch_add(1, Ordering::Relaxed);
            return self.send(
                &proposal.partner.node,
                Envelope::Requeue {
                    ticket: proposal.partner_ticket,
                },
            );
        }
        let commit = Proposal {
            chat: proposal.chat,
            ticket: proposal.partner_ticket,
            partner: Address {
                node: self.me.clone(),
                session: mine.info.session,
            },
            partner_instance: Some(self.instance),
            partner_ticket: mine.info.id,
            partner_public: mine.public.clone(),
            initiator: !proposal.initiator,
            common_interests: proposal.common_interests.clone(),
        };
        self.hold(
            proposal.chat,
            Reservation {
                ticket: mine,
                partner: proposal.partner.clone(),
                partner_instance: proposal.partner_instance,
                partner_public: proposal.partner_public,
                initiator: proposal.initiator,
                common_interests: proposal.common_interests,
                reserved_at: now,
                deadline: now + self.settings.claim_timeout,
            },
        );
        self.send(&proposal.partner.node, Envelope::Commit(commit));
    }

    /// Both tickets of a proposal are this node's (spilled from two of its shards): claim
    /// the two seats at once, as a shard would.
    fn pair_here(&self, node: &Node, first: Ticket, proposal: &Proposal) {
        let second = self.spilled.lock().remove(&proposal.partner_ticket);
        let Some(Spilled { ticket: second, .. }) = second else {
            return self.requeue(node, first);
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
                first.peer.send(SessionEvent::SeatChanged);
                second.peer.send(SessionEvent::SeatChanged);
            }
            Claim::FirstStale => self.requeue(node, second),
            Claim::SecondStale => self.requeue(node, first),
            Claim::BothStale => {}
        }
    }

    /// The partner's node reserved its seat: pair ours if it still waits, and answer.
    fn on_commit(&self, proposal: Proposal) {
        let mine = self.spilled.lock().remove(&proposal.ticket);
        let answer = match mine {
            Some(Spilled {
                ticket: mine,
                owner,
                ..
            }) => {
                self.forget_copy(&owner, &mine);
                let pairing = Pairing {
                    chat: proposal.chat,
                    partner: self.remote_peer(&proposal.partner),
                    initiator: proposal.initiator,
                    common_interests: proposal.common_interests,
                    partner_info: proposal.partner_public,
                    group: None,
                };
                if mine.seat.claim_single(mine.info.id, pairing) {
                    mine.peer.send(SessionEvent::SeatChanged);
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
        self.send(&proposal.partner.node, answer);
    }

    /// The owner proposed a ticket of ours: the copy at the owner that sent it is gone, but
    /// if the ticket had since been sent to another owner, that copy must go too.
    fn forget_copy(&self, owner: &NodeId, ticket: &Ticket) {
        if *owner != self.me && self.is_live(owner) {
            self.bus.send(
                owner,
                Envelope::Withdraw {
                    ticket: ticket.info.id,
                    bucket: ticket.info.bucket,
                },
            );
        }
    }

    /// The partner's node paired its side: complete ours, or, if our user moved on
    /// meanwhile (or the reservation expired), end the partner's chat at once.
    fn on_committed(&self, chat: ChatId, committer: Address, now: Instant) {
        let reservation = self.reservations.lock().remove(&chat);
        if let Some(r) = reservation {
            self.stats
                .claim_rtt
                .observe(now.saturating_duration_since(r.reserved_at));
            if r.partner != committer {
                // Not the partner this seat was reserved for (a buggy or hostile peer):
                // refuse the pairing; the claimed session is told its chat is over.
                warn!(%chat, "cross-node claim completed by an unexpected session");
                if let Some(node) = self.node() {
                    self.release(&node, chat, r.ticket);
                }
                return self.end_remote_chat(chat, &committer);
            }
            let pairing = Pairing {
                chat,
                partner: self.remote_peer(&r.partner),
                initiator: r.initiator,
                common_interests: r.common_interests,
                partner_info: r.partner_public,
                group: None,
            };
            if r.ticket.seat.commit_reserved(pairing) {
                r.ticket.peer.send(SessionEvent::SeatChanged);
                self.stats.cross_matches.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // The partner was told `matched`; its chat ends as if our user had left at once.
        self.stats
            .claims_compensated
            .fetch_add(1, Ordering::Relaxed);
        debug!(%chat, "cross-node claim completed after this side moved on");
        self.end_remote_chat(chat, &committer);
    }

    /// Tells a session on another node that `chat` is over (its partner here is gone).
    fn end_remote_chat(&self, chat: ChatId, session: &Address) {
        self.send(
            &session.node,
            Envelope::ToSession {
                session: session.session,
                event: SessionEvent::PartnerEnded {
                    chat,
                    reason: EndReason::PartnerDisconnected,
                },
            },
        );
    }

    /// The partner no longer waited: our reserved seat waits again, at home.
    fn on_refused(&self, node: &Node, chat: ChatId, now: Instant) {
        let reservation = self.reservations.lock().remove(&chat);
        if let Some(r) = reservation {
            self.stats
                .claim_rtt
                .observe(now.saturating_duration_since(r.reserved_at));
            self.release(node, chat, r.ticket);
        }
    }

    /// A reservation that will not complete: the seat, if still held, waits again.
    fn release(&self, node: &Node, chat: ChatId, ticket: Ticket) {
        if ticket.seat.release_reserved(chat).is_some() {
            self.requeue(node, ticket);
        }
    }

    /// Places a local ticket in its home pool again, if its user still waits with it.
    fn requeue(&self, node: &Node, ticket: Ticket) {
        if ticket.seat.waits_with(ticket.info.id) {
            self.stats.requeued.fetch_add(1, Ordering::Relaxed);
            node.router.place(ticket);
        }
    }

    fn remote_peer(&self, address: &Address) -> Peer {
        Peer {
            session: address.session,
            link: Arc::new(RemoteLink {
                node: address.node.clone(),
                session: address.session,
                bus: Arc::clone(&self.bus),
            }),
        }
    }

    /// Sends an envelope to a node; to this node, without the network.
    fn send(&self, to: &NodeId, envelope: Envelope) {
        if *to == self.me {
            self.receive(envelope, Instant::now());
        } else {
            self.bus.send(to, envelope);
        }
    }

    // ---- time and membership ----

    /// Periodic work: declares silent nodes dead, expires reservations nobody answered,
    /// forgets spilled tickets whose users moved on. Called every ~100 ms.
    pub fn tick(&self, now: Instant) {
        let Some(node) = self.node() else {
            return;
        };
        if self.is_connected() {
            let changes = self.membership.write().sweep(now);
            if !changes.is_empty() {
                self.apply(&node, changes);
            }
        }
        for (chat, r) in self.take_reservations(|r| r.deadline <= now) {
            self.stats.claims_expired.fetch_add(1, Ordering::Relaxed);
            warn!(%chat, partner = %r.partner.node, "cross-node claim timed out");
            // The partner may have committed and the answer been lost: end its chat (a
            // no-op for a session that is not in it).
            self.end_remote_chat(chat, &r.partner);
            self.release(&node, chat, r.ticket);
        }
        // Spilled tickets whose users moved on are forgotten; those out longer than the
        // lease come home and go out again.
        let lease = self.lease();
        let (gone, overdue): (Vec<Spilled>, Vec<Spilled>) = {
            let mut spilled = self.spilled.lock();
            let ids: Vec<TicketId> = spilled
                .iter()
                .filter(|(id, s)| {
                    !s.ticket.seat.waits_with(**id)
                        || now.saturating_duration_since(s.spilled_at) >= lease
                })
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| spilled.remove(id))
                .partition(|s| !s.ticket.seat.waits_with(s.ticket.info.id))
        };
        for s in gone.into_iter().chain(overdue) {
            self.take_back(&node, s);
        }
        self.stats.nodes_live.store(
            1 + self.membership.read().others().count() as u64,
            Ordering::Relaxed,
        );
    }

    /// Reacts to changes in the live set.
    fn apply(&self, node: &Node, changes: Vec<Change>) {
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
                // Its users are gone: chats with them end, their tickets here go.
                node.sessions.broadcast(&SessionEvent::NodeLost(id.clone()));
            }
            if let Change::Died(id) | Change::Restarted(id) | Change::Reconnected(id, _) = &change {
                // Its tickets here go, but for those its current instance sent in its
                // current epoch (a spill can overtake the heartbeat that announces them).
                let keep = match &change {
                    Change::Died(_) => None,
                    _ => self
                        .membership
                        .read()
                        .status(id)
                        .map(|s| (s.instance, s.epoch)),
                };
                for shard in node.router.shards() {
                    shard.do_send(DropHome {
                        node: id.clone(),
                        keep,
                    });
                }
                if !matches!(change, Change::Reconnected(..)) {
                    // Died: `keep` is none, every seat held for it waits again; restarted:
                    // those held for its new instance stay.
                    self.release_reservations_with(node, id, keep.map(|(instance, _)| instance));
                }
                // Tickets it held come home (it dropped them, or is gone).
                self.bring_home(node, |owner| owner == id);
            }
        }
        // Ownership may have moved: tickets whose owner changed come home and spill again
        // (to the new owner) if they still find nobody here.
        let membership = self.membership.read();
        let moved: Vec<TicketId> = self
            .spilled
            .lock()
            .iter()
            .filter(|(_, s)| membership.owner(&s.ticket.info.bucket) != Some(&s.owner))
            .map(|(id, _)| *id)
            .collect();
        drop(membership);
        for id in moved {
            let spilled = self.spilled.lock().remove(&id);
            if let Some(s) = spilled {
                self.take_back(node, s);
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
    /// for the same reason; one held for its old instance (or, from a node that predates
    /// `Proposal::partner_instance`, for an unknown one) goes, since a late `Committed`
    /// from the old process would pair our user with a session that is gone.
    fn release_reservations_with(&self, node: &Node, gone: &NodeId, live: Option<u64>) {
        let held = self.take_reservations(|r| {
            r.partner.node == *gone && (live.is_none() || r.partner_instance != live)
        });
        for (chat, r) in held {
            self.end_remote_chat(chat, &r.partner);
            self.release(node, chat, r.ticket);
        }
    }

    /// Places again at home every spilled ticket whose owner `pick` selects.
    fn bring_home(&self, node: &Node, pick: impl Fn(&NodeId) -> bool) {
        let back: Vec<Spilled> = {
            let mut spilled = self.spilled.lock();
            let ids: Vec<TicketId> = spilled
                .iter()
                .filter(|(_, s)| pick(&s.owner))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| spilled.remove(id)).collect()
        };
        for s in back {
            self.take_back(node, s);
        }
    }

    /// The NATS connection is down: pair only our own users until it returns.
    pub fn on_disconnected(&self) {
        let back: Vec<Spilled> = {
            // Under the spilled lock, so that no spill slips in with the old epoch after
            // the tickets are taken back (see `spill`).
            let mut spilled = self.spilled.lock();
            if !self.connected.swap(false, Ordering::AcqRel) {
                return;
            }
            // When we are back, the others learn from the new epoch that we took back
            // what we had sent and dropped what we held.
            self.epoch.fetch_add(1, Ordering::Relaxed);
            *self.disconnected_at.lock() = Some(Instant::now());
            spilled.drain().map(|(_, s)| s).collect()
        };
        self.stats.connected.store(0, Ordering::Relaxed);
        warn!("lost NATS: pairing this node's users only until it returns");
        let Some(node) = self.node() else {
            return;
        };
        for s in back {
            self.requeue(&node, s.ticket);
        }
        for shard in node.router.shards() {
            shard.do_send(DropRemote);
        }
    }

    /// The NATS connection is (back) up.
    pub fn on_connected(&self) {
        if self.connected.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stats.connected.store(1, Ordering::Relaxed);
        let now = Instant::now();
        let cut_off = self.disconnected_at.lock().take();
        if let Some(since) = cut_off {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            let silence = now.saturating_duration_since(since);
            info!(silence_ms = silence.as_millis() as u64, "NATS is back");
            if silence >= self.settings.node_timeout {
                // The others have declared this node dead by now: they ended their side of
                // every chat with our users and dropped our tickets. End ours to match.
                self.forget_everyone();
            }
        }
        self.membership.write().forgive_silence(now);
    }

    /// After being cut off for longer than `node_timeout`: every chat with a user of another
    /// node ends here, and seats reserved for one wait again.
    fn forget_everyone(&self) {
        let Some(node) = self.node() else {
            return;
        };
        warn!("cut off longer than the node timeout: ending chats with other nodes' users");
        let others: Vec<NodeId> = self
            .membership
            .read()
            .others()
            .map(|(id, _)| id.clone())
            .collect();
        for id in others {
            node.sessions.broadcast(&SessionEvent::NodeLost(id));
        }
        let held: Vec<(ChatId, Reservation)> = self.reservations.lock().drain().collect();
        for (chat, r) in held {
            self.release(&node, chat, r.ticket);
        }
    }

    /// What this node announces now.
    pub fn status(&self) -> Option<NodeStatus> {
        let node = self.node()?;
        Some(NodeStatus {
            node: self.me.clone(),
            shards: u16::try_from(node.router.shards().len()).unwrap_or(u16::MAX),
            online: node.metrics.online(),
            waiting: node.metrics.waiting(),
            // As the dashboard counts them: a pairing across nodes is half on each.
            matches: node.metrics.matched_sessions.load(Ordering::Relaxed) / 2,
            skips: node.metrics.skips.load(Ordering::Relaxed),
            draining: self.draining.load(Ordering::Relaxed),
            http: self.settings.http.clone(),
            instance: self.instance,
            epoch: self.epoch.load(Ordering::Relaxed),
        })
    }

    /// Publishes this node's heartbeat and a round-trip probe.
    pub fn announce(&self) {
        if let Some(status) = self.status() {
            self.last_matches.store(status.matches, Ordering::Relaxed);
            self.bus.broadcast(Envelope::Heartbeat(status));
        }
        self.bus.send(
            &self.me,
            Envelope::Probe {
                sent_at_us: wire::unix_micros(),
            },
        );
    }

    /// Completes when an operator asks this node to drain.
    pub async fn drain_requested(&self) {
        self.drain_requested.notified().await;
    }

    /// First step of leaving the cluster: own nothing, spill nothing, tell everyone, and
    /// send the tickets held for other nodes back to their homes.
    pub fn begin_drain(&self) {
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        self.membership.write().set_draining();
        self.announce();
        let Some(node) = self.node() else {
            return;
        };
        // Our own spilled tickets come home (their sessions close with this node anyway),
        // and other nodes' tickets held here are sent back.
        self.bring_home(&node, |_| true);
        for shard in node.router.shards() {
            shard.do_send(crate::shard::ReturnRemote);
        }
    }

    /// Sends a spilled ticket held here back to its home node (on drain).
    pub fn return_home(&self, ticket: &RemoteTicket) {
        self.send(
            &ticket.home,
            Envelope::Requeue {
                ticket: ticket.info.id,
            },
        );
    }

    /// Spilled tickets and open reservations (for tests and status).
    pub fn in_flight(&self) -> (usize, usize) {
        (self.spilled.lock().len(), self.reservations.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::ids::SessionId;
    use crate::matching::{Lang, Mode, TicketInfo};
    use crate::node::SessionSettings;
    use crate::session::{Seat, SessionLink};

    /// The network as the node under test sees it: what it sends is kept for the test to
    /// read; what it receives, the test hands to [`Cluster::receive`] in the order it picks.
    #[derive(Default)]
    struct Outbox(Mutex<Vec<(NodeId, Envelope)>>);

    impl Bus for Outbox {
        fn send(&self, to: &NodeId, envelope: Envelope) {
            self.0.lock().push((to.clone(), envelope));
        }
    }

    /// A session's end of its seat: the events it is sent.
    struct Events(mpsc::UnboundedSender<SessionEvent>);

    impl SessionLink for Events {
        fn deliver(&self, event: SessionEvent) {
            let _ = self.0.send(event);
        }
    }

    fn heartbeat(node: &str, instance: u64, epoch: u32) -> Envelope {
        let mut status = NodeStatus::new(NodeId(node.into()), 1, instance);
        status.epoch = epoch;
        Envelope::Heartbeat(status)
    }

    /// Node `a` under test, with an outbox instead of NATS, knowing node `b` (instance 7,
    /// epoch 0) from a heartbeat.
    struct Fixture {
        outbox: Arc<Outbox>,
        cluster: Arc<Cluster>,
        node: Arc<Node>,
    }

    impl Fixture {
        fn new() -> Self {
            let outbox = Arc::new(Outbox::default());
            let bus: Arc<dyn Bus> = outbox.clone();
            let a = NodeId("a".into());
            let cluster = Arc::new(Cluster::new(
                a.clone(),
                1,
                ClusterSettings::default(),
                Arc::clone(&bus),
                Arc::new(ClusterStats::default()),
            ));
            let node =
                Node::start_clustered(a, 1, SessionSettings::default(), bus, Arc::clone(&cluster));
            cluster.on_connected();
            cluster.receive(heartbeat("b", 7, 0), Instant::now());
            Self {
                outbox,
                cluster,
                node,
            }
        }

        /// What our shard does on pairing our waiting user (`session`) with a ticket spilled
        /// here by b's instance `instance` in `epoch`: reserve our seat, and ask b to commit.
        fn pair_with_b(&self, session: u64, instance: u64, epoch: u32) -> Ours {
            let now = Instant::now();
            let (local, ours) = our_waiting_user(session, now);
            assert!(ours.seat.reserve(ours.ticket, ours.chat));
            let theirs = RemoteTicket {
                home: NodeId("b".into()),
                instance,
                epoch,
                info: TicketInfo::plain(TicketId::next(), partner(session), local.info.bucket, now),
                public: PartnerInfo::default(),
            };
            self.cluster.propose(
                CrossNode::Commit {
                    chat: ours.chat,
                    local,
                    remote: theirs,
                    local_initiator: true,
                    common_interests: Vec::new(),
                },
                now,
            );
            self.assert_commit_sent_to_b(ours.chat);
            ours
        }

        /// What the owner of our bucket, node c, does on pairing our waiting user
        /// (`session`) with a user of b's instance `instance` (as b's ticket named it):
        /// it asks us to reserve our seat, and we ask b to commit.
        fn reserved_for_b_by_c(&self, session: u64, instance: Option<u64>) -> Ours {
            let now = Instant::now();
            let (local, ours) = our_waiting_user(session, now);
            assert!(self.cluster.spill(local, NodeId("c".into()), now).is_ok());
            let reserve = Proposal {
                chat: ours.chat,
                ticket: ours.ticket,
                partner: Address {
                    node: NodeId("b".into()),
                    session: partner(session),
                },
                partner_instance: instance,
                partner_ticket: TicketId::next(),
                partner_public: PartnerInfo::default(),
                initiator: true,
                common_interests: Vec::new(),
            };
            self.cluster.receive(Envelope::Reserve(reserve), now);
            self.assert_commit_sent_to_b(ours.chat);
            ours
        }

        fn assert_commit_sent_to_b(&self, chat: ChatId) {
            assert!(
                matches!(self.outbox.0.lock().last(), Some((to, Envelope::Commit(p))) if to.0 == "b" && p.chat == chat),
                "the commit goes to b"
            );
        }

        /// b's answer for our user's pairing (its user `session` took it) completes it: our
        /// user is told, our seat is matched, and it is this node's one cross-node match.
        fn assert_answer_completes(&self, ours: &mut Ours, session: SessionId) {
            self.committed(ours.chat, session);
            assert!(
                matches!(ours.events.try_recv(), Ok(SessionEvent::SeatChanged)),
                "our user is told it was paired"
            );
            assert!(ours.is_matched(), "our seat is matched");
            assert_eq!(self.cluster.stats.cross_matches.load(Ordering::Relaxed), 1);
        }

        /// b's answer: its user `session` took the pairing.
        fn committed(&self, chat: ChatId, session: SessionId) {
            let committer = Address {
                node: NodeId("b".into()),
                session,
            };
            self.cluster
                .receive(Envelope::Committed { chat, committer }, Instant::now());
        }

        /// The sessions on b told their chat ended.
        fn ended_on_b(&self) -> Vec<SessionId> {
            self.outbox
                .0
                .lock()
                .iter()
                .filter_map(|(to, e)| match e {
                    Envelope::ToSession { session, .. } if to.0 == "b" => Some(*session),
                    _ => None,
                })
                .collect()
        }
    }

    /// Our user `session`, waiting: its ticket, and what the test keeps of it (with the chat
    /// it is about to be paired in).
    fn our_waiting_user(session: u64, now: Instant) -> (Ticket, Ours) {
        let bucket = BucketKey {
            mode: Mode::Text,
            lang: Lang::EN,
        };
        let (events, ours) = mpsc::unbounded_channel();
        let seat = Arc::new(Seat::new(SessionId(session)));
        let mine = TicketId::next();
        assert!(seat.start_waiting(mine));
        let local = Ticket {
            info: TicketInfo::plain(mine, SessionId(session), bucket, now),
            seat: Arc::clone(&seat),
            peer: Peer {
                session: SessionId(session),
                link: Arc::new(Events(events)),
            },
            public: PartnerInfo::default(),
        };
        let ours = Ours {
            chat: ChatId::random(),
            seat,
            ticket: mine,
            events: ours,
        };
        (local, ours)
    }

    /// b's session paired with our session `ours` in these tests.
    fn partner(ours: u64) -> SessionId {
        SessionId(1000 + ours)
    }

    /// Our user in a pairing with one of b's.
    struct Ours {
        chat: ChatId,
        seat: Arc<Seat>,
        ticket: TicketId,
        events: mpsc::UnboundedReceiver<SessionEvent>,
    }

    impl Ours {
        fn waits(&self) -> bool {
            self.seat.waits_with(self.ticket)
        }

        fn is_matched(&self) -> bool {
            // Neither waiting, nor held for the chat, nor free.
            !self.waits()
                && self.seat.release_reserved(self.chat).is_none()
                && !self.seat.start_waiting(TicketId::next())
        }
    }

    #[actix_rt::test]
    async fn a_reservation_made_for_a_reconnected_nodes_new_ticket_completes_when_its_heartbeat_comes_late(
    ) {
        let f = Fixture::new();
        // Node b lost NATS and came back (epoch 1); its user spilled a ticket of the new
        // epoch to us, which overtook b's heartbeat announcing that epoch.
        let mut ours = f.pair_with_b(1, 7, 1);
        // Now b's heartbeat of epoch 1 arrives, and then b's answer: its user was paired.
        f.cluster.receive(heartbeat("b", 7, 1), Instant::now());
        f.assert_answer_completes(&mut ours, partner(1));
        assert!(
            f.ended_on_b().is_empty(),
            "b's user is not told its chat ended"
        );
        f.node.stop();
    }

    #[actix_rt::test]
    async fn a_restarted_node_keeps_the_reservations_for_its_new_instance_only() {
        let f = Fixture::new();
        let old = f.pair_with_b(1, 7, 0);
        // b restarted as instance 8, whose spill overtook its first heartbeat.
        let mut new = f.pair_with_b(2, 8, 0);
        f.cluster.receive(heartbeat("b", 8, 0), Instant::now());

        assert!(
            old.waits(),
            "the seat held for the old instance's user waits again"
        );
        assert_eq!(
            f.ended_on_b(),
            vec![partner(1)],
            "the old one's chat is ended"
        );
        // A late answer from the old process pairs nobody.
        f.committed(old.chat, partner(1));
        assert!(old.waits());
        // The new instance's answer completes its pairing.
        f.assert_answer_completes(&mut new, partner(2));
        f.node.stop();
    }

    #[actix_rt::test]
    async fn a_seat_reserved_at_the_owners_request_is_kept_if_for_a_restarted_nodes_new_instance() {
        let f = Fixture::new();
        f.cluster.receive(heartbeat("c", 5, 0), Instant::now());
        let old = f.reserved_for_b_by_c(1, Some(7));
        // From an owner that predates `partner_instance`: the instance is unknown.
        let unknown = f.reserved_for_b_by_c(2, None);
        // b restarted as instance 8; c paired our user with one of its new users, whose
        // ticket reached c before b's first heartbeat reached us.
        let mut new = f.reserved_for_b_by_c(3, Some(8));
        f.cluster.receive(heartbeat("b", 8, 0), Instant::now());

        assert!(
            old.waits(),
            "the seat held for the old instance waits again"
        );
        assert!(
            unknown.waits(),
            "so does the one held for an unknown instance"
        );
        let mut ended = f.ended_on_b();
        ended.sort_by_key(|s| s.0);
        assert_eq!(ended, vec![partner(1), partner(2)], "their chats are ended");
        // The new instance's answer completes its pairing.
        f.assert_answer_completes(&mut new, partner(3));
        f.node.stop();
    }
}
