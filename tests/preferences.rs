//! Matching preferences over real WebSockets: interests, their fallback, interests only,
//! the server-decided country and mutual country filters, and every invalid value.

mod common;

use std::time::Instant;

use common::{join_with, start_server, start_server_with, test_args, Client};
use serde_json::json;
use tandem_proto::{ClientMsg, ErrorCode, ServerMsg};
use tokio_tungstenite::tungstenite::Message;

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
    let server = start_server_with(tandem_server::config::ServeArgs {
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

mod premium {
    use tandem_server::entitlement::{unix_now, Claims, EntitlementKey, Feature};

    use super::*;

    const SECRET: &str = "test-entitlement-secret";

    fn token(features: &[Feature], college: Option<&str>, ttl_secs: i64) -> String {
        EntitlementKey::new(SECRET).sign(&Claims {
            exp: (unix_now() as i64 + ttl_secs) as u64,
            features: features.to_vec(),
            college: college.map(str::to_owned),
        })
    }

    fn premium_server() -> tandem_server::RunningServer {
        start_server_with(tandem_server::config::ServeArgs {
            entitlement_secret: Some(SECRET.into()),
            ..test_args()
        })
    }

    #[actix_rt::test]
    async fn the_gender_filter_needs_a_valid_entitlement() {
        let server = premium_server();
        let mut c = Client::connect(server.addr).await;
        let want = |entitlement: Option<String>| {
            join_with(|j| {
                j.gender = Some("f".into());
                j.want_gender = tags(&["m"]);
                j.entitlement = entitlement;
            })
        };
        let forged = EntitlementKey::new("not-the-secret").sign(&Claims {
            exp: unix_now() + 3600,
            features: vec![Feature::GenderFilter],
            college: None,
        });
        for attempt in [
            None,
            Some(forged),
            Some(token(&[Feature::GenderFilter], None, -10)),
            Some(token(&[Feature::College], Some("mit.edu"), 3600)),
            Some("v1.garbage.garbage".to_string()),
        ] {
            c.send(&want(attempt)).await;
            c.expect_error(ErrorCode::EntitlementRequired).await;
        }
        c.send(&join_with(|j| j.gender = Some("robot".into())))
            .await;
        c.expect_error(ErrorCode::InvalidValue).await;
        c.send(&want(Some(token(&[Feature::GenderFilter], None, 3600))))
            .await;
        assert_eq!(c.recv().await, ServerMsg::Waiting);
        server.shutdown().await.unwrap();
    }

    #[actix_rt::test]
    async fn gender_filters_are_mutual() {
        let server = premium_server();
        let mut picky = Client::connect(server.addr).await;
        let mut woman = Client::connect(server.addr).await;
        let mut man = Client::connect(server.addr).await;
        joined(
            &mut picky,
            join_with(|j| {
                j.gender = Some("f".into());
                j.want_gender = tags(&["m"]);
                j.entitlement = Some(token(&[Feature::GenderFilter], None, 3600));
            }),
        )
        .await;
        joined(&mut woman, join_with(|j| j.gender = Some("f".into()))).await;
        joined(&mut man, join_with(|j| j.gender = Some("m".into()))).await;
        let chat = picky.matched().await.chat;
        assert_eq!(man.matched().await.chat, chat);
        assert!(
            woman.drain().await.is_empty(),
            "the woman was not what picky asked for"
        );
        server.shutdown().await.unwrap();
    }

    #[actix_rt::test]
    async fn college_users_meet_only_college_users_and_see_the_college() {
        let server = premium_server();
        let mut student = Client::connect(server.addr).await;
        let mut plain = Client::connect(server.addr).await;
        let mut other = Client::connect(server.addr).await;
        let mut same = Client::connect(server.addr).await;
        joined(
            &mut student,
            join_with(|j| {
                j.college = true;
                j.same_college = true;
                j.entitlement = Some(token(&[Feature::College], Some("MIT.edu"), 3600));
            }),
        )
        .await;
        joined(&mut plain, join_with(|_| {})).await;
        joined(
            &mut other,
            join_with(|j| {
                j.college = true;
                j.entitlement = Some(token(&[Feature::College], Some("ox.ac.uk"), 3600));
            }),
        )
        .await;
        joined(
            &mut same,
            join_with(|j| {
                j.college = true;
                j.entitlement = Some(token(&[Feature::College], Some("mit.edu"), 3600));
            }),
        )
        .await;
        let ms = student.matched().await;
        let mm = same.matched().await;
        assert_eq!(ms.chat, mm.chat);
        assert_eq!(ms.partner.college.as_deref(), Some("mit.edu"));
        assert_eq!(mm.partner.college.as_deref(), Some("mit.edu"));
        // College mode without an entitlement, and same_college without college, are refused.
        let mut c = Client::connect(server.addr).await;
        c.send(&join_with(|j| j.college = true)).await;
        c.expect_error(ErrorCode::EntitlementRequired).await;
        c.send(&join_with(|j| j.same_college = true)).await;
        c.expect_error(ErrorCode::InvalidValue).await;
        // The plain user and the Oxford student (who does not insist on the same college
        // but meets only college users) are still waiting.
        assert!(plain.drain().await.is_empty());
        assert!(other.drain().await.is_empty());
        server.shutdown().await.unwrap();
    }
}

mod geoip {
    use common::connect_from;

    use super::*;

    fn geoip_args() -> tandem_server::config::ServeArgs {
        tandem_server::config::ServeArgs {
            geoip: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("crates/tandem-server/tests/data/geoip-test.mmdb"),
            ),
            ..test_args()
        }
    }

    #[actix_rt::test]
    async fn the_country_comes_from_the_geoip_database_by_peer_address() {
        // The test database maps 127.0.0.1 to DE and 127.0.0.2 to FR (crates/tandem-server/tests/data/make_geoip.py).
        let server = start_server_with(geoip_args());
        let mut german = connect_from(server.addr, "127.0.0.1".parse().unwrap()).await;
        let mut french = connect_from(server.addr, "127.0.0.2".parse().unwrap()).await;
        let mut nowhere = connect_from(server.addr, "127.0.0.3".parse().unwrap()).await;
        joined(&mut german, join_with(|j| j.countries = tags(&["FR"]))).await;
        joined(&mut nowhere, join_with(|_| {})).await;
        joined(&mut french, join_with(|_| {})).await;
        assert_eq!(german.matched().await.partner.country, "FR");
        assert_eq!(french.matched().await.partner.country, "DE");
        assert!(
            nowhere.drain().await.is_empty(),
            "an unknown (ZZ) user is not in FR"
        );
        server.shutdown().await.unwrap();
    }

    #[actix_rt::test]
    async fn a_trusted_header_wins_over_the_database() {
        let server = start_server_with(tandem_server::config::ServeArgs {
            country_header: Some("X-Country".into()),
            ..geoip_args()
        });
        let mut a = Client::connect_with_headers(server.addr, &[("X-Country", "JP")]).await;
        let mut b = Client::connect(server.addr).await;
        joined(&mut a, join_with(|_| {})).await;
        joined(&mut b, join_with(|_| {})).await;
        assert_eq!(b.matched().await.partner.country, "JP");
        assert_eq!(
            a.matched().await.partner.country,
            "DE",
            "no header: the database"
        );
        server.shutdown().await.unwrap();
    }

    #[actix_rt::test]
    async fn a_weak_entitlement_secret_stops_the_node_from_starting() {
        for secret in ["", "short"] {
            let args = tandem_server::config::ServeArgs {
                entitlement_secret: Some(secret.into()),
                ..test_args()
            };
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let err = tandem_server::RunningServer::start(&args, listener)
                .err()
                .expect("refused");
            assert!(err.to_string().contains("entitlement-secret"), "{err}");
        }
    }

    #[actix_rt::test]
    async fn a_missing_database_stops_the_node_from_starting() {
        let args = tandem_server::config::ServeArgs {
            geoip: Some("/nonexistent/geoip.mmdb".into()),
            ..test_args()
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = tandem_server::RunningServer::start(&args, listener)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("GeoIP"), "{err}");
    }
}
