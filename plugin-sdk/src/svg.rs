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
/// Series colours after the first (blue): orange, green, red, purple, brown, pink, grey, olive,
/// cyan — distinct on white, no yellow.
const SERIES: [RGBColor; 9] = [
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of the k-th series of a figure.
pub fn series_color(k: usize) -> RGBColor {
    if k == 0 { BAR } else { SERIES[(k - 1) % SERIES.len()] }
}

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
        // Each series' (second, sum) pairs, taken once.
        let all: Vec<Vec<(u64, f64)>> = series.iter().map(|(_, s)| s.points()).collect();
        let t0 = all.iter().filter_map(|p| p.first().map(|p| p.0)).min().unwrap_or(0);
        let t1 = all.iter().filter_map(|p| p.last().map(|p| p.0)).max().unwrap_or(t0);
        let ymax = all.iter().flatten().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.15;
        let x_range = 0.0..((t1 - t0) as f64 + 1.0);
        let mut chart = styled_chart(&root, title, x_range, 0.0..ymax, (x_label, y_label), true)?;
        for (k, ((name, _), pairs)) in series.iter().zip(&all).enumerate() {
            let color = series_color(k).to_rgba();
            let points: Vec<(f64, f64)> =
                pairs.iter().map(|(t, v)| ((t - t0) as f64 + 0.5, *v)).collect();
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
    value_map_cells(points, (cell, cell), title, x_label, y_label, value_label)
}

/// [`value_map`] with cells `cell.0` wide and `cell.1` high (a 2-D histogram's bins); each
/// cell carries its value as an SVG `<title>` (shown on hover).
pub fn value_map_cells(
    points: &[(f64, f64, f64)],
    cell: (f64, f64),
    title: &str,
    x_label: &str,
    y_label: &str,
    value_label: &str,
) -> String {
    use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
    let mut svg = String::new();
    let mut hover = Vec::new();
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
        let (xs, ys) = (x0 - cell.0..x1 + cell.0, y0 - cell.1..y1 + cell.1);
        let mut chart = styled_chart(&plot, title, xs, ys, (x_label, y_label), false)?;
        let (hx, hy) = (cell.0 / 2.0, cell.1 / 2.0);
        chart
            .draw_series(points.iter().map(|(x, y, v)| {
                let color = ViridisRGB.get_color_normalized(*v, v0, v1);
                Rectangle::new([(x - hx, y - hy), (x + hx, y + hy)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
        for (x, y, v) in points {
            let (a, top) = chart.backend_coord(&(x - hx, y + hy));
            let (b, bottom) = chart.backend_coord(&(x + hx, y - hy));
            hover.push(format!(
                "<rect x=\"{a}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill-opacity=\"0\"><title>({x}, {y}): {}</title></rect>",
                (b - a).max(1),
                (bottom - top).max(1),
                escape_xml(&format!("{v:.4}"))
            ));
        }
        colour_bar(&bar, value_label, (v0, v1), 40, &|v| format!("{v:.3}"))?;
        root.present().map_err(|e| e.to_string())
    })();
    with_hover(finish(result, svg), &hover)
}

/// `svg` with the hover elements inserted before its end.
fn with_hover(mut svg: String, hover: &[String]) -> String {
    if let Some(end) = svg.rfind("</svg>") {
        svg.insert_str(end, &hover.concat());
    }
    svg
}

/// A vertical viridis colour bar over `range` with its label on top.
fn colour_bar(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    label: &str,
    (v0, v1): (f64, f64),
    margin_top: u32,
    format: &dyn Fn(&f64) -> String,
) -> Result<(), String> {
    use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
    let mut scale = ChartBuilder::on(area)
        .margin_top(margin_top)
        .margin_bottom(60)
        .margin_right(8)
        .y_label_area_size(56)
        .caption(label, ("sans-serif", 13))
        .build_cartesian_2d(0.0..1.0, v0..v1)
        .map_err(|e| e.to_string())?;
    scale
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .label_style(("sans-serif", 12))
        .y_label_formatter(format)
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
    Ok(())
}

/// What a [`Plot`] draws.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Series {
    /// Histogram bars (or steps when overlaid).
    Hist(Hist1D),
    /// A line through points.
    Line(Vec<(f64, f64)>),
    /// Markers.
    Points(Vec<(f64, f64)>),
    /// Markers with vertical error bars `(x, y, error)`.
    ErrorPoints(Vec<(f64, f64, f64)>),
    /// A reference run's histogram, scaled to the plot's first histogram: grey dashed steps.
    Reference(Hist1D),
}

/// A figure built from several series on shared axes, in the common style: histograms, lines
/// (e.g. a fit), points with error bars; linear or log y. Legend when series are named.
///
/// ```ignore
/// let svg = svg::Plot::new("dQ/dx", "dQ/dx [ke-/cm]", "pixels / bin")
///     .hist(&self.dqdx, "data")
///     .line(fit_curve, "Moyal⊗Gauss fit")
///     .render();
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plot {
    title: String,
    labels: (String, String),
    series: Vec<(String, Series)>,
    log_y: bool,
    x_range: Option<(f64, f64)>,
    y_range: Option<(f64, f64)>,
    notes: Vec<String>,
}

impl Plot {
    /// An empty plot with a title and axis labels (put units in brackets).
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.into(),
            labels: (x_label.into(), y_label.into()),
            series: Vec::new(),
            log_y: false,
            x_range: None,
            y_range: None,
            notes: Vec::new(),
        }
    }
    /// Logarithmic y axis (rates, spectra spanning decades); values ≤ 0 are not drawn.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }
    /// Fixes the x range.
    pub fn x_range(mut self, lo: f64, hi: f64) -> Self {
        self.x_range = Some((lo, hi));
        self
    }
    /// Fixes the y range.
    pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }
    /// A histogram.
    pub fn hist(mut self, h: &Hist1D, name: &str) -> Self {
        self.series.push((name.into(), Series::Hist(h.clone())));
        self
    }
    /// A line through points (sorted by x by the caller).
    pub fn line(mut self, points: Vec<(f64, f64)>, name: &str) -> Self {
        self.series.push((name.into(), Series::Line(points)));
        self
    }
    /// Markers.
    pub fn points(mut self, points: Vec<(f64, f64)>, name: &str) -> Self {
        self.series.push((name.into(), Series::Points(points)));
        self
    }
    /// Markers with error bars.
    pub fn error_points(mut self, points: Vec<(f64, f64, f64)>, name: &str) -> Self {
        self.series.push((name.into(), Series::ErrorPoints(points)));
        self
    }
    /// A line of text in the top-right corner (e.g. a fit result).
    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.notes.push(text.into());
        self
    }

    /// The plot's first histogram (what a reference is compared with).
    pub fn first_hist(&self) -> Option<&Hist1D> {
        self.series.iter().find_map(|(_, s)| match s {
            Series::Hist(h) => Some(h),
            _ => None,
        })
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Overlays `reference` (a reference run's histogram with the same binning), scaled to
    /// the area of this plot's first histogram, as grey dashed steps named `label`. Nothing is
    /// drawn when the binnings differ or either is empty.
    pub fn with_reference(mut self, reference: &Hist1D, label: &str) -> Self {
        let Some(own) = self.first_hist() else { return self };
        let same = own.counts.len() == reference.counts.len()
            && own.lo == reference.lo
            && own.hi == reference.hi;
        let (a, b) = (own.total(), reference.total());
        if !same || a <= 0.0 || b <= 0.0 {
            return self;
        }
        let mut scaled = reference.clone();
        scaled.counts.iter_mut().for_each(|c| *c *= a / b);
        self.series.push((label.into(), Series::Reference(scaled)));
        self
    }

    fn extent(&self) -> ((f64, f64), (f64, f64)) {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (_, s) in &self.series {
            match s {
                Series::Hist(h) | Series::Reference(h) => {
                    xs.extend([h.lo, h.hi]);
                    ys.extend(h.counts.iter().copied());
                }
                Series::Line(p) | Series::Points(p) => {
                    xs.extend(p.iter().map(|q| q.0));
                    ys.extend(p.iter().map(|q| q.1));
                }
                Series::ErrorPoints(p) => {
                    xs.extend(p.iter().map(|q| q.0));
                    ys.extend(p.iter().flat_map(|q| [q.1 - q.2, q.1 + q.2]));
                }
            }
        }
        let finite = |v: &Vec<f64>, keep: &dyn Fn(f64) -> bool| -> Option<(f64, f64)> {
            let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite() && keep(*x)).collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo.is_finite() && hi.is_finite()).then_some((lo, hi))
        };
        let x = self.x_range.or_else(|| finite(&xs, &|_| true)).unwrap_or((0.0, 1.0));
        let x = if x.1 > x.0 { x } else { (x.0 - 0.5, x.0 + 0.5) };
        let y = self.y_range.unwrap_or_else(|| {
            if self.log_y {
                let (lo, hi) = finite(&ys, &|v| v > 0.0).unwrap_or((1.0, 10.0));
                (lo.log10().floor(), (hi.log10() + 0.3).ceil().max(lo.log10().floor() + 1.0))
            } else {
                let (lo, hi) = finite(&ys, &|_| true).unwrap_or((0.0, 1.0));
                let has_hist = self.series.iter().any(|(_, s)| matches!(s, Series::Hist(_)));
                if has_hist || lo >= 0.0 && lo < 0.25 * hi {
                    let lo = lo.min(0.0);
                    let hi = if hi > lo { hi } else { lo + 1.0 };
                    (lo, hi + (hi - lo) * 0.12)
                } else {
                    // Points and lines only: zoom on them (a slope must be visible).
                    let pad = ((hi - lo) * 0.15).max(1e-9 * hi.abs().max(1.0));
                    (lo - pad, hi + pad * 2.0)
                }
            }
        });
        (x, y)
    }

    /// Draws the figure.
    pub fn render(&self) -> String {
        let mut svg = String::new();
        let mut hover: Vec<String> = Vec::new();
        let result = (|| -> Result<(), String> {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let ((x0, x1), (y0, y1)) = self.extent();
            let log = self.log_y;
            let ty = move |v: f64| if log { if v > 0.0 { v.log10() } else { f64::NAN } } else { v };
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, TITLE_FONT)
                .margin(12)
                .x_label_area_size(48)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?;
            let log_label = |v: &f64| {
                if (v - v.round()).abs() < 1e-6 {
                    format!("1e{}", v.round() as i64)
                } else {
                    String::new()
                }
            };
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(&self.labels.0)
                .y_desc(&self.labels.1)
                .axis_desc_style(LABEL_FONT)
                .label_style(("sans-serif", 13));
            if log {
                mesh.y_labels(((y1 - y0) as usize + 1).max(2) * 2 + 1)
                    .y_label_formatter(&log_label);
            }
            mesh.draw().map_err(|e| e.to_string())?;
            // A histogram's outline as steps (empty bins of a log plot at the bottom).
            let steps = |h: &Hist1D| -> Vec<(f64, f64)> {
                let w = h.width();
                h.counts
                    .iter()
                    .enumerate()
                    .flat_map(|(i, c)| {
                        let y = if log && *c <= 0.0 { y0 } else { ty(*c) };
                        [(h.lo + i as f64 * w, y), (h.lo + (i + 1) as f64 * w, y)]
                    })
                    .collect()
            };
            let named = self.series.iter().filter(|(n, _)| !n.is_empty()).count();
            let overlay = self.series.len() > 1;
            for (k, (name, series)) in self.series.iter().enumerate() {
                let color = match series {
                    Series::Reference(_) => RGBColor(90, 90, 90).to_rgba(),
                    _ => series_color(k).to_rgba(),
                };
                let legend_color = color;
                let anno = match series {
                    Series::Hist(h) => {
                        let w = h.width();
                        let base = if log { y0 } else { 0.0 };
                        if overlay {
                            chart
                                .draw_series(LineSeries::new(steps(h), color.stroke_width(2)))
                                .map_err(|e| e.to_string())?
                        } else {
                            chart
                                .draw_series(
                                    h.counts
                                        .iter()
                                        .enumerate()
                                        .filter(|(_, c)| !log || **c > 0.0)
                                        .map(|(i, c)| {
                                            let xa = h.lo + i as f64 * w;
                                            Rectangle::new(
                                                [(xa, base), (xa + w, ty(*c))],
                                                color.filled(),
                                            )
                                        }),
                                )
                                .map_err(|e| e.to_string())?
                        }
                    }
                    Series::Reference(h) => {
                        // Grey dashed steps, drawn over the data.
                        chart
                            .draw_series(DashedLineSeries::new(
                                steps(h),
                                6,
                                4,
                                color.stroke_width(2),
                            ))
                            .map_err(|e| e.to_string())?
                    }
                    Series::Line(p) => chart
                        .draw_series(LineSeries::new(
                            p.iter().map(|q| (q.0, ty(q.1))).filter(|q| q.1.is_finite()),
                            color.stroke_width(2),
                        ))
                        .map_err(|e| e.to_string())?,
                    Series::Points(p) => chart
                        .draw_series(
                            p.iter()
                                .map(|q| (q.0, ty(q.1)))
                                .filter(|q| q.1.is_finite())
                                .map(|q| Circle::new(q, 3, color.filled())),
                        )
                        .map_err(|e| e.to_string())?,
                    Series::ErrorPoints(p) => {
                        chart
                            .draw_series(p.iter().filter(|q| ty(q.1).is_finite()).map(|q| {
                                let lo = ty(q.1 - q.2);
                                let lo = if lo.is_finite() { lo } else { y0 };
                                PathElement::new(
                                    [(q.0, lo), (q.0, ty(q.1 + q.2))],
                                    color.stroke_width(2),
                                )
                            }))
                            .map_err(|e| e.to_string())?;
                        chart
                            .draw_series(
                                p.iter()
                                    .map(|q| (q.0, ty(q.1)))
                                    .filter(|q| q.1.is_finite())
                                    .map(|q| Circle::new(q, 4, color.filled())),
                            )
                            .map_err(|e| e.to_string())?
                    }
                };
                if !name.is_empty() {
                    anno.label(name.as_str()).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], legend_color.filled())
                    });
                }
            }
            // Hover values: a transparent box per bin of the first histogram (with the
            // reference's value, if any) and per marker, each with an SVG <title>.
            let reference = self.series.iter().find_map(|(_, s)| match s {
                Series::Reference(h) => Some(h),
                _ => None,
            });
            let number =
                |v: f64| format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string();
            if let Some(h) = self.first_hist() {
                let w = h.width();
                for (i, c) in h.counts.iter().enumerate() {
                    let (xa, xb) = (h.lo + i as f64 * w, h.lo + (i + 1) as f64 * w);
                    let (a, top) = chart.backend_coord(&(xa, y1));
                    let (b, bottom) = chart.backend_coord(&(xb, y0));
                    let mut text = format!("[{}, {}): {}", number(xa), number(xb), number(*c));
                    if let Some(r) = reference.and_then(|r| r.counts.get(i)) {
                        text += &format!(" (reference {})", number(*r));
                    }
                    hover.push(format!(
                        "<rect x=\"{a}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill-opacity=\"0\"><title>{}</title></rect>",
                        (b - a).max(1),
                        (bottom - top).max(1),
                        escape_xml(&text)
                    ));
                }
            }
            for (_, series) in &self.series {
                let marks: Vec<(f64, f64, Option<f64>)> = match series {
                    Series::Points(p) => p.iter().map(|q| (q.0, q.1, None)).collect(),
                    Series::ErrorPoints(p) => p.iter().map(|q| (q.0, q.1, Some(q.2))).collect(),
                    _ => continue,
                };
                for (x, y, error) in marks.into_iter().filter(|m| ty(m.1).is_finite()) {
                    let (cx, cy) = chart.backend_coord(&(x, ty(y)));
                    let text = match error {
                        Some(e) => format!("{}: {} ± {}", number(x), number(y), number(e)),
                        None => format!("{}: {}", number(x), number(y)),
                    };
                    hover.push(format!(
                        "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"6\" fill-opacity=\"0\"><title>{}</title></circle>",
                        escape_xml(&text)
                    ));
                }
            }
            if named > 0 && (named > 1 || overlay) {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 13))
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
            let (px, py) = chart.plotting_area().get_pixel_range();
            for (k, note) in self.notes.iter().enumerate() {
                let y = if named > 0 && (named > 1 || overlay) {
                    py.start + 14 + 22 * (named as i32 + 1) + 18 * k as i32
                } else {
                    py.start + 16 + 18 * k as i32
                };
                root.draw(&Text::new(
                    note.clone(),
                    (px.end - 8, y),
                    ("sans-serif", 13).into_font().color(&BLACK).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Right,
                            plotters::style::text_anchor::VPos::Center,
                        ),
                    ),
                ))
                .map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())
        })();
        with_hover(finish(result, svg), &hover)
    }
}

/// Text escaped for SVG/XML.
fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A table as a figure (e.g. the top-N flagged channels): a header row and rows of text.
pub fn table(title: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let row_height = 22;
    let height = (70 + row_height * (rows.len() + 1)).max(120) as u32;
    let width = SIZE.0;
    // Columns as wide as their longest text (8 px per character), spread over the width.
    let chars: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(1)
                + 2
        })
        .collect();
    let total: usize = chars.iter().sum::<usize>().max(1);
    let mut starts = vec![24usize];
    for c in &chars {
        starts.push(starts.last().unwrap() + (width as usize - 48) * c / total);
    }
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{}\" y=\"30\" font-family=\"sans-serif\" font-size=\"22\" text-anchor=\"middle\">{}</text>",
        width / 2,
        escape(title)
    );
    for (r, cells) in std::iter::once(header.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned())
        .enumerate()
    {
        let y = 62 + r * row_height;
        if r % 2 == 1 {
            out += &format!(
                "<rect x=\"16\" y=\"{}\" width=\"{}\" height=\"{row_height}\" fill=\"#eef3f8\"/>",
                y - 16,
                width - 32
            );
        }
        let weight = if r == 0 { "bold" } else { "normal" };
        if r > 0 {
            // The whole row on hover (long cells may be cut by the columns).
            out += &format!(
                "<rect x=\"16\" y=\"{}\" width=\"{}\" height=\"{row_height}\" fill-opacity=\"0\"><title>{}</title></rect>",
                y - 16,
                width - 32,
                escape(&cells.join(" · "))
            );
        }
        for (c, cell) in cells.iter().enumerate() {
            out += &format!(
                "<text x=\"{}\" y=\"{y}\" font-family=\"sans-serif\" font-size=\"14\" font-weight=\"{weight}\">{}</text>",
                starts[c.min(starts.len() - 1)],
                escape(cell)
            );
        }
    }
    if rows.is_empty() {
        out += "<text x=\"24\" y=\"90\" font-family=\"sans-serif\" font-size=\"14\">(none)</text>";
    }
    out + "</svg>"
}

/// A per-pixel map on the real anode geometry: one panel per anode (TPC), each pixel one
/// raster cell coloured on the viridis scale by `value(unique_id)`; pixels with no value are
/// grey, so silent channels stand out. `log` colours by log10 of the value; `range` fixes the
/// colour scale (default: the values' range). The raster is an
/// embedded PNG, so a 78 400-pixel map stays small.
pub fn pixel_map(
    pixels: &crate::geometry::Pixels,
    value: &dyn Fn(u32) -> Option<f64>,
    title: &str,
    value_label: &str,
    log: bool,
    range: Option<(f64, f64)>,
) -> String {
    use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
    let transform =
        |v: f64| if log { if v > 0.0 { Some(v.log10()) } else { None } } else { Some(v) };
    let values: Vec<(&crate::geometry::Pixel, Option<f64>)> =
        pixels.iter().map(|p| (p, value(p.unique_id).and_then(transform))).collect();
    let (mut v0, mut v1) = values
        .iter()
        .filter_map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if let Some((lo, hi)) = range {
        (v0, v1) = (transform(lo).unwrap_or(lo), transform(hi).unwrap_or(hi));
    }
    if !v0.is_finite() {
        (v0, v1) = (0.0, 1.0);
    } else if v1 <= v0 {
        v1 = v0 + 1.0;
    }
    let anodes: Vec<(u8, crate::geometry::Anode)> =
        pixels.anodes().iter().map(|(k, a)| (*k, *a)).collect();
    let panels = anodes.len().max(1) as u32;
    let width = (300 * panels + 110).max(SIZE.0);
    let height = 560;
    let mut svg = String::new();
    let mut images = Vec::new();
    let result = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root.titled(title, TITLE_FONT).map_err(|e| e.to_string())?;
        let (plots, bar) = root.split_horizontally(width - 100);
        let areas = plots.split_evenly((1, panels as usize));
        for ((tpc, anode), area) in anodes.iter().zip(&areas) {
            let (x0, x1, y0, y1) = anode.extent;
            let pitch = anode.pitch_mm.max(1e-6);
            let half = pitch / 2.0;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("TPC {tpc}"), LABEL_FONT)
                .margin(8)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(x0 - half..x1 + half, y0 - half..y1 + half)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("x [mm]")
                .y_desc("y [mm]")
                .axis_desc_style(("sans-serif", 14))
                .label_style(("sans-serif", 12))
                .x_labels(4)
                .draw()
                .map_err(|e| e.to_string())?;
            let cols = ((x1 - x0) / pitch).round() as usize + 1;
            let rows = ((y1 - y0) / pitch).round() as usize + 1;
            let mut rgba = vec![255u8; cols * rows * 4];
            for (p, v) in values.iter().filter(|(p, _)| p.tpc == *tpc) {
                let c = (((p.x_mm - x0) / pitch).round() as usize).min(cols - 1);
                let r = rows - 1 - (((p.y_mm - y0) / pitch).round() as usize).min(rows - 1);
                let color = match v {
                    Some(v) if v.is_finite() => {
                        let c = ViridisRGB.get_color_normalized(*v, v0, v1);
                        [c.0, c.1, c.2]
                    }
                    _ => [190, 190, 190],
                };
                rgba[(r * cols + c) * 4..][..3].copy_from_slice(&color);
            }
            let (px, py) = chart.plotting_area().get_pixel_range();
            images.push((px, py, cols, rows, rgba));
        }
        let label =
            |v: &f64| if log { format!("{:.3}", 10f64.powf(*v)) } else { format!("{v:.3}") };
        colour_bar(&bar, value_label, (v0, v1), 60, &label)?;
        root.present().map_err(|e| e.to_string())
    })();
    if result.is_ok() {
        // Raster panels go in after plotters wrote the frame (its SVG backend cannot embed
        // bitmaps on wasm32).
        let mut embedded = String::new();
        for (px, py, cols, rows, rgba) in images {
            embedded += &format!(
                "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" \
                 style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>",
                px.start,
                py.start,
                px.end - px.start,
                py.end - py.start,
                png_base64(cols as u32, rows as u32, &rgba)
            );
        }
        if let Some(end) = svg.rfind("</svg>") {
            svg.insert_str(end, &embedded);
        }
    }
    finish(result, svg)
}

/// An RGBA raster as a base64 PNG.
fn png_base64(width: u32, height: u32, rgba: &[u8]) -> String {
    use base64::Engine;
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        if let Ok(mut writer) = encoder.write_header() {
            let _ = writer.write_image_data(rgba);
        }
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
