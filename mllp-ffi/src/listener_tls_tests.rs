//! Mutual TLS, the minimum version and a certificate reload through the C functions (called
//! from Rust, with the test certificates and the library's TLS client as the peer).

use std::ffi::{c_void, CString};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use crate::ack::{mllp_disposition, MLLP_DISPOSITION_ACCEPT};
use crate::callback::{mllp_message_info, mllp_response};
use crate::listener::*;
use crate::listener_tls::*;
use crate::result::{MLLP_CONFIG, MLLP_INVALID_STATE, MLLP_OK, MLLP_TLS};
use mllp_core::{Connection, Framing, Stream, TlsClient, TlsClientConfig};
use mllp_testkit::{adt, cert, cert_path, pem_identity};

const LIMIT: Duration = Duration::from_secs(5);

/// Records the TLS subject and the certificate's length of every message.
unsafe extern "C" fn record(
    userdata: *mut c_void,
    info: *const mllp_message_info,
    _: *mut mllp_response,
) -> mllp_disposition {
    // SAFETY: the test passes a `Mutex<Vec<..>>` as userdata; `info` is valid during the call.
    let (seen, info) = unsafe { (&*(userdata as *const Mutex<Vec<(String, usize)>>), &*info) };
    // SAFETY: a byte range valid for the call.
    let subject = unsafe { std::slice::from_raw_parts(info.tls_subject, info.tls_subject_len) };
    let subject = String::from_utf8_lossy(subject).into_owned();
    seen.lock()
        .unwrap()
        .push((subject, info.tls_certificate_len));
    MLLP_DISPOSITION_ACCEPT
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Connects to `port` with `config`, and returns the served certificate and the connection.
fn connect(port: u16, config: &TlsClientConfig) -> Result<(Vec<u8>, Connection<Stream>), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    tcp.set_write_timeout(Some(LIMIT)).unwrap();
    let stream = TlsClient::new(config)
        .unwrap()
        .connect("localhost", tcp, LIMIT)
        .map_err(|e| e.to_string())?;
    let der = stream
        .tls_peer()
        .unwrap()
        .certificate_der()
        .unwrap()
        .to_vec();
    Ok((der, Connection::new(stream, Framing::default())))
}

fn round_trip(conn: &mut Connection<Stream>, id: &str) -> Result<String, String> {
    conn.write_frame(adt(id).as_bytes())
        .map_err(|e| e.to_string())?;
    match conn.read_frame().map_err(|e| e.to_string())? {
        Some(ack) => Ok(String::from_utf8_lossy(ack).into_owned()),
        None => Err("closed".into()),
    }
}

#[test]
fn client_ca_min_version_and_reload_from_c() {
    let seen = Mutex::new(Vec::<(String, usize)>::new());
    let mut b = std::ptr::null_mut();
    let mut l = std::ptr::null_mut();
    let mut port = 0u16;
    let (server_pem, server_key, ca) = (
        c(&cert_path("server.pem")),
        c(&cert_path("server.key")),
        c(&cert_path("ca.pem")),
    );
    // SAFETY: valid pointers and strings; `seen` outlives the listener.
    unsafe {
        assert_eq!(mllp_listener_builder_new(&mut b), MLLP_OK);
        assert_eq!(
            mllp_listener_builder_set_tls_min_version(b, 11),
            MLLP_CONFIG
        );
        assert_eq!(mllp_listener_builder_set_tls_min_version(b, 12), MLLP_OK);
        assert_eq!(
            mllp_listener_builder_set_tls_client_ca(b, ca.as_ptr()),
            MLLP_OK
        );
        // A client CA without an identity is refused at build.
        let addr = c("127.0.0.1:0");
        let userdata = &seen as *const _ as *mut c_void;
        assert_eq!(
            mllp_listener_builder_build(b, addr.as_ptr(), Some(record), userdata, &mut l),
            MLLP_CONFIG
        );
        assert_eq!(
            mllp_listener_builder_set_tls_identity_pem(b, server_pem.as_ptr(), server_key.as_ptr()),
            MLLP_OK
        );
        assert_eq!(
            mllp_listener_builder_build(b, addr.as_ptr(), Some(record), userdata, &mut l),
            MLLP_OK
        );
        mllp_listener_builder_free(b);
        assert_eq!(mllp_listener_local_port(l, &mut port), MLLP_OK);
        assert_eq!(mllp_listener_start(l), MLLP_OK);
    }
    let trusting = TlsClientConfig::new()
        .add_root_pem(cert("ca.pem"))
        .add_root_pem(cert("untrusted-ca.pem"));
    // No client certificate: refused.
    let refused = connect(port, &trusting).and_then(|(_, mut conn)| round_trip(&mut conn, "NO"));
    assert!(refused.is_err(), "{refused:?}");
    // A good one: in, with its subject and certificate in the callback.
    let with_cert = trusting.clone().identity(pem_identity("client"));
    let (first, mut old) = connect(port, &with_cert).unwrap();
    assert!(round_trip(&mut old, "OLD1")
        .unwrap()
        .contains("MSA|AA|OLD1"));
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, "CN=mllp test client");
        assert!(seen[0].1 > 0);
    }

    let (other_pem, other_key, bad) = (
        c(&cert_path("untrusted-server.pem")),
        c(&cert_path("untrusted-server.key")),
        c(&cert_path("client.key")),
    );
    // SAFETY: a live handle and valid strings.
    unsafe {
        // A failed reload (a key that does not match) keeps the certificate in use.
        assert_eq!(
            mllp_listener_reload_tls_pem(l, other_pem.as_ptr(), bad.as_ptr(), ca.as_ptr()),
            MLLP_TLS
        );
    }
    assert_eq!(connect(port, &with_cert).unwrap().0, first);
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            mllp_listener_reload_tls_pem(l, other_pem.as_ptr(), other_key.as_ptr(), ca.as_ptr()),
            MLLP_OK
        );
    }
    let (second, mut new) = connect(port, &with_cert).unwrap();
    assert_ne!(second, first, "new connections get the new certificate");
    assert!(round_trip(&mut new, "NEW1")
        .unwrap()
        .contains("MSA|AA|NEW1"));
    // The connection opened before the reload still answers.
    assert!(round_trip(&mut old, "OLD2")
        .unwrap()
        .contains("MSA|AA|OLD2"));
    // SAFETY: a live handle, then freed once.
    unsafe {
        assert_eq!(mllp_listener_stop(l), MLLP_OK);
        mllp_listener_free(l);
    }
}

#[test]
fn reloading_a_plain_listener_is_an_invalid_state() {
    let seen = Mutex::new(Vec::<(String, usize)>::new());
    let mut b = std::ptr::null_mut();
    let mut l = std::ptr::null_mut();
    let (pem, key, addr) = (
        c(&cert_path("server.pem")),
        c(&cert_path("server.key")),
        c("127.0.0.1:0"),
    );
    // SAFETY: valid pointers and strings; `seen` outlives the listener.
    unsafe {
        assert_eq!(mllp_listener_builder_new(&mut b), MLLP_OK);
        let userdata = &seen as *const _ as *mut c_void;
        assert_eq!(
            mllp_listener_builder_build(b, addr.as_ptr(), Some(record), userdata, &mut l),
            MLLP_OK
        );
        mllp_listener_builder_free(b);
        assert_eq!(
            mllp_listener_reload_tls_pem(l, pem.as_ptr(), key.as_ptr(), std::ptr::null()),
            MLLP_INVALID_STATE
        );
        mllp_listener_free(l);
    }
}
