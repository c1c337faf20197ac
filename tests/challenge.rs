//! The proof-of-work challenge in front of `join`, over real sockets: `welcome` carries one,
//! a join without a proof or with a wrong, expired or replayed one gets the typed error and
//! a fresh challenge, a valid one pairs, a connection that passed is not asked again, a
//! replay is refused on another node of a cluster too (JetStream on a real nats-server), and
//! an address that opens many connections is asked more work.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use common::nats::NatsServer;
use common::{connect_from, join_with, start_server_with, test_args, Client};
use serde_json::Value;
use tandem_proto::{Challenge, ClientMsg, ErrorCode, ServerMsg};
use tandem_server::abuse::challenge::{solve, ChallengeSettings, Challenges};
use tandem_server::config::ServeArgs;
use tandem_server::moderation::StoreSlot;

const SECRET: &str = "the challenge test's id secret";

/// A node that asks a small challenge (tests run unoptimised).
fn args() -> ServeArgs {
    let mut args = test_args();
    args.challenge = true;
    args.challenge_difficulty = 8;
    args.challenge_cost = 2;
    args.id_secret = Some(SECRET.into());
    args
}

fn challenge_of(client: &Client) -> Challenge {
    client
        .welcome
        .challenge
        .clone()
        .expect("welcome carries a challenge")
}

fn join_proving(proof: &str) -> ClientMsg {
    join_with(|j| j.proof = Some(proof.to_owned()))
}

/// The next error: its code, and the fresh challenge it carries.
async fn refused(client: &mut Client) -> (ErrorCode, Option<Challenge>) {
    match client.recv().await {
        ServerMsg::Error {
            code, challenge, ..
        } => (code, challenge),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The counter of a proof (how much work it took).
fn counter(proof: &str) -> u64 {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(proof)
        .unwrap();
    let payload: Value = serde_json::from_slice(&bytes).unwrap();
    payload["solution"]["counter"].as_u64().unwrap()
}

async fn metric(addr: std::net::SocketAddr, line: &str) -> String {
    let (_, metrics) = common::http_get(addr, "/metrics").await;
    metrics
        .lines()
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("{line} in {metrics}"))
        .to_owned()
}

#[actix_rt::test]
async fn without_a_proof_or_with_a_wrong_one_a_join_is_refused_and_a_valid_one_pairs() {
    let server = start_server_with(args());
    let mut a = Client::connect(server.addr).await;
    let challenge = challenge_of(&a);
    assert_eq!(challenge.parameters.algorithm, "PBKDF2/SHA-256");

    a.send(&join_with(|_| {})).await;
    let (code, again) = refused(&mut a).await;
    assert_eq!(code, ErrorCode::ChallengeRequired);
    // The connection's own challenge again: a refusal costs the node no new one.
    assert_eq!(again.as_ref(), Some(&challenge));

    // The right shape, the wrong key.
    let proof = solve(&challenge);
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut payload: Value = serde_json::from_slice(&engine.decode(&proof).unwrap()).unwrap();
    payload["solution"]["derivedKey"] = "ab".repeat(32).into();
    a.send(&join_proving(&engine.encode(payload.to_string())))
        .await;
    assert_eq!(refused(&mut a).await.0, ErrorCode::ChallengeFailed);
    a.send(&join_proving("garbage")).await;
    let (code, again) = refused(&mut a).await;
    assert_eq!(code, ErrorCode::ChallengeFailed);
    assert_eq!(again.as_ref(), Some(&challenge));
    assert!(metric(server.addr, "tandem_challenges_issued_total{node=")
        .await
        .ends_with(" 1"));

    // Solved at last.
    a.send(&join_proving(&solve(&again.unwrap()))).await;
    assert_eq!(a.recv().await, ServerMsg::Waiting);
    let mut b = Client::connect(server.addr).await;
    b.send(&join_proving(&solve(&challenge_of(&b)))).await;
    let chat = a.matched().await.chat;
    let mut got = b.recv().await;
    if got == ServerMsg::Waiting {
        got = b.recv().await;
    }
    assert!(matches!(got, ServerMsg::Matched(m) if m.chat == chat));

    // Passed once: not asked again on this connection.
    a.send(&ClientMsg::Leave).await;
    a.drain().await;
    a.send(&join_with(|_| {})).await;
    assert_eq!(a.recv().await, ServerMsg::Waiting);

    assert!(metric(server.addr, "tandem_challenges_passed_total")
        .await
        .ends_with(" 2"));
    assert!(metric(server.addr, "tandem_challenges_required_total")
        .await
        .ends_with(" 1"));
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn an_expired_or_replayed_proof_fails_and_an_invalid_join_spends_nothing() {
    let server = start_server_with(args());
    // The node's own challenge, issued as if an hour ago: signed with the shared secret,
    // expired since.
    let settings = ChallengeSettings {
        difficulty: 8,
        cost: 2,
        ..ChallengeSettings::default()
    };
    let (_open, slot) = StoreSlot::new();
    let issuer = Challenges::new(settings, SECRET.as_bytes(), slot);
    let an_hour_ago = tandem_server::moderation::records::unix_now() - 3600;
    let loopback = Some("127.0.0.1".parse().unwrap());
    let expired = solve(&issuer.issue(0, loopback, an_hour_ago).unwrap());
    let mut a = Client::connect(server.addr).await;
    a.send(&join_proving(&expired)).await;
    let (code, _) = refused(&mut a).await;
    assert_eq!(code, ErrorCode::ChallengeFailed);

    // A join refused for its preferences leaves its proof unspent.
    let proof = solve(&challenge_of(&a));
    a.send(&join_with(|j| {
        j.proof = Some(proof.clone());
        j.mode = Some("hologram".into());
    }))
    .await;
    assert_eq!(refused(&mut a).await.0, ErrorCode::InvalidValue);
    a.send(&join_proving(&proof)).await;
    assert_eq!(a.recv().await, ServerMsg::Waiting);

    // The same solution on another connection: spent.
    let mut b = Client::connect(server.addr).await;
    b.send(&join_proving(&proof)).await;
    assert_eq!(refused(&mut b).await.0, ErrorCode::ChallengeFailed);
    assert!(
        metric(server.addr, "tandem_challenges_failed_total{node=")
            .await
            .contains("cause=\"malformed\""),
        "the causes are listed"
    );
    let (_, metrics) = common::http_get(server.addr, "/metrics").await;
    for cause in ["expired", "spent"] {
        let line = format!("cause=\"{cause}\"}} 1");
        assert!(metrics.contains(&line), "{cause}: {metrics}");
    }
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_solution_spent_on_one_node_of_a_cluster_is_refused_on_another() {
    let nats = NatsServer::start();
    let node = |id: &str| {
        let mut args = args();
        args.node_id = Some(id.to_owned());
        args.cluster.nats = vec![nats.url()];
        args.cluster.cluster_name = "challenge".into();
        args.cluster.cluster_key = Some(common::CLUSTER_KEY.into());
        start_server_with(args)
    };
    let (one, two) = (node("ch-1"), node("ch-2"));
    let mut a = Client::connect(one.addr).await;
    let proof = solve(&challenge_of(&a));
    a.send(&join_proving(&proof)).await;
    // Waiting, once the proof is spent in the cluster's store.
    assert_eq!(a.recv().await, ServerMsg::Waiting);
    let mut b = Client::connect(two.addr).await;
    b.send(&join_proving(&proof)).await;
    let (code, fresh) = refused(&mut b).await;
    assert_eq!(code, ErrorCode::ChallengeFailed);
    b.send(&join_proving(&solve(&fresh.unwrap()))).await;
    assert_eq!(b.recv().await, ServerMsg::Waiting);
    one.shutdown().await.unwrap();
    two.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn an_address_that_holds_many_connections_is_asked_more_work() {
    let mut args = args();
    args.limit_loopback = true;
    args.max_conns_per_ip = 64;
    args.max_handshakes_per_ip = 100;
    let server = start_server_with(args);
    let from: IpAddr = "127.0.0.7".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(connect_from(server.addr, from).await);
    }
    // The difficulty is 8: the first connection's counter lies in [4, 12); the ninth to
    // twelfth connections' (four times harder) in [16, 48).
    let first = counter(&solve(&challenge_of(&held[0])));
    assert!((4..12).contains(&first), "{first}");
    for client in &held[8..] {
        let raised = counter(&solve(&challenge_of(client)));
        assert!((16..48).contains(&raised), "{raised}");
    }
    // Another address is not affected, and cannot use the busy address's challenges (nor
    // the busy one another's cheap ones).
    let mut elsewhere = connect_from(server.addr, "127.0.0.8".parse().unwrap()).await;
    let cheap = solve(&challenge_of(&elsewhere));
    let base = counter(&cheap);
    assert!((4..12).contains(&base), "{base}");
    held[0].send(&join_proving(&cheap)).await;
    assert_eq!(refused(&mut held[0]).await.0, ErrorCode::ChallengeFailed);
    elsewhere.send(&join_proving(&cheap)).await;
    assert_eq!(elsewhere.recv().await, ServerMsg::Waiting);
    let raised = metric(server.addr, "tandem_challenges_issued_total{node=").await;
    assert!(raised.contains("difficulty=\"base\""), "{raised}");
    let (_, metrics) = common::http_get(server.addr, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("difficulty=\"raised\"") && !l.ends_with(" 0")),
        "{metrics}"
    );
    drop(held);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn with_challenges_off_welcome_says_null_and_joins_need_no_proof() {
    let server = start_server_with(test_args());
    let (status, _) = common::http_get(server.addr, "/healthz").await;
    assert_eq!(status, 200);
    let url = format!("ws://{}/ws", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let welcome: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert!(
        welcome.get("challenge").is_some_and(Value::is_null),
        "{welcome}"
    );
    drop(ws);
    let mut a = Client::connect(server.addr).await;
    a.send(&join_with(|_| {})).await;
    assert_eq!(a.recv().await, ServerMsg::Waiting);
    server.shutdown().await.unwrap();
}
