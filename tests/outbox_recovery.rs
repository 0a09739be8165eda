//! The outbox's recovery rules: the kernel-held lock, a torn tail against damage, a missing
//! segment, a damaged cursor. Each test builds the fault on disk and checks what an operator
//! sees (errors, counters, `Outbox::verify`) and that every intact message is still delivered.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mllp::{Error, Outbox, OutboxConfig, RetryPolicy};

use mllp_testkit::scratch_dir;

/// The environment variable that turns this test binary into a lock holder (see
/// [`lock_holder_child`]).
const HOLDER_ENV: &str = "MLLP_TEST_OUTBOX_HOLDER";

fn config(to: &str) -> OutboxConfig {
    OutboxConfig::new(to)
        .retry(
            RetryPolicy::default()
                .max_attempts(None)
                .initial_backoff(Duration::from_millis(5))
                .max_backoff(Duration::from_millis(50)),
        )
        .poll_interval(Duration::from_millis(20))
}

/// A process holding the outbox in a directory: this test binary run again, in the mode of
/// [`lock_holder_child`]. Killed when dropped.
struct Holder(Child);

impl Holder {
    fn start(dir: &Path) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lock_holder_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOLDER_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // The child prints "held" once it has the outbox open (or ends, closing stdout).
        while out.read_line(&mut line).unwrap() > 0 && !line.contains("held") {
            line.clear();
        }
        assert!(line.contains("held"), "the holder did not start");
        Holder(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Not a test of its own: with [`HOLDER_ENV`] set, opens the outbox there, says "held", and
/// keeps it until its standard input closes (or it is killed).
#[test]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(HOLDER_ENV) else {
        return;
    };
    let _outbox = Outbox::open(PathBuf::from(dir), config("127.0.0.1:9").deliver(false)).unwrap();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "held").unwrap();
    stdout.flush().unwrap();
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
}

/// A process id that is not alive here: what a holder in another PID namespace (another
/// container on the same volume) looks like from this one.
fn a_dead_pid() -> u32 {
    (4_000_000..4_194_304)
        .find(|pid| !Path::new("/proc").join(pid.to_string()).exists())
        .unwrap()
}

#[test]
fn a_lock_held_by_another_process_is_never_taken_over() {
    let dir = scratch_dir("recovery-lock-ns");
    let holder = Holder::start(&dir);
    assert_eq!(Outbox::holder(&dir), Some(holder.pid()));
    let err = Outbox::open(&dir, config("127.0.0.1:9")).unwrap_err();
    assert!(
        matches!(err, Error::Locked { pid, .. } if pid == holder.pid()),
        "{err:?}"
    );
    // The holder runs in another PID namespace: its id means nothing here.
    std::fs::write(dir.join("lock"), format!("{}\n", a_dead_pid())).unwrap();
    let second = Outbox::open(&dir, config("127.0.0.1:9").deliver(false));
    assert!(
        matches!(second, Err(Error::Locked { .. })),
        "a second outbox opened a spool in use: {second:?}"
    );
    // Killed: the kernel releases the lock at once, whatever the file says.
    drop(holder);
    let outbox = Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap();
    assert_eq!(Outbox::holder(&dir), Some(std::process::id()));
    drop(outbox);
    assert_eq!(Outbox::holder(&dir), None);
}

#[test]
fn a_lock_file_naming_a_live_unrelated_process_blocks_nothing() {
    let dir = scratch_dir("recovery-lock-reuse");
    Outbox::open(&dir, config("127.0.0.1:9").deliver(false))
        .unwrap()
        .close()
        .unwrap();
    // A crashed relay's id, since reused by a process that has nothing to do with the spool
    // (init, here): a restart must not wait for it.
    std::fs::write(dir.join("lock"), "1\n").unwrap();
    assert_eq!(Outbox::holder(&dir), None);
    let outbox = Outbox::open(&dir, config("127.0.0.1:9").deliver(false)).unwrap();
    // Within one process, a second open of the same directory is refused too.
    let err = Outbox::open(&dir, config("127.0.0.1:9")).unwrap_err();
    assert!(
        matches!(err, Error::Locked { pid, .. } if pid == std::process::id()),
        "{err:?}"
    );
    drop(outbox);
}
