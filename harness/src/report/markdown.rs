//! `report.md`: the summary as Markdown (also printed at the end of a run).

use super::Report;

fn verdict_row(name: &str, expected: &str, observed: &str, passed: bool) -> String {
    let verdict = if passed { "pass" } else { "FAIL" };
    format!("| {name} | {expected} | {observed} | {verdict} |\n")
}

impl Report {
    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "# {} on {} ({})\n\n",
            self.workload, self.target.kind, self.verdict
        ));
        s.push_str(&format!(
            "- target: {:?}, {} node(s), server {}\n- started {}, finished {}; setup+load {:.1} s; scale {}\n\n",
            self.target.flavor,
            self.target.nodes,
            self.target.server_version,
            self.started_at,
            self.finished_at,
            self.prepare_seconds,
            self.scale
        ));
        for p in &self.phases {
            s.push_str(&format!(
                "## Phase {} ({:.1} s, {} clients{})\n\n",
                p.name,
                p.seconds,
                p.concurrency,
                p.rate
                    .map(|r| format!(", target {r} ops/s"))
                    .unwrap_or_default()
            ));
            s.push_str("| op | ok | errors | ops/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | retries |\n");
            s.push_str("|----|---:|-------:|------:|-------:|-------:|-------:|---------:|-------:|--------:|\n");
            for o in p.ops.iter().chain(std::iter::once(&p.total)) {
                let l = &o.latency_ms;
                s.push_str(&format!(
                    "| {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |\n",
                    o.name,
                    o.ok,
                    o.errors,
                    o.throughput,
                    l.p50,
                    l.p95,
                    l.p99,
                    l.p999,
                    l.max,
                    o.retries
                ));
            }
            let errors = p.error_summary();
            if !errors.is_empty() {
                s.push_str(&format!("\nErrors by SQLSTATE: {}\n", errors.join(", ")));
            }
            for (op, why) in &p.skipped {
                s.push_str(&format!("\nSkipped `{op}`: {why}\n"));
            }
            s.push('\n');
        }
        if !self.checks.is_empty() || !self.skipped_checks.is_empty() {
            s.push_str(
                "## Checks\n\n| check | expected | observed | result |\n|---|---|---|---|\n",
            );
            for c in &self.checks {
                s.push_str(&verdict_row(&c.name, &c.expected, &c.observed, c.passed));
            }
            for (name, why) in &self.skipped_checks {
                s.push_str(&format!("| {name} | | | skipped: {why} |\n"));
            }
            s.push('\n');
        }
        if !self.gates.is_empty() {
            s.push_str(
                "## SLO gates\n\n| gate | threshold | observed | result |\n|---|---|---|---|\n",
            );
            for g in &self.gates {
                s.push_str(&verdict_row(&g.gate, &g.threshold, &g.observed, g.passed));
            }
            s.push('\n');
        }
        if let Some(b) = &self.baseline {
            s.push_str(&format!(
                "## Against {:?} ({}, {})\n\n| op | ops/s | baseline ops/s | ratio | p99 ms | baseline p99 ms | ratio |\n|---|---:|---:|---:|---:|---:|---:|\n",
                b.target.flavor, b.target.server_version, b.report
            ));
            for r in &b.rows {
                s.push_str(&format!(
                    "| {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                    r.op,
                    r.throughput,
                    r.baseline_throughput,
                    r.throughput_ratio,
                    r.p99_ms,
                    r.baseline_p99_ms,
                    r.p99_ratio
                ));
            }
        }
        s
    }
}
