//! Running a node's HTTP server, and shutting it down gracefully.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::rt::net::TcpStream;
use actix_web::{middleware, web, App, HttpServer};
use tandem_engine::session::SessionEvent;
use tandem_ids::NodeId;
use tracing::info;

use crate::abuse::snapshots::Snapshots;
use crate::abuse::{Abuse, Challenges, Filter};

/// How often the filter's phrase file is checked for changes.
const FILTER_FILE_CHECK: std::time::Duration = std::time::Duration::from_secs(2);
use crate::admin::Dashboard;
use crate::cluster::nats::Receivers;
use crate::cluster::{ClusterStats, NatsBus};
use crate::config::ServeArgs;
use crate::gateway::{self, Gateway};
use crate::moderation::identity::id_secret;
use crate::moderation::store::{Embedded, JetStream};
use crate::moderation::{IdIssuer, Moderation, ModerationStore, StoreSlot};
use crate::node::Node;
use crate::privacy::{Policy, Privacy};
use crate::session::SessionEnv;

/// `Strict-Transport-Security` of a node reached over https: browsers keep to https for
/// the site for a year after each visit.
const HSTS: &str = "max-age=31536000";

/// A node serving HTTP on a bound listener.
pub struct RunningServer {
    /// Where it listens (the real port when bound to port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served when it has a listener of its own (`--metrics-listen`).
    pub metrics_addr: Option<SocketAddr>,
    /// That listener's server.
    metrics_server: Option<(ServerHandle, actix_rt::task::JoinHandle<io::Result<()>>)>,
    pub node: Arc<Node>,
    handle: ServerHandle,
    task: actix_rt::task::JoinHandle<io::Result<()>>,
    grace: Duration,
    /// In a cluster: the thread that runs the NATS connection, and how much it has yet to
    /// publish.
    nats: Option<(actix::Arbiter, Arc<NatsBus>)>,
    /// The node's moderation.
    pub moderation: Arc<Moderation>,
    /// Keeps the node's bans in step with the store.
    follower: actix_rt::task::JoinHandle<()>,
    /// Removes what is past its retention.
    purger: actix_rt::task::JoinHandle<()>,
    /// Reads the filter's phrase file again when it changes.
    filter_follower: actix_rt::task::JoinHandle<()>,
    /// The moderation store, closed at shutdown.
    store: StoreSlot,
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
        let settings = args.settings().map_err(io::Error::other)?;
        if args.cluster.enabled() && args.id_secret.is_none() {
            return Err(io::Error::other(
                "a cluster needs --id-secret, the same on every node, so that a client id \
                 issued by one node holds on the others",
            ));
        }
        let secret =
            id_secret(args.id_secret.as_deref(), &args.data_dir).map_err(io::Error::other)?;
        let (node, nats) = if args.cluster.enabled() {
            let (node, arbiter, bus) = start_clustered(args, node_id, shards, addr)?;
            (node, Some((arbiter, bus)))
        } else {
            (Node::start(node_id, shards), None)
        };
        let (store, slot) = StoreSlot::new();
        let store_slot = slot.clone();
        if args.cluster.enabled() {
            actix_rt::spawn(open_jetstream(
                args.cluster.clone(),
                node.id().clone(),
                args.store_replicas,
                store,
            ));
        } else {
            let embedded = Embedded::open(&args.data_dir).map_err(io::Error::other)?;
            store.send_replace(Some(ModerationStore::new(Arc::new(embedded))));
        }
        let moderation = Arc::new(Moderation::new(
            slot,
            Arc::clone(node.registry()),
            IdIssuer::new(&secret),
            settings.rule,
            settings.retention,
        ));
        let privacy = Arc::new(Privacy::new(
            moderation.store().clone(),
            moderation.issuer.clone(),
            settings.rule,
            Policy {
                retention: settings.retention,
                purge_interval: args.purge_interval,
                full_ips_in_logs: args.log_full_ips,
                derives_country: settings.handshake.geoip.is_some()
                    || settings.handshake.country_header.is_some(),
                snapshots: settings.snapshots.webhook.is_some(),
            },
        ));
        let filter = Arc::new(Filter::new(settings.filter).map_err(io::Error::other)?);
        let filter_follower = actix_rt::spawn(Arc::clone(&filter).follow(FILTER_FILE_CHECK));
        let abuse = Arc::new(Abuse {
            challenges: Challenges::new(settings.challenge, &secret, moderation.store().clone()),
            filter,
            snapshots: Snapshots::new(
                settings.snapshots,
                settings.snapshot_key.as_deref().unwrap_or_default(),
            )
            .map_err(io::Error::other)?
            .map(Arc::new),
        });
        let follower = actix_rt::spawn(Arc::clone(&moderation.bans).follow());
        let purger = actix_rt::spawn(Arc::clone(&moderation).purge_every(args.purge_interval));
        let sessions = Arc::new(SessionEnv {
            node: node.id().clone(),
            router: node.router().clone(),
            registry: Arc::clone(node.registry()),
            metrics: Arc::clone(node.metrics()),
            settings: settings.session,
            ice: settings.ice,
            moderation: Arc::clone(&moderation),
            privacy: Arc::clone(&privacy),
            abuse: Arc::clone(&abuse),
            full_ips_in_logs: args.log_full_ips,
        });
        let page_facts = web::Data::new(crate::web::PageFacts {
            countries: settings.handshake.geoip.is_some()
                || settings.handshake.country_header.is_some(),
        });
        let https = settings.handshake.https;
        let tls = settings.tls;
        let serves_tls = tls.is_some();
        let gateway = web::Data::new(Gateway::new(
            Arc::clone(&node),
            settings.handshake,
            sessions,
        ));
        let dashboard = web::Data::new(Dashboard::new(
            Arc::clone(&node),
            settings.admin,
            Arc::clone(&moderation),
            Arc::clone(&abuse),
        ));
        let data = web::Data::new(Arc::clone(&node));
        let privacy = web::Data::new(privacy);

        // A client that does not acknowledge what it was sent for as long as the heartbeat
        // waits for a sign of life loses its connection, also after its session is gone.
        let unacknowledged = args.heartbeat_timeout;
        let metrics_apart = args.metrics_listen;
        let (metrics_addr, metrics_server) = match metrics_apart {
            Some(at) => {
                let listener = TcpListener::bind(at)?;
                let bound = listener.local_addr()?;
                let (data, gateway, privacy) = (data.clone(), gateway.clone(), privacy.clone());
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(gateway.clone())
                        .app_data(privacy.clone())
                        .configure(gateway::metrics_routes)
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)?
                .run();
                let handle = server.handle();
                info!(addr = %bound, "metrics on a listener of their own");
                (Some(bound), Some((handle, actix_rt::spawn(server))))
            }
            None => (None, None),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(gateway.clone())
                .app_data(dashboard.clone())
                .app_data(privacy.clone())
                .app_data(page_facts.clone())
                .configure(|cfg| gateway::routes_with(cfg, metrics_apart.is_none()))
                // Once a browser has seen the site over https, it never tries plain http
                // for it again (where a network in between could strip the TLS away).
                .wrap(middleware::Condition::new(
                    https,
                    middleware::DefaultHeaders::new()
                        .add((header::STRICT_TRANSPORT_SECURITY, HSTS)),
                ))
        })
        // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm
        // holds a frame back until the previous one is acknowledged, and the peer's delayed
        // ACK turns that into a 40 ms stall (seen by the load generator as a second mode of
        // the match latency at ~41 ms).
        .on_connect(move |conn, data| {
            let tcp = conn.downcast_ref::<TcpStream>().or_else(|| {
                (conn.downcast_ref::<TlsStream<TcpStream>>()).map(|tls| tls.get_ref().0)
            });
            if let Some(tcp) = tcp {
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %err, "could not set TCP_NODELAY");
                }
                data.insert(gateway::socket::Accepted::new(tcp, unacknowledged));
            }
        })
        .workers(args.workers.unwrap_or_else(ServeArgs::cores))
        .max_connections(args.max_connections)
        .backlog(4096)
        .client_disconnect_timeout(args.close_linger)
        .disable_signals()
        .shutdown_timeout(args.shutdown_grace.as_secs().max(1));
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        }
        .run();
        let handle = server.handle();
        let task = actix_rt::spawn(server);
        info!(node = %node.id(), %addr, shards, tls = serves_tls, https, "listening");
        Ok(Self {
            addr,
            metrics_addr,
            metrics_server,
            node,
            handle,
            task,
            grace: args.shutdown_grace,
            nats,
            moderation,
            follower,
            purger,
            filter_follower,
            store: store_slot,
        })
    }

    /// Completes when an operator asks this node to drain (`tandem cluster drain`); never
    /// for a node outside a cluster.
    pub async fn drain_requested(&self) {
        match self.node.cluster() {
            Some(cluster) => cluster.drain_requested().await,
            None => std::future::pending().await,
        }
    }

    /// Graceful shutdown: stop accepting, tell every user (`server_shutdown`, close 1012),
    /// wait up to the grace period for them to go, then stop.
    pub async fn shutdown(self) -> io::Result<()> {
        let started = Instant::now();
        self.node.set_draining();
        if let Some(cluster) = self.node.cluster() {
            // Own nothing, spill nothing; tickets held for other nodes go back to them.
            cluster.begin_drain();
        }
        self.handle.pause().await;
        let online = self.node.registry().len();
        info!(online, "shutting down: telling connected users");
        self.node.registry().close(&SessionEvent::Shutdown);
        let deadline = started + self.grace;
        // Sessions close on their own threads; look until they are gone or time is up.
        while !self.node.registry().is_empty() && Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        self.handle.stop(true).await;
        let result = self.task.await.unwrap_or(Ok(()));
        if let Some((handle, task)) = self.metrics_server {
            handle.stop(true).await;
            let _ = task.await;
        }
        self.follower.abort();
        self.purger.abort();
        self.filter_follower.abort();
        let _ = self.follower.await;
        let _ = self.purger.await;
        if let Some(store) = self.store.current() {
            store.kv().close().await;
        }
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

/// Opens a cluster's moderation store in JetStream, over a connection of its own, and puts
/// it in the slot; retries while NATS or JetStream cannot be reached.
async fn open_jetstream(
    args: crate::cluster::ClusterArgs,
    me: NodeId,
    replicas: usize,
    slot: tokio::sync::watch::Sender<Option<ModerationStore>>,
) {
    let client = match crate::cluster::nats::store_client(&args, &me).await {
        Ok(client) => client,
        Err(err) => return tracing::error!(error = %err, "no moderation store: cannot use NATS"),
    };
    loop {
        match JetStream::open(client.clone(), &args.cluster_name, replicas).await {
            Ok(store) => {
                info!(cluster = %args.cluster_name, replicas, "moderation store open in JetStream");
                slot.send_replace(Some(ModerationStore::new(Arc::new(store))));
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot open the moderation store in JetStream; trying again");
                actix_rt::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Starts a node that joins a cluster over NATS, and its NATS side and coordinator on a
/// thread of their own.
fn start_clustered(
    args: &ServeArgs,
    node_id: NodeId,
    shards: usize,
    addr: SocketAddr,
) -> io::Result<(Arc<Node>, actix::Arbiter, Arc<NatsBus>)> {
    for (what, token) in [
        ("--node-id", node_id.0.as_str()),
        ("--cluster", args.cluster.cluster_name.as_str()),
    ] {
        if !crate::cluster::wire::valid_token(token) {
            return Err(io::Error::other(format!(
                "{what} `{token}` must be 1 to 64 of A-Z a-z 0-9 _ - (it names NATS subjects)"
            )));
        }
    }
    let stats = Arc::new(ClusterStats::default());
    let seal = args.cluster.seal().map_err(io::Error::other)?;
    let (bus, queue) = NatsBus::new(&args.cluster.cluster_name, seal, Arc::clone(&stats));
    let bus = Arc::new(bus);
    let arbiter = actix::Arbiter::new();
    let node = Node::start_clustered(
        node_id.clone(),
        shards,
        args.cluster.settings(addr.to_string()),
        Arc::clone(&stats),
        Arc::clone(&bus) as Arc<dyn crate::bus::Bus>,
        &arbiter.handle(),
    );
    let cluster = node.cluster().expect("a clustered node");
    let receivers = Receivers {
        coordinator: cluster.coordinator().clone(),
        registry: Arc::clone(node.registry()),
        stats,
    };
    let nats = crate::cluster::nats::run(
        args.cluster.clone(),
        node_id,
        Arc::clone(&bus),
        queue,
        receivers,
    );
    if !arbiter.spawn(nats) {
        return Err(io::Error::other("could not start the NATS thread"));
    }
    Ok((node, arbiter, bus))
}
