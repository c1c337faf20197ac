//! The claim across nodes under the interleavings that at-most-once delivery allows, as a
//! deterministic simulation: each node is its real [`ClusterModel`] and the real
//! [`ShardCore`] of one shard, the clock moves only when a test says so, and the network is a
//! queue the test delivers in order, holds, or loses. No actors, threads or sleeps: every
//! interleaving happens exactly as written. (tests/cluster.rs runs the same code over a
//! real nats-server.)

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tandem_engine::session::{Identity, Peer, Seat, SessionEvent, SessionLink};
use tandem_engine::shard::{ClusterPort, CrossNode, RemoteTicket, ShardCore, ShardStats, Ticket};
use tandem_ids::{ChatId, NodeId, SessionId, TicketId};
use tandem_match::{BucketKey, Lang, Mode, TicketInfo};
use tandem_proto::PartnerInfo;

use super::coordinator::FromShard;
use super::model::{ClusterModel, NodeCounts, Output, RemotePeers, ShardOrder};
use super::{ClusterSettings, ClusterStats, Membership};
use crate::bus::{Address, Envelope, NodeStatus, Proposal};

/// A shard's port that keeps what the shard hands it, for the simulation to feed the model.
#[derive(Default)]
struct Handed(Mutex<Vec<FromShard>>);

impl ClusterPort for Handed {
    fn propose(&self, pairing: CrossNode) {
        self.0.lock().push(FromShard::Propose(Box::new(pairing)));
    }

    fn spill(&self, ticket: Ticket, owner: NodeId) {
        self.0.lock().push(FromShard::Spill { ticket, owner });
    }

    fn withdrawn(&self, ticket: TicketId) {
        self.0.lock().push(FromShard::Withdrawn(ticket));
    }

    fn send_home(&self, ticket: RemoteTicket) {
        self.0.lock().push(FromShard::SendHome(ticket));
    }
}

/// A session nobody reads: the tests look at seats and at what the nodes did.
struct Nowhere;

impl SessionLink for Nowhere {
    fn deliver(&self, _: SessionEvent) {}
}

struct NowherePeers;

impl RemotePeers for NowherePeers {
    fn peer(&self, address: &Address, who: Arc<Identity>) -> Peer {
        Peer {
            session: address.session,
            link: Arc::new(Nowhere),
            who,
        }
    }
}

/// One node of the simulation.
struct SimNode {
    model: ClusterModel,
    shard: ShardCore,
    handed: Arc<Handed>,
    stats: Arc<ClusterStats>,
    /// Sessions told a pairing is in their seat.
    woken: Vec<SessionId>,
    /// Events delivered to sessions of this node by id.
    delivered: Vec<(SessionId, SessionEvent)>,
    /// Nodes whose users' chats this node ended.
    lost: Vec<NodeId>,
}

impl SimNode {
    fn new(id: &NodeId, instance: u64, now: Instant) -> Self {
        let stats = Arc::new(ClusterStats::default());
        let handed = Arc::new(Handed::default());
        let settings = ClusterSettings::default();
        let shard = ShardCore::new(
            Arc::new(ShardStats::default()),
            Arc::clone(&handed) as Arc<dyn ClusterPort>,
            Some(settings.spill_after),
        );
        let mut model = ClusterModel::new(
            id.clone(),
            instance,
            1,
            settings,
            Arc::clone(&stats),
            Arc::new(NowherePeers),
        );
        let mut out = Vec::new();
        model.connected(now, &mut out);
        let mut node = Self {
            model,
            shard,
            handed,
            stats,
            woken: Vec::new(),
            delivered: Vec::new(),
            lost: Vec::new(),
        };
        let mut net = VecDeque::new();
        node.carry_out(out, now, &mut net);
        node
    }

    /// Carries out the model's outputs: on this node's shard and sessions, or onto `net`.
    fn carry_out(&mut self, outputs: Vec<Output>, now: Instant, net: &mut VecDeque<Sent>) {
        for output in outputs {
            match output {
                Output::Send(to, envelope) => net.push_back(Sent {
                    to: Some(to),
                    envelope,
                }),
                Output::Broadcast(envelope) => net.push_back(Sent { to: None, envelope }),
                Output::Place(ticket) => self.shard.place(ticket, now),
                Output::PlaceRemote(ticket) => self.shard.place_remote(ticket, now),
                Output::WithdrawRemote { ticket, .. } => self.shard.withdraw_remote(ticket, now),
                Output::Shards(ShardOrder::DropHome { node, keep }) => {
                    self.shard.drop_home(&node, keep)
                }
                Output::Shards(ShardOrder::DropRemote) => self.shard.drop_remote(),
                Output::Shards(ShardOrder::ReturnRemote) => self.shard.return_remote(),
                Output::Owners(owners) => self.shard.set_owners(owners),
                Output::Wake(peer) => self.woken.push(peer.session),
                Output::Deliver { session, event } => self.delivered.push((session, event)),
                Output::NodeLost(node) => self.lost.push(node),
                Output::DrainRequested => {}
            }
        }
    }

    /// Feeds the model what the shard handed its port; says whether there was anything.
    fn take_handed(&mut self, now: Instant, net: &mut VecDeque<Sent>) -> bool {
        let handed: Vec<FromShard> = std::mem::take(&mut *self.handed.0.lock());
        let any = !handed.is_empty();
        for request in handed {
            let mut out = Vec::new();
            match request {
                FromShard::Propose(pairing) => self.model.propose(*pairing, now, &mut out),
                FromShard::Spill { ticket, owner } => {
                    self.model.spill(ticket, owner, now, &mut out)
                }
                FromShard::Withdrawn(ticket) => self.model.withdrawn(ticket, now, &mut out),
                FromShard::SendHome(ticket) => self.model.send_home(ticket, now, &mut out),
            }
            self.carry_out(out, now, net);
        }
        any
    }
}

/// An envelope on the simulated network.
#[derive(Debug)]
struct Sent {
    /// `None`: to every node.
    to: Option<NodeId>,
    envelope: Envelope,
}

/// A cluster of simulated nodes.
struct Sim {
    now: Instant,
    nodes: BTreeMap<NodeId, SimNode>,
    net: VecDeque<Sent>,
    /// While set, envelopes wait on the network until the test delivers them.
    held: bool,
}

impl Sim {
    /// Nodes `ids` (instances 1, 2, …), connected, each having heard every other.
    fn new(ids: &[NodeId]) -> Self {
        let now = Instant::now();
        let nodes = (ids.iter().enumerate())
            .map(|(i, id)| (id.clone(), SimNode::new(id, i as u64 + 1, now)))
            .collect();
        let mut sim = Self {
            now,
            nodes,
            net: VecDeque::new(),
            held: false,
        };
        sim.heartbeats();
        sim
    }

    fn node(&self, id: &NodeId) -> &SimNode {
        &self.nodes[id]
    }

    fn node_mut(&mut self, id: &NodeId) -> &mut SimNode {
        self.nodes.get_mut(id).expect("a live node")
    }

    /// Every node announces itself; then the network is pumped.
    fn heartbeats(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for id in ids {
            self.heartbeat_of(&id);
        }
        self.pump();
    }

    /// Node `id` announces itself (delivered on the next pump).
    fn heartbeat_of(&mut self, id: &NodeId) {
        let now = self.now;
        let mut net = std::mem::take(&mut self.net);
        let node = self.node_mut(id);
        let mut out = Vec::new();
        node.model.heartbeat(NodeCounts::default(), &mut out);
        node.carry_out(out, now, &mut net);
        self.net = net;
    }

    /// Places a user's ticket on node `id`'s shard.
    fn place(&mut self, id: &NodeId, ticket: Ticket) {
        let now = self.now;
        self.node_mut(id).shard.place(ticket, now);
        self.pump();
    }

    /// Lets `by` pass: every node's shard ticks and spills what is due, and every model
    /// ticks.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        let now = self.now;
        let mut net = std::mem::take(&mut self.net);
        for node in self.nodes.values_mut() {
            node.shard.tick(now);
            node.shard.spill_due(now);
            node.take_handed(now, &mut net);
            let mut out = Vec::new();
            node.model.tick(now, &mut out);
            node.carry_out(out, now, &mut net);
        }
        self.net = net;
        self.pump();
    }

    /// Lets `span` pass as in a live cluster: every node announces itself every heartbeat
    /// interval (those of nodes that are gone are missed, as on a network).
    fn live_for(&mut self, span: Duration) {
        let every = ClusterSettings::default().heartbeat;
        let until = self.now + span;
        while self.now < until {
            self.heartbeats();
            self.advance(every.min(until - self.now));
        }
    }

    /// Runs until nothing moves: shards' requests to their models, and (unless held) the
    /// network, in order.
    fn pump(&mut self) {
        loop {
            let now = self.now;
            let mut net = std::mem::take(&mut self.net);
            let mut moved = false;
            for node in self.nodes.values_mut() {
                moved |= node.take_handed(now, &mut net);
            }
            self.net = net;
            if !self.held {
                if let Some(sent) = self.net.pop_front() {
                    self.deliver(sent);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Delivers one envelope (to a node that is gone: lost).
    fn deliver(&mut self, sent: Sent) {
        let now = self.now;
        let targets: Vec<NodeId> = match &sent.to {
            Some(to) => vec![to.clone()],
            None => self.nodes.keys().cloned().collect(),
        };
        let mut net = std::mem::take(&mut self.net);
        for to in targets {
            let Some(node) = self.nodes.get_mut(&to) else {
                continue;
            };
            let mut out = Vec::new();
            node.model.receive(sent.envelope.clone(), now, &mut out);
            node.carry_out(out, now, &mut net);
            // What the shard did with it (a spilled ticket paired at once, say) goes on to
            // the model before anything else arrives, as the coordinator's mailbox has it.
            while node.take_handed(now, &mut net) {}
        }
        self.net = net;
    }

    /// Node `id` is gone (SIGKILL): what is sent to it from now on is lost.
    fn kill(&mut self, id: &NodeId) {
        self.nodes.remove(id);
    }

    /// Node `id` starts again as a new process, `instance`, with no users.
    fn restart(&mut self, id: &NodeId, instance: u64) {
        self.nodes
            .insert(id.clone(), SimNode::new(id, instance, self.now));
    }

    /// Hands node `to` an envelope as if from the network.
    fn inject(&mut self, to: &NodeId, envelope: Envelope) {
        self.deliver(Sent {
            to: Some(to.clone()),
            envelope,
        });
        self.pump();
    }

    fn waiting(&self, id: &NodeId) -> usize {
        self.node(id).shard.waiting()
    }

    fn in_flight(&self, id: &NodeId) -> (usize, usize) {
        self.node(id).model.in_flight()
    }

    fn cross_matches(&self, id: &NodeId) -> u64 {
        self.node(id).stats.cross_matches.load(Ordering::Relaxed)
    }
}

fn bucket() -> BucketKey {
    BucketKey {
        mode: Mode::Text,
        lang: Lang::EN,
    }
}

/// A waiting user of session `session`: its ticket, and what the test keeps of it.
struct User {
    seat: Arc<Seat>,
    ticket: TicketId,
    session: SessionId,
}

impl User {
    fn waits(&self) -> bool {
        self.seat.waits_with(self.ticket)
    }

    /// Paired: neither waiting nor free (a pairing is in the seat).
    fn is_paired(&self) -> bool {
        !self.waits() && !self.seat.start_waiting(TicketId::next())
    }
}

/// The user of session `session`.
fn who(session: u64) -> Arc<Identity> {
    let client = tandem_ids::ClientId::parse(&format!("client-{session}")).expect("well formed");
    Arc::new(Identity::of(client))
}

fn user(session: u64, now: Instant) -> (Ticket, User) {
    let seat = Arc::new(Seat::new(SessionId(session)));
    let id = TicketId::next();
    assert!(seat.start_waiting(id));
    let ticket = Ticket {
        info: TicketInfo::plain(id, SessionId(session), bucket(), now),
        seat: Arc::clone(&seat),
        peer: Peer {
            session: SessionId(session),
            link: Arc::new(Nowhere),
            who: who(session),
        },
        public: PartnerInfo {
            country: "ZZ".into(),
            college: None,
        },
    };
    let user = User {
        seat,
        ticket: id,
        session: SessionId(session),
    };
    (ticket, user)
}

/// Node ids (prefix + i) such that `ids[owner]` owns text/en in everyone's view.
fn ids(prefix: &str, n: usize, owner: usize) -> Vec<NodeId> {
    for attempt in 0.. {
        let ids: Vec<NodeId> = (0..n)
            .map(|i| NodeId(format!("{prefix}{attempt}x{i}")))
            .collect();
        let mut view = Membership::new(ids[0].clone(), 1, Duration::from_secs(2));
        for id in &ids[1..] {
            view.observe(NodeStatus::new(id.clone(), 1, 1), Instant::now());
        }
        if view.owner(&bucket()).as_ref() == Some(&ids[owner]) {
            return ids;
        }
    }
    unreachable!()
}

/// Past `--spill-after`: a waiting user's ticket leaves for the owner.
fn spill_after() -> Duration {
    ClusterSettings::default().spill_after
}

#[test]
fn users_of_two_nodes_meet_at_the_owner_and_both_seats_are_claimed() {
    let ids = ids("p", 2, 1);
    let (home, owner) = (&ids[0], &ids[1]);
    let mut sim = Sim::new(&ids);
    let (t, x) = user(1, sim.now);
    sim.place(home, t);
    sim.advance(spill_after());
    assert_eq!(sim.in_flight(home), (1, 0), "spilled");
    assert_eq!(sim.waiting(owner), 1, "held by the owner");
    assert_eq!(sim.waiting(home), 0);

    let (u, y) = user(2, sim.now);
    sim.place(owner, u);
    assert!(x.is_paired() && y.is_paired());
    assert_eq!(sim.node(home).woken, [x.session]);
    assert_eq!(sim.node(owner).woken, [y.session]);
    assert_eq!((sim.cross_matches(home), sim.cross_matches(owner)), (1, 1));
    assert_eq!(sim.in_flight(home), (0, 0));
    assert_eq!(sim.in_flight(owner), (0, 0));
}

#[test]
fn a_proposal_from_the_owner_that_held_the_ticket_sends_it_no_withdraw() {
    let ids = ids("q", 3, 2);
    let (a, b) = (&ids[0], &ids[1]);
    let mut sim = Sim::new(&ids);
    let (t, x) = user(1, sim.now);
    sim.place(a, t);
    sim.advance(spill_after());
    sim.held = true;
    let (u, y) = user(2, sim.now);
    sim.place(b, u);
    sim.advance(spill_after());
    // Everything the claim sends, delivered one envelope at a time, in order.
    let mut withdraws = 0;
    while let Some(sent) = sim.net.pop_front() {
        if matches!(sent.envelope, Envelope::Withdraw { .. }) {
            withdraws += 1;
        }
        sim.deliver(sent);
    }
    assert!(x.is_paired() && y.is_paired());
    assert_eq!(
        withdraws, 0,
        "the owner's copies left its pool with the pairing"
    );
}

#[test]
fn a_spill_that_overtakes_the_reconnect_heartbeat_is_kept_and_paired() {
    let ids = ids("r", 2, 1);
    let (x_id, b_id) = (&ids[0], &ids[1]);
    let mut sim = Sim::new(&ids);
    // A NATS blip on x, shorter than the node timeout: b never declares x dead.
    let now = sim.now;
    let mut net = VecDeque::new();
    let x = sim.node_mut(x_id);
    let mut out = Vec::new();
    x.model.disconnected(now, &mut out);
    x.model.connected(now + Duration::from_millis(1), &mut out);
    x.carry_out(out, now, &mut net);
    let (t, xu) = user(1, sim.now);
    sim.place(x_id, t);
    sim.advance(spill_after());
    assert_eq!(sim.in_flight(x_id).0, 1, "spilled in the new epoch");
    assert_eq!(sim.waiting(b_id), 1, "held by the owner");
    // Only now does b hear of x's new epoch: it drops x's older tickets, not this one.
    sim.heartbeat_of(x_id);
    sim.pump();
    assert_eq!(sim.waiting(b_id), 1, "the new-epoch ticket is kept");

    let (u, bu) = user(2, sim.now);
    sim.place(b_id, u);
    assert!(xu.is_paired(), "x's user was paired");
    assert!(bu.is_paired(), "b's user was paired");
    assert_eq!((sim.cross_matches(x_id), sim.cross_matches(b_id)), (1, 1));
    assert_eq!(sim.in_flight(x_id), (0, 0));
    assert_eq!(sim.in_flight(b_id), (0, 0));
}

#[test]
fn a_proposal_lost_with_a_dead_home_strands_the_partner_only_until_its_lease_ends() {
    let ids = ids("d", 3, 2);
    let (h1, h2, o) = (&ids[0], &ids[1], &ids[2]);
    let mut sim = Sim::new(&ids);
    let (t1, _u1) = user(1, sim.now);
    sim.place(h1, t1);
    sim.advance(spill_after());
    assert_eq!(sim.waiting(o), 1, "h1's user waits at the owner");

    // h1 dies (SIGKILL): what is sent to it is lost from now on. h2's user is paired with
    // h1's at the owner before anyone knows, and the Reserve to h1 is lost.
    sim.kill(h1);
    let (t2, u2) = user(2, sim.now);
    sim.place(h2, t2);
    sim.advance(spill_after());
    let spilled_at = sim.now;
    assert_eq!(sim.waiting(o), 0, "both were taken for the lost proposal");
    assert_eq!(sim.in_flight(h2).0, 1, "h2 still has its ticket out");

    // h1 is declared dead; a user of the owner arrives and waits.
    let timeout = ClusterSettings::default().node_timeout;
    sim.live_for(timeout);
    assert!(sim.node(o).lost.contains(h1), "the owner declared h1 dead");
    let (u, uo) = user(3, sim.now);
    sim.place(o, u);
    assert!(u2.waits() && uo.waits(), "nobody pairs them yet");

    // The spilled ticket's lease (3 node timeouts) ends: h2 takes it back and sends it
    // again, and the owner pairs it with its user.
    let lease_end = spilled_at + 3 * timeout;
    sim.live_for(lease_end - sim.now - Duration::from_millis(1));
    assert!(u2.waits(), "not before the lease ends");
    assert_eq!(sim.in_flight(h2).0, 1, "still out");
    sim.live_for(Duration::from_millis(1));
    assert_eq!(sim.in_flight(h2).0, 0, "taken back home");
    assert!(u2.waits(), "and waiting there");
    sim.live_for(spill_after());
    assert!(u2.is_paired(), "h2's user was paired after all");
    assert!(uo.is_paired(), "the owner's user was paired");
    assert_eq!(sim.in_flight(h2), (0, 0));
}

#[test]
fn a_hostile_withdraw_cannot_take_a_local_user_out_of_the_pool() {
    let ids = ids("w", 2, 1);
    let owner = &ids[1];
    let mut sim = Sim::new(&ids);
    // A user of the owner waits (it never spills: its node owns the bucket).
    let (u, uu) = user(1, sim.now);
    sim.place(owner, u);
    sim.advance(spill_after());
    // Another node withdraws that ticket id: only spilled tickets may be withdrawn so.
    let withdraw = Envelope::Withdraw {
        ticket: uu.ticket,
        bucket: bucket(),
    };
    sim.inject(owner, withdraw);
    assert_eq!(
        sim.waiting(owner),
        1,
        "the local user still waits in the pool"
    );
    let (v, vu) = user(2, sim.now);
    sim.place(owner, v);
    assert!(uu.is_paired() && vu.is_paired(), "and is paired");
}

/// Node `a` alone with what it hears, for the tests of one node's reservations: node `b` is
/// known from a heartbeat (instance 7, epoch 0), and what `a` sends stays on the network.
struct Reserving {
    sim: Sim,
    a: NodeId,
    b: NodeId,
}

impl Reserving {
    fn new() -> Self {
        let a = NodeId("a".into());
        let b = NodeId("b".into());
        let mut sim = Sim::new(std::slice::from_ref(&a));
        sim.held = true;
        let mut f = Self { sim, a, b };
        f.heartbeat("b", 7, 0);
        f
    }

    fn heartbeat(&mut self, node: &str, instance: u64, epoch: u32) {
        let mut status = NodeStatus::new(NodeId(node.into()), 1, instance);
        status.epoch = epoch;
        let a = self.a.clone();
        self.sim.inject(&a, Envelope::Heartbeat(status));
    }

    /// What a's shard does on pairing our waiting user (`session`) with a ticket spilled
    /// here by b's instance `instance` in `epoch`: it reserves our seat and a asks b to
    /// commit.
    fn pair_with_b(&mut self, session: u64, instance: u64, epoch: u32) -> (User, ChatId) {
        let now = self.sim.now;
        let (local, ours) = user(session, now);
        let chat = ChatId::random();
        assert!(ours.seat.reserve(ours.ticket, chat));
        let theirs = RemoteTicket {
            home: self.b.clone(),
            instance,
            epoch,
            info: TicketInfo::plain(TicketId::next(), partner(session), bucket(), now),
            public: PartnerInfo::default(),
            who: who(partner(session).0),
        };
        let a = self.a.clone();
        let node = self.sim.node_mut(&a);
        node.handed.propose(CrossNode::Commit {
            chat,
            local,
            remote: theirs,
            local_initiator: true,
            common_interests: Vec::new(),
        });
        self.sim.pump();
        self.assert_commit_sent_to_b(chat);
        (ours, chat)
    }

    /// What happens when the owner of our bucket, node c, pairs our spilled user
    /// (`session`) with a user of b's `instance`: c asks us to reserve, we ask b to commit.
    fn reserved_for_b_by_c(&mut self, session: u64, instance: u64) -> (User, ChatId) {
        let now = self.sim.now;
        let (local, ours) = user(session, now);
        let (a, c) = (self.a.clone(), NodeId("c".into()));
        let mut out = Vec::new();
        let mut net = VecDeque::new();
        let node = self.sim.node_mut(&a);
        node.model.spill(local, c.clone(), now, &mut out);
        node.carry_out(out, now, &mut net);
        assert_eq!(self.sim.in_flight(&a).0, 1, "spilled to c");
        let chat = ChatId::random();
        let reserve = Proposal {
            chat,
            ticket: ours.ticket,
            partner: Address {
                node: self.b.clone(),
                session: partner(session),
            },
            partner_instance: instance,
            partner_ticket: TicketId::next(),
            partner_public: PartnerInfo::default(),
            initiator: true,
            common_interests: Vec::new(),
            owner: c,
            partner_who: who(partner(session).0),
        };
        self.sim.inject(&a, Envelope::Reserve(reserve));
        self.assert_commit_sent_to_b(chat);
        (ours, chat)
    }

    fn assert_commit_sent_to_b(&self, chat: ChatId) {
        assert!(
            self.sim.net.iter().any(|s| s.to.as_ref() == Some(&self.b)
                && matches!(&s.envelope, Envelope::Commit(p) if p.chat == chat)),
            "the commit goes to b"
        );
    }

    /// b's answer: its user `session` took the pairing.
    fn committed(&mut self, chat: ChatId, session: SessionId) {
        let committer = Address {
            node: self.b.clone(),
            session,
        };
        let a = self.a.clone();
        self.sim.inject(&a, Envelope::Committed { chat, committer });
    }

    /// The sessions on b told their chat ended.
    fn ended_on_b(&self) -> Vec<SessionId> {
        let mut ended: Vec<SessionId> = (self.sim.net.iter())
            .filter(|s| s.to.as_ref() == Some(&self.b))
            .filter_map(|s| match &s.envelope {
                Envelope::ToSession {
                    session,
                    event: SessionEvent::PartnerEnded { .. },
                } => Some(*session),
                _ => None,
            })
            .collect();
        ended.sort_by_key(|s| s.0);
        ended
    }

    /// b's answer for our user's pairing completes it: our user is told, and its seat is
    /// paired.
    fn assert_answer_completes(&mut self, ours: &User, chat: ChatId, session: SessionId) {
        self.committed(chat, session);
        assert!(
            self.sim.node(&self.a).woken.contains(&ours.session),
            "our user is told it was paired"
        );
        assert!(ours.is_paired(), "our seat is paired");
    }
}

/// b's session paired with our session `ours` in these tests.
fn partner(ours: u64) -> SessionId {
    SessionId(1000 + ours)
}

#[test]
fn a_reservation_made_for_a_reconnected_nodes_new_ticket_completes_when_its_heartbeat_comes_late() {
    let mut f = Reserving::new();
    // Node b lost NATS and came back (epoch 1); its user spilled a ticket of the new epoch
    // to us, which overtook b's heartbeat announcing that epoch.
    let (ours, chat) = f.pair_with_b(1, 7, 1);
    // Now b's heartbeat of epoch 1 arrives, and then b's answer: its user was paired.
    f.heartbeat("b", 7, 1);
    f.assert_answer_completes(&ours, chat, partner(1));
    assert!(
        f.ended_on_b().is_empty(),
        "b's user is not told its chat ended"
    );
    assert_eq!(f.sim.cross_matches(&f.a.clone()), 1);
}

#[test]
fn a_restarted_node_keeps_the_reservations_for_its_new_instance_only() {
    let mut f = Reserving::new();
    let (old, old_chat) = f.pair_with_b(1, 7, 0);
    // b restarted as instance 8, whose spill overtook its first heartbeat.
    let (new, new_chat) = f.pair_with_b(2, 8, 0);
    f.heartbeat("b", 8, 0);

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
    f.committed(old_chat, partner(1));
    assert!(old.waits());
    // The new instance's answer completes its pairing.
    f.assert_answer_completes(&new, new_chat, partner(2));
}

#[test]
fn a_seat_reserved_at_the_owners_request_is_kept_if_for_a_restarted_nodes_new_instance() {
    let mut f = Reserving::new();
    f.heartbeat("c", 5, 0);
    let (old, _) = f.reserved_for_b_by_c(1, 7);
    // b restarted as instance 8; c paired our user with one of its new users, whose ticket
    // reached c before b's first heartbeat reached us.
    let (new, new_chat) = f.reserved_for_b_by_c(2, 8);
    f.heartbeat("b", 8, 0);

    assert!(
        old.waits(),
        "the seat held for the old instance waits again"
    );
    assert_eq!(f.ended_on_b(), vec![partner(1)], "its chat is ended");
    // The new instance's answer completes its pairing.
    f.assert_answer_completes(&new, new_chat, partner(2));
}

#[test]
fn a_restarted_owner_drops_nothing_of_ours_it_never_held_and_our_tickets_come_home() {
    let ids = ids("s", 2, 1);
    let (home, owner) = (&ids[0], &ids[1]);
    let mut sim = Sim::new(&ids);
    let (t, x) = user(1, sim.now);
    sim.place(home, t);
    sim.advance(spill_after());
    assert_eq!(sim.in_flight(home).0, 1);
    // The owner restarts: its pool (with our ticket) is gone. Its first heartbeat tells us.
    sim.restart(owner, 99);
    sim.heartbeats();
    assert_eq!(sim.in_flight(home).0, 0, "taken back");
    assert_eq!(sim.waiting(home), 1, "waiting at home again");
    sim.advance(spill_after());
    assert_eq!(sim.in_flight(home).0, 1, "sent again to the new instance");
    assert_eq!(sim.waiting(owner), 1, "which holds it");
    let (u, y) = user(2, sim.now);
    sim.place(owner, u);
    assert!(x.is_paired() && y.is_paired());
}

#[test]
fn while_cut_off_a_node_pairs_its_own_users_and_spills_nothing() {
    let ids = ids("c", 2, 1);
    let (home, owner) = (&ids[0], &ids[1]);
    let mut sim = Sim::new(&ids);
    let now = sim.now;
    let mut out = Vec::new();
    let mut net = VecDeque::new();
    let node = sim.node_mut(home);
    node.model.disconnected(now, &mut out);
    node.carry_out(out, now, &mut net);
    let (t, x) = user(1, sim.now);
    sim.place(home, t);
    sim.advance(spill_after());
    assert_eq!(sim.in_flight(home), (0, 0), "nothing leaves a node cut off");
    assert_eq!(sim.waiting(owner), 0);
    let (u, y) = user(2, sim.now);
    sim.place(home, u);
    assert!(x.is_paired() && y.is_paired(), "paired at home");
    assert!(
        !sim.node(home).model.is_isolated(sim.now),
        "not yet past the node timeout"
    );
    sim.advance(ClusterSettings::default().node_timeout);
    assert!(sim.node(home).model.is_isolated(sim.now));
}
