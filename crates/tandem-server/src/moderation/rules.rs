//! The automatic rule, as plain code with time passed in: reports from enough distinct
//! reporters against one client within a window ban that client (its client id and address)
//! for a while, longer on each repeat, up to a cap. The defaults are Chatroulette's: 3
//! reporters in 5 minutes ban for 10 minutes, four times longer on each repeat within 24
//! hours, at most 7 days. Automatic bans wait in the review queue for a moderator.

use std::time::Duration;

use super::records::{Tally, UnixSecs};

/// The rule's settings (`--auto-ban-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Distinct reporters that trip it; 0 turns it off.
    pub reporters: usize,
    /// Within how long.
    pub window: Duration,
    /// The first ban's length.
    pub first_ban: Duration,
    /// How much longer each repeat is.
    pub factor: u32,
    /// How long a ban counts as a repeat for the next.
    pub repeat_window: Duration,
    /// The longest automatic ban.
    pub longest: Duration,
}

impl Default for Rule {
    fn default() -> Self {
        Self {
            reporters: 3,
            window: Duration::from_secs(5 * 60),
            first_ban: Duration::from_secs(10 * 60),
            factor: 4,
            repeat_window: Duration::from_secs(24 * 3600),
            longest: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Rule {
    /// The name automatic bans are issued under.
    pub const NAME: &'static str = "reports";

    /// Counts a report by `reporter` (a client key) at `now` into `tally`: the length of the
    /// ban it trips, if it does. Reports and bans older than the windows are forgotten; a
    /// ban clears the reports that made it, so the next one needs as many again.
    pub fn count(&self, tally: &mut Tally, reporter: u64, now: UnixSecs) -> Option<Duration> {
        let window = self.window.as_secs();
        tally
            .reports
            .retain(|&(_, at)| now.saturating_sub(at) < window);
        let repeat = self.repeat_window.as_secs();
        tally.bans.retain(|&at| now.saturating_sub(at) < repeat);
        if self.reporters == 0 {
            return None;
        }
        if !tally.reports.iter().any(|&(who, _)| who == reporter) {
            tally.reports.push((reporter, now));
        }
        if tally.reports.len() < self.reporters {
            return None;
        }
        tally.reports.clear();
        let repeats = tally.bans.len() as u32;
        tally.bans.push(now);
        let length = self
            .first_ban
            .saturating_mul(self.factor.saturating_pow(repeats))
            .min(self.longest);
        Some(length)
    }

    /// When a tally is of no more use: when its last report and ban are out of both windows.
    pub fn expires(&self, tally: &Tally) -> UnixSecs {
        let last_report = tally.reports.iter().map(|&(_, at)| at).max().unwrap_or(0);
        let last_ban = tally.bans.iter().copied().max().unwrap_or(0);
        (last_report + self.window.as_secs()).max(last_ban + self.repeat_window.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;

    #[test]
    fn three_distinct_reporters_in_five_minutes_ban_for_ten() {
        let rule = Rule::default();
        let mut tally = Tally::default();
        assert_eq!(rule.count(&mut tally, 1, 0), None);
        assert_eq!(
            rule.count(&mut tally, 1, 10),
            None,
            "the same reporter counts once"
        );
        assert_eq!(rule.count(&mut tally, 2, 60), None);
        assert_eq!(
            rule.count(&mut tally, 3, 120),
            Some(Duration::from_secs(10 * MIN))
        );
        assert!(tally.reports.is_empty(), "the ban used them up");
    }

    #[test]
    fn reports_spread_beyond_the_window_do_not_add_up() {
        let rule = Rule::default();
        let mut tally = Tally::default();
        rule.count(&mut tally, 1, 0);
        rule.count(&mut tally, 2, 4 * MIN);
        assert_eq!(
            rule.count(&mut tally, 3, 5 * MIN + 1),
            None,
            "the first is too old"
        );
        assert_eq!(
            rule.count(&mut tally, 4, 5 * MIN + 2),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn repeats_within_a_day_are_four_times_longer_up_to_a_week() {
        let rule = Rule::default();
        let mut tally = Tally::default();
        let mut lengths = Vec::new();
        for round in 0..6u64 {
            let t = round * 1000;
            rule.count(&mut tally, 1, t);
            rule.count(&mut tally, 2, t + 1);
            lengths.push(rule.count(&mut tally, 3, t + 2).unwrap().as_secs() / MIN);
        }
        assert_eq!(lengths, [10, 40, 160, 640, 2560, 7 * 24 * 60]);
        // A day after the last ban, the count starts over.
        let later = 5002 + 24 * 3600;
        rule.count(&mut tally, 1, later);
        rule.count(&mut tally, 2, later);
        assert_eq!(
            rule.count(&mut tally, 3, later),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn no_reporters_needed_means_no_rule() {
        let rule = Rule {
            reporters: 0,
            ..Rule::default()
        };
        let mut tally = Tally::default();
        for n in 0..10 {
            assert_eq!(rule.count(&mut tally, n, n), None);
        }
    }
}
