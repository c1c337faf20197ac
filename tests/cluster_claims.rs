//! The claim across nodes under the interleavings that at-most-once delivery allows: nodes
//! on the in-process bus with heartbeats and time fed by hand, so each interleaving happens
//! exactly as written. (tests/cluster.rs runs the same code over a real nats-server.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem::bus::{Bus, Envelope, LocalBus, NodeStatus};
use tandem::cluster::{Cluster, ClusterSettings, ClusterStats, Membership};
use tandem::ids::{NodeId, SessionId, TicketId};
use tandem::matching::{BucketKey, Lang, Mode, TicketInfo};
use tandem::node::{Node, SessionSettings};
use tandem::protocol::PartnerInfo;
use tandem::session::{Peer, Seat, SessionEvent, SessionLink};
use tandem::shard::Ticket;

/// Stands in for a session: the tests look at the seat instead.
struct Nowhere;

impl SessionLink for Nowhere {
    fn deliver(&self, _: SessionEvent) {}
}

fn bucket() -> BucketKey {
    BucketKey {
        mode: Mode::Text,
        lang: Lang::EN,
    }
}

fn start(bus: &Arc<LocalBus>, id: &str) -> (Arc<Node>, Arc<Cluster>) {
    let stats = Arc::new(ClusterStats::default());
    let cluster = Arc::new(Cluster::new(
        NodeId(id.into()),
        1,
        ClusterSettings::default(),
        Arc::clone(bus) as Arc<dyn Bus>,
        stats,
    ));
    let node = Node::start_clustered(
        NodeId(id.into()),
        1,
        SessionSettings::default(),
        Arc::clone(bus) as Arc<dyn Bus>,
        Arc::clone(&cluster),
    );
    let weak = Arc::downgrade(&node);
    bus.attach(
        NodeId(id.into()),
        Arc::new(move |e| {
            if let Some(n) = weak.upgrade() {
                n.receive(e)
            }
        }),
    );
    cluster.on_connected();
    (node, cluster)
}

/// A waiting user's ticket and its seat.
fn ticket(session: u64) -> (Ticket, Arc<Seat>, TicketId) {
    let seat = Arc::new(Seat::new(SessionId(session)));
    let id = TicketId::next();
    assert!(seat.start_waiting(id));
    let info = TicketInfo::plain(id, SessionId(session), bucket(), Instant::now());
    let ticket = Ticket {
        info,
        seat: Arc::clone(&seat),
        peer: Peer {
            session: SessionId(session),
            link: Arc::new(Nowhere),
        },
        public: PartnerInfo {
            country: "ZZ".into(),
            college: None,
        },
    };
    (ticket, seat, id)
}

/// Node ids (prefix + i) such that `ids[owner]` owns text/en in everyone's view.
fn ids(prefix: &str, n: usize, owner: usize) -> Vec<String> {
    for attempt in 0.. {
        let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{attempt}x{i}")).collect();
        let mut view = Membership::new(NodeId(ids[0].clone()), 1, Duration::from_secs(2));
        for id in &ids[1..] {
            view.observe(NodeStatus::new(NodeId(id.clone()), 1, 1), Instant::now());
        }
        if view.owner(&bucket()) == Some(&NodeId(ids[owner].clone())) {
            return ids;
        }
    }
    unreachable!()
}

/// `to` hears `from`'s heartbeat at `at`.
fn hear(from: &Cluster, to: &Cluster, at: Instant) {
    to.receive(Envelope::Heartbeat(from.status().unwrap()), at);
}

/// Lets the shard threads and the bus deliver what is in flight (the shards' spill timer
/// runs every 10 ms).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[actix_rt::test]
async fn a_spill_that_overtakes_the_reconnect_heartbeat_is_kept_and_paired() {
    let bus = LocalBus::new();
    let ids = ids("r", 2, 1);
    let (xn, x) = start(&bus, &ids[0]);
    let (bn, b) = start(&bus, &ids[1]);
    let now = Instant::now();
    hear(&x, &b, now);
    hear(&b, &x, now);

    // A NATS blip on x, shorter than the node timeout: b never declares x dead.
    x.on_disconnected();
    x.on_connected();
    let (t, seat_t, id_t) = ticket(1);
    xn.router.place(t);
    settle().await;
    assert_eq!(x.in_flight().0, 1, "spilled in the new epoch");
    assert_eq!(bn.metrics.waiting(), 1, "held by the owner");
    // Only now does b hear of x's new epoch: it drops x's older tickets, not this one.
    hear(&x, &b, Instant::now());
    settle().await;
    assert_eq!(bn.metrics.waiting(), 1, "the new-epoch ticket is kept");

    let (u, seat_u, id_u) = ticket(2);
    bn.router.place(u);
    settle().await;
    assert!(!seat_t.waits_with(id_t), "x's user was paired");
    assert!(!seat_u.waits_with(id_u), "b's user was paired");
    assert_eq!(
        x.stats
            .cross_matches
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        b.stats
            .cross_matches
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(x.in_flight(), (0, 0));
    assert_eq!(b.in_flight(), (0, 0));
}

#[actix_rt::test]
async fn a_proposal_lost_with_a_dead_home_strands_the_partner_only_until_its_lease_ends() {
    let bus = LocalBus::new();
    let ids = ids("d", 3, 2);
    let (h1n, h1) = start(&bus, &ids[0]);
    let (h2n, h2) = start(&bus, &ids[1]);
    let (on, o) = start(&bus, &ids[2]);
    let now = Instant::now();
    for (a, b) in [(&h1, &h2), (&h1, &o), (&h2, &o)] {
        hear(a, b, now);
        hear(b, a, now);
    }
    let (t1, _seat1, _) = ticket(1);
    h1n.router.place(t1);
    settle().await;
    assert_eq!(on.metrics.waiting(), 1, "h1's user waits at the owner");

    // h1 dies (SIGKILL): what is sent to it is lost from now on. h2's user is paired with
    // h1's at the owner before anyone knows, and the Reserve to h1 is lost.
    bus.detach(&NodeId(ids[0].clone()));
    let (t2, seat2, id2) = ticket(2);
    h2n.router.place(t2);
    settle().await;
    assert_eq!(
        on.metrics.waiting(),
        0,
        "both were taken for the lost proposal"
    );
    assert_eq!(h2.in_flight().0, 1, "h2 still has its ticket out");

    // h1 is declared dead; a user of the owner arrives and waits.
    let later = now + Duration::from_secs(3);
    hear(&h2, &o, later);
    hear(&o, &h2, later);
    o.tick(later);
    h2.tick(later);
    let (u, seat_u, id_u) = ticket(3);
    on.router.place(u);
    settle().await;
    assert!(seat2.waits_with(id2) && seat_u.waits_with(id_u));

    // The spilled ticket's lease (3 node timeouts) ends: h2 takes it back and sends it
    // again, and the owner pairs it with its user.
    let past_lease =
        Instant::now() + 3 * ClusterSettings::default().node_timeout + Duration::from_millis(1);
    hear(&h2, &o, past_lease);
    hear(&o, &h2, past_lease);
    h2.tick(past_lease);
    settle().await;
    assert!(!seat2.waits_with(id2), "h2's user was paired after all");
    assert!(!seat_u.waits_with(id_u), "the owner's user was paired");
    assert_eq!(h2.in_flight(), (0, 0));
}

#[actix_rt::test]
async fn a_hostile_withdraw_cannot_take_a_local_user_out_of_the_pool() {
    let bus = LocalBus::new();
    let ids = ids("w", 2, 1);
    let (_xn, x) = start(&bus, &ids[0]);
    let (bn, b) = start(&bus, &ids[1]);
    let now = Instant::now();
    hear(&x, &b, now);
    hear(&b, &x, now);
    // A user of the owner waits (it never spills: its node owns the bucket).
    let (u, seat_u, id_u) = ticket(1);
    bn.router.place(u);
    settle().await;
    // Another node withdraws that ticket id: only spilled tickets may be withdrawn so.
    b.receive(
        Envelope::Withdraw {
            ticket: id_u,
            bucket: bucket(),
        },
        Instant::now(),
    );
    settle().await;
    assert_eq!(
        bn.metrics.waiting(),
        1,
        "the local user still waits in the pool"
    );
    let (v, seat_v, id_v) = ticket(2);
    bn.router.place(v);
    settle().await;
    assert!(
        !seat_u.waits_with(id_u) && !seat_v.waits_with(id_v),
        "and is paired"
    );
}
