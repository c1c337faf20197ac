//! Chaos under load: three nodes, each on its own server of a three-server NATS cluster, carry
//! `tandem loadtest` while faults hit them one after another: a node paused (SIGSTOP) past the
//! node timeout, a node killed (SIGKILL) and started again, a NATS server restarted, and a node
//! cut off from NATS past the node timeout and then let back. The load's checks must hold
//! throughout (nobody paired twice, no line from anyone but the partner, ...), and every user
//! whose partner was on the node that stalled, died or was cut off is told `ended` within the
//! bound docs/cluster.md gives.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::nats::NatsServer;
use common::process::NodeProcess;
use common::{http_get, join_with, Client, CLUSTER_KEY};
use tandem_proto::{EndReason, ServerMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};

/// How soon a user whose partner's node died, stalled or was cut off must hear `ended`:
/// docs/cluster.md promises about 2.1 s (the 2 s node timeout, then a check every 100 ms);
/// the rest is slack for a 2-core machine running other tests beside this one.
const TOLD_WITHIN: Duration = Duration::from_secs(3);

/// How long node 1 stays paused: past the node timeout, and past [`TOLD_WITHIN`], so that its
/// partners must be told while it is still frozen.
const STALL: Duration = Duration::from_secs(4);

/// How long node 2 stays cut off from NATS: past the node timeout, and short of the 15 s in
/// which its NATS client would notice the silence and reconnect.
const PARTITION: Duration = Duration::from_secs(5);

/// Simulated users, a third on each node.
const CLIENTS: u64 = 90;

/// The length of the load: the faults are over well before it ends.
const LOAD: Duration = Duration::from_secs(35);

/// The id secret the nodes share.
const ID_SECRET: &str = "the chaos test cluster's id secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_stall_a_kill_a_nats_restart_and_a_partition_break_no_promise() {
    let run = run_dir();
    println!("node logs and the load's report: {}", run.display());
    let mut nats = tokio::task::spawn_blocking(|| NatsServer::start_cluster(3))
        .await
        .unwrap();
    // Node 2 reaches its server through a link the test can cut.
    let link = Link::to(format!("127.0.0.1:{}", nats[2].port).parse().unwrap()).await;
    let urls = [nats[0].url(), nats[1].url(), link.url()];
    let (n0, mut n1, n2) = tokio::join!(
        Node::start("chaos-0", &urls[0], &run),
        Node::start("chaos-1", &urls[1], &run),
        Node::start("chaos-2", &urls[2], &run),
    );
    formed(&[&n0, &n1, &n2], "the cluster formed").await;
    // A node holds handshakes until it has loaded the bans (or given up on them a few
    // seconds after starting), and refuses joins (`unavailable`) until its store in
    // JetStream is open, which a cluster of three NATS servers may take a while to allow:
    // the load starts once every node admits users and their joins at once.
    for (node, lang) in [(&n0, "ko"), (&n1, "ja"), (&n2, "th")] {
        admits_joins(node, lang).await;
    }
    let mut load = Load::start(&[&n0, &n1, &n2], &run);
    // Every user of the load is connected, and each node pairs them, before any fault.
    for node in [&n0, &n1, &n2] {
        until(&format!("{} pairs all its users", node.id), || async {
            metric(node.addr, "tandem_users_online").await >= (CLIENTS / 3) as f64
                && metric(node.addr, "tandem_matches_total").await >= 10.0
        })
        .await;
    }

    // 1. Node 1 freezes past the node timeout: the others declare it dead and tell their users
    //    chatting with its users, while it is still frozen. Then it thaws and rejoins.
    let mut across = vec![
        pair_across(&n0, &n1, "fi").await,
        pair_across(&n2, &n1, "sv").await,
    ];
    n1.signal("-STOP");
    let stopped = Instant::now();
    for (here, _) in &mut across {
        told_partner_gone(
            here,
            stopped + TOLD_WITHIN,
            "a partner of the frozen node's user",
        )
        .await;
    }
    sleep_until(stopped + STALL).await;
    n1.signal("-CONT");
    formed(&[&n0, &n1, &n2], "node 1 rejoined after its stall").await;
    drop(across);

    // 2. Node 1 is killed: its users are dropped, and their partners elsewhere told. Started
    //    again under the same id, it joins again.
    let mut across = vec![
        pair_across(&n0, &n1, "fi").await,
        pair_across(&n2, &n1, "sv").await,
    ];
    n1.kill().await;
    let killed = Instant::now();
    for (here, _) in &mut across {
        told_partner_gone(
            here,
            killed + TOLD_WITHIN,
            "a partner of the killed node's user",
        )
        .await;
    }
    drop(across);
    let n1 = Node::start("chaos-1", &urls[1], &run).await;
    formed(&[&n0, &n1, &n2], "node 1 joined again after its restart").await;

    // 3. Node 0's NATS server restarts: node 0 reconnects (to another server of the cluster or
    //    to its own, back) well within the node timeout, so nobody is declared dead and a chat
    //    across nodes goes on.
    let (mut x, mut y) = pair_across(&n0, &n2, "nl").await;
    let reconnects = metric(n0.addr, "tandem_cluster_reconnects_total").await;
    // The servers live to the end of the test.
    let _nats = tokio::task::spawn_blocking(move || {
        nats[0].restart();
        nats
    })
    .await
    .unwrap();
    until("node 0 reconnected to NATS", || async {
        metric(n0.addr, "tandem_cluster_reconnects_total").await > reconnects
    })
    .await;
    formed(&[&n0, &n1, &n2], "the cluster formed after the restart").await;
    x.user.say(x.matched_chat, "still here").await;
    expect_line(&mut y.user, "still here").await;
    y.user.say(y.matched_chat, "so am I").await;
    expect_line(&mut x.user, "so am I").await;
    drop((x, y));

    // 4. Node 2 is cut off from NATS past the node timeout (silently: packets go nowhere, no
    //    connection closes). Each side declares the other dead: users on both sides of a chat
    //    across the cut are told. Once let back, node 2 rejoins and pairs across again.
    let mut across = vec![
        pair_across(&n0, &n2, "pl").await,
        pair_across(&n1, &n2, "it").await,
    ];
    link.cut();
    let cut = Instant::now();
    for (here, there) in &mut across {
        told_partner_gone(
            here,
            cut + TOLD_WITHIN,
            "a partner of the cut-off node's user",
        )
        .await;
        told_partner_gone(there, cut + TOLD_WITHIN, "a user of the cut-off node").await;
    }
    sleep_until(cut + PARTITION).await;
    link.heal();
    formed(&[&n0, &n1, &n2], "node 2 rejoined after the partition").await;
    assert!(
        load.running(),
        "the faults outlasted the load: lengthen LOAD"
    );
    drop(across);
    let _again = pair_across(&n2, &n0, "pt").await;

    // The load's verdict. No promise broken, with one allowance: `chat_seen_once`, a chat that
    // only one side was told of, is what a claim in flight when a node freezes, dies or is
    // cut off leaves (the committed side is told `matched`; the other side's node dies, or
    // its claim expires for want of the answer). The load generator forgives such a side
    // once it is told `partner_disconnected`, not if its user skipped first, in the 2 s before
    // the death was declared. Claims in flight at one instant are a handful at most at this
    // load (none in most runs, one at times).
    let report = load.report().await;
    println!("{report:#}");
    let count = |field: &str, kind: &str| report[field][kind].as_u64().unwrap();
    for kind in report["violations_by_kind"].as_object().unwrap().keys() {
        if kind == "chat_seen_once" {
            assert!(count("violations_by_kind", kind) <= 5, "{kind}: {report:#}");
        } else {
            assert_eq!(count("violations_by_kind", kind), 0, "{kind}: {report:#}");
        }
    }
    // The users of the killed node, and only they, lost their connections; no user was refused
    // anything (a line to a chat that had just ended, `stale_chat`, is not counted as an
    // error); and the cluster still paired users at the end.
    assert_eq!(report["connected"].as_u64(), Some(CLIENTS), "{report:#}");
    assert_eq!(
        report["connection_failures_by_kind"],
        serde_json::json!({ "closed": CLIENTS / 3 }),
        "{report:#}"
    );
    assert_eq!(report["errors"].as_u64(), Some(0), "{report:#}");
    let seconds = report["throughput"].as_array().unwrap();
    let late: u64 = (seconds.iter().rev().take(5))
        .map(|s| s["matches"].as_u64().unwrap())
        .sum();
    assert!(late > 0, "no pairing in the last seconds: {report:#}");
}

/// Waits until `node` takes a join (its store open, so that a proof can be spent), failing
/// the test after a minute. The join is in `lang`, which nobody else speaks; the user then
/// leaves.
async fn admits_joins(node: &Node, lang: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut user = Client::connect(node.addr).await;
        let proof = common::proof_of(&user);
        user.send(&join_with(|j| {
            j.lang = Some(lang.to_owned());
            j.proof = proof;
        }))
        .await;
        match user.recv().await {
            ServerMsg::Waiting => return,
            ServerMsg::Error {
                code: tandem_proto::ErrorCode::Unavailable,
                ..
            } => {
                assert!(
                    Instant::now() < deadline,
                    "{} refused joins for a minute",
                    node.id
                );
                sleep(Duration::from_millis(200)).await;
            }
            other => panic!("{}: a join got {other:?}", node.id),
        }
    }
}

/// A user of one node paired with a user of another.
struct Across {
    user: Client,
    matched_chat: tandem_ids::ChatId,
}

/// A user on `a` and one on `b`, paired with each other. They speak `lang`, which no user of
/// the load speaks, so they can only meet each other.
async fn pair_across(a: &Node, b: &Node, lang: &str) -> (Across, Across) {
    // Each with the solution of its connection's challenge.
    let join = |client: &Client| {
        let proof = common::proof_of(client);
        join_with(|j| {
            j.lang = Some(lang.to_owned());
            j.proof = proof;
        })
    };
    let mut x = Client::connect(a.addr).await;
    x.send(&join(&x)).await;
    assert_eq!(x.recv().await, ServerMsg::Waiting);
    let mut y = Client::connect(b.addr).await;
    y.send(&join(&y)).await;
    assert_eq!(y.recv().await, ServerMsg::Waiting);
    let chat = x.matched().await.chat;
    assert_eq!(y.matched().await.chat, chat, "{} and {}", a.id, b.id);
    let side = |user| Across {
        user,
        matched_chat: chat,
    };
    (side(x), side(y))
}

/// Waits until `user` hears that its partner is gone (`ended`, `partner_disconnected`),
/// failing the test if that has not come by `by`.
async fn told_partner_gone(user: &mut Across, by: Instant, who: &str) {
    let ended = timeout_at(by, user.user.recv()).await;
    match ended {
        Ok(ServerMsg::Ended { chat, reason }) => {
            assert_eq!(chat, user.matched_chat, "{who}");
            assert_eq!(reason, EndReason::PartnerDisconnected, "{who}");
            let early = by.saturating_duration_since(Instant::now());
            println!("{who}: told `ended` {early:?} before the deadline");
        }
        Ok(other) => panic!("{who}: expected `ended`, got {other:?}"),
        Err(_) => panic!("{who} was not told `ended` within {TOLD_WITHIN:?}"),
    }
}

/// Expects chat line `text` next.
async fn expect_line(user: &mut Client, text: &str) {
    match user.recv().await {
        ServerMsg::Msg { text: got, .. } => assert_eq!(got, text),
        other => panic!("expected the line {text:?}, got {other:?}"),
    }
}

/// A node in a child process of its own, so that it can be paused and killed; it logs
/// warnings to `<id>.log` in the run's directory.
struct Node {
    id: String,
    addr: SocketAddr,
    child: Child,
}

impl Node {
    /// Starts node `id` on NATS `nats` and waits until it is healthy.
    async fn start(id: &str, nats: &str, run: &Path) -> Node {
        let args: Vec<String> = [
            "--nats",
            nats,
            "--cluster",
            "chaos",
            "--node-id",
            id,
            "--cluster-key",
            CLUSTER_KEY,
            "--id-secret",
            ID_SECRET,
            "--shards",
            "2",
            "--workers",
            "1",
            // The load solves every connection's challenge: a small one (unoptimised build).
            "--challenge-difficulty",
            "2",
            "--challenge-cost",
            "1",
        ]
        .into_iter()
        .map(String::from)
        .chain([
            "--data-dir".into(),
            common::data_dir().display().to_string(),
        ])
        .collect();
        let log = run.join(format!("{id}.log"));
        let node = NodeProcess::start(&args, || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap()
                .into()
        })
        .await;
        Node {
            id: id.to_owned(),
            addr: node.addr,
            child: node.child,
        }
    }

    /// Sends a signal (`-STOP`, `-CONT`) to the node's process.
    fn signal(&self, which: &str) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args([which, &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {which} {pid}");
    }

    /// SIGKILL, and reaps the process.
    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

/// A metric's value on a node (its first series of that name).
async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, body) = http_get(addr, "/metrics").await;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Polls `done` every 50 ms until it holds, failing the test after 15 s: for what no event
/// announces, such as a node's count in `/metrics`.
async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every node is connected to NATS and counts all of them live.
async fn formed(nodes: &[&Node], what: &str) {
    let all = nodes.len() as f64;
    until(what, || async {
        for node in nodes {
            if metric(node.addr, "tandem_cluster_connected").await != 1.0
                || metric(node.addr, "tandem_cluster_nodes_live").await != all
            {
                return false;
            }
        }
        true
    })
    .await;
}

/// `tandem loadtest` in a child process, against the nodes.
struct Load {
    child: Child,
    /// Where it writes its JSON report.
    report: PathBuf,
}

impl Load {
    /// [`CLIENTS`] users over three languages (so that many wait alone on their node and are
    /// paired across nodes), with lines and signals, for [`LOAD`].
    fn start(nodes: &[&Node], run: &Path) -> Load {
        let report = run.join("load.json");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
        command.arg("loadtest");
        for node in nodes {
            command.args(["--target", &node.ws_url()]);
        }
        let child = command
            .args(["--clients", &CLIENTS.to_string()])
            .args(["--duration", &format!("{}s", LOAD.as_secs())])
            .args([
                "--ramp",
                "2s",
                "--langs",
                "en,de,fr",
                "--signals-per-chat",
                "2",
            ])
            .arg("--json")
            .arg(&report)
            .arg("--quiet")
            .stdout(std::fs::File::create(run.join("load.txt")).unwrap())
            .stderr(std::fs::File::create(run.join("load.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("the tandem binary");
        Load { child, report }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the end of the run and reads its report. Its exit status is not judged here:
    /// the report says what failed.
    async fn report(mut self) -> serde_json::Value {
        timeout(LOAD + Duration::from_secs(60), self.child.wait())
            .await
            .expect("the load test did not finish in time")
            .unwrap();
        let text = std::fs::read_to_string(&self.report).expect("the load test's report");
        serde_json::from_str(&text).unwrap()
    }
}

/// The network between a node and its NATS server, as a TCP relay the test can cut. While
/// cut, nothing passes either way and every connection stays open, as when a network drops
/// packets silently: the node's socket tells it nothing.
struct Link {
    addr: SocketAddr,
    open: watch::Sender<bool>,
}

impl Link {
    /// A link to `upstream`, open.
    async fn to(upstream: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, gate) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut gate = gate.clone();
                tokio::spawn(async move {
                    // A connection opened while cut gets through only once healed.
                    passable(&mut gate).await;
                    let Ok(outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::join!(
                        pipe(in_read, out_write, gate.clone()),
                        pipe(out_read, in_write, gate),
                    );
                });
            }
        });
        Link { addr, open }
    }

    fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn heal(&self) {
        self.open.send_replace(true);
    }
}

/// Waits while the link is cut.
async fn passable(gate: &mut watch::Receiver<bool>) {
    let _ = gate.wait_for(|open| *open).await;
}

/// Copies one direction of a connection, holding what it read while the link is cut (as
/// packets in flight are held by a silent network) until the link heals.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut gate: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        passable(&mut gate).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        passable(&mut gate).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A directory of this run's files, kept so that a failure can be looked into.
fn run_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("chaos-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}
