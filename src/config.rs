//! Command-line and environment configuration of `tandem serve`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::node::SessionSettings;
use crate::session::LimitConfig;

/// `tandem serve`: run a node.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on for HTTP and WebSocket (`/ws`).
    #[arg(long, env = "TANDEM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Shard actors, each owning part of the waiting pool [default: one per core].
    #[arg(long, env = "TANDEM_SHARDS")]
    pub shards: Option<usize>,

    /// HTTP worker threads that run the user sessions [default: one per core].
    #[arg(long, env = "TANDEM_WORKERS")]
    pub workers: Option<usize>,

    /// This node's id in logs, metrics and `welcome.node` [default: random].
    #[arg(long, env = "TANDEM_NODE_ID")]
    pub node_id: Option<String>,

    /// How often an idle client is pinged.
    #[arg(long, env = "TANDEM_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// A client silent for this long (no frame, no pong) is disconnected and leaves the pool.
    #[arg(long, env = "TANDEM_HEARTBEAT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,

    /// Sustained join/next/leave per second per connection (bursts of twice that).
    #[arg(long, env = "TANDEM_JOINS_PER_SEC", default_value_t = LimitConfig::default().joins_per_sec)]
    pub joins_per_sec: u32,

    /// Sustained msg/typing per second per connection (bursts of twice that).
    #[arg(long, env = "TANDEM_MSGS_PER_SEC", default_value_t = LimitConfig::default().msgs_per_sec)]
    pub msgs_per_sec: u32,

    /// Sustained signal per second per connection (bursts of twice that).
    #[arg(long, env = "TANDEM_SIGNALS_PER_SEC", default_value_t = LimitConfig::default().signals_per_sec)]
    pub signals_per_sec: u32,

    /// Sustained frames of any kind per second per connection (bursts of twice that).
    #[arg(long, env = "TANDEM_FRAMES_PER_SEC", default_value_t = LimitConfig::default().frames_per_sec)]
    pub frames_per_sec: u32,

    /// Refused frames (decaying at one per second) before a flooding client is closed (1008).
    #[arg(long, env = "TANDEM_FLOOD_STRIKES", default_value_t = LimitConfig::default().strikes_to_close)]
    pub flood_strikes: u32,

    /// Open connections per worker thread before new ones wait.
    #[arg(long, env = "TANDEM_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// STUN server URL for `welcome.ice_servers` (repeatable, or comma-separated).
    #[arg(long = "stun", env = "TANDEM_STUN", value_delimiter = ',')]
    pub stun: Vec<String>,

    /// TURN server URL for `welcome.ice_servers` (repeatable, or comma-separated), e.g.
    /// `turn:turn.example.org:3478?transport=udp` or `turns:turn.example.org:5349`. Each client
    /// gets a time-limited credential for it, signed with `--turn-secret` (coturn's
    /// `use-auth-secret`).
    #[arg(long = "turn", env = "TANDEM_TURN", value_delimiter = ',')]
    pub turn: Vec<String>,

    /// The TURN server's shared secret (coturn's `static-auth-secret`): TURN credentials are
    /// base64(HMAC-SHA1(secret, "<expiry>:<client id>")). Prefer the environment variable.
    #[arg(long, env = "TANDEM_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// How long a TURN credential handed out in `welcome` stays valid.
    #[arg(long, env = "TANDEM_TURN_TTL", default_value = "3600s", value_parser = parse_duration)]
    pub turn_ttl: Duration,

    /// A web origin (`https://chat.example.org`) whose pages may open `/ws` besides the node's
    /// own (repeatable, or comma-separated; `*` allows any). Browsers from other origins are
    /// refused at the handshake (403); clients that send no `Origin` are not browsers and are
    /// let in.
    #[arg(
        long = "allowed-origin",
        env = "TANDEM_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origin: Vec<String>,

    /// The operator dashboard's token: turns on `/admin` and `/admin/api/stats` (send it as
    /// `Authorization: Bearer <token>`). Without it they are 404. At least 16 bytes; prefer
    /// the environment variable.
    #[arg(long, env = "TANDEM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// A trusted proxy header that carries the client's country (ISO 3166-1 alpha-2), e.g.
    /// `CF-IPCountry` behind Cloudflare. Only set this when a proxy you run always sets or
    /// strips the header: otherwise clients could choose their own country.
    #[arg(long, env = "TANDEM_COUNTRY_HEADER")]
    pub country_header: Option<String>,

    /// A MaxMind GeoIP2 / GeoLite2 Country or City database: the country of a client that
    /// `--country-header` does not give is looked up by its TCP peer address.
    #[arg(long, env = "TANDEM_GEOIP")]
    pub geoip: Option<std::path::PathBuf>,

    /// The longest time a user may ask to look for a shared interest (`interest_wait_ms`)
    /// before falling back to a random partner.
    #[arg(long, env = "TANDEM_MAX_INTEREST_WAIT", default_value = "60s", value_parser = parse_duration)]
    pub max_interest_wait: Duration,

    /// The secret that entitlements (premium features: gender filter, college mode) are
    /// signed with (HMAC-SHA256). Without it, `want_gender` and `college` are refused.
    /// Prefer the environment variable to keep it out of process listings.
    #[arg(long, env = "TANDEM_ENTITLEMENT_SECRET", hide_env_values = true)]
    pub entitlement_secret: Option<String>,

    /// Joining a cluster over NATS.
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,

    /// On SIGTERM or Ctrl-C: how long connected users get to be told and closed before the
    /// node exits regardless.
    #[arg(long, env = "TANDEM_SHUTDOWN_GRACE", default_value = "3s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl Default for ServeArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        Wrapper::parse_from(["tandem"]).args
    }
}

impl ServeArgs {
    /// How sessions behave under these flags; fails if the GeoIP database cannot be read or
    /// the entitlement secret is too short to keep tokens unforgeable.
    pub fn session_settings(&self) -> Result<SessionSettings, ConfigError> {
        let geoip = match &self.geoip {
            Some(path) => Some(std::sync::Arc::new(crate::geoip::GeoIp::open(path)?)),
            None => None,
        };
        if let Some(secret) = &self.entitlement_secret {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::WeakSecret);
            }
        }
        if let Some(token) = &self.admin_token {
            if token.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::WeakAdminToken);
            }
        }
        let web = crate::web::WebSettings {
            ice: crate::ice::IceConfig::new(
                self.stun.clone(),
                self.turn.clone(),
                self.turn_secret.as_deref(),
                self.turn_ttl,
            )?,
            origins: crate::web::OriginPolicy::new(&self.allowed_origin)?,
            admin: self
                .admin_token
                .as_deref()
                .map(crate::admin::AdminToken::new),
        };
        Ok(SessionSettings {
            geoip,
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_timeout: self.heartbeat_timeout,
            limits: LimitConfig {
                joins_per_sec: self.joins_per_sec,
                msgs_per_sec: self.msgs_per_sec,
                signals_per_sec: self.signals_per_sec,
                frames_per_sec: self.frames_per_sec,
                strikes_to_close: self.flood_strikes,
            },
            country_header: self.country_header.clone(),
            max_interest_wait: self.max_interest_wait,
            entitlements: self
                .entitlement_secret
                .as_ref()
                .map(|s| std::sync::Arc::new(crate::entitlement::EntitlementKey::new(s))),
            web,
            ..SessionSettings::default()
        })
    }

    /// Cores of this machine, the default for shards and workers.
    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The shortest entitlement secret or admin token accepted: an empty or short one (an unset
/// variable in a deployment template) would let anyone mint premium tokens or read the
/// dashboard.
pub const MIN_SECRET_BYTES: usize = 16;

/// Why a node cannot start with these flags.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    GeoIp(#[from] crate::geoip::GeoIpError),
    #[error(
        "--entitlement-secret must be at least {MIN_SECRET_BYTES} bytes (32 or more recommended)"
    )]
    WeakSecret,
    #[error("--admin-token must be at least {MIN_SECRET_BYTES} bytes (32 or more recommended)")]
    WeakAdminToken,
    #[error(transparent)]
    Ice(#[from] crate::ice::IceConfigError),
    #[error(transparent)]
    Origin(#[from] crate::web::BadOrigin),
}

/// Parses `250ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 250ms, 10s or 2m"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}`: the unit must be ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{text}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    fn parse(flags: &[&str]) -> ServeArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        Wrapper::parse_from(std::iter::once("tandem").chain(flags.iter().copied())).args
    }

    #[test]
    fn web_flags_reach_the_settings() {
        let args = parse(&[
            "--stun",
            "stun:stun.example.org:3478",
            "--turn",
            "turn:turn.example.org:3478,turns:turn.example.org:5349",
            "--turn-secret",
            "coturn-static-auth-secret",
            "--turn-ttl",
            "10m",
            "--allowed-origin",
            "https://chat.example.org",
            "--admin-token",
            "0123456789abcdef0123",
        ]);
        assert_eq!(args.turn.len(), 2);
        assert_eq!(args.turn_ttl, Duration::from_secs(600));
        let settings = args.session_settings().unwrap();
        let client = crate::ids::ClientId::parse("c1").unwrap();
        let servers = settings.web.ice.servers_for(&client, 1_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].username.as_deref(), Some("1600:c1"));
        assert!(settings
            .web
            .origins
            .check(Some("https://chat.example.org"), Some("10.0.0.1:8080"))
            .is_ok());
        assert!(settings.web.admin.unwrap().matches("0123456789abcdef0123"));
    }

    #[test]
    fn bad_web_flags_stop_the_node_at_start() {
        let err = |flags: &[&str]| parse(flags).session_settings().unwrap_err().to_string();
        assert!(err(&["--turn", "turn:t.example"]).contains("--turn-secret"));
        assert!(err(&["--admin-token", "short"]).contains("at least 16 bytes"));
        assert!(err(&["--allowed-origin", "chat.example.org"]).contains("scheme://host"));
        assert!(err(&["--stun", "stun.example.org"]).contains("stun:"));
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let args = ServeArgs::default();
        assert_eq!(args.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(args.heartbeat_timeout, Duration::from_secs(30));
        assert_eq!(args.turn_ttl, Duration::from_secs(3600));
        assert!(args.admin_token.is_none());
    }
}
