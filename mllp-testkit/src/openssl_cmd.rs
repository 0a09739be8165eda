//! The `openssl` command as a test peer and a key tool: `openssl s_server` on 127.0.0.1 (an
//! OS-chosen port) with any of the test certificates, and password-protected copies of the test
//! keys in both PEM forms.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{skip, CERTS_DIR};

/// A running `openssl s_server`, killed when dropped.
pub struct SServer {
    child: Child,
    /// Where it accepts.
    pub addr: SocketAddr,
    /// What it printed on standard output and standard error after its `ACCEPT` line, read
    /// on threads.
    output: Option<mpsc::Receiver<String>>,
}

impl SServer {
    /// Starts `openssl s_server -accept 127.0.0.1:0 -cert NAME.pem -key NAME.key ARGS...` in
    /// the test certificate directory and waits (within `limit`) for its `ACCEPT` line; `None`
    /// (and a notice) when the `openssl` command is not installed.
    #[track_caller]
    pub fn start(name: &str, args: &[&str], limit: Duration) -> Option<SServer> {
        let spawned = Command::new("openssl")
            .current_dir(CERTS_DIR)
            .args(["s_server", "-accept", "127.0.0.1:0"])
            .args([
                "-cert",
                &format!("{name}.pem"),
                "-key",
                &format!("{name}.key"),
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(_) => {
                skip("no openssl command (the openssl s_server tests)");
                return None;
            }
        };
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout pipe");
        let lines = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr pipe");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        let mut seen = String::new();
        let addr = loop {
            let Ok(line) = rx.recv_timeout(limit) else {
                panic!("openssl s_server printed no ACCEPT line: {seen}");
            };
            if let Some(addr) = line.trim().strip_prefix("ACCEPT ") {
                break addr.parse().expect("the address of the ACCEPT line");
            }
            seen.push_str(&line);
            seen.push('\n');
        };
        Some(SServer {
            child,
            addr,
            output: Some(rx),
        })
    }

    /// Ends the server and returns everything it printed after its `ACCEPT` line.
    pub fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(rx) = self.output.take() {
            // Both pipes are closed now: the readers end, and so does this loop.
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PEM form of a password-protected key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// Encrypted PKCS#8: `-----BEGIN ENCRYPTED PRIVATE KEY-----`.
    Pkcs8,
    /// A traditional PEM key with `Proc-Type: 4,ENCRYPTED` and `DEK-Info` headers.
    Traditional,
}

/// Writes the test key `NAME.key` to `dest`, encrypted (AES-256) with `password`, in `form`.
/// Panics when the `openssl` command fails.
pub fn encrypt_key(name: &str, dest: &Path, password: &str, form: KeyForm) {
    let src = format!("{CERTS_DIR}/{name}.key");
    let mut cmd = Command::new("openssl");
    match form {
        KeyForm::Pkcs8 => cmd.args(["pkcs8", "-topk8", "-v2", "aes-256-cbc"]),
        KeyForm::Traditional => cmd.args(["pkey", "-aes256", "-traditional"]),
    };
    let out = cmd
        .args(["-in", &src, "-out"])
        .arg(dest)
        .args(["-passout", &format!("pass:{password}")])
        .output()
        .expect("the openssl command (install openssl)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dest).expect("the encrypted key");
    let marker = match form {
        KeyForm::Pkcs8 => "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        KeyForm::Traditional => "Proc-Type: 4,ENCRYPTED",
    };
    assert!(text.contains(marker), "{text}");
}
