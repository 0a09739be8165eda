//! Plain TCP: `Stream` socket handling and idle-close detection, over loopback. (Resolving and
//! connecting are unit tests of the transport module.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use mllp::Stream;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A connected pair over 127.0.0.1: (client, server), both with read and write timeouts.
fn pair() -> (Stream, Stream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let (server, _) = listener.accept().unwrap();
    let (client, server) = (Stream::from(client), Stream::from(server));
    for s in [&client, &server] {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_write_timeout(Some(TIMEOUT)).unwrap();
    }
    (client, server)
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
fn a_plain_stream_reports_its_addresses() {
    let (client, server) = pair();
    assert!(!client.is_tls());
    assert!(client.tls_peer().is_none());
    assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
    assert_eq!(client.local_addr().unwrap(), server.peer_addr().unwrap());
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
