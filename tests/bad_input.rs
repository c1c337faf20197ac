//! Bad input over real WebSockets: each gets a typed error or the named close code, the
//! connection survives where it can, and other users never notice.

mod common;

use std::time::Duration;

use common::{http_get, pair, start_server, start_server_with, test_args, Client};
use tandem_proto::{ClientMsg, ErrorCode, ServerMsg};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Sends a raw text frame and expects this error code back, then proves the connection
/// still works with a ping.
async fn refused(client: &mut Client, text: &str, code: ErrorCode) {
    client.send_raw(Message::text(text.to_owned())).await;
    client.expect_error(code).await;
    assert!(
        client.drain().await.is_empty(),
        "still usable after {code:?}"
    );
}

#[actix_rt::test]
async fn malformed_frames_get_typed_errors_and_the_connection_survives() {
    let server = start_server();
    let mut c = Client::connect(server.addr).await;
    refused(&mut c, "{not json", ErrorCode::BadJson).await;
    refused(&mut c, "", ErrorCode::BadJson).await;
    refused(&mut c, r#"{"type":"teleport"}"#, ErrorCode::UnknownType).await;
    refused(&mut c, r#"{"no_type":1}"#, ErrorCode::BadMessage).await;
    refused(
        &mut c,
        r#"{"type":"msg","chat":"01"}"#,
        ErrorCode::BadMessage,
    )
    .await;
    refused(
        &mut c,
        r#"{"type":"typing","chat":"01","on":"yes"}"#,
        ErrorCode::BadMessage,
    )
    .await;
    refused(
        &mut c,
        r#"{"type":"msg","chat":17,"text":"x"}"#,
        ErrorCode::BadMessage,
    )
    .await;
    refused(&mut c, "[1,2,3]", ErrorCode::BadMessage).await;
    refused(
        &mut c,
        r#"{"type":"join","adult":true,"mode":"audio"}"#,
        ErrorCode::InvalidValue,
    )
    .await;
    refused(
        &mut c,
        r#"{"type":"join","adult":true,"lang":"english!"}"#,
        ErrorCode::InvalidValue,
    )
    .await;
    refused(
        &mut c,
        r#"{"type":"join","adult":true,"want_gender":["f"]}"#,
        ErrorCode::EntitlementRequired,
    )
    .await;
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn deeply_nested_json_is_refused_without_harm() {
    let server = start_server();
    let mut c = Client::connect(server.addr).await;
    let deep = format!(
        r#"{{"type":"signal","chat":"01","data":{}{}}}"#,
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    refused(&mut c, &deep, ErrorCode::BadJson).await;
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn binary_garbage_on_a_json_connection_is_a_bad_frame() {
    let server = start_server();
    let mut c = Client::connect(server.addr).await;
    c.send_raw(Message::binary(vec![0xff, 0x00, 0x13, 0x37]))
        .await;
    c.expect_error(ErrorCode::BadFrame).await;
    assert!(c.drain().await.is_empty());
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn garbage_on_a_bincode_connection_is_a_bad_frame() {
    let server = start_server();
    let mut c = Client::connect_with(server.addr, tandem_proto::Codec::Bincode).await;
    c.send_raw(Message::binary(vec![0xfe, 0xff, 0xff])).await;
    c.expect_error(ErrorCode::BadFrame).await;
    c.send_raw(Message::text("{\"type\":\"ping\"}")).await;
    c.expect_error(ErrorCode::BadFrame).await;
    assert!(c.drain().await.is_empty());
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn an_over_long_message_is_refused_and_not_relayed() {
    let server = start_server();
    let (mut a, mut b, chat) = pair(server.addr).await;
    a.say(chat, &"é".repeat(2001)).await;
    a.expect_error(ErrorCode::TextTooLong).await;
    a.say(chat, &"é".repeat(2000)).await;
    let ServerMsg::Msg { text, .. } = b.recv().await else {
        panic!("the 2,000-character line arrives")
    };
    assert_eq!(text.chars().count(), 2000);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn an_oversized_frame_closes_with_1009_and_the_partner_is_told() {
    let server = start_server();
    let (mut a, mut b, chat) = pair(server.addr).await;
    let huge = format!(
        r#"{{"type":"msg","chat":"{chat}","text":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    a.send_raw(Message::text(huge)).await;
    let (_, code) = a.recv_until_close().await;
    assert_eq!(code, Some(CloseCode::Size));
    assert_eq!(
        b.recv().await,
        ServerMsg::Ended {
            chat,
            reason: tandem_proto::EndReason::PartnerDisconnected
        }
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn bursts_are_rate_limited_and_a_flood_is_closed_with_1008() {
    let server = start_server();
    let (mut a, mut b, chat) = pair(server.addr).await;
    let mut bystander_a = Client::connect(server.addr).await;
    let mut bystander_b = Client::connect(server.addr).await;
    bystander_a.join().await;
    bystander_b.join().await;
    let quiet_chat = bystander_a.matched().await.chat;
    bystander_b.matched().await;

    // 10 msg/s with a burst of 20: the 21st line in one go is refused.
    for n in 0..21 {
        a.say(chat, &format!("{n}")).await;
    }
    let mut relayed = 0;
    for _ in 0..20 {
        if let ServerMsg::Msg { .. } = b.recv().await {
            relayed += 1;
        }
    }
    assert_eq!(relayed, 20);
    a.expect_error(ErrorCode::RateLimited).await;

    // Keep going regardless: the server gives up on this client.
    for n in 0..400 {
        a.say(chat, &format!("flood {n}")).await;
    }
    let (before, code) = a.recv_until_close().await;
    assert_eq!(code, Some(CloseCode::Policy));
    assert!(before.iter().all(|m| matches!(
        m,
        ServerMsg::Error {
            code: ErrorCode::RateLimited,
            ..
        }
    )));

    // Nobody else noticed.
    bystander_a.say(quiet_chat, "still here?").await;
    assert_eq!(
        bystander_b.recv().await,
        ServerMsg::Msg {
            chat: quiet_chat,
            text: "still here?".into()
        }
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn next_and_join_are_rate_limited() {
    let server = start_server();
    let mut c = Client::connect(server.addr).await;
    c.join().await;
    // 5/s with a burst of 10; the join above took one.
    for _ in 0..9 {
        c.send(&ClientMsg::Next).await;
        assert_eq!(c.recv().await, ServerMsg::Waiting);
    }
    c.send(&ClientMsg::Next).await;
    c.expect_error(ErrorCode::RateLimited).await;
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_silent_client_is_dropped_by_the_heartbeat_and_its_partner_told() {
    let server = start_server_with(tandem_server::config::ServeArgs {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(500),
        ..test_args()
    });
    let (silent, mut b, chat) = pair(server.addr).await;
    // `silent` never reads again, so it never answers the server's pings; `b` reads (and so
    // answers) and must outlive it.
    assert_eq!(
        b.recv().await,
        ServerMsg::Ended {
            chat,
            reason: tandem_proto::EndReason::PartnerDisconnected
        }
    );
    assert!(b.drain().await.is_empty(), "the reading client is kept");
    drop(silent);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn shutdown_tells_every_user_and_closes_with_1012() {
    let server = start_server();
    let addr = server.addr;
    let (mut a, mut b, _) = pair(addr).await;
    let mut waiting = Client::connect(addr).await;
    waiting.join().await;
    let stopping = actix_rt::spawn(server.shutdown());
    for client in [&mut a, &mut b, &mut waiting] {
        let (before, code) = client.recv_until_close().await;
        assert_eq!(code, Some(CloseCode::Restart));
        assert!(
            before.iter().any(|m| matches!(
                m,
                ServerMsg::Error {
                    code: ErrorCode::ServerShutdown,
                    ..
                }
            )),
            "{before:?}"
        );
    }
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown finishes within a few seconds")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "stopped accepting"
    );
}

#[actix_rt::test]
async fn health_metrics_and_page_are_served() {
    let server = start_server();
    let (_a, _b, _) = pair(server.addr).await;
    let (status, body) = http_get(server.addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, metrics) = http_get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("tandem_users_online{node="), "{metrics}");
    assert!(
        metrics.contains("tandem_match_wait_seconds_bucket"),
        "{metrics}"
    );
    let matches = metrics
        .lines()
        .find(|l| l.starts_with("tandem_matches_total"))
        .unwrap();
    assert!(matches.ends_with(" 1"), "{matches}");
    let (status, page) = http_get(server.addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>tandem"), "{page}");
    assert!(page.contains("/app.js\""), "the chat page's script: {page}");
    server.shutdown().await.unwrap();
}
