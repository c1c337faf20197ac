//! The HTTP side of a node: `/ws` (upgrade to a [`UserSession`]), `/healthz`, `/readyz`,
//! `/livez`, `/metrics`, and the routes of the web client ([`crate::web`]) and the dashboard
//! ([`crate::admin`]). It decides what the client may not (its country, its client id and
//! address, whether its page may connect at all, whether a ban turns it away) and hands the
//! connection to the session; it never holds chat state.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessageStream, CloseCode, CloseReason};
use serde::Deserialize;
use tandem_engine::session::Identity;
use tandem_ids::DeviceId;
use tandem_match::{Country, Lang};
use tandem_proto::{Codec, Frame, MAX_FRAME_BYTES};

use crate::moderation::identity::{client_cookie, client_ip};
use crate::moderation::stats::Refused;
use crate::moderation::Moderation;
use crate::node::Node;
use crate::session::{SessionEnv, UserSession, UserSessionParams};
use crate::web::OriginPolicy;

pub mod frames;
pub mod per_ip;
pub mod socket;

use self::per_ip::{Limited, PerIp, PerIpLimits};
pub use crate::moderation::identity::CLIENT_COOKIE;

/// What the handshake decides by, from the operator's flags.
#[derive(Clone, Debug)]
pub struct HandshakeSettings {
    /// Which pages may open `/ws`.
    pub origins: OriginPolicy,
    /// A trusted proxy's header that carries the client's country (e.g. `CF-IPCountry`).
    pub country_header: Option<String>,
    /// Looks up the country of clients not covered by `country_header`.
    pub geoip: Option<Arc<crate::geoip::GeoIp>>,
    /// A trusted proxy's header that carries the client's address (e.g. `X-Forwarded-For`).
    pub client_ip_header: Option<HeaderName>,
    /// Connections and handshakes per address.
    pub per_ip: PerIpLimits,
    /// Users connected at once.
    pub max_users: usize,
    /// Users reach the node over https (its own TLS, or `--behind-https`): the client-id
    /// cookie is `Secure`.
    pub https: bool,
}

impl Default for HandshakeSettings {
    fn default() -> Self {
        Self {
            origins: OriginPolicy::default(),
            country_header: None,
            geoip: None,
            client_ip_header: None,
            per_ip: PerIpLimits::default(),
            max_users: usize::MAX,
            https: false,
        }
    }
}

/// The WebSocket side of a node: what every handshake needs.
pub struct Gateway {
    /// Whether the node still takes users.
    node: Arc<Node>,
    settings: HandshakeSettings,
    /// Connections and handshakes per address.
    per_ip: Arc<PerIp>,
    /// Handed to every session.
    sessions: Arc<SessionEnv>,
}

impl Gateway {
    /// The gateway of `node`, whose sessions get `sessions`.
    pub fn new(node: Arc<Node>, settings: HandshakeSettings, sessions: Arc<SessionEnv>) -> Self {
        Self {
            node,
            per_ip: PerIp::new(settings.per_ip),
            settings,
            sessions,
        }
    }

    fn moderation(&self) -> &Moderation {
        &self.sessions.moderation
    }
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    routes_with(cfg, true);
}

/// The routes of the metrics listener (`--metrics-listen`): `/metrics`, `/livez` and `/readyz`.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        // The probes too: this listener keeps answering while `--listen` stops accepting
        // during a shutdown, so a liveness probe here never fails a draining node.
        .route("/livez", web::get().to(livez))
        .route("/readyz", web::get().to(healthz));
}

/// Registers the node's routes; `/metrics` only if `with_metrics` (else it has a listener
/// of its own, [`metrics_routes`]).
pub fn routes_with(cfg: &mut web::ServiceConfig, with_metrics: bool) {
    cfg.route("/ws", web::get().to(upgrade))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(healthz))
        .route("/livez", web::get().to(livez));
    if with_metrics {
        cfg.route("/metrics", web::get().to(metrics));
    }
    cfg.configure(crate::web::routes)
        .configure(crate::privacy::http::routes)
        .configure(crate::admin::routes);
}

#[derive(Deserialize)]
struct WsQuery {
    codec: Option<String>,
    client_id: Option<String>,
    /// The page's device hint (a random id it keeps in local storage).
    device: Option<String>,
}

async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    gateway: web::Data<Gateway>,
) -> actix_web::Result<HttpResponse> {
    if !gateway.node.is_ready() {
        return Ok(HttpResponse::ServiceUnavailable().body("node is shutting down\n"));
    }
    let header_of = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    // An Origin that is there but not ASCII is no origin any policy allows, not an absent one.
    let origin = (req.headers().get(header::ORIGIN)).map(|v| v.to_str().unwrap_or("(not ASCII)"));
    if let Err(refused) = (gateway.settings.origins).check(origin, header_of(header::HOST)) {
        tracing::debug!(origin = %refused.0, "websocket handshake from a foreign origin refused");
        gateway.moderation().stats.refused(Refused::Origin);
        return Ok(HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body(format!("{refused}\n")));
    }
    let ip = client_ip(&req, gateway.settings.client_ip_header.as_ref());
    if gateway.node.registry().len() >= gateway.settings.max_users {
        gateway.moderation().stats.refused(Refused::Full);
        return Ok(HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .body("node is full; try again in a moment\n"));
    }
    let slot = match gateway.per_ip.admit(ip, std::time::Instant::now()) {
        Ok(slot) => slot,
        Err(limited) => {
            gateway.moderation().stats.refused(match limited {
                Limited::Connections => Refused::PerIpConnections,
                Limited::Rate => Refused::PerIpRate,
            });
            return Ok(HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, "1"))
                .content_type("text/plain; charset=utf-8")
                .body(format!("{limited}\n")));
        }
    };
    let query = web::Query::<WsQuery>::from_query(req.query_string())
        .map_err(|e| actix_web::error::ErrorBadRequest(format!("bad query: {e}\n")))?;
    let codec = match query.codec.as_deref() {
        None => Codec::Json,
        Some(name) => Codec::from_name(name)
            .ok_or_else(|| actix_web::error::ErrorBadRequest("codec must be json or bincode\n"))?,
    };
    let from_cookie = client_cookie(&req);
    let moderation = gateway.moderation();
    // An id this cluster issued is kept; anything else (absent, made up, altered) is
    // replaced by a fresh one, which the client learns from `welcome`.
    let given = query.client_id.as_deref().or(from_cookie.as_deref());
    let verified = given.and_then(|text| moderation.issuer.verify(text));
    let known = verified.is_some();
    let client = verified.unwrap_or_else(|| moderation.issuer.issue());
    let who = Arc::new(Identity {
        client,
        ip,
        device: query.device.as_deref().and_then(DeviceId::parse),
    });
    let refusal = moderation.admission.handshake(&who).await.err();
    // The clients it reported before stay blocked for a returning client.
    let blocks = match (known, &refusal) {
        (true, None) => moderation
            .reports
            .blocks_of(&who.client)
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(error = %err, "cannot read a client's blocks");
                Vec::new()
            }),
        _ => Vec::new(),
    };
    let country = country_of(&req, &gateway.settings);
    let default_lang = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
        .unwrap_or_default();

    // Frame headers are checked as the bytes arrive, before the parser buffers a payload.
    let guarded: std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>> =
        Box::pin(frames::Guarded::new(body.into_inner(), MAX_FRAME_BYTES));
    let mut guarded = actix_web::dev::Payload::from(guarded);
    let body = <web::Payload as actix_web::FromRequest>::from_request(&req, &mut guarded).await?;
    let (mut response, ws, frames) = actix_ws::handle(&req, body)?;
    let frames = frames
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    if from_cookie.as_deref() != Some(who.client.as_str()) {
        // Over https the cookie must never travel in clear text; a proxy's
        // `X-Forwarded-Proto: https` is enough for that, since a client lying about it only
        // withholds its own cookie from plain http.
        let https = gateway.settings.https || req.connection_info().scheme() == "https";
        let secure = if https { "; Secure" } else { "" };
        let cookie = format!(
            "{CLIENT_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly{secure}",
            who.client.as_str()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    if let Some(refusal) = refusal {
        tracing::debug!(client = %who.client, "banned client refused at the handshake");
        moderation.stats.refused(Refused::Banned);
        actix_rt::spawn(turn_away(
            ws,
            frames,
            codec.encode(&refusal.message()),
            slot,
        ));
        return Ok(response);
    }
    UserSession::start(UserSessionParams {
        socket: req
            .conn_data::<socket::Accepted>()
            .map(socket::Accepted::socket),
        env: Arc::clone(&gateway.sessions),
        codec,
        who,
        blocks,
        default_lang,
        country,
        ws,
        frames,
        slot,
    });
    Ok(response)
}

/// Tells a refused client why in the first frame, and closes with 1008 (policy); it never
/// gets `welcome` and never reaches a session.
async fn turn_away(
    mut ws: actix_ws::Session,
    frames: AggregatedMessageStream,
    why: Frame,
    slot: Option<per_ip::Slot>,
) {
    let sent = match why {
        Frame::Text(text) => ws.text(text).await,
        Frame::Binary(bytes) => ws.binary(bytes).await,
    };
    if sent.is_ok() {
        let reason = CloseReason {
            code: CloseCode::Policy,
            description: Some("banned".into()),
        };
        let _ = ws.close(Some(reason)).await;
    }
    drop((frames, slot));
}

/// The client's country: from the trusted proxy header when one is configured and present,
/// else from the GeoIP database by the TCP peer's address, else unknown. The client's own
/// word is never taken.
fn country_of(req: &HttpRequest, settings: &HandshakeSettings) -> Country {
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

/// `/healthz` and `/readyz` (readiness): 200 while the node accepts users, 503 once it
/// drains, so that a load balancer sends new users elsewhere.
async fn healthz(node: web::Data<Arc<Node>>) -> HttpResponse {
    if node.is_ready() {
        HttpResponse::Ok().body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable().body("shutting down\n")
    }
}

/// `/livez` (liveness): 200 whenever the HTTP server answers at all, draining or not. An
/// orchestrator restarts a process that fails it; a drain must not look like that.
async fn livez() -> HttpResponse {
    HttpResponse::Ok().body("ok\n")
}

async fn metrics(
    node: web::Data<Arc<Node>>,
    gateway: web::Data<Gateway>,
    privacy: web::Data<Arc<crate::privacy::Privacy>>,
) -> HttpResponse {
    let mut out = node.render_metrics();
    let label = crate::metrics::escape_label(&node.id().0);
    gateway.moderation().stats.render(&mut out, &label);
    privacy.render(&mut out, &label);
    gateway.sessions.abuse.render(&mut out, &label);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}
