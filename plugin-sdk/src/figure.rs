//! Figures as typed data: what [`crate::Report::plot`], [`crate::Report::table`] and
//! [`crate::Report::value_map`] hand to the host instead of an SVG. The host draws them with
//! the same code as [`crate::svg`] (one style for every plugin, hover values as SVG titles) and
//! can draw a reference run's histogram over a plot. In report.json the figure's data file is
//! `{"larmon_figure_v1": <TypedFigure>}`.

use serde::{Deserialize, Serialize};

use crate::hist::Hist2D;
use crate::svg;

/// The key of a typed figure's data.
pub const TYPED_FIGURE_KEY: &str = "larmon_figure_v1";

/// A figure as data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypedFigure {
    /// Histograms, lines, points and error bars on shared axes ([`svg::Plot`]).
    Plot {
        /// The plot.
        plot: svg::Plot,
    },
    /// A table: a header row and rows of text.
    Table {
        /// Title.
        title: String,
        /// Column names.
        header: Vec<String>,
        /// Rows.
        rows: Vec<Vec<String>>,
    },
    /// Values on a grid of cells — a 2-D histogram, a per-channel or per-detector map:
    /// `(x, y, value)` at cell centres, cells `cell` wide and high, viridis colours.
    ValueMap {
        /// Title.
        title: String,
        /// x axis label.
        x_label: String,
        /// y axis label.
        y_label: String,
        /// Colour bar label.
        value_label: String,
        /// Cell width and height, in axis units.
        cell: (f64, f64),
        /// `(x, y, value)` of each cell with a value.
        points: Vec<(f64, f64, f64)>,
        /// x is a Unix second (drawn as seconds since the run start, see [`svg::Plot::rate`]).
        #[serde(default)]
        time_x: bool,
        /// The run's first Unix second, when the host knows it.
        #[serde(default)]
        run_start: Option<u64>,
    },
}

impl TypedFigure {
    /// A table (what [`svg::table`] draws).
    pub fn table(title: &str, header: &[&str], rows: &[Vec<String>]) -> Self {
        Self::Table {
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: rows.to_vec(),
        }
    }

    /// Values at positions on square cells (what [`svg::value_map`] draws).
    pub fn value_map(
        points: &[(f64, f64, f64)],
        cell: f64,
        title: &str,
        x_label: &str,
        y_label: &str,
        value_label: &str,
    ) -> Self {
        Self::ValueMap {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            value_label: value_label.into(),
            cell: (cell, cell),
            points: points.to_vec(),
            time_x: false,
            run_start: None,
        }
    }

    /// Values over time and one other axis (e.g. the rate of every tile per minute):
    /// `(first Unix second of the bin, y, value)`, cells `cell.0` seconds wide and `cell.1`
    /// high. The time axis counts seconds since the run start, like [`svg::Plot::rate`].
    pub fn time_map(
        points: &[(u64, f64, f64)],
        cell: (u64, f64),
        title: &str,
        y_label: &str,
        value_label: &str,
    ) -> Self {
        let width = cell.0.max(1) as f64;
        Self::ValueMap {
            title: title.into(),
            x_label: String::new(),
            y_label: y_label.into(),
            value_label: value_label.into(),
            cell: (width, cell.1),
            points: points.iter().map(|(t, y, v)| (*t as f64 + width / 2.0, *y, *v)).collect(),
            time_x: true,
            run_start: None,
        }
    }

    /// Sets the origin of a time axis to the run's first Unix second (the host does it before
    /// drawing, so every figure of a run counts time from the same zero).
    pub fn with_run_start(mut self, unix_s: Option<u64>) -> Self {
        match self {
            Self::Plot { plot } => return Self::Plot { plot: plot.with_run_start(unix_s) },
            Self::ValueMap { ref mut run_start, .. } => *run_start = unix_s.or(*run_start),
            Self::Table { .. } => {}
        }
        self
    }

    /// A 2-D histogram as a value map (bins with content only).
    pub fn hist2d(h: &Hist2D, title: &str, x_label: &str, y_label: &str, z_label: &str) -> Self {
        let ((nx, x0, x1), (ny, y0, y1)) = (h.x, h.y);
        let (wx, wy) = ((x1 - x0) / nx.max(1) as f64, (y1 - y0) / ny.max(1) as f64);
        let points = (0..ny)
            .flat_map(|iy| (0..nx).map(move |ix| (ix, iy)))
            .filter_map(|(ix, iy)| {
                let v = h.counts[iy * nx + ix];
                (v != 0.0).then_some((x0 + (ix as f64 + 0.5) * wx, y0 + (iy as f64 + 0.5) * wy, v))
            })
            .collect();
        Self::ValueMap {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            value_label: z_label.into(),
            cell: (wx, wy),
            points,
            time_x: false,
            run_start: None,
        }
    }

    /// Draws it in the common style.
    pub fn render(&self) -> String {
        match self {
            Self::Plot { plot } => plot.render(),
            Self::Table { title, header, rows } => {
                let header: Vec<&str> = header.iter().map(String::as_str).collect();
                svg::table(title, &header, rows)
            }
            Self::ValueMap {
                title,
                x_label,
                y_label,
                value_label,
                cell,
                points,
                time_x,
                run_start,
            } => {
                if *time_x {
                    let first = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
                    let origin = svg::time_origin(*run_start, first);
                    let shifted: Vec<(f64, f64, f64)> =
                        points.iter().map(|(x, y, v)| (x - origin as f64, *y, *v)).collect();
                    let x_label = svg::time_axis_label(origin, run_start.is_some());
                    svg::value_map_cells(&shifted, *cell, title, &x_label, y_label, value_label)
                } else {
                    svg::value_map_cells(points, *cell, title, x_label, y_label, value_label)
                }
            }
        }
    }

    /// What breaks the common style ([`svg::Plot::style_problems`]; for maps: axis and colour
    /// labels with units).
    pub fn style_problems(&self) -> Vec<String> {
        match self {
            Self::Plot { plot } => plot.style_problems(),
            Self::Table { title, header, .. } => {
                let mut problems = Vec::new();
                if title.trim().is_empty() {
                    problems.push("no title".into());
                }
                if header.is_empty() {
                    problems.push("no header".into());
                }
                problems
            }
            Self::ValueMap { title, x_label, y_label, value_label, time_x, .. } => {
                let mut problems = Vec::new();
                if title.trim().is_empty() {
                    problems.push("no title".into());
                }
                for (axis, label) in [("x", x_label), ("y", y_label), ("colour", value_label)] {
                    if (axis != "x" || !time_x) && !svg::has_unit(label) {
                        problems.push(format!("{axis} label {label:?} names no unit"));
                    }
                }
                problems
            }
        }
    }

    /// Its data as report.json stores it.
    pub fn to_json(&self) -> String {
        serde_json::json!({ TYPED_FIGURE_KEY: self }).to_string()
    }

    /// A typed figure's data, if `json` is one. Read straight into the figure, not through a
    /// `serde_json::Value`: the host asks this of every figure's data file, and a plugin's
    /// own data can be large (pixel-maps' per-channel table of a 2x2 run is 16 MB: parsed into
    /// a `Value`, half a second at the end of every report); data that is not an object with
    /// the key fails at its first token.
    pub fn from_json(json: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Stored {
            larmon_figure_v1: TypedFigure, // TYPED_FIGURE_KEY
        }
        serde_json::from_str::<Stored>(json).ok().map(|stored| stored.larmon_figure_v1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::Hist1D;

    #[test]
    fn every_kind_goes_through_json_and_draws() {
        let mut h = Hist1D::new(10, 0.0, 10.0);
        h.fill(3.5, 2.0);
        let mut h2 = Hist2D::new(4, 0.0, 4.0, 2, 0.0, 1.0);
        h2.fill(1.5, 0.25, 3.0);
        let figures = [
            TypedFigure::Plot { plot: svg::Plot::new("t", "x [cm]", "n").hist(&h, "data") },
            TypedFigure::Table {
                title: "flagged".into(),
                header: vec!["kind".into(), "channel".into()],
                rows: vec![vec!["hot".into(), "1-2-3-4".into()]],
            },
            TypedFigure::hist2d(&h2, "map", "x", "y", "entries"),
        ];
        for figure in figures {
            let back = TypedFigure::from_json(&figure.to_json()).unwrap();
            assert_eq!(back, figure);
            let svg = back.render();
            assert!(svg.starts_with("<svg") && !svg.contains("plot failed"), "{svg}");
            assert!(svg.contains("<title>"), "hover values: {svg}");
        }
        if let TypedFigure::ValueMap { cell, points, .. } = TypedFigure::hist2d(&h2, "", "", "", "")
        {
            assert_eq!((cell, points), ((1.0, 0.5), vec![(1.5, 0.25, 3.0)]));
        }
        assert_eq!(TypedFigure::from_json("{\"lo\": 1}"), None);
        assert_eq!(TypedFigure::from_json("[[4211392,{\"n\":96}]]"), None, "a plugin's own table");
        let python_style = format!(
            "{{\"{TYPED_FIGURE_KEY}\": {{\"kind\": \"table\", \"title\": \"t\", \"header\": [\"a\"], \"rows\": [[\"1\"]]}}}}"
        );
        assert_eq!(
            TypedFigure::from_json(&python_style),
            Some(TypedFigure::table("t", &["a"], &[vec!["1".into()]])),
            "as the Python SDK writes it"
        );
    }
}
