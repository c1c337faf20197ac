//! What a shard counts, for `/metrics`: written by the shard, read by the exporter.

use std::sync::atomic::AtomicU64;

/// One shard's figures, written by the shard actor.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Users waiting in this shard's pool.
    pub waiting: AtomicU64,
    /// Pairs made.
    pub matches: AtomicU64,
    /// Stale tickets dropped instead of paired.
    pub stale_dropped: AtomicU64,
}
