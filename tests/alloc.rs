//! Steady state allocates nothing per message: header parse, UTF-8 decode and ACK build on
//! their own; the listener's receive path (read, header, UTF-8 decode, handler call, ACK build
//! and write); and the sender's send path, apart from the returned `Ack`'s own fields. Its own
//! test binary, because it counts allocations with a global allocator, per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use mllp::charset::{Charset, Malformed};
use mllp::hl7::{AckBuilder, Disposition, Header};
use mllp::{Listener, Response, Sender};

struct Counting;

thread_local! {
    // A const initialiser: reading it never allocates.
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

const WARMUP: u64 = 100;
const MEASURED: u64 = 1_000;

/// A message of about 1 KB whose control ID ends with a 6-digit counter.
fn message() -> (Vec<u8>, std::ops::Range<usize>) {
    let mut msg =
        b"MSH|^~\\&|SENDER|FAC|RECEIVER|FAC|20260101120000||ADT^A01^ADT_A01|M000000|P|2.5.1\r\
        EVN|A01|20260101120000\rPID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
            .to_vec();
    while msg.len() < 1000 {
        msg.extend_from_slice(b"NTE|1||Gr\xc3\xbc\xc3\x9fe aus dem Labor, UTF-8 text\r");
    }
    let at = msg.windows(7).position(|w| w == b"M000000").unwrap() + 1;
    (msg, at..at + 6)
}

fn put_counter(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[test]
fn steady_state_send_and_receive_do_not_allocate_per_message() {
    let probe = allocations();
    drop(std::hint::black_box(Box::new(1u8)));
    assert_eq!(allocations(), probe + 1, "the counter sees allocations");

    // The handler runs on the connection's thread: it records that thread's count when the
    // first and the last measured message arrive. Between the two lie exactly `MEASURED`
    // complete trips through the receive path (read, parse, decode, handler, ACK, write).
    let seen = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (seen, first, last) = (Arc::clone(&seen), Arc::clone(&first), Arc::clone(&last));
        move |_: &mllp::Message<'_>| {
            let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
            if n == WARMUP + 1 {
                first.store(allocations(), Ordering::Relaxed);
            } else if n == WARMUP + 1 + MEASURED {
                last.store(allocations(), Ordering::Relaxed);
            }
            Response::accept()
        }
    };
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(handler)
        .unwrap();
    let mut sender = Sender::builder(running.local_addr().to_string())
        .build()
        .unwrap();
    let (mut msg, counter) = message();
    let mut send = |n: u64, sender: &mut Sender| {
        put_counter(&mut msg[counter.clone()], n);
        let ack = sender.send_bytes(&msg).unwrap();
        assert!(ack.is_success());
    };
    for n in 0..=WARMUP {
        send(n, &mut sender);
    }
    let before = allocations();
    for n in 1..=MEASURED {
        send(WARMUP + n, &mut sender);
    }
    let sender_allocations = allocations() - before;
    running.shutdown();
    running.join().unwrap();

    assert_eq!(seen.load(Ordering::Relaxed), WARMUP + 1 + MEASURED);
    let listener_allocations = last.load(Ordering::Relaxed) - first.load(Ordering::Relaxed);
    println!(
        "per message: listener {:.2}, sender {:.2} allocations",
        listener_allocations as f64 / MEASURED as f64,
        sender_allocations as f64 / MEASURED as f64
    );
    assert_eq!(
        listener_allocations, 0,
        "the listener's receive path allocated {listener_allocations} times in {MEASURED} messages"
    );
    // The returned `Ack` owns two allocations: `raw` (the reply's bytes) and `control_id`.
    // Nothing else on the send path may allocate.
    assert!(
        sender_allocations <= 2 * MEASURED as usize,
        "the sender allocated {sender_allocations} times in {MEASURED} messages"
    );
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
