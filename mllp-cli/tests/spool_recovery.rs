//! The spool's recovery rules seen from the command line: a second relay on a spool in use
//! is refused even when the lock file names a process this one cannot see; `mllp spool DIR
//! verify` and the damage counters of `mllp spool DIR` report a damaged record, a missing
//! segment and a lost cursor with a non-zero exit, and a relay on the damaged spool still
//! forwards every intact message.

mod common;

use std::path::{Path, PathBuf};

use common::process::{mllp, Proc};
use common::{adt, eventually, scratch_dir};
use mllp::{Outbox, OutboxConfig};
use mllp_testkit::downstream::Downstream;
use mllp_testkit::fuzzing::naive_segment_offsets;

use common::process::LIMIT;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("V{i:05}")).collect()
}

/// A spool holding `ids`, written with delivery off, in segments of `segment_bytes`; its
/// segment files.
fn spool(dir: &Path, ids: &[String], segment_bytes: u64) -> Vec<PathBuf> {
    let config = OutboxConfig::new("127.0.0.1:9")
        .deliver(false)
        .segment_bytes(segment_bytes);
    let outbox = Outbox::open(dir, config).unwrap();
    for id in ids {
        outbox.enqueue(&adt(id)).unwrap();
    }
    outbox.close().unwrap();
    let mut segs: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

fn spool_cmd(dir: &Path, cmd: &[&str]) -> common::process::Ended {
    let mut args = vec!["spool", dir.to_str().unwrap()];
    args.extend_from_slice(cmd);
    mllp(&args)
}

#[test]
fn verify_names_a_damaged_record_and_the_relay_forwards_the_rest() {
    let dir = scratch_dir("spool-verify-damage");
    let all = ids(100);
    let segs = spool(&dir, &all, 16 << 20);
    let sound = spool_cmd(&dir, &["verify"]);
    assert_eq!(
        (sound.code, sound.stdout.clone()),
        (0, vec!["ok".to_owned()])
    );
    // One payload byte of record 10 flipped.
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    let record = naive_segment_offsets(&bytes)[9].clone();
    bytes[record.start + 30] ^= 0x01;
    std::fs::write(&segs[0], &bytes).unwrap();
    let verify = spool_cmd(&dir, &["verify"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    let want = format!(
        "damaged segment 0000000000000001.seg at offset {}: {} bytes hold no valid record",
        record.start,
        record.len()
    );
    assert!(verify.stdout[0].starts_with(&want), "{verify:?}");
    let stats = spool_cmd(&dir, &[]);
    assert_eq!(stats.code, 0);
    for line in [
        "pending 99",
        "damaged 1",
        "missing-segments 0",
        "cursor-lost 0",
    ] {
        assert!(stats.stdout.contains(&line.to_owned()), "{stats:?}");
    }
    // A relay on it: every intact message goes out, and the damage is logged as an error.
    let down = Downstream::start("127.0.0.1:0", &[]);
    let relay = Proc::spawn(
        &[
            "relay",
            "127.0.0.1:0",
            "--to",
            &down.addr(),
            "--spool",
            dir.to_str().unwrap(),
            "-q",
        ],
        None,
    );
    relay.line();
    assert!(eventually(LIMIT, || down.seen().len() == 99));
    let mut want_ids = all.clone();
    want_ids.remove(9);
    assert_eq!(down.seen(), want_ids);
    let mut relay = relay;
    relay.child.kill().unwrap();
    let ended = relay.wait();
    assert!(
        ended.stderr.contains("error: ") && ended.stderr.contains("hold no valid record"),
        "{}",
        ended.stderr
    );
    // Kept aside, still reported after the relay repaired the segment.
    let verify = spool_cmd(&dir, &["verify"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    assert!(verify.stdout[0].contains("kept in"), "{verify:?}");
}

#[test]
fn verify_names_a_missing_segment_and_a_lost_cursor() {
    let dir = scratch_dir("spool-verify-gap");
    let segs = spool(&dir, &ids(30), 2_000);
    assert!(segs.len() >= 3, "{segs:?}");
    std::fs::remove_file(&segs[1]).unwrap();
    std::fs::write(dir.join("cursor"), [0xA5u8; 80]).unwrap();
    let verify = spool_cmd(&dir, &["verify"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    assert!(
        verify
            .stdout
            .iter()
            .any(|l| l.starts_with("missing segment 0000000000000002.seg")),
        "{verify:?}"
    );
    assert!(
        verify.stdout.iter().any(|l| l.starts_with("lost cursor")),
        "{verify:?}"
    );
    let stats = spool_cmd(&dir, &["stats"]);
    for line in ["missing-segments 1", "cursor-lost 1"] {
        assert!(stats.stdout.contains(&line.to_owned()), "{stats:?}");
    }
}

#[test]
fn a_second_relay_is_refused_even_when_the_lock_names_a_process_it_cannot_see() {
    let dir = scratch_dir("spool-two-relays");
    // Nothing listens downstream: both relays would keep what they acknowledge.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = reserved.local_addr().unwrap().to_string();
    drop(reserved);
    let relay = |dir: &Path| {
        Proc::spawn(
            &[
                "relay",
                "127.0.0.1:0",
                "--to",
                &to,
                "--spool",
                dir.to_str().unwrap(),
                "-q",
            ],
            None,
        )
    };
    let first = relay(&dir);
    assert!(first.line().starts_with("listening on "));
    // The first relay runs in another PID namespace (another container on the same volume):
    // the id it wrote names no process here.
    let unseen = (4_000_000..4_194_304u32)
        .find(|pid| !Path::new("/proc").join(pid.to_string()).exists())
        .unwrap();
    std::fs::write(dir.join("lock"), format!("{unseen}\n")).unwrap();
    let second = relay(&dir).wait();
    assert_eq!(second.code, 2, "{second:?}");
    assert!(
        second.stderr.contains("in use by process"),
        "{}",
        second.stderr
    );
    // Once the first is gone, the kernel has released its lock: a relay starts at once.
    drop(first);
    let third = relay(&dir);
    assert!(third.line().starts_with("listening on "));
}
