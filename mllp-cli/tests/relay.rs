//! `mllp relay` and `mllp spool`: store-and-forward through the spool, in arrival order, across
//! crashes (SIGKILL), with dead letters, hold, a full spool and the lock.

mod common;

use std::time::{Duration, Instant};

use common::process::{mllp, Proc, LIMIT};
use common::{adt, eventually, scratch_dir, Rng};
use mllp_testkit::downstream::Downstream;

/// Starts `mllp relay 127.0.0.1:0 --to TO --spool DIR -q EXTRA...`; its address.
fn relay(to: &str, spool: &std::path::Path, extra: &[&str]) -> (Proc, String) {
    let spool = spool.to_str().unwrap();
    let mut args = vec!["relay", "127.0.0.1:0", "--to", to, "--spool", spool];
    args.extend_from_slice(&["--max-backoff", "0.05", "-q"]);
    args.extend_from_slice(extra);
    let proc = Proc::spawn(&args, None);
    let first = proc.line();
    let want_tail = format!("(spooling in {spool}, forwarding to {to})");
    assert!(first.ends_with(&want_tail), "{first:?}");
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (proc, addr)
}

/// The ACK code a message gets from `addr` on a new connection.
fn ack_code(addr: &str, id: &str) -> String {
    let ack = common::exchange(addr, adt(id).as_bytes(), LIMIT).expect("an ACK");
    let text = String::from_utf8_lossy(&ack).into_owned();
    let msa = text
        .split('\r')
        .find(|s| s.starts_with("MSA|"))
        .unwrap_or("");
    msa.split('|').nth(1).unwrap_or("").to_owned()
}

fn spool_lines(spool: &std::path::Path, cmd: &[&str]) -> Vec<String> {
    let mut args = vec!["spool", spool.to_str().unwrap()];
    args.extend_from_slice(cmd);
    let ended = mllp(&args);
    assert_eq!(ended.code, 0, "{ended:?}");
    ended.stdout
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("R{i:05}")).collect()
}

#[test]
fn relay_acknowledges_spools_and_forwards_in_order() {
    let down = Downstream::start("127.0.0.1:0", &[]);
    let spool = scratch_dir("relay-order");
    let (proc, addr) = relay(&down.addr(), &spool, &[]);
    let want = ids(40);
    for id in &want {
        assert_eq!(ack_code(&addr, id), "AA");
    }
    assert!(eventually(LIMIT, || down.seen().len() == want.len()));
    assert_eq!(down.seen(), want);
    // Readable while the relay runs, and names it.
    let pid = proc.child.id();
    assert!(eventually(LIMIT, || spool_lines(&spool, &[])
        .contains(&"delivered 40".to_owned())));
    let lines = spool_lines(&spool, &["stats"]);
    for want in [
        "pending 0",
        "dead-lettered 0",
        "oldest-pending-age -",
        "held no",
    ] {
        assert!(lines.contains(&want.to_owned()), "{lines:?}");
    }
    assert!(lines.contains(&format!("relay {pid}")), "{lines:?}");
    // A second relay on the spool is refused, naming the one that has it.
    let second = Proc::spawn(
        &[
            "relay",
            "127.0.0.1:0",
            "--to",
            &down.addr(),
            "--spool",
            spool.to_str().unwrap(),
        ],
        None,
    )
    .wait();
    assert_eq!(second.code, 2, "{second:?}");
    assert!(
        second.stderr.contains(&format!("in use by process {pid}")),
        "{}",
        second.stderr
    );
}

#[test]
fn a_full_spool_answers_ae_and_takes_again_once_forwarded() {
    // Nothing listens downstream yet: the spool fills.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = reserved.local_addr().unwrap().to_string();
    drop(reserved);
    let spool = scratch_dir("relay-full");
    let (_proc, addr) = relay(&to, &spool, &["--max-spool-messages", "2"]);
    assert_eq!(ack_code(&addr, "F1"), "AA");
    assert_eq!(ack_code(&addr, "F2"), "AA");
    assert_eq!(ack_code(&addr, "F3"), "AE");
    assert!(spool_lines(&spool, &[]).contains(&"pending 2".to_owned()));
    let down = Downstream::start(&to, &[]);
    assert!(eventually(LIMIT, || down.seen().len() == 2));
    assert_eq!(ack_code(&addr, "F3"), "AA");
    assert!(eventually(LIMIT, || down.seen() == ["F1", "F2", "F3"]));
}

#[test]
fn dead_letters_are_listed_requeued_and_purged() {
    let down = Downstream::start("127.0.0.1:0", &["R00001", "R00003"]);
    let spool = scratch_dir("relay-dead");
    let (_proc, addr) = relay(&down.addr(), &spool, &[]);
    for id in ids(5) {
        assert_eq!(ack_code(&addr, &id), "AA");
    }
    assert!(eventually(LIMIT, || down.seen().len() == 3));
    assert!(eventually(LIMIT, || spool_lines(&spool, &["list"]).len() == 2));
    let list = spool_lines(&spool, &["list"]);
    assert!(list[0].contains(" R00001 AE "), "{list:?}");
    assert!(list[0].contains("downstream refuses this one"), "{list:?}");
    assert!(list[1].contains(" R00003 "), "{list:?}");
    assert!(spool_lines(&spool, &[]).contains(&"dead-lettered 2".to_owned()));
    down.stop_rejecting();
    assert_eq!(spool_lines(&spool, &["requeue-dead"]), ["requeued 2"]);
    assert!(eventually(LIMIT, || down.seen().len() == 5));
    assert_eq!(&down.seen()[3..], ["R00001", "R00003"]);
    assert!(spool_lines(&spool, &["list"]).is_empty());
    assert_eq!(spool_lines(&spool, &["purge-dead"]), ["purged 0"]);
}

#[test]
fn hold_keeps_order_until_the_operator_requeues() {
    let down = Downstream::start("127.0.0.1:0", &["R00001"]);
    let spool = scratch_dir("relay-hold");
    let (_proc, addr) = relay(&down.addr(), &spool, &["--on-reject", "hold"]);
    for id in ids(4) {
        assert_eq!(ack_code(&addr, &id), "AA");
    }
    assert!(eventually(LIMIT, || spool_lines(&spool, &[])
        .contains(&"held yes".to_owned())));
    assert_eq!(down.seen(), ["R00000"]);
    assert!(spool_lines(&spool, &[]).contains(&"pending 3".to_owned()));
    down.stop_rejecting();
    assert_eq!(spool_lines(&spool, &["requeue-dead"]), ["requeued 0"]);
    assert!(eventually(LIMIT, || down.seen().len() == 4));
    assert_eq!(down.seen(), ids(4));
}

/// SIGKILL the relay at 20 random points of a 3,000-message send while the downstream is
/// down, restarting it each time; then bring the downstream up. Every message that got AA is
/// delivered, the first deliveries come in arrival order, and a message is delivered twice
/// only when it was resent around a kill.
#[test]
fn sigkill_at_random_points_loses_nothing_and_keeps_order() {
    const TOTAL: usize = 3_000;
    const KILLS: usize = 20;
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = reserved.local_addr().unwrap().to_string();
    drop(reserved);
    let spool = scratch_dir("relay-sigkill");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let mut kill_at: Vec<usize> = (0..KILLS).map(|_| 50 + rng.below(TOTAL - 100)).collect();
    kill_at.sort_unstable();
    let all = ids(TOTAL);
    let mut acked = vec![false; TOTAL];
    let (mut proc, mut addr) = relay(&to, &spool, &[]);
    let mut kills = 0;
    let mut next = 0;
    let started = Instant::now();
    while next < TOTAL {
        assert!(started.elapsed() < Duration::from_secs(240), "too slow");
        if kills < KILLS && next >= kill_at[kills] {
            // Kill from another thread after a random delay, while this one keeps sending:
            // the kill lands anywhere in receiving, appending, flushing or acknowledging.
            let pid = proc.child.id();
            let delay = Duration::from_micros(rng.below(3_000) as u64);
            let killer = std::thread::spawn(move || {
                std::thread::sleep(delay);
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            });
            let mut sender = mllp::Sender::builder(addr.clone())
                .retry(mllp::RetryPolicy::none())
                .build()
                .unwrap();
            while next < TOTAL {
                match sender.send(&adt(&all[next])) {
                    Ok(ack) if ack.is_success() => {
                        acked[next] = true;
                        next += 1;
                    }
                    _ => break,
                }
            }
            killer.join().unwrap();
            let _ = proc.child.wait();
            kills += 1;
            drop(proc);
            (proc, addr) = relay(&to, &spool, &[]);
            continue;
        }
        let mut sender = mllp::Sender::builder(addr.clone())
            .retry(mllp::RetryPolicy::none())
            .build()
            .unwrap();
        let stop = kill_at.get(kills).copied().unwrap_or(TOTAL).min(TOTAL);
        while next < stop {
            let ack = sender.send(&adt(&all[next])).expect("the relay answers");
            assert!(ack.is_success(), "{:?}", ack.code);
            acked[next] = true;
            next += 1;
        }
    }
    assert_eq!(kills, KILLS);
    assert!(acked.iter().all(|&a| a));
    let down = Downstream::start(&to, &[]);
    let everything = || {
        let seen = down.seen();
        let mut first = std::collections::HashSet::new();
        seen.iter().for_each(|id| {
            first.insert(id.clone());
        });
        first.len() == TOTAL
    };
    assert!(eventually(Duration::from_secs(120), everything));
    let seen = down.seen();
    let mut firsts = Vec::new();
    let mut known = std::collections::HashSet::new();
    for id in &seen {
        if known.insert(id.clone()) {
            firsts.push(id.clone());
        }
    }
    assert_eq!(firsts, all, "first deliveries out of arrival order");
    let repeats = seen.len() - TOTAL;
    eprintln!("{repeats} repeated deliveries after {KILLS} kills");
    // A message whose ACK a kill cut off is resent (at least once): at most one per kill.
    assert!(
        repeats <= KILLS,
        "{repeats} repeated deliveries after {KILLS} kills"
    );
    drop(proc);
}

#[test]
fn dedup_answers_a_resend_without_forwarding_it_twice() {
    let down = Downstream::start("127.0.0.1:0", &[]);
    let spool = scratch_dir("relay-dedup");
    let (proc, addr) = relay(&down.addr(), &spool, &["--dedup", "100"]);
    for id in ["D1", "D2", "D1", "D3", "D2"] {
        assert_eq!(ack_code(&addr, id), "AA");
    }
    assert!(eventually(LIMIT, || down.seen().len() == 3));
    assert!(spool.join("dedup-index").exists());
    // Delivered and recorded as delivered on disk: a kill now repeats nothing (at least once
    // would allow a repeat of D3, which would look like a resend that got through).
    assert!(eventually(LIMIT, || spool_lines(&spool, &["stats"])
        .contains(&"pending 0".to_string())));
    drop(proc);
    // The keys survive a restart (here a SIGKILL).
    let (_proc, addr) = relay(&down.addr(), &spool, &["--dedup", "100"]);
    assert_eq!(ack_code(&addr, "D3"), "AA");
    assert_eq!(ack_code(&addr, "D4"), "AA");
    assert!(eventually(LIMIT, || down.seen().len() == 4));
    assert_eq!(down.seen(), ["D1", "D2", "D3", "D4"]);
}

#[test]
fn a_to_address_that_can_never_be_used_is_a_startup_error() {
    let spool = scratch_dir("relay-bad-to");
    for to in ["127.0.0.1:", "[::1", "127.0.0.1:99999", "127.0.0.1:0"] {
        let dir = spool.join("spool");
        let ended = Proc::spawn(
            &[
                "relay",
                "127.0.0.1:0",
                "--to",
                to,
                "--spool",
                dir.to_str().unwrap(),
            ],
            None,
        )
        .wait();
        assert_eq!(ended.code, 2, "{to:?}: {ended:?}");
        assert!(ended.stdout.is_empty(), "{to:?}: {ended:?}");
        assert!(ended.stderr.contains("--to"), "{to:?}: {}", ended.stderr);
        assert!(!dir.exists(), "{to:?}: the spool was created");
    }
}

/// The first line of `mllp spool DIR` that starts with `word `.
fn stat(spool: &std::path::Path, word: &str) -> String {
    let lines = spool_lines(spool, &[]);
    lines
        .iter()
        .find(|l| l.starts_with(&format!("{word} ")))
        .unwrap_or_else(|| panic!("no {word} line in {lines:?}"))
        .clone()
}

#[test]
fn a_held_head_is_shown_and_skipped_while_the_relay_runs() {
    let down = Downstream::start("127.0.0.1:0", &["R00001"]);
    let spool = scratch_dir("relay-skip-held");
    let (_proc, addr) = relay(&down.addr(), &spool, &["--on-reject", "hold"]);
    for id in ids(3) {
        assert_eq!(ack_code(&addr, &id), "AA");
    }
    assert!(eventually(LIMIT, || stat(&spool, "held") == "held yes"));
    let head = stat(&spool, "head");
    assert!(head.contains(" R00001 attempts 1 age "), "{head}");
    assert!(head.contains(": AE from 127.0.0.1:"), "{head}");
    assert!(head.ends_with(": downstream refuses this one"), "{head}");
    // `list` shows the same line (its age aside).
    let list = spool_lines(&spool, &["list"]);
    let upto_age = |l: &str| l.split(" age ").next().unwrap().to_owned();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(upto_age(&list[0]), upto_age(&head));
    assert!(
        list[0].ends_with(": downstream refuses this one"),
        "{list:?}"
    );
    let name = head.split(' ').nth(1).unwrap().to_owned();
    assert_eq!(
        spool_lines(&spool, &["skip"]),
        [format!("skipped {name} R00001")]
    );
    assert!(eventually(LIMIT, || down.seen().len() == 2));
    assert_eq!(down.seen(), ["R00000", "R00002"]);
    assert_eq!(stat(&spool, "head"), "head -");
    assert_eq!(stat(&spool, "held"), "held no");
    let list = spool_lines(&spool, &["list"]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(
        list[0].starts_with(&format!(
            "{name} R00001 skipped by an operator after 1 failed"
        )),
        "{list:?}"
    );
    // Nothing is failing now: nothing to skip.
    let ended = mllp(&["spool", spool.to_str().unwrap(), "skip"]);
    assert_eq!(ended.code, 1, "{ended:?}");
}

#[test]
fn a_downstream_that_never_answers_shows_in_the_head_and_is_skipped() {
    let silent = mllp_testkit::downstream::Silent::start();
    let spool = scratch_dir("relay-skip-silent");
    let (_proc, addr) = relay(&silent.addr(), &spool, &["--ack-timeout", "0.2"]);
    for id in ids(2) {
        assert_eq!(ack_code(&addr, &id), "AA");
    }
    let attempts = |line: &str| -> u32 {
        let after = line.split(" attempts ").nth(1).unwrap_or("0");
        after.split(' ').next().unwrap().parse().unwrap()
    };
    assert!(eventually(LIMIT, || {
        let head = stat(&spool, "head");
        head.contains(" R00000 ") && attempts(&head) >= 3
    }));
    let head = stat(&spool, "head");
    assert!(
        head.contains("timed out") || head.contains("timeout"),
        "{head}"
    );
    let skipped = spool_lines(&spool, &["skip"]);
    assert!(skipped[0].ends_with(" R00000"), "{skipped:?}");
    // The next message is now the one being tried.
    assert!(eventually(LIMIT, || stat(&spool, "head").contains(" R00001 ")));
    assert_eq!(stat(&spool, "dead-lettered"), "dead-lettered 1");
}

#[test]
fn the_relay_prints_a_line_per_message_forwarded_or_dead_lettered() {
    let down = Downstream::start("127.0.0.1:0", &["R00001"]);
    let spool = scratch_dir("relay-lines");
    let to = down.addr();
    let args = [
        "relay",
        "127.0.0.1:0",
        "--to",
        &to,
        "--spool",
        spool.to_str().unwrap(),
    ];
    let proc = Proc::spawn(&args, None);
    let first = proc.line();
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    for id in ids(2) {
        assert_eq!(ack_code(&addr, &id), "AA");
    }
    let want = [
        format!("R00000 to {to}: AA"),
        format!("R00001 to {to}: AE downstream refuses this one (dead-lettered)"),
    ];
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = proc.line();
        if line.starts_with("R0000") {
            seen.push(line);
        }
    }
    assert_eq!(seen, want);
}

#[test]
fn every_spool_command_on_a_missing_spool_fails_and_creates_nothing() {
    let missing = scratch_dir("relay-missing").join("typo");
    for cmd in ["stats", "list", "requeue-dead", "purge-dead", "skip"] {
        let ended = mllp(&["spool", missing.to_str().unwrap(), cmd]);
        assert_eq!(ended.code, 2, "{cmd}: {ended:?}");
        assert!(
            ended.stderr.contains("no outbox directory here"),
            "{cmd}: {}",
            ended.stderr
        );
        assert!(!missing.exists(), "{cmd} created {}", missing.display());
    }
}
