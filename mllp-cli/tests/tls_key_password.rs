//! Encrypted TLS private keys, their password from a file (`--tls-key-password-file`) or the
//! environment (`MLLP_TLS_KEY_PASSWORD`), never the command line: `mllp listen` serves TLS with
//! one (and reads the password file again on SIGHUP), `mllp send` and `mllp relay` (toward its
//! downstream) present one to a listener that requires client certificates, a wrong or missing
//! password stops the start with exit 2 and a message naming the key file; and both sides log
//! the protocol and cipher of each handshake at debug.
#![cfg(all(feature = "tls", unix))]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::openssl_cmd::{encrypt_key, KeyForm};
use common::process::{mllp, Proc};
use common::{adt, cert_path, scratch_dir, send_tls as send, sighup, stored_messages, ListenProc};

const LIMIT: Duration = Duration::from_secs(10);
const PASSWORD: &str = "hl7-s3cret-pw";

/// A file only its owner can read, holding `text`.
fn private_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `NAME.key` of the test certificates, encrypted with [`PASSWORD`], and a password file for it.
fn encrypted(dir: &Path, name: &str, form: KeyForm) -> (String, String) {
    let key = dir.join(format!("{name}-{form:?}.key"));
    encrypt_key(name, &key, PASSWORD, form);
    let password = dir.join(format!("{name}-{form:?}.password"));
    private_file(&password, &format!("{PASSWORD}\n"));
    (path_text(key), path_text(password))
}

fn path_text(path: PathBuf) -> String {
    path.to_str().unwrap().to_owned()
}

/// The listener's next `SIGHUP: ...` line (past the lines of the messages it stored).
fn sighup_line(lines: &std::sync::mpsc::Receiver<String>) -> String {
    loop {
        let line = lines.recv_timeout(LIMIT).expect("a line from the listener");
        if line.starts_with("SIGHUP") {
            return line;
        }
    }
}

#[test]
fn a_listener_serves_tls_with_an_encrypted_key_whose_password_stays_off_its_command_line() {
    let dir = scratch_dir("cli-encrypted-server-key");
    let (key, password) = encrypted(&dir, "server", KeyForm::Pkcs8);
    let cert = cert_path("server.pem");
    let store = dir.join("inbox");
    let mut listener = ListenProc::start(
        &store,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-key-password-file",
            &password,
            "-vv",
        ],
        true,
    );
    let addr = listener.addr.clone();
    let lines = listener.stdout.take().unwrap();

    // What every user of the host can read: the file's name, not the password.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", listener.child.id())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains(&password), "{cmdline}");
    assert!(!cmdline.contains(PASSWORD), "{cmdline}");

    // A sender at debug level (-vvv: its default is errors only) logs its handshake.
    let (code, out) = send(&addr, "ENC1", &["-vvv"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "TLS session with localhost ({addr}) established: TLSv1.3, cipher TLS_"
        )) && out.contains("server certificate CN=localhost"),
        "{out}"
    );
    assert_eq!(stored_messages(&store).len(), 1);

    // The password file is read again on SIGHUP: a wrong one keeps the key in use.
    private_file(Path::new(&password), "not the password\n");
    sighup(&listener.child);
    let line = sighup_line(&lines);
    assert!(
        line.contains("TLS reload failed") && line.contains(&key) && line.contains(&password),
        "{line}"
    );
    assert!(!line.contains("not the password"), "{line}");
    let (code, out) = send(&addr, "ENC2", &[], &[]);
    assert_eq!(code, 0, "{out}");
    private_file(Path::new(&password), PASSWORD);
    sighup(&listener.child);
    let line = sighup_line(&lines);
    assert!(line.contains("TLS reloaded"), "{line}");

    listener.terminate();
    assert_eq!(listener.wait_for_exit(LIMIT), Some(0));
    // The listener's side of each handshake, at debug (-vv).
    let stderr = listener.stderr_text();
    let established = stderr
        .lines()
        .filter(|l| l.contains("established: TLSv1.3, cipher TLS_"))
        .count();
    assert_eq!(established, 2, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A TLS listener storing into `store` that asks each client for a certificate of the test CA.
fn client_auth_listener(store: &Path) -> ListenProc {
    let (cert, key, ca) = (
        cert_path("server.pem"),
        cert_path("server.key"),
        cert_path("ca.pem"),
    );
    let tls = [
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &ca,
    ];
    ListenProc::start(store, &tls, false)
}

#[test]
fn a_sender_presents_an_encrypted_client_key_with_its_password_from_a_file_or_the_environment() {
    let dir = scratch_dir("cli-encrypted-client-key");
    let (key, password) = encrypted(&dir, "client", KeyForm::Traditional);
    let store = dir.join("inbox");
    let listener = client_auth_listener(&store);
    let addr = listener.addr.clone();
    let client = cert_path("client.pem");
    let identity = ["--tls-cert", &client, "--tls-key", &key];

    let mut with_file = identity.to_vec();
    with_file.extend_from_slice(&["--tls-key-password-file", &password]);
    let (code, out) = send(&addr, "FILE", &with_file, &[]);
    assert_eq!(code, 0, "{out}");
    let env = [("MLLP_TLS_KEY_PASSWORD", Path::new(PASSWORD))];
    let (code, out) = send(&addr, "ENV", &identity, &env);
    assert_eq!(code, 0, "{out}");
    let stored: Vec<String> = stored_messages(&store)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(stored, ["0000000001-FILE.hl7", "0000000002-ENV.hl7"]);
    let subject = std::fs::read_to_string(store.join("0000000002-ENV.tls-subject")).unwrap();
    assert_eq!(subject, "CN=mllp test client\n");

    // No password anywhere: exit 2 before connecting, naming the key and where to put it.
    let (code, out) = send(&addr, "NONE", &identity, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&key) && out.contains("is encrypted") && out.contains("MLLP_TLS_KEY_PASSWORD"),
        "{out}"
    );
    assert_eq!(stored_messages(&store).len(), 2);
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wrong_password_stops_the_start_with_exit_2_naming_the_key_file() {
    let dir = scratch_dir("cli-wrong-key-password");
    let (key, _) = encrypted(&dir, "server", KeyForm::Pkcs8);
    let wrong = dir.join("wrong.password");
    private_file(&wrong, "wrong horse\n");
    let wrong = path_text(wrong);
    let cert = cert_path("server.pem");
    let store = path_text(dir.join("inbox"));
    let tls = [
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        &key,
        "--tls-key-password-file",
        &wrong,
    ];
    let check = |ended: common::process::Ended, option: &str| {
        assert_eq!(ended.code, 2, "{ended:?}");
        let text = &ended.stderr;
        assert!(
            text.contains(&key)
                && text.contains(&format!("({option})"))
                && text.contains(&wrong)
                && text.contains("wrong password")
                && !text.contains("wrong horse"),
            "{text}"
        );
    };

    let mut listen = vec!["listen", "127.0.0.1:0", "--store", &store];
    listen.extend_from_slice(&tls);
    check(mllp(&listen), "--tls-key");

    let ca = cert_path("ca.pem");
    let mut send = vec!["send", "127.0.0.1:1", "--tls-ca", &ca];
    send.extend_from_slice(&tls);
    check(
        Proc::spawn(&send, Some(adt("X").into_bytes())).wait(),
        "--tls-key",
    );

    let spool = path_text(dir.join("spool"));
    let to_tls = [
        "--to-tls-cert",
        cert.as_str(),
        "--to-tls-key",
        &key,
        "--to-tls-key-password-file",
        &wrong,
    ];
    let mut relay = vec![
        "relay",
        "127.0.0.1:0",
        "--to",
        "127.0.0.1:1",
        "--spool",
        &spool,
    ];
    relay.extend_from_slice(&["--tls", "--tls-ca", &ca]);
    relay.extend_from_slice(&to_tls);
    check(mllp(&relay), "--to-tls-key");

    // The environment form, with the right password: the listener starts.
    let env = [("MLLP_TLS_KEY_PASSWORD", Path::new(PASSWORD))];
    let mut listen = vec!["listen", "127.0.0.1:0", "--store", &store];
    listen.extend_from_slice(&tls[..4]);
    let listener = Proc::spawn_env(&listen, None, &env);
    let first = listener.line();
    assert!(
        first.starts_with("listening on ") && first.contains("with TLS"),
        "{first}"
    );
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_relay_forwards_over_tls_with_an_encrypted_downstream_key_and_logs_each_handshake() {
    let dir = scratch_dir("cli-relay-encrypted-key");
    let (key, password) = encrypted(&dir, "client", KeyForm::Pkcs8);
    let downstream_store = dir.join("downstream");
    let downstream = client_auth_listener(&downstream_store);
    let ca = cert_path("ca.pem");
    let to = downstream.addr.clone();
    let spool = path_text(dir.join("spool"));
    let client = cert_path("client.pem");
    let relay = Proc::spawn(
        &[
            "relay",
            "127.0.0.1:0",
            "--to",
            &to,
            "--spool",
            &spool,
            "--tls-ca",
            &ca,
            "--tls-domain",
            "localhost",
            "--to-tls-cert",
            &client,
            "--to-tls-key",
            &key,
            "--to-tls-key-password-file",
            &password,
            "-vv",
        ],
        None,
    );
    let first = relay.line();
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let ended = Proc::spawn(&["send", &addr], Some(adt("RLY1").into_bytes())).wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    // A line for the message received and spooled, then one for it forwarded.
    let line = loop {
        let line = relay.line();
        if line.starts_with("RLY1 to ") {
            break line;
        }
    };
    assert_eq!(line, format!("RLY1 to {to}: AA"));
    let subject = std::fs::read_to_string(downstream_store.join("0000000001-RLY1.tls-subject"));
    assert_eq!(subject.unwrap(), "CN=mllp test client\n");
    common::sigterm(&relay);
    let ended = relay.wait();
    assert!(
        ended.stderr.contains(&format!(
            "TLS session with localhost ({to}) established: TLSv1.3, cipher TLS_"
        )),
        "{}",
        ended.stderr
    );
    drop(downstream);
    std::fs::remove_dir_all(&dir).unwrap();
}
