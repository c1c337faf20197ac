//! The web client and the operator dashboard, tested in a real headless Chromium against a
//! node started in this process: video chats that really connect over WebRTC, text chats
//! with the typing indicator and Esc Esc, reconnects, the dashboard's live charts; and, over
//! plain HTTP (`web/http.rs`), the handshake's origin check, the dashboard's token, the
//! security headers and TURN credentials.
//!
//! Screenshots of live pages are saved under `target/web-screenshots/`.

#[path = "web/cdp.rs"]
mod cdp;
mod common;
#[path = "web/http.rs"]
mod http;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cdp::{Browser, Page};
use common::{generous_args, start_server_with, Client, STEP};
use tandem::protocol::{ClientMsg, ServerMsg};
use tandem::web::assets;
use tokio::sync::Mutex;

/// A browser step (a match, a WebRTC connection) may take this long on a busy 2-core machine.
const BROWSER_STEP: Duration = Duration::from_secs(30);

/// Browser tests run one at a time: several Chromiums encoding fake video at once on two
/// cores would make every deadline a coin toss. (Each test has its own thread and runtime;
/// an async mutex lets them queue without blocking one another's executors.)
static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/web-screenshots")
        .join(name)
}

/// A JavaScript string literal.
fn js(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Fills the landing form and presses Start.
async fn start_chat(page: &Page, mode: &str, interests: &[&str]) {
    page.wait_for(
        "the landing form",
        "!document.getElementById('landing').hidden && window.tandem?.phase === 'landing'",
        STEP,
    )
    .await;
    for interest in interests {
        page.type_into("#interests-input", interest).await;
        page.press("Enter").await;
    }
    page.click(&format!("#mode-{mode}")).await;
    page.click("#adult").await;
    page.click("#start").await;
}

/// The log's lines as text.
fn log_contains(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#log .line')].some(l => l.textContent.includes({}))",
        js(text)
    )
}

async fn send_message(page: &Page, text: &str) {
    page.type_into("#message", text).await;
    page.press("Enter").await;
}

async fn chat_id(page: &Page) -> String {
    page.eval("window.tandem.chat")
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

fn assert_no_problems(pages: &[&Page]) {
    for page in pages {
        let problems = page.problems();
        assert!(
            problems.is_empty(),
            "[{}] console errors: {problems:#?}",
            page.name
        );
    }
}

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
    for page in [&alice, &bob] {
        page.wait_for(
            "a match",
            "window.tandem.phase === 'chatting'",
            BROWSER_STEP,
        )
        .await;
    }
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
        "bob told",
        &format!(
            "{} && window.tandem.phase === 'ended'",
            log_contains("Stranger has disconnected.")
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
            "alice told",
            &log_contains("Stranger has disconnected."),
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
                log_contains("Stranger has disconnected.")
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
        .sessions
        .broadcast(&tandem::session::SessionEvent::Shutdown);
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
    bob.matched().await;
    alice
        .wait_for("matched", "window.tandem.phase === 'chatting'", STEP)
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
    args.admin_token = Some(ADMIN_TOKEN.to_owned());
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
            user.say(tandem::ids::ChatId(round), "late").await;
        }
        for user in &mut users {
            for message in user.drain().await {
                assert!(!matches!(message, ServerMsg::Welcome(_)));
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
