//! `MongoStore` against a MongoDB wire-protocol server (`nx-27017`, or the MongoDB that
//! `MLLP_TEST_MONGODB_URI` names), with documents read back through the driver: the document
//! of one message field by field, the server stopped mid-send under a listener, resends with
//! `dedup=true`, and a server that cannot be reached.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use mllp::charset::Charset;
use mllp::{Listener, Store, StoreErrorKind, StoreHandler, StoredMessage};
use mllp_mongodb::{ErrorKind, MongoStore, CHECK_TIMEOUT, DEDUP_INDEX};
use mllp_testkit::eventually;
use mllp_testkit::free_port;
use mongodb::bson::{doc, Bson, DateTime};

#[test]
fn a_message_becomes_one_document_with_every_field() {
    let Some(server) = MongoServer::start("fields") else {
        return;
    };
    let db = database("fields");
    let url = format!("{}/{db}?collection=inbox&{FAST}", server.uri());
    let store = MongoStore::open_url(&url).unwrap();
    store.check().unwrap();
    assert!(
        store.name().ends_with(&format!("/{db}?collection=inbox")),
        "{}",
        store.name()
    );
    assert!(
        !store.name().contains('@'),
        "no credentials: {}",
        store.name()
    );
    let text = "MSH|^~\\&|LÄB^x|HOSP|EHR|WARD|2026||ORU^R01^ORU_R01|ID-ü|P|2.5||||||8859/1\r\
                PID|1||1||MÜLLER^JÖRG\r";
    let peer: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_780_000_000_123);
    let receipt = store
        .save(&StoredMessage::new(text, peer, Charset::ISO_8859_1, at))
        .unwrap();
    assert!(!receipt.is_duplicate());
    let bare = "MSH|^~\\&|||||||ACK|\r";
    store
        .save(&StoredMessage::new(bare, peer, Charset::UTF_8, at))
        .unwrap();
    assert_eq!(store.stats().stored, 2);

    let coll = collection(&server, &db, "inbox");
    let docs = documents(&coll);
    assert_eq!(docs.len(), 2, "{docs:?}");
    let d = &docs[0];
    let id = d.get_object_id("_id").unwrap();
    assert_eq!(receipt.location(), format!("{db}.inbox/{}", id.to_hex()));
    let s = |k: &str| d.get_str(k).unwrap_or_else(|e| panic!("{k}: {e} in {d:?}"));
    assert_eq!(s("control_id"), "ID-ü");
    assert_eq!(s("message_type"), "ORU^R01^ORU_R01");
    assert_eq!(s("sending_application"), "LÄB^x");
    assert_eq!(s("sending_facility"), "HOSP");
    assert_eq!(s("receiving_application"), "EHR");
    assert_eq!(s("receiving_facility"), "WARD");
    assert_eq!(s("peer"), "127.0.0.1:40001");
    assert_eq!(s("charset"), Charset::ISO_8859_1.name());
    assert_eq!(s("message"), text);
    // Stored as int64; nx-27017 gives small integers back as int32.
    assert_eq!(integer(d.get("size")), Some(text.len() as i64), "{d:?}");
    assert_eq!(
        d.get_datetime("received_at").unwrap(),
        &DateTime::from_system_time(at)
    );
    assert_eq!(
        s("content_digest"),
        mllp::ContentDigest::of(text.as_bytes()).to_string()
    );
    // No client certificate on this connection: its subject is null.
    assert_eq!(d.get("tls_subject"), Some(&Bson::Null), "{d:?}");
    assert_eq!(d.len(), 14, "{d:?}"); // the thirteen fields and _id
                                      // Empty header fields are null, not absent or "".
    let b = &docs[1];
    for k in [
        "control_id",
        "sending_application",
        "sending_facility",
        "receiving_application",
        "receiving_facility",
    ] {
        assert_eq!(b.get(k), Some(&Bson::Null), "{k} in {b:?}");
    }
    assert_eq!(b.get_str("message_type").unwrap(), "ACK");
    drop_database(&server, &db);
}

/// An integer field of either width.
fn integer(v: Option<&Bson>) -> Option<i64> {
    match v? {
        Bson::Int64(n) => Some(*n),
        Bson::Int32(n) => Some(i64::from(*n)),
        _ => None,
    }
}

#[test]
fn a_stopped_server_gets_no_aa_and_the_sender_finishes_after_it_returns() {
    let Some(mut server) = MongoServer::start("stop") else {
        return;
    };
    if !server.can_restart() {
        mllp_testkit::skip("MLLP_TEST_MONGODB_URI names a server this test cannot stop");
        return;
    }
    const N: u64 = 200;
    let db = database("stop");
    let url = format!("{}/{db}?collection=m&dedup=true&{FAST}", server.uri());
    let store = Arc::new(MongoStore::open_url(&url).unwrap());
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn_store(Arc::clone(&store))
        .unwrap();
    let addr = running.local_addr().to_string();
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let sender = {
        let (accepted, refused) = (Arc::clone(&accepted), Arc::clone(&refused));
        std::thread::spawn(move || {
            let mut peer = Peer::new(&addr);
            let deadline = Instant::now() + Duration::from_secs(120);
            for i in 0..N {
                let m = message("LAB", "HOSP", &format!("S{i:04}"));
                let before = peer.refusals;
                peer.send_until_accepted(m.as_bytes(), deadline);
                refused.fetch_add(peer.refusals - before, Ordering::SeqCst);
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    assert!(eventually(LIMIT, || accepted.load(Ordering::SeqCst) >= 50));
    server.stop();
    let at_stop = accepted.load(Ordering::SeqCst);
    // While it is down every attempt is refused: the message being sent is resent, and no
    // further message is accepted (the one in flight when the server died may have been).
    assert!(eventually(LIMIT, || store.stats().failed >= 3));
    assert!(
        accepted.load(Ordering::SeqCst) <= at_stop + 1,
        "accepted while the server was down"
    );
    server.start_again();
    sender
        .join()
        .expect("the sender finishes once the server is back");
    assert!(
        refused.load(Ordering::SeqCst) >= 3,
        "the sender was refused while it was down"
    );
    running.shutdown();
    running.join().unwrap();

    let coll = collection(&server, &db, "m");
    let mut ids: Vec<String> = documents(&coll)
        .iter()
        .map(|d| d.get_str("control_id").unwrap().to_owned())
        .collect();
    ids.sort();
    let expected: Vec<String> = (0..N).map(|i| format!("S{i:04}")).collect();
    assert_eq!(ids, expected, "one document for every accepted message");
    let stats = store.stats();
    assert!(stats.failed >= 3, "{stats:?}");
    // The insert in flight when the server was killed may have been kept without its reply:
    // the resend is then recognised, not stored again.
    assert_eq!(stats.stored + stats.resends, N, "{stats:?}");
    assert!(stats.resends <= 1, "{stats:?}");
    drop_database(&server, &db);
}

#[test]
fn a_hung_server_holds_a_message_for_the_store_wait_and_no_longer() {
    let Some(server) = MongoServer::start("hung") else {
        return;
    };
    let Some(pid) = server.pid() else {
        eprintln!("MLLP_TEST_MONGODB_URI names a server this test cannot stop: not run");
        return;
    };
    let db = database("hung");
    let url = format!("{}/{db}?collection=m&{FAST}", server.uri());
    let store = Arc::new(MongoStore::open_url(&url).unwrap());
    store.check().unwrap();
    let wait = Duration::from_secs(2);
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(StoreHandler::new(Arc::clone(&store)).store_wait(wait))
        .unwrap();
    let mut peer = Peer::new(&running.local_addr().to_string());
    let ack = peer
        .exchange(message("LAB", "HOSP", "H1").as_bytes())
        .unwrap();
    assert!(ack.contains("MSA|AA|H1"), "{ack}");

    // The server stops answering (its connections stay open): the message is answered AE at
    // the end of the store wait, not when the driver gives up.
    let paused = mllp_testkit::pause::Paused::new(pid);
    let started = Instant::now();
    let ack = peer.exchange(message("LAB", "HOSP", "H2").as_bytes());
    let took = started.elapsed();
    eprintln!("store wait {wait:?}: answered after {took:?}");
    let ack = ack.unwrap();
    assert!(ack.contains("MSA|AE|H2"), "{ack}");
    assert!(
        took < wait + Duration::from_secs(1),
        "answered after {took:?}"
    );
    let started = Instant::now();
    let e = store.check().expect_err("a hung server fails the check");
    let took = started.elapsed();
    assert!(
        took < CHECK_TIMEOUT + Duration::from_secs(1),
        "checked in {took:?}"
    );
    assert!(e.is_retryable(), "{e}");

    // Back: the resend is accepted.
    paused.resume();
    peer.send_until_accepted(
        message("LAB", "HOSP", "H2").as_bytes(),
        Instant::now() + LIMIT,
    );
    running.shutdown();
    running.join().unwrap();
    drop_database(&server, &db);
}

#[test]
fn with_dedup_a_resend_is_accepted_and_not_stored_twice() {
    let Some(server) = MongoServer::start("dedup") else {
        return;
    };
    let db = database("dedup");
    let url = format!("{}/{db}?collection=m&dedup=true&{FAST}", server.uri());
    let store = Arc::new(MongoStore::open_url(&url).unwrap());
    assert!(
        store.name().ends_with("?collection=m&dedup=true"),
        "{}",
        store.name()
    );
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn_store(Arc::clone(&store))
        .unwrap();
    let addr = running.local_addr().to_string();
    // The same 25 control IDs from two senders: 50 different messages.
    let messages: Vec<String> = ["LAB", "RAD"]
        .iter()
        .flat_map(|app| (0..25).map(move |i| message(app, "HOSP", &format!("D{i}"))))
        .collect();
    let without_id = "MSH|^~\\&|LAB|HOSP|EHR|WARD|2026||ADT^A01||P|2.5\r";
    let mut peer = Peer::new(&addr);
    for round in 0..2 {
        for m in &messages {
            let ack = peer.exchange(m.as_bytes()).unwrap();
            assert!(ack.contains("MSA|AA|"), "round {round}: {ack}");
        }
        let ack = peer.exchange(without_id.as_bytes()).unwrap();
        assert!(ack.contains("MSA|AA|"), "round {round}: {ack}");
    }
    running.shutdown();
    running.join().unwrap();
    let stats = store.stats();
    assert_eq!((stats.stored, stats.resends), (52, 50), "{stats:?}");

    let coll = collection(&server, &db, "m");
    let docs = documents(&coll);
    assert_eq!(
        docs.len(),
        52,
        "one document each; a message without MSH-10 twice"
    );
    let mut keys: Vec<(String, String)> = docs
        .iter()
        .filter_map(|d| {
            let id = d.get_str("control_id").ok()?;
            Some((
                d.get_str("sending_application").unwrap().to_owned(),
                id.to_owned(),
            ))
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 50);

    // The index is there once, by its name, and opening the store again keeps it; a resend
    // then names the document already stored.
    let again = MongoStore::open_url(&url).unwrap();
    let names = coll.list_index_names().run().unwrap();
    assert_eq!(names.len(), 2, "{names:?}");
    // MongoDB keeps the index's name; nx-27017 names its SQLite index after table and keys.
    assert!(
        names.iter().any(|n| n == DEDUP_INDEX) || server.can_restart(),
        "{names:?}"
    );
    let original = coll
        .find_one(doc! { "sending_application": "RAD", "control_id": "D7" })
        .run()
        .unwrap()
        .unwrap();
    let peer_addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let receipt = again
        .save(&StoredMessage::new(
            &message("RAD", "HOSP", "D7"),
            peer_addr,
            Charset::UTF_8,
            SystemTime::now(),
        ))
        .unwrap();
    assert!(receipt.is_duplicate());
    assert_eq!(
        receipt.location(),
        format!("{db}.m/{}", original.get_object_id("_id").unwrap().to_hex())
    );
    assert_eq!(again.stats().resends, 1);
    assert_eq!(documents(&coll).len(), 52);
    drop_database(&server, &db);
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    // Nothing listens on a port that was free a moment ago (loopback: refused at once).
    let port = free_port();
    let url = format!(
        "mongodb://hl7:secret@127.0.0.1:{port}/hl7?collection=m&serverSelectionTimeoutMS=1000"
    );
    let store = MongoStore::open_url(&url).unwrap();
    assert_eq!(
        store.name(),
        format!("mongodb://127.0.0.1:{port}/hl7?collection=m")
    );
    let started = Instant::now();
    let e = store.check().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), StoreErrorKind::Retryable);
    let text = e.to_string();
    assert!(
        text.starts_with("MongoDB did not answer a ping: no server available ("),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains('\n') && !text.contains("secret"), "{text}");

    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let m = message("LAB", "HOSP", "U1");
    let e = store
        .save(&StoredMessage::new(
            &m,
            peer,
            Charset::UTF_8,
            SystemTime::now(),
        ))
        .unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Retryable, "{e}");
    assert!(e.to_string().starts_with("MongoDB unreachable: "), "{e}");
    // A message no document can hold is refused without asking the server.
    let huge = format!("{m}NTE|1||{}\r", "x".repeat(mllp_mongodb::MAX_TEXT_BYTES));
    let e = store
        .save(&StoredMessage::new(
            &huge,
            peer,
            Charset::UTF_8,
            SystemTime::now(),
        ))
        .unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Refused, "{e}");
    assert_eq!(store.stats().failed, 2);

    // dedup=true creates its index when the store opens: the same server is an error then.
    let e = MongoStore::open_url(&format!("{url}&dedup=true")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
    let e = MongoStore::open_url(&format!("mongodb://127.0.0.1:{port}/hl7?w=0")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Url, "{e}");
}

/// `message("LAB", "HOSP", id)` with MSH-7 `at` and the patient `name`.
fn patient(id: &str, at: &str, name: &str) -> String {
    format!("MSH|^~\\&|LAB|HOSP|EHR|WARD|{at}||ADT^A01|{id}|P|2.5\rPID|1||7||{name}\r")
}

fn save(store: &MongoStore, text: &str) -> mllp::Receipt {
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    store
        .save(&StoredMessage::new(
            text,
            peer,
            Charset::UTF_8,
            SystemTime::now(),
        ))
        .unwrap()
}

#[test]
fn with_dedup_another_message_with_a_reused_control_id_is_a_new_document() {
    let Some(server) = MongoServer::start("reused") else {
        return;
    };
    let db = database("reused");
    let coll = collection(&server, &db, "m");
    // A collection of an earlier version: the unique index on the key alone, one document
    // without a content digest.
    let old = mongodb::IndexModel::builder()
        .keys(doc! { "sending_application": 1, "sending_facility": 1, "control_id": 1 })
        .options(
            mongodb::options::IndexOptions::builder()
                .name("mllp_dedup".to_owned())
                .unique(true)
                .build(),
        )
        .build();
    coll.create_index(old).run().unwrap();
    coll.insert_one(doc! {
        "sending_application": "LAB", "sending_facility": "HOSP", "control_id": "OLD",
        "message": "...",
    })
    .run()
    .unwrap();
    let url = format!("{}/{db}?collection=m&dedup=true&{FAST}", server.uri());
    let store = MongoStore::open_url(&url).unwrap();
    // The key-only index is gone, the index on key and digest is there.
    let keys: Vec<Vec<String>> = coll
        .list_indexes()
        .run()
        .unwrap()
        .map(|i| i.unwrap().keys.keys().cloned().collect())
        .collect();
    assert!(!keys.iter().any(|k| k.len() == 3), "{keys:?}");
    assert!(keys.iter().any(|k| k.len() == 4), "{keys:?}");

    let a = patient("1", "20260101120000", "SMITH");
    // The sending system reset its counter: same MSH-3, MSH-4, MSH-10, another message.
    let b = patient("1", "20260102080000", "JONES");
    let first = save(&store, &a);
    assert!(!first.is_duplicate() && !first.reuses_control_id());
    let second = save(&store, &b);
    assert!(!second.is_duplicate(), "B is another message: stored");
    assert!(second.reuses_control_id());
    assert_ne!(first.location(), second.location());
    // An exact resend of either is a duplicate naming its own document.
    assert_eq!(save(&store, &a), mllp::Receipt::duplicate(first.location()));
    assert_eq!(
        save(&store, &b),
        mllp::Receipt::duplicate(second.location())
    );
    // The key of the document stored before the upgrade is free again (it has no digest).
    assert!(!save(&store, &patient("OLD", "2026", "X")).is_duplicate());
    let stats = store.stats();
    assert_eq!(
        (stats.stored, stats.resends, stats.reused_control_ids),
        (3, 2, 1),
        "{stats:?}"
    );
    let docs = documents(&coll);
    assert_eq!(docs.len(), 4);
    let texts: Vec<&str> = docs
        .iter()
        .filter_map(|d| d.get_str("message").ok())
        .collect();
    assert!(texts.contains(&a.as_str()) && texts.contains(&b.as_str()));
    let digest = |t: &str| mllp::ContentDigest::of(t.as_bytes()).to_string();
    assert!(docs
        .iter()
        .any(|d| d.get_str("content_digest").ok() == Some(&digest(&b))));
    drop_database(&server, &db);
}
