//! `mllp send --resume STATE`: the acknowledged messages of earlier runs.
//!
//! The state file is a line of text naming the format, then one line per acknowledged message,
//! appended as each positive ACK arrives:
//!
//! ```text
//! mllp-send-state 1
//! 1<TAB>MSG00001<TAB>adt.hl7
//! 2<TAB>MSG00002<TAB>adt.hl7
//! ```
//!
//! Each line holds the message's position in its file (from 1), its MSH-10 and the file as
//! given on the command line (`-` for standard input), separated by tabs; `%`, tab, CR and LF
//! in the MSH-10 and the file name are written as `%25`, `%09`, `%0D` and `%0A`. A line is
//! written with one system call, so a sender killed at any moment leaves at most a torn last
//! line, which is ignored and cut off before the next line is appended. A line that cannot be
//! read is ignored too: at worst its message is sent again.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::options::Failure;

/// The first line of a state file.
const HEADER: &str = "mllp-send-state 1";

/// The messages acknowledged so far, and the file they are recorded in.
pub struct State {
    path: PathBuf,
    file: File,
    done: HashSet<(String, usize, String)>,
}

impl State {
    /// Opens (or creates) the state file at `path` and reads what it records.
    pub fn open(path: &Path) -> Result<State, Failure> {
        let fail = |what: &str, e: std::io::Error| {
            Failure::fatal(format!(
                "cannot {what} the state file {}: {e}",
                path.display()
            ))
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| fail("open", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| fail("read", e))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.split_inclusive('\n');
        let mut done = HashSet::new();
        let mut start = false;
        match lines.next() {
            // A new file, or one whose header was torn: start it (again).
            None => start = true,
            Some(first) if !first.ends_with('\n') && HEADER.starts_with(first) => {
                file.set_len(0).map_err(|e| fail("write", e))?;
                start = true;
            }
            Some(first) if first.trim_end() == HEADER => {
                for line in lines {
                    // A line without its LF was torn by an interrupted run.
                    if let Some(key) = line.strip_suffix('\n').and_then(parse_line) {
                        done.insert(key);
                    }
                }
                if !bytes.ends_with(b"\n") {
                    // Cut the torn line off, so that it can never be read as a whole one.
                    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                    file.set_len(keep as u64).map_err(|e| fail("write", e))?;
                }
            }
            Some(_) => {
                return Err(Failure::fatal(format!(
                    "{} is not a state file of mllp send (it does not start with {HEADER:?}); \
                     name a new file or one written by --resume",
                    path.display()
                )))
            }
        }
        if start {
            file.write_all(format!("{HEADER}\n").as_bytes())
                .map_err(|e| fail("write", e))?;
        }
        Ok(State {
            path: path.to_owned(),
            file,
            done,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether message `index` of `file`, with MSH-10 `id`, was acknowledged in an earlier run.
    pub fn contains(&self, file: &str, index: usize, id: &str) -> bool {
        self.done.contains(&(file.to_owned(), index, id.to_owned()))
    }

    /// Records that message `index` of `file`, with MSH-10 `id`, was acknowledged: one line,
    /// written with one system call.
    pub fn record(&mut self, file: &str, index: usize, id: &str) -> Result<(), Failure> {
        let line = format!("{index}\t{}\t{}\n", escape(id), escape(file));
        self.file.write_all(line.as_bytes()).map_err(|e| {
            Failure::fatal(format!(
                "cannot write the state file {}: {e}; stopped so that the next run does not \
                 send acknowledged messages again",
                self.path.display()
            ))
        })
    }

    /// Flushes the file to disk, best effort (at the end of a run).
    pub fn sync(&mut self) {
        let _ = self.file.sync_data();
    }
}

/// One state line (without its LF) as (file, index, MSH-10).
fn parse_line(line: &str) -> Option<(String, usize, String)> {
    let mut fields = line.splitn(3, '\t');
    let index = fields.next()?.parse().ok()?;
    let id = unescape(fields.next()?)?;
    let file = unescape(fields.next()?)?;
    Some((file, index, id))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\t' => out.push_str("%09"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "09" => '\t',
            "0D" => '\r',
            "0A" => '\n',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("mllp-resume-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn names_round_trip() {
        for s in ["", "a", "%", "a\tb%0A\r\nc", "ü"] {
            assert_eq!(unescape(&escape(s)).as_deref(), Some(s));
        }
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("%2"), None);
    }

    #[test]
    fn records_survive_a_reopen_and_a_torn_line_is_ignored() {
        let path = scratch("torn");
        let mut state = State::open(&path).unwrap();
        state.record("a\tb.hl7", 1, "X1").unwrap();
        state.record("-", 2, "X%2").unwrap();
        drop(state);
        // An interrupted run: half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"3\tX3\ta").unwrap();
        drop(f);
        let mut state = State::open(&path).unwrap();
        assert!(state.contains("a\tb.hl7", 1, "X1"));
        assert!(state.contains("-", 2, "X%2"));
        assert!(!state.contains("a", 3, "X3"));
        assert!(!state.contains("a\tb.hl7", 1, "OTHER"));
        state.record("a", 3, "X3").unwrap();
        drop(state);
        let state = State::open(&path).unwrap();
        assert!(state.contains("a", 3, "X3"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("mllp-send-state 1\n"), "{text:?}");
        assert!(text.ends_with("%252\t-\n3\tX3\ta\n"), "{text:?}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_torn_header_starts_over_and_another_file_is_refused() {
        let path = scratch("header");
        std::fs::write(&path, "mllp-send").unwrap();
        let mut state = State::open(&path).unwrap();
        state.record("f", 1, "A").unwrap();
        drop(state);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "mllp-send-state 1\n1\tA\tf\n"
        );
        std::fs::write(&path, "precious data\n").unwrap();
        assert!(State::open(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious data\n");
        std::fs::remove_file(&path).unwrap();
    }
}
