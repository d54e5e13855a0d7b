//! Typed figures drawn by the host: a plugin that reports a figure as data
//! ([`larmon_plugin_sdk::Report::plot`], `table`, `typed`) gets it drawn here in the common style with hover
//! values, and — when its plugin has a reference run — with the reference's histogram over it
//! (scaled to the same area), the shape comparison (Kolmogorov–Smirnov probability, χ²/ndf)
//! noted on the figure, and, for figures with a configured shape check, a check that rolls
//! into the run's flag.
//!
//! References come from the configuration (`[references] run = "RUN"`, `[references.plugins]
//! NAME = "RUN"`), else from `OUT/references.json` (`larmon reference`, the dashboard).

use std::collections::BTreeMap;
use std::path::Path;

use larmon_plugin_sdk::Hist1D;
use larmon_plugin_sdk::TypedFigure;
use larmon_plugin_sdk::compare::{ShapeComparison, compare_shapes};
use larmon_plugin_sdk::svg::Plot;
use larmon_report::{Check, PluginEntry, Status};
use serde::{Deserialize, Serialize};

pub use larmon_report::references::{REFERENCES_FILE, References};

/// Which statistic a shape check judges.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeStatistic {
    /// Kolmogorov–Smirnov probability: below the limits is bad.
    KsProbability,
    /// χ² probability: below the limits is bad.
    Chi2Probability,
    /// χ²/ndf: above the limits is bad.
    Chi2Ndf,
}

/// A shape check of one figure against its reference (`[shape_checks."plugin/figure"]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeCheck {
    /// The statistic.
    pub statistic: ShapeStatistic,
    /// Warning limit.
    pub warn: f64,
    /// Error limit.
    pub error: f64,
}

impl ShapeStatistic {
    /// Its name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KsProbability => "ks_probability",
            Self::Chi2Probability => "chi2_probability",
            Self::Chi2Ndf => "chi2_ndf",
        }
    }
}

impl ShapeCheck {
    /// The status of a comparison and the value judged.
    fn judge(&self, c: &ShapeComparison) -> (Status, f64) {
        let value = match self.statistic {
            ShapeStatistic::KsProbability => c.ks_probability,
            ShapeStatistic::Chi2Probability => c.chi2_probability,
            ShapeStatistic::Chi2Ndf => c.chi2 / c.ndf.max(1) as f64,
        };
        // NaN is always worse than any limit.
        let worse = |limit: f64| match self.statistic {
            ShapeStatistic::Chi2Ndf => value.is_nan() || value > limit,
            _ => value.is_nan() || value < limit,
        };
        let status = if worse(self.error) {
            Status::Error
        } else if worse(self.warn) {
            Status::Warning
        } else {
            Status::Ok
        };
        (status, value)
    }
}

/// Draws every typed figure of `entries` into `run_dir` (whose output directory is `out`),
/// time axes from the run's first second `run_start_unix_s`, plots over their plugin's
/// reference when there is one, and adds the configured shape checks. Returns the reference run each plugin was compared with.
pub fn draw_typed_figures(
    run: &str,
    run_dir: &Path,
    out: &Path,
    entries: &mut [PluginEntry],
    references: &References,
    shape_checks: &BTreeMap<String, ShapeCheck>,
    run_start_unix_s: Option<u64>,
) -> BTreeMap<String, String> {
    let mut used = BTreeMap::new();
    for entry in entries.iter_mut() {
        let reference =
            references.of(&entry.name).filter(|r| *r != run && !r.contains(['/', '\\']));
        let mut checks = Vec::new();
        for figure in &entry.figures {
            let Some(typed) = std::fs::read_to_string(run_dir.join(&figure.data))
                .ok()
                .as_deref()
                .and_then(TypedFigure::from_json)
            else {
                continue;
            };
            // Every time axis of the run counts from the same zero.
            let typed = typed.with_run_start(run_start_unix_s);
            let svg = match typed {
                TypedFigure::Plot { plot } => {
                    let check = shape_checks.get(&format!("{}/{}", entry.name, figure.name));
                    let against = reference.map(|r| (r, reference_hist(out, r, &figure.data)));
                    let (plot, compared, verdict) =
                        over_reference(plot, &figure.name, against, check);
                    if let Some(run) = compared {
                        used.insert(entry.name.clone(), run);
                    }
                    checks.extend(verdict);
                    plot.render()
                }
                // Tables and value maps: drawn as they are (no reference overlay).
                other => other.render(),
            };
            if let Err(e) = std::fs::write(run_dir.join(&figure.svg), svg) {
                entry.status = Status::Error;
                entry.error = Some(format!("writing figure {}: {e}", figure.svg));
            }
        }
        entry.checks.extend(checks);
    }
    used
}

/// The first histogram of the typed plot stored at `data` (a figure's data path) in reference
/// run `run` of `out`.
fn reference_hist(out: &Path, run: &str, data: &str) -> Option<Hist1D> {
    let text = std::fs::read_to_string(out.join(run).join(data)).ok()?;
    match TypedFigure::from_json(&text)? {
        TypedFigure::Plot { plot } => plot.first_hist().cloned(),
        _ => None,
    }
}

/// `plot` over its reference's histogram with the comparison noted; the reference run if the
/// two could be compared; the shape check's verdict if one is configured for the figure (a
/// warning when the reference run lacks the figure).
fn over_reference(
    plot: Plot,
    figure: &str,
    against: Option<(&str, Option<Hist1D>)>,
    check: Option<&ShapeCheck>,
) -> (Plot, Option<String>, Option<Check>) {
    let Some((reference_run, reference)) = against else { return (plot, None, None) };
    let missing = || Check {
        name: format!("shape: {figure}"),
        status: Status::Warning,
        message: format!("no comparable {figure} in reference run {reference_run}"),
    };
    let Some(reference) = reference else { return (plot, None, check.map(|_| missing())) };
    let comparison = plot.first_hist().and_then(|h| compare_shapes(h, &reference));
    let plot = plot.with_reference(&reference, &format!("reference {reference_run}"));
    let Some(c) = comparison else { return (plot, None, None) };
    let summary = format!(
        "vs {reference_run}: KS p = {:.3}, χ²/ndf = {:.1}/{}",
        c.ks_probability, c.chi2, c.ndf
    );
    let verdict = check.map(|check| {
        let (status, value) = check.judge(&c);
        Check {
            name: format!("shape: {figure}"),
            status,
            message: format!(
                "{summary}; {} = {value:.4} (warning at {}, error at {})",
                check.statistic.as_str(),
                check.warn,
                check.error
            ),
        }
    });
    (plot.note(summary), Some(reference_run.to_string()), verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison(ks: f64, chi2: f64, ndf: usize) -> ShapeComparison {
        ShapeComparison { ks_probability: ks, ks_distance: 0.1, chi2, ndf, chi2_probability: ks }
    }

    #[test]
    fn probabilities_fail_below_and_chi2_per_ndf_above_their_limits() {
        let ks = ShapeCheck { statistic: ShapeStatistic::KsProbability, warn: 0.05, error: 0.001 };
        assert_eq!(ks.judge(&comparison(0.3, 0.0, 1)).0, Status::Ok);
        assert_eq!(ks.judge(&comparison(0.01, 0.0, 1)).0, Status::Warning);
        assert_eq!(ks.judge(&comparison(1e-5, 0.0, 1)).0, Status::Error);
        assert_eq!(ks.judge(&comparison(f64::NAN, 0.0, 1)).0, Status::Error);
        let chi2 = ShapeCheck { statistic: ShapeStatistic::Chi2Ndf, warn: 2.0, error: 5.0 };
        assert_eq!(chi2.judge(&comparison(1.0, 10.0, 10)), (Status::Ok, 1.0));
        assert_eq!(chi2.judge(&comparison(1.0, 30.0, 10)).0, Status::Warning);
        assert_eq!(chi2.judge(&comparison(1.0, 60.0, 10)).0, Status::Error);
    }

    #[test]
    fn the_configuration_names_references_before_the_file() {
        let file = References {
            run: Some("run-1".into()),
            plugins: [("dqdx".to_string(), "run-2".to_string())].into(),
        };
        let config =
            References { run: None, plugins: [("charge".to_string(), "run-3".to_string())].into() };
        let both = config.with_fallback(&file);
        assert_eq!(both.of("dqdx"), Some("run-2"));
        assert_eq!(both.of("charge"), Some("run-3"));
        assert_eq!(both.of("timing"), Some("run-1"));
        let overriding = References { run: Some("run-9".into()), ..References::default() };
        assert_eq!(overriding.with_fallback(&file).of("timing"), Some("run-9"));
        assert_eq!(TypedFigure::from_json("{\"lo\": 0}"), None, "plain data is no typed figure");
    }
}
