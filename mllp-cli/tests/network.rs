//! The network options of the command line: `--allow` and `--proxy-protocol-from` on
//! `mllp listen` behind a private HAProxy with `send-proxy-v2`, and `--keepalive` on both
//! sides (`mllp listen`, `mllp send`), read back from the kernel with `ss`.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::sockets::{connect_from, established};
use common::ListenProc;

const LIMIT: Duration = Duration::from_secs(10);

/// Sends one message on `tcp`; the acknowledgement, or `None` when the connection was closed.
fn exchange(tcp: TcpStream, id: &str) -> Option<Vec<u8>> {
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    tcp.set_write_timeout(Some(LIMIT)).unwrap();
    let mut conn = mllp::Connection::new(tcp, mllp::Framing::default());
    conn.write_frame(common::adt(id).as_bytes()).ok()?;
    match conn.read_frame() {
        Ok(Some(ack)) => Some(ack.to_vec()),
        _ => None,
    }
}

/// The next line of a listener's standard output, within [`LIMIT`].
fn next_line(listen: &ListenProc) -> String {
    listen
        .stdout
        .as_ref()
        .unwrap()
        .recv_timeout(LIMIT)
        .expect("a line from mllp listen")
}

#[test]
fn behind_haproxy_the_client_is_the_peer_and_the_allow_list_applies_to_it() {
    use common::haproxy::{self, Backend, HaProxy};
    if !haproxy::available() {
        common::skip("HAProxy is not installed");
        return;
    }
    let dir = common::scratch_dir("cli-proxy-v2");
    let listen = ListenProc::start(
        &dir,
        &[
            "--proxy-protocol-from",
            "127.0.0.1/32",
            "--allow",
            "127.0.0.5,127.0.0.7",
        ],
        true,
    );
    let proxy = HaProxy::start(
        "cli-proxy-v2",
        &[Backend {
            name: "l1".into(),
            addr: listen.addr.clone(),
            health_port: None,
            send_proxy_v2: true,
        }],
    );
    assert!(proxy.wait_for("l1", LIMIT, |s| s.status.starts_with("UP")));
    let front: SocketAddrV4 = proxy.addr().parse().unwrap();
    // 127.0.0.6 is not allowed: HAProxy's connection to the listener is closed at once.
    let denied = connect_from(Ipv4Addr::new(127, 0, 0, 6), front).unwrap();
    assert!(exchange(denied, "D1").is_none());
    // 127.0.0.5 is: served, and the line names it.
    let client = connect_from(Ipv4Addr::new(127, 0, 0, 5), front).unwrap();
    let ack = exchange(client, "C1").expect("an ACK through HAProxy");
    assert!(ack.ends_with(b"MSA|AA|C1\r"));
    let line = next_line(&listen);
    assert!(line.contains("C1") && line.contains("127.0.0.5:"), "{line}");
    // A direct connection from the proxy's address without a header: refused.
    let direct: std::net::SocketAddr = listen.addr.parse().unwrap();
    assert!(exchange(TcpStream::connect(direct).unwrap(), "X1").is_none());
    listen.terminate();
    let summary = next_line(&listen);
    assert!(
        // HAProxy's checks are connections too.
        summary.starts_with("stopped: 1 message on ")
            && summary.contains("; AA 1")
            && summary.contains("denied connections 1")
            && summary.contains("refused PROXY headers 1"),
        "{summary}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keepalive_on_the_listener_side_by_default_chosen_or_off() {
    for (args, want) in [
        (&[][..], Some(300.0)),
        (&["--keepalive", "120,10,3"][..], Some(120.0)),
        (&["--keepalive", "off"][..], None),
    ] {
        let dir = common::scratch_dir("cli-keepalive");
        let listen = ListenProc::start(&dir, args, true);
        let addr: std::net::SocketAddr = listen.addr.parse().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let ack = exchange(client.try_clone().unwrap(), "K1").expect("an ACK");
        assert!(ack.ends_with(b"MSA|AA|K1\r"));
        let ours = client.local_addr().unwrap().to_string();
        let conns = established(addr.port());
        let theirs = conns
            .iter()
            .find(|c| c.peer == ours)
            .unwrap_or_else(|| panic!("{conns:?}"));
        match want {
            Some(idle) => {
                let left = theirs.keepalive.unwrap_or_else(|| panic!("{theirs:?}"));
                assert!(left > idle - 20.0 && left <= idle, "{args:?}: {theirs:?}");
            }
            None => assert_eq!(theirs.keepalive, None, "{theirs:?}"),
        }
        drop(client);
        drop(listen);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn keepalive_on_the_sending_side() {
    // A listener that holds its answer until the test has looked at the connection.
    let (go, wait) = mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let running = mllp::Listener::builder("127.0.0.1:0")
        .keepalive(None)
        .bind()
        .unwrap()
        .spawn(move |_: &mllp::Message<'_>| {
            let _ = wait.lock().unwrap().recv_timeout(LIMIT);
            mllp::Response::accept()
        })
        .unwrap();
    let port = running.local_addr().port();
    for (args, want) in [
        (&[][..], Some(300.0)),
        (&["--keepalive", "90,5,2"][..], Some(90.0)),
        (&["--keepalive", "off"][..], None),
    ] {
        let mut send = std::process::Command::new(env!("CARGO_BIN_EXE_mllp"))
            .arg("send")
            .arg(running.local_addr().to_string())
            .args(args)
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = send.stdin.take().unwrap();
        stdin.write_all(common::adt("S1").as_bytes()).unwrap();
        drop(stdin);
        // The sender's end: the connection to the port whose local side is not the port. The
        // sender sets keepalive just after its connect completes (std connects before options
        // can be set), so a connection seen in between has no timer yet: wait for it.
        let listening = format!("127.0.0.1:{port}");
        let mut theirs = None;
        common::eventually(LIMIT, || {
            theirs = established(port).into_iter().find(|c| c.local != listening);
            theirs
                .as_ref()
                .is_some_and(|c| want.is_none() || c.keepalive.is_some())
        });
        let theirs = theirs.expect("mllp send connected");
        go.send(()).unwrap();
        match want {
            Some(idle) => {
                let left = theirs.keepalive.unwrap_or_else(|| panic!("{theirs:?}"));
                assert!(left > idle - 20.0 && left <= idle, "{args:?}: {theirs:?}");
            }
            None => assert_eq!(theirs.keepalive, None, "{theirs:?}"),
        }
        let mut out = String::new();
        send.stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(send.wait().unwrap().success(), "{out}");
    }
    running.shutdown();
    running.join().unwrap();
}
