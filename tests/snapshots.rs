//! Video snapshot moderation against a real HTTP server standing in for the operator's
//! classifier: a cleared still leaves nothing stored; a flagged one ends the chat, lands in
//! the review queue, opens only with the operator's key, and neither the database file nor
//! the NATS bucket holds the image; a high score bans; the retention purges it; a classifier
//! that times out fails open or closed as the operator chose.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::classifier::{classifier, jpeg, Seen};
use common::nats::NatsServer;
use common::{http_request, join_with, start_server_with, test_args, Client, STEP};
use serde_json::Value;
use tandem_ids::ChatId;
use tandem_proto::{EndReason, ErrorCode, ServerMsg};
use tandem_server::abuse::snapshots::{FailurePolicy, Sealed, Vault};
use tandem_server::config::ServeArgs;
use tandem_server::moderation::store::{Bucket, Embedded, Kv};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "token-of-the-snapshot-tests-01";

fn key() -> String {
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

fn args(webhook: &str) -> ServeArgs {
    let mut args = test_args();
    args.moderation_webhook = Some(webhook.to_owned());
    args.snapshot_key = Some(key());
    args.snapshot_timeout = Duration::from_secs(1);
    args.admin_token = vec![format!("mo={TOKEN}")];
    args
}

/// Two users in a video chat on a node that asks stills.
async fn video_pair(addr: SocketAddr) -> (Client, Client, ChatId) {
    let pair = video_pair_unchecked(addr).await;
    assert_eq!(pair.0.welcome.limits.snapshot_interval_ms, 10_000);
    pair
}

/// Two users in a video chat.
async fn video_pair_unchecked(addr: SocketAddr) -> (Client, Client, ChatId) {
    let video = || join_with(|j| j.mode = Some("video".into()));
    let mut a = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    a.send(&video()).await;
    assert_eq!(a.recv().await, ServerMsg::Waiting);
    b.send(&video()).await;
    let chat = matched(&mut a).await;
    assert_eq!(matched(&mut b).await, chat);
    (a, b, chat)
}

async fn matched(client: &mut Client) -> ChatId {
    loop {
        match client.recv().await {
            ServerMsg::Matched(m) => return m.chat,
            ServerMsg::Waiting => {}
            other => panic!("expected matched, got {other:?}"),
        }
    }
}

/// Sends a still as a JSON connection does: a binary frame.
async fn send_still(client: &mut Client, chat: ChatId, image: &[u8]) {
    let frame = tandem_proto::encode_snapshot_frame(chat, image);
    client.send_raw(Message::binary(frame)).await;
}

async fn metric(addr: SocketAddr, line: &str) -> u64 {
    let (_, metrics) = common::http_get(addr, "/metrics").await;
    metrics
        .lines()
        .find(|l| !l.starts_with('#') && l.contains(line))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

async fn until_metric(addr: SocketAddr, line: &str, at_least: u64) {
    let deadline = tokio::time::Instant::now() + 2 * STEP;
    while metric(addr, line).await < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line} < {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET path` with the moderators' token: status, head (lower case) and the body's bytes.
async fn api(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

/// Reads the node's database file once the node let go of it.
async fn embedded(dir: &std::path::Path) -> Embedded {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        match Embedded::open(dir) {
            Ok(store) => return store,
            Err(err) => assert!(std::time::Instant::now() < deadline, "{err}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_cleared_still_leaves_nothing_and_the_chat_goes_on() {
    let seen = Arc::new(Seen::default());
    let args = args(&classifier(Arc::clone(&seen)).await);
    let dir = args.data_dir.clone();
    let server = start_server_with(args);
    let (mut a, mut b, chat) = video_pair(server.addr).await;
    send_still(&mut a, chat, &jpeg(b"calm")).await;
    until_metric(server.addr, "outcome=\"cleared\"", 1).await;
    assert_eq!(seen.media_types.lock().unwrap().as_slice(), ["image/jpeg"]);
    // Too soon after the last one, not an image, too wide: refused before any classifier.
    send_still(&mut a, chat, &jpeg(b"calm")).await;
    assert!(matches!(
        a.recv().await,
        ServerMsg::Error {
            code: ErrorCode::RateLimited,
            ..
        }
    ));
    a.say(chat, "still here").await;
    assert!(matches!(b.recv().await, ServerMsg::Msg { .. }));
    assert_eq!(seen.requests.load(Ordering::Relaxed), 1);
    server.shutdown().await.unwrap();
    let store = embedded(&dir).await;
    assert_eq!(store.list(Bucket::Snapshots).await.unwrap(), Vec::new());
    assert_eq!(store.list(Bucket::Reports).await.unwrap(), Vec::new());
}

#[actix_rt::test]
async fn a_flagged_still_ends_the_chat_and_waits_for_review_encrypted() {
    let seen = Arc::new(Seen::default());
    let args = args(&classifier(Arc::clone(&seen)).await);
    let dir = args.data_dir.clone();
    let server = start_server_with(args);
    let addr = server.addr;
    let (mut a, mut b, chat) = video_pair(addr).await;
    let image = jpeg(b"NSFW");
    send_still(&mut a, chat, &image).await;
    assert!(matches!(
        b.recv().await,
        ServerMsg::Ended {
            reason: EndReason::PartnerLeft,
            ..
        }
    ));
    let message = a.expect_error(ErrorCode::Filtered).await;
    assert!(message.contains("flagged"), "{message}");

    let (_, _, body) = api(addr, "/admin/api/reports").await;
    let reports: Value = serde_json::from_slice(&body).unwrap();
    let report = &reports[0];
    assert_eq!(report["reported"]["client"], a.welcome.client_id);
    assert_eq!(report["reporters"][0]["client"], "classifier.snapshot");
    assert_eq!(report["reporters"][0]["reason"], "nudity");
    let path = format!(
        "/admin/api/reports/{}/snapshots",
        report["id"].as_str().unwrap()
    );
    let (_, _, body) = api(addr, &path).await;
    let listed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(listed[0]["classes"][1]["class"], "nudity", "{listed}");
    let url = listed[0]["url"].as_str().unwrap();
    let (status, head, shown) = api(addr, url).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: image/jpeg"), "{head}");
    assert_eq!(shown, image, "the moderator sees the still, decrypted");
    let (status, _, _) = http_request(addr, "GET", url, &[], None).await;
    assert_eq!(status, 401, "not without a token");
    let (_, _, audit) = api(addr, "/admin/api/audit").await;
    assert!(String::from_utf8_lossy(&audit).contains("view snapshot"));
    assert_eq!(metric(addr, "outcome=\"flagged\"").await, 1);
    server.shutdown().await.unwrap();

    // On disk: only ciphertext, which the operator's key opens and no other.
    let raw = std::fs::read(dir.join("moderation.redb")).unwrap();
    assert!(!raw.windows(4).any(|w| w == b"NSFW" || w == b"JFIF"));
    let store = embedded(&dir).await;
    let stored = store.list(Bucket::Snapshots).await.unwrap();
    assert_eq!(stored.len(), 1);
    let record: Value = serde_json::from_slice(&stored[0].1).unwrap();
    let sealed: Sealed = serde_json::from_value(record["sealed"].clone()).unwrap();
    assert_eq!(Vault::new(&key()).unwrap().open(&sealed).unwrap(), image);
    let other = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    assert!(Vault::new(&other).unwrap().open(&sealed).is_err());
}

#[actix_rt::test]
async fn a_still_scored_past_the_ban_score_bans_its_sender() {
    let seen = Arc::new(Seen::default());
    let server = start_server_with(args(&classifier(Arc::clone(&seen)).await));
    let (mut a, mut b, chat) = video_pair(server.addr).await;
    send_still(&mut a, chat, &jpeg(b"BAN!")).await;
    let (msgs, close) = a.recv_until_close().await;
    assert_eq!(close, Some(CloseCode::Policy));
    assert!(
        msgs.iter().any(|m| matches!(
            m,
            ServerMsg::Error {
                code: ErrorCode::Banned,
                ..
            }
        )),
        "{msgs:?}"
    );
    assert!(matches!(b.recv().await, ServerMsg::Ended { .. }));
    until_metric(server.addr, "tandem_snapshot_bans_total", 1).await;
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_flagged_still_is_purged_after_its_retention() {
    let seen = Arc::new(Seen::default());
    let mut args = args(&classifier(Arc::clone(&seen)).await);
    args.snapshot_retention = Duration::from_secs(1);
    args.purge_interval = Duration::from_millis(50);
    let dir = args.data_dir.clone();
    let server = start_server_with(args);
    let (mut a, _b, chat) = video_pair(server.addr).await;
    send_still(&mut a, chat, &jpeg(b"NSFW")).await;
    a.expect_error(ErrorCode::Filtered).await;
    until_metric(server.addr, "bucket=\"snapshots\"", 1).await;
    let (_, _, body) = api(server.addr, "/admin/api/reports").await;
    let reports: Value = serde_json::from_slice(&body).unwrap();
    let path = format!(
        "/admin/api/reports/{}/snapshots",
        reports[0]["id"].as_str().unwrap()
    );
    let (_, _, listed) = api(server.addr, &path).await;
    assert_eq!(listed, b"[]");
    server.shutdown().await.unwrap();
    let store = embedded(&dir).await;
    assert_eq!(store.list(Bucket::Snapshots).await.unwrap(), Vec::new());
}

#[actix_rt::test]
async fn a_classifier_that_times_out_fails_open_or_closed_as_the_operator_chose() {
    let seen = Arc::new(Seen::default());
    let url = classifier(Arc::clone(&seen)).await;
    for (failure, ends) in [(FailurePolicy::Open, false), (FailurePolicy::Closed, true)] {
        let mut args = args(&url);
        args.snapshot_failure = failure;
        let server = start_server_with(args);
        let (mut a, mut b, chat) = video_pair(server.addr).await;
        send_still(&mut a, chat, &jpeg(b"SLOW")).await;
        until_metric(server.addr, "outcome=\"timeout\"", 1).await;
        a.say(chat, "are you there").await;
        if ends {
            assert!(matches!(b.recv().await, ServerMsg::Ended { .. }));
            let message = a.expect_error(ErrorCode::Filtered).await;
            assert!(message.contains("could not be checked"), "{message}");
        } else {
            assert!(matches!(b.recv().await, ServerMsg::Msg { .. }));
        }
        server.shutdown().await.unwrap();
    }
}

#[actix_rt::test]
async fn in_a_cluster_the_bucket_holds_only_ciphertext() {
    let nats = NatsServer::start();
    let seen = Arc::new(Seen::default());
    let mut args = args(&classifier(Arc::clone(&seen)).await);
    args.cluster.nats = vec![nats.url()];
    args.cluster.cluster_name = "snaptest".into();
    args.id_secret = Some("the snapshot test cluster's secret".into());
    args.cluster.cluster_key = Some(common::CLUSTER_KEY.into());
    let server = start_server_with(args);
    let (mut a, _b, chat) = video_pair(server.addr).await;
    let image = jpeg(b"NSFW");
    send_still(&mut a, chat, &image).await;
    a.expect_error(ErrorCode::Filtered).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let bucket = jetstream
        .get_key_value("tandem_snaptest_snapshots")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + STEP;
    let value = loop {
        let mut keys = bucket.keys().await.unwrap();
        use futures_util::StreamExt;
        if let Some(Ok(key)) = keys.next().await {
            break bucket.get(&key).await.unwrap().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!value.windows(4).any(|w| w == b"NSFW" || w == b"JFIF"));
    let record: Value = serde_json::from_slice(&value).unwrap();
    let sealed: Sealed = serde_json::from_value(record["sealed"].clone()).unwrap();
    assert_eq!(Vault::new(&key()).unwrap().open(&sealed).unwrap(), image);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn stills_that_are_not_for_this_video_chat_or_not_an_image_get_typed_errors() {
    let seen = Arc::new(Seen::default());
    let server = start_server_with(args(&classifier(Arc::clone(&seen)).await));
    let (mut a, _b, chat) = video_pair(server.addr).await;
    let mut wide = jpeg(b"calm");
    let at = (wide.windows(2))
        .position(|w| w == [0xff, 0xc0])
        .expect("a frame header");
    wide[at + 7..at + 9].copy_from_slice(&640u16.to_be_bytes());
    let other_chat = ChatId(chat.0 ^ 1);
    for (frame, code) in [
        (b"GIF89a not a still".to_vec(), ErrorCode::InvalidValue),
        (wide, ErrorCode::InvalidValue),
        (jpeg(b"calm"), ErrorCode::StaleChat),
    ] {
        let target = if code == ErrorCode::StaleChat {
            other_chat
        } else {
            chat
        };
        send_still(&mut a, target, &frame).await;
        a.expect_error(code).await;
    }
    // A binary frame too short to hold a chat id and an image.
    a.send_raw(Message::binary(vec![1, 2, 3])).await;
    a.expect_error(ErrorCode::BadFrame).await;
    assert_eq!(
        seen.requests.load(Ordering::Relaxed),
        0,
        "no classifier saw them"
    );
    assert_eq!(metric(server.addr, "outcome=\"refused\"").await, 2);
    server.shutdown().await.unwrap();

    // A node without a classifier asks none, and takes none.
    let server = start_server_with(test_args());
    let (mut a, _b, chat) = video_pair_unchecked(server.addr).await;
    send_still(&mut a, chat, &jpeg(b"calm")).await;
    a.expect_error(ErrorCode::Unsupported).await;
    server.shutdown().await.unwrap();
}
