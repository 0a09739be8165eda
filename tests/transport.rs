//! Plain TCP: connecting, `Stream` socket handling and idle-close detection, over loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use mllp::transport::{self, Stream};
use mllp::{Error, Phase};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A connected pair over 127.0.0.1: (client, server), both with read and write timeouts.
fn pair() -> (Stream, Stream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = transport::connect(&addr.to_string(), TIMEOUT, true).unwrap();
    let (server, _) = listener.accept().unwrap();
    let (client, server) = (Stream::from(client), Stream::from(server));
    for s in [&client, &server] {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_write_timeout(Some(TIMEOUT)).unwrap();
    }
    (client, server)
}

/// An address on which nothing listens (a port that was just released).
fn closed_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Blocks (bounded by the read timeout) until the peer's end of stream has arrived.
fn wait_for_eof(stream: &Stream) {
    let mut buf = [0u8; 64];
    assert_eq!(
        stream.tcp().peek(&mut buf).unwrap(),
        0,
        "expected end of stream"
    );
}

#[test]
fn connect_sets_nodelay_and_reports_addresses() {
    let (client, server) = pair();
    assert!(client.tcp().nodelay().unwrap());
    assert!(!client.is_tls());
    assert!(client.tls_peer().is_none());
    assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
    assert_eq!(client.local_addr().unwrap(), server.peer_addr().unwrap());
}

#[test]
fn connect_to_a_closed_port_is_a_connect_error() {
    let addr = closed_addr();
    let err = transport::connect(&addr.to_string(), TIMEOUT, false).unwrap_err();
    match &err {
        Error::Io {
            phase: Phase::Connect,
            source,
        } => assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("unexpected error: {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("connecting") && text.contains(&addr.to_string()),
        "{text}"
    );
}

#[test]
fn connect_tries_every_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let good = listener.local_addr().unwrap();
    let stream = transport::connect_any(&[closed_addr(), good], TIMEOUT, false).unwrap();
    assert_eq!(stream.peer_addr().unwrap(), good);
}

#[test]
fn connect_resolves_localhost() {
    // "localhost" may resolve to ::1 first; only 127.0.0.1 listens, so every address must be
    // tried until one accepts.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stream = transport::connect(&format!("localhost:{port}"), TIMEOUT, false).unwrap();
    assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
}

#[test]
fn connect_over_ipv6_loopback() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        return; // No IPv6 on this machine.
    };
    let addr = listener.local_addr().unwrap();
    let stream = transport::connect(&addr.to_string(), TIMEOUT, false).unwrap();
    assert_eq!(stream.peer_addr().unwrap(), addr);
    assert_eq!(transport::host_of(&addr.to_string()), "::1");
}

#[test]
fn bad_addresses_are_config_errors() {
    for addr in ["localhost", "localhost:notaport", "127.0.0.1:70000"] {
        let err = transport::connect(addr, TIMEOUT, false).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{addr}: {err:?}");
    }
}

#[test]
fn peer_closed_is_false_while_idle_and_true_after_close() {
    let (mut client, server) = pair();
    assert!(!client.peer_closed());
    // Still usable, and still blocking, afterwards.
    client.write_all(b"ping").unwrap();
    let mut server = server;
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    // Blocking mode is back: a read waits for its timeout instead of failing at once.
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let err = client.read(&mut buf).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(150), "{err}");

    server.shutdown().unwrap();
    wait_for_eof(&client);
    assert!(client.peer_closed());
}

#[test]
fn peer_closed_leaves_unexpected_bytes_for_the_next_read() {
    let (mut client, mut server) = pair();
    server.write_all(b"late").unwrap();
    let mut buf = [0u8; 4];
    // Wait until the bytes have arrived, without consuming them.
    assert_eq!(client.tcp().peek(&mut buf).unwrap(), 4);
    assert!(!client.peer_closed());
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"late");
}

#[test]
fn shutdown_from_another_thread_unblocks_a_read() {
    let (mut client, _server) = pair();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let handle = client.try_clone_tcp().unwrap();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 16];
        client.read(&mut buf)
    });
    handle.shutdown(std::net::Shutdown::Both).unwrap();
    let read = reader.join().unwrap();
    assert_eq!(read.unwrap(), 0);
}

#[test]
fn shutdown_twice_is_not_an_error() {
    let (mut client, _server) = pair();
    client.shutdown().unwrap();
    client.shutdown().unwrap();
}
