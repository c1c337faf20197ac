//! What the page offers beyond a plain chat, tested in a real headless Chromium against a
//! node started in this process: spy mode (a spy and two strangers discussing its question,
//! on three pages), auto-reroll, the filters that need a pass (college mode and the gender
//! filter, with and without one), the note a country filter gets on a node that knows no
//! countries, a partner's camera turned off, the online count, and the page in Spanish and
//! in Arabic (right to left), with screenshots under `target/web-screenshots/`.

mod common;

use std::collections::BTreeMap;

use common::cdp::{Browser, Page};
use common::steps::{
    all_chatting, assert_no_problems, chat_id, js, landing_ready, log_contains, screenshot_path,
    send_message, start_chat, BROWSER_STEP,
};
use common::{generous_args, start_server_with, STEP};
use tandem_server::entitlement::{unix_now, Claims, EntitlementKey, Feature};
use tokio::sync::Mutex;

/// Browser tests run one at a time (see tests/web.rs).
static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A translation of the page, as its data file has it.
fn strings(code: &str) -> BTreeMap<String, String> {
    let path = format!(
        "{}/crates/tandem-server/src/web/locales/{code}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Chooses a chat style on the landing form (`one`, `ask`, `discuss`).
async fn choose_style(page: &Page, style: &str) {
    landing_ready(page).await;
    page.click(&format!("#style-{style}")).await;
}

async fn text_of(page: &Page, selector: &str) -> String {
    page.eval(&format!(
        "document.querySelector({}).textContent.trim()",
        js(selector)
    ))
    .await
    .as_str()
    .unwrap()
    .to_owned()
}

#[actix_rt::test]
async fn spy_mode_a_spy_watches_two_strangers_discuss_its_question() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let spy = browser.page("spy", &url).await;
    let first = browser.page("first", &url).await;
    let second = browser.page("second", &url).await;

    choose_style(&spy, "ask").await;
    spy.wait_for(
        "the question field",
        "!document.getElementById('question-field').hidden \
         && document.getElementById('interests-field').hidden",
        STEP,
    )
    .await;
    // Start without a question: the form asks for one.
    spy.click("#adult").await;
    spy.click("#start").await;
    spy.wait_for(
        "the form's request for a question",
        "document.getElementById('start-error').textContent.includes('question')",
        STEP,
    )
    .await;
    spy.type_into("#question", "Cats or dogs?").await;
    spy.click("#start").await;
    for page in [&first, &second] {
        choose_style(page, "discuss").await;
        page.click("#adult").await;
        page.click("#start").await;
    }
    all_chatting(&[&spy, &first, &second]).await;
    let chat = chat_id(&spy).await;
    assert_eq!(chat_id(&first).await, chat, "one chat of three");
    assert_eq!(chat_id(&second).await, chat, "one chat of three");

    assert_eq!(spy.eval("window.tandem.spyRole").await, "spy");
    assert_eq!(first.eval("window.tandem.spyRole").await, "discuss");
    assert_eq!(
        text_of(&spy, "#spy-question").await,
        "You asked: Cats or dogs?"
    );
    assert_eq!(
        text_of(&first, "#spy-question").await,
        "The question: Cats or dogs?"
    );
    assert_eq!(
        spy.eval("document.getElementById('message').disabled")
            .await,
        true,
        "the spy only watches"
    );

    send_message(&first, "dogs, obviously").await;
    second
        .wait_for(
            "the first stranger's line",
            &log_contains("Stranger: dogs, obviously"),
            STEP,
        )
        .await;
    send_message(&second, "cats, of course").await;
    first
        .wait_for(
            "the second stranger's line",
            &log_contains("Stranger: cats, of course"),
            STEP,
        )
        .await;
    // The spy sees both, each under its own number.
    let numbered = spy
        .wait_for(
            "both lines at the spy",
            "(() => { const lines = [...document.querySelectorAll('#log .line.stranger')]\
               .map(l => l.textContent); \
               return lines.length === 2 && lines; })()",
            STEP,
        )
        .await;
    let lines: Vec<String> = serde_json::from_value(numbered).unwrap();
    let first_says = lines.iter().find(|l| l.contains("dogs")).unwrap();
    let second_says = lines.iter().find(|l| l.contains("cats")).unwrap();
    assert!(
        (first_says.starts_with("Stranger 1:") && second_says.starts_with("Stranger 2:"))
            || (first_says.starts_with("Stranger 2:") && second_says.starts_with("Stranger 1:")),
        "each stranger keeps its own number: {lines:?}"
    );
    spy.screenshot(&screenshot_path("spy-mode.png")).await;
    // The spy has no partner of its own: nothing to report or save.
    assert_eq!(
        spy.eval(
            "document.getElementById('report').disabled \
             && document.getElementById('save-log').hidden"
        )
        .await,
        true
    );
    assert_eq!(
        first
            .eval("document.getElementById('report').disabled")
            .await,
        false,
        "a stranger can report the other"
    );

    // A stranger skips: the discussion is over for the spy, who is told so.
    first.click("#next").await;
    spy.wait_for(
        "the end of the discussion",
        &log_contains("One of the strangers left, so the discussion is over."),
        BROWSER_STEP,
    )
    .await;
    assert_no_problems(&[&spy, &first, &second]);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn auto_reroll_finds_the_next_stranger_without_a_click() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let rolling = browser.page("rolling", &url).await;
    let leaving = browser.page("leaving", &url).await;
    let third = browser.page("third", &url).await;

    landing_ready(&rolling).await;
    rolling.click("#auto-reroll").await;
    start_chat(&rolling, "text", &[]).await;
    start_chat(&leaving, "text", &[]).await;
    all_chatting(&[&rolling, &leaving]).await;
    let first_chat = chat_id(&rolling).await;

    // The stranger leaves: the page says so and is looking again, not stopped.
    leaving.click("#stop").await;
    rolling
        .wait_for(
            "the stranger's leaving",
            &log_contains("Stranger left the chat."),
            STEP,
        )
        .await;
    rolling
        .wait_for(
            "looking again",
            "window.tandem.phase === 'waiting' || window.tandem.phase === 'chatting'",
            STEP,
        )
        .await;
    assert!(rolling
        .eval(&log_contains("Looking for someone new…"))
        .await
        .as_bool()
        .unwrap());

    // Someone new arrives: they meet with no click on the rolling page.
    start_chat(&third, "text", &[]).await;
    all_chatting(&[&rolling, &third]).await;
    let second_chat = chat_id(&rolling).await;
    assert_ne!(second_chat, first_chat);
    assert_eq!(chat_id(&third).await, second_chat);
    assert_no_problems(&[&rolling, &leaving, &third]);
    server.shutdown().await.unwrap();
}

const PASS_SECRET: &str = "test-entitlement-secret-for-the-page";

fn pass(features: &[Feature], college: Option<&str>) -> String {
    EntitlementKey::new(PASS_SECRET).sign(&Claims {
        exp: unix_now() + 30 * 86_400,
        features: features.to_vec(),
        college: college.map(str::to_owned),
    })
}

/// Opens "More filters" and waits for the pass's status to read `status`.
async fn filters_say(page: &Page, status: &str) {
    page.eval("document.getElementById('premium').open = true")
        .await;
    page.wait_for(
        "the pass's status",
        &format!(
            "document.getElementById('pass-status').textContent.includes({})",
            js(status)
        ),
        STEP,
    )
    .await;
}

async fn disabled(page: &Page, selector: &str) -> bool {
    page.eval(&format!(
        "document.querySelector({}).disabled",
        js(selector)
    ))
    .await
    .as_bool()
    .unwrap()
}

#[actix_rt::test]
async fn college_mode_and_the_gender_filter_need_a_pass_and_work_with_one() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let mut args = generous_args();
    args.entitlement_secret = Some(PASS_SECRET.into());
    let server = start_server_with(args);
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;

    // Without a pass: the filters are shown, locked, with what unlocks them.
    let plain = browser.page("plain", &url).await;
    landing_ready(&plain).await;
    filters_say(&plain, "These filters need a pass from this site.").await;
    for selector in ["#college", "#same-college", "input[name=want][value=f]"] {
        assert!(disabled(&plain, selector).await, "{selector} is locked");
    }
    assert!(
        !disabled(&plain, "#gender").await,
        "saying one's gender is free"
    );

    // A pass signed with another secret reads well but the node refuses it.
    let forged = EntitlementKey::new("another site's entitlement secret").sign(&Claims {
        exp: unix_now() + 86_400,
        features: vec![Feature::GenderFilter],
        college: None,
    });
    plain.type_into("#pass-input", &forged).await;
    plain.click("#pass-use").await;
    filters_say(&plain, "Your pass unlocks the gender filter").await;
    plain.click("input[name=want][value=m]").await;
    start_chat(&plain, "text", &[]).await;
    plain
        .wait_for(
            "the refusal of the pass",
            "window.tandem.phase === 'landing' && document.getElementById('start-error')\
               .textContent.includes(\"didn't accept your pass\")",
            BROWSER_STEP,
        )
        .await;
    filters_say(&plain, "didn't accept your pass").await;

    // Passes handed over in the address (as the site's payment or college pages would),
    // both for mit.edu with the gender filter: the two meet in college mode.
    let both = pass(&[Feature::GenderFilter, Feature::College], Some("mit.edu"));
    let ana = browser.page("ana", &format!("{url}#pass={both}")).await;
    let bea = browser.page("bea", &format!("{url}#pass={both}")).await;
    for page in [&ana, &bea] {
        landing_ready(page).await;
        filters_say(
            page,
            "Your pass unlocks the gender filter and college mode (mit.edu)",
        )
        .await;
        assert_eq!(
            page.eval("location.hash").await,
            "",
            "the pass leaves the address bar"
        );
        assert!(!disabled(page, "#college").await);
        page.click("#college").await;
        page.click("#same-college").await;
        page.eval("document.getElementById('gender').value = 'f'")
            .await;
        page.click("input[name=want][value=f]").await;
        start_chat(page, "text", &[]).await;
    }
    all_chatting(&[&ana, &bea]).await;
    assert_eq!(chat_id(&ana).await, chat_id(&bea).await);
    assert_eq!(
        text_of(&ana, "#chat-status").await,
        "Connected to a student of mit.edu"
    );
    ana.screenshot(&screenshot_path("college-mode.png")).await;
    // The pass is kept in the browser for the next visit; a link with another pass does
    // not replace it (anyone can send a link), nor does text that is not a pass.
    let other = pass(&[Feature::GenderFilter], None);
    // (A query, so that the browser loads the page again rather than only moving to the
    // fragment.)
    ana.goto(&format!("{url}?again#pass={other}")).await;
    landing_ready(&ana).await;
    filters_say(&ana, "college mode (mit.edu)").await;
    filters_say(&ana, "A link offered another pass").await;
    assert_eq!(
        ana.eval("document.getElementById('pass-input').value")
            .await,
        other.as_str()
    );
    ana.eval("document.getElementById('pass-input').value = ''")
        .await;
    ana.type_into("#pass-input", "not a pass at all").await;
    ana.click("#pass-use").await;
    filters_say(&ana, "doesn't look like a pass").await;
    ana.goto(&url).await;
    landing_ready(&ana).await;
    filters_say(&ana, "college mode (mit.edu)").await;
    ana.click("#pass-remove").await;
    filters_say(&ana, "These filters need a pass from this site.").await;
    assert!(disabled(&ana, "#college").await);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_country_filter_is_offered_only_where_the_node_knows_countries() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let browser = Browser::launch().await;

    // No GeoIP database and no country header: the page says why the filter is off.
    let blind = start_server_with(generous_args());
    let page = browser
        .page("blind", &format!("http://{}/", blind.addr))
        .await;
    page.wait_for(
        "the note about countries",
        "!document.getElementById('countries-unknown').hidden \
         && document.getElementById('countries-input').disabled",
        STEP,
    )
    .await;
    assert!(text_of(&page, "#countries-unknown")
        .await
        .contains("can't pair you by country"));
    // A chat still starts, with anyone.
    let other = browser
        .page("other", &format!("http://{}/", blind.addr))
        .await;
    start_chat(&page, "text", &[]).await;
    start_chat(&other, "text", &[]).await;
    all_chatting(&[&page, &other]).await;
    blind.shutdown().await.unwrap();

    // A node behind a CDN's country header offers the filter.
    let mut args = generous_args();
    args.country_header = Some("CF-IPCountry".into());
    let seeing = start_server_with(args);
    let page = browser
        .page("seeing", &format!("http://{}/", seeing.addr))
        .await;
    landing_ready(&page).await;
    page.wait_for(
        "the online count (which carries whether countries are known)",
        "!document.getElementById('online').hidden",
        STEP,
    )
    .await;
    assert_eq!(
        page.eval(
            "document.getElementById('countries-unknown').hidden \
             && !document.getElementById('countries-input').disabled"
        )
        .await,
        true
    );
    seeing.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_partner_who_turns_the_camera_off_is_shown_as_such() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;
    start_chat(&alice, "video", &[]).await;
    start_chat(&bob, "video", &[]).await;
    all_chatting(&[&alice, &bob]).await;
    assert_eq!(
        bob.eval("document.getElementById('remote-camera-off').hidden")
            .await,
        true
    );
    alice.click("#toggle-camera").await;
    bob.wait_for(
        "the note that alice's camera is off",
        "!document.getElementById('remote-camera-off').hidden",
        STEP,
    )
    .await;
    assert_eq!(
        text_of(&bob, "#remote-camera-off").await,
        "The stranger's camera is off."
    );
    alice.click("#toggle-camera").await;
    bob.wait_for(
        "the note gone once the camera is back",
        "document.getElementById('remote-camera-off').hidden",
        STEP,
    )
    .await;

    // Off again, then Stop: a new camera starts on, and the next stranger is not told
    // otherwise.
    alice.click("#toggle-camera").await;
    bob.wait_for(
        "the note again",
        "!document.getElementById('remote-camera-off').hidden",
        STEP,
    )
    .await;
    alice.click("#stop").await;
    let carol = browser.page("carol", &url).await;
    // The form is as alice left it (video, 18+ confirmed): Start again.
    landing_ready(&alice).await;
    alice.click("#start").await;
    alice
        .wait_for(
            "the camera button back to on",
            "window.tandem.phase !== 'landing' \
             && document.getElementById('toggle-camera').getAttribute('aria-pressed') === 'false' \
             && document.getElementById('toggle-camera').textContent === 'Camera off'",
            STEP,
        )
        .await;
    start_chat(&carol, "video", &[]).await;
    all_chatting(&[&alice, &carol]).await;
    assert_eq!(chat_id(&alice).await, chat_id(&carol).await);
    // A media signal is sent before the offer, so it would be here by the time the call is.
    carol
        .wait_for(
            "the call connected",
            "window.tandem.pc?.connectionState === 'connected'",
            BROWSER_STEP,
        )
        .await;
    assert_eq!(
        carol
            .eval("document.getElementById('remote-camera-off').hidden")
            .await,
        true,
        "the new stranger sees a camera that is on"
    );
    assert_no_problems(&[&alice, &bob, &carol]);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_online_count_follows_users_arriving() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;
    let first = browser.page("first", &url).await;
    start_chat(&first, "text", &[]).await;
    first
        .wait_for(
            "one online",
            "document.getElementById('online-text').textContent === '1 online'",
            BROWSER_STEP,
        )
        .await;
    let second = browser.page("second", &url).await;
    let third = browser.page("third", &url).await;
    start_chat(&second, "text", &[]).await;
    start_chat(&third, "text", &[]).await;
    // The first page was open all along: its count moves without a reload.
    first
        .wait_for(
            "three online",
            "document.getElementById('online-text').textContent === '3 online'",
            BROWSER_STEP,
        )
        .await;
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_page_speaks_spanish_and_arabic_right_to_left() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server_with(generous_args());
    let url = format!("http://{}/", server.addr);
    let browser = Browser::launch().await;

    // Spanish, from the browser's Accept-Language.
    let es = strings("es");
    let page = browser.page("es", "about:blank").await;
    page.extra_headers(serde_json::json!({"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}))
        .await;
    page.goto(&url).await;
    landing_ready(&page).await;
    assert_eq!(page.eval("document.documentElement.lang").await, "es");
    assert_eq!(text_of(&page, "#landing-title").await, es["landing.title"]);
    assert_eq!(text_of(&page, "#start").await, es["form.start"]);
    assert_eq!(page.eval("document.title").await, es["page.title"].as_str());
    page.screenshot(&screenshot_path("page-es.png")).await;

    // Arabic, chosen with the switcher: the page turns right to left, and stays Arabic.
    let ar = strings("ar");
    let first = browser.page("ar-1", &url).await;
    landing_ready(&first).await;
    assert_eq!(first.eval("document.documentElement.lang").await, "en");
    first
        .eval(
            "(() => { const s = document.getElementById('ui-language'); s.value = 'ar'; \
             s.dispatchEvent(new Event('change')); })()",
        )
        .await;
    first
        .wait_for(
            "the page in Arabic",
            "document.documentElement.lang === 'ar' && window.tandem?.phase === 'landing'",
            BROWSER_STEP,
        )
        .await;
    assert_eq!(first.eval("document.documentElement.dir").await, "rtl");
    assert_eq!(
        first
            .eval("getComputedStyle(document.body).direction")
            .await,
        "rtl"
    );
    assert_eq!(text_of(&first, "#landing-title").await, ar["landing.title"]);
    // Laid out right to left: the brand sits at the right of the top bar.
    assert_eq!(
        first
            .eval(
                "document.querySelector('.brand').getBoundingClientRect().left > \
                 document.getElementById('ui-language').getBoundingClientRect().left"
            )
            .await,
        true,
        "the brand is on the right in Arabic"
    );
    first.screenshot(&screenshot_path("page-ar.png")).await;
    first.goto(&url).await;
    landing_ready(&first).await;
    assert_eq!(
        first.eval("document.documentElement.lang").await,
        "ar",
        "the choice is remembered"
    );

    // A chat in Arabic: the page's own lines are Arabic.
    let second = browser.page("ar-2", &format!("{url}?lang=ar")).await;
    start_chat(&first, "text", &[]).await;
    start_chat(&second, "text", &[]).await;
    all_chatting(&[&first, &second]).await;
    first
        .wait_for(
            "the Arabic greeting",
            &log_contains(&ar["log.matched"]),
            STEP,
        )
        .await;
    assert_eq!(
        text_of(&first, "#chat-status").await,
        ar["status.connected"]
    );
    send_message(&second, "مرحبا! من أين أنت؟").await;
    first
        .wait_for(
            "the stranger's line",
            &log_contains("مرحبا! من أين أنت؟"),
            STEP,
        )
        .await;
    first.screenshot(&screenshot_path("chat-ar.png")).await;
    assert_no_problems(&[&page, &first, &second]);
    server.shutdown().await.unwrap();
}
