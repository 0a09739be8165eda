//! Past one machine: a pool of `mllp listen` processes behind HAProxy, each reporting its
//! health on `--health-addr` to HAProxy's agent check, on loopback, started and stopped here.
//!
//! * With file stores: 8 senders × 1,000 messages through HAProxy while one listener is
//!   SIGKILLed and another stopped with SIGTERM; every message that got AA is stored. A
//!   listener whose store breaks is taken out of the rotation by its `down`, and put back by
//!   `up ready`.
//! * With a 3-node RabbitMQ cluster and a quorum queue (see `cluster_pool_*`): the same load
//!   while one listener is SIGKILLed and one broker node is stopped; every message that got AA
//!   is in the queue, and `mllp forward` then delivers all of them to a downstream listener.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::pool::{self, Member, Sent};
use mllp_testkit::haproxy::{self, HaProxy};

const SENDERS: usize = 8;
const EACH: usize = 1_000;
/// The whole load must be through within this.
const LOAD_LIMIT: Duration = Duration::from_secs(90);

/// Whether HAProxy is here; a notice (or, under `MLLP_REQUIRE_ALL=1`, a failure) if not.
fn haproxy_here() -> bool {
    if haproxy::available() {
        return true;
    }
    common::skip("HAProxy is not installed (apt-get install haproxy)");
    false
}

/// Waits until HAProxy reports every server in `names` UP.
fn all_up(proxy: &HaProxy, names: &[&str]) {
    for name in names {
        assert!(
            proxy.wait_for(name, Duration::from_secs(10), |s| s.status == "UP"),
            "{name} is not UP: {:?}\n{}",
            proxy.server(name),
            proxy.log()
        );
    }
}

/// Runs `SENDERS` senders of `EACH` messages through `addr`, calling `during(progress)` on
/// this thread while they run; the senders' reports.
fn load(addr: &str, during: impl FnOnce(&AtomicUsize)) -> Vec<Sent> {
    let progress = AtomicUsize::new(0);
    let deadline = Instant::now() + LOAD_LIMIT;
    std::thread::scope(|scope| {
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let progress = &progress;
                scope.spawn(move || pool::send_all(addr, s, EACH, progress, deadline))
            })
            .collect();
        during(&progress);
        senders
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("a sender panicked")
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    })
}

/// Waits (bounded by the load's deadline) until `n` messages have been acknowledged.
fn when_acked(progress: &AtomicUsize, n: usize) {
    assert!(
        common::eventually(LOAD_LIMIT, || progress.load(Ordering::Relaxed) >= n),
        "the senders are stuck at {} AA",
        progress.load(Ordering::Relaxed)
    );
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

#[test]
fn file_store_pool_loses_nothing_when_one_listener_is_killed_and_one_stopped() {
    if !haproxy_here() {
        return;
    }
    let dirs: Vec<_> = (0..3)
        .map(|i| common::scratch_dir(&format!("scale-file-{i}")))
        .collect();
    let mut members: Vec<Member> = dirs
        .iter()
        .map(|d| Member::start(d.to_str().unwrap(), &[]))
        .collect();
    let names = ["l0", "l1", "l2"];
    let backends: Vec<_> = members
        .iter()
        .zip(names)
        .map(|(m, n)| m.backend(n))
        .collect();
    let proxy = HaProxy::start("scale-file", &backends);
    all_up(&proxy, &names);

    let started = Instant::now();
    let mut killed_at = None;
    let mut stopped_at = None;
    let mut stop_result = None;
    let sent = load(&proxy.addr(), |progress| {
        when_acked(progress, SENDERS * EACH / 4);
        members[1].kill();
        killed_at = Some(Instant::now());
        when_acked(progress, SENDERS * EACH / 2);
        members[2].terminate();
        stopped_at = Some(Instant::now());
        stop_result = members[2].wait(Duration::from_secs(20));
    });
    let elapsed = started.elapsed();

    // The stopped listener drained and exited 0 with a summary; everything it acknowledged
    // is in its directory.
    let (code, summary, stderr) = stop_result.expect("the SIGTERMed listener did not exit");
    assert_eq!(code, 0, "{stderr}");
    let summary = summary.expect("no summary line from the SIGTERMed listener");
    let stored_by_stopped = pool::stored_ids(&dirs[2]).len();
    assert!(
        summary.starts_with("stopped: ") && summary.contains(&format!("AA {stored_by_stopped}")),
        "{summary}, but {stored_by_stopped} files"
    );
    // HAProxy took both out of the rotation.
    for name in ["l1", "l2"] {
        assert!(
            proxy.wait_for(name, Duration::from_secs(5), |s| s
                .status
                .starts_with("DOWN")
                || s.status.starts_with("DRAIN")
                || s.status.starts_with("MAINT")),
            "{name} still {:?}",
            proxy.server(name)
        );
    }

    let stored: HashSet<String> = dirs.iter().flat_map(|d| pool::stored_ids(d)).collect();
    let mut lost = Vec::new();
    for (s, report) in sent.iter().enumerate() {
        assert_eq!(report.acked.len(), EACH, "sender {s} did not finish");
        lost.extend(
            report
                .acked
                .iter()
                .filter(|(id, _)| !stored.contains(id))
                .map(|(id, _)| id.clone()),
        );
    }
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

    let shares: Vec<usize> = dirs.iter().map(|d| pool::stored_ids(d).len()).collect();
    let kill = pool::recovery(&sent, killed_at.unwrap());
    let stop = pool::recovery(&sent, stopped_at.unwrap());
    eprintln!(
        "file stores: {} messages in {elapsed:.1?} ({:.0}/s); stored per listener {shares:?}; \
         resends after a negative ACK {}, after a failed send {}, within the sender {} ({} \
         reconnections); after the SIGKILL the senders' next AA came within {} (slowest; \
         median {}), after the SIGTERM within {}",
        SENDERS * EACH,
        (SENDERS * EACH) as f64 / elapsed.as_secs_f64(),
        sent.iter().map(|s| s.negative).sum::<usize>(),
        sent.iter().map(|s| s.failed).sum::<usize>(),
        sent.iter().map(|s| s.stats.retries).sum::<u64>(),
        sent.iter().map(|s| s.stats.reconnects).sum::<u64>(),
        ms(kill[0]),
        ms(kill[kill.len() / 2]),
        ms(stop[0]),
    );
    drop(members);
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn haproxy_sends_no_new_connections_to_a_listener_whose_store_is_down() {
    if !haproxy_here() {
        return;
    }
    let dirs: Vec<_> = (0..2)
        .map(|i| common::scratch_dir(&format!("scale-down-{i}")))
        .collect();
    let members: Vec<Member> = dirs
        .iter()
        .map(|d| Member::start(d.to_str().unwrap(), &["-q"]))
        .collect();
    let proxy = HaProxy::start(
        "scale-down",
        &[members[0].backend("ok"), members[1].backend("broken")],
    );
    all_up(&proxy, &["ok", "broken"]);

    std::fs::remove_dir_all(&dirs[1]).unwrap();
    assert!(
        proxy.wait_for("broken", Duration::from_secs(10), |s| s
            .status
            .starts_with("DOWN")),
        "HAProxy did not take the broken listener out: {:?}\n{}",
        proxy.server("broken"),
        proxy.log()
    );
    let before = proxy.server("broken").unwrap().total;
    // Twenty new connections, one message each: all go to the working listener, all AA.
    for i in 0..20 {
        let id = format!("D{i:02}");
        let ack = common::exchange(
            &proxy.addr(),
            common::adt(&id).as_bytes(),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(
            String::from_utf8_lossy(&ack).contains(&format!("MSA|AA|{id}")),
            "{}",
            String::from_utf8_lossy(&ack)
        );
    }
    assert_eq!(proxy.server("broken").unwrap().total, before);
    assert_eq!(pool::stored_ids(&dirs[0]).len(), 20);

    // Repaired: `up ready` puts it back, and leastconn gives it connections again.
    std::fs::create_dir_all(&dirs[1]).unwrap();
    assert!(
        proxy.wait_for("broken", Duration::from_secs(10), |s| s.status == "UP"),
        "not back: {:?}",
        proxy.server("broken")
    );
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(proxy.addr()).unwrap())
        .collect();
    assert!(
        common::eventually(Duration::from_secs(5), || proxy
            .server("broken")
            .is_some_and(|s| s.total > before)),
        "no connection for the repaired listener: {:?}",
        proxy.servers()
    );
    drop(held);
    drop(members);
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn the_deploy_haproxy_config_is_valid() {
    let Some(program) = haproxy::program() else {
        common::skip("HAProxy is not installed (apt-get install haproxy)");
        return;
    };
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/haproxy.cfg");
    let out = std::process::Command::new(program)
        .args(["-c", "-f", cfg])
        .output()
        .expect("haproxy runs");
    assert!(
        out.status.success(),
        "haproxy -c -f deploy/haproxy.cfg: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
