//! The conformance report of `mllp check`: one row per check, each with a verdict and the
//! evidence, printed as a table for a person or as JSON for the record of a go-live.

use std::fmt::Write as _;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The peer behaves as MLLP and HL7 expect.
    Pass,
    /// It works, but in a way that costs something or that some partners will not accept.
    Warn,
    /// It breaks the protocol or can lose or duplicate messages.
    Fail,
    /// Not run: it does not apply, or the peer never did what it needs.
    Skip,
}

impl Verdict {
    /// The word in the table and in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was checked, a short stable name (`ack-per-message`).
    pub id: &'static str,
    /// What was checked, for a person.
    pub title: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// What was seen.
    pub evidence: String,
}

/// A whole report: what was checked and the rows.
#[derive(Debug)]
pub struct Report {
    /// `listener` or `sender`.
    pub mode: &'static str,
    /// The address checked (listener) or listened on (sender).
    pub target: String,
    /// The rows, in the order they were checked.
    pub rows: Vec<Row>,
}

impl Report {
    /// An empty report.
    pub fn new(mode: &'static str, target: String) -> Report {
        Report {
            mode,
            target,
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn add(
        &mut self,
        id: &'static str,
        title: &'static str,
        verdict: Verdict,
        evidence: impl Into<String>,
    ) {
        self.rows.push(Row {
            id,
            title,
            verdict,
            evidence: evidence.into(),
        });
    }

    /// How many rows have `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == verdict).count()
    }

    /// The exit code: 1 when a row failed, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.count(Verdict::Fail) > 0)
    }

    /// The report as a table: check, verdict, evidence (wrapped under itself); with
    /// `problems_only` (`-q`), only the rows that warned or failed.
    pub fn table(&self, problems_only: bool) -> String {
        const EVIDENCE_WIDTH: usize = 72;
        let width = self
            .rows
            .iter()
            .map(|r| r.title.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!("mllp check {} {}\n\n", self.mode, self.target);
        let _ = writeln!(out, "{:width$}  VERDICT  EVIDENCE", "CHECK");
        let shown = self
            .rows
            .iter()
            .filter(|r| !problems_only || matches!(r.verdict, Verdict::Warn | Verdict::Fail));
        for row in shown {
            let lines = wrap(&row.evidence, EVIDENCE_WIDTH);
            let _ = writeln!(
                out,
                "{:width$}  {:<7}  {}",
                row.title,
                row.verdict.as_str(),
                lines.first().map_or("", String::as_str)
            );
            for line in lines.iter().skip(1) {
                let _ = writeln!(out, "{:width$}  {:<7}  {line}", "", "");
            }
        }
        let _ = write!(
            out,
            "\n{} passed, {} warned, {} failed, {} skipped",
            self.count(Verdict::Pass),
            self.count(Verdict::Warn),
            self.count(Verdict::Fail),
            self.count(Verdict::Skip)
        );
        out
    }

    /// The report as one line of JSON.
    pub fn json(&self) -> String {
        let mut stamp = Vec::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        mllp::hl7::write_timestamp(now, &mut stamp);
        let mut out = format!(
            "{{\"tool\":{},\"checked_at\":{},\"mode\":{},\"target\":{},\"passed\":{},\"warned\":{},\"failed\":{},\
             \"skipped\":{},\"rows\":[",
            quote(concat!("mllp ", env!("CARGO_PKG_VERSION"))),
            quote(&String::from_utf8_lossy(&stamp)),
            quote(self.mode),
            quote(&self.target),
            self.count(Verdict::Pass),
            self.count(Verdict::Warn),
            self.count(Verdict::Fail),
            self.count(Verdict::Skip)
        );
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"check\":{},\"title\":{},\"verdict\":{},\"evidence\":{}}}",
                quote(row.id),
                quote(row.title),
                quote(row.verdict.as_str()),
                quote(&row.evidence)
            );
        }
        out.push_str("]}");
        out
    }
}

/// `text` as a JSON string.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` cut into lines of at most `width` characters at spaces (a longer word stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// Bytes as text for evidence: printable ASCII as it is, the rest as `<0b>`; at most `max`
/// bytes shown.
pub fn shown(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("<CR>"),
            b'\n' => out.push_str("<LF>"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "<{b:02x}>");
            }
        }
    }
    if bytes.len() > max {
        let _ = write!(out, "... ({} bytes)", bytes.len());
    }
    out
}

/// A duration for evidence: `850 ms`, `2.3 s`.
pub fn secs(d: std::time::Duration) -> String {
    if d < std::time::Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_table() {
        let mut r = Report::new("listener", "127.0.0.1:1".into());
        r.add("a", "first", Verdict::Pass, "ok \"quoted\"\n");
        r.add("b", "second check", Verdict::Fail, "word ".repeat(30));
        assert_eq!(r.exit_code(), 1);
        let json = r.json();
        assert!(json.contains(r#""evidence":"ok \"quoted\"\n""#), "{json}");
        assert!(json.contains(r#""failed":1"#), "{json}");
        assert!(!r.table(true).contains("first"));
        let table = r.table(false);
        assert!(table.contains("second check  fail"), "{table}");
        assert!(table.lines().all(|l| l.chars().count() < 100), "{table}");
        assert!(table.ends_with("1 passed, 0 warned, 1 failed, 0 skipped"));
        assert_eq!(quote("\u{1}é"), "\"\\u0001é\"");
        assert_eq!(shown(b"\x0bMSH\r", 10), "<0b>MSH<CR>");
    }
}
