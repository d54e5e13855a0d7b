//! The reduced light product: each waveform (event × input) reduced to its baseline, noise and
//! pulses (time, amplitude, integral), as the Arrow batches `larmon light --export` writes to
//! Parquet. Waveforms dominate the 2x2's data volume; this is what is kept on disk instead.
//!
//! A pulse is a run of samples more than `threshold` above the baseline (threshold = the larger
//! of `sigma` × the waveform's baseline RMS and `min_adc`), in 14-bit ADC units; its time is the
//! sample of its maximum × the 16 ns sample period of the ADC64 boards (62.5 MHz), its integral
//! the sum of (sample − baseline) over the run.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, Float32Builder, ListBuilder, RecordBatch, UInt8Builder, UInt16Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::LightEvent;
use super::reduce::summarize;

/// Sample period of the 2x2 light ADCs, ns.
pub const SAMPLE_NS: f32 = 16.0;

/// One pulse of a waveform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pulse {
    /// Time of its maximum from the first sample, ns.
    pub time_ns: f32,
    /// Maximum above the baseline, ADC14.
    pub amplitude: f32,
    /// Sum of (sample − baseline) over the pulse, ADC14 × samples.
    pub integral: f32,
}

/// How pulses are found.
#[derive(Clone, Copy, Debug)]
pub struct PulseFinder {
    /// Leading samples of the baseline window.
    pub baseline_samples: usize,
    /// Threshold in units of the baseline RMS.
    pub sigma: f32,
    /// Smallest threshold, ADC14 (a quiet input's RMS can be near 0).
    pub min_adc: f32,
}

impl Default for PulseFinder {
    fn default() -> Self {
        Self { baseline_samples: 80, sigma: 5.0, min_adc: 10.0 }
    }
}

impl PulseFinder {
    /// The pulses of raw int16 samples (14-bit values × 4) above `baseline`.
    pub fn pulses(&self, samples: &[i16], baseline: f32, rms: f32) -> Vec<Pulse> {
        let threshold = (self.sigma * rms).max(self.min_adc);
        let mut pulses = Vec::new();
        let mut open: Option<(usize, f32, f32)> = None; // (peak sample, amplitude, integral)
        for (i, &s) in samples.iter().enumerate() {
            let v = f32::from(s >> 2) - baseline;
            if v > threshold {
                let (peak, amplitude, integral) = open.get_or_insert((i, v, 0.0));
                *integral += v;
                if v > *amplitude {
                    (*peak, *amplitude) = (i, v);
                }
            } else if let Some((peak, amplitude, integral)) = open.take() {
                pulses.push(Pulse { time_ns: peak as f32 * SAMPLE_NS, amplitude, integral });
            }
        }
        if let Some((peak, amplitude, integral)) = open {
            pulses.push(Pulse { time_ns: peak as f32 * SAMPLE_NS, amplitude, integral });
        }
        pulses
    }
}

/// Schema of the reduced light product (one row per waveform).
pub fn light_pulses_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let list = |name: &str| {
            Field::new(
                name,
                DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
                false,
            )
        };
        Arc::new(Schema::new(vec![
            Field::new("event", DataType::UInt64, false),
            Field::new("unix_ms", DataType::UInt64, false),
            Field::new("adc", DataType::UInt8, false),
            Field::new("channel", DataType::UInt8, false),
            Field::new("baseline_adc", DataType::Float32, false),
            Field::new("noise_adc", DataType::Float32, false),
            Field::new("clipped_samples", DataType::UInt16, false),
            Field::new("n_pulses", DataType::UInt16, false),
            list("pulse_time_ns"),
            list("pulse_amplitude_adc"),
            list("pulse_integral_adc"),
        ]))
    })
    .clone()
}

/// Builds the reduced product event by event.
pub struct PulseBatchBuilder {
    finder: PulseFinder,
    event: UInt64Builder,
    unix_ms: UInt64Builder,
    adc: UInt8Builder,
    channel: UInt8Builder,
    baseline: Float32Builder,
    noise: Float32Builder,
    clipped: UInt16Builder,
    n_pulses: UInt16Builder,
    time: ListBuilder<Float32Builder>,
    amplitude: ListBuilder<Float32Builder>,
    integral: ListBuilder<Float32Builder>,
    rows: usize,
    pulses: u64,
}

impl PulseBatchBuilder {
    /// An empty builder.
    pub fn new(finder: PulseFinder) -> Self {
        let list = || {
            ListBuilder::new(Float32Builder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::Float32,
                false,
            )))
        };
        Self {
            finder,
            event: UInt64Builder::new(),
            unix_ms: UInt64Builder::new(),
            adc: UInt8Builder::new(),
            channel: UInt8Builder::new(),
            baseline: Float32Builder::new(),
            noise: Float32Builder::new(),
            clipped: UInt16Builder::new(),
            n_pulses: UInt16Builder::new(),
            time: list(),
            amplitude: list(),
            integral: list(),
            rows: 0,
            pulses: 0,
        }
    }

    /// Rows (waveforms) waiting in the builder.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Pulses found so far (all batches).
    pub fn pulses_found(&self) -> u64 {
        self.pulses
    }

    /// Adds every waveform of an event.
    pub fn add(&mut self, event: &LightEvent<'_>) {
        for w in &event.waveforms {
            let summary = summarize(w.samples, self.finder.baseline_samples);
            let pulses = self.finder.pulses(w.samples, summary.baseline, summary.rms);
            self.event.append_value(event.event);
            self.unix_ms.append_value(event.unix_ms);
            self.adc.append_value(w.adc);
            self.channel.append_value(w.channel);
            self.baseline.append_value(summary.baseline);
            self.noise.append_value(summary.rms);
            self.clipped.append_value(summary.clipped_high.saturating_add(summary.clipped_low));
            self.n_pulses.append_value(pulses.len().min(usize::from(u16::MAX)) as u16);
            for p in &pulses {
                self.time.values().append_value(p.time_ns);
                self.amplitude.values().append_value(p.amplitude);
                self.integral.values().append_value(p.integral);
            }
            self.time.append(true);
            self.amplitude.append(true);
            self.integral.append(true);
            self.rows += 1;
            self.pulses += pulses.len() as u64;
        }
    }

    /// The rows so far as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event.finish()),
            Arc::new(self.unix_ms.finish()),
            Arc::new(self.adc.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.baseline.finish()),
            Arc::new(self.noise.finish()),
            Arc::new(self.clipped.finish()),
            Arc::new(self.n_pulses.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.amplitude.finish()),
            Arc::new(self.integral.finish()),
        ];
        RecordBatch::try_new(light_pulses_schema(), columns).expect("columns match the schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::light::Waveform;

    /// A waveform at baseline 1000 ADC14 with ±1 noise and two pulses: 200 ADC at sample 100
    /// (three samples: 100, 200, 100) and 50 ADC at sample 180 (one sample).
    fn waveform() -> Vec<i16> {
        let mut adc14: Vec<i16> =
            (0..256).map(|i| 1000 + if i % 2 == 0 { 1 } else { -1 }).collect();
        adc14[99] = 1100;
        adc14[100] = 1200;
        adc14[101] = 1100;
        adc14[180] = 1050;
        adc14.iter().map(|v| v << 2).collect()
    }

    #[test]
    fn pulses_have_the_time_amplitude_and_integral_put_in() {
        let samples = waveform();
        let s = summarize(&samples, 80);
        assert_eq!((s.baseline, s.rms), (1000.0, 1.0));
        let pulses = PulseFinder::default().pulses(&samples, s.baseline, s.rms);
        assert_eq!(
            pulses,
            [
                Pulse { time_ns: 100.0 * SAMPLE_NS, amplitude: 200.0, integral: 400.0 },
                Pulse { time_ns: 180.0 * SAMPLE_NS, amplitude: 50.0, integral: 50.0 },
            ]
        );
        // Above a 60-ADC threshold only the first remains.
        let high = PulseFinder { min_adc: 60.0, ..PulseFinder::default() };
        assert_eq!(high.pulses(&samples, s.baseline, s.rms).len(), 1);
    }

    #[test]
    fn the_product_has_a_row_per_waveform_with_its_pulses() {
        let samples = waveform();
        let flat = vec![1000i16 << 2; 256];
        let event = LightEvent {
            event: 7,
            unix_ms: 1_700_000_000_123,
            waveforms: vec![
                Waveform { adc: 0, channel: 3, samples: &samples },
                Waveform { adc: 1, channel: 4, samples: &flat },
            ],
            ..LightEvent::default()
        };
        let mut builder = PulseBatchBuilder::new(PulseFinder::default());
        builder.add(&event);
        assert_eq!(builder.pulses_found(), 2);
        let batch = builder.finish();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), light_pulses_schema());
        let n = batch.column(7).as_any().downcast_ref::<arrow::array::UInt16Array>().unwrap();
        assert_eq!(n.values(), &[2, 0]);
        assert_eq!(builder.rows(), 0);
    }
}
