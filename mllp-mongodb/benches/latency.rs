//! Per-message store latency of `MongoStore` against the MongoDB wire-protocol test server,
//! against the driver's own `insert_one` of the same document in the same run.
//!
//! `cargo bench -p mllp-mongodb --bench latency` starts `nx-27017` (or uses the MongoDB that
//! `MLLP_TEST_MONGODB_URI` names) and measures, one message at a time:
//!
//! * `driver insert_one` (baseline): the synchronous driver inserting the document with the
//!   store's write concern (`w: "majority", j: true`) on the calling thread;
//! * `MongoStore::save`: the store (the document built from the message, the insert on a
//!   thread of its own);
//! * `listener AA`: an MLLP sender on one loopback connection to a `Listener` storing into it,
//!   from before the write to the ACK;
//! * for comparison, what a new thread per save would cost alone (spawn and join, nothing
//!   else): the store keeps a pool of threads for the driver instead.
//!
//! The paths take turns message by message, so that they share the server's state and the
//! machine's load.
//!
//! `BENCH_MESSAGES` (default 2000) per measurement. Under `cargo test` (no `--bench` argument)
//! it runs a quick smoke check instead.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mllp::charset::Charset;
use mllp::{Connection, Framing, Listener, Store, StoredMessage};
use mllp_mongodb::MongoStore;
use mllp_testkit::mongo::MongoServer;
use mongodb::bson::Document;
use mongodb::options::{Acknowledgment, WriteConcern};

fn message(i: usize) -> String {
    format!(
        "MSH|^~\\&|LAB|HOSP|EHR|WARD|20260101120000||ADT^A01^ADT_A01|B{i:07}|P|2.5.1\r\
         EVN|A01|20260101120000\r\
         PID|1||{i}^^^HOSP^MR||DOE^JANE||19800101|F|||1 MAIN ST^^TOWN^^12345\r\
         PV1|1|I|WARD^101^1\r"
    )
}

/// Median, p99 and mean of `samples` (µs), and the rate they add up to.
fn report(name: &str, mut samples: Vec<Duration>, baseline: Option<f64>) -> f64 {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let n = samples.len();
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / n as f64;
    let p50 = us(samples[n / 2]);
    let p99 = us(samples[(n * 99 / 100).min(n - 1)]);
    let ratio = baseline.map_or("1.00".to_owned(), |b| format!("{:.2}", p50 / b));
    println!(
        "| {name} | {n} | {p50:.0} | {p99:.0} | {mean:.0} | {:.0} | {ratio} |",
        1e6 / mean
    );
    p50
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = if full {
        std::env::var("BENCH_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    } else {
        20
    };
    let Some(server) = MongoServer::start("bench") else {
        return;
    };
    let db = format!("mllp_bench_{}", std::process::id());
    let url = format!("{}/{db}?collection=bench", server.uri());
    let store = Arc::new(MongoStore::open_url(&url).expect("the store opens"));
    store.check().expect("the server answers");
    let peer = "127.0.0.1:9".parse().unwrap();

    // The driver alone, same documents, same write concern.
    let client = mongodb::sync::Client::with_uri_str(format!("{}/", server.uri())).unwrap();
    let raw = client.database(&db).collection::<Document>("raw");
    let concern = WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .build();
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn_store(Arc::clone(&store))
        .unwrap();
    let tcp = TcpStream::connect(running.local_addr()).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut conn = Connection::new(tcp, Framing::default());

    // The three paths take turns, message by message, so that they share the server's state
    // (its growing tables, checkpoints) and the machine's load.
    let warm = n / 10 + 1;
    let (mut driver, mut saves, mut acks, mut hops) = (vec![], vec![], vec![], vec![]);
    for i in 0..n + warm {
        let keep = i >= warm;
        let text = message(3 * i);
        let m = StoredMessage::new(&text, peer, Charset::UTF_8, SystemTime::now());
        let started = Instant::now();
        raw.insert_one(MongoStore::document(&m))
            .write_concern(concern.clone())
            .run()
            .expect("insert");
        let t = started.elapsed();
        if keep {
            driver.push(t);
        }

        let text = message(3 * i + 1);
        let m = StoredMessage::new(&text, peer, Charset::UTF_8, SystemTime::now());
        let started = Instant::now();
        store.save(&m).expect("save");
        let t = started.elapsed();
        if keep {
            saves.push(t);
        }

        let text = message(3 * i + 2);
        let started = Instant::now();
        conn.write_frame(text.as_bytes()).unwrap();
        let ack = conn.read_frame().unwrap().expect("an ACK");
        let t = started.elapsed();
        assert!(ack.windows(7).any(|w| w == b"MSA|AA|"));
        if keep {
            acks.push(t);
        }

        // What a thread per save would cost by itself.
        let started = Instant::now();
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(mllp_mongodb::DRIVER_STACK_SIZE)
                .spawn_scoped(scope, || std::hint::black_box(i))
                .unwrap()
                .join()
                .unwrap()
        });
        let t = started.elapsed();
        if keep {
            hops.push(t);
        }
    }
    drop(conn);
    running.shutdown();
    running.join().unwrap();

    println!(
        "\nMongoDB store latency, one message at a time ({}):\n",
        if server.can_restart() {
            "nx-27017 on loopback"
        } else {
            "MLLP_TEST_MONGODB_URI"
        }
    );
    println!("| path | messages | p50 µs | p99 µs | mean µs | msg/s | p50 ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let base = report("driver insert_one (baseline)", driver, None);
    report("MongoStore::save", saves, Some(base));
    report("listener AA (one connection)", acks, Some(base));
    report(
        "(for comparison: a new thread per save, spawned and joined)",
        hops,
        Some(base),
    );
    let stats = store.stats();
    assert_eq!(stats.stored as usize, 2 * (n + warm));
    let _ = client.database(&db).drop().run();
}
