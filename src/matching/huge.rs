//! Large arrays on huge pages.
//!
//! A pool of a million waiting users keeps a few arrays of tens to hundreds of megabytes
//! (summaries, entries, the ticket index) that every pairing reads at random places. With
//! 4 KiB pages nearly each such read also misses the processor's address-translation cache,
//! and the page-table walk costs about as much again; 2 MiB pages make those walks rare.
//! Only these arrays ask for huge pages: the rest of the server (per-connection buffers
//! above all) stays on small pages, where huge ones would raise memory per user by a third.

/// Below this many bytes an array stays on ordinary pages.
const HUGE_FROM: usize = 4 << 20;

/// An empty vector with room for `capacity` values, whose memory the kernel is asked to
/// back with huge pages when it is large. Best effort: where the kernel declines (or on
/// other systems), nothing changes.
pub(super) fn with_capacity<V>(capacity: usize) -> Vec<V> {
    let values = Vec::with_capacity(capacity);
    let bytes = capacity.saturating_mul(std::mem::size_of::<V>());
    #[cfg(target_os = "linux")]
    if bytes >= HUGE_FROM {
        const HUGE: usize = 2 << 20;
        let start = values.as_ptr() as usize;
        let first = start.next_multiple_of(HUGE);
        let end = (start + bytes) & !(HUGE - 1);
        if end > first {
            // SAFETY: the range lies within the vector's allocation, and MADV_HUGEPAGE only
            // changes how the kernel backs those pages, never their contents.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (bytes, HUGE_FROM);
    values
}

/// Makes room for one more value in `values`, doubling it onto huge pages when it is full
/// (instead of `Vec`'s own growth, which would copy into ordinary pages).
pub(super) fn reserve_one<V>(values: &mut Vec<V>) {
    if values.len() < values.capacity() {
        return;
    }
    let mut bigger = with_capacity((values.capacity() * 2).max(64));
    bigger.append(values);
    *values = bigger;
}
