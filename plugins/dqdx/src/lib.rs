//! dqdx: dQ/dx of tracks, measured per pixel (`track_pixels`: the charge a pixel collected from
//! a track over the length of track above it), corrected for electron lifetime, with a
//! Moyal ⊗ Gauss fit (the Moyal function approximates the Landau distribution; the Gaussian
//! absorbs electronics noise and ADC steps). Metric `mpv_ke_per_cm`: the Moyal MPV.
//!
//! **The lifetime is the run's own**: the raw dQ/dx is kept per drift-time slice, the
//! electron lifetime is fitted on the slices' MPVs (`MPV(t) = MPV₀·exp(−t/τ)`, as the
//! electron-lifetime plugin does) and each slice is rescaled by `exp(t/τ)` when the report is
//! made, so the corrected MPV does not depend on the true lifetime. An operator can give the
//! run's lifetime instead (`lifetime_us`); without a fit and without that value the
//! simulation default (2200 µs) is used and the report says so. Metrics `lifetime_used_us`
//! and `lifetime_source` (0 measured, 1 configured, 2 default) record which.
//!
//! Pixels used: a full crossing (not clipped by the track's ends) of at least `min_dx_mm`
//! (default 3.3 mm ≈ ¾ pitch: shorter chords carry threshold and track-fit biases).

use std::collections::BTreeMap;

use larmon_plugin_sdk::fit::{PeakFit, fit_exponential, fit_moyal_gauss};
use larmon_plugin_sdk::prelude::*;

/// Drift-time slices of the raw dQ/dx (0…`MAX_DRIFT_US`; a slice of 4.8 µs spans a 0.3 %
/// change of the correction at τ = 1.5 ms, spread evenly around its centre).
const SLICES: usize = 40;
/// Longest drift kept, µs (304 mm at 1.6 mm/µs, with margin).
const MAX_DRIFT_US: f64 = 192.0;
/// Drift bins of the lifetime fit (each `SLICES / LIFETIME_BINS` slices).
const LIFETIME_BINS: usize = 10;
/// Pixels a drift bin needs before its MPV enters the lifetime fit.
const MIN_BIN_PIXELS: f64 = 500.0;
/// Lifetime used when neither a fit nor a configured value is available, µs.
const DEFAULT_LIFETIME_US: f64 = 2200.0;

settings! {
    /// Its `[plugins.dqdx]` settings.
    struct Settings {
        /// The electron lifetime of this run, µs, when the run cannot measure it.
        lifetime_us: Option<f64> = None,
        /// Shortest full crossing of a pixel used, mm.
        min_dx_mm: f64 = 3.3,
        /// The MPV band that is ok, ke⁻/cm (error outside 0.8 × low … 1.25 × high).
        mpv_warn_low: f64 = 45.0,
        mpv_warn_high: f64 = 60.0,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct Dqdx {
    /// Raw (uncorrected) dQ/dx, ke⁻/cm, per drift-time slice, all TPCs.
    slices: Vec<Hist1D>,
    /// The same per TPC.
    per_tpc: BTreeMap<u8, Vec<Hist1D>>,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

impl Dqdx {
    fn fit_figure(&self, h: &Hist1D, title: &str, lifetime: &str) -> (svg::Plot, Option<PeakFit>) {
        let fit = fit_moyal_gauss(h, 0.05);
        let mut plot = svg::Plot::new(title, "dQ/dx [ke⁻/cm]", "pixels / bin")
            .x_range(0.0, 150.0)
            .hist(h, "data")
            .note(lifetime.to_owned());
        if let Some(f) = &fit {
            let curve: Vec<(f64, f64)> = (0..300)
                .map(|k| f.range.0 + (f.range.1 - f.range.0) * k as f64 / 299.0)
                .map(|x| (x, f.curve(x)))
                .collect();
            plot = plot
                .line(curve, "Moyal⊗Gauss fit")
                .note(format!("MPV {:.2} ± {:.2} ke⁻/cm", f.mpv, f.mpv_error))
                .note(format!("χ²/ndf {:.0}/{}", f.fit.chi2, f.fit.ndf));
        } else {
            plot = plot.note("too few entries to fit");
        }
        (plot, fit)
    }
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    dQ/dx (ke⁻/cm) of track pixels — the charge of a pixel over the track length above it, \
    full crossings ≥ 3.3 mm — corrected for the electron lifetime **of the same run**: the raw \
    dQ/dx is kept in 40 drift-time slices, τ is fitted on the slices' MPVs (as \
    electron-lifetime does) and each slice is rescaled by exp(t/τ) when the report is made. An \
    operator's value for the run (`[plugins.dqdx] lifetime_us`) replaces the fit; with \
    neither, 2200 µs is used. The figure says which, and metrics `lifetime_used_us` and \
    `lifetime_source` (0 measured, 1 configured, 2 default) record it. The MPV then does not \
    depend on the true lifetime (test `dqdx_does_not_depend_on_the_true_lifetime`: runs at τ = \
    1400 and 2200 µs agree within 1 %). Moyal ⊗ Gauss fit (Moyal = closed-form Landau \
    approximation; Gaussian = electronics noise and ADC steps). Metric `mpv_ke_per_cm` (the \
    Moyal MPV) with its fit error, per TPC too. Fixture (the command above): 50.27 ± 0.02 \
    ke⁻/cm vs the simulated 50.0. **Bad:** the MPV outside 45–60 ke⁻/cm (warning; 36–75 \
    error): gain calibration, lifetime correction or recombination (field) off.";

columns! {
    struct TrackPixels from "track_pixels" {
        tpc: u8, q_ke: f64, dx_mm: f64, drift_us: f64, at_track_end: u8,
    }
}

impl Plugin for Dqdx {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("dqdx", "dQ/dx of track pixels, lifetime-corrected, Moyal⊗Gauss fit")
            .help(HELP)
            .reads::<TrackPixels>()
    }

    fn new(mut settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        settings.lifetime_us = settings.lifetime_us.filter(|v| v.is_finite() && *v > 0.0);
        Ok(Self {
            slices: vec![Hist1D::new(300, 0.0, 150.0); SLICES],
            per_tpc: BTreeMap::new(),
            settings,
        })
    }

    fn track_pixels(&mut self, batch: &Batch) -> Result<(), String> {
        let TrackPixels { tpc, q_ke: q, dx_mm: dx, drift_us: drift, at_track_end: end, rows } =
            TrackPixels::read(batch)?;
        let Self { slices, per_tpc, settings, .. } = self;
        let counts = |i: &usize| !(dx[*i] < settings.min_dx_mm || end[*i] != 0);
        // Track pixels come in runs of one TPC: each run that has pixels to count finds its
        // TPC's histograms once, not once per pixel.
        for run in runs(rows, |i| tpc[i]) {
            let run_tpc = tpc[run.start];
            let mut counted = run.filter(counts).peekable();
            if counted.peek().is_some() {
                let histograms = per_tpc
                    .entry(run_tpc)
                    .or_insert_with(|| vec![Hist1D::new(300, 0.0, 150.0); SLICES]);
                for i in counted {
                    let raw = q[i] / dx[i] * 10.0;
                    let slice = ((drift[i].max(0.0) / MAX_DRIFT_US * SLICES as f64) as usize)
                        .min(SLICES - 1);
                    slices[slice].fill(raw, 1.0);
                    histograms[slice].fill(raw, 1.0);
                }
            }
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let (lifetime_us, source, fitted) = self.lifetime();
        let all = corrected(&self.slices, lifetime_us);
        let how = match source {
            0 => "measured in this run",
            1 => "configured for this run",
            _ => "default: no fit, none configured",
        };
        let note = format!("corrected with τ = {lifetime_us:.0} µs ({how})");
        let (plot, fit) =
            self.fit_figure(&all, "dQ/dx of track pixels (lifetime-corrected)", &note);
        let mut report = Report::new()
            .plot("dqdx", "dQ/dx with Moyal⊗Gauss fit", plot)
            .metric("pixels_used", all.total(), None, "pixels")
            .metric("lifetime_used_us", lifetime_us, fitted.map(|f| f.1), "µs")
            .metric(
                "lifetime_source",
                f64::from(source),
                None,
                "0 measured, 1 configured, 2 default",
            );
        match &fit {
            Some(f) => {
                let (low, high) = (self.settings.mpv_warn_low, self.settings.mpv_warn_high);
                let (warn, error) = ((low, high), (low * 0.8, high * 1.25));
                report = report
                    .metric("mpv_ke_per_cm", f.mpv, Some(f.mpv_error), "ke-/cm")
                    .metric("moyal_width_ke_per_cm", f.width, None, "ke-/cm")
                    .metric("gauss_sigma_ke_per_cm", f.sigma, None, "ke-/cm")
                    .check_band("mpv_ke_per_cm", f.mpv, warn, error, "ke-/cm");
            }
            None => {
                report = report.check(
                    "mpv_ke_per_cm",
                    CheckStatus::Warning,
                    "too few track pixels to fit dQ/dx",
                );
            }
        }
        for (tpc, slices) in &self.per_tpc {
            let h = &corrected(slices, lifetime_us);
            let (plot, fit) = self.fit_figure(h, &format!("dQ/dx, TPC {tpc}"), &note);
            report = report.plot(&format!("dqdx_tpc{tpc}"), &format!("dQ/dx TPC {tpc}"), plot);
            if let Some(f) = fit {
                report = report.metric(
                    &format!("tpc{tpc}_mpv_ke_per_cm"),
                    f.mpv,
                    Some(f.mpv_error),
                    "ke-/cm",
                );
            }
        }
        Ok(report)
    }
}

impl Dqdx {
    /// The lifetime to correct with: (τ µs, source, fitted (τ, σ) if measured).
    fn lifetime(&self) -> (f64, u8, Option<(f64, f64)>) {
        if let Some(tau) = self.settings.lifetime_us {
            return (tau, 1, None);
        }
        // The fit uses 10 drift bins of 4 slices each (a Moyal⊗Gauss fit per bin, as the
        // electron-lifetime plugin does); the correction then uses every slice.
        let width = MAX_DRIFT_US / LIFETIME_BINS as f64;
        let per_bin = SLICES / LIFETIME_BINS;
        let points: Vec<(f64, f64, f64)> = self
            .slices
            .chunks(per_bin)
            .enumerate()
            .filter_map(|(k, chunk)| {
                let mut h = chunk[0].clone();
                for other in &chunk[1..] {
                    h.merge(other).ok()?;
                }
                if h.total() < MIN_BIN_PIXELS {
                    return None;
                }
                let f = fit_moyal_gauss(&h, 0.05)?;
                (f.mpv_error > 0.0 && f.mpv_error.is_finite()).then_some((
                    (k as f64 + 0.5) * width,
                    f.mpv,
                    f.mpv_error,
                ))
            })
            .collect();
        let fit = (points.len() >= 3).then(|| fit_exponential(&points, 3000.0)).flatten();
        match fit {
            Some(f) if f.params[1].is_finite() && f.params[1] > 0.0 => {
                (f.params[1], 0, Some((f.params[1], f.errors[1])))
            }
            _ => (DEFAULT_LIFETIME_US, 2, None),
        }
    }
}

/// The dQ/dx of all slices, each rescaled by `exp(t/τ)` at its centre.
fn corrected(slices: &[Hist1D], lifetime_us: f64) -> Hist1D {
    let width = MAX_DRIFT_US / slices.len().max(1) as f64;
    let mut all = Hist1D::new(300, 0.0, 150.0);
    for (k, h) in slices.iter().enumerate() {
        all.add_scaled(h, ((k as f64 + 0.5) * width / lifetime_us).exp());
    }
    all
}

export_plugin!(Dqdx);
