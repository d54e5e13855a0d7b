//! A pass over a light file reduced to what light DQM needs: per input the baseline and noise,
//! flat-line, clipping; per event the boards present. The rules that flag dead, noisy and
//! clipping inputs are `larmon-light-rules`' (the light-health plugin applies the same ones).

use serde::Serialize;

use super::LightEvent;
use super::channel_map::{BOARDS, ChannelMap, INPUTS};
use super::reduce::summarize;

pub use larmon_light_rules::LightFlag;
use larmon_light_rules::{DEFAULT_NOISY_FACTOR, InputTotals, flag_inputs};

/// Accumulated per input.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct InputStats {
    /// What the health rules judge: waveforms, RMS sum, flat and clipped waveforms.
    pub totals: InputTotals,
    /// Sum of per-waveform baselines, ADC14.
    pub baseline_sum: f64,
    /// Largest peak above the baseline, ADC14.
    pub peak_max: f32,
}

/// The light scan of a file (or run).
#[derive(Clone, Debug, Serialize)]
pub struct LightScan {
    /// Samples at the start of a waveform used for the baseline.
    pub baseline_samples: usize,
    /// Events read.
    pub events: u64,
    /// Waveforms read.
    pub waveforms: u64,
    /// Samples read.
    pub samples: u64,
    /// First and last event Unix time, ms.
    pub unix_ms: Option<(u64, u64)>,
    /// Events (event number) and the board missing in them.
    pub missing_boards: Vec<(u64, u8)>,
    /// Per (adc, channel): `adc * 64 + channel`.
    inputs: Vec<InputStats>,
}

/// A flagged input.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlaggedInput {
    /// ADC board.
    pub adc: u8,
    /// Input channel.
    pub channel: u8,
    /// Why.
    pub kind: LightFlag,
    /// Mean baseline RMS, ADC14.
    pub rms: f64,
    /// Waveforms with clipping.
    pub clipped_waveforms: u64,
}

/// Health rules.
#[derive(Clone, Copy, Debug)]
pub struct HealthRules {
    /// Noisy: mean RMS above this many times the median of all inputs.
    pub noisy_factor: f64,
}

impl Default for HealthRules {
    fn default() -> Self {
        Self { noisy_factor: DEFAULT_NOISY_FACTOR }
    }
}

impl LightScan {
    /// An empty scan using the first `baseline_samples` samples for the baseline.
    pub fn new(baseline_samples: usize) -> Self {
        Self {
            baseline_samples,
            events: 0,
            waveforms: 0,
            samples: 0,
            unix_ms: None,
            missing_boards: Vec::new(),
            inputs: vec![InputStats::default(); BOARDS * INPUTS],
        }
    }

    /// Adds one event.
    pub fn add_event(&mut self, event: &LightEvent<'_>) {
        self.events += 1;
        let t = event.unix_ms;
        self.unix_ms = Some(self.unix_ms.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        for adc in 0..event.boards.min(8) {
            if event.boards_present & (1 << adc) == 0 {
                self.missing_boards.push((event.event, adc));
            }
        }
        for w in &event.waveforms {
            let s = summarize(w.samples, self.baseline_samples);
            let Some(input) =
                self.inputs.get_mut(usize::from(w.adc) * INPUTS + usize::from(w.channel))
            else {
                continue;
            };
            input.totals.add_waveform(s.rms, s.peak, s.clipped_high > 0);
            input.baseline_sum += f64::from(s.baseline);
            input.peak_max = input.peak_max.max(s.peak);
            self.waveforms += 1;
            self.samples += w.samples.len() as u64;
        }
    }

    /// Adds another scan (files of a run, in order).
    pub fn merge(&mut self, other: &LightScan) {
        self.events += other.events;
        self.waveforms += other.waveforms;
        self.samples += other.samples;
        self.unix_ms = match (self.unix_ms, other.unix_ms) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
        self.missing_boards.extend(&other.missing_boards);
        for (mine, theirs) in self.inputs.iter_mut().zip(&other.inputs) {
            mine.totals.add(&theirs.totals);
            mine.baseline_sum += theirs.baseline_sum;
            mine.peak_max = mine.peak_max.max(theirs.peak_max);
        }
    }

    /// Stats of one input.
    pub fn input(&self, adc: u8, channel: u8) -> Option<&InputStats> {
        self.inputs
            .get(usize::from(adc) * INPUTS + usize::from(channel))
            .filter(|i| i.totals.waveforms > 0)
    }

    /// Mean baseline of an input, ADC14.
    pub fn baseline(&self, adc: u8, channel: u8) -> Option<f64> {
        self.input(adc, channel).map(|i| i.baseline_sum / i.totals.waveforms as f64)
    }

    /// Dead, noisy and clipping inputs among those the map connects (or every input read out
    /// when `map` is `None`).
    pub fn flagged(&self, map: Option<&ChannelMap>, rules: &HealthRules) -> Vec<FlaggedInput> {
        let read: Vec<(u8, u8, &InputStats)> = (0..BOARDS as u8)
            .flat_map(|adc| (0..INPUTS as u8).map(move |channel| (adc, channel)))
            .filter(|&(adc, channel)| map.is_none_or(|m| m.get(adc, channel).is_some()))
            .filter_map(|(adc, channel)| self.input(adc, channel).map(|i| (adc, channel, i)))
            .collect();
        let totals = read.iter().map(|&(adc, channel, i)| ((adc, channel, i), i.totals));
        flag_inputs(totals, rules.noisy_factor)
            .into_iter()
            .map(|((adc, channel, i), kind)| FlaggedInput {
                adc,
                channel,
                kind,
                rms: i.totals.mean_rms(),
                clipped_waveforms: i.totals.clipped_waveforms,
            })
            .collect()
    }
}
