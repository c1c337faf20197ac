//! One tandem node: its shards, its router, its sessions and its metrics, without any
//! socket. The gateway serves it over WebSocket; the in-process load generator and tests
//! can drive it directly.
//!
//! The node wires its parts together and hands each one what it needs (sessions get a
//! [`SessionEnv`](crate::session::SessionEnv), the coordinator its ports); nobody holds the
//! node to reach the others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::ArbiterHandle;
use tandem_engine::router::Router;
use tandem_engine::shard::Alone;
use tandem_engine::Engine;
use tandem_ids::NodeId;

use crate::bus::Bus;
use crate::cluster::coordinator::Pending;
use crate::cluster::{ClusterHandle, ClusterSettings, ClusterStats};
use crate::metrics::Metrics;
use crate::registry::Registry;

/// A running node: its shards, router, session registry and metrics, and in a cluster the
/// handle of its coordinator. It wires the parts together and serves none of them: the
/// gateway serves HTTP, sessions talk to the router, the coordinator owns the cluster state.
pub struct Node {
    id: NodeId,
    engine: Engine,
    metrics: Arc<Metrics>,
    registry: Arc<Registry>,
    /// In a cluster: the coordinator that owns the cluster state.
    cluster: Option<ClusterHandle>,
    /// False until started and again once shutdown begins; `/healthz` reports it.
    ready: AtomicBool,
}

impl Node {
    /// Starts a node that runs alone: `shards` shard actors, each on its own thread, that
    /// pair this node's users only. Needs a running actix `System`.
    pub fn start(id: NodeId, shards: usize) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new(shards.max(1)));
        let engine = Engine::start(&metrics.shards, || Arc::new(Alone), None);
        Arc::new(Self {
            id,
            engine,
            metrics,
            registry: Arc::new(Registry::new()),
            cluster: None,
            ready: AtomicBool::new(true),
        })
    }

    /// Starts a node of a cluster: its shards hand leftovers and pairings across nodes to a
    /// coordinator, started on `arbiter`, that talks to the other nodes over `bus`. The
    /// bus's receiving side is wired by the caller (it hands envelopes to
    /// [`ClusterHandle::coordinator`] and relays to [`Node::registry`]). Needs a running
    /// actix `System`.
    pub fn start_clustered(
        id: NodeId,
        shards: usize,
        cluster: ClusterSettings,
        stats: Arc<ClusterStats>,
        bus: Arc<dyn Bus>,
        arbiter: &ArbiterHandle,
    ) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new(shards.max(1)));
        let coordinator = Pending::new();
        let engine = Engine::start(
            &metrics.shards,
            || coordinator.port(),
            Some(cluster.spill_after),
        );
        let registry = Arc::new(Registry::new());
        let handle = coordinator.start(
            arbiter,
            id.clone(),
            cluster,
            stats,
            bus,
            engine.router().clone(),
            Arc::clone(&registry),
            Arc::clone(&metrics),
        );
        Arc::new(Self {
            id,
            engine,
            metrics,
            registry,
            cluster: Some(handle),
            ready: AtomicBool::new(true),
        })
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// Where tickets go.
    pub fn router(&self) -> &Router {
        self.engine.router()
    }

    /// This node's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The sessions connected here.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// In a cluster: its coordinator's handle.
    pub fn cluster(&self) -> Option<&ClusterHandle> {
        self.cluster.as_ref()
    }

    /// The Prometheus exposition of this node: its own series, and its cluster's.
    pub fn render_metrics(&self) -> String {
        let node = crate::metrics::escape_label(&self.id.0);
        let mut out = self.metrics.render(&node);
        if let Some(cluster) = &self.cluster {
            cluster.stats().render(&mut out, &node);
        }
        crate::metrics::render_process(&mut out, &node);
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
        self.engine.stop();
    }
}
