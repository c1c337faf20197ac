//! When a shard's local tickets are due to leave for their bucket's owner node: plain code,
//! time passed in.
//!
//! Local first: a ticket waits `spill_after` on its home node, where most pairings are found
//! without a network hop, before it goes to the bucket's global owner. The scheduler keeps
//! the local tickets in the order they started waiting and hands out those whose time has
//! come; a ticket that could not go when due (this node owns its bucket, or is cut off from
//! the others) is looked at again every [`RECHECK`], since ownership may move. It holds ids
//! only: a ticket paired or withdrawn meanwhile is skipped by the shard, which knows.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tandem_ids::TicketId;
use tandem_match::BucketKey;

/// How long a ticket that could not be spilled waits before the shard looks again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// A shard's local tickets by when they are due to spill.
#[derive(Debug)]
pub struct SpillScheduler {
    spill_after: Duration,
    /// Tickets in the order they started waiting here.
    arrivals: VecDeque<(Instant, TicketId, BucketKey)>,
    /// Tickets that could not go when due, by when to look again. Kept apart from
    /// `arrivals` so that both stay in time order, and looked at every [`RECHECK`], not every
    /// tick, so a bucket owner with many waiting users does not churn through them.
    rechecks: VecDeque<(Instant, TicketId, BucketKey)>,
}

impl SpillScheduler {
    /// Tickets are due `spill_after` after they start waiting.
    pub fn new(spill_after: Duration) -> Self {
        Self {
            spill_after,
            arrivals: VecDeque::new(),
            rechecks: VecDeque::new(),
        }
    }

    /// How long a ticket waits here before it is due.
    pub fn spill_after(&self) -> Duration {
        self.spill_after
    }

    /// A local ticket started waiting here at `now`.
    pub fn waiting(&mut self, ticket: TicketId, bucket: BucketKey, now: Instant) {
        self.arrivals.push_back((now, ticket, bucket));
    }

    /// A ticket that was due could not go: look again [`RECHECK`] after `now`.
    pub fn later(&mut self, ticket: TicketId, bucket: BucketKey, now: Instant) {
        self.rechecks.push_back((now + RECHECK, ticket, bucket));
    }

    /// Takes out every ticket due by `now`: those that waited `spill_after`, then those
    /// whose recheck came.
    pub fn due(&mut self, now: Instant, out: &mut Vec<(TicketId, BucketKey)>) {
        while let Some(&(since, ticket, bucket)) = self.arrivals.front() {
            if now.saturating_duration_since(since) < self.spill_after {
                break;
            }
            self.arrivals.pop_front();
            out.push((ticket, bucket));
        }
        while let Some(&(due, ticket, bucket)) = self.rechecks.front() {
            if due > now {
                break;
            }
            self.rechecks.pop_front();
            out.push((ticket, bucket));
        }
    }

    /// Tickets tracked (waiting or to be looked at again), for tests and gauges.
    pub fn len(&self) -> usize {
        self.arrivals.len() + self.rechecks.len()
    }

    /// Whether no ticket is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use tandem_match::{Lang, Mode};

    use super::*;

    fn bucket() -> BucketKey {
        BucketKey {
            mode: Mode::Text,
            lang: Lang::EN,
        }
    }

    fn due(scheduler: &mut SpillScheduler, now: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        scheduler.due(now, &mut out);
        out.into_iter().map(|(ticket, _)| ticket.0).collect()
    }

    #[test]
    fn tickets_are_due_after_spill_after_in_arrival_order() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut scheduler = SpillScheduler::new(ms(20));
        scheduler.waiting(TicketId(1), bucket(), start);
        scheduler.waiting(TicketId(2), bucket(), start + ms(5));
        scheduler.waiting(TicketId(3), bucket(), start + ms(30));
        assert!(due(&mut scheduler, start + ms(19)).is_empty(), "not yet");
        assert_eq!(due(&mut scheduler, start + ms(20)), [1]);
        assert_eq!(due(&mut scheduler, start + ms(40)), [2]);
        assert_eq!(due(&mut scheduler, start + ms(50)), [3]);
        assert!(scheduler.is_empty());
    }

    #[test]
    fn a_ticket_that_could_not_go_is_looked_at_again_after_the_recheck_and_not_before() {
        let start = Instant::now();
        let mut scheduler = SpillScheduler::new(Duration::from_millis(20));
        scheduler.waiting(TicketId(1), bucket(), start);
        let first = start + Duration::from_millis(20);
        assert_eq!(due(&mut scheduler, first), [1]);
        scheduler.later(TicketId(1), bucket(), first);
        // Newer arrivals keep coming due meanwhile, in their own order.
        scheduler.waiting(TicketId(2), bucket(), first);
        assert_eq!(due(&mut scheduler, first + Duration::from_millis(20)), [2]);
        assert!(due(&mut scheduler, first + RECHECK - Duration::from_millis(1)).is_empty());
        assert_eq!(due(&mut scheduler, first + RECHECK), [1]);
        assert!(scheduler.is_empty());
    }
}
