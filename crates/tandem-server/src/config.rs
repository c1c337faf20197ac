//! Command-line and environment configuration of `tandem serve`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tandem_proto::duration::parse_duration;

use crate::abuse::challenge::{ChallengeSettings, MAX_COST, MAX_DIFFICULTY, MAX_LIFETIME};
use crate::abuse::filter::{FilterSettings, LinkPolicy, Profanity};
use crate::abuse::snapshots::{FailurePolicy, SnapshotSettings};
use crate::admin::{AdminTokenError, AdminTokens};
use crate::gateway::HandshakeSettings;
use crate::ice::IceConfig;
use crate::moderation::{Retention, Rule};
use crate::session::{JoinRules, LimitConfig, SessionSettings};
use crate::tls::{TlsError, TlsFiles};

/// `tandem serve`: run a node.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on for HTTP and WebSocket (`/ws`).
    #[arg(long, env = "TANDEM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// A PEM certificate chain (the node's certificate first, e.g. certbot's
    /// `fullchain.pem`): with --tls-key, --listen speaks https and wss instead of http and ws.
    #[arg(long, env = "TANDEM_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert (e.g. certbot's `privkey.pem`), unencrypted.
    #[arg(long, env = "TANDEM_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Users reach this node over https through a proxy that terminates TLS: cookies are
    /// `Secure` and responses carry `Strict-Transport-Security`, as with --tls-cert. Set it
    /// only when the site is served over https alone.
    #[arg(long, env = "TANDEM_BEHIND_HTTPS")]
    pub behind_https: bool,

    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9090`, or a cluster-internal
    /// address) instead of on --listen, where users reach it [default: on --listen].
    #[arg(long, env = "TANDEM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

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

    /// A client silent for this long (no frame, no pong) is disconnected and leaves the pool;
    /// a connection whose sent data stays unacknowledged for this long is aborted.
    #[arg(long, env = "TANDEM_HEARTBEAT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,

    /// After the node closes a connection (it sent Close first), how long it keeps reading
    /// and discarding what the client still sends (its Close answering) before it closes the
    /// TCP connection. A client that closes first is answered and closed at once.
    #[arg(long, env = "TANDEM_CLOSE_LINGER", default_value = "1s", value_parser = parse_duration)]
    pub close_linger: Duration,

    /// Sustained join/next/leave per second per connection (time unused refills up to ten seconds of it).
    #[arg(long, env = "TANDEM_JOINS_PER_SEC", default_value_t = LimitConfig::default().joins_per_sec)]
    pub joins_per_sec: u32,

    /// Sustained msg/typing per second per connection (time unused refills up to ten seconds of it).
    #[arg(long, env = "TANDEM_MSGS_PER_SEC", default_value_t = LimitConfig::default().msgs_per_sec)]
    pub msgs_per_sec: u32,

    /// Sustained signal per second per connection (time unused refills up to ten seconds of it).
    #[arg(long, env = "TANDEM_SIGNALS_PER_SEC", default_value_t = LimitConfig::default().signals_per_sec)]
    pub signals_per_sec: u32,

    /// Sustained frames of any kind per second per connection (time unused refills up to ten seconds of it).
    #[arg(long, env = "TANDEM_FRAMES_PER_SEC", default_value_t = LimitConfig::default().frames_per_sec)]
    pub frames_per_sec: u32,

    /// Refused frames (decaying at one per second) before a flooding client is closed (1008).
    #[arg(long, env = "TANDEM_FLOOD_STRIKES", default_value_t = LimitConfig::default().strikes_to_close)]
    pub flood_strikes: u32,

    /// WebSocket connections open at once from one address (the client's address as
    /// `--client-ip-header` defines it; an IPv6 address counts by its /64); beyond it the
    /// handshake is answered 429. 0 turns the cap off.
    #[arg(long, env = "TANDEM_MAX_CONNS_PER_IP", default_value_t = 32)]
    pub max_conns_per_ip: u32,

    /// WebSocket handshakes a second from one address, on average (bursts of three times
    /// as many pass); beyond it the handshake is answered 429. 0 turns the limit off.
    #[arg(long, env = "TANDEM_MAX_HANDSHAKES_PER_IP", default_value_t = 10)]
    pub max_handshakes_per_ip: u32,

    /// Count loopback addresses against the per-address limits too (they are exempt by
    /// default, so that a local load test or proxy keeps working).
    #[arg(long, env = "TANDEM_LIMIT_LOOPBACK")]
    pub limit_loopback: bool,

    /// Users connected at once; beyond it the handshake is answered 503. By default the
    /// open-file limit less a reserve of 512 descriptors, so that `/healthz`, `/metrics`,
    /// operators and the node's own files still get through when it is full.
    #[arg(long, env = "TANDEM_MAX_USERS")]
    pub max_users: Option<usize>,

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

    /// A moderator's token, `NAME=TOKEN` (repeatable, or comma-separated; a bare `TOKEN` is
    /// named `admin`): turns on `/admin` and the operator API (send it as `Authorization:
    /// Bearer <token>`), and the audit log names who acted. Without any, they are 404. At
    /// least 16 bytes each; prefer the environment variable.
    #[arg(
        long = "admin-token",
        env = "TANDEM_ADMIN_TOKEN",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub admin_token: Vec<String>,

    /// Where a node alone keeps its moderation store (`moderation.redb`) and its generated
    /// id secret. A cluster keeps its store in NATS JetStream instead.
    #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
    pub data_dir: std::path::PathBuf,

    /// The secret client ids are signed with (at least 16 bytes). Every node of a cluster
    /// needs the same one. Without it, a node generates one and keeps it in `--data-dir`.
    /// Prefer the environment variable.
    #[arg(long, env = "TANDEM_ID_SECRET", hide_env_values = true)]
    pub id_secret: Option<String>,

    /// A trusted proxy's header that carries the client's address (e.g. `X-Forwarded-For`):
    /// the last address in it is taken, the one that connected to that proxy. Only set this
    /// when a proxy you run always sets the header: otherwise clients could choose their
    /// address and dodge bans.
    #[arg(long, env = "TANDEM_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// In a cluster: copies of each moderation bucket JetStream keeps (3 on a NATS cluster
    /// of three or more servers).
    #[arg(long, env = "TANDEM_STORE_REPLICAS", default_value_t = 1)]
    pub store_replicas: usize,

    /// Distinct reporters within `--auto-ban-window` that ban a client automatically; 0
    /// turns the automatic rule off.
    #[arg(long, env = "TANDEM_AUTO_BAN_REPORTERS", default_value_t = Rule::default().reporters)]
    pub auto_ban_reporters: usize,

    /// The window in which `--auto-ban-reporters` reports count.
    #[arg(long, env = "TANDEM_AUTO_BAN_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub auto_ban_window: Duration,

    /// The length of a first automatic ban.
    #[arg(long, env = "TANDEM_AUTO_BAN_FIRST", default_value = "10m", value_parser = parse_duration)]
    pub auto_ban_first: Duration,

    /// How many times longer each repeat ban within `--auto-ban-repeat-window` is.
    #[arg(long, env = "TANDEM_AUTO_BAN_FACTOR", default_value_t = Rule::default().factor)]
    pub auto_ban_factor: u32,

    /// How long an automatic ban counts as a repeat for the next.
    #[arg(long, env = "TANDEM_AUTO_BAN_REPEAT_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub auto_ban_repeat_window: Duration,

    /// The longest automatic ban.
    #[arg(long, env = "TANDEM_AUTO_BAN_MAX", default_value = "7d", value_parser = parse_duration)]
    pub auto_ban_max: Duration,

    /// How long a report and its evidence are kept after it was filed, last reported again
    /// or resolved.
    #[arg(long, env = "TANDEM_REPORT_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub report_retention: Duration,

    /// How long a ban (and the address it names) is kept after it ended or was lifted; a
    /// permanent ban is kept while it bans.
    #[arg(long, env = "TANDEM_BAN_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub ban_retention: Duration,

    /// How long an entry of the moderators' audit log is kept.
    #[arg(long, env = "TANDEM_AUDIT_RETENTION", default_value = "365d", value_parser = parse_duration)]
    pub audit_retention: Duration,

    /// How long a client's blocks (the clients it reported) are kept after its last report.
    #[arg(long, env = "TANDEM_BLOCK_RETENTION", default_value = "365d", value_parser = parse_duration)]
    pub block_retention: Duration,

    /// How long a chat log a user saved (`save_log`) stays readable at its address.
    #[arg(long, env = "TANDEM_SAVED_LOG_RETENTION", default_value = "120d", value_parser = parse_duration)]
    pub saved_log_retention: Duration,

    /// Write client addresses in full to the node's logs; by default they are cut to their
    /// network (/24 for IPv4, /48 for IPv6).
    #[arg(long, env = "TANDEM_LOG_FULL_IPS")]
    pub log_full_ips: bool,

    /// How often the purge removes records past their retention.
    #[arg(long, env = "TANDEM_PURGE_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub purge_interval: Duration,

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

    /// The proof-of-work challenge every connection solves before its first `join`
    /// (`welcome.challenge`, `join.proof`): `on` or `off`.
    #[arg(long, env = "TANDEM_CHALLENGE", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub challenge: bool,

    /// Keys a client derives on average to solve a challenge (the work it is asked); doubled
    /// for every 4 connections an address holds beyond its first 4, up to 256 times.
    #[arg(long, env = "TANDEM_CHALLENGE_DIFFICULTY", default_value_t = ChallengeSettings::default().difficulty)]
    pub challenge_difficulty: u32,

    /// PBKDF2 iterations per key derived (the node derives one per challenge it issues).
    #[arg(long, env = "TANDEM_CHALLENGE_COST", default_value_t = ChallengeSettings::default().cost)]
    pub challenge_cost: u32,

    /// How long a challenge may be solved and presented (at most 1h).
    #[arg(long, env = "TANDEM_CHALLENGE_LIFETIME", default_value = "10m", value_parser = parse_duration)]
    pub challenge_lifetime: Duration,

    /// When chat lines with a link or an e-mail address are withheld: `until:N` (until both
    /// sides of the chat have written N lines), `always` or `never`.
    #[arg(long, env = "TANDEM_FILTER_LINKS", default_value = "until:3")]
    pub filter_links: LinkPolicy,

    /// The operator's list of words, phrases and patterns whose lines are withheld: one per
    /// line, `#` comments, `re:` for a regular expression. Read again when it changes.
    #[arg(long, env = "TANDEM_FILTER_FILE")]
    pub filter_file: Option<std::path::PathBuf>,

    /// Different chats the same (or a near-identical) line may reach from one client or
    /// address within --blast-window before it is withheld and counted as a strike; 0: off.
    #[arg(long, env = "TANDEM_BLAST_CHATS", default_value_t = FilterSettings::default().blast_chats)]
    pub blast_chats: u32,

    /// The window of --blast-chats.
    #[arg(long, env = "TANDEM_BLAST_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub blast_window: Duration,

    /// Profanity in chat lines: `off`, `mask` (asterisks) or `block` (withheld).
    #[arg(long, env = "TANDEM_PROFANITY", default_value = "off")]
    pub profanity: Profanity,

    /// The operator's image classifier for video snapshots (an HTTP URL; docs/moderation.md
    /// gives its request and answer). Without it, no snapshots are asked.
    #[arg(long, env = "TANDEM_MODERATION_WEBHOOK")]
    pub moderation_webhook: Option<String>,

    /// The key flagged snapshots are encrypted under (32 bytes in base64, e.g. from
    /// `openssl rand -base64 32`); needed with --moderation-webhook. Prefer the environment
    /// variable.
    #[arg(long, env = "TANDEM_SNAPSHOT_KEY", hide_env_values = true)]
    pub snapshot_key: Option<String>,

    /// How often a video client sends a snapshot of its own camera.
    #[arg(long, env = "TANDEM_SNAPSHOT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub snapshot_interval: Duration,

    /// How long a flagged snapshot is kept for review.
    #[arg(long, env = "TANDEM_SNAPSHOT_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub snapshot_retention: Duration,

    /// How long the classifier may take for one snapshot.
    #[arg(long, env = "TANDEM_SNAPSHOT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub snapshot_timeout: Duration,

    /// What a classifier that fails or times out means: `open` (nothing happens) or
    /// `closed` (the chat ends).
    #[arg(long, env = "TANDEM_SNAPSHOT_FAILURE", default_value = "open")]
    pub snapshot_failure: FailurePolicy,

    /// The classifier's classes that flag a snapshot, comma-separated.
    #[arg(
        long,
        env = "TANDEM_SNAPSHOT_FLAG_CLASSES",
        value_delimiter = ',',
        default_value = "nudity,sexual,minor,violence,gore"
    )]
    pub snapshot_flag_classes: Vec<String>,

    /// The score (0 to 1) from which a flagging class flags a snapshot.
    #[arg(long, env = "TANDEM_SNAPSHOT_FLAG_SCORE", default_value_t = SnapshotSettings::default().flag_score)]
    pub snapshot_flag_score: f32,

    /// The score from which a flagged snapshot also bans its sender at once.
    #[arg(long, env = "TANDEM_SNAPSHOT_BAN_SCORE", default_value_t = SnapshotSettings::default().ban_score)]
    pub snapshot_ban_score: f32,

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
    /// What the node's parts are configured with under these flags; fails if the GeoIP
    /// database cannot be read, a secret is too short to keep tokens unforgeable, or an ICE
    /// server or origin is malformed.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let tls = TlsFiles::from_flags(self.tls_cert.as_deref(), self.tls_key.as_deref())?
            .map(|files| files.server_config())
            .transpose()?;
        let geoip = match &self.geoip {
            Some(path) => Some(Arc::new(crate::geoip::GeoIp::open(path)?)),
            None => None,
        };
        if let Some(secret) = &self.entitlement_secret {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::WeakSecret);
            }
        }
        let admin = AdminTokens::parse(&self.admin_token)?;
        let client_ip_header = match &self.client_ip_header {
            Some(name) => Some(
                actix_web::http::header::HeaderName::try_from(name.as_str())
                    .map_err(|_| ConfigError::BadHeader(name.clone()))?,
            ),
            None => None,
        };
        if self.auto_ban_factor == 0 {
            return Err(ConfigError::AutoBanFactor);
        }
        let lifetime = self.challenge_lifetime;
        if self.moderation_webhook.is_some() {
            match &self.snapshot_key {
                None => return Err(ConfigError::SnapshotKey),
                Some(key) => {
                    crate::abuse::snapshots::Vault::new(key)?;
                }
            }
            if self.snapshot_interval < Duration::from_secs(1) {
                return Err(ConfigError::SnapshotInterval);
            }
        }
        if !(1..=MAX_DIFFICULTY).contains(&self.challenge_difficulty)
            || !(1..=MAX_COST).contains(&self.challenge_cost)
            || lifetime.is_zero()
            || lifetime > MAX_LIFETIME
        {
            return Err(ConfigError::Challenge);
        }
        let session = SessionSettings {
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_timeout: self.heartbeat_timeout,
            limits: LimitConfig {
                joins_per_sec: self.joins_per_sec,
                msgs_per_sec: self.msgs_per_sec,
                signals_per_sec: self.signals_per_sec,
                frames_per_sec: self.frames_per_sec,
                strikes_to_close: self.flood_strikes,
            },
            join: JoinRules {
                max_interest_wait: self.max_interest_wait,
                entitlements: (self.entitlement_secret.as_ref())
                    .map(|s| Arc::new(crate::entitlement::EntitlementKey::new(s))),
                ..JoinRules::default()
            },
            ..SessionSettings::default()
        };
        Ok(Settings {
            session,
            handshake: HandshakeSettings {
                https: tls.is_some() || self.behind_https,
                origins: crate::web::OriginPolicy::new(&self.allowed_origin)?,
                country_header: self.country_header.clone(),
                geoip,
                client_ip_header,
                per_ip: crate::gateway::per_ip::PerIpLimits {
                    max_conns: self.max_conns_per_ip,
                    handshakes_per_sec: f64::from(self.max_handshakes_per_ip),
                    burst: f64::from(self.max_handshakes_per_ip) * 3.0,
                    limit_loopback: self.limit_loopback,
                },
                max_users: self.max_users.unwrap_or_else(default_max_users),
            },
            ice: crate::ice::IceConfig::new(
                self.stun.clone(),
                self.turn.clone(),
                self.turn_secret.as_deref(),
                self.turn_ttl,
            )?,
            admin,
            rule: Rule {
                reporters: self.auto_ban_reporters,
                window: self.auto_ban_window,
                first_ban: self.auto_ban_first,
                factor: self.auto_ban_factor,
                repeat_window: self.auto_ban_repeat_window,
                longest: self.auto_ban_max,
            },
            snapshots: SnapshotSettings {
                webhook: self.moderation_webhook.clone(),
                interval: self.snapshot_interval,
                timeout: self.snapshot_timeout,
                flag_classes: self.snapshot_flag_classes.clone(),
                flag_score: self.snapshot_flag_score,
                ban_score: self.snapshot_ban_score,
                failure: self.snapshot_failure,
            },
            snapshot_key: self.snapshot_key.clone(),
            tls,
            filter: FilterSettings {
                links: self.filter_links,
                blast_chats: self.blast_chats,
                blast_window: self.blast_window,
                phrases: self.filter_file.clone(),
                profanity: self.profanity,
            },
            challenge: ChallengeSettings {
                on: self.challenge,
                difficulty: self.challenge_difficulty,
                cost: self.challenge_cost,
                lifetime,
            },
            retention: Retention {
                reports: self.report_retention,
                bans: self.ban_retention,
                audit: self.audit_retention,
                blocks: self.block_retention,
                logs: self.saved_log_retention,
                snapshots: self.snapshot_retention,
            },
        })
    }

    /// Cores of this machine, the default for shards and workers.
    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// `on` or `off`.
fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, not `{text}`")),
    }
}

/// Descriptors kept free of users: for `/healthz`, `/metrics`, operators, NATS and the store.
pub const FD_RESERVE: u64 = 512;

/// Users a node takes by default: its open-file limit (as raised at start) less
/// [`FD_RESERVE`].
fn default_max_users() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft.saturating_sub(FD_RESERVE).max(64)).unwrap_or(usize::MAX)
}

/// What a node's parts are configured with, each its own part.
#[derive(Clone)]
pub struct Settings {
    /// How sessions behave.
    pub session: SessionSettings,
    /// What the WebSocket handshake decides by.
    pub handshake: HandshakeSettings,
    /// STUN and TURN servers for clients.
    pub ice: IceConfig,
    /// The moderators' tokens; none turns the dashboard and the operator API off.
    pub admin: AdminTokens,
    /// The automatic ban rule.
    pub rule: Rule,
    /// How long moderation records are kept.
    pub retention: Retention,
    /// The proof-of-work challenge.
    pub challenge: ChallengeSettings,
    /// The text filter.
    pub filter: FilterSettings,
    /// Snapshot moderation.
    pub snapshots: SnapshotSettings,
    /// The key flagged snapshots are sealed under.
    pub snapshot_key: Option<String>,
    /// With --tls-cert and --tls-key: what --listen serves https with.
    pub tls: Option<rustls::ServerConfig>,
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
    #[error(transparent)]
    AdminToken(#[from] AdminTokenError),
    #[error("--client-ip-header `{0}` is not a header name")]
    BadHeader(String),
    #[error("--auto-ban-factor must be at least 1")]
    AutoBanFactor,
    #[error(
        "--moderation-webhook needs --snapshot-key, the key flagged snapshots are encrypted under"
    )]
    SnapshotKey,
    #[error(transparent)]
    BadSnapshotKey(#[from] crate::abuse::snapshots::BadKey),
    #[error("--snapshot-interval must be at least 1s")]
    SnapshotInterval,
    #[error(
        "--challenge-difficulty must be 1 to 1,000,000, --challenge-cost 1 to 100,000, and \
         --challenge-lifetime between 1s and 1h"
    )]
    Challenge,
    #[error(transparent)]
    Ice(#[from] crate::ice::IceConfigError),
    #[error(transparent)]
    Origin(#[from] crate::web::BadOrigin),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let settings = args.settings().unwrap();
        let client = tandem_ids::ClientId::parse("c1").unwrap();
        let servers = settings.ice.servers_for(&client, 1_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(
            servers[1].username,
            Some(format!("1600:{:016x}", client.key()))
        );
        assert!(settings
            .handshake
            .origins
            .check(Some("https://chat.example.org"), Some("10.0.0.1:8080"))
            .is_ok());
        assert_eq!(settings.admin.who("0123456789abcdef0123"), Some("admin"));
    }

    #[test]
    fn bad_web_flags_stop_the_node_at_start() {
        let err = |flags: &[&str]| parse(flags).settings().err().unwrap().to_string();
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
        assert!(args.admin_token.is_empty());
        assert_eq!(args.data_dir, std::path::PathBuf::from("./tandem-data"));
        assert_eq!(args.settings().unwrap().rule, Rule::default());
        assert_eq!(args.settings().unwrap().retention, Retention::default());
        assert_eq!(args.purge_interval, Duration::from_secs(60));
        assert_eq!(
            args.settings().unwrap().challenge,
            ChallengeSettings::default()
        );
        assert!(args.challenge);
        assert!(!parse(&["--challenge", "off"]).challenge);
        assert!(parse(&["--challenge", "on"]).challenge);
        assert!(on_off("maybe").is_err());
        assert_eq!(args.settings().unwrap().filter, FilterSettings::default());
    }
}
