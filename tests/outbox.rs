//! The durable outbox: delivery in order, recovery after a crash, bounds, dead letters, hold,
//! the lock, a full disk. Damage, gaps and a lost cursor: `tests/outbox_recovery.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mllp::{Error, HandledAs, OnReject, Outbox, OutboxConfig, RetryPolicy};
use mllp_testkit::downstream::{Downstream, Silent};
use mllp_testkit::{adt, eventually, scratch_dir, skip};

const LIMIT: Duration = Duration::from_secs(20);

fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(None)
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(50))
}

fn config(to: &str) -> OutboxConfig {
    OutboxConfig::new(to)
        .retry(fast_retry())
        .poll_interval(Duration::from_millis(20))
}

fn ids(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("M{i:05}")).collect()
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn delivers_in_order_and_releases_segments() {
    let down = Downstream::start("127.0.0.1:0", &[]);
    let dir = scratch_dir("outbox-order");
    let outbox = Outbox::open(&dir, config(&down.addr()).segment_bytes(2_000)).unwrap();
    let want = ids(0..200);
    for id in &want {
        outbox.enqueue(&adt(id)).unwrap();
    }
    assert!(eventually(LIMIT, || outbox.stats().delivered == 200));
    assert_eq!(down.seen(), want);
    let stats = outbox.stats();
    assert_eq!(
        (stats.pending, stats.pending_bytes, stats.dead_lettered),
        (0, 0, 0)
    );
    assert_eq!(stats.oldest_pending_age, None);
    // Dozens of segments were written; once delivered, only the one being appended to is left.
    assert!(eventually(LIMIT, || segment_files(&dir).len() == 1));
    outbox.close().unwrap();
    assert_eq!(Outbox::inspect(&dir).unwrap().delivered, 200);
}

/// A record is read back for delivery in one read of a few kilobytes, a longer one in two:
/// records of every size around that reach arrive whole, byte for byte.
#[test]
fn records_longer_than_one_read_are_delivered_whole() {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&got);
    let down = mllp::Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(move |m: &mllp::Message<'_>| {
            seen.lock().unwrap().push(m.text().to_owned());
            mllp::Response::accept()
        })
        .unwrap();
    let dir = scratch_dir("outbox-long-records");
    let outbox = Outbox::open(&dir, config(&down.local_addr().to_string())).unwrap();
    let sent: Vec<String> = [0, 3_000, 4_000, 4_050, 4_100, 9_000, 100_000]
        .iter()
        .map(|&n| format!("{}NTE|1||{}\r", adt(&format!("L{n}")), "x".repeat(n)))
        .collect();
    for text in &sent {
        outbox.enqueue(text).unwrap();
    }
    assert!(eventually(LIMIT, || outbox.stats().delivered == sent.len() as u64));
    outbox.close().unwrap();
    assert_eq!(*got.lock().unwrap(), sent);
    down.shutdown();
}

#[test]
fn pending_messages_survive_a_reopen_and_go_out_in_order() {
    let dir = scratch_dir("outbox-reopen");
    let down = Downstream::start("127.0.0.1:0", &[]);
    let outbox = Outbox::open(&dir, config(&down.addr()).deliver(false)).unwrap();
    for id in ids(0..30) {
        outbox.enqueue(&adt(&id)).unwrap();
    }
    let stats = outbox.stats();
    assert_eq!(stats.pending, 30);
    assert!(stats.oldest_pending_age.is_some());
    drop(outbox);
    let offline = Outbox::inspect(&dir).unwrap();
    assert_eq!((offline.pending, offline.delivered), (30, 0));
    let outbox = Outbox::open(&dir, config(&down.addr())).unwrap();
    assert!(eventually(LIMIT, || outbox.stats().delivered == 30));
    assert_eq!(down.seen(), ids(0..30));
}

#[test]
fn a_torn_last_record_is_cut_at_every_offset_keeping_the_earlier_ones() {
    let dir = scratch_dir("outbox-torn-src");
    let outbox = Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap();
    for id in ids(0..3) {
        outbox.enqueue(&adt(&id)).unwrap();
    }
    outbox.close().unwrap();
    let seg = segment_files(&dir).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let record = 20 + adt("M00002").len();
    let last_start = bytes.len() - record;
    let work = scratch_dir("outbox-torn");
    for cut in last_start..bytes.len() {
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(work.join("segments")).unwrap();
        std::fs::write(
            work.join("segments").join(seg.file_name().unwrap()),
            &bytes[..cut],
        )
        .unwrap();
        let down = Downstream::start("127.0.0.1:0", &[]);
        let outbox = Outbox::open(&work, config(&down.addr()).deliver(false)).unwrap();
        assert_eq!(outbox.stats().pending, 2, "cut at {cut}");
        // The next record follows the last complete one: nothing is lost after the cut.
        outbox.enqueue(&adt("NEXT")).unwrap();
        drop(outbox);
        let after = std::fs::read(work.join("segments").join(seg.file_name().unwrap())).unwrap();
        assert_eq!(&after[..last_start], &bytes[..last_start], "cut at {cut}");
        assert_eq!(Outbox::inspect(&work).unwrap().pending, 3, "cut at {cut}");
        if cut % 16 == 0 || cut + 1 == bytes.len() {
            let outbox = Outbox::open(&work, config(&down.addr())).unwrap();
            assert!(eventually(LIMIT, || outbox.stats().delivered == 3));
            assert_eq!(down.seen(), ["M00000", "M00001", "NEXT"], "cut at {cut}");
        }
    }
}

#[test]
fn a_full_outbox_refuses_at_once_and_takes_again_after_delivery() {
    let dir = scratch_dir("outbox-full");
    let outbox = Outbox::open(&dir, config("127.0.0.1:9").deliver(false).max_messages(3)).unwrap();
    for id in ids(0..3) {
        outbox.enqueue(&adt(&id)).unwrap();
    }
    let err = outbox.enqueue(&adt("M9")).unwrap_err();
    assert!(matches!(err, Error::Full { pending: 3, .. }), "{err:?}");
    assert_eq!(outbox.stats().refused_full, 1);
    drop(outbox);
    let bytes_cap = Outbox::open(&dir, config("127.0.0.1:9").deliver(false).max_bytes(50));
    let outbox = bytes_cap.unwrap();
    assert!(matches!(
        outbox.enqueue(&adt("M9")),
        Err(Error::Full { .. })
    ));
    drop(outbox);
    let down = Downstream::start("127.0.0.1:0", &[]);
    let outbox = Outbox::open(&dir, config(&down.addr()).max_messages(3)).unwrap();
    assert!(eventually(LIMIT, || outbox.stats().delivered == 3));
    outbox.enqueue(&adt("M9")).unwrap();
    assert!(eventually(LIMIT, || outbox.stats().delivered == 4));
}

#[test]
fn concurrent_enqueues_share_flushes() {
    let dir = scratch_dir("outbox-group");
    let outbox = Arc::new(Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap());
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let outbox = Arc::clone(&outbox);
            std::thread::spawn(move || {
                for i in 0..40 {
                    outbox.enqueue(&adt(&format!("T{t}-{i}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = outbox.stats();
    assert_eq!(stats.pending, 640);
    // One flush per enqueue would be 640.
    assert!(
        stats.syncs < 640,
        "{} flushes for 640 messages",
        stats.syncs
    );
    eprintln!("{} flushes for 640 messages", stats.syncs);
    drop(outbox);
    assert_eq!(Outbox::inspect(&dir).unwrap().pending, 640);
}

#[test]
fn a_rejected_message_is_dead_lettered_with_its_ack_and_requeued() {
    let down = Downstream::start("127.0.0.1:0", &["M00002"]);
    let dir = scratch_dir("outbox-dead");
    let outbox = Outbox::open(&dir, config(&down.addr())).unwrap();
    for id in ids(0..5) {
        outbox.enqueue(&adt(&id)).unwrap();
    }
    assert!(eventually(LIMIT, || {
        let s = outbox.stats();
        s.delivered == 4 && s.dead_lettered == 1
    }));
    assert_eq!(down.seen(), ["M00000", "M00001", "M00003", "M00004"]);
    let dead = Outbox::dead_letters(&dir).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].control_id().as_deref(), Some("M00002"));
    assert!(
        dead[0].reason.contains("MSA|AE|M00002"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].reason.contains("downstream refuses this one"));
    assert_eq!(dead[0].message, adt("M00002").into_bytes());
    down.stop_rejecting();
    assert_eq!(Outbox::requeue_dead(&dir).unwrap(), 1);
    assert!(eventually(LIMIT, || outbox.stats().delivered == 5));
    // Requeued: no longer counted as a dead letter.
    assert_eq!(outbox.stats().dead_lettered, 0);
    assert_eq!(down.seen().last().map(String::as_str), Some("M00002"));
    assert!(Outbox::dead_letters(&dir).unwrap().is_empty());
    // Purging deletes what is there.
    std::fs::write(dir.join("dead").join("x.dead"), b"junk").unwrap();
    assert_eq!(Outbox::purge_dead(&dir).unwrap(), 1);
}

#[test]
fn hold_stops_at_a_rejected_message_and_resumes_on_requeue() {
    let down = Downstream::start("127.0.0.1:0", &["M00001"]);
    let dir = scratch_dir("outbox-hold");
    let outbox = Outbox::open(&dir, config(&down.addr()).on_reject(OnReject::Hold)).unwrap();
    for id in ids(0..4) {
        outbox.enqueue(&adt(&id)).unwrap();
    }
    assert!(eventually(LIMIT, || outbox.stats().held));
    let stats = outbox.stats();
    assert_eq!(
        (stats.delivered, stats.pending, stats.dead_lettered),
        (1, 3, 0)
    );
    assert!(Outbox::inspect(&dir).unwrap().held);
    // Held: nothing after the rejected message goes out, however long we wait for it.
    assert!(!eventually(Duration::from_millis(300), || down
        .seen()
        .len()
        > 1));
    down.stop_rejecting();
    Outbox::requeue_dead(&dir).unwrap();
    assert!(eventually(LIMIT, || outbox.stats().delivered == 4));
    assert_eq!(down.seen(), ids(0..4));
    assert!(!outbox.stats().held);
}

#[test]
fn a_retry_limit_dead_letters_an_undeliverable_message() {
    let dir = scratch_dir("outbox-limit");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let outbox = Outbox::open(
        &dir,
        config(&addr).retry(fast_retry().max_attempts(Some(2))),
    )
    .unwrap();
    outbox.enqueue(&adt("LOST")).unwrap();
    assert!(eventually(LIMIT, || outbox.stats().dead_lettered == 1));
    let dead = Outbox::dead_letters(&dir).unwrap();
    assert!(
        dead[0].reason.contains("after 2 attempts"),
        "{}",
        dead[0].reason
    );
}

#[test]
fn a_second_opener_gets_a_lock_error_naming_the_holder() {
    let dir = scratch_dir("outbox-lock");
    let outbox = Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap();
    let err = Outbox::open(&dir, config("127.0.0.1:9")).unwrap_err();
    assert!(
        matches!(err, Error::Locked { pid, .. } if pid == std::process::id()),
        "{err:?}"
    );
    assert!(err.to_string().contains(&std::process::id().to_string()));
    assert_eq!(Outbox::holder(&dir), Some(std::process::id()));
    // Reading needs no lock.
    assert_eq!(Outbox::inspect(&dir).unwrap().pending, 0);
    drop(outbox);
    assert_eq!(Outbox::holder(&dir), None);
    // A lock left by a process that no longer exists is taken over.
    std::fs::write(dir.join("lock"), "999999999\n").unwrap();
    Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap();
}

#[test]
fn bad_input_is_refused_before_it_is_queued() {
    let dir = scratch_dir("outbox-input");
    let outbox = Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap();
    assert!(matches!(outbox.enqueue("not hl7"), Err(Error::Header(_))));
    assert!(matches!(outbox.enqueue(""), Err(Error::Header(_))));
    assert_eq!(outbox.stats().pending, 0);
    assert!(matches!(
        Outbox::open(dir.join("x"), config("a:1").max_messages(0)),
        Err(Error::Config(_))
    ));
}

/// A real full disk: a 256 KiB tmpfs (needs root and a `mount` that works, as in CI's
/// container).
#[test]
fn a_full_disk_is_an_error_leaves_no_corrupt_segment_and_recovers() {
    let mnt = scratch_dir("outbox-disk");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .output();
    if !mounted.is_ok_and(|o| o.status.success()) {
        return skip("cannot mount a small tmpfs (needs root) to fill a disk");
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    let dir = mnt.join("outbox");
    let down = Downstream::start("127.0.0.1:0", &[]);
    let small = |c: OutboxConfig| c.segment_bytes(32_000);
    let outbox = Outbox::open(&dir, small(config(&down.addr())).deliver(false)).unwrap();
    let big = format!("{}{}\r", adt("BIG"), "x".repeat(8_000));
    let mut taken = 0;
    let err = loop {
        match outbox.enqueue(&big) {
            Ok(()) => taken += 1,
            Err(e) => break e,
        }
        assert!(taken < 1_000, "the disk never filled");
    };
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(taken > 5);
    assert_eq!(outbox.stats().pending, taken);
    drop(outbox);
    // No partial record was left behind: every segment scans clean, all messages kept.
    assert_eq!(Outbox::inspect(&dir).unwrap().pending, taken);
    let outbox = Outbox::open(&dir, small(config(&down.addr()))).unwrap();
    assert!(eventually(LIMIT, || outbox.stats().delivered == taken));
    // Space returned as segments were released: messages are taken again.
    assert!(eventually(LIMIT, || outbox.enqueue(&big).is_ok()));
    assert!(eventually(LIMIT, || outbox.stats().delivered == taken + 1));
    drop(outbox);
    assert!(std::fs::read_dir(&dir).is_ok());
}

/// A rejected message held at the head is visible to another process (MSH-10, attempts, the
/// ACK's MSA-3), and an operator's skip, asked while the outbox runs, dead-letters it so that
/// the rest flows; one report per message handled.
#[test]
fn a_held_head_is_shown_and_skipped_while_the_outbox_runs() {
    let down = Downstream::start("127.0.0.1:0", &["M00001"]);
    let dir = scratch_dir("outbox-head-held");
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handled2 = Arc::clone(&handled);
    let config = config(&down.addr())
        .on_reject(OnReject::Hold)
        .on_handled(move |h| handled2.lock().unwrap().push(h.clone()));
    let outbox = Outbox::open(&dir, config).unwrap();
    assert_eq!(Outbox::head(&dir).unwrap(), None);
    for id in ids(0..3) {
        outbox.enqueue(&adt(&id)).unwrap();
    }
    assert!(eventually(LIMIT, || outbox.stats().held));
    let head = Outbox::head(&dir).unwrap().expect("the held head is shown");
    assert_eq!(head.control_id.as_deref(), Some("M00001"));
    assert!(head.attempts >= 1);
    let first = head.last_error.lines().next().unwrap();
    assert!(first.starts_with("AE from 127.0.0.1:"), "{first}");
    assert!(first.ends_with(": downstream refuses this one"), "{first}");
    let skipped = Outbox::skip_head(&dir, LIMIT).unwrap().expect("skipped");
    assert_eq!(skipped.name, head.name);
    assert!(eventually(LIMIT, || outbox.stats().delivered == 2));
    assert_eq!(down.seen(), ["M00000", "M00002"]);
    let dead = Outbox::dead_letters(&dir).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].name, head.name);
    assert!(
        dead[0].reason.starts_with("skipped by an operator after"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].reason.contains("downstream refuses this one"));
    let stats = outbox.stats();
    assert!(!stats.held && stats.pending == 0, "{stats:?}");
    assert_eq!(Outbox::head(&dir).unwrap(), None);
    assert!(!dir.join("skip").exists());
    // Nothing stuck: nothing to skip.
    assert_eq!(Outbox::skip_head(&dir, LIMIT).unwrap(), None);
    drop(outbox);
    let handled = handled.lock().unwrap();
    let seen: Vec<_> = handled
        .iter()
        .map(|h| {
            (
                h.control_id.clone().unwrap(),
                h.to.clone(),
                h.outcome.clone(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(matches!(&seen[0].2, HandledAs::Delivered(ack) if ack.code.as_str() == "AA"));
    assert_eq!(seen[1].0, "M00001");
    assert!(matches!(&seen[1].2, HandledAs::DeadLettered(why) if why.starts_with("skipped")));
    assert_eq!(
        (seen[2].0.as_str(), seen[2].1.as_str()),
        ("M00002", down.addr().as_str())
    );
}

/// A downstream that never answers: the head shows the timeouts while they last; with no
/// outbox running, a skip takes the lock and dead-letters it itself, and the next open
/// delivers the rest. A rejection dead-lettered keeps MSA-3 in the report.
#[test]
fn a_head_that_times_out_is_shown_and_skipped_offline() {
    let silent = Silent::start();
    let dir = scratch_dir("outbox-head-silent");
    let mut sender = mllp::SenderConfig::default();
    sender.timeouts.ack = Duration::from_millis(100);
    let outbox = Outbox::open(&dir, config(&silent.addr()).sender(sender)).unwrap();
    for id in ids(0..3) {
        outbox.enqueue(&adt(&id)).unwrap();
    }
    assert!(eventually(LIMIT, || Outbox::head(&dir)
        .unwrap()
        .is_some_and(|h| h.attempts >= 3)));
    let head = Outbox::head(&dir).unwrap().unwrap();
    assert_eq!(head.control_id.as_deref(), Some("M00000"));
    assert!(
        head.last_error.contains("timed out") || head.last_error.contains("timeout"),
        "{}",
        head.last_error
    );
    assert!(head.first_failure_at <= head.last_failure_at);
    drop(outbox);
    assert_eq!(Outbox::holder(&dir), None);
    let skipped = Outbox::skip_head(&dir, LIMIT).unwrap().expect("skipped");
    assert_eq!(skipped.control_id.as_deref(), Some("M00000"));
    assert_eq!(Outbox::head(&dir).unwrap(), None);
    let stats = Outbox::inspect(&dir).unwrap();
    assert_eq!((stats.pending, stats.dead_lettered), (2, 1));
    let down = Downstream::start("127.0.0.1:0", &["M00002"]);
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handled2 = Arc::clone(&handled);
    let config = config(&down.addr()).on_handled(move |h| handled2.lock().unwrap().push(h.clone()));
    let outbox = Outbox::open(&dir, config).unwrap();
    assert!(eventually(LIMIT, || handled.lock().unwrap().len() == 2));
    assert_eq!(down.seen(), ["M00001"]);
    let last = handled.lock().unwrap()[1].clone();
    match last.outcome {
        HandledAs::Rejected(ack) => {
            assert_eq!(ack.text.as_deref(), Some("downstream refuses this one"))
        }
        other => panic!("{other:?}"),
    }
    drop(outbox);
}

/// The operations on an existing outbox refuse a directory that is not one, and create
/// nothing there; an outbox cannot be opened toward an address it can never deliver to.
#[test]
fn operations_on_a_missing_outbox_fail_and_create_nothing() {
    let missing = scratch_dir("outbox-missing").join("typo");
    assert!(Outbox::requeue_dead(&missing).is_err());
    assert!(Outbox::purge_dead(&missing).is_err());
    assert!(Outbox::dead_letters(&missing).is_err());
    assert!(Outbox::inspect(&missing).is_err());
    assert!(Outbox::head(&missing).is_err());
    assert!(Outbox::skip_head(&missing, LIMIT).is_err());
    assert!(!missing.exists(), "{} was created", missing.display());
    let dir = scratch_dir("outbox-bad-to");
    for to in ["127.0.0.1:", "nonsense", "127.0.0.1:99999", ""] {
        let err = Outbox::open(dir.join("spool"), config(to)).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{to:?}: {err:?}");
    }
    assert!(!dir.join("spool").exists());
}

/// The bytes of every segment file of `dir`.
fn segment_bytes_on_disk(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Delivered messages give their disk space back without waiting for a 16 MiB segment to
/// fill, and the bounds count only what is not delivered.
#[test]
fn delivered_messages_give_their_disk_space_back() {
    let down = Downstream::start("127.0.0.1:0", &[]);
    let dir = scratch_dir("outbox-release");
    // The default segment size; at most 100 kB pending, 1.4 MB enqueued in all.
    let outbox = Outbox::open(&dir, config(&down.addr()).max_bytes(100_000)).unwrap();
    let body = "x".repeat(400);
    for i in 0..3_000 {
        let m = format!("{}{body}\r", adt(&format!("M{i:05}")));
        assert!(
            eventually(LIMIT, || outbox.enqueue(&m).is_ok()),
            "message {i}"
        );
    }
    assert!(eventually(LIMIT, || outbox.stats().delivered == 3_000));
    // At most 64 KiB of delivered records are kept, and 64 KiB of zeros written ahead.
    assert!(
        eventually(LIMIT, || segment_bytes_on_disk(&dir) <= 128 * 1024),
        "{} bytes of delivered messages kept on disk",
        segment_bytes_on_disk(&dir)
    );
    outbox.close().unwrap();
    // Nothing was lost or delivered twice, and a reopen finds nothing pending.
    assert_eq!(down.seen().len(), 3_000);
    assert_eq!(Outbox::inspect(&dir).unwrap().pending, 0);
}

/// A spool on a 1 MiB file system, the downstream up: messages go on being taken long after
/// more than 1 MiB went through, and after a restart (needs root and a `mount` that works).
#[test]
fn a_small_disk_keeps_taking_messages_once_they_are_delivered() {
    let mnt = scratch_dir("outbox-small-disk");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .output();
    if !mounted.is_ok_and(|o| o.status.success()) {
        return skip("cannot mount a small tmpfs (needs root) for a small disk");
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    let dir = mnt.join("outbox");
    let down = Downstream::start("127.0.0.1:0", &[]);
    let body = "x".repeat(400);
    let message = |i: u32| format!("{}{body}\r", adt(&format!("M{i:05}")));
    let outbox = Outbox::open(&dir, config(&down.addr())).unwrap();
    // 4,000 messages of about 480 bytes: about twice the disk.
    for i in 0..4_000 {
        let m = message(i);
        assert!(
            eventually(LIMIT, || outbox.enqueue(&m).is_ok()),
            "message {i}"
        );
    }
    assert!(eventually(LIMIT, || outbox.stats().delivered == 4_000));
    drop(outbox);
    let outbox = Outbox::open(&dir, config(&down.addr())).unwrap();
    for i in 4_000..4_100 {
        let m = message(i);
        assert!(
            eventually(LIMIT, || outbox.enqueue(&m).is_ok()),
            "message {i}"
        );
    }
    assert!(eventually(LIMIT, || outbox.stats().delivered == 4_100));
    drop(outbox);
    assert_eq!(down.seen().len(), 4_100);
    // A disk full of undelivered messages: the store's error (the relay's AE) says why once.
    let full = Outbox::open(mnt.join("full"), config("127.0.0.1:9").deliver(false)).unwrap();
    let text = message(0);
    let stored = mllp::StoredMessage::new(
        &text,
        "127.0.0.1:1".parse().unwrap(),
        mllp::charset::Charset::UTF_8,
        std::time::SystemTime::now(),
    );
    let mut saved = 0;
    let err = loop {
        match mllp::Store::save(&full, &stored) {
            Ok(_) => saved += 1,
            Err(e) => break e.to_string(),
        }
        assert!(saved < 10_000, "the disk never filled");
    };
    assert_eq!(err.matches("I/O error").count(), 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
}

/// The fuzz target's checks on stable: its seeds, every truncation and many bit flips of a
/// real segment, and random bytes.
#[test]
fn recovery_of_arbitrary_last_segments() {
    use mllp_testkit::fuzzing::{naive_segment_records, outbox_recovery};
    let dir = scratch_dir("outbox-fuzz-src");
    let outbox = Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap();
    for id in ["A1", "B22", "C333"] {
        outbox.enqueue(&adt(id)).unwrap();
    }
    outbox.enqueue_bytes(adt("D4").as_bytes()).unwrap();
    drop(outbox);
    let seg = std::fs::read(segment_files(&dir).pop().unwrap()).unwrap();
    assert_eq!(naive_segment_records(&seg), 4);
    let with = |selector: u8, bytes: &[u8]| {
        let mut v = vec![selector];
        v.extend_from_slice(bytes);
        v
    };
    for cut in (0..=seg.len()).step_by(7) {
        outbox_recovery(&with(0, &seg[..cut]));
        outbox_recovery(&with(2, &seg[..cut]));
    }
    let mut rng = mllp_testkit::Rng(0x5EED_0B0C);
    for _ in 0..60 {
        let mut bad = seg.clone();
        let at = rng.below(bad.len());
        bad[at] ^= 1 << rng.below(8);
        outbox_recovery(&with(rng.below(4) as u8, &bad));
        outbox_recovery(&with(1, &rng.bytes(200)));
    }
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/outbox_recovery");
    for entry in std::fs::read_dir(seeds).unwrap() {
        outbox_recovery(&std::fs::read(entry.unwrap().path()).unwrap());
    }
}

#[test]
fn delivery_attempts_are_counted_by_outcome_and_timed() {
    let down = Downstream::start("127.0.0.1:0", &["M00002"]);
    let dir = scratch_dir("outbox-attempts");
    let outbox = Outbox::open(&dir, config(&down.addr())).unwrap();
    for id in ids(0..5) {
        outbox.enqueue(&adt(&id)).unwrap();
    }
    assert!(eventually(LIMIT, || {
        let s = outbox.stats();
        s.delivered == 4 && s.dead_lettered == 1
    }));
    let s = outbox.stats();
    assert_eq!(
        (
            s.deliveries_accepted,
            s.deliveries_rejected,
            s.deliveries_failed
        ),
        (4, 1, 0)
    );
    assert_eq!(outbox.delivery_durations().count(), 5);
    // A downstream that nothing listens on: failed attempts, counted and timed too.
    let gone = format!("127.0.0.1:{}", mllp_testkit::free_port());
    let other = Outbox::open(scratch_dir("outbox-attempts-gone"), config(&gone)).unwrap();
    other.enqueue(&adt("M00009")).unwrap();
    assert!(eventually(LIMIT, || other.stats().deliveries_failed >= 2));
    assert!(other.delivery_durations().count() >= 2);
    assert_eq!(
        (other.stats().pending, other.stats().deliveries_accepted),
        (1, 0)
    );
}
