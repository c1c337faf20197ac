//! The queues' lanes as ring buffers carved from one large array on huge pages.
//!
//! A pool of a million users with interests has tens of thousands of lanes, and every
//! arrival reads the front of a few and writes the back of a few, each at a random place in
//! tens of megabytes. With each lane's buffer an allocation of its own, on ordinary 4 KiB
//! pages, nearly each of those accesses would also miss the processor's address-translation
//! cache. Here all buffers are blocks of one array ([`Rings`]), which asks for 2 MiB pages
//! (see `huge.rs`), so those translations are few enough to stay cached.
//!
//! Blocks are powers of two of at least 4 handles (half a cache line), each aligned to its size
//! within the array. A freed block goes to the free list of its size; a request with none of
//! its size free splits the smallest larger one, or else the array grows. Freed blocks are
//! not merged again: after a burst of small lanes, a large lane may need fresh room while
//! small blocks wait for reuse. The array never shrinks (like the slab's): it keeps the
//! room of the shard's busiest moment.

use super::slab::Handle;

/// The smallest block: 4 handles, half a cache line (a lane of one user, of which a pool
/// has many, takes no more than with its own buffer).
const MIN_CLASS: u8 = 2;

/// An emptied ring keeps a block up to this many handles, for its next users (a busy
/// queue empties and refills thousands of times a second); a larger one goes back.
const KEPT: usize = 1024;

/// Every lane's buffer.
#[derive(Debug, Default)]
pub(super) struct Rings {
    cells: Vec<Handle>,
    /// Free blocks by size class (`1 << class` handles): where each starts.
    free: Vec<Vec<u32>>,
}

/// One lane's handles in order, in a block of [`Rings`]. It owns its block until it gives
/// it back with [`Ring::release`], which its owner must call before dropping it (not `Copy`
/// nor `Clone`: two rings must never own one block).
#[derive(Debug, Default)]
pub(super) struct Ring {
    /// Where the block starts in `Rings::cells`.
    start: u32,
    /// Where, within the block, the first handle is.
    head: u32,
    len: u32,
    /// How many handles the block holds, a power of two; 0 when there is no block.
    capacity: u32,
}

impl Rings {
    /// A block of `1 << class` handles.
    fn allocate(&mut self, class: u8) -> u32 {
        if self.free.len() <= class as usize {
            self.free.resize_with(class as usize + 1, Vec::new);
        }
        if let Some(start) = self.free[class as usize].pop() {
            return start;
        }
        // Split the smallest larger free block: keep its first part, free the halves after.
        if let Some(larger) =
            (class as usize + 1..self.free.len()).find(|&c| !self.free[c].is_empty())
        {
            let start = self.free[larger].pop().expect("found non-empty");
            for half in (class as usize..larger).rev() {
                self.free[half].push(start + (1 << half));
            }
            return start;
        }
        // Aligned to its size (the array's length is a multiple of the smallest block).
        let size = 1usize << class;
        let start = self.cells.len().next_multiple_of(size);
        let mut gap = self.cells.len();
        while gap < start {
            // The room skipped to align: free blocks of the largest sizes that fit.
            let fits = (gap.trailing_zeros() as u8).min((start - gap).ilog2() as u8);
            self.free[fits as usize].push(u32::try_from(gap).expect("fewer than 2^32 handles"));
            gap += 1 << fits;
        }
        let end = start + size;
        assert!(u32::try_from(end).is_ok(), "fewer than 2^32 queued handles");
        while self.cells.len() < end {
            super::huge::reserve_one(&mut self.cells);
            let room = self.cells.capacity().min(end) - self.cells.len();
            self.cells
                .extend(std::iter::repeat_n(Handle::default(), room));
        }
        start as u32
    }

    fn release(&mut self, start: u32, class: u8) {
        self.free[class as usize].push(start);
    }

    /// Whether the sizes of the blocks of `rings` and of the free ones add up to the array's:
    /// it catches a block lost (a ring dropped without giving it back) or given back twice,
    /// not one lost and another shared by two rings at once.
    #[cfg_attr(not(any(test, debug_assertions)), allow(dead_code))] // for invariant checks
    pub fn accounts_for<'a>(&self, rings: impl Iterator<Item = &'a Ring>) -> bool {
        let used: usize = rings.map(|ring| ring.capacity()).sum();
        let free: usize = (self.free.iter().enumerate())
            .map(|(class, starts)| starts.len() << class)
            .sum();
        used + free == self.cells.len()
    }
}

impl Ring {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[cfg_attr(not(debug_assertions), allow(dead_code))] // for the debug invariant check
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The block's size class (`capacity == 1 << class`), if it has one.
    fn class(&self) -> Option<u8> {
        (self.capacity != 0).then(|| self.capacity.trailing_zeros() as u8)
    }

    /// The block's cells.
    fn block<'a>(&self, rings: &'a Rings) -> &'a [Handle] {
        &rings.cells[self.start as usize..][..self.capacity()]
    }

    /// The handles in order, as two slices (the second wraps to the block's start).
    pub fn as_slices<'a>(&self, rings: &'a Rings) -> (&'a [Handle], &'a [Handle]) {
        let block = self.block(rings);
        let head = self.head as usize;
        let first = (block.len() - head).min(self.len());
        (&block[head..][..first], &block[..self.len() - first])
    }

    /// The handles in order.
    pub fn iter<'a>(&self, rings: &'a Rings) -> impl Iterator<Item = &'a Handle> + 'a {
        let (front, back) = self.as_slices(rings);
        front.iter().chain(back)
    }

    pub fn front(&self, rings: &Rings) -> Option<Handle> {
        (self.len != 0).then(|| rings.cells[self.cell(0)])
    }

    /// Where the `at`th handle is in `rings.cells` (the ring has a block).
    fn cell(&self, at: usize) -> usize {
        self.start as usize + ((self.head as usize + at) & (self.capacity() - 1))
    }

    /// Makes room for one more handle: a block twice as large, with the handles moved to
    /// its start in order.
    fn reserve_one(&mut self, rings: &mut Rings) {
        if self.len() < self.capacity() {
            return;
        }
        let old = self.class();
        let class = old.map_or(MIN_CLASS, |class| class + 1);
        let start = rings.allocate(class);
        for at in 0..self.len() {
            rings.cells[start as usize + at] = rings.cells[self.cell(at)];
        }
        if let Some(old) = old {
            rings.release(self.start, old);
        }
        self.start = start;
        self.head = 0;
        self.capacity = 1 << class;
    }

    pub fn push_back(&mut self, rings: &mut Rings, handle: Handle) {
        self.reserve_one(rings);
        rings.cells[self.cell(self.len())] = handle;
        self.len += 1;
    }

    pub fn push_front(&mut self, rings: &mut Rings, handle: Handle) {
        self.reserve_one(rings);
        self.head = self.head.wrapping_sub(1) & (self.capacity - 1);
        rings.cells[self.cell(0)] = handle;
        self.len += 1;
    }

    /// Drops the first `count` handles (at most all of them).
    pub fn drop_front(&mut self, count: usize) {
        let count = count.min(self.len());
        if count == 0 {
            return;
        }
        self.head = (self.head + count as u32) & (self.capacity - 1);
        self.len -= count as u32;
    }

    /// Keeps the handles `keep` says yes to, in order.
    pub fn retain(&mut self, rings: &mut Rings, mut keep: impl FnMut(Handle) -> bool) {
        let mut kept = 0;
        for at in 0..self.len() {
            let handle = rings.cells[self.cell(at)];
            if keep(handle) {
                let to = self.cell(kept);
                rings.cells[to] = handle;
                kept += 1;
            }
        }
        self.len = kept as u32;
    }

    /// Empties the ring, keeping its block unless it is large.
    pub fn clear(&mut self, rings: &mut Rings) {
        if self.capacity() > KEPT {
            self.release(rings);
        }
        self.head = 0;
        self.len = 0;
    }

    /// Empties the ring and gives its block back.
    pub fn release(&mut self, rings: &mut Rings) {
        if let Some(class) = self.class() {
            rings.release(self.start, class);
        }
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Back(usize),
        Front(usize),
        DropFront(usize, usize),
        RetainSome(usize),
        Clear(usize),
        Release(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..4usize).prop_map(Op::Back),
            2 => (0..4usize).prop_map(Op::Front),
            2 => (0..4usize, 0..12usize).prop_map(|(r, n)| Op::DropFront(r, n)),
            1 => (0..4usize).prop_map(Op::RetainSome),
            1 => (0..4usize).prop_map(Op::Clear),
            1 => (0..4usize).prop_map(Op::Release),
        ]
    }

    proptest! {
        /// Four rings sharing one array behave as four `VecDeque`s, and every cell of the
        /// array is in exactly one block, used or free.
        #[test]
        fn rings_behave_as_deques(ops in prop::collection::vec(op(), 1..400)) {
            let mut rings = Rings::default();
            let mut mine: [Ring; 4] = std::array::from_fn(|_| Ring::default());
            let mut model: [VecDeque<Handle>; 4] = Default::default();
            for (n, op) in ops.into_iter().enumerate() {
                let handle = Handle::at(n as u32, 1);
                match op {
                    Op::Back(r) => {
                        mine[r].push_back(&mut rings, handle);
                        model[r].push_back(handle);
                    }
                    Op::Front(r) => {
                        mine[r].push_front(&mut rings, handle);
                        model[r].push_front(handle);
                    }
                    Op::DropFront(r, count) => {
                        mine[r].drop_front(count);
                        model[r].drain(..count.min(model[r].len()));
                    }
                    Op::RetainSome(r) => {
                        // Every third handle made so far goes.
                        let keep = |h: Handle| (0..=n as u32).step_by(3).all(|d| h != Handle::at(d, 1));
                        mine[r].retain(&mut rings, keep);
                        model[r].retain(|h| keep(*h));
                    }
                    Op::Clear(r) => {
                        mine[r].clear(&mut rings);
                        model[r].clear();
                    }
                    Op::Release(r) => {
                        mine[r].release(&mut rings);
                        model[r].clear();
                    }
                }
                for r in 0..4 {
                    prop_assert!(mine[r].iter(&rings).eq(model[r].iter()));
                    prop_assert_eq!(mine[r].len(), model[r].len());
                    prop_assert_eq!(mine[r].front(&rings), model[r].front().copied());
                }
                prop_assert!(rings.accounts_for(mine.iter()));
            }
        }
    }

    #[test]
    fn blocks_are_aligned_to_their_size_and_reused() {
        let mut rings = Rings::default();
        let mut small = Ring::default();
        small.push_back(&mut rings, Handle::at(1, 0));
        let mut large = Ring::default();
        for n in 0..20 {
            large.push_back(&mut rings, Handle::at(n, 0));
        }
        assert_eq!(large.capacity(), 32);
        assert_eq!(large.start % 32, 0);
        let cells = rings.cells.len();
        large.release(&mut rings);
        for n in 0..9 {
            small.push_back(&mut rings, Handle::at(n, 0));
        }
        assert_eq!(small.capacity(), 16);
        assert_eq!(rings.cells.len(), cells, "freed blocks are reused");
    }
}
