//! Trends: metrics across a range of runs (in order of data time), with their error bars and
//! the configured warning/error limits as bands; as SVG (one metric) and as JSON.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use plotters::prelude::*;
use serde::Serialize;

use crate::AppState;
use crate::files::SVG_CSP;
use crate::pages::TrendSelection;

/// One run's value of the metric.
#[derive(Serialize)]
pub(crate) struct TrendPoint {
    metric: String,
    run: String,
    start_unix_s: Option<u64>,
    value: f64,
    error: Option<f64>,
    unit: String,
}

fn points(state: &AppState, metric: &str, selection: &TrendSelection) -> Vec<TrendPoint> {
    let (runs, _) = state.store.runs();
    selection
        .runs_in_range(&runs)
        .iter()
        .filter_map(|r| {
            // A NaN or infinite value has no place on the axis: the run page shows it.
            let m = r.metric(metric).filter(|m| m.value.is_finite())?;
            Some(TrendPoint {
                metric: metric.to_string(),
                run: r.run.clone(),
                start_unix_s: r.start_unix_s,
                value: m.value,
                error: m.error.filter(|e| e.is_finite()),
                unit: m.unit.clone(),
            })
        })
        .collect()
}

/// `/api/trends?metric=A&metric=B&from=…&to=…&last=N`: each metric's points over the range.
pub(crate) async fn api_trend(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Json<Vec<TrendPoint>> {
    let selection = TrendSelection::parse(query.as_deref());
    Json(selection.metrics.iter().flat_map(|m| points(&state, m, &selection)).collect())
}

/// `/trends.svg?metric=A&…`: the first metric's trend over the range.
pub(crate) async fn trend_svg(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Response {
    let selection = TrendSelection::parse(query.as_deref());
    let metric = selection.metrics.first().cloned().unwrap_or_default();
    let data = points(&state, &metric, &selection);
    let limits = state.checks.limits.get(&metric).cloned().unwrap_or_default();
    let svg = draw(&metric, &data, limits.warn, limits.error);
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CONTENT_SECURITY_POLICY, SVG_CSP)], svg)
        .into_response()
}

fn draw(
    metric: &str,
    data: &[TrendPoint],
    warn: Option<[f64; 2]>,
    error: Option<[f64; 2]>,
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let values = data.iter().flat_map(|p| {
            let e = p.error.unwrap_or(0.0);
            [p.value - e, p.value + e]
        });
        let (mut lo, mut hi) =
            values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.15).max(hi.abs().max(1e-9) * 0.02);
        let (lo, hi) = (lo - pad, hi + pad);
        let unit = data.first().map_or(String::new(), |p| p.unit.clone());
        let n = data.len().max(1) as f64;
        let chart = ChartBuilder::on(&root)
            .caption(format!("{metric} per run"), ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..n - 0.5, lo..hi);
        let Ok(mut chart) = chart else { return svg_error() };
        let names: Vec<String> = data.iter().map(|p| p.run.clone()).collect();
        let label =
            move |x: &f64| names.get(x.round().max(0.0) as usize).cloned().unwrap_or_default();
        let _ = chart
            .configure_mesh()
            .x_desc("run (in order of data time)")
            .y_desc(if unit.is_empty() { metric.to_string() } else { format!("{metric} [{unit}]") })
            .x_labels(data.len().clamp(1, 12))
            .x_label_formatter(&label)
            .axis_desc_style(("sans-serif", 15))
            .draw();
        // Outside the error range: red; between error and warning ranges: amber.
        let band = |range: [f64; 2], color: RGBAColor| {
            [(lo, range[0].max(lo)), (range[1].min(hi), hi)]
                .into_iter()
                .filter(|(a, b)| b > a)
                .map(move |(a, b)| Rectangle::new([(-0.5, a), (n - 0.5, b)], color.filled()))
                .collect::<Vec<_>>()
        };
        if let Some(w) = warn {
            let _ = chart.draw_series(band(w, RGBColor(217, 145, 0).mix(0.15)));
        }
        if let Some(e) = error {
            let _ = chart.draw_series(band(e, RGBColor(192, 57, 43).mix(0.18)));
        }
        let blue = RGBColor(31, 119, 180);
        let _ = chart.draw_series(LineSeries::new(
            data.iter().enumerate().map(|(i, p)| (i as f64, p.value)),
            blue.mix(0.5),
        ));
        let _ = chart.draw_series(data.iter().enumerate().filter_map(|(i, p)| {
            p.error.map(|e| {
                PathElement::new(
                    [(i as f64, p.value - e), (i as f64, p.value + e)],
                    blue.stroke_width(2),
                )
            })
        }));
        let _ = chart.draw_series(
            data.iter()
                .enumerate()
                .map(|(i, p)| Circle::new((i as f64, p.value), 4, blue.filled())),
        );
        if data.is_empty() {
            let _ = root.draw(&Text::new("no run has this metric", (380, 200), ("sans-serif", 18)));
        }
        let _ = root.present();
    }
    svg
}

fn svg_error() -> String {
    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"10\" y=\"25\">no plot</text></svg>".into()
}
