//! `harness compare`: the change between two reports, operation by
//! operation.

use crate::report::Report;

/// One operation's change from `a` to `b`.
#[derive(Debug, Clone)]
pub struct Delta {
    /// `phase.op`.
    pub op: String,
    /// Throughput in `a` and `b`.
    pub throughput: (f64, f64),
    /// p99 in `a` and `b`.
    pub p99: (f64, f64),
    /// Whether `b` is worse than `a` by more than the threshold.
    pub regression: bool,
}

/// Compares every operation present in both reports.
pub fn compare(a: &Report, b: &Report, threshold: f64) -> Vec<Delta> {
    let mut out = Vec::new();
    for p in &a.phases {
        for o in p.ops.iter().chain(std::iter::once(&p.total)) {
            let key = format!("{}.{}", p.name, o.name);
            let Some(ob) = b.op(&key) else { continue };
            let slower = ob.throughput < o.throughput * (1.0 - threshold);
            let later = ob.latency_ms.p99 > o.latency_ms.p99 * (1.0 + threshold);
            out.push(Delta {
                op: key,
                throughput: (o.throughput, ob.throughput),
                p99: (o.latency_ms.p99, ob.latency_ms.p99),
                regression: slower || later,
            });
        }
    }
    out
}

/// The comparison as a table.
pub fn render(a: &str, b: &str, deltas: &[Delta]) -> String {
    let pct = |x: f64, y: f64| if x > 0.0 { (y - x) / x * 100.0 } else { 0.0 };
    let mut s = format!("A: {a}\nB: {b}\n\n");
    s.push_str(&format!(
        "{:<28} {:>12} {:>12} {:>8} {:>10} {:>10} {:>8}  verdict\n",
        "op", "A ops/s", "B ops/s", "Δ%", "A p99 ms", "B p99 ms", "Δ%"
    ));
    for d in deltas {
        s.push_str(&format!(
            "{:<28} {:>12.1} {:>12.1} {:>+8.1} {:>10.2} {:>10.2} {:>+8.1}  {}\n",
            d.op,
            d.throughput.0,
            d.throughput.1,
            pct(d.throughput.0, d.throughput.1),
            d.p99.0,
            d.p99.1,
            pct(d.p99.0, d.p99.1),
            if d.regression { "REGRESSION" } else { "ok" }
        ));
    }
    s
}
