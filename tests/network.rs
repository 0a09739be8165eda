//! Who may connect, and who a connection is from: allow lists, the PROXY protocol (v1 and v2,
//! from listed proxies only, behind a private HAProxy too), and TCP keepalive on both sides.
#![cfg(target_os = "linux")]

use mllp_testkit as common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sockets::{connect_from, established};
use common::{adt, eventually};
use mllp::hl7::{Ack, AckCode};
use mllp::proxy_protocol::V2_SIGNATURE;
use mllp::{
    Cidr, Connection, Framing, Keepalive, Listener, ListenerBuilder, ListenerStats, Message,
    Receipt, Response, RunningListener, Sender, Store, StoreError, StoredMessage,
};

const IO_TIMEOUT: Duration = Duration::from_secs(5);
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

/// A listener from `builder` whose handler records each message's peer.
fn start(builder: ListenerBuilder) -> (RunningListener, Arc<Mutex<Vec<SocketAddr>>>) {
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&peers);
    let running = builder
        .handshake_timeout(Duration::from_secs(2))
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            seen.lock().unwrap().push(m.peer_addr());
            Response::accept()
        })
        .unwrap();
    (running, peers)
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("an IPv4 address expected"),
    }
}

fn block(s: &str) -> Cidr {
    s.parse().unwrap()
}

/// Sends `prefix` then one message on `tcp`; the acknowledgement, or `None` when the listener
/// closed the connection instead.
fn exchange(tcp: TcpStream, prefix: &[u8], id: &str) -> Option<Ack> {
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    (&tcp).write_all(prefix).unwrap();
    let mut conn = Connection::new(tcp, Framing::default());
    // A refused connection may be closed before or while the frame is written.
    conn.write_frame(adt(id).as_bytes()).ok()?;
    match conn.read_frame() {
        Ok(Some(ack)) => Some(Ack::parse(ack).unwrap()),
        Ok(None) | Err(_) => None,
    }
}

/// Whether the listener closes `tcp` without a word (a read ends at once with EOF or a reset).
fn closed(tcp: &TcpStream) -> bool {
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut buf = [0u8; 16];
    matches!((&*tcp).read(&mut buf), Ok(0) | Err(_))
}

fn stats_until(running: &RunningListener, cond: impl Fn(&ListenerStats) -> bool) -> ListenerStats {
    eventually(IO_TIMEOUT, || cond(&running.stats()));
    running.stats()
}

fn v1(client: SocketAddr, to: SocketAddr) -> Vec<u8> {
    format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        client.ip(),
        to.ip(),
        client.port(),
        to.port()
    )
    .into_bytes()
}

fn v2(client: SocketAddrV4, to: SocketAddrV4) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, 0x11, 0, 12]);
    out.extend_from_slice(&client.ip().octets());
    out.extend_from_slice(&to.ip().octets());
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&to.port().to_be_bytes());
    out
}

#[test]
fn the_allow_list_refuses_other_peers_before_a_slot_and_counts_them() {
    let (running, peers) = start(
        Listener::builder("127.0.0.1:0")
            .max_connections(1)
            .evict_after(None)
            .allow(block("127.0.0.5/32")),
    );
    let at = v4(running.local_addr());
    // From 127.0.0.1: closed at once, no slot taken, the handler never called.
    for _ in 0..3 {
        let denied = TcpStream::connect(at).unwrap();
        assert!(closed(&denied));
    }
    let stats = stats_until(&running, |s| s.connections_denied == 3);
    assert_eq!((stats.connections_denied, stats.connections_total), (3, 0));
    // From 127.0.0.5: served, and the only slot was free.
    let ack = exchange(connect_from(CLIENT, at).unwrap(), b"", "A1").expect("an ACK");
    assert_eq!(ack.code, AckCode::ApplicationAccept);
    assert_eq!(peers.lock().unwrap()[0].ip().to_string(), "127.0.0.5");
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn proxy_headers_v1_and_v2_from_a_listed_proxy_name_the_client() {
    // The test itself is the proxy, at 127.0.0.1.
    let (running, peers) =
        start(Listener::builder("127.0.0.1:0").proxy_protocol_from(block("127.0.0.0/30")));
    let at = running.local_addr();
    let client: SocketAddr = "127.0.0.5:50000".parse().unwrap();
    let ack = exchange(TcpStream::connect(at).unwrap(), &v1(client, at), "P1").expect("an ACK");
    assert_eq!(ack.control_id, "P1");
    let client2 = SocketAddrV4::new(CLIENT, 50001);
    let ack =
        exchange(TcpStream::connect(at).unwrap(), &v2(client2, v4(at)), "P2").expect("an ACK");
    assert_eq!(ack.control_id, "P2");
    // A LOCAL header (the proxy's own check) keeps the proxy's address.
    let local = [&V2_SIGNATURE[..], &[0x20, 0x00, 0, 0]].concat();
    let tcp = TcpStream::connect(at).unwrap();
    let own = tcp.local_addr().unwrap();
    exchange(tcp, &local, "P3").expect("an ACK");
    assert_eq!(
        *peers.lock().unwrap(),
        vec![client, SocketAddr::V4(client2), own]
    );
    assert_eq!(running.stats().proxy_refused, 0);
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn a_missing_malformed_or_unlisted_proxy_header_is_refused_and_counted() {
    // 127.0.0.1 (the test) is the listed proxy; 127.0.0.5 is a client that may not send one.
    let (running, peers) = start(
        Listener::builder("127.0.0.1:0")
            .proxy_protocol_from(block("127.0.0.1"))
            .allow(block("127.0.0.0/8")),
    );
    let at = running.local_addr();
    let refused: &[&[u8]] = &[
        b"PROXY TCP4 127.0.0.5 127.0.0.1 99999 2575\r\n",
        b"PROXY TCP6 127.0.0.5 127.0.0.1 1 2\r\n",
        &[&V2_SIGNATURE[..], &[0x21, 0x11, 0, 4, 1, 2, 3, 4]].concat(),
        // No header at all from the proxy: the MLLP bytes are not one.
        b"",
    ];
    for (i, prefix) in refused.iter().enumerate() {
        let ack = exchange(TcpStream::connect(at).unwrap(), prefix, &format!("M{i}"));
        assert!(
            ack.is_none(),
            "{:?} was acknowledged",
            String::from_utf8_lossy(prefix)
        );
    }
    // A client not listed claiming another address: refused. The same client without a
    // header: served under its own address.
    let spoof = v1("10.9.9.9:1".parse().unwrap(), at);
    assert!(exchange(connect_from(CLIENT, v4(at)).unwrap(), &spoof, "S1").is_none());
    let spoof2 = v2(SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 1), v4(at));
    assert!(exchange(connect_from(CLIENT, v4(at)).unwrap(), &spoof2, "S2").is_none());
    let ack = exchange(connect_from(CLIENT, v4(at)).unwrap(), b"", "D1").expect("an ACK");
    assert_eq!(ack.control_id, "D1");
    let stats = stats_until(&running, |s| s.proxy_refused == 6);
    assert_eq!((stats.proxy_refused, stats.messages), (6, 1));
    assert_eq!(peers.lock().unwrap()[0].ip().to_string(), "127.0.0.5");
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn the_allow_list_is_checked_on_the_client_a_proxy_names() {
    let (running, peers) = start(
        Listener::builder("127.0.0.1:0")
            .proxy_protocol_from(block("127.0.0.1"))
            .allow(block("127.0.0.5")),
    );
    let at = running.local_addr();
    let other: SocketAddr = "127.0.0.6:4000".parse().unwrap();
    assert!(exchange(TcpStream::connect(at).unwrap(), &v1(other, at), "X").is_none());
    let client: SocketAddr = "127.0.0.5:4000".parse().unwrap();
    exchange(TcpStream::connect(at).unwrap(), &v1(client, at), "Y").expect("an ACK");
    // The listed proxy's own connection (a LOCAL header) is trusted, not checked.
    let own = TcpStream::connect(at).unwrap();
    let proxy = own.local_addr().unwrap();
    let local = [&V2_SIGNATURE[..], &[0x20, 0x00, 0, 0]].concat();
    exchange(own, &local, "Z").expect("an ACK");
    let stats = stats_until(&running, |s| s.connections_denied == 1);
    assert_eq!((stats.connections_denied, stats.messages), (1, 2));
    assert_eq!(*peers.lock().unwrap(), vec![client, proxy]);
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn a_proxy_that_stalls_before_its_header_holds_no_slot() {
    let (running, _peers) = start(
        Listener::builder("127.0.0.1:0")
            .max_connections(1)
            .evict_after(None)
            .proxy_protocol_from(block("127.0.0.1")),
    );
    let at = running.local_addr();
    let stalled = TcpStream::connect(at).unwrap();
    (&stalled).write_all(b"PROXY TCP4 127.0.0.5").unwrap();
    let client: SocketAddr = "127.0.0.5:4000".parse().unwrap();
    exchange(TcpStream::connect(at).unwrap(), &v1(client, at), "Z").expect("an ACK");
    // The stalled one is cut at the handshake timeout (2 s), counted.
    assert!(closed(&stalled));
    assert_eq!(
        stats_until(&running, |s| s.proxy_refused == 1).proxy_refused,
        1
    );
    running.shutdown();
    running.join().unwrap();
}

#[cfg(feature = "tls")]
#[test]
fn the_proxy_header_comes_before_the_tls_handshake() {
    let (running, peers) = start(
        Listener::builder("127.0.0.1:0")
            .tls(mllp::TlsServerConfig::new(common::pem_identity("server")))
            .proxy_protocol_from(block("127.0.0.1")),
    );
    let at = running.local_addr();
    let tcp = TcpStream::connect(at).unwrap();
    let client: SocketAddr = "127.0.0.5:4443".parse().unwrap();
    (&tcp).write_all(&v1(client, at)).unwrap();
    let tls = mllp::TlsClient::new(&common::trusting_test_ca()).unwrap();
    let stream = tls.connect("localhost", tcp, IO_TIMEOUT).unwrap();
    let mut conn = Connection::new(stream, Framing::default());
    conn.write_frame(adt("T1").as_bytes()).unwrap();
    let ack = Ack::parse(conn.read_frame().unwrap().expect("an ACK")).unwrap();
    assert_eq!(ack.control_id, "T1");
    assert_eq!(*peers.lock().unwrap(), vec![client]);
    running.shutdown();
    running.join().unwrap();
}

/// The keepalive timers (seconds left) on the two ends of the one connection to `port`: the
/// listener's side, then the sender's.
fn timers(port: u16) -> (Option<f64>, Option<f64>) {
    let conns = established(port);
    assert_eq!(conns.len(), 2, "{conns:?}");
    let listening = format!("127.0.0.1:{port}");
    let side = |listener: bool| {
        conns
            .iter()
            .find(|c| (c.local == listening) == listener)
            .unwrap_or_else(|| panic!("{conns:?}"))
            .keepalive
    };
    (side(true), side(false))
}

/// Whether `left` seconds remain of an idle time of `idle` seconds just started.
fn just_started(left: Option<f64>, idle: f64) -> bool {
    left.is_some_and(|left| left > idle - 20.0 && left <= idle)
}

#[test]
fn keepalive_is_on_by_default_on_both_sides_and_configurable() {
    let round = |listener: ListenerBuilder, sender: Option<Option<Keepalive>>| {
        let (running, _) = start(listener);
        let mut builder = Sender::builder(running.local_addr().to_string());
        if let Some(k) = sender {
            builder = builder.keepalive(k);
        }
        let mut sender = builder.build().unwrap();
        sender.send(&adt("K")).unwrap();
        let seen = timers(running.local_addr().port());
        drop(sender);
        running.shutdown();
        running.join().unwrap();
        seen
    };
    // Defaults: a probe after 5 minutes idle, on both ends.
    let (listener, sender) = round(Listener::builder("127.0.0.1:0"), None);
    assert!(just_started(listener, 300.0), "{listener:?}");
    assert!(just_started(sender, 300.0), "{sender:?}");
    // Chosen timers: the listener's 3 minutes, the sender's 2.
    let three = Keepalive::new(Duration::from_secs(180), Duration::from_secs(20), 4);
    let two = Keepalive::new(Duration::from_secs(120), Duration::from_secs(10), 3);
    let (listener, sender) = round(
        Listener::builder("127.0.0.1:0").keepalive(Some(three)),
        Some(Some(two)),
    );
    assert!(just_started(listener, 180.0), "{listener:?}");
    assert!(just_started(sender, 120.0), "{sender:?}");
    // Off on both.
    let off = round(Listener::builder("127.0.0.1:0").keepalive(None), Some(None));
    assert_eq!(off, (None, None));
}

/// A store that keeps each message's peer.
#[derive(Default, Clone)]
struct Peers(Arc<Mutex<Vec<SocketAddr>>>);

impl Store for Peers {
    fn save(&self, message: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        self.0.lock().unwrap().push(message.peer_addr());
        Ok(Receipt::new("memory"))
    }

    fn name(&self) -> String {
        "peers".into()
    }
}

#[cfg(unix)]
#[test]
fn behind_haproxy_with_send_proxy_v2_the_stored_peer_is_the_client() {
    use common::haproxy::{self, Backend, HaProxy};
    if !haproxy::available() {
        common::skip("HAProxy is not installed");
        return;
    }
    let store = Peers::default();
    let running = Listener::builder("127.0.0.1:0")
        .proxy_protocol_from(block("127.0.0.1"))
        .bind()
        .unwrap()
        .spawn_store(store.clone())
        .unwrap();
    let proxy = HaProxy::start(
        "proxy-v2",
        &[Backend {
            name: "l1".into(),
            addr: running.local_addr().to_string(),
            health_port: None,
            send_proxy_v2: true,
        }],
    );
    let front: SocketAddrV4 = proxy.addr().parse().unwrap();
    assert!(proxy.wait_for("l1", IO_TIMEOUT, |s| s.status.starts_with("UP")));
    let client = connect_from(CLIENT, front).unwrap();
    let client_addr = client.local_addr().unwrap();
    let ack = exchange(client, b"", "H1").expect("an ACK through HAProxy");
    assert_eq!(ack.code, AckCode::ApplicationAccept);
    assert_eq!(*store.0.lock().unwrap(), vec![client_addr]);
    assert_eq!(client_addr.ip().to_string(), "127.0.0.5");
    // HAProxy's connection checks (connect, close) are not refusals.
    assert_eq!(running.stats().proxy_refused, 0, "{}", proxy.log());
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn the_proxy_header_fuzz_check_holds_on_seeds_and_mutations() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/proxy_header");
    let seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("seed directory")
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!seeds.is_empty(), "no seeds");
    for seed in &seeds {
        common::fuzzing::proxy_header(seed);
    }
    // Seeds with a few bytes changed, cut short or lengthened.
    let mut rng = common::Rng(24);
    for _ in 0..5000 {
        let mut data = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(3) {
            if !data.is_empty() {
                let at = rng.below(data.len());
                data[at] = rng.next() as u8;
            }
        }
        data.truncate(rng.below(data.len() + 1));
        data.extend(rng.bytes(8));
        common::fuzzing::proxy_header(&data);
    }
}
