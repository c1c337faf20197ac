//! When users' interest waits end: a timing wheel, O(1) to add a deadline and O(due) to take
//! the ones that have passed. A binary heap cost O(log n) cache misses per waiting user and
//! kept the entries of users who had already left until their time came.

use std::time::{Duration, Instant};

/// Width of one slot: deadlines are told apart to this much (the shard ticks every 20 ms).
const GRANULARITY: Duration = Duration::from_millis(10);
/// Slots on the ring (10.24 s); a deadline further ahead waits for later turns of the ring.
const SLOTS: u64 = 1024;

/// Deadlines by slot, each for a key `K` (what the owner looks the deadline's user up by).
#[derive(Debug)]
pub struct Deadlines<K> {
    /// Slot 0 starts here (the first deadline ever added).
    origin: Option<Instant>,
    slots: Vec<Vec<(Instant, K)>>,
    /// The first slot (counted from `origin`) that may still hold a deadline that has not
    /// been taken.
    next: u64,
    /// Deadlines held, taken or not yet.
    len: usize,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            origin: None,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            next: 0,
            len: 0,
        }
    }
}

impl<K: Copy> Deadlines<K> {
    fn slot_of(&self, at: Instant) -> u64 {
        let origin = self.origin.expect("set by the first add");
        (at.saturating_duration_since(origin).as_nanos() / GRANULARITY.as_nanos()) as u64
    }

    /// Adds a deadline.
    pub fn add(&mut self, due: Instant, key: K) {
        self.origin.get_or_insert(due);
        let slot = self.slot_of(due).max(self.next);
        self.slots[(slot % SLOTS) as usize].push((due, key));
        self.len += 1;
    }

    /// Deadlines held (added and not yet taken).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keeps only the deadlines whose key `keep` accepts: the owner drops those of users who
    /// left, so that a busy pool does not hold a deadline per arrival of the last minute.
    pub fn retain(&mut self, mut keep: impl FnMut(K) -> bool) {
        for slot in &mut self.slots {
            slot.retain(|&(_, key)| keep(key));
            if slot.capacity() > 4 * slot.len() + 64 {
                slot.shrink_to(2 * slot.len());
            }
        }
        self.len = self.slots.iter().map(Vec::len).sum();
    }

    /// Appends to `out` every key whose deadline is at or before `now`, oldest slots first.
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<K>) {
        if self.origin.is_none() {
            return;
        }
        let last = self.slot_of(now);
        let first = self.next.max(last.saturating_sub(SLOTS - 1));
        let before = out.len();
        for slot in first..=last {
            let bucket = &mut self.slots[(slot % SLOTS) as usize];
            // Deadlines a turn (or more) of the ring ahead, or later in this very slot, stay.
            bucket.retain(|&(due, key)| {
                if due <= now {
                    out.push(key);
                    false
                } else {
                    true
                }
            });
        }
        // The slot of `now` may still hold deadlines later within it: look again next time.
        self.next = last;
        self.len -= out.len() - before;
    }
}

#[cfg(test)]
mod tests {
    use tandem_ids::TicketId;

    use super::*;

    fn due(deadlines: &mut Deadlines<TicketId>, now: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        deadlines.take_due(now, &mut out);
        let mut ids: Vec<u64> = out.into_iter().map(|t| t.0).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn deadlines_are_taken_when_they_pass_and_not_before() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.add(t0 + Duration::from_millis(5), TicketId(1));
        d.add(t0 + Duration::from_millis(7), TicketId(2));
        d.add(t0 + Duration::from_secs(5), TicketId(3));
        assert_eq!(due(&mut d, t0), Vec::<u64>::new());
        assert_eq!(due(&mut d, t0 + Duration::from_millis(5)), [1]);
        assert_eq!(
            due(&mut d, t0 + Duration::from_millis(6)),
            Vec::<u64>::new()
        );
        assert_eq!(due(&mut d, t0 + Duration::from_millis(7)), [2]);
        assert_eq!(
            due(&mut d, t0 + Duration::from_millis(4999)),
            Vec::<u64>::new()
        );
        assert_eq!(due(&mut d, t0 + Duration::from_secs(5)), [3]);
    }

    #[test]
    fn deadlines_beyond_one_turn_of_the_ring_wait_their_turn() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.add(t0, TicketId(1));
        d.add(t0 + Duration::from_secs(25), TicketId(2));
        assert_eq!(due(&mut d, t0), [1]);
        for step in 1..250 {
            let now = t0 + Duration::from_millis(100 * step);
            assert_eq!(due(&mut d, now), Vec::<u64>::new(), "at {step}");
        }
        assert_eq!(due(&mut d, t0 + Duration::from_secs(25)), [2]);
    }

    #[test]
    fn a_long_pause_takes_everything_due() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        for n in 0..100 {
            d.add(t0 + Duration::from_millis(37 * n), TicketId(n));
        }
        assert_eq!(due(&mut d, t0 + Duration::from_secs(60)).len(), 100);
    }
}
