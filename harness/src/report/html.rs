//! `report.html`: a self-contained page (inline SVG, no scripts or external
//! assets) with latency over time, throughput over time and the latency
//! histogram of every phase.

use super::Report;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD: f64 = 48.0;

/// A line chart of several series over x (one point per second).
fn line_chart(title: &str, unit: &str, series: &[(&str, &str, Vec<f64>)]) -> String {
    let n = series.iter().map(|(_, _, v)| v.len()).max().unwrap_or(0);
    let max_y = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |i: usize| {
        PAD + (W - 2.0 * PAD)
            * if n > 1 {
                i as f64 / (n - 1) as f64
            } else {
                0.5
            }
    };
    let y = |v: f64| H - PAD + (2.0 * PAD - H) * (v / max_y);
    let mut svg = format!(
        "<svg width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\" style=\"background:#fff;border:1px solid #ddd\">\
         <text x=\"{PAD}\" y=\"20\" font-size=\"14\" font-family=\"sans-serif\">{}</text>\
         <line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{}\" stroke=\"#999\"/>\
         <text x=\"4\" y=\"{}\" font-size=\"10\" font-family=\"sans-serif\">{:.2} {}</text>\
         <text x=\"4\" y=\"{}\" font-size=\"10\" font-family=\"sans-serif\">0</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" font-family=\"sans-serif\">{} s</text>",
        esc(title),
        H - PAD,
        W - PAD,
        H - PAD,
        H - PAD,
        PAD + 4.0,
        max_y,
        esc(unit),
        H - PAD,
        W - PAD - 20.0,
        H - PAD + 16.0,
        n
    );
    for (k, (name, color, values)) in series.iter().enumerate() {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <text x=\"{}\" y=\"20\" font-size=\"12\" fill=\"{color}\" font-family=\"sans-serif\">{}</text>",
            points.join(" "),
            W - PAD - 140.0 + 70.0 * k as f64,
            esc(name)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A bar chart of the latency histogram (log-spaced buckets).
fn histogram_chart(title: &str, buckets: &[(f64, u64)]) -> String {
    let max = buckets.iter().map(|(_, c)| *c).max().unwrap_or(1).max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let bw = (W - 2.0 * PAD) / n;
    let mut svg = format!(
        "<svg width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\" style=\"background:#fff;border:1px solid #ddd\">\
         <text x=\"{PAD}\" y=\"20\" font-size=\"14\" font-family=\"sans-serif\">{}</text>",
        esc(title)
    );
    for (i, (upper, count)) in buckets.iter().enumerate() {
        let h = (H - 2.0 * PAD) * (*count as f64 / max);
        let x = PAD + bw * i as f64;
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4a7bd0\"><title>&lt;= {upper:.3} ms: {count}</title></rect>",
            H - PAD - h,
            (bw - 1.0).max(1.0)
        ));
        if i % 4 == 0 {
            svg.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"9\" font-family=\"sans-serif\">{upper:.2}</text>",
                H - PAD + 12.0
            ));
        }
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" font-family=\"sans-serif\">latency (ms, bucket upper bound)</text></svg>",
        W / 2.0 - 80.0,
        H - 8.0
    ));
    svg
}

/// Renders the report page.
pub fn render(report: &Report) -> String {
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>{} on {} &mdash; {}</h1><p>{:?}, {} node(s), server {}; {} &rarr; {}</p>",
        esc(&report.workload),
        esc(&report.target.kind),
        esc(&report.verdict),
        report.target.flavor,
        report.target.nodes,
        esc(&report.target.server_version),
        esc(&report.started_at),
        esc(&report.finished_at)
    ));
    body.push_str("<pre>");
    body.push_str(&esc(&report.markdown()));
    body.push_str("</pre>");
    for p in &report.phases {
        body.push_str(&format!("<h2>Phase {}</h2>", esc(&p.name)));
        let p50: Vec<f64> = p.timeline.iter().map(|t| t.p50_ms).collect();
        let p99: Vec<f64> = p.timeline.iter().map(|t| t.p99_ms).collect();
        let ops: Vec<f64> = p.timeline.iter().map(|t| t.ops as f64).collect();
        let errs: Vec<f64> = p.timeline.iter().map(|t| t.errors as f64).collect();
        body.push_str(&line_chart(
            "latency percentiles over time",
            "ms",
            &[("p50", "#2a9d8f", p50), ("p99", "#e76f51", p99)],
        ));
        body.push_str("<br>");
        body.push_str(&line_chart(
            "throughput over time",
            "ops/s",
            &[("ok", "#264653", ops), ("errors", "#d62828", errs)],
        ));
        body.push_str("<br>");
        body.push_str(&histogram_chart(
            "latency histogram (all operations)",
            &p.total.histogram,
        ));
    }
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{} report</title>\
         <style>body{{font-family:sans-serif;margin:24px}} pre{{background:#f6f6f6;padding:12px;overflow-x:auto}}</style>\
         </head><body>{body}</body></html>\n",
        esc(&report.workload)
    )
}
