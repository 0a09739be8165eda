//! The outbox's recovery rules: the kernel-held lock, a torn tail against damage, a missing
//! segment, a damaged cursor. Each test builds the fault on disk and checks what an operator
//! sees (errors, counters, `Outbox::verify`) and that every intact message is still delivered.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mllp::{Damage, Error, Outbox, OutboxConfig, RetryPolicy};
use mllp_testkit::downstream::Downstream;
use mllp_testkit::fuzzing::naive_segment_offsets;

use mllp_testkit::{adt, eventually, scratch_dir};

const LIMIT: Duration = Duration::from_secs(20);

/// The environment variable that turns this test binary into a lock holder (see
/// [`lock_holder_child`]).
const HOLDER_ENV: &str = "MLLP_TEST_OUTBOX_HOLDER";

fn config(to: &str) -> OutboxConfig {
    OutboxConfig::new(to)
        .retry(
            RetryPolicy::default()
                .max_attempts(None)
                .initial_backoff(Duration::from_millis(5))
                .max_backoff(Duration::from_millis(50)),
        )
        .poll_interval(Duration::from_millis(20))
}

/// A process holding the outbox in a directory: this test binary run again, in the mode of
/// [`lock_holder_child`]. Killed when dropped.
struct Holder(Child);

/// With [`HOLDER_ENV`], how many messages the holder enqueues before it says "held".
const HOLDER_ENQUEUE_ENV: &str = "MLLP_TEST_OUTBOX_HOLDER_ENQUEUE";

impl Holder {
    fn start(dir: &Path) -> Holder {
        Holder::start_with(dir, 0)
    }

    /// A holder that has enqueued `messages` (ids from [`ids`]) when it says "held".
    fn start_with(dir: &Path, messages: u32) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lock_holder_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOLDER_ENV, dir)
            .env(HOLDER_ENQUEUE_ENV, messages.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // The child prints "held" once it has the outbox open (or ends, closing stdout).
        while out.read_line(&mut line).unwrap() > 0 && !line.contains("held") {
            line.clear();
        }
        assert!(line.contains("held"), "the holder did not start");
        Holder(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Not a test of its own: with [`HOLDER_ENV`] set, opens the outbox there, says "held", and
/// keeps it until its standard input closes (or it is killed).
#[test]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(HOLDER_ENV) else {
        return;
    };
    let outbox = Outbox::open(PathBuf::from(dir), config("127.0.0.1:9").deliver(false)).unwrap();
    let enqueue = std::env::var(HOLDER_ENQUEUE_ENV).map_or(0, |n| n.parse().unwrap());
    for id in ids(0..enqueue) {
        outbox.enqueue(&adt(&id)).unwrap();
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "held").unwrap();
    stdout.flush().unwrap();
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
}

/// A process id that is not alive here: what a holder in another PID namespace (another
/// container on the same volume) looks like from this one.
fn a_dead_pid() -> u32 {
    (4_000_000..4_194_304)
        .find(|pid| !Path::new("/proc").join(pid.to_string()).exists())
        .unwrap()
}

#[test]
fn a_lock_held_by_another_process_is_never_taken_over() {
    let dir = scratch_dir("recovery-lock-ns");
    let holder = Holder::start(&dir);
    assert_eq!(Outbox::holder(&dir), Some(holder.pid()));
    let err = Outbox::open(&dir, config("127.0.0.1:9")).unwrap_err();
    assert!(
        matches!(err, Error::Locked { pid, .. } if pid == holder.pid()),
        "{err:?}"
    );
    // The holder runs in another PID namespace: its id means nothing here.
    std::fs::write(dir.join("lock"), format!("{}\n", a_dead_pid())).unwrap();
    let second = Outbox::open(&dir, config("127.0.0.1:9").deliver(false));
    assert!(
        matches!(second, Err(Error::Locked { .. })),
        "a second outbox opened a spool in use: {second:?}"
    );
    // Killed: the kernel releases the lock at once, whatever the file says.
    drop(holder);
    let outbox = Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap();
    assert_eq!(Outbox::holder(&dir), Some(std::process::id()));
    drop(outbox);
    assert_eq!(Outbox::holder(&dir), None);
}

#[test]
fn a_lock_file_naming_a_live_unrelated_process_blocks_nothing() {
    let dir = scratch_dir("recovery-lock-reuse");
    Outbox::open(&dir, config("127.0.0.1:9").deliver(false))
        .unwrap()
        .close()
        .unwrap();
    // A crashed relay's id, since reused by a process that has nothing to do with the spool
    // (init, here): a restart must not wait for it.
    std::fs::write(dir.join("lock"), "1\n").unwrap();
    assert_eq!(Outbox::holder(&dir), None);
    let outbox = Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap();
    // Within one process, a second open of the same directory is refused too.
    let err = Outbox::open(&dir, config("127.0.0.1:9")).unwrap_err();
    assert!(
        matches!(err, Error::Locked { pid, .. } if pid == std::process::id()),
        "{err:?}"
    );
    drop(outbox);
}

fn ids(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("M{i:05}")).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// An outbox in `dir` holding `ids`, written with delivery off and closed cleanly, in
/// segments of `segment_bytes`.
fn spool(dir: &Path, ids: &[String], segment_bytes: u64) {
    let outbox = Outbox::open(
        dir,
        config("127.0.0.1:9")
            .deliver(false)
            .segment_bytes(segment_bytes),
    )
    .unwrap();
    for id in ids {
        outbox.enqueue(&adt(id)).unwrap();
    }
    outbox.close().unwrap();
}

/// Flips one payload byte of record `index` (0-based) of segment file `path`; the record's
/// offset.
fn flip_payload_byte(path: &Path, index: usize) -> u64 {
    let mut bytes = std::fs::read(path).unwrap();
    let record = naive_segment_offsets(&bytes)[index].clone();
    bytes[record.start + 20 + 5] ^= 0x20;
    std::fs::write(path, &bytes).unwrap();
    record.start as u64
}

/// Opens the outbox in `dir` delivering to a new downstream, waits until its delivered count
/// reaches `want`, and returns what the downstream saw and the stats.
fn deliver_all(dir: &Path, want: u64) -> (Vec<String>, mllp::OutboxStats) {
    let before = Outbox::inspect(dir).map_or(0, |s| s.delivered);
    let down = Downstream::start("127.0.0.1:0", &[]);
    let outbox = Outbox::open(dir, config(&down.addr())).unwrap();
    let done = eventually(LIMIT, || outbox.stats().delivered >= want);
    let stats = outbox.stats();
    assert!(done, "delivered {} of {want}", stats.delivered);
    // The count restarts at 0 when the cursor is lost.
    let sent = stats.delivered - before.min(stats.delivered);
    let sent = if stats.cursor_lost > 0 {
        stats.delivered
    } else {
        sent
    };
    assert!(eventually(LIMIT, || down.seen().len() as u64 >= sent));
    outbox.close().unwrap();
    (down.seen(), stats)
}

#[test]
fn one_flipped_byte_in_the_last_segment_loses_one_record_and_says_so() {
    let dir = scratch_dir("recovery-flip-last");
    let all = ids(0..100);
    spool(&dir, &all, 16 << 20);
    let seg = segment_files(&dir).pop().unwrap();
    let original = std::fs::read(&seg).unwrap();
    let record = naive_segment_offsets(&original)[9].clone();
    let offset = flip_payload_byte(&seg, 9);
    let damaged = std::fs::read(&seg).unwrap();
    // Before any open: the damage is visible, the 99 intact messages pending.
    let seen = Outbox::inspect(&dir).unwrap();
    assert_eq!((seen.pending, seen.damaged_regions), (99, 1));
    let reported = Outbox::verify(&dir).unwrap();
    assert!(
        matches!(reported[..], [Damage::Region { segment: 1, offset: o, kept: None, .. }] if o == offset),
        "{reported:?}"
    );
    let (delivered, stats) = deliver_all(&dir, 99);
    let mut want = all.clone();
    want.remove(9);
    assert_eq!(delivered, want);
    assert_eq!(
        (stats.damaged_regions, stats.damaged_bytes),
        (1, record.len() as u64)
    );
    // The damaged bytes are kept, exactly.
    let kept = dir.join("damaged").join(format!("{:016}-{offset}.bin", 1));
    assert_eq!(std::fs::read(&kept).unwrap(), &damaged[record.clone()]);
    // Reported until an operator removes the kept bytes; then the spool is sound.
    let reported = Outbox::verify(&dir).unwrap();
    assert!(
        matches!(&reported[..], [Damage::Region { kept: Some(k), .. }] if *k == kept),
        "{reported:?}"
    );
    assert!(reported[0]
        .to_string()
        .contains(&format!("offset {offset}")));
    std::fs::remove_file(&kept).unwrap();
    assert_eq!(Outbox::verify(&dir).unwrap(), []);
}

#[test]
fn damage_in_an_older_segment_keeps_every_intact_record_of_it() {
    let dir = scratch_dir("recovery-flip-older");
    let all = ids(0..60);
    spool(&dir, &all, 2_000);
    let segs = segment_files(&dir);
    assert!(segs.len() >= 4, "{segs:?}");
    // Damage in the first segment (where delivery starts) and in one in the middle.
    let first = naive_segment_offsets(&std::fs::read(&segs[0]).unwrap()).len();
    flip_payload_byte(&segs[0], 2);
    flip_payload_byte(&segs[2], 0);
    let second = first + naive_segment_offsets(&std::fs::read(&segs[1]).unwrap()).len();
    let (delivered, stats) = deliver_all(&dir, 58);
    let want: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 2 && i != second)
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(delivered, want);
    assert_eq!(stats.damaged_regions, 2);
    assert_eq!(Outbox::verify(&dir).unwrap().len(), 2);
}

#[test]
fn a_crash_tail_is_cut_but_a_complete_bad_record_at_the_end_is_kept_aside() {
    // Zeros after the last record: an extent a crash left unwritten. Cut, no damage.
    let dir = scratch_dir("recovery-zeros");
    spool(&dir, &ids(0..5), 16 << 20);
    let seg = segment_files(&dir).pop().unwrap();
    let clean = std::fs::read(&seg).unwrap();
    let mut zeros = clean.clone();
    zeros.extend_from_slice(&[0; 4096]);
    std::fs::write(&seg, &zeros).unwrap();
    assert_eq!(Outbox::verify(&dir).unwrap(), []);
    let (delivered, stats) = deliver_all(&dir, 5);
    assert_eq!((delivered.len(), stats.damaged_regions), (5, 0));

    // The last record complete in length but failing its checksum: not what a crash leaves
    // on a file system that orders data before size, so not cut silently.
    let dir = scratch_dir("recovery-bad-last");
    spool(&dir, &ids(0..5), 16 << 20);
    let seg = segment_files(&dir).pop().unwrap();
    let offset = flip_payload_byte(&seg, 4);
    let (delivered, stats) = deliver_all(&dir, 4);
    assert_eq!(delivered, ids(0..4));
    assert_eq!(stats.damaged_regions, 1);
    assert!(dir
        .join("damaged")
        .join(format!("{:016}-{offset}.bin", 1))
        .exists());
}

/// The segment being appended to is extended with zeros ahead of its records (a flush after
/// an overwrite commits no new file size); a clean close cuts them, and after a crash the
/// next open cuts them quietly: no damage, nothing said to be cut.
#[test]
fn space_written_ahead_is_cut_on_close_and_after_a_crash() {
    let dir = scratch_dir("recovery-ahead-clean");
    spool(&dir, &ids(0..5), 16 << 20);
    let seg = segment_files(&dir).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let end = naive_segment_offsets(&bytes).last().unwrap().end;
    assert_eq!(bytes.len(), end, "a clean close leaves no zeros");

    let dir = scratch_dir("recovery-ahead-crash");
    let holder = Holder::start_with(&dir, 5);
    let seg = segment_files(&dir).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let end = naive_segment_offsets(&bytes).last().unwrap().end;
    assert!(
        bytes.len() >= 64 << 10,
        "{} bytes: nothing written ahead",
        bytes.len()
    );
    assert!(bytes[end..].iter().all(|&b| b == 0));
    drop(holder); // killed: a crash
    assert_eq!(Outbox::verify(&dir).unwrap(), []);
    let (delivered, stats) = deliver_all(&dir, 5);
    assert_eq!(delivered, ids(0..5));
    assert_eq!(stats.damaged_regions, 0);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), end as u64);

    // A record cut short by the crash in that space: its first bytes, zeros after. Cut as a
    // torn tail (it was never acknowledged), not kept as damage.
    let dir = scratch_dir("recovery-ahead-torn");
    let holder = Holder::start_with(&dir, 5);
    drop(holder);
    let seg = segment_files(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = naive_segment_offsets(&bytes).last().unwrap().clone();
    let half = last.start + (last.end - last.start) / 2;
    bytes[half..last.end].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    assert_eq!(Outbox::verify(&dir).unwrap(), []);
    let (delivered, stats) = deliver_all(&dir, 4);
    assert_eq!(delivered, ids(0..4));
    assert_eq!(stats.damaged_regions, 0);
}

#[test]
fn a_missing_segment_is_reported_and_the_rest_still_flows() {
    let dir = scratch_dir("recovery-gap");
    let all = ids(0..30);
    spool(&dir, &all, 2_000);
    let segs = segment_files(&dir);
    assert!(segs.len() >= 3, "{segs:?}");
    let before = naive_segment_offsets(&std::fs::read(&segs[0]).unwrap()).len();
    let lost = naive_segment_offsets(&std::fs::read(&segs[1]).unwrap()).len();
    std::fs::remove_file(&segs[1]).unwrap();
    let seen = Outbox::inspect(&dir).unwrap();
    assert_eq!(
        (seen.pending, seen.missing_segments),
        ((30 - lost) as u64, 1)
    );
    assert_eq!(
        Outbox::verify(&dir).unwrap(),
        [Damage::MissingSegments { first: 2, last: 2 }]
    );
    let (delivered, stats) = deliver_all(&dir, (30 - lost) as u64);
    let mut want = all.clone();
    want.drain(before..before + lost);
    assert_eq!(delivered, want);
    assert_eq!(stats.missing_segments, 1);
    // Recorded: still reported once the segments around the gap are delivered and gone.
    assert!(eventually(LIMIT, || segment_files(&dir).len() == 1));
    assert_eq!(
        Outbox::verify(&dir).unwrap(),
        [Damage::MissingSegments { first: 2, last: 2 }]
    );
    assert_eq!(Outbox::inspect(&dir).unwrap().missing_segments, 1);
}

#[test]
fn a_damaged_cursor_redelivers_and_says_so() {
    let dir = scratch_dir("recovery-cursor");
    let all = ids(0..100);
    spool(&dir, &all, 16 << 20);
    let (delivered, stats) = deliver_all(&dir, 100);
    assert_eq!((delivered.len(), stats.cursor_lost), (100, 0));
    let mut cursor = std::fs::read(dir.join("cursor")).unwrap();
    assert_eq!(cursor.len(), 80);
    cursor[3] ^= 0xFF;
    cursor[43] ^= 0xFF;
    std::fs::write(dir.join("cursor"), &cursor).unwrap();
    assert_eq!(Outbox::inspect(&dir).unwrap().cursor_lost, 1);
    // At least once: everything still in the segments goes out again, and it is counted.
    let (again, stats) = deliver_all(&dir, 100);
    assert_eq!(again, all);
    assert_eq!(stats.cursor_lost, 1);
    let reported = Outbox::verify(&dir).unwrap();
    assert!(
        matches!(&reported[..], [Damage::CursorLost { kept: Some(k) }] if std::fs::read(k).unwrap() == cursor),
        "{reported:?}"
    );
}

#[test]
fn a_cursor_past_the_end_of_its_segment_does_not_hide_new_messages() {
    let dir = scratch_dir("recovery-cursor-past-end");
    spool(&dir, &ids(0..5), 16 << 20);
    let (delivered, _) = deliver_all(&dir, 5);
    assert_eq!(delivered.len(), 5);
    // The delivered segment cut short behind the cursor's back.
    let seg = segment_files(&dir).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes[..8]).unwrap();
    spool(&dir, &ids(5..7), 16 << 20);
    assert_eq!(Outbox::inspect(&dir).unwrap().pending, 2);
    let (delivered, _) = deliver_all(&dir, 7);
    assert_eq!(delivered, ids(5..7));
}

#[test]
fn a_far_segment_number_is_one_gap_not_a_hang() {
    let dir = scratch_dir("recovery-far-gap");
    spool(&dir, &ids(0..3), 16 << 20);
    let far = dir.join("segments").join(format!("{:016}.seg", 1u64 << 50));
    std::fs::copy(&segment_files(&dir)[0], &far).unwrap();
    let want = [Damage::MissingSegments {
        first: 2,
        last: (1 << 50) - 1,
    }];
    assert_eq!(Outbox::verify(&dir).unwrap(), want);
    let (delivered, stats) = deliver_all(&dir, 6);
    assert_eq!(delivered, [ids(0..3), ids(0..3)].concat());
    assert_eq!(stats.missing_segments, (1 << 50) - 2);
    assert!(matches!(
        &Outbox::verify(&dir).unwrap()[..],
        [Damage::MissingSegments { first: 2, .. }]
    ));
}
