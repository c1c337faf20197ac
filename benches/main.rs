//! criterion benchmarks: the waiting pool, the shard's matchmaker, and the codecs.

// The same allocator as the `tandem` binary, so the figures are the server's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod codec;
mod pool;
mod prefs;

criterion::criterion_main!(pool::benches, prefs::benches, codec::benches);
