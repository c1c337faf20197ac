//! A differential test of the waiting pool against a plain model (a list of stays, and each
//! queue's order as a list): random inserts with re-used ticket ids, removals by id, partner
//! searches, restores (at once, and late after the id was used again) and fallbacks.
//!
//! The model says exactly which partner a search must return: the best by the matching
//! rule's [`Rank`] among the first `CANDIDATES_PER_TAG` of each lane of each interest queue,
//! else the longest waiting of the first of each lane of the random queue, among those the
//! rule's [`policy::verdict`] lets the newcomer meet. Stays and newcomers have a country and,
//! some, a country filter, which puts them in a queue's narrow lane; a search looks at
//! `SCAN_LIMIT` live entries of an open lane and `NARROW_SCAN_LIMIT` of a narrow one at most
//! (`SCAN_LIMIT` if the newcomer has a filter too), suitable or not. After every step `len`,
//! `contains` for every id, and the set of tickets must agree: a deferred removal that drops
//! an id taken again since, or a `contains` that trusts a stale handle, fails it.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng};
use tandem_ids::{SessionId, TicketId};

use super::policy::{self, Rank, Verdict};
use super::{
    BucketKey, Country, CountryFilter, Interests, Lang, Mode, TicketInfo, Waiting, WaitingPool,
    NARROW_SCAN_LIMIT, SCAN_LIMIT,
};

const TAGS: [&str; 8] = [
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "zz-tag-longer-than-thirty-bytes-xyz",
];

/// The test's random choices, from `rand`'s small generator under a seed.
struct Rng(SmallRng);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0.random()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The countries stays and newcomers come from, and filter by.
const COUNTRIES: [&str; 4] = ["AT", "DE", "FR", "ZZ"];

/// Where a user is from, and which of `COUNTRIES` it accepts (a bit each; 0: all).
#[derive(Clone, Copy, Debug)]
struct Origin {
    country: usize,
    filter: u8,
}

impl Origin {
    fn draw(rng: &mut Rng) -> Self {
        Self {
            country: rng.below(4) as usize,
            filter: if rng.chance(25) {
                (rng.below(15) + 1) as u8
            } else {
                0
            },
        }
    }

    /// Whether a stay of this origin waits in the narrow lanes.
    fn narrow(self) -> bool {
        self.filter != 0
    }
}

#[derive(Clone, Debug)]
struct Stay {
    id: u64,
    session: u64,
    mode: usize,
    tags: u8,
    origin: Origin,
    random_from: Option<Instant>,
    since: Instant,
    in_random: bool,
}

impl Stay {
    fn in_wait(&self) -> bool {
        !self.in_random && self.random_from.is_some()
    }
}

fn info(
    id: u64,
    session: u64,
    m: usize,
    tags: u8,
    origin: Origin,
    random_from: Option<Instant>,
    since: Instant,
) -> TicketInfo {
    let bucket = BucketKey {
        mode: [Mode::Text, Mode::Video][m],
        lang: Lang::EN,
    };
    let mut t = TicketInfo::plain(TicketId(id), SessionId(session), bucket, since);
    let raw: Vec<String> = (0..8)
        .filter(|i| tags & (1 << i) != 0)
        .map(|i| TAGS[i].to_string())
        .collect();
    t.interests = Interests::parse(&raw).unwrap();
    t.random_from = random_from;
    fn country(i: usize) -> Country {
        Country::parse(COUNTRIES[i]).unwrap()
    }
    t.country = country(origin.country);
    t.countries = CountryFilter::new(
        (0..4)
            .filter(|i| origin.filter & (1 << i) != 0)
            .map(country)
            .collect(),
    );
    t
}

fn waiting(s: &Stay) -> Waiting<u64> {
    Waiting {
        ticket: info(
            s.id,
            s.session,
            s.mode,
            s.tags,
            s.origin,
            s.random_from,
            s.since,
        ),
        payload: s.session,
    }
}

#[derive(Default)]
struct Model {
    stays: Vec<Stay>,
    random: [Vec<u64>; 2],
    tagq: [[Vec<u64>; 8]; 2],
}

impl Model {
    fn by_session(&self, session: u64) -> Option<&Stay> {
        self.stays.iter().find(|s| s.session == session)
    }
    fn by_id(&self, id: u64) -> Option<&Stay> {
        self.stays.iter().find(|s| s.id == id)
    }
    fn drop_session(&mut self, session: u64) -> Stay {
        let at = self
            .stays
            .iter()
            .position(|s| s.session == session)
            .unwrap();
        let s = self.stays.swap_remove(at);
        if s.in_random {
            self.random[s.mode].retain(|&x| x != session);
        }
        for t in 0..8 {
            if s.tags & (1 << t) != 0 {
                self.tagq[s.mode][t].retain(|&x| x != session);
            }
        }
        s
    }
    fn put(&mut self, mut s: Stay, front: bool, now: Instant) {
        s.in_random = s.random_from.is_some_and(|f| f <= now);
        let old = self.by_id(s.id).map(|o| o.session);
        let push = |q: &mut Vec<u64>| {
            if front {
                q.insert(0, s.session)
            } else {
                q.push(s.session)
            }
        };
        if s.in_random {
            push(&mut self.random[s.mode]);
        }
        for t in 0..8 {
            if s.tags & (1 << t) != 0 {
                push(&mut self.tagq[s.mode][t]);
            }
        }
        self.stays.push(s);
        if let Some(old) = old {
            self.drop_session(old);
        }
    }
    /// The users of `queue` in one lane, in order, the first `limit` of them (the scan
    /// bound of that lane when `bounded`) whom the matching rule lets `newcomer` meet.
    fn suitable<'a>(
        &'a self,
        queue: &'a [u64],
        narrow: bool,
        newcomer: &'a TicketInfo,
        bounded: bool,
    ) -> impl Iterator<Item = u64> + 'a {
        // A newcomer with a filter of its own looks as far into narrow lanes as into open ones.
        let limit = match (bounded, narrow && newcomer.accepts_everyone()) {
            (false, _) => usize::MAX,
            (true, false) => SCAN_LIMIT,
            (true, true) => NARROW_SCAN_LIMIT,
        };
        queue
            .iter()
            .map(|&c| self.by_session(c).unwrap())
            .filter(move |s| s.origin.narrow() == narrow)
            .take(limit)
            .filter(move |s| policy::verdict(newcomer, &waiting(s).ticket) != Verdict::No)
            .map(|s| s.session)
    }

    /// The partner a search by `newcomer` (of mode `m`, tags `tags`) must return: the best
    /// by [`Rank`] among the first suitable users of its interest queues, else the first
    /// suitable user of the random queue, within the scan bounds when `bounded`.
    fn expect_partner(
        &self,
        m: usize,
        tags: u8,
        newcomer: &TicketInfo,
        now: Instant,
        bounded: bool,
    ) -> Option<u64> {
        let mut best: Option<(u64, Rank<Instant>)> = None;
        for t in (0..8).filter(|t| tags & (1 << t) != 0) {
            for c in [false, true].into_iter().flat_map(|narrow| {
                self.suitable(&self.tagq[m][t], narrow, newcomer, bounded)
                    .take(super::pool::CANDIDATES_PER_TAG)
            }) {
                let s = self.by_session(c).unwrap();
                let rank = Rank {
                    shared: (s.tags & tags).count_ones() as usize,
                    since: s.since,
                };
                if best.is_none_or(|(_, best)| rank.beats(&best)) {
                    best = Some((c, rank));
                }
            }
        }
        match best {
            Some((c, _)) => Some(c),
            // The first of each lane; the open lane's on a tie.
            None if newcomer.random_ok(now) => [false, true]
                .into_iter()
                .filter_map(|narrow| {
                    self.suitable(&self.random[m], narrow, newcomer, bounded)
                        .next()
                })
                .min_by_key(|&c| self.by_session(c).unwrap().since),
            None => None,
        }
    }
}

/// Returns how many searches the scan bound changed.
fn run(seed: u64, steps: usize, ids: u64, prefill: u64) -> usize {
    let mut rng = Rng(SmallRng::seed_from_u64(seed));
    let start = Instant::now();
    let mut now = start;
    let mut pool: WaitingPool<u64> = WaitingPool::new();
    let mut model = Model::default();
    let mut next_session = 1_000_000_000u64;
    for n in 0..prefill {
        let s = Stay {
            id: 1_000_000 + n,
            session: n + 1,
            mode: rng.below(2) as usize,
            // Half also wait in one interest queue (about 130 per queue), all from AT and
            // most accepting only AT: a newcomer whose filter leaves AT out, or who is not
            // from AT, meets the scan bound in the interest queues too.
            tags: if rng.chance(50) { 1 << rng.below(8) } else { 0 },
            origin: Origin {
                country: 0,
                filter: if rng.chance(60) { 1 } else { 0 },
            },
            random_from: Some(now),
            since: now,
            in_random: false,
        };
        now += Duration::from_micros(1);
        pool.insert(waiting(&s), now);
        model.put(s, false, now);
    }
    let mut taken: Vec<Stay> = Vec::new();
    let mut log: Vec<String> = Vec::new();
    // Searches whose answer the scan bound changed.
    let mut bounded = 0;
    for step in 0..steps {
        now += Duration::from_millis(1 + rng.below(30));
        let op = rng.below(100);
        let ctx = |log: &Vec<String>| {
            format!(
                "seed {seed} step {step}\n{}",
                log[log.len().saturating_sub(40)..].join("\n")
            )
        };
        if op < 35 {
            let id = rng.below(ids);
            next_session += 1;
            let tags = if rng.chance(30) {
                0
            } else {
                (rng.next() & 0xff) as u8 & if rng.chance(20) { 0xff } else { 0x0f }
            };
            let random_from = match rng.below(4) {
                0 => None,
                1 => Some(now),
                _ => Some(now + Duration::from_millis(rng.below(400))),
            };
            let random_from = if tags == 0 { Some(now) } else { random_from };
            let s = Stay {
                id,
                session: next_session,
                mode: rng.below(2) as usize,
                tags,
                origin: Origin::draw(&mut rng),
                random_from,
                since: now,
                in_random: false,
            };
            log.push(format!(
                "insert id {id} s{} m{} tags {tags:#x} {:?}",
                s.session, s.mode, s.origin
            ));
            pool.insert(waiting(&s), now);
            model.put(s, false, now);
        } else if op < 50 {
            let id = rng.below(ids);
            log.push(format!("remove id {id}"));
            let got = pool.remove(TicketId(id)).map(|w| w.payload);
            let want = model.by_id(id).map(|s| s.session);
            assert_eq!(got, want, "remove {id}: {}", ctx(&log));
            if let Some(s) = want {
                let s = model.drop_session(s);
                if rng.chance(30) {
                    taken.push(s);
                }
            }
        } else if op < 80 {
            next_session += 1;
            let m = rng.below(2) as usize;
            let tags = if rng.chance(30) {
                0
            } else {
                (rng.next() & 0xff) as u8
            };
            let random_from = match rng.below(3) {
                0 => None,
                1 => Some(now),
                _ => Some(now + Duration::from_millis(100)),
            };
            let random_from = if tags == 0 { Some(now) } else { random_from };
            let origin = Origin::draw(&mut rng);
            let newcomer = info(999_999_999, next_session, m, tags, origin, random_from, now);
            log.push(format!(
                "take_partner m{m} tags {tags:#x} {origin:?} ok {}",
                newcomer.random_ok(now)
            ));
            let got = pool.take_partner(&newcomer, now).map(|w| w.payload);
            let want = model.expect_partner(m, tags, &newcomer, now, true);
            if want != model.expect_partner(m, tags, &newcomer, now, false) {
                bounded += 1;
            }
            assert_eq!(got, want, "take_partner: {}", ctx(&log));
            if let Some(s) = got {
                let s = model.drop_session(s);
                log.push(format!("  took s{} id {}", s.session, s.id));
                if rng.chance(25) {
                    log.push(format!("  restore at once s{} id {}", s.session, s.id));
                    pool.restore(waiting(&s), now);
                    model.put(s, true, now);
                } else {
                    taken.push(s);
                }
            }
        } else if op < 88 {
            if !taken.is_empty() {
                let at = rng.below(taken.len() as u64) as usize;
                let s = taken.swap_remove(at);
                log.push(format!("restore late s{} id {}", s.session, s.id));
                pool.restore(waiting(&s), now);
                model.put(s, true, now);
            }
        } else {
            log.push("tick".into());
            let mut again = Vec::new();
            while let Some(w) = pool.take_due_fallback(now) {
                let s = model
                    .by_session(w.payload)
                    .unwrap_or_else(|| panic!("fallback not in model: {}", ctx(&log)))
                    .clone();
                assert!(
                    s.in_wait() && s.random_from.unwrap() <= now,
                    "not due: {}",
                    ctx(&log)
                );
                model.drop_session(s.session);
                log.push(format!("  due s{} id {}", s.session, s.id));
                again.push(s);
            }
            assert!(
                !model
                    .stays
                    .iter()
                    .any(|s| s.in_wait() && s.random_from.unwrap() <= now),
                "due left behind: {}",
                ctx(&log)
            );
            for s in again {
                if rng.chance(80) {
                    pool.insert(waiting(&s), now);
                    model.put(s, false, now);
                } else {
                    taken.push(s);
                }
            }
        }
        assert_eq!(pool.len(), model.stays.len(), "len: {}", ctx(&log));
        assert_eq!(pool.is_empty(), model.stays.is_empty());
        for id in 0..ids {
            assert_eq!(
                pool.contains(TicketId(id)),
                model.by_id(id).is_some(),
                "contains {id}: {}",
                ctx(&log)
            );
        }
        if prefill == 0 || step.is_multiple_of(50) {
            let mut a: Vec<u64> = pool.ids_where(|_| true).into_iter().map(|t| t.0).collect();
            let mut b: Vec<u64> = model.stays.iter().map(|s| s.id).collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "tickets: {}", ctx(&log));
        }
    }
    let ids_left: Vec<u64> = model.stays.iter().map(|s| s.id).collect();
    for id in ids_left {
        let got = pool.remove(TicketId(id)).map(|w| w.payload);
        assert_eq!(got, model.by_id(id).map(|s| s.session));
        model.drop_session(got.unwrap());
    }
    assert!(pool.is_empty());
    bounded
}

#[test]
fn pool_matches_model_small_ids() {
    for seed in 1..200u64 {
        run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1500, 6, 0);
    }
}

#[test]
fn pool_matches_model_more_ids() {
    for seed in 1..150u64 {
        run(seed.wrapping_mul(0x2545_f491_4f6c_dd1d), 3000, 40, 0);
    }
}

#[test]
fn pool_matches_model_large_pool_without_debug_checks() {
    let mut bounded = 0;
    for seed in 1..4u64 {
        bounded += run(seed.wrapping_mul(0x2545_f491_4f6c_dd1d), 3000, 40, 4200);
    }
    assert!(
        bounded > 0,
        "the scan bound changed no search: the model does not test it"
    );
}
