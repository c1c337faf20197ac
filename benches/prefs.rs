//! The policy with preferences at scale: 1,000,000 waiting users with interests drawn from a
//! Zipf distribution over 10,000 tags, from 200 countries, 10% of them with a country filter.
//!
//! The residents are all still in their interest wait (they accept only a shared interest),
//! so an arrival is paired only with someone sharing one of its interests and accepted by
//! both filters. One element is one arrival: it is paired if the pool holds a compatible user
//! (the bench prints the share that were), else it waits; either way one resident is replaced
//! so the pool stays at a million.

use std::time::{Duration, Instant};

use criterion::{black_box, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tandem::ids::{SessionId, TicketId};
use tandem::matching::{
    BucketKey, Country, CountryFilter, Interests, Lang, Mode, TicketInfo, Waiting, WaitingPool,
};

const RESIDENT: u64 = 1_000_000;
const TAGS: usize = 10_000;
const COUNTRIES: usize = 200;

/// Samples tag ranks with probability proportional to 1/rank.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / rank as f64;
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut SmallRng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

struct Population {
    rng: SmallRng,
    zipf: Zipf,
    countries: Vec<Country>,
    now: Instant,
}

impl Population {
    fn user(&mut self, n: u64) -> TicketInfo {
        let count = self.rng.random_range(1..=5);
        let tags: Vec<String> = (0..count)
            .map(|_| format!("tag{}", self.zipf.sample(&mut self.rng)))
            .collect();
        let country = self.countries[self.rng.random_range(0..COUNTRIES)];
        let filter = if self.rng.random_bool(0.1) {
            let picks = self.rng.random_range(1..=3);
            CountryFilter::new(
                (0..picks)
                    .map(|_| self.countries[self.rng.random_range(0..COUNTRIES)])
                    .collect(),
            )
        } else {
            CountryFilter::default()
        };
        let bucket = BucketKey {
            mode: Mode::Text,
            lang: Lang::EN,
        };
        let mut ticket = TicketInfo::plain(TicketId(n), SessionId(n), bucket, self.now);
        ticket.interests = Interests::parse(&tags).unwrap();
        ticket.random_from = Some(self.now + Duration::from_secs(3600));
        ticket.country = country;
        ticket.countries = filter;
        ticket
    }
}

fn population() -> Population {
    let countries = (0..COUNTRIES)
        .map(|i| {
            let code = [b'A' + (i / 26) as u8, b'A' + (i % 26) as u8];
            Country::parse(std::str::from_utf8(&code).unwrap()).unwrap()
        })
        .filter(|c| *c != Country::UNKNOWN)
        .collect();
    Population {
        rng: SmallRng::seed_from_u64(42),
        zipf: Zipf::new(TAGS),
        countries,
        now: Instant::now(),
    }
}

fn interests_and_countries(c: &mut Criterion) {
    let mut people = population();
    let now = people.now;
    let mut pool = WaitingPool::new();
    for n in 0..RESIDENT {
        let ticket = people.user(n);
        pool.insert(
            Waiting {
                ticket,
                payload: (),
            },
            now,
        );
    }
    // Arrivals are drawn before timing (the server parses interests at join, not in the
    // pool) and handed out in turn, with fresh ids.
    let drawn: Vec<TicketInfo> = (0..200_000).map(|n| people.user(n)).collect();
    let mut next = RESIDENT;
    let mut fresh = move || -> TicketInfo {
        let mut ticket = drawn[(next as usize) % drawn.len()].clone();
        ticket.id = TicketId(next);
        ticket.session = SessionId(next);
        next += 1;
        ticket
    };
    let mut arrive = |pool: &mut WaitingPool<()>| -> bool {
        let ticket = fresh();
        match pool.take_partner(&ticket, now) {
            Some(partner) => {
                // Keep the pool at a million: the partner's place is taken by a newcomer.
                pool.insert(
                    Waiting {
                        ticket: fresh(),
                        payload: (),
                    },
                    now,
                );
                black_box(partner);
                true
            }
            None => {
                // Nobody compatible: it would wait; it leaves again so the pool stays put.
                let id = ticket.id;
                pool.insert(
                    Waiting {
                        ticket,
                        payload: (),
                    },
                    now,
                );
                let _ = pool.remove(id);
                false
            }
        }
    };
    let trial = 100_000;
    let paired = (0..trial).filter(|_| arrive(&mut pool)).count();
    println!(
        "prefs: {:.1}% of arrivals found a compatible partner among {} waiting",
        100.0 * paired as f64 / trial as f64,
        pool.len()
    );
    let mut group = c.benchmark_group("prefs");
    group.throughput(Throughput::Elements(1));
    group.bench_function("arrival_1m_waiting_zipf_10k_tags_200_countries", |b| {
        b.iter(|| black_box(arrive(&mut pool)))
    });
    group.finish();
}

criterion::criterion_group!(benches, interests_and_countries);
