//! Matching preferences over real WebSockets: interests, their fallback, interests only,
//! the server-decided country and mutual country filters, and every invalid value.

mod common;

use std::time::Instant;

use common::{start_server, start_server_with, test_args, Client};
use serde_json::json;
use tandem::protocol::{ClientMsg, ErrorCode, Join, ServerMsg};
use tokio_tungstenite::tungstenite::Message;

fn join_with(f: impl FnOnce(&mut Join)) -> ClientMsg {
    let mut join = Join {
        adult: true,
        ..Join::default()
    };
    f(&mut join);
    ClientMsg::Join(join)
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| t.to_string()).collect()
}

async fn joined(client: &mut Client, msg: ClientMsg) {
    client.send(&msg).await;
    assert_eq!(client.recv().await, ServerMsg::Waiting);
}

#[actix_rt::test]
async fn users_sharing_an_interest_are_paired_and_both_told_the_overlap() {
    let server = start_server();
    let mut a = Client::connect(server.addr).await;
    let mut plain = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;
    joined(
        &mut a,
        join_with(|j| j.interests = tags(&["Music", "chess"])),
    )
    .await;
    // A user without interests does not meet `a` while `a` looks for a shared interest.
    joined(&mut plain, join_with(|_| {})).await;
    joined(
        &mut b,
        join_with(|j| j.interests = tags(&["art", " CHESS "])),
    )
    .await;
    let ma = a.matched().await;
    let mb = b.matched().await;
    assert_eq!(ma.chat, mb.chat);
    assert_eq!(ma.common_interests, ["chess"]);
    assert_eq!(mb.common_interests, ["chess"]);
    assert!(plain.drain().await.is_empty(), "the plain user still waits");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn without_a_shared_interest_the_user_falls_back_to_random_after_its_wait() {
    let server = start_server();
    let mut plain = Client::connect(server.addr).await;
    let mut keen = Client::connect(server.addr).await;
    joined(&mut plain, join_with(|_| {})).await;
    let joined_at = Instant::now();
    joined(
        &mut keen,
        join_with(|j| {
            j.interests = tags(&["knitting"]);
            j.interest_wait_ms = Some(300);
        }),
    )
    .await;
    let m = keen.matched().await;
    assert!(
        joined_at.elapsed().as_millis() >= 300,
        "fell back after {:?}, before its wait",
        joined_at.elapsed()
    );
    assert!(m.common_interests.is_empty());
    assert_eq!(plain.matched().await.chat, m.chat);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn interests_only_never_falls_back() {
    let server = start_server();
    let mut only = Client::connect(server.addr).await;
    let mut plain = Client::connect(server.addr).await;
    let mut fan = Client::connect(server.addr).await;
    joined(
        &mut only,
        join_with(|j| {
            j.interests = tags(&["knitting"]);
            j.interests_only = true;
            j.interest_wait_ms = Some(0);
        }),
    )
    .await;
    joined(&mut plain, join_with(|_| {})).await;
    joined(&mut fan, join_with(|j| j.interests = tags(&["knitting"]))).await;
    let m = only.matched().await;
    assert_eq!(fan.matched().await.chat, m.chat);
    assert_eq!(m.common_interests, ["knitting"]);
    assert!(
        plain.drain().await.is_empty(),
        "the plain user never met `only`"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_country_comes_from_the_trusted_header_and_filters_are_mutual() {
    let server = start_server_with(tandem::config::ServeArgs {
        country_header: Some("X-Country".into()),
        ..test_args()
    });
    let mut german = Client::connect_with_headers(server.addr, &[("X-Country", "de")]).await;
    let mut american = Client::connect_with_headers(server.addr, &[("X-Country", "US")]).await;
    let mut french = Client::connect_with_headers(server.addr, &[("X-Country", "FR")]).await;
    joined(
        &mut german,
        join_with(|j| j.countries = tags(&["FR", "AT"])),
    )
    .await;
    // The German accepts only France and Austria: the American waits.
    joined(&mut american, join_with(|_| {})).await;
    joined(&mut french, join_with(|_| {})).await;
    let mg = german.matched().await;
    let mf = french.matched().await;
    assert_eq!(mg.chat, mf.chat);
    assert_eq!(mg.partner.country, "FR");
    assert_eq!(mf.partner.country, "DE");
    assert!(american.drain().await.is_empty());
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_country_header_is_ignored_unless_the_operator_trusts_it() {
    let server = start_server();
    let mut a = Client::connect_with_headers(server.addr, &[("CF-IPCountry", "DE")]).await;
    let mut b = Client::connect(server.addr).await;
    joined(&mut a, join_with(|_| {})).await;
    joined(&mut b, join_with(|_| {})).await;
    assert_eq!(b.matched().await.partner.country, "ZZ");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn invalid_preferences_get_typed_errors() {
    let server = start_server();
    let mut c = Client::connect(server.addr).await;
    let many: Vec<String> = (0..21).map(|n| format!("tag{n}")).collect();
    let cases = [
        json!({"type": "join", "adult": true, "mode": "hologram"}),
        json!({"type": "join", "adult": true, "interests": many}),
        json!({"type": "join", "adult": true, "interests": ["x".repeat(41)]}),
        json!({"type": "join", "adult": true, "countries": ["DEU"]}),
        json!({"type": "join", "adult": true, "countries": ["12"]}),
        json!({"type": "join", "adult": true, "interest_wait_ms": 86_400_000u64}),
        json!({"type": "join", "adult": true, "lang": "x"}),
    ];
    for case in cases {
        c.send_raw(Message::text(case.to_string())).await;
        let message = c.expect_error(ErrorCode::InvalidValue).await;
        assert!(!message.is_empty());
    }
    c.send_raw(Message::text(
        json!({"type": "join", "adult": true, "interests": "music"}).to_string(),
    ))
    .await;
    c.expect_error(ErrorCode::BadMessage).await;
    assert!(
        c.drain().await.is_empty(),
        "nothing was queued by a refused join"
    );
    server.shutdown().await.unwrap();
}
