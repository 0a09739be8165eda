//! Mutual TLS with real peers: the library's TLS client with a good client certificate, none,
//! one from another CA and an expired one; `openssl s_client` with a certificate and below the
//! minimum version; the protocol and cipher handed to the handler.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mllp::hl7::{Ack, AckCode};
use mllp::{
    Connection, Framing, Listener, Message, Response, RunningListener, Stream, TlsClient,
    TlsClientConfig, TlsPeer, TlsVersion,
};
use mllp_openssl::{Acceptor, AcceptorConfig};
use mllp_testkit::{adt, cert, eventually, pem_identity, trusting_test_ca, CERTS_DIR};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What each handled message's TLS peer was.
type Seen = Arc<Mutex<Vec<TlsPeer>>>;

/// A listener requiring client certificates from the test CA.
fn verifying_listener(min: TlsVersion) -> (RunningListener, Seen) {
    let config = AcceptorConfig::new(pem_identity("server"))
        .client_ca_pem(cert("ca.pem"))
        .min_version(min);
    let acceptor = Acceptor::new(&config).unwrap();
    assert!(acceptor.verifies_clients());
    let seen = Seen::default();
    let seen2 = Arc::clone(&seen);
    let running = Listener::builder("127.0.0.1:0")
        .tls_acceptor(Arc::new(acceptor))
        .handshake_timeout(Duration::from_secs(3))
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            seen2.lock().unwrap().push(m.tls_peer().cloned().unwrap());
            Response::accept()
        })
        .unwrap();
    (running, seen)
}

/// Connects with `config` and sends one message; the acknowledgement, or the error as text.
fn send_one(addr: SocketAddr, config: &TlsClientConfig, id: &str) -> Result<Ack, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let client = TlsClient::new(config).map_err(|e| e.to_string())?;
    let stream: Stream = client
        .connect("localhost", tcp, IO_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let mut conn = Connection::new(stream, Framing::default());
    conn.write_frame(adt(id).as_bytes())
        .map_err(|e| e.to_string())?;
    match conn.read_frame().map_err(|e| e.to_string())? {
        Some(ack) => Ack::parse(ack).map_err(|e| e.to_string()),
        None => Err("closed without an acknowledgement".into()),
    }
}

#[test]
fn only_a_valid_client_certificate_from_the_ca_gets_in_and_its_subject_reaches_the_handler() {
    let (running, seen) = verifying_listener(TlsVersion::Tls12);
    let addr = running.local_addr();

    let refused = [
        ("no certificate", trusting_test_ca()),
        (
            "another CA",
            trusting_test_ca().identity(pem_identity("untrusted-client")),
        ),
        (
            "expired",
            trusting_test_ca().identity(pem_identity("expired-client")),
        ),
    ];
    for (n, (what, config)) in refused.iter().enumerate() {
        let got = send_one(addr, config, "REFUSED");
        assert!(got.is_err(), "{what}: {got:?}");
        assert!(
            eventually(IO_TIMEOUT, || running.stats().tls_failures == n as u64 + 1),
            "{what}: {:?}",
            running.stats()
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "no refused message handled"
    );

    let good = trusting_test_ca().identity(pem_identity("client"));
    let ack = send_one(addr, &good, "GOOD").unwrap();
    assert_eq!(
        (ack.code, ack.control_id.as_str()),
        (AckCode::ApplicationAccept, "GOOD")
    );
    let peers = seen.lock().unwrap().clone();
    assert_eq!(peers.len(), 1);
    let peer = &peers[0];
    assert_eq!(peer.subject(), Some("CN=mllp test client"));
    let der = peer.certificate_der().expect("the client certificate");
    let expected = openssl::x509::X509::from_pem(&cert("client.pem"))
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(der, &expected[..]);
    assert!(
        peer.protocol().is_some_and(|p| p.starts_with("TLSv1.")),
        "{peer:?}"
    );
    assert!(peer.cipher().is_some_and(|c| !c.is_empty()), "{peer:?}");
    assert_eq!(running.stats().tls_failures, 3);
}

/// Runs `openssl s_client` against `addr` with `args` (stdin closed: it connects, prints the
/// session and leaves), and returns what it printed and whether it exited with success.
fn s_client(addr: SocketAddr, args: &[&str]) -> (String, bool) {
    let out = Command::new("timeout")
        .arg("10")
        .arg("openssl")
        .current_dir(CERTS_DIR)
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-CAfile",
            "ca.pem",
        ])
        .args(["-servername", "localhost", "-verify_return_error"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command (install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.success())
}

#[test]
fn openssl_s_client_is_asked_for_a_certificate_and_refused_below_the_minimum_version() {
    let (running, _) = verifying_listener(TlsVersion::Tls13);
    let addr = running.local_addr();
    // The server names the CA it wants client certificates from.
    let (text, _) = s_client(addr, &["-cert", "client.pem", "-key", "client.key"]);
    assert!(
        text.contains("Acceptable client certificate CA names") && text.contains("mllp test CA"),
        "{text}"
    );
    assert!(text.contains("New, TLSv1.3, Cipher is"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");

    // TLS 1.2 only: refused by a listener that requires 1.3.
    let before = running.stats().tls_failures;
    let (text, ok) = s_client(
        addr,
        &["-tls1_2", "-cert", "client.pem", "-key", "client.key"],
    );
    assert!(!ok, "{text}");
    assert!(
        eventually(IO_TIMEOUT, || running.stats().tls_failures > before),
        "{text}"
    );
}

#[test]
fn without_a_client_ca_no_certificate_is_asked_for() {
    let acceptor = Acceptor::new(&AcceptorConfig::new(pem_identity("server"))).unwrap();
    assert!(!acceptor.verifies_clients());
    let running = Listener::builder("127.0.0.1:0")
        .tls_acceptor(Arc::new(acceptor))
        .bind()
        .unwrap()
        .spawn(|m: &Message<'_>| {
            let peer = m.tls_peer().expect("TLS");
            if peer.subject().is_some() || peer.certificate_der().is_some() {
                Response::reject("a certificate was asked for")
            } else {
                Response::accept()
            }
        })
        .unwrap();
    let ack = send_one(running.local_addr(), &trusting_test_ca(), "PLAIN").unwrap();
    assert_eq!(ack.code, AckCode::ApplicationAccept);
}

#[test]
fn bad_settings_are_config_errors() {
    let no_ca = AcceptorConfig::new(pem_identity("server")).client_ca_pem(b"not pem".to_vec());
    let e = Acceptor::new(&no_ca).unwrap_err();
    assert!(e.to_string().contains("client CA"), "{e}");
    let mismatched = mllp::Identity::Pem {
        cert: cert("server.pem"),
        key: cert("client.key"),
    };
    let e = Acceptor::new(&AcceptorConfig::new(mismatched)).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    let nul = mllp::Identity::Pkcs12 {
        der: cert("server.p12"),
        password: "te\0st".into(),
    };
    let e = Acceptor::new(&AcceptorConfig::new(nul)).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    let p12 = mllp::Identity::Pkcs12 {
        der: cert("server.p12"),
        password: "test".into(),
    };
    Acceptor::new(&AcceptorConfig::new(p12)).unwrap();
}
