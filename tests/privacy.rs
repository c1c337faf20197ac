//! Privacy over real WebSockets and real HTTP, against in-process nodes with their embedded
//! store (and a real `nats-server -js` for the cluster's buckets): saved chat logs, access
//! and erasure by the `tandem_id` cookie, a minor's report, and every category purged to
//! nothing once its retention has passed.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::nats::NatsServer;
use common::{http_request, join_with, open, report, start_server_with, test_args, Client, STEP};
use serde_json::{json, Value};
use tandem_ids::ChatId;
use tandem_proto::{ClientMsg, ErrorCode, ServerMsg};
use tandem_server::config::ServeArgs;
use tandem_server::moderation::store::{Bucket, Embedded, Kv};

const ANA: &str = "ana=token-of-ana-0123456789";

fn args() -> ServeArgs {
    let mut args = test_args();
    args.admin_token = vec![ANA.into()];
    args.client_ip_header = Some("X-Forwarded-For".into());
    args.joins_per_sec = 1_000;
    args
}

async fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bearer = "Bearer token-of-ana-0123456789";
    let body = body.map(|b| b.to_string());
    let headers = [("authorization", bearer)];
    let (status, _, text) = http_request(addr, method, path, &headers, body.as_deref()).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A user from `ip` with the device hint `device`.
async fn user(addr: SocketAddr, ip: &str, device: &str) -> Client {
    open(
        addr,
        &format!("?device={device}"),
        &[("x-forwarded-for", ip)],
    )
    .await
    .client()
}

/// `a` and `b` join with the interest `music` (and the solution of their challenge, when
/// the node asks one) and meet.
async fn meet(a: &mut Client, b: &mut Client) -> ChatId {
    let music = |client: &Client| {
        let proof = common::proof_of(client);
        join_with(|j| {
            j.interests = vec!["music".into()];
            j.proof = proof;
        })
    };
    a.send(&music(a)).await;
    b.send(&music(b)).await;
    let chat = matched(a).await;
    assert_eq!(matched(b).await, chat);
    chat
}

/// Reads until a `matched`: its chat.
async fn matched(client: &mut Client) -> ChatId {
    loop {
        match client.recv().await {
            ServerMsg::Matched(matched) => return matched.chat,
            ServerMsg::Waiting | ServerMsg::Ended { .. } | ServerMsg::Reported { .. } => {}
            other => panic!("expected matched, got {other:?}"),
        }
    }
}

/// `from` says `text` in `chat`, and `to` hears it.
async fn say(from: &mut Client, to: &mut Client, chat: ChatId, text: &str) {
    from.say(chat, text).await;
    loop {
        if let ServerMsg::Msg { text: heard, .. } = to.recv().await {
            assert_eq!(heard, text);
            return;
        }
    }
}

/// Saves `chat`: (url, delete_url).
async fn save(client: &mut Client, chat: ChatId) -> (String, String) {
    client.send(&ClientMsg::SaveLog { chat }).await;
    loop {
        match client.recv().await {
            ServerMsg::LogSaved {
                chat: saved,
                url,
                delete_url,
            } => {
                assert_eq!(saved, chat);
                return (url, delete_url);
            }
            ServerMsg::Ended { .. } | ServerMsg::Waiting | ServerMsg::Matched(_) => {}
            other => panic!("expected log_saved, got {other:?}"),
        }
    }
}

async fn get_json(addr: SocketAddr, path: &str, cookie: Option<&str>) -> (u16, Value) {
    let cookie = cookie.map(|id| format!("tandem_id={id}"));
    let mut headers = vec![("accept", "application/json")];
    if let Some(cookie) = &cookie {
        headers.push(("cookie", cookie.as_str()));
    }
    let (status, _, body) = http_request(addr, "GET", path, &headers, None).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn erase(addr: SocketAddr, id: &str) -> (u16, Value) {
    let cookie = format!("tandem_id={id}");
    let (status, _, body) = http_request(
        addr,
        "POST",
        "/api/privacy/erase",
        &[("cookie", &cookie)],
        Some("{}"),
    )
    .await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[actix_rt::test]
async fn a_saved_log_holds_that_chat_only_reads_without_a_cookie_and_deletes_only_with_its_secret()
{
    let server = start_server_with(args());
    let addr = server.addr;
    let mut a = user(addr, "192.0.2.1", "device-aaaa-1").await;
    let mut b = user(addr, "192.0.2.2", "device-bbbb-1").await;
    let chat = meet(&mut a, &mut b).await;
    say(&mut a, &mut b, chat, "hello from a").await;
    say(&mut b, &mut a, chat, "<b>hi</b> from b").await;
    let (url, delete_url) = save(&mut a, chat).await;
    let id = url.strip_prefix("/logs/").expect("a /logs/ address");
    assert!(
        id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()),
        "128 random bits: {url}"
    );
    assert!(delete_url.starts_with(&format!("{url}/delete?key=")));
    let key = delete_url.rsplit('=').next().unwrap();
    assert!(key.len() >= 32, "the secret has 128 bits at least");

    // The next chat's lines are not in it, even when the first is saved again after it.
    a.send(&ClientMsg::Next).await;
    let mut c = user(addr, "192.0.2.3", "device-cccc-1").await;
    c.send(&join_with(|j| j.interests = vec!["music".into()]))
        .await;
    let second = matched(&mut a).await;
    assert_eq!(matched(&mut c).await, second);
    say(&mut c, &mut a, second, "a line of another chat").await;
    assert_eq!(
        save(&mut a, chat).await,
        (url.clone(), delete_url.clone()),
        "saved again at the same address"
    );
    let (other, _) = save(&mut a, second).await;
    assert_ne!(other, url);

    // Anyone with the address reads it: no cookie.
    let (status, log) = get_json(addr, &url, None).await;
    assert_eq!(status, 200, "{log}");
    let lines: Vec<(&str, &str)> = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["from"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [("you", "hello from a"), ("stranger", "<b>hi</b> from b")]
    );
    assert_eq!(log["common_interests"], json!(["music"]));
    assert!(log["started_at"].as_u64().unwrap() > 1_700_000_000);
    assert!(log["ended_at"].as_u64().is_some(), "the chat ended");
    let text = log.to_string();
    for secret in [
        &a.welcome.client_id,
        &b.welcome.client_id,
        "192.0.2",
        "device-",
        key,
    ] {
        assert!(!text.contains(secret), "nothing about either user: {text}");
    }
    let (status, head, html) = http_request(addr, "GET", &url, &[], None).await;
    assert_eq!(status, 200);
    assert!(head.contains("text/html"), "{head}");
    assert!(html.contains("hello from a") && html.contains("&lt;b&gt;hi&lt;/b&gt; from b"));
    assert!(!html.contains("a line of another chat"));
    assert!(head.contains("cache-control: no-store"), "{head}");

    // Nobody can list logs, or guess one.
    assert_eq!(get_json(addr, "/logs", None).await.0, 404);
    assert_eq!(get_json(addr, "/logs/", None).await.0, 404);
    let guess = format!("/logs/{}", "0".repeat(32));
    assert_eq!(get_json(addr, &guess, None).await.0, 404);

    // Deleting takes the secret: a wrong one is refused, and opening the delete address
    // (a link preview would) deletes nothing.
    let wrong = format!("{url}?key={}", "f".repeat(32));
    assert_eq!(http_request(addr, "DELETE", &wrong, &[], None).await.0, 403);
    let (status, _, page) = http_request(addr, "GET", &delete_url, &[], None).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"delete-log\""), "{page}");
    assert_eq!(get_json(addr, &url, None).await.0, 200);
    let (status, _, page) = http_request(addr, "POST", &delete_url, &[], None).await;
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Deleted</h1>"), "{page}");
    assert_eq!(get_json(addr, &url, None).await.0, 404);
    // Saved once more, it gets a new address: a deleted one never comes back.
    let (anew, _) = save(&mut a, chat).await;
    assert_ne!(anew, url);
    assert_eq!(get_json(addr, &url, None).await.0, 404);
    // The API's way, for the other log.
    let (_, other_delete) = save(&mut a, second).await;
    let api_delete = other_delete.replace("/delete?", "?");
    let (status, _, body) = http_request(addr, "DELETE", &api_delete, &[], None).await;
    assert_eq!((status, body.as_str()), (200, r#"{"deleted":true}"#));
    assert_eq!(get_json(addr, &other, None).await.0, 404);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn save_log_names_a_chat_of_the_session_and_is_limited_per_hour() {
    let server = start_server_with(args());
    let addr = server.addr;
    let mut a = user(addr, "192.0.2.1", "device-aaaa-2").await;
    a.send(&ClientMsg::SaveLog { chat: ChatId(7) }).await;
    a.expect_error(ErrorCode::NotInChat).await;
    let mut b = user(addr, "192.0.2.2", "device-bbbb-2").await;
    let chat = meet(&mut a, &mut b).await;
    // Only the saver's own chats: b's chat id is a's too, but another id is not.
    b.send(&ClientMsg::SaveLog {
        chat: ChatId(chat.0 ^ 1),
    })
    .await;
    b.expect_error(ErrorCode::StaleChat).await;
    for _ in 0..tandem_server::privacy::logs::SAVES_PER_HOUR {
        save(&mut a, chat).await;
    }
    a.send(&ClientMsg::SaveLog { chat }).await;
    let message = a.expect_error(ErrorCode::RateLimited).await;
    assert!(message.contains("saved logs"), "{message}");
    let (_, metrics) = common::http_get(addr, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "tandem_saved_logs_total{{node=\"{}\"}} {}",
            a.welcome.node,
            tandem_server::privacy::logs::SAVES_PER_HOUR
        )),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn export_shows_what_is_linked_to_the_client_and_erase_keeps_only_what_enforces_a_ban() {
    let server = start_server_with(args());
    let addr = server.addr;
    let mut a = user(addr, "192.0.2.1", "device-aaaa-3").await;
    let mut b = user(addr, "192.0.2.2", "device-bbbb-3").await;
    let mut c = user(addr, "192.0.2.3", "device-cccc-3").await;
    let (a_id, b_id, c_id) = (
        a.welcome.client_id.clone(),
        b.welcome.client_id.clone(),
        c.welcome.client_id.clone(),
    );
    // a saves its chat with b and reports b.
    let first = meet(&mut a, &mut b).await;
    say(&mut b, &mut a, first, "buy followers at spam.example").await;
    let (log_url, _) = save(&mut a, first).await;
    let filed = report(&mut a, first, "spam", Some("a spammer")).await;
    // b reports a too; no moderator has looked at it yet.
    let pending = report(&mut b, first, "other", None).await;
    // c meets a and reports a; a moderator bans a on that report.
    b.send(&ClientMsg::Leave).await;
    while !matches!(a.recv().await, ServerMsg::Ended { .. }) {}
    let second = meet(&mut a, &mut c).await;
    say(&mut a, &mut c, second, "rude words").await;
    let against = report(&mut c, second, "harassment", Some("c's own note")).await;
    let resolve = json!({"action": "ban", "duration_s": 3600});
    let path = format!("/admin/api/reports/{against}/resolve");
    assert_eq!(api(addr, "POST", &path, Some(resolve)).await.0, 200);
    let (_, bans) = api(addr, "GET", "/admin/api/bans", None).await;
    let active = bans[0]["id"].as_str().unwrap().to_owned();
    // And an old ban on a, lifted.
    let old = json!({"subject": {"kind": "client", "value": a_id}, "reason": "earlier"});
    let (_, old) = api(addr, "POST", "/admin/api/bans", Some(old)).await;
    let lifted = old["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api(addr, "DELETE", &format!("/admin/api/bans/{lifted}"), None)
            .await
            .0,
        200
    );

    // Without a valid cookie there is nothing to see or erase.
    assert_eq!(get_json(addr, "/api/privacy/export", None).await.0, 401);
    let forged = format!("{}.AAAAAAAAAAAAAAAAAAAAAA", "0".repeat(32));
    assert_eq!(
        get_json(addr, "/api/privacy/export", Some(&forged)).await.0,
        401
    );
    assert_eq!(erase(addr, &forged).await.0, 401);
    let cookie = format!("tandem_id={a_id}");
    let (status, _, _) = http_request(
        addr,
        "POST",
        "/api/privacy/erase",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(status, 415, "a form post from another site cannot erase");

    let (status, export) = get_json(addr, "/api/privacy/export", Some(&a_id)).await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["saved_logs"][0]["url"], log_url.as_str());
    assert_eq!(
        export["saved_logs"][0]["lines"][0]["text"],
        "buy followers at spam.example"
    );
    assert_eq!(export["reports_filed"][0]["id"], filed.as_str());
    assert_eq!(export["reports_filed"][0]["note"], "a spammer");
    let against_a = |export: &Value| -> Vec<(String, Value)> {
        let mut reports: Vec<(String, Value)> = (export["reports_against"].as_array().unwrap())
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r["reasons"].clone()))
            .collect();
        reports.sort_by(|x, y| x.0.cmp(&y.0));
        reports
    };
    let mut expected_against = vec![
        (against.clone(), json!(["harassment"])),
        (pending.clone(), json!(["other"])),
    ];
    expected_against.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(against_a(&export), expected_against);
    assert!(export.to_string().contains("device-aaaa-3"));
    assert_eq!(export["automatic_rule"]["reports"], 2);
    for ban in export["bans"].as_array().unwrap() {
        assert!(
            ban.get("lifted").is_none() && ban["issued_by"] == "moderator",
            "no moderator's name: {ban}"
        );
    }
    let mut ban_ids: Vec<&str> = (export["bans"].as_array().unwrap().iter())
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    ban_ids.sort_unstable();
    let mut expected = vec![active.as_str(), lifted.as_str()];
    expected.sort_unstable();
    assert_eq!(ban_ids, expected);
    assert_eq!(export["blocks"], 1);
    let text = export.to_string();
    for other in [&b_id, &c_id, "c's own note", "192.0.2.3", "device-cccc"] {
        assert!(
            !text.contains(other),
            "not another client's: {other} in {text}"
        );
    }
    let mut kept: Vec<&str> = (export["kept"].as_array().unwrap().iter())
        .map(|k| k["what"].as_str().unwrap())
        .collect();
    kept.sort_unstable();
    let mut expected_kept = vec![
        format!("ban {active}"),
        format!("report {against}"),
        format!("report {pending}"),
        "the automatic rule's count of reports against this client".to_owned(),
    ];
    expected_kept.sort();
    assert_eq!(
        kept, expected_kept,
        "the ban, its grounds, the report awaiting review"
    );
    // b's export holds none of a's records: only the report against b, without a.
    let (_, of_b) = get_json(addr, "/api/privacy/export", Some(&b_id)).await;
    assert_eq!(of_b["saved_logs"], json!([]));
    assert_eq!(of_b["reports_against"][0]["id"], filed.as_str());
    assert_eq!(of_b["reports_filed"][0]["id"], pending.as_str());
    assert!(!of_b.to_string().contains(&a_id) && !of_b.to_string().contains("a spammer"));

    let (status, erased) = erase(addr, &a_id).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(
        erased["removed"],
        json!({"saved_logs": 1, "reports_filed": 1, "reports_against": 0, "bans": 1,
               "blocks": 1})
    );
    let (_, after) = get_json(addr, "/api/privacy/export", Some(&a_id)).await;
    assert_eq!(after["saved_logs"], json!([]));
    assert_eq!(after["reports_filed"], json!([]));
    assert_eq!(after["blocks"], 0);
    assert_eq!(against_a(&after), expected_against, "kept");
    assert_eq!(after["bans"].as_array().unwrap().len(), 1);
    assert_eq!(after["bans"][0]["id"], active.as_str());
    assert_eq!(after["kept"], export["kept"], "what was kept, and why");
    assert_eq!(get_json(addr, &log_url, None).await.0, 404);
    let (status, _) = api(addr, "GET", &format!("/admin/api/reports/{filed}"), None).await;
    assert!(
        status == 404 || status == 405,
        "the report a filed alone is gone"
    );
    let (_, open_reports) = api(addr, "GET", "/admin/api/reports?status=all", None).await;
    assert!(!open_reports.to_string().contains(&filed), "{open_reports}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_confirmed_minor_report_bans_client_device_and_address_for_good_and_erases_the_rest() {
    let server = start_server_with(args());
    let addr = server.addr;
    let mut minor = user(addr, "192.0.2.50", "device-minor-1").await;
    let mut b = user(addr, "192.0.2.51", "device-bbbb-4").await;
    let chat = meet(&mut minor, &mut b).await;
    say(&mut minor, &mut b, chat, "i am 14").await;
    let (log_url, _) = save(&mut minor, chat).await;
    let id = report(&mut b, chat, "minor", None).await;
    let path = format!("/admin/api/reports/{id}/resolve");
    let resolve = json!({"action": "ban", "duration_s": 600});
    assert_eq!(api(addr, "POST", &path, Some(resolve)).await.0, 200);

    let (_, bans) = api(addr, "GET", "/admin/api/bans", None).await;
    let mut subjects: Vec<(String, Value)> = (bans.as_array().unwrap().iter())
        .map(|b| {
            (
                b["subject"]["kind"].as_str().unwrap().to_owned(),
                b["until"].clone(),
            )
        })
        .collect();
    subjects.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        subjects,
        [
            ("client".to_owned(), Value::Null),
            ("device".to_owned(), Value::Null),
            ("ip".to_owned(), Value::Null)
        ],
        "permanent, whatever length was asked"
    );
    assert_eq!(get_json(addr, &log_url, None).await.0, 404, "erased");
    let (_, audit) = api(addr, "GET", "/admin/api/audit", None).await;
    assert!(
        audit.to_string().contains("a minor's data erased"),
        "{audit}"
    );
    // Another client from that address, or that device, is turned away.
    for (ip, device) in [
        ("192.0.2.50", "device-other-1"),
        ("192.0.2.99", "device-minor-1"),
    ] {
        let (msgs, _) = open(
            addr,
            &format!("?device={device}"),
            &[("x-forwarded-for", ip)],
        )
        .await
        .refusal();
        assert!(matches!(
            msgs.as_slice(),
            [ServerMsg::Error {
                code: ErrorCode::Banned,
                ..
            }]
        ));
    }
    server.shutdown().await.unwrap();
}

/// Short retentions for every category, and a purge every 50 ms.
fn fleeting(mut args: ServeArgs) -> ServeArgs {
    args.report_retention = Duration::ZERO;
    args.ban_retention = Duration::ZERO;
    args.audit_retention = Duration::ZERO;
    args.block_retention = Duration::ZERO;
    args.saved_log_retention = Duration::ZERO;
    args.auto_ban_window = Duration::from_secs(1);
    args.auto_ban_repeat_window = Duration::from_secs(1);
    args.purge_interval = Duration::from_millis(50);
    // Challenges that expire (and whose spent records go) a second after issue.
    args.challenge = true;
    args.challenge_difficulty = 1;
    args.challenge_cost = 1;
    args.challenge_lifetime = Duration::from_secs(1);
    args.snapshot_retention = Duration::ZERO;
    args
}

/// Puts a record in every bucket through the node: a report (with a block and a tally), a
/// saved log, a ban for one second (with its audit entry), spent challenges, a flagged
/// video still.
async fn fill_every_bucket(addr: SocketAddr) {
    let mut a = user(addr, "192.0.2.1", "device-aaaa-5").await;
    let mut b = user(addr, "192.0.2.2", "device-bbbb-5").await;
    let chat = meet(&mut a, &mut b).await;
    say(&mut a, &mut b, chat, "to be forgotten").await;
    save(&mut a, chat).await;
    report(&mut b, chat, "spam", None).await;
    let ban = json!({"subject": {"kind": "ip", "value": "198.51.100.7"}, "duration_s": 1,
                     "reason": "briefly"});
    let (status, body) = api(addr, "POST", "/admin/api/bans", Some(ban)).await;
    assert_eq!(status, 201, "{body}");
    // A video still the classifier flags.
    let mut c = user(addr, "192.0.2.3", "device-cccc-5").await;
    let mut d = user(addr, "192.0.2.4", "device-dddd-5").await;
    let video = |client: &Client| {
        let proof = common::proof_of(client);
        join_with(|j| {
            j.mode = Some("video".into());
            j.proof = proof;
        })
    };
    c.send(&video(&c)).await;
    d.send(&video(&d)).await;
    let chat = matched(&mut c).await;
    assert_eq!(matched(&mut d).await, chat);
    let still = common::classifier::jpeg(b"NSFW");
    let frame = tandem_proto::encode_snapshot_frame(chat, &still);
    c.send_raw(tokio_tungstenite::tungstenite::Message::binary(frame))
        .await;
    c.expect_error(ErrorCode::Filtered).await;
}

/// Flags of a node whose video stills go to a classifier on this machine.
async fn with_classifier(mut args: ServeArgs) -> ServeArgs {
    let seen = std::sync::Arc::new(common::classifier::Seen::default());
    args.moderation_webhook = Some(common::classifier::classifier(seen).await);
    args.snapshot_key = Some("KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".into());
    args
}

/// Waits until the node's purge has removed something from every bucket.
async fn purged_from_every_bucket(addr: SocketAddr) {
    let deadline = std::time::Instant::now() + 3 * STEP;
    loop {
        let (_, metrics) = common::http_get(addr, "/metrics").await;
        let purged = |bucket: &str| {
            let label = format!("bucket=\"{bucket}\"}}");
            metrics
                .lines()
                .find(|l| l.starts_with("tandem_purged_total{") && l.contains(&label))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // Every bucket, and each of the four challenges spent (their ends differ a little).
        let spent = purged(Bucket::Spent.name());
        if Bucket::ALL.iter().all(|b| purged(b.name()) > 0) && spent >= 4 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all purged: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn every_category_is_purged_to_nothing_in_the_embedded_store() {
    let flags = with_classifier(fleeting(args())).await;
    let data_dir = flags.data_dir.clone();
    let server = start_server_with(flags);
    fill_every_bucket(server.addr).await;
    // Nothing past its retention is served in the meantime.
    let (_, reports) = api(server.addr, "GET", "/admin/api/reports?status=all", None).await;
    assert_eq!(reports, json!([]));
    purged_from_every_bucket(server.addr).await;
    server.shutdown().await.unwrap();
    // Read the database file itself once the node let go of it.
    // (A purge under way when the node stopped holds it until that operation ends.)
    let deadline = std::time::Instant::now() + STEP;
    let store = loop {
        match Embedded::open(&data_dir) {
            Ok(store) => break store,
            Err(err) => assert!(std::time::Instant::now() < deadline, "{err}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for bucket in Bucket::ALL {
        assert_eq!(store.list(bucket).await.unwrap(), Vec::new(), "{bucket:?}");
    }
}

#[actix_rt::test]
async fn every_category_is_purged_to_nothing_in_jetstream_history_included() {
    let nats = NatsServer::start();
    let mut flags = with_classifier(fleeting(args())).await;
    flags.cluster.nats = vec![nats.url()];
    flags.cluster.cluster_name = "purgetest".into();
    flags.id_secret = Some("the purge test cluster's secret".into());
    flags.cluster.cluster_key = Some(common::CLUSTER_KEY.into());
    let server = start_server_with(flags);
    fill_every_bucket(server.addr).await;
    purged_from_every_bucket(server.addr).await;
    // Each bucket's stream holds no message at all: no value, no delete marker, no history.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    for bucket in Bucket::ALL {
        let name = format!("KV_tandem_purgetest_{}", bucket.name());
        let mut stream = jetstream.get_stream(&name).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        assert_eq!(state.messages, 0, "{name}: {state:?}");
    }
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_nodes_own_log_holds_no_chat_text_and_addresses_only_by_network() {
    let port = common::nats::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let data_dir = common::data_dir();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(&data_dir)
        .args([
            "--client-ip-header",
            "X-Forwarded-For",
            "--shards",
            "1",
            "--workers",
            "1",
            "--challenge",
            "off",
        ])
        // Everything the node logs, at every level.
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the tandem binary");
    // Read as it is written, so that a full pipe never stalls the node.
    type Pipe = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
    let read = |mut pipe: Pipe| {
        tokio::spawn(async move {
            let mut text = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut text)
                .await
                .unwrap();
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + 3 * STEP;
    while tokio::net::TcpStream::connect(addr).await.is_err()
        || common::http_get(addr, "/healthz").await.0 != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut a = user(addr, "203.0.113.77", "device-logs-1").await;
    let mut b = user(addr, "198.51.100.23", "device-logs-2").await;
    let chat = meet(&mut a, &mut b).await;
    say(&mut a, &mut b, chat, "the words nobody logs").await;
    save(&mut a, chat).await;
    report(&mut b, chat, "spam", Some("the note nobody logs")).await;
    drop((a, b));

    // SIGTERM: the node stops as an operator would stop it, and its log ends.
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::timeout(3 * STEP, child.wait())
        .await
        .expect("the node stops")
        .unwrap();
    // Logs go to stderr, as the README says; `serve` prints nothing to stdout.
    let (stdout, log) = (stdout.await.unwrap(), stderr.await.unwrap());
    assert_eq!(stdout, "", "serve wrote to stdout");
    assert!(log.contains("stopped"), "the log is on stderr: {log}");
    assert!(
        log.contains("203.0.113.0/24"),
        "sessions name the network: {log}"
    );
    for private in [
        "the words nobody logs",
        "the note nobody logs",
        "203.0.113.77",
        "198.51.100.23",
    ] {
        assert!(!log.contains(private), "{private} in the node's log: {log}");
    }
}

#[actix_rt::test]
async fn a_client_asking_for_its_data_too_often_gets_429() {
    let server = start_server_with(args());
    let addr = server.addr;
    let a = user(addr, "192.0.2.1", "device-aaaa-7").await;
    let id = a.welcome.client_id.clone();
    for n in 0..tandem_server::privacy::access::ACCESS_PER_HOUR {
        assert_eq!(
            get_json(addr, "/api/privacy/export", Some(&id)).await.0,
            200,
            "{n}"
        );
    }
    let (status, body) = get_json(addr, "/api/privacy/export", Some(&id)).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many requests"),
        "{body}"
    );
    assert_eq!(
        erase(addr, &id).await.0,
        429,
        "erasures count against the same hour"
    );
    server.shutdown().await.unwrap();
}
