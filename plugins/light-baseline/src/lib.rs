//! light-baseline: the light readout's pre-trigger baselines — noise (RMS) per detector type and
//! per detector, the baseline level per detector, and the noise power spectrum per detector type
//! from the first 64 pre-trigger samples (16 ns sampling: 0–31.25 MHz), where coherent pickup
//! shows up as lines.

use larmon_plugin_sdk::prelude::*;

const TYPES: [&str; 2] = ["ArcLight", "LCM"];
/// TPCs × detectors per TPC.
const DETECTORS: usize = 8 * 16;
/// Samples per spectrum (a power of two inside the 80-sample baseline window).
const FFT_SAMPLES: usize = 64;
const SAMPLE_NS: f64 = 16.0;

#[derive(Serialize, Deserialize, Default, Clone, Copy, Merge)]
struct Sum {
    n: u64,
    rms: f64,
    baseline: f64,
}

#[derive(Serialize, Deserialize, Merge)]
struct LightBaseline {
    rms: Vec<Hist1D>,
    spectrum: Vec<Vec<f64>>,
    spectra: Vec<u64>,
    detectors: Vec<Sum>,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    The light waveforms' pre-trigger baselines: the noise (RMS) distribution per detector \
    type, the noise and level per detector (TPC × detector maps), and the noise power spectrum \
    per detector type from the first 64 samples (0–31 MHz). White noise is flat. **Bad:** a \
    line at one frequency (coherent pickup), a rising low-frequency end (baseline drift), a \
    detector that stands out in the noise map (a noisy SiPM or cable).";

columns! {
    struct Waveforms from "light_waveforms" {
        tpc: u8, det: u8, det_type: u8, baseline: f32, rms: f32, samples: [i16],
    }
}

impl Plugin for LightBaseline {
    type Settings = NoSettings;

    fn info() -> Info {
        Info::new("light-baseline", "Light readout baselines: noise per detector and noise spectra")
            .help(HELP)
            .reads::<Waveforms>()
    }

    fn new(_settings: NoSettings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            rms: vec![Hist1D::new(100, 0.0, 50.0); 2],
            spectrum: vec![vec![0.0; FFT_SAMPLES / 2 + 1]; 2],
            spectra: vec![0; 2],
            detectors: vec![Sum::default(); DETECTORS],
        })
    }

    fn light_waveforms(&mut self, batch: &Batch) -> Result<(), String> {
        let Waveforms { tpc, det, det_type: kind, baseline, rms, samples, rows } =
            Waveforms::read(batch)?;
        let mut window = Vec::with_capacity(FFT_SAMPLES);
        for i in 0..rows {
            let k = usize::from(kind[i]);
            if k > 1 {
                continue; // not mapped to a detector
            }
            self.rms[k].fill(f64::from(rms[i]), 1.0);
            if samples[i].len() >= FFT_SAMPLES {
                window.clear();
                window.extend(samples[i][..FFT_SAMPLES].iter().map(|&s| f64::from(s)));
                for (sum, p) in self.spectrum[k].iter_mut().zip(spectrum::power_spectrum(&window)) {
                    *sum += p;
                }
                self.spectra[k] += 1;
            }
            if let Some(d) = self.detectors.get_mut(usize::from(tpc[i]) * 16 + usize::from(det[i]))
            {
                d.n += 1;
                d.rms += f64::from(rms[i]);
                d.baseline += f64::from(baseline[i]);
            }
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let mut rms_plot =
            svg::Plot::new("Baseline noise of light waveforms", "RMS [ADC]", "waveforms / bin")
                .log_y();
        let mut spectrum_plot =
            svg::Plot::new("Light noise power spectrum", "frequency [MHz]", "power [ADC² / bin]")
                .log_y();
        let mut report = Report::new();
        for (k, name) in TYPES.iter().enumerate() {
            rms_plot = rms_plot.hist(&self.rms[k], name);
            let n = self.spectra[k].max(1) as f64;
            let points: Vec<(f64, f64)> = self.spectrum[k]
                .iter()
                .enumerate()
                .skip(1) // the mean was removed
                .map(|(f, p)| (f as f64 * 1e3 / (FFT_SAMPLES as f64 * SAMPLE_NS), p / n))
                .collect();
            if self.spectra[k] > 0 {
                spectrum_plot = spectrum_plot.line(points, name);
            }
            let key = name.to_lowercase();
            report = report.metric(
                &format!("{key}_mean_rms_adc"),
                self.rms[k].mean().unwrap_or(0.0),
                None,
                "ADC",
            );
        }
        if self.spectra.iter().all(|&n| n == 0) {
            spectrum_plot = spectrum_plot.note("no light waveforms");
        }
        let map = |value: fn(&Sum) -> f64| -> Vec<(f64, f64, f64)> {
            self.detectors
                .iter()
                .enumerate()
                .filter(|(_, d)| d.n > 0)
                .map(|(i, d)| ((i % 16) as f64, (i / 16) as f64, value(d)))
                .collect()
        };
        let (noise, level) = (map(|d| d.rms / d.n as f64), map(|d| d.baseline / d.n as f64));
        let detector_map = |points, title, unit| {
            TypedFigure::value_map(points, 1.0, title, "detector [id]", "TPC [id]", unit)
        };
        let rms_map = detector_map(&noise, "Noise per light detector", "RMS [ADC]");
        let level_map = detector_map(&level, "Baseline per light detector", "baseline [ADC]");
        Ok(report
            .plot("noise_spectrum", "Light noise power spectrum", spectrum_plot)
            .plot("rms", "Light baseline noise", rms_plot)
            .typed("detector_noise", "Noise per light detector", rms_map)
            .typed("detector_baseline", "Baseline per light detector", level_map))
    }
}

export_plugin!(LightBaseline);
