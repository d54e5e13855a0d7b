//! The Arrow streams of the light readout (docs/data-model.md): `light_events` (one row per
//! event), `light_waveforms` (one row per waveform: its detector and reduced quantities, plus the
//! 14-bit samples, sent only to plugins that ask for them) and `light_matches` (light events and
//! charge triggers paired by time, both ways). Built incrementally, a batch per few hundred
//! events.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Builder, Int16Builder, Int64Builder, ListBuilder, RecordBatch, UInt8Builder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::LightEvent;
use super::TAI_MINUS_UTC_S;
use super::channel_map::{ChannelMap, DetType};
use super::reduce::summarize;

/// Clock ticks of the charge readout per second (10 MHz).
pub const TICKS_PER_S: i64 = 10_000_000;

/// Schema of `light_events`.
pub fn light_events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event", DataType::UInt64, false),
        Field::new("unix_ms", DataType::UInt64, false),
        Field::new("boards", DataType::UInt8, false),
        Field::new("boards_present", DataType::UInt8, false),
        Field::new("boards_missing", DataType::UInt8, false),
        Field::new("tai_s", DataType::UInt64, false),
        Field::new("tai_ns", DataType::UInt32, false),
        Field::new("time_ticks", DataType::Int64, false),
    ]))
}

/// Schema of `light_waveforms`.
pub fn light_waveforms_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event", DataType::UInt64, false),
        Field::new("adc", DataType::UInt8, false),
        Field::new("channel", DataType::UInt8, false),
        Field::new("tpc", DataType::UInt8, false),
        Field::new("det", DataType::UInt8, false),
        Field::new("det_type", DataType::UInt8, false),
        Field::new("baseline", DataType::Float32, false),
        Field::new("rms", DataType::Float32, false),
        Field::new("peak", DataType::Float32, false),
        Field::new("peak_sample", DataType::UInt16, false),
        Field::new("integral", DataType::Float32, false),
        Field::new("clipped_high", DataType::UInt16, false),
        Field::new("clipped_low", DataType::UInt16, false),
        Field::new(
            "samples",
            DataType::List(Arc::new(Field::new("item", DataType::Int16, false))),
            false,
        ),
    ]))
}

/// Schema of `light_matches`.
pub fn light_matches_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("light_event", DataType::UInt64, true),
        Field::new("charge_event", DataType::UInt64, true),
        Field::new("dt_ticks", DataType::Int64, true),
        Field::new("time_ticks", DataType::Int64, false),
    ]))
}

/// The trigger time of a light event: Unix seconds × 1e7 + ns / 100 (the charge clock's
/// ticks), from the first board present.
pub fn event_time_ticks(event: &LightEvent<'_>) -> Option<i64> {
    let adc = (0..8).find(|&b| event.boards_present & (1 << b) != 0)?;
    let unix_s = event.tai_s[adc].checked_sub(TAI_MINUS_UTC_S)? as i64;
    Some(unix_s * TICKS_PER_S + i64::from(event.tai_ns[adc]) / 100)
}

/// Builds `light_events` and `light_waveforms` batches from events.
pub struct LightBatchBuilder {
    baseline_samples: usize,
    map: ChannelMap,
    events: (
        UInt64Builder,
        UInt64Builder,
        UInt8Builder,
        UInt8Builder,
        UInt8Builder,
        UInt64Builder,
        UInt32Builder,
        Int64Builder,
    ),
    ids: (UInt64Builder, UInt8Builder, UInt8Builder, UInt8Builder, UInt8Builder, UInt8Builder),
    values: (
        Float32Builder,
        Float32Builder,
        Float32Builder,
        UInt16Builder,
        Float32Builder,
        UInt16Builder,
        UInt16Builder,
    ),
    samples: ListBuilder<Int16Builder>,
    /// Events added since the last `finish`.
    pub pending_events: usize,
}

impl LightBatchBuilder {
    /// A builder with the channel map and baseline window.
    pub fn new(map: ChannelMap, baseline_samples: usize) -> Self {
        Self {
            baseline_samples,
            map,
            events: Default::default(),
            ids: Default::default(),
            values: Default::default(),
            samples: ListBuilder::new(Int16Builder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::Int16,
                false,
            ))),
            pending_events: 0,
        }
    }

    /// Adds one event and its waveforms.
    pub fn add(&mut self, event: &LightEvent<'_>) {
        let e = &mut self.events;
        let first = (0..8).find(|&b| event.boards_present & (1 << b) != 0);
        e.0.append_value(event.event);
        e.1.append_value(event.unix_ms);
        e.2.append_value(event.boards);
        e.3.append_value(event.boards_present);
        e.4.append_value(event.boards.saturating_sub(event.boards_present.count_ones() as u8));
        e.5.append_value(first.map_or(0, |b| event.tai_s[b]));
        e.6.append_value(first.map_or(0, |b| event.tai_ns[b]));
        e.7.append_value(event_time_ticks(event).unwrap_or(0));
        for w in &event.waveforms {
            let s = summarize(w.samples, self.baseline_samples);
            let mapped = self.map.get(w.adc, w.channel);
            let ids = &mut self.ids;
            ids.0.append_value(event.event);
            ids.1.append_value(w.adc);
            ids.2.append_value(w.channel);
            ids.3.append_value(mapped.map_or(u8::MAX, |m| m.tpc));
            ids.4.append_value(mapped.map_or(u8::MAX, |m| m.det));
            ids.5.append_value(mapped.map_or(u8::MAX, |m| match m.det_type {
                DetType::Acl => 0,
                DetType::Lcm => 1,
            }));
            let v = &mut self.values;
            v.0.append_value(s.baseline);
            v.1.append_value(s.rms);
            v.2.append_value(s.peak);
            v.3.append_value(s.peak_sample);
            v.4.append_value(s.integral);
            v.5.append_value(s.clipped_high);
            v.6.append_value(s.clipped_low);
            self.samples
                .values()
                .append_slice(&w.samples.iter().map(|x| x >> 2).collect::<Vec<_>>());
            self.samples.append(true);
        }
        self.pending_events += 1;
    }

    /// The batches of the events added since the last call.
    pub fn finish(&mut self) -> (RecordBatch, RecordBatch) {
        self.pending_events = 0;
        let e = &mut self.events;
        let events: Vec<ArrayRef> = vec![
            Arc::new(e.0.finish()),
            Arc::new(e.1.finish()),
            Arc::new(e.2.finish()),
            Arc::new(e.3.finish()),
            Arc::new(e.4.finish()),
            Arc::new(e.5.finish()),
            Arc::new(e.6.finish()),
            Arc::new(e.7.finish()),
        ];
        let (ids, v) = (&mut self.ids, &mut self.values);
        let waveforms: Vec<ArrayRef> = vec![
            Arc::new(ids.0.finish()),
            Arc::new(ids.1.finish()),
            Arc::new(ids.2.finish()),
            Arc::new(ids.3.finish()),
            Arc::new(ids.4.finish()),
            Arc::new(ids.5.finish()),
            Arc::new(v.0.finish()),
            Arc::new(v.1.finish()),
            Arc::new(v.2.finish()),
            Arc::new(v.3.finish()),
            Arc::new(v.4.finish()),
            Arc::new(v.5.finish()),
            Arc::new(v.6.finish()),
            Arc::new(self.samples.finish()),
        ];
        (
            RecordBatch::try_new(light_events_schema(), events).expect("light_events columns"),
            RecordBatch::try_new(light_waveforms_schema(), waveforms)
                .expect("light_waveforms columns"),
        )
    }
}

/// Pairs light events with charge triggers by time (|Δt| ≤ `window_ticks` on the 10 MHz clock,
/// the nearest one), both ways: every light event gets a row (charge side empty if unmatched);
/// every charge trigger inside the light data's time span without a light event gets a row
/// (light side empty).
pub struct Matcher {
    /// Charge triggers: (time ticks, event id), sorted.
    charge: Vec<(i64, u64)>,
    used: Vec<bool>,
    window_ticks: i64,
    light_span: Option<(i64, i64)>,
}

impl Matcher {
    /// A matcher over the charge triggers of a run.
    pub fn new(mut charge: Vec<(i64, u64)>, window_ticks: i64) -> Self {
        charge.sort_unstable();
        let used = vec![false; charge.len()];
        Self { charge, used, window_ticks, light_span: None }
    }

    /// The `light_matches` rows of a batch of light events `(event, time ticks)`.
    pub fn match_events(&mut self, light: &[(u64, i64)]) -> RecordBatch {
        let (mut l, mut c, mut dt, mut t) =
            (UInt64Builder::new(), UInt64Builder::new(), Int64Builder::new(), Int64Builder::new());
        for &(event, time) in light {
            self.light_span =
                Some(self.light_span.map_or((time, time), |(a, b)| (a.min(time), b.max(time))));
            let i = self.charge.partition_point(|&(ct, _)| ct < time - self.window_ticks);
            let best = self.charge[i..]
                .iter()
                .enumerate()
                .take_while(|(_, (ct, _))| *ct <= time + self.window_ticks)
                .min_by_key(|(_, (ct, _))| (ct - time).abs())
                .map(|(k, &(ct, id))| (i + k, ct, id));
            l.append_value(event);
            t.append_value(time);
            match best {
                Some((k, ct, id)) => {
                    self.used[k] = true;
                    c.append_value(id);
                    dt.append_value(time - ct);
                }
                None => {
                    c.append_null();
                    dt.append_null();
                }
            }
        }
        Self::batch(l, c, dt, t)
    }

    /// Rows for the charge triggers within the light data's time span that no light event
    /// matched (call once, after the last light event).
    pub fn unmatched_charge(&self) -> RecordBatch {
        let (mut l, mut c, mut dt, mut t) =
            (UInt64Builder::new(), UInt64Builder::new(), Int64Builder::new(), Int64Builder::new());
        if let Some((first, last)) = self.light_span {
            for (k, &(time, id)) in self.charge.iter().enumerate() {
                if !self.used[k]
                    && time >= first - self.window_ticks
                    && time <= last + self.window_ticks
                {
                    l.append_null();
                    c.append_value(id);
                    dt.append_null();
                    t.append_value(time);
                }
            }
        }
        Self::batch(l, c, dt, t)
    }

    fn batch(
        mut l: UInt64Builder,
        mut c: UInt64Builder,
        mut dt: Int64Builder,
        mut t: Int64Builder,
    ) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(l.finish()),
            Arc::new(c.finish()),
            Arc::new(dt.finish()),
            Arc::new(t.finish()),
        ];
        RecordBatch::try_new(light_matches_schema(), columns).expect("light_matches columns")
    }
}
