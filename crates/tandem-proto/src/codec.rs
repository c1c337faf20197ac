//! JSON text frames and bincode binary frames: one decode and one encode path for both.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::scan;
use super::{ClientMsg, ErrorCode, ServerMsg, SignalData};
use crate::ids::ChatId;

/// Largest frame the server accepts, in bytes (also the bincode decode limit).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// How a connection's messages are framed, chosen at connect time (`?codec=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Codec {
    /// JSON in text frames (the default).
    #[default]
    Json,
    /// bincode 2 (standard config: varint integers) in binary frames.
    Bincode,
}

/// One encoded message, ready for the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// Why a frame could not be read; `code` goes back to the client in an `error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
}

impl DecodeError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A message type that travels in both codecs.
pub trait WireMessage:
    Serialize + DeserializeOwned + bincode::Encode + bincode::Decode<()> + Sized
{
    /// The `type` names this version knows.
    const TYPES: &'static [&'static str];

    /// Decodes a JSON text frame.
    fn from_json(text: &str) -> Result<Self, DecodeError> {
        decode_json(text)
    }

    /// Encodes into a JSON text frame.
    fn to_json(&self) -> String {
        // Serializing our own types cannot fail: no maps with non-string keys, no I/O.
        serde_json::to_string(self).expect("message serializes")
    }
}

impl WireMessage for ClientMsg {
    const TYPES: &'static [&'static str] = ClientMsg::TYPES;

    /// A `signal` is cut out of the text as it is (see [`decode_signal`]); every other
    /// message goes through serde.
    fn from_json(text: &str) -> Result<Self, DecodeError> {
        match decode_signal(text) {
            Some(signal) => signal.map(|(chat, data)| ClientMsg::Signal { chat, data }),
            None => decode_json(text),
        }
    }

    fn to_json(&self) -> String {
        match self {
            ClientMsg::Signal { chat, data } => signal_json(*chat, data),
            _ => serde_json::to_string(self).expect("message serializes"),
        }
    }
}

/// A `signal` message's chat and data, its data cut out of the text as it is. The whole
/// message is scanned once (`scan.rs`: validated, nothing built); `None` when it is not a
/// `signal`, or not a JSON object the scanner can read, which the full decoder then explains.
/// Decoding and relaying a signal so cost time linear in its bytes whatever its nesting.
fn decode_signal(text: &str) -> Option<Result<(ChatId, SignalData), DecodeError>> {
    // A signal says `"signal"`, or spells something with escapes: anything else (every chat
    // line without a backslash) needs no scan.
    if !text.contains(r#""signal""#) && !text.contains('\\') {
        return None;
    }
    let head = scan::head(text, MAX_SCANNED_DEPTH)?;
    let kind = head.kind?;
    if kind != r#""signal""# && serde_json::from_str::<Cow<str>>(kind).ok()? != "signal" {
        return None;
    }
    let bad = |message: String| Some(Err(DecodeError::new(ErrorCode::BadMessage, message)));
    let chat = match head.chat.map(serde_json::from_str::<ChatId>) {
        None => return bad("missing field `chat`".to_owned()),
        Some(Err(err)) => return bad(format!("invalid `chat`: {err}")),
        Some(Ok(chat)) => chat,
    };
    let Some(data) = head.data else {
        return bad("missing field `data`".to_owned());
    };
    Some(
        SignalData::checked(data, head.data_depth)
            .map(|data| (chat, data))
            .map_err(|err| DecodeError::new(ErrorCode::InvalidValue, err.to_string())),
    )
}

/// How deep the scanner follows a message before leaving it to the full decoder (a signal's
/// data may be nested 32 deep; more is refused with its own error).
const MAX_SCANNED_DEPTH: usize = 64;

/// A `signal`'s JSON, written directly: its data is already JSON text.
fn signal_json(chat: ChatId, data: &SignalData) -> String {
    let chat = serde_json::to_string(&chat).expect("a chat id serializes");
    let mut out = String::with_capacity(data.get().len() + chat.len() + 36);
    out.push_str(r#"{"type":"signal","chat":"#);
    out.push_str(&chat);
    out.push_str(r#","data":"#);
    out.push_str(data.get());
    out.push('}');
    out
}

/// The `type` of a JSON message, read without keeping anything else.
#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

impl WireMessage for ServerMsg {
    const TYPES: &'static [&'static str] = &[
        "welcome",
        "waiting",
        "matched",
        "msg",
        "typing",
        "signal",
        "ended",
        "idle",
        "error",
        "log_saved",
        "pong",
    ];

    /// A relayed `signal` is read as the client's is (see [`decode_signal`]).
    fn from_json(text: &str) -> Result<Self, DecodeError> {
        match decode_signal(text) {
            Some(signal) => signal.map(|(chat, data)| ServerMsg::Signal { chat, data }),
            None => decode_json(text),
        }
    }

    /// A relayed `signal` is written around its data's text, not through serde.
    fn to_json(&self) -> String {
        match self {
            ServerMsg::Signal { chat, data } => signal_json(*chat, data),
            _ => serde_json::to_string(self).expect("message serializes"),
        }
    }
}

impl Codec {
    /// Picks the codec from the `codec` query parameter; `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Self::Json),
            "bincode" => Some(Self::Bincode),
            _ => None,
        }
    }

    /// Encodes one message into the frame kind of this codec.
    pub fn encode<M: WireMessage>(self, msg: &M) -> Frame {
        match self {
            Self::Json => Frame::Text(msg.to_json()),
            Self::Bincode => Frame::Binary(
                bincode::encode_to_vec(msg, bincode_config()).expect("message encodes"),
            ),
        }
    }

    /// Decodes a text frame.
    pub fn decode_text<M: WireMessage>(self, text: &str) -> Result<M, DecodeError> {
        match self {
            Self::Json => M::from_json(text),
            Self::Bincode => Err(DecodeError::new(
                ErrorCode::BadFrame,
                "text frame on a bincode connection; send binary frames",
            )),
        }
    }

    /// Decodes a binary frame.
    pub fn decode_binary<M: WireMessage>(self, bytes: &[u8]) -> Result<M, DecodeError> {
        match self {
            Self::Json => Err(DecodeError::new(
                ErrorCode::BadFrame,
                "binary frame on a JSON connection; send text frames",
            )),
            Self::Bincode => match bincode::decode_from_slice(bytes, bincode_config()) {
                Ok((msg, used)) if used == bytes.len() => Ok(msg),
                Ok(_) => Err(DecodeError::new(
                    ErrorCode::BadFrame,
                    "trailing bytes after the bincode message",
                )),
                Err(err) => Err(DecodeError::new(
                    ErrorCode::BadFrame,
                    format!("not a bincode message: {err}"),
                )),
            },
        }
    }
}

/// Decodes JSON in one pass; only on failure does it look again to say what was wrong.
fn decode_json<M: WireMessage>(text: &str) -> Result<M, DecodeError> {
    let err = match serde_json::from_str::<M>(text) {
        Ok(msg) => return Ok(msg),
        Err(err) => err,
    };
    if err.is_syntax() || err.is_eof() {
        return Err(DecodeError::new(
            ErrorCode::BadJson,
            format!("not valid JSON: {err}"),
        ));
    }
    // serde_json reports the recursion limit as a syntax error; anything else is about the
    // shape. Find out whether the `type` itself is the problem.
    match serde_json::from_str::<TypeOnly>(text) {
        Ok(TypeOnly { kind: None }) => Err(DecodeError::new(
            ErrorCode::BadMessage,
            "missing field `type`",
        )),
        Ok(TypeOnly { kind: Some(kind) }) if !M::TYPES.contains(&kind.as_ref()) => {
            Err(DecodeError::new(
                ErrorCode::UnknownType,
                format!("unknown message type `{}`", truncate(&kind, 40)),
            ))
        }
        Ok(_) => Err(DecodeError::new(ErrorCode::BadMessage, err.to_string())),
        Err(_) => Err(DecodeError::new(
            ErrorCode::BadMessage,
            "a message is a JSON object with a string field `type`",
        )),
    }
}

/// Cuts client-supplied text quoted back in an error, on a character boundary.
fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ChatId;
    use crate::{EndReason, Join, SignalData};

    fn json(text: &str) -> Result<ClientMsg, DecodeError> {
        Codec::Json.decode_text(text)
    }

    #[test]
    fn json_messages_carry_their_type_tag() {
        assert_eq!(json(r#"{"type":"next"}"#).unwrap(), ClientMsg::Next);
        let msg = json(r#"{"type":"msg","chat":"000000000000002a","text":"hi"}"#).unwrap();
        assert_eq!(
            msg,
            ClientMsg::Msg {
                chat: ChatId(42),
                text: "hi".into()
            }
        );
        let Frame::Text(text) = Codec::Json.encode(&ServerMsg::Ended {
            chat: ChatId(1),
            reason: EndReason::PartnerSkipped,
        }) else {
            panic!("json is text")
        };
        assert_eq!(
            text,
            r#"{"type":"ended","chat":"0000000000000001","reason":"partner_skipped"}"#
        );
    }

    #[test]
    fn join_fields_default_when_absent() {
        let ClientMsg::Join(join) = json(r#"{"type":"join","adult":true}"#).unwrap() else {
            panic!("join")
        };
        assert_eq!(
            join,
            Join {
                adult: true,
                ..Join::default()
            }
        );
    }

    #[test]
    fn every_client_message_survives_both_codecs() {
        let all = [
            ClientMsg::Join(Join {
                mode: Some("video".into()),
                interests: vec!["music".into()],
                lang: Some("de".into()),
                adult: true,
                auto_reroll: true,
                ..Join::default()
            }),
            ClientMsg::Next,
            ClientMsg::Leave,
            ClientMsg::Msg {
                chat: ChatId(7),
                text: "hello".into(),
            },
            ClientMsg::Typing {
                chat: ChatId(7),
                on: true,
            },
            ClientMsg::Signal {
                chat: ChatId(7),
                data: SignalData::from_value(&serde_json::json!({"sdp": "v=0", "n": [1, 2]}))
                    .unwrap(),
            },
            ClientMsg::Report {
                chat: ChatId(7),
                reason: "spam".into(),
                note: Some("sent links".into()),
            },
            ClientMsg::SaveLog { chat: ChatId(7) },
            ClientMsg::Ping,
        ];
        for msg in all {
            for codec in [Codec::Json, Codec::Bincode] {
                let back: ClientMsg = match codec.encode(&msg) {
                    Frame::Text(text) => codec.decode_text(&text).unwrap(),
                    Frame::Binary(bytes) => codec.decode_binary(&bytes).unwrap(),
                };
                assert_eq!(back, msg, "{codec:?}");
            }
        }
    }

    #[test]
    fn bad_json_is_told_apart_from_bad_messages() {
        assert_eq!(json("{nope").unwrap_err().code, ErrorCode::BadJson);
        assert_eq!(json("").unwrap_err().code, ErrorCode::BadJson);
        assert_eq!(
            json(r#"{"type":"teleport"}"#).unwrap_err().code,
            ErrorCode::UnknownType
        );
        assert_eq!(
            json(r#"{"chat":"01"}"#).unwrap_err().code,
            ErrorCode::BadMessage
        );
        assert_eq!(json("[1,2]").unwrap_err().code, ErrorCode::BadMessage);
        assert_eq!(json("42").unwrap_err().code, ErrorCode::BadMessage);
        let missing = json(r#"{"type":"msg","chat":"01"}"#).unwrap_err();
        assert_eq!(missing.code, ErrorCode::BadMessage);
        assert!(missing.message.contains("text"), "{}", missing.message);
        let wrong = json(r#"{"type":"typing","chat":"01","on":"yes"}"#).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::BadMessage);
    }

    #[test]
    fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
        let deep = format!(
            r#"{{"type":"signal","chat":"01","data":{}{}}}"#,
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        let err = json(&deep).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadJson, "{err:?}");
        let deep_msg = format!(
            r#"{{"type":"msg","chat":"01","text":{}{}}}"#,
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        assert_eq!(json(&deep_msg).unwrap_err().code, ErrorCode::BadJson);
    }

    #[test]
    fn a_signal_is_cut_out_as_it_was_written_and_checked() {
        let text = r#"{"data": {"sdp" : "v=0", "n":[1, 2]} ,"chat":"01","type":"signal"}"#;
        let Ok(ClientMsg::Signal { data, .. }) = json(text) else {
            panic!("a signal");
        };
        assert_eq!(data.get(), r#"{"sdp" : "v=0", "n":[1, 2]}"#);
        let relayed = Codec::Json.encode(&ServerMsg::Signal {
            chat: ChatId(1),
            data,
        });
        let Frame::Text(relayed) = relayed else {
            panic!("a text frame");
        };
        assert!(
            relayed.contains(r#""data":{"sdp" : "v=0", "n":[1, 2]}"#),
            "{relayed}"
        );
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let deep = format!(r#"{{"type":"signal","chat":"01","data":{}}}"#, nested(33));
        let err = json(&deep).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidValue);
        assert!(err.message.contains("nested"), "{}", err.message);
        // A type spelled with escapes is still a signal, read the same way.
        let escaped = format!(
            r#"{{"type":"\u0073ignal","chat":"01","data":{}}}"#,
            nested(33)
        );
        assert_eq!(json(&escaped).unwrap_err().code, ErrorCode::InvalidValue);
        let escaped = r#"{"type":"\u0073ignal","chat":"01","data":[ 1 ]}"#;
        let Ok(ClientMsg::Signal { data, .. }) = json(escaped) else {
            panic!("a signal");
        };
        assert_eq!(data.get(), "[ 1 ]");
        let escaped =
            r#"{"type":"signal","c\u0068at":"01","\u0064ata":{"n":84481891198857450e44}}"#;
        let Ok(ClientMsg::Signal { data, .. }) = json(escaped) else {
            panic!("a signal");
        };
        assert_eq!(data.get(), r#"{"n":84481891198857450e44}"#);
        let missing = json(r#"{"type":"signal","chat":"01"}"#).unwrap_err();
        assert_eq!(missing.code, ErrorCode::BadMessage);
        assert!(missing.message.contains("data"), "{}", missing.message);
        let broken = json(r#"{"type":"signal","chat":"01","data":{"#).unwrap_err();
        assert_eq!(broken.code, ErrorCode::BadJson);
    }

    #[test]
    fn frames_of_the_wrong_kind_are_refused() {
        assert_eq!(
            Codec::Json
                .decode_binary::<ClientMsg>(&[1, 2, 3])
                .unwrap_err()
                .code,
            ErrorCode::BadFrame
        );
        assert_eq!(
            Codec::Bincode
                .decode_text::<ClientMsg>("{}")
                .unwrap_err()
                .code,
            ErrorCode::BadFrame
        );
        assert_eq!(
            Codec::Bincode
                .decode_binary::<ClientMsg>(&[250, 0, 0])
                .unwrap_err()
                .code,
            ErrorCode::BadFrame
        );
    }

    #[test]
    fn a_banned_error_says_until_when_and_other_errors_do_not() {
        let permanent = ServerMsg::Error {
            code: ErrorCode::Banned,
            message: "you are banned".into(),
            until: Some(None),
            ban: Some("b1".into()),
            challenge: None,
        };
        let Frame::Text(text) = Codec::Json.encode(&permanent) else {
            panic!("json is text")
        };
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["code"], "banned");
        assert!(
            json["until"].is_null() && json.get("until").is_some(),
            "{json}"
        );
        assert_eq!(json["ban"], "b1");
        let plain = ServerMsg::error(ErrorCode::StaleChat, "over");
        let Frame::Text(text) = Codec::Json.encode(&plain) else {
            panic!("json is text")
        };
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            json.get("until").is_none() && json.get("ban").is_none(),
            "{json}"
        );
        let timed = ServerMsg::Error {
            code: ErrorCode::Banned,
            message: "you are banned".into(),
            until: Some(Some(1_900_000_000)),
            ban: Some("b2".into()),
            challenge: None,
        };
        for msg in [
            permanent,
            timed,
            plain,
            ServerMsg::Reported {
                report: "r1".into(),
            },
            ServerMsg::LogSaved {
                chat: ChatId(9),
                url: "/logs/00112233445566778899aabbccddeeff".into(),
                delete_url: "/logs/00112233445566778899aabbccddeeff/delete?key=k".into(),
            },
        ] {
            for codec in [Codec::Json, Codec::Bincode] {
                let back: ServerMsg = match codec.encode(&msg) {
                    Frame::Text(text) => serde_json::from_str(&text).unwrap(),
                    Frame::Binary(bytes) => {
                        bincode::decode_from_slice(&bytes, bincode::config::standard())
                            .unwrap()
                            .0
                    }
                };
                assert_eq!(back, msg, "{codec:?}");
            }
        }
    }
}
