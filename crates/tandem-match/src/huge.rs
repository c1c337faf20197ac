//! Large arrays on huge pages.
//!
//! A pool of a million waiting users keeps three arrays of tens to hundreds of megabytes (the
//! summaries, the entries and the lanes' buffers) that every pairing reads at random places.
//! With 4 KiB pages nearly each such read also misses the processor's address-translation
//! cache, and the page-table walk costs about as much again; 2 MiB pages make those walks
//! rare. Only these arrays ask for huge pages: the rest of the server (per-connection buffers
//! above all) stays on small pages, where huge ones would raise memory per user by a third.

/// Below this many bytes an array stays on ordinary pages.
const HUGE_FROM: usize = 4 << 20;

/// Gives the kernel `advice` for the whole 2 MiB pages within `bytes` from `start`. Best
/// effort: where the kernel declines (or on other systems), nothing changes.
fn advise(start: *const u8, bytes: usize, huge: bool) {
    #[cfg(target_os = "linux")]
    if bytes >= HUGE_FROM {
        const HUGE: usize = 2 << 20;
        let start = start as usize;
        let first = start.next_multiple_of(HUGE);
        let end = (start + bytes) & !(HUGE - 1);
        if end > first {
            let advice = if huge {
                libc::MADV_HUGEPAGE
            } else {
                libc::MADV_NOHUGEPAGE
            };
            // SAFETY: the range lies within one live allocation of the caller's, and this
            // advice only changes how the kernel backs those pages, never their contents.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, advice);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, bytes, huge, HUGE_FROM);
}

fn bytes_of<V>(capacity: usize) -> usize {
    capacity.saturating_mul(std::mem::size_of::<V>())
}

/// An empty vector with room for `capacity` values, whose memory the kernel is asked to
/// back with huge pages when it is large.
pub(super) fn with_capacity<V>(capacity: usize) -> Vec<V> {
    let values: Vec<V> = Vec::with_capacity(capacity);
    advise(
        values.as_ptr().cast(),
        bytes_of::<V>(values.capacity()),
        true,
    );
    values
}

/// Makes room for one more value in `values`, doubling it onto huge pages when it is full
/// (instead of `Vec`'s own growth, which would copy into ordinary pages). The old array's
/// advice is taken back before it is freed: the allocator reuses the range for anything,
/// per-connection buffers included.
pub(super) fn reserve_one<V>(values: &mut Vec<V>) {
    if values.len() < values.capacity() {
        return;
    }
    let mut bigger = with_capacity((values.capacity() * 2).max(64));
    bigger.append(values);
    let old = std::mem::replace(values, bigger);
    advise(old.as_ptr().cast(), bytes_of::<V>(old.capacity()), false);
}
