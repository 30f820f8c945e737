//! The charts of `report.html`, drawn with plotters' SVG backend: values
//! second by second, and latency by percentile (the HdrHistogram
//! "percentile spectrum", log scale of `1 / (1 - p)`), one line per target
//! and measure.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::esc;

/// Our target's colour.
pub const OURS: RGBColor = RGBColor(0x1f, 0x5f, 0xbf);
/// The baseline's colour.
pub const BASELINE: RGBColor = RGBColor(0xe0, 0x6c, 0x00);

/// Chart size in pixels.
const SIZE: (u32, u32) = (380, 250);
/// Highest `1 / (1 - p)` drawn: the 99.999th percentile.
const SPECTRUM_X_MAX: f64 = 1e5;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// Colour.
    pub color: RGBColor,
    /// Stroke width (a thin line for the second measure of a target).
    pub width: u32,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Renders `draw` into an SVG string, or a short note when plotting failed
/// (a report is still written).
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult) -> String {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root).and_then(|()| root.present().map_err(Into::into))
    };
    match result {
        Ok(()) => out,
        Err(e) => format!(
            "<p class=\"chart-error\">chart not drawn: {}</p>",
            esc(&e.to_string())
        ),
    }
}

fn style(line: &Line) -> ShapeStyle {
    ShapeStyle {
        color: line.color.to_rgba(),
        filled: false,
        stroke_width: line.width,
    }
}

/// An axis value without needless decimals.
fn axis_label(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == a.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').to_string()
    }
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 11))
        .draw()
}

/// Values second by second (`x` = second of the measured part).
pub fn over_time(title: &str, y_desc: &str, lines: &[Line]) -> String {
    let points = || lines.iter().flat_map(|l| l.points.iter());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let y_max = points().map(|p| p.1).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    svg(|root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(58)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("second")
            .y_desc(y_desc)
            .x_label_formatter(&|x| axis_label(*x))
            .y_label_formatter(&|y| axis_label(*y))
            .light_line_style(RGBColor(238, 238, 238))
            .label_style(("sans-serif", 11))
            .draw()?;
        for line in lines {
            let s = style(line);
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), s))?
                .label(line.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], s));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
}

/// `x` of a percentile on the spectrum's axis.
fn spectrum_x(percentile: f64) -> f64 {
    (1.0 / (1.0 - percentile / 100.0)).min(SPECTRUM_X_MAX)
}

/// The axis label of `x = 1 / (1 - p)`: the percentile.
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let text = format!("{p:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Latency by percentile; `lines` hold (percentile 0..100, ms) points,
/// the 100th (the maximum) is left to the tables.
pub fn spectrum(title: &str, lines: &[Line]) -> String {
    let lines: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            points: l
                .points
                .iter()
                .filter(|(p, ms)| *p < 100.0 && *ms > 0.0)
                .map(|(p, ms)| (spectrum_x(*p), *ms))
                .collect(),
            ..l.clone()
        })
        .collect();
    let ys = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let y_min = ys().fold(f64::INFINITY, f64::min);
    let y_max = ys().fold(0.0, f64::max);
    let (y_min, y_max) = if y_min.is_finite() && y_max > 0.0 {
        (y_min * 0.8, (y_max * 1.25).max(y_min * 2.0))
    } else {
        (0.01, 1.0)
    };
    svg(|root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .margin_right(24)
            .x_label_area_size(34)
            .y_label_area_size(58)
            .build_cartesian_2d(
                (1f64..SPECTRUM_X_MAX).log_scale(),
                (y_min..y_max).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| axis_label(*y))
            .light_line_style(RGBColor(238, 238, 238))
            .label_style(("sans-serif", 11))
            .draw()?;
        for line in &lines {
            let s = style(line);
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), s))?
                .label(line.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], s));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_drop_needless_decimals() {
        assert_eq!(axis_label(25000.0), "25000");
        assert_eq!(axis_label(2.5), "2.5");
        assert_eq!(axis_label(0.25), "0.25");
        assert_eq!(axis_label(3.0), "3");
    }

    #[test]
    fn percentile_axis() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert!((spectrum_x(99.0) - 100.0).abs() < 1e-6);
        assert_eq!(spectrum_x(100.0), SPECTRUM_X_MAX);
    }

    #[test]
    fn charts_are_svg_with_their_labels() {
        let line = |label: &str, color| Line {
            label: label.into(),
            color,
            width: 2,
            points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)],
        };
        let svg = over_time(
            "point_read throughput",
            "ops/s",
            &[line("HoloFusion", OURS), line("PostgreSQL", BASELINE)],
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["point_read throughput", "HoloFusion", "PostgreSQL", "ops/s"] {
            assert!(svg.contains(text), "{text} missing");
        }
        let spec = spectrum(
            "latency by percentile",
            &[Line {
                points: vec![(0.0, 0.5), (50.0, 1.0), (99.0, 4.0), (100.0, 9.0)],
                ..line("HoloFusion", OURS)
            }],
        );
        assert!(spec.starts_with("<svg") && spec.contains("99%"), "{spec}");
    }
}
