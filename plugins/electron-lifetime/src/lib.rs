//! electron-lifetime: the most probable dQ/dx of track pixels vs drift time, and an exponential
//! fit `MPV(t) = MPV₀ · exp(−t / τ)` for the electron lifetime τ.
//!
//! Selection (as module0_flow's lifetime measurement): tracks with known t0 (all tracks here
//! are from triggered events), longer than `min_track_mm` (100 mm), contained in one TPC; pixels
//! inside the fiducial volume (`fiducial_mm` = 30 mm from the pixel-plane edges, the anode and
//! the cathode), full crossings of at least `min_dx_mm` (3.3 mm). Per drift-time bin
//! (`drift_bins` over 0…`max_drift_us`) the dQ/dx spectrum gets a Moyal ⊗ Gauss fit; its MPV
//! with the fit error enters the exponential fit, whose τ error is widened by √(χ²/ndf) when
//! the points scatter more than their errors. The check (`warn_below_us` 1000, `error_below_us`
//! 500) judges τ + 2σ, so only a significantly low lifetime raises it.

use larmon_plugin_sdk::fit::{fit_exponential, fit_moyal_gauss};
use larmon_plugin_sdk::prelude::*;

settings! {
    /// Its `[plugins.electron-lifetime]` settings.
    struct Settings {
        /// Drift-time bins of the fit (3–100).
        drift_bins: usize = 10,
        /// The full drift time, µs.
        max_drift_us: f64 = 190.6,
        /// Shortest track used, mm.
        min_track_mm: f64 = 100.0,
        /// Distance from the anode edges a track must keep, mm.
        fiducial_mm: f64 = 30.0,
        /// Shortest full crossing of a pixel used, mm.
        min_dx_mm: f64 = 3.3,
        /// Pixels a drift bin needs to enter the fit.
        min_entries: f64 = 500.0,
        /// Lifetime below which the check warns, µs.
        warn_below_us: f64 = 1000.0,
        /// … and below which it is an error.
        error_below_us: f64 = 500.0,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct ElectronLifetime {
    /// dQ/dx (ke⁻/cm, not lifetime-corrected) per drift-time bin.
    bins: Vec<Hist1D>,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
    #[serde(skip)]
    pixels: Pixels,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    dQ/dx MPV per drift-time bin (10 bins to 190.6 µs) for tracks with known t0, longer than \
    10 cm, in one TPC, pixels ≥ 30 mm inside the fiducial volume, with an exponential fit. \
    Metric `lifetime_us` with the fit error widened by √(χ²/ndf) when the points scatter more \
    than their errors. The check judges τ + 2σ, so an imprecise short-run fit raises no alarm. \
    Fixture (the command above): 2183 ± 83 µs vs the simulated 2200 µs. **Bad:** lifetime \
    below 1000 µs (warning) or 500 µs (error): argon purity is dropping; call the cryo expert.";

columns! {
    struct TrackPixels from "track_pixels" {
        tpc: u8, x_mm: f64, y_mm: f64, z_mm: f64, q_ke: f64, dx_mm: f64, drift_us: f64,
        at_track_end: u8, track_length_mm: f64, track_tpc_mask: u32,
    }
}

impl Plugin for ElectronLifetime {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("electron-lifetime", "Electron lifetime from the dQ/dx MPV vs drift time")
            .help(HELP)
            .reads::<TrackPixels>()
            .uses_pixels()
    }

    fn new(settings: Settings, pixels: Pixels) -> Result<Self, String> {
        let n = settings.drift_bins.clamp(3, 100);
        Ok(Self { bins: vec![Hist1D::new(300, 0.0, 150.0); n], settings, pixels })
    }

    fn track_pixels(&mut self, batch: &Batch) -> Result<(), String> {
        let TrackPixels {
            tpc,
            x_mm: x,
            y_mm: y,
            z_mm: z,
            q_ke: q,
            dx_mm: dx,
            drift_us: drift,
            at_track_end: end,
            track_length_mm: length,
            track_tpc_mask: mask,
            rows,
        } = TrackPixels::read(batch)?;
        let width = self.settings.max_drift_us / self.bins.len() as f64;
        for i in 0..rows {
            if length[i] < self.settings.min_track_mm
                || !mask[i].is_power_of_two()
                || end[i] != 0
                || dx[i] < self.settings.min_dx_mm
            {
                continue;
            }
            if let Some(anode) = self.pixels.anodes().get(&tpc[i]) {
                let drift_mm = (z[i] - anode.z_mm) * anode.drift_dir;
                if !anode.contains(x[i], y[i], drift_mm, self.settings.fiducial_mm, anode.pitch_mm)
                {
                    continue;
                }
            }
            let bin = (drift[i] / width).floor();
            if bin >= 0.0 && (bin as usize) < self.bins.len() {
                self.bins[bin as usize].fill(q[i] / dx[i] * 10.0, 1.0);
            }
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let width = self.settings.max_drift_us / self.bins.len() as f64;
        let points: Vec<(f64, f64, f64)> = self
            .bins
            .iter()
            .enumerate()
            .filter(|(_, h)| h.total() >= self.settings.min_entries)
            .filter_map(|(k, h)| {
                let f = fit_moyal_gauss(h, 0.05)?;
                (f.mpv_error > 0.0 && f.mpv_error.is_finite()).then_some((
                    (k as f64 + 0.5) * width,
                    f.mpv,
                    f.mpv_error,
                ))
            })
            .collect();
        let fit = (points.len() >= 3).then(|| fit_exponential(&points, 3000.0)).flatten();
        let mut plot =
            svg::Plot::new("dQ/dx MPV vs drift time", "drift time [µs]", "dQ/dx MPV [ke⁻/cm]")
                .x_range(0.0, self.settings.max_drift_us)
                .error_points(points.clone(), "MPV per drift bin");
        let mut report = Report::new().metric(
            "pixels_used",
            self.bins.iter().map(Hist1D::total).sum(),
            None,
            "pixels",
        );
        match &fit {
            Some(f) => {
                let (a, tau) = (f.params[0], f.params[1]);
                let curve = (0..=100).map(|k| {
                    let t = self.settings.max_drift_us * k as f64 / 100.0;
                    (t, a * (-t / tau).exp())
                });
                plot = plot
                    .line(curve.collect(), "exponential fit")
                    .note(format!("τ = {:.0} ± {:.0} µs", tau, f.errors[1]))
                    .note(format!("χ²/ndf = {:.1}/{}", f.chi2, f.ndf));
                report = report
                    .metric("lifetime_us", tau, Some(f.errors[1]), "µs")
                    .metric("dqdx_at_anode_ke_per_cm", a, Some(f.errors[0]), "ke-/cm")
                    .metric("fit_chi2_per_ndf", f.chi2 / f.ndf.max(1) as f64, None, "")
                    // Judged on the upper end of the 2σ interval: a short run's imprecise
                    // fit must not raise an alarm.
                    .check_band(
                        "lifetime_us",
                        tau + 2.0 * f.errors[1],
                        (self.settings.warn_below_us, f64::INFINITY),
                        (self.settings.error_below_us, f64::INFINITY),
                        "µs (τ + 2σ)",
                    );
            }
            None => {
                plot = plot.note("too few drift bins with enough pixels to fit");
                report = report.check(
                    "lifetime_us",
                    CheckStatus::Warning,
                    format!(
                        "no lifetime fit: {} drift bins with ≥ {} pixels",
                        points.len(),
                        self.settings.min_entries
                    ),
                );
            }
        }
        Ok(report.plot("mpv_vs_drift", "dQ/dx MPV vs drift time with exponential fit", plot))
    }
}

export_plugin!(ElectronLifetime);
