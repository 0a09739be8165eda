//! The listener over TLS, with the test certificates in `tests/certs/`; handshakes that stall
//! hold no connection slot.
#![cfg(feature = "tls")]

use mllp_testkit as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{adt, cert_path, eventually};
use mllp::hl7::{Ack, AckCode};
use mllp::{Connection, Framing, Listener, Message, Response, TlsServerConfig};
use mllp::{Identity, Stream, TlsClient, TlsClientConfig};
use mllp::{ListenerBuilder, RunningListener, Sender};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn tls_client() -> TlsClient {
    let ca = std::fs::read(cert_path("ca.pem")).unwrap();
    TlsClient::new(&TlsClientConfig::new().add_root_pem(ca)).unwrap()
}

fn connect_tls(addr: SocketAddr) -> Connection<Stream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let stream = tls_client().connect("localhost", tcp, IO_TIMEOUT).unwrap();
    Connection::new(stream, Framing::default())
}

fn round_trip(conn: &mut Connection<Stream>, id: &str) -> Ack {
    conn.write_frame(adt(id).as_bytes()).unwrap();
    Ack::parse(conn.read_frame().unwrap().expect("an acknowledgement")).unwrap()
}

/// Serves TLS with `identity`; sends one message over TLS and checks the answer and what the
/// handler saw.
fn serves_tls_with(identity: Identity) {
    let tls_seen = Arc::new(Mutex::new(Vec::new()));
    let tls_seen2 = Arc::clone(&tls_seen);
    let running = Listener::builder("127.0.0.1:0")
        .tls(TlsServerConfig::new(identity))
        .handshake_timeout(Duration::from_secs(2))
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            let peer = m.tls_peer().map(|p| p.certificate_der().is_some());
            tls_seen2.lock().unwrap().push(peer);
            Response::accept()
        })
        .unwrap();
    let addr = running.local_addr();
    let mut conn = connect_tls(addr);
    for id in ["T1", "T2"] {
        let ack = round_trip(&mut conn, id);
        assert_eq!(
            (ack.code, ack.control_id.as_str()),
            (AckCode::ApplicationAccept, id)
        );
    }
    // A TLS connection, and no client certificate: the acceptor never asks for one.
    assert_eq!(*tls_seen.lock().unwrap(), [Some(false), Some(false)]);

    // A plaintext MLLP client on the TLS port loses its connection, and only that.
    let mut plain = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    plain.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    plain
        .write_all(format!("\x0b{}\x1c\r", adt("PLAIN")).as_bytes())
        .unwrap();
    let mut buf = [0u8; 256];
    let got = plain.read(&mut buf);
    // Whatever the TLS library answered (an alert, or nothing), no acknowledgement and the end.
    match got {
        Ok(n) => assert!(!buf[..n].contains(&0x0b), "{:?}", &buf[..n]),
        Err(e) => assert!(!matches!(e.kind(), std::io::ErrorKind::WouldBlock)),
    }
    assert!(eventually(IO_TIMEOUT, || running.stats().tls_failures == 1));
    // A silent client is cut by the handshake timeout.
    let silent = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    let ack = round_trip(&mut conn, "T3");
    assert_eq!(ack.control_id, "T3");
    assert!(eventually(IO_TIMEOUT, || running.stats().tls_failures == 2));
    drop(silent);
    let mut again = connect_tls(addr);
    assert_eq!(round_trip(&mut again, "T4").control_id, "T4");
    let stats = running.stats();
    assert_eq!(stats.messages, 4);
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn serves_tls_with_a_pem_identity() {
    serves_tls_with(
        Identity::from_pem_files(cert_path("server.pem"), cert_path("server.key")).unwrap(),
    );
}

#[test]
fn serves_tls_with_a_pkcs12_identity() {
    serves_tls_with(Identity::from_pkcs12_file(cert_path("server.p12"), "test").unwrap());
}

#[test]
fn a_bad_identity_is_an_error_at_bind() {
    let identity = Identity::Pem {
        cert: b"not a certificate".to_vec(),
        key: b"not a key".to_vec(),
    };
    let result = Listener::builder("127.0.0.1:0")
        .tls(TlsServerConfig::new(identity))
        .bind();
    assert!(matches!(result, Err(mllp::Error::Tls(_))), "{result:?}");
}

/// The first 10 bytes of a TLS ClientHello (a handshake record announcing 512 bytes): a
/// handshake that is started and never finished.
const HELLO_START: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03];

/// A TLS listener with at most 10 connections that accepts every message, with `extra`
/// settings.
fn flood_target(extra: impl FnOnce(ListenerBuilder) -> ListenerBuilder) -> RunningListener {
    let identity =
        Identity::from_pem_files(cert_path("server.pem"), cert_path("server.key")).unwrap();
    let builder = Listener::builder("127.0.0.1:0")
        .tls(TlsServerConfig::new(identity))
        .max_connections(10);
    extra(builder)
        .bind()
        .unwrap()
        .spawn(|_: &Message<'_>| Response::accept())
        .unwrap()
}

/// `n` connections that send the start of a ClientHello and stall, each accepted by the
/// listener (the listener has read its bytes or holds it when this returns: a bounded wait).
fn stall(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
            tcp.write_all(HELLO_START).unwrap();
            tcp
        })
        .collect()
}

/// A default sender over TLS (5 attempts, backoff from 250 ms): one message, and how long its
/// ACK took.
fn real_sender(addr: SocketAddr) -> (Result<Ack, mllp::Error>, Duration) {
    let started = Instant::now();
    let mut sender = Sender::builder(addr.to_string())
        .tls(common::trusting_test_ca())
        .build()
        .unwrap();
    let ack = sender.send(&adt("REAL"));
    (ack, started.elapsed())
}

#[test]
fn stalled_tls_handshakes_hold_no_slot_and_keep_no_sender_out() {
    let running = flood_target(|b| b);
    let addr = running.local_addr();
    let stalled = stall(addr, 50);
    // Let the accept loop take them all before the real sender comes.
    assert!(eventually(IO_TIMEOUT, || {
        running.stats().handshakes_pending >= 50 || running.stats().connections_open >= 10
    }));
    let (ack, took) = real_sender(addr);
    eprintln!(
        "50 stalled handshakes, max 10 connections: {:?} after {took:?}",
        ack.as_ref().map(|a| a.code)
    );
    let ack = ack.expect("the real sender gets its ACK");
    assert_eq!(ack.code, AckCode::ApplicationAccept);
    assert!(took < Duration::from_secs(2), "{took:?}");
    let stats = running.stats();
    assert_eq!(stats.connections_refused, 0, "{stats:?}");
    assert_eq!(stats.connections_evicted, 0, "{stats:?}");
    drop(stalled);
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn past_the_handshake_bound_the_oldest_pending_handshake_is_dropped() {
    let running = flood_target(|b| b.max_handshakes(8));
    let addr = running.local_addr();
    let stalled = stall(addr, 30);
    assert!(eventually(IO_TIMEOUT, || running
        .stats()
        .handshakes_dropped
        >= 22));
    // The oldest are closed by the listener: their reads end.
    let mut first = &stalled[0];
    first.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(first.read(&mut buf), Ok(0) | Err(_)));
    let (ack, took) = real_sender(addr);
    let ack = ack.expect("the real sender gets its ACK");
    assert_eq!(ack.code, AckCode::ApplicationAccept);
    assert!(took < Duration::from_secs(2), "{took:?}");
    let stats = running.stats();
    assert!(stats.handshakes_pending <= 8, "{stats:?}");
    assert_eq!(stats.connections_refused, 0, "{stats:?}");
    drop(stalled);
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn a_reloaded_certificate_serves_new_connections_and_open_ones_keep_theirs() {
    let running = Listener::builder("127.0.0.1:0")
        .tls(TlsServerConfig::new(common::pem_identity("server")))
        .bind()
        .unwrap()
        .spawn(|_: &Message<'_>| Response::accept())
        .unwrap();
    let addr = running.local_addr();
    let (first, mut old) = common::served_certificate(addr, IO_TIMEOUT);
    assert_eq!(round_trip(&mut old, "OLD1").control_id, "OLD1");

    let handle = running.tls_handle().expect("a TLS listener");
    // A reload that fails keeps the certificate in use, and says why.
    let broken = Identity::Pem {
        cert: b"not a certificate".to_vec(),
        key: common::cert("server.key"),
    };
    let e = handle.reload(&TlsServerConfig::new(broken)).unwrap_err();
    assert!(e.to_string().contains("cannot be read"), "{e}");
    let (still, _) = common::served_certificate(addr, IO_TIMEOUT);
    assert_eq!(still, first);

    // Rotate: new connections get the new certificate.
    handle
        .reload(&TlsServerConfig::new(common::pem_identity(
            "untrusted-server",
        )))
        .unwrap();
    let (second, mut new) = common::served_certificate(addr, IO_TIMEOUT);
    assert_ne!(second, first);
    assert_eq!(round_trip(&mut new, "NEW1").control_id, "NEW1");
    // The connection opened before the reload was not dropped and still answers.
    assert_eq!(round_trip(&mut old, "OLD2").control_id, "OLD2");
    let stats = running.stats();
    assert_eq!((stats.messages, stats.tls_failures), (3, 0));
}

/// Whether `openssl s_client -tls1_2` completes a handshake with the listener at `addr`.
fn tls12_client_gets_in(addr: SocketAddr) -> bool {
    let out = std::process::Command::new("timeout")
        .args(["10", "openssl", "s_client", "-tls1_2", "-connect"])
        .arg(addr.to_string())
        .args(["-CAfile", &cert_path("ca.pem"), "-servername", "localhost"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the openssl command (install openssl)");
    // On failure the session block still names the protocol tried; this line does not.
    String::from_utf8_lossy(&out.stdout).contains("New, TLSv1.2, Cipher is")
}

#[test]
fn a_minimum_of_tls_1_3_refuses_a_tls_1_2_client() {
    let serve = |min| {
        Listener::builder("127.0.0.1:0")
            .tls(TlsServerConfig::new(common::pem_identity("server")).min_version(min))
            .bind()
            .unwrap()
            .spawn(|_: &Message<'_>| Response::accept())
            .unwrap()
    };
    let default = serve(mllp::TlsVersion::default());
    assert!(tls12_client_gets_in(default.local_addr()));
    let strict = serve(mllp::TlsVersion::Tls13);
    assert!(!tls12_client_gets_in(strict.local_addr()));
    assert!(eventually(IO_TIMEOUT, || strict.stats().tls_failures == 1));
    assert_eq!(
        mllp::TlsVersion::parse("1.3").unwrap(),
        mllp::TlsVersion::Tls13
    );
    assert_eq!(
        mllp::TlsVersion::parse("TLSv1.2").unwrap(),
        mllp::TlsVersion::Tls12
    );
    assert!(mllp::TlsVersion::parse("1.1").is_err());
}
