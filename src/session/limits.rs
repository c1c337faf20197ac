//! Per-connection rate limits: token buckets per kind of message, and strikes for clients
//! that keep going after being told to slow down.

use std::time::Instant;

/// Sustained rates (per second) for one connection; each allows a burst of twice the rate.
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
            burst: 2.0 * rate,
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
    use std::time::Duration;

    use super::*;

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
    }
}
