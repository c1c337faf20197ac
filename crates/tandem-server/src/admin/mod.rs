//! The operator dashboard and API, behind `--admin-token`: `/admin` (a page drawing live
//! charts, the review queue, the bans and the audit log), `/admin/api/stats` (the JSON the
//! charts poll) and the moderation API ([`api`]: reports, bans, audit). Without the flag
//! they do not exist (404); without a token of one of the named moderators they answer 401.
//!
//! The JSON is a snapshot of cumulative counters and gauges, per node and per shard; the page
//! keeps a rolling window of them and derives rates and latency quantiles from the
//! differences, as a Prometheus query would. [`snapshot`] is the one place a snapshot is
//! built, so that nodes of a cluster can be added to it. This module reads metrics; it never
//! changes them and never sees a user's messages.

pub mod api;

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tandem_proto::ErrorCode;

use crate::metrics::Metrics;
use crate::moderation::Moderation;
use crate::node::Node;
use crate::web::assets::{self, Audience};
use crate::web::secured;

/// The operators' tokens (`--admin-token NAME=TOKEN`, repeatable; a bare `TOKEN` is named
/// `admin`). Only each token's SHA-256 is kept, and a candidate is compared by hashing it and
/// comparing digests in constant time, so neither a token's bytes nor its length leak
/// through timing. The name is who the audit log says acted.
#[derive(Clone)]
pub struct AdminTokens {
    tokens: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(name, _)| name.as_str()).collect();
        write!(f, "AdminTokens({names:?})")
    }
}

/// Why an `--admin-token` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminTokenError {
    #[error("--admin-token must be at least 16 bytes (32 or more recommended)")]
    Weak,
    #[error("--admin-token NAME=TOKEN: the name `{0}` must be 1 to 32 of A-Z a-z 0-9 _ - .")]
    BadName(String),
    #[error("--admin-token: the name `{0}` is given twice")]
    Duplicate(String),
}

impl AdminTokens {
    /// The shortest token accepted: an empty or short one (an unset variable in a
    /// deployment template) would let anyone in.
    pub const MIN_BYTES: usize = 16;

    /// Tokens from the flags: `NAME=TOKEN` or a bare `TOKEN` (named `admin`).
    pub fn parse(flags: &[String]) -> Result<Self, AdminTokenError> {
        let mut tokens: Vec<(String, [u8; 32])> = Vec::new();
        for flag in flags {
            let (name, token) = match flag.split_once('=') {
                Some((name, token)) if !name.is_empty() && token.len() >= Self::MIN_BYTES => {
                    (name, token)
                }
                _ => ("admin", flag.as_str()),
            };
            let name_ok = name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !name_ok {
                return Err(AdminTokenError::BadName(name.to_owned()));
            }
            if token.len() < Self::MIN_BYTES {
                return Err(AdminTokenError::Weak);
            }
            if tokens.iter().any(|(other, _)| other == name) {
                return Err(AdminTokenError::Duplicate(name.to_owned()));
            }
            tokens.push((name.to_owned(), Sha256::digest(token.as_bytes()).into()));
        }
        Ok(Self { tokens })
    }

    /// Whether no token is configured (the dashboard and the API are off).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The name of the moderator whose token `candidate` is, in time that does not depend on
    /// where it differs from any token.
    pub fn who(&self, candidate: &str) -> Option<&str> {
        let theirs: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        let mut found = None;
        for (name, digest) in &self.tokens {
            let difference = digest
                .iter()
                .zip(theirs)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            // black_box keeps the optimizer from turning the fold into an early exit.
            if std::hint::black_box(difference) == 0 {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The dashboard of a node: the moderators' tokens (none: no dashboard), the node it reads
/// and the moderation it drives.
pub struct Dashboard {
    node: Arc<Node>,
    tokens: AdminTokens,
    moderation: Arc<Moderation>,
    /// Where flagged snapshots are opened for review.
    abuse: Arc<crate::abuse::Abuse>,
}

impl Dashboard {
    /// The dashboard of `node`, its `moderation` and its `abuse` prevention, behind
    /// `tokens`.
    pub fn new(
        node: Arc<Node>,
        tokens: AdminTokens,
        moderation: Arc<Moderation>,
        abuse: Arc<crate::abuse::Abuse>,
    ) -> Self {
        Self {
            node,
            tokens,
            moderation,
            abuse,
        }
    }
}

/// What the dashboard polls: every node's figures at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminStats {
    /// When the snapshot was taken, in milliseconds since the UNIX epoch.
    pub at_ms: u64,
    /// One entry per node: the node that answered first, then the other live nodes of its
    /// cluster as their last heartbeats tell (online, waiting, matches and skips; their
    /// errors, latencies and shards are theirs to report).
    pub nodes: Vec<NodeStats>,
}

/// One node's figures. Counters (`*_total`) only grow; the dashboard turns them into rates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// The node's id (`--node-id`).
    pub node: String,
    /// `local` for the node that answered, `heartbeat` for the others of its cluster.
    pub source: String,
    /// WebSocket sessions open now.
    pub online: u64,
    /// Users waiting now, all shards.
    pub waiting: u64,
    /// Per local shard, in shard order.
    pub shards: Vec<ShardStats>,
    pub connections_total: u64,
    pub joins_total: u64,
    /// Pairs made.
    pub matches_total: u64,
    /// `next` that ended a chat.
    pub skips_total: u64,
    pub reports_total: u64,
    /// `error` messages sent to clients, by code (every code, zeros included).
    pub errors_total: BTreeMap<String, u64>,
    /// Time from join or next to matched.
    pub match_wait: HistogramStats,
}

/// One shard's figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStats {
    /// Users waiting in this shard's pool now.
    pub waiting: u64,
    /// Pairs made by this shard.
    pub matches_total: u64,
    /// Stale tickets dropped instead of paired.
    pub stale_dropped_total: u64,
}

/// A histogram's buckets: `counts[i]` observations at or below `bounds_secs[i]` and above the
/// bound before it; the last count is above every bound.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistogramStats {
    pub bounds_secs: Vec<f64>,
    pub counts: Vec<u64>,
}

/// The dashboard's snapshot of `node` (and, later, of the cluster's other nodes).
pub fn snapshot(node: &Node) -> AdminStats {
    let mut nodes = vec![NodeStats::of(&node.id().0, node.metrics())];
    if let Some(cluster) = node.cluster() {
        let bounds = node.metrics().match_wait.bounds();
        nodes.extend(cluster.view().members.into_iter().map(|(id, member)| {
            let status = member.status;
            NodeStats {
                node: id.0,
                source: "heartbeat".into(),
                online: status.online,
                waiting: status.waiting,
                shards: Vec::new(),
                connections_total: 0,
                joins_total: 0,
                matches_total: status.matches,
                skips_total: status.skips,
                reports_total: 0,
                errors_total: BTreeMap::new(),
                match_wait: HistogramStats {
                    bounds_secs: bounds.to_vec(),
                    counts: vec![0; bounds.len() + 1],
                },
            }
        }));
    }
    AdminStats {
        at_ms: unix_now_ms(),
        nodes,
    }
}

impl NodeStats {
    /// The figures of one node's metrics.
    pub fn of(node: &str, metrics: &Metrics) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            node: node.to_owned(),
            source: "local".into(),
            online: metrics.online(),
            waiting: metrics.waiting(),
            shards: metrics
                .shards
                .iter()
                .map(|s| ShardStats {
                    waiting: s.waiting.load(Relaxed),
                    matches_total: s.matches.load(Relaxed),
                    stale_dropped_total: s.stale_dropped.load(Relaxed),
                })
                .collect(),
            connections_total: metrics.connections_opened.load(Relaxed),
            joins_total: metrics.joins.load(Relaxed),
            matches_total: metrics.matched_sessions.load(Relaxed) / 2,
            skips_total: metrics.skips.load(Relaxed),
            reports_total: metrics.reports.load(Relaxed),
            errors_total: ErrorCode::ALL
                .iter()
                .map(|&code| (code.as_str().to_owned(), metrics.errors_of(code)))
                .collect(),
            match_wait: HistogramStats {
                bounds_secs: metrics.match_wait.bounds().to_vec(),
                counts: metrics.match_wait.counts(),
            },
        }
    }
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Registers `/admin`, `/admin/api/stats`, the moderation API and `/admin/assets/…`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(page))
        .route("/admin/api/stats", web::get().to(stats))
        .route("/admin/assets/{version}/{name}", web::get().to(asset))
        .configure(api::routes);
}

/// The dashboard page.
static ADMIN_PAGE: assets::Page = assets::Page::new(assets::PAGES[1]);

const ADMIN_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

#[derive(Deserialize)]
struct PageQuery {
    token: Option<String>,
}

/// The page is a shell without data: it asks for the token (a form, or `?token=` that its
/// script moves out of the URL) and sends it as a bearer header to the JSON. A wrong
/// `?token=` is answered 401 (the page then shows the form with the error).
async fn page(req: HttpRequest, dashboard: web::Data<Dashboard>) -> HttpResponse {
    if dashboard.tokens.is_empty() {
        return crate::web::not_found();
    }
    let query = web::Query::<PageQuery>::from_query(req.query_string()).ok();
    let given = query.as_ref().and_then(|q| q.token.as_deref());
    let status = match given {
        Some(given) if dashboard.tokens.who(given).is_none() => {
            actix_web::http::StatusCode::UNAUTHORIZED
        }
        _ => actix_web::http::StatusCode::OK,
    };
    secured(HttpResponse::build(status))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, ADMIN_CSP))
        .insert_header((
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ))
        .content_type("text/html; charset=utf-8")
        .body(ADMIN_PAGE.html().to_owned())
}

async fn stats(req: HttpRequest, dashboard: web::Data<Dashboard>) -> HttpResponse {
    match dashboard.moderator(&req) {
        Ok(_) => secured(HttpResponse::Ok())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(snapshot(&dashboard.node)),
        Err(refused) => refused,
    }
}

impl Dashboard {
    /// The name of the moderator a request comes from, by its bearer token; otherwise the
    /// answer: 404 without any token configured, 401 without a valid one.
    #[allow(clippy::result_large_err)] // The error is the answer, returned at once.
    pub(crate) fn moderator(&self, req: &HttpRequest) -> Result<String, HttpResponse> {
        if self.tokens.is_empty() {
            return Err(crate::web::not_found());
        }
        let given = bearer(req);
        if let Some(name) = given.and_then(|t| self.tokens.who(t)) {
            return Ok(name.to_owned());
        }
        let error = if given.is_some() {
            "wrong token"
        } else {
            "missing token: send Authorization: Bearer <admin token>"
        };
        Err(secured(HttpResponse::Unauthorized())
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"tandem admin\""))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "error": error })))
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn asset(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    dashboard: web::Data<Dashboard>,
) -> HttpResponse {
    if dashboard.tokens.is_empty() {
        return crate::web::not_found();
    }
    let (version, name) = path.into_inner();
    assets::serve(&req, Audience::Admin, &version, &name)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_the_exact_token_matches_and_names_its_moderator() {
        let tokens = AdminTokens::parse(&[
            "correct horse battery staple".into(),
            "ana=token-of-ana-0123456789".into(),
        ])
        .unwrap();
        assert_eq!(tokens.who("correct horse battery staple"), Some("admin"));
        assert_eq!(tokens.who("token-of-ana-0123456789"), Some("ana"));
        assert_eq!(tokens.who("correct horse battery stapl"), None);
        assert_eq!(tokens.who("correct horse battery staple "), None);
        assert_eq!(tokens.who(""), None);
        assert!(!format!("{tokens:?}").contains("horse"));
        assert_eq!(
            AdminTokens::parse(&["short".into()]).unwrap_err(),
            AdminTokenError::Weak
        );
        assert_eq!(
            AdminTokens::parse(&["a b=token-of-ana-0123456789".into()]).unwrap_err(),
            AdminTokenError::BadName("a b".into())
        );
        assert_eq!(
            AdminTokens::parse(&["x=0123456789abcdef0".into(), "x=0123456789abcdefg".into()])
                .unwrap_err(),
            AdminTokenError::Duplicate("x".into())
        );
    }

    #[test]
    fn node_stats_read_every_figure_the_dashboard_draws() {
        let metrics = Metrics::new(2);
        metrics.connections_opened.store(5, Ordering::Relaxed);
        metrics.connections_closed.store(1, Ordering::Relaxed);
        metrics.matched_sessions.store(6, Ordering::Relaxed);
        metrics.skips.store(2, Ordering::Relaxed);
        metrics.shards[1].waiting.store(3, Ordering::Relaxed);
        metrics.error(ErrorCode::RateLimited);
        metrics.match_wait.observe(Duration::from_micros(300));
        metrics.match_wait.observe(Duration::from_secs(100));

        let stats = NodeStats::of("n-1", &metrics);
        assert_eq!(stats.online, 4);
        assert_eq!(stats.waiting, 3);
        assert_eq!(stats.shards[1].waiting, 3);
        assert_eq!(stats.matches_total, 3);
        assert_eq!(stats.skips_total, 2);
        assert_eq!(stats.errors_total["rate_limited"], 1);
        assert_eq!(stats.errors_total["bad_json"], 0);
        let wait = &stats.match_wait;
        assert_eq!(wait.counts.len(), wait.bounds_secs.len() + 1);
        assert_eq!(wait.counts[0], 1, "300 µs is in the first bucket");
        assert_eq!(
            *wait.counts.last().unwrap(),
            1,
            "100 s is above every bound"
        );
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        use actix_web::test::TestRequest;
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer abc"))
            .to_http_request();
        assert_eq!(bearer(&req), Some("abc"));
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "bearer   abc "))
            .to_http_request();
        assert_eq!(bearer(&req), Some("abc"));
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic abc"))
            .to_http_request();
        assert_eq!(bearer(&req), None);
        assert_eq!(bearer(&TestRequest::default().to_http_request()), None);
    }
}
