//! Ticket ids to their places in the slab, for withdrawals by id.
//!
//! In a pool of a million, removing an id from the map is two cache misses in a row (the
//! control bytes, then the slot), and every pairing removes one. A partner search already knows the place it takes, so it does not need the map: its
//! removals are deferred and done in batches, where consecutive removals are independent
//! and the CPU overlaps their misses. Until then the entry's id still maps to the place, whose
//! handle is stale (the slab has freed or reused it), and lookups see that as absent.

use std::collections::HashMap;

use tandem_ids::TicketId;

use super::hash::SequenceBuild;
use super::slab::Handle;

/// How many deferred removals are done together.
const BATCH: usize = 32;

/// Ticket ids to handles. A handle the caller finds stale means "not here".
#[derive(Debug, Default)]
pub(super) struct TicketIndex {
    map: HashMap<TicketId, Handle, SequenceBuild>,
    /// Ids whose entries were taken by their handles, still to be removed from `map` (only
    /// if they still map to that handle: the id may have been put back since).
    deferred: Vec<(TicketId, Handle)>,
}

impl TicketIndex {
    /// The handle `id` maps to, stale or not.
    pub fn get(&self, id: TicketId) -> Option<Handle> {
        self.map.get(&id).copied()
    }

    /// Maps `id` to `handle`; returns what it mapped to before, stale or not.
    pub fn insert(&mut self, id: TicketId, handle: Handle) -> Option<Handle> {
        self.map.insert(id, handle)
    }

    /// Removes `id`; returns the handle it mapped to, stale or not.
    pub fn remove(&mut self, id: TicketId) -> Option<Handle> {
        self.map.remove(&id)
    }

    /// Removes `id` later, if it then still maps to `handle` (whose entry the caller took).
    pub fn remove_later(&mut self, id: TicketId, handle: Handle) {
        self.deferred.push((id, handle));
        if self.deferred.len() >= BATCH {
            for (id, handle) in self.deferred.drain(..) {
                if let std::collections::hash_map::Entry::Occupied(found) = self.map.entry(id) {
                    if *found.get() == handle {
                        found.remove();
                    }
                }
            }
        }
    }

    /// Every mapping, stale ones included (for the debug invariant check).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub fn iter(&self) -> impl Iterator<Item = (TicketId, Handle)> + '_ {
        self.map.iter().map(|(id, handle)| (*id, *handle))
    }

    /// Whether the removal of `id`'s mapping to `handle` is deferred (for the debug
    /// invariant check: every stale mapping must be).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub fn is_deferred(&self, id: TicketId, handle: Handle) -> bool {
        self.deferred.contains(&(id, handle))
    }

    /// Mappings held, stale ones included.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.map.len()
    }

    /// Removals still deferred.
    #[cfg(test)]
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_removal_spares_an_id_mapped_again_since() {
        let (first, second) = (Handle::at(0, 0), Handle::at(1, 0));
        let mut index = TicketIndex::default();
        index.insert(TicketId(1), first);
        index.remove_later(TicketId(1), first);
        // Put back (a new stay, a new place) before the batch runs.
        index.insert(TicketId(1), second);
        for n in 2..=BATCH as u64 {
            index.insert(TicketId(n), first);
            index.remove_later(TicketId(n), first);
        }
        assert_eq!(index.deferred(), 0, "the batch ran");
        assert_eq!(index.get(TicketId(1)), Some(second));
        assert_eq!(index.held(), 1, "the others are gone");
    }
}
