//! The light readout's health rules, in one place for `larmon light` (host) and the light-health
//! plugin (sandbox): per input, accumulated over waveforms, whether it is **dead** (flat in
//! every waveform: no baseline RMS and nothing above the baseline), **noisy** (mean baseline RMS
//! above `noisy_factor` × the median of the inputs read out) or **clipping** (a sample on the
//! top rail in some waveform). A dead input is never also called noisy; clipping is said
//! besides either.

use serde::{Deserialize, Serialize};

/// Noisy: mean baseline RMS above this many times the median input (the default).
pub const DEFAULT_NOISY_FACTOR: f64 = 5.0;

/// Why an input is flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LightFlag {
    /// Flat in every waveform.
    Dead,
    /// Baseline RMS far above the others.
    Noisy,
    /// Reaches the top rail.
    Clipping,
}

impl LightFlag {
    /// "dead", "noisy", "clipping".
    pub fn as_str(self) -> &'static str {
        match self {
            LightFlag::Dead => "dead",
            LightFlag::Noisy => "noisy",
            LightFlag::Clipping => "clipping",
        }
    }
}

/// What the rules need of one input, summed over its waveforms (mergeable by addition).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputTotals {
    /// Waveforms seen.
    pub waveforms: u64,
    /// Sum of per-waveform baseline RMS, ADC counts.
    pub rms_sum: f64,
    /// Waveforms without any variation.
    pub flat_waveforms: u64,
    /// Waveforms with a sample on the top rail.
    pub clipped_waveforms: u64,
}

impl InputTotals {
    /// Adds one waveform by its reduced quantities: baseline RMS, highest peak above the
    /// baseline, and whether a sample reached the top rail.
    pub fn add_waveform(&mut self, rms: f32, peak: f32, clipped: bool) {
        self.waveforms += 1;
        self.rms_sum += f64::from(rms);
        self.flat_waveforms += u64::from(rms == 0.0 && peak <= 0.0);
        self.clipped_waveforms += u64::from(clipped);
    }

    /// Adds another part (files of a run, snapshots of shards).
    pub fn add(&mut self, other: &InputTotals) {
        self.waveforms += other.waveforms;
        self.rms_sum += other.rms_sum;
        self.flat_waveforms += other.flat_waveforms;
        self.clipped_waveforms += other.clipped_waveforms;
    }

    /// Mean baseline RMS, ADC counts (0 without waveforms).
    pub fn mean_rms(&self) -> f64 {
        if self.waveforms == 0 { 0.0 } else { self.rms_sum / self.waveforms as f64 }
    }
}

/// The flags of a set of inputs, each named by a key of the caller's (e.g. board and input):
/// inputs without waveforms are not judged and do not enter the median. In input order; an
/// input can have two flags (dead or noisy, and clipping).
pub fn flag_inputs<K: Copy>(
    inputs: impl IntoIterator<Item = (K, InputTotals)>,
    noisy_factor: f64,
) -> Vec<(K, LightFlag)> {
    let read: Vec<(K, InputTotals)> = inputs.into_iter().filter(|(_, i)| i.waveforms > 0).collect();
    let mut rms: Vec<f64> = read.iter().map(|(_, i)| i.mean_rms()).collect();
    rms.sort_by(f64::total_cmp);
    let median = rms.get(rms.len() / 2).copied().unwrap_or(0.0);
    let mut flags = Vec::new();
    for (key, input) in read {
        if input.flat_waveforms == input.waveforms {
            flags.push((key, LightFlag::Dead));
        } else if median > 0.0 && input.mean_rms() > noisy_factor * median {
            flags.push((key, LightFlag::Noisy));
        }
        if input.clipped_waveforms > 0 {
            flags.push((key, LightFlag::Clipping));
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rms: f32, waveforms: u64, peak: f32, clipped: bool) -> InputTotals {
        let mut totals = InputTotals::default();
        for _ in 0..waveforms {
            totals.add_waveform(rms, peak, clipped);
        }
        totals
    }

    #[test]
    fn dead_noisy_and_clipping_inputs_are_told_apart() {
        let inputs = [
            (0, input(2.0, 10, 50.0, false)),
            (1, input(2.1, 10, 50.0, false)),
            (2, input(0.0, 10, 0.0, false)),   // flat: dead
            (3, input(11.0, 10, 80.0, false)), // 11 > 5 × median 2.1: noisy
            (4, input(2.0, 10, 9000.0, true)), // clipping
            (5, input(10.0, 10, 80.0, true)),  // 10 < 10.5: clipping only
            (6, InputTotals::default()),       // not read out: not judged
        ];
        let flags = flag_inputs(inputs, DEFAULT_NOISY_FACTOR);
        assert_eq!(
            flags,
            [
                (2, LightFlag::Dead),
                (3, LightFlag::Noisy),
                (4, LightFlag::Clipping),
                (5, LightFlag::Clipping)
            ]
        );
    }

    #[test]
    fn totals_merge_by_addition() {
        let mut a = input(2.0, 3, 1.0, false);
        a.add(&input(4.0, 1, 0.0, true));
        assert_eq!(a.waveforms, 4);
        assert_eq!(a.mean_rms(), 2.5);
        assert_eq!((a.flat_waveforms, a.clipped_waveforms), (0, 1));
        assert_eq!(InputTotals::default().mean_rms(), 0.0);
    }
}
