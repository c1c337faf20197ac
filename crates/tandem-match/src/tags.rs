//! Interest tags as small integers, per pool and bucket, each with its queue.
//!
//! The pool knows tags by their fingerprints (made at join, in the user's session, with
//! secret keys: a client cannot make its tags collide, so the fast hasher is safe on them),
//! and turns each (bucket, fingerprint) into a small id; everything after that (finding a
//! tag's queue, overlaps between two users) works on integers: no string hashing, comparing
//! or pointer chasing while a partner is searched for. An id indexes its queue directly, so
//! a user's queues are found from its ids without a lookup. An id lives while its queue
//! holds someone and is reused once free, so the table stays as large as the set of tags in
//! use, whatever clients send over time.

use std::collections::HashMap;

use super::hash::FastBuild;
use super::{BucketKey, Fingerprint};

/// A (bucket, tag)'s id within one pool.
pub type TagId = u32;

/// The (bucket, tag) pairs in use in a pool, and their queues.
#[derive(Debug)]
pub struct TagTable<Q> {
    ids: HashMap<(BucketKey, Fingerprint), TagId, FastBuild>,
    /// The queue of each id (kept, emptied, when the id is freed: a busy tag empties and
    /// refills thousands of times a second). Apart from the keys, so that the queue headers
    /// every search reads are packed densely in the cache.
    queues: Vec<Q>,
    /// The (bucket, tag) each id stands for while in use.
    keys: Vec<Option<(BucketKey, Fingerprint)>>,
    free: Vec<TagId>,
}

impl<Q> Default for TagTable<Q> {
    fn default() -> Self {
        Self {
            ids: HashMap::default(),
            queues: Vec::new(),
            keys: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<Q: Default> TagTable<Q> {
    /// The id of `tag` in `bucket`, made (with an empty queue) if new.
    pub fn acquire(&mut self, bucket: BucketKey, tag: Fingerprint) -> TagId {
        let entry = match self.ids.entry((bucket, tag)) {
            std::collections::hash_map::Entry::Occupied(found) => return *found.get(),
            std::collections::hash_map::Entry::Vacant(entry) => entry,
        };
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.queues.push(Q::default());
                self.keys.push(None);
                TagId::try_from(self.queues.len() - 1).expect("fewer than 2^32 tags in use")
            }
        };
        self.keys[id as usize] = Some((bucket, tag));
        entry.insert(id);
        id
    }

    /// The id of `tag` in `bucket`, if it is in use.
    pub fn get(&self, bucket: BucketKey, tag: Fingerprint) -> Option<TagId> {
        self.ids.get(&(bucket, tag)).copied()
    }

    /// The queue of `id`, to read.
    pub fn queue_ref(&self, id: TagId) -> &Q {
        &self.queues[id as usize]
    }

    /// Where the queues are, to prefetch one while another is borrowed.
    pub fn addresses(&self) -> QueueAddresses<Q> {
        QueueAddresses {
            queues: self.queues.as_ptr(),
            len: self.queues.len(),
        }
    }

    /// The queue of `id`.
    pub fn queue(&mut self, id: TagId) -> &mut Q {
        &mut self.queues[id as usize]
    }

    /// Frees `id`, whose queue the caller has emptied.
    pub fn release(&mut self, id: TagId) {
        let Some(key) = self.keys[id as usize].take() else {
            return;
        };
        self.ids.remove(&key);
        self.free.push(id);
    }

    /// The queues of the ids in use.
    #[cfg_attr(not(debug_assertions), allow(dead_code))] // for the debug invariant check
    pub(super) fn queues(&self) -> impl Iterator<Item = &Q> {
        self.queues
            .iter()
            .zip(&self.keys)
            .filter(|(_, key)| key.is_some())
            .map(|(queue, _)| queue)
    }

    /// Every queue, those of ids not in use too.
    #[cfg_attr(not(debug_assertions), allow(dead_code))] // for the debug invariant check
    pub(super) fn all_queues(&self) -> impl Iterator<Item = &Q> {
        self.queues.iter()
    }

    /// The (bucket, tag) `id` stands for, if in use.
    #[cfg_attr(not(debug_assertions), allow(dead_code))] // for the debug invariant check
    pub(super) fn key(&self, id: TagId) -> Option<(BucketKey, Fingerprint)> {
        *self.keys.get(id as usize)?
    }

    /// Ids in use.
    #[cfg_attr(not(debug_assertions), allow(dead_code))] // for the debug invariant check
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Where a table's queues are, while one of them is borrowed: valid until the table next
/// grows, and used only for prefetching (a hint, never a read).
pub struct QueueAddresses<Q> {
    queues: *const Q,
    len: usize,
}

impl<Q> QueueAddresses<Q> {
    /// Asks the CPU to start loading the queue of `id`.
    pub fn prefetch(&self, id: TagId) {
        if (id as usize) < self.len {
            // Only an address for a hint: nothing is read through it.
            super::prefetch::prefetch_at(self.queues.wrapping_add(id as usize));
        }
    }
}

/// One entry's tag ids, sorted, inline for the common few (the slab entry then holds them
/// in its own cache lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagIds {
    Inline { ids: [TagId; 6], len: u8 },
    Spilled(Box<[TagId]>),
}

impl TagIds {
    /// Sorted ids from any order, without duplicates. `ids` is sorted and compacted in
    /// place: its first `as_slice().len()` elements are the result (callers rely on that).
    pub fn new(ids: &mut [TagId]) -> Self {
        ids.sort_unstable();
        let mut len = 0;
        for at in 0..ids.len() {
            if len == 0 || ids[len - 1] != ids[at] {
                ids[len] = ids[at];
                len += 1;
            }
        }
        let ids = &ids[..len];
        if ids.len() <= 6 {
            let mut inline = [0; 6];
            inline[..ids.len()].copy_from_slice(ids);
            Self::Inline {
                ids: inline,
                len: ids.len() as u8,
            }
        } else {
            Self::Spilled(ids.into())
        }
    }

    /// The ids, ascending.
    pub fn as_slice(&self) -> &[TagId] {
        match self {
            Self::Inline { ids, len } => &ids[..*len as usize],
            Self::Spilled(ids) => ids,
        }
    }

    /// How many ids two sorted lists share.
    pub fn overlap(a: &[TagId], b: &[TagId]) -> usize {
        super::interests::count_shared(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_per_bucket_and_reused_once_free() {
        let text = BucketKey {
            mode: super::super::Mode::Text,
            lang: super::super::Lang::EN,
        };
        let video = BucketKey {
            mode: super::super::Mode::Video,
            ..text
        };
        let mut table = TagTable::<Vec<u32>>::default();
        let music = Fingerprint::of("music");
        let a = table.acquire(text, music);
        assert_eq!(table.acquire(text, music), a);
        assert_eq!(table.get(text, music), Some(a));
        let b = table.acquire(video, music);
        assert_ne!(a, b, "one id per bucket");
        table.queue(a).push(7);
        table.queue(a).clear();
        table.release(a);
        assert_eq!(table.get(text, music), None);
        assert_eq!(table.get(video, music), Some(b));
        assert_eq!(table.len(), 1);
        let go = table.acquire(text, Fingerprint::of("go"));
        assert_eq!(go, a, "the freed id is reused");
    }

    #[test]
    fn overlap_counts_shared_ids_of_sorted_lists() {
        let x = TagIds::new(&mut [9, 1, 5, 3, 5]);
        let y = TagIds::new(&mut [5, 2, 9, 8, 7, 6, 4]);
        assert_eq!(x.as_slice(), &[1, 3, 5, 9]);
        assert!(matches!(y, TagIds::Spilled(_)));
        assert_eq!(TagIds::overlap(x.as_slice(), y.as_slice()), 2);
        assert_eq!(TagIds::overlap(&[], y.as_slice()), 0);
    }
}
