//! The pool's entries, split in two: per place, one cache line of what a partner search
//! reads ([`Summary`]), and the entry itself, read only for the user taken and for the few
//! candidates whose own filters need it.
//!
//! In a pool of a million users every candidate a search looks at is a miss to memory. With
//! whole entries (four cache lines each, the country filter one more pointer away) a search
//! over a few interest queues fetched hundreds of lines per arrival; with summaries it
//! fetches one line per candidate.

use std::time::Instant;

use tandem_ids::SessionId;

use super::country::CountrySet;
use super::policy::Verdict;
use super::prefetch::{prefetch_at, prefetch_line};
use super::tags::{TagId, TagIds};
use super::{Country, Gender, GenderFilter, TicketInfo};

/// Where an entry lives, and which occupant of that place: queues hold handles, and a
/// handle whose place has since been freed or reused is a tombstone. Checking one is an
/// index into a vector, not a hash probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Handle {
    index: u32,
    generation: u32,
}

impl Handle {
    /// A handle made up, for tests of what stores handles.
    #[cfg(test)]
    pub fn at(index: u32, generation: u32) -> Self {
        Self { index, generation }
    }
}

/// How many tag ids a summary holds; users with more have theirs compared from the entry.
const SUMMARY_TAGS: usize = 6;
/// How many countries of a user's country filter a summary holds; a longer filter is read
/// from the entry.
const SUMMARY_COUNTRIES: usize = 3;

/// The place is occupied.
const LIVE: u8 = 1;
/// College mode: college users meet only each other, the domains are in the entry.
const COLLEGE: u8 = 2;
/// The user blocks some clients (those it reported): its entry says which.
const BLOCKS: u8 = 4;

/// What a partner search needs to know of a waiting user, in one cache line: enough to
/// reject or accept most candidates without reading their entries.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(super) struct Summary {
    generation: u32,
    /// One bit per recent partner (a one-word Bloom filter over session ids): a clear bit
    /// proves a newcomer is not among them.
    recent_bits: u32,
    pub session: SessionId,
    /// When the user started waiting, in nanoseconds from the slab's origin.
    pub since: i64,
    tags: [TagId; SUMMARY_TAGS],
    country: Country,
    /// The user's country filter, when it names at most `SUMMARY_COUNTRIES`.
    countries: [Country; SUMMARY_COUNTRIES],
    gender: Option<Gender>,
    want_gender: GenderFilter,
    tag_count: u8,
    /// How many countries the filter names (0: open to all).
    country_count: u8,
    flags: u8,
}

/// `at` in nanoseconds from `origin` (negative before it).
fn stamp(at: Instant, origin: Instant) -> i64 {
    match at.checked_duration_since(origin) {
        Some(after) => after.as_nanos() as i64,
        None => -(origin.duration_since(at).as_nanos() as i64),
    }
}

fn recent_bit(session: SessionId) -> u32 {
    1 << (session.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 59)
}

impl Summary {
    fn of(ticket: &TicketInfo, tags: &TagIds, generation: u32, origin: Instant) -> Self {
        let ids = tags.as_slice();
        let mut inline = [0; SUMMARY_TAGS];
        if ids.len() <= SUMMARY_TAGS {
            inline[..ids.len()].copy_from_slice(ids);
        }
        let codes = ticket.countries.codes();
        let mut countries = [Country::UNKNOWN; SUMMARY_COUNTRIES];
        if codes.len() <= SUMMARY_COUNTRIES {
            countries[..codes.len()].copy_from_slice(codes);
        }
        let mut flags = LIVE;
        if ticket.college.is_some() {
            flags |= COLLEGE;
        }
        if !ticket.blocked.is_empty() {
            flags |= BLOCKS;
        }
        Self {
            generation,
            recent_bits: ticket
                .recent
                .ids()
                .iter()
                .fold(0, |bits, id| bits | recent_bit(*id)),
            session: ticket.session,
            since: stamp(ticket.since, origin),
            tags: inline,
            country: ticket.country,
            countries,
            gender: ticket.gender,
            want_gender: ticket.want_gender,
            tag_count: ids.len().min(u8::MAX as usize) as u8,
            country_count: codes.len().min(u8::MAX as usize) as u8,
            flags,
        }
    }

    /// The countries the user accepts partners from: all when its filter is open or names
    /// more than the summary holds (a superset, never less).
    pub fn accepted_countries(&self) -> CountrySet {
        match self.country_count as usize {
            n @ 1..=SUMMARY_COUNTRIES => self.countries[..n].iter().copied().collect(),
            _ => CountrySet::ALL,
        }
    }

    /// The user's tag ids, when the summary holds them all.
    pub fn tags(&self) -> Option<&[TagId]> {
        let count = self.tag_count as usize;
        (count <= SUMMARY_TAGS).then(|| &self.tags[..count])
    }

    /// How this candidate stands with `newcomer`; `entry` is read only when the summary
    /// cannot tell (the candidate filters by more than `SUMMARY_COUNTRIES` countries, is in
    /// college mode, either side blocks clients, or it may have met the newcomer). Exactly
    /// [`crate::verdict`].
    pub fn verdict<'a>(
        &self,
        newcomer: &TicketInfo,
        entry: impl FnOnce() -> &'a TicketInfo,
    ) -> Verdict {
        if self.session == newcomer.session
            || !newcomer.countries.accepts(self.country)
            || !newcomer.want_gender.accepts(self.gender)
            || !self.want_gender.accepts(newcomer.gender)
            || newcomer.college.is_some() != (self.flags & COLLEGE != 0)
        {
            return Verdict::No;
        }
        // Blocks are rare and need the entries' lists: either side having some reads them.
        let mut unsure = self.flags & (COLLEGE | BLOCKS) != 0
            || !newcomer.blocked.is_empty()
            || self.recent_bits & recent_bit(newcomer.session) != 0;
        match self.country_count as usize {
            0 => {}
            n @ 1..=SUMMARY_COUNTRIES => {
                if !self.countries[..n].contains(&newcomer.country) {
                    return Verdict::No;
                }
            }
            _ => unsure = true,
        }
        if unsure {
            let candidate = entry();
            if !newcomer.filters_accept(candidate) {
                return Verdict::No;
            }
            if newcomer.recently_met(candidate) {
                return Verdict::Recent;
            }
        } else if newcomer.recent.contains(self.session) {
            return Verdict::Recent;
        }
        Verdict::Yes
    }
}

/// What the slab stores: an entry that tells its ticket and tag ids, for its summary.
pub(super) trait Entry {
    fn ticket(&self) -> &TicketInfo;
    fn tag_ids(&self) -> &TagIds;
}

/// The entries, in vectors with reused places: a large pool's index then maps ids to small
/// handles, and entries never move when the index grows.
#[derive(Debug)]
pub(super) struct Slab<E> {
    /// What summaries count their times from (the first entry's start of wait).
    origin: Option<Instant>,
    summaries: Vec<Summary>,
    entries: Vec<Option<E>>,
    free: Vec<u32>,
    /// Live entries.
    len: usize,
}

impl<E: Entry> Slab<E> {
    pub fn new() -> Self {
        Self {
            origin: None,
            summaries: Vec::new(),
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Stores an entry, and its summary.
    pub fn insert(&mut self, entry: E) -> Handle {
        let origin = *self.origin.get_or_insert(entry.ticket().since);
        self.len += 1;
        match self.free.pop() {
            Some(index) => {
                let generation = self.summaries[index as usize].generation;
                self.summaries[index as usize] =
                    Summary::of(entry.ticket(), entry.tag_ids(), generation, origin);
                self.entries[index as usize] = Some(entry);
                Handle { index, generation }
            }
            None => {
                let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 waiting");
                super::huge::reserve_one(&mut self.summaries);
                super::huge::reserve_one(&mut self.entries);
                self.summaries
                    .push(Summary::of(entry.ticket(), entry.tag_ids(), 0, origin));
                self.entries.push(Some(entry));
                Handle {
                    index,
                    generation: 0,
                }
            }
        }
    }

    /// Asks the CPU to start loading `handle`'s summary (a candidate a scan is about to look
    /// at): in a large pool each is a miss to memory, and a scan that issues them all first
    /// waits for them together instead of one after another.
    pub fn prefetch(&self, handle: Handle) {
        if let Some(summary) = self.summaries.get(handle.index as usize) {
            // One line: a summary is a line, aligned on one.
            prefetch_line(summary);
        }
    }

    /// Asks the CPU to start loading the entry at `handle` (a partner search's best
    /// candidate so far, likely to be taken: the entry is then moved out).
    pub fn prefetch_entry(&self, handle: Handle) {
        if let Some(entry) = self.entries.get(handle.index as usize) {
            prefetch_at(entry);
        }
    }

    /// The summary of the live entry at `handle`.
    pub fn summary(&self, handle: Handle) -> Option<&Summary> {
        let summary = self.summaries.get(handle.index as usize)?;
        (summary.generation == handle.generation && summary.flags & LIVE != 0).then_some(summary)
    }

    /// The live entry at `handle`.
    pub fn get(&self, handle: Handle) -> Option<&E> {
        self.summary(handle)?;
        self.entries[handle.index as usize].as_ref()
    }

    /// Whether `handle` points at a live entry.
    pub fn is_live(&self, handle: Handle) -> bool {
        self.summary(handle).is_some()
    }

    pub fn remove(&mut self, handle: Handle) -> Option<E> {
        self.summary(handle)?;
        let index = handle.index as usize;
        let entry = self.entries[index].take()?;
        self.len -= 1;
        let summary = &mut self.summaries[index];
        summary.flags = 0;
        // A place whose generation would wrap is retired, not reused: a stale handle to it
        // could otherwise match a later occupant and pair across buckets.
        if let Some(next) = summary.generation.checked_add(1) {
            summary.generation = next;
            self.free.push(handle.index);
        }
        Some(entry)
    }

    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.entries.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tandem_ids::TicketId;

    use super::*;
    use crate::{policy, BucketKey, CountryFilter, Lang, Mode, RecentPartners};

    fn ticket(n: u64) -> TicketInfo {
        let bucket = BucketKey {
            mode: Mode::Text,
            lang: Lang::EN,
        };
        TicketInfo::plain(TicketId(n), SessionId(n), bucket, Instant::now())
    }

    #[test]
    fn a_summary_fits_one_cache_line() {
        assert_eq!(std::mem::size_of::<Summary>(), 64);
    }

    struct Plain(TicketInfo, TagIds);

    impl Entry for Plain {
        fn ticket(&self) -> &TicketInfo {
            &self.0
        }
        fn tag_ids(&self) -> &TagIds {
            &self.1
        }
    }

    #[test]
    fn stale_handles_find_nothing() {
        let mut slab = Slab::new();
        let plain = |n| Plain(ticket(n), TagIds::new(&mut []));
        let id = |entry: Option<&Plain>| entry.map(|e| e.0.id);
        let a = slab.insert(plain(1));
        assert_eq!(slab.remove(a).map(|e| e.0.id), Some(TicketId(1)));
        let b = slab.insert(plain(2));
        assert_eq!(
            id(slab.get(a)),
            None,
            "the place is reused, the old handle is stale"
        );
        assert_eq!(id(slab.get(b)), Some(TicketId(2)));
        assert!(slab.remove(a).is_none());
    }

    /// Whatever the two tickets, the verdict from a summary is the one the full tickets give.
    #[test]
    fn verdicts_from_summaries_are_those_of_the_full_tickets() {
        let de = Country::parse("DE").unwrap();
        let fr = Country::parse("FR").unwrap();
        let now = Instant::now();
        type Variant = Box<dyn Fn(&mut TicketInfo)>;
        let variants: Vec<Variant> = vec![
            Box::new(|_| {}),
            Box::new(move |t| t.country = de),
            Box::new(move |t| t.country = fr),
            Box::new(move |t| t.countries = CountryFilter::new(vec![fr])),
            Box::new(move |t| t.countries = CountryFilter::new(vec![de])),
            Box::new(move |t| {
                let many = ["AT", "BE", "CH", "DK"].map(|c| Country::parse(c).unwrap());
                t.countries = CountryFilter::new([&many[..], &[fr]].concat());
            }),
            Box::new(move |t| {
                let many = ["AT", "BE", "CH", "DK"].map(|c| Country::parse(c).unwrap());
                t.countries = CountryFilter::new(many.to_vec());
            }),
            Box::new(|t| t.gender = Some(Gender::F)),
            Box::new(|t| t.want_gender = GenderFilter::of([Gender::M])),
            Box::new(|t| {
                t.gender = Some(Gender::M);
                t.want_gender = GenderFilter::of([Gender::F, Gender::M]);
            }),
            Box::new(|t| t.college = Some("a.edu".into())),
            Box::new(|t| t.blocked = crate::Blocked::new([1])),
            Box::new(|t| t.blocked = crate::Blocked::new([2, 7])),
            Box::new(|t| t.blocked = crate::Blocked::new([99])),
            Box::new(|t| {
                t.college = Some("b.edu".into());
                t.same_college = true;
            }),
            Box::new(move |t| {
                let mut recent = RecentPartners::default();
                recent.push(SessionId(1), now);
                recent.push(SessionId(2), now);
                t.recent = recent.live(now);
            }),
        ];
        for (i, a) in variants.iter().enumerate() {
            for (j, b) in variants.iter().enumerate() {
                for (x, y) in [(1, 2), (2, 2)] {
                    let mut newcomer = ticket(x);
                    a(&mut newcomer);
                    let mut candidate = ticket(y);
                    b(&mut candidate);
                    let expected = policy::verdict(&newcomer, &candidate);
                    let summary = Summary::of(&candidate, &TagIds::new(&mut []), 0, now);
                    assert_eq!(
                        summary.verdict(&newcomer, || &candidate),
                        expected,
                        "newcomer variant {i}, candidate variant {j}"
                    );
                }
            }
        }
    }
}
