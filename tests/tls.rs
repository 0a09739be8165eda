//! TLS over loopback with the test certificates in `tests/certs/` (see `generate.sh` there).
#![cfg(feature = "tls")]

use mllp_testkit as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{cert, pem_identity, trusting_test_ca};
use mllp::{
    Error, Identity, Stream, Timeout, TlsClient, TlsClientConfig, TlsServer, TlsServerConfig,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS server on 127.0.0.1 that accepts `n` connections and hands each handshake's outcome
/// over the channel.
struct Server {
    addr: SocketAddr,
    results: mpsc::Receiver<Result<Stream, Error>>,
    thread: JoinHandle<()>,
}

impl Server {
    fn start(identity: Identity, n: usize) -> Server {
        let tls = TlsServer::new(&TlsServerConfig::new(identity)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, results) = mpsc::channel();
        let thread = thread::spawn(move || {
            for _ in 0..n {
                let (tcp, _) = listener.accept().unwrap();
                let result = tls.accept(tcp, TIMEOUT);
                if let Ok(stream) = &result {
                    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
                }
                if tx.send(result).is_err() {
                    return;
                }
            }
        });
        Server {
            addr,
            results,
            thread,
        }
    }

    /// The outcome of the next handshake.
    fn next(&self) -> Result<Stream, Error> {
        self.results.recv_timeout(TIMEOUT * 2).unwrap()
    }

    fn join(self) {
        drop(self.results);
        self.thread.join().unwrap();
    }
}

/// Connects to `addr` and runs the client handshake against `domain`.
fn connect(config: &TlsClientConfig, addr: SocketAddr, domain: &str) -> Result<Stream, Error> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    TlsClient::new(config)?.connect(domain, tcp, TIMEOUT)
}

fn tls_message(result: Result<Stream, Error>) -> String {
    match result {
        Err(e @ Error::Tls(_)) => e.to_string(),
        Err(other) => panic!("expected a TLS error, got {other:?}"),
        Ok(_) => panic!("expected a TLS error, the handshake succeeded"),
    }
}

/// Writes `data` on `from` and reads it back on `to`.
fn exchange(from: &mut Stream, to: &mut Stream, data: &[u8]) {
    from.write_all(data).unwrap();
    from.flush().unwrap();
    let mut buf = vec![0u8; data.len()];
    to.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data);
}

#[test]
fn verified_connection_carries_data_both_ways() {
    let server = Server::start(pem_identity("server"), 1);
    let mut client = connect(&trusting_test_ca(), server.addr, "localhost").unwrap();
    let mut accepted = server.next().unwrap();

    assert!(client.is_tls() && accepted.is_tls());
    let cert = client.tls_peer().unwrap().certificate_der().unwrap();
    assert_eq!(cert[0], 0x30, "a DER certificate is a SEQUENCE");
    // The native-tls acceptor does not ask for client certificates.
    assert!(accepted.tls_peer().unwrap().certificate_der().is_none());
    // The handshake deadline does not outlive the handshake.
    assert_eq!(client.tcp().read_timeout().unwrap(), Some(TIMEOUT));

    exchange(&mut client, &mut accepted, b"\x0bMSH|^~\\&|A\r\x1c\r");
    exchange(
        &mut accepted,
        &mut client,
        b"\x0bMSH|^~\\&|B\rMSA|AA|1\r\x1c\r",
    );
    server.join();
}

#[test]
fn connecting_to_the_ip_address_checks_the_ip_in_the_certificate() {
    let server = Server::start(pem_identity("server"), 1);
    let client = connect(&trusting_test_ca(), server.addr, "127.0.0.1");
    assert!(client.is_ok(), "{:?}", client.err());
    server.next().unwrap();
    server.join();
}

#[test]
fn pkcs12_server_identity() {
    let identity = Identity::from_pkcs12_file(common::cert_path("server.p12"), "test").unwrap();
    let server = Server::start(identity, 1);
    let mut client = connect(&trusting_test_ca(), server.addr, "localhost").unwrap();
    let mut accepted = server.next().unwrap();
    exchange(&mut client, &mut accepted, b"hello");
    server.join();
}

#[test]
fn wrong_host_name_is_a_clear_tls_error() {
    let server = Server::start(pem_identity("server"), 1);
    let config = trusting_test_ca().server_name("wrong.example");
    let text = tls_message(connect(&config, server.addr, "localhost"));
    assert!(
        text.contains("not valid for the name \"wrong.example\"") && text.contains("mismatch"),
        "{text}"
    );
    assert!(server.next().is_err());
    server.join();
}

#[test]
fn untrusted_ca_is_a_clear_tls_error() {
    let server = Server::start(pem_identity("untrusted-server"), 1);
    let text = tls_message(connect(&trusting_test_ca(), server.addr, "localhost"));
    assert!(text.contains("not signed by a trusted CA"), "{text}");
    assert!(server.next().is_err());
    server.join();
}

#[test]
fn danger_option_accepts_an_untrusted_certificate() {
    let server = Server::start(pem_identity("untrusted-server"), 1);
    let config = trusting_test_ca()
        .server_name("wrong.example")
        .danger_accept_invalid_certs(true);
    let mut client = connect(&config, server.addr, "localhost").unwrap();
    let mut accepted = server.next().unwrap();
    exchange(&mut client, &mut accepted, b"hello");
    server.join();
}

#[test]
fn plaintext_client_fails_only_its_own_connection() {
    let server = Server::start(pem_identity("server"), 2);

    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain.set_read_timeout(Some(TIMEOUT)).unwrap();
    plain.write_all(b"\x0bMSH|^~\\&|A\r\x1c\r").unwrap();
    let text = tls_message(server.next());
    assert!(text.contains("does not speak TLS"), "{text}");

    // The server goes on with the next client.
    let mut client = connect(&trusting_test_ca(), server.addr, "localhost").unwrap();
    let mut accepted = server.next().unwrap();
    exchange(&mut client, &mut accepted, b"hello");
    server.join();
}

#[test]
fn tls_client_against_a_plaintext_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        // Answer the ClientHello with something that is not TLS.
        let mut buf = [0u8; 512];
        let _ = tcp.read(&mut buf);
        let _ = tcp.write_all(b"\x0bMSH|^~\\&|NAK\r\x1c\r");
    });
    let text = tls_message(connect(&trusting_test_ca(), addr, "localhost"));
    assert!(text.contains("TLS"), "{text}");
    peer.join().unwrap();
}

#[test]
fn client_handshake_is_bounded_by_its_deadline() {
    // A peer that accepts the TCP connection but never answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    let (_silent, _) = listener.accept().unwrap();
    let client = TlsClient::new(&trusting_test_ca()).unwrap();
    let start = Instant::now();
    let err = client
        .connect("localhost", tcp, Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Connect)), "{err:?}");
    assert!(start.elapsed() < TIMEOUT);
}

#[test]
fn server_handshake_is_bounded_by_its_deadline() {
    let tls = TlsServer::new(&TlsServerConfig::new(pem_identity("server"))).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let _silent = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (tcp, _) = listener.accept().unwrap();
    let start = Instant::now();
    let err = tls.accept(tcp, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Connect)), "{err:?}");
    assert!(start.elapsed() < TIMEOUT);
}

/// Calls `peer_closed` until it says `true`, within the test timeout. The close travels over
/// loopback asynchronously; each call is non-blocking.
fn until_closed(stream: &mut Stream) {
    let start = Instant::now();
    while !stream.peer_closed() {
        assert!(start.elapsed() < TIMEOUT, "the close never arrived");
        thread::yield_now();
    }
}

#[test]
fn peer_closed_over_tls() {
    let server = Server::start(pem_identity("server"), 2);

    // close_notify, then the TCP close.
    let mut client = connect(&trusting_test_ca(), server.addr, "localhost").unwrap();
    let mut accepted = server.next().unwrap();
    // Idle, possibly with TLS 1.3 session tickets waiting: not closed, and still usable.
    assert!(!client.peer_closed());
    exchange(&mut client, &mut accepted, b"ping");
    exchange(&mut accepted, &mut client, b"pong");
    assert!(!client.peer_closed());
    accepted.shutdown().unwrap();
    until_closed(&mut client);

    // The TCP close alone, without close_notify.
    let mut client = connect(&trusting_test_ca(), server.addr, "localhost").unwrap();
    let accepted = server.next().unwrap();
    assert!(!client.peer_closed());
    drop(accepted);
    until_closed(&mut client);
    server.join();
}

#[test]
fn application_data_seen_by_peer_closed_is_kept() {
    let server = Server::start(pem_identity("server"), 1);
    let mut client = connect(&trusting_test_ca(), server.addr, "localhost").unwrap();
    let mut accepted = server.next().unwrap();
    // A round trip first, so that session tickets are out of the way.
    exchange(&mut accepted, &mut client, b"ack");
    accepted.write_all(b"late ack").unwrap();
    accepted.flush().unwrap();
    let mut probe = [0u8; 1];
    assert!(client.tcp().peek(&mut probe).unwrap() > 0);
    assert!(!client.peer_closed());
    let mut buf = [0u8; 8];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"late ack");
    server.join();
}

#[test]
fn invalid_settings_are_clear_tls_errors() {
    let text = match TlsClient::new(&TlsClientConfig::new().add_root_pem(b"not a pem".to_vec())) {
        Err(e @ Error::Tls(_)) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(text.contains("extra CA certificate #1"), "{text}");

    let rsa_style = Identity::Pem {
        cert: cert("server.pem"),
        key: b"-----BEGIN EC PRIVATE KEY-----\n...\n-----END EC PRIVATE KEY-----\n".to_vec(),
    };
    let text = TlsServer::new(&TlsServerConfig::new(rsa_style))
        .unwrap_err()
        .to_string();
    assert!(text.contains("PKCS#8"), "{text}");

    let wrong_password = Identity::Pkcs12 {
        der: cert("server.p12"),
        password: "wrong".into(),
    };
    let text = TlsServer::new(&TlsServerConfig::new(wrong_password))
        .unwrap_err()
        .to_string();
    assert!(text.contains("PKCS#12"), "{text}");
}

#[test]
fn mismatched_server_key_fails_the_handshake() {
    // native-tls does not check the pair when the server is built; the handshake fails.
    let mismatched = Identity::Pem {
        cert: cert("server.pem"),
        key: cert("client.key"),
    };
    let server = Server::start(mismatched, 1);
    let text = tls_message(connect(&trusting_test_ca(), server.addr, "localhost"));
    assert!(text.contains("handshake"), "{text}");
    let text = tls_message(server.next());
    assert!(
        text.contains("does the server key match its certificate?"),
        "{text}"
    );
    server.join();
}

/// Mutual TLS from the client side: `openssl s_server -Verify` asks for a client certificate
/// (which the native-tls acceptor cannot do) and prints the one it verified. Skipped when the
/// `openssl` command is not installed.
#[test]
fn client_identity_is_presented_to_a_server_that_asks() {
    use std::io::BufRead;

    let Some(mut child) = common::openssl_verifying_server() else {
        return;
    };
    let stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    // Collect the server's report on another thread, so every wait below is bounded.
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(addr) = line.trim().strip_prefix("ACCEPT ") {
                let _ = tx.send(addr.to_string());
            }
            line.clear();
        }
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let outcome = (|| -> Result<(), String> {
        let addr = rx.recv_timeout(TIMEOUT).map_err(|e| e.to_string())?;
        let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let config = trusting_test_ca().identity(pem_identity("client"));
        let mut client = connect(&config, addr, "localhost").map_err(|e| e.to_string())?;
        client.write_all(b"hello\n").map_err(|e| e.to_string())?;
        client.flush().map_err(|e| e.to_string())?;
        client.shutdown().map_err(|e| e.to_string())
    })();
    // Wait (bounded) for the server to finish, or end it, then read its report.
    let start = Instant::now();
    let exited = loop {
        match child.try_wait() {
            Ok(Some(_)) => break true,
            Ok(None) if start.elapsed() < TIMEOUT => thread::yield_now(),
            _ => break false,
        }
    };
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(stdin);
    let report = reader.join().unwrap();
    outcome.unwrap();
    assert!(report.contains("CN = mllp test client"), "{report}");
}
