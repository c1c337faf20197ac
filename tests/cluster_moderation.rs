//! Moderation in a cluster: nodes keep their store in JetStream (a real `nats-server -js`),
//! a ban issued through one node closes its subject's sessions on another, a report crosses
//! nodes with the right names, and everything survives a restart of every node and of NATS.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::nats::NatsServer;
use common::{http_request, open, start_server_with, Client, STEP};
use serde_json::{json, Value};
use tandem_proto::{ClientMsg, ErrorCode, ServerMsg};
use tandem_server::config::ServeArgs;
use tandem_server::RunningServer;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const TOKEN: &str = "token-of-the-moderators-0123";

fn node_args(nats: &str, id: &str) -> ServeArgs {
    let mut args = common::generous_args();
    args.node_id = Some(id.to_owned());
    args.cluster.nats = vec![nats.to_owned()];
    args.cluster.cluster_name = "modtest".into();
    args.id_secret = Some("the moderation test cluster's secret".into());
    args.cluster.cluster_key = Some(common::CLUSTER_KEY.into());
    args.admin_token = vec![format!("mia={TOKEN}")];
    args
}

async fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bearer = format!("Bearer {TOKEN}");
    let body = body.map(|b| b.to_string());
    let headers = [("authorization", bearer.as_str())];
    let (status, _, text) = http_request(addr, method, path, &headers, body.as_deref()).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits until every node is connected and hears every other.
async fn formed(nodes: &[&RunningServer]) {
    for node in nodes {
        let mut view = node.node.cluster().expect("a cluster node").watch();
        let others = nodes.len() - 1;
        tokio::time::timeout(
            Duration::from_secs(10),
            view.wait_for(|v| v.connected && v.members.len() == others),
        )
        .await
        .expect("the cluster formed")
        .unwrap();
    }
}

/// A user on node `a` and one on node `b`, paired with each other.
async fn pair_across(a: SocketAddr, b: SocketAddr) -> (Client, Client, tandem_ids::ChatId) {
    let mut x = Client::connect(a).await;
    let mut y = Client::connect(b).await;
    x.join().await;
    y.join().await;
    let chat = x.matched().await.chat;
    assert_eq!(y.matched().await.chat, chat);
    (x, y, chat)
}

#[actix_rt::test]
async fn a_ban_issued_through_one_node_closes_the_user_on_another_within_2s() {
    let nats = NatsServer::start();
    let a = start_server_with(node_args(&nats.url(), "mod-a"));
    let b = start_server_with(node_args(&nats.url(), "mod-b"));
    formed(&[&a, &b]).await;
    // An id issued by b holds on a too: the nodes share the id secret.
    let mut user = Client::connect(b.addr).await;
    let id = user.welcome.client_id.clone();
    let on_a = open(a.addr, &format!("?client_id={id}"), &[])
        .await
        .client();
    assert_eq!(on_a.welcome.client_id, id);
    user.join().await;

    let ban =
        json!({"subject": {"kind": "client", "value": id}, "duration_s": 3600, "reason": "spam"});
    let (status, issued) = api(a.addr, "POST", "/admin/api/bans", Some(ban)).await;
    assert_eq!(status, 201, "{issued}");
    let closed = tokio::time::timeout(Duration::from_secs(2), user.recv_until_close())
        .await
        .expect("closed on the other node within 2 s");
    assert_eq!(closed.1, Some(CloseCode::Policy));
    assert!(matches!(
        closed.0.as_slice(),
        [ServerMsg::Error { code: ErrorCode::Banned, ban: Some(ban), .. }] if *ban == issued["id"]
    ));
    // And refused at b's handshake from now on; b lists the ban a issued.
    let (msgs, close) = open(b.addr, &format!("?client_id={id}"), &[])
        .await
        .refusal();
    assert_eq!(close, Some(CloseCode::Policy));
    assert!(matches!(
        msgs.as_slice(),
        [ServerMsg::Error {
            code: ErrorCode::Banned,
            ..
        }]
    ));
    let (_, bans) = api(b.addr, "GET", "/admin/api/bans", None).await;
    assert_eq!(bans[0]["id"], issued["id"]);
    drop(on_a);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn reports_across_nodes_name_the_partner_and_everything_survives_a_restart_of_all() {
    let mut nats = NatsServer::start();
    let a = start_server_with(node_args(&nats.url(), "mod-c"));
    let b = start_server_with(node_args(&nats.url(), "mod-d"));
    formed(&[&a, &b]).await;
    let (mut x, mut y, chat) = pair_across(a.addr, b.addr).await;
    y.say(chat, "line from the other node").await;
    assert!(matches!(x.recv().await, ServerMsg::Msg { .. }));
    x.send(&ClientMsg::Report {
        chat,
        reason: "scam".into(),
        note: None,
    })
    .await;
    let report = match x.recv().await {
        ServerMsg::Reported { report } => report,
        other => panic!("{other:?}"),
    };
    let (_, queue) = api(b.addr, "GET", "/admin/api/reports?status=open", None).await;
    assert_eq!(queue[0]["id"], report.as_str());
    assert_eq!(queue[0]["reported"]["client"], y.welcome.client_id);
    assert_eq!(queue[0]["evidence"][0]["text"], "line from the other node");
    assert_eq!(queue[0]["evidence"][0]["from"], "reported");
    let ban = json!({"subject": {"kind": "device", "value": "device-cluster-1"}, "reason": "r"});
    let (status, issued) = api(a.addr, "POST", "/admin/api/bans", Some(ban)).await;
    assert_eq!(status, 201);
    drop((x, y));

    // Every node and the NATS server go down, and come back.
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    nats.restart();
    let a = start_server_with(node_args(&nats.url(), "mod-c"));
    let b = start_server_with(node_args(&nats.url(), "mod-d"));
    for node in [&a, &b] {
        let (msgs, close) =
            tokio::time::timeout(STEP, open(node.addr, "?device=device-cluster-1", &[]))
                .await
                .unwrap()
                .refusal();
        assert_eq!(close, Some(CloseCode::Policy));
        assert!(matches!(
            msgs.as_slice(),
            [ServerMsg::Error {
                code: ErrorCode::Banned,
                ..
            }]
        ));
        let (_, queue) = api(node.addr, "GET", "/admin/api/reports", None).await;
        assert_eq!(queue[0]["id"], report.as_str());
        let (_, bans) = api(node.addr, "GET", "/admin/api/bans", None).await;
        assert_eq!(bans[0]["id"], issued["id"]);
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
