//! Pairing, chatting and skipping over real WebSockets against an in-process node.

mod common;

use common::{join, pair, start_server, start_server_with, test_args, Client};
use tandem_proto::{ClientMsg, Codec, EndReason, ErrorCode, Join, ServerMsg, SignalData};
use tokio_tungstenite::tungstenite::Message;

/// An issued client id: 32 hex digits, a dot, a 22-character signature.
fn issued(id: &str) -> bool {
    let (random, signature) = id.split_once('.').unwrap_or_default();
    random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()) && signature.len() == 22
}

#[actix_rt::test]
async fn welcome_comes_first_with_a_session_and_a_client_id() {
    let server = start_server();
    let a = Client::connect(server.addr).await;
    let b = Client::connect(server.addr).await;
    assert_eq!(a.welcome.proto, 1);
    assert_ne!(a.welcome.session, b.welcome.session);
    assert!(issued(&a.welcome.client_id), "{}", a.welcome.client_id);
    assert_ne!(a.welcome.client_id, b.welcome.client_id);
    assert_eq!(a.welcome.limits.max_text_chars, 2000);
    server.shutdown().await.unwrap();
}

/// Connects to `/ws` with this query and these headers: the `welcome`'s client id and the
/// `Set-Cookie` answered, if any.
async fn connect_as(
    addr: std::net::SocketAddr,
    query: &str,
    headers: &[(&str, &str)],
) -> (String, Option<String>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws{query}")
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = name.parse().unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    let ServerMsg::Welcome(welcome) = Codec::Json.decode_text(first.to_text().unwrap()).unwrap()
    else {
        panic!("welcome first")
    };
    let cookie = response.headers().get("set-cookie");
    (
        welcome.client_id,
        cookie.map(|c| c.to_str().unwrap().to_owned()),
    )
}

#[actix_rt::test]
async fn an_issued_client_id_is_kept_and_a_forged_one_replaced() {
    let server = start_server();
    let (id, cookie) = connect_as(server.addr, "", &[]).await;
    assert!(issued(&id));
    let cookie = cookie.expect("a new client gets the cookie");
    assert!(cookie.starts_with(&format!("tandem_id={id};")), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    // Sent back, by the query or by the cookie, it is kept.
    let (again, cookie) = connect_as(server.addr, &format!("?client_id={id}"), &[]).await;
    assert_eq!(again, id);
    assert!(cookie.unwrap().starts_with(&format!("tandem_id={id};")));
    let by_cookie = format!("tandem_id={id}");
    let (again, cookie) = connect_as(server.addr, "", &[("cookie", &by_cookie)]).await;
    assert_eq!(
        (again.as_str(), cookie),
        (id.as_str(), None),
        "not set again"
    );

    // Made up, or altered by one character: a fresh id, in welcome and in the cookie.
    let mut altered = id.clone();
    altered.replace_range(0..1, if id.starts_with('a') { "b" } else { "a" });
    for forged in ["keep-me_42".to_owned(), altered] {
        let (fresh, cookie) = connect_as(server.addr, &format!("?client_id={forged}"), &[]).await;
        assert!(
            issued(&fresh) && fresh != forged && fresh != id,
            "{forged} -> {fresh}"
        );
        assert!(cookie.unwrap().starts_with(&format!("tandem_id={fresh};")));
    }
    // Behind a TLS-terminating proxy the cookie is Secure.
    let (_, cookie) = connect_as(server.addr, "", &[("x-forwarded-proto", "https")]).await;
    assert!(cookie.unwrap().contains("; Secure"));
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn two_users_share_a_chat_and_exactly_one_is_initiator() {
    let server = start_server();
    let mut a = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;
    a.join().await;
    b.join().await;
    let ma = a.matched().await;
    let mb = b.matched().await;
    assert_eq!(ma.chat, mb.chat);
    assert!(ma.initiator ^ mb.initiator, "exactly one initiator");
    assert_eq!(ma.partner.country, "ZZ");
    assert!(ma.common_interests.is_empty());
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn text_and_video_users_never_meet() {
    let server = start_server();
    let mut text = Client::connect(server.addr).await;
    let mut video = Client::connect(server.addr).await;
    let mut video2 = Client::connect(server.addr).await;
    text.join().await;
    video
        .send(&ClientMsg::Join(Join {
            mode: Some("video".into()),
            adult: true,
            ..Join::default()
        }))
        .await;
    assert_eq!(video.recv().await, ServerMsg::Waiting);
    video2
        .send(&ClientMsg::Join(Join {
            mode: Some("video".into()),
            adult: true,
            ..Join::default()
        }))
        .await;
    assert_eq!(video2.recv().await, ServerMsg::Waiting);
    let chat = video2.matched().await.chat;
    assert_eq!(video.matched().await.chat, chat);
    assert!(text.drain().await.is_empty(), "the text user still waits");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn messages_typing_and_signals_reach_the_partner_in_order() {
    let server = start_server_with(tandem_server::config::ServeArgs {
        msgs_per_sec: 1000,
        frames_per_sec: 1000,
        ..test_args()
    });
    let (mut a, mut b, chat) = pair(server.addr).await;
    a.send(&ClientMsg::Typing { chat, on: true }).await;
    for n in 0..200 {
        a.say(chat, &format!("line {n}")).await;
    }
    let offer =
        SignalData::from_value(&serde_json::json!({"type": "offer", "sdp": "v=0\r\n"})).unwrap();
    a.send(&ClientMsg::Signal {
        chat,
        data: offer.clone(),
    })
    .await;
    assert_eq!(b.recv().await, ServerMsg::Typing { chat, on: true });
    for n in 0..200 {
        assert_eq!(
            b.recv().await,
            ServerMsg::Msg {
                chat,
                text: format!("line {n}")
            }
        );
    }
    assert_eq!(b.recv().await, ServerMsg::Signal { chat, data: offer });
    assert!(a.drain().await.is_empty(), "nothing echoes to the sender");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_signal_reaches_the_partner_byte_for_byte_and_oversized_or_deep_ones_are_refused() {
    let server = start_server();
    let (mut a, mut b, chat) = pair(server.addr).await;
    let mut bincode = Client::connect_with(server.addr, Codec::Bincode).await;
    let chat_json = serde_json::to_string(&chat).unwrap();
    let signal = |data: &str| {
        Message::text(format!(
            r#"{{"type":"signal","chat":{chat_json},"data":{data}}}"#
        ))
    };
    // Spacing, key order and nesting as the sender wrote them: relayed, not re-serialised.
    let data = r#"{ "type":"offer",  "sdp" : "v=0\r\n", "z": [[[[{"a": [1, 2 ]}]]]], "b": 1 }"#;
    a.send_raw(signal(data)).await;
    let ServerMsg::Signal {
        chat: got,
        data: relayed,
    } = b.recv().await
    else {
        panic!("a signal");
    };
    assert_eq!((got, relayed.get()), (chat, data));
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    a.send_raw(signal(&nested(tandem_proto::MAX_SIGNAL_DEPTH + 1)))
        .await;
    let message = a.expect_error(ErrorCode::InvalidValue).await;
    assert!(message.contains("nested"), "{message}");
    let big = format!("\"{}\"", "a".repeat(tandem_proto::MAX_SIGNAL_BYTES));
    a.send_raw(signal(&big)).await;
    let message = a.expect_error(ErrorCode::InvalidValue).await;
    assert!(message.contains("bytes"), "{message}");
    a.send_raw(signal(&nested(tandem_proto::MAX_SIGNAL_DEPTH)))
        .await;
    let ServerMsg::Signal { data: relayed, .. } = b.recv().await else {
        panic!("a signal");
    };
    assert_eq!(relayed.get(), nested(tandem_proto::MAX_SIGNAL_DEPTH));
    assert!(
        b.drain().await.is_empty(),
        "nothing refused reached the partner"
    );
    // A bincode client's signal is checked the same way.
    bincode.join().await;
    let mut c = Client::connect(server.addr).await;
    c.join().await;
    let chat = bincode.matched().await.chat;
    assert_eq!(c.matched().await.chat, chat);
    let frame = |data: String| {
        let frame = bincode::encode_to_vec((5u32, chat, data), bincode::config::standard());
        Message::binary(frame.unwrap())
    };
    bincode
        .send_raw(frame(nested(tandem_proto::MAX_SIGNAL_DEPTH + 1)))
        .await;
    let message = bincode.expect_error(ErrorCode::BadFrame).await;
    assert!(message.contains("nested"), "{message}");
    bincode.send_raw(frame("[ 1 ]".to_owned())).await;
    let ServerMsg::Signal { data: relayed, .. } = c.recv().await else {
        panic!("a signal");
    };
    assert_eq!(relayed.get(), "[ 1 ]");
    assert!(c.drain().await.is_empty());
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn next_requeues_the_skipper_and_frees_the_partner() {
    let server = start_server();
    let (mut a, mut b, chat) = pair(server.addr).await;
    a.send(&ClientMsg::Next).await;
    assert_eq!(
        a.recv().await,
        ServerMsg::Ended {
            chat,
            reason: EndReason::Skipped
        }
    );
    assert_eq!(a.recv().await, ServerMsg::Waiting);
    assert_eq!(
        b.recv().await,
        ServerMsg::Ended {
            chat,
            reason: EndReason::PartnerSkipped
        }
    );
    // The partner is idle, not waiting: a newcomer meets the skipper.
    let mut c = Client::connect(server.addr).await;
    c.join().await;
    let mc = c.matched().await;
    assert_eq!(a.matched().await.chat, mc.chat);
    assert_ne!(mc.chat, chat);
    assert!(b.drain().await.is_empty(), "the skipped partner stays idle");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn auto_reroll_requeues_the_skipped_partner_at_once() {
    let server = start_server();
    let mut a = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;
    a.join().await;
    b.send(&ClientMsg::Join(Join {
        adult: true,
        auto_reroll: true,
        ..Join::default()
    }))
    .await;
    assert_eq!(b.recv().await, ServerMsg::Waiting);
    let chat = a.matched().await.chat;
    b.matched().await;
    a.send(&ClientMsg::Leave).await;
    assert_eq!(
        a.recv().await,
        ServerMsg::Ended {
            chat,
            reason: EndReason::Left
        }
    );
    assert_eq!(
        b.recv().await,
        ServerMsg::Ended {
            chat,
            reason: EndReason::PartnerLeft
        }
    );
    assert_eq!(b.recv().await, ServerMsg::Waiting);
    let mut c = Client::connect(server.addr).await;
    c.join().await;
    assert_eq!(b.matched().await.chat, c.matched().await.chat);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_skipper_meets_someone_new_before_the_one_it_skipped() {
    let server = start_server();
    // c waits first; then a and b pair up; then b (auto re-roll) is skipped by a.
    let (mut a, mut b, chat) = pair(server.addr).await;
    let mut c = Client::connect(server.addr).await;
    c.join().await;
    b.send(&ClientMsg::Join(Join {
        adult: true,
        auto_reroll: true,
        ..Join::default()
    }))
    .await;
    b.expect_error(ErrorCode::AlreadyInChat).await;
    a.send(&ClientMsg::Next).await;
    a.recv().await; // ended
    a.recv().await; // waiting
    let ma = a.matched().await;
    assert_eq!(c.matched().await.chat, ma.chat, "a meets c, not b again");
    assert_eq!(
        b.recv().await,
        ServerMsg::Ended {
            chat,
            reason: EndReason::PartnerSkipped
        }
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_line_for_a_finished_chat_is_dropped_as_stale() {
    let server = start_server();
    let (mut a, mut b, chat) = pair(server.addr).await;
    let mut c = Client::connect(server.addr).await;
    c.join().await;
    a.send(&ClientMsg::Next).await;
    a.recv().await; // ended
    a.recv().await; // waiting
    let new_chat = a.matched().await.chat;
    c.matched().await;
    // A line still written for the old chat must not reach the new stranger.
    a.say(chat, "meant for b").await;
    a.expect_error(ErrorCode::StaleChat).await;
    b.recv().await; // ended
    b.say(chat, "too late").await;
    b.expect_error(ErrorCode::StaleChat).await;
    a.say(new_chat, "hello c").await;
    assert_eq!(
        c.recv().await,
        ServerMsg::Msg {
            chat: new_chat,
            text: "hello c".into()
        }
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn chat_messages_outside_a_chat_are_refused() {
    let server = start_server();
    let mut a = Client::connect(server.addr).await;
    let chat = tandem_ids::ChatId(7);
    a.say(chat, "anyone?").await;
    a.expect_error(ErrorCode::NotInChat).await;
    a.send(&ClientMsg::Typing { chat, on: true }).await;
    a.expect_error(ErrorCode::NotInChat).await;
    a.send(&ClientMsg::Next).await;
    a.expect_error(ErrorCode::NotJoined).await;
    a.send(&ClientMsg::Join(Join::default())).await;
    a.expect_error(ErrorCode::AdultRequired).await;
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn join_during_a_chat_is_refused() {
    let server = start_server();
    let (mut a, _b, _) = pair(server.addr).await;
    a.send(&join()).await;
    a.expect_error(ErrorCode::AlreadyInChat).await;
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn leaving_the_wait_takes_the_user_out_of_the_pool() {
    let server = start_server();
    let mut a = Client::connect(server.addr).await;
    a.join().await;
    a.send(&ClientMsg::Leave).await;
    assert_eq!(a.recv().await, ServerMsg::Idle);
    let (_b, _c, _) = pair(server.addr).await;
    assert!(
        a.drain().await.is_empty(),
        "the user who left was not paired"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_closed_connection_ends_the_chat_for_the_partner() {
    let server = start_server();
    let (a, mut b, chat) = pair(server.addr).await;
    drop(a);
    assert_eq!(
        b.recv().await,
        ServerMsg::Ended {
            chat,
            reason: EndReason::PartnerDisconnected
        }
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_user_who_disconnects_while_waiting_is_never_paired() {
    let server = start_server();
    let mut ghost = Client::connect(server.addr).await;
    ghost.join().await;
    ghost.ws.close(None).await.unwrap();
    drop(ghost);
    // Both newcomers must meet each other, not the ghost. Whichever order the disconnect
    // and the joins reach the shard in, neither may be left talking to nobody.
    let (mut b, mut c, chat) = pair(server.addr).await;
    b.say(chat, "hi").await;
    assert_eq!(
        c.recv().await,
        ServerMsg::Msg {
            chat,
            text: "hi".into()
        }
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn bincode_and_json_users_chat_with_each_other() {
    let server = start_server();
    let mut a = Client::connect_with(server.addr, Codec::Bincode).await;
    let mut b = Client::connect(server.addr).await;
    assert_eq!(a.welcome.proto, 1);
    a.join().await;
    b.join().await;
    let chat = a.matched().await.chat;
    assert_eq!(b.matched().await.chat, chat);
    a.say(chat, "from bincode").await;
    assert_eq!(
        b.recv().await,
        ServerMsg::Msg {
            chat,
            text: "from bincode".into()
        }
    );
    b.say(chat, "from json").await;
    assert_eq!(
        a.recv().await,
        ServerMsg::Msg {
            chat,
            text: "from json".into()
        }
    );
    server.shutdown().await.unwrap();
}
