//! SVG figures with one consistent style (title, axis labels with units, readable at dashboard
//! size), drawn with plotters' SVG backend.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::hist::{Hist1D, TimeSeries};

/// Figure size in pixels.
pub const SIZE: (u32, u32) = (640, 420);
const TITLE_FONT: (&str, u32) = ("sans-serif", 22);
const LABEL_FONT: (&str, u32) = ("sans-serif", 16);
const BAR: RGBColor = RGBColor(31, 119, 180);

fn finish(result: Result<(), String>, svg: String) -> String {
    match result {
        Ok(()) => svg,
        Err(e) => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\"><text x=\"20\" y=\"40\">plot failed: {}</text></svg>",
            SIZE.0,
            SIZE.1,
            e.replace('<', "&lt;")
        ),
    }
}

/// The common frame of every figure: title, margins, axis labels with their style. `mesh`
/// draws the grid (off for maps).
fn styled_chart<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    (x_label, y_label): (&str, &str),
    mesh: bool,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, TITLE_FONT)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(|e| e.to_string())?;
    let mut style = chart.configure_mesh();
    if !mesh {
        style.disable_mesh();
    }
    style
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style(LABEL_FONT)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// A histogram as bars, linear y axis.
pub fn histogram(h: &Hist1D, title: &str, x_label: &str, y_label: &str) -> String {
    let mut svg = String::new();
    let result = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let ymax = h.counts.iter().cloned().fold(0.0, f64::max).max(1.0) * 1.1;
        let mut chart =
            styled_chart(&root, title, h.lo..h.hi, 0.0..ymax, (x_label, y_label), true)?;
        let w = h.width();
        chart
            .draw_series(h.counts.iter().enumerate().map(|(i, c)| {
                let x0 = h.lo + i as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w, *c)], BAR.filled())
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    })();
    finish(result, svg)
}

/// A time series as a line with markers; x is seconds since the first bin.
pub fn time_series(
    series: &[(&str, &TimeSeries)],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> String {
    let mut svg = String::new();
    let result = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let t0 =
            series.iter().filter_map(|(_, s)| s.points().first().map(|p| p.0)).min().unwrap_or(0);
        let t1 =
            series.iter().filter_map(|(_, s)| s.points().last().map(|p| p.0)).max().unwrap_or(t0);
        let ymax =
            series.iter().flat_map(|(_, s)| s.points()).map(|p| p.1).fold(0.0, f64::max).max(1.0)
                * 1.15;
        let x_range = 0.0..((t1 - t0) as f64 + 1.0);
        let mut chart = styled_chart(&root, title, x_range, 0.0..ymax, (x_label, y_label), true)?;
        for (k, (name, s)) in series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let points: Vec<(f64, f64)> =
                s.points().into_iter().map(|(t, v)| ((t - t0) as f64 + 0.5, v)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    })();
    finish(result, svg)
}

/// A map of values at positions (e.g. per-pixel mean ADC at pixel x, y in mm), one square per
/// point coloured on the viridis scale between the smallest and largest value, with a colour bar.
/// `cell` is the square size in data units (the pixel pitch for pixel maps).
pub fn value_map(
    points: &[(f64, f64, f64)],
    cell: f64,
    title: &str,
    x_label: &str,
    y_label: &str,
    value_label: &str,
) -> String {
    use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
    let mut svg = String::new();
    let result = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (plot, bar) = root.split_horizontally(SIZE.0 - 90);
        let range = |f: fn(&(f64, f64, f64)) -> f64| {
            let lo = points.iter().map(f).fold(f64::INFINITY, f64::min);
            let hi = points.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) }
        };
        let ((x0, x1), (y0, y1), (v0, v1)) = (range(|p| p.0), range(|p| p.1), range(|p| p.2));
        let (xs, ys) = (x0 - cell..x1 + cell, y0 - cell..y1 + cell);
        let mut chart = styled_chart(&plot, title, xs, ys, (x_label, y_label), false)?;
        let half = cell / 2.0;
        chart
            .draw_series(points.iter().map(|(x, y, v)| {
                let color = ViridisRGB.get_color_normalized(*v, v0, v1);
                Rectangle::new([(x - half, y - half), (x + half, y + half)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
        let mut scale = ChartBuilder::on(&bar)
            .margin_top(40)
            .margin_bottom(60)
            .margin_right(8)
            .y_label_area_size(56)
            .caption(value_label, ("sans-serif", 13))
            .build_cartesian_2d(0.0..1.0, v0..v1)
            .map_err(|e| e.to_string())?;
        scale
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
        let steps = 64;
        scale
            .draw_series((0..steps).map(|i| {
                let a = v0 + (v1 - v0) * i as f64 / steps as f64;
                let b = v0 + (v1 - v0) * (i + 1) as f64 / steps as f64;
                Rectangle::new(
                    [(0.0, a), (1.0, b)],
                    ViridisRGB.get_color_normalized(a, v0, v1).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    })();
    finish(result, svg)
}
