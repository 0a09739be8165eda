//! The human-readable report.

use super::*;

/// Writes a human-readable report: the main figure, the baseline and each side alone, with
/// their ratios to the baseline (and this crate's sender's to the checked raw sender's).
pub fn print(report: &BenchReport, out: &mut dyn Write) -> io::Result<()> {
    let line = |r: &BenchReport, out: &mut dyn Write| {
        let mut ratio = match r.ratio() {
            Some(x) => format!("{x:>5.2}×"),
            None => "     -".into(),
        };
        if let Some(x) = r.floor_ratio() {
            ratio.push_str(&format!("  ({x:.2}× raw-checked)"));
        }
        writeln!(
            out,
            "{:<33} {:>8} msgs {:>9.0} msg/s {:>8.1} MB/s  p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs  {ratio}",
            r.label,
            r.messages,
            r.msgs_per_sec(),
            r.mb_per_sec(),
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.max.as_secs_f64() * 1e6,
        )
    };
    let line = |r: &BenchReport, out: &mut dyn Write| -> io::Result<()> {
        line(r, out)?;
        match &r.syscalls {
            Some(calls) => writeln!(out, "{:<33} {calls}", ""),
            None => Ok(()),
        }
    };
    if let Some(base) = &report.baseline {
        let mut base = (**base).clone();
        base.label.push_str(" (baseline)");
        line(&base, out)?;
    }
    line(report, out)?;
    for side in &report.sides {
        line(side, out)?;
    }
    Ok(())
}
