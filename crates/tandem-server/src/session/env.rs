//! What a session needs from its node, and nothing more: where its tickets go, where it
//! registers, what it counts, how it behaves, what it tells its client about ICE, and the
//! moderation room it hands reports and joins to, and the privacy room that keeps the logs
//! its user saves. One per node, shared by every session.

use std::sync::Arc;
use std::time::Duration;

use tandem_engine::router::Router;
use tandem_engine::session::MAX_TEXT_CHARS;
use tandem_ids::NodeId;
use tandem_proto::Limits;

use super::{JoinRules, LimitConfig};
use crate::ice::IceConfig;
use crate::metrics::Metrics;
use crate::moderation::Moderation;
use crate::privacy::Privacy;
use crate::registry::Registry;

/// A session's view of its node.
pub struct SessionEnv {
    /// The node's id, told to clients in `welcome` and written in every session's logs.
    pub node: NodeId,
    /// Where tickets are placed and withdrawn.
    pub router: Router,
    /// Where the session registers, so that events addressed by id and the shutdown
    /// broadcast reach it.
    pub registry: Arc<Registry>,
    /// What sessions count.
    pub metrics: Arc<Metrics>,
    /// How sessions behave.
    pub settings: SessionSettings,
    /// STUN and TURN servers for `welcome.ice_servers`.
    pub ice: IceConfig,
    /// Admission at `join`, and where reports go.
    pub moderation: Arc<Moderation>,
    /// Where saved logs go.
    pub privacy: Arc<Privacy>,
    /// The challenge at `join`.
    pub abuse: Arc<crate::abuse::Abuse>,
    /// Whether the session's log lines carry the client's address in full.
    pub full_ips_in_logs: bool,
}

/// How sessions on a node behave.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// How often the server pings an idle client.
    pub heartbeat_interval: Duration,
    /// A client silent for this long (no frame, no pong) is disconnected.
    pub heartbeat_timeout: Duration,
    /// Per-connection rate limits.
    pub limits: LimitConfig,
    /// Outgoing frames queued per connection before the client counts as too slow.
    pub out_queue: usize,
    /// What a `join` may ask for, and what it gets when it does not say.
    pub join: JoinRules,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            limits: LimitConfig::default(),
            out_queue: 256,
            join: JoinRules::default(),
        }
    }
}

impl SessionSettings {
    /// The limits as told to clients in `welcome`.
    pub fn client_limits(&self) -> Limits {
        Limits {
            max_frame_bytes: tandem_proto::MAX_FRAME_BYTES as u32,
            max_text_chars: MAX_TEXT_CHARS as u32,
            joins_per_sec: self.limits.joins_per_sec,
            msgs_per_sec: self.limits.msgs_per_sec,
            signals_per_sec: self.limits.signals_per_sec,
            // Abuse prevention's to say (`Abuse::snapshot_interval_ms`).
            snapshot_interval_ms: 0,
        }
    }
}
