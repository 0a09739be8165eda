//! The `Store` trait under a listener: AA only after a save returned `Ok`, AE for a retryable
//! failure and for a refused message, AE for a store that panics, what the store is shown of a
//! message, and `FileStore` as a `Store`.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mllp::charset::Charset;
use mllp::hl7::{Ack, AckCode, ReplyKind, COMMIT_NAK};
use mllp::{
    Connection, FileStore, Framing, Listener, Receipt, Store, StoreError, StoreErrorKind,
    StoreHandler, StoredMessage,
};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What a test store saw of one message.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    text: String,
    control_id: Option<String>,
    message_type: Option<String>,
    apps: [Option<String>; 4],
    peer: SocketAddr,
    charset: Charset,
    received_at: SystemTime,
}

/// Keeps messages in memory; its behaviour is picked by MSH-10: `FAIL` retryable, `REFUSE`
/// refused, `PANIC` panics.
#[derive(Default)]
struct Memory {
    seen: Mutex<Vec<Seen>>,
}

impl Store for Memory {
    fn save(&self, m: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        match m.control_id() {
            Some("FAIL") => {
                return Err(StoreError::retryable("broker unreachable")
                    .with_source(std::io::Error::other("connection refused")))
            }
            Some("REFUSE") => return Err(StoreError::refused("message too large for the queue")),
            Some("PANIC") => panic!("a store bug"),
            _ => {}
        }
        let own = |v: Option<&str>| v.map(str::to_owned);
        let mut seen = self.seen.lock().unwrap();
        seen.push(Seen {
            text: m.text().to_owned(),
            control_id: own(m.control_id()),
            message_type: own(m.message_type()),
            apps: [
                own(m.sending_application()),
                own(m.sending_facility()),
                own(m.receiving_application()),
                own(m.receiving_facility()),
            ],
            peer: m.peer_addr(),
            charset: m.charset(),
            received_at: m.received_at(),
        });
        Ok(Receipt::new(format!("memory/{}", seen.len())))
    }

    fn name(&self) -> String {
        "memory".into()
    }
}

fn connect(addr: SocketAddr) -> Connection<TcpStream> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    Connection::new(tcp, Framing::default())
}

fn raw_round_trip(conn: &mut Connection<TcpStream>, message: &[u8]) -> Vec<u8> {
    conn.write_frame(message).unwrap();
    conn.read_frame()
        .unwrap()
        .expect("an acknowledgement")
        .to_vec()
}

fn round_trip(conn: &mut Connection<TcpStream>, message: &[u8]) -> Ack {
    Ack::parse(&raw_round_trip(conn, message)).unwrap()
}

fn msg(id: &str) -> String {
    format!("MSH|^~\\&|LAB|HOSP|EHR|WARD|20260101||ORU^R01|{id}|P|2.5\rPID|1\r")
}

#[test]
fn aa_only_after_a_save_and_naks_that_say_why() {
    let store = Arc::new(Memory::default());
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn_store(Arc::clone(&store))
        .unwrap();
    let mut conn = connect(running.local_addr());
    let before = SystemTime::now();

    let ack = round_trip(&mut conn, msg("OK1").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    let seen = store.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.text, msg("OK1"));
    assert_eq!(s.control_id.as_deref(), Some("OK1"));
    assert_eq!(s.message_type.as_deref(), Some("ORU^R01"));
    let apps: Vec<_> = s.apps.iter().map(|a| a.as_deref()).collect();
    assert_eq!(apps, [Some("LAB"), Some("HOSP"), Some("EHR"), Some("WARD")]);
    assert_eq!(s.peer, conn.get_ref().local_addr().unwrap());
    assert_eq!(s.charset, Charset::UTF_8);
    assert!(s.received_at >= before && s.received_at <= SystemTime::now());

    // Retryable: AE with the reason; nothing was kept.
    let ack = round_trip(&mut conn, msg("FAIL").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");
    assert_eq!(
        ack.text.as_deref(),
        Some("message could not be stored: broker unreachable: connection refused")
    );
    // Refused (a retry cannot succeed): AE too, with the store's reason.
    let ack = round_trip(&mut conn, msg("REFUSE").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");
    assert_eq!(
        ack.text.as_deref(),
        Some("message could not be stored: message too large for the queue")
    );
    // A store that panics: AE, and the connection goes on.
    let ack = round_trip(&mut conn, msg("PANIC").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");
    let ack = round_trip(&mut conn, msg("OK2").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    assert_eq!(store.seen.lock().unwrap().len(), 2);

    // The counters move just after each ACK is written: wait for the last one.
    let counted = |s: &mllp::ListenerStats| (s.acks_aa, s.acks_ae, s.acks_ar);
    assert!(
        mllp_testkit::eventually(Duration::from_secs(5), || counted(&running.stats())
            == (2, 3, 0)),
        "{:?}",
        running.stats()
    );
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn the_store_sees_utf8_and_the_wire_charset() {
    let store = Arc::new(Memory::default());
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn_store(Arc::clone(&store))
        .unwrap();
    let text = "MSH|^~\\&|LÄB|HOSP|||2026||ADT^A01|L-ü|P|2.5||||||8859/1\rPID|1||7||MÜLLER\r";
    let latin1: Vec<u8> = text.chars().map(|c| u8::try_from(c).unwrap()).collect();
    let mut conn = connect(running.local_addr());
    let ack = round_trip(&mut conn, &latin1);
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    let seen = store.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.text, text);
    assert_eq!(seen.charset, Charset::ISO_8859_1);
    assert_eq!(seen.control_id.as_deref(), Some("L-ü"));
    assert_eq!(seen.apps[0].as_deref(), Some("LÄB"));
    assert_eq!(seen.apps[2], None);
}

#[test]
fn mllp2_mode_answers_a_failed_save_with_a_commit_nak() {
    let running = Listener::builder("127.0.0.1:0")
        .reply(ReplyKind::Mllp2)
        .bind()
        .unwrap()
        .spawn_store(Memory::default())
        .unwrap();
    let mut conn = connect(running.local_addr());
    assert_eq!(
        raw_round_trip(&mut conn, msg("FAIL").as_bytes()),
        COMMIT_NAK
    );
    assert_eq!(
        raw_round_trip(&mut conn, msg("REFUSE").as_bytes()),
        COMMIT_NAK
    );
}

#[test]
fn store_handler_reports_each_save_and_file_store_is_a_store() {
    let dir = std::env::temp_dir().join(format!("mllp-store-trait-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileStore::open(&dir).unwrap();
    assert_eq!(store.name(), dir.display().to_string());
    store.check().unwrap();
    let receipts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&receipts);
    let handler = StoreHandler::new(store).on_saved(move |m, receipt| {
        seen.lock()
            .unwrap()
            .push((m.control_id().unwrap().to_owned(), receipt.clone()));
    });
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(handler)
        .unwrap();
    let mut conn = connect(running.local_addr());
    let ack = round_trip(&mut conn, msg("F/1").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    let receipts = receipts.lock().unwrap().clone();
    let file = dir.join("0000000001-F_1.hl7");
    assert_eq!(
        receipts,
        [("F/1".to_owned(), Receipt::new(file.display().to_string()))]
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), msg("F/1"));

    // The directory goes away: AE, retryable, and check says so too.
    std::fs::remove_dir_all(&dir).unwrap();
    let ack = round_trip(&mut conn, msg("F2").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");
    let text = ack.text.unwrap();
    assert!(
        text.starts_with("message could not be stored: cannot write the message file: "),
        "{text}"
    );
    assert!(!text.contains(&dir.display().to_string()), "{text}");
    running.shutdown();
    running.join().unwrap();

    let store = FileStore::open(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let e = Store::check(&store).unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Retryable);
    let e = Store::save(
        &store,
        &StoredMessage::new(
            &msg("X"),
            "127.0.0.1:1".parse().unwrap(),
            Charset::UTF_8,
            SystemTime::now(),
        ),
    )
    .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    // Into the crate's error: `Error::Store`, keeping the kind and the cause.
    let e = mllp::Error::from(e);
    assert!(
        matches!(&e, mllp::Error::Store(inner) if inner.is_retryable()),
        "{e:?}"
    );
}

#[test]
fn file_store_check_probes_the_directory_each_time() {
    let dir = std::env::temp_dir().join(format!("mllp-store-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileStore::open(&dir).unwrap();
    store.check().unwrap();
    // Gone: a retryable failure (a volume unmounted, a directory removed by mistake).
    std::fs::remove_dir_all(&dir).unwrap();
    let e = store.check().unwrap_err();
    assert!(e.is_retryable(), "{e}");
    // A file where the directory was: still a failure.
    std::fs::write(&dir, b"not a directory").unwrap();
    assert!(store.check().is_err());
    std::fs::remove_file(&dir).unwrap();
    // Back: fine again, and the probe leaves nothing behind.
    std::fs::create_dir_all(&dir).unwrap();
    store.check().unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
