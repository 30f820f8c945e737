//! `report.html`: one self-contained page (inline CSS and SVG, no scripts,
//! no external assets): the run's facts, gates and checks coloured by
//! verdict, a table per phase, and per operation its throughput, its
//! p50/p99 over time and its latency by percentile, the baseline's lines
//! beside ours when there is one.

use super::charts::{self, BASELINE, Line, OURS};
use super::{OpReport, PhaseReport, Report, esc};
use crate::spec::Flavor;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f4f6f9}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:6px 0 0;color:#c5cbd6;font-size:13px}
main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;margin:18px 0;padding:14px 18px}
h2{font-size:17px;margin:4px 0 12px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:5px 10px;border-bottom:1px solid #e6e9ef;text-align:right;white-space:nowrap}
th{background:#f0f2f6;font-weight:600}
td:first-child,th:first-child{text-align:left}
tr.pass td{background:#e8f6ec}
tr.fail td{background:#fde8e8}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-size:13px;font-weight:600;margin-left:8px;vertical-align:middle}
.badge.pass{background:#2e9e55;color:#fff}
.badge.fail{background:#d33a3a;color:#fff}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;font-size:13px}
.facts dt{color:#5b6475}
.facts dd{margin:0}
.charts{display:flex;flex-wrap:wrap;gap:8px}
.charts svg{border:1px solid #e6e9ef;border-radius:4px}
.note{font-size:13px;color:#5b6475}
.chart-error{color:#d33a3a}
";

fn flavor_name(f: Flavor) -> &'static str {
    match f {
        Flavor::Holofusion => "HoloFusion",
        Flavor::Postgres => "PostgreSQL",
    }
}

fn verdict_class(passed: bool) -> &'static str {
    if passed { "pass" } else { "fail" }
}

/// A table: header cells, then rows of (class, cells).
fn table(head: &[&str], rows: &[(Option<&str>, Vec<String>)]) -> String {
    let mut s = String::from("<table><thead><tr>");
    for h in head {
        s.push_str(&format!("<th>{}</th>", esc(h)));
    }
    s.push_str("</tr></thead><tbody>");
    for (class, cells) in rows {
        match class {
            Some(c) => s.push_str(&format!("<tr class=\"{c}\">")),
            None => s.push_str("<tr>"),
        }
        for c in cells {
            s.push_str(&format!("<td>{}</td>", esc(c)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

fn facts(report: &Report) -> String {
    let t = &report.target;
    let mut items = vec![
        (
            "target",
            format!(
                "{} ({}), {} node(s), {}",
                t.kind,
                flavor_name(t.flavor),
                t.nodes,
                t.server_version
            ),
        ),
        ("endpoints", t.endpoints.join(", ")),
        (
            "workload",
            format!(
                "{} (version {})",
                report.workload_file, report.workload_version
            ),
        ),
        ("scale", report.scale.to_string()),
        ("started", report.started_at.clone()),
        ("finished", report.finished_at.clone()),
        ("setup and load", format!("{:.1} s", report.prepare_seconds)),
    ];
    if let Some(b) = &report.baseline {
        items.push((
            "baseline",
            format!(
                "{} ({}, {}), report {}",
                b.target.kind,
                flavor_name(b.target.flavor),
                b.target.server_version,
                b.report
            ),
        ));
    }
    let mut s = String::from("<section><h2>Run</h2><dl class=\"facts\">");
    for (k, v) in items {
        s.push_str(&format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v)));
    }
    s.push_str("</dl><p class=\"note\">Files beside this page: report.json, report.md, samples.csv (per-second samples), workload.resolved.yaml and the SLO file.</p></section>");
    s
}

/// A gate's or check's row, coloured by its verdict.
fn verdict_row(
    name: &str,
    expected: &str,
    observed: &str,
    passed: bool,
) -> (Option<&'static str>, Vec<String>) {
    let verdict = if passed { "pass" } else { "FAIL" };
    (
        Some(verdict_class(passed)),
        vec![
            name.into(),
            expected.into(),
            observed.into(),
            verdict.into(),
        ],
    )
}

fn verdicts(report: &Report) -> String {
    let mut s = String::new();
    if !report.gates.is_empty() {
        let rows: Vec<_> = report
            .gates
            .iter()
            .map(|g| verdict_row(&g.gate, &g.threshold, &g.observed, g.passed))
            .collect();
        s.push_str("<section><h2>SLO gates</h2>");
        s.push_str(&table(&["gate", "threshold", "observed", "result"], &rows));
        s.push_str("</section>");
    }
    if !report.checks.is_empty() || !report.skipped_checks.is_empty() {
        let mut rows: Vec<_> = report
            .checks
            .iter()
            .map(|c| verdict_row(&c.name, &c.expected, &c.observed, c.passed))
            .collect();
        for (name, why) in &report.skipped_checks {
            rows.push((
                None,
                vec![
                    name.clone(),
                    String::new(),
                    String::new(),
                    format!("skipped: {why}"),
                ],
            ));
        }
        s.push_str("<section><h2>Checks</h2>");
        s.push_str(&table(&["check", "expected", "observed", "result"], &rows));
        s.push_str("</section>");
    }
    s
}

fn op_row(o: &OpReport, base: Option<&OpReport>) -> Vec<String> {
    let l = &o.latency_ms;
    let mut cells = vec![
        o.name.clone(),
        o.ok.to_string(),
        o.errors.to_string(),
        format!("{:.1}", o.throughput),
        format!("{:.2}", l.p50),
        format!("{:.2}", l.p95),
        format!("{:.2}", l.p99),
        format!("{:.2}", l.p999),
        format!("{:.2}", l.max),
        o.retries.to_string(),
    ];
    if let Some(b) = base {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}×", a / b)
            } else {
                "–".into()
            }
        };
        cells.push(format!("{:.1}", b.throughput));
        cells.push(ratio(o.throughput, b.throughput));
        cells.push(format!("{:.2}", b.latency_ms.p99));
        cells.push(ratio(l.p99, b.latency_ms.p99));
    }
    cells
}

/// The charts of one operation; `seconds` of each side are measured (the
/// last, partial second is left out of the lines).
fn op_charts(
    phase: &str,
    o: &OpReport,
    base: Option<(&str, &OpReport, f64)>,
    ours: (&str, f64),
) -> String {
    let over = |f: fn(&super::Tick) -> f64, r: &OpReport, seconds: f64| -> Vec<(f64, f64)> {
        r.timeline
            .iter()
            .filter(|t| t.t as f64 + 1.0 <= seconds + 0.05)
            .map(|t| (t.t as f64, f(t)))
            .collect()
    };
    let (ours, secs) = ours;
    let line = |label: String, color, width, points| Line {
        label,
        color,
        width,
        points,
    };
    let mut throughput = vec![line(ours.into(), OURS, 2, over(|t| t.ops as f64, o, secs))];
    let mut latency = vec![
        line(format!("{ours} p50"), OURS, 1, over(|t| t.p50_ms, o, secs)),
        line(format!("{ours} p99"), OURS, 3, over(|t| t.p99_ms, o, secs)),
    ];
    let mut spectrum = vec![line(ours.into(), OURS, 2, o.spectrum.clone())];
    if let Some((name, b, bs)) = base {
        throughput.push(line(
            name.into(),
            BASELINE,
            2,
            over(|t| t.ops as f64, b, bs),
        ));
        latency.push(line(
            format!("{name} p50"),
            BASELINE,
            1,
            over(|t| t.p50_ms, b, bs),
        ));
        latency.push(line(
            format!("{name} p99"),
            BASELINE,
            3,
            over(|t| t.p99_ms, b, bs),
        ));
        spectrum.push(line(name.into(), BASELINE, 2, b.spectrum.clone()));
    }
    let what = if o.name == "*" {
        format!("{phase}: all operations")
    } else {
        format!("{phase}.{}", o.name)
    };
    format!(
        "<h3>{}</h3><div class=\"charts\">{}{}{}</div>",
        esc(&what),
        charts::over_time("throughput", "ops/s", &throughput),
        charts::over_time("latency p50 / p99", "ms", &latency),
        charts::spectrum("latency by percentile", &spectrum),
    )
}

fn phase_section(report: &Report, p: &PhaseReport) -> String {
    let base_phase = report
        .baseline
        .as_ref()
        .and_then(|b| b.phases.iter().find(|bp| bp.name == p.name));
    let ours = flavor_name(report.target.flavor);
    let base_name = match &report.baseline {
        Some(b) if flavor_name(b.target.flavor) != ours => flavor_name(b.target.flavor),
        _ => "baseline",
    };
    let base_op = |name: &str| base_phase.and_then(|bp| bp.op(name));
    let mut head = vec![
        "op", "ok", "errors", "ops/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms",
        "retries",
    ];
    if base_phase.is_some() {
        head.extend([
            "baseline ops/s",
            "ops/s ratio",
            "baseline p99 ms",
            "p99 ratio",
        ]);
    }
    let all = || p.ops.iter().chain(std::iter::once(&p.total));
    let rows: Vec<_> = all()
        .map(|o| {
            let base = base_op(&o.name);
            let mut cells = op_row(o, base);
            if base_phase.is_some() && base.is_none() {
                cells.extend(std::iter::repeat_n("–".to_string(), 4));
            }
            (None, cells)
        })
        .collect();
    let mut s = format!(
        "<section><h2>Phase {} <span class=\"note\">{:.1} s measured, {} clients{}</span></h2>",
        esc(&p.name),
        p.seconds,
        p.concurrency,
        p.rate
            .map(|r| format!(", target {r} ops/s"))
            .unwrap_or_default()
    );
    s.push_str(&table(&head, &rows));
    let errors = p.error_summary();
    if !errors.is_empty() {
        s.push_str(&format!(
            "<p class=\"note\">Errors by SQLSTATE: {}</p>",
            esc(&errors.join(", "))
        ));
    }
    for (op, why) in &p.skipped {
        s.push_str(&format!(
            "<p class=\"note\">Skipped <code>{}</code>: {}</p>",
            esc(op),
            esc(why)
        ));
    }
    // One operation: its charts are the phase's; several: each, then all.
    let charted: Vec<&OpReport> = if p.ops.len() == 1 {
        p.ops.iter().collect()
    } else {
        all().collect()
    };
    let base_seconds = base_phase.map_or(0.0, |bp| bp.seconds);
    for o in charted {
        let base = base_op(&o.name).map(|b| (base_name, b, base_seconds));
        s.push_str(&op_charts(&p.name, o, base, (ours, p.seconds)));
    }
    s.push_str("</section>");
    s
}

/// Renders the report page.
pub fn render(report: &Report) -> String {
    let passed = report.passed();
    let mut body = format!(
        "<header><h1>{} <span class=\"badge {}\">{}</span></h1><p>{} on {} ({}, {} node(s)){}</p></header><main>",
        esc(&report.workload),
        verdict_class(passed),
        if passed { "pass" } else { "fail" },
        esc(&report.workload),
        esc(&report.target.kind),
        flavor_name(report.target.flavor),
        report.target.nodes,
        report
            .baseline
            .as_ref()
            .map(|b| format!(", against {}", flavor_name(b.target.flavor)))
            .unwrap_or_default()
    );
    body.push_str(&verdicts(report));
    body.push_str(&facts(report));
    for p in &report.phases {
        body.push_str(&phase_section(report, p));
    }
    body.push_str("</main>");
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} report</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        esc(&report.workload)
    )
}
