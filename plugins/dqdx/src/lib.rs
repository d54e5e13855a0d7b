//! dqdx: dQ/dx of tracks, measured per pixel (`track_pixels`: the charge a pixel collected from
//! a track over the length of track above it), corrected for electron lifetime, with a
//! Moyal ⊗ Gauss fit (the Moyal function approximates the Landau distribution; the Gaussian
//! absorbs electronics noise and ADC steps). Metric `mpv_ke_per_cm`: the Moyal MPV.
//!
//! Pixels used: a full crossing (not clipped by the track's ends) of at least `min_dx_mm`
//! (default 3.3 mm ≈ ¾ pitch: shorter chords carry threshold and track-fit biases).

use std::collections::BTreeMap;

use larmon_plugin_sdk::fit::{PeakFit, fit_moyal_gauss};
use larmon_plugin_sdk::prelude::*;

#[derive(Serialize, Deserialize)]
struct Dqdx {
    /// dQ/dx, ke⁻/cm, all TPCs.
    all: Hist1D,
    /// Per TPC.
    per_tpc: BTreeMap<u8, Hist1D>,
    lifetime_us: f64,
    min_dx_mm: f64,
    warn_band: (f64, f64),
    error_band: (f64, f64),
}

impl Dqdx {
    fn fit_figure(&self, h: &Hist1D, title: &str) -> (String, Option<PeakFit>) {
        let fit = fit_moyal_gauss(h, 0.05);
        let mut plot = svg::Plot::new(title, "dQ/dx [ke⁻/cm]", "pixels / bin")
            .x_range(0.0, 150.0)
            .hist(h, "data");
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
        (plot.render(), fit)
    }
}

impl Plugin for Dqdx {
    fn info() -> Info {
        Info::new("dqdx", "dQ/dx of track pixels, lifetime-corrected, Moyal⊗Gauss fit")
            .consumes("track_pixels", &["tpc", "q_ke", "dx_mm", "drift_us", "at_track_end"])
            .config_key("lifetime_us")
            .config_key("min_dx_mm")
            .config_key("mpv_warn_low")
            .config_key("mpv_warn_high")
    }

    fn new(config: &Config) -> Result<Self, String> {
        let (warn_low, warn_high) = (
            config_number(config, "mpv_warn_low", 45.0),
            config_number(config, "mpv_warn_high", 60.0),
        );
        Ok(Self {
            all: Hist1D::new(300, 0.0, 150.0),
            per_tpc: BTreeMap::new(),
            lifetime_us: config_number(config, "lifetime_us", 2200.0),
            min_dx_mm: config_number(config, "min_dx_mm", 3.3),
            warn_band: (warn_low, warn_high),
            error_band: (warn_low * 0.8, warn_high * 1.25),
        })
    }

    fn track_pixels(&mut self, batch: &Batch) -> Result<(), String> {
        let (tpc, q, dx) = (batch.u8("tpc")?, batch.f64("q_ke")?, batch.f64("dx_mm")?);
        let (drift, end) = (batch.f64("drift_us")?, batch.u8("at_track_end")?);
        for i in 0..batch.len() {
            if dx[i] < self.min_dx_mm || end[i] != 0 {
                continue;
            }
            let dqdx = q[i] / dx[i] * 10.0 * (drift[i].max(0.0) / self.lifetime_us).exp();
            self.all.fill(dqdx, 1.0);
            self.per_tpc
                .entry(tpc[i])
                .or_insert_with(|| Hist1D::new(300, 0.0, 150.0))
                .fill(dqdx, 1.0);
        }
        Ok(())
    }

    fn merge(&mut self, other: Self) -> Result<(), String> {
        for (tpc, h) in other.per_tpc {
            match self.per_tpc.get_mut(&tpc) {
                Some(m) => m.merge(&h)?,
                None => {
                    self.per_tpc.insert(tpc, h);
                }
            }
        }
        self.all.merge(&other.all)
    }

    fn report(&self) -> Result<Report, String> {
        let (svg, fit) = self.fit_figure(&self.all, "dQ/dx of track pixels (lifetime-corrected)");
        let mut report = Report::new()
            .figure("dqdx", "dQ/dx with Moyal⊗Gauss fit", svg, &self.all)
            .metric("pixels_used", self.all.total(), None, "pixels")
            .metric("lifetime_used_us", self.lifetime_us, None, "µs");
        match &fit {
            Some(f) => {
                report = report
                    .metric("mpv_ke_per_cm", f.mpv, Some(f.mpv_error), "ke-/cm")
                    .metric("moyal_width_ke_per_cm", f.width, None, "ke-/cm")
                    .metric("gauss_sigma_ke_per_cm", f.sigma, None, "ke-/cm")
                    .check_band("mpv_ke_per_cm", f.mpv, self.warn_band, self.error_band, "ke-/cm");
            }
            None => {
                report = report.check(
                    "mpv_ke_per_cm",
                    CheckStatus::Warning,
                    "too few track pixels to fit dQ/dx",
                );
            }
        }
        for (tpc, h) in &self.per_tpc {
            let (svg, fit) = self.fit_figure(h, &format!("dQ/dx, TPC {tpc}"));
            report = report.figure(&format!("dqdx_tpc{tpc}"), &format!("dQ/dx TPC {tpc}"), svg, h);
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

export_plugin!(Dqdx);
