//! A fast, non-cryptographic hasher for the pool's maps whose keys the server makes (ticket
//! ids from a counter, bucket keys from validated mode and language): clients cannot choose
//! them, so hash flooding is not a concern there, and SipHash's cost is. Maps keyed by what
//! clients choose (interest tags) use the standard, randomly keyed hasher instead.

use std::hash::{BuildHasherDefault, Hasher};

/// The multiply-rotate hash used by rustc (FxHash): one multiply per word.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ (rest.len() as u64) << 56);
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(n as u64);
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(n as u64);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// `BuildHasher` for maps keyed by server-made ids.
pub type FastBuild = BuildHasherDefault<FastHasher>;

/// The hasher of the ticket index. Ticket ids are issued in sequence, so users who join one
/// after another have consecutive ids; this hash keeps aligned runs of 64 consecutive ids in
/// consecutive buckets (the runs themselves spread by the FxHash multiply, a bijection on
/// run numbers), so that inserting a newcomer's id finds its bucket in the cache line its
/// predecessor's insert just loaded, instead of a miss to memory in a table of a million.
#[derive(Default, Clone, Copy)]
pub struct SequenceHasher(u64);

impl Hasher for SequenceHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut other = FastHasher(self.0);
        other.write(bytes);
        self.0 = other.0;
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        // The low bits choose the bucket: the run's place, then the id's place in its run.
        // The top 7 bits are what the map compares first (hashbrown's tag): the id's place
        // in its run goes there too, so that neighbours in a run are told apart by the tag
        // rather than by comparing keys.
        let run = (n >> 6).wrapping_mul(SEED) << 6;
        self.0 ^= (run | (n & 63)) ^ (n << 58);
    }
}

/// `BuildHasher` for the ticket index.
pub type SequenceBuild = BuildHasherDefault<SequenceHasher>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn consecutive_ids_take_consecutive_buckets_with_distinct_tags() {
        let hash = |n: u64| SequenceBuild::default().hash_one(n);
        let start = 0x1234_5678_9abc_de40; // the start of a run of 64
        let mask = (1 << 21) - 1; // a table of two million buckets
        for n in start..start + 63 {
            assert_eq!((hash(n + 1) & mask), (hash(n) & mask) + 1, "neighbours");
            assert_ne!(hash(n + 1) >> 57, hash(n) >> 57, "told apart by the tag");
        }
        let runs: std::collections::HashSet<u64> =
            (0..4096).map(|run| hash(start + 64 * run) & mask).collect();
        assert_eq!(runs.len(), 4096, "runs are spread without collisions");
    }
}
