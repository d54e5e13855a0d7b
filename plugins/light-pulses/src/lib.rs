//! light-pulses: what the light detectors see — pulse amplitude spectra per detector type, the
//! spectrum of the light integral summed per detector and event, the average pulse shape per
//! detector type, and the light event rate.

use larmon_plugin_sdk::prelude::*;

const TYPES: [&str; 2] = ["ArcLight", "LCM"];
const SAMPLE_NS: f64 = 16.0;

settings! {
    /// Its `[plugins.light-pulses]` settings.
    struct Settings {
        /// A waveform has a pulse above max(this, 5 × its RMS), ADC.
        threshold_adc: f64 = 20.0,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct LightPulses {
    /// log10(peak / ADC) of waveforms with a pulse, per detector type.
    amplitude: Vec<Hist1D>,
    /// log10(integral) summed over a detector's SiPMs per event, per detector type.
    integral: Vec<Hist1D>,
    /// Sum of baseline-subtracted samples of unclipped waveforms with a pulse, per type.
    average: Vec<Vec<f64>>,
    averaged: Vec<u64>,
    rate: TimeSeries,
    span: TimeSpan,
    events: u64,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    What the light detectors see: pulse amplitude spectra (log10 of the peak above baseline) \
    per detector type, the light summed per detector and event, the average pulse (baseline \
    subtracted, unclipped pulses: a fast rise and the ~1.5 µs argon triplet tail), and the \
    light event rate. **Bad:** a shifted amplitude spectrum (a gain or bias change), a \
    distorted average pulse (a timing or readout problem), a light event rate that does not \
    follow the charge trigger rate.";

columns! {
    struct LightEvents from "light_events" { unix_ms: u64 }
    struct Waveforms from "light_waveforms" {
        event: u64, tpc: u8, det: u8, det_type: u8, baseline: f32, rms: f32, peak: f32,
        integral: f32, clipped_high: u16, samples: [i16],
    }
}

impl Plugin for LightPulses {
    type Settings = Settings;

    fn info() -> Info {
        Info::new(
            "light-pulses",
            "Light pulses: amplitude and integral spectra, average waveform, rate",
        )
        .help(HELP)
        .reads::<LightEvents>()
        .reads::<Waveforms>()
    }

    fn new(settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            amplitude: vec![Hist1D::new(80, 0.0, 4.0); 2],
            integral: vec![Hist1D::new(100, 0.0, 6.0); 2],
            average: vec![Vec::new(); 2],
            averaged: vec![0; 2],
            rate: TimeSeries::default(),
            span: TimeSpan::default(),
            events: 0,
            settings,
        })
    }

    fn light_events(&mut self, batch: &Batch) -> Result<(), String> {
        for &ms in LightEvents::read(batch)?.unix_ms {
            self.rate.fill(ms / 1000, 1.0);
            self.span.fill(ms / 1000);
            self.events += 1;
        }
        Ok(())
    }

    fn light_waveforms(&mut self, batch: &Batch) -> Result<(), String> {
        let w = Waveforms::read(batch)?;
        let (event, tpc, det, kind) = (w.event, w.tpc, w.det, w.det_type);
        let (baseline, rms, peak, integral) = (w.baseline, w.rms, w.peak, w.integral);
        let (clipped, samples) = (w.clipped_high, w.samples);
        // Integrals summed per (event, detector): an event's waveforms arrive in one batch.
        let mut per_detector: Vec<((u64, u8, u8), usize, f64)> = Vec::new();
        for i in 0..w.rows {
            let k = usize::from(kind[i]);
            if k > 1 {
                continue;
            }
            let key = (event[i], tpc[i], det[i]);
            match per_detector.last_mut() {
                Some((last, _, sum)) if *last == key => *sum += f64::from(integral[i]),
                _ => per_detector.push((key, k, f64::from(integral[i]))),
            }
            let pulse =
                f64::from(peak[i]) > self.settings.threshold_adc.max(5.0 * f64::from(rms[i]));
            if !pulse {
                continue;
            }
            self.amplitude[k].fill(f64::from(peak[i]).log10(), 1.0);
            if clipped[i] == 0 {
                let avg = &mut self.average[k];
                if avg.len() < samples[i].len() {
                    avg.resize(samples[i].len(), 0.0);
                }
                for (a, &s) in avg.iter_mut().zip(samples[i]) {
                    *a += f64::from(s) - f64::from(baseline[i]);
                }
                self.averaged[k] += 1;
            }
        }
        for (_, k, sum) in per_detector {
            if sum > 1.0 {
                self.integral[k].fill(sum.log10(), 1.0);
            }
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let mut amplitude =
            svg::Plot::new("Light pulse amplitude", "log10(peak / ADC)", "waveforms / bin").log_y();
        let mut integral = svg::Plot::new(
            "Light per detector and event",
            "log10(integral / ADC·sample)",
            "detector-events / bin",
        )
        .log_y();
        let mut shape = svg::Plot::new(
            "Average light pulse",
            "time in the window [ns]",
            "mean ADC above baseline",
        );
        for (k, name) in TYPES.iter().enumerate() {
            amplitude = amplitude.hist(&self.amplitude[k], name);
            integral = integral.hist(&self.integral[k], name);
            if self.averaged[k] > 0 {
                let n = self.averaged[k] as f64;
                let points = self.average[k]
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i as f64 * SAMPLE_NS, s / n))
                    .collect();
                shape = shape.line(points, name);
            }
        }
        if self.averaged.iter().all(|&n| n == 0) {
            shape = shape.note("no pulses");
        }
        let mut rate = svg::Plot::new("Light event rate", "", "events / s").rate(&self.rate, "");
        if self.rate.is_empty() {
            rate = rate.note("no light events");
        }
        let seconds = self.span.seconds().max(1.0);
        Ok(Report::new()
            .plot("amplitude", "Light pulse amplitude", amplitude)
            .plot("integral", "Light per detector and event", integral)
            .plot("average_pulse", "Average light pulse", shape)
            .plot("rate", "Light event rate", rate)
            .metric("light_events", self.events as f64, None, "events")
            .metric("light_event_rate_hz", self.events as f64 / seconds, None, "Hz")
            .metric("arclight_mean_log10_peak", self.amplitude[0].mean().unwrap_or(0.0), None, "")
            .metric("lcm_mean_log10_peak", self.amplitude[1].mean().unwrap_or(0.0), None, ""))
    }
}

export_plugin!(LightPulses);
