//! A client's byte stream, any bytes, through the frame guard in three ways: in one piece,
//! byte by byte, and in chunks of 1 to 64 bytes (`tandem_fuzz::FramesInput` gives the
//! layout). The guard never panics, gives the same verdict however the stream is cut, and
//! allocates less than a fixed budget whatever the stream's length.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::FramesInput;
use tandem_server::gateway::frames::{Breach, Headers};

/// Bytes the guard may allocate while it reads a whole stream (it needs none: it keeps a
/// header's 14 bytes and counts payload bytes, never copies them).
const BUDGET: usize = 256 * 1024;

/// The system allocator, counting the bytes asked of it.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to `System` unchanged; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let Some(input) = FramesInput::parse(data) else {
        return;
    };
    let whole = verdict(input.max_frame, std::iter::once(input.stream));
    let bytewise = verdict(input.max_frame, input.stream.chunks(1));
    let chunked = verdict(input.max_frame, input.chunks());
    assert_eq!(bytewise, whole, "byte by byte and in one piece differ");
    assert_eq!(chunked, whole, "in chunks and in one piece differ");
});

/// The guard's verdict on a stream that arrives as `chunks`: the first breach, if any.
/// Nothing is read after a breach, as the connection's stream ends there.
fn verdict<'a>(max_frame: usize, chunks: impl Iterator<Item = &'a [u8]>) -> Result<(), Breach> {
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut guard = Headers::new(max_frame);
    let mut result = Ok(());
    for chunk in chunks {
        result = guard.read(chunk);
        if result.is_err() {
            break;
        }
    }
    let allocated = ALLOCATED.load(Ordering::Relaxed) - before;
    assert!(
        allocated < BUDGET,
        "the guard allocated {allocated} bytes for a stream"
    );
    result
}
