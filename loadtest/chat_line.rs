//! The text of a simulated chat line: who wrote it, for which chat, in what order, and when
//! it was due, so that the receiver can check it and time it; and the writer's mode and
//! language, so that the receiver can check it was paired within its own partition.
//!
//! All users live in one process, so "when" is microseconds since the run's shared epoch.

use crate::ids::{ChatId, SessionId};

/// What a simulated user writes into `msg.text`, e.g.
/// `lt 9a1f03c2d4e5b607 5f0c6a1e9b3d2a47 2 1500123 text en`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatLine {
    /// The session that wrote the line.
    pub sender: SessionId,
    /// The chat it was written for.
    pub chat: ChatId,
    /// 0, 1, 2, ... per sender and chat, to check the order of arrival.
    pub seq: u32,
    /// When the line was due to be sent, in µs since the run's epoch (not when it was sent,
    /// so a late client does not hide its lateness).
    pub scheduled_us: u64,
    /// The writer's `join.mode` (`text` or `video`).
    pub mode: String,
    /// The writer's `join.lang`.
    pub lang: String,
}

impl ChatLine {
    /// The text to send.
    pub fn encode(&self) -> String {
        format!(
            "lt {} {} {} {} {} {}",
            self.sender, self.chat, self.seq, self.scheduled_us, self.mode, self.lang
        )
    }

    /// Reads a line written by [`ChatLine::encode`]; `None` for any other text.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(' ');
        if parts.next()? != "lt" {
            return None;
        }
        let line = ChatLine {
            sender: parts.next()?.parse().ok()?,
            chat: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            scheduled_us: parts.next()?.parse().ok()?,
            mode: parts.next()?.to_owned(),
            lang: parts.next()?.to_owned(),
        };
        parts.next().is_none().then_some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_survives_its_text_form() {
        let line = ChatLine {
            sender: SessionId(0x9a1f_03c2_d4e5_b607),
            chat: ChatId(42),
            seq: 2,
            scheduled_us: 1_500_123,
            mode: "video".to_owned(),
            lang: "de".to_owned(),
        };
        assert_eq!(ChatLine::decode(&line.encode()), Some(line));
    }

    #[test]
    fn foreign_text_is_not_a_line() {
        assert_eq!(ChatLine::decode("hi! where are you from?"), None);
        assert_eq!(ChatLine::decode("lt 1 2 3"), None);
        assert_eq!(ChatLine::decode("lt 1 2 3 4 text"), None);
        assert_eq!(ChatLine::decode("lt 1 2 3 4 text en x"), None);
    }
}
