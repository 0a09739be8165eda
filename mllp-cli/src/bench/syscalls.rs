//! System calls per message, counted with `strace -f -c` in untimed runs.
//!
//! Each side runs in a child process (pinned as the measurement is) under `strace`, twice:
//! with a few messages and with many more, after the same warm-up. The difference of the two
//! counts divided by the difference of the message counts is what one more message costs;
//! starting the process, connecting and the warm-up cancel out.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{bench_error, in_children, BenchConfig, Pin, Side};

/// The runs' message counts: the difference is what is divided by.
const FEW: usize = 500;
const MANY: usize = 2_500;

/// System calls per message of each side of one pairing.
#[derive(Debug, Clone, PartialEq)]
pub struct Syscalls {
    /// The sender's process, by system call name.
    pub sender: BTreeMap<String, f64>,
    /// The listener's process, by system call name.
    pub listener: BTreeMap<String, f64>,
}

impl Syscalls {
    /// All of the sender's system calls per message.
    pub fn sender_total(&self) -> f64 {
        self.sender.values().fold(0.0, |a, b| a + b)
    }

    /// All of the listener's system calls per message.
    pub fn listener_total(&self) -> f64 {
        self.listener.values().fold(0.0, |a, b| a + b)
    }
}

impl fmt::Display for Syscalls {
    /// `system calls per message: sender 2.00 (recvfrom 1.00, sendto 1.00), listener ...`;
    /// calls made less than once per 100 messages are left out of the lists.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |calls: &BTreeMap<String, f64>| {
            calls
                .iter()
                .filter(|(_, &n)| n.abs() >= 0.01)
                .map(|(name, n)| format!("{name} {n:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "system calls per message: sender {:.2} ({}), listener {:.2} ({})",
            self.sender_total(),
            list(&self.sender),
            self.listener_total(),
            list(&self.listener)
        )
    }
}

/// Counts the system calls per message of `sender` ↔ `listener` as `config` runs them; `None`
/// when `strace` cannot be run here.
pub(super) fn count(
    config: &BenchConfig,
    sender: Side,
    listener: Side,
) -> Result<Option<Syscalls>, mllp::Error> {
    let runs = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        return Ok(None);
    }
    let cpus = match config.pin {
        Pin::None => None,
        Pin::One(cpu) => Some((cpu, cpu)),
        Pin::Two(l, s) => Some((l, s)),
    };
    let mut counts = Vec::new();
    for messages in [FEW, MANY] {
        let run = BenchConfig {
            messages: messages * config.connections.max(1),
            ..config.clone()
        };
        let files = TraceFiles::new(messages);
        let result = in_children(
            &run,
            sender,
            listener,
            cpus,
            Some((&files.listener, &files.sender)),
        )
        .and_then(|_| Ok((read_counts(&files.sender)?, read_counts(&files.listener)?)));
        files.remove();
        counts.push(result?);
    }
    let per_message = |few: &BTreeMap<String, u64>, many: &BTreeMap<String, u64>| {
        let extra = ((MANY - FEW) * config.connections.max(1)) as f64;
        let mut out = BTreeMap::new();
        for (name, &n) in many {
            let before = few.get(name).copied().unwrap_or(0);
            out.insert(name.clone(), (n as f64 - before as f64) / extra);
        }
        out
    };
    Ok(Some(Syscalls {
        sender: per_message(&counts[0].0, &counts[1].0),
        listener: per_message(&counts[0].1, &counts[1].1),
    }))
}

/// The summary files of one traced run, in the system's temporary directory.
struct TraceFiles {
    sender: PathBuf,
    listener: PathBuf,
}

impl TraceFiles {
    fn new(tag: usize) -> TraceFiles {
        let base = std::env::temp_dir().join(format!("mllp-bench-strace-{}", std::process::id()));
        TraceFiles {
            sender: base.with_extension(format!("{tag}.sender")),
            listener: base.with_extension(format!("{tag}.listener")),
        }
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.sender);
        let _ = std::fs::remove_file(&self.listener);
    }
}

/// The calls per system call name in an `strace -c` summary.
fn read_counts(path: &Path) -> Result<BTreeMap<String, u64>, mllp::Error> {
    // The listener's summary is written when its process exits, after the sender's.
    let text = std::fs::read_to_string(path)
        .map_err(|e| bench_error(format!("cannot read {}: {e}", path.display())))?;
    Ok(parse_summary(&text))
}

/// Parses the table of `strace -c`: `% time  seconds  usecs/call  calls  [errors]  syscall`.
fn parse_summary(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("------") {
            in_table = true;
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !in_table || fields.len() < 5 {
            continue;
        }
        let name = fields[fields.len() - 1];
        if name == "total" {
            break;
        }
        if let Ok(calls) = fields[3].parse::<u64>() {
            *out.entry(name.to_string()).or_insert(0) += calls;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strace_summary_is_read_by_name() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600           1       500           sendto
 40.00    0.000400           0      1000       499 recvfrom
  0.00    0.000000           0         1           close
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           0      1501       499 total
";
        let counts = parse_summary(text);
        assert_eq!(counts.get("sendto"), Some(&500));
        assert_eq!(counts.get("recvfrom"), Some(&1000));
        assert_eq!(counts.len(), 3);
        let calls = Syscalls {
            sender: [("sendto".to_string(), 1.0), ("recvfrom".to_string(), 1.0)].into(),
            listener: BTreeMap::new(),
        };
        assert_eq!(
            calls.to_string(),
            "system calls per message: sender 2.00 (recvfrom 1.00, sendto 1.00), listener 0.00 ()"
        );
    }
}
