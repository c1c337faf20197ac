//! criterion benchmarks: the waiting pool, the shard's matchmaker, the codecs, and the
//! proof-of-work challenge.

// The same allocator as the `tandem` binary, so the figures are the server's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod challenge;
mod codec;
mod pool;
mod prefs;

criterion::criterion_main!(
    pool::benches,
    prefs::benches,
    codec::benches,
    challenge::benches
);
