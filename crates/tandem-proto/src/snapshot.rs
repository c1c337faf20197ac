//! Video snapshots: small stills of a user's own camera that a video client sends during a
//! chat for automated moderation (`limits.snapshot_interval_ms` says how often; 0: none
//! asked). Two forms:
//! - on a JSON connection, a **binary frame**: the chat id as 8 big-endian bytes, then the
//!   image (JPEG or WebP), so that a still travels without base64;
//! - `{"type": "snapshot", "chat": …, "image": "<base64>"}` as a text frame, or the
//!   `snapshot` message in bincode.

use base64::Engine;

use crate::ids::ChatId;
use crate::{DecodeError, ErrorCode};

/// The largest image a snapshot may carry, in bytes.
/// (So that it fits a 64 KiB frame in every form: after the 8 bytes of a binary frame, and
/// after the variant, chat id and length of a bincode message.)
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 - 32;

/// The widest image a snapshot may carry, in pixels.
pub const MAX_SNAPSHOT_WIDTH: u32 = 320;

/// Reads the binary snapshot frame of a JSON connection: its chat and image.
pub fn snapshot_frame(bytes: &[u8]) -> Result<(ChatId, &[u8]), DecodeError> {
    if bytes.len() <= 8 {
        return Err(DecodeError::new(
            ErrorCode::BadFrame,
            "a binary frame on a JSON connection is a snapshot: the chat id as 8 big-endian bytes, then the image",
        ));
    }
    let (id, image) = bytes.split_at(8);
    let chat = ChatId(u64::from_be_bytes(id.try_into().expect("8 bytes")));
    Ok((chat, image))
}

/// The binary snapshot frame for `chat` and `image` (what clients send).
pub fn encode_snapshot_frame(chat: ChatId, image: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + image.len());
    frame.extend_from_slice(&chat.0.to_be_bytes());
    frame.extend_from_slice(image);
    frame
}

/// `image` in JSON: base64 (standard alphabet, padded).
pub(crate) mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientMsg, Codec, Frame};

    #[test]
    fn a_snapshot_travels_as_a_binary_frame_as_base64_json_and_in_bincode() {
        let image = vec![0xff, 0xd8, 0xff, 0xe0, 1, 2, 3];
        let frame = encode_snapshot_frame(ChatId(0x0102_0304_0506_0708), &image);
        assert_eq!(
            snapshot_frame(&frame).unwrap(),
            (ChatId(0x0102_0304_0506_0708), &image[..])
        );
        assert_eq!(
            snapshot_frame(&frame[..8]).unwrap_err().code,
            ErrorCode::BadFrame
        );
        let msg = ClientMsg::Snapshot {
            chat: ChatId(9),
            image: image.clone(),
        };
        let Frame::Text(text) = Codec::Json.encode(&msg) else {
            panic!("json is text")
        };
        assert!(text.contains(r#""image":"/9j/4AECAw==""#), "{text}");
        assert_eq!(Codec::Json.decode_text::<ClientMsg>(&text).unwrap(), msg);
        let Frame::Binary(bytes) = Codec::Bincode.encode(&msg) else {
            panic!("bincode is binary")
        };
        assert_eq!(
            Codec::Bincode.decode_binary::<ClientMsg>(&bytes).unwrap(),
            msg
        );
        // The largest still fits a frame in either binary form.
        let largest = ClientMsg::Snapshot {
            chat: ChatId(u64::MAX),
            image: vec![0xab; MAX_SNAPSHOT_BYTES],
        };
        let Frame::Binary(bytes) = Codec::Bincode.encode(&largest) else {
            panic!("bincode is binary")
        };
        assert!(bytes.len() <= crate::MAX_FRAME_BYTES, "{}", bytes.len());
        let frame = encode_snapshot_frame(ChatId(u64::MAX), &vec![0; MAX_SNAPSHOT_BYTES]);
        assert!(frame.len() <= crate::MAX_FRAME_BYTES);
        let bad = r#"{"type":"snapshot","chat":"0000000000000009","image":"not base64!"}"#;
        assert!(Codec::Json.decode_text::<ClientMsg>(bad).is_err());
    }
}
