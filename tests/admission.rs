//! Admission at the WebSocket handshake over real sockets: the per-address cap on open
//! connections and on handshakes a second (429), the loopback exemption, addresses from the
//! trusted proxy header, and a full node (503), while `/healthz` keeps answering.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{http_get, start_server_with, test_args, try_handshake, STEP};
use tandem_server::config::ServeArgs;

/// The count of handshakes refused for `cause`, from `/metrics`.
async fn refused(addr: SocketAddr, cause: &str) -> u64 {
    let (_, metrics) = http_get(addr, "/metrics").await;
    let label = format!("cause=\"{cause}\"}}");
    metrics
        .lines()
        .find(|l| l.starts_with("tandem_handshakes_refused_total{") && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {cause} in {metrics}"))
}

fn limited(max_conns: u32, handshakes: u32) -> ServeArgs {
    let mut args = test_args();
    args.max_conns_per_ip = max_conns;
    args.max_handshakes_per_ip = handshakes;
    args.limit_loopback = true;
    args
}

#[actix_rt::test]
async fn an_address_at_its_cap_gets_429_while_healthz_answers_and_a_closed_one_frees_a_place() {
    let server = start_server_with(limited(4, 1000));
    let addr = server.addr;
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(try_handshake(addr, &[]).await.expect("within the cap"));
    }
    let (status, body) = try_handshake(addr, &[]).await.expect_err("over the cap");
    assert_eq!(status, 429);
    assert!(
        body.contains("too many connections from your address"),
        "{body}"
    );
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert_eq!(refused(addr, "per_ip_connections").await, 1);

    // One goes; its place is free once the node has seen it close.
    drop(open.pop());
    let deadline = Instant::now() + STEP;
    loop {
        match try_handshake(addr, &[]).await {
            Ok(ws) => {
                open.push(ws);
                break;
            }
            Err((429, _)) => assert!(Instant::now() < deadline, "the place was never freed"),
            Err(other) => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(open);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn handshakes_faster_than_the_rate_get_429_and_loopback_is_exempt_by_default() {
    // 2 a second: a burst of 6, then the rate.
    let server = start_server_with(limited(0, 2));
    let addr = server.addr;
    for _ in 0..6 {
        drop(try_handshake(addr, &[]).await.expect("within the burst"));
    }
    let (status, body) = try_handshake(addr, &[]).await.expect_err("over the rate");
    assert_eq!(status, 429);
    assert!(body.contains("slow down"), "{body}");
    assert_eq!(refused(addr, "per_ip_rate").await, 1);
    server.shutdown().await.unwrap();

    // Without --limit-loopback, a local load test is not capped.
    let mut args = limited(2, 2);
    args.limit_loopback = false;
    let server = start_server_with(args);
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(
            try_handshake(server.addr, &[])
                .await
                .expect("loopback is exempt"),
        );
    }
    drop(open);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn behind_a_trusted_proxy_each_client_address_has_its_own_cap() {
    let mut args = limited(2, 1000);
    args.limit_loopback = false;
    args.client_ip_header = Some("X-Forwarded-For".into());
    let server = start_server_with(args);
    let addr = server.addr;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let mut open = Vec::new();
    for ip in [
        "192.0.2.1",
        "192.0.2.1",
        "192.0.2.2",
        "2001:db8:5:5::1",
        "2001:db8:5:5::2",
    ] {
        open.push(
            try_handshake(addr, &from(ip))
                .await
                .expect("within each cap"),
        );
    }
    for ip in ["192.0.2.1", "2001:db8:5:5::9"] {
        let (status, _) = try_handshake(addr, &from(ip))
            .await
            .expect_err("that one's cap");
        assert_eq!(status, 429, "{ip}");
    }
    assert!(try_handshake(addr, &from("192.0.2.2")).await.is_ok());
    drop(open);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_full_node_answers_503_and_still_answers_healthz_and_metrics() {
    let mut args = test_args();
    args.max_users = Some(3);
    let server = start_server_with(args);
    let addr = server.addr;
    let mut open = Vec::new();
    for _ in 0..3 {
        let ws = try_handshake(addr, &[]).await.expect("room for three");
        open.push(ws);
    }
    // The sessions register as they start: wait until the node counts three.
    let deadline = Instant::now() + STEP;
    while server.node.registry().len() < 3 {
        assert!(Instant::now() < deadline, "three sessions never registered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = try_handshake(addr, &[]).await.expect_err("full");
    assert_eq!(status, 503);
    assert!(body.contains("node is full"), "{body}");
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert_eq!(refused(addr, "full").await, 1);
    drop(open);
    server.shutdown().await.unwrap();
}
