//! The identity of a generated message: its timestamp (MSH-7) and its control ID (MSH-10).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch now (0 if the clock is before 1970).
pub(super) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Appends `secs` (Unix time) as an HL7 timestamp in UTC, `YYYYMMDDHHMMSS+0000` (the form of
/// the MSH-7 this crate writes into acknowledgements).
///
/// ```
/// let mut out = Vec::new();
/// mllp::hl7::write_timestamp(86_400 + 3_661, &mut out);
/// assert_eq!(out, b"19700102010101+0000");
/// ```
pub fn write_timestamp(secs: u64, out: &mut Vec<u8>) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    let mut push = |v: u64, width: usize| {
        let mut buf = [b'0'; 4];
        let mut v = v;
        for i in (0..width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..width]);
    };
    push(y.clamp(0, 9999) as u64, 4);
    push(u64::from(m), 2);
    push(u64::from(d), 2);
    push(hh, 2);
    push(mm, 2);
    push(ss, 2);
    out.extend_from_slice(b"+0000");
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A message control ID produced by [`next_control_id`]: at most 20 ASCII characters, kept on
/// the stack.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlId {
    buf: [u8; 20],
    len: u8,
}

impl ControlId {
    /// The ID as a string.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and letters are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The ID as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Appends the ID to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl std::fmt::Debug for ControlId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ControlId({})", self.as_str())
    }
}

impl std::fmt::Display for ControlId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The process's start time in milliseconds since the Unix epoch, read once.
fn process_start_ms() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    })
}

/// A new message control ID, unique within the process and across restarts.
///
/// Exactly 20 characters (the MSH-10 limit of older HL7 versions), upper-case base 36: the
/// process start time in milliseconds (8 characters, enough until 2059), the process ID
/// (5 characters), then a per-process counter (7 characters, 78 billion IDs before it wraps).
/// Two processes share a prefix only if they have the same process ID and started in the same
/// millisecond.
pub fn next_control_id() -> ControlId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = ControlId {
        buf: [b'0'; 20],
        len: 20,
    };
    id.buf[..13].copy_from_slice(process_prefix());
    base36(n, &mut id.buf[13..]);
    id
}

/// The first 13 characters of every control ID: the process start time and the process ID,
/// read once (`std::process::id` is a system call, too slow to make for every ACK).
fn process_prefix() -> &'static [u8; 13] {
    static PREFIX: OnceLock<[u8; 13]> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let mut prefix = [b'0'; 13];
        base36(process_start_ms(), &mut prefix[..8]);
        base36(u64::from(std::process::id()), &mut prefix[8..]);
        prefix
    })
}

/// Writes the low digits of `v` in base 36 into `out`, right-aligned, zero-padded.
fn base36(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v % 36) as usize];
        v /= 36;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let cases: &[(u64, &str)] = &[
            (0, "19700101000000+0000"),
            (951_782_400, "20000229000000+0000"),
            (1_709_251_199, "20240229235959+0000"),
            (4_102_444_800, "21000101000000+0000"),
        ];
        for (secs, want) in cases {
            let mut out = Vec::new();
            write_timestamp(*secs, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), *want);
        }
    }

    #[test]
    fn control_ids_are_unique_and_short() {
        let a = next_control_id();
        let b = next_control_id();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 20);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(a.as_str()[..13], b.as_str()[..13]);
    }
}
