//! [`Paused`]: a process stopped with SIGSTOP (a server that hangs: its connections stay open,
//! nothing answers) until the guard drops, which continues it, however the test ends.

use std::process::Command;

/// A process stopped (SIGSTOP) while this guard lives; dropping it continues the process
/// (SIGCONT), so that a failing test never leaves a server stopped.
#[derive(Debug)]
pub struct Paused {
    pid: u32,
}

impl Paused {
    /// Stops the process `pid`.
    ///
    /// # Panics
    /// When `kill -STOP` fails (no such process).
    pub fn new(pid: u32) -> Paused {
        assert!(signal("-STOP", pid), "cannot stop process {pid}");
        Paused { pid }
    }

    /// Continues the process now (as dropping the guard does).
    pub fn resume(self) {}
}

impl Drop for Paused {
    fn drop(&mut self) {
        if !signal("-CONT", self.pid) {
            eprintln!("cannot continue process {}", self.pid);
        }
    }
}

/// Sends `kill SIGNAL pid`; whether it was delivered.
fn signal(signal: &str, pid: u32) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}
