//! The file store under `mllp listen`: a listener killed (SIGKILL) in the middle of storing
//! and restarted on the same directory, and two listeners sharing one directory. Every
//! message that got an AA must be in the directory, and no file may replace another.
//!
//! The store directories are under cargo's scratch directory for integration tests, on the
//! same file system as the build, so `fsync` takes real time and kills land mid-store.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mllp::hl7::AckCode;
use mllp::{RetryPolicy, Sender};

/// A running `mllp listen` child; killed when dropped.
struct Listen {
    child: Child,
    addr: String,
}

impl Listen {
    /// Starts `mllp listen ADDR --store DIR -q` and waits (bounded) for its `listening on`
    /// line.
    fn start(addr: &str, store: &Path) -> Listen {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mllp"))
            .args(["listen", addr, "--store", store.to_str().unwrap(), "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the mllp binary starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mllp listen printed no `listening on` line within 10 s");
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Listen { child, addr }
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mllp-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The stored files: (name, contents), sorted by name.
fn stored(dir: &Path) -> Vec<(String, String)> {
    common::stored_messages(dir)
}

/// The names of the temporary files in `dir`.
fn temp_files(dir: &Path) -> std::collections::HashSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect()
}

fn sender(addr: &str) -> Sender {
    Sender::builder(addr)
        .connect_timeout(Duration::from_secs(1))
        .ack_timeout(Duration::from_secs(3))
        .write_timeout(Duration::from_secs(3))
        .retry(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(5))
                .max_backoff(Duration::from_millis(50))
                .max_attempts(Some(400)),
        )
        .build()
        .unwrap()
}

fn message(id: &str, body: &str) -> String {
    format!(
        "MSH|^~\\&|A|B|C|D|20260101120000||ADT^A01|{id}|P|2.5.1\rPID|1||{body}\rNTE|1||{}\r",
        "x".repeat(64 * 1024)
    )
}

#[test]
fn listener_killed_while_storing_loses_nothing_and_accepts_resends() {
    const MESSAGES: usize = 240;
    const KILLS: usize = 8;
    let dir = scratch("kill");
    let first = Listen::start("127.0.0.1:0", &dir);
    let addr = first.addr.clone();

    // The sender reports each acknowledgement; the test kills the listener right after some
    // of them, while the sender is already storing the next message.
    let (tx, progress) = mpsc::channel::<(String, AckCode, Option<String>)>();
    let sender_addr = addr.clone();
    let sending = std::thread::spawn(move || {
        let mut s = sender(&sender_addr);
        for i in 0..MESSAGES {
            let id = format!("K{i:04}");
            let result = s.send(&message(&id, &id));
            let sent = match result {
                Ok(ack) => (id, ack.code, ack.text),
                Err(e) => panic!("{id}: not acknowledged: {e}"),
            };
            if tx.send(sent).is_err() {
                return;
            }
        }
    });

    let mut listener = Some(first);
    let mut acks = Vec::new();
    let started = Instant::now();
    let mut kills = 0;
    while acks.len() < MESSAGES {
        let got = progress
            .recv_timeout(Duration::from_secs(20))
            .expect("the sender makes progress");
        acks.push(got);
        if kills < KILLS && acks.len() % (MESSAGES / (KILLS + 1)) == 0 {
            // Kill while the next message is being stored: as soon as a new temporary file
            // shows up (bounded: after 2 s the kill happens anyway).
            let seen = temp_files(&dir);
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until && temp_files(&dir).is_subset(&seen) {
                std::thread::yield_now();
            }
            listener.take().unwrap().kill();
            kills += 1;
            listener = Some(Listen::start(&addr, &dir));
        }
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
    }
    sending.join().unwrap();
    drop(listener);

    let not_aa: Vec<_> = acks
        .iter()
        .filter(|(_, code, _)| *code != AckCode::ApplicationAccept)
        .collect();
    let files = stored(&dir);
    let lost: Vec<_> = acks
        .iter()
        .filter(|(id, code, _)| {
            *code == AckCode::ApplicationAccept
                && !files.iter().any(|(name, text)| {
                    name.ends_with(&format!("-{id}.hl7")) && *text == message(id, id)
                })
        })
        .map(|(id, _, _)| id)
        .collect();
    eprintln!(
        "{kills} kills: {} messages, {} not AA, lost {} of {} AA, {} files ({} duplicates from \
         resends) in {:.1?}",
        acks.len(),
        not_aa.len(),
        lost.len(),
        acks.len() - not_aa.len(),
        files.len(),
        files.len().saturating_sub(acks.len()),
        started.elapsed()
    );
    assert!(not_aa.is_empty(), "resends refused: {not_aa:?}");
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_listeners_share_one_store_directory() {
    const EACH: usize = 100;
    let dir = scratch("shared");
    let a = Listen::start("127.0.0.1:0", &dir);
    let b = Listen::start("127.0.0.1:0", &dir);
    // Two instances of one feed: the same control IDs, different contents.
    let results: Vec<Vec<AckCode>> = std::thread::scope(|s| {
        [("A", &a.addr), ("B", &b.addr)]
            .map(|(who, addr)| {
                s.spawn(move || {
                    let mut sender = sender(addr);
                    (0..EACH)
                        .map(|i| {
                            let id = format!("MSG{i:04}");
                            sender
                                .send(&message(&id, &format!("{who}{i}")))
                                .unwrap()
                                .code
                        })
                        .collect()
                })
            })
            .into_iter()
            .map(|j| j.join().unwrap())
            .collect()
    });
    drop((a, b));
    let aa = results
        .iter()
        .flatten()
        .filter(|c| **c == AckCode::ApplicationAccept)
        .count();
    let files = stored(&dir);
    eprintln!("two listeners: {aa} AA, {} files", files.len());
    assert_eq!(aa, 2 * EACH);
    assert_eq!(files.len(), 2 * EACH);
    for who in ["A", "B"] {
        for i in 0..EACH {
            let id = format!("MSG{i:04}");
            let want = message(&id, &format!("{who}{i}"));
            assert!(
                files.iter().any(|(_, text)| *text == want),
                "{who} {id} missing"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
