//! The sender over TLS, with the test certificates in `tests/certs/` (see `generate.sh` there).
#![cfg(feature = "tls")]

use mllp_testkit as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Child;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::{adt, cert, pem_identity, trusting_test_ca};
use mllp::hl7::{AckBuilder, AckCode, Disposition, Header};
use mllp::{
    Connection, Error, Framing, Outcome, RetryPolicy, Sender, SenderBuilder, TlsServerConfig,
};
use mllp::{Identity, TlsClientConfig, TlsServer};

/// The bound on every blocking operation of the tests.
const LIMIT: Duration = Duration::from_secs(5);

fn sender(addr: &str, tls: TlsClientConfig) -> SenderBuilder {
    Sender::builder(addr)
        .tls(tls)
        .connect_timeout(LIMIT)
        .ack_timeout(LIMIT)
        .write_timeout(LIMIT)
        .retry(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(10))
                .max_backoff(Duration::from_millis(40)),
        )
}

/// A TLS listener on 127.0.0.1 that serves `n` connections one after another, acknowledging
/// at most `per_connection` messages on each before closing it. Reports each handshake's
/// outcome (the error text on failure).
struct Server {
    port: u16,
    handshakes: mpsc::Receiver<Result<(), String>>,
    /// One message each time the server has closed a connection.
    closes: mpsc::Receiver<()>,
    thread: JoinHandle<usize>,
}

impl Server {
    fn start(identity: Identity, n: usize, per_connection: usize) -> Server {
        let tls = TlsServer::new(&TlsServerConfig::new(identity)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, handshakes) = mpsc::channel();
        let (closed, closes) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut acked = 0;
            for _ in 0..n {
                let Ok((tcp, _)) = listener.accept() else {
                    break;
                };
                let stream = match tls.accept(tcp, LIMIT) {
                    Ok(stream) => {
                        let _ = tx.send(Ok(()));
                        stream
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        continue;
                    }
                };
                stream.set_read_timeout(Some(LIMIT)).unwrap();
                stream.set_write_timeout(Some(LIMIT)).unwrap();
                let mut conn = Connection::new(stream, Framing::default());
                for _ in 0..per_connection {
                    let Ok(Some(msg)) = conn.read_frame() else {
                        break;
                    };
                    let mut ack = Vec::new();
                    let header = Header::parse(msg).unwrap();
                    AckBuilder::new(Disposition::Accept)
                        .build(&header, &mut ack)
                        .unwrap();
                    if conn.write_frame(&ack).is_err() {
                        break;
                    }
                    acked += 1;
                }
                let _ = conn.get_mut().shutdown();
                let _ = closed.send(());
            }
            acked
        });
        Server {
            port,
            handshakes,
            closes,
            thread,
        }
    }

    fn handshake(&self) -> Result<(), String> {
        self.handshakes.recv_timeout(LIMIT).expect("a handshake")
    }

    fn join(self) -> usize {
        self.thread.join().unwrap()
    }
}

#[test]
fn verified_tls_carries_messages_and_survives_an_idle_close() {
    // The first connection is closed by the server after one message.
    let server = Server::start(pem_identity("server"), 2, 1);
    let addr = format!("localhost:{}", server.port);
    // Checked before every write (by default only after 1 ms idle or for a repeated ID).
    let mut sender = sender(&addr, trusting_test_ca())
        .idle_check(Duration::ZERO)
        .build()
        .unwrap();
    let ack = sender.send(&adt("TLS1")).unwrap();
    assert_eq!(
        (ack.code, ack.control_id.as_str()),
        (AckCode::ApplicationAccept, "TLS1")
    );
    server.handshake().unwrap();
    // Send the next message only once the server has closed the idle connection.
    server
        .closes
        .recv_timeout(LIMIT)
        .expect("the server closed");
    let ack = sender.send(&adt("TLS2")).unwrap();
    assert_eq!(ack.control_id, "TLS2");
    server.handshake().unwrap();
    let stats = sender.stats();
    assert_eq!((stats.connects, stats.messages), (2, 2));
    assert!(
        stats.retries == 0,
        "the close is seen before writing: {stats:?}"
    );
    drop(sender);
    assert_eq!(server.join(), 2);
}

/// The TLS error inside a delivery failure, after exactly one attempt (certificate problems are
/// not retried).
fn tls_failure(err: Error) -> String {
    match err {
        Error::Delivery {
            outcome: Outcome::NotDelivered,
            attempts: 1,
            last,
        } if matches!(*last, Error::Tls(_)) => last.to_string(),
        other => panic!("expected a TLS failure after one attempt, got {other:?}"),
    }
}

#[test]
fn wrong_host_name_is_a_clear_error() {
    let server = Server::start(pem_identity("server"), 1, 1);
    let addr = format!("127.0.0.1:{}", server.port);
    let config = trusting_test_ca().server_name("wrong.example");
    let mut sender = sender(&addr, config).build().unwrap();
    let text = tls_failure(sender.send(&adt("HOST1")).unwrap_err());
    assert!(
        text.contains("not valid for the name \"wrong.example\""),
        "{text}"
    );
    assert_eq!(sender.stats().connects, 0);
    assert!(server.handshake().is_err());
    drop(sender);
    assert_eq!(server.join(), 0);
}

#[test]
fn untrusted_ca_is_a_clear_error() {
    let server = Server::start(pem_identity("untrusted-server"), 1, 1);
    let addr = format!("localhost:{}", server.port);
    let mut sender = sender(&addr, trusting_test_ca()).build().unwrap();
    let text = tls_failure(sender.send(&adt("CA1")).unwrap_err());
    assert!(text.contains("not signed by a trusted CA"), "{text}");
    assert!(server.handshake().is_err());
    drop(sender);
    assert_eq!(server.join(), 0);
}

#[test]
fn dangerous_option_accepts_an_untrusted_certificate() {
    let server = Server::start(pem_identity("untrusted-server"), 1, 1);
    let addr = format!("127.0.0.1:{}", server.port);
    let config = TlsClientConfig::new().danger_accept_invalid_certs(true);
    let mut sender = sender(&addr, config).build().unwrap();
    assert!(sender.send(&adt("DANGER1")).unwrap().is_success());
    drop(sender);
    assert_eq!(server.join(), 1);
}

#[test]
fn bad_tls_settings_fail_at_build() {
    let bad_ca = TlsClientConfig::new().add_root_pem(b"not a certificate".to_vec());
    match Sender::builder("localhost:2575").tls(bad_ca).build() {
        Err(e @ Error::Tls(_)) => assert!(e.to_string().contains("CA certificate"), "{e}"),
        other => panic!("{other:?}"),
    }
    let bad_identity = trusting_test_ca().identity(Identity::Pkcs12 {
        der: cert("server.p12"),
        password: "wrong".into(),
    });
    assert!(matches!(
        Sender::builder("localhost:2575").tls(bad_identity).build(),
        Err(Error::Tls(_))
    ));
}

/// Kills the child process when dropped, whatever happened.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the `openssl s_server` output showed.
enum Seen {
    Accepting(SocketAddr),
    Message,
}

/// Mutual TLS: `openssl s_server -Verify` asks for a client certificate (which the native-tls
/// acceptor cannot do), prints what it receives, and sends what it reads on its standard input:
/// the test writes the ACK there once the message has arrived. Skipped when the `openssl`
/// command is not installed.
#[test]
fn client_identity_is_presented_to_a_server_that_asks() {
    let Some(child) = common::openssl_verifying_server() else {
        return;
    };
    let mut child = Reap(child);
    let mut stdin = child.0.stdin.take().unwrap();
    let mut stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    // Watch the server's output on another thread, so that every wait below is bounded.
    let (tx, rx) = mpsc::channel();
    let watcher = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let (mut accepting, mut message) = (false, false);
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if !accepting {
                if let Some(line) = text.lines().find(|l| l.starts_with("ACCEPT ")) {
                    if let Ok(addr) = line["ACCEPT ".len()..].trim().parse() {
                        accepting = true;
                        let _ = tx.send(Seen::Accepting(addr));
                    }
                }
            }
            if !message && text.contains("|MTLS1|") {
                message = true;
                let _ = tx.send(Seen::Message);
            }
        }
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let Ok(Seen::Accepting(addr)) = rx.recv_timeout(LIMIT) else {
        panic!("openssl s_server did not start");
    };
    let config = trusting_test_ca().identity(pem_identity("client"));
    let sending = thread::spawn(move || {
        let mut sender = sender(&format!("localhost:{}", addr.port()), config)
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        sender.send(&adt("MTLS1"))
    });
    assert!(
        matches!(rx.recv_timeout(LIMIT), Ok(Seen::Message)),
        "the message did not reach the server"
    );
    let mut frame = vec![0x0B];
    frame.extend_from_slice(
        b"MSH|^~\\&|RCV|FAC|SND|FAC|20260101120000||ACK^A01^ACK|A1|P|2.5.1\rMSA|AA|MTLS1\r",
    );
    frame.extend_from_slice(b"\x1c\r");
    stdin.write_all(&frame).unwrap();
    stdin.flush().unwrap();
    let result = sending.join().unwrap();
    // The handshake report is already written; ending the server closes its output.
    drop(stdin);
    drop(child);
    let report = watcher.join().unwrap();
    let ack = result.unwrap();
    assert_eq!(
        (ack.code, ack.control_id.as_str()),
        (AckCode::ApplicationAccept, "MTLS1")
    );
    assert!(report.contains("CN = mllp test client"), "{report}");
}

#[test]
fn handshake_cut_by_the_network_is_retried() {
    let tls = TlsServer::new(&TlsServerConfig::new(pem_identity("server"))).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        // The first connection is closed before the handshake; the second is served.
        drop(listener.accept().unwrap());
        let (tcp, _) = listener.accept().unwrap();
        let stream = tls.accept(tcp, LIMIT).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let mut conn = Connection::new(stream, Framing::default());
        let msg = conn.read_frame().unwrap().unwrap().to_vec();
        let mut ack = Vec::new();
        AckBuilder::new(Disposition::Accept)
            .build(&Header::parse(&msg).unwrap(), &mut ack)
            .unwrap();
        conn.write_frame(&ack).unwrap();
    });
    let mut sender = sender(&format!("localhost:{port}"), trusting_test_ca())
        .build()
        .unwrap();
    let ack = sender.send(&adt("CUT1")).unwrap();
    assert_eq!(ack.control_id, "CUT1");
    let stats = sender.stats();
    assert_eq!((stats.retries, stats.connects), (1, 1));
    drop(sender);
    server.join().unwrap();
}
