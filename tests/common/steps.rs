//! Steps the browser tests share: filling the landing form, reading the conversation,
//! screenshots.

use std::path::PathBuf;
use std::time::Duration;

use super::cdp::Page;
use super::STEP;

/// A browser step (a match, a WebRTC connection) may take this long on a busy 2-core machine.
pub const BROWSER_STEP: Duration = Duration::from_secs(30);

/// Where a test saves a screenshot: `target/web-screenshots/<name>`.
pub fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/web-screenshots")
        .join(name)
}

/// A JavaScript string literal.
pub fn js(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Waits for the landing form to be ready.
pub async fn landing_ready(page: &Page) {
    page.wait_for(
        "the landing form",
        "!document.getElementById('landing').hidden && window.tandem?.phase === 'landing'",
        STEP,
    )
    .await;
}

/// Fills the landing form and presses Start.
pub async fn start_chat(page: &Page, mode: &str, interests: &[&str]) {
    landing_ready(page).await;
    for interest in interests {
        page.type_into("#interests-input", interest).await;
        page.press("Enter").await;
    }
    page.click(&format!("#mode-{mode}")).await;
    page.click("#adult").await;
    page.click("#start").await;
}

/// Whether a line of the log contains `text`, as a JavaScript expression.
pub fn log_contains(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#log .line')].some(l => l.textContent.includes({}))",
        js(text)
    )
}

/// Types a line and sends it with Enter.
pub async fn send_message(page: &Page, text: &str) {
    page.type_into("#message", text).await;
    page.press("Enter").await;
}

/// The page's current chat id.
pub async fn chat_id(page: &Page) -> String {
    page.eval("window.tandem.chat")
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until every page is in a chat.
pub async fn all_chatting(pages: &[&Page]) {
    for page in pages {
        page.wait_for(
            "a match",
            "window.tandem.phase === 'chatting'",
            BROWSER_STEP,
        )
        .await;
    }
}

/// Fails on anything a page logged as an error (console errors, CSP violations).
pub fn assert_no_problems(pages: &[&Page]) {
    for page in pages {
        let problems = page.problems();
        assert!(
            problems.is_empty(),
            "[{}] console errors: {problems:#?}",
            page.name
        );
    }
}
