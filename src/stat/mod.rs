//! Counter tables: one `const` table per role ([`ListenerStats::TABLE`](crate::ListenerStats::TABLE),
//! [`OutboxStats::TABLE`](crate::OutboxStats::TABLE), [`SenderStats::TABLE`](crate::SenderStats::TABLE),
//! [`StoreStats::TABLE`](crate::StoreStats::TABLE)) that names every counter of its stats struct once:
//! its field name, its fixed number in the C ABI (`mllp_*_get_stat`), its Prometheus metric
//! and label, its help text, and how to read it. The C library, the `mllp` command's
//! `/metrics` page and the documentation all walk these tables, so a new counter added to a
//! table shows in all of them, and one left out of a table is caught by the tests that compare
//! the tables with the structs.
//!
//! Durations are kept in a [`Histogram`]: fixed buckets of atomic counters, observed with three
//! atomic additions (no lock, no allocation), read as a [`HistogramSnapshot`].

mod histogram;

pub use histogram::{Histogram, HistogramSnapshot, DURATION_BUCKETS};

/// Whether a value only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// Only grows, from the start of the process (or of the handle): a Prometheus `counter`.
    Counter,
    /// A level now (connections open, messages pending): a Prometheus `gauge`.
    Gauge,
}

/// One counter of a stats struct `S`: a row of a role's table.
#[derive(Debug, Clone, Copy)]
pub struct Stat<S> {
    /// The field of `S` (`"acks_aa"`); unique in its table.
    pub field: &'static str,
    /// Its number for the C function `mllp_*_get_stat` (the C constant is
    /// `MLLP_<ROLE>_STAT_<FIELD>`, upper case); never reused, never changed.
    pub id: u32,
    /// Counter or gauge.
    pub kind: StatKind,
    /// The Prometheus metric it is a sample of (`"mllp_acks_sent_total"`): base units,
    /// `_total` for counters. Several rows may share a metric with different labels.
    pub metric: &'static str,
    /// Its label, as `name="value"` (`code="AA"`), or empty; never patient data.
    pub label: &'static str,
    /// One line of help, the same for every row of a metric.
    pub help: &'static str,
    /// Reads the value from a snapshot.
    pub get: fn(&S) -> u64,
    /// What one unit of the value is in the metric's unit (`0.001` for a value in
    /// milliseconds exposed in seconds; `1.0` mostly).
    pub scale: f64,
}

impl<S> Stat<S> {
    /// The row numbered `id` in `table`, when there is one.
    pub fn by_id(table: &'static [Stat<S>], id: u32) -> Option<&'static Stat<S>> {
        table.iter().find(|s| s.id == id)
    }
}

/// Declares a table row tersely (inside this crate).
macro_rules! stat {
    ($ty:ty, $field:ident, $id:expr, $kind:ident, $metric:expr, $label:expr, $help:expr) => {
        $crate::stat::Stat::<$ty> {
            field: stringify!($field),
            id: $id,
            kind: $crate::stat::StatKind::$kind,
            metric: $metric,
            label: $label,
            help: $help,
            get: |s: &$ty| s.$field,
            scale: 1.0,
        }
    };
}
pub(crate) use stat;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ListenerStats, OutboxStats, SenderStats, StoreStats};
    use std::collections::{HashMap, HashSet};

    /// Every table: ids and fields unique, one help per metric, counters named `_total`,
    /// gauges not, labels in the `name="value"` form.
    fn check<S>(table: &[Stat<S>], fields_in_debug: &str) {
        let mut ids = HashSet::new();
        let mut fields = HashSet::new();
        let mut help = HashMap::new();
        for s in table {
            assert!(ids.insert(s.id), "id {} twice", s.id);
            assert!(fields.insert(s.field), "{} twice", s.field);
            assert_eq!(
                *help.entry(s.metric).or_insert(s.help),
                s.help,
                "{}",
                s.metric
            );
            assert!(s.metric.starts_with("mllp_"), "{}", s.metric);
            assert_eq!(
                s.metric.ends_with("_total"),
                s.kind == StatKind::Counter,
                "{}",
                s.metric
            );
            assert!(s.label.is_empty() || s.label.ends_with('"') && s.label.contains("=\""));
            // A row is a field, or a field in a unit (`oldest_pending_age_ms`).
            assert!(
                fields_in_debug.contains(&format!(" {}: ", s.field))
                    || fields_in_debug.contains(&format!(" {}: ", s.field.trim_end_matches("_ms"))),
                "{} is no field",
                s.field
            );
        }
        // Every integer field of the struct is in the table: its Debug output names them all.
        let body = fields_in_debug
            .split_once(" { ")
            .map_or("", |(_, b)| b.trim_end_matches(" }"));
        for part in body.split(", ") {
            let (field, value) = part.split_once(": ").unwrap_or((part, ""));
            if value.parse::<u64>().is_ok() {
                assert!(
                    fields.contains(field),
                    "the field {field} is in no table row"
                );
            }
        }
    }

    #[test]
    fn every_counter_is_in_its_table_once() {
        check(
            ListenerStats::TABLE,
            &format!("{:?}", ListenerStats::default()),
        );
        check(OutboxStats::TABLE, &format!("{:?}", OutboxStats::default()));
        check(SenderStats::TABLE, &format!("{:?}", SenderStats::default()));
        check(StoreStats::TABLE, &format!("{:?}", StoreStats::default()));
    }
}
