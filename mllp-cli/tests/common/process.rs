//! The `mllp` binary run as a child process, for the tests of the command-line tool: every
//! child is killed when its guard drops and every wait is bounded. A listener is known to be
//! ready when it has printed its `listening on ADDR` line.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest any process or line is waited for.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A running `mllp` process; killed when dropped.
pub struct Proc {
    pub child: Child,
    stdout: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

/// How a process ended.
#[derive(Debug)]
pub struct Ended {
    pub code: i32,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Proc {
    pub fn spawn(args: &[&str], stdin: Option<Vec<u8>>) -> Proc {
        Proc::spawn_env(args, stdin, &[])
    }

    /// Runs in the directory `cwd`, without standard input.
    pub fn spawn_in(args: &[&str], cwd: &Path) -> Proc {
        Proc::spawn_with(args, None, &[], Some(cwd))
    }

    pub fn spawn_env(args: &[&str], stdin: Option<Vec<u8>>, env: &[(&str, &Path)]) -> Proc {
        Proc::spawn_with(args, stdin, env, None)
    }

    fn spawn_with(
        args: &[&str],
        stdin: Option<Vec<u8>>,
        env: &[(&str, &Path)],
        cwd: Option<&Path>,
    ) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mllp"));
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the mllp binary starts");
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let out = child.stdout.take().expect("stdout pipe");
        let (tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr pipe");
        let stderr = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }));
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// The next line on standard output.
    pub fn line(&self) -> String {
        match self.stdout.recv_timeout(LIMIT) {
            Ok(line) => line,
            Err(e) => panic!("no line from mllp within {LIMIT:?}: {e}"),
        }
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(mut self) -> Ended {
        let end = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < end, "mllp did not exit within {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stdout = Vec::new();
        loop {
            match self.stdout.recv_timeout(LIMIT) {
                Ok(line) => stdout.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("standard output did not close"),
            }
        }
        let stderr = self.stderr.take().unwrap().join().unwrap();
        Ended {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `mllp ARGS` to its end.
pub fn mllp(args: &[&str]) -> Ended {
    Proc::spawn(args, None).wait()
}

/// Starts `mllp listen 127.0.0.1:0 --store DIR EXTRA...` and returns it with its address.
pub fn listen(store: &Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["listen", "127.0.0.1:0", "--store", store.to_str().unwrap()];
    args.extend_from_slice(extra);
    let proc = Proc::spawn(&args, None);
    let first = proc.line();
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (proc, addr)
}
