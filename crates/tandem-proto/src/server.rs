//! Server to client messages.

use serde::{Deserialize, Serialize};

use super::{Challenge, SignalData};
use crate::ids::{ChatId, SessionId};

/// Everything the server may send. `type` names the variant in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First message on every connection.
    Welcome(Welcome),
    /// The user is in the pool, waiting for a stranger.
    Waiting,
    /// A stranger was found.
    Matched(Matched),
    /// A chat line from the partner.
    Msg { chat: ChatId, text: String },
    /// The partner's typing indicator.
    Typing { chat: ChatId, on: bool },
    /// The partner's WebRTC signaling.
    Signal { chat: ChatId, data: SignalData },
    /// The chat is over, and why.
    Ended { chat: ChatId, reason: EndReason },
    /// The user is neither waiting nor chatting (after `leave`).
    Idle,
    /// Something the client sent was refused; the connection stays open unless a close follows.
    /// A `banned` error also says until when (`until`, Unix seconds, `null` when permanent)
    /// and which ban (`ban`); other errors carry neither field.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        until: Option<Option<u64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ban: Option<String>,
        /// With `challenge_required` and `challenge_failed`: a fresh challenge to solve
        /// before joining again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        challenge: Option<Challenge>,
    },
    /// The chat `chat` was saved: anyone with `url` (`/logs/<id>`) can read it, and
    /// `delete_url` (which holds a secret) deletes it.
    LogSaved {
        chat: ChatId,
        url: String,
        delete_url: String,
    },
    /// Answer to `ping`.
    Pong,
    /// To the spy of a spy-mode chat: a line by stranger `from` (1 or 2).
    SpyMsg {
        chat: ChatId,
        from: u8,
        text: String,
    },
    /// To the spy of a spy-mode chat: stranger `from`'s typing indicator.
    SpyTyping { chat: ChatId, from: u8, on: bool },
    /// A `report` was filed (or added to the report of the same chat), as `report`.
    Reported { report: String },
}

impl ServerMsg {
    /// An `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            until: None,
            ban: None,
            challenge: None,
        }
    }
}

/// Reads a field that is present, even as `null`, as `Some`: `until: null` (a permanent ban)
/// is not the same as no `until` at all.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// The greeting: who the client is and how to talk to this server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Welcome {
    /// This connection's id.
    pub session: SessionId,
    /// The client's long-lived id: keep it and send it back (cookie `tandem_id` or `?client_id=`).
    pub client_id: String,
    /// STUN/TURN servers for `RTCPeerConnection`.
    pub ice_servers: Vec<IceServer>,
    /// The limits this server enforces.
    pub limits: Limits,
    /// Protocol version: 1.
    pub proto: u32,
    /// The node that holds this connection.
    pub node: String,
    /// The proof-of-work challenge to solve before the first `join` (its solution goes in
    /// `join.proof`); `null` when this server asks none.
    pub challenge: Option<Challenge>,
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Limits the server enforces, so clients can stay inside them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Limits {
    /// Largest frame accepted; larger ones close the connection with 1009.
    pub max_frame_bytes: u32,
    /// Longest `msg.text`, in characters.
    pub max_text_chars: u32,
    /// Sustained `join` + `next` per second (a burst of twice that is allowed).
    pub joins_per_sec: u32,
    /// Sustained `msg` + `typing` per second (a burst of twice that is allowed).
    pub msgs_per_sec: u32,
    /// Sustained `signal` per second (a burst of twice that is allowed).
    pub signals_per_sec: u32,
    /// In a video chat, send a `snapshot` of your own camera this often (milliseconds);
    /// 0: none asked. Snapshots sent faster are refused (`rate_limited`).
    pub snapshot_interval_ms: u32,
}

/// A new chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Matched {
    /// Shared by both sides; every in-chat message names it.
    pub chat: ChatId,
    /// Exactly one side is the initiator: it sends the WebRTC offer.
    pub initiator: bool,
    /// Interests both sides share (identical on both sides).
    pub common_interests: Vec<String>,
    /// What the user may know of the stranger.
    pub partner: PartnerInfo,
    /// In spy mode only: the question and this side's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spy: Option<SpyInfo>,
    /// STUN/TURN servers for this chat's `RTCPeerConnection`, as in `welcome`: TURN
    /// credentials issued for this chat, so a connection that lives through many chats never
    /// holds stale ones.
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
}

/// A spy-mode chat (Omegle's question mode), as one side sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct SpyInfo {
    /// `spy` (asked the question, watches, cannot write) or `discuss` (one of the two
    /// strangers discussing it).
    pub role: SpyRole,
    /// The spy's question, shown to all three.
    pub question: String,
    /// For the spy: the two strangers, in the order `spy_msg.from` numbers them (1, 2).
    /// Empty for the strangers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strangers: Vec<PartnerInfo>,
}

/// A side's role in a spy-mode chat.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum SpyRole {
    Spy,
    Discuss,
}

/// What one side of a chat learns about the other.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct PartnerInfo {
    /// ISO 3166-1 alpha-2 country, `ZZ` when unknown.
    pub country: String,
    /// In college mode: the partner's verified college domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub college: Option<String>,
}

/// Why a chat ended, from the receiver's point of view.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// This user sent `next`.
    Skipped,
    /// The partner sent `next`.
    PartnerSkipped,
    /// This user sent `leave`.
    Left,
    /// The partner sent `leave`.
    PartnerLeft,
    /// The partner's connection (or node) went away.
    PartnerDisconnected,
}

impl EndReason {
    /// What the partner is told when this side ends the chat for this reason.
    pub fn for_partner(self) -> Self {
        match self {
            Self::Skipped => Self::PartnerSkipped,
            Self::Left => Self::PartnerLeft,
            other => other,
        }
    }
}

/// Every error code a client can see. The code is the contract; the message is for people.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text frame is not JSON (or nests deeper than 128 levels).
    BadJson,
    /// A frame of the wrong kind: binary on a JSON connection, text on a bincode one, or
    /// bincode bytes that do not decode.
    BadFrame,
    /// JSON with a `type` this protocol version does not know.
    UnknownType,
    /// A known `type` with missing or wrong-typed fields.
    BadMessage,
    /// A field has a value the server does not accept (unknown mode, bad language, ...).
    InvalidValue,
    /// `msg.text` is longer than `limits.max_text_chars`.
    TextTooLong,
    /// `join` without `adult: true`.
    AdultRequired,
    /// `join` while in a chat.
    AlreadyInChat,
    /// `msg`, `typing`, `signal`, `report` or `save_log` outside a chat.
    NotInChat,
    /// An in-chat message written for a chat that is over; it was dropped.
    StaleChat,
    /// `next` before any `join`: there are no preferences to re-queue with.
    NotJoined,
    /// Too many messages; slow down. Flooding on closes the connection with 1008.
    RateLimited,
    /// A feature this node does not offer (yet).
    Unsupported,
    /// The node is shutting down; reconnect (to another node).
    ServerShutdown,
    /// A premium preference (`want_gender`, `college`) without a valid entitlement: none,
    /// forged, expired, or not granting that feature.
    EntitlementRequired,
    /// The spy of a spy-mode chat wrote into it: spies only watch.
    SpyCannotWrite,
    /// A ban names this client, its device or its address: the connection closes (1008).
    Banned,
    /// The server cannot do this now (its store is unreachable); try again later.
    Unavailable,
    /// `join` without `proof` on a connection that has not solved a challenge yet; the
    /// error carries the challenge to solve.
    ChallengeRequired,
    /// `join.proof` is wrong, expired, or was already spent; the error carries a fresh
    /// challenge.
    ChallengeFailed,
    /// A chat line was withheld by the node's filters: it did not reach the partner.
    Filtered,
}

impl ErrorCode {
    /// Every code, for metrics.
    pub const ALL: &'static [ErrorCode] = &[
        Self::BadJson,
        Self::BadFrame,
        Self::UnknownType,
        Self::BadMessage,
        Self::InvalidValue,
        Self::TextTooLong,
        Self::AdultRequired,
        Self::AlreadyInChat,
        Self::NotInChat,
        Self::StaleChat,
        Self::NotJoined,
        Self::RateLimited,
        Self::Unsupported,
        Self::ServerShutdown,
        Self::EntitlementRequired,
        Self::SpyCannotWrite,
        Self::Banned,
        Self::Unavailable,
        Self::ChallengeRequired,
        Self::ChallengeFailed,
        Self::Filtered,
    ];

    /// The wire name (`bad_json`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::BadFrame => "bad_frame",
            Self::UnknownType => "unknown_type",
            Self::BadMessage => "bad_message",
            Self::InvalidValue => "invalid_value",
            Self::TextTooLong => "text_too_long",
            Self::AdultRequired => "adult_required",
            Self::AlreadyInChat => "already_in_chat",
            Self::NotInChat => "not_in_chat",
            Self::StaleChat => "stale_chat",
            Self::NotJoined => "not_joined",
            Self::RateLimited => "rate_limited",
            Self::Unsupported => "unsupported",
            Self::ServerShutdown => "server_shutdown",
            Self::EntitlementRequired => "entitlement_required",
            Self::SpyCannotWrite => "spy_cannot_write",
            Self::Banned => "banned",
            Self::Unavailable => "unavailable",
            Self::ChallengeRequired => "challenge_required",
            Self::ChallengeFailed => "challenge_failed",
            Self::Filtered => "filtered",
        }
    }
}
