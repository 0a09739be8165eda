//! What a store-then-ACK listener does when a save fails: retrying a retryable failure while
//! the sender waits (`StoreHandler::store_wait`), answering a refusal at once, and closing the
//! connection without an acknowledgement (`OnStoreFailure::Close`, `Response::close`), and a
//! store that hangs holding the sender for the wait and no longer (`Store::save_before`).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mllp::hl7::{Ack, AckCode};
use mllp::{
    Connection, Framing, Handler, Listener, Message, OnStoreFailure, Receipt, Response, Store,
    StoreError, StoreHandler, StoredMessage,
};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Fails (retryably) its first `fail_first` saves, then keeps everything; refuses MSH-10
/// `REFUSE` always.
struct Flaky {
    fail_first: u32,
    attempts: AtomicU32,
}

impl Flaky {
    fn new(fail_first: u32) -> Arc<Flaky> {
        Arc::new(Flaky {
            fail_first,
            attempts: AtomicU32::new(0),
        })
    }
}

impl Store for Flaky {
    fn save(&self, m: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if m.control_id() == Some("REFUSE") {
            return Err(StoreError::refused("unroutable"));
        }
        if n <= self.fail_first {
            return Err(StoreError::retryable("broker unreachable"));
        }
        Ok(Receipt::new("kept"))
    }

    fn name(&self) -> String {
        "flaky".into()
    }
}

fn connect(addr: SocketAddr) -> Connection<TcpStream> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    Connection::new(tcp, Framing::default())
}

/// Sends `id` and returns the ACK, or `None` when the listener closed the connection instead.
fn send(conn: &mut Connection<TcpStream>, id: &str) -> Option<Ack> {
    let message = format!("MSH|^~\\&|LAB|HOSP|EHR|WARD|20260101||ORU^R01|{id}|P|2.5\rPID|1\r");
    conn.write_frame(message.as_bytes()).unwrap();
    match conn.read_frame() {
        Ok(Some(frame)) => Some(Ack::parse(frame).unwrap()),
        Ok(None) => None,
        Err(e) if e.is_timeout() => panic!("neither an ACK nor a close: {e}"),
        // A reset is a close too.
        Err(_) => None,
    }
}

#[test]
fn a_retryable_failure_is_retried_within_the_store_wait() {
    let store = Flaky::new(3);
    let handler = StoreHandler::new(Arc::clone(&store)).store_wait(Duration::from_secs(5));
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(handler)
        .unwrap();
    let mut conn = connect(running.local_addr());
    let started = Instant::now();
    let ack = send(&mut conn, "W1").expect("an ACK");
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    assert_eq!(store.attempts.load(Ordering::SeqCst), 4);
    // Pauses of 50, 100 and 200 ms.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(350), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn without_a_store_wait_the_first_failure_is_answered_ae() {
    let store = Flaky::new(1);
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn_store(Arc::clone(&store))
        .unwrap();
    let mut conn = connect(running.local_addr());
    let ack = send(&mut conn, "N1").expect("an ACK");
    assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");
    assert!(ack.text.unwrap().contains("broker unreachable"));
    assert_eq!(store.attempts.load(Ordering::SeqCst), 1);
    let ack = send(&mut conn, "N2").expect("an ACK");
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn after_the_wait_close_drops_the_connection_without_an_ack_and_nak_answers_ae() {
    for policy in [OnStoreFailure::Close, OnStoreFailure::Nak] {
        let store = Flaky::new(u32::MAX);
        let handler = StoreHandler::new(Arc::clone(&store))
            .store_wait(Duration::from_millis(400))
            .on_failure(policy);
        let running = Listener::builder("127.0.0.1:0")
            .bind()
            .unwrap()
            .spawn(handler)
            .unwrap();
        let mut conn = connect(running.local_addr());
        let started = Instant::now();
        let answer = send(&mut conn, "C1");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(store.attempts.load(Ordering::SeqCst) >= 3);
        // The counters are bumped once the answer (or the close) is on its way: the client can
        // see it first, so wait for them rather than read them at once.
        let counted = |want: (u64, u64)| {
            mllp_testkit::eventually(Duration::from_secs(5), || {
                let stats = running.stats();
                (stats.closed_unanswered, stats.acks_ae) == want
            })
        };
        match policy {
            OnStoreFailure::Close => {
                assert!(answer.is_none(), "{answer:?}");
                assert!(counted((1, 0)), "{:?}", running.stats());
            }
            _ => {
                let ack = answer.expect("an ACK");
                assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");
                assert!(ack.text.unwrap().contains("broker unreachable"));
                assert!(counted((0, 1)), "{:?}", running.stats());
            }
        }
        running.shutdown();
        running.join().unwrap();
    }
}

/// A store that hangs: `save` blocks for a minute (a database that stopped answering);
/// `save_before` gives up at the deadline, as a store that can hang must.
#[derive(Default)]
struct Hung {
    saves: AtomicU32,
    bounded: AtomicU32,
}

impl Store for Hung {
    fn save(&self, _: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(60));
        Err(StoreError::retryable("no answer in a minute"))
    }

    fn save_before(&self, _: &StoredMessage<'_>, deadline: Instant) -> Result<Receipt, StoreError> {
        self.bounded.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        Err(StoreError::retryable("no answer by the deadline"))
    }

    fn name(&self) -> String {
        "hung".into()
    }
}

#[test]
fn a_hung_store_holds_the_sender_for_the_wait_and_no_longer() {
    let store = Arc::new(Hung::default());
    let handler = StoreHandler::new(Arc::clone(&store)).store_wait(Duration::from_secs(1));
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(handler)
        .unwrap();
    let mut conn = connect(running.local_addr());
    let started = Instant::now();
    let ack = send(&mut conn, "H1").expect("an ACK");
    let took = started.elapsed();
    assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");
    assert!(ack.text.unwrap().contains("deadline"));
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    // One attempt, bounded by the end of the wait; none started after it.
    assert_eq!(store.bounded.load(Ordering::SeqCst), 1);
    assert_eq!(store.saves.load(Ordering::SeqCst), 0);
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn a_refusal_is_answered_ae_at_once_whatever_the_wait_and_policy() {
    let store = Flaky::new(0);
    let handler = StoreHandler::new(Arc::clone(&store))
        .store_wait(Duration::from_secs(30))
        .on_failure(OnStoreFailure::Close);
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(handler)
        .unwrap();
    let mut conn = connect(running.local_addr());
    let started = Instant::now();
    let ack = send(&mut conn, "REFUSE").expect("an ACK, not a close");
    assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");
    assert!(ack.text.unwrap().contains("unroutable"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(store.attempts.load(Ordering::SeqCst), 1);
    // The connection goes on.
    let ack = send(&mut conn, "OK1").expect("an ACK");
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    running.shutdown();
    running.join().unwrap();
}

/// Answers `Response::close()` for MSH-10 `CLOSE`, AA otherwise, and counts what it is told.
#[derive(Default)]
struct Closer {
    written: AtomicU64,
    unwritten: AtomicU64,
}

/// The listener's handle on a shared [`Closer`].
struct Closing(Arc<Closer>);

impl Handler for Closing {
    fn handle(&self, message: &Message<'_>) -> Response {
        if message.control_id() == Some("CLOSE") {
            Response::close()
        } else {
            Response::accept()
        }
    }

    fn acknowledged(&self, _connection_id: u64, written: bool) {
        let counter = if written {
            &self.0.written
        } else {
            &self.0.unwritten
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_handler_can_close_the_connection_instead_of_answering() {
    let closer = Arc::new(Closer::default());
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(Closing(Arc::clone(&closer)))
        .unwrap();
    let mut conn = connect(running.local_addr());
    assert!(send(&mut conn, "A1").is_some());
    assert!(send(&mut conn, "CLOSE").is_none());
    // In MLLP release 2 mode too: no commit NAK, just the close.
    let mllp2 = Listener::builder("127.0.0.1:0")
        .reply(mllp::hl7::ReplyKind::Mllp2)
        .bind()
        .unwrap()
        .spawn(Closing(Arc::clone(&closer)))
        .unwrap();
    let mut conn2 = connect(mllp2.local_addr());
    let message = "MSH|^~\\&|LAB|HOSP|EHR|WARD|20260101||ORU^R01|CLOSE|P|2.5\r";
    conn2.write_frame(message.as_bytes()).unwrap();
    assert!(!matches!(conn2.read_frame(), Ok(Some(_))));
    // The listener goes on: a new connection is served.
    let mut again = connect(running.local_addr());
    assert!(send(&mut again, "A2").is_some());
    // The counters move once a write (or the close) is done, which may be just after the peer
    // has read the ACK.
    let settled = || {
        let stats = running.stats();
        stats.closed_unanswered == 1
            && stats.acks_aa == 2
            && mllp2.stats().closed_unanswered == 1
            && closer.unwritten.load(Ordering::SeqCst) == 2
            && closer.written.load(Ordering::SeqCst) == 2
    };
    assert!(
        mllp_testkit::eventually(Duration::from_secs(5), settled),
        "{:?} {:?}",
        running.stats(),
        mllp2.stats()
    );
    assert_eq!(mllp2.stats().commit_naks, 0);
    assert!(Response::close().is_close() && !Response::accept().is_close());
    assert_eq!(Response::close().disposition(), None);
    for r in [running, mllp2] {
        r.shutdown();
        r.join().unwrap();
    }
}
