//! The web client and the operator dashboard, tested in a real headless Chromium against a
//! node started in this process: video chats that really connect over WebRTC, text chats
//! with the typing indicator and Esc Esc, reconnects, the dashboard's live charts,
//! moderation from both sides (a report, the moderator's ban, the banned screen; reporting
//! the previous stranger after Next or Stop), saved chats (the link read from a fresh page,
//! deleted with its secret) and the "Your data" panel (download, erase); and, over
//! plain HTTP (`web/http.rs`), the handshake's origin check, the dashboard's token, the
//! security headers and TURN credentials (tests/web_http.rs).
//!
//! Screenshots of live pages are saved under `target/web-screenshots/`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cdp::{Browser, Page};
use common::steps::{
    all_chatting, assert_no_problems, chat_id, js, log_contains, screenshot_path, send_message,
    start_chat, BROWSER_STEP,
};
use common::{generous_args, http_get, http_get_with, start_server_with, Client, STEP};
use tandem_proto::{ClientMsg, ServerMsg};
use tandem_server::web::assets;
use tokio::sync::Mutex;

/// Browser tests run one at a time: several Chromiums encoding fake video at once on two
/// cores would make every deadline a coin toss. (Each test has its own thread and runtime;
/// an async mutex lets them queue without blocking one another's executors.)
static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[actix_rt::test]
async fn video_chat_connects_two_browsers_and_next_reaches_a_third() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;

    start_chat(&alice, "video", &[]).await;
    start_chat(&bob, "video", &[]).await;
    all_chatting(&[&alice, &bob]).await;
    let first_chat = chat_id(&alice).await;
    assert_eq!(chat_id(&bob).await, first_chat, "both sides name one chat");

    send_message(&alice, "hi from alice").await;
    bob.wait_for(
        "alice's line",
        &log_contains("Stranger: hi from alice"),
        STEP,
    )
    .await;
    send_message(&bob, "hello alice, bob here").await;
    alice
        .wait_for(
            "bob's line",
            &log_contains("Stranger: hello alice, bob here"),
            STEP,
        )
        .await;
    assert!(
        alice
            .eval(&log_contains("You: hi from alice"))
            .await
            .as_bool()
            .unwrap(),
        "one's own line is shown too"
    );

    for page in [&alice, &bob] {
        page.wait_for(
            "the peer connection",
            "window.tandem.pc?.connectionState === 'connected'",
            BROWSER_STEP,
        )
        .await;
        page.wait_for(
            "the stranger's video to play",
            "(() => { const v = document.getElementById('remote-video'); \
              return v.videoWidth > 0 && !v.paused && v.readyState >= 2; })()",
            BROWSER_STEP,
        )
        .await;
    }
    // The media really flowed peer to peer, to a loopback candidate (see cdp::LOOPBACK_ONLY;
    // the local end may be bound to another of this machine's own addresses).
    let pair = alice
        .eval(
            "window.tandem.pc.getStats().then(stats => { \
               let pair = null; \
               stats.forEach(r => { if (r.type === 'transport' && r.selectedCandidatePairId) \
                 pair = stats.get(r.selectedCandidatePairId); }); \
               if (!pair) return null; \
               const local = stats.get(pair.localCandidateId); \
               const remote = stats.get(pair.remoteCandidateId); \
               return [local.address, remote.address, remote.candidateType]; })",
        )
        .await;
    let loopback = |address: &serde_json::Value| address == "127.0.0.1" || address == "::1";
    assert!(
        loopback(&pair[1]) || (pair[1] == "" && pair[2] == "prflx"),
        "remote side on loopback (a peer-reflexive address is not shown): {pair}"
    );
    alice
        .wait_for(
            "video bytes received over the peer connection",
            "window.tandem.pc.getStats().then(stats => [...stats.values()].some(r => \
               r.type === 'inbound-rtp' && r.kind === 'video' && r.bytesReceived > 0))",
            STEP,
        )
        .await;
    alice
        .wait_for(
            "the local preview",
            "document.getElementById('local-video').videoWidth > 0",
            STEP,
        )
        .await;
    alice.screenshot(&screenshot_path("video-chat.png")).await;

    // A third user arrives; alice skips bob and meets her.
    let carol = browser.page("carol", &url).await;
    start_chat(&carol, "video", &[]).await;
    carol
        .wait_for("carol waiting", "window.tandem.phase === 'waiting'", STEP)
        .await;
    alice.eval("window.previousPc = window.tandem.pc").await;
    alice.click("#next").await;
    for page in [&alice, &carol] {
        page.wait_for(
            "the next match",
            &format!(
                "window.tandem.phase === 'chatting' && window.tandem.chat !== {}",
                js(&first_chat)
            ),
            BROWSER_STEP,
        )
        .await;
    }
    assert_eq!(chat_id(&alice).await, chat_id(&carol).await);
    bob.wait_for(
        "bob told he was skipped",
        &format!(
            "{} && window.tandem.phase === 'ended' && \
             document.getElementById('remote-note').textContent === 'Stranger skipped you.'",
            log_contains("Stranger skipped you.")
        ),
        STEP,
    )
    .await;
    alice
        .wait_for(
            "the old call torn down and a new one made",
            "window.previousPc.connectionState === 'closed' && window.tandem.pc !== window.previousPc",
            STEP,
        )
        .await;
    for page in [&alice, &carol] {
        page.wait_for(
            "the new peer connection",
            "window.tandem.pc?.connectionState === 'connected' && \
             document.getElementById('remote-video').videoWidth > 0",
            BROWSER_STEP,
        )
        .await;
    }
    send_message(&carol, "carol says hi").await;
    alice
        .wait_for(
            "carol's line",
            &log_contains("Stranger: carol says hi"),
            STEP,
        )
        .await;
    assert!(
        !bob.eval(&log_contains("carol says hi"))
            .await
            .as_bool()
            .unwrap(),
        "a line for the new chat never reaches the old partner"
    );

    // Stop returns to the landing view; the partner is told.
    carol.click("#stop").await;
    carol
        .wait_for(
            "the landing view",
            "window.tandem.phase === 'landing' && !document.getElementById('landing').hidden \
             && document.getElementById('chat').hidden",
            STEP,
        )
        .await;
    alice
        .wait_for(
            "alice told carol left",
            &log_contains("Stranger left the chat."),
            STEP,
        )
        .await;
    assert_no_problems(&[&alice, &bob, &carol]);
    drop(browser);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn text_chat_shows_typing_common_interests_and_esc_twice_skips() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let mut args = generous_args();
    args.country_header = Some("X-Test-Country".into());
    let server = start_server_with(args);
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;
    // Bob comes through a proxy that knows he is in Germany.
    bob.extra_headers(serde_json::json!({"X-Test-Country": "DE"}))
        .await;

    start_chat(&alice, "text", &["music", "chess"]).await;
    start_chat(&bob, "text", &["Music"]).await;
    for page in [&alice, &bob] {
        page.wait_for(
            "a match",
            &format!(
                "window.tandem.phase === 'chatting' && {}",
                log_contains("You're now chatting with a random stranger. You both like music.")
            ),
            BROWSER_STEP,
        )
        .await;
    }
    assert_eq!(
        alice
            .eval("document.getElementById('chat-status').textContent")
            .await,
        "Connected to a stranger from Germany",
        "the partner's country, named in the user's language"
    );
    assert_eq!(
        bob.eval("document.getElementById('chat-status').textContent")
            .await,
        "Connected to a stranger",
        "an unknown country is not shown"
    );
    assert!(
        alice
            .eval("document.getElementById('stage').hidden")
            .await
            .as_bool()
            .unwrap(),
        "no video in a text chat"
    );

    // Typing shows "Stranger is typing…" on the other side; the line itself clears it.
    alice.type_into("#message", "do you play").await;
    bob.wait_for(
        "the typing indicator",
        "document.getElementById('typing').textContent === 'Stranger is typing…'",
        STEP,
    )
    .await;
    alice.type_into("#message", " the piano?").await;
    alice.press("Enter").await;
    bob.wait_for(
        "the line, and the indicator gone",
        &format!(
            "{} && document.getElementById('typing').textContent === ''",
            log_contains("Stranger: do you play the piano?")
        ),
        STEP,
    )
    .await;
    bob.type_into("#message", "a little").await;
    alice
        .wait_for(
            "bob typing",
            "document.getElementById('typing').textContent === 'Stranger is typing…'",
            STEP,
        )
        .await;
    bob.eval(
        "(() => { const m = document.getElementById('message'); m.value = ''; \
         m.dispatchEvent(new Event('input')); })()",
    )
    .await;
    alice
        .wait_for(
            "the indicator off once bob cleared his line",
            "document.getElementById('typing').textContent === ''",
            STEP,
        )
        .await;
    send_message(&bob, "Oui, un peu ! Mostly jazz standards.").await;
    alice
        .wait_for(
            "bob's line",
            &log_contains("Stranger: Oui, un peu ! Mostly jazz standards."),
            STEP,
        )
        .await;
    send_message(&alice, "Nice, same here. Favourite pianist?").await;
    bob.type_into("#message", "Bill Ev").await;
    alice
        .wait_for(
            "bob typing again",
            "document.getElementById('typing').textContent === 'Stranger is typing…'",
            STEP,
        )
        .await;
    alice.screenshot(&screenshot_path("text-chat.png")).await;
    bob.eval("document.getElementById('message').value = ''")
        .await;

    // One Esc only arms the skip; the second one skips.
    bob.press("Escape").await;
    bob.wait_for(
        "the skip armed",
        "document.getElementById('next-label').textContent === 'Really?'",
        STEP,
    )
    .await;
    assert_eq!(
        bob.eval("window.tandem.phase").await,
        "chatting",
        "one Esc does not skip"
    );
    bob.press("Escape").await;
    bob.wait_for(
        "bob looking again",
        &format!(
            "window.tandem.phase === 'waiting' && {}",
            log_contains("You skipped this stranger.")
        ),
        STEP,
    )
    .await;
    alice
        .wait_for(
            "alice told",
            &format!(
                "window.tandem.phase === 'ended' && {}",
                log_contains("Stranger skipped you.")
            ),
            STEP,
        )
        .await;
    // Alice, idle, starts again with one Esc (the button reads "New"); bob is waiting, but
    // they just met, so they are paired again only because nobody else is here.
    assert_eq!(
        alice
            .eval("document.getElementById('next-label').textContent")
            .await,
        "New"
    );
    alice.press("Escape").await;
    for page in [&alice, &bob] {
        page.wait_for(
            "a new chat",
            "window.tandem.phase === 'chatting'",
            BROWSER_STEP,
        )
        .await;
    }

    // A phone-sized screen keeps the whole chat usable.
    alice.viewport(390, 760, true).await;
    alice
        .wait_for(
            "the composer within the screen",
            "(() => { const r = document.getElementById('send').getBoundingClientRect(); \
              return r.bottom <= window.innerHeight && r.right <= window.innerWidth; })()",
            STEP,
        )
        .await;
    alice
        .screenshot(&screenshot_path("text-chat-phone.png"))
        .await;
    assert_no_problems(&[&alice, &bob]);
    drop(browser);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_chat_reconnects_after_the_connection_drops() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    start_chat(&alice, "text", &[]).await;
    alice
        .wait_for("waiting", "window.tandem.phase === 'waiting'", STEP)
        .await;
    // Close the connection under the page, as a restarting node does (error server_shutdown,
    // close 1012); the node itself stays up to take the reconnect.
    server
        .node
        .registry()
        .broadcast(&tandem_engine::session::SessionEvent::Shutdown);
    alice
        .wait_for(
            "the reconnect banner",
            "!document.getElementById('banner').hidden",
            STEP,
        )
        .await;
    alice
        .wait_for(
            "back and looking again",
            &format!(
                "document.getElementById('banner').hidden && window.tandem.connected && \
                 window.tandem.phase === 'waiting' && {}",
                log_contains("Reconnected.")
            ),
            BROWSER_STEP,
        )
        .await;
    // And it works: a stranger arriving now meets her.
    let mut bob = Client::connect(server.addr).await;
    bob.join().await;
    let chat = bob.matched().await.chat;
    alice
        .wait_for("matched", "window.tandem.phase === 'chatting'", STEP)
        .await;
    // Lines take their direction from their own text.
    bob.say(chat, "مرحبا، من أين أنت؟").await;
    let dir = alice
        .wait_for(
            "bob's Arabic line",
            "(() => { const t = document.querySelector('#log .line.stranger .text');               return t ? [t.dir, getComputedStyle(t).direction] : null; })()",
            STEP,
        )
        .await;
    assert_eq!(dir, serde_json::json!(["auto", "rtl"]));
    // Bob's connection drops without a word: alice is told it was lost, not that he left.
    drop(bob);
    alice
        .wait_for(
            "alice told the connection was lost",
            &format!(
                "window.tandem.phase === 'ended' && {} && \
                 document.getElementById('remote-note').textContent === \"Stranger's connection was lost.\"",
                log_contains("Stranger's connection was lost.")
            ),
            STEP,
        )
        .await;
    drop(browser);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_blocked_camera_is_explained_and_text_chat_still_starts() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let origin = format!("http://{}", server.addr);
    let browser = Browser::launch_with(false).await;
    let alice = browser.page("alice", &format!("{origin}/")).await;

    // Start without the confirmation: refused, and nothing is sent.
    alice.click("#start").await;
    alice
        .wait_for(
            "the 18+ reminder",
            "document.getElementById('start-error').textContent.includes('18 or older') \
             && !document.getElementById('landing').hidden",
            STEP,
        )
        .await;

    // The user once answered the browser's prompt with "block".
    for device in ["camera", "microphone"] {
        browser
            .set_permission(&alice, device, "denied", &origin)
            .await;
    }

    start_chat(&alice, "video", &[]).await;
    alice
        .wait_for(
            "the camera error, in plain words",
            "document.getElementById('start-error').textContent.includes('blocked') \
             && window.tandem.phase === 'landing'",
            STEP,
        )
        .await;
    // Text needs no camera.
    alice.click("#mode-text").await;
    alice.click("#start").await;
    alice
        .wait_for("waiting", "window.tandem.phase === 'waiting'", STEP)
        .await;
    drop(browser);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_dashboard_draws_live_figures_and_refuses_wrong_tokens() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let mut args = generous_args();
    args.admin_token = vec![ADMIN_TOKEN.to_owned()];
    let server = start_server_with(args);
    let browser = Browser::launch().await;

    // A wrong token in the form is refused with a message.
    let intruder = browser
        .page("intruder", &format!("http://{}/admin", server.addr))
        .await;
    intruder
        .wait_for(
            "the sign-in form",
            "!document.getElementById('login').hidden",
            STEP,
        )
        .await;
    intruder.type_into("#token", "not-the-token").await;
    intruder.press("Enter").await;
    intruder
        .wait_for(
            "the refusal",
            "document.getElementById('login-error').textContent.includes('not right') \
             && document.getElementById('dashboard').hidden",
            STEP,
        )
        .await;

    // Some users chat and skip while the operator watches.
    let traffic = actix_rt::spawn(simulated_users(server.addr, Duration::from_secs(6)));
    let operator = browser
        .page(
            "operator",
            &format!("http://{}/admin?token={ADMIN_TOKEN}", server.addr),
        )
        .await;
    operator
        .wait_for(
            "the dashboard",
            "!document.getElementById('dashboard').hidden && location.search === ''",
            STEP,
        )
        .await;
    operator
        .wait_for(
            "users online",
            "Number(document.getElementById('kpi-online').textContent) >= 4",
            STEP,
        )
        .await;
    operator
        .wait_for(
            "matches per second and a latency",
            "document.getElementById('kpi-matches').textContent !== '–' && \
             document.getElementById('kpi-p50').textContent.match(/s$/) && \
             document.querySelectorAll('#shards tr').length === 2",
            STEP,
        )
        .await;
    traffic.await.unwrap();
    operator
        .wait_for(
            "errors by code",
            "document.querySelectorAll('#errors tr').length > 0 && \
             document.getElementById('errors-empty').hidden",
            STEP,
        )
        .await;
    operator.screenshot(&screenshot_path("admin.png")).await;

    // The chart arithmetic: Prometheus-style quantiles over bucket differences.
    let charts = format!("/admin/assets/{}/charts.js", assets::version());
    let checks = operator
        .eval(&format!(
            "import({}).then(m => [
                m.quantile([0.001, 0.01], [0, 10, 0], 0.5),
                m.quantile([0.001, 0.01], [10, 0, 0], 0.99),
                m.quantile([0.001, 0.01], [0, 0, 5], 0.5),
                m.quantile([0.001, 0.01], [0, 0, 0], 0.5),
                m.difference([5, 7], [2, 3]),
                m.rate(30, 10, 2),
                m.rate(3, 10, 2)])",
            js(&charts)
        ))
        .await;
    let number = |i: usize| checks[i].as_f64().unwrap();
    assert!((number(0) - 0.0055).abs() < 1e-9, "{checks}");
    assert!((number(1) - 0.00099).abs() < 1e-9, "{checks}");
    assert_eq!(number(2), 0.01, "above every bound: the highest bound");
    assert!(checks[3].is_null(), "no observations, no quantile");
    assert_eq!(checks[4], serde_json::json!([3, 4]));
    assert_eq!(number(5), 10.0);
    assert_eq!(number(6), 0.0, "a counter reset is not a negative rate");
    assert_no_problems(&[&operator]);
    drop(browser);
    server.shutdown().await.unwrap();
}

/// What the chat page says once a report is filed.
const REPORTED: &str = "Thanks. You won't be matched with this person again.";

/// The reasons the report dialog offers, in order (the protocol's names).
const REASONS: [&str; 7] = [
    "nudity",
    "minor",
    "harassment",
    "hate",
    "spam",
    "scam",
    "other",
];

/// Starts text chats on both pages and waits until they are paired; returns the chat id.
async fn pair_in_text(a: &Page, b: &Page) -> String {
    start_chat(a, "text", &[]).await;
    start_chat(b, "text", &[]).await;
    all_chatting(&[a, b]).await;
    let chat = chat_id(a).await;
    assert_eq!(chat_id(b).await, chat, "both sides name one chat");
    chat
}

/// Sends a line from `from` and waits until `to` shows it.
async fn say(from: &Page, to: &Page, text: &str) {
    send_message(from, text).await;
    to.wait_for(
        "the line",
        &log_contains(&format!("Stranger: {text}")),
        STEP,
    )
    .await;
}

/// Fills the open report dialog (a reason, a note) and confirms it.
async fn fill_report(page: &Page, reason: &str, note: &str) {
    page.wait_for(
        "the report dialog",
        "document.getElementById('report-dialog').open",
        STEP,
    )
    .await;
    page.click(&format!("#report-form input[name=reason][value={reason}]"))
        .await;
    if !note.is_empty() {
        page.type_into("#report-note", note).await;
    }
    page.click("#report-confirm").await;
}

/// Waits until the page shows the report's confirmation.
async fn confirmed(page: &Page) {
    page.wait_for(
        "the report's confirmation",
        &format!(
            "!document.getElementById('report-bar').hidden && \
             document.getElementById('report-status').textContent === {}",
            js(REPORTED)
        ),
        STEP,
    )
    .await;
}

/// The page's device hint, checked to be what the node accepts.
async fn device_of(page: &Page) -> String {
    let device = page.eval("localStorage.getItem('tandem.device')").await;
    let device = device.as_str().expect("a device hint in localStorage");
    assert!(
        device.len() == 22
            && device
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "22 characters of base64url: {device}"
    );
    device.to_owned()
}

/// The report queue over the API, as the dashboard reads it.
async fn open_reports(addr: SocketAddr) -> Vec<serde_json::Value> {
    let (status, _, body) = http_get_with(
        addr,
        "/admin/api/reports?status=open",
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[actix_rt::test]
async fn a_moderator_bans_from_the_reports_page_and_the_reported_page_shows_the_banned_screen() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let mut args = generous_args();
    args.admin_token = vec![format!("ana={ADMIN_TOKEN}")];
    let server = start_server_with(args);
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;

    pair_in_text(&alice, &bob).await;
    say(&alice, &bob, "hi").await;
    say(&bob, &alice, "send me 50 euros or I post your picture").await;
    say(&bob, &alice, "<b>now</b> & quickly").await;

    // Alice reports bob through the dialog: seven reasons, none chosen for her.
    alice.click("#report").await;
    alice
        .wait_for(
            "the report dialog",
            "document.getElementById('report-dialog').open",
            STEP,
        )
        .await;
    let offered = alice
        .eval(
            "[...document.querySelectorAll('#report-form input[name=reason]')] \
             .map(i => [i.value, i.checked, i.closest('label').textContent.trim()])",
        )
        .await;
    let offered = offered.as_array().unwrap();
    let names: Vec<&str> = offered.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(names, REASONS);
    assert!(
        offered.iter().all(|r| r[1] == false),
        "no reason chosen in advance"
    );
    assert_eq!(offered[1][2], "Appears to be under 18");
    assert_eq!(
        alice
            .eval("document.getElementById('report-note').maxLength")
            .await,
        500
    );
    // Without a reason the dialog stays open (and nothing is sent).
    alice.click("#report-confirm").await;
    assert!(
        alice
            .eval("document.getElementById('report-dialog').open")
            .await
            .as_bool()
            .unwrap(),
        "a report needs a reason"
    );
    fill_report(&alice, "harassment", "threatens to post my picture").await;
    confirmed(&alice).await;
    // Report and skip: alice looks for someone else, bob is told the chat is over.
    alice
        .wait_for(
            "alice looking again",
            &format!(
                "window.tandem.phase === 'waiting' && {}",
                log_contains("You skipped this stranger.")
            ),
            STEP,
        )
        .await;
    bob.wait_for(
        "bob told",
        &format!(
            "window.tandem.phase === 'ended' && {}",
            log_contains("Stranger skipped you.")
        ),
        STEP,
    )
    .await;
    assert!(
        alice
            .eval("document.getElementById('report-previous').hidden")
            .await
            .as_bool()
            .unwrap(),
        "a reported chat is not offered again"
    );

    // The moderator opens the dashboard and the Reports page.
    let operator = browser
        .page(
            "operator",
            &format!("http://{}/admin?token={ADMIN_TOKEN}", server.addr),
        )
        .await;
    operator
        .wait_for(
            "the dashboard, one open report counted",
            "!document.getElementById('dashboard').hidden && \
             document.getElementById('reports-count').textContent === '1'",
            STEP,
        )
        .await;
    operator.click("#tab-reports").await;
    let card = "document.querySelector('#reports .report')";
    operator
        .wait_for(
            "the report, with the line bob wrote",
            &format!(
                "location.hash === '#reports' && !document.getElementById('panel-reports').hidden \
                 && {card} && [...{card}.querySelectorAll('.evidence-line.from-reported .text')] \
                   .some(t => t.textContent === {})",
                js("send me 50 euros or I post your picture")
            ),
            STEP,
        )
        .await;
    let shown = operator
        .eval(&format!(
            "(() => {{ const card = {card}; return {{
                reason: card.querySelector('h2').textContent,
                note: card.querySelector('.report-note').textContent,
                lines: [...card.querySelectorAll('.evidence-line')].map(l =>
                    [l.classList.contains('from-reported') ? 'reported' : 'reporter',
                     l.querySelector('.text').textContent]),
                markup: card.querySelectorAll('.evidence b').length,
                facts: card.querySelector('.facts').textContent,
            }}; }})()"
        ))
        .await;
    assert_eq!(shown["reason"], "Harassment, threats or bullying");
    assert!(
        shown["note"]
            .as_str()
            .unwrap()
            .contains("threatens to post my picture"),
        "{shown}"
    );
    assert_eq!(
        shown["lines"],
        serde_json::json!([
            ["reporter", "hi"],
            ["reported", "send me 50 euros or I post your picture"],
            ["reported", "<b>now</b> & quickly"],
        ]),
        "every line, in order, as text"
    );
    assert_eq!(shown["markup"], 0, "a chat line is never HTML");
    assert!(
        shown["facts"].as_str().unwrap().contains("127.0.0.1"),
        "{shown}"
    );
    operator
        .screenshot(&screenshot_path("admin-reports.png"))
        .await;

    // Bob's page counts its WebSockets from now on: a ban must not start a reconnect loop.
    bob.eval(
        "(() => { const Native = WebSocket; window.socketsOpened = 0; \
           window.WebSocket = class extends Native { \
             constructor(...args) { super(...args); window.socketsOpened += 1; } }; })()",
    )
    .await;
    // Ban for a day, in one click.
    operator
        .eval(&format!(
            "{card}.querySelector('.report-duration').value = '86400'"
        ))
        .await;
    operator.click("#reports .report .report-ban").await;
    bob.wait_for(
        "the banned screen",
        "window.tandem.phase === 'banned' && !document.getElementById('banned').hidden \
         && document.getElementById('chat').hidden && document.getElementById('landing').hidden",
        STEP,
    )
    .await;
    let banned = bob
        .eval(
            "({ reason: document.getElementById('banned-reason').textContent, \
                until: document.getElementById('banned-until').textContent, \
                left_s: (Date.parse(document.querySelector('#banned-until time').dateTime) \
                         - Date.now()) / 1000, \
                focused: document.activeElement.id })",
        )
        .await;
    assert!(
        banned["reason"].as_str().unwrap().contains("harassment"),
        "why: {banned}"
    );
    assert!(
        banned["until"]
            .as_str()
            .unwrap()
            .starts_with("You are banned until "),
        "{banned}"
    );
    let left = banned["left_s"].as_f64().unwrap();
    assert!(
        (86_400.0 - 120.0..=86_400.0 + 5.0).contains(&left),
        "{banned}"
    );
    assert_eq!(banned["focused"], "banned-title", "the news gets the focus");
    operator
        .wait_for(
            "the queue empty again",
            "document.getElementById('reports-notice').textContent.includes('banned') \
             && !document.getElementById('reports-empty').hidden \
             && document.getElementById('reports-count').hidden",
            STEP,
        )
        .await;
    bob.screenshot(&screenshot_path("banned.png")).await;
    // Once the node's close arrives, no reconnect is scheduled (and `open()` refuses one).
    bob.wait_for(
        "the socket closed for good",
        "window.tandem.link === 'closed'",
        STEP,
    )
    .await;
    assert_eq!(
        bob.eval("[window.socketsOpened, window.tandem.connected, document.getElementById('banner').hidden]")
            .await,
        serde_json::json!([0, false, true]),
        "a banned page stays disconnected, without a reconnect banner"
    );

    // Coming back later is refused at the handshake, with the same screen: the connection
    // opens at the first touch of the form, and pressing Start after the refusal keeps it.
    bob.goto(&url).await;
    bob.wait_for("the form", "window.tandem?.phase === 'landing'", STEP)
        .await;
    bob.click("#adult").await;
    let banned_screen = "window.tandem.phase === 'banned' && \
         !document.getElementById('banned').hidden && \
         document.getElementById('banned-reason').textContent.includes('harassment')";
    bob.wait_for(
        "the banned screen at the handshake",
        banned_screen,
        BROWSER_STEP,
    )
    .await;
    bob.eval("document.getElementById('start').click()").await;
    bob.wait_for("still the banned screen after Start", banned_screen, STEP)
        .await;
    assert_eq!(
        bob.eval("window.tandem.phase").await,
        serde_json::json!("banned")
    );

    // The Bans page: the ban is active; the moderator issues another and lifts bob's.
    operator.click("#tab-bans").await;
    operator
        .wait_for(
            "bob's ban, active",
            "[...document.querySelectorAll('#bans tr.active')].some(r => \
               r.textContent.includes('harassment') && r.textContent.includes('ana'))",
            STEP,
        )
        .await;
    operator
        .eval("document.getElementById('ban-kind').value = 'ip'")
        .await;
    operator.type_into("#ban-value", "192.0.2.7").await;
    operator
        .eval("document.getElementById('ban-duration').value = '3600'")
        .await;
    operator.type_into("#ban-reason", "spam bot").await;
    operator.click("#ban-submit").await;
    operator
        .wait_for(
            "the new ban listed",
            "[...document.querySelectorAll('#bans tr.active')].some(r => \
               r.textContent.includes('192.0.2.7') && r.textContent.includes('spam bot'))",
            STEP,
        )
        .await;
    operator
        .eval(
            "[...document.querySelectorAll('#bans tr.active')] \
               .find(r => r.textContent.includes('harassment')) \
               .querySelector('button[data-lift]').click()",
        )
        .await;
    operator
        .wait_for(
            "bob's ban lifted",
            "[...document.querySelectorAll('#bans tr.inactive')].some(r => \
               r.textContent.includes('harassment') && r.textContent.includes('Lifted'))",
            STEP,
        )
        .await;
    operator.click("#tab-audit").await;
    operator
        .wait_for(
            "the audit log",
            "(() => { const rows = [...document.querySelectorAll('#audit tr')] \
                 .map(r => [...r.cells].map(c => c.textContent)); \
               return ['lift', 'ban', 'resolve_ban'].every(a => \
                 rows.some(r => r[1] === 'ana' && r[2] === a)); })()",
            STEP,
        )
        .await;

    // Lifted: bob may chat again.
    bob.goto(&url).await;
    start_chat(&bob, "text", &[]).await;
    bob.wait_for(
        "bob looking for someone",
        "window.tandem.phase === 'waiting'",
        BROWSER_STEP,
    )
    .await;
    assert_no_problems(&[&alice, &bob, &operator]);
    drop(browser);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_previous_stranger_can_be_reported_after_next_and_after_stop() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let mut args = generous_args();
    args.admin_token = vec![ADMIN_TOKEN.to_owned()];
    let server = start_server_with(args);
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;

    let chat = pair_in_text(&alice, &bob).await;
    let (alice_device, bob_device) = (device_of(&alice).await, device_of(&bob).await);
    assert_ne!(alice_device, bob_device, "a device hint of its own");
    say(&bob, &alice, "cheap followers at spam.example").await;

    // Alice presses Next: the chat is over, and she is offered to report bob.
    alice.click("#next").await;
    let offered = format!(
        "!document.getElementById('report-bar').hidden && \
         !document.getElementById('report-previous').hidden && \
         window.tandem.previousChat === {}",
        js(&chat)
    );
    alice
        .wait_for(
            "the previous stranger offered",
            &format!("window.tandem.phase === 'waiting' && {offered}"),
            STEP,
        )
        .await;
    bob.wait_for(
        "bob told, and offered too",
        &format!("window.tandem.phase === 'ended' && {offered}"),
        STEP,
    )
    .await;
    alice.click("#report-previous").await;
    alice
        .wait_for(
            "the dialog about the previous stranger",
            "document.getElementById('report-dialog').open && \
             document.getElementById('report-title').textContent === 'Report the previous stranger' \
             && document.getElementById('report-confirm').textContent === 'Report'",
            STEP,
        )
        .await;
    fill_report(&alice, "spam", "").await;
    confirmed(&alice).await;
    alice
        .wait_for(
            "the offer gone once used",
            "document.getElementById('report-previous').hidden && window.tandem.phase === 'waiting'",
            STEP,
        )
        .await;
    let queue = open_reports(server.addr).await;
    assert_eq!(queue.len(), 1, "{queue:#?}");
    assert_eq!(queue[0]["chat"], chat.as_str());
    assert_eq!(queue[0]["reason"], "spam");
    assert_eq!(queue[0]["note"], serde_json::Value::Null);
    assert_eq!(queue[0]["reported"]["device"], bob_device.as_str());
    assert_eq!(
        queue[0]["evidence"][0]["text"], "cheap followers at spam.example",
        "{queue:#?}"
    );

    // Bob stops; the landing page keeps offering to report alice for the minute.
    bob.click("#stop").await;
    bob.wait_for(
        "the landing view, still offering",
        &format!("window.tandem.phase === 'landing' && !document.getElementById('landing').hidden && {offered}"),
        STEP,
    )
    .await;
    bob.click("#report-previous").await;
    fill_report(&bob, "other", "reported me for nothing").await;
    confirmed(&bob).await;
    bob.wait_for(
        "the connection closed once nothing needs it",
        "!window.tandem.connected && document.getElementById('report-previous').hidden",
        STEP,
    )
    .await;
    let queue = open_reports(server.addr).await;
    let about_alice = queue
        .iter()
        .find(|r| r["reported"]["device"] == alice_device.as_str())
        .unwrap_or_else(|| panic!("bob's report: {queue:#?}"));
    assert_eq!(about_alice["reason"], "other");
    assert_eq!(about_alice["note"], "reported me for nothing");

    // The notice stays until it is dismissed.
    alice.click("#report-status-close").await;
    alice
        .wait_for(
            "the notice dismissed",
            "document.getElementById('report-bar').hidden",
            STEP,
        )
        .await;
    assert_no_problems(&[&alice, &bob]);
    drop(browser);
    server.shutdown().await.unwrap();
}

/// Waits until the page has saved a chat and returns its `log_saved`, checked to be what the
/// node promises: path-absolute, a 32-hex id, and the delete address under it.
async fn saved_log(page: &Page) -> serde_json::Value {
    let saved = page
        .wait_for("the saved chat's link", "window.tandem.savedLog", STEP)
        .await;
    let url = saved["url"].as_str().expect("a url");
    let id = url.strip_prefix("/logs/").expect("a path under /logs/");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "a 32-hex id: {saved}"
    );
    assert!(
        saved["delete_url"]
            .as_str()
            .expect("a delete_url")
            .starts_with(&format!("{url}/delete?key=")),
        "{saved}"
    );
    saved
}

#[actix_rt::test]
async fn a_saved_chat_opens_from_its_link_in_a_fresh_page_and_is_deleted_with_its_secret() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;
    let carol = browser.page("carol", &url).await;

    // A first chat, with bob, that must not end up in the log alice saves later.
    start_chat(&alice, "text", &["fruit", "chess"]).await;
    start_chat(&bob, "text", &["fruit"]).await;
    all_chatting(&[&alice, &bob]).await;
    let first_chat = chat_id(&alice).await;
    say(&alice, &bob, "apples from alice").await;
    say(&bob, &alice, "apples from bob").await;

    // Alice skips bob and meets carol; the chat under way can be saved too.
    alice.click("#next").await;
    start_chat(&carol, "text", &["chess"]).await;
    for page in [&alice, &carol] {
        page.wait_for(
            "the second match",
            &format!(
                "window.tandem.phase === 'chatting' && window.tandem.chat !== {}",
                js(&first_chat)
            ),
            BROWSER_STEP,
        )
        .await;
    }
    let chat = chat_id(&alice).await;
    assert_eq!(chat_id(&carol).await, chat, "both sides name one chat");
    alice
        .wait_for(
            "saving offered during the chat",
            "!document.getElementById('save-bar').hidden && \
             !document.getElementById('save-log').hidden",
            STEP,
        )
        .await;
    say(&alice, &carol, "bananas from alice").await;
    say(&carol, &alice, "bananas from carol, <b>bold</b> & all").await;

    // Carol moves on; alice saves the chat that just ended.
    carol.click("#next").await;
    alice
        .wait_for(
            "the chat over, still offered for saving",
            "window.tandem.phase === 'ended' && !document.getElementById('save-log').hidden",
            STEP,
        )
        .await;
    alice.click("#save-log").await;
    let saved = saved_log(&alice).await;
    assert_eq!(saved["chat"], chat.as_str(), "the chat that ended last");
    let log_path = saved["url"].as_str().unwrap().to_owned();
    let notice = alice
        .eval(
            "(() => { const link = document.getElementById('saved-log-link'); \
               const remove = document.getElementById('saved-log-delete'); \
               return { href: link.href, text: link.textContent, target: link.target, \
                 rel: link.rel, remove: remove.href, removeTarget: remove.target, \
                 shown: !document.getElementById('save-bar').hidden \
                   && !document.getElementById('saved-log').hidden, \
                 offered: !document.getElementById('save-log').hidden, \
                 status: document.getElementById('save-status').textContent }; })()",
        )
        .await;
    let link = format!("http://{}{log_path}", server.addr);
    let delete_link = format!(
        "http://{}{}",
        server.addr,
        saved["delete_url"].as_str().unwrap()
    );
    assert_eq!(notice["href"], link.as_str(), "an absolute link: {notice}");
    assert_eq!(
        notice["text"],
        link.as_str(),
        "the address is shown: {notice}"
    );
    assert_eq!(notice["target"], "_blank", "{notice}");
    assert_eq!(notice["rel"], "noopener", "{notice}");
    assert_eq!(notice["remove"], delete_link.as_str(), "{notice}");
    assert_eq!(notice["removeTarget"], "_blank", "{notice}");
    assert_eq!(notice["shown"], true, "{notice}");
    assert_eq!(
        notice["offered"], false,
        "a saved chat is not offered again"
    );
    assert_eq!(notice["status"], "Chat saved.");
    alice.screenshot(&screenshot_path("saved-chat.png")).await;

    // Anyone with the link reads it, with no cookie of the site: a fresh browser context.
    let reader = browser.page("reader", &link).await;
    let text = reader
        .wait_for(
            "the saved chat",
            "document.body.innerText.includes('bananas from carol') && document.body.innerText",
            STEP,
        )
        .await;
    let text = text.as_str().unwrap();
    for expected in [
        "bananas from alice",
        "bananas from carol, <b>bold</b> & all",
        "chess",
        "You",
        "Stranger",
    ] {
        assert!(text.contains(expected), "{expected:?} in the page:\n{text}");
    }
    assert!(!text.contains("apples"), "no line of another chat:\n{text}");
    assert_eq!(
        reader.eval("document.querySelectorAll('b').length").await,
        0,
        "a chat line is never HTML"
    );
    let (status, _, body) =
        http_get_with(server.addr, &log_path, &[("accept", "application/json")]).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let lines: Vec<(&str, &str)> = json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["from"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [
            ("you", "bananas from alice"),
            ("stranger", "bananas from carol, <b>bold</b> & all")
        ],
        "{json}"
    );
    assert_eq!(json["common_interests"], serde_json::json!(["chess"]));
    assert_eq!(json["id"], log_path.trim_start_matches("/logs/"));

    // The delete link asks first, then deletes; the link is gone for everyone.
    reader.goto(&delete_link).await;
    reader
        .wait_for(
            "the delete page",
            "document.getElementById('delete-log') !== null",
            STEP,
        )
        .await;
    reader.click("#delete-log").await;
    reader
        .wait_for(
            "the deleted page",
            "document.querySelector('h1')?.textContent.trim() === 'Deleted'",
            STEP,
        )
        .await;
    let (status, _) = http_get(server.addr, &log_path).await;
    assert_eq!(status, 404, "a deleted chat is gone");
    assert_no_problems(&[&alice, &bob, &carol, &reader]);
    drop(browser);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn your_data_downloads_and_erases_what_the_node_keeps() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;

    // A browser that never connected has nothing stored (the node answers 401; the browser
    // logs that failed load, so this page is left out of the console check).
    let newcomer = browser.page("newcomer", &url).await;
    newcomer.click("#export-data").await;
    newcomer
        .wait_for(
            "nothing stored",
            "document.getElementById('your-data-summary').textContent === \
             'Nothing is stored for this browser yet.'",
            STEP,
        )
        .await;

    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;
    pair_in_text(&alice, &bob).await;
    say(&alice, &bob, "hello bob").await;
    say(&bob, &alice, "hi alice").await;

    // Alice stops; on the landing view the chat can still be saved while the page keeps the
    // connection.
    alice.click("#stop").await;
    alice
        .wait_for(
            "the landing view, offering to save",
            "window.tandem.phase === 'landing' && !document.getElementById('landing').hidden \
             && !document.getElementById('save-log').hidden",
            STEP,
        )
        .await;
    alice.click("#save-log").await;
    let saved = saved_log(&alice).await;
    let log_path = saved["url"].as_str().unwrap().to_owned();
    assert_eq!(http_get(server.addr, &log_path).await.0, 200);

    // Download: the counts in a sentence, and the JSON as a file.
    alice.click("#export-data").await;
    alice
        .wait_for(
            "the export's summary",
            "/\\b1 saved chat\\b/.test(document.getElementById('your-data-summary').textContent)",
            STEP,
        )
        .await;
    let file = alice
        .eval(
            "(() => { const a = document.getElementById('your-data-file'); \
               return [a.hidden, a.href.startsWith('blob:'), a.download]; })()",
        )
        .await;
    assert_eq!(file[0], false, "{file}");
    assert_eq!(file[1], true, "{file}");
    assert!(
        file[2].as_str().unwrap().ends_with(".json"),
        "a JSON file: {file}"
    );

    // Erase, after a confirmation in the page's own dialog.
    alice.click("#erase-data").await;
    alice
        .wait_for(
            "the confirmation",
            "document.getElementById('erase-dialog').open",
            STEP,
        )
        .await;
    alice.click("#erase-confirm").await;
    let result = alice
        .wait_for(
            "what was erased",
            "(() => { const r = document.getElementById('your-data-result'); \
               return !r.hidden && r.textContent.startsWith('Erased:') && r.textContent; })()",
            STEP,
        )
        .await;
    let result = result.as_str().unwrap();
    assert!(
        result.contains("1 saved chat") && !result.contains("1 saved chats"),
        "{result}"
    );
    assert_eq!(
        alice
            .eval(
                "[document.getElementById('erase-dialog').open, \
                  document.getElementById('saved-log').hidden, \
                  document.getElementById('your-data-file').hidden]"
            )
            .await,
        serde_json::json!([false, true, true]),
        "the dialog closed; the saved chat's link and the old file withdrawn"
    );
    assert_eq!(
        http_get(server.addr, &log_path).await.0,
        404,
        "the saved chat is gone"
    );
    alice
        .eval("document.getElementById('your-data').scrollIntoView()")
        .await;
    alice.screenshot(&screenshot_path("your-data.png")).await;

    // Downloading again finds nothing saved.
    alice.click("#export-data").await;
    alice
        .wait_for(
            "the export after erasing",
            "(() => { const t = document.getElementById('your-data-summary').textContent; \
               return t.includes('no saved chats') \
                 || t === 'Nothing is stored for this browser yet.'; })()",
            STEP,
        )
        .await;
    assert_no_problems(&[&alice, &bob]);
    drop(browser);
    server.shutdown().await.unwrap();
}

/// Four users for `length`: two pairs that chat, skip and send a stale line now and then.
async fn simulated_users(addr: SocketAddr, length: Duration) {
    let deadline = tokio::time::Instant::now() + length;
    let mut users = Vec::new();
    for _ in 0..4 {
        let mut user = Client::connect(addr).await;
        user.join().await;
        users.push(user);
    }
    let mut round = 0u64;
    while tokio::time::Instant::now() < deadline {
        round += 1;
        for user in &mut users {
            user.send(&ClientMsg::Next).await;
        }
        for user in &mut users {
            // A line for a chat that is over: answered with error stale_chat.
            user.say(tandem_ids::ChatId(round), "late").await;
        }
        for user in &mut users {
            for message in user.drain().await {
                assert!(!matches!(message, ServerMsg::Welcome(_)));
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[actix_rt::test]
async fn the_page_solves_the_default_challenge_in_a_worker_and_starts_a_chat() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    // The challenge as `tandem serve` asks it by default.
    let mut args = generous_args();
    args.challenge = true;
    args.challenge_difficulty = tandem_server::abuse::ChallengeSettings::default().difficulty;
    args.challenge_cost = tandem_server::abuse::ChallengeSettings::default().cost;
    let server = start_server_with(args);
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;

    // Touching the form opens the connection and starts the work, before Start.
    alice
        .wait_for("the form", "window.tandem?.phase === 'landing'", STEP)
        .await;
    alice.click("#adult").await;
    alice
        .wait_for(
            "the challenge solved while on the form",
            "typeof window.tandem.solvedIn === 'number' && window.tandem.phase === 'landing'",
            BROWSER_STEP,
        )
        .await;
    alice.click("#adult").await;
    let chat = pair_in_text(&alice, &bob).await;
    say(&alice, &bob, "proved and paired").await;
    for page in [&alice, &bob] {
        let took = page.eval("window.tandem.solvedIn").await.as_f64().unwrap();
        eprintln!(
            "[{}] solved the default challenge in {took:.0} ms",
            page.name
        );
    }
    let (_, metrics) = http_get(server.addr, "/metrics").await;
    let passed = format!(
        "tandem_challenges_passed_total{{node=\"{}\"}} 2",
        server.node.id().0
    );
    assert!(metrics.contains(&passed), "{passed} in {metrics}");
    assert!(
        metrics.contains("tandem_challenges_required_total{node=") && !chat.is_empty(),
        "{metrics}"
    );
    assert_no_problems(&[&alice, &bob]);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn in_a_video_chat_the_page_sends_stills_to_automated_moderation_and_says_so() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let seen = std::sync::Arc::new(common::classifier::Seen::default());
    let mut args = generous_args();
    args.admin_token = vec![ADMIN_TOKEN.to_owned()];
    args.moderation_webhook = Some(common::classifier::classifier(seen.clone()).await);
    args.snapshot_key = Some("KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".into());
    args.snapshot_interval = Duration::from_secs(1);
    let server = start_server_with(args);
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;
    start_chat(&alice, "video", &[]).await;
    start_chat(&bob, "video", &[]).await;
    for page in [&alice, &bob] {
        page.wait_for(
            "a video chat",
            "window.tandem.phase === 'chatting'",
            BROWSER_STEP,
        )
        .await;
        page.wait_for(
            "stills sent",
            "window.tandem.stillsSent >= 2 && \
             !document.getElementById('video-moderation').hidden",
            BROWSER_STEP,
        )
        .await;
    }
    let (_, metrics) = http_get(server.addr, "/metrics").await;
    let count = |outcome: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with("tandem_snapshots_total") && l.contains(outcome))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("\"cleared\"") >= 4, "{metrics}");
    assert_eq!(
        count("\"refused\""),
        0,
        "every still a JPEG of at most 320 px: {metrics}"
    );
    let types = seen.media_types.lock().unwrap().clone();
    assert!(types.iter().all(|t| t == "image/jpeg"), "{types:?}");
    // The page says so, and the privacy page too.
    let (_, privacy) = http_get(server.addr, "/privacy").await;
    assert!(privacy.contains("automated moderation"), "{privacy}");
    assert_eq!(
        alice.eval("window.tandem.phase").await,
        serde_json::json!("chatting"),
        "cleared stills leave the chat alone"
    );

    // From now on the classifier flags: the chat ends, and a moderator sees the still.
    seen.flag_all
        .store(true, std::sync::atomic::Ordering::Relaxed);
    for page in [&alice, &bob] {
        page.wait_for(
            "the chat ended by moderation",
            "window.tandem.phase !== 'chatting'",
            BROWSER_STEP,
        )
        .await;
    }
    let operator = browser
        .page(
            "operator",
            &format!("http://{}/admin?token={ADMIN_TOKEN}", server.addr),
        )
        .await;
    operator
        .wait_for(
            "a report in the queue",
            "document.getElementById('reports-count').textContent !== ''",
            BROWSER_STEP,
        )
        .await;
    operator.click("#tab-reports").await;
    operator
        .wait_for(
            "the classifier's report",
            "!!document.querySelector('#reports .report .report-stills')",
            STEP,
        )
        .await;
    operator.click("#reports .report .report-stills").await;
    let shown = operator
        .wait_for(
            "the flagged still, decrypted",
            "(() => { const img = document.querySelector('#reports .still-image');               return img && img.complete && img.naturalWidth > 0                 ? [img.naturalWidth, img.src.slice(0, 15)] : null; })()",
            STEP,
        )
        .await;
    let width = shown[0].as_u64().unwrap();
    assert!((1..=320).contains(&width), "{shown}");
    assert_eq!(shown[1], "data:image/jpeg");
    operator
        .screenshot(&screenshot_path("flagged-still.png"))
        .await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let (_, _, audit) = common::http_request(
        server.addr,
        "GET",
        "/admin/api/audit",
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert!(audit.contains("view snapshot"), "{audit}");
    assert_no_problems(&[&alice, &bob, &operator]);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn video_connects_through_a_real_coturn_with_relay_only_ice_and_credentials_per_chat() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let secret = "the coturn test's shared secret";
    let coturn = common::turn::Coturn::start(secret);
    let mut args = generous_args();
    args.turn = vec![coturn.url()];
    args.turn_secret = Some(secret.into());
    let server = start_server_with(args);
    // What a client gets: the welcome's credentials, then each chat's own.
    let mut probe = Client::connect(server.addr).await;
    let welcome_user = probe.welcome.ice_servers[0].username.clone().unwrap();
    let url = format!("http://{}/?relay=1", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;
    start_chat(&alice, "video", &[]).await;
    start_chat(&bob, "video", &[]).await;
    for page in [&alice, &bob] {
        page.wait_for(
            "a peer connection through the relay",
            "window.tandem.pc?.connectionState === 'connected'",
            BROWSER_STEP,
        )
        .await;
        // The pair in use is relayed on both ends: nothing went browser to browser.
        let kinds = page
            .eval(
                "(async () => { const stats = await window.tandem.pc.getStats(); \
                  let pair = null; \
                  stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) \
                    pair = stats.get(s.selectedCandidatePairId); }); \
                  if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated \
                    && s.state === 'succeeded') pair = s; }); \
                  return pair ? [stats.get(pair.localCandidateId).candidateType, \
                                 stats.get(pair.remoteCandidateId).candidateType] : null; })()",
            )
            .await;
        assert_eq!(
            kinds,
            serde_json::json!(["relay", "relay"]),
            "[{}]",
            page.name
        );
    }
    // A chat of the probe's own brings credentials issued for that chat.
    let mut other = Client::connect(server.addr).await;
    probe.join().await;
    other.join().await;
    let matched = probe.matched().await;
    let turn = matched
        .ice_servers
        .iter()
        .find(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
        .expect("TURN in matched");
    let expiry = |user: &str| user.split(':').next().unwrap().parse::<u64>().unwrap();
    assert!(expiry(turn.username.as_deref().unwrap()) >= expiry(&welcome_user));
    assert_eq!(
        turn.credential.as_deref().unwrap(),
        tandem_server::ice::turn_credential(secret.as_bytes(), turn.username.as_deref().unwrap())
    );
    assert_no_problems(&[&alice, &bob]);
    drop(coturn);
    server.shutdown().await.unwrap();
}
