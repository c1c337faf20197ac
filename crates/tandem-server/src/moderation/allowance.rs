//! A per-client hourly allowance: how many times a client may do something costly (file a
//! report, save a log, export its data) within the last hour, as counted by this node.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use super::records::UnixSecs;

/// The window an allowance counts over.
const HOUR: u64 = 3600;

/// Clients tracked before the idle ones are swept, so the map stays bounded.
const SWEEP_ABOVE: usize = 100_000;

/// At most `per_hour` uses per client in any hour.
pub struct Hourly {
    per_hour: usize,
    /// Recent uses per client key, oldest first.
    recent: Mutex<HashMap<u64, VecDeque<UnixSecs>>>,
}

impl Hourly {
    /// An allowance of `per_hour` uses.
    pub fn new(per_hour: usize) -> Self {
        Self {
            per_hour,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a use by `client` at `now`; `false` (and not counted) when the hour's
    /// allowance is spent.
    pub fn take(&self, client: u64, now: UnixSecs) -> bool {
        let mut recent = self.recent.lock();
        if recent.len() > SWEEP_ABOVE {
            recent.retain(|_, times| times.back().is_some_and(|&t| now.saturating_sub(t) < HOUR));
        }
        let times = recent.entry(client).or_default();
        while times
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= HOUR)
        {
            times.pop_front();
        }
        if times.len() >= self.per_hour {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowance_is_spent_and_comes_back_after_an_hour() {
        let allowance = Hourly::new(2);
        assert!(allowance.take(1, 100));
        assert!(allowance.take(1, 200));
        assert!(!allowance.take(1, 300), "spent");
        assert!(allowance.take(2, 300), "each client its own");
        assert!(!allowance.take(1, 100 + HOUR - 1));
        assert!(
            allowance.take(1, 100 + HOUR),
            "the first use is an hour old"
        );
    }
}
