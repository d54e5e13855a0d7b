//! Per-waveform reduction, fused with reading: pre-trigger baseline and RMS, maximum above the
//! baseline, integral, clipped samples — in 14-bit ADC units (raw int16 / 4).

/// Top rail of the raw int16 samples (a clipped sample reads exactly this).
pub const TOP_RAIL_ADC16: i16 = 32764;
/// Bottom rail.
pub const BOTTOM_RAIL_ADC16: i16 = -32768;

/// What one waveform reduces to.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WaveformSummary {
    /// Mean of the baseline window, ADC14.
    pub baseline: f32,
    /// RMS of the baseline window, ADC14.
    pub rms: f32,
    /// Largest sample minus the baseline, ADC14.
    pub peak: f32,
    /// Sample index of the largest sample.
    pub peak_sample: u16,
    /// Sum over the whole window of (sample − baseline), ADC14 × samples.
    pub integral: f32,
    /// Samples at the top rail.
    pub clipped_high: u16,
    /// Samples at the bottom rail.
    pub clipped_low: u16,
    /// Samples in the waveform.
    pub samples: u16,
}

/// Reduces raw int16 samples; `baseline_samples` is the number of leading samples before any
/// signal (2x2: 80 of 96 pre-trigger samples).
pub fn summarize(samples: &[i16], baseline_samples: usize) -> WaveformSummary {
    let n_base = baseline_samples.min(samples.len()).max(1).min(samples.len());
    if samples.is_empty() {
        return WaveformSummary::default();
    }
    let (mut sum, mut sum_sq) = (0i64, 0i64);
    for &s in &samples[..n_base] {
        let v = i64::from(s >> 2);
        sum += v;
        sum_sq += v * v;
    }
    let (mut total, mut max, mut argmax) = (0i64, i16::MIN, 0usize);
    let (mut high, mut low) = (0u16, 0u16);
    for (i, &s) in samples.iter().enumerate() {
        total += i64::from(s >> 2);
        if s > max {
            max = s;
            argmax = i;
        }
        high += u16::from(s == TOP_RAIL_ADC16);
        low += u16::from(s == BOTTOM_RAIL_ADC16);
    }
    let n = n_base as f64;
    let mean = sum as f64 / n;
    let variance = (sum_sq as f64 / n - mean * mean).max(0.0);
    WaveformSummary {
        baseline: mean as f32,
        rms: variance.sqrt() as f32,
        peak: (f64::from(max >> 2) - mean) as f32,
        peak_sample: argmax as u16,
        integral: (total as f64 - mean * samples.len() as f64) as f32,
        clipped_high: high,
        clipped_low: low,
        samples: samples.len() as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulse_on_a_flat_baseline() {
        let mut s = vec![-28000i16; 160];
        s[100] = -28000 + 400; // +100 ADC14
        s[101] = TOP_RAIL_ADC16;
        let w = summarize(&s, 80);
        assert_eq!((w.baseline, w.rms), (-7000.0, 0.0));
        assert_eq!(w.peak_sample, 101);
        assert_eq!(w.peak, (8191 + 7000) as f32);
        assert_eq!(w.integral, (100 + 8191 + 7000) as f32);
        assert_eq!((w.clipped_high, w.clipped_low, w.samples), (1, 0, 160));
    }
}
