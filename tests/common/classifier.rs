//! A real HTTP server standing in for the operator's image classifier
//! (`--moderation-webhook`), and the stills it judges.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::Engine;
use serde_json::{json, Value};

/// What the stand-in classifier saw.
#[derive(Default)]
pub struct Seen {
    /// Flag every still from now on, whatever it holds.
    pub flag_all: std::sync::atomic::AtomicBool,
    pub requests: AtomicUsize,
    pub media_types: Mutex<Vec<String>>,
}

/// A classifier on a free port: a still whose bytes hold `NSFW` (or any, once `flag_all`
/// is set) scores nudity 0.9, `BAN!` 0.99, `SLOW` answers after 3 s, anything else is safe.
/// Returns its URL.
pub async fn classifier(seen: Arc<Seen>) -> String {
    let server = HttpServer::new(move || {
        let seen = Arc::clone(&seen);
        App::new().route(
            "/classify",
            web::post().to(move |body: web::Json<Value>| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.requests.fetch_add(1, Ordering::Relaxed);
                    let media = &body["media"];
                    seen.media_types
                        .lock()
                        .unwrap()
                        .push(media["type"].as_str().unwrap_or("").to_owned());
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(media["data"].as_str().unwrap_or(""))
                        .unwrap_or_default();
                    let has = |m: &[u8]| data.windows(4).any(|w| w == m);
                    if has(b"SLOW") {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    let nudity = if has(b"BAN!") {
                        0.99
                    } else if has(b"NSFW") || seen.flag_all.load(Ordering::Relaxed) {
                        0.9
                    } else {
                        0.01
                    };
                    HttpResponse::Ok().json(json!({"classes": [
                        {"class": "safe", "score": 1.0 - nudity},
                        {"class": "nudity", "score": nudity},
                    ]}))
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    actix_rt::spawn(server.run());
    format!("http://{addr}/classify")
}

/// A JPEG's headers, 160 pixels wide, with `mark` in a comment segment (the node reads
/// only the headers; the classifier looks for the mark).
pub fn jpeg(mark: &[u8; 4]) -> Vec<u8> {
    let mut out = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
    out.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    out.extend_from_slice(&[0xff, 0xfe, 0x00, 0x06]);
    out.extend_from_slice(mark);
    out.extend_from_slice(&[0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x78, 0x00, 0xa0]);
    out.extend_from_slice(&[0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}
