//! NATS: the cluster's bus, the node's inbox, its heartbeats, and the operator commands.
//!
//! Subjects (all under `tandem.<cluster>.`):
//! - `node.<node-id>`: a node's inbox; every envelope for it, in order per sender (one
//!   publishing connection per node, one subscription per inbox);
//! - `heartbeat`: every node's [`NodeStatus`], every `--cluster-heartbeat`.
//!
//! Publishing never blocks a caller: envelopes go through a bounded queue to one task that
//! owns the publishing side, so actors and sessions never wait on the network. Receiving
//! hands relays to the session registry and everything else to the node's
//! [`Coordinator`]. While NATS is unreachable, async-nats keeps reconnecting; the node
//! meanwhile pairs its own users.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::{ConnectOptions, Event, ServerAddr};
use futures_util::StreamExt;
use tandem_ids::NodeId;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::coordinator::{Connection, Coordinator, Inbound};
use super::seal::Seal;
use super::wire;
use super::{ClusterArgs, ClusterStats};
use crate::bus::{Bus, Envelope, NodeStatus};
use crate::registry::Registry;

/// Envelopes queued for NATS before new ones are dropped (and counted): about a second of
/// a busy node's cross-node traffic, bounded so that a long outage cannot eat the memory.
const OUTBOX: usize = 65_536;

/// The subjects of one cluster.
#[derive(Clone, Debug)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Subjects of cluster `name`.
    pub fn new(name: &str) -> Self {
        Self {
            prefix: format!("tandem.{name}"),
        }
    }

    /// A node's inbox.
    pub fn inbox(&self, node: &NodeId) -> String {
        format!("{}.node.{}", self.prefix, node.0)
    }

    /// Where heartbeats go.
    pub fn heartbeat(&self) -> String {
        format!("{}.heartbeat", self.prefix)
    }
}

/// The bus over NATS: encodes, seals and queues; [`run`] publishes.
pub struct NatsBus {
    subjects: Subjects,
    seal: Arc<Seal>,
    outbox: mpsc::Sender<(String, Vec<u8>)>,
    stats: Arc<ClusterStats>,
    /// The connection, once made (for the final flush on shutdown).
    client: std::sync::OnceLock<async_nats::Client>,
    /// Tells [`run`] to end: its subscriptions must be dropped inside its runtime (their
    /// `Drop` spawns an unsubscribe), not when the thread's runtime is torn down.
    stop: tokio::sync::watch::Sender<bool>,
}

impl NatsBus {
    /// A bus for cluster `name` sealing with `seal`, and the queue [`run`] drains.
    pub fn new(
        name: &str,
        seal: Seal,
        stats: Arc<ClusterStats>,
    ) -> (Self, mpsc::Receiver<(String, Vec<u8>)>) {
        let (outbox, queue) = mpsc::channel(OUTBOX);
        let bus = Self {
            subjects: Subjects::new(name),
            seal: Arc::new(seal),
            outbox,
            stats,
            client: std::sync::OnceLock::new(),
            stop: tokio::sync::watch::channel(false).0,
        };
        (bus, queue)
    }

    /// Waits (at most `limit`) until what was handed to the connection is written to the
    /// server, so the last envelopes of a node that stops are not lost.
    pub async fn flush(&self, limit: Duration) {
        if let Some(client) = self.client.get() {
            let _ = tokio::time::timeout(limit, client.flush()).await;
        }
    }

    /// Ends [`run`] and waits (at most `limit`) until it has let go of its subscriptions.
    pub async fn stop(&self, limit: Duration) {
        let _ = self.stop.send(true);
        // `run` and its readers drop their receivers when they are done.
        let deadline = Instant::now() + limit;
        while self.stop.receiver_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Envelopes queued and not yet handed to the NATS connection.
    pub fn pending(&self) -> usize {
        self.outbox.max_capacity() - self.outbox.capacity()
    }

    fn publish(&self, subject: String, envelope: &Envelope) {
        let Some(payload) = wire::encode(envelope, Instant::now(), wire::unix_micros()) else {
            return; // Local-only; never meant to leave the node.
        };
        let payload = self.seal.seal(&subject, &payload);
        match self.outbox.try_send((subject, payload)) {
            Ok(()) => {
                self.stats
                    .envelopes_out
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(_) => {
                self.stats
                    .envelopes_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

impl Bus for NatsBus {
    fn send(&self, to: &NodeId, envelope: Envelope) {
        self.publish(self.subjects.inbox(to), &envelope);
    }

    fn broadcast(&self, envelope: Envelope) {
        self.publish(self.subjects.heartbeat(), &envelope);
    }
}

/// Connection options from the flags: reconnect forever, quickly, with credentials and TLS
/// as given.
async fn options(args: &ClusterArgs, name: &str, node: bool) -> anyhow::Result<ConnectOptions> {
    let mut options = ConnectOptions::new().name(name);
    if node {
        // A node starts, and serves its own users, even while NATS is unreachable.
        options = options.retry_on_initial_connect();
    }
    let mut options = options
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((50u64 << attempts.min(5)).min(1000))
        });
    // A user and password in a server URL (`nats://tandem:secret@host:4222`) authenticate
    // the connection; the client does not take them from the URL by itself.
    if let Some(addr) = servers(args)?.into_iter().find(ServerAddr::has_user_pass) {
        let user = addr.username().unwrap_or_default().to_owned();
        let password = addr.password().unwrap_or_default().to_owned();
        options = options.user_and_password(user, password);
    }
    if let Some(creds) = &args.nats_creds {
        options = options
            .credentials_file(creds)
            .await
            .with_context(|| format!("reading NATS credentials {}", creds.display()))?;
    }
    if let Some(ca) = &args.nats_tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    Ok(options)
}

fn servers(args: &ClusterArgs) -> anyhow::Result<Vec<ServerAddr>> {
    args.nats
        .iter()
        .map(|url| {
            url.trim()
                .parse::<ServerAddr>()
                .with_context(|| format!("bad NATS URL `{url}`"))
        })
        .collect()
}

/// Where a node's NATS side hands what it receives.
pub struct Receivers {
    /// The node's coordinator: cluster envelopes and the connection's ups and downs.
    pub coordinator: actix::Addr<Coordinator>,
    /// The node's sessions: relays from partners on other nodes.
    pub registry: Arc<Registry>,
    /// Counts what arrives.
    pub stats: Arc<ClusterStats>,
}

/// Runs a node's NATS side until [`NatsBus::stop`]: connects (retrying), subscribes to the
/// node's inbox and the heartbeats, publishes what the bus queued, and hands what arrives
/// to `to`. Spawn it on its own arbiter.
pub async fn run(
    args: ClusterArgs,
    me: NodeId,
    bus: Arc<NatsBus>,
    mut queue: mpsc::Receiver<(String, Vec<u8>)>,
    to: Receivers,
) {
    let to = Arc::new(to);
    let subjects = Subjects::new(&args.cluster_name);
    let events = to.coordinator.clone();
    let options = match options(&args, &format!("tandem-{}", me.0), true).await {
        Ok(options) => options.event_callback(move |event| {
            let events = events.clone();
            async move {
                match event {
                    Event::Connected => events.do_send(Connection(true)),
                    Event::Disconnected => events.do_send(Connection(false)),
                    other => debug!(event = %other, "nats event"),
                }
            }
        }),
        Err(err) => return warn!(error = %err, "cannot configure NATS; running alone"),
    };
    let servers = match servers(&args) {
        Ok(servers) => servers,
        Err(err) => return warn!(error = %err, "cannot use the NATS URLs; running alone"),
    };
    let client = match options.connect(servers).await {
        Ok(client) => client,
        Err(err) => return warn!(error = %err, "cannot connect to NATS; running alone"),
    };
    let _ = bus.client.set(client.clone());
    let mut stop = bus.stop.subscribe();
    let inbox = client.subscribe(subjects.inbox(&me)).await;
    let heartbeats = client.subscribe(subjects.heartbeat()).await;
    let (Ok(inbox), Ok(heartbeats)) = (inbox, heartbeats) else {
        return warn!("cannot subscribe on NATS; running alone");
    };
    if client.connection_state() == async_nats::connection::State::Connected {
        to.coordinator.do_send(Connection(true));
    }
    info!(cluster = %args.cluster_name, node = %me, "joined the cluster over NATS");

    let publisher = client.clone();
    actix_rt::spawn(async move {
        while let Some((subject, payload)) = queue.recv().await {
            if let Err(err) = publisher.publish(subject, payload.into()).await {
                debug!(error = %err, "nats publish failed");
            }
        }
    });
    let mut readers = Vec::new();
    let refusals = Arc::new(Refusals::default());
    for mut subscription in [inbox, heartbeats] {
        let to = Arc::clone(&to);
        let seal = Arc::clone(&bus.seal);
        let refusals = Arc::clone(&refusals);
        let mut stop = bus.stop.subscribe();
        readers.push(actix_rt::spawn(async move {
            loop {
                tokio::select! {
                    message = subscription.next() => match message {
                        Some(message) => receive(
                            &to,
                            &seal,
                            &refusals,
                            &message.subject,
                            &message.payload,
                        ),
                        None => break,
                    },
                    _ = stop.changed() => break,
                }
            }
            // Dropped here, inside the runtime (see `NatsBus::stop`).
            drop(subscription);
        }));
    }
    let _ = stop.changed().await;
    for reader in readers {
        let _ = reader.await;
    }
}

/// How long a sealed operator command stays good: an older one is a replay.
const COMMAND_FRESH: Duration = Duration::from_secs(60);

/// Refused payloads are logged at most once per this long, with the count since the last
/// line: a flood of forgeries must not flood the log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The refusals not yet logged.
#[derive(Default)]
struct Refusals {
    state: parking_lot::Mutex<(Option<Instant>, u64)>,
}

impl Refusals {
    /// Counts a refusal; logs it (with those since the last line) if the last line is old.
    fn note(&self, subject: &str, why: &dyn std::fmt::Display) {
        let mut state = self.state.lock();
        let (last, unlogged) = &mut *state;
        *unlogged += 1;
        if last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
            warn!(subject, error = %why, refused = *unlogged, "refused envelopes from NATS");
            *last = Some(Instant::now());
            *unlogged = 0;
        }
    }
}

fn receive(to: &Receivers, seal: &Seal, refusals: &Refusals, subject: &str, payload: &[u8]) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &to.stats;
    stats.envelopes_in.fetch_add(1, Relaxed);
    let opened = match seal.open(subject, payload) {
        Ok(opened) => opened,
        Err(err) => {
            stats.refused_unsealed.fetch_add(1, Relaxed);
            return refusals.note(subject, &err);
        }
    };
    let received = match wire::decode(&opened, Instant::now()) {
        Ok(received) => received,
        Err(err) => {
            match err.kind() {
                "version" => stats.refused_version.fetch_add(1, Relaxed),
                _ => stats.refused_malformed.fetch_add(1, Relaxed),
            };
            return refusals.note(subject, &err);
        }
    };
    let now_us = wire::unix_micros();
    let elapsed = Duration::from_micros(now_us.saturating_sub(received.sent_at_us));
    match received.envelope {
        Envelope::Probe { .. } => stats.nats_rtt.observe(elapsed),
        Envelope::Heartbeat(status) => to.coordinator.do_send(Inbound(Envelope::Heartbeat(status))),
        Envelope::ToSession { session, event } => {
            stats.transit.observe(elapsed);
            // A session that is gone simply misses it, as a closed socket would.
            to.registry.deliver(session, event);
        }
        Envelope::Drain => {
            // An operator's command acts once: a copy replayed later is refused.
            let skew = Duration::from_micros(received.sent_at_us.abs_diff(now_us));
            if skew > COMMAND_FRESH {
                stats.refused_stale.fetch_add(1, Relaxed);
                return refusals.note(subject, &"a drain older than a minute");
            }
            to.coordinator.do_send(Inbound(Envelope::Drain));
        }
        envelope => {
            stats.transit.observe(elapsed);
            to.coordinator.do_send(Inbound(envelope));
        }
    }
}

/// The connection a node's moderation store keeps to NATS: its own, so that the store's
/// requests never queue behind the cluster's traffic; it reconnects forever.
pub async fn store_client(args: &ClusterArgs, me: &NodeId) -> anyhow::Result<async_nats::Client> {
    let options = options(args, &format!("tandem-{}-store", me.0), true).await?;
    Ok(options.connect(servers(args)?).await?)
}

/// A one-off connection for the operator commands.
async fn operator_client(args: &ClusterArgs) -> anyhow::Result<async_nats::Client> {
    // No retries on the first connection: an operator wants to know at once that NATS is
    // unreachable.
    let options = options(args, "tandem-operator", false).await?;
    tokio::time::timeout(Duration::from_secs(5), options.connect(servers(args)?))
        .await
        .context("connecting to NATS timed out")?
        .context("connecting to NATS")
}

/// A message from NATS, opened and decoded; `None` when it is not a sealed envelope of this
/// cluster.
fn open(seal: &Seal, message: &async_nats::Message) -> Option<wire::Received> {
    let opened = seal.open(&message.subject, &message.payload).ok()?;
    wire::decode(&opened, Instant::now()).ok()
}

/// The nodes heard within `listen`: each node's latest status, and its matches per second
/// between its first and last heartbeat in that time.
pub async fn observe(
    args: &ClusterArgs,
    listen: Duration,
) -> anyhow::Result<Vec<(NodeStatus, Option<f64>)>> {
    let seal = args.seal()?;
    let client = operator_client(args).await?;
    let subjects = Subjects::new(&args.cluster_name);
    let mut heartbeats = client.subscribe(subjects.heartbeat()).await?;
    let mut seen: std::collections::BTreeMap<NodeId, (NodeStatus, Instant, NodeStatus, Instant)> =
        Default::default();
    let deadline = tokio::time::Instant::now() + listen;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, heartbeats.next()).await {
        let Some(received) = open(&seal, &message) else {
            continue;
        };
        let Envelope::Heartbeat(status) = received.envelope else {
            continue;
        };
        let now = Instant::now();
        seen.entry(status.node.clone())
            .and_modify(|(_, _, last, at)| {
                *last = status.clone();
                *at = now;
            })
            .or_insert((status.clone(), now, status, now));
    }
    Ok(seen
        .into_values()
        .map(|(first, first_at, last, last_at)| {
            let secs = (last_at - first_at).as_secs_f64();
            let rate =
                (secs > 0.0).then(|| last.matches.saturating_sub(first.matches) as f64 / secs);
            (last, rate)
        })
        .collect())
}

/// `tandem cluster status`: the table an operator reads.
pub async fn status(args: &ClusterArgs, listen: Duration) -> anyhow::Result<String> {
    let nodes = observe(args, listen).await?;
    let mut out = format!(
        "cluster {}: {} node(s)\n{:<20} {:<22} {:>6} {:>9} {:>9} {:>10}  {}\n",
        args.cluster_name,
        nodes.len(),
        "NODE",
        "HTTP",
        "SHARDS",
        "ONLINE",
        "WAITING",
        "MATCHES/S",
        "STATE"
    );
    for (status, rate) in &nodes {
        out.push_str(&format!(
            "{:<20} {:<22} {:>6} {:>9} {:>9} {:>10}  {}\n",
            status.node.0,
            status.http,
            status.shards,
            status.online,
            status.waiting,
            rate.map_or("-".to_owned(), |r| format!("{r:.1}")),
            if status.draining {
                "draining"
            } else {
                "serving"
            },
        ));
    }
    let online: u64 = nodes.iter().map(|(s, _)| s.online).sum();
    let waiting: u64 = nodes.iter().map(|(s, _)| s.waiting).sum();
    out.push_str(&format!("total: {online} online, {waiting} waiting\n"));
    Ok(out)
}

/// `tandem cluster drain NODE`: asks the node to drain, then follows it until it is gone.
pub async fn drain(
    args: &ClusterArgs,
    node: &NodeId,
    wait: Duration,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<()> {
    let seal = args.seal()?;
    let client = operator_client(args).await?;
    let subjects = Subjects::new(&args.cluster_name);
    let mut heartbeats = client.subscribe(subjects.heartbeat()).await?;
    // Only drain a node that is there.
    let first = tokio::time::timeout(wait.min(Duration::from_secs(5)), async {
        while let Some(message) = heartbeats.next().await {
            if let Some(received) = open(&seal, &message) {
                if let Envelope::Heartbeat(status) = received.envelope {
                    if status.node == *node {
                        return Some(status);
                    }
                }
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .with_context(|| format!("node {} is not in cluster {}", node.0, args.cluster_name))?;
    progress(&format!(
        "asking {} ({} online) to drain",
        node.0, first.online
    ));
    let payload = wire::encode(&Envelope::Drain, Instant::now(), wire::unix_micros())
        .expect("drain is a wire envelope");
    let inbox = subjects.inbox(node);
    let payload = seal.seal(&inbox, &payload);
    client.publish(inbox, payload.into()).await?;
    client.flush().await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut last_heard = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_millis(250), heartbeats.next()).await {
            Ok(Some(message)) => {
                if let Some(received) = open(&seal, &message) {
                    if let Envelope::Heartbeat(status) = received.envelope {
                        if status.node == *node {
                            last_heard = Instant::now();
                            progress(&format!(
                                "{}: {}, {} online, {} waiting",
                                node.0,
                                if status.draining {
                                    "draining"
                                } else {
                                    "serving"
                                },
                                status.online,
                                status.waiting
                            ));
                        }
                    }
                }
            }
            Ok(None) => anyhow::bail!("the NATS subscription ended"),
            Err(_) => {}
        }
        // Gone: no heartbeat for three intervals of the cluster's cadence.
        if last_heard.elapsed() >= 3 * args.cluster_heartbeat {
            progress(&format!("{} has left the cluster", node.0));
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{} still there after {:?}", node.0, wait);
        }
    }
}
