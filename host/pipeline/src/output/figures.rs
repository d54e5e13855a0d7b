//! Typed figures drawn by the host: a plugin that reports a figure as data
//! ([`larmon_plugin_sdk::Report::plot`], `table`, `typed`) gets it drawn here in the common style with hover
//! values, and — when its plugin has a reference run — with the reference's histogram over it
//! (scaled to the same area), the shape comparison (Kolmogorov–Smirnov probability, χ²/ndf)
//! noted on the figure, and, for figures with a configured shape check, a check that rolls
//! into the run's flag.
//!
//! References come from the configuration (`[references] run = "RUN"`, `[references.plugins]
//! NAME = "RUN"`, per run kind `[references.kinds.beam]`), else from `OUT/references.json`
//! (`larmon reference`, the dashboard).

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
/// reference when there is one (`references` as [`References::for_kind`] gives them for the
/// run's kind), and adds the configured shape checks. Returns the reference run each plugin
/// was compared with.
pub fn draw_typed_figures(
    run: &str,
    run_dir: &Path,
    out: &Path,
    entries: &mut [PluginEntry],
    references: &References,
    shape_checks: &BTreeMap<String, ShapeCheck>,
    run_start_unix_s: Option<u64>,
) -> BTreeMap<String, String> {
    use rayon::prelude::*;
    // Plugin by plugin on every core: their figures, references and checks are their own (the
    // drawing, single-threaded, was the last ~50 ms of a 200 s 2x2 run with nothing beside it).
    let used = entries.par_iter_mut().filter_map(|entry| {
        let reference =
            references.of(&entry.name).filter(|r| *r != run && !r.contains(['/', '\\']));
        let mut compared_with = None;
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
                    let against = reference.map(|r| (r, reference_hists(out, r, &figure.data)));
                    let (plot, compared, verdict) =
                        over_reference(plot, &figure.name, against, check);
                    if let Some(run) = compared {
                        compared_with = Some((entry.name.clone(), run));
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
        compared_with
    });
    used.collect()
}

/// Up to this many compared series get a note each on the figure; more get one summary line
/// (the shape check's message names the worst series when one is configured).
const NOTED_SERIES: usize = 3;

/// A plot's histograms with their series names.
type NamedHists = Vec<(String, Hist1D)>;

/// The histograms (series name, histogram) of the typed plot stored at `data` (a figure's
/// data path) in reference run `run` of `out`; `None` when the run has no such plot.
fn reference_hists(out: &Path, run: &str, data: &str) -> Option<NamedHists> {
    let text = std::fs::read_to_string(out.join(run).join(data)).ok()?;
    match TypedFigure::from_json(&text)? {
        TypedFigure::Plot { plot } => {
            let hists: Vec<(String, Hist1D)> =
                plot.hists().map(|(name, h)| (name.to_string(), h.clone())).collect();
            (!hists.is_empty()).then_some(hists)
        }
        _ => None,
    }
}

/// `plot` over its reference, histogram by histogram: each histogram series is compared with
/// the reference's series of the same name (or, when both have one histogram, with that one),
/// the reference drawn over it scaled to its area and the comparison noted. Returns the plot,
/// the reference run if anything could be compared, and the shape check's verdict if one is
/// configured for the figure: the worst series decides (a warning when the reference run
/// lacks the figure).
fn over_reference(
    plot: Plot,
    figure: &str,
    against: Option<(&str, Option<NamedHists>)>,
    check: Option<&ShapeCheck>,
) -> (Plot, Option<String>, Option<Check>) {
    let Some((reference_run, reference)) = against else { return (plot, None, None) };
    let missing = || Check {
        name: format!("shape: {figure}"),
        status: Status::Warning,
        message: format!("no comparable {figure} in reference run {reference_run}"),
    };
    let Some(reference) = reference else { return (plot, None, check.map(|_| missing())) };
    let own: Vec<(String, Hist1D)> =
        plot.hists().map(|(name, h)| (name.to_string(), h.clone())).collect();
    let single = own.len() == 1 && reference.len() == 1;
    let mut plot = plot;
    let mut compared: Vec<(String, ShapeComparison)> = Vec::new();
    for (name, hist) in &own {
        let counterpart = reference.iter().find(|(r, _)| r == name).or(if single {
            reference.first()
        } else {
            None
        });
        let Some((_, reference_hist)) = counterpart else { continue };
        // Several references are drawn in their series' colours under one legend entry.
        let label = format!("reference {reference_run}");
        plot = plot.with_reference_of(name, reference_hist, &label);
        if let Some(c) = compare_shapes(hist, reference_hist) {
            compared.push((name.clone(), c));
        }
    }
    if compared.is_empty() {
        return (plot, None, check.map(|_| missing()));
    }
    let summary = |name: &str, c: &ShapeComparison| {
        let what = if single { String::new() } else { format!("{name} ") };
        format!(
            "{what}vs {reference_run}: KS p = {:.3}, χ²/ndf = {:.1}/{}",
            c.ks_probability, c.chi2, c.ndf
        )
    };
    if compared.len() <= NOTED_SERIES {
        for (name, c) in &compared {
            plot = plot.note(summary(name, c));
        }
    } else {
        // One line for many series: the least compatible by each statistic.
        let least = |key: fn(&ShapeComparison) -> f64| {
            compared.iter().min_by(|a, b| key(&a.1).total_cmp(&key(&b.1))).expect("not empty")
        };
        let (ks_name, ks) = least(|c| c.ks_probability);
        let (chi2_name, chi2) = least(|c| -c.chi2 / c.ndf.max(1) as f64);
        plot = plot
            .note(format!("vs {reference_run}, {} series:", compared.len()))
            .note(format!("min KS p = {:.3} ({ks_name})", ks.ks_probability))
            .note(format!("max χ²/ndf = {:.1} ({chi2_name})", chi2.chi2 / chi2.ndf.max(1) as f64));
    }
    let verdict = check.map(|check| {
        // The worst series decides; on a tie the first in drawing order.
        let judged = compared.iter().map(|(name, c)| (check.judge(c), name, c));
        let ((status, value), name, c) = judged
            .reduce(|worst, next| if next.0.0 > worst.0.0 { next } else { worst })
            .expect("compared is not empty");
        let of = if compared.len() > 1 {
            format!(" (the worst of {} series)", compared.len())
        } else {
            String::new()
        };
        Check {
            name: format!("shape: {figure}"),
            status,
            message: format!(
                "{}; {} = {value:.4} (warning at {}, error at {}){of}",
                summary(name, c),
                check.statistic.as_str(),
                check.warn,
                check.error
            ),
        }
    });
    (plot, Some(reference_run.to_string()), verdict)
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

    /// A histogram of 20 bins over [0, 20) filled with `n` entries spread as `shape` says.
    fn hist(n: usize, shape: impl Fn(usize) -> f64) -> Hist1D {
        let mut h = Hist1D::new(20, 0.0, 20.0);
        for i in 0..n {
            h.fill(shape(i) % 20.0, 1.0);
        }
        h
    }

    #[test]
    fn every_histogram_of_a_figure_is_compared_and_the_worst_decides() {
        let flat = |i: usize| (i % 20) as f64 + 0.5;
        let peaked = |i: usize| 2.0 + (i % 3) as f64;
        let plot = Plot::new("charge per module", "charge [ke-]", "hits / bin")
            .hist(&hist(4000, flat), "module 1")
            .hist(&hist(4000, flat), "module 2");
        let reference = vec![
            ("module 1".to_string(), hist(2000, flat)),
            ("module 2".to_string(), hist(2000, peaked)),
        ];
        let check =
            ShapeCheck { statistic: ShapeStatistic::KsProbability, warn: 0.05, error: 0.001 };
        let (drawn, run, verdict) =
            over_reference(plot, "charge", Some(("run-7", Some(reference))), Some(&check));
        assert_eq!(run.as_deref(), Some("run-7"));
        let verdict = verdict.unwrap();
        assert_eq!(verdict.status, Status::Error, "{verdict:?}");
        assert!(verdict.message.starts_with("module 2 vs run-7"), "{}", verdict.message);
        assert!(verdict.message.contains("the worst of 2 series"), "{}", verdict.message);
        let svg = drawn.render();
        assert_eq!(svg.matches("reference run-7").count(), 1, "one legend entry for both");
        assert!(svg.contains("module 1 vs run-7: KS p = 1.000"), "each series noted");
        // A reference with none of the figure's series: nothing to compare, a warning. (One
        // histogram on each side is compared whatever the names.)
        let plot = Plot::new("t", "x [cm]", "n")
            .hist(&hist(100, flat), "module 3")
            .hist(&hist(100, flat), "module 4");
        let elsewhere = vec![("module 1".to_string(), hist(100, flat))];
        let (_, run, verdict) =
            over_reference(plot, "charge", Some(("run-7", Some(elsewhere))), Some(&check));
        assert_eq!((run, verdict.unwrap().status), (None, Status::Warning));
    }

    #[test]
    fn the_configuration_names_references_before_the_file() {
        let file = References {
            run: Some("run-1".into()),
            plugins: [("dqdx".to_string(), "run-2".to_string())].into(),
            ..References::default()
        };
        let config = References {
            plugins: [("charge".to_string(), "run-3".to_string())].into(),
            ..References::default()
        };
        let both = config.with_fallback(&file);
        assert_eq!(both.of("dqdx"), Some("run-2"));
        assert_eq!(both.of("charge"), Some("run-3"));
        assert_eq!(both.of("timing"), Some("run-1"));
        let overriding = References { run: Some("run-9".into()), ..References::default() };
        assert_eq!(overriding.with_fallback(&file).of("timing"), Some("run-9"));
        assert_eq!(TypedFigure::from_json("{\"lo\": 0}"), None, "plain data is no typed figure");
    }
}
