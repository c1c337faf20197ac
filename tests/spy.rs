//! Spy mode over real WebSocket clients: a spy asks a question, two strangers discuss it,
//! the spy watches and cannot write, and one stranger leaving ends the chat for all three.

mod common;

use common::{generous_server, join_with as join, Client};
use tandem_ids::ChatId;
use tandem_proto::{ClientMsg, EndReason, ErrorCode, Matched, ServerMsg, SpyRole};

async fn spy_joins(client: &mut Client, question: &str) {
    client
        .send(&join(|j| {
            j.spy = true;
            j.question = Some(question.into());
        }))
        .await;
    assert_eq!(client.recv().await, ServerMsg::Waiting);
}

async fn discusser_joins(client: &mut Client) {
    client.send(&join(|j| j.spy_ok = true)).await;
    assert_eq!(client.recv().await, ServerMsg::Waiting);
}

/// A spy and two discussers, grouped: (spy, stranger 1, stranger 2, their `matched`).
async fn group(addr: std::net::SocketAddr) -> (Client, Client, Client, [Matched; 3]) {
    let mut spy = Client::connect(addr).await;
    let mut first = Client::connect(addr).await;
    let mut second = Client::connect(addr).await;
    discusser_joins(&mut first).await;
    spy_joins(&mut spy, "Cats or dogs?").await;
    discusser_joins(&mut second).await;
    let ms = spy.matched().await;
    let m1 = first.matched().await;
    let m2 = second.matched().await;
    (spy, first, second, [ms, m1, m2])
}

#[actix_rt::test]
async fn a_spy_watches_two_strangers_discuss_its_question() {
    let server = generous_server();
    let (mut spy, mut first, mut second, [ms, m1, m2]) = group(server.addr).await;
    assert!(
        ms.chat == m1.chat && m1.chat == m2.chat,
        "one chat for three"
    );
    let chat = ms.chat;
    let spy_info = ms.spy.as_ref().expect("the spy is told its role");
    assert_eq!(spy_info.role, SpyRole::Spy);
    assert_eq!(spy_info.question, "Cats or dogs?");
    assert_eq!(spy_info.strangers.len(), 2);
    for m in [&m1, &m2] {
        let info = m.spy.as_ref().expect("strangers see the question");
        assert_eq!(info.role, SpyRole::Discuss);
        assert_eq!(info.question, "Cats or dogs?");
        assert!(info.strangers.is_empty());
    }
    assert!(m1.initiator ^ m2.initiator);

    // The strangers talk to each other; the spy sees both, numbered as in
    // `matched.spy.strangers` (stranger 1 is the one who starts).
    let from_first = if m1.initiator { 1 } else { 2 };
    let from_second = 3 - from_first;
    first.say(chat, "dogs, obviously").await;
    assert_eq!(
        second.recv().await,
        ServerMsg::Msg {
            chat,
            text: "dogs, obviously".into()
        }
    );
    assert_eq!(
        spy.recv().await,
        ServerMsg::SpyMsg {
            chat,
            from: from_first,
            text: "dogs, obviously".into()
        }
    );
    second.send(&ClientMsg::Typing { chat, on: true }).await;
    second.say(chat, "cats!").await;
    assert_eq!(first.recv().await, ServerMsg::Typing { chat, on: true });
    assert_eq!(
        first.recv().await,
        ServerMsg::Msg {
            chat,
            text: "cats!".into()
        }
    );
    // Lines of one stranger reach the spy in order.
    assert_eq!(
        [spy.recv().await, spy.recv().await],
        [
            ServerMsg::SpyTyping {
                chat,
                from: from_second,
                on: true
            },
            ServerMsg::SpyMsg {
                chat,
                from: from_second,
                text: "cats!".into()
            },
        ]
    );

    // The spy cannot write, and nothing reaches the strangers.
    spy.say(chat, "I am the spy").await;
    spy.expect_error(ErrorCode::SpyCannotWrite).await;
    assert!(first.drain().await.is_empty());
    assert!(second.drain().await.is_empty());

    // One stranger skips: the chat ends for all three.
    second.send(&ClientMsg::Next).await;
    assert_ended(&mut second, chat, EndReason::Skipped).await;
    assert_eq!(second.recv().await, ServerMsg::Waiting);
    assert_ended(&mut first, chat, EndReason::PartnerSkipped).await;
    assert_ended(&mut spy, chat, EndReason::PartnerSkipped).await;
}

async fn assert_ended(client: &mut Client, chat: ChatId, reason: EndReason) {
    assert_eq!(client.recv().await, ServerMsg::Ended { chat, reason });
}

#[actix_rt::test]
async fn the_strangers_chat_on_when_the_spy_leaves() {
    let server = generous_server();
    let (mut spy, mut first, mut second, [ms, ..]) = group(server.addr).await;
    let chat = ms.chat;
    spy.send(&ClientMsg::Leave).await;
    assert_ended(&mut spy, chat, EndReason::Left).await;
    first.say(chat, "still here?").await;
    assert_eq!(
        second.recv().await,
        ServerMsg::Msg {
            chat,
            text: "still here?".into()
        }
    );
    // The departed spy sees nothing more of them.
    assert!(spy.drain().await.is_empty());
    // And a spy that disconnects mid-chat is as harmless.
    drop(spy);
    second.say(chat, "yes").await;
    assert_eq!(
        first.recv().await,
        ServerMsg::Msg {
            chat,
            text: "yes".into()
        }
    );
}

#[actix_rt::test]
async fn spy_mode_users_never_meet_ordinary_users() {
    let server = generous_server();
    let mut ordinary = Client::connect(server.addr).await;
    let mut discusser = Client::connect(server.addr).await;
    let mut spy = Client::connect(server.addr).await;
    ordinary.join().await;
    discusser_joins(&mut discusser).await;
    spy_joins(&mut spy, "Is a hot dog a sandwich?").await;
    // One discusser is not enough for a group, and the ordinary user is not one.
    assert!(ordinary.drain().await.is_empty());
    assert!(discusser.drain().await.is_empty());
    assert!(spy.drain().await.is_empty());
    // A spy without a question is refused with a typed error.
    let mut careless = Client::connect(server.addr).await;
    careless.send(&join(|j| j.spy = true)).await;
    careless.expect_error(ErrorCode::InvalidValue).await;
}
