//! Moderation over real WebSockets and the real operator API, against in-process nodes with
//! their embedded store: reports and their evidence, blocks, bans by client, address and
//! device, live bans, the automatic rule, persistence across a restart, and the API's tokens
//! and audit log.

mod common;

use std::net::SocketAddr;

use common::{http_request, open, report, start_server_with, test_args, Client, Opened, STEP};
use serde_json::{json, Value};
use tandem_ids::ChatId;
use tandem_proto::{ClientMsg, ErrorCode, ServerMsg};
use tandem_server::config::ServeArgs;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const ANA: &str = "ana=token-of-ana-0123456789";
const BEN: &str = "ben=token-of-ben-0123456789";

/// Test args with two named moderators and a trusted `X-Forwarded-For`, so that each user
/// may come from an address of its own.
fn args() -> ServeArgs {
    let mut args = test_args();
    args.admin_token = vec![ANA.into(), BEN.into()];
    args.client_ip_header = Some("X-Forwarded-For".into());
    args.joins_per_sec = 1_000;
    args
}

/// A call to the operator API as moderator `token` (`NAME=TOKEN`): (status, JSON body).
async fn api(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let bearer = format!("Bearer {}", token.split_once('=').map_or(token, |(_, t)| t));
    let body = body.map(|b| b.to_string());
    let (status, _, text) = http_request(
        addr,
        method,
        path,
        &[("authorization", &bearer)],
        body.as_deref(),
    )
    .await;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json)
}

/// A user connecting from `ip` (through the trusted header), as a new client.
async fn user(addr: SocketAddr, ip: &str) -> Client {
    open(addr, "", &[("x-forwarded-for", ip)]).await.client()
}

/// The same client again, from `ip`, on `addr`.
async fn again(addr: SocketAddr, client: &Client, ip: &str) -> Opened {
    let query = format!("?client_id={}", client.welcome.client_id);
    open(addr, &query, &[("x-forwarded-for", ip)]).await
}

/// Joins `a`, then `b`, and returns their chat.
async fn chat(a: &mut Client, b: &mut Client) -> ChatId {
    a.join().await;
    b.join().await;
    let chat = a.matched().await.chat;
    assert_eq!(b.matched().await.chat, chat);
    chat
}

/// Reads until the end of a chat.
async fn ended(client: &mut Client) {
    loop {
        if let ServerMsg::Ended { .. } = client.recv().await {
            return;
        }
    }
}

/// `a` leaves the chat with `b`; both are idle once they were told.
async fn leave(a: &mut Client, b: &mut Client) {
    a.send(&ClientMsg::Leave).await;
    ended(a).await;
    ended(b).await;
}

/// Reads a message of the partner.
async fn heard(client: &mut Client, text: &str) {
    match client.recv().await {
        ServerMsg::Msg { text: got, .. } => assert_eq!(got, text),
        other => panic!("expected msg {text:?}, got {other:?}"),
    }
}

/// The refusal of a banned handshake: the ban's id and `until`.
fn banned(refusal: (Vec<ServerMsg>, Option<CloseCode>)) -> (String, Option<u64>) {
    let (msgs, close) = refusal;
    assert_eq!(close, Some(CloseCode::Policy), "closed with 1008");
    match msgs.as_slice() {
        [ServerMsg::Error {
            code: ErrorCode::Banned,
            until: Some(until),
            ban: Some(ban),
            ..
        }] => (ban.clone(), *until),
        other => panic!("expected one banned error, got {other:?}"),
    }
}

fn now() -> u64 {
    tandem_server::entitlement::unix_now()
}

#[actix_rt::test]
async fn a_report_carries_the_last_lines_of_that_chat_both_sides_now_and_after_next() {
    let server = start_server_with(args());
    let addr = server.addr;
    let (mut a, mut b, mut c) = (
        user(addr, "192.0.2.1").await,
        user(addr, "192.0.2.2").await,
        user(addr, "192.0.2.3").await,
    );
    // An earlier chat of a's, with c: none of it may reach a report about b.
    let earlier = chat(&mut a, &mut c).await;
    a.say(earlier, "an earlier chat").await;
    heard(&mut c, "an earlier chat").await;
    leave(&mut a, &mut c).await;
    let now_chat = chat(&mut a, &mut b).await;
    a.say(now_chat, "hello from a").await;
    heard(&mut b, "hello from a").await;
    b.say(now_chat, "you are ugly").await;
    heard(&mut a, "you are ugly").await;
    let at = now();
    let id = report(&mut a, now_chat, "harassment", Some("rude at once")).await;

    let (status, queue) = api(addr, ANA, "GET", "/admin/api/reports?status=open", None).await;
    assert_eq!(status, 200, "{queue}");
    let reports = queue.as_array().unwrap();
    assert_eq!(reports.len(), 1);
    let filed = &reports[0];
    assert_eq!(filed["id"], id);
    assert_eq!(filed["chat"], now_chat.to_string());
    assert_eq!(filed["reason"], "harassment");
    assert_eq!(filed["note"], "rude at once");
    assert_eq!(filed["reporter_count"], 1);
    assert_eq!(filed["status"], "open");
    assert_eq!(filed["reported"]["client"], b.welcome.client_id);
    assert_eq!(filed["reported"]["ip"], "192.0.2.2");
    assert_eq!(filed["reported"]["country"], "ZZ");
    assert!(filed["at"].as_u64().unwrap().abs_diff(at) <= 2);
    let lines: Vec<(&str, &str)> = filed["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["from"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [("reporter", "hello from a"), ("reported", "you are ugly")],
        "both sides of that chat, nothing of the earlier one"
    );
    let first_ms = filed["evidence"][0]["at_ms"].as_u64().unwrap();
    assert!(
        (first_ms / 1000).abs_diff(at) <= 2,
        "lines carry their times"
    );

    // After Next, the chat that ended may still be reported (by the other side here).
    b.send(&ClientMsg::Next).await;
    ended(&mut a).await;
    let after = report(&mut b, now_chat, "spam", None).await;
    assert_ne!(after, id, "a report about another client");
    let (_, queue) = api(addr, ANA, "GET", "/admin/api/reports", None).await;
    let about_a = queue
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == after)
        .expect("listed");
    assert_eq!(about_a["reported"]["client"], a.welcome.client_id);
    assert_eq!(about_a["evidence"].as_array().unwrap().len(), 2);
    assert_eq!(about_a["evidence"][1]["from"], "reporter");

    // Reporting the same chat twice merges into the one report.
    assert_eq!(report(&mut a, now_chat, "hate", None).await, id);
    let (_, queue) = api(addr, ANA, "GET", "/admin/api/reports", None).await;
    assert_eq!(queue.as_array().unwrap().len(), 2);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_report_is_checked_and_refused_outside_a_chat() {
    let server = start_server_with(args());
    let addr = server.addr;
    let (mut a, mut b) = (user(addr, "192.0.2.1").await, user(addr, "192.0.2.2").await);
    let ghost = ChatId(12345);
    let send = |reason: &str, note: Option<String>, chat| ClientMsg::Report {
        chat,
        reason: reason.into(),
        note,
    };
    a.send(&send("spam", None, ghost)).await;
    a.expect_error(ErrorCode::NotInChat).await;
    let chat = chat(&mut a, &mut b).await;
    a.send(&send("rude", None, chat)).await;
    let message = a.expect_error(ErrorCode::InvalidValue).await;
    assert!(message.contains("nudity, minor, harassment"), "{message}");
    a.send(&send("spam", Some("x".repeat(501)), chat)).await;
    a.expect_error(ErrorCode::TextTooLong).await;
    a.send(&send("spam", Some("é".repeat(500)), chat)).await;
    assert!(
        matches!(a.recv().await, ServerMsg::Reported { .. }),
        "500 characters fit"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_reporter_files_at_most_ten_reports_an_hour() {
    let server = start_server_with(args());
    let addr = server.addr;
    let mut reporter = user(addr, "192.0.2.1").await;
    for n in 0..11 {
        let mut other = user(addr, &format!("198.51.100.{}", n + 1)).await;
        let chat = chat(&mut reporter, &mut other).await;
        reporter
            .send(&ClientMsg::Report {
                chat,
                reason: "spam".into(),
                note: None,
            })
            .await;
        match reporter.recv().await {
            ServerMsg::Reported { .. } if n < 10 => {}
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            } if n == 10 => {}
            other => panic!("report {n}: {other:?}"),
        }
        leave(&mut reporter, &mut other).await;
    }
    let (_, queue) = api(addr, ANA, "GET", "/admin/api/reports", None).await;
    assert_eq!(queue.as_array().unwrap().len(), 10);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_reporter_and_the_reported_are_never_paired_again_even_after_reconnecting() {
    let server = start_server_with(args());
    let addr = server.addr;
    let (mut a, mut b) = (user(addr, "192.0.2.1").await, user(addr, "192.0.2.2").await);
    let first = chat(&mut a, &mut b).await;
    report(&mut a, first, "spam", None).await;
    leave(&mut a, &mut b).await;

    // Both come back as the same clients, on new connections.
    let mut a = again(addr, &a, "192.0.2.1").await.client();
    let mut b = again(addr, &b, "192.0.2.2").await.client();
    a.join().await;
    b.join().await;
    // Were they pairable, they would have been paired by now and c would wait: instead c
    // is paired with one of them, and d with the other.
    let mut c = user(addr, "192.0.2.3").await;
    c.join().await;
    let with_c = c.matched().await.chat;
    let mut d = user(addr, "192.0.2.4").await;
    d.join().await;
    let with_d = d.matched().await.chat;
    let (a_chat, b_chat) = (a.matched().await.chat, b.matched().await.chat);
    let mut got = [a_chat, b_chat];
    got.sort_by_key(|c| c.0);
    let mut expected = [with_c, with_d];
    expected.sort_by_key(|c| c.0);
    assert_eq!(got, expected, "a and b each met a stranger, not each other");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn bans_by_client_address_and_device_refuse_the_handshake_until_lifted() {
    let server = start_server_with(args());
    let addr = server.addr;
    let target = user(addr, "192.0.2.50").await;
    let client_id = target.welcome.client_id.clone();
    drop(target);
    let ban = |kind: &str, value: &str, duration: Option<u64>| json!({"subject": {"kind": kind, "value": value}, "duration_s": duration, "reason": "test"});
    let (status, by_client) = api(
        addr,
        ANA,
        "POST",
        "/admin/api/bans",
        Some(ban("client", &client_id, Some(3600))),
    )
    .await;
    assert_eq!(status, 201, "{by_client}");
    assert_eq!(
        by_client["subject"],
        json!({"kind": "client", "value": client_id})
    );
    assert_eq!(
        by_client["issued_by"],
        json!({"kind": "moderator", "name": "ana"})
    );
    assert_eq!(by_client["active"], true);
    let (status, by_range) = api(
        addr,
        ANA,
        "POST",
        "/admin/api/bans",
        Some(ban("ip", "203.0.113.0/24", None)),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(by_range["until"], Value::Null, "permanent");
    let (status, by_device) = api(
        addr,
        BEN,
        "POST",
        "/admin/api/bans",
        Some(ban("device", "device-abcdef12", Some(60))),
    )
    .await;
    assert_eq!(status, 201);

    let query = format!("?client_id={client_id}");
    let (id, until) = banned(
        open(addr, &query, &[("x-forwarded-for", "192.0.2.51")])
            .await
            .refusal(),
    );
    assert_eq!(id, by_client["id"].as_str().unwrap());
    assert!(until.unwrap().abs_diff(now() + 3600) <= 2);
    let (id, until) = banned(
        open(addr, "", &[("x-forwarded-for", "203.0.113.77")])
            .await
            .refusal(),
    );
    assert_eq!(
        (id.as_str(), until),
        (by_range["id"].as_str().unwrap(), None)
    );
    let (id, _) = banned(open(addr, "?device=device-abcdef12", &[]).await.refusal());
    assert_eq!(id, by_device["id"].as_str().unwrap());
    // Others come in.
    open(
        addr,
        "?device=device-other-1",
        &[("x-forwarded-for", "203.0.114.1")],
    )
    .await
    .client();

    // Lifting takes effect at the next connection.
    let path = format!("/admin/api/bans/{}", by_range["id"].as_str().unwrap());
    let (status, lifted) = api(addr, BEN, "DELETE", &path, None).await;
    assert_eq!((status, &lifted["active"]), (200, &json!(false)));
    assert_eq!(lifted["lifted"]["by"], "ben");
    open(addr, "", &[("x-forwarded-for", "203.0.113.77")])
        .await
        .client();
    let (status, _) = api(
        addr,
        BEN,
        "DELETE",
        "/admin/api/bans/0000000000000000",
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Bad bans are refused with the reason.
    for bad in [
        ban("ip", "not-an-address", None),
        ban("client", "a b", None),
        ban("device", "short", None),
        json!({"subject": {"kind": "planet", "value": "x"}, "reason": "r"}),
        json!({"subject": {"kind": "ip", "value": "192.0.2.1"}, "reason": ""}),
        json!({"subject": {"kind": "ip", "value": "192.0.2.1"}, "reason": "r", "duration_s": 0}),
    ] {
        let (status, body) = api(addr, ANA, "POST", "/admin/api/bans", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert!(body["error"].is_string());
    }
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_ban_closes_the_live_sessions_it_names() {
    let server = start_server_with(args());
    let addr = server.addr;
    let (mut a, mut b) = (user(addr, "192.0.2.1").await, user(addr, "192.0.2.2").await);
    let chat = chat(&mut a, &mut b).await;
    let ban = json!({
        "subject": {"kind": "client", "value": b.welcome.client_id},
        "duration_s": 600,
        "reason": "nudity on camera",
    });
    let (status, issued) = api(addr, ANA, "POST", "/admin/api/bans", Some(ban)).await;
    assert_eq!(status, 201);
    let (msgs, close) = b.recv_until_close().await;
    assert_eq!(close, Some(CloseCode::Policy));
    match msgs.as_slice() {
        [ServerMsg::Error {
            code: ErrorCode::Banned,
            message,
            ban: Some(ban),
            until: Some(Some(_)),
            ..
        }] => {
            assert_eq!(ban, issued["id"].as_str().unwrap());
            assert!(message.contains("nudity on camera"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The partner's chat ends as if b had left.
    match a.recv().await {
        ServerMsg::Ended { chat: ended, .. } => assert_eq!(ended, chat),
        other => panic!("{other:?}"),
    }
    server.shutdown().await.unwrap();
}

/// Has `reporters` (new users, from their own addresses) each meet `target` and report it.
async fn reported_by(addr: SocketAddr, target: &mut Client, reporters: &[&str], reason: &str) {
    for ip in reporters {
        let mut reporter = user(addr, ip).await;
        let chat = chat(target, &mut reporter).await;
        target.say(chat, "something vile").await;
        heard(&mut reporter, "something vile").await;
        report(&mut reporter, chat, reason, None).await;
        leave(&mut reporter, target).await;
    }
}

#[actix_rt::test]
async fn three_distinct_reporters_ban_automatically_and_a_repeat_bans_four_times_longer() {
    let server = start_server_with(args());
    let addr = server.addr;
    let mut target = user(addr, "198.51.100.9").await;
    let started = now();
    reported_by(addr, &mut target, &["192.0.2.1", "192.0.2.2"], "spam").await;
    let (_, bans) = api(addr, ANA, "GET", "/admin/api/bans", None).await;
    assert_eq!(bans, json!([]), "two reporters are not enough");

    // The third closes the target's session: a ban of its client id and of its address.
    let mut third = user(addr, "192.0.2.3").await;
    let chat_3 = chat(&mut target, &mut third).await;
    report(&mut third, chat_3, "minor", None).await;
    let (msgs, close) = target.recv_until_close().await;
    assert_eq!(close, Some(CloseCode::Policy));
    let Some(ServerMsg::Error {
        until: Some(Some(until)),
        ..
    }) = msgs.last()
    else {
        panic!("{msgs:?}")
    };
    assert!(until.abs_diff(started + 600) <= 5, "10 minutes: {until}");
    let (_, bans) = api(addr, ANA, "GET", "/admin/api/bans", None).await;
    let bans = bans.as_array().unwrap().clone();
    assert_eq!(bans.len(), 2);
    let mut subjects: Vec<&str> = bans
        .iter()
        .map(|b| b["subject"]["kind"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["client", "ip"]);
    for ban in &bans {
        assert_eq!(ban["issued_by"]["kind"], "rule");
        assert_eq!(ban["confirmed"], false, "waiting for a moderator");
    }
    banned(again(addr, &target, "198.51.100.200").await.refusal());
    banned(
        open(addr, "", &[("x-forwarded-for", "198.51.100.9")])
            .await
            .refusal(),
    );

    // The queue: the minor report first, naming the automatic bans.
    let (_, queue) = api(addr, ANA, "GET", "/admin/api/reports?status=open", None).await;
    let queue = queue.as_array().unwrap();
    assert_eq!(queue.len(), 3);
    assert_eq!(queue[0]["reason"], "minor");
    assert_eq!(queue[0]["auto_bans"].as_array().unwrap().len(), 2);

    // A moderator lifts both; three new reporters trip the rule again: 40 minutes.
    for ban in &bans {
        let path = format!("/admin/api/bans/{}", ban["id"].as_str().unwrap());
        assert_eq!(api(addr, BEN, "DELETE", &path, None).await.0, 200);
    }
    let mut target = again(addr, &target, "198.51.100.9").await.client();
    reported_by(addr, &mut target, &["192.0.2.4", "192.0.2.5"], "scam").await;
    let mut sixth = user(addr, "192.0.2.6").await;
    let chat_6 = chat(&mut target, &mut sixth).await;
    let repeat_at = now();
    report(&mut sixth, chat_6, "scam", None).await;
    let (msgs, _) = target.recv_until_close().await;
    let Some(ServerMsg::Error {
        until: Some(Some(until)),
        ..
    }) = msgs.last()
    else {
        panic!("{msgs:?}")
    };
    assert!(
        until.abs_diff(repeat_at + 2400) <= 5,
        "four times longer: {until}"
    );
    let (_, audit) = api(addr, ANA, "GET", "/admin/api/audit", None).await;
    let rule_bans = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["who"] == "rule:reports" && e["action"] == "ban")
        .count();
    assert_eq!(rule_bans, 2);

    // What the operator's monitoring sees.
    let (_, metrics) = common::http_get(addr, "/metrics").await;
    let value = |name: &str, label: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
            .unwrap_or_else(|| panic!("{name} {label}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("tandem_bans_issued_total", "source=\"moderator\""), 0);
    assert_eq!(
        value("tandem_bans_issued_total", "source=\"rule\""),
        4,
        "client and address, twice"
    );
    assert_eq!(
        value("tandem_reports_by_reason_total", "reason=\"minor\""),
        1
    );
    assert_eq!(
        value("tandem_reports_by_reason_total", "reason=\"scam\""),
        3
    );
    assert_eq!(
        value("tandem_handshakes_refused_total", "cause=\"banned\""),
        2
    );
    assert_eq!(value("tandem_bans_active", "node"), 2);
    assert_eq!(
        value("tandem_server_closes_total", "cause=\"banned\""),
        2,
        "closed live twice"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn resolving_a_report_bans_or_dismisses_once_and_lifts_its_automatic_bans() {
    let mut flags = args();
    flags.auto_ban_reporters = 1;
    let server = start_server_with(flags);
    let addr = server.addr;
    let (mut a, mut b) = (
        user(addr, "192.0.2.1").await,
        user(addr, "198.51.100.1").await,
    );
    let first = chat(&mut a, &mut b).await;
    let id = report(&mut a, first, "spam", None).await;
    b.recv_until_close().await;
    banned(again(addr, &b, "198.51.100.1").await.refusal());

    // Dismissed: the automatic bans go, and b comes back.
    let path = format!("/admin/api/reports/{id}/resolve");
    let dismiss = json!({"action": "dismiss", "duration_s": null, "note": "a joke"});
    let (status, resolved) = api(addr, BEN, "POST", &path, Some(dismiss.clone())).await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "dismissed");
    assert_eq!(resolved["resolution"]["by"], "ben");
    assert_eq!(
        api(addr, ANA, "POST", &path, Some(dismiss)).await.0,
        409,
        "once"
    );
    let mut b = again(addr, &b, "198.51.100.1").await.client();

    // Banned by a moderator: b's client, permanently.
    let mut c = user(addr, "192.0.2.3").await;
    let second = chat(&mut c, &mut b).await;
    let id = report(&mut c, second, "nudity", None).await;
    b.recv_until_close().await;
    let ban = json!({"action": "ban", "duration_s": null, "note": null});
    let path = format!("/admin/api/reports/{id}/resolve");
    let (status, resolved) = api(addr, ANA, "POST", &path, Some(ban)).await;
    assert_eq!(status, 200);
    assert_eq!(resolved["status"], "banned");
    let (_, bans) = api(addr, ANA, "GET", "/admin/api/bans", None).await;
    let by_ana = bans
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == resolved["resolution"]["ban"])
        .unwrap();
    assert_eq!(by_ana["until"], Value::Null);
    let kept = bans
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["confirmed"] == true)
        .count();
    assert_eq!(kept, 3, "ana's ban and the two automatic bans she kept");
    let (status, _) = api(
        addr,
        ANA,
        "POST",
        "/admin/api/reports/nope/resolve",
        Some(json!({"action": "dismiss"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = api(addr, ANA, "POST", &path, Some(json!({"action": "shrug"}))).await;
    assert_eq!(status, 400);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn every_route_of_the_api_wants_a_moderators_token_and_the_audit_names_them() {
    let server = start_server_with(args());
    let addr = server.addr;
    let routes = [
        ("GET", "/admin/api/reports?status=open"),
        ("POST", "/admin/api/reports/0/resolve"),
        ("GET", "/admin/api/bans"),
        ("POST", "/admin/api/bans"),
        ("DELETE", "/admin/api/bans/0"),
        ("GET", "/admin/api/audit"),
        ("GET", "/admin/api/stats"),
    ];
    let body = r#"{"subject": {"kind": "ip", "value": "192.0.2.1"}, "reason": "r"}"#;
    for (method, path) in routes {
        for headers in [
            vec![],
            vec![("authorization", "Bearer token-of-nobody-0123456789")],
            vec![("authorization", "Basic YW5hOnRva2Vu")],
        ] {
            let (status, head, _) = http_request(addr, method, path, &headers, Some(body)).await;
            assert_eq!(status, 401, "{method} {path} {headers:?}");
            assert!(head.contains("www-authenticate: bearer"), "{head}");
        }
    }
    let (_, issued) = api(
        addr,
        ANA,
        "POST",
        "/admin/api/bans",
        Some(serde_json::from_str(body).unwrap()),
    )
    .await;
    let path = format!("/admin/api/bans/{}", issued["id"].as_str().unwrap());
    assert_eq!(api(addr, BEN, "DELETE", &path, None).await.0, 200);
    assert_eq!(
        api(addr, ANA, "DELETE", &path, None).await.0,
        200,
        "a second lift changes nothing"
    );
    let (status, audit) = api(addr, BEN, "GET", "/admin/api/audit", None).await;
    assert_eq!(status, 200);
    let entries: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["who"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [("ben", "lift"), ("ana", "ban")],
        "the newest first"
    );
    server.shutdown().await.unwrap();

    // Without any token configured, the API does not exist.
    let server = start_server_with(test_args());
    for (method, path) in routes {
        let (status, _, _) = http_request(server.addr, method, path, &[], Some(body)).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn bans_reports_and_blocks_survive_a_restart_of_the_node() {
    let flags = args();
    let server = start_server_with(flags.clone());
    let addr = server.addr;
    let (mut a, mut b) = (user(addr, "192.0.2.1").await, user(addr, "192.0.2.2").await);
    let chat = chat(&mut a, &mut b).await;
    b.say(chat, "kept as evidence").await;
    heard(&mut a, "kept as evidence").await;
    let id = report(&mut a, chat, "hate", None).await;
    let ban = json!({"subject": {"kind": "device", "value": "device-restart-1"}, "reason": "r"});
    let (_, issued) = api(addr, ANA, "POST", "/admin/api/bans", Some(ban)).await;
    let (a_id, b_id) = (a.welcome.client_id.clone(), b.welcome.client_id.clone());
    drop((a, b));
    server.shutdown().await.unwrap();

    let server = start_server_with(flags);
    let addr = server.addr;
    let (_, queue) = api(addr, ANA, "GET", "/admin/api/reports", None).await;
    assert_eq!(queue[0]["id"], id);
    assert_eq!(queue[0]["evidence"][0]["text"], "kept as evidence");
    let (_, bans) = api(addr, ANA, "GET", "/admin/api/bans", None).await;
    assert_eq!(bans[0]["id"], issued["id"]);
    banned(open(addr, "?device=device-restart-1", &[]).await.refusal());
    // The ids issued before still hold (the secret is kept), and so does a's block of b.
    let mut a = open(
        addr,
        &format!("?client_id={a_id}"),
        &[("x-forwarded-for", "192.0.2.1")],
    )
    .await
    .client();
    let mut b = open(
        addr,
        &format!("?client_id={b_id}"),
        &[("x-forwarded-for", "192.0.2.2")],
    )
    .await
    .client();
    assert_eq!(
        (a.welcome.client_id.as_str(), b.welcome.client_id.as_str()),
        (a_id.as_str(), b_id.as_str())
    );
    a.join().await;
    b.join().await;
    let mut c = user(addr, "192.0.2.3").await;
    c.join().await;
    let with_c = c.matched().await.chat;
    let first = tokio::select! {
        m = a.matched() => m.chat,
        m = b.matched() => m.chat,
    };
    assert_eq!(
        first, with_c,
        "c met one of them: a and b did not meet each other"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn records_past_their_retention_are_not_served_and_the_running_node_purges_them() {
    let mut flags = args();
    flags.report_retention = std::time::Duration::ZERO;
    flags.audit_retention = std::time::Duration::ZERO;
    flags.purge_interval = std::time::Duration::from_millis(50);
    let server = start_server_with(flags);
    let addr = server.addr;
    let (mut a, mut b) = (user(addr, "192.0.2.1").await, user(addr, "192.0.2.2").await);
    let chat = chat(&mut a, &mut b).await;
    report(&mut a, chat, "spam", None).await;
    let ban = json!({"subject": {"kind": "ip", "value": "192.0.2.9"}, "reason": "r"});
    assert_eq!(
        api(addr, ANA, "POST", "/admin/api/bans", Some(ban)).await.0,
        201
    );
    // Kept for no time: never served, even before the purge has run.
    assert_eq!(
        api(addr, ANA, "GET", "/admin/api/reports", None).await.1,
        json!([])
    );
    assert_eq!(
        api(addr, ANA, "GET", "/admin/api/audit", None).await.1,
        json!([])
    );
    // The permanent ban is kept while it bans.
    assert_eq!(
        api(addr, ANA, "GET", "/admin/api/bans", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The purge runs every 50 ms and counts what it removed.
    let purged = |metrics: &str, bucket: &str| {
        let label = format!("bucket=\"{bucket}\"}}");
        metrics
            .lines()
            .find(|l| l.starts_with("tandem_purged_total{") && l.contains(&label))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap()
    };
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let (_, metrics) = common::http_get(addr, "/metrics").await;
        if purged(&metrics, "reports") == 1 && purged(&metrics, "audit") == 1 {
            assert_eq!(purged(&metrics, "bans"), 0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not purged: {metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}
