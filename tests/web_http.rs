//! The web side over plain HTTP and WebSocket, without a browser: the handshake's origin
//! check, the dashboard's token, security and cache headers, TURN credentials in `welcome`,
//! liveness and readiness through a drain, and what `--behind-https` changes (the cookie's
//! `Secure`, HSTS).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{generous_args, http_get_with, start_server_with, Client, STEP};
use tandem_server::admin::AdminStats;
use tandem_server::web::assets;

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Polls `probe` until it gives a value; panics after [`STEP`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Opens `/ws` with these headers: the welcome, or the refusal's status and body.
async fn handshake(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<(), (u16, String)> {
    common::try_handshake(addr, headers).await.map(drop)
}

#[actix_rt::test]
async fn foreign_origins_are_refused_at_the_handshake() {
    let server = start_server_with(generous_args());
    let addr = server.addr;
    let own = format!("http://{addr}");
    assert_eq!(
        handshake(addr, &[]).await,
        Ok(()),
        "no Origin: not a browser"
    );
    assert_eq!(
        handshake(addr, &[("origin", &own)]).await,
        Ok(()),
        "the node's own page"
    );
    let (status, body) = handshake(addr, &[("origin", "https://evil.example")])
        .await
        .unwrap_err();
    assert_eq!(status, 403);
    assert!(
        body.contains("https://evil.example") && body.contains("--allowed-origin"),
        "{body}"
    );
    let other_port = format!("http://127.0.0.1:{}", addr.port().wrapping_add(1));
    assert!(handshake(addr, &[("origin", &other_port)]).await.is_err());
    // An Origin with bytes beyond ASCII is not taken for an absent one.
    let upgrade = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("origin", "http://ex\u{e4}mple.org"),
    ];
    let (status, _, body) = common::http_request(addr, "GET", "/ws", &upgrade, None).await;
    assert_eq!(status, 403, "{body}");
    server.shutdown().await.unwrap();

    let mut args = generous_args();
    args.allowed_origin = vec!["https://chat.example.org".into()];
    let listed = start_server_with(args);
    let addr = listed.addr;
    assert_eq!(
        handshake(addr, &[("origin", "https://chat.example.org")]).await,
        Ok(())
    );
    assert_eq!(
        handshake(addr, &[("origin", &format!("http://{addr}"))]).await,
        Ok(()),
        "its own pages still work"
    );
    assert_eq!(
        handshake(addr, &[("origin", "https://evil.example")])
            .await
            .unwrap_err()
            .0,
        403
    );
    listed.shutdown().await.unwrap();

    let mut args = generous_args();
    args.allowed_origin = vec!["*".into()];
    let open = start_server_with(args);
    assert_eq!(
        handshake(open.addr, &[("origin", "https://anywhere.example")]).await,
        Ok(())
    );
    open.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_dashboard_is_404_without_a_token_flag_and_401_without_the_token() {
    let version = assets::version();
    let off = start_server_with(generous_args());
    for path in [
        "/admin".to_owned(),
        "/admin?token=anything".to_owned(),
        "/admin/api/stats".to_owned(),
        format!("/admin/assets/{version}/admin.js"),
    ] {
        let (status, _, _) = http_get_with(
            off.addr,
            &path,
            &[("authorization", "Bearer anything-at-all")],
        )
        .await;
        assert_eq!(status, 404, "{path} without --admin-token");
    }
    off.shutdown().await.unwrap();

    let mut args = generous_args();
    args.admin_token = vec![ADMIN_TOKEN.to_owned()];
    let on = start_server_with(args);
    let addr = on.addr;
    let (status, head, _) = http_get_with(addr, "/admin/api/stats", &[]).await;
    assert_eq!(status, 401, "no token");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    let (status, _, _) = http_get_with(
        addr,
        "/admin/api/stats",
        &[("authorization", "Bearer wrong-token-wrong-token")],
    )
    .await;
    assert_eq!(status, 401, "wrong token");
    let (status, _, _) = http_get_with(
        addr,
        "/admin/api/stats",
        &[("authorization", &format!("Basic {ADMIN_TOKEN}"))],
    )
    .await;
    assert_eq!(status, 401, "not a bearer token");
    let (status, _, _) = http_get_with(
        addr,
        "/admin/api/stats",
        &[("cookie", &format!("token={ADMIN_TOKEN}"))],
    )
    .await;
    assert_eq!(status, 401, "cookies are not credentials here");

    let mut user = Client::connect(addr).await;
    user.join().await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    // The shard counts the waiting user when it has placed the ticket, just after `waiting`.
    let (head, stats) = eventually("the user counted as waiting", || async {
        let (status, head, body) =
            http_get_with(addr, "/admin/api/stats", &[("authorization", &bearer)]).await;
        assert_eq!(status, 200, "{body}");
        let stats: AdminStats = serde_json::from_str(&body).unwrap();
        (stats.nodes[0].waiting == 1).then_some((head, stats))
    })
    .await;
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert_eq!(stats.nodes.len(), 1);
    let node = &stats.nodes[0];
    assert_eq!(node.node, on.node.id().0);
    assert_eq!(node.online, 1);
    assert_eq!(node.waiting, 1);
    assert_eq!(node.shards.len(), 2);
    assert_eq!(node.joins_total, 1);
    assert!(node.errors_total.contains_key("stale_chat"));

    let (status, _, body) = http_get_with(addr, "/admin?token=wrong-token-wrong-token", &[]).await;
    assert_eq!(status, 401, "a wrong ?token= is refused");
    assert!(body.contains("id=\"login\""), "with the sign-in form");
    let (status, head, body) =
        http_get_with(addr, &format!("/admin?token={ADMIN_TOKEN}"), &[]).await;
    assert_eq!(status, 200);
    assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    assert!(
        !body.contains(ADMIN_TOKEN),
        "the page never echoes the token"
    );
    let (status, _, _) = http_get_with(addr, "/admin", &[]).await;
    assert_eq!(status, 200, "the sign-in page itself holds no data");
    on.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn pages_and_assets_carry_security_and_cache_headers() {
    let server = start_server_with(generous_args());
    let addr = server.addr;
    let version = assets::version();

    let (status, head, body) = http_get_with(addr, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html; charset=utf-8"));
    let csp = head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a CSP");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("style-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(head.contains("x-content-type-options: nosniff"));
    assert!(head.contains("referrer-policy: no-referrer"));
    assert!(head.contains("cache-control: no-cache"));
    assert!(body.contains(&format!("/assets/{version}/app.js")));
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .to_owned();
    let (status, _, body) = http_get_with(addr, "/", &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304, "revalidation is cheap");
    assert!(body.is_empty());

    for (name, content_type) in [
        ("app.js", "text/javascript"),
        ("chat.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let (status, head, _) =
            http_get_with(addr, &format!("/assets/{version}/{name}"), &[]).await;
        assert_eq!(status, 200, "{name}");
        assert!(
            head.contains(&format!("content-type: {content_type}")),
            "{head}"
        );
        assert!(head.contains("immutable"), "{head}");
        assert!(head.contains("x-content-type-options: nosniff"));
    }
    let (status, head, _) = http_get_with(addr, "/assets/0123456789ab/app.js", &[]).await;
    assert_eq!(status, 200, "an old page still gets today's script");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    for path in [
        format!("/assets/{version}/nope.js"),
        format!("/assets/{version}/admin.js"),
        format!("/assets/{version}/..%2Fmod.rs"),
    ] {
        assert_eq!(http_get_with(addr, &path, &[]).await.0, 404, "{path}");
    }

    let mut user = Client::connect(addr).await;
    user.join().await;
    let stats = eventually("the user counted as waiting", || async {
        let (status, head, body) = http_get_with(addr, "/api/stats", &[]).await;
        assert_eq!(status, 200);
        assert!(head.contains("content-type: application/json"));
        let stats: tandem_server::web::PublicStats = serde_json::from_str(&body).unwrap();
        (stats.waiting == 1).then_some(stats)
    })
    .await;
    assert_eq!(stats.online, 1);
    assert!(!stats.countries, "no GeoIP database and no country header");
    server.shutdown().await.unwrap();
}

/// The language of the page: `?lang=`, then the switcher's cookie, then `Accept-Language`,
/// then English; each with its own `ETag`, and caches told what the page varies on.
#[actix_rt::test]
async fn the_page_is_served_in_the_language_asked_for() {
    let server = start_server_with(generous_args());
    let addr = server.addr;
    let page = |path: &'static str, headers: Vec<(&'static str, &'static str)>| async move {
        let (status, head, body) = http_get_with(addr, path, &headers).await;
        assert_eq!(status, 200);
        let lang = body
            .split("<html lang=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        (lang, head, body)
    };
    let (lang, head, body) = page("/", vec![]).await;
    assert_eq!(lang, "en");
    assert!(head.contains("content-language: en"), "{head}");
    assert!(head.contains("vary: accept-language, cookie"), "{head}");
    assert!(body.contains("dir=\"ltr\""));
    assert!(body.contains("<h1 id=\"landing-title\">Talk to strangers.</h1>"));

    let (lang, head, body) = page("/", vec![("Accept-Language", "de-AT, es;q=0.8")]).await;
    assert_eq!(lang, "de");
    assert!(head.contains("content-language: de"));
    assert!(body.contains("<option value=\"de\" lang=\"de\" selected>Deutsch</option>"));
    let (lang, _, _) = page("/", vec![("Accept-Language", "xx, fr;q=0.1")]).await;
    assert_eq!(lang, "fr");
    let (lang, _, _) = page("/", vec![("Accept-Language", "xx-YY, zz")]).await;
    assert_eq!(lang, "en", "nothing offered: English");
    let (lang, _, _) = page(
        "/",
        vec![("Accept-Language", "es"), ("Cookie", "a=b; tandem_lang=pt")],
    )
    .await;
    assert_eq!(lang, "pt", "the switcher's cookie beats the header");
    let (lang, _, body) = page(
        "/?lang=ar",
        vec![("Accept-Language", "es"), ("Cookie", "tandem_lang=pt")],
    )
    .await;
    assert_eq!(lang, "ar", "?lang= beats both");
    assert!(body.contains("dir=\"rtl\""));
    let (lang, _, _) = page("/?lang=klingon", vec![("Cookie", "tandem_lang=<script>")]).await;
    assert_eq!(lang, "en", "unknown codes are ignored");

    // Revalidation is per language: an English ETag does not answer for Spanish.
    let (_, head, _) = page("/", vec![]).await;
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_owned();
    let (status, _, _) = http_get_with(addr, "/", &[("If-None-Match", &etag)]).await;
    assert_eq!(status, 304);
    let (status, _, _) = http_get_with(
        addr,
        "/",
        &[("If-None-Match", &etag), ("Accept-Language", "es")],
    )
    .await;
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn welcome_carries_turn_credentials_for_the_client() {
    let mut args = generous_args();
    args.stun = vec!["stun:stun.example.org:3478".into()];
    args.turn = vec!["turn:turn.example.org:3478?transport=udp".into()];
    args.turn_secret = Some("coturn-static-auth-secret".into());
    args.turn_ttl = Duration::from_secs(600);
    let server = start_server_with(args);
    let before = tandem_server::entitlement::unix_now();
    let client = Client::connect(server.addr).await;
    let servers = &client.welcome.ice_servers;
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0].urls, ["stun:stun.example.org:3478"]);
    let username = servers[1].username.as_deref().unwrap();
    let (expiry, client_id) = username.split_once(':').unwrap();
    // The client's key (the first 16 hex digits of its id), not the id: TURN servers log it.
    assert_eq!(client_id, &client.welcome.client_id[..16]);
    let expiry: u64 = expiry.parse().unwrap();
    assert!((before + 600..=before + 602).contains(&expiry), "{expiry}");
    assert_eq!(
        servers[1].credential.as_deref(),
        Some(tandem_server::ice::turn_credential(b"coturn-static-auth-secret", username).as_str())
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn livez_stays_200_while_readyz_turns_503_when_the_node_drains() {
    let server = start_server_with(generous_args());
    let addr = server.addr;
    for path in ["/livez", "/readyz", "/healthz"] {
        assert_eq!(
            common::http_get(addr, path).await,
            (200, "ok\n".to_owned()),
            "{path}"
        );
    }
    let mut user = Client::connect(addr).await;
    user.join().await;

    // What shutdown and `tandem cluster drain` do first: the node takes no more users.
    server.node.set_draining();
    assert_eq!(common::http_get(addr, "/readyz").await.0, 503);
    assert_eq!(common::http_get(addr, "/healthz").await.0, 503);
    assert_eq!(
        common::http_get(addr, "/livez").await,
        (200, "ok\n".to_owned()),
        "a draining process is alive: nothing should restart it"
    );
    let (status, _) = handshake(addr, &[]).await.unwrap_err();
    assert_eq!(status, 503, "and new users are refused");
    assert_eq!(
        user.drain().await,
        Vec::new(),
        "the connected user is still served"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn behind_https_the_cookie_is_secure_and_every_response_carries_hsts() {
    // Without it: plain http, neither.
    let server = start_server_with(generous_args());
    let (_, head, _) = http_get_with(server.addr, "/", &[]).await;
    assert!(!head.contains("strict-transport-security"), "{head}");
    let (_, head, _) = http_get_with(server.addr, "/livez", &[]).await;
    assert!(!head.contains("strict-transport-security"), "{head}");
    server.shutdown().await.unwrap();

    let mut args = generous_args();
    args.behind_https = true;
    let server = start_server_with(args);
    let addr = server.addr;
    for path in [
        "/",
        "/livez",
        "/readyz",
        "/api/stats",
        "/privacy",
        "/nowhere",
    ] {
        let (_, head, _) = http_get_with(addr, path, &[]).await;
        assert!(
            head.contains("strict-transport-security: max-age=31536000"),
            "{path}: {head}"
        );
    }
    let ws = common::try_handshake(addr, &[]).await.unwrap();
    drop(ws);
    let upgrade = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("origin", &format!("https://{addr}")),
    ];
    let (status, head) = raw_upgrade(addr, &upgrade).await;
    assert_eq!(status, 101, "the https page of the node's own host: {head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a client-id cookie");
    assert!(cookie.contains("; secure"), "{cookie}");
    assert!(cookie.contains("; httponly"), "{cookie}");
    server.shutdown().await.unwrap();
}

/// Sends a WebSocket upgrade with these headers and reads the response head: (status, head
/// lower-cased).
async fn raw_upgrade(addr: SocketAddr, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let mut request = format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(STEP, stream.read(&mut byte))
            .await
            .expect("a response head within the step timeout")
            .unwrap();
        assert_eq!(read, 1, "closed before the end of the head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head)
}
