//! Running a node's HTTP server, and shutting it down gracefully.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use tracing::info;

use crate::cluster::{Cluster, ClusterStats, NatsBus};
use crate::config::ServeArgs;
use crate::gateway;
use crate::ids::NodeId;
use crate::node::Node;
use crate::session::SessionEvent;

/// A node serving HTTP on a bound listener.
pub struct RunningServer {
    /// Where it listens (the real port when bound to port 0).
    pub addr: SocketAddr,
    pub node: Arc<Node>,
    handle: ServerHandle,
    task: actix_rt::task::JoinHandle<io::Result<()>>,
    grace: Duration,
    /// In a cluster: the thread that runs the NATS connection, and how much it has yet to
    /// publish.
    nats: Option<(actix::Arbiter, Arc<NatsBus>)>,
}

impl RunningServer {
    /// Starts a node and its HTTP server on `listener`. Needs a running actix `System`.
    pub fn start(args: &ServeArgs, listener: TcpListener) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let node_id = args
            .node_id
            .clone()
            .map(NodeId)
            .unwrap_or_else(NodeId::random);
        let shards = args.shards.unwrap_or_else(ServeArgs::cores);
        let settings = args.session_settings().map_err(io::Error::other)?;
        let (node, nats) = if args.cluster.enabled() {
            let (node, arbiter, bus) = start_clustered(args, node_id, shards, settings, addr)?;
            (node, Some((arbiter, bus)))
        } else {
            (Node::start(node_id, shards, settings), None)
        };
        let data = web::Data::new(Arc::clone(&node));
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).configure(gateway::routes))
                // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm
                // holds a frame back until the previous one is acknowledged, and the peer's delayed
                // ACK turns that into a 40 ms stall (seen by the load generator as a second mode of
                // the match latency at ~41 ms).
                .on_connect(|conn, _| {
                    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                        if let Err(err) = tcp.set_nodelay(true) {
                            tracing::debug!(error = %err, "could not set TCP_NODELAY");
                        }
                    }
                })
                .workers(args.workers.unwrap_or_else(ServeArgs::cores))
                .max_connections(args.max_connections)
                .backlog(4096)
                .disable_signals()
                .shutdown_timeout(args.shutdown_grace.as_secs().max(1))
                .listen(listener)?
                .run();
        let handle = server.handle();
        let task = actix_rt::spawn(server);
        info!(node = %node.id, %addr, shards, "listening");
        Ok(Self {
            addr,
            node,
            handle,
            task,
            grace: args.shutdown_grace,
            nats,
        })
    }

    /// Completes when an operator asks this node to drain (`tandem cluster drain`); never
    /// for a node outside a cluster.
    pub async fn drain_requested(&self) {
        match &self.node.cluster {
            Some(cluster) => cluster.drain_requested().await,
            None => std::future::pending().await,
        }
    }

    /// Graceful shutdown: stop accepting, tell every user (`server_shutdown`, close 1012),
    /// wait up to the grace period for them to go, then stop.
    pub async fn shutdown(self) -> io::Result<()> {
        let started = Instant::now();
        self.node.set_draining();
        if let Some(cluster) = &self.node.cluster {
            // Own nothing, spill nothing; tickets held for other nodes go back to them.
            cluster.begin_drain();
        }
        self.handle.pause().await;
        let online = self.node.sessions.len();
        info!(online, "shutting down: telling connected users");
        self.node.sessions.broadcast(&SessionEvent::Shutdown);
        let deadline = started + self.grace;
        // Sessions close on their own threads; look until they are gone or time is up.
        while !self.node.sessions.is_empty() && Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        self.handle.stop(true).await;
        let result = self.task.await.unwrap_or(Ok(()));
        if let Some((arbiter, bus)) = self.nats {
            // Let the last envelopes (partners told their chats ended) reach NATS.
            let flush_deadline = Instant::now() + Duration::from_secs(1);
            while bus.pending() > 0 && Instant::now() < flush_deadline {
                actix_rt::time::sleep(Duration::from_millis(5)).await;
            }
            bus.flush(Duration::from_secs(1)).await;
            bus.stop(Duration::from_secs(1)).await;
            arbiter.stop();
            let _ = arbiter.join();
        }
        self.node.stop();
        info!(elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
        result
    }
}

/// Runs a node until `shutdown` completes, then shuts it down gracefully.
pub async fn serve(
    args: &ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let server = RunningServer::start(args, listener)?;
    tokio::select! {
        _ = shutdown => {}
        _ = server.drain_requested() => info!("draining: handing over and closing every user"),
    }
    server.shutdown().await
}

/// Starts a node that joins a cluster over NATS, and its NATS side on a thread of its own.
fn start_clustered(
    args: &ServeArgs,
    node_id: NodeId,
    shards: usize,
    settings: crate::SessionSettings,
    addr: SocketAddr,
) -> io::Result<(Arc<Node>, actix::Arbiter, Arc<NatsBus>)> {
    for (what, token) in [
        ("--node-id", node_id.0.as_str()),
        ("--cluster", args.cluster.cluster_name.as_str()),
    ] {
        if !crate::cluster::nats::valid_token(token) {
            return Err(io::Error::other(format!(
                "{what} `{token}` must be 1 to 64 of A-Z a-z 0-9 _ - (it names NATS subjects)"
            )));
        }
    }
    let stats = Arc::new(ClusterStats::default());
    let (bus, queue) = NatsBus::new(&args.cluster.cluster_name, Arc::clone(&stats));
    let bus = Arc::new(bus);
    let cluster = Arc::new(Cluster::new(
        node_id.clone(),
        shards,
        args.cluster.settings(addr.to_string()),
        Arc::clone(&bus) as Arc<dyn crate::bus::Bus>,
        stats,
    ));
    let node = Node::start_clustered(
        node_id,
        shards,
        settings,
        Arc::clone(&bus) as Arc<dyn crate::bus::Bus>,
        Arc::clone(&cluster),
    );
    let arbiter = actix::Arbiter::new();
    let cluster_args = args.cluster.clone();
    let nats_bus = Arc::clone(&bus);
    if !arbiter.spawn(crate::cluster::nats::run(
        cluster_args,
        cluster,
        nats_bus,
        queue,
    )) {
        return Err(io::Error::other("could not start the NATS thread"));
    }
    Ok((node, arbiter, bus))
}
