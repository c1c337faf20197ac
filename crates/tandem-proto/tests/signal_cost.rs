//! A deeply nested `signal` costs no more than a flat one of the same size: the server cuts
//! the payload out of the frame and writes it into the partner's frame without building a
//! tree, so the work is one allocation for the payload whatever its shape. Counted here in
//! allocations (a tree would take one per array or object), which, unlike time, does not
//! depend on the machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tandem_proto::{ClientMsg, Codec, Frame, ServerMsg, MAX_SIGNAL_BYTES, MAX_SIGNAL_DEPTH};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations and bytes allocated to decode a client's `signal` and encode the partner's.
fn relay_cost(frame: &str) -> (usize, usize) {
    let (count, bytes) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    let decoded = Codec::Json.decode_text::<ClientMsg>(frame);
    let Ok(ClientMsg::Signal { chat, data }) = decoded else {
        panic!("a signal: {decoded:?}");
    };
    let Frame::Text(relayed) = Codec::Json.encode(&ServerMsg::Signal { chat, data }) else {
        panic!("a text frame");
    };
    let cost = (
        ALLOCATIONS.load(Ordering::Relaxed) - count,
        BYTES.load(Ordering::Relaxed) - bytes,
    );
    assert!(relayed.len() > MAX_SIGNAL_BYTES / 2);
    cost
}

fn signal(data: &str) -> String {
    format!(r#"{{"type":"signal","chat":"01","data":{data}}}"#)
}

// One test in this file: the counters are global.
#[test]
fn a_deep_signal_costs_no_more_than_a_flat_one_of_the_same_size() {
    // Arrays nested as deep as allowed, side by side, filling the limit.
    let part = format!(
        "{}{}",
        "[".repeat(MAX_SIGNAL_DEPTH - 1),
        "]".repeat(MAX_SIGNAL_DEPTH - 1)
    );
    let count = (MAX_SIGNAL_BYTES - 2) / (part.len() + 1);
    let deep = format!("[{}]", vec![part.as_str(); count].join(","));
    let flat = format!("\"{}\"", "a".repeat(deep.len() - 2));
    assert_eq!(deep.len(), flat.len());
    let deep_cost = relay_cost(&signal(&deep));
    let flat_cost = relay_cost(&signal(&flat));
    // A tree would take one allocation per array (over 8,000 here).
    assert!(
        deep_cost.0 <= flat_cost.0 && deep_cost.1 <= flat_cost.1,
        "deep {deep_cost:?} against flat {flat_cost:?} (allocations, bytes)"
    );
    assert!(deep_cost.0 <= 4, "{deep_cost:?}");
}
