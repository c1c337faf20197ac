//! The text filter over real sockets: a withheld line never reaches the partner's socket
//! (the partner's next frame is the sender's next line), and its sender gets `filtered`;
//! links wait until both sides have talked, a blast across chats is withheld and lands in
//! the review queue as the filter's strike, the operator's phrases apply and are read again
//! when the file changes, profanity is masked when asked, and normal lines pass untouched.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{http_request, join_with, start_server_with, test_args, Client, STEP};
use serde_json::Value;
use tandem_ids::ChatId;
use tandem_proto::{ClientMsg, ErrorCode, ServerMsg};
use tandem_server::abuse::filter::{LinkPolicy, Profanity};
use tandem_server::config::ServeArgs;

const TOKEN: &str = "token-of-the-filter-tests-0123";

/// A node that filters as `tandem serve` does by default.
fn args() -> ServeArgs {
    let defaults = ServeArgs::default();
    let mut args = test_args();
    args.filter_links = defaults.filter_links;
    args.blast_chats = defaults.blast_chats;
    args.joins_per_sec = 1_000;
    args.admin_token = vec![format!("fay={TOKEN}")];
    args
}

/// Two fresh users, paired.
async fn pair(addr: SocketAddr) -> (Client, Client, ChatId) {
    let mut a = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    a.send(&join_with(|_| {})).await;
    assert_eq!(a.recv().await, ServerMsg::Waiting);
    b.send(&join_with(|_| {})).await;
    let chat = matched(&mut a).await;
    assert_eq!(matched(&mut b).await, chat);
    (a, b, chat)
}

async fn matched(client: &mut Client) -> ChatId {
    loop {
        match client.recv().await {
            ServerMsg::Matched(m) => return m.chat,
            ServerMsg::Waiting | ServerMsg::Ended { .. } => {}
            other => panic!("expected matched, got {other:?}"),
        }
    }
}

/// `from` writes `text`; `to`'s next frame must be exactly that line.
async fn heard(from: &mut Client, to: &mut Client, chat: ChatId, text: &str) {
    from.say(chat, text).await;
    assert_eq!(
        to.recv().await,
        ServerMsg::Msg {
            chat,
            text: text.to_owned()
        }
    );
}

/// `from` writes `text`, which is withheld: `from` is told `filtered`, and `to` hears
/// nothing of it (its next frame is `from`'s next line).
async fn withheld(from: &mut Client, to: &mut Client, chat: ChatId, text: &str) -> String {
    from.say(chat, text).await;
    let message = from.expect_error(ErrorCode::Filtered).await;
    heard(from, to, chat, "and now something else").await;
    message
}

async fn metric(addr: SocketAddr, prefix: &str) -> u64 {
    let (_, metrics) = common::http_get(addr, "/metrics").await;
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
}

#[actix_rt::test]
async fn a_link_in_a_chats_first_lines_is_withheld_until_both_sides_have_talked() {
    let server = start_server_with(args());
    let (mut a, mut b, chat) = pair(server.addr).await;
    let message = withheld(&mut a, &mut b, chat, "hot pics at spam.example/x").await;
    assert!(message.contains("links"), "{message}");
    withheld(&mut a, &mut b, chat, "mail me: someone@spam.example").await;
    // Ordinary lines, untouched, whatever their characters.
    for text in [
        "hi!",
        "i'm 3.5 hours from here, e.g. far",
        "  spaces  kept  ",
        "héllo 👋",
    ] {
        heard(&mut a, &mut b, chat, text).await;
    }
    // b has written nothing yet: links still wait. Then both have written three lines.
    withheld(&mut a, &mut b, chat, "https://spam.example").await;
    for text in ["hello", "how are you", "fine"] {
        heard(&mut b, &mut a, chat, text).await;
    }
    heard(&mut a, &mut b, chat, "my site is example.org").await;
    // A new chat starts counting again.
    drop(b);
    let (mut c, mut d, chat) = pair(server.addr).await;
    withheld(&mut c, &mut d, chat, "example.org").await;
    assert_eq!(
        metric(server.addr, "tandem_filtered_total{node=").await,
        0,
        "phrases, the first series, withheld nothing"
    );
    let (_, metrics) = common::http_get(server.addr, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("rule=\"link\"") && l.ends_with(" 4")),
        "{metrics}"
    );
    drop((a, c, d));
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_line_blasted_into_many_chats_is_withheld_and_counts_as_a_strike() {
    let server = start_server_with(args());
    let addr = server.addr;
    let spam = "Earn 500 dollars a day from home, ask me how";
    let mut blaster = Client::connect(addr).await;
    blaster.send(&join_with(|_| {})).await;
    assert_eq!(blaster.recv().await, ServerMsg::Waiting);
    let mut partners = Vec::new();
    for n in 1..=5 {
        let mut partner = Client::connect(addr).await;
        partner.send(&join_with(|_| {})).await;
        let chat = matched(&mut blaster).await;
        assert_eq!(matched(&mut partner).await, chat);
        if n < 5 {
            heard(&mut blaster, &mut partner, chat, spam).await;
        } else {
            // The fifth chat: withheld, also in a slightly different spelling.
            let variant = "earn 500 DOLLARS a day from home!! ask me how";
            let message = withheld(&mut blaster, &mut partner, chat, variant).await;
            assert!(message.contains("many chats"), "{message}");
        }
        blaster.send(&ClientMsg::Next).await;
        partners.push(partner);
    }
    // The strike lands in the review queue as the filter's report, with the line.
    let deadline = tokio::time::Instant::now() + STEP;
    let report = loop {
        let bearer = format!("Bearer {TOKEN}");
        let headers = [("authorization", bearer.as_str())];
        let (_, _, body) = http_request(addr, "GET", "/admin/api/reports", &headers, None).await;
        let reports: Value = serde_json::from_str(&body).unwrap();
        if let Some(report) = reports.as_array().and_then(|r| r.first()).cloned() {
            break report;
        }
        assert!(tokio::time::Instant::now() < deadline, "no strike: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report["reported"]["client"], blaster.welcome.client_id);
    assert_eq!(report["reporters"][0]["client"], "filter.blast");
    assert_eq!(report["reporters"][0]["reason"], "spam");
    assert!(
        report["evidence"].to_string().contains("DOLLARS"),
        "{report}"
    );
    // Counted once the automatic rule has seen it too.
    let deadline = tokio::time::Instant::now() + STEP;
    while metric(addr, "tandem_filter_strikes_total").await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the strike not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn operator_phrases_are_withheld_and_read_again_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("phrases.txt");
    std::fs::write(&file, "# scams\nverify your account\nre:gift\\s*cards?\n").unwrap();
    let mut args = args();
    args.filter_file = Some(file.clone());
    args.filter_links = LinkPolicy::Never;
    let server = start_server_with(args);
    let (mut a, mut b, chat) = pair(server.addr).await;
    let message = withheld(&mut a, &mut b, chat, "Please VERIFY your   account here").await;
    assert!(message.contains("not allow"), "{message}");
    withheld(&mut a, &mut b, chat, "want a giftcard?").await;
    heard(&mut a, &mut b, chat, "verify this: cards are fun").await;

    std::fs::write(&file, "crypto doubling\n").unwrap();
    let deadline = tokio::time::Instant::now() + 3 * STEP;
    while metric(server.addr, "tandem_filter_phrases{").await != 1 {
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    heard(&mut a, &mut b, chat, "want a giftcard?").await;
    withheld(&mut a, &mut b, chat, "try crypto doubling today").await;
    let (_, metrics) = common::http_get(server.addr, "/metrics").await;
    assert!(
        metrics.contains("result=\"ok\"} 2") && metrics.contains("rule=\"phrase\"} 3"),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn profanity_is_masked_for_the_partner_when_the_operator_asks() {
    let mut args = args();
    args.profanity = Profanity::Mask;
    let server = start_server_with(args);
    let (mut a, mut b, chat) = pair(server.addr).await;
    a.say(chat, "you are a fucking idiot").await;
    match b.recv().await {
        ServerMsg::Msg { text, .. } => {
            assert!(!text.contains("fucking") && text.contains('*'), "{text}")
        }
        other => panic!("expected the masked line, got {other:?}"),
    }
    heard(&mut a, &mut b, chat, "sorry, have a nice day").await;
    assert_eq!(metric(server.addr, "tandem_filter_masked_total").await, 1);
    server.shutdown().await.unwrap();
}
