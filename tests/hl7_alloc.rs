//! The receive hot path allocates nothing: header parse, UTF-8 decode and building an ACK into
//! a buffer that already has room. Its own test binary, because it counts allocations with a
//! global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mllp::{AckBuilder, Charset, Disposition, Header, Malformed};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls on the current thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn header_decode_and_ack_do_not_allocate() {
    let msg = "\u{FEFF}MSH|^~\\&|LAB|HOSP|EHR|CLINIC|20240101||ORU^R01^ORU_R01|CTRL-1|P|2.5.1|||AL|NE||UNICODE UTF-8\rPID|1||||Grüße\r";
    let probe = allocations();
    drop(std::hint::black_box(Box::new(1u8)));
    assert_eq!(allocations(), probe + 1, "the counter sees allocations");

    let mut out = Vec::with_capacity(1024);
    // Warm up once-initialised state (process start time for control IDs).
    let h = Header::parse(msg.as_bytes()).unwrap();
    AckBuilder::new(Disposition::Accept)
        .build(&h, &mut out)
        .unwrap();

    for disposition in [Disposition::Accept, Disposition::Error, Disposition::Reject] {
        out.clear();
        let before = allocations();
        let h = Header::parse(msg.as_bytes()).unwrap();
        let cs = Charset::from_header(&h, Charset::UTF_8);
        let text = cs.decode(msg.as_bytes(), Malformed::Reject).unwrap();
        let sent = AckBuilder::new(disposition)
            .text("could not store | retry")
            .build(&h, &mut out)
            .unwrap();
        let after = allocations();
        assert!(sent);
        assert!(text.text.starts_with("MSH|"));
        assert_eq!(
            after - before,
            0,
            "{disposition:?}: allocations on the hot path"
        );
    }
}
