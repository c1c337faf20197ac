//! The waiting pool: per bucket, a queue in arrival order.
//!
//! Finding a partner looks at the front of one bucket's queue (the users who waited longest)
//! and at no more than `SCAN_LIMIT` live entries, so joining, matching and leaving cost O(1)
//! whatever the pool's size. Removal is O(1) too: the entry leaves the index at once and its
//! queue slot becomes a tombstone, dropped when it reaches the front or when tombstones
//! outnumber the living in that queue.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use super::hash::FastBuild;
use super::{BucketKey, TicketInfo, Waiting};
use crate::ids::TicketId;

/// How many live candidates a partner search looks at, at most. Only candidates the newcomer
/// recently met (or who recently met it) are passed over, so in practice the first or second
/// candidate is taken; the limit bounds the work when a bucket is full of former partners.
pub const SCAN_LIMIT: usize = 16;

/// One bucket's queue.
#[derive(Debug)]
struct Queue {
    /// Ticket ids in arrival order; ids no longer in the index are tombstones.
    order: VecDeque<TicketId>,
    /// How many ids in `order` are live, to know when to compact.
    live: usize,
}

/// All waiting users of one shard. `T` is the driver's payload per entry.
#[derive(Debug)]
pub struct WaitingPool<T> {
    entries: HashMap<TicketId, Waiting<T>, FastBuild>,
    queues: HashMap<BucketKey, Queue, FastBuild>,
    /// Queues with no live entry, kept for reuse: a busy bucket empties and refills
    /// thousands of times a second, and re-creating its queue each time was a third of the
    /// pool's cost. Swept once they outnumber the others.
    empty_queues: usize,
}

impl<T> Default for WaitingPool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> WaitingPool<T> {
    /// An empty pool.
    pub fn new() -> Self {
        Self {
            entries: HashMap::default(),
            queues: HashMap::default(),
            empty_queues: 0,
        }
    }

    /// Waiting users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether this ticket waits here.
    pub fn contains(&self, id: TicketId) -> bool {
        self.entries.contains_key(&id)
    }

    /// Adds a user at the back of its bucket. A ticket id already present is replaced.
    pub fn insert(&mut self, entry: Waiting<T>) {
        self.put(entry, false);
    }

    /// Puts back, at the front of its bucket, a candidate that `take_partner` returned but
    /// that could not be paired after all (the newcomer turned out stale), so it keeps its
    /// place as the longest waiting.
    pub fn restore(&mut self, entry: Waiting<T>) {
        self.put(entry, true);
    }

    fn put(&mut self, entry: Waiting<T>, front: bool) {
        let id = entry.ticket.id;
        let bucket = entry.ticket.bucket;
        if self.entries.insert(id, entry).is_some() {
            // Replaced in place: its queue slot is still there.
            return;
        }
        let queue = match self.queues.entry(bucket) {
            Entry::Occupied(found) => {
                let queue = found.into_mut();
                if queue.live == 0 {
                    self.empty_queues -= 1;
                }
                queue
            }
            Entry::Vacant(slot) => slot.insert(Queue {
                order: VecDeque::new(),
                live: 0,
            }),
        };
        if front {
            queue.order.push_front(id);
        } else {
            queue.order.push_back(id);
        }
        queue.live += 1;
        self.check_invariant();
    }

    /// Removes a user who stopped waiting; `None` if it was not here.
    pub fn remove(&mut self, id: TicketId) -> Option<Waiting<T>> {
        let entry = self.entries.remove(&id)?;
        self.forget_slot(entry.ticket.bucket, id);
        self.check_invariant();
        Some(entry)
    }

    /// Takes the best partner for `ticket` out of the pool, if anyone compatible waits: the
    /// longest-waiting user of the same bucket whom the newcomer has not just met; a recent
    /// partner only when no one else is within reach. The newcomer itself is not added.
    pub fn take_partner(&mut self, ticket: &TicketInfo) -> Option<Waiting<T>> {
        let queue = self.queues.get_mut(&ticket.bucket)?;
        let mut chosen = None;
        let mut fallback = None;
        let mut seen = 0;
        let mut position = 0;
        while position < queue.order.len() && seen < SCAN_LIMIT {
            let id = queue.order[position];
            let Some(entry) = self.entries.get(&id) else {
                if position == 0 {
                    queue.order.pop_front();
                } else {
                    position += 1;
                }
                continue;
            };
            seen += 1;
            if entry.ticket.session == ticket.session {
                // The same user's older ticket: never pair anyone with themselves.
            } else if ticket.recently_met(&entry.ticket) {
                fallback.get_or_insert(id);
            } else {
                chosen = Some(id);
                break;
            }
            position += 1;
        }
        let id = chosen.or(fallback)?;
        self.remove(id)
    }

    /// Drops `id`'s queue slot: popped when at the front, else left as a tombstone and
    /// compacted away once tombstones outnumber the living.
    fn forget_slot(&mut self, bucket: BucketKey, id: TicketId) {
        let Some(queue) = self.queues.get_mut(&bucket) else {
            return;
        };
        queue.live -= 1;
        if queue.order.front() == Some(&id) {
            queue.order.pop_front();
        }
        if queue.live == 0 {
            queue.order.clear();
            self.empty_queues += 1;
            if self.empty_queues > 1024 && self.empty_queues * 2 > self.queues.len() {
                self.queues.retain(|_, q| q.live > 0);
                self.empty_queues = 0;
            }
        } else if queue.order.len() > 2 * queue.live + 32 {
            let entries = &self.entries;
            queue.order.retain(|id| entries.contains_key(id));
        }
    }

    /// Debug builds check the index and the queues agree after every change.
    fn check_invariant(&self) {
        #[cfg(debug_assertions)]
        if self.entries.len() < 4096 {
            let mut counted = 0;
            let empty = self.queues.values().filter(|q| q.live == 0).count();
            assert_eq!(empty, self.empty_queues, "empty queue count");
            for (bucket, queue) in &self.queues {
                let live: Vec<_> = queue
                    .order
                    .iter()
                    .filter(|id| self.entries.contains_key(id))
                    .collect();
                assert_eq!(live.len(), queue.live, "live count of {bucket:?}");
                assert!(
                    queue.live > 0 || queue.order.is_empty(),
                    "tombstones in {bucket:?}"
                );
                for id in live {
                    assert_eq!(
                        self.entries[id].ticket.bucket, *bucket,
                        "entry in wrong queue"
                    );
                }
                counted += queue.live;
            }
            assert_eq!(counted, self.entries.len(), "entries missing from queues");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ids::SessionId;
    use crate::matching::{Lang, Mode, RecentPartners, RecentSet};

    fn ticket(n: u64, mode: Mode, now: Instant) -> Waiting<()> {
        Waiting {
            ticket: TicketInfo {
                id: TicketId(n),
                session: SessionId(n),
                bucket: BucketKey {
                    mode,
                    lang: Lang::EN,
                },
                recent: RecentSet::default(),
                since: now,
            },
            payload: (),
        }
    }

    #[test]
    fn the_longest_waiting_compatible_user_is_taken() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(ticket(1, Mode::Text, now));
        pool.insert(ticket(2, Mode::Video, now));
        pool.insert(ticket(3, Mode::Text, now));
        let newcomer = ticket(4, Mode::Text, now).ticket;
        assert_eq!(pool.take_partner(&newcomer).unwrap().ticket.id, TicketId(1));
        assert_eq!(pool.take_partner(&newcomer).unwrap().ticket.id, TicketId(3));
        assert!(
            pool.take_partner(&newcomer).is_none(),
            "video never meets text"
        );
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn removed_users_are_never_taken() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        for n in 1..=3 {
            pool.insert(ticket(n, Mode::Text, now));
        }
        assert!(pool.remove(TicketId(1)).is_some());
        assert!(pool.remove(TicketId(2)).is_some());
        assert!(pool.remove(TicketId(2)).is_none());
        let newcomer = ticket(9, Mode::Text, now).ticket;
        assert_eq!(pool.take_partner(&newcomer).unwrap().ticket.id, TicketId(3));
        assert!(pool.take_partner(&newcomer).is_none());
        assert!(pool.is_empty());
    }

    #[test]
    fn a_recent_partner_is_passed_over_while_someone_else_waits() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(ticket(1, Mode::Text, now));
        pool.insert(ticket(2, Mode::Text, now));
        let mut newcomer = ticket(3, Mode::Text, now).ticket;
        let mut recent = RecentPartners::default();
        recent.push(SessionId(1), now);
        newcomer.recent = recent.live(now);
        assert_eq!(pool.take_partner(&newcomer).unwrap().ticket.id, TicketId(2));
        // Only the recent partner is left: better them than nobody.
        assert_eq!(pool.take_partner(&newcomer).unwrap().ticket.id, TicketId(1));
    }

    #[test]
    fn recent_partners_are_forgotten_after_a_while() {
        let now = Instant::now();
        let mut recent = RecentPartners::default();
        recent.push(SessionId(1), now);
        assert!(recent.live(now).contains(SessionId(1)));
        assert!(!recent
            .live(now + crate::matching::ticket::RECENT_FOR + Duration::from_secs(1))
            .contains(SessionId(1)));
    }

    #[test]
    fn nobody_is_paired_with_their_own_older_ticket() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(ticket(1, Mode::Text, now));
        let mut again = ticket(2, Mode::Text, now).ticket;
        again.session = SessionId(1);
        assert!(pool.take_partner(&again).is_none());
    }

    #[test]
    fn tombstones_are_compacted() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(ticket(0, Mode::Text, now));
        for n in 1..1000 {
            pool.insert(ticket(n, Mode::Text, now));
            pool.remove(TicketId(n));
        }
        let queue = &pool.queues[&ticket(0, Mode::Text, now).ticket.bucket];
        assert!(
            queue.order.len() <= 2 * queue.live + 33,
            "{}",
            queue.order.len()
        );
    }
}
