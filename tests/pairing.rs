//! Pairing, chatting and skipping over real WebSockets against an in-process node.

mod common;

use common::{join, pair, start_server, start_server_with, test_args, Client};
use tandem::protocol::{ClientMsg, Codec, EndReason, ErrorCode, Join, ServerMsg, SignalData};

#[actix_rt::test]
async fn welcome_comes_first_with_a_session_and_a_client_id() {
    let server = start_server();
    let a = Client::connect(server.addr).await;
    let b = Client::connect(server.addr).await;
    assert_eq!(a.welcome.proto, 1);
    assert_ne!(a.welcome.session, b.welcome.session);
    assert_eq!(a.welcome.client_id.len(), 32);
    assert_eq!(a.welcome.limits.max_text_chars, 2000);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_client_id_sent_back_is_kept() {
    let server = start_server();
    let url = format!("ws://{}/ws?client_id=keep-me_42", server.addr);
    let (mut ws, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    let ServerMsg::Welcome(welcome) = Codec::Json.decode_text(first.to_text().unwrap()).unwrap()
    else {
        panic!("welcome first")
    };
    assert_eq!(welcome.client_id, "keep-me_42");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("tandem_id=keep-me_42;"), "{cookie}");
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
    let server = start_server_with(tandem::config::ServeArgs {
        msgs_per_sec: 1000,
        frames_per_sec: 1000,
        ..test_args()
    });
    let (mut a, mut b, chat) = pair(server.addr).await;
    a.send(&ClientMsg::Typing { chat, on: true }).await;
    for n in 0..200 {
        a.say(chat, &format!("line {n}")).await;
    }
    let offer = SignalData(serde_json::json!({"type": "offer", "sdp": "v=0\r\n"}));
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
    let chat = tandem::ids::ChatId(7);
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
