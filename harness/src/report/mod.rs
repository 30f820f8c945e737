//! Run reports: `report.json` (versioned, machine-readable), `report.md`
//! (summary with gate verdicts) and `report.html` (plots), written to
//! `reports/<timestamp>-<workload>/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
use crate::metrics::{Latency, buckets};
use crate::runner::{CheckResult, RunResult};
use crate::spec::{Vars, Workload};
use crate::target::TargetInfo;

mod html;

/// Version of the `report.json` schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Statistics of one operation (or of all operations of a phase).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpReport {
    /// Operation name (`*` for the phase total).
    pub name: String,
    /// Successful executions.
    pub ok: u64,
    /// Failed executions.
    pub errors: u64,
    /// Failures by SQLSTATE or category.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Retries after a retryable error.
    pub retries: u64,
    /// Rows affected by successful executions.
    pub rows: u64,
    /// Successful executions per second of measured time.
    pub throughput: f64,
    /// Fraction of executions that failed.
    pub error_rate: f64,
    /// Latency of successful executions, ms.
    pub latency_ms: Latency,
    /// Latency histogram: (bucket upper bound ms, count).
    pub histogram: Vec<(f64, u64)>,
}

/// One second of a phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tick {
    /// Second since the measured part began.
    pub t: usize,
    /// Successful operations finished in it.
    pub ops: u64,
    /// Failed operations finished in it.
    pub errors: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

/// One phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Phase name.
    pub name: String,
    /// Measured seconds.
    pub seconds: f64,
    /// Clients.
    pub concurrency: usize,
    /// Target rate.
    pub rate: Option<f64>,
    /// Per operation.
    pub ops: Vec<OpReport>,
    /// All operations together.
    pub total: OpReport,
    /// Per second.
    pub timeline: Vec<Tick>,
    /// Operations not run on this target, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Executions during warm-up (not in the statistics above).
    pub warmup: BTreeMap<String, crate::metrics::WarmupCounts>,
}

/// Side-by-side numbers against a baseline run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineRow {
    /// `phase.op`.
    pub op: String,
    /// Our throughput.
    pub throughput: f64,
    /// Baseline throughput.
    pub baseline_throughput: f64,
    /// ours / baseline.
    pub throughput_ratio: f64,
    /// Our p99, ms.
    pub p99_ms: f64,
    /// Baseline p99, ms.
    pub baseline_p99_ms: f64,
    /// ours / baseline.
    pub p99_ratio: f64,
}

/// The comparison with a baseline report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// Baseline target.
    pub target: TargetInfo,
    /// Where the baseline report is.
    pub report: String,
    /// Per operation.
    pub rows: Vec<BaselineRow>,
}

/// A whole run.
/// The verdict of one limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateResult {
    /// What is limited, e.g. `main.read p99_ms`.
    pub gate: String,
    /// The limit, e.g. `<= 20`.
    pub threshold: String,
    /// What was observed.
    pub observed: String,
    /// Whether the limit held.
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Schema version of this file.
    pub schema_version: u32,
    /// Workload name.
    pub workload: String,
    /// Workload version.
    pub workload_version: u32,
    /// Workload file.
    pub workload_file: String,
    /// Resolved variables.
    pub vars: BTreeMap<String, String>,
    /// `--scale`.
    pub scale: f64,
    /// Target.
    pub target: TargetInfo,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// End time (RFC 3339).
    pub finished_at: String,
    /// Seconds spent in setup and load.
    pub prepare_seconds: f64,
    /// Phases.
    pub phases: Vec<PhaseReport>,
    /// Checks.
    pub checks: Vec<CheckResult>,
    /// Checks skipped on this target.
    pub skipped_checks: Vec<(String, String)>,
    /// SLO gates.
    pub gates: Vec<GateResult>,
    /// Baseline comparison.
    pub baseline: Option<Baseline>,
    /// `pass` when every check and gate passed.
    pub verdict: String,
}

fn verdict_row(name: &str, expected: &str, observed: &str, passed: bool) -> String {
    let verdict = if passed { "pass" } else { "FAIL" };
    format!("| {name} | {expected} | {observed} | {verdict} |\n")
}

fn op_report(name: &str, s: &crate::metrics::OpStats, seconds: f64) -> OpReport {
    let errors = s.error_count();
    let attempts = s.ok + errors;
    OpReport {
        name: name.to_string(),
        ok: s.ok,
        errors,
        errors_by_code: s.errors.clone(),
        retries: s.retries,
        rows: s.rows,
        throughput: if seconds > 0.0 {
            s.ok as f64 / seconds
        } else {
            0.0
        },
        error_rate: if attempts > 0 {
            errors as f64 / attempts as f64
        } else {
            0.0
        },
        latency_ms: Latency::of(&s.latency),
        histogram: buckets(&s.latency),
    }
}

impl Report {
    /// Builds the report of a run.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        workload: &Workload,
        file: &str,
        vars: &Vars,
        scale: f64,
        target: TargetInfo,
        started_at: String,
        finished_at: String,
        result: &RunResult,
    ) -> Report {
        let phases = result
            .phases
            .iter()
            .map(|p| {
                let seconds = p.measured.as_secs_f64();
                let mut total = crate::metrics::OpStats::default();
                let ops = p
                    .stats
                    .ops
                    .iter()
                    .map(|(name, s)| {
                        total.merge(s);
                        op_report(name, s, seconds)
                    })
                    .collect();
                let timeline = p
                    .stats
                    .timeline
                    .iter()
                    .enumerate()
                    .map(|(t, sec)| {
                        let l = Latency::of(&sec.latency);
                        Tick {
                            t,
                            ops: sec.latency.len(),
                            errors: sec.errors,
                            p50_ms: l.p50,
                            p99_ms: l.p99,
                        }
                    })
                    .collect();
                PhaseReport {
                    name: p.name.clone(),
                    seconds,
                    concurrency: p.concurrency,
                    rate: p.rate,
                    ops,
                    total: op_report("*", &total, seconds),
                    timeline,
                    skipped: p.skipped.clone(),
                    warmup: p.stats.warmup.clone(),
                }
            })
            .collect();
        Report {
            schema_version: SCHEMA_VERSION,
            workload: workload.name.clone(),
            workload_version: workload.version,
            workload_file: file.to_string(),
            vars: vars.0.clone(),
            scale,
            target,
            started_at,
            finished_at,
            prepare_seconds: result.prepare_time.as_secs_f64(),
            phases,
            checks: result.checks.clone(),
            skipped_checks: result.skipped_checks.clone(),
            gates: Vec::new(),
            baseline: None,
            verdict: String::new(),
        }
    }

    /// Finds an operation (`phase.op`, or `op` when the name is unique,
    /// or `phase.*` / `*` for totals).
    pub fn op(&self, name: &str) -> Option<&OpReport> {
        if name == "*" {
            return self.phases.first().map(|p| &p.total);
        }
        if let Some((phase, op)) = name.split_once('.') {
            let p = self.phases.iter().find(|p| p.name == phase)?;
            return if op == "*" {
                Some(&p.total)
            } else {
                p.ops.iter().find(|o| o.name == op)
            };
        }
        let mut found = self
            .phases
            .iter()
            .flat_map(|p| p.ops.iter())
            .filter(|o| o.name == name);
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// Attaches a baseline comparison.
    pub fn set_baseline(&mut self, baseline: &Report, path: &str) {
        let mut rows = Vec::new();
        for p in &self.phases {
            for o in p.ops.iter().chain(std::iter::once(&p.total)) {
                let key = format!("{}.{}", p.name, o.name);
                if let Some(b) = baseline.op(&key) {
                    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
                    rows.push(BaselineRow {
                        op: key,
                        throughput: o.throughput,
                        baseline_throughput: b.throughput,
                        throughput_ratio: ratio(o.throughput, b.throughput),
                        p99_ms: o.latency_ms.p99,
                        baseline_p99_ms: b.latency_ms.p99,
                        p99_ratio: ratio(o.latency_ms.p99, b.latency_ms.p99),
                    });
                }
            }
        }
        self.baseline = Some(Baseline {
            target: baseline.target.clone(),
            report: path.to_string(),
            rows,
        });
    }

    /// Whether all checks and gates passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed) && self.gates.iter().all(|g| g.passed)
    }

    /// Reads a `report.json` (or a report directory).
    pub fn read(path: &Path) -> Result<Report, HarnessError> {
        let file = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|e| HarnessError::Report {
            path: file.display().to_string(),
            reason: e.to_string(),
        })?;
        let report: Report = serde_json::from_str(&text).map_err(|e| HarnessError::Report {
            path: file.display().to_string(),
            reason: e.to_string(),
        })?;
        if report.schema_version != SCHEMA_VERSION {
            return Err(HarnessError::Report {
                path: file.display().to_string(),
                reason: format!(
                    "schema version {} is not {SCHEMA_VERSION}",
                    report.schema_version
                ),
            });
        }
        Ok(report)
    }

    /// Writes `report.json`, `report.md` and `report.html` into a new
    /// directory under `out`; returns the directory.
    pub fn write(&self, out: &Path, suffix: &str) -> Result<PathBuf, HarnessError> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let dir = out.join(format!("{stamp}-{}{suffix}", self.workload));
        let io = |p: &Path, e: std::io::Error| HarnessError::Report {
            path: p.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| HarnessError::Report {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let files = [
            ("report.json", json),
            ("report.md", self.markdown()),
            ("report.html", html::render(self)),
        ];
        for (name, body) in files {
            let p = dir.join(name);
            std::fs::write(&p, body).map_err(|e| io(&p, e))?;
        }
        Ok(dir)
    }

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
            let errors: Vec<String> = p
                .ops
                .iter()
                .flat_map(|o| {
                    o.errors_by_code
                        .iter()
                        .map(move |(c, n)| format!("{}: {c} x{n}", o.name))
                })
                .collect();
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
