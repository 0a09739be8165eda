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
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use common::pool::{self, all_up, haproxy_here, ms, Member, Sent};
use mllp_testkit::haproxy::{self, HaProxy};
use mllp_testkit::rabbitmq::RabbitCluster;

const SENDERS: usize = 8;
const EACH: usize = 1_000;
/// The whole load must be through within this.
const LOAD_LIMIT: Duration = Duration::from_secs(90);

fn load(addr: &str, during: impl FnOnce(&AtomicUsize)) -> Result<Vec<Sent>, String> {
    pool::load(addr, SENDERS, EACH, LOAD_LIMIT, during)
}

fn when_acked(progress: &AtomicUsize, n: usize) {
    pool::when_acked(progress, n, LOAD_LIMIT);
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
    let proxy = pool::behind_haproxy("scale-file", &members);

    let started = Instant::now();
    let mut killed_at = None;
    let mut stopped_at = None;
    let mut stop_result = None;
    let sent = load(&proxy.addr(), |progress| {
        when_acked(progress, SENDERS * EACH / 4);
        killed_at = Some(Instant::now());
        members[1].kill();
        when_acked(progress, SENDERS * EACH / 2);
        let at = Instant::now();
        members[2].terminate();
        stop_result = members[2].wait(Duration::from_secs(20));
        stopped_at = Some((at, Instant::now()));
    });
    let elapsed = started.elapsed();
    let sent = sent.unwrap_or_else(|e| pool::fail(&mut members, &e));

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
    let at = killed_at.unwrap();
    let kill = pool::recovery(&sent, at, at);
    let (from, to) = stopped_at.unwrap();
    let stop = pool::recovery(&sent, from, to);
    eprintln!(
        "file stores: {} messages in {elapsed:.1?} ({:.0}/s); stored per listener {shares:?}; \
         resends after a negative ACK {}, after a failed send {}, within the sender {} ({} \
         reconnections); the longest wait for an AA around the SIGKILL {} (median sender {}), \
         around the SIGTERM {}",
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

/// The queue of the cluster test, and the store URL with every node of `cluster` in it.
fn quorum_url(cluster: &RabbitCluster, queue: &str) -> String {
    format!("{}?queue={queue}&queue_type=quorum", cluster.url("%2f"))
}

#[test]
fn cluster_pool_loses_nothing_when_a_listener_is_killed_and_a_broker_node_stopped() {
    if !haproxy_here() || !pool::rabbitmq_here() {
        return;
    }
    let begun = Instant::now();
    let mut cluster = RabbitCluster::start("scale", 3);
    let cluster_up = begun.elapsed();
    let queue = "hl7-scale";
    let url = quorum_url(&cluster, queue);
    let mut members: Vec<Member> = (0..3).map(|_| Member::start(&url, &[])).collect();
    let proxy = pool::behind_haproxy("scale-cluster", &members);

    // Every listener lists node 0 first, so stopping node 0 moves every listener's
    // connection to node 1, while the queue's leader, if it was there, moves too.
    let started = Instant::now();
    let mut killed_at = None;
    let mut broker_stopped_at = None;
    let sent = load(&proxy.addr(), |progress| {
        when_acked(progress, SENDERS * EACH / 4);
        killed_at = Some(Instant::now());
        members[1].kill();
        when_acked(progress, SENDERS * EACH / 2);
        let at = Instant::now();
        cluster.stop(0);
        broker_stopped_at = Some((at, Instant::now()));
    });
    let elapsed = started.elapsed();
    let sent = sent.unwrap_or_else(|e| {
        let queue_state = pool::queue_state(&cluster, "scale", 1, queue);
        pool::fail(
            &mut members,
            &format!("{e}\nthe queue, from node 2:\n{queue_state}"),
        )
    });

    let mut acked = HashSet::new();
    for (s, report) in sent.iter().enumerate() {
        assert_eq!(report.acked.len(), EACH, "sender {s} did not finish");
        acked.extend(report.acked.iter().map(|(id, _)| id.clone()));
    }
    assert_eq!(acked.len(), SENDERS * EACH);
    let shares: Vec<usize> = members.iter().map(Member::messages).collect();
    // Resends after a lost ACK may be in the queue twice; nothing may be missing. (The count
    // `list_queues` reports is refreshed every few seconds: poll.)
    let mut depth = 0;
    let counted = common::eventually(Duration::from_secs(30), || {
        depth = pool::queue_depth(&cluster, 1, queue).unwrap_or(0);
        depth >= acked.len() as u64
    });
    assert!(
        counted,
        "{depth} messages in the queue for {} acknowledged",
        acked.len()
    );
    // Read the queue back: `mllp forward` (a consumer with manual acks) delivers every message
    // to a downstream listener with a file store, which must then hold every MSH-10 that got
    // an AA.
    let downstream_dir = common::scratch_dir("scale-downstream");
    let (downstream, downstream_addr) = common::process::listen(&downstream_dir, &["-q"]);
    let forwarding = Instant::now();
    let count = depth.to_string();
    let mut forward = std::process::Command::new(env!("CARGO_BIN_EXE_mllp"))
        .args(["forward", "--from", &url, "--to", &downstream_addr])
        .args(["--count", &count, "-q"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mllp forward starts");
    let forwarded = common::eventually(Duration::from_secs(120), || {
        forward.try_wait().ok().flatten().is_some()
    });
    if !forwarded {
        let _ = forward.kill();
    }
    let out = forward.wait_with_output().unwrap();
    assert!(
        forwarded && out.status.success(),
        "mllp forward --count {count}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let forward_time = forwarding.elapsed();
    let delivered: HashSet<String> = pool::stored_ids(&downstream_dir).into_iter().collect();
    let missing: Vec<_> = acked.iter().filter(|id| !delivered.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages not in the queue (not forwarded): {:?}",
        missing.len(),
        missing.iter().take(20).collect::<Vec<_>>()
    );
    assert!(
        common::eventually(Duration::from_secs(30), || pool::queue_depth(
            &cluster, 1, queue
        ) == Some(0)),
        "the queue is not empty after the forward: {:?}",
        pool::queue_depth(&cluster, 1, queue)
    );

    let at = killed_at.unwrap();
    let kill = pool::recovery(&sent, at, at);
    let (from, to) = broker_stopped_at.unwrap();
    let stop = pool::recovery(&sent, from, to);
    eprintln!(
        "RabbitMQ quorum queue, 3 nodes (up in {cluster_up:.1?}): {} messages in {elapsed:.1?} \
         ({:.0}/s) through HAProxy; per listener {shares:?} (l1 SIGKILLed at 25 %, broker node \
         1 stopped at 50 %); queue {depth} ({} duplicates from resends); resends after a \
         negative ACK {}, after a failed send {}, within the sender {} ({} reconnections); \
         the longest wait for an AA around the listener kill {} (median sender {}), around \
         the node stop ({:.1?} for rabbitmqctl stop) {} (median {}); forwarded {depth} in {forward_time:.1?}; whole test \
         {:.1?}",
        SENDERS * EACH,
        (SENDERS * EACH) as f64 / elapsed.as_secs_f64(),
        depth - acked.len() as u64,
        sent.iter().map(|s| s.negative).sum::<usize>(),
        sent.iter().map(|s| s.failed).sum::<usize>(),
        sent.iter().map(|s| s.stats.retries).sum::<u64>(),
        sent.iter().map(|s| s.stats.reconnects).sum::<u64>(),
        ms(kill[0]),
        ms(kill[kill.len() / 2]),
        to - from,
        ms(stop[0]),
        ms(stop[stop.len() / 2]),
        begun.elapsed(),
    );
    drop(downstream);
    drop(members);
    let _ = std::fs::remove_dir_all(downstream_dir);
}
