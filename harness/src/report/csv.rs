//! `samples.csv`: one row per phase, operation and second (as BenchBase
//! keeps its raw samples), for plotting or comparing elsewhere.

use super::Report;

/// The header row.
pub const HEADER: &str = "phase,op,second,ok,errors,p50_ms,p99_ms";

/// The per-second samples of every operation (and of each phase's total
/// as op `*`).
pub fn samples(report: &Report) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for p in &report.phases {
        let total = std::iter::once(("*", &p.timeline));
        let ops = p.ops.iter().map(|o| (o.name.as_str(), &o.timeline));
        for (op, timeline) in ops.chain(total) {
            for t in timeline {
                s.push_str(&format!(
                    "{},{},{},{},{},{:.3},{:.3}\n",
                    field(&p.name),
                    field(op),
                    t.t,
                    t.ops,
                    t.errors,
                    t.p50_ms,
                    t.p99_ms
                ));
            }
        }
    }
    s
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(field("read"), "read");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
