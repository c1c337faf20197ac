//! The proof-of-work challenge's cost to the node: issuing one (a key derived at the
//! default cost, once per connection) and checking a solution (two HMACs and the JSON).

use std::hint::black_box;

use criterion::Criterion;
use tandem_server::abuse::challenge::{solve, ChallengeSettings, Challenges};
use tandem_server::moderation::StoreSlot;

fn challenge(c: &mut Criterion) {
    let (_open, slot) = StoreSlot::new();
    let challenges = Challenges::new(ChallengeSettings::default(), b"a bench secret", slot);
    let now = tandem_server::moderation::records::unix_now();
    c.bench_function("challenge/issue_default", |b| {
        b.iter(|| black_box(challenges.issue(0, None, now)))
    });
    // A cheap challenge to solve once; checking costs the same at any difficulty.
    let (_open, slot) = StoreSlot::new();
    let cheap = Challenges::new(
        ChallengeSettings {
            difficulty: 4,
            cost: 10,
            ..ChallengeSettings::default()
        },
        b"a bench secret",
        slot,
    );
    let proof = solve(&cheap.issue(0, None, now).expect("on"));
    c.bench_function("challenge/check", |b| {
        b.iter(|| black_box(cheap.check(black_box(&proof), None, now)))
    });
}

criterion::criterion_group!(benches, challenge);
