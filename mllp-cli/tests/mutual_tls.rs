//! `mllp listen --tls-client-ca` against real peers (`openssl s_client`, `mllp send
//! --tls-cert/--tls-key`): no certificate, one from another CA, an expired one, a good one; the
//! verified subject stored beside the message; SIGHUP reloads the certificate without dropping
//! an open connection.
#![cfg(all(feature = "tls", unix))]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{adt, cert_path, scratch_dir, sighup, ListenProc, CERTS_DIR};
use mllp::{Connection, Stream};

const LIMIT: Duration = Duration::from_secs(10);

/// The `.hl7` files and the `.tls-subject` files of the store directory, sorted.
fn stored(dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let (hl7, subjects) = names.into_iter().partition(|n| n.ends_with(".hl7"));
    (hl7, subjects)
}

/// `mllp send` of one message with the test CA trusted and `extra` options; exit code, output.
fn send(addr: &str, id: &str, extra: &[&str]) -> (i32, String) {
    common::send_tls(addr, id, extra, &[])
}

/// `openssl s_client` against `addr` (stdin closed: it connects, prints the session, leaves).
fn s_client(addr: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect", addr])
        .args(["-CAfile", "ca.pem", "-servername", "localhost"])
        .args(args)
        .current_dir(CERTS_DIR)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command (install openssl)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn only_a_client_certificate_from_the_ca_gets_in_and_its_subject_is_stored() {
    let dir = scratch_dir("cli-mutual-tls");
    let store = dir.join("inbox");
    let (cert, key, ca) = (
        cert_path("server.pem"),
        cert_path("server.key"),
        cert_path("ca.pem"),
    );
    let mut listener = ListenProc::start(
        &store,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ],
        false,
    );
    let addr = listener.addr.clone();

    // openssl s_client: asked for a certificate from the test CA; without one, refused.
    let text = s_client(&addr, &["-cert", "client.pem", "-key", "client.key"]);
    assert!(
        text.contains("Acceptable client certificate CA names"),
        "{text}"
    );
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    // (TLS 1.2, where the server's refusal ends the handshake: a TLS 1.3 client that sends
    // nothing leaves before it reads the alert.)
    let text = s_client(&addr, &["-tls1_2"]);
    assert!(text.contains("alert handshake failure"), "{text}");

    // mllp send: none, another CA, expired: nothing stored.
    let pair = |name: &str| {
        (
            cert_path(&format!("{name}.pem")),
            cert_path(&format!("{name}.key")),
        )
    };
    let (code, out) = send(&addr, "NONE", &[]);
    assert_ne!(code, 0, "{out}");
    for name in ["untrusted-client", "expired-client"] {
        let (c, k) = pair(name);
        let (code, out) = send(&addr, name, &["--tls-cert", &c, "--tls-key", &k]);
        assert_ne!(code, 0, "{name}: {out}");
    }
    assert_eq!(stored(&store), (vec![], vec![]));

    // A good one: stored, its subject beside it.
    let (c, k) = pair("client");
    let (code, out) = send(&addr, "GOOD", &["--tls-cert", &c, "--tls-key", &k]);
    assert_eq!(code, 0, "{out}");
    let (hl7, subjects) = stored(&store);
    assert_eq!(hl7, ["0000000001-GOOD.hl7"]);
    assert_eq!(subjects, ["0000000001-GOOD.tls-subject"]);
    let subject = std::fs::read_to_string(store.join(&subjects[0])).unwrap();
    assert_eq!(subject, "CN=mllp test client\n");

    listener.terminate();
    assert_eq!(listener.wait_for_exit(LIMIT), Some(0));
    let stderr = listener.stderr_text();
    assert!(stderr.contains("presented no certificate"), "{stderr}");
    assert!(stderr.contains("certificate has expired"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn round_trip(conn: &mut Connection<Stream>, id: &str) -> String {
    conn.write_frame(adt(id).as_bytes()).unwrap();
    let ack = conn.read_frame().unwrap().expect("an acknowledgement");
    String::from_utf8_lossy(ack).into_owned()
}

#[test]
fn sighup_reloads_the_certificate_and_open_connections_keep_theirs() {
    let dir = scratch_dir("cli-tls-reload");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::copy(cert_path("server.pem"), &cert).unwrap();
    std::fs::copy(cert_path("server.key"), &key).unwrap();
    let mut listener = ListenProc::start(
        &dir.join("inbox"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        true,
    );
    let addr = listener.addr.clone();
    let lines = listener.stdout.take().unwrap();
    let (first, mut old) = common::served_certificate(addr.parse().unwrap(), LIMIT);
    assert!(round_trip(&mut old, "OLD1").contains("MSA|AA|OLD1"));
    assert!(lines.recv_timeout(LIMIT).unwrap().contains("OLD1"));

    let next_line = || lines.recv_timeout(LIMIT).expect("a line from the listener");
    // A broken file: the reload fails, the certificate in use stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    sighup(&listener.child);
    let line = next_line();
    assert!(line.contains("TLS reload failed"), "{line}");
    let (still, _) = common::served_certificate(addr.parse().unwrap(), LIMIT);
    assert_eq!(still, first);
    // Rotate to the other certificate and reload.
    std::fs::copy(cert_path("untrusted-server.pem"), &cert).unwrap();
    std::fs::copy(cert_path("untrusted-server.key"), &key).unwrap();
    sighup(&listener.child);
    let line = next_line();
    assert!(line.contains("TLS reloaded"), "{line}");
    let (second, mut new) = common::served_certificate(addr.parse().unwrap(), LIMIT);
    assert_ne!(second, first, "the new certificate is served");
    assert!(round_trip(&mut new, "NEW1").contains("MSA|AA|NEW1"));
    // The connection opened before the reload was not dropped.
    assert!(round_trip(&mut old, "OLD2").contains("MSA|AA|OLD2"));

    listener.terminate();
    assert_eq!(listener.wait_for_exit(LIMIT), Some(0));
    let stderr = listener.stderr_text();
    assert!(
        stderr.contains("TLS reload failed, the certificate in use stays"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sighup_does_not_end_a_plain_listener() {
    let dir = scratch_dir("cli-plain-sighup");
    let mut listener = ListenProc::start(&dir.join("inbox"), &[], true);
    let lines = listener.stdout.take().unwrap();
    sighup(&listener.child);
    let line = lines.recv_timeout(LIMIT).expect("a line from the listener");
    assert!(line.contains("nothing to reload"), "{line}");
    assert_eq!(listener.wait_for_exit(Duration::from_millis(200)), None);
    listener.terminate();
    assert_eq!(listener.wait_for_exit(LIMIT), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}
