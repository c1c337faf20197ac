//! Per-connection rate limits: token buckets per kind of message, and strikes for clients
//! that keep going after being told to slow down.
//!
//! Frames are judged when they are read, not when they were sent: after a stall (a node
//! paused, a network that held packets back), a client that sent at a legal pace has its
//! backlog arrive at once. So a bucket refills for all the time that passed, up to
//! [`FAIR_WINDOW`] of the rate: a stall of up to ten seconds never costs a well-behaved
//! client a frame. The price is that a client idle for ten seconds may send that much at
//! once; over any ten seconds, no client sends more than twice the rate's worth.

use std::time::{Duration, Instant};

/// How much time's worth of a rate a bucket holds: the longest stall absorbed.
pub const FAIR_WINDOW: Duration = Duration::from_secs(10);

/// Sustained rates (per second) for one connection; a new connection may send twice the
/// rate at once, and an idle one up to [`FAIR_WINDOW`] of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitConfig {
    /// `join`, `next` and `leave`.
    pub joins_per_sec: u32,
    /// `msg` and `typing`.
    pub msgs_per_sec: u32,
    /// `signal`.
    pub signals_per_sec: u32,
    /// Every frame, well-formed or not.
    pub frames_per_sec: u32,
    /// Refusals in a row (decaying at one per second) before the connection is closed
    /// with 1008.
    pub strikes_to_close: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            joins_per_sec: 5,
            msgs_per_sec: 10,
            signals_per_sec: 50,
            frames_per_sec: 100,
            strikes_to_close: 50,
        }
    }
}

/// The kind of a frame, for its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Join,
    Chat,
    Signal,
    Other,
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Answer `rate_limited` and drop the frame.
    Refuse,
    /// Close the connection with 1008.
    Disconnect,
}

#[derive(Clone, Copy, Debug)]
struct TokenBucket {
    tokens: f32,
    rate: f32,
    burst: f32,
    last: Instant,
}

impl TokenBucket {
    fn new(per_sec: u32, now: Instant) -> Self {
        let rate = per_sec.max(1) as f32;
        Self {
            tokens: 2.0 * rate,
            rate,
            burst: rate * FAIR_WINDOW.as_secs_f32(),
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection's limits.
#[derive(Clone, Debug)]
pub struct RateLimits {
    frames: TokenBucket,
    joins: TokenBucket,
    chat: TokenBucket,
    signals: TokenBucket,
    strikes: f32,
    strikes_to_close: f32,
    last_strike: Instant,
}

impl RateLimits {
    /// Fresh limits, full buckets.
    pub fn new(config: &LimitConfig, now: Instant) -> Self {
        Self {
            frames: TokenBucket::new(config.frames_per_sec, now),
            joins: TokenBucket::new(config.joins_per_sec, now),
            chat: TokenBucket::new(config.msgs_per_sec, now),
            signals: TokenBucket::new(config.signals_per_sec, now),
            strikes: 0.0,
            strikes_to_close: config.strikes_to_close.max(1) as f32,
            last_strike: now,
        }
    }

    /// Checks one frame of `kind` arriving at `now`.
    pub fn check(&mut self, kind: Kind, now: Instant) -> Verdict {
        let allowed = self.frames.take(now)
            && match kind {
                Kind::Join => self.joins.take(now),
                Kind::Chat => self.chat.take(now),
                Kind::Signal => self.signals.take(now),
                Kind::Other => true,
            };
        if allowed {
            return Verdict::Allow;
        }
        let decay = now
            .saturating_duration_since(self.last_strike)
            .as_secs_f32();
        self.last_strike = now;
        self.strikes = (self.strikes - decay).max(0.0) + 1.0;
        if self.strikes >= self.strikes_to_close {
            Verdict::Disconnect
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_sent_at_a_legal_pace_survives_a_stall_of_ten_seconds() {
        let start = Instant::now();
        let config = LimitConfig::default();
        let mut limits = RateLimits::new(&config, start);
        // Nine lines a second against a rate of ten, read as they come for two seconds...
        let step = Duration::from_secs(1) / 9;
        let mut sent = 0;
        while step * sent < Duration::from_secs(2) {
            assert_eq!(
                limits.check(Kind::Chat, start + step * sent),
                Verdict::Allow
            );
            sent += 1;
        }
        // ...then eight seconds of them held back, read all at once.
        let after = start + Duration::from_secs(10);
        for n in 0..72 {
            assert_eq!(
                limits.check(Kind::Chat, after),
                Verdict::Allow,
                "line {n} of the backlog"
            );
        }
        // A flood is still a flood: far past the window's worth, refused.
        let verdicts: Vec<_> = (0..300).map(|_| limits.check(Kind::Chat, after)).collect();
        assert!(verdicts.contains(&Verdict::Refuse));
    }

    #[test]
    fn a_burst_is_allowed_then_refused_then_refilled() {
        let now = Instant::now();
        let config = LimitConfig::default();
        let mut limits = RateLimits::new(&config, now);
        for _ in 0..2 * config.joins_per_sec {
            assert_eq!(limits.check(Kind::Join, now), Verdict::Allow);
        }
        assert_eq!(limits.check(Kind::Join, now), Verdict::Refuse);
        // Chat has its own bucket.
        assert_eq!(limits.check(Kind::Chat, now), Verdict::Allow);
        let later = now + Duration::from_secs(1);
        assert_eq!(limits.check(Kind::Join, later), Verdict::Allow);
    }

    #[test]
    fn a_client_that_keeps_flooding_is_disconnected() {
        let now = Instant::now();
        let config = LimitConfig::default();
        let mut limits = RateLimits::new(&config, now);
        let verdicts: Vec<_> = (0..200).map(|_| limits.check(Kind::Chat, now)).collect();
        assert!(verdicts.contains(&Verdict::Refuse));
        assert_eq!(verdicts.last(), Some(&Verdict::Disconnect));
        // Idle for long, a client may send at most the window's worth at once.
        let later = now + 10 * FAIR_WINDOW;
        let mut limits = RateLimits::new(&config, now);
        let allowed = (0..1000)
            .take_while(|_| limits.check(Kind::Chat, later) == Verdict::Allow)
            .count();
        assert_eq!(
            allowed,
            (config.msgs_per_sec as u64 * FAIR_WINDOW.as_secs()) as usize
        );
    }

    #[test]
    fn strikes_decay_so_a_client_that_slows_down_is_never_closed() {
        let start = Instant::now();
        let config = LimitConfig::default();
        let mut limits = RateLimits::new(&config, start);
        // 11 lines a second for a minute against a rate of 10: about one refused a second,
        // and strikes decay at one a second, so they never pile up to the close.
        let step = Duration::from_secs(1) / 11;
        let mut verdicts = Vec::new();
        for n in 0..(60 * 11) {
            verdicts.push(limits.check(Kind::Chat, start + step * n));
        }
        assert!(
            verdicts.contains(&Verdict::Refuse),
            "over the rate: refused"
        );
        assert!(!verdicts.contains(&Verdict::Disconnect), "but never closed");
    }
}
