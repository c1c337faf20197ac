//! A node that serves https and wss itself (`--tls-cert`, `--tls-key`), with a certificate
//! signed by a certificate authority made for the test with `openssl`: a rustls client that
//! trusts only that CA chats over wss, headless Chromium that trusts it (through its NSS
//! database) video-chats over https with `Secure` cookies and HSTS, plain http to the https
//! listener fails without harm, and a node given half a pair or files that are not a
//! certificate and its key does not start.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cdp::Browser;
use common::steps::{all_chatting, js, start_chat, BROWSER_STEP};
use common::tls::{https_get, tls_connect, wss_connect, TestCa};
use common::{start_server_with, test_args, STEP};
use tandem_proto::ServerMsg;
use tandem_server::config::{ConfigError, ServeArgs};
use tandem_server::tls::TlsErrorKind;
use tandem_server::RunningServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Test args serving https with `ca`'s server certificate.
fn tls_args(ca: &TestCa) -> ServeArgs {
    let mut args = common::generous_args();
    args.tls_cert = Some(ca.cert());
    args.tls_key = Some(ca.key());
    args
}

/// The kind of the TLS error a node refused to start with.
fn start_error(args: ServeArgs) -> TlsErrorKind {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let Err(err) = RunningServer::start(&args, listener) else {
        panic!("the node started");
    };
    match err.get_ref().and_then(|e| e.downcast_ref::<ConfigError>()) {
        Some(ConfigError::Tls(tls)) => tls.kind(),
        _ => panic!("not a TLS error: {err}"),
    }
}

/// Sends a plain http request to `addr` and reads whatever comes back until the node closes.
async fn plain_http(addr: SocketAddr) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // A reset instead of a close is as clean an end as any.
    let _ = tokio::time::timeout(STEP, stream.read_to_end(&mut answer))
        .await
        .expect("the node closes a connection that does not speak TLS");
    answer
}

#[actix_rt::test]
async fn a_wss_client_that_trusts_only_the_test_ca_chats_and_plain_http_is_refused_harmlessly() {
    let ca = TestCa::new();
    let server = start_server_with(tls_args(&ca));
    let addr = server.addr;

    let (status, head, body) = https_get(addr, &ca, "/livez").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    assert_eq!(https_get(addr, &ca, "/readyz").await.0, 200);

    let mut alice = wss_connect(addr, &ca, None, &[]).await.unwrap();
    let mut bob = wss_connect(addr, &ca, None, &[]).await.unwrap();
    assert!(!alice.welcome.client_id.is_empty(), "welcome over wss");
    alice.join().await;
    bob.join().await;
    let chat = alice.matched().await.chat;
    assert_eq!(bob.matched().await.chat, chat);
    alice.say(chat, "over TLS").await;
    match bob.recv().await {
        ServerMsg::Msg { text, .. } => assert_eq!(text, "over TLS"),
        other => panic!("expected the line, got {other:?}"),
    }

    // Plain http on the https port gets no http answer, and the node goes on serving.
    for _ in 0..3 {
        let answer = plain_http(addr).await;
        assert!(
            !answer.starts_with(b"HTTP/"),
            "plain http was answered: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let plain_ws = tokio::time::timeout(
        STEP,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("ws:// on the https port ends at once");
    assert!(plain_ws.is_err(), "ws:// on the https port");
    // A client that trusts only another CA refuses the node's certificate.
    let stranger = TestCa::new();
    assert!(tls_connect(addr, &stranger, None).await.is_err());

    bob.say(chat, "still here").await;
    match alice.recv().await {
        ServerMsg::Msg { text, .. } => assert_eq!(text, "still here"),
        other => panic!("expected the line, got {other:?}"),
    }
    assert_eq!(https_get(addr, &ca, "/livez").await.0, 200);
    assert!(wss_connect(addr, &ca, None, &[]).await.is_ok());
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_node_given_half_a_pair_or_a_key_that_does_not_fit_does_not_start() {
    let ca = TestCa::new();
    let mut args = test_args();
    args.tls_cert = Some(ca.cert());
    assert_eq!(start_error(args), TlsErrorKind::HalfConfigured);
    let mut args = test_args();
    args.tls_key = Some(ca.key());
    assert_eq!(start_error(args), TlsErrorKind::HalfConfigured);

    let mut args = tls_args(&ca);
    args.tls_key = Some(ca.dir.path().join("ca-key.pem"));
    assert_eq!(start_error(args), TlsErrorKind::Refused, "the CA's key");
    let mut args = tls_args(&ca);
    args.tls_cert = Some(ca.key());
    assert_eq!(start_error(args), TlsErrorKind::BadCertificate, "swapped");
    let mut args = tls_args(&ca);
    args.tls_key = Some(ca.dir.path().join("nowhere.pem"));
    assert_eq!(start_error(args), TlsErrorKind::Unreadable);

    // The binary says so and exits, whether the flags come as flags or as variables.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TANDEM_TLS_CERT", ca.cert())
        .env("TANDEM_DATA_DIR", common::data_dir())
        .env_remove("TANDEM_TLS_KEY")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .expect("the node exits at once")
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--tls-cert and --tls-key go together"),
        "{stderr}"
    );
}

#[actix_rt::test]
async fn two_browsers_trusting_the_test_ca_video_chat_over_https_with_secure_cookies_and_hsts() {
    let ca = TestCa::new();
    let server = start_server_with(tls_args(&ca));
    let url = format!("https://{}/", server.addr);
    let browser = Browser::launch_trusting(&ca.ca()).await;
    let alice = browser.page("alice", &url).await;
    let bob = browser.page("bob", &url).await;
    for page in [&alice, &bob] {
        assert_eq!(
            page.eval("location.protocol + (window.isSecureContext ? ' secure' : '')")
                .await,
            "https: secure",
            "[{}] the page loaded over https, its certificate trusted",
            page.name
        );
    }

    start_chat(&alice, "video", &[]).await;
    start_chat(&bob, "video", &[]).await;
    all_chatting(&[&alice, &bob]).await;
    let chat = alice.eval("window.tandem.chat").await;
    assert_eq!(bob.eval("window.tandem.chat").await, chat);
    for page in [&alice, &bob] {
        page.wait_for(
            "the peer connection",
            "window.tandem.pc?.connectionState === 'connected'",
            BROWSER_STEP,
        )
        .await;
        page.wait_for(
            "the stranger's video to play",
            "document.getElementById('remote-video').videoWidth > 0",
            BROWSER_STEP,
        )
        .await;
        let cookies = page.cookies().await;
        let id = cookies
            .iter()
            .find(|c| c["name"] == "tandem_id")
            .unwrap_or_else(|| panic!("[{}] no tandem_id cookie: {cookies:?}", page.name));
        assert_eq!(id["secure"], true, "[{}] {id}", page.name);
        assert_eq!(id["httpOnly"], true, "[{}] {id}", page.name);
        // Scripts may not read Strict-Transport-Security; the browser's network log does.
        page.record_responses().await;
        // (Not from the browser's cache, which keeps no security headers.)
        let stats = format!("{url}api/stats");
        page.eval(&format!(
            "fetch({}, {{cache: 'no-store'}}).then(r => r.status)",
            js(&stats)
        ))
        .await;
        let headers = page
            .response_headers(&stats)
            .unwrap_or_else(|| panic!("[{}] no response recorded for {stats}", page.name));
        assert_eq!(
            headers.get("strict-transport-security").map(String::as_str),
            Some("max-age=31536000"),
            "[{}] {headers:?}",
            page.name
        );
    }
    let problems: Vec<String> = [&alice, &bob].iter().flat_map(|p| p.problems()).collect();
    assert!(problems.is_empty(), "console errors: {problems:#?}");
    drop(browser);
    server.shutdown().await.unwrap();
}
