//! SLO gates (`slo/*.yaml`): latency ceilings, throughput floors, error-rate
//! ceilings, check results and ratios against a baseline report.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
use crate::report::{GateResult, Report};

/// A gate file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    /// Name of the gate set.
    pub name: String,
    /// The gates.
    pub gates: Vec<Gate>,
}

/// Ratios against the baseline (needs `--vs-postgres` or `--baseline`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineGate {
    /// Our throughput / baseline throughput must be at least this.
    #[serde(default)]
    pub min_throughput_ratio: Option<f64>,
    /// Our p99 / baseline p99 must be at most this.
    #[serde(default)]
    pub max_p99_ratio: Option<f64>,
}

/// One gate: limits on one operation, or the checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// `phase.op`, `op`, `phase.*` or `*`.
    #[serde(default)]
    pub op: Option<String>,
    /// Ceiling on p50 latency.
    #[serde(default)]
    pub p50_ms: Option<f64>,
    /// Ceiling on p95 latency.
    #[serde(default)]
    pub p95_ms: Option<f64>,
    /// Ceiling on p99 latency.
    #[serde(default)]
    pub p99_ms: Option<f64>,
    /// Floor on throughput, ops/s.
    #[serde(default)]
    pub min_throughput: Option<f64>,
    /// Ceiling on the error rate (0..1).
    #[serde(default)]
    pub max_error_rate: Option<f64>,
    /// Floor on successful executions.
    #[serde(default)]
    pub min_ok: Option<u64>,
    /// `pass`: every check of the run must pass.
    #[serde(default)]
    pub checks: Option<String>,
    /// Ratios against the baseline.
    #[serde(default)]
    pub baseline: Option<BaselineGate>,
}

impl SloFile {
    /// Reads and validates a gate file; also returns its text (the report
    /// keeps a copy).
    pub fn load(path: &Path) -> Result<(SloFile, String), HarnessError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| HarnessError::Spec {
            file: file.clone(),
            field: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        let de = serde_yaml::Deserializer::from_str(&text);
        let slo: SloFile =
            serde_path_to_error::deserialize(de).map_err(|e| HarnessError::Spec {
                file: file.clone(),
                field: e.path().to_string(),
                reason: e.into_inner().to_string(),
            })?;
        for (i, g) in slo.gates.iter().enumerate() {
            let has_limit = g.p50_ms.is_some()
                || g.p95_ms.is_some()
                || g.p99_ms.is_some()
                || g.min_throughput.is_some()
                || g.max_error_rate.is_some()
                || g.min_ok.is_some()
                || g.baseline.is_some();
            let bad = |reason: &str| HarnessError::Spec {
                file: file.clone(),
                field: format!("gates[{i}]"),
                reason: reason.into(),
            };
            match (&g.op, &g.checks) {
                (Some(_), None) if has_limit => {}
                (None, Some(c)) if c == "pass" && !has_limit => {}
                (None, Some(_)) => return Err(bad("`checks` must be `pass` and stand alone")),
                (Some(_), None) => return Err(bad("an `op` gate needs at least one limit")),
                _ => return Err(bad("give either `op` with limits or `checks: pass`")),
            }
        }
        Ok((slo, text))
    }

    /// Evaluates every gate against `report`.
    pub fn evaluate(&self, report: &Report) -> Vec<GateResult> {
        let mut out = Vec::new();
        for g in &self.gates {
            if g.checks.is_some() {
                let failed: Vec<&str> = report
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.name.as_str())
                    .collect();
                out.push(GateResult {
                    gate: "checks".into(),
                    threshold: "all pass".into(),
                    observed: if failed.is_empty() {
                        format!("{} passed", report.checks.len())
                    } else {
                        format!("failed: {}", failed.join(", "))
                    },
                    passed: failed.is_empty(),
                });
                continue;
            }
            let Some(name) = &g.op else { continue };
            let Some(op) = report.op(name) else {
                out.push(GateResult {
                    gate: name.clone(),
                    threshold: "operation present".into(),
                    observed: "no such operation in the report (or ambiguous: use phase.op)".into(),
                    passed: false,
                });
                continue;
            };
            let mut max = |what: &str, limit: Option<f64>, value: f64| {
                if let Some(limit) = limit {
                    out.push(GateResult {
                        gate: format!("{name} {what}"),
                        threshold: format!("<= {limit}"),
                        observed: format!("{value:.3}"),
                        passed: value <= limit,
                    });
                }
            };
            max("p50_ms", g.p50_ms, op.latency_ms.p50);
            max("p95_ms", g.p95_ms, op.latency_ms.p95);
            max("p99_ms", g.p99_ms, op.latency_ms.p99);
            max("error_rate", g.max_error_rate, op.error_rate);
            if let Some(min) = g.min_throughput {
                out.push(GateResult {
                    gate: format!("{name} throughput"),
                    threshold: format!(">= {min} ops/s"),
                    observed: format!("{:.1} ops/s", op.throughput),
                    passed: op.throughput >= min,
                });
            }
            if let Some(min) = g.min_ok {
                out.push(GateResult {
                    gate: format!("{name} ok"),
                    threshold: format!(">= {min}"),
                    observed: op.ok.to_string(),
                    passed: op.ok >= min,
                });
            }
            if let Some(b) = &g.baseline {
                let row = report.baseline.as_ref().and_then(|base| {
                    base.rows.iter().find(|r| {
                        r.op == *name || r.op.split_once('.').is_some_and(|(_, o)| o == name)
                    })
                });
                let key = format!("{name} vs baseline");
                match row {
                    None => out.push(GateResult {
                        gate: key,
                        threshold: "baseline present".into(),
                        observed: "no baseline (run with --vs-postgres or --baseline)".into(),
                        passed: false,
                    }),
                    Some(r) => {
                        if let Some(min) = b.min_throughput_ratio {
                            out.push(GateResult {
                                gate: format!("{key} throughput ratio"),
                                threshold: format!(">= {min}"),
                                observed: format!("{:.3}", r.throughput_ratio),
                                passed: r.throughput_ratio >= min,
                            });
                        }
                        if let Some(max) = b.max_p99_ratio {
                            out.push(GateResult {
                                gate: format!("{key} p99 ratio"),
                                threshold: format!("<= {max}"),
                                observed: format!("{:.3}", r.p99_ratio),
                                passed: r.p99_ratio <= max,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}
