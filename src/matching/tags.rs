//! Interest tags as small integers, per pool.
//!
//! Tags are chosen by clients, so the one map from a tag's text to its id uses a randomly
//! keyed hasher (a client cannot make its tags collide); everything after that (interest
//! queue keys, overlaps between two users) works on integers: no string hashing, comparing
//! or pointer chasing while a partner is searched for. Ids are reference counted by the
//! waiting entries that hold them and reused once free, so the table stays as large as the
//! set of tags in use, whatever clients send over time.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;

use super::Tag;

/// A tag's id within one pool.
pub type TagId = u32;

/// The tags in use in a pool.
#[derive(Debug, Default)]
pub struct TagTable {
    ids: HashMap<Tag, TagId, RandomState>,
    /// Per id: its tag and how many waiting entries hold it (`None`: free).
    uses: Vec<Option<(Tag, u32)>>,
    free: Vec<TagId>,
}

impl TagTable {
    /// The id of `tag`, made if new; one more entry holds it.
    pub fn acquire(&mut self, tag: &Tag) -> TagId {
        if let Some(&id) = self.ids.get(tag) {
            if let Some((_, count)) = &mut self.uses[id as usize] {
                *count += 1;
            }
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.uses.push(None);
                TagId::try_from(self.uses.len() - 1).expect("fewer than 2^32 tags in use")
            }
        };
        self.uses[id as usize] = Some((Tag::clone(tag), 1));
        self.ids.insert(Tag::clone(tag), id);
        id
    }

    /// The id of `tag`, if some entry holds it.
    pub fn get(&self, tag: &Tag) -> Option<TagId> {
        self.ids.get(tag).copied()
    }

    /// One entry fewer holds `id`; the id is freed with the last.
    pub fn release(&mut self, id: TagId) {
        let Some(slot) = self.uses.get_mut(id as usize) else {
            return;
        };
        let Some((tag, count)) = slot else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.ids.remove(&*tag);
            *slot = None;
            self.free.push(id);
        }
    }

    /// Tags in use.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
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
    /// Sorted ids from any order.
    pub fn new(mut ids: Vec<TagId>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        if ids.len() <= 6 {
            let mut inline = [0; 6];
            inline[..ids.len()].copy_from_slice(&ids);
            Self::Inline {
                ids: inline,
                len: ids.len() as u8,
            }
        } else {
            Self::Spilled(ids.into_boxed_slice())
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
    fn ids_are_counted_and_reused_once_free() {
        let mut table = TagTable::default();
        let music = Tag::from("music");
        let chess = Tag::from("chess");
        let a = table.acquire(&music);
        assert_eq!(table.acquire(&music), a);
        let b = table.acquire(&chess);
        assert_ne!(a, b);
        table.release(a);
        assert_eq!(table.get(&music), Some(a), "still held once");
        table.release(a);
        assert_eq!(table.get(&music), None);
        assert_eq!(table.len(), 1);
        let go = table.acquire(&Tag::from("go"));
        assert_eq!(go, a, "the freed id is reused");
    }

    #[test]
    fn overlap_counts_shared_ids_of_sorted_lists() {
        let x = TagIds::new(vec![9, 1, 5, 3]);
        let y = TagIds::new(vec![5, 2, 9, 8, 7, 6, 4]);
        assert_eq!(x.as_slice(), &[1, 3, 5, 9]);
        assert!(matches!(y, TagIds::Spilled(_)));
        assert_eq!(TagIds::overlap(x.as_slice(), y.as_slice()), 2);
        assert_eq!(TagIds::overlap(&[], y.as_slice()), 0);
    }
}
