//! The web client a node serves itself: the chat page at `/`, its assets, and the small
//! public `/api/stats` it shows "users online" from; plus what every page shares: the
//! origin policy behind `--allowed-origin`, and the security headers.
//!
//! The page is plain HTML, CSS and JavaScript modules (`src/web/assets/`), embedded at build
//! time. It speaks the client protocol (docs/protocol.md) like any other client; this module
//! holds no chat state and never sees a message.

pub mod assets;
pub mod i18n;
pub mod origin;

use std::sync::{Arc, OnceLock};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
pub use assets::{Asset, Audience};
pub use origin::{BadOrigin, ForeignOrigin, OriginPolicy};
use serde::Serialize;

use crate::node::Node;

/// Registers `/`, `/assets/…` and `/api/stats`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/assets/{version}/{name}", web::get().to(asset))
        .route("/api/stats", web::get().to(stats));
}

/// The chat page, rendered once per language.
fn chat_page(locale: usize) -> &'static str {
    static RENDERED: OnceLock<Vec<String>> = OnceLock::new();
    let pages = RENDERED.get_or_init(|| {
        let all = i18n::locales();
        let template = assets::Page::new(assets::PAGES[0]);
        all.iter()
            .map(|locale| i18n::render(template.html(), locale, all))
            .collect()
    });
    pages
        .get(locale)
        .or(pages.first())
        .map_or("", String::as_str)
}

async fn index(req: HttpRequest) -> HttpResponse {
    let locale = i18n::pick(&req);
    let code = i18n::locales()
        .get(locale)
        .map_or(i18n::DEFAULT, |l| l.code);
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' blob: mediastream:; connect-src 'self'{}; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
        websocket_sources(&req)
    );
    let mut response = html(
        &req,
        chat_page(locale),
        &format!("{}-{code}", assets::version()),
        &csp,
        "camera=(self), microphone=(self), geolocation=()",
    );
    let headers = response.headers_mut();
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept-Language, Cookie"),
    );
    if let Ok(code) = HeaderValue::from_str(code) {
        headers.insert(header::CONTENT_LANGUAGE, code);
    }
    response
}

/// `ws://` and `wss://` of the host the page was loaded from. CSP Level 3 lets `'self'`
/// cover them, but browsers that predate it (older Safari) need them named.
fn websocket_sources(req: &HttpRequest) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    match host {
        Some(host) => format!(" ws://{host} wss://{host}"),
        None => String::new(),
    }
}

/// An HTML page with its security headers, revalidated on every load.
fn html(
    req: &HttpRequest,
    page: &'static str,
    version: &str,
    csp: &str,
    permissions: &'static str,
) -> HttpResponse {
    let etag = format!("\"{version}\"");
    let unchanged = assets::not_modified(req, &etag);
    let mut response = secured(if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    });
    response
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, etag))
        .insert_header(("permissions-policy", permissions));
    if let Ok(csp) = HeaderValue::from_str(csp) {
        response.insert_header((header::CONTENT_SECURITY_POLICY, csp));
    }
    if unchanged {
        response.finish()
    } else {
        response.content_type("text/html; charset=utf-8").body(page)
    }
}

/// The headers every response of the web side carries: no MIME sniffing, no referrer (page
/// URLs may hold a dashboard token), no framing, no cross-origin window handles.
pub(crate) fn secured(mut response: HttpResponseBuilder) -> HttpResponseBuilder {
    response
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header(("cross-origin-opener-policy", "same-origin"));
    response
}

/// Text fit for HTML, as an element's content or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A plain 404.
pub(crate) fn not_found() -> HttpResponse {
    secured(HttpResponse::NotFound())
        .content_type("text/plain; charset=utf-8")
        .body("not found\n")
}

async fn asset(req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (version, name) = path.into_inner();
    assets::serve(&req, Audience::Public, &version, &name)
}

/// What the page needs to know of the node's setup, beyond the protocol's `welcome`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageFacts {
    /// Whether the node can tell a user's country (`--geoip` or `--country-header`): without
    /// it a country filter would never find anyone, and the page says so.
    pub countries: bool,
}

/// What the chat page shows about the node: users online and waiting right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PublicStats {
    /// WebSocket sessions open on this node.
    pub online: u64,
    /// Users waiting for a stranger on this node.
    pub waiting: u64,
    /// Whether this node can tell users' countries, so that a country filter can work.
    #[serde(default)]
    pub countries: bool,
}

async fn stats(node: web::Data<Arc<Node>>, facts: Option<web::Data<PageFacts>>) -> HttpResponse {
    let stats = PublicStats {
        online: node.metrics().online(),
        waiting: node.metrics().waiting(),
        countries: facts.is_some_and(|f| f.countries),
    };
    secured(HttpResponse::Ok())
        // Shared caches may hold it briefly: a node behind a CDN is not asked once per page.
        .insert_header((header::CACHE_CONTROL, "public, max-age=5"))
        .json(stats)
}
