//! Hints to the CPU to start loading what a search is about to read. In a pool of a million,
//! most of what a partner search touches is a miss to memory, and misses started together
//! are waited for together.

/// Asks the CPU to start loading `values`, which the caller is about to read: in a pool of
/// a million, most of what a partner search touches is a miss to memory, and misses started
/// together are waited for together. An empty slice is not touched (its address may be
/// dangling, and even a hint to an unmapped page costs a page walk).
pub(super) fn prefetch_all<T>(values: &[T]) {
    prefetch_bytes(values.as_ptr().cast(), std::mem::size_of_val(values));
}

/// Asks the CPU to start loading the value at `at`, which must point into a live
/// allocation (it is not read: a raw pointer also lets the caller hint at one element of a
/// vector while holding a mutable borrow of another).
pub(super) fn prefetch_at<T>(at: *const T) {
    prefetch_bytes(at.cast(), std::mem::size_of::<T>());
}

/// Asks the CPU to start loading the cache line that holds `value`.
#[inline(always)]
pub(super) fn prefetch_line<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: prefetching is a hint that never faults and has no effect on memory.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Every cache line `len` bytes from `start` touch, from the line holding the first byte to
/// the line holding the last (a value need not start on a line).
#[inline(always)]
fn prefetch_bytes(start: *const i8, len: usize) {
    if len == 0 {
        return;
    }
    let first = start.wrapping_sub(start as usize % 64);
    let last = start.wrapping_add(len - 1);
    #[cfg(target_arch = "x86_64")]
    for offset in (0..=(last as usize - first as usize)).step_by(64) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: prefetching is a hint that never faults and has no effect on memory
        // (`wrapping_add` keeps the address arithmetic defined whatever the pointer).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(offset)) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (first, last);
}
