//! Client to server messages.

use serde::{Deserialize, Serialize};

use super::SignalData;
use crate::ids::ChatId;

/// Everything a client may send. `type` names the variant in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Enter the waiting pool, or update the wait with new preferences.
    Join(Join),
    /// End the current chat (if any) and wait for the next stranger at once.
    Next,
    /// End the chat or the wait and go idle.
    Leave,
    /// A chat line for the partner of `chat`.
    Msg { chat: ChatId, text: String },
    /// The typing indicator for the partner of `chat`.
    Typing { chat: ChatId, on: bool },
    /// WebRTC signaling for the partner of `chat`, relayed untouched.
    Signal { chat: ChatId, data: SignalData },
    /// Report the partner of `chat` (the current chat, or the one that ended last, up to a
    /// minute ago) to the operators: `reason` is one of `nudity`, `minor`, `harassment`,
    /// `hate`, `spam`, `scam`, `other`; `note`, optional, at most 500 characters.
    Report {
        chat: ChatId,
        reason: String,
        #[serde(default)]
        note: Option<String>,
    },
    /// Ask for a saved log of `chat`.
    SaveLog { chat: ChatId },
    /// Application-level ping; the server answers `pong`.
    Ping,
    /// A still of the sender's own camera during the video chat `chat`, for automated
    /// moderation: JPEG or WebP, at most 320 pixels wide and 65,504 bytes (base64 in JSON;
    /// a JSON client may send it as a binary frame instead, see [`crate::snapshot_frame`]).
    Snapshot {
        chat: ChatId,
        #[serde(with = "crate::snapshot::base64_bytes")]
        image: Vec<u8>,
    },
}

impl ClientMsg {
    /// Every `type` this protocol version knows, to tell an unknown type from a bad message.
    pub const TYPES: &'static [&'static str] = &[
        "join", "next", "leave", "msg", "typing", "signal", "report", "save_log", "ping",
        "snapshot",
    ];
}

/// What a user wants from the next stranger. Fields are loose here (strings) and checked by
/// the session, so that a bad value gets its own error code rather than a parse error.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct Join {
    /// `text` or `video`; `text` when absent.
    #[serde(default)]
    pub mode: Option<String>,
    /// Interest tags (matched by the preferences feature).
    #[serde(default)]
    pub interests: Vec<String>,
    /// BCP 47 primary language subtag; from `Accept-Language` when absent, else `en`.
    #[serde(default)]
    pub lang: Option<String>,
    /// Accept only partners from these ISO 3166-1 alpha-2 countries.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Self-declared gender: `m`, `f` or `x`.
    #[serde(default)]
    pub gender: Option<String>,
    /// Accept only partners of these genders (needs an entitlement).
    #[serde(default)]
    pub want_gender: Vec<String>,
    /// The 18+ confirmation; `join` is refused without it.
    #[serde(default)]
    pub adult: bool,
    /// When the partner skips, re-queue at once instead of going idle.
    #[serde(default)]
    pub auto_reroll: bool,
    /// With interests: never fall back to a partner without shared interests.
    #[serde(default)]
    pub interests_only: bool,
    /// With interests: how long to look for a shared interest before any partner will do
    /// (default 5,000; at most the server's bound).
    #[serde(default)]
    pub interest_wait_ms: Option<u64>,
    /// An operator-signed token granting premium features (`want_gender`, `college`).
    #[serde(default)]
    pub entitlement: Option<String>,
    /// College mode: meet only users of verified colleges (needs an entitlement).
    #[serde(default)]
    pub college: bool,
    /// College mode: meet only users of the same college.
    #[serde(default)]
    pub same_college: bool,
    /// Spy mode (text only): ask `question` and watch two strangers discuss it, without
    /// writing.
    #[serde(default)]
    pub spy: bool,
    /// The spy's question (1 to 300 characters).
    #[serde(default)]
    pub question: Option<String>,
    /// Spy mode (text only): be one of the two strangers who discuss a spy's question.
    #[serde(default)]
    pub spy_ok: bool,
    /// The solution of the connection's challenge (`welcome.challenge`): base64 of the JSON
    /// `{"challenge": …, "solution": {"counter", "derivedKey"}}`, ALTCHA's payload. Needed
    /// on the first `join` of a connection when the server asks challenges.
    #[serde(default)]
    pub proof: Option<String>,
}
