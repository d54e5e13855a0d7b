//! SVG figures with one consistent style (title, axis labels with units, readable at dashboard
//! size), drawn with plotters' SVG backend.

use plotters::coord::types::RangedCoordf64;
use std::collections::BTreeMap;

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

/// A number as an axis tick or a table shows it: integers without a decimal point ("3", not
/// "3.0"), others with at most four decimals and no trailing zeros, very large or small ones
/// in e-notation ("2.5e5").
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        return "n/a".into();
    }
    if a < 1e-12 {
        return "0".into(); // rounding noise of a tick at zero (−5.55e-17)
    }
    if !(1e-4..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}");
    }
    // Four significant digits below 1 (0.0009, not 9e-4 beside 0.001), four decimals above.
    let decimals = if a < 1.0 { (3 - a.log10().floor() as i32).clamp(4, 8) as usize } else { 4 };
    let s = format!("{v:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A number for a table cell with `decimals` decimals, or "n/a" when it is undefined (`None`,
/// NaN or infinite) — never a 0 that looks measured.
pub fn number_or_na(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "n/a".into(),
    }
}

/// A Unix second as UTC ("2026-12-05 19:02:06 UTC"), for time axes. (Civil date from days
/// since 1970, H. Hinnant's algorithm: a date library in every plugin for one label is not
/// worth its size.)
pub fn utc(unix_s: u64) -> String {
    let (days, rest) = ((unix_s / 86_400) as i64, unix_s % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The label of a time axis in seconds since `origin` (a Unix second): the run start when the
/// host knows it, else the figure's first second.
pub(crate) fn time_axis_label(origin: u64, run_start: bool) -> String {
    if run_start {
        format!("time since run start [s]  (start {})", utc(origin))
    } else {
        format!("time since {} [s]", utc(origin))
    }
}

/// The origin of a time axis: the run start, else the data's first second `first_x` (0 when
/// there is no data).
pub(crate) fn time_origin(run_start: Option<u64>, first_x: f64) -> u64 {
    run_start.unwrap_or(if first_x.is_finite() { first_x.max(0.0).floor() as u64 } else { 0 })
}

/// "no data" in the middle of an empty figure's plotting area.
fn draw_no_data<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (px, py): (std::ops::Range<i32>, std::ops::Range<i32>),
) -> Result<(), String> {
    area.draw(&Text::new(
        "no data",
        ((px.start + px.end) / 2, (py.start + py.end) / 2),
        ("sans-serif", 20).into_font().color(&RGBColor(120, 120, 120)).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ),
        ),
    ))
    .map_err(|e| e.to_string())
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

/// The common frame of every figure: title, margins, axis labels with their style, tick labels
/// as [`tick_label`] prints them. `mesh` draws the grid (off for maps).
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
        .margin_right(24)
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
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// A histogram as bars, linear y axis ([`Plot`] with one histogram).
pub fn histogram(h: &Hist1D, title: &str, x_label: &str, y_label: &str) -> String {
    Plot::new(title, x_label, y_label).hist(h, "").render()
}

/// Rates over time, one line per named series ([`Plot::rate`]): x in seconds since the first
/// second of the figure, with its UTC time in the axis label.
pub fn time_series(
    series: &[(&str, &TimeSeries)],
    title: &str,
    _x_label: &str,
    y_label: &str,
) -> String {
    let named = series.len() > 1;
    series
        .iter()
        .fold(Plot::new(title, "", y_label), |plot, (name, s)| {
            plot.rate(s, if named { name } else { "" })
        })
        .render()
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
        // Cells are centred on their points: the axes end half a cell beyond the outer ones.
        let (hx, hy) = (cell.0 / 2.0, cell.1 / 2.0);
        let (xs, ys) = (x0 - hx..x1 + hx, y0 - hy..y1 + hy);
        let mut chart = styled_chart(&plot, title, xs, ys, (x_label, y_label), false)?;
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
                "<rect x=\"{a}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill-opacity=\"0\"><title>({}, {}): {}</title></rect>",
                (b - a).max(1),
                (bottom - top).max(1),
                tick_label(*x),
                tick_label(*y),
                escape_xml(&tick_label(*v))
            ));
        }
        if points.is_empty() {
            draw_no_data(&plot, chart.plotting_area().get_pixel_range())?;
        }
        colour_bar(&bar, value_label, (v0, v1), 40, false)?;
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

/// A vertical viridis colour bar over `range` with its label on top, for a figure a plugin
/// draws itself wherever colour encodes a value (about 90 px wide). With `log` the range is
/// in log10 of the value and the ticks are labelled in decades (0.1, 1, 10, …).
pub fn colour_bar(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    label: &str,
    (v0, v1): (f64, f64),
    margin_top: u32,
    log: bool,
) -> Result<(), String> {
    use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
    let decade = |v: &f64| {
        if (v - v.round()).abs() < 1e-6 {
            tick_label(10f64.powi(v.round() as i32))
        } else {
            String::new()
        }
    };
    let mut scale = ChartBuilder::on(area)
        .margin_top(margin_top)
        .margin_bottom(60)
        .margin_right(8)
        .y_label_area_size(56)
        .caption(label, ("sans-serif", 13))
        .build_cartesian_2d(0.0..1.0, v0..v1)
        .map_err(|e| e.to_string())?;
    let mut mesh = scale.configure_mesh();
    mesh.disable_mesh().disable_x_axis().label_style(("sans-serif", 12));
    if log {
        // Enough ticks that every whole decade is one of them; only decades are labelled.
        mesh.y_labels(((v1 - v0).ceil() as usize + 1) * 2 + 1).y_label_formatter(&decade);
    } else {
        mesh.y_label_formatter(&|v| tick_label(*v));
    }
    mesh.draw().map_err(|e| e.to_string())?;
    let steps = 64;
    scale
        .draw_series((0..steps).map(|i| {
            let a = v0 + (v1 - v0) * i as f64 / steps as f64;
            let b = v0 + (v1 - v0) * (i + 1) as f64 / steps as f64;
            // The bar starts a little right of its axis: the tick labels end there.
            Rectangle::new(
                [(0.2, a), (1.0, b)],
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
    /// A line through points; it breaks where a value cannot be drawn (≤ 0 on a log axis).
    Line(Vec<(f64, f64)>),
    /// Markers.
    Points(Vec<(f64, f64)>),
    /// Markers with vertical error bars `(x, y, error)`.
    ErrorPoints(Vec<(f64, f64, f64)>),
    /// A reference run's histogram, scaled to the plot's first histogram: grey dashed steps.
    Reference(Hist1D),
    /// A reference run's histogram for the histogram series named here (a plot of several),
    /// scaled to that series: dashed steps in the series' colour.
    ReferenceOf(String, Hist1D),
    /// Lines with gaps between them (a quantity undefined where there was no data).
    Segments(Vec<Vec<(f64, f64)>>),
    /// A black dashed line (a sum of the other series, an expectation).
    Dashed(Vec<(f64, f64)>),
}

impl Series {
    /// Whether it has anything to draw (`log`: only positive values count).
    fn has_data(&self, log: bool) -> bool {
        let drawable = |y: f64| y.is_finite() && (!log || y > 0.0);
        match self {
            Self::Hist(h) | Self::Reference(h) | Self::ReferenceOf(_, h) => {
                h.counts.iter().any(|c| *c != 0.0 && drawable(*c))
            }
            Self::Line(p) | Self::Points(p) | Self::Dashed(p) => p.iter().any(|q| drawable(q.1)),
            Self::ErrorPoints(p) => p.iter().any(|q| drawable(q.1)),
            Self::Segments(s) => s.iter().flatten().any(|q| drawable(q.1)),
        }
    }
}

/// A figure built from several series on shared axes, in the common style: histograms, lines
/// (e.g. a fit), points with error bars, rates over time; linear or log y.
///
/// One style for every plugin: tick labels print integers as integers and log axes in
/// decades; a legend never covers data (it sits in head-room above the data, or beside the
/// plot when there are more than three entries); series with identical data are drawn once
/// with their names joined; an empty figure says "no data"; time axes count seconds since the
/// run start, with the start in UTC in the axis label.
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
    /// x values are Unix seconds (drawn as seconds since the run start).
    #[serde(default)]
    time_x: bool,
    /// The run's first Unix second, when the host knows it.
    #[serde(default)]
    run_start: Option<u64>,
}

/// Where a legend goes.
enum LegendPlace {
    /// Upper right, inside the plot, in head-room reserved above the data.
    Inside,
    /// In a column right of the plot.
    Beside(u32),
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
            time_x: false,
            run_start: None,
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
    /// A black dashed line (a total over the other series, an expectation).
    pub fn dashed_line(mut self, points: Vec<(f64, f64)>, name: &str) -> Self {
        self.series.push((name.into(), Series::Dashed(points)));
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
    /// A rate over time from per-second sums: x is time (the axis counts seconds since the
    /// run start), a second without entries is a rate of 0 (the line drops to 0, or breaks on
    /// a log axis) — sparse series never look steady.
    pub fn rate(mut self, series: &TimeSeries, name: &str) -> Self {
        self.time_x = true;
        self.series.push((name.into(), Series::Line(rate_points(series))));
        self
    }
    /// [`Plot::rate`] as a black dashed line (the total of the other rates).
    pub fn total_rate(mut self, series: &TimeSeries, name: &str) -> Self {
        self.time_x = true;
        self.series.push((name.into(), Series::Dashed(rate_points(series))));
        self
    }
    /// A quantity over time, `(Unix second, value)` in time order, undefined where there is no
    /// point (a fraction of nothing): the line breaks at every missing second.
    pub fn over_time(mut self, points: &[(u64, f64)], name: &str) -> Self {
        self.time_x = true;
        let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut last: Option<u64> = None;
        for (t, v) in points {
            if last.is_none_or(|l| t.saturating_sub(l) > 1) {
                segments.push(Vec::new());
            }
            if let Some(segment) = segments.last_mut() {
                segment.push((*t as f64 + 0.5, *v));
            }
            last = Some(*t);
        }
        self.series.push((name.into(), Series::Segments(segments)));
        self
    }
    /// x values are Unix seconds ([`Plot::rate`] and [`Plot::over_time`] set it): the axis
    /// counts seconds since the run start and names the start in UTC.
    pub fn time_axis(mut self) -> Self {
        self.time_x = true;
        self
    }
    /// The run's first Unix second, the origin of a time axis (the host sets it before
    /// drawing; without it the origin is the figure's first second).
    pub fn with_run_start(mut self, unix_s: Option<u64>) -> Self {
        self.run_start = unix_s.or(self.run_start);
        self
    }
    /// A line of text in the top-right corner (e.g. a fit result).
    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.notes.push(text.into());
        self
    }

    /// The plot's first histogram.
    pub fn first_hist(&self) -> Option<&Hist1D> {
        self.hists().next().map(|(_, h)| h)
    }

    /// Every histogram of the plot with its series name, in drawing order (what a reference
    /// is compared with, series by series).
    pub fn hists(&self) -> impl Iterator<Item = (&str, &Hist1D)> {
        self.series.iter().filter_map(|(name, s)| match s {
            Series::Hist(h) => Some((name.as_str(), h)),
            _ => None,
        })
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The axis labels (x, y).
    pub fn labels(&self) -> (&str, &str) {
        (&self.labels.0, &self.labels.1)
    }

    /// What breaks the common style, for a plugin's tests and larmon's figure gallery: an
    /// empty title or y label, an x label without its unit (in brackets — `[ticks]`, `[Hz]`,
    /// `[id]` for an index — or a `log10(…)` with the unit inside; a time axis is labelled by
    /// the renderer), more coloured series than distinct colours.
    pub fn style_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.title.trim().is_empty() {
            problems.push("no title".to_string());
        }
        if self.labels.1.trim().is_empty() {
            problems.push("no y axis label".to_string());
        }
        if !self.time_x && !has_unit(&self.labels.0) {
            problems.push(format!("x axis label {:?} names no unit", self.labels.0));
        }
        let coloured = self
            .merged_series()
            .iter()
            .filter(|(_, s)| {
                !matches!(s, Series::Reference(_) | Series::ReferenceOf(..) | Series::Dashed(_))
            })
            .count();
        if coloured > 1 + SERIES.len() {
            problems.push(format!("{coloured} series but {} distinct colours", 1 + SERIES.len()));
        }
        problems
    }

    /// Whether any series has something to draw.
    pub fn has_data(&self) -> bool {
        self.series.iter().any(|(_, s)| s.has_data(self.log_y))
    }

    /// Overlays `reference` (a reference run's histogram with the same binning), scaled to
    /// the area of this plot's first histogram, as grey dashed steps named `label`. Nothing is
    /// drawn when the binnings differ or either is empty.
    pub fn with_reference(self, reference: &Hist1D, label: &str) -> Self {
        let Some(first) = self.hists().next().map(|(name, _)| name.to_string()) else {
            return self;
        };
        self.with_reference_of(&first, reference, label)
    }

    /// [`Plot::with_reference`] for the histogram series named `series`: `reference` scaled
    /// to that histogram's area.
    pub fn with_reference_of(mut self, series: &str, reference: &Hist1D, label: &str) -> Self {
        let Some(own) = self.hists().find(|(name, _)| *name == series).map(|(_, h)| h) else {
            return self;
        };
        let same = own.counts.len() == reference.counts.len()
            && own.lo == reference.lo
            && own.hi == reference.hi;
        let (a, b) = (own.total(), reference.total());
        if !same || a <= 0.0 || b <= 0.0 {
            return self;
        }
        let mut scaled = reference.clone();
        scaled.counts.iter_mut().for_each(|c| *c *= a / b);
        let reference = if self.hists().count() > 1 {
            Series::ReferenceOf(series.into(), scaled)
        } else {
            Series::Reference(scaled)
        };
        self.series.push((label.into(), reference));
        self
    }

    /// The series as drawn: data-identical series merged into one entry whose name lists
    /// them all ("io_group 1, 2, 3"), so none hides exactly under another.
    fn merged_series(&self) -> Vec<(String, &Series)> {
        let mut merged: Vec<(Vec<&str>, &Series)> = Vec::new();
        for (name, series) in &self.series {
            match merged.iter_mut().find(|(_, s)| *s == series) {
                Some((names, _)) if !name.is_empty() => names.push(name),
                Some(_) => {}
                None => merged.push((vec![name.as_str()], series)),
            }
        }
        merged
            .into_iter()
            .map(|(names, series)| {
                // Names sharing a first word ("io_group 1", "io_group 2"): "io_group 1, 2".
                let prefix = names[0].rsplit_once(' ').map_or("", |(p, _)| p);
                let shared = !prefix.is_empty()
                    && names
                        .iter()
                        .all(|n| n.strip_prefix(prefix).is_some_and(|r| r.starts_with(' ')));
                let name = if names.len() > 1 && shared {
                    let rest: Vec<&str> =
                        names[1..].iter().map(|n| n[prefix.len() + 1..].trim()).collect();
                    format!("{}, {}", names[0], rest.join(", "))
                } else {
                    names.join(", ")
                };
                (name, series)
            })
            .collect()
    }

    /// The x and y extent of the data (x in Unix seconds for a time axis; y in log10 units on
    /// a log axis).
    fn extent(&self) -> ((f64, f64), (f64, f64)) {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (_, s) in &self.series {
            match s {
                Series::Hist(h) | Series::Reference(h) | Series::ReferenceOf(_, h) => {
                    xs.extend([h.lo, h.hi]);
                    ys.extend(h.counts.iter().copied());
                }
                Series::Line(p) | Series::Points(p) | Series::Dashed(p) => {
                    xs.extend(p.iter().map(|q| q.0));
                    ys.extend(p.iter().map(|q| q.1));
                }
                Series::Segments(s) => {
                    xs.extend(s.iter().flatten().map(|q| q.0));
                    ys.extend(s.iter().flatten().map(|q| q.1));
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
        let x = if self.time_x {
            // Whole seconds from the origin (the run start may precede the first point).
            let origin = time_origin(self.run_start, x.0);
            (origin as f64, x.1.ceil().max(origin as f64 + 1.0))
        } else {
            x
        };
        let x = if x.1 > x.0 { x } else { (x.0 - 0.5, x.0 + 0.5) };
        let y = self.y_range.unwrap_or_else(|| {
            if self.log_y {
                let (lo, hi) = finite(&ys, &|v| v > 0.0).unwrap_or((1.0, 10.0));
                // A value exactly on a decade sits above the axis, not on it.
                let bottom = (lo.log10() - 0.05).floor();
                (bottom, (hi.log10() + 0.3).ceil().max(bottom + 1.0))
            } else {
                let (lo, hi) = finite(&ys, &|_| true).unwrap_or((0.0, 1.0));
                let has_hist = self.series.iter().any(|(_, s)| matches!(s, Series::Hist(_)));
                if has_hist || lo >= 0.0 && lo < 0.25 * hi {
                    let lo = lo.min(0.0);
                    let hi = if hi > lo { hi } else { lo + 1.0 };
                    (lo, hi + (hi - lo) * 0.12)
                } else {
                    // Points and lines only: zoom on them (a slope must be visible).
                    // A constant (every sync at −1 tick) gets a range of its own size, at
                    // least ±1, so its ticks stay distinct.
                    let pad = if hi - lo > 1e-9 * hi.abs().max(1.0) {
                        (hi - lo) * 0.15
                    } else {
                        (hi.abs() * 0.1).max(1.0)
                    };
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
        let series = self.merged_series();
        let named: Vec<(usize, &str)> = series
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| !n.is_empty())
            .map(|(k, (n, _))| (k, n.as_str()))
            .collect();
        let overlay = series.len() > 1;
        // A legend when there is more than one thing to tell apart (also when identical
        // series were merged into one entry that names them all).
        let legend = (!named.is_empty() && (named.len() > 1 || self.series.len() > 1)).then(|| {
            if named.len() <= 3 {
                LegendPlace::Inside
            } else {
                let chars = named.iter().map(|(_, n)| n.chars().count()).max().unwrap_or(4);
                LegendPlace::Beside((chars as u32 * 7 + 40).clamp(90, 220))
            }
        });
        let result = (|| -> Result<(), String> {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let (plot_area, legend_area) = match legend {
                Some(LegendPlace::Beside(w)) => {
                    let (a, b) = root.split_horizontally(SIZE.0 - w);
                    (a, Some(b))
                }
                _ => (root.clone(), None),
            };
            let ((x0, x1), (y0, mut y1)) = self.extent();
            // Head-room above the data for the notes and an inside legend (~300 px of plot).
            let lines = self.notes.len()
                + if matches!(legend, Some(LegendPlace::Inside)) { named.len() } else { 0 };
            if lines > 0 && self.y_range.is_none() {
                let fraction = ((lines as f64 * 18.0 + 16.0) / 300.0).min(0.6);
                y1 = y0 + (y1 - y0) / (1.0 - fraction);
            }
            let origin = if self.time_x { x0 } else { 0.0 };
            let tx = move |x: f64| x - origin;
            let (x0, x1) = (tx(x0), tx(x1));
            let log = self.log_y;
            let ty = move |v: f64| if log { if v > 0.0 { v.log10() } else { f64::NAN } } else { v };
            let x_label = if self.time_x {
                time_axis_label(origin as u64, self.run_start.is_some())
            } else {
                self.labels.0.clone()
            };
            let mut chart = ChartBuilder::on(&plot_area)
                .caption(&self.title, TITLE_FONT)
                .margin(12)
                .margin_right(if legend_area.is_some() { 8 } else { 24 })
                .x_label_area_size(48)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?;
            let decade = |v: &f64| {
                if (v - v.round()).abs() < 1e-6 {
                    tick_label(10f64.powi(v.round() as i32))
                } else {
                    String::new()
                }
            };
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(&x_label)
                .y_desc(&self.labels.1)
                .axis_desc_style(LABEL_FONT)
                .label_style(("sans-serif", 13))
                .x_label_formatter(&|v| tick_label(*v));
            if log {
                mesh.y_labels(((y1 - y0) as usize + 1).max(2) * 2 + 1).y_label_formatter(&decade);
            } else {
                mesh.y_label_formatter(&|v| tick_label(*v));
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
                        [(tx(h.lo + i as f64 * w), y), (tx(h.lo + (i + 1) as f64 * w), y)]
                    })
                    .collect()
            };
            // Runs of drawable points (a line breaks where a value cannot be drawn).
            let runs = |p: &[(f64, f64)]| -> Vec<Vec<(f64, f64)>> {
                let mut runs = vec![Vec::new()];
                for q in p {
                    let y = ty(q.1);
                    if y.is_finite() {
                        runs.last_mut().expect("one run").push((tx(q.0), y));
                    } else if !runs.last().expect("one run").is_empty() {
                        runs.push(Vec::new());
                    }
                }
                runs.retain(|r| !r.is_empty());
                runs
            };
            let mut entries: Vec<(String, RGBAColor, LegendMark)> = Vec::new();
            let mut colour_index = 0;
            let grey = RGBColor(90, 90, 90).to_rgba();
            // The colour each histogram series got, for its reference.
            let mut colour_of: Vec<(&str, RGBAColor)> = Vec::new();
            for (name, series) in &series {
                let color = match series {
                    Series::Reference(_) => grey,
                    Series::ReferenceOf(of, _) => colour_of
                        .iter()
                        .find(|(n, _)| n.split(", ").any(|part| part == of))
                        .map_or(grey, |(_, c)| *c),
                    Series::Dashed(_) => BLACK.to_rgba(),
                    _ => {
                        colour_index += 1;
                        series_color(colour_index - 1).to_rgba()
                    }
                };
                if let Series::Hist(_) = series {
                    colour_of.push((name.as_str(), color));
                }
                let mark = match series {
                    Series::Hist(h) => {
                        let w = h.width();
                        let base = if log { y0 } else { 0.0 };
                        if overlay {
                            chart
                                .draw_series(LineSeries::new(steps(h), color.stroke_width(2)))
                                .map_err(|e| e.to_string())?;
                            LegendMark::Line
                        } else {
                            chart
                                .draw_series(
                                    h.counts
                                        .iter()
                                        .enumerate()
                                        .filter(|(_, c)| !log || **c > 0.0)
                                        .map(|(i, c)| {
                                            let xa = tx(h.lo + i as f64 * w);
                                            Rectangle::new(
                                                [(xa, base), (xa + w, ty(*c))],
                                                color.filled(),
                                            )
                                        }),
                                )
                                .map_err(|e| e.to_string())?;
                            LegendMark::Box
                        }
                    }
                    Series::Reference(h) | Series::ReferenceOf(_, h) => {
                        // Dashed steps, drawn over the data.
                        chart
                            .draw_series(DashedLineSeries::new(
                                steps(h),
                                6,
                                4,
                                color.stroke_width(2),
                            ))
                            .map_err(|e| e.to_string())?;
                        LegendMark::Dashed
                    }
                    Series::Dashed(p) => {
                        for run in runs(p) {
                            chart
                                .draw_series(DashedLineSeries::new(
                                    run,
                                    6,
                                    4,
                                    color.stroke_width(2),
                                ))
                                .map_err(|e| e.to_string())?;
                        }
                        LegendMark::Dashed
                    }
                    Series::Line(p) => {
                        for run in runs(p) {
                            draw_run(&mut chart, run, color)?;
                        }
                        LegendMark::Line
                    }
                    Series::Segments(segments) => {
                        for segment in segments {
                            for run in runs(segment) {
                                draw_run(&mut chart, run, color)?;
                            }
                        }
                        LegendMark::Line
                    }
                    Series::Points(p) => {
                        let at = p.iter().map(|q| (tx(q.0), ty(q.1)));
                        draw_markers(&mut chart, at, 3, color)?;
                        LegendMark::Dot
                    }
                    Series::ErrorPoints(p) => {
                        chart
                            .draw_series(p.iter().filter(|q| ty(q.1).is_finite()).map(|q| {
                                let lo = ty(q.1 - q.2);
                                let lo = if lo.is_finite() { lo } else { y0 };
                                PathElement::new(
                                    [(tx(q.0), lo), (tx(q.0), ty(q.1 + q.2))],
                                    color.stroke_width(2),
                                )
                            }))
                            .map_err(|e| e.to_string())?;
                        let at = p.iter().map(|q| (tx(q.0), ty(q.1)));
                        draw_markers(&mut chart, at, 4, color)?;
                        LegendMark::Dot
                    }
                };
                if let Series::ReferenceOf(..) = series {
                    // One legend entry says what dashed steps are, in grey.
                    if !name.is_empty() && !entries.iter().any(|(n, _, _)| n == name) {
                        entries.push((name.clone(), grey, mark));
                    }
                } else if !name.is_empty() {
                    entries.push((name.clone(), color, mark));
                }
            }
            // Hover values: a transparent box per bin of the first histogram (with the
            // reference's value, if any) and per marker, each with an SVG <title>.
            let first_name = self.hists().next().map(|(name, _)| name);
            let reference = self.series.iter().find_map(|(_, s)| match s {
                Series::Reference(h) => Some(h),
                Series::ReferenceOf(of, h) if Some(of.as_str()) == first_name => Some(h),
                _ => None,
            });
            if let Some(h) = self.first_hist() {
                let w = h.width();
                for (i, c) in h.counts.iter().enumerate() {
                    let (xa, xb) = (h.lo + i as f64 * w, h.lo + (i + 1) as f64 * w);
                    let (a, top) = chart.backend_coord(&(tx(xa), y1));
                    let (b, bottom) = chart.backend_coord(&(tx(xb), y0));
                    let mut text =
                        format!("[{}, {}): {}", tick_label(xa), tick_label(xb), tick_label(*c));
                    if let Some(r) = reference.and_then(|r| r.counts.get(i)) {
                        text += &format!(" (reference {})", tick_label(*r));
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
                    let (cx, cy) = chart.backend_coord(&(tx(x), ty(y)));
                    let text = match error {
                        Some(e) => {
                            format!("{}: {} ± {}", tick_label(tx(x)), tick_label(y), tick_label(e))
                        }
                        None => format!("{}: {}", tick_label(tx(x)), tick_label(y)),
                    };
                    hover.push(format!(
                        "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"6\" fill-opacity=\"0\"><title>{}</title></circle>",
                        escape_xml(&text)
                    ));
                }
            }
            let (px, py) = chart.plotting_area().get_pixel_range();
            if !self.has_data() {
                draw_no_data(&root, (px.clone(), py.clone()))?;
            }
            let text_style = |anchor| {
                ("sans-serif", 13).into_font().color(&BLACK).pos(
                    plotters::style::text_anchor::Pos::new(
                        anchor,
                        plotters::style::text_anchor::VPos::Center,
                    ),
                )
            };
            use plotters::style::text_anchor::HPos;
            // The legend: inside at the upper right (in the head-room), or beside the plot.
            let mut line = 0;
            if let Some(place) = &legend {
                let chars = entries.iter().map(|e| e.0.chars().count()).max().unwrap_or(1) as i32;
                let (left, top, area) = match place {
                    LegendPlace::Inside => (px.end - 8 - (chars * 7 + 34), py.start + 6, &root),
                    LegendPlace::Beside(_) => {
                        (4, py.start - 2, legend_area.as_ref().unwrap_or(&root))
                    }
                };
                if matches!(place, LegendPlace::Inside) {
                    area.draw(&Rectangle::new(
                        [(left, top), (px.end - 8, top + 8 + 18 * entries.len() as i32)],
                        ShapeStyle::from(&BLACK).stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
                }
                for (k, (name, color, mark)) in entries.iter().enumerate() {
                    let y = top + 13 + 18 * k as i32;
                    let x = left + 6;
                    match mark {
                        LegendMark::Box => area
                            .draw(&Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled())),
                        LegendMark::Line => area
                            .draw(&PathElement::new([(x, y), (x + 18, y)], color.stroke_width(3))),
                        LegendMark::Dashed => area
                            .draw(&PathElement::new([(x, y), (x + 7, y)], color.stroke_width(2)))
                            .and_then(|_| {
                                area.draw(&PathElement::new(
                                    [(x + 11, y), (x + 18, y)],
                                    color.stroke_width(2),
                                ))
                            }),
                        LegendMark::Dot => area.draw(&Circle::new((x + 9, y), 4, color.filled())),
                    }
                    .map_err(|e| e.to_string())?;
                    area.draw(&Text::new(name.clone(), (x + 24, y), text_style(HPos::Left)))
                        .map_err(|e| e.to_string())?;
                }
                if matches!(place, LegendPlace::Inside) {
                    line = entries.len() as i32 + 1;
                }
            }
            for (k, note) in self.notes.iter().enumerate() {
                let y = py.start + 14 + 18 * (line + k as i32);
                root.draw(&Text::new(note.clone(), (px.end - 8, y), text_style(HPos::Right)))
                    .map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())
        })();
        with_hover(finish(result, svg), &hover)
    }
}

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
enum LegendMark {
    Box,
    Line,
    Dashed,
    Dot,
}

/// Filled circles of `radius` px at the drawable points (y finite) of `at`.
fn draw_markers(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    at: impl Iterator<Item = (f64, f64)>,
    radius: i32,
    color: RGBAColor,
) -> Result<(), String> {
    chart
        .draw_series(at.filter(|q| q.1.is_finite()).map(|q| Circle::new(q, radius, color.filled())))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// One unbroken run of a line; a lone point gets a marker so it stays visible.
fn draw_run(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    run: Vec<(f64, f64)>,
    color: RGBAColor,
) -> Result<(), String> {
    if run.len() == 1 {
        chart.draw_series(run.into_iter().map(|p| Circle::new(p, 3, color.filled())))
    } else {
        chart.draw_series(LineSeries::new(run, color.stroke_width(2)))
    }
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// A per-second series as rate points at the middle of each second, with a 0 at both edges
/// of every gap (a second without entries has a rate of 0).
fn rate_points(series: &TimeSeries) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    let mut last: Option<u64> = None;
    for (t, v) in series.points() {
        if let Some(l) = last.filter(|l| t > l + 1) {
            points.push((l as f64 + 1.5, 0.0));
            if t > l + 2 {
                points.push((t as f64 - 0.5, 0.0));
            }
        }
        points.push((t as f64 + 0.5, v));
        last = Some(t);
    }
    points
}

/// Whether an axis label names its unit: in brackets, or inside a `log10(…)`.
pub fn has_unit(label: &str) -> bool {
    label.contains('[') && label.contains(']') || label.contains("log10(")
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
/// grey, so silent channels stand out. `log` colours by log10 of the value, with the colour
/// bar labelled in decades; `range` fixes the colour scale (default: the values' range,
/// widened to whole decades with `log`). The raster is an embedded PNG, so a 78 400-pixel map
/// stays small.
pub fn pixel_map(
    pixels: &crate::geometry::Pixels,
    value: &dyn Fn(u32) -> Option<f64>,
    title: &str,
    value_label: &str,
    log: bool,
    range: Option<(f64, f64)>,
) -> String {
    pixel_map_of(pixels, value, &|_| false, title, value_label, log, range, None)
}

/// [`pixel_map`] with a red ring around every pixel `marked` names (e.g. rates ten times the
/// median), so single hot channels are seen on the 2x2-wide map.
pub fn pixel_map_marked(
    pixels: &crate::geometry::Pixels,
    value: &dyn Fn(u32) -> Option<f64>,
    marked: &dyn Fn(u32) -> bool,
    title: &str,
    value_label: &str,
    log: bool,
) -> String {
    pixel_map_of(pixels, value, marked, title, value_label, log, None, None)
}

/// [`pixel_map`] of one TPC, large, with its tiles outlined and numbered: the zoom a shifter
/// opens to find which tile and where on it.
pub fn pixel_map_tpc(
    pixels: &crate::geometry::Pixels,
    tpc: u8,
    value: &dyn Fn(u32) -> Option<f64>,
    title: &str,
    value_label: &str,
    log: bool,
    range: Option<(f64, f64)>,
) -> String {
    pixel_map_of(pixels, value, &|_| false, title, value_label, log, range, Some(tpc))
}

#[allow(clippy::too_many_arguments)] // private: the public functions name the cases
fn pixel_map_of(
    pixels: &crate::geometry::Pixels,
    value: &dyn Fn(u32) -> Option<f64>,
    marked: &dyn Fn(u32) -> bool,
    title: &str,
    value_label: &str,
    log: bool,
    range: Option<(f64, f64)>,
    only: Option<u8>,
) -> String {
    use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
    let transform =
        |v: f64| if log { if v > 0.0 { Some(v.log10()) } else { None } } else { Some(v) };
    // One value per pixel in the pixels' order (a map of 337 k pixels: no tree to build).
    let values: Vec<Option<f64>> = pixels
        .iter()
        .map(|p| {
            only.is_none_or(|t| t == p.tpc)
                .then(|| value(p.unique_id).and_then(transform))
                .flatten()
                .filter(|v| v.is_finite())
        })
        .collect();
    let (mut v0, mut v1) = values
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    if let Some((lo, hi)) = range {
        (v0, v1) = (transform(lo).unwrap_or(lo), transform(hi).unwrap_or(hi));
    } else if log && v0.is_finite() {
        (v0, v1) = (v0.floor(), v1.ceil());
    }
    if !v0.is_finite() {
        (v0, v1) = (0.0, 1.0);
    } else if v1 <= v0 {
        v1 = v0 + 1.0;
    }
    let colour = |k: usize, _: &crate::geometry::Pixel| match values[k] {
        Some(v) => {
            let c = ViridisRGB.get_color_normalized(v, v0, v1);
            [c.0, c.1, c.2]
        }
        None => [190, 190, 190],
    };
    let ring = |_: usize, p: &crate::geometry::Pixel| marked(p.unique_id).then_some([214, 39, 40]);
    let empty = values.iter().all(Option::is_none);
    let key = MapKey::Scale { label: value_label, range: (v0, v1), log, empty };
    anode_panels(pixels, &colour, &ring, title, key, only)
}

/// A per-pixel map of categories (e.g. ok, hot, noisy, dead): each pixel coloured by its
/// category's colour, `category(unique_id)` an index into `categories` (name, RGB); a legend
/// with the count of each category instead of a colour bar. Pixels of every category but the
/// first (the normal one) also get a ring, so single channels are seen on a 2x2-wide map.
pub fn pixel_category_map(
    pixels: &crate::geometry::Pixels,
    category: &dyn Fn(u32) -> Option<usize>,
    categories: &[(&str, (u8, u8, u8))],
    title: &str,
    only: Option<u8>,
) -> String {
    let mut counts = vec![0usize; categories.len()];
    for p in pixels.iter().filter(|p| only.is_none_or(|t| t == p.tpc)) {
        if let Some(c) = category(p.unique_id).filter(|c| *c < categories.len()) {
            counts[c] += 1;
        }
    }
    let rgb = |c: usize| {
        let (r, g, b) = categories[c].1;
        [r, g, b]
    };
    let colour = |_: usize, p: &crate::geometry::Pixel| {
        category(p.unique_id).filter(|c| *c < categories.len()).map_or([255, 255, 255], rgb)
    };
    let ring = |_: usize, p: &crate::geometry::Pixel| {
        category(p.unique_id).filter(|c| *c > 0 && *c < categories.len()).map(rgb)
    };
    let legend = categories
        .iter()
        .zip(&counts)
        .enumerate()
        .map(|(c, ((name, _), n))| (format!("{name} ({n})"), rgb(c)))
        .collect();
    anode_panels(pixels, &colour, &ring, title, MapKey::Categories(legend), only)
}

/// What the side of a pixel map explains.
enum MapKey<'a> {
    /// A viridis colour bar over `range` (log10 units with `log`); `empty`: no pixel has a value.
    Scale { label: &'a str, range: (f64, f64), log: bool, empty: bool },
    /// Category names (with counts) and colours.
    Categories(Vec<(String, [u8; 3])>),
}

/// The anode panels of a pixel map: a raster per TPC (or one TPC, larger, with its tiles
/// outlined) coloured by `colour`, rings around the pixels `ring` names (at most 3000), and
/// the key at the side.
fn anode_panels(
    pixels: &crate::geometry::Pixels,
    colour: &dyn Fn(usize, &crate::geometry::Pixel) -> [u8; 3],
    ring: &dyn Fn(usize, &crate::geometry::Pixel) -> Option<[u8; 3]>,
    title: &str,
    key: MapKey<'_>,
    only: Option<u8>,
) -> String {
    let anodes: Vec<(u8, crate::geometry::Anode)> = pixels
        .anodes()
        .iter()
        .filter(|(k, _)| only.is_none_or(|t| t == **k))
        .map(|(k, a)| (*k, *a))
        .collect();
    let panels = anodes.len().max(1) as u32;
    let key_width = match &key {
        MapKey::Scale { .. } => 100,
        MapKey::Categories(names) => names
            .iter()
            .map(|(n, _)| n.chars().count() as u32 * 7 + 40)
            .max()
            .unwrap_or(100)
            .max(100),
    };
    let (width, height) = if only.is_some() {
        (560 + key_width, 900)
    } else {
        ((300 * panels + key_width).max(SIZE.0), 560)
    };
    // Each anode's pixels (indices into `pixels`), found in one pass: a pass over all of them
    // per panel was the largest part of a 2x2 pixel map's time.
    let mut of_anode: BTreeMap<u8, Vec<(usize, &crate::geometry::Pixel)>> = BTreeMap::new();
    for (k, p) in pixels.iter().enumerate() {
        if only.is_none_or(|t| t == p.tpc) {
            of_anode.entry(p.tpc).or_default().push((k, p));
        }
    }
    let mut svg = String::new();
    let mut images = Vec::new();
    let mut overlay = String::new();
    let result = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root.titled(title, TITLE_FONT).map_err(|e| e.to_string())?;
        let (plots, side) = root.split_horizontally(width - key_width);
        let areas = plots.split_evenly((1, panels as usize));
        for ((tpc, anode), area) in anodes.iter().zip(&areas) {
            let (x0, x1, y0, y1) = anode.extent;
            let pitch = anode.pitch_mm.max(1e-6);
            let half = pitch / 2.0;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("TPC {tpc}"), LABEL_FONT)
                .margin(8)
                .margin_right(16)
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
                .x_label_formatter(&|v| tick_label(*v))
                .y_label_formatter(&|v| tick_label(*v))
                .draw()
                .map_err(|e| e.to_string())?;
            let cols = ((x1 - x0) / pitch).round() as usize + 1;
            let rows = ((y1 - y0) / pitch).round() as usize + 1;
            let mut rgba = vec![255u8; cols * rows * 4];
            let mut tiles: BTreeMap<u16, (f64, f64, f64, f64)> = BTreeMap::new();
            for &(k, p) in of_anode.get(tpc).map_or(&[][..], Vec::as_slice) {
                // Offsets from the extent's corner are whole pitches up to rounding, never
                // halves: rounding half to even (one Wasm instruction) is rounding here.
                let c = (((p.x_mm - x0) / pitch).round_ties_even() as usize).min(cols - 1);
                let r =
                    rows - 1 - (((p.y_mm - y0) / pitch).round_ties_even() as usize).min(rows - 1);
                rgba[(r * cols + c) * 4..][..3].copy_from_slice(&colour(k, p));
                if let Some([red, green, blue]) = ring(k, p) {
                    if overlay.len() < 3000 * 120 {
                        let (cx, cy) = chart.backend_coord(&(p.x_mm, p.y_mm));
                        overlay += &format!(
                            "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"5\" fill=\"none\" stroke=\"rgb({red},{green},{blue})\" stroke-width=\"1.5\"/>"
                        );
                    }
                }
                if only.is_some() {
                    let t = tiles.entry(p.tile).or_insert((p.x_mm, p.x_mm, p.y_mm, p.y_mm));
                    *t = (t.0.min(p.x_mm), t.1.max(p.x_mm), t.2.min(p.y_mm), t.3.max(p.y_mm));
                }
            }
            if only.is_some() {
                // Tiles outlined and numbered.
                for (tile, (a, b, c, d)) in &tiles {
                    let (left, top) = chart.backend_coord(&(a - half, d + half));
                    let (right, bottom) = chart.backend_coord(&(b + half, c - half));
                    overlay += &format!(
                        "<rect x=\"{left}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"white\" stroke-width=\"1.5\"/>\
                         <text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"14\" text-anchor=\"middle\" fill=\"white\" stroke=\"black\" stroke-width=\"0.6\">tile {tile}</text>",
                        right - left,
                        bottom - top,
                        (left + right) / 2,
                        top + 18
                    );
                }
            }
            let (px, py) = chart.plotting_area().get_pixel_range();
            images.push((px, py, cols, rows, rgba));
        }
        match &key {
            MapKey::Scale { label, range, log, empty } => {
                if *empty {
                    if let Some((px, py)) = images.first().map(|i| (i.0.clone(), i.1.clone())) {
                        overlay += &format!(
                            "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"20\" text-anchor=\"middle\" fill=\"rgb(120,120,120)\">no data</text>",
                            (px.start + px.end) / 2,
                            (py.start + py.end) / 2
                        );
                    }
                }
                colour_bar(&side, label, *range, 60, *log)?;
            }
            MapKey::Categories(names) => {
                for (k, (name, [r, g, b])) in names.iter().enumerate() {
                    let y = 80 + 22 * k as i32;
                    side.draw(&Rectangle::new(
                        [(8, y - 7), (22, y + 7)],
                        ShapeStyle::from(&RGBColor(*r, *g, *b)).filled(),
                    ))
                    .and_then(|_| {
                        side.draw(&Rectangle::new([(8, y - 7), (22, y + 7)], BLACK.stroke_width(1)))
                    })
                    .and_then(|_| {
                        side.draw(&Text::new(
                            name.clone(),
                            (28, y),
                            ("sans-serif", 13).into_font().color(&BLACK).pos(
                                plotters::style::text_anchor::Pos::new(
                                    plotters::style::text_anchor::HPos::Left,
                                    plotters::style::text_anchor::VPos::Center,
                                ),
                            ),
                        ))
                    })
                    .map_err(|e| e.to_string())?;
                }
            }
        }
        root.present().map_err(|e| e.to_string())
    })();
    if result.is_ok() {
        // Raster panels go in after plotters wrote the frame (its SVG backend cannot embed
        // bitmaps on wasm32); rings and tile outlines over them.
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
        embedded += &overlay;
        if let Some(end) = svg.rfind("</svg>") {
            svg.insert_str(end, &embedded);
        }
    }
    finish(result, svg)
}

/// An RGBA raster as a base64 PNG. Maps are runs of a few flat colours: without PNG's row
/// filters and at DEFLATE level 1 they encode 16× faster than the png crate's default
/// (adaptive filters, level 6) and 30 % smaller (the pixel-maps of a 2x2 run: 30 ms and 1.7 MB
/// against 475 ms and 2.5 MB natively; docs/performance.md).
fn png_base64(width: u32, height: u32, rgba: &[u8]) -> String {
    use base64::Engine;
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_filter(png::Filter::NoFilter);
        encoder.set_deflate_compression(png::DeflateCompression::Level(1));
        if let Ok(mut writer) = encoder.write_header() {
            let _ = writer.write_image_data(rgba);
        }
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The x position and text of every `<text>` element of an SVG.
    fn placed_texts(svg: &str) -> Vec<(f64, String)> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let (attributes, rest) = t.split_once('>')?;
                let x = attributes.split("x=\"").nth(1)?.split('"').next()?.parse().ok()?;
                Some((x, rest.split_once("</text>")?.0.trim().to_string()))
            })
            .collect()
    }

    /// The text of every `<text>` element of an SVG.
    fn texts(svg: &str) -> Vec<String> {
        placed_texts(svg).into_iter().map(|t| t.1).collect()
    }

    #[test]
    fn ticks_print_integers_as_integers_and_large_numbers_short() {
        assert_eq!(tick_label(3.0), "3");
        assert_eq!(tick_label(-20.0), "-20");
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(-0.00001), "-1e-5");
        assert_eq!(tick_label(0.0009), "0.0009");
        assert_eq!(tick_label(0.00085), "0.00085");
        assert_eq!(tick_label(250_000.0), "2.5e5");
        assert_eq!(tick_label(-0.0), "0");
        assert_eq!(tick_label(-5.551115123125783e-17), "0");
        assert_eq!(tick_label(f64::NAN), "n/a");
        assert_eq!(number_or_na(None, 4), "n/a");
        assert_eq!(number_or_na(Some(f64::NAN), 2), "n/a");
        assert_eq!(number_or_na(Some(0.5), 2), "0.50");
    }

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_733_425_326), "2024-12-05 19:02:06 UTC");
    }

    #[test]
    fn no_tick_of_a_plot_ends_in_point_zero() {
        let mut h = Hist1D::new(40, -20.0, 20.0);
        h.fill(-1.0, 9.0);
        let svg = Plot::new("t", "offset [ticks]", "syncs").hist(&h, "").render();
        let labels = texts(&svg);
        assert!(labels.iter().any(|t| t == "-20" || t == "-15"), "{labels:?}");
        assert!(labels.iter().all(|t| !t.ends_with(".0")), "{labels:?}");
    }

    #[test]
    fn a_log_axis_is_labelled_in_decades() {
        let mut s = TimeSeries::default();
        for t in 0..10 {
            s.fill(1_700_000_000 + t, 20_000.0);
        }
        let svg = Plot::new("rate", "", "rate [Hz]").log_y().rate(&s, "").render();
        let labels = texts(&svg);
        assert!(labels.iter().any(|t| t == "10000"), "{labels:?}");
        assert!(labels.iter().all(|t| !t.contains("31.6")), "{labels:?}");
    }

    #[test]
    fn a_sparse_rate_drops_to_zero_between_its_seconds() {
        let mut s = TimeSeries::default();
        s.fill(100, 1.0);
        s.fill(105, 1.0);
        s.fill(106, 1.0);
        // Zeros at both edges of the gap; none between adjacent seconds.
        assert_eq!(
            rate_points(&s),
            vec![(100.5, 1.0), (101.5, 0.0), (104.5, 0.0), (105.5, 1.0), (106.5, 1.0)]
        );
        let plot = Plot::new("t", "", "n").over_time(&[(10, 0.5), (11, 0.25), (13, 0.5)], "f");
        match &plot.series[0].1 {
            Series::Segments(s) => assert_eq!(s.len(), 2, "{s:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_time_axis_counts_from_the_run_start_and_names_it_in_utc() {
        let mut s = TimeSeries::default();
        s.fill(1_733_425_330, 5.0);
        let svg = Plot::new("t", "", "rate [Hz]")
            .rate(&s, "")
            .with_run_start(Some(1_733_425_326))
            .render();
        assert!(svg.contains("time since run start [s]  (start 2024-12-05 19:02:06 UTC)"), "{svg}");
        let own = Plot::new("t", "", "rate [Hz]").rate(&s, "").render();
        assert!(own.contains("time since 2024-12-05 19:02:10 UTC [s]"), "{own}");
    }

    #[test]
    fn identical_series_are_drawn_once_with_their_names_joined() {
        let mut h = Hist1D::new(4, 0.0, 4.0);
        h.fill(1.0, 3.0);
        let mut other = h.clone();
        other.fill(2.0, 1.0);
        let plot = Plot::new("sync", "x [ticks]", "n")
            .hist(&h, "io_group 1")
            .hist(&h, "io_group 2")
            .hist(&other, "io_group 3");
        let merged: Vec<String> = plot.merged_series().into_iter().map(|s| s.0).collect();
        assert_eq!(merged, ["io_group 1, 2", "io_group 3"]);
        assert!(texts(&plot.render()).iter().any(|t| t == "io_group 1, 2"));
    }

    #[test]
    fn an_inside_legend_sits_above_the_data() {
        // Data up to the top of the auto range; the legend box must end above the highest
        // point's pixel row.
        let points: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 100.0)).collect();
        let plot = Plot::new("t", "x [s]", "y [Hz]")
            .line(points.clone(), "a")
            .line(points.iter().map(|p| (p.0, 50.0)).collect(), "b");
        let ((x0, x1), (y0, y1)) = plot.extent();
        let fraction = (2.0 * 18.0 + 16.0) / 300.0;
        let top = y0 + (y1 - y0) / (1.0 - fraction);
        // The data's share of the axis leaves the legend's rows free.
        assert!((100.0 - y0) / (top - y0) <= 1.0 - fraction + 1e-9, "{x0} {x1} {y0} {y1}");
        let svg = plot.render();
        assert!(texts(&svg).iter().any(|t| t == "a") && texts(&svg).iter().any(|t| t == "b"));
    }

    #[test]
    fn many_entries_go_beside_the_plot() {
        let mut plot = Plot::new("t", "x [s]", "y [Hz]");
        for k in 0..6 {
            plot = plot.line(vec![(0.0, k as f64), (1.0, k as f64 + 1.0)], &format!("series {k}"));
        }
        let svg = plot.render();
        // The legend's text starts right of the plotting area (x > 640 − the column).
        let x_of = |name: &str| {
            placed_texts(&svg).into_iter().find(|t| t.1 == name).map(|t| t.0).unwrap_or(0.0)
        };
        assert!(x_of("series 5") > 500.0, "{}", x_of("series 5"));
    }

    #[test]
    fn an_empty_figure_says_no_data() {
        let empty = Plot::new("t", "x [s]", "n").hist(&Hist1D::new(4, 0.0, 1.0), "");
        assert!(!empty.has_data());
        assert!(texts(&empty.render()).iter().any(|t| t == "no data"));
        let mut h = Hist1D::new(4, 0.0, 1.0);
        h.fill(0.5, 1.0);
        assert!(
            !texts(&Plot::new("t", "x", "n").hist(&h, "").render()).iter().any(|t| t == "no data")
        );
        assert!(texts(&value_map(&[], 1.0, "m", "x", "y", "v")).iter().any(|t| t == "no data"));
    }
}
