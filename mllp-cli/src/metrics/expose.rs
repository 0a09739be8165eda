//! The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` once per
//! metric, then its samples. Written by hand: the values come from the core's counter tables
//! (one row per sample, grouped by metric), so a client library's registry would only be a
//! second copy of those tables.

use std::fmt::Write;

use mllp::{HistogramSnapshot, Stat, StatKind, DURATION_BUCKETS};

/// A page of metrics being written.
#[derive(Debug, Default)]
pub struct Page {
    text: String,
}

impl Page {
    /// The text written so far.
    pub fn into_text(self) -> String {
        self.text
    }

    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// Every row of `table` read from `stats`, one `HELP`/`TYPE` per metric (rows of one
    /// metric are adjacent or not: they are gathered in the order of the metric's first row).
    pub fn table<S>(&mut self, table: &[Stat<S>], stats: &S) {
        let mut done: Vec<&str> = Vec::new();
        for first in table {
            if done.contains(&first.metric) {
                continue;
            }
            done.push(first.metric);
            let kind = match first.kind {
                StatKind::Counter => "counter",
                StatKind::Gauge => "gauge",
            };
            self.head(first.metric, first.help, kind);
            for row in table.iter().filter(|r| r.metric == first.metric) {
                let value = (row.get)(stats);
                self.sample(row.metric, row.label, value, row.scale);
            }
        }
    }

    fn sample(&mut self, name: &str, label: &str, value: u64, scale: f64) {
        let braces = if label.is_empty() {
            String::new()
        } else {
            format!("{{{label}}}")
        };
        if scale == 1.0 {
            let _ = writeln!(self.text, "{name}{braces} {value}");
        } else {
            let _ = writeln!(self.text, "{name}{braces} {}", value as f64 * scale);
        }
    }

    /// One gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.head(name, help, "gauge");
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// One gauge with one sample labelled `label` (`version="0.1.0"`).
    pub fn info(&mut self, name: &str, help: &str, label: &str) {
        self.head(name, help, "gauge");
        let _ = writeln!(self.text, "{name}{{{label}}} 1");
    }

    /// One counter, with a sample per `(label, value)` (an empty label for none).
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(&str, u64)]) {
        self.head(name, help, "counter");
        for (label, value) in samples {
            self.sample(name, label, *value, 1.0);
        }
    }

    /// A histogram of durations in seconds, in the buckets of [`DURATION_BUCKETS`].
    pub fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.head(name, help, "histogram");
        for (bound, n) in DURATION_BUCKETS.iter().zip(h.cumulative) {
            let _ = writeln!(self.text, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(self.text, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
        let _ = writeln!(self.text, "{name}_sum {}", h.sum_seconds);
        let _ = writeln!(self.text, "{name}_count {}", h.count());
    }
}

/// Help text as the format wants it: backslashes and line feeds escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mllp::ListenerStats;

    #[test]
    fn labelled_rows_share_one_help_and_type() {
        let mut page = Page::default();
        let stats = ListenerStats::default();
        page.table(ListenerStats::TABLE, &stats);
        let text = page.into_text();
        assert_eq!(
            text.matches("# TYPE mllp_acks_sent_total counter").count(),
            1
        );
        assert_eq!(
            text.matches("# TYPE mllp_connections_total counter")
                .count(),
            1
        );
        assert!(text.contains("mllp_acks_sent_total{code=\"AA\"} 0\n"));
        assert!(text.contains("mllp_connections_total{event=\"closed\"} 0\n"));
        assert!(text.contains("# TYPE mllp_connections_open gauge\nmllp_connections_open 0\n"));
    }

    #[test]
    fn histograms_have_buckets_sum_and_count() {
        let h = mllp::Histogram::new();
        h.observe(std::time::Duration::from_millis(3));
        let mut page = Page::default();
        page.histogram("mllp_store_duration_seconds", "How long.", &h.snapshot());
        let text = page.into_text();
        assert!(text.contains("mllp_store_duration_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("mllp_store_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("mllp_store_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("mllp_store_duration_seconds_count 1\n"));
        assert!(text.contains("mllp_store_duration_seconds_sum 0.003\n"));
    }
}
