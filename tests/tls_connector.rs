//! The client-side TLS seam: a sender and an outbox run every handshake through the
//! `TlsConnector` they are given (with the host of the address), the core bounds a connector's
//! handshake by the connect timeout, and a connector cannot be given together with TLS settings.
#![cfg(feature = "tls")]

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mllp::{
    Error, Listener, OutboxConfig, RetryPolicy, RunningListener, Sender, SenderConfig, Timeout,
    TlsClient, TlsConnector, TlsError, TlsErrorKind, TlsPeer, TlsServerConfig, TlsSession,
    TlsSocket,
};
use mllp_testkit::{accept_all, adt, eventually, pem_identity, scratch_dir, trusting_test_ca};

const LIMIT: Duration = Duration::from_secs(10);

/// The built-in client behind a connector that records the host of every handshake.
struct Recording {
    client: TlsClient,
    hosts: Mutex<Vec<String>>,
}

impl Recording {
    fn new() -> Arc<Recording> {
        Arc::new(Recording {
            client: TlsClient::new(&trusting_test_ca()).unwrap(),
            hosts: Mutex::new(Vec::new()),
        })
    }

    fn hosts(&self) -> Vec<String> {
        self.hosts.lock().unwrap().clone()
    }
}

impl TlsConnector for Recording {
    fn connect(
        &self,
        host: &str,
        socket: TlsSocket,
    ) -> mllp::Result<(Box<dyn TlsSession>, TlsPeer)> {
        self.hosts.lock().unwrap().push(host.to_owned());
        TlsConnector::connect(&self.client, host, socket)
    }
}

/// A TLS listener with the test server certificate, acknowledging everything.
fn tls_listener() -> RunningListener {
    Listener::builder("127.0.0.1:0")
        .tls(TlsServerConfig::new(pem_identity("server")))
        .bind()
        .unwrap()
        .spawn(accept_all)
        .unwrap()
}

#[test]
fn a_sender_runs_every_handshake_through_its_connector() {
    let running = tls_listener();
    let port = running.local_addr().port();
    let connector = Recording::new();
    let mut sender = Sender::builder(format!("localhost:{port}"))
        .tls_connector(Arc::clone(&connector) as Arc<dyn TlsConnector>)
        .connect_timeout(LIMIT)
        .ack_timeout(LIMIT)
        .build()
        .unwrap();
    assert!(sender.send(&adt("C1")).unwrap().is_success());
    sender.close();
    assert!(sender.send(&adt("C2")).unwrap().is_success());
    assert_eq!(connector.hosts(), ["localhost", "localhost"]);
    assert_eq!(running.stats().tls_failures, 0);
}

#[test]
fn an_outbox_delivers_through_the_connector_of_its_sender_config() {
    let running = tls_listener();
    let port = running.local_addr().port();
    let connector = Recording::new();
    let mut sender = SenderConfig::default();
    sender.tls_connector = Some(Arc::clone(&connector) as Arc<dyn TlsConnector>);
    let config = OutboxConfig::new(format!("127.0.0.1:{port}"))
        .sender(sender)
        .retry(RetryPolicy::default().initial_backoff(Duration::from_millis(5)));
    let dir = scratch_dir("outbox-connector");
    let outbox = mllp::Outbox::open(&dir, config).unwrap();
    outbox.enqueue(&adt("OB1")).unwrap();
    assert!(eventually(LIMIT, || outbox.stats().delivered == 1));
    outbox.close().unwrap();
    // The certificate names 127.0.0.1 too: the IP address is what the connector checks.
    assert_eq!(connector.hosts(), ["127.0.0.1"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A connector whose handshake waits for a server that never answers, reporting whatever the
/// socket says as a handshake failure.
struct Waiting;

impl TlsConnector for Waiting {
    fn connect(
        &self,
        _: &str,
        mut socket: TlsSocket,
    ) -> mllp::Result<(Box<dyn TlsSession>, TlsPeer)> {
        let mut buf = [0u8; 16];
        let got = socket.read(&mut buf);
        Err(Error::Tls(TlsError::new(
            TlsErrorKind::Handshake,
            format!("no answer: {got:?}"),
            None,
        )))
    }
}

#[test]
fn a_connector_handshake_ends_with_the_connect_timeout() {
    // Accepts (the kernel does) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let timeout = Duration::from_millis(300);
    let mut sender = Sender::builder(addr.to_string())
        .tls_connector(Arc::new(Waiting))
        .connect_timeout(timeout)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = sender.send(&adt("T1")).unwrap_err();
    let took = started.elapsed();
    match err {
        Error::Delivery { last, .. } => {
            assert!(
                matches!(*last, Error::Timeout(Timeout::Connect)),
                "{last:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(took >= timeout && took < LIMIT, "{took:?}");
}

#[test]
fn settings_and_a_connector_together_are_refused() {
    let mut config = SenderConfig::default();
    config.tls = Some(trusting_test_ca());
    config.tls_connector = Some(Recording::new());
    let e = Sender::builder("127.0.0.1:2575")
        .config(config)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    // The builder's setters replace one with the other.
    let builder = Sender::builder("127.0.0.1:2575")
        .tls(trusting_test_ca())
        .tls_connector(Recording::new());
    assert!(builder.current_config().tls.is_none());
    let builder = builder.tls(trusting_test_ca());
    assert!(builder.current_config().tls_connector.is_none());
    builder.build().unwrap();
}
