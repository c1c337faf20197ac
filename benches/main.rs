//! criterion benchmarks: the waiting pool, the shard's matchmaker, and the codecs.

mod codec;
mod pool;

criterion::criterion_main!(pool::benches, codec::benches);
