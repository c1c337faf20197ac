//! The pool and the matchmaker at scale: join + pair + leave with 1,000,000 users waiting.
//!
//! The million waiting users are each alone in a bucket (a rare language), so none can be
//! paired and all stay resident: the maps are as large, and the cache as cold, as a full
//! pool's. The measured loop works the busiest bucket, (text, en): per element, one user
//! joins and waits, a second joins and is paired with the first, and a third joins and
//! leaves. Throughput is in pairings.

use std::sync::Arc;
use std::time::Instant;

use criterion::{black_box, BatchSize, Criterion, Throughput};
use tandem_engine::session::{Identity, Peer, Seat, SessionEvent, SessionLink};
use tandem_engine::shard::{Matchmaker, Ticket};
use tandem_ids::{SessionId, TicketId};
use tandem_match::{BucketKey, Lang, Mode, TicketInfo, Waiting, WaitingPool};
use tandem_proto::PartnerInfo;

const RESIDENT: u64 = 1_000_000;

/// A language subtag unique to `n`: five letters, base 26.
fn rare_lang(n: u64) -> Lang {
    let mut text = String::new();
    let mut rest = n;
    for _ in 0..5 {
        text.push((b'a' + (rest % 26) as u8) as char);
        rest /= 26;
    }
    Lang::parse(&text).unwrap()
}

fn info(id: u64, bucket: BucketKey, now: Instant) -> TicketInfo {
    TicketInfo::plain(TicketId(id), SessionId(id), bucket, now)
}

fn hot() -> BucketKey {
    BucketKey {
        mode: Mode::Text,
        lang: Lang::EN,
    }
}

fn resident_bucket(n: u64) -> BucketKey {
    BucketKey {
        mode: if n.is_multiple_of(2) {
            Mode::Text
        } else {
            Mode::Video
        },
        lang: rare_lang(n / 2),
    }
}

fn pool(c: &mut Criterion) {
    let now = Instant::now();
    let mut pool = WaitingPool::new();
    for n in 0..RESIDENT {
        pool.insert(
            Waiting {
                ticket: info(n, resident_bucket(n), now),
                payload: (),
            },
            now,
        );
    }
    assert_eq!(pool.len() as u64, RESIDENT);
    let mut next = RESIDENT;
    let mut group = c.benchmark_group("pool");
    group.throughput(Throughput::Elements(1));
    group.bench_function("join_pair_leave_1m_waiting", |b| {
        b.iter(|| {
            let (waiter, joiner, leaver) = (next, next + 1, next + 2);
            next += 3;
            pool.insert(
                Waiting {
                    ticket: info(waiter, hot(), now),
                    payload: (),
                },
                now,
            );
            let partner = pool.take_partner(&info(joiner, hot(), now), now);
            black_box(partner.expect("the waiter is taken"));
            pool.insert(
                Waiting {
                    ticket: info(leaver, hot(), now),
                    payload: (),
                },
                now,
            );
            black_box(pool.remove(TicketId(leaver)));
        })
    });
    group.finish();
    assert_eq!(pool.len() as u64, RESIDENT);
}

thread_local! {
    /// One user for every ticket: the shard never looks at who a ticket's user is.
    static WHO: Arc<Identity> =
        Arc::new(Identity::of(tandem_ids::ClientId::parse("bench").expect("well formed")));
}

/// A link that drops events: the benchmark measures the shard, not the sessions.
struct Nowhere;

impl SessionLink for Nowhere {
    fn deliver(&self, event: SessionEvent) {
        black_box(event);
    }
}

fn ticket(id: u64, bucket: BucketKey, now: Instant, link: &Arc<dyn SessionLink>) -> Ticket {
    let seat = Arc::new(Seat::new(SessionId(id)));
    seat.start_waiting(TicketId(id));
    Ticket {
        info: info(id, bucket, now),
        seat,
        peer: Peer {
            session: SessionId(id),
            link: Arc::clone(link),
            who: WHO.with(Arc::clone),
        },
        public: PartnerInfo {
            college: None,
            country: "ZZ".into(),
        },
    }
}

fn matchmaker(c: &mut Criterion) {
    let now = Instant::now();
    let link: Arc<dyn SessionLink> = Arc::new(Nowhere);
    let mut shard = Matchmaker::new();
    for n in 0..RESIDENT {
        shard.place(ticket(n, resident_bucket(n), now, &link), now);
    }
    assert_eq!(shard.waiting() as u64, RESIDENT);
    let mut next = RESIDENT;
    let mut group = c.benchmark_group("matchmaker");
    group.throughput(Throughput::Elements(1));
    // Seats are made outside the timed part: in the server the session owns them.
    group.bench_function("place_pair_withdraw_1m_waiting", |b| {
        b.iter_batched(
            || {
                let made = (
                    ticket(next, hot(), now, &link),
                    ticket(next + 1, hot(), now, &link),
                    ticket(next + 2, hot(), now, &link),
                );
                next += 3;
                made
            },
            |(waiter, joiner, leaver)| {
                shard.place(waiter, now);
                black_box(shard.place(joiner, now));
                let id = leaver.info.id;
                shard.place(leaver, now);
                black_box(shard.withdraw(id));
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion::criterion_group!(benches, pool, matchmaker);
