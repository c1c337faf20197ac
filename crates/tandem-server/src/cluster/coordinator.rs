//! The coordinator: the one actor that owns a node's [`ClusterModel`] and the only code that
//! sends cluster envelopes.
//!
//! Everything that changes the cluster state arrives here as a message, one at a time:
//! what the shards hand their [`ClusterPort`] (spills, pairings across nodes, withdrawn
//! tickets), envelopes from other nodes, the connection going up or down, an operator's
//! drain, and its own tick. The handler runs the model and carries out its outputs: onto
//! the bus, to the shards through the router, to sessions through the registry. No lock
//! guards the cluster state, and nothing calls into it from another thread.
//!
//! Relays between partners on different nodes do not pass through here: a session's
//! [`RemoteLink`](crate::bus::RemoteLink) publishes them and the receiving bus hands them to
//! the session registry, so a chat line never waits behind a claim.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::channel;
use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, Recipient};
use tandem_engine::router::Router;
use tandem_engine::session::{Identity, Peer, SessionEvent};
use tandem_engine::shard::{
    ClusterPort, CrossNode, DropHome, DropRemote, RemoteTicket, ReturnRemote, SetOwners, Ticket,
};
use tandem_ids::{NodeId, TicketId};
use tokio::sync::{watch, Notify};

use super::membership::Member;
use super::model::{ClusterModel, NodeCounts, Output, RemotePeers, ShardOrder};
use super::{ClusterSettings, ClusterStats};
use crate::bus::{Address, Bus, Envelope, RemoteLink};
use crate::metrics::Metrics;
use crate::registry::Registry;

/// How often the coordinator's periodic work runs (death detection, claim expiry, leases),
/// and so how finely the heartbeat interval is kept.
pub const TICK: Duration = Duration::from_millis(100);

/// What a shard hands the cluster (through [`CoordinatorPort`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum FromShard {
    Propose(Box<CrossNode>),
    Spill { ticket: Ticket, owner: NodeId },
    Withdrawn(TicketId),
    SendHome(RemoteTicket),
}

/// An envelope from another node (relays excepted: they go to the registry directly).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Inbound(pub Envelope);

/// The connection to the cluster went up (`true`) or down.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Connection(pub bool);

/// This node begins to drain (shutdown, or an operator's `tandem cluster drain`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BeginDrain;

/// The cluster as this node sees it, published after every tick, connection change and
/// heartbeat heard: for the dashboard and for tests that wait for the cluster to form.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// Whether the connection to the cluster is up.
    pub connected: bool,
    /// Cut off for longer than the node timeout: the others have declared this node dead.
    pub isolated: bool,
    /// The other live nodes.
    pub members: Vec<(NodeId, Member)>,
    /// Local tickets waiting at another node.
    pub spilled: usize,
    /// Local seats held for a pairing across nodes.
    pub reservations: usize,
}

/// A shard's port into the cluster: each call is a message to the coordinator.
pub struct CoordinatorPort(Recipient<FromShard>);

impl ClusterPort for CoordinatorPort {
    fn propose(&self, pairing: CrossNode) {
        self.0.do_send(FromShard::Propose(Box::new(pairing)));
    }

    fn spill(&self, ticket: Ticket, owner: NodeId) {
        self.0.do_send(FromShard::Spill { ticket, owner });
    }

    fn withdrawn(&self, ticket: TicketId) {
        self.0.do_send(FromShard::Withdrawn(ticket));
    }

    fn send_home(&self, ticket: RemoteTicket) {
        self.0.do_send(FromShard::SendHome(ticket));
    }
}

/// Peers for sessions on other nodes: links over this node's bus.
struct BusPeers(Arc<dyn Bus>);

impl RemotePeers for BusPeers {
    fn peer(&self, address: &Address, who: Arc<Identity>) -> Peer {
        Peer {
            session: address.session,
            link: Arc::new(RemoteLink {
                node: address.node.clone(),
                session: address.session,
                bus: Arc::clone(&self.0),
            }),
            who,
        }
    }
}

/// What a node keeps of its coordinator: how to reach it and what it publishes.
#[derive(Clone)]
pub struct ClusterHandle {
    coordinator: Addr<Coordinator>,
    view: watch::Receiver<ClusterView>,
    drain: Arc<Notify>,
    stats: Arc<ClusterStats>,
}

impl ClusterHandle {
    /// The coordinator's address, for the bus's receiving side.
    pub fn coordinator(&self) -> &Addr<Coordinator> {
        &self.coordinator
    }

    /// The cluster as this node sees it now.
    pub fn view(&self) -> ClusterView {
        self.view.borrow().clone()
    }

    /// A receiver of every new view, to wait for a change.
    pub fn watch(&self) -> watch::Receiver<ClusterView> {
        self.view.clone()
    }

    /// Counters and histograms of this node's cluster traffic.
    pub fn stats(&self) -> &Arc<ClusterStats> {
        &self.stats
    }

    /// Completes when an operator asks this node to drain.
    pub async fn drain_requested(&self) {
        self.drain.notified().await;
    }

    /// First step of leaving the cluster: own nothing, spill nothing, tell everyone.
    pub fn begin_drain(&self) {
        self.coordinator.do_send(BeginDrain);
    }
}

/// A coordinator's address, made before the coordinator itself: the shards' ports need it,
/// and the coordinator needs the shards' router.
pub struct Pending {
    address: Addr<Coordinator>,
    mailbox: channel::AddressReceiver<Coordinator>,
}

impl Pending {
    /// A mailbox for a coordinator not started yet.
    pub fn new() -> Self {
        let (sender, mailbox) = channel::channel(16);
        Self {
            address: Addr::new(sender),
            mailbox,
        }
    }

    /// The port for a shard.
    pub fn port(&self) -> Arc<dyn ClusterPort> {
        Arc::new(CoordinatorPort(self.address.clone().recipient()))
    }

    /// Starts the coordinator on `arbiter`'s thread; messages sent meanwhile are kept.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        self,
        arbiter: &actix::ArbiterHandle,
        me: NodeId,
        settings: ClusterSettings,
        stats: Arc<ClusterStats>,
        bus: Arc<dyn Bus>,
        router: Router,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> ClusterHandle {
        let (view_tx, view) = watch::channel(ClusterView::default());
        let drain = Arc::new(Notify::new());
        let shards = u16::try_from(router.shards().len()).unwrap_or(u16::MAX);
        let model = ClusterModel::new(
            me,
            rand::random(),
            shards,
            settings,
            Arc::clone(&stats),
            Arc::new(BusPeers(Arc::clone(&bus))),
        );
        let coordinator = Coordinator {
            model,
            bus,
            router,
            registry,
            metrics,
            drain: Arc::clone(&drain),
            view: view_tx,
            last_heartbeat: None,
            out: Vec::new(),
        };
        let mailbox = self.mailbox;
        arbiter.spawn_fn(move || {
            Context::with_receiver(mailbox).run(coordinator);
        });
        ClusterHandle {
            coordinator: self.address,
            view,
            drain,
            stats,
        }
    }
}

impl Default for Pending {
    fn default() -> Self {
        Self::new()
    }
}

/// The actor.
pub struct Coordinator {
    model: ClusterModel,
    bus: Arc<dyn Bus>,
    /// This node's shards.
    router: Router,
    /// This node's sessions.
    registry: Arc<Registry>,
    /// What the heartbeat tells of this node.
    metrics: Arc<Metrics>,
    /// Wakes the server when an operator asks this node to drain.
    drain: Arc<Notify>,
    view: watch::Sender<ClusterView>,
    last_heartbeat: Option<Instant>,
    /// Reused for every input's outputs.
    out: Vec<Output>,
}

impl Coordinator {
    fn counts(&self) -> NodeCounts {
        NodeCounts {
            shards: u16::try_from(self.router.shards().len()).unwrap_or(u16::MAX),
            online: self.metrics.online(),
            waiting: self.metrics.waiting(),
            // As the dashboard counts them: a pairing across nodes is half on each.
            matches: self.metrics.matched_sessions.load(Ordering::Relaxed) / 2,
            skips: self.metrics.skips.load(Ordering::Relaxed),
        }
    }

    /// The periodic work: the heartbeat when due, then the model's tick.
    fn tick(&mut self, now: Instant) {
        let every = self.model.settings().heartbeat;
        if self.model.is_connected() && self.last_heartbeat.is_none_or(|at| now - at >= every) {
            self.announce();
            self.last_heartbeat = Some(now);
        }
        let mut out = std::mem::take(&mut self.out);
        self.model.tick(now, &mut out);
        self.carry_out(out);
        self.publish(now);
    }

    /// Publishes this node's heartbeat and a probe of its own round trip through the bus.
    fn announce(&mut self) {
        let mut out = std::mem::take(&mut self.out);
        self.model.heartbeat(self.counts(), &mut out);
        let probe = Envelope::Probe {
            sent_at_us: super::wire::unix_micros(),
        };
        out.push(Output::Send(self.model.me().clone(), probe));
        self.carry_out(out);
    }

    fn carry_out(&mut self, mut out: Vec<Output>) {
        for output in out.drain(..) {
            match output {
                Output::Send(to, envelope) => self.bus.send(&to, envelope),
                Output::Broadcast(envelope) => self.bus.broadcast(envelope),
                Output::Place(ticket) => self.router.place(ticket),
                Output::PlaceRemote(ticket) => self.router.place_remote(ticket),
                Output::WithdrawRemote { ticket, bucket } => {
                    self.router.withdraw_remote(ticket, &bucket)
                }
                Output::Shards(order) => {
                    for shard in self.router.shards() {
                        match &order {
                            ShardOrder::DropHome { node, keep } => shard.do_send(DropHome {
                                node: node.clone(),
                                keep: *keep,
                            }),
                            ShardOrder::DropRemote => shard.do_send(DropRemote),
                            ShardOrder::ReturnRemote => shard.do_send(ReturnRemote),
                        }
                    }
                }
                Output::Owners(owners) => {
                    for shard in self.router.shards() {
                        shard.do_send(SetOwners(Arc::clone(&owners)));
                    }
                }
                Output::Wake(peer) => peer.send(SessionEvent::SeatChanged),
                Output::Deliver { session, event } => {
                    // A session that is gone simply misses it, as a closed socket would.
                    self.registry.deliver(session, event);
                }
                Output::NodeLost(node) => self.registry.broadcast(&SessionEvent::NodeLost(node)),
                Output::DrainRequested => self.drain.notify_one(),
            }
        }
        self.out = out;
    }

    /// Publishes the view (after every tick, connection change and heartbeat heard).
    fn publish(&self, now: Instant) {
        let (spilled, reservations) = self.model.in_flight();
        self.view.send_replace(ClusterView {
            connected: self.model.is_connected(),
            isolated: self.model.is_isolated(now),
            members: self.model.members(),
            spilled,
            reservations,
        });
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |coordinator, _| coordinator.tick(Instant::now()));
    }
}

impl Handler<FromShard> for Coordinator {
    type Result = ();

    fn handle(&mut self, request: FromShard, _: &mut Self::Context) {
        let now = Instant::now();
        let mut out = std::mem::take(&mut self.out);
        match request {
            FromShard::Propose(pairing) => self.model.propose(*pairing, now, &mut out),
            FromShard::Spill { ticket, owner } => self.model.spill(ticket, owner, now, &mut out),
            FromShard::Withdrawn(ticket) => self.model.withdrawn(ticket, now, &mut out),
            FromShard::SendHome(ticket) => self.model.send_home(ticket, now, &mut out),
        }
        self.carry_out(out);
    }
}

impl Handler<Inbound> for Coordinator {
    type Result = ();

    fn handle(&mut self, Inbound(envelope): Inbound, _: &mut Self::Context) {
        let now = Instant::now();
        let heard = matches!(envelope, Envelope::Heartbeat(_));
        let mut out = std::mem::take(&mut self.out);
        self.model.receive(envelope, now, &mut out);
        self.carry_out(out);
        if heard {
            self.publish(now);
        }
    }
}

impl Handler<Connection> for Coordinator {
    type Result = ();

    fn handle(&mut self, Connection(up): Connection, _: &mut Self::Context) {
        let now = Instant::now();
        let mut out = std::mem::take(&mut self.out);
        if up {
            self.model.connected(now, &mut out);
        } else {
            self.model.disconnected(now, &mut out);
        }
        self.carry_out(out);
        if up {
            // Let the others hear of this node (and of its new epoch) at once.
            self.announce();
            self.last_heartbeat = Some(now);
        }
        self.publish(now);
    }
}

impl Handler<BeginDrain> for Coordinator {
    type Result = ();

    fn handle(&mut self, _: BeginDrain, _: &mut Self::Context) {
        let now = Instant::now();
        let mut out = std::mem::take(&mut self.out);
        self.model.begin_drain(now, &mut out);
        self.carry_out(out);
        // Tell everyone at once that this node owns nothing any more.
        self.announce();
    }
}
