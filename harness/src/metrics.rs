//! Latency histograms, error counts and per-second timelines of a phase.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest recordable latency: one hour in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, sigfig).expect("constant histogram bounds are valid")
}

/// A small histogram for one operation's second: one significant digit
/// (about 6% resolution), grown only as far as the latencies recorded.
fn coarse_histogram() -> Histogram<u64> {
    Histogram::new(1).expect("one significant digit is valid")
}

/// What one client recorded for one operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latency of successful executions, microseconds.
    pub latency: Histogram<u64>,
    /// Successful executions.
    pub ok: u64,
    /// Failed executions by SQLSTATE (or a harness category).
    pub errors: BTreeMap<String, u64>,
    /// Retries (attempts after the first).
    pub retries: u64,
    /// Rows affected by successful executions.
    pub rows: u64,
    /// This operation by second since the measured part began.
    pub timeline: Vec<Second>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            latency: histogram(3),
            ok: 0,
            errors: BTreeMap::new(),
            retries: 0,
            rows: 0,
            timeline: Vec::new(),
        }
    }
}

impl OpStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &OpStats) {
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.retries += other.retries;
        self.rows += other.rows;
        merge_timeline(&mut self.timeline, &other.timeline);
    }

    /// Total failed executions.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One second of a phase.
#[derive(Debug, Clone)]
pub struct Second {
    /// Latencies of operations that finished in this second.
    pub latency: Histogram<u64>,
    /// Failed operations that finished in this second.
    pub errors: u64,
}

impl Default for Second {
    fn default() -> Self {
        Second {
            latency: histogram(2),
            errors: 0,
        }
    }
}

impl Second {
    fn coarse() -> Second {
        Second {
            latency: coarse_histogram(),
            errors: 0,
        }
    }
}

fn second_of(timeline: &mut Vec<Second>, second: usize, new: fn() -> Second) -> &mut Second {
    if timeline.len() <= second {
        timeline.resize_with(second + 1, new);
    }
    &mut timeline[second]
}

fn merge_timeline(mine: &mut Vec<Second>, theirs: &[Second]) {
    if mine.len() < theirs.len() {
        mine.resize_with(theirs.len(), Second::coarse);
    }
    for (m, t) in mine.iter_mut().zip(theirs) {
        let _ = m.latency.add(&t.latency);
        m.errors += t.errors;
    }
}

/// Counts of operations run during warm-up (not measured, but their effects
/// are in the database, so checks count them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmupCounts {
    /// Successful executions.
    pub ok: u64,
    /// Rows affected.
    pub rows: u64,
    /// Failed executions.
    pub errors: u64,
}

/// Everything one client recorded in a phase.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    /// By operation name.
    pub ops: BTreeMap<String, OpStats>,
    /// Warm-up executions by operation name.
    pub warmup: BTreeMap<String, WarmupCounts>,
    /// By second since the measured part began.
    pub timeline: Vec<Second>,
}

impl ClientStats {
    /// Records a success.
    pub fn record_ok(
        &mut self,
        op: &str,
        latency: Duration,
        rows: u64,
        retries: u64,
        second: usize,
    ) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        let s = self.ops.entry(op.to_string()).or_default();
        let _ = s.latency.record(micros);
        s.ok += 1;
        s.rows += rows;
        s.retries += retries;
        let _ = second_of(&mut s.timeline, second, Second::coarse)
            .latency
            .record(micros);
        let _ = second_of(&mut self.timeline, second, Second::default)
            .latency
            .record(micros);
    }

    /// Records an execution during warm-up.
    pub fn record_warmup(&mut self, op: &str, rows: Option<u64>) {
        let w = self.warmup.entry(op.to_string()).or_default();
        match rows {
            Some(r) => {
                w.ok += 1;
                w.rows += r;
            }
            None => w.errors += 1,
        }
    }

    /// Records a failure.
    pub fn record_err(&mut self, op: &str, code: &str, retries: u64, second: usize) {
        let s = self.ops.entry(op.to_string()).or_default();
        *s.errors.entry(code.to_string()).or_default() += 1;
        s.retries += retries;
        second_of(&mut s.timeline, second, Second::coarse).errors += 1;
        second_of(&mut self.timeline, second, Second::default).errors += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ClientStats) {
        for (name, s) in &other.ops {
            self.ops.entry(name.clone()).or_default().merge(s);
        }
        for (name, w) in &other.warmup {
            let mine = self.warmup.entry(name.clone()).or_default();
            mine.ok += w.ok;
            mine.rows += w.rows;
            mine.errors += w.errors;
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline
                .resize_with(other.timeline.len(), Second::default);
        }
        merge_timeline(&mut self.timeline, &other.timeline);
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Summary of a microsecond histogram.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// The latency at percentiles from 0 to 99.999 (spaced evenly on a log
/// scale of `1 / (1 - p)`, as HdrHistogram plots them) and at the maximum:
/// (percentile, ms).
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<(f64, f64)> = (0..=20)
        .map(|k| {
            let q = 1.0 - 10f64.powf(-f64::from(k) / 4.0);
            (q * 100.0, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect();
    out.push((100.0, h.max() as f64 / 1000.0));
    out
}

/// Log-spaced latency buckets (upper bound in ms, count) for plots.
pub fn buckets(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    if h.is_empty() {
        return out;
    }
    let mut upper = 10u64;
    let mut prev = 0u64;
    while prev <= h.max() {
        let count = h.count_between(prev + 1, upper);
        out.push((upper as f64 / 1000.0, count));
        prev = upper;
        upper = (upper as f64 * 1.5).ceil() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_summarize() {
        let mut a = ClientStats::default();
        let mut b = ClientStats::default();
        for i in 1..=100u64 {
            a.record_ok("read", Duration::from_micros(i * 1000), 1, 0, 0);
        }
        b.record_ok("read", Duration::from_micros(500_000), 1, 2, 2);
        b.record_err("read", "40001", 1, 2);
        a.merge(&b);
        let s = &a.ops["read"];
        assert_eq!(s.ok, 101);
        assert_eq!(s.errors["40001"], 1);
        assert_eq!(s.retries, 3);
        let l = Latency::of(&s.latency);
        assert!((l.p50 - 51.0).abs() < 1.0, "{l:?}");
        assert!(l.max >= 499.0);
        assert_eq!(a.timeline.len(), 3);
        assert_eq!(a.timeline[2].errors, 1);
        let total: u64 = buckets(&s.latency).iter().map(|(_, c)| c).sum();
        assert_eq!(total, 101);
        // The operation keeps its own seconds.
        assert_eq!(s.timeline.len(), 3);
        assert_eq!(s.timeline[0].latency.len(), 100);
        assert_eq!(s.timeline[2].errors, 1);
        let sp = spectrum(&s.latency);
        assert_eq!(sp.first().map(|p| p.0), Some(0.0));
        assert_eq!(sp.last().map(|p| p.0), Some(100.0));
        assert!(sp.windows(2).all(|w| w[0].1 <= w[1].1), "{sp:?}");
        assert!((sp[8].0 - 99.0).abs() < 1e-9 && sp[8].1 >= 99.0, "{sp:?}");
    }
}
