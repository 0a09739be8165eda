//! `mllp listen --store mongodb://...` against a MongoDB wire-protocol server (`nx-27017`, or
//! the MongoDB `MLLP_TEST_MONGODB_URI` names): 500 messages over four connections, every
//! document read back through the driver and checked field by field against what was sent;
//! a server that cannot be reached stops the listener at startup with one sentence; a server
//! that hangs (SIGSTOP) turns the health line `down` within seconds, every answer at once, and
//! holds a message for `--store-wait` and no longer, and HAProxy takes its listener out within
//! seconds.

#![cfg(feature = "mongodb")]

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use common::free_port;
use common::mongo::MongoServer;
use common::process::{mllp, Proc, LIMIT};
use mllp::charset::Charset;
use mllp::{Connection, Framing};
use mongodb::bson::{Bson, Document};

const N: usize = 500;
const CONNECTIONS: usize = 4;

/// What was sent as message `i`, and what its document must hold.
struct Sent {
    control_id: String,
    message_type: &'static str,
    sending_application: String,
    sending_facility: String,
    receiving_facility: &'static str,
    /// The text as UTF-8 (what the store keeps).
    text: String,
    charset: Charset,
    peer: SocketAddr,
    /// Before the message was written, and after its ACK was read.
    window: (SystemTime, SystemTime),
}

/// Message `i`: every fifth one in ISO-8859-1 (MSH-18 `8859/1`), the others in UTF-8.
fn message(i: usize) -> (Vec<u8>, Sent) {
    let latin1 = i.is_multiple_of(5);
    let control_id = format!("M{i:05}");
    let message_type = if i.is_multiple_of(2) {
        "ADT^A01^ADT_A01"
    } else {
        "ORU^R01"
    };
    let (app, fac, rfac) = (format!("APP{}", i % 3), format!("FAC{}", i % 2), "WARD");
    let head = format!(
        "MSH|^~\\&|{app}|{fac}|EHR|{rfac}|20260101120000||{message_type}|{control_id}|P|2.5.1||||||{}\r\
         PID|1||{i}^^^HOSP^MR||",
        if latin1 { "8859/1" } else { "UNICODE UTF-8" }
    );
    let name = "MÜLLER^ZOË";
    let mut bytes = head.clone().into_bytes();
    if latin1 {
        bytes.extend(name.chars().map(|c| c as u32 as u8));
    } else {
        bytes.extend_from_slice(name.as_bytes());
    }
    bytes.extend_from_slice(b"\rOBX|1|TX|||\xe2\x82\xac ok\r");
    if latin1 {
        // No euro sign in Latin-1.
        let at = bytes.len() - "\u{20ac} ok\r".len();
        bytes.truncate(at);
        bytes.extend_from_slice(b"EUR ok\r");
    }
    let text = if latin1 {
        bytes.iter().map(|&b| b as char).collect()
    } else {
        String::from_utf8(bytes.clone()).unwrap()
    };
    let sent = Sent {
        control_id,
        message_type,
        sending_application: app,
        sending_facility: fac,
        receiving_facility: rfac,
        text,
        charset: if latin1 {
            Charset::ISO_8859_1
        } else {
            Charset::UTF_8
        },
        peer: "0.0.0.0:0".parse().unwrap(),
        window: (SystemTime::now(), SystemTime::now()),
    };
    (bytes, sent)
}

/// Sends messages `first, first + CONNECTIONS, ...` on one connection; what each was.
fn send_share(addr: &str, first: usize) -> Vec<Sent> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(common::process::LIMIT)).unwrap();
    tcp.set_write_timeout(Some(common::process::LIMIT)).unwrap();
    let local = tcp.local_addr().unwrap();
    let mut conn = Connection::new(tcp, Framing::default());
    let mut sent = Vec::new();
    for i in (first..N).step_by(CONNECTIONS) {
        let (bytes, mut s) = message(i);
        let before = SystemTime::now();
        conn.write_frame(&bytes).unwrap();
        let ack = conn.read_frame().unwrap().expect("an ACK").to_vec();
        let ack = String::from_utf8_lossy(&ack);
        assert!(ack.contains(&format!("MSA|AA|{}", s.control_id)), "{ack}");
        s.peer = local;
        s.window = (before, SystemTime::now());
        sent.push(s);
    }
    sent
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn five_hundred_messages_become_documents_with_every_field() {
    let Some(server) = MongoServer::start("cli-500") else {
        return;
    };
    let db = format!("mllp_test_{}_cli", std::process::id());
    let url = format!(
        "{}/{db}?collection=adt&serverSelectionTimeoutMS=3000",
        server.uri()
    );
    let count = N.to_string();
    let proc = Proc::spawn(
        &["listen", "127.0.0.1:0", "--store", &url, "--count", &count],
        None,
    );
    let first = proc.line();
    let expected = format!("(storing in {}/{db}?collection=adt)", server.uri());
    assert!(first.ends_with(&expected), "{first}");
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || send_share(&addr, c))
        })
        .collect();
    let sent: Vec<Sent> = senders
        .into_iter()
        .flat_map(|t| t.join().expect("a sender"))
        .collect();
    assert_eq!(sent.len(), N);
    let ended = proc.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    // One line per message: `DB.COLLECTION/OBJECTID MSH-10 MSH-9 PEER`, then the summary.
    let mut receipts = HashMap::new();
    for line in &ended.stdout[..N] {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 4, "{line}");
        let oid = parts[0]
            .strip_prefix(&format!("{db}.adt/"))
            .unwrap_or_else(|| panic!("{line}"));
        receipts.insert(parts[1].to_owned(), oid.to_owned());
    }
    assert_eq!(receipts.len(), N);
    assert_eq!(
        ended.stdout[N],
        format!("stopped: {N} messages on {CONNECTIONS} connections; AA {N}")
    );

    let uri = format!("{}/?serverSelectionTimeoutMS=10000", server.uri());
    let client = mongodb::sync::Client::with_uri_str(uri).unwrap();
    let coll = client.database(&db).collection::<Document>("adt");
    let docs: Vec<Document> = coll
        .find(mongodb::bson::doc! {})
        .run()
        .unwrap()
        .map(|d| d.unwrap())
        .collect();
    assert_eq!(docs.len(), N);
    let by_id: HashMap<&str, &Document> = docs
        .iter()
        .map(|d| (d.get_str("control_id").unwrap(), d))
        .collect();
    assert_eq!(by_id.len(), N, "one document per control ID");
    for s in &sent {
        let d = by_id[s.control_id.as_str()];
        let get = |k: &str| d.get_str(k).unwrap_or_else(|e| panic!("{k}: {e} in {d:?}"));
        assert_eq!(get("message_type"), s.message_type);
        assert_eq!(get("sending_application"), s.sending_application);
        assert_eq!(get("sending_facility"), s.sending_facility);
        assert_eq!(get("receiving_application"), "EHR");
        assert_eq!(get("receiving_facility"), s.receiving_facility);
        assert_eq!(get("message"), s.text, "{}", s.control_id);
        assert_eq!(get("charset"), s.charset.name());
        assert_eq!(get("peer"), s.peer.to_string());
        let size = match d.get("size") {
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Int32(n)) => i64::from(*n),
            other => panic!("size {other:?}"),
        };
        assert_eq!(size, s.text.len() as i64);
        let at = d.get_datetime("received_at").unwrap().timestamp_millis();
        assert!(
            millis(s.window.0) <= at && at <= millis(s.window.1),
            "{} received at {at}, sent in {:?}",
            s.control_id,
            s.window
        );
        let oid = d.get_object_id("_id").unwrap().to_hex();
        assert_eq!(
            receipts[&s.control_id], oid,
            "the printed receipt names the document"
        );
    }
    let _ = client.database(&db).drop().run();
}

/// `mllp listen --store URL`, which must stop at startup; its one line of standard error, and
/// how long it took.
fn refused(url: &str) -> (String, Duration) {
    let started = std::time::Instant::now();
    let ended = mllp(&["listen", "127.0.0.1:0", "--store", url]);
    let took = started.elapsed();
    assert_eq!(ended.code, 2, "{url}: {ended:?}");
    assert!(ended.stdout.is_empty(), "{url}: {ended:?}");
    let lines: Vec<&str> = ended.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{url}: {ended:?}");
    (lines[0].to_owned(), took)
}

#[test]
fn an_unreachable_server_stops_the_listener_at_startup() {
    let port = free_port();
    let url = format!(
        "mongodb://hl7:secret@127.0.0.1:{port}/hl7?collection=adt&serverSelectionTimeoutMS=1000"
    );
    let (line, took) = refused(&url);
    assert!(
        line.starts_with(&format!(
            "mllp: error: cannot store in mongodb://127.0.0.1:{port}/hl7?collection=adt: \
             MongoDB did not answer a ping: no server available ("
        )),
        "{line}"
    );
    assert!(line.to_lowercase().contains("refused"), "{line}");
    assert!(!line.contains("secret"), "{line}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    // With dedup=true the store creates its index at once: the same server, the same clarity.
    let (line, _) = refused(&format!("{url}&dedup=true"));
    assert!(
        line.starts_with("mllp: error: --store mongodb: cannot create the unique index in "),
        "{line}"
    );
    assert!(
        line.contains("no server available (") && !line.contains("secret"),
        "{line}"
    );
    // The default server selection timeout (5 s) bounds it too.
    let (_, took) = refused(&format!("mongodb://127.0.0.1:{port}/hl7"));
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn a_hung_server_turns_health_down_at_once_and_holds_a_message_for_the_store_wait() {
    let Some(server) = MongoServer::start("cli-hung") else {
        return;
    };
    let Some(pid) = server.pid() else {
        eprintln!("MLLP_TEST_MONGODB_URI names a server this test cannot stop: not run");
        return;
    };
    let db = format!("mllp_test_{}_hung", std::process::id());
    let url = format!(
        "{}/{db}?collection=adt&serverSelectionTimeoutMS=3000",
        server.uri()
    );
    let (proc, addr, health_addr) = common::listen_with_health(&url, &["-q", "--store-wait", "5"]);
    assert_eq!(common::health(&health_addr), "up ready\n");
    let ack = common::exchange(&addr, common::adt("H1").as_bytes(), LIMIT).unwrap();
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|H1"));

    // The server stops answering; its connections stay open.
    let paused = common::pause::Paused::new(pid);
    let sender = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let result = common::exchange(&addr, common::adt("H2").as_bytes(), LIMIT);
            (result, started.elapsed())
        })
    };
    // Every answer at once; `down` within a few seconds, with one message waiting.
    let (down_after, slowest) = common::until_down(&health_addr, Duration::from_secs(8));
    let (result, held) = sender.join().unwrap();
    eprintln!(
        "hung server: health down after {down_after:?}, slowest answer {slowest:?}; \
         --store-wait 5: the message's connection held {held:?}"
    );
    let down_after = down_after.expect("the health line turns down");
    assert!(down_after < Duration::from_secs(4), "{down_after:?}");
    assert!(
        slowest < Duration::from_millis(100),
        "an answer took {slowest:?}"
    );
    // --on-store-failure close (the default): no ACK, the sender tries again.
    let e = result.expect_err("no acknowledgement while the store hangs");
    assert!(e.contains("closed without an acknowledgement"), "{e}");
    assert!(held < Duration::from_secs(6), "held for {held:?}");

    paused.resume();
    assert!(
        common::eventually(Duration::from_secs(10), || common::health(&health_addr)
            == "up ready\n"),
        "still down with the server answering again"
    );
    let ack = common::exchange(&addr, common::adt("H3").as_bytes(), LIMIT).unwrap();
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|H3"));
    common::sigterm(&proc);
    let ended = proc.wait();
    assert!(ended.code == 0 || ended.code == 1, "{ended:?}");
}

#[cfg(unix)]
#[test]
fn haproxy_takes_a_listener_whose_mongodb_hangs_out_within_seconds_and_back() {
    use common::pool::{behind_haproxy, haproxy_here, Member};
    if !haproxy_here() {
        return;
    }
    let Some(server) = MongoServer::start("cli-hung-haproxy") else {
        return;
    };
    let Some(pid) = server.pid() else {
        eprintln!("MLLP_TEST_MONGODB_URI names a server this test cannot stop: not run");
        return;
    };
    let dir = common::scratch_dir("hung-haproxy-files");
    let db = format!("mllp_test_{}_hung_haproxy", std::process::id());
    let url = format!("{}/{db}?collection=adt", server.uri());
    let members = vec![
        Member::start(dir.to_str().unwrap(), &["-q"]),
        Member::start(&url, &["-q"]),
    ];
    // l0 stores in a directory, l1 in MongoDB (deploy/haproxy.cfg's checks, every 2 s).
    let proxy = behind_haproxy("hung-haproxy", &members);
    let paused = common::pause::Paused::new(pid);
    let hung = Instant::now();
    let down = proxy.wait_for("l1", Duration::from_secs(30), |s| {
        s.status.starts_with("DOWN")
    });
    let took = hung.elapsed();
    eprintln!("MongoDB hung: HAProxy marked its listener DOWN after {took:?}");
    assert!(down, "still {:?}\n{}", proxy.server("l1"), proxy.log());
    assert!(took < Duration::from_secs(8), "DOWN only after {took:?}");
    assert!(proxy.server("l0").is_some_and(|s| s.status == "UP"));
    paused.resume();
    assert!(
        proxy.wait_for("l1", Duration::from_secs(15), |s| s.status == "UP"),
        "not back: {:?}",
        proxy.server("l1")
    );
    drop(members);
    let _ = std::fs::remove_dir_all(dir);
}
