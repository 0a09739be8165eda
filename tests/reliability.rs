//! No loss under faults: the sender and the listener through the fault-injecting proxy
//! (`tests/proxy`), and a listener restarted in the middle of a long send.
//!
//! What is proved, for every message: it reached the handler at least once; the sender never
//! returned success for a message the handler had not got; a message reached the handler
//! more than once only if the sender wrote it more than once (after a fault hit between
//! delivery and ACK); and a failed send says truthfully whether the message may have arrived.

use mllp_testkit as common;
use mllp_testkit::proxy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{adt, eventually, Rng};
use mllp::hl7::AckCode;
use mllp::{
    Error, Listener, Message, Outcome, Phase, Response, RetryPolicy, RunningListener, Sender,
    SenderBuilder, Timeout,
};
use proxy::{Dir, Fault, Proxy};

/// The bound on waiting for another thread.
const LIMIT: Duration = Duration::from_secs(10);

/// How many times the handler saw each control ID.
type Seen = Arc<Mutex<HashMap<String, u32>>>;

fn recording_handler(seen: &Seen) -> impl Fn(&Message<'_>) -> Response + Send + Sync + 'static {
    let seen = Arc::clone(seen);
    move |m: &Message<'_>| {
        let id = m.control_id().unwrap_or_default().to_string();
        *seen.lock().unwrap().entry(id).or_default() += 1;
        Response::accept()
    }
}

fn recording_listener(addr: SocketAddr, seen: &Seen) -> RunningListener {
    Listener::builder(addr)
        .max_connections(64)
        .bind()
        .unwrap()
        .spawn(recording_handler(seen))
        .unwrap()
}

fn count(seen: &Seen, id: &str) -> u32 {
    seen.lock().unwrap().get(id).copied().unwrap_or(0)
}

/// A sender that retries quickly and patiently.
fn patient(addr: SocketAddr) -> SenderBuilder {
    Sender::builder(addr.to_string())
        .connect_timeout(Duration::from_secs(2))
        .ack_timeout(Duration::from_millis(400))
        .write_timeout(Duration::from_secs(2))
        .retry(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(5))
                .max_backoff(Duration::from_millis(20))
                .max_attempts(Some(50)),
        )
}

/// Waits until the listener serves no connection: every frame that reached it is handled.
fn quiesce(running: &RunningListener) {
    assert!(
        eventually(LIMIT, || running.stats().connections_open == 0),
        "connections stay open: {:?}",
        running.stats()
    );
}

/// A random plan: one disruptive fault at a random point within about 30 messages, sometimes
/// with benign faults (duplicated reply, 1-byte writes, small delays) in either direction.
fn random_plan(rng: &mut Rng) -> proxy::Plan {
    // A message is about 170 bytes, its ACK about 110 bytes framed.
    const SPAN: usize = 30;
    let mut plan = vec![match rng.below(5) {
        0 | 1 => Fault::CutAfter {
            dir: Dir::Up,
            bytes: rng.below(SPAN * 170) as u64,
        },
        2 | 3 => Fault::CutAfter {
            dir: Dir::Down,
            bytes: rng.below(SPAN * 110) as u64,
        },
        _ => Fault::DropReply {
            nth: rng.below(SPAN) as u64,
        },
    }];
    let dir = if rng.below(2) == 0 {
        Dir::Up
    } else {
        Dir::Down
    };
    match rng.below(6) {
        0 => plan.push(Fault::DuplicateReply {
            nth: rng.below(SPAN) as u64,
        }),
        1 => plan.push(Fault::OneByteWrites { dir }),
        2 => plan.push(Fault::Delay {
            dir,
            ms: 1 + rng.below(3) as u64,
        }),
        _ => {}
    }
    plan
}

#[test]
fn no_message_is_lost_under_random_faults() {
    const MESSAGES: usize = 2000;
    let seed = 0x00c0_ffee_u64;
    let seen: Seen = Arc::default();
    let running = recording_listener("127.0.0.1:0".parse().unwrap(), &seen);
    let mut rng = Rng(seed);
    let proxy = Proxy::start(running.local_addr(), move |_| random_plan(&mut rng));
    let mut sender = patient(proxy.addr()).build().unwrap();
    let started = Instant::now();
    // How many times the sender wrote each message completely.
    let mut written = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let id = format!("NL{i:05}");
        let before = sender.stats().frames_written;
        let ack = sender
            .send(&adt(&id))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            (ack.code, ack.control_id.as_str()),
            (AckCode::ApplicationAccept, id.as_str())
        );
        // Store-then-ACK: an acknowledged message has reached the handler already.
        assert!(
            count(&seen, &id) >= 1,
            "{id} acknowledged but never handled"
        );
        written.push(sender.stats().frames_written - before);
    }
    let elapsed = started.elapsed();
    drop(sender);
    let counts = proxy.counts();
    drop(proxy);
    quiesce(&running);

    let seen_now = seen.lock().unwrap().clone();
    let mut duplicates = 0;
    for (i, &times_written) in written.iter().enumerate() {
        let id = format!("NL{i:05}");
        let handled = seen_now.get(&id).copied().unwrap_or(0);
        assert!(handled >= 1, "{id} lost");
        // A message is handled once per complete write at most: a duplicate needs a resend,
        // which needs a fault after the message was written.
        assert!(
            u64::from(handled) <= times_written,
            "{id} handled {handled} times but written {times_written} times"
        );
        duplicates += handled - 1;
    }
    assert_eq!(
        seen_now.len(),
        MESSAGES,
        "unexpected control IDs were handled"
    );
    let stats = running.stats();
    eprintln!(
        "{MESSAGES} messages in {elapsed:?} through {} proxy connections; faults fired: {} cuts \
         upstream, {} cuts downstream, {} replies dropped, {} duplicated; {duplicates} duplicate \
         deliveries; listener: {} messages, {} connections",
        counts.connections,
        counts.cuts_up,
        counts.cuts_down,
        counts.dropped_replies,
        counts.duplicated_replies,
        stats.messages,
        stats.connections_total
    );
    // The seeded plans make faults hit both directions.
    assert!(counts.cuts_up > 0 && counts.cuts_down > 0 && counts.dropped_replies > 0);
    assert!(counts.duplicated_replies > 0, "{counts:?}");
    // Only faults that struck after a message was delivered can duplicate it: a cut upstream
    // just after a complete frame, a cut downstream, or a swallowed reply; at most one each.
    assert!(
        u64::from(duplicates) <= counts.disruptive(),
        "{duplicates} duplicates from {} disruptive faults",
        counts.disruptive()
    );
    stop(running);
}

#[test]
fn without_retries_every_failure_says_whether_the_message_may_have_arrived() {
    const MESSAGES: usize = 400;
    let seen: Seen = Arc::default();
    let running = recording_listener("127.0.0.1:0".parse().unwrap(), &seen);
    let mut rng = Rng(0x0b5e_55ed);
    let proxy = Proxy::start(running.local_addr(), move |_| random_plan(&mut rng));
    let mut sender = patient(proxy.addr())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let mut results = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let id = format!("CL{i:04}");
        let result = sender.send(&adt(&id));
        if let Ok(ack) = &result {
            assert_eq!(ack.control_id, id);
            assert!(
                count(&seen, &id) == 1,
                "{id} acknowledged but not handled once"
            );
        }
        results.push((id, result));
    }
    drop(sender);
    drop(proxy);
    quiesce(&running);
    let (mut ok, mut not_delivered, mut unconfirmed_arrived, mut unconfirmed_lost) = (0, 0, 0, 0);
    for (id, result) in &results {
        let handled = count(&seen, id);
        match result {
            Ok(_) => {
                assert_eq!(handled, 1, "{id}");
                ok += 1;
            }
            Err(Error::Delivery {
                outcome: Outcome::NotDelivered,
                attempts: 1,
                ..
            }) => {
                // The one promise of "not delivered": the listener never got it.
                assert_eq!(handled, 0, "{id} reported not delivered but was handled");
                not_delivered += 1;
            }
            Err(Error::Delivery {
                outcome: Outcome::Unconfirmed,
                attempts: 1,
                last,
            }) => {
                assert!(
                    matches!(
                        **last,
                        Error::Closed
                            | Error::Timeout(Timeout::Ack)
                            | Error::Io { .. }
                            | Error::Frame(_)
                    ),
                    "{id}: {last:?}"
                );
                assert!(
                    handled <= 1,
                    "{id} handled {handled} times without a resend"
                );
                if handled == 1 {
                    unconfirmed_arrived += 1;
                } else {
                    unconfirmed_lost += 1;
                }
            }
            Err(e) => panic!("{id}: unexpected error {e:?}"),
        }
    }
    eprintln!(
        "{MESSAGES} sends without retry: {ok} acknowledged, {not_delivered} not delivered, \
         {unconfirmed_arrived} unconfirmed that arrived, {unconfirmed_lost} unconfirmed that \
         did not"
    );
    // Both kinds of unconfirmed happen: the outcome cannot be decided by the sender.
    assert!(unconfirmed_arrived > 0 && unconfirmed_lost > 0);
    assert!(ok > MESSAGES / 2);
    stop(running);
}

#[test]
fn scripted_faults_give_the_right_outcome() {
    let seen: Seen = Arc::default();
    let running = recording_listener("127.0.0.1:0".parse().unwrap(), &seen);
    let upstream = running.local_addr();
    let once = |addr| {
        patient(addr)
            .ack_timeout(Duration::from_millis(300))
            .retry(RetryPolicy::none())
            .build()
            .unwrap()
    };

    // Cut before a byte is forwarded, and a message far larger than the socket buffers: the
    // write itself fails, so the message certainly did not arrive.
    let proxy = Proxy::scripted(
        upstream,
        vec![vec![Fault::CutAfter {
            dir: Dir::Up,
            bytes: 0,
        }]],
    );
    let mut big = adt("BIG");
    while big.len() < 12 << 20 {
        big.push_str(
            "NTE|1||0123456789012345678901234567890123456789012345678901234567890123456789\r",
        );
    }
    let err = once(proxy.addr()).send(&big).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Delivery { outcome: Outcome::NotDelivered, attempts: 1, last }
                if matches!(**last, Error::Io { phase: Phase::Write, .. })
        ),
        "{err:?}"
    );
    drop(proxy);

    // The reply is swallowed: the message arrived, the sender cannot know: unconfirmed.
    let proxy = Proxy::scripted(upstream, vec![vec![Fault::DropReply { nth: 0 }]]);
    let err = once(proxy.addr()).send(&adt("DROPPED")).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Delivery { outcome: Outcome::Unconfirmed, attempts: 1, last }
                if matches!(**last, Error::Timeout(Timeout::Ack))
        ),
        "{err:?}"
    );
    assert_eq!(count(&seen, "DROPPED"), 1);
    assert_eq!(proxy.counts().dropped_replies, 1);
    drop(proxy);

    // Cut in the middle of the frame: written as far as the sender can tell, so unconfirmed,
    // though the listener got only half a frame and never handled it.
    let proxy = Proxy::scripted(
        upstream,
        vec![vec![Fault::CutAfter {
            dir: Dir::Up,
            bytes: 40,
        }]],
    );
    let err = once(proxy.addr()).send(&adt("HALF")).unwrap_err();
    assert_eq!(err.outcome(), Some(Outcome::Unconfirmed), "{err:?}");
    drop(proxy);

    // With retries, the same cut: the half frame is sent again and handled once.
    let proxy = Proxy::scripted(
        upstream,
        vec![vec![Fault::CutAfter {
            dir: Dir::Up,
            bytes: 40,
        }]],
    );
    let mut sender = patient(proxy.addr()).build().unwrap();
    assert_eq!(sender.send(&adt("HALF2")).unwrap().control_id, "HALF2");
    assert_eq!(
        (sender.stats().retries, sender.stats().frames_written),
        (1, 2)
    );
    drop(sender);
    drop(proxy);

    // A cut in the reply, after delivery: the resend makes the one duplicate.
    let proxy = Proxy::scripted(
        upstream,
        vec![vec![Fault::CutAfter {
            dir: Dir::Down,
            bytes: 10,
        }]],
    );
    let mut sender = patient(proxy.addr()).build().unwrap();
    assert_eq!(sender.send(&adt("TWICE")).unwrap().control_id, "TWICE");
    assert_eq!(
        (sender.stats().retries, sender.stats().frames_written),
        (1, 2)
    );
    drop(sender);
    assert_eq!(proxy.counts().cuts_down, 1);
    drop(proxy);
    quiesce(&running);
    assert_eq!(count(&seen, "BIG"), 0);
    assert_eq!(count(&seen, "HALF"), 0);
    assert_eq!(count(&seen, "HALF2"), 1);
    assert_eq!(count(&seen, "TWICE"), 2);
    stop(running);
}

#[test]
fn a_listener_restarted_mid_send_loses_nothing() {
    const MESSAGES: usize = 5000;
    const RESTART_AT: usize = 2500;
    let seen: Seen = Arc::default();
    let first = recording_listener("127.0.0.1:0".parse().unwrap(), &seen);
    let addr = first.local_addr();
    let acked = Arc::new(AtomicU64::new(0));
    let (half_tx, half_rx) = mpsc::channel();
    let acked2 = Arc::clone(&acked);
    let sending = thread::spawn(move || {
        // Patient enough to ride out the restart (bounded by time, not attempts).
        let mut sender = patient(addr)
            .ack_timeout(Duration::from_secs(2))
            .retry(
                RetryPolicy::default()
                    .initial_backoff(Duration::from_millis(5))
                    .max_backoff(Duration::from_millis(50))
                    .max_attempts(None),
            )
            .total_timeout(Some(Duration::from_secs(20)))
            .build()
            .unwrap();
        for i in 0..MESSAGES {
            let id = format!("RS{i:05}");
            let ack = sender
                .send(&adt(&id))
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(ack.control_id, id);
            if acked2.fetch_add(1, Ordering::Relaxed) + 1 == RESTART_AT as u64 {
                half_tx.send(()).unwrap();
            }
        }
        sender.stats()
    });
    half_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("half the messages acknowledged");
    first.shutdown();
    first.join().unwrap();
    let down_at = acked.load(Ordering::Relaxed);
    // The same port again; std sets SO_REUSEADDR, so connections in TIME_WAIT do not block
    // it, but give the old socket a moment to go away.
    let mut second = None;
    let end = Instant::now() + LIMIT;
    while second.is_none() && Instant::now() < end {
        match Listener::builder(addr).max_connections(64).bind() {
            Ok(listener) => second = Some(listener.spawn(recording_handler(&seen)).unwrap()),
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    let second = second.expect("the port can be bound again");
    let stats = sending.join().unwrap();
    let seen_now = seen.lock().unwrap();
    for i in 0..MESSAGES {
        let id = format!("RS{i:05}");
        assert!(seen_now.contains_key(&id), "{id} lost");
    }
    let duplicates: u32 = seen_now.values().map(|n| n - 1).sum();
    eprintln!(
        "restart after {down_at} ACKs: {} reconnects, {} retries, {duplicates} duplicates",
        stats.reconnects, stats.retries
    );
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(u64::from(duplicates) <= stats.retries);
    drop(seen_now);
    assert!(second.stats().messages > 0);
    stop(second);
}

/// Benign faults (1-byte writes, a delay, a duplicated ACK) change nothing but the timing.
#[test]
fn proxy_relays_cleanly_without_faults() {
    let seen: Seen = Arc::default();
    let running = recording_listener("127.0.0.1:0".parse().unwrap(), &seen);
    let proxy = Proxy::scripted(
        running.local_addr(),
        vec![vec![
            Fault::OneByteWrites { dir: Dir::Up },
            Fault::OneByteWrites { dir: Dir::Down },
            Fault::Delay {
                dir: Dir::Down,
                ms: 1,
            },
            Fault::DuplicateReply { nth: 1 },
        ]],
    );
    let mut sender = patient(proxy.addr()).build().unwrap();
    for i in 0..20 {
        let id = format!("P{i}");
        assert_eq!(sender.send(&adt(&id)).unwrap().control_id, id);
    }
    let stats = sender.stats();
    // The duplicated ACK was read as a stale reply and skipped, or (when only part of it had
    // arrived, one byte at a time, by the next write) the connection was replaced before that
    // write so its rest cannot be taken for the next reply. Either way nothing was resent.
    let seen_stats = (stats.connects, stats.retries, stats.skipped_frames);
    assert!(
        matches!(seen_stats, (1, 0, 1) | (2, 0, 0)),
        "(connects, retries, skipped frames) = {seen_stats:?}"
    );
    assert_eq!(proxy.counts().duplicated_replies, 1);
    drop(sender);
    drop(proxy);
    quiesce(&running);
    assert!(seen.lock().unwrap().values().all(|&n| n == 1));
    stop(running);
}

fn stop(running: RunningListener) {
    running.shutdown();
    running.join().unwrap();
}
