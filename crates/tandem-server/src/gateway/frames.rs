//! A guard on a WebSocket connection's incoming bytes, ahead of the frame parser.
//!
//! The parser underneath (actix-http's, through actix-ws) waits for a frame's whole payload
//! before it compares its length with the limit, and buffers every byte that arrives
//! meanwhile: a frame header that declares a terabyte, followed by anything at line speed,
//! grows a node without bound. This guard reads only the frame headers as the bytes pass
//! (payload bytes are counted, never copied) and ends the stream as soon as a header breaks a
//! bound, so at most one chunk beyond a legal frame is ever buffered:
//!
//! - a data frame longer than the frame limit, or a fragmented message whose fragments add
//!   up to more than it, or that has more than [`MAX_FRAGMENTS`] fragments: **too big**
//!   (the session closes with 1009);
//! - a control frame (close, ping, pong) longer than 125 bytes or fragmented, an unknown
//!   opcode, or an unmasked frame from a client: **malformed** (1002).
//!
//! Everything else passes through unchanged, chunk by chunk.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;

/// Fragments one message may have. Browsers send a message in one frame; a client that
/// splits one into more than this many is flooding.
pub const MAX_FRAGMENTS: u32 = 64;

/// Why the guard ended a connection's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breach {
    /// A frame or message larger than the limit.
    TooBig,
    /// A frame no client may send.
    Malformed,
}

impl Breach {
    fn error(self) -> PayloadError {
        match self {
            Self::TooBig => PayloadError::Overflow,
            Self::Malformed => PayloadError::EncodingCorrupted,
        }
    }

    /// The breach a stream error stands for, if it came from this guard.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Option<Self> {
        match error.downcast_ref::<PayloadError>()? {
            PayloadError::Overflow => Some(Self::TooBig),
            PayloadError::EncodingCorrupted => Some(Self::Malformed),
            _ => None,
        }
    }
}

/// Where the guard is in the byte stream.
#[derive(Debug)]
enum At {
    /// In a frame header: the bytes read so far (at most 14).
    Header { buf: [u8; 14], len: usize },
    /// In a payload: bytes left to skip.
    Payload(u64),
}

/// The frame-header state of one connection.
#[derive(Debug)]
pub struct Headers {
    max_frame: u64,
    at: At,
    /// In a fragmented message: its fragments and bytes so far.
    message: Option<(u32, u64)>,
}

impl Headers {
    /// Headers checked against a frame (and message) limit of `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame: max_frame as u64,
            at: At::Header {
                buf: [0; 14],
                len: 0,
            },
            message: None,
        }
    }

    /// Reads `chunk`, the next bytes of the stream; the first breach, if any.
    pub fn read(&mut self, mut chunk: &[u8]) -> Result<(), Breach> {
        while !chunk.is_empty() {
            match &mut self.at {
                At::Payload(left) => {
                    let skip = (*left).min(chunk.len() as u64);
                    *left -= skip;
                    chunk = &chunk[skip as usize..];
                    if *left == 0 {
                        self.at = At::Header {
                            buf: [0; 14],
                            len: 0,
                        };
                    }
                }
                At::Header { buf, len } => {
                    let need = header_len(&buf[..*len]);
                    let take = (need - *len).min(chunk.len());
                    buf[*len..*len + take].copy_from_slice(&chunk[..take]);
                    *len += take;
                    chunk = &chunk[take..];
                    // The length field's size is known once two bytes are in.
                    if *len < header_len(&buf[..*len]) {
                        continue;
                    }
                    let (header, read) = (*buf, *len);
                    let payload = self.header(&header[..read])?;
                    self.at = if payload == 0 {
                        At::Header {
                            buf: [0; 14],
                            len: 0,
                        }
                    } else {
                        At::Payload(payload)
                    };
                }
            }
        }
        Ok(())
    }

    /// Checks one whole header; the payload length it declares.
    fn header(&mut self, header: &[u8]) -> Result<u64, Breach> {
        let fin = header[0] & 0x80 != 0;
        let opcode = header[0] & 0x0f;
        let masked = header[1] & 0x80 != 0;
        let length = match header[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
            127 => u64::from_be_bytes(header[2..10].try_into().expect("eight bytes")),
            n => u64::from(n),
        };
        if !masked {
            return Err(Breach::Malformed);
        }
        match opcode {
            // Control frames: short and whole (RFC 6455 5.5).
            0x8..=0xa => {
                if length > 125 || !fin {
                    return Err(Breach::Malformed);
                }
            }
            // A new message.
            0x1 | 0x2 => {
                if self.message.is_some() {
                    return Err(Breach::Malformed);
                }
                if length > self.max_frame {
                    return Err(Breach::TooBig);
                }
                if !fin {
                    self.message = Some((1, length));
                }
            }
            // A continuation.
            0x0 => {
                let Some((fragments, bytes)) = self.message.as_mut() else {
                    return Err(Breach::Malformed);
                };
                *fragments += 1;
                *bytes = bytes.saturating_add(length);
                if *bytes > self.max_frame || *fragments > MAX_FRAGMENTS {
                    return Err(Breach::TooBig);
                }
                if fin {
                    self.message = None;
                }
            }
            _ => return Err(Breach::Malformed),
        }
        Ok(length)
    }
}

/// How long a header is, as far as `read` (its first bytes) tells: 2 until the length
/// byte is in, then 2, 4 or 10, plus 4 for the mask key.
fn header_len(read: &[u8]) -> usize {
    let Some(&second) = read.get(1) else {
        return 2;
    };
    let length_field = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + length_field + mask
}

/// A connection's incoming byte stream, behind the guard.
pub struct Guarded<S> {
    inner: S,
    headers: Headers,
    breached: bool,
}

impl<S> Guarded<S> {
    /// `inner` checked against a frame limit of `max_frame` bytes.
    pub fn new(inner: S, max_frame: usize) -> Self {
        Self {
            inner,
            headers: Headers::new(max_frame),
            breached: false,
        }
    }
}

impl<S> Stream for Guarded<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.breached {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.headers.read(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(breach) => {
                    // Nothing of the offending chunk reaches the parser.
                    self.breached = true;
                    Poll::Ready(Some(Err(breach.error())))
                }
            },
            other => other,
        }
    }
}

/// A client's frame header (masked, with an all-zero key, so the payload goes as it is)
/// declaring `length` bytes: what hostile-input tests write by hand.
#[cfg(any(test, feature = "test-support"))]
pub fn client_frame_header(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match length {
        0..=125 => out.push(0x80 | length as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&length.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::client_frame_header as header;

    fn frame(fin: bool, opcode: u8, payload: usize) -> Vec<u8> {
        let mut out = header(fin, opcode, payload as u64);
        out.resize(out.len() + payload, 0);
        out
    }

    #[test]
    fn a_lying_header_is_refused_at_the_header_in_any_split() {
        let lie = header(true, 0x1, 1 << 40);
        for split in 1..lie.len() {
            let mut h = Headers::new(65_536);
            assert_eq!(
                h.read(&lie[..split]),
                Ok(()),
                "not before the header is whole"
            );
            assert_eq!(
                h.read(&lie[split..]),
                Err(Breach::TooBig),
                "split at {split}"
            );
        }
    }

    #[test]
    fn legal_frames_pass_byte_by_byte_and_in_one_piece() {
        let mut stream = Vec::new();
        stream.extend(frame(true, 0x1, 10));
        stream.extend(frame(true, 0x2, 65_536));
        stream.extend(frame(true, 0x9, 125));
        stream.extend(frame(false, 0x1, 300));
        stream.extend(frame(true, 0xa, 0));
        stream.extend(frame(false, 0x0, 300));
        stream.extend(frame(true, 0x0, 300));
        stream.extend(frame(true, 0x8, 2));
        let mut whole = Headers::new(65_536);
        assert_eq!(whole.read(&stream), Ok(()));
        let mut bytewise = Headers::new(65_536);
        for byte in &stream {
            assert_eq!(bytewise.read(std::slice::from_ref(byte)), Ok(()));
        }
    }

    #[test]
    fn oversized_messages_and_floods_of_fragments_are_too_big() {
        let mut h = Headers::new(65_536);
        let mut stream = frame(false, 0x1, 40_000);
        stream.extend(frame(true, 0x0, 30_000));
        assert_eq!(
            h.read(&stream),
            Err(Breach::TooBig),
            "70,000 bytes in two fragments"
        );

        let mut h = Headers::new(65_536);
        let mut stream = frame(false, 0x1, 0);
        for _ in 0..MAX_FRAGMENTS {
            stream.extend(frame(false, 0x0, 0));
        }
        assert_eq!(
            h.read(&stream),
            Err(Breach::TooBig),
            "empty continuations pile up"
        );
    }

    #[test]
    fn frames_no_client_may_send_are_malformed() {
        for bad in [
            frame(true, 0x9, 126),           // a long ping
            frame(false, 0x9, 1),            // a fragmented ping
            frame(true, 0x0, 1),             // a continuation of nothing
            frame(true, 0x3, 1),             // a reserved opcode
            vec![0x81, 0x05, 1, 2, 3, 4, 5], // unmasked
        ] {
            assert_eq!(
                Headers::new(65_536).read(&bad),
                Err(Breach::Malformed),
                "{bad:?}"
            );
        }
        let mut h = Headers::new(65_536);
        let mut stream = frame(false, 0x1, 1);
        stream.extend(frame(true, 0x2, 1));
        assert_eq!(
            h.read(&stream),
            Err(Breach::Malformed),
            "a new message inside another"
        );
    }
}
