//! The policy with preferences at scale: 1,000,000 waiting users with interests drawn from a
//! Zipf distribution over 10,000 tags, from 200 countries, 10% of them with a country filter.
//!
//! The residents are all still in their interest wait (they accept only a shared interest),
//! so an arrival is paired only with someone sharing one of its interests and accepted by
//! both filters. One element is one arrival: it is paired if the pool holds a compatible user
//! (the bench prints the share that were), else it waits; either way one resident is replaced
//! so the pool stays at a million. Each drawn user's preferences are parsed once, as a
//! session parses its `join`, and kept for the benchmark's length, as a session keeps them
//! while it waits and chats; each of its tickets shares them (reference-counted, as the
//! session's tickets do) and is built shortly before it is timed, on another thread, as
//! sessions build theirs: what is timed is the shard's work, which drops a paired user's
//! ticket without freeing its preferences.

use std::time::{Duration, Instant};

use criterion::{black_box, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tandem_ids::{SessionId, TicketId};
use tandem_match::{
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

/// What one user asks for, drawn and parsed once, as a session parses its `join`: building
/// a ticket from this is a session's work, which the server does on another thread before
/// the shard sees the ticket.
struct Draw {
    interests: Interests,
    country: Country,
    filter: CountryFilter,
}

struct Population {
    rng: SmallRng,
    zipf: Zipf,
    countries: Vec<Country>,
    now: Instant,
}

impl Population {
    fn draw(&mut self) -> Draw {
        let count = self.rng.random_range(1..=5);
        let tags: Vec<String> = (0..count)
            .map(|_| format!("tag{}", self.zipf.sample(&mut self.rng)))
            .collect();
        let country = self.countries[self.rng.random_range(0..COUNTRIES)];
        let filter = if self.rng.random_bool(0.1) {
            let picks = self.rng.random_range(1..=3);
            (0..picks)
                .map(|_| self.countries[self.rng.random_range(0..COUNTRIES)])
                .collect()
        } else {
            Vec::new()
        };
        Draw {
            interests: Interests::parse(&tags).unwrap(),
            country,
            filter: CountryFilter::new(filter),
        }
    }

    /// A ticket as a session makes it for each `join` or `next`: sharing the interests and
    /// filter the session parsed.
    fn ticket(&self, draw: &Draw, n: u64) -> TicketInfo {
        let bucket = BucketKey {
            mode: Mode::Text,
            lang: Lang::EN,
        };
        let mut ticket = TicketInfo::plain(TicketId(n), SessionId(n), bucket, self.now);
        ticket.interests = draw.interests.clone();
        ticket.random_from = Some(self.now + Duration::from_secs(3600));
        ticket.country = draw.country;
        ticket.countries = draw.filter.clone();
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

/// How an arrival went.
enum Arrived {
    /// With this partner.
    Paired(Waiting<()>),
    /// Nobody compatible: the newcomer's ticket was not needed.
    Waited { unused: TicketInfo },
}

/// One arrival: paired if the pool holds a compatible user, whose place `replacement` then
/// takes (the pool stays at a million), and the partner is returned; else it would wait, and
/// leaves again, and the unused `replacement` is handed back (for the caller to free outside
/// the timed part: the server never makes it).
fn arrive(pool: &mut WaitingPool<()>, ticket: TicketInfo, replacement: TicketInfo) -> Arrived {
    let now = ticket.since;
    match pool.take_partner(&ticket, now) {
        Some(partner) => {
            pool.insert(
                Waiting {
                    ticket: replacement,
                    payload: (),
                },
                now,
            );
            Arrived::Paired(partner)
        }
        None => {
            let id = ticket.id;
            pool.insert(
                Waiting {
                    ticket,
                    payload: (),
                },
                now,
            );
            black_box(pool.remove(id));
            Arrived::Waited {
                unused: replacement,
            }
        }
    }
}

/// Arrivals come in chunks of this many from the thread that builds their tickets.
const CHUNK: usize = 4096;

/// An arrival's ticket, and the ticket of the newcomer who takes its partner's place.
type Arrival = (TicketInfo, TicketInfo);

/// The arrivals the builder thread sent, handed out in order.
struct Arrivals {
    built: std::sync::mpsc::Receiver<Vec<Arrival>>,
    /// The rest of the last chunk received, in reverse order.
    pending: Vec<Arrival>,
}

impl Arrivals {
    /// The next arrivals, at most `count` (fewer at the end of a chunk).
    fn take(&mut self, count: usize) -> Vec<Arrival> {
        if self.pending.is_empty() {
            self.pending = self.built.recv().expect("the builder runs until dropped");
            self.pending.reverse();
        }
        let keep = self.pending.len().saturating_sub(count);
        let mut taken = self.pending.split_off(keep);
        taken.reverse();
        taken
    }
}

fn interests_and_countries(c: &mut Criterion) {
    let mut people = population();
    let mut pool = WaitingPool::new();
    // The residents' sessions, which keep their preferences while they wait.
    let mut residents = Vec::with_capacity(RESIDENT as usize);
    for n in 0..RESIDENT {
        let draw = people.draw();
        let ticket = people.ticket(&draw, n);
        residents.push(draw);
        pool.insert(
            Waiting {
                ticket,
                payload: (),
            },
            people.now,
        );
    }
    // Arrivals cycle through 200,000 drawn users, as if each pressed "next" again and again:
    // each time a ticket of its own (a fresh id), sharing the user's parsed preferences (a
    // drawn user may have several tickets waiting at once, sharing one count, where a
    // session has one). Another thread builds them, as sessions do on the server's other
    // threads; the shard's thread is timed only while it places them.
    let drawn: Vec<Draw> = (0..200_000).map(|_| people.draw()).collect();
    let (send, arrivals) = std::sync::mpsc::sync_channel::<Vec<Arrival>>(4);
    let builder = std::thread::spawn(move || {
        let mut next = RESIDENT;
        let mut fresh = || {
            let ticket = people.ticket(&drawn[(next as usize) % drawn.len()], next);
            next += 1;
            ticket
        };
        // Ends when the benchmark drops its receiver.
        while send
            .send((0..CHUNK).map(|_| (fresh(), fresh())).collect())
            .is_ok()
        {}
    });
    let mut arrivals = Arrivals {
        built: arrivals,
        pending: Vec::new(),
    };
    let trial = 100_000;
    let (mut tried, mut paired, mut shared) = (0, 0, 0);
    while tried < trial {
        for (ticket, replacement) in arrivals.take(trial - tried) {
            tried += 1;
            let interests = ticket.interests.clone();
            if let Arrived::Paired(partner) = arrive(&mut pool, ticket, replacement) {
                paired += 1;
                shared += interests.overlap_count(&partner.ticket.interests);
            }
        }
    }
    println!(
        "prefs: {:.1}% of arrivals found a compatible partner among {} waiting, sharing {:.3} interests on average",
        100.0 * paired as f64 / trial as f64,
        pool.len(),
        shared as f64 / paired.max(1) as f64,
    );
    let mut group = c.benchmark_group("prefs");
    group.throughput(Throughput::Elements(1));
    group.bench_function("arrival_1m_waiting_zipf_10k_tags_200_countries", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut spare = Vec::with_capacity(CHUNK);
            let mut left = iters as usize;
            while left > 0 {
                let batch = arrivals.take(left);
                left -= batch.len();
                let start = Instant::now();
                for (ticket, replacement) in batch {
                    match arrive(&mut pool, ticket, replacement) {
                        // The server drops its partner's ticket too (after pairing).
                        Arrived::Paired(partner) => drop(black_box(partner)),
                        Arrived::Waited { unused } => spare.push(unused),
                    }
                }
                timed += start.elapsed();
                spare.clear();
            }
            timed
        })
    });
    group.finish();
    drop(arrivals);
    builder.join().expect("the builder thread ends cleanly");
}

criterion::criterion_group!(benches, interests_and_countries);
