//! The run report as plain data ([`Report`]), built once from a run's
//! result; SLO gates read only this model. Writers beside it turn it into
//! files in `reports/<timestamp>-<workload>/` ([`write`]): `report.json`
//! (versioned, machine-readable), `report.md` ([`markdown`]),
//! `report.html` (tables and plotters charts, [`html`]), `samples.csv`
//! (per-second samples, [`csv`]) and copies of the resolved workload and
//! SLO file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
use crate::metrics::{Latency, buckets, spectrum};
use crate::runner::{CheckResult, RunResult};
use crate::spec::{Vars, Workload};
use crate::target::TargetInfo;

mod charts;
pub mod csv;
pub mod html;
pub mod markdown;
pub mod write;

pub use write::Attachments;

/// Escapes text for HTML and SVG.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Version of the `report.json` schema (2: per-operation timelines and
/// percentile spectra, the baseline's phases).
pub const SCHEMA_VERSION: u32 = 2;

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
    /// Latency by percentile: (percentile 0..100, ms).
    pub spectrum: Vec<(f64, f64)>,
    /// This operation second by second.
    pub timeline: Vec<Tick>,
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

impl PhaseReport {
    /// An operation by name, or the phase total for `*`.
    pub fn op(&self, name: &str) -> Option<&OpReport> {
        if name == "*" {
            Some(&self.total)
        } else {
            self.ops.iter().find(|o| o.name == name)
        }
    }

    /// `op: SQLSTATE ×count` for every failure of the phase.
    pub fn error_summary(&self) -> Vec<String> {
        self.ops
            .iter()
            .flat_map(|o| {
                o.errors_by_code
                    .iter()
                    .map(move |(c, n)| format!("{}: {c} ×{n}", o.name))
            })
            .collect()
    }
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
    /// The baseline's phases (for side-by-side charts).
    pub phases: Vec<PhaseReport>,
}

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

/// A whole run.
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
        spectrum: spectrum(&s.latency),
        timeline: ticks(&s.timeline),
    }
}

fn ticks(seconds: &[crate::metrics::Second]) -> Vec<Tick> {
    seconds
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
        .collect()
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
                let timeline = ticks(&p.stats.timeline);
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
            return self.phases.iter().find(|p| p.name == phase)?.op(op);
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
            phases: baseline.phases.clone(),
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
        let bad = |reason: String| HarnessError::Report {
            path: file.display().to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let version = value.get("schema_version").and_then(|v| v.as_u64());
        if version != Some(u64::from(SCHEMA_VERSION)) {
            return Err(bad(format!(
                "schema version {} is not {SCHEMA_VERSION} (written by another harness version; \
                 run the baseline again)",
                version.map_or("(none)".to_string(), |v| v.to_string())
            )));
        }
        let report: Report = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        Ok(report)
    }
}
