//! What a session keeps of a chat's lines: the evidence a report carries, and what a saved
//! log holds.
//!
//! Only in memory, only the last lines (at most [`Transcript::MAX_LINES`], and at most
//! [`Transcript::MAX_BYTES`] of text), only for the current chat and the one that ended last,
//! and that one only for [`KEPT_AFTER_END`]: a user may report a chat for
//! [`REPORT_WINDOW`] after it ended and save it for [`KEPT_AFTER_END`]. The store sees lines
//! only inside a report the user filed or a log the user saved; nothing else of a chat's text
//! leaves the session.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_ids::ChatId;
use tandem_proto::PartnerInfo;

use super::Identity;

/// How long the lines of a chat that ended are kept: a user may save the chat they just
/// left for this long.
pub const KEPT_AFTER_END: Duration = Duration::from_secs(5 * 60);

/// How long after a chat ended its partner may still be reported.
pub const REPORT_WINDOW: Duration = Duration::from_secs(60);

/// One line of a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When it was relayed.
    pub at: Instant,
    /// Written by this session's user (`false`: by the partner).
    pub mine: bool,
    pub text: String,
}

/// A chat as one side saw it.
#[derive(Debug)]
pub(super) struct Transcript {
    pub chat: ChatId,
    /// Who the partner is (for a report).
    pub partner: Arc<Identity>,
    /// What this side was told of the partner.
    pub partner_info: PartnerInfo,
    /// The interests both sides named.
    pub common_interests: Vec<String>,
    /// When the chat began.
    pub started: Instant,
    lines: VecDeque<Line>,
    /// Bytes of text in `lines`.
    bytes: usize,
    /// When the chat ended, once it has.
    pub ended: Option<Instant>,
    /// Lines written so far by this side and by the partner (all of them, not only those
    /// kept).
    written: (u32, u32),
}

impl Transcript {
    /// The most lines kept.
    pub const MAX_LINES: usize = 200;
    /// The most bytes of text kept (200 long lines would be 1.6 MB a user).
    pub const MAX_BYTES: usize = 16 * 1024;
    /// The most lines a report carries.
    pub const EVIDENCE_LINES: usize = 50;
    /// The most bytes of text a report carries.
    pub const EVIDENCE_BYTES: usize = 8 * 1024;

    pub fn new(
        chat: ChatId,
        partner: Arc<Identity>,
        partner_info: PartnerInfo,
        common_interests: Vec<String>,
        started: Instant,
    ) -> Self {
        Self {
            chat,
            partner,
            partner_info,
            common_interests,
            started,
            lines: VecDeque::new(),
            bytes: 0,
            ended: None,
            written: (0, 0),
        }
    }

    /// Lines written so far by this side and by the partner.
    pub fn written(&self) -> (u32, u32) {
        self.written
    }

    /// Keeps a line, dropping the oldest beyond the bounds.
    pub fn push(&mut self, at: Instant, mine: bool, text: &str) {
        let count = if mine {
            &mut self.written.0
        } else {
            &mut self.written.1
        };
        *count = count.saturating_add(1);
        self.bytes += text.len();
        self.lines.push_back(Line {
            at,
            mine,
            text: text.to_owned(),
        });
        while self.lines.len() > Self::MAX_LINES || self.bytes > Self::MAX_BYTES {
            match self.lines.pop_front() {
                Some(line) => self.bytes -= line.text.len(),
                None => break,
            }
        }
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.iter().cloned().collect()
    }

    /// The last lines, within the bounds of a report's evidence, oldest first.
    pub fn evidence(&self) -> Vec<Line> {
        let mut bytes = 0;
        let mut tail: Vec<Line> = self
            .lines
            .iter()
            .rev()
            .take(Self::EVIDENCE_LINES)
            .take_while(|line| {
                bytes += line.text.len();
                bytes <= Self::EVIDENCE_BYTES
            })
            .cloned()
            .collect();
        tail.reverse();
        tail
    }

    /// Whether a chat that ended is still within the time it is kept at `now`.
    pub fn kept_at(&self, now: Instant) -> bool {
        self.ended
            .is_none_or(|ended| now.saturating_duration_since(ended) < KEPT_AFTER_END)
    }

    /// Whether the chat may still be reported at `now`.
    pub fn reportable_at(&self, now: Instant) -> bool {
        self.ended
            .is_none_or(|ended| now.saturating_duration_since(ended) < REPORT_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use tandem_ids::ClientId;

    use super::*;

    fn transcript() -> Transcript {
        let who = Identity::of(ClientId::parse("partner").unwrap());
        Transcript::new(
            ChatId(1),
            Arc::new(who),
            PartnerInfo::default(),
            Vec::new(),
            Instant::now(),
        )
    }

    #[test]
    fn the_last_lines_are_kept_within_both_bounds() {
        let now = Instant::now();
        let mut t = transcript();
        for n in 0..210_u32 {
            t.push(now, n.is_multiple_of(2), &format!("line {n}"));
        }
        let lines = t.lines();
        assert_eq!(lines.len(), Transcript::MAX_LINES);
        assert_eq!(lines[0].text, "line 10");
        assert_eq!(lines.last().unwrap().text, "line 209");
        let evidence = t.evidence();
        assert_eq!(evidence.len(), Transcript::EVIDENCE_LINES);
        assert_eq!(evidence[0].text, "line 160");
        assert_eq!(evidence.last().unwrap().text, "line 209");
        let long = "x".repeat(2000);
        for _ in 0..10 {
            t.push(now, true, &long);
        }
        assert!(t.lines().iter().map(|l| l.text.len()).sum::<usize>() <= Transcript::MAX_BYTES);
        assert_eq!(t.lines().len(), 8, "eight long lines fit");
        assert_eq!(t.evidence().len(), 4, "four long lines fit a report");
    }

    #[test]
    fn an_ended_chat_is_reportable_for_a_minute_and_kept_five() {
        let now = Instant::now();
        let mut t = transcript();
        assert!(
            t.kept_at(now + Duration::from_secs(3600)) && t.reportable_at(now + KEPT_AFTER_END),
            "a running chat is kept"
        );
        t.ended = Some(now);
        assert!(t.reportable_at(now + REPORT_WINDOW - Duration::from_millis(1)));
        assert!(!t.reportable_at(now + REPORT_WINDOW));
        assert!(t.kept_at(now + KEPT_AFTER_END - Duration::from_millis(1)));
        assert!(!t.kept_at(now + KEPT_AFTER_END));
    }
}
