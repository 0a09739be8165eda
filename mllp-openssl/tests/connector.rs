//! The OpenSSL connector against `openssl s_server` and against an mllp listener: a good server
//! certificate (by name and by IP address), one from another CA, one for another name or
//! address, a minimum version the server does not offer, a client certificate for a listener
//! that requires one; and the debug lines that say, for every handshake, the protocol and
//! cipher agreed.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};
use mllp::{
    Listener, Message, Response, Sender, Stream, TlsClient, TlsClientConfig, TlsConnector,
    TlsErrorKind, TlsVersion,
};
use mllp_openssl::{Acceptor, AcceptorConfig, Connector};
use mllp_testkit::openssl_cmd::SServer;
use mllp_testkit::{adt, cert, pem_identity, tcp, trusting_test_ca};

const LIMIT: Duration = Duration::from_secs(10);

/// Every debug line of the test binary, as `target: text`.
struct Capture(Mutex<Vec<String>>);

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Debug
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{}: {}", record.target(), record.args());
            self.0.lock().unwrap().push(line);
        }
    }

    fn flush(&self) {}
}

/// The captured lines (the logger is installed on first use).
fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("no other logger in this test binary");
        log::set_max_level(LevelFilter::Debug);
        capture
    })
}

/// The captured lines that mention `needle`.
fn lines_with(needle: &str) -> Vec<String> {
    captured()
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// A TLS connection to `addr` through a connector built from `config`, checking the
/// certificate against `host`.
fn connect(config: &TlsClientConfig, addr: SocketAddr, host: &str) -> mllp::Result<Stream> {
    let connector = Connector::new(config)?;
    TlsClient::connect_with(&connector, host, tcp(addr, LIMIT), LIMIT)
}

/// `openssl s_server` with the certificate `name` (and `args`); `None` when there is no
/// `openssl` command (a skip, or a failure under `MLLP_REQUIRE_ALL=1`).
fn s_server(name: &str, args: &[&str]) -> Option<SServer> {
    SServer::start(name, args, LIMIT)
}

/// The kind and the text of a TLS error.
fn tls_failure(result: mllp::Result<Stream>) -> (TlsErrorKind, String) {
    match result {
        Err(mllp::Error::Tls(e)) => (e.kind(), e.to_string()),
        Err(other) => panic!("not a TLS error: {other:?}"),
        Ok(_) => panic!("the handshake succeeded"),
    }
}

#[test]
fn a_good_server_certificate_is_verified_by_name_and_by_ip_address() {
    let Some(server) = s_server("server", &[]) else {
        return;
    };
    let stream = connect(&trusting_test_ca(), server.addr, "localhost").unwrap();
    let peer = stream.tls_peer().expect("TLS");
    assert_eq!(peer.protocol(), Some("TLSv1.3"));
    assert!(
        peer.cipher().is_some_and(|c| c.starts_with("TLS_")),
        "{peer:?}"
    );
    assert_eq!(peer.subject(), Some("CN=localhost"));
    let expected = openssl::x509::X509::from_pem(&cert("server.pem"))
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(peer.certificate_der(), Some(&expected[..]));
    drop(stream);
    // The certificate names 127.0.0.1 as an IP address.
    let stream = connect(&trusting_test_ca(), server.addr, "127.0.0.1").unwrap();
    assert_eq!(stream.tls_peer().unwrap().subject(), Some("CN=localhost"));
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let Some(server) = s_server("untrusted-server", &[]) else {
        return;
    };
    let (kind, text) = tls_failure(connect(&trusting_test_ca(), server.addr, "localhost"));
    assert_eq!(kind, TlsErrorKind::Certificate, "{text}");
    assert!(text.contains("not signed by a trusted CA"), "{text}");
    // Without verification it gets through, and no subject is claimed as verified.
    let dangerous = trusting_test_ca().danger_accept_invalid_certs(true);
    let stream = connect(&dangerous, server.addr, "localhost").unwrap();
    let peer = stream.tls_peer().unwrap();
    assert!(peer.certificate_der().is_some() && peer.subject().is_none());
}

#[test]
fn a_certificate_for_another_name_or_address_is_refused() {
    let Some(server) = s_server("server", &[]) else {
        return;
    };
    let other_name = trusting_test_ca().server_name("wrong.example");
    let (kind, text) = tls_failure(connect(&other_name, server.addr, "localhost"));
    assert_eq!(kind, TlsErrorKind::Certificate, "{text}");
    assert!(
        text.contains("not valid for the name \"wrong.example\"") && text.contains("mismatch"),
        "{text}"
    );
    // The certificate names 127.0.0.1 and ::1, not 127.0.0.2.
    let (kind, text) = tls_failure(connect(&trusting_test_ca(), server.addr, "127.0.0.2"));
    assert_eq!(kind, TlsErrorKind::Certificate, "{text}");
    assert!(
        text.contains("not valid for the name \"127.0.0.2\""),
        "{text}"
    );
}

#[test]
fn a_minimum_of_tls_1_3_refuses_a_server_of_tls_1_2_only() {
    let Some(server) = s_server("server", &["-tls1_2"]) else {
        return;
    };
    let tls13 = trusting_test_ca().min_version(TlsVersion::Tls13);
    let (kind, text) = tls_failure(connect(&tls13, server.addr, "localhost"));
    assert_eq!(kind, TlsErrorKind::Handshake, "{text}");
    // The same server, with the default minimum: TLS 1.2 is agreed.
    let stream = connect(&trusting_test_ca(), server.addr, "localhost").unwrap();
    assert_eq!(stream.tls_peer().unwrap().protocol(), Some("TLSv1.2"));
}

#[test]
fn every_handshake_logs_the_protocol_cipher_and_server_certificate() {
    captured();
    let Some(server) = s_server("server", &["-tls1_2"]) else {
        return;
    };
    let stream = connect(&trusting_test_ca(), server.addr, "localhost").unwrap();
    let cipher = stream.tls_peer().unwrap().cipher().unwrap().to_owned();
    // s_server serves one connection at a time.
    drop(stream);
    let lines = lines_with(&server.addr.to_string());
    let established: Vec<_> = lines.iter().filter(|l| l.contains("established")).collect();
    assert_eq!(established.len(), 1, "{lines:?}");
    let line = established[0];
    assert!(line.starts_with("mllp_openssl"), "{line}");
    assert!(
        line.contains(&format!(
            "TLS session with localhost ({}) established: TLSv1.2, cipher {cipher}, server \
             certificate CN=localhost",
            server.addr
        )),
        "{line}"
    );
    // A refused handshake is logged with its reason.
    let other_name = trusting_test_ca().server_name("wrong.example");
    assert!(connect(&other_name, server.addr, "localhost").is_err());
    let failed = lines_with("TLS handshake with wrong.example");
    assert!(
        failed
            .iter()
            .any(|l| l.contains("failed") && l.contains("mismatch")),
        "{failed:?}"
    );
}

#[test]
fn a_sender_with_a_client_certificate_gets_into_a_listener_that_requires_one() {
    captured();
    let acceptor =
        Acceptor::new(&AcceptorConfig::new(pem_identity("server")).client_ca_pem(cert("ca.pem")))
            .unwrap();
    let subjects = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&subjects);
    let running = Listener::builder("127.0.0.1:0")
        .tls_acceptor(Arc::new(acceptor))
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            let subject = m.tls_peer().and_then(|p| p.subject()).map(str::to_owned);
            seen.lock().unwrap().push(subject);
            Response::accept()
        })
        .unwrap();
    let addr = running.local_addr();
    let sender = |config: &TlsClientConfig| {
        let connector: Arc<dyn TlsConnector> = Arc::new(Connector::new(config).unwrap());
        Sender::builder(format!("localhost:{}", addr.port()))
            .tls_connector(connector)
            .connect_timeout(LIMIT)
            .ack_timeout(LIMIT)
            .retry(mllp::RetryPolicy::none())
            .build()
            .unwrap()
    };
    // Without a client certificate: refused by the listener.
    assert!(sender(&trusting_test_ca()).send(&adt("NONE")).is_err());
    let mut good = sender(&trusting_test_ca().identity(pem_identity("client")));
    let ack = good.send(&adt("GOOD")).unwrap();
    assert!(ack.is_success(), "{ack:?}");
    assert_eq!(
        *subjects.lock().unwrap(),
        [Some("CN=mllp test client".to_owned())]
    );
    // The sender's side of the handshakes, in the log (a TLS 1.3 client finishes its
    // handshake before the listener refuses it, so both are there).
    let server = good.peer_addr().expect("connected").to_string();
    let lines = lines_with(&format!(
        "TLS session with localhost ({server}) established"
    ));
    assert_eq!(lines.len(), 2, "{:?}", lines_with(&server));
    for line in lines {
        assert!(
            line.contains("established: TLSv1.3, cipher TLS_")
                && line.ends_with("server certificate CN=localhost"),
            "{line}"
        );
    }
}

#[test]
fn unusable_settings_are_config_errors_not_panics() {
    let kind_of = |config: &TlsClientConfig| match Connector::new(config) {
        Err(mllp::Error::Tls(e)) => (e.kind(), e.to_string()),
        other => panic!("{other:?}"),
    };
    let (kind, text) = kind_of(&TlsClientConfig::new().add_root_pem(b"not pem".to_vec()));
    assert_eq!(kind, TlsErrorKind::Config);
    assert!(text.contains("extra CA certificate #1"), "{text}");
    for name in ["", "local\0host"] {
        let (kind, _) = kind_of(&trusting_test_ca().server_name(name));
        assert_eq!(kind, TlsErrorKind::Config, "{name:?}");
    }
    let mismatched = mllp::Identity::Pem {
        cert: cert("client.pem"),
        key: cert("server.key"),
    };
    let (_, text) = kind_of(&trusting_test_ca().identity(mismatched));
    assert!(text.contains("does not match"), "{text}");
    // The host given by the sender is checked as well.
    let connector = Connector::new(&trusting_test_ca()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let e = TlsClient::connect_with(&connector, "bad\0host", tcp, LIMIT).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
}
