//! The opaque payload of a `signal` message (WebRTC offer, answer or ICE candidate).
//!
//! The server relays it as the JSON text the client sent, byte for byte: it is checked (valid
//! JSON, at most [`MAX_SIGNAL_BYTES`], nested at most [`MAX_SIGNAL_DEPTH`] deep) in one pass
//! over the text by the scanner (`scan.rs`) and never parsed into a tree, so relaying costs
//! time linear in its bytes whatever its shape.

use std::fmt;

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::scan::{self, ScanError};

/// The largest `signal.data`, in bytes of JSON text. A browser's SDP offer for audio and
/// video with the usual codecs is 4 to 8 KiB, and an ICE candidate a few hundred bytes; 16 KiB
/// leaves room for simulcast and extra codecs while keeping a relay small.
pub const MAX_SIGNAL_BYTES: usize = 16 * 1024;

/// The deepest nesting of arrays and objects `signal.data` may have. WebRTC's own payloads
/// are at most three deep (`{"candidate": {...}}`).
pub const MAX_SIGNAL_DEPTH: usize = 32;

/// Why a payload is not acceptable `signal.data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error("signal data is not JSON")]
    NotJson,
    #[error("signal data is over {MAX_SIGNAL_BYTES} bytes")]
    TooLarge,
    #[error("signal data is nested deeper than {MAX_SIGNAL_DEPTH}")]
    TooDeep,
}

/// Any JSON value the client wants its partner to receive, kept as its text; the server never
/// looks inside. In bincode frames it travels as a string holding the JSON text.
#[derive(Clone, PartialEq, Eq)]
pub struct SignalData(Box<str>);

impl SignalData {
    /// Checks JSON text (one value, whitespace around it dropped) and keeps it as it is.
    pub fn parse(text: &str) -> Result<Self, SignalError> {
        let text = text.trim_matches([' ', '\t', '\n', '\r']);
        if text.len() > MAX_SIGNAL_BYTES {
            return Err(SignalError::TooLarge);
        }
        let (end, depth) =
            scan::value_end(text.as_bytes(), 0, MAX_SIGNAL_DEPTH + 1).map_err(|err| match err {
                ScanError::Syntax => SignalError::NotJson,
                ScanError::TooDeep => SignalError::TooDeep,
            })?;
        if end != text.len() {
            return Err(SignalError::NotJson);
        }
        Self::checked(text, depth)
    }

    /// A value already scanned as part of a larger message, `depth` deep.
    pub(crate) fn checked(text: &str, depth: usize) -> Result<Self, SignalError> {
        if text.len() > MAX_SIGNAL_BYTES {
            return Err(SignalError::TooLarge);
        }
        if depth > MAX_SIGNAL_DEPTH {
            return Err(SignalError::TooDeep);
        }
        Ok(Self(text.into()))
    }

    /// A payload from a JSON value (what a client builds).
    pub fn from_value(value: &serde_json::Value) -> Result<Self, SignalError> {
        Self::parse(&value.to_string())
    }

    /// The JSON text, exactly as the sender wrote it.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// The payload parsed (what a client reads).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).expect("signal data is JSON")
    }
}

impl fmt::Debug for SignalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SignalData").field(&self.get()).finish()
    }
}

/// The generic path (the codecs write a `signal`'s JSON themselves, without this): the text
/// as a raw JSON value.
impl Serialize for SignalData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawValue::from_string(self.0.to_string())
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// The generic path (the codecs cut a `signal`'s data out of the text themselves, without
/// this): through a value.
impl<'de> Deserialize<'de> for SignalData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Self::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl bincode::Encode for SignalData {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.get().encode(encoder)
    }
}

impl<Context> bincode::Decode<Context> for SignalData {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        let text = String::decode(decoder)?;
        Self::parse(&text).map_err(|err| {
            DecodeError::Other(match err {
                SignalError::NotJson => "signal data is not JSON",
                SignalError::TooLarge => "signal data is over 16384 bytes",
                SignalError::TooDeep => "signal data is nested deeper than 32",
            })
        })
    }
}

bincode::impl_borrow_decode!(SignalData);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_kept_byte_for_byte() {
        let text = r#"{ "type" : "offer",  "sdp":"v=0\r\n" , "z": 1, "a": [ ] }"#;
        let data = SignalData::parse(text).unwrap();
        assert_eq!(data.get(), text);
        let json = serde_json::to_string(&data).unwrap();
        assert_eq!(json, text);
    }

    #[test]
    fn size_and_depth_are_bounded() {
        let at_limit = format!("\"{}\"", "a".repeat(MAX_SIGNAL_BYTES - 2));
        assert!(SignalData::parse(&at_limit).is_ok());
        let over = format!("\"{}\"", "a".repeat(MAX_SIGNAL_BYTES - 1));
        assert_eq!(SignalData::parse(&over), Err(SignalError::TooLarge));
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(SignalData::parse(&nested(MAX_SIGNAL_DEPTH)).is_ok());
        assert_eq!(
            SignalData::parse(&nested(MAX_SIGNAL_DEPTH + 1)),
            Err(SignalError::TooDeep)
        );
        assert_eq!(SignalData::parse("{\"a\":"), Err(SignalError::NotJson));
        assert_eq!(SignalData::parse("1 2"), Err(SignalError::NotJson));
    }

    #[test]
    fn brackets_inside_strings_are_not_nesting() {
        let text = format!("{{\"sdp\":\"{}\\\"{}\"}}", "[".repeat(100), "{".repeat(100));
        assert!(SignalData::parse(&text).is_ok());
    }
}
