//! The files of the chat page and of the operator dashboard, embedded in the binary at build
//! time (no Node toolchain, nothing read from disk at run time).
//!
//! Assets are served under a versioned path, `/assets/<version>/<name>`, where the version is
//! a hash of every embedded file: a new build gets new URLs, so browsers may cache assets for
//! a year (`immutable`) and never mix old and new modules. The pages that name them are
//! revalidated on every load (`no-cache` with an `ETag`).

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// Who may fetch an asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Everyone: the chat page's files, under `/assets/`.
    Public,
    /// The dashboard's files, under `/admin/assets/`, only when `--admin-token` is set.
    Admin,
}

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub body: &'static [u8],
    pub content_type: &'static str,
    pub audience: Audience,
}

macro_rules! asset {
    ($audience:ident, $name:literal, $type:expr) => {
        Asset {
            name: $name,
            body: include_bytes!(concat!("assets/", $name)),
            content_type: $type,
            audience: Audience::$audience,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every embedded asset.
pub const ASSETS: &[Asset] = &[
    asset!(Public, "base.css", CSS),
    asset!(Public, "chat.css", CSS),
    asset!(Public, "app.js", JS),
    asset!(Public, "connection.js", JS),
    asset!(Public, "challenge.js", JS),
    asset!(Public, "challenge-worker.js", JS),
    asset!(Public, "stills.js", JS),
    asset!(Public, "landing.js", JS),
    asset!(Public, "log.js", JS),
    asset!(Public, "call.js", JS),
    asset!(Public, "tags.js", JS),
    asset!(Public, "places.js", JS),
    asset!(Public, "i18n.js", JS),
    asset!(Public, "privacy.js", JS),
    asset!(Public, "icon.svg", "image/svg+xml"),
    asset!(Public, "doc.css", CSS),
    asset!(Admin, "admin.css", CSS),
    asset!(Admin, "admin.js", JS),
    asset!(Admin, "charts.js", JS),
    asset!(Admin, "moderation.js", JS),
];

/// An HTML page with `{{assets}}` and `{{admin_assets}}` standing for the versioned asset
/// paths, filled in once.
pub struct Page {
    template: &'static str,
    rendered: OnceLock<String>,
}

impl Page {
    /// A page from its template.
    pub const fn new(template: &'static str) -> Self {
        Self {
            template,
            rendered: OnceLock::new(),
        }
    }

    /// The page with the asset paths of this build.
    pub fn html(&self) -> &str {
        self.rendered.get_or_init(|| {
            self.template
                .replace("{{assets}}", &format!("/assets/{}", version()))
                .replace("{{admin_assets}}", &format!("/admin/assets/{}", version()))
        })
    }
}

/// The pages, hashed into the version too (they name the assets).
pub const PAGES: [&str; 2] = [include_str!("index.html"), include_str!("admin.html")];

/// The version of this build's assets: 12 hex digits of a SHA-256 over every file.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hash = Sha256::new();
        for asset in ASSETS {
            hash.update(asset.name.as_bytes());
            hash.update((asset.body.len() as u64).to_le_bytes());
            hash.update(asset.body);
        }
        for page in PAGES {
            hash.update(page.as_bytes());
        }
        // The chat page carries its strings.
        for (code, text) in super::i18n::SOURCES {
            hash.update(code.as_bytes());
            hash.update(text.as_bytes());
        }
        hash.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// The asset `name` for `audience`, if there is one.
pub fn find(audience: Audience, name: &str) -> Option<&'static Asset> {
    ASSETS
        .iter()
        .find(|a| a.audience == audience && a.name == name)
}

/// Serves an asset asked for as `<prefix>/<version>/<name>`. The current version is cached
/// for a year; another one (a page from before a deploy) gets today's file, revalidated on
/// every use, rather than a broken page.
pub fn serve(
    req: &HttpRequest,
    audience: Audience,
    asked_version: &str,
    name: &str,
) -> HttpResponse {
    let Some(asset) = find(audience, name) else {
        return super::not_found();
    };
    let etag = format!("\"{}\"", version());
    if not_modified(req, &etag) {
        return super::secured(HttpResponse::NotModified())
            .insert_header((header::ETAG, etag))
            .finish();
    }
    let cache = if asked_version == version() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    super::secured(HttpResponse::Ok())
        .content_type(asset.content_type)
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag))
        .body(asset.body)
}

/// Whether the client already holds the version `etag` names (`If-None-Match`).
pub fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_twelve_hex_digits_and_stable() {
        assert_eq!(version().len(), 12);
        assert!(version().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(version(), version());
    }

    #[test]
    fn pages_name_assets_that_exist_for_their_audience() {
        let all = super::super::i18n::locales();
        for (html, audience_of) in [
            (
                super::super::i18n::render(Page::new(PAGES[0]).html(), &all[0], all),
                "/assets/",
            ),
            (Page::new(PAGES[1]).html().to_owned(), "/admin/assets/"),
        ] {
            assert!(!html.contains("{{"), "unfilled placeholder");
            for (at, _) in html.match_indices(audience_of) {
                let rest = &html[at + audience_of.len()..];
                let path = &rest[..rest.find('"').unwrap()];
                let (v, name) = path.split_once('/').unwrap();
                assert_eq!(v, version());
                let audience = if audience_of == "/assets/" {
                    Audience::Public
                } else {
                    Audience::Admin
                };
                assert!(find(audience, name).is_some(), "{name} is not embedded");
            }
        }
    }

    #[test]
    fn no_page_has_inline_script_or_style() {
        for page in PAGES {
            for line in page.lines() {
                let line = line.trim();
                if line.starts_with("<script") {
                    // A data block (the page's strings) is not run.
                    assert!(
                        line.contains("src=") || line.contains("type=\"application/json\""),
                        "inline script: {line}"
                    );
                }
                assert!(!line.contains("<style"), "inline style: {line}");
                assert!(!line.contains(" style=\""), "style attribute: {line}");
                assert!(!has_event_handler(line), "inline event handler: {line}");
            }
        }
    }

    /// Whether `line` has an attribute like ` onclick=`.
    fn has_event_handler(line: &str) -> bool {
        line.match_indices(" on").any(|(at, _)| {
            let rest = &line[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    #[test]
    fn admin_assets_are_not_public() {
        assert!(find(Audience::Public, "admin.js").is_none());
        assert!(find(Audience::Admin, "admin.js").is_some());
    }
}
