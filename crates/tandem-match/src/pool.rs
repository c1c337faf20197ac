//! The waiting pool: per bucket, a random queue and a queue per interest tag, each in
//! arrival order, in lanes: users who accept everyone, users with narrow filters, and
//! users in college mode.
//!
//! A user waits in the queue of each of its interests, and in the bucket's random queue once
//! a partner without shared interests is acceptable (at once without interests, after the
//! user's interest wait otherwise, never with `interests_only`). Finding a partner looks at
//! the front of those queues only (the users who waited longest), a bounded number of live
//! entries each, so joining, matching and leaving cost O(the user's interests), whatever the
//! pool's size. Each queue keeps users whose own filters accept everyone (the open lane)
//! apart from those with a country or gender filter (the narrow lane) and those in college
//! mode, who meet only each other (the college lane): a narrow user turns most newcomers
//! away, and, in one lane, those who wait longest would gather at its front and hide
//! everyone behind them from every search; a college user is turned away by everyone else.
//! A search looks at the front of the lanes of its own kind: open and narrow, or college.
//! It passes over a narrow lane when a one-word set of the countries its users accept
//! proves that all the search would look at there turn the newcomer away: the first few
//! users (`NARROW_SCAN_LIMIT`) for a newcomer who accepts everyone, who stay at the front
//! of a busy tag's lane because few newcomers suit them; the whole lane for a newcomer with
//! a filter of its own. Which partner a search finds is the same as without the sets.
//! Removal is O(the user's interests) too: the entry leaves the index at once
//! when withdrawn by id, in a later batch when taken by a search (see `index.rs`), and its
//! queue slots become tombstones, dropped when they reach the front or when tombstones
//! outnumber the living in that queue.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Instant;

use tandem_ids::TicketId;

use super::country::CountrySet;
use super::deadlines::Deadlines;
use super::hash::FastBuild;
use super::index::TicketIndex;
use super::policy::{Rank, Verdict};
use super::prefetch::prefetch_all;
use super::ring::{Ring, Rings};
use super::slab::{Handle, Slab, Summary};
use super::tags::{TagId, TagIds, TagTable};
use super::{BucketKey, Country, TicketInfo, Waiting};

/// How many live entries a partner search looks at in a queue's open lane (and a college
/// user's in its college lane), at most.
pub const SCAN_LIMIT: usize = 16;

/// How many live entries a search by a newcomer who accepts everyone looks at in a queue's
/// narrow lane, at most: each costs a look, and most turn it away. A newcomer with a narrow
/// filter of its own looks at `SCAN_LIMIT` there, as in the open lane, so that two users
/// with narrow filters who suit each other are not hidden from each other by a few who suit
/// neither.
pub const NARROW_SCAN_LIMIT: usize = 4;

/// How many compatible candidates per lane of an interest queue are compared for the
/// largest overlap. With at most 20 interests that bounds a search at 160 overlap
/// computations of two sorted lists of at most 20 tags.
pub const CANDIDATES_PER_TAG: usize = 4;

/// How many of a lane's first handles its header repeats, and how far ahead of a scan
/// summaries are prefetched: enough for the candidates a scan usually looks at, without
/// fetching lines it will not read.
const FRONT: usize = 4;

/// One lane of a queue.
#[derive(Debug, Default)]
struct Lane {
    /// Handles in arrival order; stale ones are tombstones.
    order: Ring,
    /// How many handles in `order` are live, to know when to compact.
    live: u32,
    /// How many handles `front` repeats.
    front_len: u8,
    /// The first handles of `order`, repeated beside it: a search fetches their summaries
    /// as soon as it has the queue's header, instead of after the lane's buffer, one miss
    /// to memory later.
    front: [Handle; FRONT],
}

/// Which lane of its queues a user waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Its own filters accept everyone (`TicketInfo::accepts_everyone`).
    Open,
    /// A country or gender filter of its own.
    Narrow,
    /// College mode: meets only college users.
    College,
}

impl Kind {
    fn of(ticket: &TicketInfo) -> Self {
        if ticket.college.is_some() {
            Self::College
        } else if ticket.accepts_everyone() {
            Self::Open
        } else {
            Self::Narrow
        }
    }

    /// The lanes a newcomer of this kind searches, each with how many live entries it
    /// looks at: the college lane for a college newcomer, else the open lane and the narrow
    /// one (in which a newcomer who accepts everyone looks at fewer).
    fn searched(self) -> [Option<(Kind, usize)>; 2] {
        match self {
            Self::College => [Some((Self::College, SCAN_LIMIT)), None],
            Self::Open => [
                Some((Self::Open, SCAN_LIMIT)),
                Some((Self::Narrow, NARROW_SCAN_LIMIT)),
            ],
            Self::Narrow => [
                Some((Self::Open, SCAN_LIMIT)),
                Some((Self::Narrow, SCAN_LIMIT)),
            ],
        }
    }
}

/// One queue, in lanes (see `Kind`), each in arrival order.
#[derive(Debug, Default)]
struct Queue {
    open: Lane,
    narrow: Lane,
    /// Apart from the header, which every search reads: college users are few.
    college: Option<Box<Lane>>,
    /// The countries the users of the narrow lane accept, or more (never fewer): a newcomer
    /// with a filter of its own, from a country outside it, would be turned away by all of
    /// them, so its search passes over the lane without reading it. Most lanes of rare tags
    /// hold a few users, who accept a few countries each. Grows as users join; empty when
    /// the lane empties, and rebuilt from the live users' summaries when it is compacted
    /// (every country for a filter longer than a summary holds).
    narrow_accepts: CountrySet,
    /// The same for the first `NARROW_SCAN_LIMIT` live users of the narrow lane, all that a
    /// newcomer who accepts everyone looks at there: the users at the front of a busy tag's
    /// narrow lane, whom few newcomers suit, stay there, and every newcomer from a country
    /// they turn away passes over them. Grows as users join within those first few; every
    /// country after a departure from the lane (the next user in line may move up); rebuilt
    /// from their summaries after such a newcomer's scan that saw them all.
    narrow_front_accepts: CountrySet,
    /// Whether this (random) queue is counted in `empty_queues` (emptied, kept for reuse).
    counted_empty: bool,
}

/// A waiting user, whether it sits in the random queue, in which lane, and its interests as
/// this pool's tag ids (what partner searches compare).
#[derive(Debug)]
struct Slot<T> {
    waiting: Waiting<T>,
    in_random: bool,
    kind: Kind,
    tags: TagIds,
}

impl Queue {
    /// The lane of `kind`, made if it is the college lane and there is none yet.
    fn lane(&mut self, kind: Kind) -> &mut Lane {
        match kind {
            Kind::Open => &mut self.open,
            Kind::Narrow => &mut self.narrow,
            Kind::College => self.college.get_or_insert_with(Box::default),
        }
    }

    /// The lane of `kind`, if there is one (a search makes none).
    fn lane_mut(&mut self, kind: Kind) -> Option<&mut Lane> {
        match kind {
            Kind::Open => Some(&mut self.open),
            Kind::Narrow => Some(&mut self.narrow),
            Kind::College => self.college.as_deref_mut(),
        }
    }

    /// The same, to read.
    fn lane_ref(&self, kind: Kind) -> Option<&Lane> {
        match kind {
            Kind::Open => Some(&self.open),
            Kind::Narrow => Some(&self.narrow),
            Kind::College => self.college.as_deref(),
        }
    }

    /// Adds `handle` to the lane of `kind`; `accepts` are the countries the user accepts.
    fn push(
        &mut self,
        rings: &mut Rings,
        handle: Handle,
        kind: Kind,
        front: bool,
        accepts: CountrySet,
    ) {
        if kind == Kind::Narrow {
            self.narrow_accepts |= accepts;
            if front || (self.narrow.live as usize) < NARROW_SCAN_LIMIT {
                self.narrow_front_accepts |= accepts;
            }
        }
        self.lane(kind).push(rings, handle, front);
    }

    /// Whether a newcomer of kind `newcomer` from `country` may find anyone among what it
    /// looks at in the lane of `lane`: `false` when all of them would turn it away.
    fn shows(&self, lane: Kind, newcomer: Kind, country: Country) -> bool {
        match (lane, newcomer) {
            (Kind::Narrow, Kind::Open) => self.narrow_front_accepts.may_hold(country),
            (Kind::Narrow, _) => self.narrow_accepts.may_hold(country),
            _ => true,
        }
    }

    /// The lanes a newcomer of `kind` from `country` searches, with their limits
    /// (`Kind::searched`), but for those where nobody it looks at accepts its country.
    fn searched(&self, kind: Kind, country: Country) -> impl Iterator<Item = (&Lane, usize)> {
        let lanes = kind.searched().into_iter().flatten();
        lanes
            .filter(move |&(lane, _)| self.shows(lane, kind, country))
            .filter_map(|(lane, limit)| Some((self.lane_ref(lane)?, limit)))
    }

    /// Scans the lane of `lane` for a newcomer of kind `newcomer` from `country`, up to
    /// `limit` live entries (see `scan`), unless all it would look at turn it away. A scan
    /// of the narrow lane for a newcomer who accepts everyone that saw all such newcomers
    /// look at rebuilds `narrow_front_accepts` from what it saw.
    fn scan<E: super::slab::Entry>(
        &mut self,
        (lane, limit): (Kind, usize),
        newcomer: Kind,
        country: Country,
        (slab, rings): (&Slab<E>, &mut Rings),
        kept: &mut Vec<Handle>,
        mut visit: impl FnMut(Handle, &Summary) -> bool,
    ) {
        if !self.shows(lane, newcomer, country) {
            return;
        }
        let Some(order) = self.lane_mut(lane) else {
            return;
        };
        let front = lane == Kind::Narrow && newcomer == Kind::Open;
        let mut seen = CountrySet::default();
        scan(order, (slab, rings), kept, limit, |handle, summary| {
            if front {
                seen |= summary.accepted_countries();
            }
            visit(handle, summary)
        });
        let live = order.live as usize;
        if front && kept.len() >= live.min(NARROW_SCAN_LIMIT) {
            self.narrow_front_accepts = seen;
        }
    }

    /// Asks the CPU to start loading what a search of this queue by a newcomer reads
    /// first: the lanes' first handles, and the summaries of the candidates the header
    /// names.
    fn prefetch_fronts<E: super::slab::Entry>(
        &self,
        (slab, rings): (&Slab<E>, &Rings),
        kind: Kind,
        country: Country,
    ) {
        for (lane, limit) in self.searched(kind, country) {
            let (front, _) = lane.order.as_slices(rings);
            prefetch_all(&front[..front.len().min(limit.min(FRONT))]);
            // At most `limit`: `scan` fetches the summaries after these itself, as it goes.
            for &handle in lane.front().iter().take(limit) {
                slab.prefetch(handle);
            }
        }
    }

    /// Gives the lanes' blocks back, before the queue is dropped.
    fn release(&mut self, rings: &mut Rings) {
        self.open.order.release(rings);
        self.narrow.order.release(rings);
        if let Some(lane) = &mut self.college {
            lane.order.release(rings);
        }
    }

    fn is_empty(&self) -> bool {
        self.open.live == 0
            && self.narrow.live == 0
            && self.college.as_ref().is_none_or(|lane| lane.live == 0)
    }

    /// Drops `handle`'s place in its lane; says whether the queue is now empty.
    fn forget<E: super::slab::Entry>(
        &mut self,
        handle: Handle,
        kind: Kind,
        (slab, rings): (&Slab<E>, &mut Rings),
    ) -> bool {
        let lane = self.lane(kind);
        let compacted = lane.forget(handle, (slab, rings));
        let live = lane.live;
        match kind {
            Kind::College if live == 0 => {
                if let Some(mut lane) = self.college.take() {
                    lane.order.release(rings);
                }
            }
            Kind::Narrow if live == 0 => {
                self.narrow_accepts = CountrySet::default();
                self.narrow_front_accepts = CountrySet::default();
            }
            Kind::Narrow => {
                // Whoever comes next in line may have moved up among the first few.
                self.narrow_front_accepts = CountrySet::ALL;
                if compacted {
                    self.narrow_accepts = (self.narrow.order.iter(rings))
                        .filter_map(|&handle| slab.summary(handle))
                        .fold(CountrySet::default(), |set, summary| {
                            set | summary.accepted_countries()
                        });
                }
            }
            _ => {}
        }
        self.is_empty()
    }
}

impl Lane {
    fn push(&mut self, rings: &mut Rings, handle: Handle, front: bool) {
        if front {
            self.order.push_front(rings, handle);
        } else {
            self.order.push_back(rings, handle);
        }
        self.live += 1;
        if front || self.order.len() <= FRONT {
            self.repeat_front(rings);
        }
    }

    /// The first handles, as the header repeats them.
    fn front(&self) -> &[Handle] {
        &self.front[..self.front_len as usize]
    }

    /// Repeats the first handles of `order` in the header, after a change at the front.
    fn repeat_front(&mut self, rings: &Rings) {
        let mut len = 0;
        for (slot, &handle) in self.front.iter_mut().zip(self.order.iter(rings)) {
            *slot = handle;
            len += 1;
        }
        self.front_len = len;
    }

    /// Drops `handle`'s place in the lane: popped when at the front, else left as a
    /// tombstone and compacted away once tombstones outnumber the living; says whether it
    /// compacted.
    fn forget<E: super::slab::Entry>(
        &mut self,
        handle: Handle,
        (slab, rings): (&Slab<E>, &mut Rings),
    ) -> bool {
        self.live -= 1;
        let mut compacted = false;
        let popped = self.order.front(rings) == Some(handle);
        if popped {
            self.order.drop_front(1);
        }
        if self.live == 0 {
            self.order.clear(rings);
        } else if self.order.len() > 2 * self.live as usize + 32 {
            self.order.retain(rings, |h| slab.is_live(h));
            compacted = true;
        }
        if popped || compacted || self.live == 0 {
            self.repeat_front(rings);
        }
        compacted
    }
}

impl<T> Slot<T> {
    /// Whether the entry has a deadline in the pool's `fallbacks`, or taken from there into
    /// `due` (waits for a shared interest, and will accept a random partner later).
    fn in_wait(&self) -> bool {
        !self.in_random && self.waiting.ticket.random_from.is_some()
    }
}

impl<T> super::slab::Entry for Slot<T> {
    fn ticket(&self) -> &TicketInfo {
        &self.waiting.ticket
    }
    fn tag_ids(&self) -> &TagIds {
        &self.tags
    }
}

/// All waiting users of one shard. `T` is the driver's payload per entry.
#[derive(Debug)]
pub struct WaitingPool<T> {
    slab: Slab<Slot<T>>,
    /// Ticket id to its place, for withdrawals by id.
    index: TicketIndex,
    /// The buffers of every queue's lanes.
    rings: Rings,
    /// The random queue of each bucket.
    random: HashMap<BucketKey, Queue, FastBuild>,
    /// The interest queues: each (bucket, tag) in use as a small integer, and its queue at
    /// that index. Tags are chosen by clients, so their text is hashed only there, with a
    /// randomly keyed hasher (SipHash): with an unkeyed one, a client could send thousands
    /// of tags with the same hash and make every lookup in this shard walk them. Entries
    /// keep their ids, so leaving finds its queues without hashing anything.
    tags: TagTable<Queue>,
    /// Random queues with no live entry, kept for reuse: a busy bucket empties and refills
    /// thousands of times a second, and re-creating its queue each time would cost more
    /// than the pairing in it. Swept once they outnumber the others.
    empty_queues: usize,
    /// Users waiting for their interest wait to end, by the time it ends. Those who left
    /// meanwhile are skipped when they come up, and swept out once they outnumber the
    /// others.
    fallbacks: Deadlines<Handle>,
    /// Waiting users with a deadline in `fallbacks`.
    in_wait: usize,
    /// Entries whose interest wait has ended, taken from `fallbacks` and not yet handed out.
    due: Vec<Handle>,
    /// Reused by `scan` to rewrite a queue's front without the tombstones it walked over.
    scratch: Vec<Handle>,
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
            slab: Slab::new(),
            index: TicketIndex::default(),
            rings: Rings::default(),
            random: HashMap::default(),
            tags: TagTable::default(),
            empty_queues: 0,
            fallbacks: Deadlines::default(),
            in_wait: 0,
            due: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Waiting users.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// Whether this ticket waits here.
    pub fn contains(&self, id: TicketId) -> bool {
        self.index
            .get(id)
            .is_some_and(|handle| self.slab.is_live(handle))
    }

    /// The tickets waiting here (for checks and tests; not for the hot path).
    pub fn tickets(&self) -> impl Iterator<Item = &TicketInfo> {
        self.slab.iter().map(|slot| &slot.waiting.ticket)
    }

    /// The ids of the entries `pick` selects (a scan of the pool: for rare events such
    /// as a node's death, never per pairing).
    pub fn ids_where(&self, pick: impl Fn(&Waiting<T>) -> bool) -> Vec<TicketId> {
        self.slab
            .iter()
            .filter(|slot| pick(&slot.waiting))
            .map(|slot| slot.waiting.ticket.id)
            .collect()
    }

    /// Adds a user at the back of its queues. A ticket id already present is replaced.
    pub fn insert(&mut self, entry: Waiting<T>, now: Instant) {
        self.put(entry, false, now);
    }

    /// Puts back, at the front of its queues, a candidate that `take_partner` returned but
    /// that could not be paired after all (the newcomer turned out stale), so it keeps its
    /// place as the longest waiting.
    pub fn restore(&mut self, entry: Waiting<T>, now: Instant) {
        self.put(entry, true, now);
    }

    fn put(&mut self, entry: Waiting<T>, front: bool, now: Instant) {
        let id = entry.ticket.id;
        let bucket = entry.ticket.bucket;
        let in_random = entry.ticket.random_ok(now);
        let kind = Kind::of(&entry.ticket);
        let accepts = match kind {
            Kind::Narrow => entry.ticket.countries.accepted(),
            _ => CountrySet::ALL,
        };
        let fallback = entry.ticket.random_from.filter(|_| !in_random);
        let mut ids = [0; super::Interests::MAX_TAGS];
        let interests = entry.ticket.interests.list();
        for (id, interest) in ids.iter_mut().zip(interests) {
            *id = self.tags.acquire(bucket, interest.print);
        }
        let tags = TagIds::new(&mut ids[..interests.len()]);
        // Sorted and without duplicates in place: the queues to join.
        let queues = &ids[..tags.as_slice().len()];
        let handle = self.slab.insert(Slot {
            waiting: entry,
            in_random,
            kind,
            tags,
        });
        if in_random {
            let queue = match self.random.entry(bucket) {
                Entry::Occupied(found) => found.into_mut(),
                Entry::Vacant(place) => place.insert(Queue::default()),
            };
            if queue.counted_empty {
                queue.counted_empty = false;
                self.empty_queues -= 1;
            }
            queue.push(&mut self.rings, handle, kind, front, accepts);
        } else if let Some(from) = fallback {
            self.fallbacks.add(from, handle);
            self.in_wait += 1;
        }
        for &tag in queues.iter() {
            (self.tags.queue(tag)).push(&mut self.rings, handle, kind, front, accepts);
        }
        if let Some(old) = self.index.insert(id, handle) {
            // Replaced (rare; ids are unique per wait). Only now, with the new stay in its
            // queues, may the old one leave them: a queue it empties would free its tag's
            // id, which the new stay may hold too.
            if let Some(slot) = self.slab.remove(old) {
                self.forget(&slot, old);
            }
        }
        self.check_invariant();
    }

    /// Removes a user who stopped waiting; `None` if it was not here.
    pub fn remove(&mut self, id: TicketId) -> Option<Waiting<T>> {
        // A stale handle (its entry was taken by a partner search) is not here.
        let handle = self.index.remove(id)?;
        let slot = self.slab.remove(handle)?;
        self.forget(&slot, handle);
        self.check_invariant();
        Some(slot.waiting)
    }

    /// Removes the entry at `handle` (found live by a scan).
    fn remove_at(&mut self, handle: Handle) -> Option<Waiting<T>> {
        let slot = self.slab.remove(handle)?;
        // The caller reads and drops the partner's interests and filter.
        let ticket = &slot.waiting.ticket;
        prefetch_all(ticket.interests.list());
        prefetch_all(ticket.countries.codes());
        self.index.remove_later(ticket.id, handle);
        self.forget(&slot, handle);
        self.check_invariant();
        Some(slot.waiting)
    }

    /// Takes out the next user whose interest wait ended by `now`, so the caller can place it
    /// again, now open to a random partner.
    pub fn take_due_fallback(&mut self, now: Instant) -> Option<Waiting<T>> {
        if self.due.is_empty() {
            self.fallbacks.take_due(now, &mut self.due);
        }
        while let Some(handle) = self.due.pop() {
            if self.slab.get(handle).is_some_and(Slot::in_wait) {
                return self.remove_at(handle);
            }
        }
        None
    }

    /// Takes the best partner for `ticket` out of the pool, if anyone compatible waits:
    ///
    /// 1. among users sharing an interest, the largest overlap, then the longest waiting;
    /// 2. else, if the newcomer accepts a random partner, the longest-waiting user of the
    ///    random queue;
    /// 3. a recent partner of the newcomer only when neither found anyone else.
    ///
    /// Filters are mutual: a candidate is taken only if each side accepts the other. The
    /// newcomer itself is not added.
    pub fn take_partner(&mut self, ticket: &TicketInfo, now: Instant) -> Option<Waiting<T>> {
        // Tags nobody here holds have no queue and share nothing with anyone.
        let mut mine: [TagId; super::Interests::MAX_TAGS] = [0; super::Interests::MAX_TAGS];
        let mut known = 0;
        for interest in ticket.interests.list() {
            if let Some(id) = self.tags.get(ticket.bucket, interest.print) {
                mine[known] = id;
                known += 1;
            }
        }
        let mine = &mut mine[..known];
        mine.sort_unstable();
        // The queues are scanned one after another, but what they read is fetched together:
        // all headers, then the fronts and first candidates they name.
        let queues = self.tags.addresses();
        for &tag in mine.iter() {
            queues.prefetch(tag);
        }
        let kind = Kind::of(ticket);
        let country = ticket.country;
        for &tag in mine.iter() {
            self.tags
                .queue_ref(tag)
                .prefetch_fronts((&self.slab, &self.rings), kind, country);
        }

        let Self {
            slab,
            rings,
            random,
            tags,
            scratch,
            ..
        } = self;
        let slab = &*slab;
        let verdict = |handle: Handle, summary: &Summary| {
            summary.verdict(ticket, || {
                &slab
                    .get(handle)
                    .expect("scans visit live entries")
                    .waiting
                    .ticket
            })
        };
        let mut best: Option<(Handle, Rank<i64>)> = None;
        let mut recent: Option<Handle> = None;
        for &tag in mine.iter() {
            for searched in kind.searched().into_iter().flatten() {
                let mut compared = 0;
                let queue = tags.queue(tag);
                queue.scan(
                    searched,
                    kind,
                    country,
                    (slab, rings),
                    scratch,
                    |handle, summary| {
                        match verdict(handle, summary) {
                            Verdict::No => return true,
                            Verdict::Recent => {
                                recent.get_or_insert(handle);
                                return true;
                            }
                            Verdict::Yes => {}
                        }
                        let shared = match summary.tags() {
                            Some(theirs) => TagIds::overlap(mine, theirs),
                            None => {
                                let slot = slab.get(handle).expect("scans visit live entries");
                                TagIds::overlap(mine, slot.tags.as_slice())
                            }
                        };
                        let rank = Rank {
                            shared,
                            since: summary.since,
                        };
                        if best.is_none_or(|(_, best)| rank.beats(&best)) {
                            // Likely taken: start loading what taking it reads.
                            slab.prefetch_entry(handle);
                            for &tag in summary.tags().unwrap_or_default() {
                                queues.prefetch(tag);
                            }
                            best = Some((handle, rank));
                        }
                        compared += 1;
                        compared < CANDIDATES_PER_TAG
                    },
                );
            }
        }
        let mut chosen = best.map(|(handle, _)| handle);
        if chosen.is_none() && ticket.random_ok(now) {
            if let Some(queue) = random.get_mut(&ticket.bucket) {
                queue.prefetch_fronts((slab, rings), kind, country);
                // The best (the longest waiting) of the first compatible user of each lane.
                let mut first: Option<(Handle, Rank<i64>)> = None;
                for searched in kind.searched().into_iter().flatten() {
                    queue.scan(
                        searched,
                        kind,
                        country,
                        (slab, rings),
                        scratch,
                        |handle, summary| match verdict(handle, summary) {
                            Verdict::No => true,
                            Verdict::Recent => {
                                recent.get_or_insert(handle);
                                true
                            }
                            Verdict::Yes => {
                                let rank = Rank {
                                    shared: 0,
                                    since: summary.since,
                                };
                                if first.is_none_or(|(_, first)| rank.beats(&first)) {
                                    first = Some((handle, rank));
                                }
                                false
                            }
                        },
                    );
                }
                chosen = first.map(|(handle, _)| handle);
            }
        }
        let handle = chosen.or(recent)?;
        self.remove_at(handle)
    }

    /// Drops a removed entry's slots from its queues, and its deadline once those of users
    /// who left outnumber the others.
    fn forget(&mut self, slot: &Slot<T>, handle: Handle) {
        let ticket = &slot.waiting.ticket;
        if slot.in_wait() {
            self.in_wait -= 1;
            if self.fallbacks.len() > 2 * self.in_wait + 1024 {
                let slab = &self.slab;
                self.fallbacks
                    .retain(|handle| slab.get(handle).is_some_and(Slot::in_wait));
            }
        }
        if slot.in_random {
            if let Some(queue) = self.random.get_mut(&ticket.bucket) {
                if queue.forget(handle, slot.kind, (&self.slab, &mut self.rings)) {
                    queue.counted_empty = true;
                    self.empty_queues += 1;
                    if self.empty_queues > 1024 && self.empty_queues * 2 > self.random.len() {
                        let rings = &mut self.rings;
                        self.random.retain(|_, queue| {
                            let keep = !queue.is_empty();
                            if !keep {
                                queue.release(rings);
                            }
                            keep
                        });
                        self.empty_queues = 0;
                    }
                }
            }
        }
        for &tag in slot.tags.as_slice() {
            if (self.tags.queue(tag)).forget(handle, slot.kind, (&self.slab, &mut self.rings)) {
                self.tags.release(tag);
            }
        }
    }

    /// Debug builds check the index, the slab and the queues agree after every change.
    fn check_invariant(&self) {
        #[cfg(debug_assertions)]
        if self.slab.len() < 4096 {
            assert_eq!(self.slab.iter().count(), self.slab.len(), "live count");
            let mut indexed = 0;
            for (id, handle) in self.index.iter() {
                if let Some(slot) = self.slab.get(handle) {
                    assert_eq!(slot.waiting.ticket.id, id, "index points at its ticket");
                    indexed += 1;
                } else {
                    assert!(
                        self.index.is_deferred(id, handle),
                        "a stale id is one whose removal is deferred"
                    );
                }
            }
            assert_eq!(indexed, self.slab.len(), "every entry is indexed");
            let in_use: std::collections::HashSet<TagId> = self
                .slab
                .iter()
                .flat_map(|slot| slot.tags.as_slice().iter().copied())
                .collect();
            assert_eq!(
                in_use.len(),
                self.tags.len(),
                "the tag table holds the tags in use"
            );
            assert_eq!(
                self.slab.iter().filter(|slot| slot.in_wait()).count(),
                self.in_wait,
                "users in their interest wait"
            );
            for slot in self.slab.iter() {
                let ticket = &slot.waiting.ticket;
                let mut prints: Vec<_> = slot
                    .tags
                    .as_slice()
                    .iter()
                    .map(|&id| self.tags.key(id).expect("an entry's tag ids are in use"))
                    .collect();
                let mut expected: Vec<_> = ticket
                    .interests
                    .list()
                    .iter()
                    .map(|interest| (ticket.bucket, interest.print))
                    .collect();
                prints.sort_unstable();
                expected.sort_unstable();
                assert_eq!(
                    prints, expected,
                    "an entry's tag ids name its bucket and tags"
                );
            }
            let lanes = (self.random.values().chain(self.tags.all_queues()))
                .flat_map(|q| [Some(&q.open), Some(&q.narrow), q.college.as_deref()])
                .flatten();
            assert!(
                self.rings.accounts_for(lanes.map(|lane| &lane.order)),
                "every lane's block is its own, and no block is lost"
            );
            let queues = || self.random.values().chain(self.tags.queues());
            let empty = self.random.values().filter(|q| q.counted_empty).count();
            assert_eq!(empty, self.empty_queues, "empty queue count");
            for queue in queues() {
                for kind in [Kind::Open, Kind::Narrow, Kind::College] {
                    let Some(lane) = queue.lane_ref(kind) else {
                        continue;
                    };
                    let live: Vec<&Slot<T>> = lane
                        .order
                        .iter(&self.rings)
                        .filter_map(|h| self.slab.get(*h))
                        .collect();
                    assert_eq!(live.len(), lane.live as usize, "live count");
                    assert!(
                        live.iter().all(|slot| slot.kind == kind),
                        "each user in its lane"
                    );
                    if kind == Kind::Narrow {
                        let accepted = |slot: &&Slot<T>| slot.waiting.ticket.countries.accepted();
                        assert!(
                            live.iter()
                                .all(|slot| queue.narrow_accepts.holds_all(accepted(slot))),
                            "the narrow lane's countries hold every user's"
                        );
                        assert!(
                            (live.iter().take(NARROW_SCAN_LIMIT))
                                .all(|slot| queue.narrow_front_accepts.holds_all(accepted(slot))),
                            "the narrow lane's front countries hold those of its first users"
                        );
                    }
                    assert!(
                        lane.live > 0 || lane.order.is_empty(),
                        "tombstones in an empty lane"
                    );
                    assert!(
                        lane.front()
                            .iter()
                            .eq(lane.order.iter(&self.rings).take(FRONT)),
                        "the header repeats the lane's first handles"
                    );
                }
                assert!(!queue.counted_empty || queue.is_empty(), "empty flag");
            }
            let slots: usize = self
                .slab
                .iter()
                .map(|s| s.waiting.ticket.interests.tags().len() + s.in_random as usize)
                .sum();
            let live: usize = queues()
                .map(|q| {
                    let college = q.college.as_ref().map_or(0, |lane| lane.live);
                    (q.open.live + q.narrow.live + college) as usize
                })
                .sum();
            assert_eq!(slots, live, "every entry sits in exactly its queues");
        }
    }
}

/// Visits up to `limit` live entries of a lane from the front, by their summaries, until
/// `visit` returns `false` (the caller has prefetched the first ones, with
/// `Queue::prefetch_fronts`, together with those of its other queues). The tombstones
/// it walks over are dropped as it goes (the scanned front is rewritten with the live
/// handles only), so each tombstone costs one look, however many scans pass that way: a
/// user paired through one interest leaves tombstones in the middle of its other
/// interests' queues, and skipping them again on every arrival would make each search pay
/// for every pairing since the queue began.
fn scan<E: super::slab::Entry>(
    queue: &mut Lane,
    (slab, rings): (&Slab<E>, &mut Rings),
    kept: &mut Vec<Handle>,
    limit: usize,
    mut visit: impl FnMut(Handle, &Summary) -> bool,
) {
    kept.clear();
    let lookahead = limit.min(FRONT);
    // The lane's handles in order, without the ring's wrap-around arithmetic per read,
    // and the ones `lookahead` further on, whose summaries are fetched meanwhile (the
    // caller fetched the first `lookahead`, from the header's copy).
    let (front, back) = queue.order.as_slices(rings);
    let mut handles = front.iter().chain(back);
    let mut ahead = front.iter().chain(back).skip(lookahead);
    let mut position = 0;
    while kept.len() < limit {
        let Some(&handle) = handles.next() else {
            break;
        };
        position += 1;
        if let Some(&next) = ahead.next() {
            slab.prefetch(next);
        }
        let Some(summary) = slab.summary(handle) else {
            continue;
        };
        kept.push(handle);
        if !visit(handle, summary) {
            break;
        }
    }
    if kept.len() < position {
        queue.order.drop_front(position);
        for handle in kept.iter().rev() {
            queue.order.push_front(rings, *handle);
        }
        queue.repeat_front(rings);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tandem_ids::SessionId;

    use super::*;
    use crate::{Country, CountryFilter, Interests, Lang, Mode, RecentPartners};

    fn bucket(mode: Mode) -> BucketKey {
        BucketKey {
            mode,
            lang: Lang::EN,
        }
    }

    fn ticket(n: u64, mode: Mode, now: Instant) -> Waiting<()> {
        Waiting {
            ticket: TicketInfo::plain(TicketId(n), SessionId(n), bucket(mode), now),
            payload: (),
        }
    }

    fn with_interests(n: u64, tags: &[&str], wait: Option<Duration>, now: Instant) -> Waiting<()> {
        let mut w = ticket(n, Mode::Text, now);
        let raw: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        w.ticket.interests = Interests::parse(&raw).unwrap();
        w.ticket.random_from = wait.map(|wait| now + wait);
        w
    }

    #[test]
    fn the_longest_waiting_compatible_user_is_taken() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(ticket(1, Mode::Text, now), now);
        pool.insert(ticket(2, Mode::Video, now), now);
        pool.insert(ticket(3, Mode::Text, now), now);
        let newcomer = ticket(4, Mode::Text, now).ticket;
        assert_eq!(
            pool.take_partner(&newcomer, now).unwrap().ticket.id,
            TicketId(1)
        );
        assert_eq!(
            pool.take_partner(&newcomer, now).unwrap().ticket.id,
            TicketId(3)
        );
        assert!(
            pool.take_partner(&newcomer, now).is_none(),
            "video never meets text"
        );
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn removed_users_are_never_taken() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        for n in 1..=3 {
            pool.insert(ticket(n, Mode::Text, now), now);
        }
        assert!(pool.remove(TicketId(1)).is_some());
        assert!(pool.remove(TicketId(2)).is_some());
        assert!(pool.remove(TicketId(2)).is_none());
        let newcomer = ticket(9, Mode::Text, now).ticket;
        assert_eq!(
            pool.take_partner(&newcomer, now).unwrap().ticket.id,
            TicketId(3)
        );
        assert!(pool.take_partner(&newcomer, now).is_none());
        assert!(pool.is_empty());
    }

    #[test]
    fn a_recent_partner_is_passed_over_while_someone_else_waits() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(ticket(1, Mode::Text, now), now);
        pool.insert(ticket(2, Mode::Text, now), now);
        let mut newcomer = ticket(3, Mode::Text, now).ticket;
        let mut recent = RecentPartners::default();
        recent.push(SessionId(1), now);
        newcomer.recent = recent.live(now);
        assert_eq!(
            pool.take_partner(&newcomer, now).unwrap().ticket.id,
            TicketId(2)
        );
        // Only the recent partner is left: better them than nobody.
        assert_eq!(
            pool.take_partner(&newcomer, now).unwrap().ticket.id,
            TicketId(1)
        );
    }

    #[test]
    fn recent_partners_are_forgotten_after_a_while() {
        let now = Instant::now();
        let mut recent = RecentPartners::default();
        recent.push(SessionId(1), now);
        assert!(recent.live(now).contains(SessionId(1)));
        let later = now + crate::RECENT_FOR + Duration::from_secs(1);
        assert!(!recent.live(later).contains(SessionId(1)));
    }

    #[test]
    fn nobody_is_paired_with_their_own_older_ticket() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(ticket(1, Mode::Text, now), now);
        let mut again = ticket(2, Mode::Text, now).ticket;
        again.session = SessionId(1);
        assert!(pool.take_partner(&again, now).is_none());
    }

    #[test]
    fn emptied_random_queues_are_swept_and_give_their_buffers_back() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        let lang = |n: u64| {
            let letter = |k: u64| char::from(b'a' + (n / 26u64.pow(k as u32) % 26) as u8);
            Lang::parse(&format!("{}{}{}", letter(0), letter(1), letter(2))).unwrap()
        };
        let in_bucket = |n: u64| {
            let mut waiting = ticket(n, Mode::Text, now);
            waiting.ticket.bucket.lang = lang(n);
            waiting
        };
        for n in 0..1100 {
            pool.insert(in_bucket(n), now);
        }
        // Each removal empties a bucket's queue; past 1024 empty ones they are swept, and
        // the debug invariant checks after each change that no lane buffer was lost.
        for n in 0..1100 {
            pool.remove(TicketId(n));
        }
        assert!(pool.random.len() < 1100, "swept: {}", pool.random.len());
        pool.insert(in_bucket(5000), now);
        let newcomer = in_bucket(5000 + 26 * 26 * 26).ticket; // the same language
        assert_eq!(
            pool.take_partner(&newcomer, now).map(|w| w.ticket.id),
            Some(TicketId(5000))
        );
    }

    #[test]
    fn tombstones_are_compacted() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(ticket(0, Mode::Text, now), now);
        for n in 1..1000 {
            pool.insert(ticket(n, Mode::Text, now), now);
            pool.remove(TicketId(n));
        }
        let lane = &pool.random[&bucket(Mode::Text)].open;
        assert!(
            lane.order.len() <= 2 * lane.live as usize + 33,
            "{}",
            lane.order.len()
        );
    }

    #[test]
    fn a_shared_interest_beats_waiting_longer_and_a_larger_overlap_wins() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        let wait = Some(Duration::from_secs(5));
        pool.insert(ticket(1, Mode::Text, now), now);
        pool.insert(with_interests(2, &["music"], wait, now), now);
        pool.insert(with_interests(3, &["music", "chess"], wait, now), now);
        let newcomer = with_interests(4, &["chess", "music", "art"], wait, now).ticket;
        assert_eq!(
            pool.take_partner(&newcomer, now).unwrap().ticket.id,
            TicketId(3)
        );
        assert_eq!(
            pool.take_partner(&newcomer, now).unwrap().ticket.id,
            TicketId(2)
        );
        // Only a user without shared interests is left; the newcomer is still in its wait.
        assert!(pool.take_partner(&newcomer, now).is_none());
    }

    #[test]
    fn users_with_interests_fall_back_to_random_at_their_time_and_not_before() {
        let now = Instant::now();
        let wait = Duration::from_secs(5);
        let mut pool = WaitingPool::new();
        pool.insert(with_interests(1, &["music"], Some(wait), now), now);
        let plain = ticket(2, Mode::Text, now).ticket;
        assert!(
            pool.take_partner(&plain, now).is_none(),
            "still in its interest wait"
        );
        let almost = now + wait - Duration::from_millis(1);
        assert!(pool.take_due_fallback(almost).is_none());
        let due = pool.take_due_fallback(now + wait).expect("due at its time");
        assert_eq!(due.ticket.id, TicketId(1));
        pool.insert(due, now + wait);
        assert_eq!(
            pool.take_partner(&plain, now + wait).unwrap().ticket.id,
            TicketId(1)
        );
    }

    #[test]
    fn deadlines_of_users_who_left_are_swept_and_the_others_still_fall_back() {
        let now = Instant::now();
        let wait = Duration::from_secs(5);
        let mut pool = WaitingPool::new();
        pool.insert(with_interests(0, &["music"], Some(wait), now), now);
        for n in 1..10_000 {
            pool.insert(with_interests(n, &["chess"], Some(wait), now), now);
            pool.remove(TicketId(n));
        }
        assert!(
            pool.fallbacks.len() <= 2 * pool.in_wait + 1025,
            "{} deadlines for {} users in their wait",
            pool.fallbacks.len(),
            pool.in_wait
        );
        let due = pool
            .take_due_fallback(now + wait)
            .expect("the one left is due");
        assert_eq!(due.ticket.id, TicketId(0));
        assert!(pool.take_due_fallback(now + wait).is_none());
    }

    #[test]
    fn a_ticket_put_again_replaces_its_old_stay_and_keeps_its_tags() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(with_interests(1, &["music", "chess"], None, now), now);
        pool.insert(with_interests(1, &["music"], None, now), now);
        assert_eq!(pool.len(), 1);
        let newcomer = with_interests(2, &["music"], None, now).ticket;
        let taken = pool
            .take_partner(&newcomer, now)
            .expect("found through music");
        assert_eq!(taken.ticket.interests.tags().count(), 1, "the new stay");
        assert!(pool.is_empty());
        assert_eq!(pool.tags.len(), 0, "no tag is left in use");
    }

    #[test]
    fn a_taken_user_is_gone_by_id_and_found_again_when_put_back() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(ticket(1, Mode::Text, now), now);
        let newcomer = ticket(2, Mode::Text, now).ticket;
        let taken = pool.take_partner(&newcomer, now).expect("one waits");
        // Its index entry is removed later, in a batch: until then it must read as gone.
        assert!(!pool.contains(TicketId(1)));
        assert!(pool.remove(TicketId(1)).is_none());
        assert_eq!(pool.len(), 0);
        // The claim failed: it is put back, and must survive the deferred removal.
        pool.restore(taken, now);
        for n in 10..100 {
            pool.insert(ticket(n, Mode::Video, now), now);
            let video = ticket(1000 + n, Mode::Video, now).ticket;
            assert!(pool.take_partner(&video, now).is_some());
        }
        assert!(pool.contains(TicketId(1)));
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.remove(TicketId(1)).unwrap().ticket.id, TicketId(1));
        assert!(pool.is_empty());
    }

    #[test]
    fn interests_only_users_never_fall_back() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        pool.insert(with_interests(1, &["music"], None, now), now);
        let later = now + Duration::from_secs(3600);
        assert!(pool.take_due_fallback(later).is_none());
        assert!(pool
            .take_partner(&ticket(2, Mode::Text, later).ticket, later)
            .is_none());
    }

    /// A user from DE who accepts only JP: turns away everyone in these tests.
    fn narrow(n: u64, now: Instant) -> Waiting<()> {
        let mut w = ticket(n, Mode::Text, now);
        w.ticket.country = Country::parse("DE").unwrap();
        w.ticket.countries = CountryFilter::new(vec![Country::parse("JP").unwrap()]);
        w
    }

    /// Arrives: paired if anyone compatible waits, else waits.
    fn arrive(pool: &mut WaitingPool<()>, w: Waiting<()>, now: Instant) -> Option<TicketId> {
        let partner = pool.take_partner(&w.ticket, now).map(|p| p.ticket.id);
        if partner.is_none() {
            pool.insert(w, now);
        }
        partner
    }

    #[test]
    fn a_narrow_user_who_moves_up_among_the_first_few_is_found_by_those_it_accepts() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        // The first few of the narrow lane accept only JP; behind them, one accepts FR.
        for n in 0..NARROW_SCAN_LIMIT as u64 {
            pool.insert(narrow(n, now), now);
        }
        let mut accepts_fr = ticket(50, Mode::Text, now);
        accepts_fr.ticket.countries = CountryFilter::new(vec![Country::parse("FR").unwrap()]);
        pool.insert(accepts_fr, now);
        let from_fr = |n| {
            let mut w = ticket(n, Mode::Text, now);
            w.ticket.country = Country::parse("FR").unwrap();
            w.ticket
        };
        // A newcomer from FR looks at the first few only, and is turned away by all.
        assert!(pool.take_partner(&from_fr(100), now).is_none());
        assert!(pool.take_partner(&from_fr(101), now).is_none());
        // One of them leaves: the user who accepts FR is among the first few now.
        assert!(pool.remove(TicketId(0)).is_some());
        assert_eq!(
            pool.take_partner(&from_fr(102), now).map(|p| p.ticket.id),
            Some(TicketId(50))
        );
    }

    #[test]
    fn users_with_narrow_filters_never_hide_the_others() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        // More than a search looks at, in the random queue and in an interest queue.
        for n in 0..3 * SCAN_LIMIT as u64 {
            let mut w = narrow(n, now);
            if n.is_multiple_of(2) {
                w.ticket.interests = with_interests(n, &["go"], None, now).ticket.interests;
            }
            assert_eq!(arrive(&mut pool, w, now), None);
        }
        assert_eq!(arrive(&mut pool, ticket(100, Mode::Text, now), now), None);
        assert_eq!(
            arrive(&mut pool, ticket(101, Mode::Text, now), now),
            Some(TicketId(100)),
            "the random queue"
        );
        let go = |n| with_interests(n, &["go"], None, now);
        assert_eq!(arrive(&mut pool, go(102), now), None);
        assert_eq!(
            arrive(&mut pool, go(103), now),
            Some(TicketId(102)),
            "an interest queue"
        );
        assert_eq!(pool.len(), 3 * SCAN_LIMIT);
    }

    #[test]
    fn users_with_narrow_filters_who_suit_each_other_meet_behind_a_few_who_do_not() {
        use crate::{Gender, GenderFilter};
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        for n in 0..2 * NARROW_SCAN_LIMIT as u64 {
            pool.insert(narrow(n, now), now);
        }
        let wants = |n, own, other| {
            let mut w = ticket(n, Mode::Text, now);
            w.ticket.gender = Some(own);
            w.ticket.want_gender = GenderFilter::of([other]);
            w
        };
        assert_eq!(
            arrive(&mut pool, wants(100, Gender::M, Gender::F), now),
            None
        );
        assert_eq!(
            arrive(&mut pool, wants(101, Gender::F, Gender::M), now),
            Some(TicketId(100))
        );
    }

    #[test]
    fn college_users_find_each_other_behind_everyone_else() {
        let now = Instant::now();
        let mut pool = WaitingPool::new();
        for n in 0..2 * SCAN_LIMIT as u64 {
            pool.insert(narrow(n, now), now);
            pool.insert(ticket(1000 + n, Mode::Text, now), now);
        }
        let college = |n| {
            let mut w = ticket(n, Mode::Text, now);
            w.ticket.college = Some("a.edu".into());
            w
        };
        assert_eq!(arrive(&mut pool, college(100), now), None);
        assert_eq!(arrive(&mut pool, college(101), now), Some(TicketId(100)));
    }

    #[test]
    fn a_random_search_takes_the_longest_waiting_of_either_lane() {
        let now = Instant::now();
        let de = Country::parse("DE").unwrap();
        let mut pool = WaitingPool::new();
        let mut first = ticket(1, Mode::Text, now);
        first.ticket.country = de;
        first.ticket.countries = CountryFilter::new(vec![de]);
        pool.insert(first, now);
        let later = now + Duration::from_secs(1);
        pool.insert(ticket(2, Mode::Text, later), later);
        let mut newcomer = ticket(3, Mode::Text, later).ticket;
        newcomer.country = de;
        assert_eq!(
            pool.take_partner(&newcomer, later).unwrap().ticket.id,
            TicketId(1),
            "the narrow user waited longer"
        );
        assert_eq!(
            pool.take_partner(&newcomer, later).unwrap().ticket.id,
            TicketId(2)
        );
    }

    #[test]
    fn country_filters_are_mutual() {
        let now = Instant::now();
        let de = Country::parse("DE").unwrap();
        let fr = Country::parse("FR").unwrap();
        let mut pool = WaitingPool::new();
        let mut picky = ticket(1, Mode::Text, now);
        picky.ticket.country = fr;
        picky.ticket.countries = CountryFilter::new(vec![de]);
        pool.insert(picky, now);
        let mut french = ticket(2, Mode::Text, now).ticket;
        french.country = fr;
        assert!(
            pool.take_partner(&french, now).is_none(),
            "the picky one accepts only DE"
        );
        let mut german = ticket(3, Mode::Text, now).ticket;
        german.country = de;
        german.countries = CountryFilter::new(vec![fr]);
        assert_eq!(
            pool.take_partner(&german, now).unwrap().ticket.id,
            TicketId(1)
        );
    }
}
