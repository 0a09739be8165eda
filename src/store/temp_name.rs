//! Temporary file names: whose they are, and whether their writer is gone.
//!
//! A message is written under `.<final name>~<pid>~<tag>~<host>.tmp` before it is published,
//! so stores sharing a directory (in several processes, or on several hosts over a shared
//! volume) can tell their own temporary files from those of a writer that crashed.

use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::file::{safe_char, MAX_ID_CHARS};

/// A temporary file whose owner cannot be checked (another host, or an unknown naming) is
/// removed on open only when it has not been modified for this long.
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// Separates the final name from the owner in a temporary name; never in a final name.
const OWNER_SEP: char = '~';

/// Who this process is, as written into temporary names.
pub(super) struct Owner {
    pub(super) pid: u32,
    /// Random per process: tells this process from an earlier one with the same pid.
    pub(super) tag: String,
    pub(super) host: String,
}

pub(super) fn owner() -> &'static Owner {
    static OWNER: OnceLock<Owner> = OnceLock::new();
    OWNER.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        if let Ok(t) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        Owner {
            pid: std::process::id(),
            tag: format!("{:08x}", h.finish() as u32),
            host: host_name(),
        }
    })
}

/// This host's name, made safe for a file name, or `localhost`.
fn host_name() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .bytes()
        .take(MAX_ID_CHARS)
        .map(|b| match b {
            b'.' | OWNER_SEP_BYTE => '_',
            b => safe_char(b),
        })
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

const OWNER_SEP_BYTE: u8 = OWNER_SEP as u8;

/// A parsed temporary name: `.<final>~<pid>~<tag>~<host>.tmp`, or the older `.<final>.tmp`
/// (no owner).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TempName<'a> {
    owner: Option<(u32, &'a str, &'a str)>,
}

impl<'a> TempName<'a> {
    /// The temporary name for `final_name` in this process.
    pub(super) fn ours(final_name: &str) -> String {
        let o = owner();
        format!(
            ".{final_name}{OWNER_SEP}{}{OWNER_SEP}{}{OWNER_SEP}{}.tmp",
            o.pid, o.tag, o.host
        )
    }

    pub(super) fn parse(name: &'a str) -> Option<TempName<'a>> {
        let stem = name.strip_prefix('.')?.strip_suffix(".tmp")?;
        let Some((_, owner)) = stem.split_once(OWNER_SEP) else {
            return Some(TempName { owner: None });
        };
        let mut parts = owner.splitn(3, OWNER_SEP);
        let owner = match (parts.next(), parts.next(), parts.next()) {
            (Some(pid), Some(tag), Some(host)) => pid.parse().ok().map(|pid| (pid, tag, host)),
            _ => None,
        };
        Some(TempName { owner })
    }

    /// Whether the writer of this file is certainly gone (or the file is stale), so that the
    /// file can be removed. `modified` is asked only when the owner cannot be checked.
    pub(super) fn is_abandoned(&self, modified: impl FnOnce() -> Option<SystemTime>) -> bool {
        let me = owner();
        if let Some((pid, tag, host)) = self.owner {
            if host == me.host {
                if pid == me.pid {
                    // This process, or an earlier one that had the same pid.
                    return tag != me.tag;
                }
                if let Some(alive) = process_exists(pid) {
                    return !alive;
                }
            }
        }
        modified()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= STALE_AFTER)
    }
}

/// Whether a process with this id exists on this host, when that can be told.
fn process_exists(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(Path::new("/proc").join(pid.to_string()).exists())
    } else {
        None
    }
}
