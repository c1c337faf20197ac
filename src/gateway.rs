//! The HTTP side of a node: `/ws` (upgrade to a [`UserSession`]), `/healthz`, `/metrics`,
//! and the routes of the web client ([`crate::web`]) and the dashboard ([`crate::admin`]).
//! It decides what the client may not (its country, its client id, whether its page may
//! connect at all) and hands the connection to the session; it never holds chat state.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::ids::ClientId;
use crate::matching::{Country, Lang};
use crate::node::Node;
use crate::protocol::{Codec, MAX_FRAME_BYTES};
use crate::session::{UserSession, UserSessionParams};

/// The cookie that carries the client id.
pub const CLIENT_COOKIE: &str = "tandem_id";

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(upgrade))
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .configure(crate::web::routes)
        .configure(crate::admin::routes);
}

#[derive(Deserialize)]
struct WsQuery {
    codec: Option<String>,
    client_id: Option<String>,
}

async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    node: web::Data<Arc<Node>>,
) -> actix_web::Result<HttpResponse> {
    if !node.is_ready() {
        return Ok(HttpResponse::ServiceUnavailable().body("node is shutting down\n"));
    }
    let header_of = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Err(refused) = node
        .settings
        .web
        .origins
        .check(header_of(header::ORIGIN), header_of(header::HOST))
    {
        tracing::debug!(origin = %refused.0, "websocket handshake from a foreign origin refused");
        return Ok(HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body(format!("{refused}\n")));
    }
    let query = web::Query::<WsQuery>::from_query(req.query_string())
        .map_err(|e| actix_web::error::ErrorBadRequest(format!("bad query: {e}\n")))?;
    let codec = match query.codec.as_deref() {
        None => Codec::Json,
        Some(name) => Codec::from_name(name)
            .ok_or_else(|| actix_web::error::ErrorBadRequest("codec must be json or bincode\n"))?,
    };
    let from_cookie = client_cookie(&req);
    let client_id = query
        .client_id
        .as_deref()
        .and_then(ClientId::parse)
        .or_else(|| from_cookie.clone())
        .unwrap_or_else(ClientId::random);
    let country = country_of(&req, &node.settings);
    let default_lang = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
        .unwrap_or_default();

    let (mut response, ws, frames) = actix_ws::handle(&req, body)?;
    let frames = frames
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    if from_cookie.as_ref() != Some(&client_id) {
        let cookie = format!(
            "{CLIENT_COOKIE}={client_id}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly"
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    UserSession::start(UserSessionParams {
        node: Arc::clone(&node),
        codec,
        client_id,
        default_lang,
        country,
        ws,
        frames,
    });
    Ok(response)
}

/// The client's country: from the trusted proxy header when one is configured and present,
/// else from the GeoIP database by the TCP peer's address, else unknown. The client's own
/// word is never taken.
fn country_of(req: &HttpRequest, settings: &crate::node::SessionSettings) -> Country {
    let from_header = settings
        .country_header
        .as_deref()
        .and_then(|name| req.headers().get(name))
        .and_then(|v| v.to_str().ok())
        .and_then(Country::parse);
    let from_geoip = || {
        let geoip = settings.geoip.as_ref()?;
        geoip.country(req.peer_addr()?.ip())
    };
    from_header.or_else(from_geoip).unwrap_or(Country::UNKNOWN)
}

/// The client id from the `tandem_id` cookie, if present and well formed.
fn client_cookie(req: &HttpRequest) -> Option<ClientId> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CLIENT_COOKIE)
        .and_then(|(_, value)| ClientId::parse(value))
}

async fn healthz(node: web::Data<Arc<Node>>) -> HttpResponse {
    if node.is_ready() {
        HttpResponse::Ok().body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable().body("shutting down\n")
    }
}

async fn metrics(node: web::Data<Arc<Node>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(node.render_metrics())
}
