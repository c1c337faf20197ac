//! The privacy routes: saved logs (`/logs/<id>`, read by anyone with the address, deleted
//! with the secret of `delete_url`), a user's access and erasure (`/api/privacy/export`,
//! `/api/privacy/erase`, authenticated by the `tandem_id` cookie), and the `/privacy` page,
//! written from the node's own settings so that what users read is what the node does.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tandem_ids::ClientId;

use super::access::AccessError;
use super::logs::DeleteError;
use super::{Policy, Privacy, Shared};
use crate::moderation::identity::client_cookie;
use crate::moderation::records::{utc, SavedLog};
use crate::moderation::store::StoreError;
use crate::web::{assets, escape, secured};

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/logs/{id}", web::get().to(read_log))
        .route("/logs/{id}", web::delete().to(delete_by_api))
        .route("/logs/{id}/delete", web::get().to(confirm_delete))
        .route("/logs/{id}/delete", web::post().to(delete_by_form))
        .route("/api/privacy/export", web::get().to(export))
        .route("/api/privacy/erase", web::post().to(erase))
        .route("/privacy", web::get().to(policy_page));
}

#[derive(Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

/// A saved log as JSON.
#[derive(Serialize)]
struct LogView<'a> {
    id: &'a str,
    /// Unix seconds.
    started_at: u64,
    ended_at: Option<u64>,
    saved_at: u64,
    common_interests: &'a [String],
    lines: &'a [crate::moderation::records::EvidenceLine],
}

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}

fn json_error(mut response: actix_web::HttpResponseBuilder, message: &str) -> HttpResponse {
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "error": message }))
}

fn unavailable(err: &StoreError) -> HttpResponse {
    tracing::warn!(error = %err, "the store could not be reached for a privacy request");
    json_error(
        secured(HttpResponse::ServiceUnavailable()),
        "the store is unavailable now; try again",
    )
}

async fn read_log(
    req: HttpRequest,
    privacy: web::Data<Shared>,
    id: web::Path<String>,
) -> HttpResponse {
    let log = match privacy.logs.get(&id).await {
        Ok(Some(log)) => log,
        Ok(None) => return missing(&req),
        Err(err) => return unavailable(&err),
    };
    if wants_json(&req) {
        return secured(HttpResponse::Ok())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("x-robots-tag", "noindex"))
            .json(LogView {
                id: &log.id,
                started_at: log.started_ms / 1000,
                ended_at: log.ended_ms.map(|ms| ms / 1000),
                saved_at: log.saved_at,
                common_interests: &log.common_interests,
                lines: &log.lines,
            });
    }
    page(
        HttpResponse::Ok(),
        "A saved chat",
        &log_body(&log, privacy.policy.retention.log_ends(&log)),
    )
}

fn missing(req: &HttpRequest) -> HttpResponse {
    let message = "no such log: it was deleted, it expired, or the address is wrong";
    if wants_json(req) {
        return json_error(secured(HttpResponse::NotFound()), message);
    }
    page(
        HttpResponse::NotFound(),
        "Not found",
        &format!(
            "<h1>Not found</h1>\n<p>{}.</p>",
            escape(&capitalised(message))
        ),
    )
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The log's page: the chat, one line per `<li>`, every text escaped.
fn log_body(log: &SavedLog, ends: u64) -> String {
    let mut body = String::from("<h1>A saved chat</h1>\n<p class=\"meta\">");
    body += &format!("A chat on <time>{} UTC</time>", utc(log.started_ms / 1000));
    if let Some(ended) = log.ended_ms {
        body += &format!(", until <time>{} UTC</time>", &utc(ended / 1000)[11..]);
    }
    body += ".";
    if !log.common_interests.is_empty() {
        let interests: Vec<String> = log.common_interests.iter().map(|i| escape(i)).collect();
        body += &format!(" You both liked {}.", interests.join(", "));
    }
    body += "</p>\n<ol class=\"saved-log\">\n";
    for line in &log.lines {
        let (class, who) = if line.from == "you" {
            ("you", "You")
        } else {
            ("stranger", "Stranger")
        };
        body += &format!(
            "<li class=\"{class}\"><time>{}</time> <strong>{who}:</strong> <span dir=\"auto\">{}</span></li>\n",
            &utc(line.at_ms / 1000)[11..],
            escape(&line.text)
        );
    }
    if log.lines.is_empty() {
        body += "<li class=\"empty\">Nobody wrote anything.</li>\n";
    }
    body += &format!(
        "</ol>\n<p class=\"hint\">Saved by one of the two. Anyone with this address can read \
         it; it is deleted on <time>{} UTC</time>, or earlier by whoever saved it. \
         <a href=\"/privacy\">Privacy</a></p>",
        utc(ends)
    );
    body
}

async fn confirm_delete(
    req: HttpRequest,
    privacy: web::Data<Shared>,
    id: web::Path<String>,
    query: web::Query<KeyQuery>,
) -> HttpResponse {
    let key = query.key.clone().unwrap_or_default();
    match privacy.logs.get(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return missing(&req),
        Err(err) => return unavailable(&err),
    }
    // The form posts back to this address, key included; a GET alone (a link preview, a
    // prefetch) deletes nothing.
    let action = format!(
        "/logs/{}/delete?key={}",
        escape(&id),
        escape(&percent(&key))
    );
    page(
        HttpResponse::Ok(),
        "Delete this saved chat?",
        &format!(
            "<h1>Delete this saved chat?</h1>\n<p>Its address <a href=\"/logs/{id}\">/logs/{id}</a> \
             stops working for everyone, at once.</p>\n<form method=\"post\" action=\"{action}\">\
             <button class=\"btn danger\" type=\"submit\" id=\"delete-log\">Delete it</button></form>",
            id = escape(&id)
        ),
    )
}

/// `key` fit for a query string (it is hex when the node issued it).
fn percent(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn delete_by_form(
    req: HttpRequest,
    privacy: web::Data<Shared>,
    id: web::Path<String>,
    query: web::Query<KeyQuery>,
) -> HttpResponse {
    let key = query.key.clone().unwrap_or_default();
    match privacy.logs.delete(&id, &key).await {
        Ok(()) => page(
            HttpResponse::Ok(),
            "Deleted",
            "<h1>Deleted</h1>\n<p>The saved chat is gone; its address no longer works.</p>\n\
             <p><a href=\"/\">Back to tandem</a></p>",
        ),
        Err(DeleteError::NotFound) => missing(&req),
        Err(DeleteError::WrongKey) => page(
            HttpResponse::Forbidden(),
            "Wrong key",
            "<h1>Wrong key</h1>\n<p>This is not the address that deletes this chat.</p>",
        ),
        Err(DeleteError::Store(err)) => unavailable(&err),
    }
}

async fn delete_by_api(
    privacy: web::Data<Shared>,
    id: web::Path<String>,
    query: web::Query<KeyQuery>,
) -> HttpResponse {
    let key = query.key.clone().unwrap_or_default();
    match privacy.logs.delete(&id, &key).await {
        Ok(()) => secured(HttpResponse::Ok()).json(serde_json::json!({ "deleted": true })),
        Err(DeleteError::NotFound) => json_error(secured(HttpResponse::NotFound()), "no such log"),
        Err(DeleteError::WrongKey) => json_error(secured(HttpResponse::Forbidden()), "wrong key"),
        Err(DeleteError::Store(err)) => unavailable(&err),
    }
}

/// The client a request's `tandem_id` cookie names, if this cluster issued it.
fn client_of(req: &HttpRequest, privacy: &Privacy) -> Option<ClientId> {
    privacy.issuer.verify(&client_cookie(req)?)
}

fn unauthenticated() -> HttpResponse {
    json_error(
        secured(HttpResponse::Unauthorized()),
        "no valid tandem_id cookie: nothing is stored for this browser, or it connected \
         under another id",
    )
}

fn refused(err: AccessError) -> HttpResponse {
    match err {
        AccessError::RateLimited => json_error(
            secured(HttpResponse::TooManyRequests()),
            &AccessError::RateLimited.to_string(),
        ),
        AccessError::Busy => {
            let mut busy = secured(HttpResponse::ServiceUnavailable());
            busy.insert_header((header::RETRY_AFTER, "5"));
            json_error(busy, &AccessError::Busy.to_string())
        }
        AccessError::Store(err) => unavailable(&err),
    }
}

async fn export(req: HttpRequest, privacy: web::Data<Shared>) -> HttpResponse {
    let Some(client) = client_of(&req, &privacy) else {
        return unauthenticated();
    };
    match privacy.access.export(&client).await {
        Ok(export) => {
            Privacy::counted(&privacy.exports);
            secured(HttpResponse::Ok())
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("inline; filename=\"tandem-data.json\""),
                ))
                .json(export)
        }
        Err(err) => refused(err),
    }
}

async fn erase(req: HttpRequest, privacy: web::Data<Shared>) -> HttpResponse {
    // A JSON body cannot be sent across origins without the browser asking first (CORS),
    // and the cookie is SameSite=Lax: another site cannot make a visitor erase its data.
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return json_error(
            secured(HttpResponse::UnsupportedMediaType()),
            "send content-type: application/json",
        );
    }
    let Some(client) = client_of(&req, &privacy) else {
        return unauthenticated();
    };
    match privacy.access.erase(&client).await {
        Ok(erasure) => {
            Privacy::counted(&privacy.erasures);
            tracing::info!(client = %client, "erased a client's data at its request");
            secured(HttpResponse::Ok())
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(erasure)
        }
        Err(err) => refused(err),
    }
}

async fn policy_page(privacy: web::Data<Shared>) -> HttpResponse {
    page(HttpResponse::Ok(), "Privacy", &policy_body(&privacy.policy))
}

/// A duration as people say it: "120 days", "1 hour", "90 seconds".
pub fn spoken(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    let (n, unit) = match secs {
        s if s >= 86_400 && s.is_multiple_of(86_400) => (s / 86_400, "day"),
        s if s >= 3600 && s.is_multiple_of(3600) => (s / 3600, "hour"),
        s if s >= 60 && s.is_multiple_of(60) => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The privacy page: what is kept, where, for how long, who sees it; every period from the
/// node's flags.
fn policy_body(policy: &Policy) -> String {
    let r = &policy.retention;
    let ips = if policy.full_ips_in_logs {
        "in full (the operator chose so)"
    } else {
        "cut to their network (/24 for IPv4, /48 for IPv6)"
    };
    let country = if policy.derives_country {
        "Your country, derived from your address (country level only), is told to the \
         strangers you meet and used by their country filter; it is kept only in memory while \
         you are connected, and in a report against you."
    } else {
        "This site derives no location from your address."
    };
    let rows: Vec<[String; 4]> = vec![
        [
            "Your client id (a random id in the <code>tandem_id</code> cookie)".into(),
            "Your browser; the server, in reports and bans that name you".into(),
            "Cookie: 1 year. Stored: as long as the record that holds it".into(),
            "Moderators (never the strangers you meet)".into(),
        ],
        [
            "Device id (a random id in your browser's local storage)".into(),
            "Your browser; in memory while connected; in a report against you".into(),
            "As long as that report or a ban on it".into(),
            "Moderators".into(),
        ],
        [
            "IP address".into(),
            format!("In memory while connected; in a report against you or a ban; in operator logs {ips}"),
            format!(
                "Reports: {}; bans: {} after they end",
                spoken(r.reports),
                spoken(r.bans)
            ),
            "Moderators and the operator".into(),
        ],
        [
            "Country, language, interests, college domain".into(),
            "In memory while you wait and chat; common interests in a saved log".into(),
            "Until you disconnect (or the saved log goes)".into(),
            "The strangers you meet see your country and the interests you share".into(),
        ],
        [
            "What you write".into(),
            "Relayed to the stranger; the current and last chat's lines in memory only".into(),
            "Dropped 5 minutes after the chat ends, or when you disconnect; stored only in a \
             report or a log someone saved"
                .into(),
            "The stranger; moderators, if someone reports the chat".into(),
        ],
        if policy.snapshots {
            [
                "Video and snapshots".into(),
                "Video goes between browsers directly (or through a relay that cannot read it). \
                 Every few seconds your browser sends a small still of your own camera to \
                 this site's automated moderation; a still it clears is dropped at once, a \
                 flagged one ends the chat and is kept encrypted for our moderators"
                    .into(),
                format!(
                    "Cleared stills: not kept; flagged stills: {}",
                    spoken(r.snapshots)
                ),
                "The stranger sees your video; moderators see a flagged still".into(),
            ]
        } else {
            [
                "Video and snapshots".into(),
                "Video goes between browsers directly (or through a relay that cannot read \
                 it); this site takes no snapshots"
                    .into(),
                "Not kept".into(),
                "The stranger".into(),
            ]
        },
        [
            "Reports".into(),
            "The server's store: reason, note, the chat's last 50 lines".into(),
            format!("{} after the last change", spoken(r.reports)),
            "Moderators".into(),
        ],
        [
            "Bans".into(),
            "The server's store: who or what is banned, why, until when".into(),
            format!(
                "While they ban, then {} (permanent bans: while they ban)",
                spoken(r.bans)
            ),
            "Moderators; you, when you are banned".into(),
        ],
        [
            "Saved chat logs".into(),
            "The server's store: both sides' lines, times, common interests".into(),
            format!("{} after saving, or until deleted", spoken(r.logs)),
            "Anyone with the log's address".into(),
        ],
        [
            "Who you reported (so you never meet again)".into(),
            "The server's store".into(),
            format!("{} after your last report", spoken(r.blocks)),
            "Nobody (the server uses it when pairing)".into(),
        ],
        [
            "Moderators' audit log".into(),
            "The server's store: which moderator did what to which ban or report".into(),
            spoken(r.audit),
            "Moderators and the operator".into(),
        ],
        [
            "Usage metrics".into(),
            "Counters only (users online, chats, skips): nothing about any one user".into(),
            "As the operator's monitoring keeps them".into(),
            "The operator".into(),
        ],
    ];
    let mut body = String::from(
        "<h1>Privacy</h1>\n<p>What this site keeps about you, where, for how long and who sees \
         it. Every period below is this server's own setting.</p>\n<table>\n<thead><tr>\
         <th scope=\"col\">What</th><th scope=\"col\">Where</th><th scope=\"col\">How long</th>\
         <th scope=\"col\">Who sees it</th></tr></thead>\n<tbody>\n",
    );
    for row in rows {
        // The cells are this page's own text: nothing a user wrote.
        body += &format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            row[0], row[1], row[2], row[3]
        );
    }
    body += "</tbody>\n</table>\n";
    body += &format!(
        "<h2>Chats</h2>\n<p>Chats are not recorded. While a chat runs and for 5 minutes after \
         it ends, your browser's session on the server holds its last lines in memory, so that \
         either of you can report the other (within 1 minute) or save the chat (within 5 \
         minutes). A saved chat gets an address anyone holding it can read, and a second \
         address that deletes it; it is deleted after {}. (Omegle kept saved logs \
         indefinitely; a bound means a link shared once does not expose a conversation \
         forever.)</p>\n",
        spoken(r.logs)
    );
    body += &format!("<h2>Location</h2>\n<p>{country}</p>\n");
    body += &format!(
        "<h2>Deletion</h2>\n<p>Every stored record has an end. A purge runs every {} and \
         removes what has passed it, history included; nothing past its end is shown in the \
         meantime.</p>\n",
        spoken(policy.purge_interval)
    );
    body += "<h2>Your data</h2>\n<p>On the chat page, <strong>Your data</strong> downloads \
             every stored record linked to your browser's client id \
             (<code>GET /api/privacy/export</code>) and erases it \
             (<code>POST /api/privacy/erase</code>). Erasure keeps only what enforces a ban: an \
             active ban and the report it was issued on (while the ban bans), reports against \
             you a moderator has not reviewed yet, and the automatic rule's count of recent \
             reports (for minutes to a day).</p>\n\
             <h2>Minors</h2>\n<p>This site is for adults. When moderators confirm a report \
             that someone is under 18, their client id, device and address are banned for good \
             and everything else stored about them is erased.</p>\n\
             <p><a href=\"/\">Back to tandem</a></p>";
    body
}

/// A page of the site with its security headers: no script at all.
fn page(status: actix_web::HttpResponseBuilder, title: &str, body: &str) -> HttpResponse {
    let version = assets::version();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{} · tandem</title>\n\
         <link rel=\"icon\" href=\"/assets/{version}/icon.svg\">\n\
         <link rel=\"stylesheet\" href=\"/assets/{version}/base.css\">\n\
         <link rel=\"stylesheet\" href=\"/assets/{version}/doc.css\">\n</head>\n\
         <body class=\"doc\">\n<main class=\"doc-main\">\n{body}\n</main>\n</body>\n</html>\n",
        escape(title)
    );
    let mut response = secured(status);
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; \
                 form-action 'self'; frame-ancestors 'none'",
            ),
        ))
        .content_type("text/html; charset=utf-8")
        .body(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_periods_are_spoken() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(
            spoken(std::time::Duration::from_secs(120 * 86_400)),
            "120 days"
        );
        assert_eq!(spoken(std::time::Duration::from_secs(3600)), "1 hour");
        assert_eq!(spoken(std::time::Duration::from_secs(90)), "90 seconds");
        assert_eq!(percent("ab/+"), "ab%2F%2B");
    }
}
