//! One tandem node: its shards, its router, its sessions and its metrics, without any
//! socket. The gateway serves it over WebSocket; the in-process load generator and tests
//! can drive it directly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Arbiter, Recipient};
use parking_lot::Mutex;

use crate::bus::{Bus, Envelope, LocalBus};
use crate::cluster::Cluster;
use crate::ids::{NodeId, SessionId};
use crate::metrics::Metrics;
use crate::protocol::Limits;
use crate::router::Router;
use crate::session::{LimitConfig, SessionEvent};
use crate::shard::Shard;

/// How sessions on this node behave.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// How often the server pings an idle client.
    pub heartbeat_interval: Duration,
    /// A client silent for this long (no frame, no pong) is disconnected.
    pub heartbeat_timeout: Duration,
    /// Per-connection rate limits.
    pub limits: LimitConfig,
    /// Outgoing frames queued per connection before the client counts as too slow.
    pub out_queue: usize,
    /// A trusted proxy's header that carries the client's country (e.g. `CF-IPCountry`);
    /// without it every user's country is unknown (`ZZ`).
    pub country_header: Option<String>,
    /// How long a user with interests looks for a shared one when its `join` does not say.
    pub default_interest_wait: Duration,
    /// The longest `interest_wait_ms` a `join` may ask for.
    pub max_interest_wait: Duration,
    /// Verifies entitlements (`--entitlement-secret`); without it no premium feature is
    /// granted.
    pub entitlements: Option<Arc<crate::entitlement::EntitlementKey>>,
    /// Looks up the country of clients not covered by `country_header`.
    pub geoip: Option<Arc<crate::geoip::GeoIp>>,
    /// The web side: ICE servers with TURN credentials for `welcome`, the WebSocket origin
    /// allowlist and the dashboard token.
    pub web: crate::web::WebSettings,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            limits: LimitConfig::default(),
            out_queue: 256,
            country_header: None,
            default_interest_wait: Duration::from_secs(5),
            max_interest_wait: Duration::from_secs(60),
            entitlements: None,
            geoip: None,
            web: crate::web::WebSettings::default(),
        }
    }
}

impl SessionSettings {
    /// The limits as told to clients in `welcome`.
    pub fn client_limits(&self) -> Limits {
        Limits {
            max_frame_bytes: crate::protocol::MAX_FRAME_BYTES as u32,
            max_text_chars: crate::session::MAX_TEXT_CHARS as u32,
            joins_per_sec: self.limits.joins_per_sec,
            msgs_per_sec: self.limits.msgs_per_sec,
            signals_per_sec: self.limits.signals_per_sec,
        }
    }
}

/// The sessions connected to this node, by id: for broadcasts (shutdown) and for events
/// addressed by id (from other nodes). Striped so that connects and disconnects on
/// different threads rarely meet on one lock.
pub struct Registry {
    stripes: Vec<Mutex<HashMap<SessionId, Recipient<SessionEvent>>>>,
}

impl Registry {
    const STRIPES: usize = 32;

    fn new() -> Self {
        Self {
            stripes: (0..Self::STRIPES)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn stripe(&self, id: SessionId) -> &Mutex<HashMap<SessionId, Recipient<SessionEvent>>> {
        &self.stripes[(id.0 % Self::STRIPES as u64) as usize]
    }

    /// Adds a session.
    pub fn insert(&self, id: SessionId, link: Recipient<SessionEvent>) {
        self.stripe(id).lock().insert(id, link);
    }

    /// Removes a session.
    pub fn remove(&self, id: SessionId) {
        self.stripe(id).lock().remove(&id);
    }

    /// Delivers an event to a session by id; `false` if it is not here.
    pub fn deliver(&self, id: SessionId, event: SessionEvent) -> bool {
        let link = self.stripe(id).lock().get(&id).cloned();
        match link {
            Some(link) => {
                link.do_send(event);
                true
            }
            None => false,
        }
    }

    /// Sends an event to every session.
    pub fn broadcast(&self, event: &SessionEvent) {
        for stripe in &self.stripes {
            for link in stripe.lock().values() {
                link.do_send(event.clone());
            }
        }
    }

    /// Sessions registered.
    pub fn len(&self) -> usize {
        self.stripes.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A running node.
pub struct Node {
    pub id: NodeId,
    pub router: Router,
    pub metrics: Arc<Metrics>,
    pub sessions: Registry,
    pub settings: SessionSettings,
    /// How this node reaches other nodes (and they it).
    pub bus: Arc<dyn Bus>,
    /// In a cluster: membership, spilled tickets, cross-node claims.
    pub cluster: Option<Arc<Cluster>>,
    /// False until started and again once shutdown begins; `/healthz` reports it.
    ready: AtomicBool,
    /// One thread per shard.
    arbiters: Mutex<Vec<Arbiter>>,
}

impl Node {
    /// Starts a node alone on its own in-process bus. Needs a running actix `System`.
    pub fn start(id: NodeId, shards: usize, settings: SessionSettings) -> Arc<Self> {
        Self::start_on(id, shards, settings, &LocalBus::new())
    }

    /// Starts `shards` shard actors, each on its own thread, and attaches the node to an
    /// in-process bus (which other nodes in this process may share). Needs a running actix
    /// `System`.
    pub fn start_on(
        id: NodeId,
        shards: usize,
        settings: SessionSettings,
        bus: &Arc<LocalBus>,
    ) -> Arc<Self> {
        let node = Self::build(
            id.clone(),
            shards,
            settings,
            Arc::clone(bus) as Arc<dyn Bus>,
            None,
        );
        let weak = Arc::downgrade(&node);
        bus.attach(
            id,
            Arc::new(move |envelope| {
                if let Some(node) = weak.upgrade() {
                    node.receive(envelope);
                }
            }),
        );
        node
    }

    /// Starts a node of a cluster: its shards spill leftovers and pair across nodes through
    /// `cluster`, whose bus (NATS) carries everything between nodes. Needs a running actix
    /// `System`; the NATS side is started by the caller ([`crate::cluster::nats::run`]).
    pub fn start_clustered(
        id: NodeId,
        shards: usize,
        settings: SessionSettings,
        bus: Arc<dyn Bus>,
        cluster: Arc<Cluster>,
    ) -> Arc<Self> {
        let node = Self::build(id, shards, settings, bus, Some(Arc::clone(&cluster)));
        cluster.attach(&node);
        node
    }

    fn build(
        id: NodeId,
        shards: usize,
        settings: SessionSettings,
        bus: Arc<dyn Bus>,
        cluster: Option<Arc<Cluster>>,
    ) -> Arc<Self> {
        let shards = shards.max(1);
        let metrics = Arc::new(Metrics::new(shards));
        let mut arbiters = Vec::with_capacity(shards);
        let mut addrs = Vec::with_capacity(shards);
        for stats in &metrics.shards {
            let arbiter = Arbiter::new();
            let stats = Arc::clone(stats);
            let cluster = cluster.clone();
            addrs.push(Shard::start_in_arbiter(&arbiter.handle(), move |_| {
                Shard::new(stats, cluster)
            }));
            arbiters.push(arbiter);
        }
        Arc::new(Self {
            id,
            router: Router::new(addrs),
            metrics,
            sessions: Registry::new(),
            settings,
            bus,
            cluster,
            ready: AtomicBool::new(true),
            arbiters: Mutex::new(arbiters),
        })
    }

    /// Handles an envelope from another node.
    pub fn receive(&self, envelope: Envelope) {
        match (&self.cluster, envelope) {
            (_, Envelope::ToSession { session, event }) => {
                // A session that is gone simply misses it, as a closed socket would.
                self.sessions.deliver(session, event);
            }
            (Some(cluster), envelope) => cluster.receive(envelope, std::time::Instant::now()),
            (None, envelope) => {
                tracing::debug!(?envelope, "cluster envelope for a node outside a cluster")
            }
        }
    }

    /// The Prometheus exposition of this node: its own series, and its cluster's.
    pub fn render_metrics(&self) -> String {
        let mut out = self.metrics.render(&self.id.0);
        if let Some(cluster) = &self.cluster {
            cluster.stats.render(&mut out, &self.id.0);
        }
        out
    }

    /// Whether the node accepts new users.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Stops accepting new users (shutdown has begun).
    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::Release);
    }

    /// Stops the shard threads. Sessions must be gone first.
    pub fn stop(&self) {
        for arbiter in self.arbiters.lock().drain(..) {
            arbiter.stop();
            let _ = arbiter.join();
        }
    }
}
