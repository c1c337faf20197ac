//! The cluster against a NATS publisher without the cluster key, over a real `nats-server`:
//! it reads no chat line, and its forged heartbeat, relay, fake node and drain change
//! nothing; they are refused and counted. A genuine drain replayed later is refused too.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::nats::{NatsServer, TestCa};
use common::{http_get, start_server_with, Client, CLUSTER_KEY, STEP};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tandem_engine::session::{ChatInput, SessionEvent};
use tandem_ids::{NodeId, SessionId};
use tandem_proto::ServerMsg;
use tandem_server::bus::{Envelope, NodeStatus};
use tandem_server::cluster::seal::{ClusterKey, Seal};
use tandem_server::cluster::wire;
use tandem_server::config::ServeArgs;
use tandem_server::RunningServer;

/// A message the spy heard: its subject and payload.
type Heard = (String, Vec<u8>);

fn node_args(nats: &str, id: &str) -> ServeArgs {
    let mut args = common::generous_args();
    args.node_id = Some(id.to_owned());
    args.cluster.nats = vec![nats.to_owned()];
    args.cluster.cluster_name = "sec".into();
    args.cluster.cluster_key = Some(CLUSTER_KEY.into());
    args.id_secret = Some("the security test cluster's secret".into());
    args
}

async fn formed(nodes: &[&RunningServer]) {
    for node in nodes {
        let mut view = node.node.cluster().expect("a cluster node").watch();
        tokio::time::timeout(
            Duration::from_secs(10),
            view.wait_for(|v| v.connected && v.members.len() == nodes.len() - 1),
        )
        .await
        .expect("the cluster formed")
        .unwrap();
    }
}

/// Once the two nodes have formed a cluster, a user on each is paired with the other.
async fn paired_across(a: &RunningServer, b: &RunningServer) -> (Client, Client) {
    formed(&[a, b]).await;
    let mut x = Client::connect(a.addr).await;
    let mut y = Client::connect(b.addr).await;
    x.join().await;
    y.join().await;
    assert_eq!(x.matched().await.chat, y.matched().await.chat);
    (x, y)
}

async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let (_, body) = http_get(addr, "/metrics").await;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[actix_rt::test]
async fn a_publisher_without_the_key_reads_no_line_and_forges_nothing() {
    let nats = NatsServer::start();
    let a = start_server_with(node_args(&nats.url(), "sec-a"));
    let b = start_server_with(node_args(&nats.url(), "sec-b"));
    formed(&[&a, &b]).await;

    // The attacker: a plain NATS client that hears everything under the cluster's subjects.
    let spy = async_nats::connect(nats.url()).await.unwrap();
    let heard: Arc<Mutex<Vec<Heard>>> = Arc::default();
    let mut all = spy.subscribe("tandem.sec.>").await.unwrap();
    let sink = Arc::clone(&heard);
    let listening = actix_rt::spawn(async move {
        while let Some(message) = all.next().await {
            (sink.lock()).push((message.subject.to_string(), message.payload.to_vec()));
        }
    });
    spy.flush().await.unwrap();

    // A chat across the two nodes.
    let mut x = Client::connect(a.addr).await;
    let mut y = Client::connect(b.addr).await;
    x.join().await;
    y.join().await;
    let chat = x.matched().await.chat;
    assert_eq!(y.matched().await.chat, chat);
    x.say(chat, "a line nobody else may read").await;
    assert!(
        matches!(y.recv().await, ServerMsg::Msg { text, .. } if text == "a line nobody else may read")
    );

    let deadline = Instant::now() + STEP;
    while !(heard.lock().iter()).any(|(subject, _)| subject.contains(".node.")) {
        assert!(Instant::now() < deadline, "the spy heard no envelope");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (subject, payload) in heard.lock().iter() {
        assert!(
            !payload.windows(6).any(|w| w == b"nobody"),
            "a chat line in clear on {subject}"
        );
        assert!(
            wire::decode(payload, std::time::Instant::now()).is_err(),
            "{subject}"
        );
    }

    // Forgeries, in the envelope format itself, unsealed or sealed with another key.
    let now = std::time::Instant::now;
    let plain = |envelope: &Envelope| {
        wire::encode(envelope, now(), wire::unix_micros()).expect("a wire envelope")
    };
    let mut fake = NodeStatus::new(NodeId("sec-fake".into()), 256, 7);
    fake.http = "127.0.0.1:9".into();
    let relay = Envelope::ToSession {
        session: SessionId(1),
        event: SessionEvent::Relay {
            chat,
            item: ChatInput::Msg("injected".into()),
        },
    };
    let wrong = Seal::new(&ClusterKey::parse(&ClusterKey::generate()).unwrap());
    let mut forged = 0;
    for inbox in ["tandem.sec.node.sec-a", "tandem.sec.node.sec-b"] {
        for payload in [
            plain(&Envelope::Drain),
            plain(&relay),
            wrong.seal(inbox, &plain(&Envelope::Drain)),
            b"\x01anything at all".to_vec(),
        ] {
            spy.publish(inbox.to_owned(), payload.into()).await.unwrap();
            forged += 1;
        }
    }
    for payload in [
        plain(&Envelope::Heartbeat(fake.clone())),
        wrong.seal("tandem.sec.heartbeat", &plain(&Envelope::Heartbeat(fake))),
    ] {
        spy.publish("tandem.sec.heartbeat".to_owned(), payload.into())
            .await
            .unwrap();
    }
    spy.flush().await.unwrap();
    // Each node refuses its four, and both heartbeats.
    for node in [&a, &b] {
        let deadline = Instant::now() + STEP;
        while metric(node.addr, "tandem_cluster_refused_unsealed_total").await < forged / 2 + 2 {
            assert!(Instant::now() < deadline, "forgeries not refused");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Nothing changed: the chat goes on, no node drains, no fake node joined.
    y.say(chat, "still here").await;
    assert!(matches!(x.recv().await, ServerMsg::Msg { text, .. } if text == "still here"));
    for node in [&a, &b] {
        assert_eq!(http_get(node.addr, "/healthz").await.0, 200);
        let view = node.node.cluster().unwrap().watch().borrow().clone();
        assert_eq!(view.members.len(), 1, "no fake node");
    }

    // A genuine drain, sealed with the key but a minute and more old (a replay): refused.
    let key = Seal::new(&ClusterKey::parse(CLUSTER_KEY).unwrap());
    let old = wire::unix_micros() - 90_000_000;
    let stale = wire::encode(&Envelope::Drain, now(), old).unwrap();
    let inbox = "tandem.sec.node.sec-a";
    spy.publish(inbox.to_owned(), key.seal(inbox, &stale).into())
        .await
        .unwrap();
    spy.flush().await.unwrap();
    let deadline = Instant::now() + STEP;
    while metric(a.addr, "tandem_cluster_refused_stale_total").await < 1 {
        assert!(
            Instant::now() < deadline,
            "the replayed drain was not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(http_get(a.addr, "/healthz").await.0, 200, "not draining");

    listening.abort();
    drop((x, y));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_node_without_a_cluster_key_does_not_start() {
    let nats = NatsServer::start();
    let mut args = node_args(&nats.url(), "sec-c");
    args.cluster.cluster_key = None;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = RunningServer::start(&args, listener)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("--cluster-key"), "{err}");
    args.cluster.cluster_key = Some("too short".into());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = RunningServer::start(&args, listener)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("--cluster-key"), "{err}");
}

#[actix_rt::test]
async fn behind_nats_authentication_nodes_with_the_password_form_a_cluster_and_others_are_refused()
{
    let nats = NatsServer::start_with_user("tandem", "nats-password-for-tests");
    let url = format!(
        "nats://tandem:nats-password-for-tests@127.0.0.1:{}",
        nats.port
    );
    let a = start_server_with(node_args(&url, "auth-a"));
    let b = start_server_with(node_args(&url, "auth-b"));
    let (x, y) = paired_across(&a, &b).await;

    // Without the password, or with a wrong one, NATS itself refuses the connection.
    for url in [
        nats.url(),
        format!("nats://tandem:wrong@127.0.0.1:{}", nats.port),
    ] {
        let refused = tokio::time::timeout(STEP, async_nats::connect(url.as_str())).await;
        assert!(
            !matches!(refused, Ok(Ok(_))),
            "{url}: connected without the password"
        );
    }
    drop((x, y));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn over_tls_with_the_cluster_ca_nodes_form_a_cluster_and_clients_that_do_not_trust_it_are_refused(
) {
    let ca = TestCa::new();
    let nats = NatsServer::start_tls(&ca, "tandem", "nats-password-for-tests");
    let url = format!(
        "tls://tandem:nats-password-for-tests@127.0.0.1:{}",
        nats.port
    );
    let with_ca = |id: &str| {
        let mut args = node_args(&url, id);
        args.cluster.nats_tls_ca = Some(ca.ca());
        args
    };
    let a = start_server_with(with_ca("tls-a"));
    let b = start_server_with(with_ca("tls-b"));
    let (x, y) = paired_across(&a, &b).await;

    // A client that trusts another CA, or only the system's, is refused by its own TLS check.
    let other = TestCa::new();
    let attempts = [
        async_nats::ConnectOptions::new().add_root_certificates(other.ca()),
        async_nats::ConnectOptions::new(),
    ];
    for options in attempts {
        let refused = tokio::time::timeout(STEP, options.connect(url.as_str())).await;
        assert!(!matches!(refused, Ok(Ok(_))), "connected without the CA");
    }
    // One that does not speak TLS is told TLS is required and gets nothing in clear text.
    let plain = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, BufReader, Write};
        let stream = std::net::TcpStream::connect(("127.0.0.1", nats.port)).unwrap();
        stream.set_read_timeout(Some(STEP)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut info = String::new();
        reader.read_line(&mut info).unwrap();
        let connect =
            "CONNECT {\"user\":\"tandem\",\"pass\":\"nats-password-for-tests\"}\r\nPING\r\n";
        let _ = (&stream).write_all(connect.as_bytes());
        let mut answer = String::new();
        let _ = reader.read_line(&mut answer);
        (info, answer)
    })
    .await
    .unwrap();
    assert!(plain.0.contains("\"tls_required\":true"), "{}", plain.0);
    assert!(
        !plain.1.starts_with("PONG"),
        "answered in clear text: {}",
        plain.1
    );
    drop((x, y));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// How many routes the server monitored on `monitor` has.
async fn routes(monitor: u16) -> u64 {
    let addr: SocketAddr = format!("127.0.0.1:{monitor}").parse().unwrap();
    let (_, body) = http_get(addr, "/routez").await;
    let routez: serde_json::Value = serde_json::from_str(&body).unwrap();
    routez["num_routes"].as_u64().unwrap()
}

#[actix_rt::test]
async fn only_nats_servers_with_a_certificate_of_the_cluster_ca_join_its_routes() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let first = NatsServer::start_routed(Some(&ca), &ca, &[]);
    let member = NatsServer::start_routed(Some(&ca), &ca, &[first.route]);
    let deadline = Instant::now() + 2 * STEP;
    while routes(first.monitor).await != 1 || routes(member.monitor).await != 1 {
        assert!(
            Instant::now() < deadline,
            "the member's route did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One server without TLS, one with a certificate of another CA: each tries, and is cut
    // off at the handshake.
    let plain = NatsServer::start_routed(None, &ca, &[first.route]);
    let foreign = NatsServer::start_routed(Some(&other), &other, &[first.route]);
    for rogue in [&plain, &foreign] {
        while !rogue.log().lines().any(|line| {
            line.contains("127.0.0.1:")
                && (line.contains("Router connection closed") || line.contains("error"))
        }) {
            assert!(
                Instant::now() < deadline + 2 * STEP,
                "no refused route in the log:\n{}",
                rogue.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(routes(rogue.monitor).await, 0, "{}", rogue.log());
    }
    assert_eq!(routes(first.monitor).await, 1);
}
