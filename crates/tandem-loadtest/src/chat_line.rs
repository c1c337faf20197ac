//! The text of a simulated chat line: who wrote it, for which chat, in what order, and when
//! it was due, so that the receiver can check it and time it; and the writer's mode and
//! language, so that the receiver can check it was paired within its own partition.
//!
//! All users live in one process, so "when" is microseconds since the run's shared epoch.
//!
//! A `signal`'s `data` carries the same line, as the text of its `lt` field, inside a JSON
//! object shaped like WebRTC signaling: the first signal of a chat is the initiator's
//! `offer` or the other side's `answer` with an `sdp` string, the later ones ICE
//! `candidate` objects.

use tandem_proto::ids::{ChatId, SessionId};

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

    /// The `signal.data` carrying this line: signal `seq` 0 is an `offer` (from the
    /// initiator) or an `answer`, later ones ICE candidates.
    pub fn signal_data(&self, initiator: bool) -> serde_json::Value {
        let lt = self.encode();
        if self.seq == 0 {
            let kind = if initiator { "offer" } else { "answer" };
            let media = if self.mode == "video" {
                "video"
            } else {
                "application"
            };
            // A trimmed but well-formed SDP, about the size of a real one's head.
            let sdp = format!(
                "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
                 m={media} 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
                 a=ice-ufrag:{:08x}\r\na=setup:{}\r\n",
                self.sender.0,
                self.chat.0 as u32,
                if initiator { "actpass" } else { "active" },
            );
            serde_json::json!({"type": kind, "sdp": sdp, "lt": lt})
        } else {
            let candidate = format!(
                "candidate:{} 1 udp 2122260223 192.0.2.{} {} typ host",
                self.seq,
                self.seq % 254 + 1,
                50_000 + self.seq % 10_000,
            );
            serde_json::json!({
                "type": "candidate",
                "candidate": {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0},
                "lt": lt,
            })
        }
    }

    /// Reads the line in `signal.data` written by [`ChatLine::signal_data`]; `None` for any
    /// other data, or for data whose shape does not fit its sequence number (an `offer` or
    /// `answer` with an `sdp` first, `candidate` objects after).
    pub fn from_signal_data(data: &serde_json::Value) -> Option<Self> {
        let line = Self::decode(data.get("lt")?.as_str()?)?;
        let shaped = match data.get("type")?.as_str()? {
            "offer" | "answer" => line.seq == 0 && data.get("sdp")?.is_string(),
            "candidate" => line.seq > 0 && data.get("candidate")?.get("candidate")?.is_string(),
            _ => false,
        };
        shaped.then_some(line)
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
    fn a_line_survives_its_signal_form() {
        let mut line = ChatLine {
            sender: SessionId(7),
            chat: ChatId(42),
            seq: 0,
            scheduled_us: 10,
            mode: "video".to_owned(),
            lang: "en".to_owned(),
        };
        let offer = line.signal_data(true);
        assert_eq!(offer["type"], "offer");
        assert!(offer["sdp"].as_str().unwrap().starts_with("v=0\r\n"));
        assert_eq!(ChatLine::from_signal_data(&offer), Some(line.clone()));
        assert_eq!(line.signal_data(false)["type"], "answer");
        line.seq = 3;
        let candidate = line.signal_data(true);
        assert_eq!(candidate["type"], "candidate");
        assert_eq!(ChatLine::from_signal_data(&candidate), Some(line));
    }

    #[test]
    fn foreign_or_misshapen_signal_data_is_not_a_line() {
        assert_eq!(
            ChatLine::from_signal_data(&serde_json::json!({"type": "offer", "sdp": "v=0"})),
            None
        );
        let lt = "lt 1 2 3 4 text en";
        let offer_late = serde_json::json!({"type": "offer", "sdp": "v=0", "lt": lt});
        assert_eq!(ChatLine::from_signal_data(&offer_late), None);
    }

    #[test]
    fn foreign_text_is_not_a_line() {
        assert_eq!(ChatLine::decode("hi! where are you from?"), None);
        assert_eq!(ChatLine::decode("lt 1 2 3"), None);
        assert_eq!(ChatLine::decode("lt 1 2 3 4 text"), None);
        assert_eq!(ChatLine::decode("lt 1 2 3 4 text en x"), None);
    }
}
